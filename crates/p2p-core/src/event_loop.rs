//! The task that owns the swarm. It reacts to swarm events and to commands
//! from the [`crate::Node`] handle, and never awaits anything but those two
//! sources and a timer, so no peer and no caller can stall it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::identity::Keypair;
use libp2p::kad;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, allow_block_list, connection_limits, identify,
    memory_connection_limits, ping,
};
use p2p_types::{DisconnectCause, NodeEvent, NodeStats};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::events::Event;
use crate::handler::{Handlers, Job};
use crate::ip_limits::IpLimiter;
use crate::messaging::{Outbound, Sanction, SharedCounters, lock};
use crate::metrics::SwarmMetrics;
use crate::peers::{PeerInfo, PeerTable};
use crate::rate_limits::Limiters;
use crate::scoring::Verdict;
use crate::{streams, transport};
use p2p_types::RejectReason;

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
        reply: Reply<oneshot::Receiver<p2p_dht::Put>>,
    },
    /// Look a resource record up in the DHT (shared key, or one creator's);
    /// the first record that verifies wins.
    GetRecord {
        key: p2p_dht::records::StoredKey,
        reply: Reply<oneshot::Receiver<p2p_dht::Lookup>>,
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
    advertise_listen_addrs: bool,
    pending_dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, NodeError>>)>,
    max_pending_dials: usize,
    pending_disconnects: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NodeError>>>>,
    bootstrap: Vec<BootstrapPeer>,
    bootstrap_dials: HashMap<ConnectionId, usize>,
    metrics: Option<SwarmMetrics>,
    limiters: Arc<Limiters>,
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
        let listen = config.listen_addrs();
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
            dht: dht_behaviour(config, local, &listen),
            stream: streams::Behaviour::new(config.limits.keep_idle as usize),
        };
        let control = behaviour.stream.control();
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            local,
            libp2p::swarm::Config::with_tokio_executor()
                .with_idle_connection_timeout(config.idle_connection_timeout),
        );
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
                advertise_listen_addrs: config
                    .advertise_listen_addrs
                    .unwrap_or_else(|| p2p_dht::mapper::auto_is_passthrough(&listen)),
                pending_dials: HashMap::new(),
                max_pending_dials: config.max_pending_dials,
                pending_disconnects: HashMap::new(),
                bootstrap,
                bootstrap_dials: HashMap::new(),
                metrics: config.metrics.clone(),
                limiters,
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
                self.swarm.behaviour_mut().dht.put(record, tx);
            }
            Command::GetRecord { key, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                self.swarm.behaviour_mut().dht.get(key, tx);
            }
            Command::StoresRecord { key, reply } => {
                let _ = reply.send(self.swarm.behaviour_mut().dht.stores(&key));
            }
            Command::StartProviding { key, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                self.swarm.behaviour_mut().dht.provide(key, tx);
            }
            Command::GetProviders { key, reply } => {
                let (tx, rx) = oneshot::channel();
                let _ = reply.send(rx);
                self.swarm.behaviour_mut().dht.get_providers(key, tx);
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
        self.swarm.behaviour_mut().stream.keep(id);
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
            self.swarm.behaviour_mut().stream.keep(id);
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
        let dht = self.swarm.behaviour_mut().dht.stats();
        let counters = lock(&self.counters);
        NodeStats {
            connected_peers: info.num_peers(),
            known_peers: self.peers.known(),
            connections: info.connection_counters().num_established() as usize,
            listen_addrs: self.swarm.listeners().count(),
            messages: counters.total.clone(),
            dht,
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
            } => self.on_connection_closed(peer_id, &endpoint, num_established, cause.as_ref()),
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
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
        cause: Option<&libp2p::swarm::ConnectionError>,
    ) {
        self.peers
            .disconnected(peer, endpoint.get_remote_address(), remaining as usize);
        if remaining > 0 {
            return;
        }
        let local = self.pending_disconnects.remove(&peer);
        let cause = match (&local, cause) {
            // Asked for, or our idle-connection policy (see `streams::idle`).
            (Some(_), _) | (None, Some(libp2p::swarm::ConnectionError::KeepAliveTimeout)) => {
                DisconnectCause::Local
            }
            (None, Some(reason)) => DisconnectCause::Remote(reason.to_string()),
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
                let population = self.swarm.behaviour_mut().dht.on_identified(
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
            BehaviourEvent::Dht(event) => self.on_dht_event(event),
            BehaviourEvent::Stream(streams::Event::Refused { peer, protocol }) => {
                tracing::debug!(%peer, %protocol, "inbound stream refused: accept queue full");
                let reason = RejectReason::AcceptQueueFull;
                lock(&self.counters).reject(peer, reason);
                self.emit(NodeEvent::MessageRejected { peer, reason });
            }
            _ => {}
        }
    }

    fn on_dht_event(&mut self, event: p2p_dht::Event) {
        match event {
            p2p_dht::Event::RoutingUpdated { peer, table_size } => {
                self.emit(NodeEvent::RoutingUpdated {
                    peer,
                    routing_table_size: table_size,
                });
            }
            p2p_dht::Event::ModeChanged { mode } => self.emit(NodeEvent::DhtModeChanged { mode }),
            p2p_dht::Event::Rejected { peer, reason } => {
                lock(&self.counters).reject(peer, reason);
            }
            p2p_dht::Event::RecordStored { .. } | p2p_dht::Event::QueryFinished { .. } => {}
        }
    }
}

/// The DHT behaviour for `config`, with the node's DHT rates and, when the
/// node records metrics, libp2p's kad metrics fed every kad event.
fn dht_behaviour(config: &NodeConfig, local: PeerId, listen: &[Multiaddr]) -> p2p_dht::Behaviour {
    let rates = &config.rate_limits;
    let mut dht = p2p_dht::Behaviour::new(
        local,
        p2p_dht::BehaviourConfig {
            dht: config.dht.clone(),
            limits: config.inbound.limits,
            accept_unsigned: config.accept_unsigned_records,
            rates: p2p_dht::DhtRates {
                peer_puts: rates
                    .peer_dht_puts
                    .map(|(every, burst)| p2p_dht::DhtRate { every, burst }),
                peer_requests: rates
                    .peer_dht_requests
                    .map(|r| p2p_dht::DhtRate::per_second(r.per_second, r.burst)),
            },
            listen: listen.to_vec(),
        },
    );
    if let Some(metrics) = config.metrics.clone() {
        dht.set_kad_observer(move |event| metrics.record(event));
    }
    dht
}
