//! The task that owns the swarm. It reacts to swarm events and to commands
//! from the [`crate::Node`] handle, and never awaits anything but those two
//! sources and a timer, so no peer and no caller can stall it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::RecordStore};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits, identify,
    memory_connection_limits, ping,
};
use p2p_dht::mapper::AddressMapper;
use p2p_dht::routing;
use p2p_types::{DhtMode, DisconnectCause, NodeEvent, NodeStats};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::events::Event;
use crate::handler::{Handlers, Job};
use crate::ip_limits::IpLimiter;
use crate::kad_limits::{KadEvent, LimitedKad};
use crate::messaging::{Outbound, Sanction, SharedCounters, lock};
use crate::metrics::SwarmMetrics;
use crate::peers::{PeerInfo, PeerTable};
use crate::rate_limits::Limiters;
use crate::resources::ResourceError;
use crate::scoring::Verdict;
use crate::{streams, transport};
use p2p_protocol::ResourceRecord;
use p2p_types::{ProtocolLimits, RejectReason};

/// Disconnected peers remembered for `peer_info` and stats.
const MAX_KNOWN_PEERS: usize = 1024;
/// How often bootstrap redials are checked.
const TICK: Duration = Duration::from_millis(250);
/// Bootstrap redial backoff: 1 s doubling up to 60 s.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Time given to connections to close on stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Sanctions queued for the loop. When it is full, a lost disconnect is
/// retried by the peer's next rejection and a lost ban is applied by the next
/// reconciliation of the bans.
const SANCTION_QUEUE: usize = 1024;
/// Ticks between sweeps of idle rate-limiter state (one minute).
const FORGET_IDLE_TICKS: u64 = 240;
/// Ticks between reconciliations of the bans with libp2p's block list (1 s).
const RECONCILE_BANS_TICKS: u64 = 4;
/// Most providers one lookup collects (remote answers are not trusted to be small).
const MAX_PROVIDERS: usize = 1024;

type Reply<T> = oneshot::Sender<T>;

/// What the handle asks of the event loop.
pub(crate) enum Command {
    ListenAddrs(Reply<Vec<Multiaddr>>),
    Dial {
        address: Multiaddr,
        reply: Reply<oneshot::Receiver<Result<PeerId, NodeError>>>,
    },
    Disconnect {
        peer: PeerId,
        reply: Reply<oneshot::Receiver<Result<(), NodeError>>>,
    },
    ConnectedPeers(Reply<Vec<PeerInfo>>),
    PeerInfo {
        peer: PeerId,
        reply: Reply<Option<PeerInfo>>,
    },
    IsConnected {
        peer: PeerId,
        reply: Reply<bool>,
    },
    Stats(Reply<NodeStats>),
    /// Put a record to the closest peers in the DHT; the reply says how many
    /// acknowledged it.
    PutRecord {
        record: kad::Record,
        reply: Reply<oneshot::Receiver<usize>>,
    },
    /// Look a resource up in the DHT; the first record that verifies wins.
    GetRecord {
        key: p2p_types::ResourceKey,
        reply: Reply<oneshot::Receiver<Lookup>>,
    },
    /// Whether our DHT store holds a record under this key.
    StoresRecord {
        key: kad::RecordKey,
        reply: Reply<bool>,
    },
    /// Announce us as a provider of a key; the reply says whether the
    /// closest peers were told (false: the query timed out).
    StartProviding {
        key: kad::RecordKey,
        reply: Reply<oneshot::Receiver<bool>>,
    },
    /// Every provider of a key the lookup finds (ourselves included).
    GetProviders {
        key: kad::RecordKey,
        reply: Reply<oneshot::Receiver<Vec<PeerId>>>,
    },
    /// Ban a peer (`None`: for good); false for an allow-listed peer.
    Ban {
        peer: PeerId,
        duration: Option<Duration>,
        reply: Reply<bool>,
    },
    /// Lift a ban; false if there was none.
    Unban {
        peer: PeerId,
        reply: Reply<bool>,
    },
    Stop(Reply<()>),
}

/// What a DHT lookup yields: the verified record and the peer that had it
/// (`None`: our own store).
type Lookup = Result<(ResourceRecord, Option<PeerId>), ResourceError>;

/// A discovery in progress.
struct PendingGet {
    key: p2p_types::ResourceKey,
    reply: oneshot::Sender<Lookup>,
}

