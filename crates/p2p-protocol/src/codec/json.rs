//! The TypeScript system's JSON encoding (seed-study §3–4).
//!
//! Messages: `{"type","from","to"?,"payload","timestamp","messageId","signature"?,"protocol"?}`
//! in that key order, as `JSON.stringify` wrote them. Records:
//! `{"resourceId","resourceType","creatorPeerId","data","createdAt","expiresAt"?,"signature"?}`.
//!
//! Mapping to the typed values:
//! - `payload` / `data` (any JSON) ⇄ the raw JSON text in `payload` / `data`; an
//!   empty payload is written as `null`, and `null` or an absent payload reads as
//!   empty. Encoding refuses a payload whose bytes would not come back
//!   identical (surrounding whitespace, or the text `null`), because a signature
//!   covers the exact bytes.
//! - `messageId` (a string) ⇄ `nonce` (its UTF-8 bytes).
//! - `signature` ⇄ Node's `Buffer` JSON form `{"type":"Buffer","data":[..bytes..]}`,
//!   which is what the TypeScript types (`signature?: Buffer`) serialise to.
//! - PeerIds are base58 strings; times are integer milliseconds.
//!
//! A carried public key has no place in this format (TypeScript nodes use
//! ed25519, whose PeerId embeds the key), so encoding one is refused.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use p2p_types::{MessageType, ProtocolName, ResourceId, ResourceKey, ResourceType};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Codec, CodecError, DecodeError, name, peer_from_str};
use crate::message::Message;
use crate::record::ResourceRecord;

/// The TypeScript system's JSON wire format, for its `/lotus/message/1.0.0`
/// protocol and `resource:<type>:<id>` DHT records.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

/// Node's JSON form of a `Buffer`.
#[derive(Serialize, Deserialize)]
struct NodeBuffer<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    data: Vec<u8>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow)]
    to: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(rename = "messageId", borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    signature: Option<&'a RawValue>,
    #[serde(borrow)]
    protocol: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    payload: &'a RawValue,
    timestamp: u64,
    #[serde(rename = "messageId")]
    message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<NodeBuffer<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
}

#[derive(Deserialize)]
struct RecordIn<'a> {
    #[serde(rename = "resourceId", borrow)]
    resource_id: Option<Cow<'a, str>>,
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(rename = "creatorPeerId", borrow)]
    creator: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(rename = "createdAt", borrow)]
    created_at: Option<&'a RawValue>,
    #[serde(rename = "expiresAt", borrow)]
    expires_at: Option<&'a RawValue>,
    #[serde(borrow)]
    signature: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct RecordOut<'a> {
    #[serde(rename = "resourceId")]
    resource_id: &'a str,
    #[serde(rename = "resourceType")]
    resource_type: &'a str,
    #[serde(rename = "creatorPeerId")]
    creator: String,
    data: &'a RawValue,
    #[serde(rename = "createdAt")]
    created_at: u64,
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<NodeBuffer<'a>>,
}

const JSON_NULL: &str = "null";

/// The raw JSON text of an opaque byte field; empty means `null`.
fn raw_json<'a>(field: &'static str, bytes: &'a [u8]) -> Result<&'a RawValue, CodecError> {
    if bytes.is_empty() {
        return raw_null();
    }
    let raw: &RawValue =
        serde_json::from_slice(bytes).map_err(|_| CodecError::Unrepresentable {
            field,
            reason: "not a JSON text",
        })?;
    // The bytes must come back exactly as they are (signatures cover them):
    // surrounding whitespace would be lost, and `null` reads back as empty.
    if raw.get().len() != bytes.len() || raw.get() == JSON_NULL {
        return Err(CodecError::Unrepresentable {
            field,
            reason: "JSON text must have no surrounding whitespace and not be `null` (empty means null)",
        });
    }
    Ok(raw)
}

fn raw_null() -> Result<&'static RawValue, CodecError> {
    serde_json::from_str(JSON_NULL).map_err(|_| CodecError::Unrepresentable {
        field: "payload",
        reason: "internal: null",
    })
}

/// Bytes of an opaque JSON field: `null` and absence read as empty.
fn opaque(raw: Option<&RawValue>) -> Bytes {
    match raw.map(RawValue::get) {
        None | Some(JSON_NULL) => Bytes::new(),
        Some(text) => Bytes::copy_from_slice(text.as_bytes()),
    }
}

fn millis(field: &'static str, raw: Option<&RawValue>) -> Result<Option<u64>, DecodeError> {
    raw.filter(|r| r.get() != JSON_NULL)
        .map(|r| {
            r.get().parse::<u64>().map_err(|_| DecodeError::Invalid {
                field,
                reason: "not a non-negative integer",
            })
        })
        .transpose()
}

