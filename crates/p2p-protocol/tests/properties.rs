//! Property tests of the protocol: exact codec round trips for messages and
//! records, framing under arbitrary chunking, no panics on arbitrary input, and
//! that every single-field change to a signed message breaks its signature and
//! (for signed fields) its id.
// clippy.toml allows unwrap/indexing in `#[test]` fns; the strategies and helpers
// below fail the same way on a broken fixture.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;
use common::{encode_message, encode_record};

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use libp2p_identity::{Keypair, PeerId};
use p2p_protocol::{
    Codec, FrameDecoder, Inbound, InboundPolicy, JsonCodec, Message, MessageBuilder, ProtobufCodec,
    ResourceRecord, encode_message_frame, verify,
};
use p2p_types::{MessageType, ProtocolName, RejectReason, ResourceId, ResourceKey, ResourceType};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use serde_json::Value;

const NOW_MS: u64 = 1_764_460_000_000;

/// `cases` cases (`None`: the default 256, or `PROPTEST_CASES`), with failures
/// saved beside this file in `properties.proptest-regressions`.
fn config(cases: Option<u32>) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: cases.unwrap_or(default.cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..default
    }
}

/// Signing keys, generated once (key generation and signing are slow in debug).
static KEYS: LazyLock<Vec<Keypair>> = LazyLock::new(|| {
    vec![
        Keypair::ed25519_from_bytes([1; 32]).unwrap(),
        Keypair::ed25519_from_bytes([2; 32]).unwrap(),
        Keypair::generate_secp256k1(),
        Keypair::generate_secp256k1(),
    ]
});

static KEY_PEERS: LazyLock<Vec<PeerId>> =
    LazyLock::new(|| KEYS.iter().map(|k| k.public().to_peer_id()).collect());

fn kind_chat() -> MessageType {
    "chat".parse().unwrap()
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Any PeerId: one of the keys' (ed25519, secp256k1), a sha256 one, or an
/// identity one with an arbitrary digest.
fn peer_id() -> impl Strategy<Value = PeerId> {
    prop_oneof![
        (0..KEY_PEERS.len()).prop_map(|i| KEY_PEERS[i]),
        any::<[u8; 32]>().prop_map(|digest| {
            PeerId::from_bytes(&[&[0x12, 0x20][..], &digest[..]].concat()).unwrap()
        }),
        vec(any::<u8>(), 0..=42).prop_map(|digest| {
            let mut bytes = vec![0x00, u8::try_from(digest.len()).unwrap()];
            bytes.extend_from_slice(&digest);
            PeerId::from_bytes(&bytes).unwrap()
        }),
    ]
}

fn message_type() -> impl Strategy<Value = MessageType> {
    "[A-Za-z0-9._:-]{1,64}".prop_map(|s| MessageType::new(s).unwrap())
}

fn protocol_name() -> impl Strategy<Value = ProtocolName> {
    "[A-Za-z0-9._:-]{1,64}".prop_map(|s| ProtocolName::new(s).unwrap())
}

fn bytes(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), len).prop_map(Bytes::from)
}

/// A small arbitrary JSON value.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::from),
            btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A payload the JSON format carries exactly: compact JSON text, or empty.
///
/// A top-level `null` is left out on purpose: the JSON codec reads `null` as the
/// empty payload, so a payload of the four bytes `null` comes back empty.
fn json_text() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        1 => Just(Bytes::new()),
        6 => json_value()
            .prop_filter("top-level null reads back empty", |v| !v.is_null())
            .prop_map(|v| Bytes::from(serde_json::to_vec(&v).unwrap())),
    ]
}

/// A nonce the JSON format carries exactly: non-empty text.
fn text_nonce() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        vec(0u8..0x80, 1..=64).prop_map(Bytes::from),
        "\\PC{1,16}".prop_map(Bytes::from),
    ]
}

