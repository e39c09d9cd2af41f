//! MuSig2 nonces: secret nonces (never exposed, used once), public nonces and
//! their aggregate.

use core::fmt;

use k256::elliptic_curve::CurveAffine;
use k256::{AffinePoint, ProjectivePoint, Scalar};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::curve;
use crate::error::Error;
use crate::hash::{TAG_AUX, TAG_NONCE, tagged_hash};
use crate::keyagg::KeyAggContext;
use crate::keys::{PublicKey, SecretKey};

/// A signer's two secret nonces `k1, k2` for one signing session.
///
/// Not `Clone`, consumed by [`SessionContext::partial_sign`](crate::SessionContext::partial_sign)
/// (so one nonce cannot sign twice), zeroized on drop, never printed, and not
/// serializable: a nonce that must survive a restart is a nonce that can be
/// reused, so a restarted session makes new ones.
pub struct SecNonce {
    k1: Scalar,
    k2: Scalar,
    public_key: PublicKey,
}

impl SecNonce {
    /// Makes a fresh nonce pair for `secret_key` in the session over `key_agg`
    /// with 32 bytes from the operating system's random number generator.
    ///
    /// `message` (if already known) and `extra_input` (for example a session
    /// id) are mixed in as BIP-327 does; they add defence in depth against a
    /// weak random number generator, never replace it.
    pub fn generate(
        secret_key: &SecretKey,
        key_agg: &KeyAggContext,
        message: Option<&[u8; 32]>,
        extra_input: &[u8],
    ) -> Result<(SecNonce, PubNonce), Error> {
        let mut rand = Zeroizing::new([0u8; 32]);
        getrandom::fill(rand.as_mut()).map_err(|e| Error::Randomness(e.to_string()))?;
        Self::generate_with_rand(&rand, secret_key, key_agg, message, extra_input)
    }

    /// As [`SecNonce::generate`], with the 32 random bytes supplied by the
    /// caller (a different CSPRNG, a hardware source). They **must** be fresh
    /// and uniformly random for every call: repeating them with a different
    /// co-signer nonce set reveals the secret key.
    ///
    /// The derivation is BIP-327's `NonceGen` with 33-byte compressed keys:
    /// `rand = sk XOR H_{MuSig/aux}(rand')` and
    /// `k_i = H_{MuSig/nonce}(rand ‖ 33 ‖ pk ‖ 33 ‖ Q ‖ msg_prefixed ‖ len(extra) as u32 ‖ extra ‖ i−1) mod n`.
    /// (The SDK's own `muSig2NonceGen` has no randomness of its own: it hashes
    /// secret key, `Q`, message and extra input only, which is not reproduced.)
    pub fn generate_with_rand(
        rand: &[u8; 32],
        secret_key: &SecretKey,
        key_agg: &KeyAggContext,
        message: Option<&[u8; 32]>,
        extra_input: &[u8],
    ) -> Result<(SecNonce, PubNonce), Error> {
        let extra_len = u32::try_from(extra_input.len()).map_err(|_| Error::ExtraInputTooLong)?;
        let mut seed = Zeroizing::new(tagged_hash(TAG_AUX, &[rand]));
        let secret = secret_key.to_bytes();
        for (s, x) in seed.iter_mut().zip(secret.iter()) {
            *s ^= x;
        }
        let public_key = *secret_key.public_key();
        let aggregated = key_agg.aggregated_key();
        let (message_prefix, message_bytes): (&[u8], &[u8]) = match message {
            Some(m) => (&[0x01, 0, 0, 0, 0, 0, 0, 0, 32], m),
            None => (&[0x00], &[]),
        };
        let derive = |i: u8| {
            let hash = Zeroizing::new(tagged_hash(
                TAG_NONCE,
                &[
                    seed.as_ref(),
                    &[33],
                    public_key.as_bytes(),
                    &[33],
                    aggregated.as_bytes(),
                    message_prefix,
                    message_bytes,
                    &extra_len.to_be_bytes(),
                    extra_input,
                    &[i],
                ],
            ));
            curve::reduce(&hash)
        };
        let k1 = derive(0);
        let k2 = derive(1);
        let sec = SecNonce { k1, k2, public_key };
        if bool::from(k1.is_zero() | k2.is_zero()) {
            return Err(Error::ZeroNonce);
        }
        let public = sec.public_nonce();
        Ok((sec, public))
    }

