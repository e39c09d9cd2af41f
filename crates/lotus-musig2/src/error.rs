//! The crate's error type.

use crate::keys::PublicKey;

/// Everything that can go wrong in this crate. Nothing here carries secret data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A secret key is zero or not below the curve order.
    #[error("invalid secret key: it must be in 1..n")]
    InvalidSecretKey,
    /// Bytes that are not a 33-byte compressed secp256k1 point.
    #[error("invalid public key: not a 33-byte compressed secp256k1 point")]
    InvalidPublicKey,
    /// Text that is not hexadecimal of the expected length.
    #[error("invalid hex: {0}")]
    InvalidHex(String),
    /// A 64-byte signature whose `r` is not below the field prime or whose `s`
    /// is not below the curve order.
    #[error("invalid signature encoding: r must be below p and s below n")]
    InvalidSignatureEncoding,
    /// A well-formed signature that does not verify for this key and message.
    #[error("signature verification failed")]
    InvalidSignature,
    /// Key aggregation was given no keys.
    #[error("key aggregation needs at least one public key")]
    NoPublicKeys,
    /// The aggregated key is the point at infinity (only reachable with keys
    /// chosen to cancel each other).
    #[error("the aggregated public key is the point at infinity")]
    AggregateKeyAtInfinity,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Randomness(String),
    /// A nonce derivation produced zero (probability about 2^-256).
    #[error("nonce generation produced zero; retry with fresh randomness")]
    ZeroNonce,
    /// Nonce generation's extra input is 4 GiB or longer.
    #[error("nonce generation's extra input must be shorter than 4 GiB")]
    ExtraInputTooLong,
    /// Bytes that are not a 66-byte public nonce (two compressed points).
    #[error("invalid public nonce: not two 33-byte compressed points")]
    InvalidPubNonce,
    /// Nonce aggregation was given no nonces.
    #[error("nonce aggregation needs at least one public nonce")]
    NoPubNonces,
    /// One half of the aggregated nonce, or the session's final nonce
    /// `R1 + b·R2`, is the point at infinity (the SDK cannot sign then either).
    #[error("the aggregated nonce is the point at infinity")]
    AggregateNonceAtInfinity,
    /// The secret nonce was made for another key than the one signing.
    #[error("the secret nonce was generated for a different public key")]
    SecNonceKeyMismatch,
    /// The signing key is not one of the aggregated keys.
    #[error("public key {0} is not in the key aggregation context")]
    SignerNotInKeySet(Box<PublicKey>),
    /// A signer index beyond the number of signer slots.
    #[error("signer index {index} is out of range ({signers} signers)")]
    SignerIndexOutOfRange {
        /// The index given.
        index: usize,
        /// The number of signer slots.
        signers: usize,
    },
    /// 32 bytes that are not a partial signature (not below the curve order).
    #[error("invalid partial signature encoding: not below the curve order")]
    InvalidPartialSignatureEncoding,
    /// A partial signature that does not verify: this signer is to blame.
    #[error("invalid partial signature from signer {signer_index} ({public_key})")]
    InvalidPartialSignature {
        /// The signer's slot in [`KeyAggContext::keys`](crate::KeyAggContext::keys).
        signer_index: usize,
        /// The signer's public key (boxed to keep every `Result` small).
        public_key: Box<PublicKey>,
    },
    /// Several signers sent partial signatures that do not verify.
    #[error("invalid partial signatures from signers {signer_indices:?}")]
    InvalidPartialSignatures {
        /// Their slots in [`KeyAggContext::keys`](crate::KeyAggContext::keys), ascending.
        signer_indices: Vec<usize>,
    },
    /// Not exactly one public nonce or partial signature per signer slot.
    #[error("expected {expected} values, one per signer slot, got {got}")]
    WrongNumberOfSigners {
        /// The number of signer slots.
        expected: usize,
        /// The number given.
        got: usize,
    },
    /// The partial signatures sum to zero (the SDK rejects this signature too).
    #[error("the aggregated signature's s is zero")]
    ZeroSignature,
}
