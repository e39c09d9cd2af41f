//! SHA-256 and the BIP-340-style tagged hashes the SDK's MuSig2 uses.

use sha2::{Digest, Sha256};

/// Tag of the key-list hash `L`.
pub(crate) const TAG_KEYAGG_LIST: &str = "KeyAgg list";
/// Tag of the key-aggregation coefficients.
pub(crate) const TAG_KEYAGG_COEFF: &str = "KeyAgg coefficient";
/// Tag of the nonce coefficient `b`.
pub(crate) const TAG_NONCE_COEFF: &str = "MuSig/noncecoef";
/// Tag hiding the secret key in nonce generation.
pub(crate) const TAG_AUX: &str = "MuSig/aux";
/// Tag of nonce generation.
pub(crate) const TAG_NONCE: &str = "MuSig/nonce";

/// `SHA256(parts[0] ‖ parts[1] ‖ …)`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// `SHA256(SHA256(tag) ‖ SHA256(tag) ‖ parts…)`.
pub(crate) fn tagged_hash(tag: &str, parts: &[&[u8]]) -> [u8; 32] {
    let tag_hash = sha256(&[tag.as_bytes()]);
    let mut hasher = Sha256::new();
    hasher.update(tag_hash);
    hasher.update(tag_hash);
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}
