//! The node handle: cheap to clone, every method talks to the task that owns
//! the swarm through a bounded channel.

use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use std::collections::HashMap;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use p2p_protocol::{Message, MessageBuilder, SignError};
use p2p_types::{MessageStats, MessageType, NodeStats, ProtocolName};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{NodeBuilder, NodeConfig};
use crate::error::NodeError;
use crate::event_loop::{Command, EventLoop};
use crate::events::Event;
use crate::handler::{Handlers, ProtocolHandler, RegisterError};
use crate::messaging::{
    self, Outbound, Processor, SendError, TYPESCRIPT_PROTOCOL, Wire, WireChoice,
};
use crate::peer_manager::scores::PeerScores;
use crate::peers::PeerInfo;
use crate::rate_limits::Limiters;
use crate::resources::{
    AnnounceOptions, Announced, Cached, MAX_DISCOVERED, ResourceCache, ResourceError,
};
use crate::stats::{SharedStats, Stats};
use crate::streams;
use p2p_dht::records::StoredKey;
use p2p_protocol::ResourceRecord;
use p2p_types::{ResourceId, ResourceKey, ResourceType};

/// How often own announcements are checked for republishing and the cache
/// for expired entries.
const RESOURCE_TICK: Duration = Duration::from_millis(250);

/// Commands queued to the event loop before callers wait (backpressure).
const COMMAND_CAPACITY: usize = 256;
/// Bound on start-up (binding the listeners).
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `discover` waits, once its provider walk has ended, for the
/// shared-key lookup before it reads every creator's own key (the shared
/// key may already hold one of those records).
const SHARED_GRACE: Duration = Duration::from_millis(500);

/// A lotus-p2p node. Clone it freely: clones share one node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    keypair: Keypair,
    /// Lives as long as the node, so subscriptions survive stop/start.
    events: broadcast::Sender<Event>,
    /// Registered handlers; they survive stop/start.
    handlers: Handlers,
    /// Message counters, kept across runs.
    stats: SharedStats,
    /// Peer scores and bans while the node is stopped (the running node's
    /// peer manager owns them; stop hands them back).
    parked_scores: StdMutex<Option<PeerScores>>,
    /// Inbound rate limits, kept across runs.
    limiters: Arc<Limiters>,
    /// Announced and discovered resources, kept across runs.
    resources: ResourceCache,
    /// The next sequence number per protocol (see `Node::sign`).
    sequences: StdMutex<HashMap<Option<ProtocolName>, u64>>,
    /// The running task; the lock serialises start and stop.
    running: Mutex<Option<Running>>,
    /// What calls need of the running node, for cheap access.
    live: StdMutex<Option<Live>>,
}

/// Handles into a running node.
#[derive(Clone)]
struct Live {
    commands: mpsc::Sender<Command>,
    outbound: Outbound,
    control: streams::Control,
}

struct Running {
    task: JoinHandle<PeerScores>,
    commands: mpsc::Sender<Command>,
    background: Background,
}

/// The processor, acceptors and republisher of a run: aborted on stop, and
/// when the last handle is dropped. (The event loop itself ends when its
/// command channel closes, after closing its connections and listeners.)
struct Background(Vec<JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Where `broadcast` sends.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BroadcastOptions {
    /// Peers to leave out.
    pub exclude: Vec<PeerId>,
    /// If not empty, only these peers (among the connected ones).
    pub include_only: Vec<PeerId>,
    /// Protocol choice.
    pub wire: WireChoice,
}

/// The outcome of a broadcast, per peer.
#[derive(Debug, Clone, Default)]
pub struct BroadcastReport {
    /// Peers the message was written to.
    pub delivered: Vec<PeerId>,
    /// Peers it could not be delivered to, and why.
    pub failed: Vec<(PeerId, SendError)>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id())
            .finish()
    }
}