/// A bootstrap peer and its redial state.
struct BootstrapPeer {
    address: Multiaddr,
    peer: Option<PeerId>,
    failures: u32,
    /// When to dial next; `None` while connected or dialling.
    next_dial: Option<Instant>,
}

impl BootstrapPeer {
    fn schedule_redial(&mut self) {
        let backoff = BACKOFF_BASE
            .saturating_mul(1u32 << self.failures.min(6))
            .min(BACKOFF_MAX);
        self.next_dial = Some(Instant::now() + backoff);
    }
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    events: broadcast::Sender<Event>,
    handlers: Handlers,
    outbound: Option<Outbound>,
    counters: SharedCounters,
    ready: Option<oneshot::Sender<Result<(), NodeError>>>,
    /// Listeners that have not reported an address yet, with what they bind.
    listeners_pending: HashMap<ListenerId, Multiaddr>,
    /// Every listener, removed explicitly on stop (the memory transport only
    /// releases its port on removal, not on drop).
    listeners: Vec<ListenerId>,
    peers: PeerTable,
    mapper: Arc<dyn AddressMapper>,
    kad_protocol: StreamProtocol,
    advertise_listen_addrs: bool,
    pending_dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, NodeError>>)>,
    max_pending_dials: usize,
    pending_disconnects: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NodeError>>>>,
    bootstrap: Vec<BootstrapPeer>,
    bootstrap_dials: HashMap<ConnectionId, usize>,
    pending_puts: HashMap<kad::QueryId, oneshot::Sender<usize>>,
    /// Peers a record is put to (kad's k).
    replication_factor: usize,
    pending_gets: HashMap<kad::QueryId, PendingGet>,
    pending_provides: HashMap<kad::QueryId, oneshot::Sender<bool>>,
    pending_providers: HashMap<kad::QueryId, (HashSet<PeerId>, oneshot::Sender<Vec<PeerId>>)>,
    limits: ProtocolLimits,
    accept_unsigned_records: bool,
    metrics: Option<SwarmMetrics>,
    limiters: Arc<Limiters>,
    diversity: Option<routing::Diversity>,
    creator_quotas: Option<p2p_dht::quotas::CreatorQuotas>,
    creators: p2p_dht::quotas::CreatorIndex,
    sanctions: mpsc::Receiver<Sanction>,
    ticks: u64,
}

/// An error and its causes, `outer: inner: ...` (libp2p's dial errors say
/// little at the top level, e.g. a connection-limit denial reads "Dial error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The PeerId at the end of an address (`.../p2p/<id>`), if any.
fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    match address.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