fn signature_in(raw: Option<&RawValue>) -> Result<Option<Bytes>, DecodeError> {
    let Some(raw) = raw.filter(|r| r.get() != JSON_NULL) else {
        return Ok(None);
    };
    let invalid = DecodeError::Invalid {
        field: "signature",
        reason: "not a Node Buffer ({\"type\":\"Buffer\",\"data\":[..]})",
    };
    let buffer: NodeBuffer<'_> = serde_json::from_str(raw.get()).map_err(|_| invalid)?;
    if buffer.kind != "Buffer" {
        return Err(DecodeError::Invalid {
            field: "signature",
            reason: "not a Node Buffer ({\"type\":\"Buffer\",\"data\":[..]})",
        });
    }
    Ok((!buffer.data.is_empty()).then(|| Bytes::from(buffer.data)))
}

fn signature_out<'a>(
    signature: Option<&'a Bytes>,
    public_key: Option<&Bytes>,
) -> Result<Option<NodeBuffer<'a>>, CodecError> {
    if public_key.is_some() {
        return Err(CodecError::Unrepresentable {
            field: "public_key",
            reason: "the TypeScript format has no public key field",
        });
    }
    Ok(signature.map(|s| NodeBuffer {
        kind: Cow::Borrowed("Buffer"),
        data: s.to_vec(),
    }))
}

fn required<'a>(
    field: &'static str,
    value: Option<Cow<'a, str>>,
) -> Result<Cow<'a, str>, DecodeError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or(DecodeError::Missing(field))
}

impl Codec for JsonCodec {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode_message(&self, m: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        if m.sequence.is_some() {
            return Err(CodecError::Unrepresentable {
                field: "sequence",
                reason: "the TypeScript message format has no sequence number",
            });
        }
        let out = MessageOut {
            kind: m.kind.as_str(),
            from: m.from.to_base58(),
            to: m.to.map(|p| p.to_base58()),
            payload: raw_json("payload", &m.payload)?,
            timestamp: m.timestamp_ms,
            message_id: std::str::from_utf8(&m.nonce).map_err(|_| CodecError::Unrepresentable {
                field: "nonce",
                reason: "messageId must be UTF-8 text",
            })?,
            signature: signature_out(m.signature.as_ref(), m.public_key.as_ref())?,
            protocol: m.protocol.as_ref().map(ProtocolName::as_str),
        };
        serde_json::to_writer(dst.writer(), &out).map_err(|_| CodecError::Unrepresentable {
            field: "message",
            reason: "JSON serialisation failed",
        })
    }

    fn decode_message(&self, src: Bytes) -> Result<Message, CodecError> {
        let m: MessageIn<'_> = serde_json::from_slice(&src).map_err(DecodeError::from)?;
        Ok(Message {
            kind: name(
                "type",
                MessageType::new(required("type", m.kind)?.into_owned()),
            )?,
            from: peer_from_str("from", &required("from", m.from)?)?,
            to: match m.to.filter(|t| !t.is_empty()) {
                Some(to) => Some(peer_from_str("to", &to)?),
                None => None,
            },
            protocol: match m.protocol.filter(|p| !p.is_empty()) {
                Some(p) => Some(name("protocol", ProtocolName::new(p.into_owned()))?),
                None => None,
            },
            payload: opaque(m.payload),
            timestamp_ms: millis("timestamp", m.timestamp)?
                .ok_or(DecodeError::Missing("timestamp"))?,
            nonce: Bytes::from(required("messageId", m.message_id)?.into_owned()),
            sequence: None,
            signature: signature_in(m.signature)?,
            public_key: None,
        })
    }

    fn encode_record(&self, r: &ResourceRecord, dst: &mut BytesMut) -> Result<(), CodecError> {
        let out = RecordOut {
            resource_id: r.key.resource_id().as_str(),
            resource_type: r.key.resource_type().as_str(),
            creator: r.creator.to_base58(),
            data: raw_json("data", &r.data)?,
            created_at: r.created_ms,
            expires_at: r.expires_ms,
            signature: signature_out(r.signature.as_ref(), r.public_key.as_ref())?,
        };
        serde_json::to_writer(dst.writer(), &out).map_err(|_| CodecError::Unrepresentable {
            field: "record",
            reason: "JSON serialisation failed",
        })
    }

    fn decode_record(&self, src: Bytes) -> Result<ResourceRecord, CodecError> {
        let r: RecordIn<'_> = serde_json::from_slice(&src).map_err(DecodeError::from)?;
        let key = ResourceKey::new(
            name(
                "resourceType",
                ResourceType::new(required("resourceType", r.resource_type)?.into_owned()),
            )?,
            name(
                "resourceId",
                ResourceId::new(required("resourceId", r.resource_id)?.into_owned()),
            )?,
        );
        Ok(ResourceRecord {
            key,
            creator: peer_from_str("creatorPeerId", &required("creatorPeerId", r.creator)?)?,
            data: opaque(r.data),
            created_ms: millis("createdAt", r.created_at)?
                .ok_or(DecodeError::Missing("createdAt"))?,
            expires_ms: millis("expiresAt", r.expires_at)?,
            signature: signature_in(r.signature)?,
            public_key: None,
        })
    }
}
