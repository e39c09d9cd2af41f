//! The task that owns the swarm. It routes: commands from the [`crate::Node`]
//! handle in (each with one reply channel), swarm events out (to the node's
//! events, peer table and handlers). It never awaits anything but those two
//! sources and two timers (bootstrap redials, idle rate-limiter state), so no
//! peer and no caller can stall it. Peer scores and bans belong to the
//! [`crate::peer_manager`], DHT state to `p2p_dht::Behaviour`, streams to
//! [`crate::streams`].

use std::collections::HashMap;
use std::sync::Arc;
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
    Multiaddr, PeerId, Swarm, connection_limits, identify, memory_connection_limits, ping, relay,
};
use p2p_types::{DisconnectCause, NodeEvent, NodeStats, ProtocolName};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::events::Event;
use crate::handler::{Handlers, Job, ProtocolHandler};
use crate::ip_limits::IpLimiter;
use crate::messaging::Outbound;
use crate::metrics::SwarmMetrics;
use crate::nat;
use crate::peer_manager::scores::PeerScores;
use crate::peer_manager::{self, PeerManager, Rejections};
use crate::peers::{PeerInfo, PeerTable};
use crate::rate_limits::Limiters;
use crate::relays::Relays;
use crate::stats::SharedStats;
use crate::{raw_streams, streams, transport};
use p2p_types::RejectReason;

/// Disconnected peers remembered for `peer_info` and stats.
const MAX_KNOWN_PEERS: usize = 1024;
/// Time given to connections to close on stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How often idle rate-limiter state is swept.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

type Reply<T> = oneshot::Sender<T>;

/// What the handle asks of the event loop.
pub(crate) enum Command {
    ListenAddrs(Reply<Vec<Multiaddr>>),
    Dial {
        address: Multiaddr,
        reply: Reply<Result<PeerId, NodeError>>,
    },
    Disconnect {
        peer: PeerId,
        reply: Reply<Result<(), NodeError>>,
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
        reply: Reply<p2p_dht::Put>,
    },
    /// Look a resource record up in the DHT (shared key, or one creator's);
    /// the first record that verifies wins.
    GetRecord {
        key: p2p_dht::records::StoredKey,
        reply: Reply<p2p_dht::Lookup>,
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
        reply: Reply<bool>,
    },
    /// Every provider of a key the lookup finds (ourselves included);
    /// `started` is told the lookup's id.
    GetProviders {
        key: kad::RecordKey,
        started: Option<oneshot::Sender<kad::QueryId>>,
        reply: Reply<Vec<PeerId>>,
    },
    /// End a provider lookup: it answers with what it found so far.
    FinishProviders(kad::QueryId),
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
    PeerScore {
        peer: PeerId,
        reply: Reply<f64>,
    },
    IsBanned {
        peer: PeerId,
        reply: Reply<bool>,
    },
    /// Start accepting a (newly registered) handler's raw streams.
    AcceptStreams(Arc<dyn ProtocolHandler>),
    /// Stop accepting an unregistered handler's raw streams.
    StopStreams(ProtocolName),
    /// Stop; the reply comes once every connection and listener is closed.
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
        self.next_dial = Some(Instant::now() + crate::relays::redial_delay(self.failures));
    }
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    events: broadcast::Sender<Event>,
    handlers: Handlers,
    outbound: Option<Outbound>,
    stats: SharedStats,
    ready: Option<oneshot::Sender<Result<(), NodeError>>>,
    /// Listeners that have not reported an address yet, with what they bind
    /// and whether the start may go on without them.
    listeners_pending: HashMap<ListenerId, (Multiaddr, bool)>,
    /// Every listener, removed explicitly on stop (the memory transport only
    /// releases its port on removal, not on drop).
    listeners: Vec<ListenerId>,
    peers: PeerTable,
    advertise_listen_addrs: bool,
    pending_dials: HashMap<ConnectionId, (Multiaddr, Reply<Result<PeerId, NodeError>>)>,
    max_pending_dials: usize,
    pending_disconnects: HashMap<PeerId, Vec<Reply<Result<(), NodeError>>>>,
    bootstrap: Vec<BootstrapPeer>,
    bootstrap_dials: HashMap<ConnectionId, usize>,
    metrics: Option<SwarmMetrics>,
    limiters: Arc<Limiters>,
    rejections: Rejections,
    /// Handlers' raw-stream acceptors, with their protocols.
    raw: HashMap<ProtocolName, (libp2p::StreamProtocol, JoinHandle<()>)>,
    /// What AutoNAT last said (see [`crate::nat`]).
    reachability: nat::Reachability,
    /// Our reservations on relays (see [`crate::relays`]).
    relays: Relays,
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