impl Node {
    /// A builder.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::new()
    }

    pub(crate) fn new(config: NodeConfig) -> Result<Self, NodeError> {
        // A native codec under the TypeScript or DHT protocol id would take
        // that protocol's streams and misread them.
        let native = config.native.protocol();
        if *native == TYPESCRIPT_PROTOCOL || *native == config.dht.protocol {
            return Err(NodeError::ProtocolInUse(native.clone()));
        }
        let keypair = config.identity.keypair()?;
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let resources = ResourceCache::new(config.resource_cache_capacity);
        let parked_scores = StdMutex::new(Some(PeerScores::new(config.scoring.clone())));
        let limiters = Arc::new(Limiters::new(&config.rate_limits));
        Ok(Self {
            inner: Arc::new(Inner {
                limiters,
                config,
                keypair,
                events,
                handlers: Handlers::default(),
                stats: Arc::new(Stats::default()),
                parked_scores,
                resources,
                sequences: StdMutex::default(),
                running: Mutex::new(None),
                live: StdMutex::new(None),
            }),
        })
    }

    /// This node's PeerId (stable across stop/start).
    pub fn peer_id(&self) -> PeerId {
        self.inner.keypair.public().to_peer_id()
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Starts the node: binds every listen address and returns once each has
    /// reported its real address. Starting a running node does nothing.
    ///
    /// The node runs until [`Node::stop`] or until its last handle is
    /// dropped (clones are handles; a handler that keeps a clone keeps the
    /// node alive).
    pub async fn start(&self) -> Result<(), NodeError> {
        let mut running = self.inner.running.lock().await;
        if running.as_ref().is_some_and(|r| !r.task.is_finished()) {
            return Ok(());
        }
        let inner = &self.inner;
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (ready_tx, ready_rx) = oneshot::channel();
        let shared = (
            inner.events.clone(),
            inner.handlers.clone(),
            Arc::clone(&inner.stats),
            Arc::clone(&inner.limiters),
        );
        let scores = self
            .lock_parked()
            .take()
            .unwrap_or_else(|| PeerScores::new(inner.config.scoring.clone()));
        let (mut event_loop, control, rejections) =
            EventLoop::new(&inner.config, &inner.keypair, shared, scores, ready_tx).map_err(
                |failed| {
                    let (error, scores) = *failed;
                    *self.lock_parked() = Some(scores);
                    error
                },
            )?;
        let outbound = Outbound::new(
            control.clone(),
            Arc::clone(&inner.stats),
            inner.config.native.clone(),
        );
        event_loop.set_outbound(outbound.clone());

        // The inbound side: one processor, fed by the readers of both protocols.
        let (items, item_rx) = messaging::processor_channel();
        // The seen-set covers the replay window at the node's message rate.
        let mut policy = inner.config.inbound.clone();
        policy.replay_capacity = policy.replay_capacity.max(
            inner
                .config
                .rate_limits
                .replay_capacity(policy.replay_window, 0),
        );
        let processor = Processor::new(
            policy,
            inner.events.clone(),
            Arc::clone(&inner.stats),
            rejections.clone(),
        );
        let checks = messaging::Checks {
            policy: inner.config.inbound.clone(),
            handlers: inner.handlers.clone(),
            local: self.peer_id(),
            limiters: Arc::clone(&inner.limiters),
            stream_timeout: inner.config.stream_timeout,
            rejections,
            native_codec: Arc::clone(inner.config.native.codec()),
        };
        let mut background = vec![tokio::spawn(processor.run(item_rx))];
        let mut served = vec![(inner.config.native.protocol().clone(), Wire::Native)];
        if inner.config.accept_typescript_messages {
            served.push((TYPESCRIPT_PROTOCOL, Wire::TypeScript));
        }
        for (protocol, wire) in served {
            // A fresh control has no registrations, and the native id is
            // never the TypeScript one (checked when the node was built), so
            // accept cannot fail here.
            if let Ok(incoming) = control.accept(protocol) {
                background.push(tokio::spawn(messaging::accept(
                    incoming,
                    wire,
                    items.clone(),
                    checks.clone(),
                )));
            }
        }
        background.push(tokio::spawn(keep_resources(Arc::downgrade(&self.inner))));
        // Live before the loop runs: a handler registered from here on is
        // sent to the loop, one registered before is in the loop's first pass.
        *self.lock_live() = Some(Live {
            commands: commands.clone(),
            outbound,
            control,
        });
        let task = tokio::spawn(event_loop.run(command_rx));
        let started = match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(NodeError::Stopped),
            Err(_) => Err(NodeError::Timeout),
        };
        let run = Running {
            task,
            commands,
            background: Background(background),
        };
        match started {
            Ok(()) => {
                *running = Some(run);
                Ok(())
            }
            Err(error) => {
                *self.lock_live() = None;
                self.end(run).await;
                Err(error)
            }
        }
    }

    /// Ends a run: the loop closes its connections and listeners and hands
    /// the peer scores back; the background tasks are aborted.
    async fn end(&self, run: Running) {
        let (reply, done) = oneshot::channel();
        if run.commands.send(Command::Stop(reply)).await.is_ok() {
            let _ = done.await;
        }
        let Running {
            task,
            commands,
            mut background,
        } = run;
        drop(commands);
        if let Ok(scores) = task.await {
            *self.lock_parked() = Some(scores);
        }
        for handle in std::mem::take(&mut background.0) {
            handle.abort();
            let _ = handle.await;
        }
    }

    fn lock_parked(&self) -> std::sync::MutexGuard<'_, Option<PeerScores>> {
        self.inner
            .parked_scores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the node gracefully: closes every connection and listener, then
    /// waits for the task to end. Stopping a stopped node does nothing; the
    /// node can be started again (scores and bans are kept).
    pub async fn stop(&self) -> Result<(), NodeError> {
        let mut running = self.inner.running.lock().await;
        *self.lock_live() = None;
        if let Some(run) = running.take() {
            self.end(run).await;
        }
        Ok(())
    }

    /// True while the node runs.
    pub fn is_running(&self) -> bool {
        self.lock_live()
            .as_ref()
            .is_some_and(|l| !l.commands.is_closed())
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, Option<Live>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn live(&self) -> Option<Live> {
        self.lock_live().clone()
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let commands = self.live().ok_or(NodeError::NotStarted)?.commands;
        let (reply, rx) = oneshot::channel();
        commands
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// The addresses the node listens on now (with real ports).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        self.request(Command::ListenAddrs).await
    }

    /// Dials `address` and resolves when the connection is up, with the remote
    /// PeerId. An address ending in `/p2p/<id>` must lead to that peer.
    pub async fn connect(&self, address: Multiaddr) -> Result<PeerId, NodeError> {
        let dial = self.request(|reply| Command::Dial { address, reply });
        tokio::time::timeout(self.inner.config.dial_timeout, dial)
            .await
            .map_err(|_| NodeError::Timeout)??
    }

    /// Closes every connection to `peer` and resolves once they are closed.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NodeError> {
        let closed = self.request(|reply| Command::Disconnect { peer, reply });
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .map_err(|_| NodeError::Timeout)??
    }

    /// Peers with an open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.request(Command::ConnectedPeers).await
    }

    /// What the node knows about `peer` (connected or remembered).
    pub async fn peer_info(&self, peer: PeerId) -> Result<Option<PeerInfo>, NodeError> {
        self.request(|reply| Command::PeerInfo { peer, reply })
            .await
    }

    /// True if at least one connection to `peer` is open (false when stopped).
    pub async fn is_connected(&self, peer: PeerId) -> bool {
        self.request(|reply| Command::IsConnected { peer, reply })
            .await
            .unwrap_or(false)
    }

    /// Totals of the running node.
    pub async fn stats(&self) -> Result<NodeStats, NodeError> {
        self.request(Command::Stats).await
    }

    /// A new subscription to the node's events. A subscriber that falls more
    /// than `event_capacity` events behind misses the oldest ones (and learns
    /// how many through `RecvError::Lagged`); the node never waits for it.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Waits up to `timeout` for an event matching `predicate`. The
    /// subscription is taken when this is called, not when the future is first
    /// polled, so call it *before* the action whose event you expect.
    pub fn wait_for<F>(
        &self,
        timeout: Duration,
        mut predicate: F,
    ) -> impl Future<Output = Result<Event, NodeError>> + Send + 'static + use<F>
    where
        F: FnMut(&Event) -> bool + Send + 'static,
    {
        let mut events = self.subscribe();
        async move {
            let wait = async {
                loop {
                    match events.recv().await {
                        Ok(event) if predicate(&event) => return Ok(event),
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return Err(NodeError::Stopped),
                    }
                }
            };
            tokio::time::timeout(timeout, wait)
                .await
                .map_err(|_| NodeError::Timeout)?
        }
    }

    /// Registers a protocol handler. Works before or after `start` (also
    /// while a start is under way); the registration survives stop/start. A
    /// name already registered is refused. Must be called inside a tokio
    /// runtime (the handler gets a worker task).
    pub fn register_handler(&self, handler: Arc<dyn ProtocolHandler>) -> Result<(), RegisterError> {
        if let Some(protocol) = handler.stream_protocol()
            && own_protocols(&self.inner.config).contains(&protocol)
        {
            return Err(RegisterError::Reserved(protocol));
        }
        let registered = self.inner.handlers.register(handler)?;
        self.tell_loop(Command::AcceptStreams(registered.handler));
        Ok(())
    }

    /// Unregisters a handler (and stops accepting its raw streams). Returns
    /// false if no handler had that name.
    pub fn unregister_handler(&self, name: &ProtocolName) -> bool {
        let removed = self.inner.handlers.unregister(name).is_some();
        if removed {
            self.tell_loop(Command::StopStreams(name.clone()));
        }
        removed
    }

    /// Sends a command that needs no answer to the running loop, if any,
    /// without waiting (queued in order; from a task when the queue is full).
    fn tell_loop(&self, command: Command) {
        let Some(live) = self.live() else {
            return; // the next start's first pass covers it
        };
        if let Err(mpsc::error::TrySendError::Full(command)) = live.commands.try_send(command) {
            tokio::spawn(async move {
                let _ = live.commands.send(command).await;
            });
        }
    }

    /// A message builder from this node.
    pub fn message(&self, kind: MessageType) -> MessageBuilder {
        MessageBuilder::new(kind, self.peer_id())
    }

    /// Builds and signs a message with this node's key; numbers it first
    /// when [`NodeConfig::sequence_numbers`] is on and it has no number.
    pub fn sign(&self, builder: MessageBuilder) -> Result<Message, SignError> {
        let mut message = builder.build();
        if self.inner.config.sequence_numbers && message.sequence.is_none() {
            message.sequence = Some(self.next_sequence(message.protocol.as_ref()));
        }
        p2p_protocol::sign(&mut message, &self.inner.keypair)?;
        Ok(message)
    }

    /// The next sequence number for `protocol`: one above its last. Each
    /// protocol counts from the clock in microseconds at its first number, so
    /// a restarted process continues above its old numbers (unless it sent
    /// more than a million a second), while consecutive messages stay one
    /// apart and a late one still fits the receiver's window.
    fn next_sequence(&self, protocol: Option<&ProtocolName>) -> u64 {
        let mut counters = self
            .inner
            .sequences
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let next = counters
            .entry(protocol.cloned())
            .or_insert_with(|| p2p_protocol::now_ms().saturating_mul(1_000).max(1));
        let sequence = *next;
        *next = next.saturating_add(1);
        sequence
    }

    /// Sends `message` to `peer` (native protocol if it speaks it, else the
    /// TypeScript JSON protocol) and resolves once it is written; waits while
    /// the peer's queue is full.
    pub async fn send(&self, peer: PeerId, message: &Message) -> Result<(), SendError> {
        self.send_with(peer, message, WireChoice::Auto).await
    }

    /// [`Node::send`] with an explicit protocol choice.
    pub async fn send_with(
        &self,
        peer: PeerId,
        message: &Message,
        wire: WireChoice,
    ) -> Result<(), SendError> {
        let live = self.live().ok_or(SendError::NotStarted)?;
        live.outbound.send(peer, message, wire).await
    }

    /// Sends `message` to every connected peer (minus `exclude`, or only
    /// `include_only`), concurrently, one hop. Never fails as a whole: the
    /// report says, per peer, whether it was delivered.
    pub async fn broadcast(
        &self,
        message: &Message,
        options: &BroadcastOptions,
    ) -> Result<BroadcastReport, NodeError> {
        let live = self.live().ok_or(NodeError::NotStarted)?;
        let targets: Vec<PeerId> = self
            .connected_peers()
            .await?
            .into_iter()
            .map(|p| p.peer_id)
            .filter(|p| !options.exclude.contains(p))
            .filter(|p| options.include_only.is_empty() || options.include_only.contains(p))
            .collect();
        let sends = targets.iter().map(|&peer| {
            let outbound = live.outbound.clone();
            async move { (peer, outbound.send(peer, message, options.wire).await) }
        });
        let mut report = BroadcastReport::default();
        for (peer, result) in futures::future::join_all(sends).await {
            match result {
                Ok(()) => report.delivered.push(peer),
                Err(e) => report.failed.push((peer, e)),
            }
        }
        Ok(report)
    }

    /// Bans `peer`: closes its connections and refuses new ones, both ways,
    /// for `duration` (`None`: until [`Node::unban`]). False for a peer on
    /// the allow-list.
    pub async fn ban(&self, peer: PeerId, duration: Option<Duration>) -> Result<bool, NodeError> {
        self.request(|reply| Command::Ban {
            peer,
            duration,
            reply,
        })
        .await
    }

    /// Lifts a ban (and forgets the peer's score); false if it had none.
    pub async fn unban(&self, peer: PeerId) -> Result<bool, NodeError> {
        self.request(|reply| Command::Unban { peer, reply }).await
    }

    /// The peer's score now: 0 for a well-behaved or unknown peer, lower for
    /// each rejection (decaying back to 0), down to −100. Also while stopped.
    pub async fn peer_score(&self, peer: PeerId) -> Result<f64, NodeError> {
        if let Some(scores) = self.lock_parked().as_ref() {
            return Ok(scores.score(&peer, std::time::Instant::now()));
        }
        self.request(|reply| Command::PeerScore { peer, reply })
            .await
    }

    /// True while `peer` is banned. Also while stopped.
    pub async fn is_banned(&self, peer: PeerId) -> Result<bool, NodeError> {
        if let Some(scores) = self.lock_parked().as_ref() {
            return Ok(scores.is_banned(&peer));
        }
        self.request(|reply| Command::IsBanned { peer, reply })
            .await
    }

    /// Message counters for one peer (rejections are attributed to the peer
    /// that sent the bytes).
    pub fn peer_message_stats(&self, peer: &PeerId) -> MessageStats {
        self.inner.stats.peer(peer)
    }

    /// Opens a raw stream to `peer` on `protocol` (for handlers that speak
    /// their own framing, like the TypeScript chat example).
    pub async fn open_stream(
        &self,
        peer: PeerId,
        protocol: libp2p::StreamProtocol,
    ) -> Result<libp2p::Stream, SendError> {
        let control = self.live().ok_or(SendError::NotStarted)?.control;
        control
            .open(peer, protocol, streams::Target::Any)
            .await
            .map(|opened| opened.stream)
            .map_err(SendError::from)
    }

    /// Announces a resource: a record signed by this node, kept in the local
    /// cache and put to the DHT (in client mode too, to the closest servers).
    /// `data` must be JSON text (the DHT form is the TypeScript system's JSON).
    pub async fn announce(
        &self,
        resource_type: &ResourceType,
        resource_id: &ResourceId,
        data: impl Into<bytes::Bytes>,
        options: AnnounceOptions,
    ) -> Result<Announced, ResourceError> {
        let key = ResourceKey::new(resource_type.clone(), resource_id.clone());
        let ttl = options.ttl.unwrap_or(self.inner.config.dht.record_ttl);
        let now = p2p_protocol::now_ms();
        let expires = options.expires_at_ms.unwrap_or_else(|| {
            now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
        });
        let record = ResourceRecord::new(key, self.peer_id(), data, now, Some(expires))
            .sign(&self.inner.keypair)
            .map_err(|e| ResourceError::Data(Arc::new(e)))?;
        p2p_protocol::validate_record(&record, now, &self.inner.config.inbound.limits)
            .map_err(|e| ResourceError::Data(Arc::new(e)))?;
        let republish = (options.republish && options.expires_at_ms.is_none()).then_some(ttl);
        self.publish(record, republish).await
    }

    /// Caches and publishes one signed record of ours: put under our
    /// creator-scoped key (only we can write it; `stored_by` counts the
    /// peers that stored it there), put under the shared
    /// `resource:<type>:<id>` key for TypeScript peers (first writer wins
    /// there, so it may be refused when another creator announced first),
    /// and announced with a provider record at the shared key, through which
    /// `discover` finds every creator.
    async fn publish(
        &self,
        record: ResourceRecord,
        republish: Option<Duration>,
    ) -> Result<Announced, ResourceError> {
        let now = p2p_protocol::now_ms();
        let at = std::time::Instant::now();
        let data_error = |e: p2p_protocol::CodecError| ResourceError::Data(Arc::new(e));
        let scoped = p2p_dht::records::to_creator_record(&record, now, at).map_err(data_error)?;
        let shared = p2p_dht::records::to_kad_record(&record, now, at).map_err(data_error)?;
        if self.live().is_none() {
            return Err(ResourceError::NotStarted);
        }
        let record = Arc::new(record);
        self.inner.resources.insert(
            Cached {
                record: Arc::clone(&record),
                own: Some(republish),
            },
            now,
        )?;
        let put = |record| self.request(move |reply| Command::PutRecord { record, reply });
        let key = p2p_dht::records::kad_key(&record.key);
        let provided = self.request(|reply| Command::StartProviding { key, reply });
        let (scoped, shared, provided) = futures::join!(put(scoped), put(shared), provided);
        let stored_by = match scoped.map_err(|_| ResourceError::NotStarted)? {
            Ok(stored_by) => stored_by,
            Err(e) => {
                tracing::debug!(key = %record.key, error = %e, "announce not stored");
                return Err(ResourceError::NotStored);
            }
        };
        tracing::debug!(
            key = %record.key,
            shared = ?shared.ok(),
            provided = ?provided.ok(),
            "announce: shared key and provider record"
        );
        let _ = self.inner.events.send(Event::ResourceAnnounced {
            key: record.key.clone(),
            stored_by,
        });
        Ok(Announced { record, stored_by })
    }

    /// Tells the DHT that this node provides `name` (a provider record, kept
    /// alive by the DHT's republication). Keys are made as js-libp2p makes
    /// them for strings, so TypeScript nodes find our providers and we find
    /// theirs. Resolves `Ok(true)` once the closest peers were told, `Ok(false)`
    /// when the lookup found no one to tell (the record is still held locally).
    pub async fn provide(&self, name: &str) -> Result<bool, ResourceError> {
        let key = p2p_dht::providers::provider_key(name);
        self.request(|reply| Command::StartProviding { key, reply })
            .await
            .map_err(|_| ResourceError::NotStarted)
    }

    /// The peers the DHT knows as providers of `name` (this node too, when
    /// it provides `name`). An empty list when there are none. The walk ends
    /// when the peers nearest the key that it knows of have answered, one
    /// naming a provider (`DhtConfig::provider_closest`, 3 by default), else
    /// when the closest peers of every path have (or after
    /// `DhtConfig::provider_answers` answers, if set), or at `timeout` with
    /// the providers found so far ([`ResourceError::Timeout`] when it found
    /// none by then).
    pub async fn providers(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Vec<PeerId>, ResourceError> {
        let key = p2p_dht::providers::provider_key(name);
        // The walk's own deadline is `timeout`; the margin only bounds the
        // event loop's answer to ending it.
        let walk = self.provider_walk(key, timeout);
        match tokio::time::timeout(timeout + Duration::from_secs(1), walk).await {
            Err(_) => Err(ResourceError::Timeout),
            Ok(Ok((found, true))) if found.is_empty() => Err(ResourceError::Timeout),
            Ok(result) => result.map(|(found, _)| found),
        }
    }

    /// A provider lookup of `key`, ended at `deadline` if it still runs:
    /// the providers found, and whether the deadline cut the walk.
    async fn provider_walk(
        &self,
        key: libp2p::kad::RecordKey,
        deadline: Duration,
    ) -> Result<(Vec<PeerId>, bool), ResourceError> {
        let commands = self.live().ok_or(ResourceError::NotStarted)?.commands;
        let (reply, mut found) = oneshot::channel();
        let (started, id) = oneshot::channel();
        commands
            .send(Command::GetProviders {
                key,
                started: Some(started),
                reply,
            })
            .await
            .map_err(|_| ResourceError::NotStarted)?;
        if let Ok(found) = tokio::time::timeout(deadline, &mut found).await {
            return found
                .map(|found| (found, false))
                .map_err(|_| ResourceError::NotStarted);
        }
        if let Ok(id) = id.await {
            let _ = commands.send(Command::FinishProviders(id)).await;
        }
        found
            .await
            .map(|found| (found, true))
            .map_err(|_| ResourceError::NotStarted)
    }

    /// Whether this node's DHT store holds a copy of the resource's record:
    /// the announcer keeps its own, and servers keep those whose keys are
    /// close to their ids. Counting the nodes that say yes measures a
    /// record's replication; expired records are not counted.
    pub async fn stores_record(
        &self,
        resource_type: &ResourceType,
        resource_id: &ResourceId,
    ) -> Result<bool, ResourceError> {
        let key = ResourceKey::new(resource_type.clone(), resource_id.clone());
        let key = p2p_dht::records::kad_key(&key);
        self.request(|reply| Command::StoresRecord { key, reply })
            .await
            .map_err(|_| ResourceError::NotStarted)
    }

    /// Finds a resource: the newest valid record of [`Node::discover_all`].
    pub async fn discover(
        &self,
        resource_type: &ResourceType,
        resource_id: &ResourceId,
        timeout: Duration,
    ) -> Result<Arc<ResourceRecord>, ResourceError> {
        self.discover_all(resource_type, resource_id, timeout)
            .await?
            .into_iter()
            .next()
            .ok_or(ResourceError::NotFound)
    }

    /// Every valid record of a resource, one per creator, newest first, at
    /// most [`MAX_DISCOVERED`]: the creators found through the provider
    /// records at `resource:<type>:<id>` (at most [`MAX_DISCOVERED`] of them
    /// asked), each one's record under its creator-scoped key, the record
    /// under the shared key (TypeScript peers', or whoever wrote it first),
    /// and what the local cache holds. A squatter can add its own record to
    /// the list but cannot take another creator's off the servers that hold
    /// it, short of holding the places nearest the key (the provider walk
    /// ends once the `DhtConfig::provider_closest` peers nearest the key
    /// that it knows of have answered, one naming a provider, else when the
    /// closest peers of each disjoint path have; with
    /// `DhtConfig::provider_answers` set, the first peers to answer decide
    /// the list); callers who know the creator they want use
    /// [`Node::discover_from`]. Past half of `timeout` the walk is ended
    /// and the creators it found so far
    /// are read, except the one whose signed record the shared-key lookup
    /// gave by the end of the provider walk, or half a second after it
    /// (that copy may be an older version
    /// than the creator's own key holds, as a creator-key read, which also
    /// ends at its first valid record, may return too).
    /// [`ResourceError::NotFound`] when nothing valid was found; on
    /// timeout, what the cache holds, or [`ResourceError::Timeout`] when it
    /// holds nothing.
    pub async fn discover_all(
        &self,
        resource_type: &ResourceType,
        resource_id: &ResourceId,
        timeout: Duration,
    ) -> Result<Vec<Arc<ResourceRecord>>, ResourceError> {
        let key = ResourceKey::new(resource_type.clone(), resource_id.clone());
        let lookup = async {
            // The provider walk and the shared-key lookup go to the same key
            // together. Past half of the timeout the provider walk is ended
            // with the creators it found so far, leaving the rest of the time
            // to read their records. The reads wait for the shared-key lookup
            // only [`SHARED_GRACE`] past the provider walk: it is usually the
            // shorter walk, as it ends at its first valid record.
            let half = timeout / 2;
            let shared = self.lookup(StoredKey::Shared(key.clone()));
            tokio::pin!(shared);
            let providers = self.provider_walk(p2p_dht::records::kad_key(&key), half);
            tokio::pin!(providers);
            let mut shared_early = None;
            let creators = loop {
                tokio::select! {
                    creators = &mut providers => break creators,
                    found = &mut shared, if shared_early.is_none() => shared_early = Some(found),
                }
            };
            if shared_early.is_none() {
                shared_early = tokio::time::timeout(SHARED_GRACE, shared.as_mut())
                    .await
                    .ok();
            }
            let (creators, cut) = creators?;
            tracing::debug!(
                %key,
                creators = creators.len(),
                cut,
                shared = ?shared_early.as_ref().map(|found| found.is_ok()),
                "discover: provider walk ended"
            );
            // A creator whose signed record the shared key gave by then is
            // not read again: a creator-key read ends at its first valid
            // record too, so it would not be fresher for certain, and it
            // costs a walk. An unsigned (TypeScript) record there proves
            // nothing about a signed creator, whose own key is read.
            let covered = shared_early
                .as_ref()
                .and_then(|found| found.as_ref().ok())
                .filter(|(record, _)| record.signature.is_some())
                .map(|(record, _)| record.creator);
            let reads = futures::future::join_all(
                creators
                    .into_iter()
                    .filter(|creator| Some(*creator) != covered)
                    .take(MAX_DISCOVERED)
                    .map(|creator| self.lookup(StoredKey::Creator(key.clone(), creator))),
            );
            let (scoped, shared) = match shared_early {
                Some(shared) => (reads.await, shared),
                None => futures::join!(reads, shared),
            };
            let mut found: Vec<_> = shared.ok().into_iter().collect();
            found.extend(scoped.into_iter().filter_map(Result::ok));
            Ok::<_, ResourceError>(found)
        };
        let now = p2p_protocol::now_ms();
        let found = match tokio::time::timeout(timeout, lookup).await {
            Ok(found) => found?,
            Err(_) => {
                let cached = self.inner.resources.of_key(&key, now);
                return if cached.is_empty() {
                    Err(ResourceError::Timeout)
                } else {
                    Ok(cached)
                };
            }
        };
        // One record per creator, the newest version of each, whether or not
        // the cache had room for it.
        let mut newest: HashMap<PeerId, Arc<ResourceRecord>> = HashMap::new();
        let mut keep = |record: Arc<ResourceRecord>| {
            let slot = newest
                .entry(record.creator)
                .or_insert_with(|| Arc::clone(&record));
            if record.created_ms > slot.created_ms {
                *slot = record;
            }
        };
        for (record, source) in found {
            let record = Arc::new(record);
            let _ = self.inner.resources.insert(
                Cached {
                    record: Arc::clone(&record),
                    own: None,
                },
                now,
            );
            keep(Arc::clone(&record));
            let _ = self
                .inner
                .events
                .send(Event::ResourceDiscovered { record, source });
        }
        for record in self.inner.resources.of_key(&key, now) {
            keep(record);
        }
        let mut all: Vec<_> = newest.into_values().collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        all.truncate(MAX_DISCOVERED);
        if all.is_empty() {
            return Err(ResourceError::NotFound);
        }
        Ok(all)
    }

    /// Finds `creator`'s record of a resource: the local cache, else one
    /// lookup of its creator-scoped key, where only that creator can have
    /// written.
    pub async fn discover_from(
        &self,
        resource_type: &ResourceType,
        resource_id: &ResourceId,
        creator: PeerId,
        timeout: Duration,
    ) -> Result<Arc<ResourceRecord>, ResourceError> {
        let key = ResourceKey::new(resource_type.clone(), resource_id.clone());
        if let Some(record) = self
            .inner
            .resources
            .get(&key, creator, p2p_protocol::now_ms())
        {
            return Ok(record);
        }
        let (record, source) =
            tokio::time::timeout(timeout, self.lookup(StoredKey::Creator(key, creator)))
                .await
                .map_err(|_| ResourceError::Timeout)??;
        let record = Arc::new(record);
        let _ = self.inner.resources.insert(
            Cached {
                record: Arc::clone(&record),
                own: None,
            },
            p2p_protocol::now_ms(),
        );
        let _ = self.inner.events.send(Event::ResourceDiscovered {
            record: Arc::clone(&record),
            source,
        });
        Ok(record)
    }

    /// One DHT lookup of a record key.
    async fn lookup(
        &self,
        key: StoredKey,
    ) -> Result<(ResourceRecord, Option<PeerId>), ResourceError> {
        Ok(self
            .request(|reply| Command::GetRecord { key, reply })
            .await
            .map_err(|_| ResourceError::NotStarted)??)
    }

    /// Unexpired resources of a type in the local cache whose JSON data has
    /// every top-level field of `filter` with an equal value (an empty filter
    /// matches all).
    pub fn local_resources(
        &self,
        resource_type: &ResourceType,
        filter: &[(&str, serde_json::Value)],
    ) -> Vec<Arc<ResourceRecord>> {
        self.inner
            .resources
            .of_type(resource_type, p2p_protocol::now_ms())
            .into_iter()
            .filter(|r| {
                filter.is_empty()
                    || serde_json::from_slice::<serde_json::Value>(&r.data)
                        .is_ok_and(|data| filter.iter().all(|(k, v)| data.get(k) == Some(v)))
            })
            .collect()
    }

    /// Our own unexpired announcements, of every type, newest first (those
    /// kept alive by republishing included; withdrawn ones not).
    pub fn announced(&self) -> Vec<Arc<ResourceRecord>> {
        self.inner.resources.own(p2p_protocol::now_ms())
    }

    /// The newest unexpired record of a resource in the local cache.
    pub fn resource(
        &self,
        resource_type: &ResourceType,
        resource_id: &ResourceId,
    ) -> Option<Arc<ResourceRecord>> {
        let key = ResourceKey::new(resource_type.clone(), resource_id.clone());
        self.inner
            .resources
            .of_key(&key, p2p_protocol::now_ms())
            .into_iter()
            .next()
    }

    /// Drops `creator`'s record of a resource from the local cache: a record
    /// discovered earlier, which `discover` would otherwise still answer with
    /// when the DHT does not find it or does not answer in time. Our own
    /// announcements stop with [`Node::withdraw`]. True if one was dropped.
    pub fn forget(
        &self,
        resource_type: &ResourceType,
        resource_id: &ResourceId,
        creator: PeerId,
    ) -> bool {
        self.inner.resources.remove(
            &ResourceKey::new(resource_type.clone(), resource_id.clone()),
            creator,
        )
    }

    /// Stops keeping our own resource alive and forgets it locally (copies
    /// in the DHT expire on their own; records of other creators stay, see
    /// [`Node::forget`]).
    pub fn withdraw(&self, resource_type: &ResourceType, resource_id: &ResourceId) -> bool {
        self.forget(resource_type, resource_id, self.peer_id())
    }

    /// Drops expired entries from the local cache now (also done periodically).
    pub fn cleanup(&self) -> usize {
        self.inner.resources.cleanup(p2p_protocol::now_ms())
    }
}

