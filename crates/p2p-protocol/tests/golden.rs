//! Golden vectors: the wire format pinned byte for byte.
//!
//! Every value here is built through the public API from fixed inputs (the
//! RFC 8032 test keys, a fixed timestamp, nonce, payload and sequence number:
//! nothing random, nothing from the clock) and compared with the files in
//! `tests/golden/`, one file per format: the canonical signing bytes, the
//! message id, the signatures, the framed protobuf `Envelope`, the TypeScript
//! JSON message, and the signed resource record in its native (protobuf) and
//! TypeScript JSON forms. A change to any of them fails here with the bytes that
//! moved. When the change is deliberate, regenerate the files with
//! `LOTUS_UPDATE_GOLDEN=1 cargo test -p p2p-protocol --test golden` and commit
//! them, so the git diff shows the new wire bytes.
//!
//! The `*_sanity` tests check, independently of the files, that the pinned
//! values are right: the keys are the RFC 8032 ones, the canonical bytes follow
//! the layout documented in `canonical.rs`, the id is SHA-256 of those bytes,
//! the signatures verify, and every encoding decodes back to the same fields.
// clippy.toml allows unwrap/expect/indexing in `#[test]` fns; the fixture and
// file helpers below fail the same way on a broken fixture or golden file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
use common::{encode_message, encode_record};

use std::fmt::Write as _;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use libp2p_identity::{Keypair, PeerId};
use p2p_protocol::{
    Codec, FrameDecoder, Inbound, InboundPolicy, JsonCodec, MESSAGE_DOMAIN, Message,
    MessageBuilder, ProtobufCodec, ProtocolLimits, RECORD_DOMAIN, ResourceRecord, Signable,
    encode_message_frame, proto, verify,
};
use p2p_types::{ResourceId, ResourceKey, ResourceType};
use prost::Message as _;
use sha2::{Digest, Sha256};

/// Set to rewrite the golden files from what the code produces now.
const UPDATE_ENV: &str = "LOTUS_UPDATE_GOLDEN";

// --- The fixed inputs -------------------------------------------------------

/// Sender key: the secret of RFC 8032 §7.1 TEST 1.
const SENDER_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// Its public key, as RFC 8032 gives it.
const SENDER_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/// RFC 8032 TEST 1's signature of the empty message.
const SENDER_EMPTY_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
/// Recipient key: the secret of RFC 8032 §7.1 TEST 2.
const RECIPIENT_SECRET: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
/// Its public key, as RFC 8032 gives it.
const RECIPIENT_PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

const MESSAGE_TYPE: &str = "musig2-nonce";
const PROTOCOL: &str = "musig2";
const PAYLOAD: &str = r#"{"round":1,"session":"s-42"}"#;
/// 2025-11-30T00:26:40Z.
const TIMESTAMP_MS: u64 = 1_764_460_000_000;
/// A nonce in the TypeScript message id format.
const NONCE: &str = "mik3r5a8-1f2e3d4c5b6a7988";
const SEQUENCE: u64 = 7;

const RECORD_TYPE: &str = "musig2-session";
const RECORD_ID: &str = "s-42";
const RECORD_DATA: &str = r#"{"signers":3}"#;
const CREATED_MS: u64 = TIMESTAMP_MS;
/// Ten minutes after creation.
const EXPIRES_MS: u64 = CREATED_MS + 600_000;

fn key(secret_hex: &str) -> Keypair {
    Keypair::ed25519_from_bytes(hex::decode(secret_hex).unwrap()).unwrap()
}

fn sender() -> Keypair {
    key(SENDER_SECRET)
}

fn recipient() -> PeerId {
    key(RECIPIENT_SECRET).public().to_peer_id()
}

fn builder() -> MessageBuilder {
    let from = sender().public().to_peer_id();
    MessageBuilder::new(MESSAGE_TYPE.parse().unwrap(), from)
        .to(recipient())
        .protocol(PROTOCOL.parse().unwrap())
        .payload(PAYLOAD.as_bytes())
        .timestamp_ms(TIMESTAMP_MS)
        .nonce(NONCE.as_bytes())
}

/// The signed message without a sequence number.
fn message() -> Message {
    builder().sign(&sender()).unwrap()
}

