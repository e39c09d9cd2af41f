//! A signing session: partial signatures, their verification, aggregation.

use core::fmt;

use k256::elliptic_curve::CurveAffine;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::ops::{LinearCombination, MulVartime};
use k256::elliptic_curve::subtle::ConditionallySelectable;
use k256::{ProjectivePoint, Scalar};
use zeroize::Zeroizing;

use crate::curve;
use crate::error::Error;
use crate::hash::{TAG_NONCE_COEFF, tagged_hash};
use crate::keyagg::KeyAggContext;
use crate::keys::SecretKey;
use crate::nonce::{AggNonce, PubNonce, SecNonce};
use crate::schnorr::{Signature, challenge};

/// A partial signature `s_i`, 32 bytes on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PartialSignature(Scalar);

impl PartialSignature {
    /// Parses a 32-byte big-endian scalar below n.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        curve::scalar_below_n(bytes)
            .map(PartialSignature)
            .ok_or(Error::InvalidPartialSignatureEncoding)
    }

    /// The 32-byte big-endian encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_repr().into()
    }
}

impl fmt::Debug for PartialSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartialSignature({})", hex::encode(self.to_bytes()))
    }
}

/// Everything fixed once the nonces are aggregated: the key aggregation, the
/// aggregated nonce and the 32-byte message, and what follows from them (the
/// nonce coefficient `b`, the final nonce `R = R1 + b·R2`, the challenge `e`).
///
/// As in the SDK: `b = H_{MuSig/noncecoef}(compressed(Q) ‖ compressed(R1) ‖
/// compressed(R2) ‖ m)`; when `R.y` is not a quadratic residue every signer
/// negates its nonce (`k = −(k1 + b·k2)`) and partial-signature verification
/// negates the signer's `R_i` to match; the challenge is the Lotus Schnorr one
/// over `R.x` and the compressed `Q`; `s_i = k + e·a_i·x_i`.
#[derive(Clone, Debug)]
pub struct SessionContext {
    key_agg: KeyAggContext,
    agg_nonce: AggNonce,
    message: [u8; 32],
    b: Scalar,
    r_x: [u8; 32],
    negate_nonces: bool,
    e: Scalar,
}

impl SessionContext {
    /// Fixes a session. Fails only when `R1 + b·R2` is the point at infinity
    /// (signers choosing nonces that cancel).
    pub fn new(
        key_agg: &KeyAggContext,
        agg_nonce: &AggNonce,
        message: &[u8; 32],
    ) -> Result<Self, Error> {
        let (r1, r2) = agg_nonce.points();
        let b = curve::reduce(&tagged_hash(
            TAG_NONCE_COEFF,
            &[
                key_agg.aggregated_key().as_bytes(),
                &curve::compress(r1),
                &curve::compress(r2),
                message,
            ],
        ));
        // Public data only: variable time is fine.
        let r =
            (ProjectivePoint::from(*r1) + ProjectivePoint::from(*r2).mul_vartime(&b)).to_affine();
        if bool::from(r.is_identity()) {
            return Err(Error::AggregateNonceAtInfinity);
        }
        let r_x = curve::x_bytes(&r);
        let e = challenge(&r_x, key_agg.aggregated_key(), message);
        Ok(SessionContext {
            key_agg: key_agg.clone(),
            agg_nonce: *agg_nonce,
            message: *message,
            b,
            r_x,
            negate_nonces: !bool::from(curve::has_square_y(&r)),
            e,
        })
    }

    /// The key aggregation this session signs for.
    pub fn key_agg(&self) -> &KeyAggContext {
        &self.key_agg
    }

    /// The aggregated nonce.
    pub fn agg_nonce(&self) -> &AggNonce {
        &self.agg_nonce
    }

    /// The message.
    pub fn message(&self) -> &[u8; 32] {
        &self.message
    }

    /// Whether the final nonce had a non-residue `y`, so every signer negated
    /// its nonces (public information, fixed by the aggregated nonce).
    pub fn nonces_negated(&self) -> bool {
        self.negate_nonces
    }

    /// Signs with a secret nonce, which is consumed (and zeroized) whatever
    /// the outcome: a nonce is never offered for a second signature.
    ///
    /// A key that fills several slots (a duplicate key) signs once per slot,
    /// each time with its own nonce.
    pub fn partial_sign(
        &self,
        sec_nonce: SecNonce,
        secret_key: &SecretKey,
    ) -> Result<PartialSignature, Error> {
        let public_key = secret_key.public_key();
        if sec_nonce.public_key() != public_key {
            return Err(Error::SecNonceKeyMismatch);
        }
        let a = self
            .key_agg
            .coefficient_of(public_key)
            .ok_or_else(|| Error::SignerNotInKeySet(Box::new(*public_key)))?;
        let (k1, k2) = sec_nonce.scalars();
        let k = Zeroizing::new(*k1 + self.b * k2);
        let k = Zeroizing::new(Scalar::conditional_select(
            &k,
            &-*k,
            u8::from(self.negate_nonces).into(),
        ));
        let s = *k + self.e * a * secret_key.scalar();
        Ok(PartialSignature(s))
    }

