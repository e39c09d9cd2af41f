//! How much of a storing server one creator may occupy: at most
//! [`CreatorQuotas::per_creator`] resource records in all and
//! [`CreatorQuotas::per_type`] of one resource type (the original's numbers:
//! 100 per peer, 20 per type). Without this, one identity could fill the
//! store's 10 000 slots and push everyone else's records out.
//!
//! The store forgets expired records without telling anyone, so the counts are
//! kept as sets of keys and pruned against the store when a creator reaches a
//! limit: a creator is refused only when its records *still stored* fill it.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;
use p2p_types::{ResourceKey, ResourceType};

/// Creators indexed before the index is swept against the store (the store
/// holds at most 10 000 records, so at most that many creators are live).
const MAX_CREATORS: usize = 10_000;

/// Per-creator limits on stored resource records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatorQuotas {
    /// Records of one creator. Default 100.
    pub per_creator: usize,
    /// Records of one creator and one type. Default 20.
    pub per_type: usize,
}

impl Default for CreatorQuotas {
    fn default() -> Self {
        Self {
            per_creator: 100,
            per_type: 20,
        }
    }
}

/// A record refused for its creator's quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    /// The creator holds its whole allowance.
    #[error("creator already has {0} records stored")]
    Creator(usize),
    /// The creator holds its allowance of this type.
    #[error("creator already has {0} records of this type stored")]
    Type(usize),
}

/// The keys each creator has in the store.
#[derive(Debug, Default)]
pub struct CreatorIndex {
    keys: HashMap<PeerId, HashSet<ResourceKey>>,
}

impl CreatorIndex {
    /// Admits `key` for `creator` under `quotas`, or says which limit it hits.
    /// `stored(key, creator)` tells whether the store still holds that record
    /// of that creator (used to forget records the store dropped).
    pub fn admit(
        &mut self,
        quotas: CreatorQuotas,
        creator: PeerId,
        key: &ResourceKey,
        mut stored: impl FnMut(&ResourceKey, &PeerId) -> bool,
    ) -> Result<(), QuotaExceeded> {
        // Creators whose records all expired would otherwise stay forever.
        if self.keys.len() >= MAX_CREATORS && !self.keys.contains_key(&creator) {
            self.keys.retain(|c, keys| {
                keys.retain(|k| stored(k, c));
                !keys.is_empty()
            });
        }
        let keys = self.keys.entry(creator).or_default();
        if keys.contains(key) {
            return Ok(()); // an update of its own record
        }
        let of_type = |keys: &HashSet<ResourceKey>, ty: &ResourceType| {
            keys.iter().filter(|k| k.resource_type() == ty).count()
        };
        let full = |keys: &HashSet<ResourceKey>| {
            keys.len() >= quotas.per_creator
                || of_type(keys, key.resource_type()) >= quotas.per_type
        };
        if full(keys) {
            keys.retain(|k| stored(k, &creator));
        }
        if keys.len() >= quotas.per_creator {
            return Err(QuotaExceeded::Creator(keys.len()));
        }
        let same_type = of_type(keys, key.resource_type());
        if same_type >= quotas.per_type {
            return Err(QuotaExceeded::Type(same_type));
        }
        keys.insert(key.clone());
        Ok(())
    }

    /// Creators indexed.
    pub fn creators(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(ty: &str, id: usize) -> ResourceKey {
        ResourceKey::new(ty.parse().unwrap(), format!("r{id}").parse().unwrap())
    }

    #[test]
    fn a_creator_gets_its_quota_per_type_and_in_all_and_others_are_unaffected() {
        let quotas = CreatorQuotas {
            per_creator: 5,
            per_type: 3,
        };
        let mut index = CreatorIndex::default();
        let (greedy, other) = (PeerId::random(), PeerId::random());
        let all = |_: &ResourceKey, _: &PeerId| true;
        for i in 0..3 {
            index.admit(quotas, greedy, &key("a", i), all).unwrap();
        }
        assert_eq!(
            index.admit(quotas, greedy, &key("a", 9), all),
            Err(QuotaExceeded::Type(3))
        );
        // Updating a record it already has is fine.
        index.admit(quotas, greedy, &key("a", 0), all).unwrap();
        for i in 0..2 {
            index.admit(quotas, greedy, &key("b", i), all).unwrap();
        }
        assert_eq!(
            index.admit(quotas, greedy, &key("c", 0), all),
            Err(QuotaExceeded::Creator(5))
        );
        index.admit(quotas, other, &key("a", 9), all).unwrap();
        // Once the store dropped some (expiry), there is room again.
        let only_b = |k: &ResourceKey, _: &PeerId| k.resource_type().as_str() == "b";
        index.admit(quotas, greedy, &key("c", 0), only_b).unwrap();
        index.admit(quotas, greedy, &key("a", 7), only_b).unwrap();
    }
}
