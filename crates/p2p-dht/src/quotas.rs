//! How much of a storing server one creator may occupy: records of at most
//! [`CreatorQuotas::per_creator`] resources in all and
//! [`CreatorQuotas::per_type`] of one resource type (the original's numbers:
//! 100 per peer, 20 per type). A resource's two records (its creator-scoped
//! key and the shared `resource:<type>:<id>` key, both put by every
//! announce) count as one resource: counting records halved the allowance,
//! and an honest creator's 11th resource of one type was stored by no one.
//! Without quotas, one identity could fill the store's 10 000 slots and push
//! everyone else's records out.
//!
//! [`CreatorIndex`] is exact: it knows the creator of every record admitted
//! to the store and is told when the store drops one
//! ([`crate::store::Store`] calls [`CreatorIndex::remove`]), so admitting a
//! record costs a few hash-map operations whatever the number of creators,
//! with no decoding and no signature check. The only records it may count
//! that no longer matter are ones past their expiry that the store has not
//! dropped yet (kad drops them lazily); those are pruned, with the caller's
//! cheap `stored` check, only for a creator at its limit — at most
//! `per_creator` checks.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;
use p2p_types::{ResourceKey, ResourceType};

use crate::records::StoredKey;

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
    #[error("creator already has records of {0} resources stored")]
    Creator(usize),
    /// The creator holds its allowance of this type.
    #[error("creator already has records of {0} resources of this type stored")]
    Type(usize),
}

/// One creator's keys, and the resources they hold counted per type.
#[derive(Debug, Default)]
struct Held {
    keys: HashSet<StoredKey>,
    /// Each resource with how many of its records (one or two) are held.
    resources: HashMap<ResourceKey, usize>,
    per_type: HashMap<ResourceType, usize>,
}

impl Held {
    fn of_type(&self, ty: &ResourceType) -> usize {
        self.per_type.get(ty).copied().unwrap_or(0)
    }

    fn full(&self, quotas: CreatorQuotas, ty: &ResourceType) -> bool {
        self.resources.len() >= quotas.per_creator || self.of_type(ty) >= quotas.per_type
    }

    fn holds(&self, resource: &ResourceKey) -> bool {
        self.resources.contains_key(resource)
    }

    fn add(&mut self, key: StoredKey) {
        let resource = key.resource().clone();
        if self.keys.insert(key) {
            let copies = self.resources.entry(resource.clone()).or_default();
            *copies += 1;
            if *copies == 1 {
                *self
                    .per_type
                    .entry(resource.resource_type().clone())
                    .or_default() += 1;
            }
        }
    }

    fn take(&mut self, key: &StoredKey) {
        if !self.keys.remove(key) {
            return;
        }
        let resource = key.resource();
        let Some(copies) = self.resources.get_mut(resource) else {
            return;
        };
        *copies -= 1;
        if *copies > 0 {
            return;
        }
        self.resources.remove(resource);
        let ty = resource.resource_type();
        if let Some(n) = self.per_type.get_mut(ty) {
            *n -= 1;
            if *n == 0 {
                self.per_type.remove(ty);
            }
        }
    }
}

/// Who created each stored resource record, and what each creator holds.
#[derive(Debug, Default)]
pub struct CreatorIndex {
    owners: HashMap<StoredKey, PeerId>,
    creators: HashMap<PeerId, Held>,
}

impl CreatorIndex {
    /// Admits `key` for `creator` under `quotas` and records it, or says
    /// which limit it hits. `stored(key, creator)` tells whether the store
    /// still holds a live record under `key`; it is asked only about the
    /// creator's own keys, and only when the creator is at a limit.
    pub fn admit(
        &mut self,
        quotas: CreatorQuotas,
        creator: PeerId,
        key: &StoredKey,
        mut stored: impl FnMut(&StoredKey, &PeerId) -> bool,
    ) -> Result<(), QuotaExceeded> {
        if self.owners.get(key) == Some(&creator) {
            return Ok(()); // an update of its own record
        }
        if self
            .creators
            .get(&creator)
            .is_some_and(|held| held.holds(key.resource()))
        {
            // The other record of a resource it holds: no new resource.
            self.insert(creator, key.clone());
            return Ok(());
        }
        let ty = key.resource().resource_type();
        if let Some(held) = self.creators.get(&creator)
            && held.full(quotas, ty)
        {
            let gone: Vec<StoredKey> = held
                .keys
                .iter()
                .filter(|k| !stored(k, &creator))
                .cloned()
                .collect();
            for k in &gone {
                self.remove(k);
            }
        }
        if let Some(held) = self.creators.get(&creator) {
            if held.resources.len() >= quotas.per_creator {
                return Err(QuotaExceeded::Creator(held.resources.len()));
            }
            let same_type = held.of_type(ty);
            if same_type >= quotas.per_type {
                return Err(QuotaExceeded::Type(same_type));
            }
        }
        self.insert(creator, key.clone());
        Ok(())
    }