/// Any message the protobuf format carries: every field arbitrary.
fn any_message() -> impl Strategy<Value = Message> {
    (
        message_type(),
        peer_id(),
        proptest::option::of(peer_id()),
        proptest::option::of(protocol_name()),
        bytes(0..=256),
        any::<u64>(),
        bytes(0..=64),
        proptest::option::of(bytes(1..=128)),
        proptest::option::of(bytes(1..=64)),
    )
        .prop_map(
            |(kind, from, to, protocol, payload, timestamp_ms, nonce, signature, public_key)| {
                Message {
                    kind,
                    from,
                    to,
                    protocol,
                    payload,
                    timestamp_ms,
                    nonce,
                    sequence: None,
                    signature,
                    public_key,
                }
            },
        )
        .prop_flat_map(|m| {
            proptest::option::of(1..=u64::MAX).prop_map(move |sequence| Message {
                sequence,
                ..m.clone()
            })
        })
}

/// Any message the JSON format carries: JSON payload, text nonce, no carried key.
fn json_message() -> impl Strategy<Value = Message> {
    (any_message(), json_text(), text_nonce()).prop_map(|(mut m, payload, nonce)| {
        m.payload = payload;
        m.nonce = nonce;
        m.public_key = None;
        m.sequence = None; // the TypeScript format has no sequence number
        m
    })
}

fn resource_key() -> impl Strategy<Value = ResourceKey> {
    ("[A-Za-z0-9._-]{1,64}", "[!-.0-9;-~]{1,128}").prop_map(|(t, id)| {
        ResourceKey::new(ResourceType::new(t).unwrap(), ResourceId::new(id).unwrap())
    })
}

fn any_record() -> impl Strategy<Value = ResourceRecord> {
    (
        resource_key(),
        peer_id(),
        bytes(0..=256),
        any::<u64>(),
        proptest::option::of(1..=u64::MAX),
        proptest::option::of(bytes(1..=128)),
        proptest::option::of(bytes(1..=64)),
    )
        .prop_map(
            |(key, creator, data, created_ms, expires_ms, signature, public_key)| ResourceRecord {
                key,
                creator,
                data,
                created_ms,
                expires_ms,
                signature,
                public_key,
            },
        )
}

fn json_record() -> impl Strategy<Value = ResourceRecord> {
    (any_record(), json_text()).prop_map(|(mut r, data)| {
        r.data = data;
        r.public_key = None;
        r
    })
}

const JSON_KEYS: [&str; 14] = [
    "type",
    "from",
    "to",
    "payload",
    "timestamp",
    "messageId",
    "signature",
    "protocol",
    "resourceId",
    "resourceType",
    "creatorPeerId",
    "data",
    "createdAt",
    "expiresAt",
];

/// A value for a JSON field: arbitrary, or of a type some field expects.
fn json_field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        peer_id().prop_map(|p| Value::from(p.to_base58())),
        "[A-Za-z0-9._:-]{0,8}".prop_map(Value::from),
        (NOW_MS - 1_000..NOW_MS + 1_000).prop_map(Value::from),
        vec(any::<u8>(), 0..8)
            .prop_map(|data| serde_json::json!({ "type": "Buffer", "data": data })),
    ]
}

/// JSON objects shaped like messages and records: free-form objects over the
/// known keys (and a few unknown ones), and valid encodings with up to three
/// fields removed or replaced.
fn json_object() -> impl Strategy<Value = Vec<u8>> {
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            (0..JSON_KEYS.len()).prop_map(|i| JSON_KEYS[i].to_owned()),
            "[a-z]{1,6}",
        ]
    }
    fn edits() -> impl Strategy<Value = Vec<(String, Option<Value>)>> {
        vec((key(), proptest::option::of(json_field_value())), 0..=3)
    }
    let edit = |wire: Bytes, edits: Vec<(String, Option<Value>)>| {
        let Value::Object(mut object) = serde_json::from_slice(&wire).unwrap() else {
            unreachable!("the codec writes an object")
        };
        for (key, value) in edits {
            match value {
                Some(value) => object.insert(key, value),
                None => object.remove(&key),
            };
        }
        serde_json::to_vec(&Value::Object(object)).unwrap()
    };
    prop_oneof![
        btree_map(key(), json_field_value(), 0..10)
            .prop_map(|m| { serde_json::to_vec(&Value::Object(m.into_iter().collect())).unwrap() }),
        (json_message(), edits()).prop_map(move |(m, e)| edit(encode_message(&JsonCodec, &m), e)),
        (json_record(), edits()).prop_map(move |(r, e)| edit(encode_record(&JsonCodec, &r), e)),
    ]
}

