//! Signer adverts: "the key `P` signs at node `N`", signed twice.
//!
//! An advert is a resource record of type [`ADVERT_TYPE`] whose id is the
//! signer's compressed public key in hex. The record is signed by the node's
//! identity (so its creator is `N`), and its data carries a Lotus Schnorr
//! signature by `P` over `N`'s PeerId ([`proof_message`]). Nobody can claim
//! another's key (they lack `P`'s secret) nor advertise a key for another
//! node (they lack `N`'s identity key); a squatter's record under the same id
//! is found alongside the real one and fails the check.

use std::time::Duration;

use lotus_musig2::{PublicKey, SecretKey, Signature};
use p2p_core::{AnnounceOptions, Announced, Node, PeerId, ResourceError, ResourceRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The resource type of signer adverts.
pub const ADVERT_TYPE: &str = "musig2-signer";
/// Domain separation of the proof message.
const PROOF_DOMAIN: &[u8] = b"lotus-p2p/musig2/signer-advert/v1";

/// A verified signer advert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerAdvert {
    /// The signer key.
    pub public_key: PublicKey,
    /// The node that signs with it.
    pub peer: PeerId,
    /// When the advert was made, ms since the Unix epoch.
    pub created_ms: u64,
}

/// The JSON data of an advert record.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AdvertData {
    public_key: String,
    peer_id: String,
    created: u64,
    proof: String,
}

/// Why a record is not a valid advert.
#[derive(Debug, thiserror::Error)]
pub enum AdvertError {
    /// The record is not of [`ADVERT_TYPE`].
    #[error("not a signer advert")]
    WrongType,
    /// Its data is not an advert's JSON.
    #[error("malformed advert data")]
    Malformed(#[from] serde_json::Error),
    /// A key, PeerId or proof that does not parse.
    #[error("malformed advert field: {0}")]
    Field(&'static str),
    /// The record's id, creator or time is not the advert's.
    #[error("the record does not match the advert it carries")]
    Mismatch,
    /// The record is unsigned (its creator is not authenticated).
    #[error("the advert record is unsigned")]
    Unsigned,
    /// The signer key's proof does not verify.
    #[error("the signer key's proof does not verify")]
    BadProof(#[source] lotus_musig2::Error),
}

/// The 32-byte message the signer key signs:
/// `SHA256(domain ‖ compressed key ‖ PeerId bytes ‖ created (u64 BE))`.
pub fn proof_message(public_key: &PublicKey, peer: &PeerId, created_ms: u64) -> [u8; 32] {
    Sha256::new()
        .chain_update(PROOF_DOMAIN)
        .chain_update(public_key.as_bytes())
        .chain_update(peer.to_bytes())
        .chain_update(created_ms.to_be_bytes())
        .finalize()
        .into()
}

/// The resource type and id under which `key` is advertised.
pub fn advert_key(
    key: &PublicKey,
) -> Result<(p2p_core::ResourceType, p2p_core::ResourceId), ResourceError> {
    let name_error = |e: p2p_core::NameError| ResourceError::Data(std::sync::Arc::new(e));
    Ok((
        ADVERT_TYPE.parse().map_err(name_error)?,
        key.to_string().parse().map_err(name_error)?,
    ))
}

impl SignerAdvert {
    /// Checks a record: an advert for the key its id names, created by the
    /// node it names, with a valid proof by the key.
    pub fn from_record(record: &ResourceRecord) -> Result<Self, AdvertError> {
        if record.key.resource_type().as_str() != ADVERT_TYPE {
            return Err(AdvertError::WrongType);
        }
        if record.signature.is_none() {
            return Err(AdvertError::Unsigned);
        }
        let data: AdvertData = serde_json::from_slice(&record.data)?;
        let public_key: PublicKey = data
            .public_key
            .parse()
            .map_err(|_| AdvertError::Field("publicKey"))?;
        let peer: PeerId = data
            .peer_id
            .parse()
            .map_err(|_| AdvertError::Field("peerId"))?;
        let proof = Signature::from_hex(&data.proof).map_err(|_| AdvertError::Field("proof"))?;
        if record.key.resource_id().as_str() != data.public_key || record.creator != peer {
            return Err(AdvertError::Mismatch);
        }
        lotus_musig2::verify(
            &public_key,
            &proof_message(&public_key, &peer, data.created),
            &proof,
        )
        .map_err(AdvertError::BadProof)?;
        Ok(SignerAdvert {
            public_key,
            peer,
            created_ms: data.created,
        })
    }
}

/// Announces that `node` signs with `key` (republished while the node runs).
pub async fn publish(node: &Node, key: &SecretKey) -> Result<Announced, ResourceError> {
    let created = p2p_protocol::now_ms();
    let public_key = *key.public_key();
    let proof = lotus_musig2::sign(key, &proof_message(&public_key, &node.peer_id(), created));
    let data = AdvertData {
        public_key: public_key.to_string(),
        peer_id: node.peer_id().to_string(),
        created,
        proof: proof.to_string(),
    };
    let data =
        serde_json::to_vec(&data).map_err(|e| ResourceError::Data(std::sync::Arc::new(e)))?;
    let mut options = AnnounceOptions::default();
    options.republish = true;
    let (resource_type, resource_id) = advert_key(&public_key)?;
    node.announce(&resource_type, &resource_id, data, options)
        .await
}

/// Finds the node that signs with `key`: the newest valid advert among every
/// record under its id (a squatter's records fail the check and are skipped).
pub async fn find(
    node: &Node,
    key: &PublicKey,
    timeout: Duration,
) -> Result<SignerAdvert, ResourceError> {
    let (resource_type, resource_id) = advert_key(key)?;
    let records = node
        .discover_all(&resource_type, &resource_id, timeout)
        .await?;
    records
        .iter()
        .filter_map(|record| match SignerAdvert::from_record(record) {
            Ok(advert) if advert.public_key == *key => Some(advert),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(creator = %record.creator, %error, "not a valid signer advert");
                None
            }
        })
        .max_by_key(|advert| advert.created_ms)
        .ok_or(ResourceError::NotFound)
}
