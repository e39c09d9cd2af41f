//! Node configuration and its builder.

use std::time::Duration;

use libp2p::Multiaddr;
use p2p_dht::DhtConfig;
use p2p_protocol::InboundPolicy;

use crate::error::NodeError;
use crate::identity::Identity;
use crate::ip_limits::IpLimits;
use crate::messaging::NativeCodec;
use crate::metrics::SwarmMetrics;
use crate::nat::NatConfig;
use crate::node::Node;
use crate::peer_manager::scores::ScoringConfig;
use crate::rate_limits::RateLimits;
use crate::transport::TransportKind;

/// Connection limits, enforced before a connection is used. At an
/// established-connection limit (in all, in, out) the node first closes its
/// oldest idle connection that carried no application stream (older than
/// 2 s, or younger if we dialled it and its peer has answered all our DHT
/// requests; not dialled for the user, not relayed, not to a relay holding a
/// reservation either way; one to a peer that still owes us a DHT answer
/// only when no other may) and refuses the new one only when there is none
/// ([`crate::ConnectionLimitReached`]); each outbound dial in progress
/// reserves its place, and one inbound place is kept free for a newcomer.
/// [`crate::NodeStats::connections_closed_for_room`] counts those closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Established connections in total. Default 256: a DHT server in the open
    /// needs more than the TypeScript system's 50, and at about 30 KB per idle
    /// connection 256 cost under 10 MB.
    pub max_established: u32,
    /// Established inbound connections. Default 192: three quarters of the
    /// total, so strangers dialling in cannot take the places this node needs
    /// for its own dials (bootstrap, DHT lookups).
    pub max_established_incoming: u32,
    /// Established outbound connections. Default 128.
    pub max_established_outgoing: u32,
    /// Connections the node keeps open while idle without a reason. A
    /// connection that carried messages or handler streams, or that was
    /// dialled through `connect` or for a bootstrap peer, is always kept;
    /// others (those DHT lookups open, either way) are closed after
    /// [`NodeConfig::idle_connection_timeout`] of idleness while the node has
    /// more than this many connections. Default 64 (kubo trims to 32-96).
    /// With 256 (= `max_established`, nothing closed for idleness) the
    /// servers a 1 000-node network joined through filled up to the
    /// connection limit and refused the nodes that joined after them
    /// (BENCHMARKS.md §5, fifth session); the puts once lost at 32 were the
    /// query timeout's doing (now 60 s), not this.
    pub keep_idle: u32,
    /// Established connections to one peer. Default 4: one each way during a
    /// simultaneous dial, an AutoNAT dial-back each way (two public nodes
    /// probing each other: with 2, the second dial-back was refused and
    /// the prober wrongly concluded it was private), and a relayed
    /// connection beside the direct one that hole punching opens. More only
    /// serve to multiply one peer's weight.
    pub max_established_per_peer: u32,
    /// Inbound connections still in their handshake. Default 64: bounds the
    /// work an unauthenticated flood can cause.
    pub max_pending_incoming: u32,
    /// Outbound dials in progress. Default 64.
    pub max_pending_outgoing: u32,
    /// Inbound connections per IP address block.
    pub per_ip: IpLimits,
    /// Refuse new connections while the process uses more memory than this.
    /// Default 1 GiB: a coordination node needs a few tens of MB; far beyond
    /// that, something is being abused and new connections would make it worse.
    pub max_process_memory: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_established: 256,
            max_established_incoming: 192,
            max_established_outgoing: 128,
            keep_idle: 64,
            max_established_per_peer: 4,
            max_pending_incoming: 64,
            max_pending_outgoing: 64,
            per_ip: IpLimits::default(),
            max_process_memory: Some(1 << 30),
        }
    }
}

impl ConnectionLimits {
    /// The limits libp2p's connection-limits behaviour enforces: per peer
    /// and in progress. The established counts in all, in and out are the
    /// streams behaviour's (`streams::room`), which closes an idle
    /// connection to make room before it refuses one.
    pub(crate) fn to_libp2p(self) -> libp2p::connection_limits::ConnectionLimits {
        libp2p::connection_limits::ConnectionLimits::default()
            .with_max_established_per_peer(Some(self.max_established_per_peer))
            .with_max_pending_incoming(Some(self.max_pending_incoming))
            .with_max_pending_outgoing(Some(self.max_pending_outgoing))
    }
}

