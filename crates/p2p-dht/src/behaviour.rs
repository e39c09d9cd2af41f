//! [`Behaviour`]: Kademlia with every lotus-p2p DHT rule, as one libp2p
//! `NetworkBehaviour`.
//!
//! It wraps libp2p-kad and owns:
//! - **inbound lookup limits.** libp2p-kad answers FIND_NODE, GET_VALUE and
//!   GET_PROVIDERS itself and reports them without naming the asking peer, so
//!   a peer could make a server walk its routing table and store as fast as
//!   it can send. The behaviour sees each request, with its peer, before kad
//!   does: a request within the peer's rate ([`DhtRates`]) goes on to kad; one
//!   over it gets an empty answer (no closer peers, no record, no providers)
//!   without kad doing any work, so the asker's query moves on to other peers
//!   at once, and is reported as [`Event::Rejected`] with
//!   [`RejectReason::DhtRateLimited`]. An empty answer rather than kad's
//!   `Reset`: a reset stream is left in kad's handler un-woken and, with no
//!   inbound timeout in kad, keeps one of the connection's 32 inbound-stream
//!   slots until the connection closes — 32 refusals would cut the peer off
//!   the DHT on that connection;
//! - **inbound records and provider records**: their rate ([`DhtRates`]), and
//!   for resource records validation ([`crate::records::check_value`]), no
//!   overwrite of a live record by another creator, and the creator quotas
//!   ([`crate::quotas`]). kad's acknowledgement of a put goes out only when
//!   our store holds the record; otherwise the putter gets an empty answer,
//!   which it does not count as stored (see `truthful`);
//! - **routing-table population** from identify ([`Behaviour::on_identified`],
//!   see [`crate::routing`]), through the address mapper and the diversity
//!   limits, and the removal of peers none of whose addresses answer; the
//!   addresses in lookup answers (closer peers, providers) pass the same
//!   mapper before kad dials them;
//! - **our queries**: one map from kad's `QueryId` to the caller's reply
//!   channel; the behaviour answers callers itself;
//! - **our requests in flight**, per peer ([`Event::AwaitingAnswer`], see the
//!   `awaited` module), so the node knows which young connections have done
//!   what they were opened for.
//!
//! kad's connection-handler types are private to it; they are reached here
//! through the swarm's `THandlerInEvent`/`THandlerOutEvent` aliases, so a kad
//! upgrade that renames a variant fails to compile here rather than silently
//! letting requests through.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hashlink::LruCache;
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::kad::{self, store::RecordStore as _};
use libp2p::swarm::behaviour::{ConnectionEstablished, ExternalAddrConfirmed, ExternalAddrExpired};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, DialError, DialFailure, FromSwarm, NetworkBehaviour,
    NotifyHandler, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use p2p_types::{DhtMode, DhtStats, ProtocolLimits, QueryTotals, RejectReason, is_relayed};

use crate::awaited::Awaited;
use crate::closest::Closest;
use crate::inbound::Inbound;
use crate::mapper::{AddressMapper, PublicRanges};
use crate::queries::{Lookup, NotStored, Pending, Put, Queries, QueryKind, Reply};
use crate::rates::{DhtRates, Rates};
use crate::records::{StoredKey, Validation};
use crate::refresh::Refresh;
use crate::routing::{self, Diversity, Groups, Population, Seen};
use crate::{DhtConfig, Kademlia};

/// Providers whose addresses are remembered (see `Behaviour::provider_addrs`).
const MAX_PROVIDER_PEERS: usize = 1024;
/// Addresses remembered per provider.
const MAX_PROVIDER_ADDRS: usize = 8;
/// Providers remembered from one lookup answer (kad answers with at most
/// k = 20): one answer cannot flush the cache.
const MAX_PROVIDERS_PER_ANSWER: usize = 20;

type HandlerOut = THandlerOutEvent<Kademlia>;
type HandlerIn = THandlerInEvent<Kademlia>;

/// Everything [`Behaviour::new`] needs.
#[derive(Debug, Clone)]
pub struct BehaviourConfig {
    /// Kademlia settings.
    pub dht: DhtConfig,
    /// Limits a record must respect to be trusted or stored.
    pub limits: ProtocolLimits,
    /// Accept unsigned (TypeScript) resource records.
    pub accept_unsigned: bool,
    /// Per-peer rates of inbound puts and lookups.
    pub rates: DhtRates,
    /// The node's listen addresses (the Auto mapper decides from them).
    pub listen: Vec<Multiaddr>,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        Self {
            dht: DhtConfig::default(),
            limits: ProtocolLimits::DEFAULT,
            accept_unsigned: false,
            rates: DhtRates::default(),
            listen: Vec::new(),
        }
    }
}

