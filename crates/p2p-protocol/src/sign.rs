//! Signing and verification, shared by messages and resource records.
//!
//! Verification proves two things: the signature is valid over the canonical
//! bytes, and the key that made it *is* the claimed signer's PeerId. For ed25519
//! and secp256k1 the PeerId embeds the public key (identity multihash), so the
//! key is taken from the PeerId itself; for other key types the public key travels
//! beside the signature and must hash to the PeerId.

use libp2p_identity::{Keypair, PeerId, PublicKey};

/// Multihash code of the identity hash (the PeerId inlines the key).
const IDENTITY_MULTIHASH: u64 = 0x00;

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The keypair does not belong to the peer named as signer.
    #[error("keypair belongs to {key_peer}, but the signer field says {signer}")]
    WrongSigner {
        /// PeerId of the keypair.
        key_peer: Box<PeerId>,
        /// The signer named in the value.
        signer: Box<PeerId>,
    },
    /// The key failed to sign.
    #[error("signing failed: {0}")]
    Signing(#[from] libp2p_identity::SigningError),
}

/// Why verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// There is no signature.
    #[error("unsigned")]
    Unsigned,
    /// The signer's public key could not be obtained or decoded.
    #[error("the signer's public key is missing or undecodable")]
    UndecodableKey,
    /// The public key carried beside the signature is not the signer's.
    #[error("the public key does not belong to the signer")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Message {}
    impl Sealed for crate::ResourceRecord {}
}

/// A value with a signer, canonical signing bytes and a signature slot.
/// Implemented by [`crate::Message`] and [`crate::ResourceRecord`] (sealed, so every
/// signed value keeps its own domain tag).
pub trait Signable: sealed::Sealed {
    /// The peer that must have signed.
    fn signer(&self) -> &PeerId;
    /// The domain-separated canonical bytes the signature covers.
    fn signing_bytes(&self) -> Vec<u8>;
    /// The signature, if any.
    fn signature(&self) -> Option<&[u8]>;
    /// The signer's protobuf-encoded public key, if carried.
    fn public_key(&self) -> Option<&[u8]>;
    /// Stores a signature and, when needed, the signer's public key.
    fn set_signature(&mut self, signature: Vec<u8>, public_key: Option<Vec<u8>>);
}

/// Signs `value` with `key`, which must belong to `value`'s signer.
pub fn sign<T: Signable>(value: &mut T, key: &Keypair) -> Result<(), SignError> {
    let public = key.public();
    let key_peer = public.to_peer_id();
    if key_peer != *value.signer() {
        return Err(SignError::WrongSigner {
            key_peer: Box::new(key_peer),
            signer: Box::new(*value.signer()),
        });
    }
    let signature = key.sign(&value.signing_bytes())?;
    let public_key = (!inlines_key(&key_peer)).then(|| public.encode_protobuf());
    value.set_signature(signature, public_key);
    Ok(())
}

/// Verifies `value`'s signature and that it was made by `value`'s signer.
pub fn verify<T: Signable>(value: &T) -> Result<(), VerifyError> {
    verify_bytes(value, &value.signing_bytes())
}

/// Checks `value`'s signature over `signing_bytes` with the signer's `key`,
/// which the caller resolved with [`signer_key`] (and may have cached).
pub(crate) fn verify_bytes_with<T: Signable>(
    value: &T,
    signing_bytes: &[u8],
    key: &PublicKey,
) -> Result<(), VerifyError> {
    let signature = value.signature().ok_or(VerifyError::Unsigned)?;
    if key.verify(signing_bytes, signature) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

fn verify_bytes<T: Signable>(value: &T, signing_bytes: &[u8]) -> Result<(), VerifyError> {
    value.signature().ok_or(VerifyError::Unsigned)?;
    let key = signer_key(value.signer(), value.public_key())?;
    verify_bytes_with(value, signing_bytes, &key)
}

fn inlines_key(peer: &PeerId) -> bool {
    peer.as_ref().code() == IDENTITY_MULTIHASH
}

/// The public key of `signer`: from the PeerId when inlined, else the carried key
/// after checking it hashes to `signer`. The result depends only on `signer`, so
/// it may be cached per PeerId.
pub(crate) fn signer_key(
    signer: &PeerId,
    carried: Option<&[u8]>,
) -> Result<PublicKey, VerifyError> {
    let multihash = signer.as_ref();
    if multihash.code() == IDENTITY_MULTIHASH {
        return PublicKey::try_decode_protobuf(multihash.digest())
            .map_err(|_| VerifyError::UndecodableKey);
    }
    let key = PublicKey::try_decode_protobuf(carried.ok_or(VerifyError::UndecodableKey)?)
        .map_err(|_| VerifyError::UndecodableKey)?;
    if key.to_peer_id() == *signer {
        Ok(key)
    } else {
        Err(VerifyError::KeyMismatch)
    }
}
