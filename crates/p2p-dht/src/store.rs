//! The record store: libp2p-kad's in-memory store with room kept for our own
//! records and per-peer provider caps, plus the creator index of the
//! resource records in it ([`crate::quotas`]).
//!
//! - **Our own records are never crowded out.** Records others put share
//!   [`StoreLimits::records`] places; ours (publisher = this node, which the
//!   behaviour only lets kad set for records we put ourselves) have as many
//!   again of their own.
//! - **Provider records**: the keys others provide share
//!   [`StoreLimits::provider_keys`] places and one provider may hold
//!   [`StoreLimits::provider_keys_per_peer`] of them; keys we provide have
//!   their own places, so our `provide` always stores locally.
//! - **The creator index is exact**: it learns of every record the store
//!   drops (kad removes expired records through [`RecordStore::remove`]),
//!   and the behaviour records the creator of every resource record it
//!   admits. Unsigned records (accepted only with `accept_unsigned`) name a
//!   creator nobody vouches for, so they are counted in an index of their
//!   own and never use a signed creator's quota.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::quotas::{CreatorIndex, CreatorQuotas, QuotaExceeded};
use crate::records::StoredKey;
use libp2p::PeerId;
use libp2p::kad::store::{Error, MemoryStore, MemoryStoreConfig, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

/// How much others may store with us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Records others put (ours have as many places again).
    pub records: usize,
    /// Largest record value.
    pub value_bytes: usize,
    /// Keys others provide (keys we provide have as many places again).
    pub provider_keys: usize,
    /// Keys one other peer provides.
    pub provider_keys_per_peer: usize,
}

/// kad's memory store with room for our own records and an exact creator index.
pub struct Store {
    local: PeerId,
    records: MemoryStore,
    limits: StoreLimits,
    /// Keys of every record stored, and whether the record is ours.
    keys: HashMap<RecordKey, bool>,
    /// Records of others stored (`keys` not ours).
    others_records: usize,
    /// For each key with provider records, the remote providers of it and
    /// whether we provide it too.
    provider_keys: HashMap<RecordKey, (HashSet<PeerId>, bool)>,
    /// Keys with at least one remote provider.
    others_provider_keys: usize,
    /// Keys each remote peer provides.
    provided_by: HashMap<PeerId, HashSet<RecordKey>>,
    creators: CreatorIndex,
    /// Unsigned records, by the creator they name.
    unsigned: CreatorIndex,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("creators", &self.creators.creators())
            .field("indexed", &self.creators.records())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store for node `local`.
    pub fn new(local: PeerId, limits: StoreLimits) -> Self {
        let config = MemoryStoreConfig {
            // Ours and others', each limited here.
            max_records: limits.records.saturating_mul(2),
            max_value_bytes: limits.value_bytes,
            max_provided_keys: limits.provider_keys.saturating_mul(2),
            ..MemoryStoreConfig::default()
        };
        Self {
            local,
            records: MemoryStore::with_config(local, config),
            limits,
            keys: HashMap::new(),
            others_records: 0,
            provider_keys: HashMap::new(),
            others_provider_keys: 0,
            provided_by: HashMap::new(),
            creators: CreatorIndex::default(),
            unsigned: CreatorIndex::default(),
        }
    }