    /// Records that the store holds `creator`'s record under `key` (the
    /// key's previous creator, if any, no longer holds it).
    pub fn insert(&mut self, creator: PeerId, key: StoredKey) {
        if let Some(previous) = self.owners.insert(key.clone(), creator)
            && previous != creator
        {
            self.detach(previous, &key);
        }
        self.creators.entry(creator).or_default().add(key);
    }

    /// Forgets the record under `key` (the store dropped or replaced it).
    pub fn remove(&mut self, key: &StoredKey) {
        if let Some(owner) = self.owners.remove(key) {
            self.detach(owner, key);
        }
    }

    fn detach(&mut self, creator: PeerId, key: &StoredKey) {
        if let Some(held) = self.creators.get_mut(&creator) {
            held.take(key);
            if held.keys.is_empty() {
                self.creators.remove(&creator);
            }
        }
    }

    /// Creators indexed.
    pub fn creators(&self) -> usize {
        self.creators.len()
    }

    /// Records indexed.
    pub fn records(&self) -> usize {
        self.owners.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(ty: &str, id: usize) -> StoredKey {
        StoredKey::Shared(p2p_types::ResourceKey::new(
            ty.parse().unwrap(),
            format!("r{id}").parse().unwrap(),
        ))
    }

    #[test]
    fn a_creator_gets_its_quota_per_type_and_in_all_and_others_are_unaffected() {
        let quotas = CreatorQuotas {
            per_creator: 5,
            per_type: 3,
        };
        let mut index = CreatorIndex::default();
        let (greedy, other) = (PeerId::random(), PeerId::random());
        let all = |_: &StoredKey, _: &PeerId| true;
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
        let only_b = |k: &StoredKey, _: &PeerId| k.resource().resource_type().as_str() == "b";
        index.admit(quotas, greedy, &key("c", 0), only_b).unwrap();
        index.admit(quotas, greedy, &key("a", 7), only_b).unwrap();
    }

    #[test]
    fn a_resources_shared_and_creator_scoped_records_count_once() {
        let quotas = CreatorQuotas {
            per_creator: 3,
            per_type: 2,
        };
        let mut index = CreatorIndex::default();
        let creator = PeerId::random();
        // Every record is still stored (nothing for the prune at a limit to drop).
        let all = |_: &StoredKey, _: &PeerId| true;
        let scoped =
            |ty: &str, id: usize| StoredKey::Creator(key(ty, id).resource().clone(), creator);
        // Two resources of one type, each announced as both records.
        for id in 0..2 {
            index.admit(quotas, creator, &key("a", id), all).unwrap();
            index.admit(quotas, creator, &scoped("a", id), all).unwrap();
        }
        assert_eq!(index.records(), 4);
        // A third of that type is over its allowance, in either form.
        assert_eq!(
            index.admit(quotas, creator, &scoped("a", 2), all),
            Err(QuotaExceeded::Type(2))
        );
        assert_eq!(
            index.admit(quotas, creator, &key("a", 2), all),
            Err(QuotaExceeded::Type(2))
        );
        // One record of a resource gone: the resource still counts; both gone: room.
        index.remove(&key("a", 0));
        assert_eq!(
            index.admit(quotas, creator, &key("a", 2), all),
            Err(QuotaExceeded::Type(2))
        );
        index.remove(&scoped("a", 0));
        index.admit(quotas, creator, &key("a", 2), all).unwrap();
        index.admit(quotas, creator, &key("b", 0), all).unwrap();
        assert_eq!(
            index.admit(quotas, creator, &key("c", 0), all),
            Err(QuotaExceeded::Creator(3))
        );
    }

    #[test]
    fn admitting_a_new_creator_checks_at_most_its_own_records() {
        let quotas = CreatorQuotas::default();
        let mut index = CreatorIndex::default();
        for i in 0..10_000 {
            index
                .admit(quotas, PeerId::random(), &key("a", i), |_, _| true)
                .unwrap();
        }
        let mut calls = 0;
        let counting = |_: &StoredKey, _: &PeerId| {
            calls += 1;
            true
        };
        index
            .admit(quotas, PeerId::random(), &key("a", 10_000), counting)
            .unwrap();
        assert!(calls <= quotas.per_creator, "{calls} store checks");
    }

    #[test]
    fn the_index_follows_removals_and_replacements_exactly() {
        let quotas = CreatorQuotas {
            per_creator: 2,
            per_type: 2,
        };
        let mut index = CreatorIndex::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let never = |_: &StoredKey, _: &PeerId| -> bool { panic!("no prune needed") };
        index.admit(quotas, a, &key("x", 0), never).unwrap();
        index.admit(quotas, a, &key("x", 1), never).unwrap();
        // The store dropped one: room again, without asking the store.
        index.remove(&key("x", 0));
        index.admit(quotas, a, &key("x", 2), never).unwrap();
        // Another creator's record replaced one of a's (it had expired).
        index.insert(b, key("x", 1));
        index.admit(quotas, a, &key("x", 3), never).unwrap();
        assert_eq!((index.creators(), index.records()), (2, 3));
        for k in [1, 2, 3] {
            index.remove(&key("x", k));
        }
        assert_eq!((index.creators(), index.records()), (0, 0));
    }
}