/// The same message numbered [`SEQUENCE`].
fn sequenced() -> Message {
    builder().sequence(SEQUENCE).sign(&sender()).unwrap()
}

fn resource_key() -> ResourceKey {
    ResourceKey::new(
        ResourceType::new(RECORD_TYPE).unwrap(),
        ResourceId::new(RECORD_ID).unwrap(),
    )
}

/// The signed resource record.
fn record() -> ResourceRecord {
    let creator = sender().public().to_peer_id();
    ResourceRecord::new(
        resource_key(),
        creator,
        RECORD_DATA.as_bytes(),
        CREATED_MS,
        Some(EXPIRES_MS),
    )
    .sign(&sender())
    .unwrap()
}

fn frame(message: &Message) -> Vec<u8> {
    let mut wire = BytesMut::new();
    encode_message_frame(&ProtobufCodec, message, &mut wire).unwrap();
    wire.to_vec()
}

/// The fixed inputs of the message vectors, as comment lines for the files.
fn message_inputs() -> Vec<String> {
    vec![
        "Fixed inputs (tests/golden.rs):".into(),
        "  sender key     ed25519, secret = RFC 8032 7.1 TEST 1".into(),
        format!("                 {SENDER_SECRET}"),
        format!("  from           {}", sender().public().to_peer_id()),
        "  to             ed25519, secret = RFC 8032 7.1 TEST 2".into(),
        format!("                 {}", recipient()),
        format!("  type           {MESSAGE_TYPE}"),
        format!("  protocol       {PROTOCOL}"),
        format!("  payload        {PAYLOAD}"),
        format!("  timestamp_ms   {TIMESTAMP_MS}"),
        format!("  nonce          {NONCE}"),
        format!("  sequence       none in [message], {SEQUENCE} in [message_sequenced]"),
    ]
}

/// The fixed inputs of the record vectors, as comment lines for the files.
fn record_inputs() -> Vec<String> {
    vec![
        "Fixed record inputs (tests/golden.rs):".into(),
        "  creator key    ed25519, secret = RFC 8032 7.1 TEST 1 (the message sender)".into(),
        format!("                 {}", sender().public().to_peer_id()),
        format!("  resource       {RECORD_TYPE} / {RECORD_ID}"),
        format!("  data           {RECORD_DATA}"),
        format!("  created_ms     {CREATED_MS}"),
        format!("  expires_ms     {EXPIRES_MS}"),
    ]
}

// --- Golden files -----------------------------------------------------------

/// How a vector is written in its file.
#[derive(Clone, Copy)]
enum Form {
    /// Hex, 16 bytes a line; with `ascii`, each line ends in a `#` comment
    /// showing the printable bytes.
    Hex { ascii: bool },
    /// Literal UTF-8 text, wrapped after commas; the lines are joined with
    /// nothing between them.
    Text,
}

struct Vector {
    name: &'static str,
    about: &'static str,
    form: Form,
    value: Vec<u8>,
}

struct Golden {
    file: &'static str,
    about: Vec<String>,
    vectors: Vec<Vector>,
}

fn golden_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(file)
}

fn is_header(line: &str) -> bool {
    line.len() > 2
        && line.starts_with('[')
        && line.ends_with(']')
        && line[1..line.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn hex_lines(bytes: &[u8], ascii: bool) -> Vec<String> {
    bytes
        .chunks(16)
        .map(|chunk| {
            let groups: Vec<String> = chunk.chunks(4).map(hex::encode).collect();
            let hex = groups.join(" ");
            if ascii {
                let shown: String = chunk
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() {
                            char::from(b)
                        } else {
                            '.'
                        }
                    })
                    .collect();
                format!("{hex:<35}  # {shown}")
            } else {
                hex
            }
        })
        .collect()
}