    /// The public half `(k1·G, k2·G)`.
    pub fn public_nonce(&self) -> PubNonce {
        let r1 = ProjectivePoint::mul_by_generator(&self.k1).to_affine();
        let r2 = ProjectivePoint::mul_by_generator(&self.k2).to_affine();
        PubNonce::from_points(r1, r2)
    }

    /// The public key this nonce was made for.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// For the vector tests: a nonce with given scalars (the SDK's vectors
    /// come from its deterministic nonce function).
    #[cfg(test)]
    pub(crate) fn from_scalars(k1: Scalar, k2: Scalar, public_key: PublicKey) -> Self {
        SecNonce { k1, k2, public_key }
    }

    pub(crate) fn scalars(&self) -> (&Scalar, &Scalar) {
        (&self.k1, &self.k2)
    }
}

impl Drop for SecNonce {
    fn drop(&mut self) {
        self.k1.zeroize();
        self.k2.zeroize();
    }
}

impl ZeroizeOnDrop for SecNonce {}

impl fmt::Debug for SecNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecNonce")
            .field("nonces", &"<redacted>")
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// Two points `(R1, R2)` encoded as 66 bytes (two compressed points): a
/// signer's public nonce ([`PubNonce`]) or their sum ([`AggNonce`]).
#[derive(Clone, Copy, PartialEq, Eq)]
struct NoncePoints {
    r1: AffinePoint,
    r2: AffinePoint,
}

impl NoncePoints {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 66] = bytes.try_into().ok()?;
        let (a, b) = bytes.split_at(33);
        let r1 = curve::decompress(a.try_into().ok()?)?;
        let r2 = curve::decompress(b.try_into().ok()?)?;
        Some(NoncePoints { r1, r2 })
    }

    fn to_bytes(self) -> [u8; 66] {
        let mut out = [0u8; 66];
        let (a, b) = out.split_at_mut(33);
        a.copy_from_slice(&curve::compress(&self.r1));
        b.copy_from_slice(&curve::compress(&self.r2));
        out
    }
}

/// A signer's public nonce `(R1, R2) = (k1·G, k2·G)`, 66 bytes on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PubNonce(NoncePoints);

impl PubNonce {
    /// Parses two 33-byte compressed points (neither the point at infinity).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        NoncePoints::from_bytes(bytes)
            .map(PubNonce)
            .ok_or(Error::InvalidPubNonce)
    }

    /// The 66-byte encoding.
    pub fn to_bytes(&self) -> [u8; 66] {
        self.0.to_bytes()
    }

    fn from_points(r1: AffinePoint, r2: AffinePoint) -> Self {
        PubNonce(NoncePoints { r1, r2 })
    }

    pub(crate) fn points(&self) -> (&AffinePoint, &AffinePoint) {
        (&self.0.r1, &self.0.r2)
    }
}

impl fmt::Debug for PubNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubNonce({})", hex::encode(self.to_bytes()))
    }
}

/// The aggregated nonce `(Σ R1_i, Σ R2_i)`, 66 bytes on the wire.
///
/// Neither half may be the point at infinity: the SDK cannot represent that
/// case (BIP-327 can); it only arises when signers choose nonces that cancel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AggNonce(NoncePoints);

impl AggNonce {
    /// Parses two 33-byte compressed points (neither the point at infinity).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        NoncePoints::from_bytes(bytes)
            .map(AggNonce)
            .ok_or(Error::InvalidPubNonce)
    }

    /// The 66-byte encoding.
    pub fn to_bytes(&self) -> [u8; 66] {
        self.0.to_bytes()
    }

    pub(crate) fn points(&self) -> (&AffinePoint, &AffinePoint) {
        (&self.0.r1, &self.0.r2)
    }
}

impl fmt::Debug for AggNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AggNonce({})", hex::encode(self.to_bytes()))
    }
}

/// Sums the signers' public nonces (order does not matter).
pub fn aggregate_nonces(nonces: &[PubNonce]) -> Result<AggNonce, Error> {
    if nonces.is_empty() {
        return Err(Error::NoPubNonces);
    }
    let (r1, r2) = nonces.iter().fold(
        (ProjectivePoint::IDENTITY, ProjectivePoint::IDENTITY),
        |(r1, r2), nonce| (r1 + nonce.0.r1, r2 + nonce.0.r2),
    );
    let (r1, r2) = (r1.to_affine(), r2.to_affine());
    if bool::from(r1.is_identity() | r2.is_identity()) {
        return Err(Error::AggregateNonceAtInfinity);
    }
    Ok(AggNonce(NoncePoints { r1, r2 }))
}