/// What the behaviour reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// A peer entered (or moved in) the routing table.
    RoutingUpdated {
        /// The peer.
        peer: PeerId,
        /// Peers in the table now.
        table_size: usize,
    },
    /// kad switched between client and server.
    ModeChanged {
        /// The new mode.
        mode: DhtMode,
    },
    /// Something a peer sent or asked was refused (`reason` says why and
    /// whether it counts against the peer's score).
    Rejected {
        /// Who sent it.
        peer: PeerId,
        /// Why.
        reason: RejectReason,
    },
    /// A record a peer put is in our store.
    RecordStored {
        /// Who put it.
        peer: PeerId,
        /// Its key.
        key: kad::RecordKey,
    },
    /// Whether we await a DHT answer from `peer`: `true` (reported before
    /// the request leaves) when a request to it goes out, or kad dials it
    /// for one, with no other counted; `false` when the last counted one is
    /// answered or fails, the peer's last connection closes, or the count of
    /// a peer never connected expires after the query timeout. The count
    /// may be too high, never too low (see the `awaited` module): an
    /// announce, a routing-table check or a request dropped before its dial
    /// connected keeps the peer awaited until its connections close. At its
    /// connection limit, the node lets a young connection we dialled whose
    /// peer has answered everything make room before its grace ends.
    AwaitingAnswer {
        /// The peer.
        peer: PeerId,
        /// Awaited from now on (`true`) or no longer (`false`).
        awaiting: bool,
    },
    /// A query (ours or kad's own) ended; its caller, if any, was answered.
    QueryFinished {
        /// kad's id of the query.
        id: kad::QueryId,
        /// What it was.
        kind: QueryKind,
        /// Requests it made and how long it took.
        stats: kad::QueryStats,
    },
}

/// Called with every kad event before the behaviour handles it (metrics).
pub type KadObserver = Box<dyn FnMut(&kad::Event) + Send>;

/// Kademlia with lotus-p2p's rules (see the module docs).
pub struct Behaviour {
    kad: Kademlia,
    local: PeerId,
    protocol: StreamProtocol,
    mapper: Arc<dyn AddressMapper>,
    diversity: Option<Diversity>,
    inbound: Inbound,
    rates: Rates,
    queries: Queries,
    /// Full routing-table refreshes; kad's own bootstraps stop after the
    /// self-lookup (see [`crate::refresh`]).
    refresh: Refresh,
    /// Peers with at least one open connection.
    connected: HashSet<PeerId>,
    /// Peers with one of our requests in flight.
    awaited: Awaited,
    /// The remote address of each connected peer's first open connection
    /// (what diversity groups by, rather than what the peer claims).
    observed: HashMap<PeerId, Multiaddr>,
    /// Diversity groups of the peers in the routing table.
    groups: Groups,
    /// When contacts in the table were last connected (a full bucket keeps
    /// recently seen contacts without dialling them for a newcomer).
    seen: Seen,
    observer: Option<KadObserver>,
    /// Mode setting Auto: the behaviour sets kad's mode from
    /// `direct_external`.
    auto_mode: bool,
    /// The node's confirmed external addresses that are not relayed.
    direct_external: HashSet<Multiaddr>,
    /// Ranges treated as public (diversity groups; the mapper has its own copy).
    public_ranges: PublicRanges,
    /// Addresses provider records gave for their providers (after the
    /// mapper), offered when the node dials such a peer and knows no other
    /// address of it: a provider that is a DHT client (behind NAT, reachable
    /// through a relay) is in no routing table, and the provider record is
    /// where its addresses are.
    provider_addrs: LruCache<PeerId, Vec<Multiaddr>>,
    /// Record lookups finished and their requests (in [`DhtStats`]).
    record_lookups: QueryTotals,
    /// Provider lookups finished and their requests (in [`DhtStats`]).
    provider_lookups: QueryTotals,
    /// Answers with providers that end a provider lookup.
    provider_answers: Option<std::num::NonZeroUsize>,
    /// Closest known peers whose answers end a provider lookup.
    provider_closest: Option<std::num::NonZeroUsize>,
    /// kad's dials under way (each ends in an established connection or a
    /// dial failure, which remove it).
    dials: HashMap<ConnectionId, PeerId>,
    /// Requests counted as awaited that may never be sent: a provider
    /// lookup we ended early had a dial under way to the peer, and kad
    /// drops an ended query's requests waiting for a dial once it removes
    /// the query. Taken off the count when the peer connects if kad has
    /// removed the lookup by then; dropped if the dial fails (the count
    /// then expires as any failed dial's does). At most one per lookup and
    /// peer with a kad dial under way.
    orphans: HashMap<PeerId, Vec<kad::QueryId>>,
    queued: VecDeque<ToSwarm<Event, HandlerIn>>,
}

