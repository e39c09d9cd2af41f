//! Our own queries: what each one answers when it ends.
//!
//! Every query the node started through [`crate::Behaviour`] has one entry in
//! one map, keyed by kad's `QueryId`, holding the caller's reply channel. The
//! behaviour answers the caller itself; nothing outside it tracks a query.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;

use libp2p::{PeerId, kad};
use p2p_protocol::ResourceRecord;
use p2p_types::RejectReason;

use crate::Kademlia;
use crate::behaviour::Event;
use crate::closest::Closest;
use crate::records::{StoredKey, Validation};

/// Most providers one lookup collects (remote answers are not trusted to be small).
pub const MAX_PROVIDERS: usize = 1024;

/// Where an answer goes.
pub type Reply<T> = tokio::sync::oneshot::Sender<T>;

/// A verified record and the peer that had it (`None`: our own store).
pub type Found = (ResourceRecord, Option<PeerId>);

/// Why a lookup found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No peer asked held a valid record for the key.
    #[error("resource not found")]
    NotFound,
}

/// What a record lookup yields.
pub type Lookup = Result<Found, LookupError>;

/// Our own record could not be stored in our own store (it is then put to
/// no one).
#[derive(Debug, Clone, thiserror::Error)]
#[error("record not stored locally: {0}")]
pub struct NotStored(#[from] pub kad::store::Error);

/// What a put yields: how many of the closest peers acknowledged it (a
/// lotus-p2p server acknowledges only a record it stored).
pub type Put = Result<usize, NotStored>;

/// What a finished query was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// A routing-table refresh.
    Bootstrap,
    /// A search for the closest peers to a key.
    ClosestPeers,
    /// A record lookup.
    GetRecord,
    /// A record put (ours, or kad's republication).
    PutRecord,
    /// A provider lookup.
    GetProviders,
    /// A provider announcement (ours, or kad's republication).
    Provide,
}

impl QueryKind {
    fn of(result: &kad::QueryResult) -> Self {
        match result {
            kad::QueryResult::Bootstrap(_) => Self::Bootstrap,
            kad::QueryResult::GetClosestPeers(_) => Self::ClosestPeers,
            kad::QueryResult::GetRecord(_) => Self::GetRecord,
            kad::QueryResult::PutRecord(_) | kad::QueryResult::RepublishRecord(_) => {
                Self::PutRecord
            }
            kad::QueryResult::GetProviders(_) => Self::GetProviders,
            kad::QueryResult::StartProviding(_) | kad::QueryResult::RepublishProvider(_) => {
                Self::Provide
            }
        }
    }
}

/// A query of ours and who waits for its answer.
pub(crate) enum Pending {
    /// The reply counts the closest peers that acknowledged the record.
    Put(Reply<Put>),
    /// The first record that verifies for `key` wins.
    Get {
        key: StoredKey,
        reply: Reply<Lookup>,
    },
    /// The reply says whether the closest peers were told.
    Provide(Reply<bool>),
    /// Every provider found, up to [`MAX_PROVIDERS`], until the closest
    /// peers known have answered (see `DhtConfig::provider_closest`), or
    /// `enough` peers we asked answered with providers (see
    /// `DhtConfig::provider_answers`), or kad's walk ends.
    Providers {
        found: HashSet<PeerId>,
        /// Answers with at least one provider so far, from peers we asked.
        answers: usize,
        enough: Option<NonZeroUsize>,
        /// The peers the lookup knows nearest to its key, if it may end
        /// when they have answered.
        closest: Option<Closest>,
        reply: Reply<Vec<PeerId>>,
    },
}

/// The map of our queries.
pub(crate) struct Queries {
    pending: HashMap<kad::QueryId, Pending>,
    /// Peers a record is put to (kad's k): a put that reached them all
    /// reports this many.
    replication_factor: usize,
}

impl Queries {
    pub(crate) fn new(replication_factor: usize) -> Self {
        Self {
            pending: HashMap::new(),
            replication_factor,
        }
    }

    pub(crate) fn insert(&mut self, id: kad::QueryId, pending: Pending) {
        self.pending.insert(id, pending);
    }

    /// Whether `id` is one of our provider lookups, still running.
    pub(crate) fn is_providers(&self, id: &kad::QueryId) -> bool {
        matches!(self.pending.get(id), Some(Pending::Providers { .. }))
    }

    /// `peer` answered our provider lookup `id` (kad has taken the answer),
    /// naming `named` peers (closer peers and providers: kad walks to both)
    /// and at least one provider if `providers`.
    pub(crate) fn provider_answer(
        &mut self,
        id: kad::QueryId,
        peer: PeerId,
        named: Vec<PeerId>,
        providers: bool,
    ) {
        if let Some(Pending::Providers {
            closest: Some(closest),
            ..
        }) = self.pending.get_mut(&id)
        {
            closest.answered(peer, named, providers);
        }
    }