/// Everything a node is built from. Construct with [`NodeBuilder`], or start
/// from `NodeConfig::default()` and set fields: like every configuration
/// struct of this crate it is `#[non_exhaustive]`, so a new setting is not a
/// breaking change.
///
/// `Debug` never shows the secret key: the identity prints as its PeerId.
#[derive(Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Where the keypair comes from.
    pub identity: Identity,
    /// Transport family.
    pub transport: TransportKind,
    /// Addresses to listen on. Default: `/ip4/0.0.0.0/tcp/0` (and
    /// `/ip6/::/tcp/0` in [`NodeConfig::listen_optional`]) on TCP, `/memory/0`
    /// on the memory transport.
    pub listen: Vec<Multiaddr>,
    /// Addresses to listen on if the host allows: one that fails is logged
    /// and skipped (the default IPv6 listener, so a host without IPv6 still
    /// starts). Default none; with `listen` empty on TCP, `/ip6/::/tcp/0`.
    pub listen_optional: Vec<Multiaddr>,
    /// Peers (with `/p2p/<id>`) dialled at start and redialled with backoff.
    pub bootstrap: Vec<Multiaddr>,
    /// Offer mplex besides yamux, for the TypeScript system's Phase-1 nodes.
    pub mplex: bool,
    /// Kademlia settings.
    pub dht: DhtConfig,
    /// Connection limits.
    pub limits: ConnectionLimits,
    /// Identify agent version. Default `lotus-p2p/<crate version>`.
    pub agent_version: String,
    /// How long an idle connection that is not kept (see
    /// [`ConnectionLimits::keep_idle`]) stays open once the node has more than
    /// `keep_idle` connections. Default 30 s: a DHT lookup's connections
    /// serve the next lookups for a while, then make room.
    pub idle_connection_timeout: Duration,
    /// How often each connection is pinged. The round-trip time is all a
    /// ping gives (shown in peer info; a failed ping closes nothing), and
    /// each one costs both ends timer and task wake-ups. Default 60 s: at
    /// libp2p's 15 s, pings were two thirds of an idle node's CPU per
    /// connection (200-node network, 14 µs/s per connection end with
    /// 15 s pings, 4.9 µs/s without; BENCHMARKS.md §5). The first ping is
    /// sent when the connection opens; an interval under 1 s counts as 1 s.
    pub ping_interval: Duration,
    /// Advertise listen addresses as external addresses. `None` (default)
    /// decides like the Auto mapper: yes when every listen address is local
    /// (loopback, LAN, memory), no otherwise. Remote js nodes drop provider
    /// records of a peer that advertises no address.
    pub advertise_listen_addrs: Option<bool>,
    /// Events buffered per subscriber before a slow one starts missing them.
    /// Default 1024.
    pub event_capacity: usize,
    /// Dials in progress through [`Node::connect`] at once. Default 256.
    pub max_pending_dials: usize,
    /// Bound on [`Node::connect`]. Default 20 s.
    pub dial_timeout: Duration,
    /// Inbound message checks: limits, signature requirement, replay window.
    pub inbound: InboundPolicy,
    /// Accept unsigned resource records (the TypeScript system never signed
    /// its records). Default false: an unsigned record proves nothing about
    /// who announced it.
    pub accept_unsigned_records: bool,
    /// Records kept in the local resource cache. Default 10 000.
    pub resource_cache_capacity: usize,
    /// libp2p's swarm metrics, recorded while the node runs. Default none.
    pub metrics: Option<SwarmMetrics>,
    /// Inbound rate limits (see [`RateLimits`] for the defaults' reasoning).
    pub rate_limits: RateLimits,
    /// Peer scores, disconnects and bans.
    pub scoring: ScoringConfig,
    /// Serve the TypeScript system's `/lotus/message/1.0.0`. Default false:
    /// its senders cannot sign, so their messages are unauthenticated content
    /// (the connection still proves who sent them); turn it on to take part
    /// in a network with TypeScript nodes. Sending to them works either way.
    pub accept_typescript_messages: bool,
    /// Time a peer has to finish a message once it started sending it (a
    /// stream may idle between messages, not inside one). Default 10 s:
    /// 100 000 bytes at 10 KB/s, the slowest link worth serving.
    pub stream_timeout: Duration,
    /// Number the messages [`crate::Node::sign`] signs, per protocol, so
    /// receivers accept each once per (sender, protocol) for as long as they
    /// keep its window, beyond the seen-set's 10 minutes (see
    /// [`p2p_protocol::sequence`]). Default false. Each protocol counts up by
    /// one from the clock in microseconds at its first number, so a
    /// restarted node continues above its old ones. Messages to one peer on
    /// one protocol may arrive up to 64 numbers out of order. For native
    /// peers only: the TypeScript JSON format cannot carry a number, so a
    /// numbered message cannot be sent to a TypeScript node.
    pub sequence_numbers: bool,
    /// The native message protocol's codec and protocol id. Default protobuf
    /// on `/lotus/p2p/1.0.0` (see [`NativeCodec`]).
    pub native: NativeCodec,
    /// Reachability: declared external addresses and AutoNAT (see
    /// [`NatConfig`]).
    pub nat: NatConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            identity: Identity::Generate,
            transport: TransportKind::Tcp,
            listen: Vec::new(),
            listen_optional: Vec::new(),
            bootstrap: Vec::new(),
            mplex: false,
            dht: DhtConfig::default(),
            limits: ConnectionLimits::default(),
            agent_version: format!("lotus-p2p/{}", env!("CARGO_PKG_VERSION")),
            idle_connection_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(60),
            advertise_listen_addrs: None,
            event_capacity: 1024,
            max_pending_dials: 256,
            dial_timeout: Duration::from_secs(20),
            inbound: InboundPolicy::default(),
            accept_unsigned_records: false,
            resource_cache_capacity: 10_000,
            metrics: None,
            rate_limits: RateLimits::default(),
            scoring: ScoringConfig::default(),
            accept_typescript_messages: false,
            sequence_numbers: false,
            stream_timeout: Duration::from_secs(10),
            native: NativeCodec::default(),
            nat: NatConfig::default(),
        }
    }
}

