//! The record store: libp2p-kad's in-memory store, plus the creator index of
//! the resource records in it ([`crate::quotas`]), kept exact: the index
//! learns of every record the store drops (kad removes expired records
//! through [`RecordStore::remove`]), and the behaviour records the creator
//! of every resource record it admits.

use std::borrow::Cow;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use p2p_types::ResourceKey;

use crate::quotas::{CreatorIndex, CreatorQuotas, QuotaExceeded};
use crate::records::kad_key;

/// kad's memory store with an exact creator index.
pub struct Store {
    records: MemoryStore,
    creators: CreatorIndex,
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
    pub fn new(local: PeerId, config: MemoryStoreConfig) -> Self {
        Self {
            records: MemoryStore::with_config(local, config),
            creators: CreatorIndex::default(),
        }
    }

    /// The creators of the resource records stored.
    pub fn creators(&self) -> &CreatorIndex {
        &self.creators
    }

    /// Admits `creator`'s record under `key` to the index if its quotas allow
    /// (see [`CreatorIndex::admit`]); store it next with [`RecordStore::put`],
    /// then call [`Store::settle`].
    pub(crate) fn admit(
        &mut self,
        quotas: CreatorQuotas,
        creator: PeerId,
        key: &ResourceKey,
        now: Instant,
    ) -> std::result::Result<(), QuotaExceeded> {
        let records = &self.records;
        self.creators.admit(quotas, creator, key, |key, _| {
            records
                .get(&kad_key(key))
                .is_some_and(|r| !r.is_expired(now))
        })
    }

    /// After a put of an admitted record: if it was not stored (the store
    /// is full), the index forgets it again.
    pub(crate) fn settle(&mut self, key: &ResourceKey) {
        if self.records.get(&kad_key(key)).is_none() {
            self.creators.remove(key);
        }
    }

    /// The record under `key` is no longer the one the index knows (we
    /// stored our own over it).
    pub(crate) fn forget(&mut self, key: &RecordKey) {
        if let Ok(key) = ResourceKey::from_bytes(key.as_ref()) {
            self.creators.remove(&key);
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
        self.records.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.records.remove(k);
        self.forget(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.records.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> Result<()> {
        self.records.add_provider(record)
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.records.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.records.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.records.remove_provider(k, p);
    }
}
