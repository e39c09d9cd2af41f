//! Key aggregation, as the SDK's `musigKeyAgg` computes it.

use core::borrow::Borrow;

use k256::elliptic_curve::CurveAffine;
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::ops::LinearCombination;
use k256::{ProjectivePoint, Scalar};

use crate::curve;
use crate::error::Error;
use crate::hash::{TAG_KEYAGG_COEFF, TAG_KEYAGG_LIST, tagged_hash};
use crate::keys::PublicKey;

/// The result of aggregating public keys: the aggregated key `Q`, the signer
/// slots (the keys sorted) and each slot's coefficient.
///
/// This reproduces the Lotus SDK's `musigKeyAgg` (lotus-sdk 59ab9b4, npm
/// `xpi-ts` 0.3.1) exactly, including where it departs from BIP-327 — an
/// aggregated key that differs from the SDK's is an address whose funds
/// nobody can spend:
///
/// - the keys are **sorted** by their compressed bytes first, so the input
///   order does not matter, and `L = H_{KeyAgg list}(sorted keys)`;
/// - key `i` gets `a_i = H_{KeyAgg coefficient}(L ‖ key)` (used mod n), except
///   that the key in sorted slot 1 gets `a = 1` when it **equals** the key in
///   slot 0 (BIP-327 gives 1 to the first key *different* from the first);
/// - duplicate keys are accepted; the SDK keeps one coefficient per distinct
///   key, the one computed at its last slot, so every copy of a key shares it.
///   In effect: the smallest key gets 1 when it occurs exactly twice, every
///   other key (and the smallest key occurring once or three or more times)
///   its hash coefficient;
/// - a single key is not mapped to itself: `Q = a·P` with its hash coefficient;
/// - `Q = Σ a_i·P_i` over the sorted slots, used as is: the SDK never negates
///   the aggregated key or the secret keys for `Q`'s parity or residuosity
///   (the Lotus challenge commits to the full compressed `Q`, so none is
///   needed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAggContext {
    keys: Vec<PublicKey>,
    coefficients: Vec<Scalar>,
    aggregated: PublicKey,
}

impl KeyAggContext {
    /// Aggregates the keys (any order, duplicates allowed, at least one).
    pub fn new<I>(keys: I) -> Result<Self, Error>
    where
        I: IntoIterator,
        I::Item: Borrow<PublicKey>,
    {
        let mut keys: Vec<PublicKey> = keys.into_iter().map(|k| *k.borrow()).collect();
        if keys.is_empty() {
            return Err(Error::NoPublicKeys);
        }
        keys.sort();
        let list: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes().as_slice()).collect();
        let l = tagged_hash(TAG_KEYAGG_LIST, &list);
        let first = keys.first().copied();
        let mut coefficients: Vec<Scalar> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                if i == 1 && Some(*key) == first {
                    Scalar::ONE
                } else {
                    curve::reduce(&tagged_hash(TAG_KEYAGG_COEFF, &[&l, key.as_bytes()]))
                }
            })
            .collect();
        // One coefficient per distinct key, the one of its last slot (the SDK
        // stores them in a map keyed by the key, later slots overwriting).
        // Equal keys are adjacent once sorted.
        for i in (0..keys.len().saturating_sub(1)).rev() {
            if keys.get(i) == keys.get(i + 1)
                && let Some(&next) = coefficients.get(i + 1)
                && let Some(c) = coefficients.get_mut(i)
            {
                *c = next;
            }
        }
        let terms: Vec<(ProjectivePoint, Scalar)> = keys
            .iter()
            .zip(&coefficients)
            .map(|(key, a)| (ProjectivePoint::from(*key.point()), *a))
            .collect();
        // Public data: variable time is fine.
        let q = ProjectivePoint::lincomb_vartime(terms.as_slice()).to_affine();
        if bool::from(q.is_identity()) {
            return Err(Error::AggregateKeyAtInfinity);
        }
        Ok(KeyAggContext {
            keys,
            coefficients,
            aggregated: PublicKey::from_point(q),
        })
    }

    /// The aggregated key `Q`: the key to pay to, and the key the final
    /// signature verifies under with [`verify`](crate::verify).
    pub fn aggregated_key(&self) -> &PublicKey {
        &self.aggregated
    }

    /// The signer slots: the keys sorted (duplicates kept). Public nonces and
    /// partial signatures are indexed by these slots.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The number of signer slots.
    pub fn signer_count(&self) -> usize {
        self.keys.len()
    }

    /// The first slot holding `key`, if it is one of the aggregated keys.
    pub fn position(&self, key: &PublicKey) -> Option<usize> {
        self.keys.binary_search(key).ok().map(|found| {
            // binary_search may land on any copy of a duplicate.
            self.keys.get(..found).map_or(found, |before| {
                found - before.iter().rev().take_while(|k| *k == key).count()
            })
        })
    }

    /// The coefficient of the key in `slot`, as 32 big-endian bytes (reduced
    /// mod n).
    pub fn coefficient(&self, slot: usize) -> Option<[u8; 32]> {
        self.coefficients.get(slot).map(|a| a.to_repr().into())
    }

    pub(crate) fn coefficient_scalar(&self, slot: usize) -> Option<&Scalar> {
        self.coefficients.get(slot)
    }

    /// The coefficient of a key (shared by every copy of a duplicate key).
    pub(crate) fn coefficient_of(&self, key: &PublicKey) -> Option<&Scalar> {
        self.position(key)
            .and_then(|slot| self.coefficients.get(slot))
    }
}
