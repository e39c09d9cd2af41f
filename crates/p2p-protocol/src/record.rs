//! Signed resource records: what `announce` stores in the DHT.

use bytes::Bytes;
use libp2p_identity::{Keypair, PeerId};
use p2p_types::{ProtocolLimits, ResourceKey};

use crate::canonical::{CanonicalSink, RECORD_DOMAIN};
use crate::sign::{self, SignError, Signable, VerifyError};
use crate::validate::{ValidationError, validate_record};

/// A resource announcement: who offers what, until when, signed by its creator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRecord {
    /// Type and id; the DHT key is `resource:<type>:<id>`.
    pub key: ResourceKey,
    /// The peer that created (and signs) the record.
    pub creator: PeerId,
    /// Opaque data (JSON text for TypeScript nodes).
    pub data: Bytes,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Absolute expiry, ms since the Unix epoch.
    pub expires_ms: Option<u64>,
    /// Signature over [`Signable::signing_bytes`].
    pub signature: Option<Bytes>,
    /// The creator's protobuf-encoded public key, carried only when the PeerId
    /// does not embed it.
    pub public_key: Option<Bytes>,
}

/// Why a record fetched for a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record is about another resource than the key it was stored under.
    #[error("record is for {found}, stored under {expected}")]
    KeyMismatch {
        /// The key asked for.
        expected: ResourceKey,
        /// The key in the record.
        found: ResourceKey,
    },
    /// A field is invalid or the record expired.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The signature is missing, bad, or not the creator's.
    #[error("signature: {0}")]
    Signature(#[from] VerifyError),
}

/// Serializes as the `lotus-p2p` binary reports a record: `key`, `creator`,
/// `data` (the JSON it holds; `null` when it is not JSON), `createdAt`,
/// `expiresAt` (ms since the Unix epoch) and `signed`.
impl serde::Serialize for ResourceRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let data: serde_json::Value =
            serde_json::from_slice(&self.data).unwrap_or(serde_json::Value::Null);
        let mut record = serializer.serialize_struct("ResourceRecord", 6)?;
        record.serialize_field("key", &self.key.to_string())?;
        record.serialize_field("creator", &self.creator.to_string())?;
        record.serialize_field("data", &data)?;
        record.serialize_field("createdAt", &self.created_ms)?;
        record.serialize_field("expiresAt", &self.expires_ms)?;
        record.serialize_field("signed", &self.signature.is_some())?;
        record.end()
    }
}

impl ResourceRecord {
    /// An unsigned record.
    pub fn new(
        key: ResourceKey,
        creator: PeerId,
        data: impl Into<Bytes>,
        created_ms: u64,
        expires_ms: Option<u64>,
    ) -> Self {
        Self {
            key,
            creator,
            data: data.into(),
            created_ms,
            expires_ms,
            signature: None,
            public_key: None,
        }
    }

    /// Signs the record with the creator's key.
    pub fn sign(mut self, key: &Keypair) -> Result<Self, SignError> {
        sign::sign(&mut self, key)?;
        Ok(self)
    }

    /// True once `now_ms` has reached the expiry.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| e <= now_ms)
    }

    /// Everything a reader must check before trusting a record found under
    /// `key`: it is about `key`, it is valid and unexpired at `now_ms`, and it is
    /// signed by its creator.
    pub fn verify_for(
        &self,
        key: &ResourceKey,
        now_ms: u64,
        limits: &ProtocolLimits,
    ) -> Result<(), RecordError> {
        if self.key != *key {
            return Err(RecordError::KeyMismatch {
                expected: key.clone(),
                found: self.key.clone(),
            });
        }
        validate_record(self, now_ms, limits)?;
        sign::verify(self)?;
        Ok(())
    }

    fn write_canonical(&self, sink: &mut impl CanonicalSink) {
        sink.put(RECORD_DOMAIN);
        sink.field(self.key.resource_type().as_str().as_bytes());
        sink.field(self.key.resource_id().as_str().as_bytes());
        sink.peer(&self.creator);
        sink.field(&self.data);
        sink.int(self.created_ms);
        sink.int(self.expires_ms.unwrap_or(0));
    }
}

impl Signable for ResourceRecord {
    fn signer(&self) -> &PeerId {
        &self.creator
    }

    fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_DOMAIN.len() + 256 + self.data.len());
        self.write_canonical(&mut out);
        out
    }

    fn signature(&self) -> Option<&[u8]> {
        self.signature.as_deref()
    }

    fn public_key(&self) -> Option<&[u8]> {
        self.public_key.as_deref()
    }

    fn set_signature(&mut self, signature: Vec<u8>, public_key: Option<Vec<u8>>) {
        self.signature = Some(signature.into());
        self.public_key = public_key.map(Bytes::from);
    }
}
