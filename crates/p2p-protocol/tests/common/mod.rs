//! Helpers shared by the p2p-protocol integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use p2p_protocol::{Codec, Message, ResourceRecord};

/// `message` encoded with `codec` (which must accept it).
pub fn encode_message(codec: &dyn Codec, message: &Message) -> Bytes {
    let mut buf = BytesMut::new();
    codec.encode_message(message, &mut buf).unwrap();
    buf.freeze()
}

/// `record` encoded with `codec` (which must accept it).
pub fn encode_record(codec: &dyn Codec, record: &ResourceRecord) -> Bytes {
    let mut buf = BytesMut::new();
    codec.encode_record(record, &mut buf).unwrap();
    buf.freeze()
}