/// A listen error as the I/O error it is (an address the transport does not
/// support is [`std::io::ErrorKind::Unsupported`]).
fn transport_io(error: libp2p::TransportError<std::io::Error>) -> std::io::Error {
    match error {
        libp2p::TransportError::Other(e) => with_os_kind(e),
        libp2p::TransportError::MultiaddrNotSupported(address) => std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("no transport for {address}"),
        ),
    }
}

/// `error` with the kind of the OS error it carries: libp2p's boxed
/// transports wrap it in layers of their own, all of kind `Other`, so an
/// address in use or not assigned would otherwise not say so.
fn with_os_kind(error: std::io::Error) -> std::io::Error {
    let mut kind = None;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() != std::io::ErrorKind::Other
        {
            kind = Some(io.kind());
        }
        cause = e.source();
    }
    match kind {
        Some(kind) if kind != error.kind() => std::io::Error::new(kind, error),
        _ => error,
    }
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
    /// events once the loop runs); the peer manager takes over `scores`.
    /// Also returns the stream control and the rejection sink; on failure,
    /// the error and the scores back.
    pub(crate) fn new(
        config: &NodeConfig,
        keypair: &Keypair,
        shared: (
            broadcast::Sender<Event>,
            Handlers,
            SharedStats,
            Arc<Limiters>,
        ),
        scores: PeerScores,
        ready: oneshot::Sender<Result<(), NodeError>>,
    ) -> Result<(Self, streams::Control, Rejections), Box<(NodeError, PeerScores)>> {
        let (events, handlers, stats, limiters) = shared;
        let local = keypair.public().to_peer_id();
        let (relayed, relay_client) = libp2p::relay::client::new(local);
        let transport = match transport::build(config.transport, keypair, config.mplex, relayed) {
            Ok(transport) => transport,
            Err(e) => return Err(Box::new((e.into(), scores))),
        };
        let (peer_manager, rejections) = PeerManager::new(scores, Arc::clone(&stats));
        let (listen, optional) = config.listen_addrs();
        let behaviour = Behaviour {
            peers: peer_manager,
            limits: connection_limits::Behaviour::new(config.limits.to_libp2p()),
            per_ip: IpLimiter::new(config.limits.per_ip, Arc::clone(&stats.denied_per_ip)),
            memory: memory_connection_limits::Behaviour::with_max_bytes(
                config.limits.max_process_memory.unwrap_or(usize::MAX),
            ),
            identify: identify::Behaviour::new(
                identify::Config::new("/lotus/1.0.0".to_owned(), keypair.public())
                    .with_agent_version(config.agent_version.clone()),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new().with_interval(config.ping_interval.max(Duration::from_secs(1))),
            ),
            autonat: config.nat.autonat(local),
            relay: config.nat.relay_server(local),
            relay_client,
            dcutr: config.nat.hole_punching(local),
            dht: dht_behaviour(config, local, &listen),
            stream: streams::Behaviour::new(&config.limits),
        };
        let control = behaviour.stream.control();
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            local,
            libp2p::swarm::Config::with_tokio_executor()
                .with_idle_connection_timeout(config.idle_connection_timeout),
        );
        // The relays we reserve on: their connections never close to make
        // room (the reservation lives on them).
        for relay in config.nat.relays.iter().filter_map(peer_of) {
            swarm.behaviour_mut().stream.protect_relay(relay);
        }
        let mut listeners_pending = HashMap::new();
        let all = listen.iter().map(|a| (a, false));
        for (address, optional) in all.chain(optional.iter().map(|a| (a, true))) {
            let id = match swarm.listen_on(address.clone()) {
                Ok(id) => id,
                Err(e) if optional => {
                    tracing::warn!(%address, error = %transport_io(e), "optional listen address skipped");
                    continue;
                }
                Err(e) => {
                    let error = NodeError::Listen {
                        address: address.clone(),
                        source: transport_io(e),
                    };
                    return Err(Box::new((error, swarm.behaviour_mut().peers.take_scores())));
                }
            };
            listeners_pending.insert(id, (address.clone(), optional));
        }
        // Declared external addresses: confirmed now, so a DHT in auto mode
        // serves from the start and identify advertises them.
        for address in &config.nat.external_addresses {
            swarm.add_external_address(address.clone());
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
                stats,
                ready: Some(ready),
                listeners: listeners_pending.keys().copied().collect(),
                listeners_pending,
                peers: PeerTable::new(MAX_KNOWN_PEERS),
                advertise_listen_addrs: config.advertise_listen_addrs.unwrap_or_else(|| {
                    p2p_dht::mapper::auto_is_passthrough(&listen, &config.dht.public_ranges)
                }),
                pending_dials: HashMap::new(),
                max_pending_dials: config.max_pending_dials,
                pending_disconnects: HashMap::new(),
                bootstrap,
                bootstrap_dials: HashMap::new(),
                metrics: config.metrics.clone(),
                limiters,
                rejections: rejections.clone(),
                raw: HashMap::new(),
                reachability: nat::Reachability::default(),
                relays: Relays::new(
                    &config.nat.relays,
                    !config.nat.external_addresses.is_empty(),
                ),
            },
            control,
            rejections,
        ))
    }

    /// The outbound side, told when peers go away.
    pub(crate) fn set_outbound(&mut self, outbound: Outbound) {
        self.outbound = Some(outbound);
    }

    /// Runs until stopped (or every handle is gone); gives back the peer
    /// scores for the next start.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> PeerScores {
        if self.required_listeners_ready() {
            self.signal_ready(Ok(()));
        }
        for registered in self.handlers.all() {
            self.accept_streams(registered.handler);
        }
        let mut forget_idle = tokio::time::interval(FORGET_IDLE_EVERY);
        forget_idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let redial_at = [self.next_bootstrap_dial(), self.relays.next_attempt()]
                .into_iter()
                .flatten()
                .min();
            let redial = async move {
                match redial_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => {
                    let stop = match command {
                        Some(command) => self.on_command(command),
                        // Every handle is gone: stop, with no one to tell.
                        None => Some(None),
                    };
                    if let Some(reply) = stop {
                        self.shutdown().await;
                        if let Some(reply) = reply {
                            let _ = reply.send(());
                        }
                        return self.swarm.behaviour_mut().peers.take_scores();
                    }
                }
                () = redial => {
                    self.redial_bootstrap();
                    self.reserve_on_relays();
                }
                _ = forget_idle.tick() => self.limiters.forget_idle(),
            }
        }
    }

    /// Starts accepting `handler`'s raw streams, if it has a protocol.
    fn accept_streams(&mut self, handler: Arc<dyn ProtocolHandler>) {
        let Some(protocol) = handler.stream_protocol() else {
            return;
        };
        let control = self.swarm.behaviour().stream.control();
        match control.accept(protocol.clone()) {
            Ok(incoming) => {
                let task = tokio::spawn(raw_streams::accept(
                    incoming,
                    Arc::clone(&handler),
                    self.rejections.clone(),
                    Arc::clone(&self.limiters),
                ));
                if let Some((_, old)) = self.raw.insert(handler.name(), (protocol, task)) {
                    old.abort();
                }
            }
            // Registered twice (during start): already served.
            Err(_) => tracing::debug!(%protocol, "stream protocol already accepted"),
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
        for (_, (_, task)) in self.raw.drain() {
            task.abort();
        }
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

    /// Handles a command; `Some` for `Stop`, with its reply.
    fn on_command(&mut self, command: Command) -> Option<Option<Reply<()>>> {
        match command {
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Dial { address, reply } => self.dial(address, reply),
            Command::Disconnect { peer, reply } => {
                if self.swarm.disconnect_peer_id(peer).is_ok() {
                    self.pending_disconnects
                        .entry(peer)
                        .or_default()
                        .push(reply);
                } else {
                    let _ = reply.send(Ok(()));
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
                self.swarm.behaviour_mut().dht.put(record, reply)
            }
            Command::GetRecord { key, reply } => self.swarm.behaviour_mut().dht.get(key, reply),
            Command::StoresRecord { key, reply } => {
                let _ = reply.send(self.swarm.behaviour_mut().dht.stores(&key));
            }
            Command::StartProviding { key, reply } => {
                self.swarm.behaviour_mut().dht.provide(key, reply);
            }
            Command::GetProviders {
                key,
                started,
                reply,
            } => {
                let id = self.swarm.behaviour_mut().dht.get_providers(key, reply);
                if let Some(started) = started {
                    let _ = started.send(id);
                }
            }
            Command::FinishProviders(id) => {
                self.swarm.behaviour_mut().dht.finish_providers(id);
            }
            Command::Ban {
                peer,
                duration,
                reply,
            } => {
                let _ = reply.send(self.swarm.behaviour_mut().peers.ban(peer, duration));
            }
            Command::Unban { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour_mut().peers.unban(peer));
            }
            Command::PeerScore { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().peers.score(&peer));
            }
            Command::IsBanned { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().peers.is_banned(&peer));
            }
            // Sent without waiting, so it may arrive after an unregister.
            Command::AcceptStreams(handler) => {
                if self.handlers.get(&handler.name()).is_some() {
                    self.accept_streams(handler);
                }
            }
            Command::StopStreams(name) => {
                if let Some((protocol, task)) = self.raw.remove(&name) {
                    // Closed now, not when the aborted task is dropped, so a
                    // handler registered again at once is served.
                    self.swarm
                        .behaviour()
                        .stream
                        .control()
                        .stop_accepting(&protocol);
                    task.abort();
                }
            }
            Command::Stop(reply) => return Some(Some(reply)),
        }
        None
    }

    fn dial(&mut self, address: Multiaddr, reply: Reply<Result<PeerId, NodeError>>) {
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
                    source: Box::new(e),
                }));
            }
        }
    }

    /// When the next bootstrap dial is due.
    fn next_bootstrap_dial(&self) -> Option<Instant> {
        self.bootstrap.iter().filter_map(|b| b.next_dial).min()
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

    /// True once every listener the start needs has reported an address;
    /// optional ones (IPv6 by default) may still be pending, or never
    /// report (a host where `::` binds but no interface has IPv6).
    fn required_listeners_ready(&self) -> bool {
        self.listeners_pending
            .values()
            .all(|(_, optional)| *optional)
    }

    /// Reports the node's external addresses after a change (libp2p reports
    /// only the changes other behaviours make, not the loop's own).
    fn addresses_changed(&self) {
        let addrs = self.swarm.external_addresses().cloned().collect();
        self.emit(NodeEvent::Addresses { addrs });
    }

    /// Listens on the circuit addresses of the relays whose reservation is due.
    fn reserve_on_relays(&mut self) {
        for (index, circuit) in self.relays.due(Instant::now()) {
            match self.swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    self.relays.listening(index, listener);
                    self.listeners.push(listener);
                }
                Err(e) => {
                    tracing::debug!(%circuit, error = %e, "relay reservation not asked");
                    self.relays.failed(index);
                }
            }
        }
    }

    fn stats(&mut self) -> NodeStats {
        let info = self.swarm.network_info();
        let dht = self.swarm.behaviour_mut().dht.stats();
        NodeStats {
            connected_peers: info.num_peers(),
            known_peers: self.peers.known(),
            connections: info.connection_counters().num_established() as usize,
            listen_addrs: self.swarm.listeners().count(),
            messages: self.stats.total(),
            dht,
            banned_peers: self.swarm.behaviour().peers.banned_count(),
            connections_denied_per_ip: self.stats.denied_per_ip(),
            connections_closed_for_room: self.swarm.behaviour().stream.trimmed(),
            connections_closed_for_room_awaited: self.swarm.behaviour().stream.trimmed_awaited(),
            connections_refused_at_limit: self.swarm.behaviour().stream.refused_at_limit(),
            reachability: self.reachability.status(),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if let Some(metrics) = &self.metrics {
            metrics.record(&event);
            match &event {
                SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => metrics.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => metrics.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => metrics.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => metrics.record(e),
                _ => {}
            }
        }
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                match self.relays.reserved(listener_id, &address) {
                    Some(Some(reserved)) => {
                        tracing::info!(relay = ?reserved.relay, %address, "relay reservation accepted");
                        self.emit(NodeEvent::RelayReserved {
                            relay: reserved.relay,
                            addr: reserved.address,
                        });
                    }
                    // A renewal of a reservation we hold.
                    Some(None) => {}
                    None if self.advertise_listen_addrs => {
                        self.swarm.add_external_address(address.clone());
                        self.addresses_changed();
                    }
                    None => {}
                }
                self.emit(NodeEvent::ListenAddress { address });
                if self.listeners_pending.remove(&listener_id).is_some()
                    && self.required_listeners_ready()
                {
                    self.signal_ready(Ok(()));
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(relay) = self.relays.closed(listener_id) {
                    let error = reason.err().map(|e| error_chain(&e));
                    tracing::info!(?relay, ?error, "relay reservation ended");
                    self.listeners.retain(|l| *l != listener_id);
                    self.emit(NodeEvent::RelayReservationEnded { relay, error });
                } else if let Some((address, optional)) =
                    self.listeners_pending.remove(&listener_id)
                {
                    let source = reason.err().map(with_os_kind).unwrap_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "the listener closed",
                        )
                    });
                    if optional {
                        tracing::warn!(%address, error = %source, "optional listen address skipped");
                        if self.required_listeners_ready() {
                            self.signal_ready(Ok(()));
                        }
                    } else {
                        self.signal_ready(Err(NodeError::Listen { address, source }));
                    }
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let address = crate::peers::remote_address(&endpoint, peer_id);
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
                    tracing::debug!(%address, error = %error_chain(&error), "dial failed");
                    let _ = reply.send(Err(NodeError::Dial {
                        address,
                        source: Box::new(error),
                    }));
                } else if let Some(index) = self.bootstrap_dials.remove(&connection_id)
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
            SwarmEvent::ExternalAddrConfirmed { .. } | SwarmEvent::ExternalAddrExpired { .. } => {
                self.addresses_changed();
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
        self.peers.disconnected(
            peer,
            &crate::peers::remote_address(endpoint, peer),
            remaining as usize,
        );
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
            BehaviourEvent::Autonat(libp2p::autonat::Event::StatusChanged { old, new }) => {
                tracing::info!(?old, ?new, "reachability changed");
                let change = self.reachability.changed(new);
                if let Some(address) = change.withdraw {
                    self.swarm.remove_external_address(&address);
                    self.addresses_changed();
                }
                let public = change.status == p2p_types::Reachability::Public;
                for (listener, relay) in self.relays.set_public(public) {
                    // Given up: its closing is no longer ours to retry.
                    self.swarm.remove_listener(listener);
                    self.listeners.retain(|l| *l != listener);
                    self.emit(NodeEvent::RelayReservationEnded {
                        relay,
                        error: Some("not needed: the node is publicly reachable".to_owned()),
                    });
                }
                self.reserve_on_relays();
                // AutoNAT reports the status before the swarm takes the
                // address it confirmed: list that one too.
                let mut addrs: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
                if let Some(confirmed) = change.confirmed
                    && !addrs.contains(&confirmed)
                {
                    addrs.push(confirmed);
                }
                self.emit(nat::event(change.status, addrs));
            }
            BehaviourEvent::Dcutr(libp2p::dcutr::Event {
                remote_peer_id,
                result,
            }) => {
                tracing::info!(peer = %remote_peer_id, ?result, "hole punch");
                self.emit(NodeEvent::HolePunch {
                    peer: remote_peer_id,
                    ok: result.is_ok(),
                    error: result.err().map(|e| error_chain(&e)),
                });
            }
            BehaviourEvent::RelayClient(event) => tracing::debug!(?event, "relay client"),
            BehaviourEvent::Relay(event) => {
                tracing::debug!(?event, "relay server");
                // A peer's reservation on us lives on its connection: that
                // connection never closes to make room while it lasts (or
                // until the peer disconnects).
                let stream = &mut self.swarm.behaviour_mut().stream;
                match event {
                    relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                        stream.reservation_held(src_peer_id);
                    }
                    relay::Event::ReservationTimedOut { src_peer_id } => {
                        stream.reservation_ended(&src_peer_id);
                    }
                    _ => {}
                }
            }
            BehaviourEvent::Stream(streams::Event::Refused { peer, protocol }) => {
                tracing::debug!(%peer, %protocol, "inbound stream refused: accept queue full");
                let peers = &mut self.swarm.behaviour_mut().peers;
                peers.reject(peer, RejectReason::AcceptQueueFull);
            }
            BehaviourEvent::Peers(event) => self.on_peer_manager_event(event),
            _ => {}
        }
    }

    fn on_peer_manager_event(&mut self, event: peer_manager::Event) {
        self.emit(match event {
            peer_manager::Event::Rejected { peer, reason } => {
                NodeEvent::MessageRejected { peer, reason }
            }
            peer_manager::Event::Banned {
                peer,
                reason,
                duration,
            } => NodeEvent::PeerBanned {
                peer,
                reason,
                duration,
            },
            peer_manager::Event::Unbanned { peer } => NodeEvent::PeerUnbanned { peer },
        });
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
                self.swarm.behaviour_mut().peers.reject(peer, reason);
            }
            p2p_dht::Event::AwaitingAnswer { peer, awaiting } => {
                self.swarm
                    .behaviour_mut()
                    .stream
                    .awaiting_answer(peer, awaiting);
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