fn wrap_text(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        line.push(c);
        // Break only where the next line starts with a visible character that
        // cannot be mistaken for a comment, and no line ends in whitespace.
        let next_ok = chars
            .peek()
            .is_some_and(|&n| !n.is_whitespace() && n != '#' && n != '[');
        if c == ',' && line.len() >= 64 && next_ok {
            lines.push(std::mem::take(&mut line));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn text_lines(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).expect("a text vector must be UTF-8");
    let lines = wrap_text(text);
    for line in &lines {
        assert!(
            !line.starts_with('#') && !is_header(line) && line.trim() == line,
            "text {text:?} cannot be stored verbatim in a golden file (line {line:?})"
        );
    }
    lines
}

fn render(golden: &Golden) -> String {
    let mut out = String::new();
    for line in &golden.about {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            writeln!(out, "# {line}").unwrap();
        }
    }
    out.push_str(
        "#\n\
         # Generated by tests/golden.rs; the test fails when the code produces other\n\
         # bytes. Only a deliberate wire-format change may update this file:\n\
         #   LOTUS_UPDATE_GOLDEN=1 cargo test -p p2p-protocol --test golden\n",
    );
    for vector in &golden.vectors {
        writeln!(out, "\n[{}]", vector.name).unwrap();
        writeln!(out, "# {} ({} bytes)", vector.about, vector.value.len()).unwrap();
        let lines = match vector.form {
            Form::Hex { ascii } => hex_lines(&vector.value, ascii),
            Form::Text => text_lines(&vector.value),
        };
        for line in lines {
            writeln!(out, "{line}").unwrap();
        }
    }
    out
}

/// The sections of a golden file: name and content lines (comment lines and
/// blank lines dropped).
fn parse(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if is_header(line) {
            sections.push((line[1..line.len() - 1].to_owned(), Vec::new()));
            continue;
        }
        match sections.last_mut() {
            Some((_, lines)) => lines.push(line.to_owned()),
            None => return Err(format!("line {}: content before any [section]", n + 1)),
        }
    }
    Ok(sections)
}

fn decode_section(form: Form, lines: &[String]) -> Result<Vec<u8>, String> {
    match form {
        Form::Hex { .. } => {
            let digits: String = lines
                .iter()
                .map(|l| l.split('#').next().unwrap_or_default())
                .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
                .collect();
            hex::decode(&digits).map_err(|e| format!("unreadable hex: {e}"))
        }
        Form::Text => Ok(lines.concat().into_bytes()),
    }
}

fn describe_mismatch(vector: &Vector, stored: &[u8]) -> String {
    let produced = &vector.value;
    let first = stored
        .iter()
        .zip(produced)
        .position(|(a, b)| a != b)
        .unwrap_or(stored.len().min(produced.len()));
    let mut out = format!(
        "  [{}] {}: the file has {} bytes, the code produces {}; first difference at byte {first}\n",
        vector.name,
        vector.about,
        stored.len(),
        produced.len()
    );
    let (old, new) = match vector.form {
        Form::Hex { ascii } => (hex_lines(stored, ascii), hex_lines(produced, ascii)),
        Form::Text => (
            wrap_text(&String::from_utf8_lossy(stored)),
            wrap_text(&String::from_utf8_lossy(produced)),
        ),
    };
    for i in 0..old.len().max(new.len()) {
        match (old.get(i), new.get(i)) {
            (Some(o), Some(n)) if o == n => writeln!(out, "        {o}").unwrap(),
            (o, n) => {
                if let Some(o) = o {
                    writeln!(out, "    - {o}").unwrap();
                }
                if let Some(n) = n {
                    writeln!(out, "    + {n}").unwrap();
                }
            }
        }
    }
    out
}

