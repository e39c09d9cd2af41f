//! Resource records in the DHT: keys, values, and the checks a reader (or a
//! storing server) applies before trusting one.
//!
//! A record is stored under one of two keys ([`StoredKey`]):
//! - **creator-scoped**, `/lotus/r/<type>/<id>/<creator>` (the creator's
//!   PeerId in base58): where lotus-p2p nodes announce. A value there is
//!   trusted and stored only if it is signed, about that (type, id), and
//!   created by the peer the key names, so only the creator can write or
//!   replace it (and versions only move forward, see [`crate::Behaviour`]).
//!   Someone announcing first under the same type and id writes its own key
//!   and cannot hide the creator's. Types and ids contain no `/`, so a key
//!   parses back to one (type, id, creator).
//! - **shared**, the TypeScript system's `resource:<type>:<id>`: one value
//!   per resource, first writer wins (a live record of another creator is
//!   not replaced). lotus-p2p nodes still write it so TypeScript peers find
//!   their records, and read it to find TypeScript peers' records (unsigned
//!   ones with `--accept-unsigned-records`). Anyone can take it first: it
//!   says who announced first, not who owns the resource.
//!
//! Which creators announced a resource is found through kad provider
//! records at the shared key's bytes (kad checks that a provider record's
//! provider is the peer sending it, and never replicates provider records
//! on another's behalf), so a squatter can add itself to the list but not
//! remove anyone from it.
//!
//! Why this design: kad holds one value per key and a storing server cannot
//! tell the rightful owner of a (type, id) from the first to claim it, so any
//! single shared key is either first-writer-wins (squattable) or
//! last-writer-wins (hijackable). Giving each creator its own key makes
//! ownership checkable by every server from the key and the signature alone,
//! with no coordination; the provider records make the set of creators
//! discoverable without trusting any one server to list them, and kad
//! already binds a provider record to the peer that sent it. What remains
//! open: a squatter with many identities can add many records to unpinned
//! discovery (bounded, newest first); callers that know the creator they
//! want pin it with `discover_from`. A record costs its creator two places
//! of quota at a server that happens to hold both of its keys.
//!
//! The value is the TypeScript system's `ResourceAnnouncement` JSON plus our
//! `signature` (Node `Buffer` form), so TypeScript nodes can read our records
//! and we can read theirs. A value is trusted only if it is about the key it
//! is stored under, is unexpired, and is signed by its creator; unsigned
//! (TypeScript) records are accepted only at the shared key and only when the
//! caller allows it.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libp2p::PeerId;
use libp2p::kad::{Record, RecordKey};
use p2p_protocol::{Codec, CodecError, JsonCodec, RecordError, ResourceRecord, VerifyError};
use p2p_types::{ProtocolLimits, RejectReason, ResourceId, ResourceKey, ResourceType};

/// Prefix of creator-scoped record keys.
pub const CREATOR_KEY_PREFIX: &str = "/lotus/r/";

/// The shared (TypeScript) kad key of a resource, `resource:<type>:<id>`;
/// also the key of its creators' provider records.
pub fn kad_key(key: &ResourceKey) -> RecordKey {
    RecordKey::new(&key.to_bytes())
}

/// The creator-scoped kad key of `creator`'s record of a resource.
pub fn creator_key(key: &ResourceKey, creator: &PeerId) -> RecordKey {
    StoredKey::Creator(key.clone(), *creator).kad_key()
}

/// A key a resource record may be stored under (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoredKey {
    /// `resource:<type>:<id>`: one record per resource, first writer wins.
    Shared(ResourceKey),
    /// `/lotus/r/<type>/<id>/<creator>`: only that creator's record.
    Creator(ResourceKey, PeerId),
}

impl StoredKey {
    /// Parses a kad key; `None` when it is neither form.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if let Ok(key) = ResourceKey::from_bytes(bytes) {
            return Some(Self::Shared(key));
        }
        let rest = std::str::from_utf8(bytes)
            .ok()?
            .strip_prefix(CREATOR_KEY_PREFIX)?;
        let mut parts = rest.split('/');
        let (ty, id, creator) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let key = ResourceKey::new(ResourceType::new(ty).ok()?, ResourceId::new(id).ok()?);
        let creator: PeerId = creator.parse().ok()?;
        // One spelling per key: the PeerId as it prints.
        (creator.to_base58() == creator_part(rest)).then_some(Self::Creator(key, creator))
    }

    /// The resource.
    pub fn resource(&self) -> &ResourceKey {
        match self {
            Self::Shared(key) | Self::Creator(key, _) => key,
        }
    }

    /// The creator the key names, if it is creator-scoped.
    pub fn creator(&self) -> Option<PeerId> {
        match self {
            Self::Shared(_) => None,
            Self::Creator(_, creator) => Some(*creator),
        }
    }

    /// The kad key.
    pub fn kad_key(&self) -> RecordKey {
        match self {
            Self::Shared(key) => kad_key(key),
            Self::Creator(key, creator) => RecordKey::new(&format!(
                "{CREATOR_KEY_PREFIX}{}/{}/{}",
                key.resource_type(),
                key.resource_id(),
                creator.to_base58()
            )),
        }
    }
}