/// Written out (not derived) so that the secret key can never print: the
/// identity shows its PeerId only (see [`Identity`]'s `Debug`), and the
/// destructuring makes a new field a compile error here until someone decides
/// how it prints.
impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            identity,
            transport,
            listen,
            listen_optional,
            bootstrap,
            mplex,
            dht,
            limits,
            agent_version,
            idle_connection_timeout,
            ping_interval,
            advertise_listen_addrs,
            event_capacity,
            max_pending_dials,
            dial_timeout,
            inbound,
            accept_unsigned_records,
            resource_cache_capacity,
            metrics,
            rate_limits,
            scoring,
            accept_typescript_messages,
            stream_timeout,
            sequence_numbers,
            native,
            nat,
        } = self;
        f.debug_struct("NodeConfig")
            .field("identity", identity)
            .field("transport", transport)
            .field("listen", listen)
            .field("listen_optional", listen_optional)
            .field("bootstrap", bootstrap)
            .field("mplex", mplex)
            .field("dht", dht)
            .field("limits", limits)
            .field("agent_version", agent_version)
            .field("idle_connection_timeout", idle_connection_timeout)
            .field("ping_interval", ping_interval)
            .field("advertise_listen_addrs", advertise_listen_addrs)
            .field("event_capacity", event_capacity)
            .field("max_pending_dials", max_pending_dials)
            .field("dial_timeout", dial_timeout)
            .field("inbound", inbound)
            .field("accept_unsigned_records", accept_unsigned_records)
            .field("resource_cache_capacity", resource_cache_capacity)
            .field("metrics", metrics)
            .field("rate_limits", rate_limits)
            .field("scoring", scoring)
            .field("accept_typescript_messages", accept_typescript_messages)
            .field("stream_timeout", stream_timeout)
            .field("sequence_numbers", sequence_numbers)
            .field("native", native)
            .field("nat", nat)
            .finish()
    }
}

impl NodeConfig {
    /// The listen addresses, required then optional, or the transport's
    /// default (dual-stack on TCP, the IPv6 half optional).
    pub(crate) fn listen_addrs(&self) -> (Vec<Multiaddr>, Vec<Multiaddr>) {
        if !self.listen.is_empty() {
            return (self.listen.clone(), self.listen_optional.clone());
        }
        let parse = |a: &str| a.parse().map(|a| vec![a]).unwrap_or_default();
        match self.transport {
            TransportKind::Tcp => (parse("/ip4/0.0.0.0/tcp/0"), parse("/ip6/::/tcp/0")),
            TransportKind::Memory => (parse("/memory/0"), Vec::new()),
        }
    }
}

/// Builds a [`Node`].
///
/// ```
/// use p2p_core::{Node, TransportKind};
/// let node = Node::builder()
///     .transport(TransportKind::Memory)
///     .listen("/memory/0".parse()?)
///     .build()?;
/// # let _ = node;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `Debug` never shows the secret key (see [`NodeConfig`]).
#[derive(Clone, Default)]
pub struct NodeBuilder {
    config: NodeConfig,
}