impl fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Behaviour")
            .field("local", &self.local)
            .field("protocol", &self.protocol)
            .field("mapper", &self.mapper)
            .finish_non_exhaustive()
    }
}

impl Behaviour {
    /// The behaviour of node `local`.
    pub fn new(local: PeerId, config: BehaviourConfig) -> Self {
        let validation = Validation {
            limits: config.limits,
            accept_unsigned: config.accept_unsigned,
        };
        Self {
            kad: config.dht.behaviour(local),
            local,
            protocol: config.dht.protocol.clone(),
            mapper: config
                .dht
                .mapper
                .resolve(&config.listen, &config.dht.public_ranges),
            diversity: config.dht.diversity,
            inbound: Inbound::new(local, validation, config.dht.creator_quotas),
            rates: Rates::new(config.rates),
            queries: Queries::new(config.dht.replication_factor.get()),
            refresh: Refresh::new(config.dht.bootstrap_interval),
            connected: HashSet::new(),
            awaited: Awaited::new(config.dht.query_timeout),
            observed: HashMap::new(),
            groups: Groups::default(),
            seen: Seen::new(config.dht.contact_check_after),
            observer: None,
            auto_mode: config.dht.mode == crate::DhtModeSetting::Auto,
            direct_external: HashSet::new(),
            public_ranges: config.dht.public_ranges.clone(),
            provider_addrs: LruCache::new(MAX_PROVIDER_PEERS),
            record_lookups: QueryTotals::default(),
            provider_lookups: QueryTotals::default(),
            provider_answers: config.dht.provider_answers,
            provider_closest: config.dht.provider_closest,
            dials: HashMap::new(),
            orphans: HashMap::new(),
            queued: VecDeque::new(),
        }
    }

