//! Arbitrary bytes as a protobuf envelope and record: decoding and validation
//! must never panic, and whatever decodes must re-encode to something that
//! decodes to the same value.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use libp2p_identity::PeerId;
use p2p_protocol::{Codec, Inbound, InboundPolicy, ProtobufCodec, ProtocolLimits};

fuzz_target!(|data: &[u8]| {
    let codec = ProtobufCodec;
    let body = Bytes::copy_from_slice(data);
    if let Ok(message) = codec.decode_message(body.clone()) {
        let _ = p2p_protocol::validate_message(&message, 1_764_460_000_000, &ProtocolLimits::DEFAULT);
        let _ = p2p_protocol::verify(&message);
        let _ = message.id();
        let mut again = BytesMut::new();
        codec.encode_message(&message, &mut again).expect("protobuf encodes every message");
        assert_eq!(codec.decode_message(again.freeze()).expect("re-decodes"), message);
        // The whole inbound pipeline, from the claimed sender.
        let mut inbound = Inbound::new(InboundPolicy::default());
        let _ = inbound.accept(&codec, body.clone(), &message.from, message.timestamp_ms);
    }
    let mut inbound = Inbound::new(InboundPolicy::default());
    let _ = inbound.accept(&codec, body.clone(), &PeerId::random(), 1_764_460_000_000);
    if let Ok(record) = codec.decode_record(body) {
        let _ = p2p_protocol::validate_record(&record, 1_764_460_000_000, &ProtocolLimits::DEFAULT);
        let _ = record.verify_for(&record.key, 1_764_460_000_000, &ProtocolLimits::DEFAULT);
        let mut again = BytesMut::new();
        codec.encode_record(&record, &mut again).expect("protobuf encodes every record");
        assert_eq!(codec.decode_record(again.freeze()).expect("re-decodes"), record);
    }
});
