//! A codec of the user's own for the native protocol: two nodes configured
//! with a small CBOR codec under its own protocol id exchange signed messages
//! end to end (a CBOR frame written by hand arrives; a protobuf frame on the
//! same protocol is refused, so the node really decodes with the codec it was
//! given); a protobuf node finds no common native protocol with them; and the
//! codec's own error is kept as the typed source of a decode error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::{WAIT, connect_pair, message_from, rejection, send_and_receive, started, tcp_builder};
use futures::AsyncWriteExt;
use p2p_core::libp2p::StreamProtocol;
use p2p_core::{
    DhtModeSetting, NATIVE_PROTOCOL, NodeError, RejectReason, SendError, TYPESCRIPT_PROTOCOL, Wire,
    WireChoice,
};
use p2p_protocol::{
    Codec, CodecError, DecodeError, Message, ProtobufCodec, ResourceRecord, encode_message_frame,
};
use serde::{Deserialize, Serialize};

const CBOR_PROTOCOL: StreamProtocol = StreamProtocol::new("/lotus-test/cbor/1.0.0");

/// The message's fields as CBOR; the record methods are not needed for the
/// message protocol and refuse.
struct CborCodec;

#[derive(Serialize, Deserialize)]
struct CborMessage {
    kind: String,
    from: Vec<u8>,
    to: Option<Vec<u8>>,
    protocol: Option<String>,
    payload: Vec<u8>,
    timestamp_ms: u64,
    nonce: Vec<u8>,
    sequence: Option<u64>,
    signature: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
}

fn invalid(field: &'static str) -> CodecError {
    DecodeError::Invalid {
        field,
        reason: "malformed",
    }
    .into()
}

impl Codec for CborCodec {
    fn name(&self) -> &'static str {
        "cbor"
    }

    fn encode_message(&self, m: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        let wire = CborMessage {
            kind: m.kind.as_str().to_owned(),
            from: m.from.to_bytes(),
            to: m.to.map(|p| p.to_bytes()),
            protocol: m.protocol.as_ref().map(|p| p.as_str().to_owned()),
            payload: m.payload.to_vec(),
            timestamp_ms: m.timestamp_ms,
            nonce: m.nonce.to_vec(),
            sequence: m.sequence,
            signature: m.signature.as_ref().map(|s| s.to_vec()),
            public_key: m.public_key.as_ref().map(|k| k.to_vec()),
        };
        let mut out = Vec::new();
        ciborium::into_writer(&wire, &mut out).map_err(|e| CodecError::custom("cbor", e))?;
        dst.extend_from_slice(&out);
        Ok(())
    }

    fn decode_message(&self, src: Bytes) -> Result<Message, CodecError> {
        let wire: CborMessage =
            ciborium::from_reader(&src[..]).map_err(|e| DecodeError::custom("cbor", e))?;
        let peer =
            |b: &[u8], field| p2p_core::libp2p::PeerId::from_bytes(b).map_err(|_| invalid(field));
        Ok(Message {
            kind: wire.kind.parse().map_err(|_| invalid("kind"))?,
            from: peer(&wire.from, "from")?,
            to: wire.to.as_deref().map(|b| peer(b, "to")).transpose()?,
            protocol: wire
                .protocol
                .map(|p| p.parse().map_err(|_| invalid("protocol")))
                .transpose()?,
            payload: wire.payload.into(),
            timestamp_ms: wire.timestamp_ms,
            nonce: wire.nonce.into(),
            sequence: wire.sequence,
            signature: wire.signature.map(Into::into),
            public_key: wire.public_key.map(Into::into),
        })
    }

    fn encode_record(&self, _: &ResourceRecord, _: &mut BytesMut) -> Result<(), CodecError> {
        Err(CodecError::Unrepresentable {
            field: "record",
            reason: "this codec carries messages only",
        })
    }

    fn decode_record(&self, _: Bytes) -> Result<ResourceRecord, CodecError> {
        Err(invalid("record"))
    }
}