/// The stream protocols the node itself speaks: a handler cannot take them.
fn own_protocols(config: &NodeConfig) -> [libp2p::StreamProtocol; 3] {
    [
        config.native.protocol().clone(),
        TYPESCRIPT_PROTOCOL,
        config.dht.protocol.clone(),
    ]
}

/// How long the republisher waits for one put. A put left running goes on
/// in the DHT (only the wait ends), and the republisher holds the node only
/// while it waits, so dropping the last handle stops the node within this.
const REPUBLISH_WAIT: Duration = Duration::from_secs(10);

/// Republishes own announcements at half their TTL and sweeps the cache,
/// while the node runs (aborted on stop). Holds the node weakly, so dropping
/// the last handle still stops it.
async fn keep_resources(node: Weak<Inner>) {
    let mut tick = tokio::time::interval(RESOURCE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = node.upgrade() else { return };
        let node = Node { inner };
        let now = p2p_protocol::now_ms();
        node.inner.resources.cleanup(now);
        for (old, ttl) in node.inner.resources.due_for_republish(now) {
            let expires = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
            let fresh = ResourceRecord::new(
                old.key.clone(),
                node.peer_id(),
                old.data.clone(),
                now,
                Some(expires),
            );
            match fresh.sign(&node.inner.keypair) {
                Ok(fresh) => {
                    match tokio::time::timeout(REPUBLISH_WAIT, node.publish(fresh, Some(ttl))).await
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::debug!(key = %old.key, error = ?e, "republish failed");
                        }
                        Err(_) => tracing::debug!(key = %old.key, "republish still running"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot re-sign a resource"),
            }
        }
    }
}