fn updating() -> bool {
    std::env::var_os(UPDATE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Compares `golden` with its file, or rewrites the file when updating.
fn check(golden: &Golden) {
    let path = golden_path(golden.file);
    let rendered = render(golden);
    if updating() {
        if std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str()) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &rendered).unwrap();
            eprintln!(
                "{UPDATE_ENV}: rewrote {} (review it in the git diff)",
                path.display()
            );
        }
        return;
    }
    let update_hint = format!(
        "If the change is deliberate (a new wire version, agreed with every\n\
         implementation that speaks it, including the TypeScript nodes), regenerate\n\
         the files and commit them, so the git diff shows the new bytes:\n\
         \n    {UPDATE_ENV}=1 cargo test -p p2p-protocol --test golden\n\
         \nOtherwise the code broke wire compatibility: fix the code, not the file."
    );
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!(
            "golden file {} is unreadable ({e}).\n{update_hint}",
            path.display()
        ),
    };
    let sections = match parse(&text) {
        Ok(sections) => sections,
        Err(e) => panic!("golden file {} is malformed: {e}", path.display()),
    };
    let mut problems = String::new();
    for vector in &golden.vectors {
        let found: Vec<_> = sections
            .iter()
            .filter(|(name, _)| name == vector.name)
            .collect();
        let [(_, lines)] = found.as_slice() else {
            writeln!(
                problems,
                "  [{}] appears {} times in the file, expected once",
                vector.name,
                found.len()
            )
            .unwrap();
            continue;
        };
        match decode_section(vector.form, lines) {
            Ok(stored) if stored == vector.value => {}
            Ok(stored) => problems.push_str(&describe_mismatch(vector, &stored)),
            Err(e) => writeln!(problems, "  [{}] {e}", vector.name).unwrap(),
        }
    }
    for (name, _) in &sections {
        if !golden.vectors.iter().any(|v| v.name == name) {
            writeln!(
                problems,
                "  [{name}] is in the file but the test no longer produces it"
            )
            .unwrap();
        }
    }
    assert!(
        problems.is_empty(),
        "\nTHE WIRE FORMAT CHANGED: {} no longer matches what the code produces.\n\
         (- is the pinned value in the file, + what the code produces now)\n\n\
         {problems}\n{update_hint}\n",
        path.display()
    );
}

// --- The golden tests -------------------------------------------------------

#[test]
fn canonical_bytes() {
    let mut about = vec![
        "Canonical signing bytes: what signatures and message ids cover.".to_owned(),
        "Layout (src/canonical.rs): domain tag, then per field a u32 big-endian".to_owned(),
        "length and the bytes, or a u64 big-endian integer.".to_owned(),
        String::new(),
    ];
    about.extend(message_inputs());
    about.push(String::new());
    about.extend(record_inputs());
    check(&Golden {
        file: "canonical_bytes.txt",
        about,
        vectors: vec![
            Vector {
                name: "message",
                about: "message, unnumbered",
                form: Form::Hex { ascii: true },
                value: message().signing_bytes(),
            },
            Vector {
                name: "message_sequenced",
                about: "message with the sequence number appended",
                form: Form::Hex { ascii: true },
                value: sequenced().signing_bytes(),
            },
            Vector {
                name: "record",
                about: "resource record",
                form: Form::Hex { ascii: true },
                value: record().signing_bytes(),
            },
        ],
    });
}

#[test]
fn message_id() {
    let mut about = vec![
        "Message ids: SHA-256 of the canonical signing bytes (canonical_bytes.txt).".to_owned(),
        String::new(),
    ];
    about.extend(message_inputs());
    check(&Golden {
        file: "message_id.txt",
        about,
        vectors: vec![
            Vector {
                name: "message",
                about: "id of the unnumbered message",
                form: Form::Hex { ascii: false },
                value: message().id().as_bytes().to_vec(),
            },
            Vector {
                name: "message_sequenced",
                about: "id of the numbered message",
                form: Form::Hex { ascii: false },
                value: sequenced().id().as_bytes().to_vec(),
            },
        ],
    });
}

#[test]
fn signature() {
    let mut about = vec![
        "Ed25519 signatures (deterministic) over the canonical signing bytes".to_owned(),
        "(canonical_bytes.txt), by the sender / creator key.".to_owned(),
        String::new(),
    ];
    about.extend(message_inputs());
    about.push(String::new());
    about.extend(record_inputs());
    check(&Golden {
        file: "signature.txt",
        about,
        vectors: vec![
            Vector {
                name: "message",
                about: "signature of the unnumbered message",
                form: Form::Hex { ascii: false },
                value: message().signature.unwrap().to_vec(),
            },
            Vector {
                name: "message_sequenced",
                about: "signature of the numbered message",
                form: Form::Hex { ascii: false },
                value: sequenced().signature.unwrap().to_vec(),
            },
            Vector {
                name: "record",
                about: "signature of the resource record",
                form: Form::Hex { ascii: false },
                value: record().signature.unwrap().to_vec(),
            },
        ],
    });
}