/// How a single field of a signed message is changed.
#[derive(Debug, Clone)]
enum Mutation {
    /// Another type (a fixed other one if the same was drawn).
    Kind(MessageType),
    /// Addressed to this peer, or unaddressed if it already was to this peer.
    To(PeerId),
    /// Routed to this protocol, or unrouted if it already was to this one.
    Protocol(ProtocolName),
    PayloadFlip(Index, u8),
    Timestamp(u64),
    NonceFlip(Index, u8),
    From(PeerId),
    SignatureFlip(Index, u8),
    /// Another sequence number, or none (or one if there was none).
    Sequence(u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        message_type().prop_map(Mutation::Kind),
        peer_id().prop_map(Mutation::To),
        protocol_name().prop_map(Mutation::Protocol),
        (any::<Index>(), 1..=u8::MAX).prop_map(|(i, x)| Mutation::PayloadFlip(i, x)),
        (1..=u64::MAX).prop_map(Mutation::Timestamp),
        (any::<Index>(), 1..=u8::MAX).prop_map(|(i, x)| Mutation::NonceFlip(i, x)),
        peer_id().prop_map(Mutation::From),
        (any::<Index>(), 1..=u8::MAX).prop_map(|(i, x)| Mutation::SignatureFlip(i, x)),
        (1..=u64::MAX).prop_map(Mutation::Sequence),
    ]
}

fn flip(bytes: &Bytes, at: &Index, mask: u8) -> Bytes {
    let mut out = bytes.to_vec();
    out[at.index(bytes.len())] ^= mask;
    Bytes::from(out)
}

