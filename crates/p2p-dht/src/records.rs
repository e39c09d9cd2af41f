//! Resource records in the DHT: keys, values, and the checks a reader (or a
//! storing server) applies before trusting one.
//!
//! The key is the TypeScript system's `resource:<type>:<id>` (UTF-8), the value
//! its `ResourceAnnouncement` JSON plus our `signature` (Node `Buffer` form), so
//! TypeScript nodes can read our records and we can read theirs. A value is
//! trusted only if it is about the key it is stored under, is unexpired, and is
//! signed by its creator; unsigned (TypeScript) records are accepted only when
//! the caller allows it.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libp2p::kad::{Record, RecordKey};
use p2p_protocol::{Codec, CodecError, JsonCodec, RecordError, ResourceRecord, VerifyError};
use p2p_types::{ProtocolLimits, RejectReason, ResourceKey};

/// The kad key of a resource.
pub fn kad_key(key: &ResourceKey) -> RecordKey {
    RecordKey::new(&key.to_bytes())
}

/// Encodes a record as its DHT value (TypeScript-compatible JSON).
pub fn encode_value(record: &ResourceRecord) -> Result<Vec<u8>, CodecError> {
    let mut buf = BytesMut::new();
    JsonCodec.encode_record(record, &mut buf)?;
    Ok(buf.to_vec())
}

/// A kad record for `record`, expiring with it (`now_ms` is the wall clock
/// that goes with `now`).
pub fn to_kad_record(
    record: &ResourceRecord,
    now_ms: u64,
    now: Instant,
) -> Result<Record, CodecError> {
    let mut kad = Record::new(kad_key(&record.key), encode_value(record)?);
    kad.expires = record
        .expires_ms
        .map(|e| now + Duration::from_millis(e.saturating_sub(now_ms)));
    Ok(kad)
}

/// Why a DHT value was not trusted.
#[derive(Debug, thiserror::Error)]
pub enum RecordCheckError {
    /// The kad key is not a resource key.
    #[error("not a resource key")]
    NotAResourceKey,
    /// The value does not decode.
    #[error("undecodable value: {0}")]
    Decode(#[from] CodecError),
    /// The record is for another key, invalid, expired, or badly signed.
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl RecordCheckError {
    /// How a refusal for this error is reported: a record past its expiry is
    /// what an honest server replicating its store may send
    /// ([`RejectReason::RecordExpired`], not scored); anything else is forged
    /// or malformed ([`RejectReason::InvalidRecord`]).
    pub fn reject_reason(&self) -> RejectReason {
        match self {
            Self::Record(RecordError::Invalid(p2p_protocol::ValidationError::Expired {
                ..
            })) => RejectReason::RecordExpired,
            _ => RejectReason::InvalidRecord,
        }
    }
}

/// Decodes the value stored under `kad_key` and checks it at `now_ms`.
pub fn check_value(
    kad_key: &[u8],
    value: &[u8],
    now_ms: u64,
    limits: &ProtocolLimits,
    accept_unsigned: bool,
) -> Result<ResourceRecord, RecordCheckError> {
    let key = ResourceKey::from_bytes(kad_key).map_err(|_| RecordCheckError::NotAResourceKey)?;
    if value.len() > limits.max_record_size {
        return Err(
            RecordError::Invalid(p2p_protocol::ValidationError::TooLarge {
                field: "record",
                len: value.len(),
                max: limits.max_record_size,
            })
            .into(),
        );
    }
    let record = JsonCodec.decode_record(Bytes::copy_from_slice(value))?;
    match record.verify_for(&key, now_ms, limits) {
        Ok(()) => Ok(record),
        Err(RecordError::Signature(VerifyError::Unsigned)) if accept_unsigned => Ok(record),
        Err(e) => Err(e.into()),
    }
}

/// How this node checks DHT values: its protocol limits and whether unsigned
/// (TypeScript) records are accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validation {
    pub(crate) limits: ProtocolLimits,
    pub(crate) accept_unsigned: bool,
}

impl Validation {
    /// [`check_value`] now.
    pub(crate) fn check(
        &self,
        kad_key: &[u8],
        value: &[u8],
    ) -> Result<ResourceRecord, RecordCheckError> {
        self.check_at(kad_key, value, p2p_protocol::now_ms())
    }

    /// [`check_value`] at `now_ms`.
    pub(crate) fn check_at(
        &self,
        kad_key: &[u8],
        value: &[u8],
        now_ms: u64,
    ) -> Result<ResourceRecord, RecordCheckError> {
        check_value(kad_key, value, now_ms, &self.limits, self.accept_unsigned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    const NOW: u64 = 1_764_460_000_000;

    fn signed(key: &Keypair, ty: &str, id: &str, expires: u64) -> ResourceRecord {
        let rk = ResourceKey::new(ty.parse().unwrap(), id.parse().unwrap());
        ResourceRecord::new(
            rk,
            key.public().to_peer_id(),
            &b"{\"a\":1}"[..],
            NOW,
            Some(expires),
        )
        .sign(key)
        .unwrap()
    }

    #[test]
    fn a_signed_record_round_trips_through_its_dht_form() {
        let key = Keypair::generate_ed25519();
        let record = signed(&key, "session", "s1", NOW + 60_000);
        let kad = to_kad_record(&record, NOW, Instant::now()).unwrap();
        assert_eq!(kad.key.to_vec(), b"resource:session:s1");
        assert!(kad.expires.is_some());
        let back = check_value(
            kad.key.as_ref(),
            &kad.value,
            NOW,
            &ProtocolLimits::DEFAULT,
            false,
        )
        .unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn wrong_key_expired_forged_and_unsigned_values_are_refused() {
        let key = Keypair::generate_ed25519();
        let limits = ProtocolLimits::DEFAULT;
        let record = signed(&key, "session", "s1", NOW + 60_000);
        let value = encode_value(&record).unwrap();
        // Stored under another resource's key.
        assert!(matches!(
            check_value(b"resource:session:s2", &value, NOW, &limits, false),
            Err(RecordCheckError::Record(RecordError::KeyMismatch { .. }))
        ));
        assert!(matches!(
            check_value(b"/lotus/x", &value, NOW, &limits, false),
            Err(RecordCheckError::NotAResourceKey)
        ));
        // Expired.
        assert!(check_value(b"resource:session:s1", &value, NOW + 60_000, &limits, false).is_err());
        // Data changed after signing.
        let mut forged = record.clone();
        forged.data = Bytes::from_static(b"{\"a\":2}");
        let forged = encode_value(&forged).unwrap();
        assert!(matches!(
            check_value(b"resource:session:s1", &forged, NOW, &limits, false),
            Err(RecordCheckError::Record(RecordError::Signature(
                VerifyError::BadSignature
            )))
        ));
        // A TypeScript record: unsigned, accepted only on request.
        let ts = format!(
            r#"{{"resourceId":"s1","resourceType":"session","creatorPeerId":"{}","data":{{}},"createdAt":{NOW}}}"#,
            key.public().to_peer_id()
        );
        assert!(check_value(b"resource:session:s1", ts.as_bytes(), NOW, &limits, false).is_err());
        assert!(check_value(b"resource:session:s1", ts.as_bytes(), NOW, &limits, true).is_ok());
        // Oversized values are refused before decoding.
        let big = vec![b' '; limits.max_record_size + 1];
        assert!(check_value(b"resource:session:s1", &big, NOW, &limits, true).is_err());
    }
}