    /// Calls `observer` with every kad event before it is handled.
    pub fn set_kad_observer(&mut self, observer: impl FnMut(&kad::Event) + Send + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Puts `record` to every one of the closest peers (not the first to
    /// answer: the reply then counts every acknowledgement, and no put still
    /// waiting for a dial is dropped by a quorum met early; peers that fail or
    /// time out only lower the count). The reply is [`NotStored`] when the
    /// record cannot be stored locally (too large, or our own places are
    /// all taken); others' records never take them.
    pub fn put(&mut self, record: kad::Record, reply: Reply<Put>) {
        let key = record.key.clone();
        match self.kad.put_record(record, kad::Quorum::All) {
            Ok(id) => {
                // Our record replaced whatever the index knew under the key.
                self.kad.store_mut().forget(&key);
                self.queries.insert(id, Pending::Put(reply));
            }
            Err(e) => {
                tracing::debug!(error = %e, "record not stored locally");
                let _ = reply.send(Err(NotStored(e)));
            }
        }
    }

    /// Looks a resource record up under `key` (shared, or one creator's);
    /// the first record that verifies wins.
    pub fn get(&mut self, key: impl Into<StoredKey>, reply: Reply<Lookup>) {
        let key = key.into();
        let id = self.kad.get_record(key.kad_key());
        self.queries.insert(id, Pending::Get { key, reply });
    }

    /// Whether our store holds an unexpired record under `key`.
    pub fn stores(&mut self, key: &kad::RecordKey) -> bool {
        let now = Instant::now();
        self.kad
            .store_mut()
            .get(key)
            .is_some_and(|r| !r.is_expired(now))
    }

    /// Remote providers of `key` in our store (not ourselves).
    pub fn stored_providers(&mut self, key: &kad::RecordKey) -> Vec<PeerId> {
        self.kad.store_mut().remote_providers(key)
    }

    /// Whether our store holds our own provider record for `key`.
    pub fn provides(&mut self, key: &kad::RecordKey) -> bool {
        let local = self.local;
        self.kad
            .store_mut()
            .providers(key)
            .iter()
            .any(|p| p.provider == local)
    }

    /// Announces us as a provider of `key`; the reply says whether the
    /// closest peers were told (false: the query timed out, or the record
    /// could not be stored locally).
    pub fn provide(&mut self, key: kad::RecordKey, reply: Reply<bool>) {
        match self.kad.start_providing(key) {
            Ok(id) => self.queries.insert(id, Pending::Provide(reply)),
            Err(e) => {
                tracing::debug!(error = %e, "provider record not stored locally");
                let _ = reply.send(false);
            }
        }
    }

    /// Every provider of `key` the lookup finds (ourselves included), at most
    /// [`crate::queries::MAX_PROVIDERS`]. The lookup ends when the closest
    /// peers of each disjoint path have answered, or once the
    /// [`crate::DhtConfig::provider_closest`] peers nearest the key that it
    /// knows of have answered (one naming a provider), or once
    /// [`crate::DhtConfig::provider_answers`] peers (if set) have answered
    /// with providers. The lookup's id is returned (see
    /// [`Behaviour::finish_providers`]).
    pub fn get_providers(
        &mut self,
        key: kad::RecordKey,
        reply: Reply<Vec<PeerId>>,
    ) -> kad::QueryId {
        // kad's lookup starts from the routing table's K nearest peers.
        let closest = self.provider_closest.map(|n| {
            let target = kad::KBucketKey::new(key.clone());
            let seeds: Vec<PeerId> = self
                .kad
                .get_closest_local_peers(&target)
                .take(kad::K_VALUE.get())
                .map(|k| *k.preimage())
                .collect();
            Closest::new(&key, n, seeds)
        });
        let id = self.kad.get_providers(key);
        self.queries.insert(
            id,
            Pending::Providers {
                found: HashSet::new(),
                answers: 0,
                enough: self.provider_answers,
                closest,
                reply,
            },
        );
        id
    }

    /// Ends the provider lookup `id` now, if it still runs: it answers with
    /// the providers found so far. A lookup that finds too few peers
    /// holding providers walks until the closest peers of each disjoint path
    /// have answered, which can outlast a caller's deadline (see
    /// `p2p_core::Node::discover_all`). Any other query is left alone.
    pub fn finish_providers(&mut self, id: kad::QueryId) {
        if self.queries.is_providers(&id)
            && let Some(mut query) = self.kad.query_mut(&id)
        {
            query.finish();
        }
    }

    /// Refreshes the routing table: a lookup of our own key, then one in
    /// every bucket farther than our closest neighbour. The behaviour also
    /// does it every [`crate::DhtConfig::bootstrap_interval`].
    pub fn bootstrap(&mut self) -> Result<kad::QueryId, kad::NoKnownPeers> {
        self.refresh.start_full(&mut self.kad)
    }

    /// Pins the mode (`None`: automatic, see [`crate::DhtModeSetting::Auto`]).
    pub fn set_mode(&mut self, mode: Option<kad::Mode>) {
        self.auto_mode = mode.is_none();
        match mode {
            Some(mode) => self.switch_mode(mode),
            None => self.decide_mode(),
        }
    }

    /// Auto mode: server exactly while a direct external address is confirmed.
    fn decide_mode(&mut self) {
        if self.auto_mode {
            self.switch_mode(if self.direct_external.is_empty() {
                kad::Mode::Client
            } else {
                kad::Mode::Server
            });
        }
    }

    fn switch_mode(&mut self, mode: kad::Mode) {
        let old = self.kad.mode();
        self.kad.set_mode(Some(mode));
        if old != mode {
            self.emit(Event::ModeChanged {
                mode: match mode {
                    kad::Mode::Client => DhtMode::Client,
                    kad::Mode::Server => DhtMode::Server,
                },
            });
        }
    }

    /// Adds `peer` at `addr` to the routing table, if the mapper keeps the
    /// address; true when the table took it.
    pub fn add_address(&mut self, peer: PeerId, addr: Multiaddr) -> bool {
        self.mapper.keep(&addr)
            && matches!(
                self.kad.add_address(&peer, addr),
                kad::RoutingUpdate::Success
            )
    }

    /// Adds an identified peer to the routing table when it is a DHT server
    /// (see [`crate::routing`]).
    pub fn on_identified(
        &mut self,
        peer: PeerId,
        protocols: &[StreamProtocol],
        listen_addrs: &[Multiaddr],
    ) -> Population {
        let local = routing::Local {
            peer: self.local,
            kad_protocol: &self.protocol,
            diversity: self.diversity,
            public_ranges: &self.public_ranges,
        };
        let identified = routing::Identified {
            peer,
            observed: self.observed.get(&peer),
            protocols,
            listen_addrs,
        };
        routing::on_identified(
            &mut self.kad,
            self.mapper.as_ref(),
            local,
            &mut self.groups,
            &mut self.seen,
            identified,
        )
    }

    /// Peers in the routing table.
    pub fn routing_table_size(&mut self) -> usize {
        crate::routing_table_size(&mut self.kad)
    }

    /// The DHT's numbers now.
    pub fn stats(&mut self) -> DhtStats {
        let in_flight = self.kad.iter_queries().count();
        DhtStats {
            record_lookups: self.record_lookups,
            provider_lookups: self.provider_lookups,
            contact_checks: self.seen.checks(),
            refreshes_skipped: self.refresh.skipped(),
            ..crate::dht_stats(&mut self.kad, in_flight)
        }
    }

    /// Drops a peer none of whose addresses answered from the routing table.
    /// kad keeps a contact's last address even when it fails, so after churn
    /// every table still lists the dead and every FIND_NODE answer spends a
    /// share of its 20 places on them: lookups then reach fewer live peers
    /// and puts store fewer replicas (measured: 15 of 20 after stopping 30 %
    /// of a 50-node network). A live peer re-enters on its next identify.
    fn forget_unreachable(&mut self, peer: PeerId) {
        if self.connected.contains(&peer) {
            return;
        }
        if self.kad.remove_peer(&peer).is_some() {
            tracing::debug!(%peer, "unreachable peer dropped from the routing table");
        }
    }

    /// A record `peer` put, as kad hands it over (kad already applied its own
    /// rules: a record naming us as publisher is left alone, the stored
    /// lifetime is its record TTL shortened with distance from the key, an
    /// expired record is dropped, and the key is skipped in kad's next
    /// replication run): our rate, validation and store.
    fn on_inbound_put(&mut self, peer: PeerId, record: kad::Record) {
        if !self.rates.put(&peer) {
            self.emit(Event::Rejected {
                peer,
                reason: RejectReason::DhtRateLimited,
            });
            return;
        }
        match self.inbound.put(&mut self.kad, peer, record) {
            Ok(stored) => self.emit(stored),
            Err(refused) => {
                if let Some(event) = refused {
                    self.emit(event);
                }
            }
        }
    }

    /// kad's acknowledgement of a put, made truthful: kad queues it right
    /// after handing the record over (and for records it drops itself), before
    /// or without our checks, so a refused record was still counted as stored
    /// by the putter. It goes out only if our store now holds exactly that
    /// value under that key; otherwise the putter gets an empty GET_VALUE
    /// answer instead, which its kad counts as answered but not as a success
    /// (its `PutRecordRes` handler alone adds to the success list), and which,
    /// unlike a reset, leaves no stream holding an inbound slot.
    fn truthful(&mut self, event: HandlerIn) -> HandlerIn {
        let HandlerIn::PutRecordRes {
            key,
            value,
            request_id,
        } = event
        else {
            return event;
        };
        let now = Instant::now();
        let held = self
            .kad
            .store_mut()
            .get(&key)
            .is_some_and(|r| r.value == value && !r.is_expired(now));
        if held {
            HandlerIn::PutRecordRes {
                key,
                value,
                request_id,
            }
        } else {
            HandlerIn::GetRecordRes {
                record: None,
                closer_peers: Vec::new(),
                request_id,
            }
        }
    }

    /// Drops the addresses the mapper refuses from the peers a lookup answer
    /// names (closer peers, providers). kad dials a query's peers at the
    /// addresses the answering peer gave, outside the routing table, so
    /// without this any DHT peer could make us dial addresses our policy
    /// refuses (a LAN or loopback address, in public mode). A peer left with
    /// no address stays in the answer: kad then dials it only at addresses it
    /// already knows.
    fn filter_answer(&mut self, event: &mut HandlerOut) {
        let (closer, providers) = match event {
            HandlerOut::FindNodeRes { closer_peers, .. }
            | HandlerOut::GetRecordRes { closer_peers, .. } => (closer_peers, None),
            HandlerOut::GetProvidersRes {
                closer_peers,
                provider_peers,
                ..
            } => (closer_peers, Some(provider_peers)),
            _ => return,
        };
        for peer in closer.iter_mut().chain(providers.into_iter().flatten()) {
            let before = peer.multiaddrs.len();
            peer.multiaddrs.retain(|addr| self.mapper.keep(addr));
            if peer.multiaddrs.len() < before {
                tracing::trace!(peer = %peer.node_id, "addresses refused by the mapper dropped from an answer");
            }
        }
        if let HandlerOut::GetProvidersRes { provider_peers, .. } = event {
            for provider in provider_peers.iter().take(MAX_PROVIDERS_PER_ANSWER) {
                if provider.node_id != self.local {
                    self.remember_provider(provider.node_id, &provider.multiaddrs);
                }
            }
        }
    }

    /// Keeps addresses a lookup answer gave for `provider`: newest first,
    /// merged with what earlier answers gave (one answer cannot erase
    /// another's), at most [`MAX_PROVIDER_ADDRS`], none naming another peer.
    fn remember_provider(&mut self, provider: PeerId, addrs: &[Multiaddr]) {
        let names_other = |addr: &Multiaddr| matches!(addr.iter().last(), Some(multiaddr::Protocol::P2p(p)) if p != provider);
        let mut merged: Vec<Multiaddr> = addrs
            .iter()
            .filter(|a| !names_other(a))
            .take(MAX_PROVIDER_ADDRS)
            .cloned()
            .collect();
        if merged.is_empty() {
            return;
        }
        if let Some(known) = self.provider_addrs.get(&provider) {
            for addr in known {
                if !merged.contains(addr) {
                    merged.push(addr.clone());
                }
            }
        }
        merged.truncate(MAX_PROVIDER_ADDRS);
        self.provider_addrs.insert(provider, merged);
    }

    /// `peer`'s requests in flight were lost with its last connection.
    fn stop_awaiting(&mut self, peer: PeerId) {
        if self.awaited.reset(&peer) {
            self.emit(Event::AwaitingAnswer {
                peer,
                awaiting: false,
            });
        }
    }

    /// Ends the provider lookups that may end (see [`crate::closest`]).
    /// kad drops an ended query's requests that wait for a dial, so the
    /// awaited count of each peer such a lookup had not heard from and was
    /// dialling would keep the peer's new connection in its grace for
    /// nothing (and a node doing many lookups would refuse its own dials):
    /// those requests are taken off the count when the dial connects (see
    /// [`Behaviour::settle_orphans`]), if the dials can only have been the
    /// lookup's.
    fn end_provider_walks(&mut self) {
        let dialling: HashSet<PeerId> = self.dials.values().copied().collect();
        let ended = self
            .queries
            .end_provider_walks(&mut self.kad, |peer| dialling.contains(peer));
        if ended.is_empty() {
            return;
        }
        // A dial is the ended lookup's only if no other query could have
        // made it: with another in kad's pool the counts stay (too high is
        // allowed, too low is not; see the `awaited` module).
        let ours: HashSet<kad::QueryId> = ended.iter().map(|(id, _)| *id).collect();
        if self.kad.iter_queries().any(|q| !ours.contains(&q.id())) || ended.len() > 1 {
            return;
        }
        for (id, peers) in ended {
            for peer in peers {
                self.orphans.entry(peer).or_default().push(id);
            }
        }
    }

    /// `peer` connected: the requests of ended lookups that kad has removed
    /// by now were dropped, and are no longer awaited (a lookup still in
    /// kad's pool handed its request to the new connection).
    fn settle_orphans(&mut self, peer: PeerId) {
        for id in self.orphans.remove(&peer).unwrap_or_default() {
            if self.kad.query(&id).is_none() && self.awaited.answered(&peer) {
                self.emit(Event::AwaitingAnswer {
                    peer,
                    awaiting: false,
                });
            }
        }
    }

    /// A request to `peer` goes out, or kad dials it for one: the `true`
    /// edge is queued before the caller queues the request itself, so the
    /// room knows before the request can be under way.
    fn count_request(&mut self, peer: PeerId) {
        let now = Instant::now();
        if self.awaited.sent(peer, now) {
            self.emit(Event::AwaitingAnswer {
                peer,
                awaiting: true,
            });
        }
        for peer in self.awaited.expire(now, &self.connected) {
            self.emit(Event::AwaitingAnswer {
                peer,
                awaiting: false,
            });
        }
    }

    fn emit(&mut self, event: Event) {
        if let Event::QueryFinished { kind, stats, .. } = &event {
            let totals = match kind {
                QueryKind::GetRecord => Some(&mut self.record_lookups),
                QueryKind::GetProviders => Some(&mut self.provider_lookups),
                _ => None,
            };
            if let Some(totals) = totals {
                totals.finished += 1;
                totals.requests += u64::from(stats.num_requests());
            }
        }
        self.queued.push_back(ToSwarm::GenerateEvent(event));
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        if let Some(observer) = &mut self.observer {
            observer(&event);
        }
        match event {
            kad::Event::RoutingUpdated { peer, .. } => {
                let table_size = self.routing_table_size();
                self.emit(Event::RoutingUpdated { peer, table_size });
            }
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_inbound_put(source, record),
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::AddProvider {
                        record: Some(record),
                        ..
                    },
            } => {
                if !self.rates.put(&record.provider) {
                    self.emit(Event::Rejected {
                        peer: record.provider,
                        reason: RejectReason::DhtRateLimited,
                    });
                    return;
                }
                if let Some(event) = self.inbound.add_provider(&mut self.kad, record) {
                    self.emit(event);
                }
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            } => {
                if let kad::QueryResult::Bootstrap(bootstrap) = &result {
                    self.refresh
                        .progressed(&mut self.kad, id, bootstrap, &stats, &step);
                }
                let events = self.queries.progress(
                    &mut self.kad,
                    &self.inbound.validation,
                    id,
                    result,
                    &step,
                    stats,
                );
                for event in events {
                    self.emit(event);
                }
            }
            _ => {}
        }
    }
}

/// Whether kad sends `event` to a peer as a request of ours. No wildcard: a
/// kad upgrade that adds a request fails to compile here rather than going
/// uncounted (see the `awaited` module).
fn is_request(event: &HandlerIn) -> bool {
    match event {
        HandlerIn::FindNodeReq { .. }
        | HandlerIn::GetProvidersReq { .. }
        | HandlerIn::GetRecord { .. }
        | HandlerIn::PutRecord { .. }
        | HandlerIn::AddProvider { .. } => true,
        HandlerIn::Reset(_)
        | HandlerIn::ReconfigureMode { .. }
        | HandlerIn::FindNodeRes { .. }
        | HandlerIn::GetProvidersRes { .. }
        | HandlerIn::GetRecordRes { .. }
        | HandlerIn::PutRecordRes { .. } => false,
    }
}

/// kad's own events never reach this: [`Behaviour::poll`] handles them first.
fn handled(_: kad::Event) -> Event {
    unreachable!("kad events are handled before they could be passed on")
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = THandler<Kademlia>;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.kad
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.kad
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let addrs = self.kad.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?;
        // Only for a peer nobody else knows an address of (a provider that
        // is a DHT client, reachable through a relay): what a lookup answer
        // claims never adds to, or competes with, better-known addresses.
        if addrs.is_empty()
            && addresses.is_empty()
            && let Some(known) = maybe_peer.and_then(|peer| self.provider_addrs.get(&peer))
        {
            return Ok(known.clone());
        }
        Ok(addrs)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.kad.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        self.kad.on_swarm_event(event);
        // Where kad fails a peer in the queries waiting for it (a dial it
        // made failed, or the last connection closed with a request in
        // flight), our provider lookups pass it over.
        let failed = match event {
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(peer),
                error,
                connection_id,
            }) if !matches!(error, DialError::DialPeerConditionFalse(_))
                && self.dials.contains_key(&connection_id) =>
            {
                Some(peer)
            }
            FromSwarm::ConnectionClosed(closed)
                if closed.remaining_established == 0
                    && self.awaited.is_awaited(&closed.peer_id) =>
            {
                Some(closed.peer_id)
            }
            _ => None,
        };
        if let Some(peer) = failed {
            self.queries.provider_failure(None, peer);
        }
        if let FromSwarm::ConnectionClosed(closed) = event
            && closed.remaining_established == 0
        {
            self.stop_awaiting(closed.peer_id);
        }
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                peer_id,
                ..
            }) => {
                self.dials.remove(&connection_id);
                self.settle_orphans(peer_id);
            }
            FromSwarm::DialFailure(DialFailure {
                connection_id,
                peer_id,
                ..
            }) => {
                if let Some(peer) = self.dials.remove(&connection_id).or(peer_id)
                    && !self.dials.values().any(|p| *p == peer)
                {
                    self.orphans.remove(&peer);
                }
            }
            _ => {}
        }
        match event {
            FromSwarm::ConnectionEstablished(established) => {
                self.connected.insert(established.peer_id);
                self.observed
                    .entry(established.peer_id)
                    .or_insert_with(|| established.endpoint.get_remote_address().clone());
            }
            FromSwarm::ConnectionClosed(closed) if closed.remaining_established == 0 => {
                self.seen
                    .disconnected(&mut self.kad, closed.peer_id, Instant::now());
                self.connected.remove(&closed.peer_id);
                self.observed.remove(&closed.peer_id);
            }
            // Any other failed dial leaves its requests counted: kad keeps
            // them for the peer's next connection (see the `awaited` module).
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(peer),
                error: DialError::Transport(_),
                ..
            }) => self.forget_unreachable(peer),
            FromSwarm::ExternalAddrConfirmed(ExternalAddrConfirmed { addr })
                if !is_relayed(addr) =>
            {
                self.direct_external.insert(addr.clone());
                self.decide_mode();
            }
            FromSwarm::ExternalAddrExpired(ExternalAddrExpired { addr }) => {
                self.direct_external.remove(addr);
                self.decide_mode();
            }
            _ => {}
        }
        // A dial connected (its requests are on the connection now) or
        // failed, or a peer was passed over.
        if matches!(
            event,
            FromSwarm::ConnectionEstablished(_)
                | FromSwarm::DialFailure(_)
                | FromSwarm::ConnectionClosed(_)
        ) {
            self.end_provider_walks();
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        mut event: HandlerOut,
    ) {
        self.filter_answer(&mut event);
        if matches!(
            event,
            HandlerOut::FindNodeRes { .. }
                | HandlerOut::GetProvidersRes { .. }
                | HandlerOut::GetRecordRes { .. }
                | HandlerOut::PutRecordRes { .. }
                | HandlerOut::QueryError { .. }
        ) && self.awaited.answered(&peer)
        {
            self.emit(Event::AwaitingAnswer {
                peer,
                awaiting: false,
            });
        }
        let empty_answer = match &event {
            HandlerOut::FindNodeReq { request_id, .. } => Some(HandlerIn::FindNodeRes {
                closer_peers: Vec::new(),
                request_id: *request_id,
            }),
            HandlerOut::GetProvidersReq { request_id, .. } => Some(HandlerIn::GetProvidersRes {
                closer_peers: Vec::new(),
                provider_peers: Vec::new(),
                request_id: *request_id,
            }),
            HandlerOut::GetRecord { request_id, .. } => Some(HandlerIn::GetRecordRes {
                record: None,
                closer_peers: Vec::new(),
                request_id: *request_id,
            }),
            _ => None,
        };
        if let Some(answer) = empty_answer
            && !self.rates.request(&peer)
        {
            self.queued.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(connection),
                event: answer,
            });
            self.emit(Event::Rejected {
                peer,
                reason: RejectReason::DhtRateLimited,
            });
            return;
        }
        let local = self.local;
        let named = |peers: &[kad::KadPeer]| -> Vec<PeerId> {
            peers
                .iter()
                .map(|p| p.node_id)
                .filter(|p| *p != local)
                .collect()
        };
        let provider_walk = match &event {
            HandlerOut::GetProvidersRes {
                closer_peers,
                provider_peers,
                query_id,
            } if self.queries.is_providers(query_id) => {
                let mut peers = named(closer_peers);
                peers.extend(named(provider_peers));
                let others = provider_peers.iter().any(|p| p.node_id != local);
                Some((*query_id, Some((peers, others))))
            }
            // kad takes the closer peers of an answer of the wrong kind
            // too (it does not check an answer against its request).
            HandlerOut::FindNodeRes {
                closer_peers,
                query_id,
            }
            | HandlerOut::GetRecordRes {
                closer_peers,
                query_id,
                ..
            } if self.queries.is_providers(query_id) => {
                Some((*query_id, Some((named(closer_peers), false))))
            }
            HandlerOut::PutRecordRes { query_id, .. } if self.queries.is_providers(query_id) => {
                Some((*query_id, Some((Vec::new(), false))))
            }
            HandlerOut::QueryError { query_id, .. } if self.queries.is_providers(query_id) => {
                Some((*query_id, None))
            }
            _ => None,
        };
        self.kad
            .on_connection_handler_event(peer, connection, event);
        match provider_walk {
            Some((id, Some((named, providers)))) => {
                self.queries.provider_answer(id, peer, named, providers);
            }
            Some((id, None)) => self.queries.provider_failure(Some(id), peer),
            None => return,
        }
        self.end_provider_walks();
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, HandlerIn>> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Poll::Ready(event);
            }
            self.refresh.poll(&mut self.kad, cx);
            match self.kad.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(ToSwarm::GenerateEvent(event)) => self.on_kad_event(event),
                Poll::Ready(ToSwarm::NotifyHandler {
                    peer_id,
                    handler,
                    event,
                }) => {
                    if is_request(&event) {
                        self.count_request(peer_id);
                    }
                    let event = self.truthful(event);
                    self.queued.push_back(ToSwarm::NotifyHandler {
                        peer_id,
                        handler,
                        event,
                    });
                }
                Poll::Ready(other) => {
                    // kad dials for a request it hands the new connection
                    // itself (see the `awaited` module).
                    if let ToSwarm::Dial { opts } = &other
                        && let Some(peer) = opts.get_peer_id()
                    {
                        self.count_request(peer);
                        self.dials.insert(opts.connection_id(), peer);
                    }
                    self.queued.push_back(other.map_out(handled));
                }
            }
        }
    }
}