    /// Remote providers of `key` we hold (not ourselves).
    pub fn remote_providers(&self, key: &RecordKey) -> Vec<PeerId> {
        self.provider_keys
            .get(key)
            .map(|(remote, _)| remote.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The creators of the signed resource records stored.
    pub fn creators(&self) -> &CreatorIndex {
        &self.creators
    }

    /// The creators named by the unsigned resource records stored.
    pub fn unsigned_creators(&self) -> &CreatorIndex {
        &self.unsigned
    }

    /// Admits `creator`'s record under `key` (`signed` or not) to its index
    /// if its quotas allow (see [`CreatorIndex::admit`]); store it next with
    /// [`RecordStore::put`], then call [`Store::settle`].
    pub(crate) fn admit(
        &mut self,
        quotas: CreatorQuotas,
        creator: PeerId,
        key: &StoredKey,
        signed: bool,
        now: Instant,
    ) -> std::result::Result<(), QuotaExceeded> {
        let records = &self.records;
        let (index, other) = if signed {
            (&mut self.creators, &mut self.unsigned)
        } else {
            (&mut self.unsigned, &mut self.creators)
        };
        index.admit(quotas, creator, key, |key, _| {
            records
                .get(&key.kad_key())
                .is_some_and(|r| !r.is_expired(now))
        })?;
        other.remove(key);
        Ok(())
    }

    /// After a put of an admitted record: if it was not stored (the store
    /// is full), the index forgets it again.
    pub(crate) fn settle(&mut self, key: &StoredKey) {
        if self.records.get(&key.kad_key()).is_none() {
            self.creators.remove(key);
            self.unsigned.remove(key);
        }
    }

    /// The record under `key` is no longer the one the index knows (we
    /// stored our own over it).
    pub(crate) fn forget(&mut self, key: &RecordKey) {
        if let Some(key) = StoredKey::parse(key.as_ref()) {
            self.creators.remove(&key);
            self.unsigned.remove(&key);
        }
    }
}

impl RecordStore for Store {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.records.get(k)
    }

    fn put(&mut self, r: Record) -> Result<()> {
        let ours = r.publisher == Some(self.local);
        let key = r.key.clone();
        let replaces_others = self.keys.get(&key) == Some(&false);
        if !ours && !replaces_others && self.others_records >= self.limits.records {
            return Err(Error::MaxRecords);
        }
        self.records.put(r)?;
        if replaces_others {
            self.others_records -= 1;
        }
        if !ours {
            self.others_records += 1;
        }
        self.keys.insert(key, ours);
        Ok(())
    }

    fn remove(&mut self, k: &RecordKey) {
        self.records.remove(k);
        if self.keys.remove(k) == Some(false) {
            self.others_records -= 1;
        }
        self.forget(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.records.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> Result<()> {
        let (key, provider) = (record.key.clone(), record.provider);
        let ours = provider == self.local;
        if !ours {
            let held = self.provided_by.get(&provider);
            let has_key = held.is_some_and(|keys| keys.contains(&key));
            if !has_key && held.is_some_and(|k| k.len() >= self.limits.provider_keys_per_peer) {
                return Err(Error::MaxProvidedKeys);
            }
            let key_has_others = self
                .provider_keys
                .get(&key)
                .is_some_and(|(remote, _)| !remote.is_empty());
            if !key_has_others && self.others_provider_keys >= self.limits.provider_keys {
                return Err(Error::MaxProvidedKeys);
            }
        }
        self.records.add_provider(record)?;
        // kad ignores a provider when the key already has its share of them.
        if !self
            .records
            .providers(&key)
            .iter()
            .any(|p| p.provider == provider)
        {
            return Ok(());
        }
        let entry = self.provider_keys.entry(key.clone()).or_default();
        if ours {
            entry.1 = true;
        } else {
            if entry.0.is_empty() {
                self.others_provider_keys += 1;
            }
            entry.0.insert(provider);
            self.provided_by.entry(provider).or_default().insert(key);
        }
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.records.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.records.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.records.remove_provider(k, p);
        if let Some((remote, ours)) = self.provider_keys.get_mut(k) {
            if *p == self.local {
                *ours = false;
            } else if remote.remove(p) && remote.is_empty() {
                self.others_provider_keys -= 1;
            }
            if remote.is_empty() && !*ours {
                self.provider_keys.remove(k);
            }
        }
        if let Some(keys) = self.provided_by.get_mut(p) {
            keys.remove(k);
            if keys.is_empty() {
                self.provided_by.remove(p);
            }
        }
    }
}
