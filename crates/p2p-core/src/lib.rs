//! The lotus-p2p node: a libp2p swarm (TCP + WebSocket or in-memory, Noise,
//! yamux and optionally mplex, identify, ping, Kademlia, connection limits)
//! owned by one task and driven through [`Node`], a cheap-to-clone async handle.
//!
//! ```no_run
//! # async fn demo() -> Result<(), p2p_core::NodeError> {
//! use p2p_core::Node;
//! let a = Node::builder().listen("/ip4/127.0.0.1/tcp/0".parse().unwrap()).build()?;
//! let b = Node::builder().listen("/ip4/127.0.0.1/tcp/0".parse().unwrap()).build()?;
//! a.start().await?;
//! b.start().await?;
//! let addr = a.listen_addrs().await?.remove(0);
//! assert_eq!(b.connect(addr).await?, a.peer_id());
//! println!("{:?}", b.stats().await?);
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod behaviour;
mod config;
mod error;
mod event_loop;
mod events;
mod handler;
mod identity;
mod ip_limits;
mod messaging;
mod metrics;
mod mplex_pacing;
mod nat;
mod node;
mod peer_manager;
mod peers;
mod rate_limits;
mod raw_streams;
mod relays;
mod resources;
mod stats;
mod streams;
mod transport;
mod typescript_lanes;

/// For implementing [`ProtocolHandler`] without a direct dependency.
pub use async_trait::async_trait;
pub use config::{ConnectionLimits, NodeBuilder, NodeConfig};
pub use error::NodeError;
pub use events::Event;
pub use handler::{
    HANDLER_CALL_TIMEOUT, HANDLER_QUEUE, HandlerError, ProtocolHandler, RegisterError,
};
pub use identity::{Identity, IdentityError, load_or_create_key_file, load_or_create_secret_file};
pub use ip_limits::{IpLimitExceeded, IpLimits};
/// The libp2p this crate is built on, so a user needs no version-matched
/// dependency of their own (for `Stream`, `StreamProtocol`, `Multiaddr`, ...).
pub use libp2p;
pub use libp2p::metrics::Registry;
pub use messaging::{
    NATIVE_PROTOCOL, NativeCodec, SendError, TYPESCRIPT_PROTOCOL, Wire, WireChoice,
};
pub use metrics::SwarmMetrics;
pub use nat::{NatConfig, RelayRate, RelayServerConfig};
pub use node::{BroadcastOptions, BroadcastReport, Node};
pub use p2p_dht::mapper::{IpNet, PublicRanges};
pub use p2p_dht::quotas::CreatorQuotas;
pub use p2p_dht::routing::Diversity;
pub use p2p_dht::{DhtConfig, DhtModeSetting, MapperPolicy};
pub use p2p_protocol::{Message, MessageBuilder, MessageId, ResourceRecord};
pub use p2p_types::{
    DhtMode, DhtStats, DisconnectCause, MessageStats, MessageType, Multiaddr, NameError, NodeEvent,
    NodeStats, PeerId, ProtocolName, Reachability, RejectReason, ResourceId, ResourceKey,
    ResourceType, is_relayed,
};
pub use peer_manager::Banned;
pub use peer_manager::scores::{ScoringConfig, penalty};
pub use peers::PeerInfo;
pub use rate_limits::{Rate, RateLimits};
pub use resources::{AnnounceOptions, Announced, MAX_DISCOVERED, ResourceError};
pub use streams::{ConnectionLimitKind, ConnectionLimitReached};
pub use transport::{TransportError, TransportKind};
