//! Arbitrary bytes as TypeScript JSON messages and records: decoding must never
//! panic, and whatever decodes and re-encodes must decode to the same value.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use p2p_protocol::{Codec, JsonCodec, ProtocolLimits};

fuzz_target!(|data: &[u8]| {
    let codec = JsonCodec;
    let body = Bytes::copy_from_slice(data);
    if let Ok(message) = codec.decode_message(body.clone()) {
        let _ = p2p_protocol::validate_message(&message, 1_764_460_000_000, &ProtocolLimits::DEFAULT);
        let _ = p2p_protocol::verify(&message);
        let mut again = BytesMut::new();
        if codec.encode_message(&message, &mut again).is_ok() {
            assert_eq!(codec.decode_message(again.freeze()).expect("re-decodes"), message);
        }
    }
    if let Ok(record) = codec.decode_record(body) {
        let _ = record.verify_for(&record.key, 1_764_460_000_000, &ProtocolLimits::DEFAULT);
        let mut again = BytesMut::new();
        if codec.encode_record(&record, &mut again).is_ok() {
            assert_eq!(codec.decode_record(again.freeze()).expect("re-decodes"), record);
        }
    }
});
