//! Single-key Lotus Schnorr signatures (the SDK's `Schnorr.sign` / `verify`).

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use k256::elliptic_curve::CurveAffine;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::ops::MulByGeneratorVartime;
use k256::elliptic_curve::subtle::ConditionallySelectable;
use k256::{ProjectivePoint, Scalar};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::curve;
use crate::error::Error;
use crate::hash::sha256;
use crate::keys::{PublicKey, SecretKey};

/// secp256k1's field prime p, big-endian.
const FIELD_PRIME: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xfc, 0x2f,
];

/// The extra data the SDK's RFC 6979 nonce function mixes in (16 bytes, two
/// trailing spaces).
const NONCE_ALGORITHM: &[u8; 16] = b"Schnorr+SHA256  ";

/// A 64-byte Lotus Schnorr signature `r ‖ s`: `r` is the x coordinate of the
/// nonce point (below p), `s` a scalar (below n).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    r: [u8; 32],
    s: Scalar,
}

impl Signature {
    /// Parses `r ‖ s`, refusing `r ≥ p` or `s ≥ n` (signatures the SDK's
    /// verification rejects for the same reasons).
    pub fn from_bytes(bytes: &[u8; 64]) -> Result<Self, Error> {
        let (r, s) = bytes.split_at(32);
        let r: [u8; 32] = r.try_into().map_err(|_| Error::InvalidSignatureEncoding)?;
        let s: [u8; 32] = s.try_into().map_err(|_| Error::InvalidSignatureEncoding)?;
        if r >= FIELD_PRIME {
            return Err(Error::InvalidSignatureEncoding);
        }
        let s = curve::scalar_below_n(&s).ok_or(Error::InvalidSignatureEncoding)?;
        Ok(Signature { r, s })
    }

    /// Parses 128 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(text, &mut bytes).map_err(|e| Error::InvalidHex(e.to_string()))?;
        Signature::from_bytes(&bytes)
    }

    /// `r ‖ s`.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        let (r, s) = out.split_at_mut(32);
        r.copy_from_slice(&self.r);
        s.copy_from_slice(&self.s.to_repr());
        out
    }

    pub(crate) fn from_parts(r: [u8; 32], s: Scalar) -> Self {
        Signature { r, s }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// The challenge `e = SHA256(r ‖ compressed(P) ‖ m) mod n`.
pub(crate) fn challenge(r: &[u8; 32], key: &PublicKey, message: &[u8; 32]) -> Scalar {
    curve::reduce(&sha256(&[r, key.as_bytes(), message]))
}

/// Signs a 32-byte message exactly as the SDK's `Schnorr.sign` does, so the
/// signature is byte-for-byte the SDK's: deterministic nonce `k` from RFC 6979
/// (HMAC-SHA256 over `secret ‖ message ‖ "Schnorr+SHA256␣␣"`, the message
/// *not* reduced mod n), `k` negated when `k·G` has a non-residue `y`, then
/// `s = k + e·d`.
pub fn sign(secret_key: &SecretKey, message: &[u8; 32]) -> Signature {
    let d = secret_key.scalar();
    let k = Zeroizing::new(rfc6979_nonce(secret_key, message));
    let nonce_point = ProjectivePoint::mul_by_generator(&k).to_affine();
    let r = curve::x_bytes(&nonce_point);
    // R.y's residuosity is public (it is fixed by the final signature), but
    // the negation is a constant-time select all the same.
    let k = Zeroizing::new(Scalar::conditional_select(
        &-*k,
        &k,
        curve::has_square_y(&nonce_point),
    ));
    let e = challenge(&r, secret_key.public_key(), message);
    Signature::from_parts(r, *k + e * d)
}

/// Verifies a Lotus Schnorr signature: `R = s·G − e·P` must not be the point
/// at infinity, must have a quadratic-residue `y`, and `R.x = r`.
pub fn verify(
    public_key: &PublicKey,
    message: &[u8; 32],
    signature: &Signature,
) -> Result<(), Error> {
    let e = challenge(&signature.r, public_key, message);
    let p = ProjectivePoint::from(*public_key.point());
    // Public data only: variable time is fine.
    let point =
        ProjectivePoint::mul_by_generator_and_mul_add_vartime(&signature.s, &-e, &p).to_affine();
    let valid = !bool::from(point.is_identity())
        && bool::from(curve::has_square_y(&point))
        && curve::x_bytes(&point) == signature.r;
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidSignature)
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// RFC 6979 (section 3.2) HMAC-SHA256 nonce with the SDK's inputs: key
/// material `secret ‖ message ‖ "Schnorr+SHA256  "`, the message used as given
/// (not reduced mod n), candidates retried until in 1..n.
fn rfc6979_nonce(secret_key: &SecretKey, message: &[u8; 32]) -> Scalar {
    let x = secret_key.to_bytes();
    let mut v = Zeroizing::new([0x01u8; 32]);
    let mut k = Zeroizing::new([0x00u8; 32]);
    let material: [&[u8]; 3] = [x.as_ref(), message, NONCE_ALGORITHM];
    k = hmac(
        &k,
        &[v.as_ref(), &[0x00], material[0], material[1], material[2]],
    );
    v = hmac(&k, &[v.as_ref()]);
    k = hmac(
        &k,
        &[v.as_ref(), &[0x01], material[0], material[1], material[2]],
    );
    v = hmac(&k, &[v.as_ref()]);
    loop {
        v = hmac(&k, &[v.as_ref()]);
        if let Some(candidate) = curve::scalar_below_n(&v)
            && !bool::from(candidate.is_zero())
        {
            return candidate;
        }
        // Reached with probability about 2^-128.
        k = hmac(&k, &[v.as_ref(), &[0x00]]);
        v = hmac(&k, &[v.as_ref()]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn signature_encoding_bounds() {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&FIELD_PRIME);
        assert_eq!(
            Signature::from_bytes(&bytes).unwrap_err(),
            Error::InvalidSignatureEncoding
        );
        bytes[31] -= 1; // p - 1
        let sig = Signature::from_bytes(&bytes).unwrap();
        assert_eq!(sig.to_bytes(), bytes);
        bytes[32..].copy_from_slice(
            &hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
                .unwrap(),
        );
        assert_eq!(
            Signature::from_bytes(&bytes).unwrap_err(),
            Error::InvalidSignatureEncoding
        );
        assert!(matches!(
            Signature::from_hex("00"),
            Err(Error::InvalidHex(_))
        ));
    }

    #[test]
    fn sign_then_verify() {
        let key = SecretKey::from_bytes(&[0x11; 32]).unwrap();
        let message = [0x22; 32];
        let sig = sign(&key, &message);
        assert_eq!(verify(key.public_key(), &message, &sig), Ok(()));
        // Deterministic.
        assert_eq!(sign(&key, &message), sig);
        let mut other = message;
        other[0] ^= 1;
        assert_eq!(
            verify(key.public_key(), &other, &sig),
            Err(Error::InvalidSignature)
        );
    }
}
