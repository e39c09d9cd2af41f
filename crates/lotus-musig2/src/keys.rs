//! Secret and public keys.

use core::fmt;
use core::str::FromStr;

use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::subtle::ConstantTimeEq;
use k256::{AffinePoint, ProjectivePoint, Scalar};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::curve;
use crate::error::Error;

/// A secp256k1 secret key: a scalar in `1..n`.
///
/// Zeroized on drop, never printed (its `Debug` shows only the public key),
/// and not `Clone`: copy it out explicitly with [`SecretKey::to_bytes`] if you
/// must.
pub struct SecretKey {
    scalar: Scalar,
    public: PublicKey,
}

impl SecretKey {
    /// Parses a 32-byte big-endian secret key (rejects 0 and values ≥ n, as
    /// the SDK does).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        let scalar = curve::scalar_below_n(bytes).ok_or(Error::InvalidSecretKey)?;
        Self::from_scalar(scalar)
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        loop {
            getrandom::fill(bytes.as_mut()).map_err(|e| Error::Randomness(e.to_string()))?;
            // Rejects with probability about 2^-128.
            if let Ok(key) = Self::from_bytes(&bytes) {
                return Ok(key);
            }
        }
    }

    pub(crate) fn from_scalar(scalar: Scalar) -> Result<Self, Error> {
        if bool::from(scalar.is_zero()) {
            return Err(Error::InvalidSecretKey);
        }
        let point = ProjectivePoint::mul_by_generator(&scalar).to_affine();
        Ok(SecretKey {
            scalar,
            public: PublicKey::from_point(point),
        })
    }

    /// The 32-byte big-endian secret, in a buffer zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.scalar.to_repr().into())
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn scalar(&self) -> &Scalar {
        &self.scalar
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}

impl ZeroizeOnDrop for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("secret", &"<redacted>")
            .field("public", &self.public)
            .finish()
    }
}

impl PartialEq for SecretKey {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        self.scalar.ct_eq(&other.scalar).into()
    }
}

impl Eq for SecretKey {}

/// A secp256k1 public key, always handled in its 33-byte compressed form (the
/// form the SDK hashes in key aggregation and in the Schnorr challenge).
///
/// Ordered by its compressed bytes, the order the SDK sorts keys in.
#[derive(Clone, Copy)]
pub struct PublicKey {
    point: AffinePoint,
    bytes: [u8; 33],
}

impl PublicKey {
    /// Parses a 33-byte compressed key (prefix 02 or 03, x on the curve).
    /// Uncompressed keys are refused: the SDK would hash their 65 bytes and
    /// aggregate to a different key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bytes: &[u8; 33] = bytes.try_into().map_err(|_| Error::InvalidPublicKey)?;
        let point = curve::decompress(bytes).ok_or(Error::InvalidPublicKey)?;
        Ok(PublicKey {
            point,
            bytes: *bytes,
        })
    }

    /// The key of a point other than the identity (callers check).
    pub(crate) fn from_point(point: AffinePoint) -> Self {
        PublicKey {
            point,
            bytes: curve::compress(&point),
        }
    }

    /// The 33-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; 33] {
        self.bytes
    }

    /// The 33-byte compressed encoding, borrowed.
    pub fn as_bytes(&self) -> &[u8; 33] {
        &self.bytes
    }

    pub(crate) fn point(&self) -> &AffinePoint {
        &self.point
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.bytes))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = Error;

    /// Parses 66 hex digits (a compressed key).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bytes = hex::decode(s).map_err(|e| Error::InvalidHex(e.to_string()))?;
        PublicKey::from_bytes(&bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_range() {
        assert_eq!(
            SecretKey::from_bytes(&[0u8; 32]).unwrap_err(),
            Error::InvalidSecretKey
        );
        let n: [u8; 32] =
            hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            SecretKey::from_bytes(&n).unwrap_err(),
            Error::InvalidSecretKey
        );
        let mut n_minus_1 = n;
        n_minus_1[31] -= 1;
        let key = SecretKey::from_bytes(&n_minus_1).unwrap();
        assert_eq!(*key.to_bytes(), n_minus_1);
        let mut one = [0u8; 32];
        one[31] = 1;
        let g = SecretKey::from_bytes(&one).unwrap();
        assert_eq!(
            g.public_key().to_string(),
            "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        );
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let mut bytes = [0u8; 32];
        bytes[31] = 0x2a;
        bytes[0] = 0x5e;
        let key = SecretKey::from_bytes(&bytes).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.contains("5e0000"), "{debug}");
        assert!(debug.contains(&key.public_key().to_string()));
    }

    #[test]
    fn public_key_parsing() {
        let g = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        let key: PublicKey = g.parse().unwrap();
        assert_eq!(key.to_string(), g);
        assert_eq!(PublicKey::from_bytes(&key.to_bytes()).unwrap(), key);
        assert_eq!(
            PublicKey::from_bytes(&key.to_bytes()[..32]).unwrap_err(),
            Error::InvalidPublicKey
        );
        assert_eq!(
            PublicKey::from_bytes(&[0u8; 33]).unwrap_err(),
            Error::InvalidPublicKey
        );
        assert!(matches!(
            "zz".parse::<PublicKey>(),
            Err(Error::InvalidHex(_))
        ));
        // The uncompressed form of G is refused.
        let uncompressed = hex::decode(
            "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
             483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8",
        )
        .unwrap();
        assert_eq!(
            PublicKey::from_bytes(&uncompressed).unwrap_err(),
            Error::InvalidPublicKey
        );
    }
}