    /// kad failed `peer` in our provider lookup `id`, or in all of them
    /// (`None`: a failed dial, its last connection closed): it is passed
    /// over.
    pub(crate) fn provider_failure(&mut self, id: Option<kad::QueryId>, peer: PeerId) {
        for (query_id, pending) in &mut self.pending {
            if id.is_some_and(|id| id != *query_id) {
                continue;
            }
            if let Pending::Providers {
                closest: Some(closest),
                ..
            } = pending
            {
                closest.failed(peer);
            }
        }
    }

    /// Ends every provider lookup whose closest known peers have answered;
    /// returns each it ended with the peers it had not heard from that are
    /// `dialling` (see [`Closest::end`]).
    pub(crate) fn end_provider_walks(
        &mut self,
        kad: &mut Kademlia,
        dialling: impl Fn(&PeerId) -> bool,
    ) -> Vec<(kad::QueryId, Vec<PeerId>)> {
        let mut ended = Vec::new();
        for (id, pending) in &mut self.pending {
            if let Pending::Providers {
                closest: Some(closest),
                ..
            } = pending
                && let Some(peers) = closest.end(&dialling)
            {
                if let Some(mut query) = kad.query_mut(id) {
                    query.finish();
                }
                ended.push((*id, peers));
            }
        }
        ended
    }

    /// Handles one step of a query; returns the events it causes.
    pub(crate) fn progress(
        &mut self,
        kad: &mut Kademlia,
        validation: &Validation,
        id: kad::QueryId,
        result: kad::QueryResult,
        step: &kad::ProgressStep,
        stats: kad::QueryStats,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let kind = QueryKind::of(&result);
        let last = step.last;
        match result {
            kad::QueryResult::PutRecord(result) => {
                if let Some(Pending::Put(reply)) = self.pending.remove(&id) {
                    let stored_by = match result {
                        // The quorum is all of the closest peers.
                        Ok(_) => self.replication_factor,
                        Err(kad::PutRecordError::QuorumFailed { success, .. })
                        | Err(kad::PutRecordError::Timeout { success, .. }) => success.len(),
                    };
                    let _ = reply.send(Ok(stored_by));
                }
            }
            kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                let Some(Pending::Get { key, .. }) = self.pending.get(&id) else {
                    return finished(events, last, id, kind, stats);
                };
                let asked = key.kad_key();
                match validation.check(asked.as_ref(), &found.record.value) {
                    Ok(record) if found.record.key == asked => {
                        if let Some(Pending::Get { reply, .. }) = self.pending.remove(&id) {
                            let _ = reply.send(Ok((record, found.peer)));
                        }
                        if let Some(mut query) = kad.query_mut(&id) {
                            query.finish();
                        }
                    }
                    checked => {
                        // An invalid value does not end the lookup: another
                        // peer may hold the real record.
                        tracing::debug!(peer = ?found.peer, "DHT returned an invalid record");
                        let reason = match checked {
                            Err(e) => e.reject_reason(),
                            Ok(_) => RejectReason::InvalidRecord,
                        };
                        if let Some(peer) = found.peer {
                            events.push(Event::Rejected { peer, reason });
                        }
                        self.not_found_if(id, last);
                    }
                }
            }
            kad::QueryResult::GetRecord(_) => self.not_found_if(id, last),
            kad::QueryResult::StartProviding(result) => {
                if let Some(Pending::Provide(reply)) = self.pending.remove(&id) {
                    let _ = reply.send(result.is_ok());
                }
            }
            kad::QueryResult::GetProviders(result) => {
                // Our own store's providers come before any request: only
                // answers from peers we asked count towards `enough`.
                let answered = stats.num_requests() > 0;
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result
                    && !providers.is_empty()
                    && let Some(Pending::Providers {
                        found,
                        answers,
                        enough,
                        ..
                    }) = self.pending.get_mut(&id)
                {
                    let room = MAX_PROVIDERS.saturating_sub(found.len());
                    found.extend(providers.into_iter().take(room));
                    *answers += usize::from(answered);
                    if enough.is_some_and(|enough| *answers >= enough.get())
                        && let Some(mut query) = kad.query_mut(&id)
                    {
                        query.finish();
                    }
                }
                if last
                    && let Some(Pending::Providers { found, reply, .. }) = self.pending.remove(&id)
                {
                    let _ = reply.send(found.into_iter().collect());
                }
            }
            _ => {}
        }
        finished(events, last, id, kind, stats)
    }

    fn not_found_if(&mut self, id: kad::QueryId, last: bool) {
        if last && let Some(Pending::Get { reply, .. }) = self.pending.remove(&id) {
            let _ = reply.send(Err(LookupError::NotFound));
        }
    }
}

fn finished(
    mut events: Vec<Event>,
    last: bool,
    id: kad::QueryId,
    kind: QueryKind,
    stats: kad::QueryStats,
) -> Vec<Event> {
    if last {
        events.push(Event::QueryFinished { id, kind, stats });
    }
    events
}