fn cbor_builder() -> p2p_core::NodeBuilder {
    tcp_builder(DhtModeSetting::Client).native_codec(CBOR_PROTOCOL, Arc::new(CborCodec))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_signed_messages_over_a_codec_of_their_own() {
    let (alice, bob) =
        connect_pair(started(cbor_builder()).await, started(cbor_builder()).await).await;
    let message = alice
        .sign(
            alice
                .message("chat".parse().unwrap())
                .payload(&b"over cbor"[..]),
        )
        .unwrap();
    let (m, wire, verified) = send_and_receive(&alice, &bob, &message, WireChoice::Native).await;
    assert_eq!(wire, Wire::Native);
    assert!(
        verified,
        "the signature covers canonical bytes, not the encoding"
    );
    assert_eq!(*m, message);
    // And back, with plain `send` (Auto finds the CBOR protocol).
    let reply = bob
        .sign(bob.message("chat".parse().unwrap()).payload(&b"back"[..]))
        .unwrap();
    let got = message_from(&alice, bob.peer_id(), b"back");
    bob.send(alice.peer_id(), &reply).await.unwrap();
    got.await;
    // A CBOR frame written by hand on the CBOR protocol is a message.
    let by_hand = alice
        .sign(
            alice
                .message("chat".parse().unwrap())
                .payload(&b"cbor by hand"[..]),
        )
        .unwrap();
    let mut frame = BytesMut::new();
    encode_message_frame(&CborCodec, &by_hand, &mut frame).unwrap();
    let got = message_from(&bob, alice.peer_id(), b"cbor by hand");
    let mut stream = alice
        .open_stream(bob.peer_id(), CBOR_PROTOCOL)
        .await
        .unwrap();
    stream.write_all(&frame).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::timeout(WAIT, got).await.unwrap();
    // The CBOR node serves its own protocol id, not protobuf's.
    let refused = bob.open_stream(alice.peer_id(), NATIVE_PROTOCOL).await;
    assert!(
        matches!(&refused, Err(SendError::Unsupported(p)) if *p == NATIVE_PROTOCOL),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protobuf_node_and_a_cbor_node_share_no_native_protocol() {
    let (plain, cbor) = connect_pair(
        started(tcp_builder(DhtModeSetting::Client)).await,
        started(cbor_builder()).await,
    )
    .await;
    let message = plain
        .sign(plain.message("chat".parse().unwrap()).payload(&b"x"[..]))
        .unwrap();
    let refused = plain
        .send_with(cbor.peer_id(), &message, WireChoice::Native)
        .await;
    assert!(
        matches!(&refused, Err(SendError::Unsupported(p)) if *p == NATIVE_PROTOCOL),
        "{refused:?}"
    );
    let refused = cbor
        .send_with(plain.peer_id(), &message, WireChoice::Native)
        .await;
    assert!(
        matches!(&refused, Err(SendError::Unsupported(p)) if *p == CBOR_PROTOCOL),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protobuf_frame_on_the_cbor_protocol_is_refused_and_attributed() {
    let (attacker, victim) =
        connect_pair(started(cbor_builder()).await, started(cbor_builder()).await).await;
    let refused = rejection(&victim, attacker.peer_id(), RejectReason::Decode);
    let mut stream = attacker
        .open_stream(victim.peer_id(), CBOR_PROTOCOL)
        .await
        .unwrap();
    // A valid signed message, framed in protobuf: the node decodes this
    // protocol with CBOR, so it is malformed here.
    let message = attacker
        .sign(
            attacker
                .message("chat".parse().unwrap())
                .payload(&b"protobuf"[..]),
        )
        .unwrap();
    let mut frame = BytesMut::new();
    encode_message_frame(&ProtobufCodec, &message, &mut frame).unwrap();
    stream.write_all(&frame).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::timeout(WAIT, refused).await.unwrap();
    let stats = victim.peer_message_stats(&attacker.peer_id());
    assert_eq!(
        stats.rejected.get(&RejectReason::Decode),
        Some(&1),
        "{stats:?}"
    );

    // The codec's own error is the typed source of the decode error.
    let error = CborCodec
        .decode_message(Bytes::from_static(b"\x65hello"))
        .unwrap_err();
    let CodecError::Decode(DecodeError::Custom { codec, source }) = &error else {
        panic!("expected the codec's own error, got {error:?}");
    };
    assert_eq!(*codec, "cbor");
    assert!(
        source
            .downcast_ref::<ciborium::de::Error<std::io::Error>>()
            .is_some(),
        "{source:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codec_cannot_take_a_protocol_the_node_already_speaks() {
    let refused = tcp_builder(DhtModeSetting::Client)
        .native_codec(TYPESCRIPT_PROTOCOL, Arc::new(CborCodec))
        .build();
    assert!(
        matches!(&refused, Err(NodeError::ProtocolInUse(p)) if *p == TYPESCRIPT_PROTOCOL),
        "{:?}",
        refused.err()
    );
    let dht = p2p_core::DhtConfig::default().protocol;
    let refused = tcp_builder(DhtModeSetting::Client)
        .native_codec(dht.clone(), Arc::new(CborCodec))
        .build();
    assert!(
        matches!(&refused, Err(NodeError::ProtocolInUse(p)) if *p == dht),
        "{:?}",
        refused.err()
    );
}