/// Applies `mutation` to a signed message; every mutation changes exactly one field.
fn mutate(message: &Message, mutation: &Mutation) -> Message {
    fn other<T: PartialEq + Clone>(current: &T, drawn: &T, fallback: T, fallback2: T) -> T {
        match (drawn != current, fallback != *current) {
            (true, _) => drawn.clone(),
            (false, true) => fallback,
            (false, false) => fallback2,
        }
    }
    let mut m = message.clone();
    match mutation {
        Mutation::Kind(kind) => {
            m.kind = other(&m.kind, kind, "x".parse().unwrap(), "y".parse().unwrap());
        }
        Mutation::To(to) => m.to = (m.to != Some(*to)).then_some(*to),
        Mutation::Protocol(p) => m.protocol = (m.protocol.as_ref() != Some(p)).then(|| p.clone()),
        Mutation::PayloadFlip(at, mask) => m.payload = flip(&m.payload, at, *mask),
        Mutation::Timestamp(delta) => m.timestamp_ms = m.timestamp_ms.wrapping_add(*delta),
        Mutation::NonceFlip(at, mask) => m.nonce = flip(&m.nonce, at, *mask),
        Mutation::From(from) => m.from = other(&m.from, from, KEY_PEERS[0], KEY_PEERS[1]),
        Mutation::SignatureFlip(at, mask) => {
            m.signature = Some(flip(m.signature.as_ref().unwrap(), at, *mask));
        }
        Mutation::Sequence(n) => {
            m.sequence = match m.sequence {
                Some(current) if current == *n => None,
                None => Some(*n),
                Some(_) => Some(*n),
            };
        }
    }
    m
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Splits `wire` at the given cut points, feeds the pieces one by one to one
/// decoder over one buffer, and returns every frame it yields.
fn decode_in_chunks(wire: &[u8], cuts: &[Index]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    points.dedup();

    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for pair in points.windows(2) {
        buf.extend_from_slice(&wire[pair[0]..pair[1]]);
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    decoder.finish(&buf).unwrap();
    frames
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(None))]

    #[test]
    fn every_message_round_trips_exactly_through_protobuf(message in any_message()) {
        let wire = encode_message(&ProtobufCodec, &message);
        let decoded = ProtobufCodec.decode_message(wire).unwrap();
        prop_assert_eq!(&decoded, &message);
        prop_assert_eq!(decoded.id(), message.id());
    }

    #[test]
    fn json_compatible_message_round_trips_exactly_through_both_codecs(message in json_message()) {
        let wire = encode_message(&JsonCodec, &message);
        let decoded = JsonCodec.decode_message(wire.clone()).unwrap();
        prop_assert_eq!(&decoded, &message);
        prop_assert_eq!(decoded.id(), message.id());
        // Re-encoding what was decoded gives the very same bytes.
        prop_assert_eq!(encode_message(&JsonCodec, &decoded), wire);

        let decoded = ProtobufCodec
            .decode_message(encode_message(&ProtobufCodec, &message))
            .unwrap();
        prop_assert_eq!(&decoded, &message);
    }

    #[test]
    fn every_record_round_trips_exactly_through_protobuf(record in any_record()) {
        let decoded = ProtobufCodec
            .decode_record(encode_record(&ProtobufCodec, &record))
            .unwrap();
        prop_assert_eq!(decoded, record);
    }

    #[test]
    fn json_compatible_record_round_trips_exactly_through_both_codecs(record in json_record()) {
        let wire = encode_record(&JsonCodec, &record);
        let decoded = JsonCodec.decode_record(wire.clone()).unwrap();
        prop_assert_eq!(&decoded, &record);
        prop_assert_eq!(encode_record(&JsonCodec, &decoded), wire);

        let decoded = ProtobufCodec
            .decode_record(encode_record(&ProtobufCodec, &record))
            .unwrap();
        prop_assert_eq!(decoded, record);
    }

    // -----------------------------------------------------------------------
    // Framing
    // -----------------------------------------------------------------------

    #[test]
    fn framed_stream_split_into_arbitrary_chunks_yields_the_same_messages(
        messages in vec(json_message(), 0..8),
        cuts in vec(any::<Index>(), 0..24),
        json in any::<bool>(),
    ) {
        let codec: &dyn Codec = if json { &JsonCodec } else { &ProtobufCodec };
        let mut wire = BytesMut::new();
        for m in &messages {
            encode_message_frame(codec, m, &mut wire).unwrap();
        }
        let bodies: Vec<Bytes> = messages.iter().map(|m| encode_message(codec, m)).collect();

        let frames = decode_in_chunks(&wire, &cuts);
        prop_assert_eq!(&frames, &bodies);
        let decoded: Vec<Message> = frames
            .into_iter()
            .map(|f| codec.decode_message(f).unwrap())
            .collect();
        prop_assert_eq!(decoded, messages);
    }

    // -----------------------------------------------------------------------
    // Arbitrary input never panics
    // -----------------------------------------------------------------------

    #[test]
    fn frame_decoder_on_arbitrary_bytes_returns_ok_or_err(
        input in vec(any::<u8>(), 0..512),
        max in 0usize..1_024,
    ) {
        let mut decoder = FrameDecoder::new(max);
        let mut buf = BytesMut::from(&input[..]);
        let mut consumed = 0;
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    prop_assert!(frame.len() <= max);
                    prop_assert!(buf.len() < before, "a frame consumes input");
                    consumed += before - buf.len();
                }
                Ok(None) => {
                    prop_assert_eq!(buf.len(), before, "an incomplete frame is left in place");
                    break;
                }
                Err(_) => break,
            }
        }
        prop_assert!(consumed <= input.len());
        let _ = decoder.finish(&buf);
    }

    #[test]
    fn codecs_on_arbitrary_bytes_return_ok_or_err(input in vec(any::<u8>(), 0..512)) {
        let input = Bytes::from(input);
        let _ = ProtobufCodec.decode_message(input.clone());
        let _ = ProtobufCodec.decode_record(input.clone());
        let _ = JsonCodec.decode_message(input.clone());
        let _ = JsonCodec.decode_record(input);
    }

    #[test]
    fn json_codec_on_arbitrary_message_and_record_shaped_objects_returns_ok_or_err(
        input in json_object(),
    ) {
        let input = Bytes::from(input);
        if let Ok(message) = JsonCodec.decode_message(input.clone()) {
            // Whatever decodes re-encodes (a JSON payload, a text nonce, no key).
            prop_assert!(JsonCodec.encode_message(&message, &mut BytesMut::new()).is_ok());
        }
        if let Ok(record) = JsonCodec.decode_record(input.clone()) {
            prop_assert!(JsonCodec.encode_record(&record, &mut BytesMut::new()).is_ok());
        }
        let mut inbound = Inbound::new(InboundPolicy::default());
        let _ = inbound.accept(&JsonCodec, input, &KEY_PEERS[0], NOW_MS);
    }

    #[test]
    fn inbound_on_arbitrary_bytes_returns_ok_or_err(
        input in vec(any::<u8>(), 0..512),
        remote in peer_id(),
        now_ms in any::<u64>(),
    ) {
        let input = Bytes::from(input);
        let mut inbound = Inbound::new(InboundPolicy::default());
        let _ = inbound.accept(&ProtobufCodec, input.clone(), &remote, now_ms);
        let _ = inbound.accept(&JsonCodec, input.clone(), &remote, now_ms);
        let _ = inbound.accept_with(&ProtobufCodec, input, &remote, now_ms, |_| false);
    }

    #[test]
    fn inbound_on_arbitrary_well_formed_messages_returns_ok_or_err(
        message in any_message(),
        remote in peer_id(),
        now_ms in any::<u64>(),
    ) {
        let mut inbound = Inbound::new(InboundPolicy::default());
        let wire = encode_message(&ProtobufCodec, &message);
        let _ = inbound.accept_with(&ProtobufCodec, wire, &remote, now_ms, |_| false);
    }
}

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