#[test]
fn envelope_frame() {
    let mut about = vec![
        "Native messages as they go on the wire (/lotus/p2p/1.0.0): an unsigned-varint".to_owned(),
        "length, then the protobuf lotus.p2p.v1.Envelope (proto/lotus/p2p/v1), signed.".to_owned(),
        String::new(),
    ];
    about.extend(message_inputs());
    check(&Golden {
        file: "envelope_frame.txt",
        about,
        vectors: vec![
            Vector {
                name: "message",
                about: "framed envelope, unnumbered",
                form: Form::Hex { ascii: true },
                value: frame(&message()),
            },
            Vector {
                name: "message_sequenced",
                about: "framed envelope with sequence = 7",
                form: Form::Hex { ascii: true },
                value: frame(&sequenced()),
            },
        ],
    });
}

#[test]
fn message_json() {
    let mut about = vec![
        "The TypeScript system's JSON P2PMessage (/lotus/message/1.0.0), signed;".to_owned(),
        "the literal text, wrapped after commas (the lines join with nothing between).".to_owned(),
        "The TypeScript format has no sequence number, so only the unnumbered message.".to_owned(),
        String::new(),
    ];
    about.extend(message_inputs());
    check(&Golden {
        file: "message_json.txt",
        about,
        vectors: vec![Vector {
            name: "message",
            about: "JSON message, unnumbered",
            form: Form::Text,
            value: encode_message(&JsonCodec, &message()).to_vec(),
        }],
    });
}

#[test]
fn record_native() {
    let mut about = vec![
        "A signed resource record in the native form: the protobuf".to_owned(),
        "lotus.p2p.v1.ResourceRecord (proto/lotus/p2p/v1), unframed.".to_owned(),
        String::new(),
    ];
    about.extend(record_inputs());
    check(&Golden {
        file: "record_native.txt",
        about,
        vectors: vec![Vector {
            name: "record",
            about: "protobuf ResourceRecord",
            form: Form::Hex { ascii: true },
            value: encode_record(&ProtobufCodec, &record()).to_vec(),
        }],
    });
}

#[test]
fn record_json() {
    let mut about = vec![
        "A signed resource record in the TypeScript JSON form (the ResourceAnnouncement".to_owned(),
        "plus a Node Buffer signature), as stored in the DHT under".to_owned(),
        format!("resource:{RECORD_TYPE}:{RECORD_ID}. The literal text, wrapped after commas"),
        "(the lines join with nothing between).".to_owned(),
        String::new(),
    ];
    about.extend(record_inputs());
    check(&Golden {
        file: "record_json.txt",
        about,
        vectors: vec![Vector {
            name: "record",
            about: "JSON record",
            form: Form::Text,
            value: encode_record(&JsonCodec, &record()).to_vec(),
        }],
    });
}

// --- Sanity checks of the pinned values, independent of the files -------------

#[test]
fn fixed_keys_are_the_rfc8032_vectors_sanity() {
    let sender = sender();
    let public = sender.public().try_into_ed25519().unwrap().to_bytes();
    assert_eq!(hex::encode(public), SENDER_PUBLIC);
    assert_eq!(
        hex::encode(sender.sign(b"").unwrap()),
        SENDER_EMPTY_SIGNATURE
    );
    let recipient = key(RECIPIENT_SECRET).public().try_into_ed25519().unwrap();
    assert_eq!(hex::encode(recipient.to_bytes()), RECIPIENT_PUBLIC);
    // An ed25519 PeerId is the identity multihash (code 0x00, length 0x24) of
    // the protobuf-encoded key (KeyType Ed25519 = 1, then 32 bytes of key).
    let peer = sender.public().to_peer_id().to_bytes();
    assert_eq!(hex::encode(peer), format!("002408011220{SENDER_PUBLIC}"));
}

/// Bytes in the layout `canonical.rs` documents, built here by hand.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
    out.extend_from_slice(bytes);
}