fn creator_part(rest: &str) -> &str {
    rest.rsplit('/').next().unwrap_or_default()
}

impl From<ResourceKey> for StoredKey {
    fn from(key: ResourceKey) -> Self {
        Self::Shared(key)
    }
}

/// Encodes a record as its DHT value (TypeScript-compatible JSON).
pub fn encode_value(record: &ResourceRecord) -> Result<Vec<u8>, CodecError> {
    let mut buf = BytesMut::new();
    JsonCodec.encode_record(record, &mut buf)?;
    Ok(buf.to_vec())
}

/// A kad record for `record` under its shared key, expiring with it
/// (`now_ms` is the wall clock that goes with `now`).
pub fn to_kad_record(
    record: &ResourceRecord,
    now_ms: u64,
    now: Instant,
) -> Result<Record, CodecError> {
    to_kad_record_at(&StoredKey::Shared(record.key.clone()), record, now_ms, now)
}

/// A kad record for `record` under its creator-scoped key.
pub fn to_creator_record(
    record: &ResourceRecord,
    now_ms: u64,
    now: Instant,
) -> Result<Record, CodecError> {
    let key = StoredKey::Creator(record.key.clone(), record.creator);
    to_kad_record_at(&key, record, now_ms, now)
}

fn to_kad_record_at(
    key: &StoredKey,
    record: &ResourceRecord,
    now_ms: u64,
    now: Instant,
) -> Result<Record, CodecError> {
    let mut kad = Record::new(key.kad_key(), encode_value(record)?);
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
    /// A record under a creator-scoped key names another creator.
    #[error("record of {found} under another creator's key")]
    WrongCreator {
        /// The creator the record names.
        found: PeerId,
    },
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

/// Decodes the value stored under `kad_key` and checks it at `now_ms`: under
/// a creator-scoped key it must be signed by the creator the key names
/// (unsigned records are never accepted there).
pub fn check_value(
    kad_key: &[u8],
    value: &[u8],
    now_ms: u64,
    limits: &ProtocolLimits,
    accept_unsigned: bool,
) -> Result<ResourceRecord, RecordCheckError> {
    let stored = StoredKey::parse(kad_key).ok_or(RecordCheckError::NotAResourceKey)?;
    let key = stored.resource();
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
    if let Some(expected) = stored.creator()
        && record.creator != expected
    {
        tracing::trace!(%expected, found = %record.creator, "record under another creator's key");
        return Err(RecordCheckError::WrongCreator {
            found: record.creator,
        });
    }
    let unsigned_ok = accept_unsigned && stored.creator().is_none();
    match record.verify_for(key, now_ms, limits) {
        Ok(()) => Ok(record),
        Err(RecordError::Signature(VerifyError::Unsigned)) if unsigned_ok => Ok(record),
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
    fn creator_keys_parse_back_to_one_type_id_and_creator() {
        let creator = Keypair::generate_ed25519().public().to_peer_id();
        let rk = ResourceKey::new("session".parse().unwrap(), "s1".parse().unwrap());
        let key = creator_key(&rk, &creator);
        assert_eq!(
            key.to_vec(),
            format!("/lotus/r/session/s1/{creator}").into_bytes()
        );
        assert_eq!(
            StoredKey::parse(key.as_ref()),
            Some(StoredKey::Creator(rk.clone(), creator))
        );
        assert_eq!(
            StoredKey::parse(b"resource:session:s1"),
            Some(StoredKey::Shared(rk))
        );
        for bad in [
            format!("/lotus/r/session/s1/{creator}/x"),
            format!("/lotus/r/session/{creator}"),
            "/lotus/r/session/s1/not-a-peer".to_string(),
            format!("/lotus/r/se:ssion/s1/{creator}"),
        ] {
            assert_eq!(StoredKey::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_creator_key_holds_only_its_creators_signed_record() {
        let (owner, other) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let limits = ProtocolLimits::DEFAULT;
        let rk = ResourceKey::new("session".parse().unwrap(), "s1".parse().unwrap());
        let owners_key = creator_key(&rk, &owner.public().to_peer_id());
        let own = encode_value(&signed(&owner, "session", "s1", NOW + 60_000)).unwrap();
        assert!(check_value(owners_key.as_ref(), &own, NOW, &limits, false).is_ok());
        let squat = encode_value(&signed(&other, "session", "s1", NOW + 60_000)).unwrap();
        assert!(matches!(
            check_value(owners_key.as_ref(), &squat, NOW, &limits, true),
            Err(RecordCheckError::WrongCreator { .. })
        ));
        // Unsigned records are never taken under a creator's key.
        let ts = format!(
            r#"{{"resourceId":"s1","resourceType":"session","creatorPeerId":"{}","data":{{}},"createdAt":{NOW}}}"#,
            owner.public().to_peer_id()
        );
        assert!(matches!(
            check_value(owners_key.as_ref(), ts.as_bytes(), NOW, &limits, true),
            Err(RecordCheckError::Record(RecordError::Signature(
                VerifyError::Unsigned
            )))
        ));
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