/// An unsigned message from one of [`KEYS`] (by index), with a non-empty payload.
fn signable_message() -> impl Strategy<Value = (usize, Message)> {
    (
        0..KEYS.len(),
        message_type(),
        proptest::option::of(peer_id()),
        proptest::option::of(protocol_name()),
        bytes(1..=128),
        any::<u64>(),
        bytes(1..=32),
        any::<u64>(),
    )
        .prop_map(
            |(signer, kind, to, protocol, payload, timestamp, nonce, sequence)| {
                // Half the messages numbered (0 leaves one unnumbered).
                let sequence = if sequence % 2 == 0 { 0 } else { sequence };
                let mut builder = MessageBuilder::new(kind, KEY_PEERS[signer])
                    .payload(payload)
                    .timestamp_ms(timestamp)
                    .nonce(nonce)
                    .sequence(sequence);
                if let Some(to) = to {
                    builder = builder.to(to);
                }
                if let Some(protocol) = protocol {
                    builder = builder.protocol(protocol);
                }
                (signer, builder.build())
            },
        )
}

proptest! {
    // Signing is slow in debug builds: 64 cases keep this file well under 20 s.
    #![proptest_config(config(Some(64)))]

    #[test]
    fn any_single_field_change_to_a_signed_message_fails_verification(
        (signer, unsigned) in signable_message(),
        mutation in mutation(),
    ) {
        let key = &KEYS[signer];
        let mut signed = unsigned;
        p2p_protocol::sign(&mut signed, key).unwrap();
        prop_assert_eq!(verify(&signed), Ok(()));

        let mutated = mutate(&signed, &mutation);
        prop_assert_ne!(&mutated, &signed, "{:?} changed nothing", mutation);
        prop_assert!(verify(&mutated).is_err(), "{:?} still verifies", mutation);
        if matches!(mutation, Mutation::SignatureFlip(..)) {
            prop_assert_eq!(mutated.id(), signed.id(), "the id does not cover the signature");
        } else {
            prop_assert_ne!(mutated.id(), signed.id(), "{:?} kept the id", mutation);
        }
    }

    #[test]
    fn signed_json_compatible_message_verifies_after_both_codecs(
        signer in 0..KEYS.len(),
        message in json_message(),
    ) {
        let key = &KEYS[signer];
        let mut message = message;
        message.from = KEY_PEERS[signer];
        message.signature = None;
        p2p_protocol::sign(&mut message, key).unwrap();
        for codec in [&JsonCodec as &dyn Codec, &ProtobufCodec] {
            let decoded = codec.decode_message(encode_message(codec, &message)).unwrap();
            prop_assert_eq!(verify(&decoded), Ok(()));
            prop_assert_eq!(&decoded, &message);
        }
    }
}

