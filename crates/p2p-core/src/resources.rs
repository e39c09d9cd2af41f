//! Resources: the node's bounded local cache of announced and discovered
//! records, and the types of the announce/discover API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use libp2p::PeerId;
use p2p_protocol::ResourceRecord;
use p2p_types::{ResourceKey, ResourceType};

/// Most records [`crate::Node::discover_all`] returns (and most creators it
/// asks for their record).
pub const MAX_DISCOVERED: usize = 16;

/// How long an announcement lives and whether the node keeps it alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AnnounceOptions {
    /// Lifetime of the record from now. Default: the DHT's record TTL (1 h).
    pub ttl: Option<Duration>,
    /// Absolute expiry in ms since the Unix epoch; wins over `ttl` and is never
    /// extended by republishing.
    pub expires_at_ms: Option<u64>,
    /// Re-sign and re-put a TTL-based record before it expires, for as long as
    /// the node runs and the resource is not withdrawn. Default false.
    pub republish: bool,
}

/// The outcome of an announcement.
#[derive(Debug, Clone)]
pub struct Announced {
    /// The signed record.
    pub record: Arc<ResourceRecord>,
    /// DHT peers that acknowledged the put: it goes to the
    /// `replication_factor` closest peers and waits for each to answer (or
    /// fail, or time out); our own copy is not counted. A lotus-p2p peer
    /// acknowledges only once the record is in its store (one that refuses
    /// it, as invalid, conflicting, over a rate or quota, answers empty and
    /// is not counted); another implementation's acknowledgement is its own
    /// word.
    pub stored_by: usize,
}

/// Why an announcement or discovery failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// The node is not running.
    #[error("node not started")]
    NotStarted,
    /// No valid record can be made: the data is not JSON text (the DHT form
    /// is JSON), the record is too large or already expired, or it cannot be
    /// signed. The cause is the source.
    #[error("invalid data")]
    Data(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
    /// Nothing valid was found.
    #[error("resource not found")]
    NotFound,
    /// The lookup did not finish in time.
    #[error("timed out")]
    Timeout,
    /// The local cache is full of live announcements.
    #[error("local resource cache is full")]
    CacheFull,
    /// Our own DHT store did not take the record (too large, or our own
    /// places are all taken), so it was put to no one. It stays in the local
    /// cache.
    #[error("record not stored in the DHT")]
    NotStored,
}

impl From<p2p_dht::LookupError> for ResourceError {
    fn from(e: p2p_dht::LookupError) -> Self {
        match e {
            p2p_dht::LookupError::NotFound => Self::NotFound,
        }
    }
}

/// One cached record.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub(crate) record: Arc<ResourceRecord>,
    /// Our own announcement, with its republish TTL if it is kept alive.
    pub(crate) own: Option<Option<Duration>>,
}

/// One creator's record of one resource: the cache holds one record per
/// (resource, creator), so a record cached from one creator never hides
/// another creator's record of the same resource.
type CacheKey = (ResourceKey, PeerId);

/// Announced and discovered records, bounded, expired entries hidden and
/// evicted first.
#[derive(Debug, Clone)]
pub(crate) struct ResourceCache {
    inner: Arc<StdMutex<HashMap<CacheKey, Cached>>>,
    capacity: usize,
}

impl ResourceCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Cached>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts or replaces; makes room by dropping expired entries, then a
    /// discovered (not own) one. Fails only when full of live own records.
    pub(crate) fn insert(&self, cached: Cached, now_ms: u64) -> Result<(), ResourceError> {
        let mut map = self.lock();
        let key = (cached.record.key.clone(), cached.record.creator);
        if !map.contains_key(&key) && map.len() >= self.capacity {
            map.retain(|_, c| !c.record.is_expired(now_ms));
            if map.len() >= self.capacity {
                let victim = map
                    .iter()
                    .find(|(_, c)| c.own.is_none())
                    .map(|(k, _)| k.clone());
                match victim {
                    Some(k) => {
                        map.remove(&k);
                    }
                    None => return Err(ResourceError::CacheFull),
                }
            }
        }
        // A discovered copy never replaces our own announcement, nor a newer
        // version of the same creator's record.
        if map.get(&key).is_some_and(|c| {
            cached.own.is_none()
                && (c.own.is_some() || c.record.created_ms > cached.record.created_ms)
        }) {
            return Ok(());
        }
        map.insert(key, cached);
        Ok(())
    }

    /// `creator`'s unexpired record of a resource.
    pub(crate) fn get(
        &self,
        key: &ResourceKey,
        creator: PeerId,
        now_ms: u64,
    ) -> Option<Arc<ResourceRecord>> {
        self.lock()
            .get(&(key.clone(), creator))
            .filter(|c| !c.record.is_expired(now_ms))
            .map(|c| Arc::clone(&c.record))
    }

    /// Every creator's unexpired record of a resource, newest first.
    pub(crate) fn of_key(&self, key: &ResourceKey, now_ms: u64) -> Vec<Arc<ResourceRecord>> {
        let mut found: Vec<_> = self
            .lock()
            .iter()
            .filter(|((k, _), c)| k == key && !c.record.is_expired(now_ms))
            .map(|(_, c)| Arc::clone(&c.record))
            .collect();
        found.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        found
    }

    /// Unexpired records of a type.
    pub(crate) fn of_type(&self, ty: &ResourceType, now_ms: u64) -> Vec<Arc<ResourceRecord>> {
        self.lock()
            .values()
            .filter(|c| c.record.key.resource_type() == ty && !c.record.is_expired(now_ms))
            .map(|c| Arc::clone(&c.record))
            .collect()
    }

    /// Our own unexpired announcements, newest first.
    pub(crate) fn own(&self, now_ms: u64) -> Vec<Arc<ResourceRecord>> {
        let mut own: Vec<_> = self
            .lock()
            .values()
            .filter(|c| c.own.is_some() && !c.record.is_expired(now_ms))
            .map(|c| Arc::clone(&c.record))
            .collect();
        own.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        own
    }

    /// Forgets `creator`'s record of a resource.
    pub(crate) fn remove(&self, key: &ResourceKey, creator: PeerId) -> bool {
        self.lock().remove(&(key.clone(), creator)).is_some()
    }

    /// Drops expired entries; returns how many.
    pub(crate) fn cleanup(&self, now_ms: u64) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, c| !c.record.is_expired(now_ms));
        before - map.len()
    }

    /// Own TTL-based announcements whose remaining life is under half their TTL.
    pub(crate) fn due_for_republish(&self, now_ms: u64) -> Vec<(Arc<ResourceRecord>, Duration)> {
        self.lock()
            .values()
            .filter_map(|c| {
                let ttl = c.own.flatten()?;
                let expires = c.record.expires_ms?;
                let half = u64::try_from(ttl.as_millis() / 2).unwrap_or(u64::MAX);
                (expires.saturating_sub(now_ms) <= half).then(|| (Arc::clone(&c.record), ttl))
            })
            .collect()
    }
}