    /// Checks the partial signature of the signer in `signer_index` (its slot
    /// in [`KeyAggContext::keys`]) against its public nonce:
    /// `s_i·G = ±(R1_i + b·R2_i) + e·a_i·P_i`. A failure names the signer.
    pub fn verify_partial(
        &self,
        signer_index: usize,
        pub_nonce: &PubNonce,
        partial: &PartialSignature,
    ) -> Result<(), Error> {
        let signers = self.key_agg.signer_count();
        let (Some(key), Some(a)) = (
            self.key_agg.keys().get(signer_index),
            self.key_agg.coefficient_scalar(signer_index),
        ) else {
            return Err(Error::SignerIndexOutOfRange {
                index: signer_index,
                signers,
            });
        };
        let (r1, r2) = pub_nonce.points();
        // s·G − e·a·P = σ·(R1 + b·R2), σ = −1 when the nonces are negated;
        // as one multi-scalar multiplication: s·G − e·a·P − σ·b·R2 = σ·R1.
        // Public data only: variable time is fine.
        let (sigma_b, sigma_r1) = if self.negate_nonces {
            (-self.b, -ProjectivePoint::from(*r1))
        } else {
            (self.b, ProjectivePoint::from(*r1))
        };
        let lhs = ProjectivePoint::lincomb_vartime(&[
            (ProjectivePoint::GENERATOR, partial.0),
            (ProjectivePoint::from(*key.point()), -(self.e * a)),
            (ProjectivePoint::from(*r2), -sigma_b),
        ]);
        if lhs == sigma_r1 {
            Ok(())
        } else {
            Err(Error::InvalidPartialSignature {
                signer_index,
                public_key: Box::new(*key),
            })
        }
    }

    /// Sums the partial signatures (one per slot, in slot order) into the
    /// 64-byte Lotus Schnorr signature `R.x ‖ Σ s_i`. Does not check them: a
    /// bad one gives a signature that fails [`verify`](crate::verify); see
    /// [`SessionContext::aggregate_verified`].
    pub fn aggregate(&self, partials: &[PartialSignature]) -> Result<Signature, Error> {
        let expected = self.key_agg.signer_count();
        if partials.len() != expected {
            return Err(Error::WrongNumberOfSigners {
                expected,
                got: partials.len(),
            });
        }
        let s: Scalar = partials.iter().map(|p| p.0).sum();
        if bool::from(s.is_zero()) {
            return Err(Error::ZeroSignature);
        }
        Ok(Signature::from_parts(self.r_x, s))
    }

    /// Verifies every partial signature against its signer's public nonce
    /// (both in slot order), then aggregates. Every signer whose partial
    /// signature fails is named: [`Error::InvalidPartialSignature`] for one,
    /// [`Error::InvalidPartialSignatures`] for several.
    pub fn aggregate_verified(
        &self,
        pub_nonces: &[PubNonce],
        partials: &[PartialSignature],
    ) -> Result<Signature, Error> {
        let expected = self.key_agg.signer_count();
        for got in [pub_nonces.len(), partials.len()] {
            if got != expected {
                return Err(Error::WrongNumberOfSigners { expected, got });
            }
        }
        let mut failures: Vec<Error> = pub_nonces
            .iter()
            .zip(partials)
            .enumerate()
            .filter_map(|(i, (nonce, partial))| self.verify_partial(i, nonce, partial).err())
            .collect();
        match failures.len() {
            0 => self.aggregate(partials),
            1 => Err(failures.remove(0)),
            _ => Err(Error::InvalidPartialSignatures {
                signer_indices: failures
                    .iter()
                    .filter_map(|f| match f {
                        Error::InvalidPartialSignature { signer_index, .. } => Some(*signer_index),
                        _ => None,
                    })
                    .collect(),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;

    fn bytes32(value: &serde_json::Value) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(value.as_str().unwrap(), &mut out).unwrap();
        out
    }

    /// The SDK's sessions, signed here with the SDK's (deterministic) nonces:
    /// every partial signature is byte-for-byte the SDK's. Nonces can only be
    /// injected from inside the crate.
    #[test]
    fn partial_signatures_equal_the_sdks_for_its_nonces() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../tests/vectors/xpi-ts-0.3.1.json")).unwrap();
        let sessions = vectors["musig2"].as_array().unwrap();
        assert!(sessions.len() >= 4);
        for session in sessions {
            let keys = session["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().parse::<PublicKey>().unwrap());
            let ctx = KeyAggContext::new(keys).unwrap();
            let agg =
                AggNonce::from_bytes(&hex::decode(session["aggNonce"].as_str().unwrap()).unwrap())
                    .unwrap();
            let message = bytes32(&session["message"]);
            let context = SessionContext::new(&ctx, &agg, &message).unwrap();
            for slot in session["slots"].as_array().unwrap() {
                let key = SecretKey::from_bytes(&bytes32(&slot["secretKey"])).unwrap();
                let k1 = curve::scalar_below_n(&bytes32(&slot["secNonce"][0])).unwrap();
                let k2 = curve::scalar_below_n(&bytes32(&slot["secNonce"][1])).unwrap();
                let nonce = SecNonce::from_scalars(k1, k2, *key.public_key());
                assert_eq!(
                    hex::encode(nonce.public_nonce().to_bytes()),
                    slot["pubNonce"].as_str().unwrap()
                );
                let partial = context.partial_sign(nonce, &key).unwrap();
                assert_eq!(
                    hex::encode(partial.to_bytes()),
                    slot["partialSignature"].as_str().unwrap(),
                    "{}",
                    session["name"]
                );
            }
        }
    }
}
