//! Codecs: how a [`Message`] or [`ResourceRecord`] becomes bytes and back.
//!
//! Both codecs implement one object-safe trait, so a node (or a user) can pick
//! one per protocol or bring their own:
//! - [`ProtobufCodec`]: the native encoding (`proto/lotus/p2p/v1`).
//! - [`JsonCodec`]: exactly the TypeScript system's `P2PMessage` and
//!   `ResourceAnnouncement` JSON, for its `/lotus/message/1.0.0` protocol and its
//!   DHT records.
//!
//! A codec of your own implements [`Codec`] too and keeps its own error
//! types: wrap them with [`DecodeError::custom`] and [`CodecError::custom`],
//! which keep them as the typed `source` of the error a node reports.
//!
//! A codec only parses and types fields; limits and clocks are checked by
//! [`crate::validate_message`] and the inbound pipeline.

use bytes::{Bytes, BytesMut};
use libp2p_identity::PeerId;
use p2p_types::NameError;

use crate::message::Message;
use crate::record::ResourceRecord;

mod json;
mod protobuf;

pub use json::JsonCodec;
pub use protobuf::ProtobufCodec;

/// Why bytes could not be decoded. Field errors name the field as it is called
/// on the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not valid protobuf.
    #[error("protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Not valid JSON, or not the expected JSON shape.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A required field is absent or empty.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A name field is malformed.
    #[error("field {field}: {source}")]
    Name {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        source: NameError,
    },
    /// A field has the wrong type or an unparsable value.
    #[error("field {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A codec of the user's own could not decode; its error is the source.
    #[error("{codec} could not decode")]
    Custom {
        /// The codec's [`Codec::name`].
        codec: &'static str,
        /// The codec's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DecodeError {
    /// A decoding failure of the codec named `codec`, keeping its own error.
    pub fn custom(
        codec: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Custom {
            codec,
            source: Box::new(source),
        }
    }
}

/// A codec failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Decoding failed.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// The value cannot be expressed in this encoding.
    #[error("cannot encode field {field}: {reason}")]
    Unrepresentable {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A codec of the user's own could not encode; its error is the source.
    #[error("{codec} could not encode")]
    Custom {
        /// The codec's [`Codec::name`].
        codec: &'static str,
        /// The codec's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CodecError {
    /// An encoding failure of the codec named `codec`, keeping its own error.
    pub fn custom(
        codec: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Custom {
            codec,
            source: Box::new(source),
        }
    }
}

/// Encodes and decodes messages and resource records.
pub trait Codec: Send + Sync {
    /// A short name for logs and stats ("protobuf", "json").
    fn name(&self) -> &'static str;
    /// Appends the encoding of `message` to `dst`.
    fn encode_message(&self, message: &Message, dst: &mut BytesMut) -> Result<(), CodecError>;
    /// Decodes one message from exactly `src` (trailing bytes are an error).
    fn decode_message(&self, src: Bytes) -> Result<Message, CodecError>;
    /// Appends the encoding of `record` to `dst`.
    fn encode_record(&self, record: &ResourceRecord, dst: &mut BytesMut) -> Result<(), CodecError>;
    /// Decodes one record from exactly `src`.
    fn decode_record(&self, src: Bytes) -> Result<ResourceRecord, CodecError>;
}

/// Parses a required binary PeerId.
pub(crate) fn peer_from_bytes(field: &'static str, bytes: &[u8]) -> Result<PeerId, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Missing(field));
    }
    PeerId::from_bytes(bytes).map_err(|_| DecodeError::Invalid {
        field,
        reason: "not a PeerId",
    })
}

/// Parses a required base58 PeerId.
pub(crate) fn peer_from_str(field: &'static str, text: &str) -> Result<PeerId, DecodeError> {
    if text.is_empty() {
        return Err(DecodeError::Missing(field));
    }
    text.parse().map_err(|_| DecodeError::Invalid {
        field,
        reason: "not a PeerId",
    })
}

/// Types a name field, attributing an error to `field`.
pub(crate) fn name<T>(field: &'static str, parsed: Result<T, NameError>) -> Result<T, DecodeError> {
    parsed.map_err(|source| match source {
        NameError::Empty { .. } => DecodeError::Missing(field),
        source => DecodeError::Name { field, source },
    })
}

/// `None` for an empty byte field.
pub(crate) fn non_empty(bytes: Bytes) -> Option<Bytes> {
    (!bytes.is_empty()).then_some(bytes)
}