#[test]
fn canonical_bytes_follow_the_documented_layout_sanity() {
    let from = sender().public().to_peer_id().to_bytes();
    let mut expected = MESSAGE_DOMAIN.to_vec();
    assert_eq!(MESSAGE_DOMAIN, b"lotus-p2p/v1/message\0");
    field(&mut expected, MESSAGE_TYPE.as_bytes());
    field(&mut expected, &from);
    field(&mut expected, &recipient().to_bytes());
    field(&mut expected, PROTOCOL.as_bytes());
    field(&mut expected, PAYLOAD.as_bytes());
    expected.extend_from_slice(&TIMESTAMP_MS.to_be_bytes());
    field(&mut expected, NONCE.as_bytes());
    assert_eq!(
        hex::encode(message().signing_bytes()),
        hex::encode(&expected)
    );

    // The sequence number is appended only when set.
    expected.extend_from_slice(&SEQUENCE.to_be_bytes());
    assert_eq!(
        hex::encode(sequenced().signing_bytes()),
        hex::encode(&expected)
    );

    let mut expected = RECORD_DOMAIN.to_vec();
    assert_eq!(RECORD_DOMAIN, b"lotus-p2p/v1/resource-record\0");
    field(&mut expected, RECORD_TYPE.as_bytes());
    field(&mut expected, RECORD_ID.as_bytes());
    field(&mut expected, &from);
    field(&mut expected, RECORD_DATA.as_bytes());
    expected.extend_from_slice(&CREATED_MS.to_be_bytes());
    expected.extend_from_slice(&EXPIRES_MS.to_be_bytes());
    assert_eq!(
        hex::encode(record().signing_bytes()),
        hex::encode(&expected)
    );
}

#[test]
fn message_id_is_sha256_of_the_canonical_bytes_sanity() {
    for m in [message(), sequenced()] {
        let digest: [u8; 32] = Sha256::digest(m.signing_bytes()).into();
        assert_eq!(m.id().0, digest);
        assert_eq!(Message::id_from_signing_bytes(&m.signing_bytes()), m.id());
    }
    assert_ne!(message().id(), sequenced().id());
}

#[test]
fn signatures_verify_with_the_signer_key_sanity() {
    let public = sender().public();
    for m in [message(), sequenced()] {
        verify(&m).unwrap();
        assert_eq!(m.public_key, None, "ed25519 PeerIds carry the key");
        let signature = m.signature.clone().unwrap();
        assert_eq!(signature.len(), 64);
        assert!(public.verify(&m.signing_bytes(), &signature));
        // Deterministic: signing again gives the same bytes.
        assert_eq!(builder_like(&m).signature, m.signature);
        // A one-bit change to the signature no longer verifies.
        let mut bad = signature.to_vec();
        bad[0] ^= 1;
        let mut tampered = m.clone();
        tampered.signature = Some(Bytes::from(bad));
        assert!(verify(&tampered).is_err());
    }
    let r = record();
    verify(&r).unwrap();
    assert!(public.verify(&r.signing_bytes(), r.signature.as_deref().unwrap()));
    r.verify_for(&resource_key(), CREATED_MS, &ProtocolLimits::DEFAULT)
        .unwrap();
}

/// `m` signed again from scratch.
fn builder_like(m: &Message) -> Message {
    if m.sequence.is_some() {
        sequenced()
    } else {
        message()
    }
}

#[test]
fn envelope_frame_decodes_back_to_the_fields_sanity() {
    let from = sender().public().to_peer_id();
    for m in [message(), sequenced()] {
        let wire = frame(&m);
        // The prefix is the varint length of the rest.
        let body_len = wire.len() - 2;
        assert!((128..16_384).contains(&body_len), "a two-byte prefix");
        assert_eq!(
            usize::from(wire[0] & 0x7f) | usize::from(wire[1]) << 7,
            body_len
        );
        assert_eq!(wire[0] & 0x80, 0x80);

        let mut buf = BytesMut::from(&wire[..]);
        let body = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());

        let envelope = proto::Envelope::decode(body.clone()).unwrap();
        assert_eq!(envelope.r#type, MESSAGE_TYPE);
        assert_eq!(envelope.from, from.to_bytes());
        assert_eq!(envelope.to, recipient().to_bytes());
        assert_eq!(envelope.protocol, PROTOCOL);
        assert_eq!(envelope.payload, PAYLOAD.as_bytes());
        assert_eq!(envelope.timestamp_ms, TIMESTAMP_MS);
        assert_eq!(envelope.nonce, NONCE.as_bytes());
        assert_eq!(envelope.sequence, m.sequence.unwrap_or(0));
        assert_eq!(Some(envelope.signature.clone()), m.signature);
        assert!(envelope.public_key.is_empty());

        assert_eq!(ProtobufCodec.decode_message(body.clone()).unwrap(), m);
        let accepted = Inbound::new(InboundPolicy::default())
            .accept(&ProtobufCodec, body, &from, TIMESTAMP_MS)
            .unwrap();
        assert!(accepted.verified);
        assert_eq!(accepted.id, m.id());
    }
}