impl EventLoop {
    /// Builds the swarm and binds the listeners (their addresses arrive as
    /// events once the loop runs). Also returns the stream control.
    pub(crate) fn new(
        config: &NodeConfig,
        keypair: &Keypair,
        shared: (
            broadcast::Sender<Event>,
            Handlers,
            SharedCounters,
            Arc<Limiters>,
        ),
        ready: oneshot::Sender<Result<(), NodeError>>,
    ) -> Result<(Self, streams::Control), NodeError> {
        let (events, handlers, counters, limiters) = shared;
        let local = keypair.public().to_peer_id();
        let transport = transport::build(config.transport, keypair, config.mplex)?;
        let (sanctions_tx, sanctions) = mpsc::channel(SANCTION_QUEUE);
        let mut blocked = allow_block_list::Behaviour::default();
        let denied_per_ip = {
            let mut counters = lock(&counters);
            counters.sanctions = Some(sanctions_tx);
            for peer in counters.scores.banned_list() {
                blocked.block_peer(peer);
            }
            Arc::clone(&counters.denied_per_ip)
        };
        let behaviour = Behaviour {
            blocked,
            limits: connection_limits::Behaviour::new(config.limits.to_libp2p()),
            per_ip: IpLimiter::new(config.limits.per_ip, denied_per_ip),
            memory: memory_connection_limits::Behaviour::with_max_bytes(
                config.limits.max_process_memory.unwrap_or(usize::MAX),
            ),
            identify: identify::Behaviour::new(
                identify::Config::new("/lotus/1.0.0".to_owned(), keypair.public())
                    .with_agent_version(config.agent_version.clone()),
            ),
            ping: ping::Behaviour::new(ping::Config::new()),
            kad: LimitedKad::new(config.dht.behaviour(local), Arc::clone(&limiters)),
            stream: streams::Behaviour::new(),
        };
        let control = behaviour.stream.control();
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            local,
            libp2p::swarm::Config::with_tokio_executor()
                .with_idle_connection_timeout(config.idle_connection_timeout),
        );
        let listen = config.listen_addrs();
        let mut listeners_pending = HashMap::new();
        for address in &listen {
            let id = swarm
                .listen_on(address.clone())
                .map_err(|e| NodeError::Listen {
                    address: address.clone(),
                    reason: e.to_string(),
                })?;
            listeners_pending.insert(id, address.clone());
        }
        let bootstrap = config
            .bootstrap
            .iter()
            .map(|address| BootstrapPeer {
                address: address.clone(),
                peer: peer_of(address),
                failures: 0,
                next_dial: Some(Instant::now()),
            })
            .collect();
        Ok((
            Self {
                swarm,
                events,
                handlers,
                outbound: None,
                counters,
                ready: Some(ready),
                listeners: listeners_pending.keys().copied().collect(),
                listeners_pending,
                peers: PeerTable::new(MAX_KNOWN_PEERS),
                mapper: config.dht.mapper.resolve(&listen),
                kad_protocol: config.dht.protocol.clone(),
                advertise_listen_addrs: config
                    .advertise_listen_addrs
                    .unwrap_or_else(|| p2p_dht::mapper::auto_is_passthrough(&listen)),
                pending_dials: HashMap::new(),
                max_pending_dials: config.max_pending_dials,
                pending_disconnects: HashMap::new(),
                bootstrap,
                bootstrap_dials: HashMap::new(),
                pending_puts: HashMap::new(),
                replication_factor: config.dht.replication_factor.get(),
                pending_gets: HashMap::new(),
                pending_provides: HashMap::new(),
                pending_providers: HashMap::new(),
                limits: config.inbound.limits,
                accept_unsigned_records: config.accept_unsigned_records,
                metrics: config.metrics.clone(),
                limiters,
                diversity: config.dht.diversity,
                creator_quotas: config.dht.creator_quotas,
                creators: p2p_dht::quotas::CreatorIndex::default(),
                sanctions,
                ticks: 0,
            },
            control,
        ))
    }

    /// The outbound side, told when peers go away.
    pub(crate) fn set_outbound(&mut self, outbound: Outbound) {
        self.outbound = Some(outbound);
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        if self.listeners_pending.is_empty() {
            self.signal_ready(Ok(()));
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(Command::Stop(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.on_command(command),
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some((peer, reason, verdict)) = self.sanctions.recv() => {
                    self.sanction(peer, Some(reason), verdict);
                }
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    fn on_tick(&mut self) {
        self.redial_bootstrap();
        self.ticks += 1;
        let now = Instant::now();
        let expired = lock(&self.counters).scores.expire(now);
        for peer in expired {
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            self.emit(NodeEvent::PeerUnbanned { peer });
        }
        if self.ticks.is_multiple_of(RECONCILE_BANS_TICKS) {
            self.reconcile_bans(now);
        }
        if self.ticks.is_multiple_of(FORGET_IDLE_TICKS) {
            self.limiters.forget_idle();
        }
    }

    /// Makes libp2p's block list match the bans: blocks a ban whose verdict
    /// was lost (the sanction queue full) and unblocks a ban lifted early to
    /// make room for a new one (the bans are capped).
    fn reconcile_bans(&mut self, now: Instant) {
        let (block, unblock) = {
            let counters = lock(&self.counters);
            counters
                .scores
                .reconcile(self.swarm.behaviour().blocked.blocked_peers())
        };
        for peer in unblock {
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            self.emit(NodeEvent::PeerUnbanned { peer });
        }
        for (peer, until) in block {
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            self.emit(NodeEvent::PeerBanned {
                peer,
                reason: None,
                duration: until.map(|t| t.saturating_duration_since(now)),
            });
        }
    }

    /// Drops a peer none of whose addresses answered from the routing table.
    /// kad keeps a contact's last address even when it fails, so after churn
    /// every table still lists the dead and every FIND_NODE answer spends a
    /// share of its 20 places on them: lookups then reach fewer live peers
    /// and puts store fewer replicas (measured: 15 of 20 after stopping 30 %
    /// of a 50-node network). A live peer re-enters on its next identify.
    fn forget_unreachable(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            return;
        }
        if self.swarm.behaviour_mut().kad.remove_peer(&peer).is_some() {
            tracing::debug!(%peer, "unreachable peer dropped from the routing table");
        }
    }

    /// Acts on a score verdict (or an operator's ban, `reason` `None`).
    fn sanction(&mut self, peer: PeerId, reason: Option<RejectReason>, verdict: Verdict) {
        match verdict {
            Verdict::None => {}
            Verdict::Disconnect => {
                tracing::info!(%peer, ?reason, "disconnecting a misbehaving peer");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Verdict::Ban(until) => {
                tracing::info!(%peer, ?reason, "banning a peer");
                // Blocking closes its connections and refuses new ones.
                if !self.swarm.behaviour_mut().blocked.block_peer(peer) {
                    return; // already blocked by a reconciliation
                }
                self.emit(NodeEvent::PeerBanned {
                    peer,
                    reason,
                    duration: Some(until.saturating_duration_since(Instant::now())),
                });
            }
        }
    }

    fn emit(&self, event: NodeEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(Event::Node(event));
    }

    fn signal_ready(&mut self, result: Result<(), NodeError>) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(result);
        }
    }

    /// Closes every connection and listener, giving connections a short grace
    /// period to close cleanly so remote peers see an orderly disconnect.
    async fn shutdown(&mut self) {
        for listener in std::mem::take(&mut self.listeners) {
            self.swarm.remove_listener(listener);
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let grace = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        while self.swarm.network_info().num_peers() > 0 {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = &mut grace => break,
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Dial { address, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                self.dial(address, tx);
            }
            Command::Disconnect { peer, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                if self.swarm.disconnect_peer_id(peer).is_ok() {
                    self.pending_disconnects.entry(peer).or_default().push(tx);
                } else {
                    let _ = tx.send(Ok(()));
                }
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.peers.connected_peers().cloned().collect());
            }
            Command::PeerInfo { peer, reply } => {
                let _ = reply.send(self.peers.get(&peer).cloned());
            }
            Command::IsConnected { peer, reply } => {
                let _ = reply.send(self.swarm.is_connected(&peer));
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
            Command::PutRecord { record, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    // Every one of the closest peers, not the first to answer:
                    // the reply then counts every acknowledgement, and no put
                    // still waiting for a dial is dropped by a quorum met
                    // early. Peers that fail or time out only lower the count.
                    .put_record(record, kad::Quorum::All)
                {
                    Ok(id) => {
                        self.pending_puts.insert(id, tx);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "record not stored locally");
                        let _ = tx.send(0);
                    }
                }
            }
            Command::GetRecord { key, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(p2p_dht::records::kad_key(&key));
                self.pending_gets.insert(id, PendingGet { key, reply: tx });
            }
            Command::StoresRecord { key, reply } => {
                let now = Instant::now();
                let store = self.swarm.behaviour_mut().kad.store_mut();
                let _ = reply.send(store.get(&key).is_some_and(|r| !r.is_expired(now)));
            }
            Command::StartProviding { key, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                match self.swarm.behaviour_mut().kad.start_providing(key) {
                    Ok(id) => {
                        self.pending_provides.insert(id, tx);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "provider record not stored locally");
                        let _ = tx.send(false);
                    }
                }
            }
            Command::GetProviders { key, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.pending_providers.insert(id, (HashSet::new(), tx));
            }
            Command::Ban {
                peer,
                duration,
                reply,
            } => {
                let until = duration.map(|d| Instant::now() + d);
                let banned = lock(&self.counters).scores.ban(peer, until);
                if banned {
                    self.swarm.behaviour_mut().blocked.block_peer(peer);
                    self.emit(NodeEvent::PeerBanned {
                        peer,
                        reason: None,
                        duration,
                    });
                }
                let _ = reply.send(banned);
            }
            Command::Unban { peer, reply } => {
                let lifted = lock(&self.counters).scores.unban(&peer);
                // Blocked but no longer banned: a ban lifted to make room
                // that the reconciliation has not unblocked yet.
                let unblocked = self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                if lifted || unblocked {
                    self.emit(NodeEvent::PeerUnbanned { peer });
                }
                let _ = reply.send(lifted);
            }
            Command::Stop(reply) => {
                // Handled in `run`; kept exhaustive for the compiler.
                let _ = reply.send(());
            }
        }
    }

    /// Checks a DHT value for `kad_key` the way every reader must.
    fn check_value(
        &self,
        kad_key: &[u8],
        value: &[u8],
    ) -> Result<ResourceRecord, p2p_dht::records::RecordCheckError> {
        p2p_dht::records::check_value(
            kad_key,
            value,
            p2p_protocol::now_ms(),
            &self.limits,
            self.accept_unsigned_records,
        )
    }

    fn on_query_progress(&mut self, id: kad::QueryId, result: kad::QueryResult, last: bool) {
        match result {
            kad::QueryResult::PutRecord(result) => {
                if let Some(reply) = self.pending_puts.remove(&id) {
                    let stored_by = match result {
                        // The quorum is all of the closest peers.
                        Ok(_) => self.replication_factor,
                        Err(kad::PutRecordError::QuorumFailed { success, .. })
                        | Err(kad::PutRecordError::Timeout { success, .. }) => success.len(),
                    };
                    let _ = reply.send(stored_by);
                }
            }
            kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                let Some(pending) = self.pending_gets.get(&id) else {
                    return;
                };
                match self.check_value(found.record.key.as_ref(), &found.record.value) {
                    Ok(record) if record.key == pending.key => {
                        if let Some(pending) = self.pending_gets.remove(&id) {
                            let _ = pending.reply.send(Ok((record, found.peer)));
                        }
                        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                            query.finish();
                        }
                    }
                    Ok(_) | Err(_) => {
                        // An invalid value does not end the lookup: another
                        // peer may hold the real record.
                        tracing::debug!(peer = ?found.peer, "DHT returned an invalid record");
                        if let Some(peer) = found.peer {
                            lock(&self.counters).reject(peer, RejectReason::InvalidRecord);
                        }
                        self.finish_get_if(id, last);
                    }
                }
            }
            kad::QueryResult::GetRecord(_) => self.finish_get_if(id, last),
            kad::QueryResult::StartProviding(result) => {
                if let Some(reply) = self.pending_provides.remove(&id) {
                    let _ = reply.send(result.is_ok());
                }
            }
            kad::QueryResult::GetProviders(result) => {
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result
                    && let Some((found, _)) = self.pending_providers.get_mut(&id)
                {
                    let room = MAX_PROVIDERS.saturating_sub(found.len());
                    found.extend(providers.into_iter().take(room));
                }
                if last && let Some((found, reply)) = self.pending_providers.remove(&id) {
                    let _ = reply.send(found.into_iter().collect());
                }
            }
            _ => {}
        }
    }

    fn finish_get_if(&mut self, id: kad::QueryId, last: bool) {
        if last && let Some(pending) = self.pending_gets.remove(&id) {
            let _ = pending.reply.send(Err(ResourceError::NotFound));
        }
    }

    /// A peer asks us (a server) to store a record: resource records must be
    /// valid and may not replace a live record of another creator.
    fn on_inbound_put(&mut self, source: PeerId, record: kad::Record) {
        use libp2p::kad::store::RecordStore as _;
        if !self.limiters.dht_put(&source) {
            lock(&self.counters).reject(source, RejectReason::DhtRateLimited);
            return;
        }
        let is_resource = p2p_types::ResourceKey::from_bytes(record.key.as_ref()).is_ok();
        if is_resource {
            let incoming = match self.check_value(record.key.as_ref(), &record.value) {
                Ok(incoming) => incoming,
                Err(e) => {
                    tracing::debug!(peer = %source, error = %e, "refused inbound record");
                    lock(&self.counters).reject(source, RejectReason::InvalidRecord);
                    return;
                }
            };
            let store = self.swarm.behaviour_mut().kad.store_mut();
            let existing = store.get(&record.key).map(|r| r.value.clone());
            if let Some(existing) = existing
                && let Ok(current) = self.check_value(record.key.as_ref(), &existing)
                && current.creator != incoming.creator
            {
                tracing::debug!(peer = %source, "refused overwrite by another creator");
                lock(&self.counters).reject(source, RejectReason::InvalidRecord);
                return;
            }
            if let Err(e) = self.admit_creator(&incoming) {
                tracing::debug!(peer = %source, error = %e, "refused record over its creator's quota");
                lock(&self.counters).reject(source, RejectReason::RateLimited);
                return;
            }
        }
        if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(record) {
            tracing::debug!(peer = %source, error = %e, "inbound record not stored");
        }
    }

    /// Checks the creator's quota of stored records, pruning records the
    /// store has dropped since.
    fn admit_creator(
        &mut self,
        record: &ResourceRecord,
    ) -> Result<(), p2p_dht::quotas::QuotaExceeded> {
        let Some(quotas) = self.creator_quotas else {
            return Ok(());
        };
        let (limits, accept_unsigned, now) = (
            self.limits,
            self.accept_unsigned_records,
            p2p_protocol::now_ms(),
        );
        let store = self.swarm.behaviour_mut().kad.store_mut();
        self.creators
            .admit(quotas, record.creator, &record.key, |key, creator| {
                let kad_key = p2p_dht::records::kad_key(key);
                store.get(&kad_key).is_some_and(|stored| {
                    p2p_dht::records::check_value(
                        kad_key.as_ref(),
                        &stored.value,
                        now,
                        &limits,
                        accept_unsigned,
                    )
                    .is_ok_and(|r| r.creator == *creator)
                })
            })
    }

    fn dial(&mut self, address: Multiaddr, reply: oneshot::Sender<Result<PeerId, NodeError>>) {
        if self.pending_dials.len() >= self.max_pending_dials {
            let _ = reply.send(Err(NodeError::TooManyPendingDials(
                self.pending_dials.len(),
            )));
            return;
        }
        let opts = match peer_of(&address) {
            Some(peer) if self.swarm.is_connected(&peer) => {
                let _ = reply.send(Ok(peer));
                return;
            }
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![address.clone()])
                .condition(PeerCondition::Always)
                .build(),
            None => DialOpts::unknown_peer_id().address(address.clone()).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, (address, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Dial {
                    address,
                    reason: error_chain(&e),
                }));
            }
        }
    }

    fn redial_bootstrap(&mut self) {
        let now = Instant::now();
        for index in 0..self.bootstrap.len() {
            let Some(entry) = self.bootstrap.get_mut(index) else {
                continue;
            };
            if entry.next_dial.is_none_or(|at| at > now) {
                continue;
            }
            entry.next_dial = None;
            if entry.peer.is_some_and(|p| self.swarm.is_connected(&p)) {
                continue;
            }
            let opts = DialOpts::unknown_peer_id()
                .address(entry.address.clone())
                .build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.bootstrap_dials.insert(id, index);
                }
                Err(e) => {
                    tracing::debug!(address = %entry.address, error = %e, "bootstrap dial refused");
                    entry.failures += 1;
                    entry.schedule_redial();
                }
            }
        }
    }

    fn stats(&mut self) -> NodeStats {
        let info = self.swarm.network_info();
        let kad = &mut self.swarm.behaviour_mut().kad;
        let in_flight = kad.iter_queries().count();
        let counters = lock(&self.counters);
        NodeStats {
            connected_peers: info.num_peers(),
            known_peers: self.peers.known(),
            connections: info.connection_counters().num_established() as usize,
            listen_addrs: self.swarm.listeners().count(),
            messages: counters.total.clone(),
            dht: p2p_dht::dht_stats(&mut self.swarm.behaviour_mut().kad, in_flight),
            banned_peers: counters.scores.banned(),
            connections_denied_per_ip: counters.denied_per_ip.load(Ordering::Relaxed),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if let Some(metrics) = &self.metrics {
            metrics.record(&event);
            match &event {
                SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => metrics.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => metrics.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Kad(KadEvent::Kad(e))) => metrics.record(e),
                _ => {}
            }
        }
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                if self.advertise_listen_addrs {
                    self.swarm.add_external_address(address.clone());
                }
                self.emit(NodeEvent::ListenAddress { address });
                if self.listeners_pending.remove(&listener_id).is_some()
                    && self.listeners_pending.is_empty()
                {
                    self.signal_ready(Ok(()));
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(address) = self.listeners_pending.remove(&listener_id) {
                    self.signal_ready(Err(NodeError::Listen {
                        address,
                        reason: reason
                            .err()
                            .map_or_else(|| "closed".to_owned(), |e| e.to_string()),
                    }));
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let address = endpoint.get_remote_address().clone();
                self.peers.connected(peer_id, address.clone());
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if let Some(index) = self.bootstrap_dials.remove(&connection_id)
                    && let Some(entry) = self.bootstrap.get_mut(index)
                {
                    entry.peer = Some(peer_id);
                    entry.failures = 0;
                }
                if num_established.get() == 1 {
                    self.handlers.notify(Job::Connected, peer_id);
                    self.emit(NodeEvent::PeerConnected {
                        peer: peer_id,
                        address,
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                cause,
                ..
            } => self.on_connection_closed(
                peer_id,
                &endpoint,
                num_established,
                cause.map(|c| c.to_string()),
            ),
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let (Some(peer), DialError::Transport(_)) = (peer_id, &error) {
                    self.forget_unreachable(peer);
                }
                if let Some((address, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NodeError::Dial {
                        address,
                        reason: error_chain(&error),
                    }));
                }
                if let Some(index) = self.bootstrap_dials.remove(&connection_id)
                    && let Some(entry) = self.bootstrap.get_mut(index)
                {
                    tracing::debug!(address = %entry.address, %error, "bootstrap dial failed");
                    entry.failures += 1;
                    entry.schedule_redial();
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(remote = %send_back_addr, %error, "inbound connection failed");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_connection_closed(
        &mut self,
        peer: PeerId,
        endpoint: &ConnectedPoint,
        remaining: u32,
        cause: Option<String>,
    ) {
        self.peers
            .disconnected(peer, endpoint.get_remote_address(), remaining as usize);
        if remaining > 0 {
            return;
        }
        let local = self.pending_disconnects.remove(&peer);
        let cause = match (&local, cause) {
            (Some(_), _) => DisconnectCause::Local,
            (None, Some(reason)) => DisconnectCause::Remote(reason),
            (None, None) => DisconnectCause::Remote("closed".to_owned()),
        };
        for waiter in local.into_iter().flatten() {
            let _ = waiter.send(Ok(()));
        }
        if let Some(entry) = self.bootstrap.iter_mut().find(|b| b.peer == Some(peer)) {
            entry.schedule_redial();
        }
        if let Some(outbound) = &self.outbound {
            outbound.forget(&peer);
        }
        self.handlers.notify(Job::Disconnected, peer);
        self.emit(NodeEvent::PeerDisconnected { peer, cause });
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let protocols: Vec<String> =
                    info.protocols.iter().map(ToString::to_string).collect();
                self.peers.identified(
                    peer_id,
                    &info.agent_version,
                    protocols.clone(),
                    &info.listen_addrs,
                );
                let local = routing::Local {
                    peer: *self.swarm.local_peer_id(),
                    kad_protocol: &self.kad_protocol,
                    diversity: self.diversity,
                };
                let population = routing::on_identified(
                    &mut self.swarm.behaviour_mut().kad,
                    self.mapper.as_ref(),
                    local,
                    peer_id,
                    &info.protocols,
                    &info.listen_addrs,
                );
                tracing::debug!(peer = %peer_id, ?population, "identified");
                self.emit(NodeEvent::PeerIdentified {
                    peer: peer_id,
                    agent: info.agent_version,
                    protocols,
                });
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => self.peers.pinged(peer, rtt),
            BehaviourEvent::Kad(KadEvent::Kad(event)) => self.on_kad_event(event),
            BehaviourEvent::Kad(KadEvent::Refused { peer }) => {
                lock(&self.counters).reject(peer, RejectReason::DhtRateLimited);
            }
            BehaviourEvent::Stream(streams::Event::Refused { peer, protocol }) => {
                tracing::debug!(%peer, %protocol, "inbound stream refused: accept queue full");
                let reason = RejectReason::AcceptQueueFull;
                lock(&self.counters).reject(peer, reason);
                self.emit(NodeEvent::MessageRejected { peer, reason });
            }
            _ => {}
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated { peer, .. } => {
                let size = p2p_dht::routing_table_size(&mut self.swarm.behaviour_mut().kad);
                self.emit(NodeEvent::RoutingUpdated {
                    peer,
                    routing_table_size: size,
                });
            }
            kad::Event::ModeChanged { new_mode } => self.emit(NodeEvent::DhtModeChanged {
                mode: match new_mode {
                    kad::Mode::Client => DhtMode::Client,
                    kad::Mode::Server => DhtMode::Server,
                },
            }),
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_inbound_put(source, record),
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => self.on_query_progress(id, result, step.last),
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::AddProvider {
                        record: Some(record),
                        ..
                    },
            } => {
                if !self.limiters.dht_put(&record.provider) {
                    lock(&self.counters).reject(record.provider, RejectReason::DhtRateLimited);
                    return;
                }
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .store_mut()
                    .add_provider(record)
                {
                    tracing::debug!(error = %e, "inbound provider record not stored");
                }
            }
            _ => {}
        }
    }
}
