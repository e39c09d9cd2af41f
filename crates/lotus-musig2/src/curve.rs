//! The few secp256k1 operations the scheme needs, all on `k256`'s types.

use k256::elliptic_curve::group::GroupEncoding;
use k256::elliptic_curve::hazmat::FieldArithmetic;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::subtle::Choice;
use k256::elliptic_curve::{CurveAffine, PrimeField};
use k256::{AffinePoint, FieldBytes, Scalar, Secp256k1};

/// secp256k1's base-field element (k256 does not name the type publicly).
type FieldElement = <Secp256k1 as FieldArithmetic>::FieldElement;

/// A 32-byte big-endian integer reduced modulo the curve order `n` (what the
/// SDK's `BN.fromBuffer(h).umod(n)` computes).
pub(crate) fn reduce(bytes: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*bytes))
}

/// A 32-byte big-endian integer if it is below `n`.
pub(crate) fn scalar_below_n(bytes: &[u8; 32]) -> Option<Scalar> {
    Scalar::from_repr(FieldBytes::from(*bytes)).into_option()
}

/// Whether the point's `y` is a quadratic residue mod p (Jacobi symbol 1), the
/// SDK's `Point.hasSquare()`; false for the point at infinity, as there.
///
/// Computed as "y has a square root" with k256's constant-time field sqrt.
pub(crate) fn has_square_y(point: &AffinePoint) -> Choice {
    let y = FieldElement::from_repr(point.y()).into_option();
    match y {
        // `y()` is always canonical; a point's y is never zero on secp256k1.
        Some(y) => y.sqrt().is_some() & !point.is_identity(),
        None => Choice::from(0),
    }
}

/// The 32-byte big-endian x coordinate.
pub(crate) fn x_bytes(point: &AffinePoint) -> [u8; 32] {
    point.x().into()
}

/// The 33-byte SEC1 compressed encoding (meaningless for the identity, which
/// callers exclude).
pub(crate) fn compress(point: &AffinePoint) -> [u8; 33] {
    point.to_bytes().into()
}

/// Decodes a 33-byte compressed point other than the point at infinity.
pub(crate) fn decompress(bytes: &[u8; 33]) -> Option<AffinePoint> {
    if !matches!(bytes.first(), Some(0x02 | 0x03)) {
        return None;
    }
    let point: AffinePoint =
        AffinePoint::from_bytes(&k256::CompressedPoint::from(*bytes)).into_option()?;
    if bool::from(point.is_identity()) {
        return None;
    }
    Some(point)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use k256::ProjectivePoint;
    use k256::elliptic_curve::Field;

    /// The Legendre symbol by Euler's criterion, y^((p-1)/2), with k256's own
    /// exponentiation: an independent check of `has_square_y`.
    fn euler_is_residue(point: &AffinePoint) -> bool {
        // (p - 1) / 2 as little-endian u64 limbs.
        const EXP: [u64; 4] = [
            0xffff_ffff_7fff_fe17,
            0xffff_ffff_ffff_ffff,
            0xffff_ffff_ffff_ffff,
            0x7fff_ffff_ffff_ffff,
        ];
        let y = FieldElement::from_repr(point.y()).unwrap();
        y.pow_vartime(EXP).to_repr() == FieldElement::ONE.to_repr()
    }

    #[test]
    fn residue_check_agrees_with_euler_criterion() {
        let mut residues = 0;
        let mut point = ProjectivePoint::GENERATOR;
        for _ in 0..64 {
            let affine = point.to_affine();
            let expected = euler_is_residue(&affine);
            assert_eq!(bool::from(has_square_y(&affine)), expected);
            assert_eq!(bool::from(has_square_y(&(-affine))), !expected);
            residues += usize::from(expected);
            point += ProjectivePoint::GENERATOR * Scalar::from(7u64);
        }
        // Both outcomes occur, so the comparison above means something.
        assert!(
            residues > 10 && residues < 54,
            "{residues} residues out of 64"
        );
        assert!(!bool::from(has_square_y(&AffinePoint::IDENTITY)));
    }

    #[test]
    fn decompress_rejects_identity_and_bad_prefixes() {
        assert_eq!(decompress(&[0u8; 33]), None);
        let mut g = compress(&AffinePoint::GENERATOR);
        assert_eq!(decompress(&g), Some(AffinePoint::GENERATOR));
        g[0] = 0x04;
        assert_eq!(decompress(&g), None);
        // x = 5 is not on the curve (5³ + 7 = 132 is not a square mod p).
        let mut bad = [0u8; 33];
        bad[0] = 0x02;
        bad[32] = 5;
        assert_eq!(decompress(&bad), None);
    }
}