/// Written out so that it stays the redacting `Debug` of [`NodeConfig`].
impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { config } = self;
        f.debug_struct("NodeBuilder")
            .field("config", config)
            .finish()
    }
}

impl NodeBuilder {
    /// A builder with the defaults of [`NodeConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from a full configuration.
    pub fn from_config(config: NodeConfig) -> Self {
        Self { config }
    }

    /// Sets the identity.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.config.identity = identity;
        self
    }

    /// Sets the transport family.
    pub fn transport(mut self, transport: TransportKind) -> Self {
        self.config.transport = transport;
        self
    }

    /// Adds a listen address.
    pub fn listen(mut self, address: Multiaddr) -> Self {
        self.config.listen.push(address);
        self
    }

    /// Adds a listen address the node may start without (see
    /// [`NodeConfig::listen_optional`]).
    pub fn listen_optional(mut self, address: Multiaddr) -> Self {
        self.config.listen_optional.push(address);
        self
    }

    /// Adds a bootstrap peer (an address ending in `/p2p/<id>`).
    pub fn bootstrap(mut self, address: Multiaddr) -> Self {
        self.config.bootstrap.push(address);
        self
    }

    /// Offers mplex besides yamux.
    pub fn mplex(mut self, enabled: bool) -> Self {
        self.config.mplex = enabled;
        self
    }

    /// Sets the Kademlia configuration.
    pub fn dht(mut self, dht: DhtConfig) -> Self {
        self.config.dht = dht;
        self
    }

    /// Sets the connection limits.
    pub fn limits(mut self, limits: ConnectionLimits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Sets the idle-connection timeout.
    pub fn idle_connection_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_connection_timeout = timeout;
        self
    }

    /// Sets how often each connection is pinged.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.config.ping_interval = interval;
        self
    }

    /// Forces advertising (or not) the listen addresses as external addresses.
    pub fn advertise_listen_addrs(mut self, advertise: bool) -> Self {
        self.config.advertise_listen_addrs = Some(advertise);
        self
    }

    /// Sets the inbound message checks (limits, signature requirement,
    /// replay window).
    pub fn inbound(mut self, policy: InboundPolicy) -> Self {
        self.config.inbound = policy;
        self
    }

    /// Sets the inbound rate limits.
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.config.rate_limits = limits;
        self
    }

    /// Sets peer scoring and bans.
    pub fn scoring(mut self, scoring: ScoringConfig) -> Self {
        self.config.scoring = scoring;
        self
    }

    /// Serves (or not) the TypeScript system's message protocol.
    pub fn accept_typescript_messages(mut self, accept: bool) -> Self {
        self.config.accept_typescript_messages = accept;
        self
    }

    /// Serves and dials the native message protocol with `codec` under
    /// `protocol` instead of protobuf on `/lotus/p2p/1.0.0` (see
    /// [`NativeCodec`]).
    pub fn native_codec(
        mut self,
        protocol: libp2p::StreamProtocol,
        codec: std::sync::Arc<dyn p2p_protocol::Codec>,
    ) -> Self {
        self.config.native = NativeCodec::new(protocol, codec);
        self
    }

    /// Sets how the node learns its reachability (see [`NatConfig`]).
    pub fn nat(mut self, nat: NatConfig) -> Self {
        self.config.nat = nat;
        self
    }

    /// Declares an address this node is reachable at (confirmed at start).
    pub fn external_address(mut self, address: Multiaddr) -> Self {
        self.config.nat.external_addresses.push(address);
        self
    }

    /// Numbers (or not) the messages the node signs.
    pub fn sequence_numbers(mut self, on: bool) -> Self {
        self.config.sequence_numbers = on;
        self
    }

    /// Sets the time a peer has to finish a message it started.
    pub fn stream_timeout(mut self, timeout: Duration) -> Self {
        self.config.stream_timeout = timeout;
        self
    }

    /// Sets the connection limits' per-address-block caps.
    pub fn ip_limits(mut self, limits: IpLimits) -> Self {
        self.config.limits.per_ip = limits;
        self
    }

    /// Records libp2p's swarm metrics into `metrics`.
    pub fn metrics(mut self, metrics: SwarmMetrics) -> Self {
        self.config.metrics = Some(metrics);
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Loads the identity and returns the (stopped) node.
    pub fn build(self) -> Result<Node, NodeError> {
        Node::new(self.config)
    }
}