/// One message sent into a shared [`Inbound`]: signed by `KEYS[signer]`, claiming
/// to be from `KEY_PEERS[claimed]` (and sent over that peer's connection),
/// possibly tampered with after signing, or a resend of an earlier message.
#[derive(Debug, Clone)]
struct Step {
    signer: usize,
    claimed: usize,
    tampered: bool,
    json: bool,
    resend: Option<Index>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..KEYS.len(),
        0..KEYS.len(),
        prop::bool::weighted(0.25),
        any::<bool>(),
        proptest::option::weighted(0.25, any::<Index>()),
    )
        .prop_map(|(signer, claimed, tampered, json, resend)| Step {
            signer,
            claimed,
            tampered,
            json,
            resend,
        })
}

proptest! {
    #![proptest_config(config(Some(32)))]

    #[test]
    fn shared_inbound_accepts_exactly_the_genuine_first_copies(steps in vec(step(), 1..8)) {
        // One `Inbound` for the whole sequence, so its caches (seen ids, signer
        // keys) carry over between messages and peers.
        let mut inbound = Inbound::new(InboundPolicy::default());
        // Every distinct message sent so far, whether it is genuine, and whether
        // it was accepted.
        let mut sent: Vec<(Message, bool, bool)> = Vec::new();
        for (n, step) in steps.iter().enumerate() {
            let codec: &dyn Codec = if step.json { &JsonCodec } else { &ProtobufCodec };
            let resent = step.resend.as_ref().filter(|_| !sent.is_empty());
            let (message, genuine) = match resent {
                Some(at) => {
                    let (m, genuine, _) = &sent[at.index(sent.len())];
                    (m.clone(), *genuine)
                }
                None => {
                    let mut m = MessageBuilder::new(kind_chat(), KEY_PEERS[step.signer])
                        .payload(format!("{{\"n\":{n}}}"))
                        .timestamp_ms(NOW_MS)
                        .nonce(format!("step-{n}"))
                        .sign(&KEYS[step.signer])
                        .unwrap();
                    m.from = KEY_PEERS[step.claimed];
                    if step.tampered {
                        m.payload = Bytes::from(format!("{{\"n\":{}}}", n + 100));
                    }
                    let genuine = step.claimed == step.signer && !step.tampered;
                    prop_assert_eq!(verify(&m).is_ok(), genuine);
                    (m, genuine)
                }
            };
            let seen = sent.iter().any(|(m, _, accepted)| *accepted && *m == message);

            let wire = encode_message(codec, &message);
            let result = inbound.accept(codec, wire, &message.from, NOW_MS);
            match (genuine, seen) {
                (true, false) => {
                    let accepted = result.unwrap();
                    prop_assert!(accepted.verified);
                    prop_assert_eq!(accepted.id, message.id());
                    prop_assert_eq!(&accepted.message, &message);
                }
                (true, true) => {
                    prop_assert_eq!(result.unwrap_err().reason(), RejectReason::Duplicate);
                }
                (false, _) => {
                    prop_assert_eq!(result.unwrap_err().reason(), RejectReason::BadSignature);
                }
            }
            if resent.is_none() {
                sent.push((message, genuine, genuine));
            }
        }
    }
}