#[test]
fn json_forms_decode_back_to_the_fields_sanity() {
    let m = message();
    let json = encode_message(&JsonCodec, &m);
    assert_eq!(JsonCodec.decode_message(json.clone()).unwrap(), m);
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(value["type"], MESSAGE_TYPE);
    assert_eq!(value["from"], m.from.to_base58());
    assert_eq!(value["to"], recipient().to_base58());
    assert_eq!(
        value["payload"],
        serde_json::from_str::<serde_json::Value>(PAYLOAD).unwrap()
    );
    assert_eq!(value["timestamp"], TIMESTAMP_MS);
    assert_eq!(value["messageId"], NONCE);
    assert_eq!(value["protocol"], PROTOCOL);
    assert_eq!(value["signature"]["type"], "Buffer");
    let signature: Vec<u8> = serde_json::from_value(value["signature"]["data"].clone()).unwrap();
    assert_eq!(Some(Bytes::from(signature)), m.signature);

    let r = record();
    let json = encode_record(&JsonCodec, &r);
    assert_eq!(JsonCodec.decode_record(json.clone()).unwrap(), r);
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(value["resourceId"], RECORD_ID);
    assert_eq!(value["resourceType"], RECORD_TYPE);
    assert_eq!(value["creatorPeerId"], r.creator.to_base58());
    assert_eq!(
        value["data"],
        serde_json::from_str::<serde_json::Value>(RECORD_DATA).unwrap()
    );
    assert_eq!(value["createdAt"], CREATED_MS);
    assert_eq!(value["expiresAt"], EXPIRES_MS);
    assert_eq!(value["signature"]["type"], "Buffer");
    // Keys in the TypeScript order (JSON.stringify keeps insertion order).
    let text = std::str::from_utf8(&json).unwrap();
    let positions: Vec<usize> = [
        "\"resourceId\"",
        "\"resourceType\"",
        "\"creatorPeerId\"",
        "\"data\"",
        "\"createdAt\"",
        "\"expiresAt\"",
        "\"signature\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap())
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn record_native_decodes_back_to_the_fields_sanity() {
    let r = record();
    let native = encode_record(&ProtobufCodec, &r);
    let decoded = proto::ResourceRecord::decode(native.clone()).unwrap();
    assert_eq!(decoded.resource_type, RECORD_TYPE);
    assert_eq!(decoded.resource_id, RECORD_ID);
    assert_eq!(decoded.creator, r.creator.to_bytes());
    assert_eq!(decoded.data, RECORD_DATA.as_bytes());
    assert_eq!(decoded.created_ms, CREATED_MS);
    assert_eq!(decoded.expires_ms, EXPIRES_MS);
    assert_eq!(Some(decoded.signature), r.signature);
    assert!(decoded.public_key.is_empty());
    assert_eq!(ProtobufCodec.decode_record(native).unwrap(), r);
}

#[test]
fn golden_file_format_round_trips() {
    // The reader gets back exactly what the writer wrote, for both forms,
    // including lengths that are not a multiple of a line.
    let bytes: Vec<u8> = (0..=70u8).collect();
    let text = br#"{"a":"x,#y","b":[1,2,3],"c":"a long string that forces the line to wrap at a comma, right here"}"#;
    let golden = Golden {
        file: "unused",
        about: vec!["about".into()],
        vectors: vec![
            Vector {
                name: "hex_ascii",
                about: "hex with ascii",
                form: Form::Hex { ascii: true },
                value: bytes.clone(),
            },
            Vector {
                name: "hex",
                about: "hex",
                form: Form::Hex { ascii: false },
                value: bytes,
            },
            Vector {
                name: "text",
                about: "text",
                form: Form::Text,
                value: text.to_vec(),
            },
        ],
    };
    let sections = parse(&render(&golden)).unwrap();
    assert_eq!(sections.len(), golden.vectors.len());
    for (vector, (name, lines)) in golden.vectors.iter().zip(&sections) {
        assert_eq!(name, vector.name);
        assert_eq!(decode_section(vector.form, lines).unwrap(), vector.value);
    }
}
