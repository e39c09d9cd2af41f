//! Kademlia for lotus-p2p.
//!
//! - [`Behaviour`]: the node's DHT as one libp2p `NetworkBehaviour`: kad with
//!   every rule below applied (inbound lookup and put rates, only resource
//!   keys served, record validation, versions and creator quotas,
//!   routing-table population, our queries and their answers). It emits
//!   [`Event`]s; the node keeps no DHT state.
//! - [`store`]: kad's memory store with places kept for our own records and
//!   provider keys, per-peer provider caps, and the exact creator index.
//! - [`queries`]: our queries and what each answers; a provider lookup
//!   ends once the peers nearest its key that it knows of have answered
//!   ([`DhtConfig::provider_closest`]).
//! - [`DhtConfig`]: the protocol id (`/lotus/kad/1.0.0`), the mode (client,
//!   server, auto), record and provider TTLs, replication, query timeout and
//!   the refresh interval, with documented defaults; [`DhtConfig::behaviour`]
//!   builds the libp2p-kad behaviour from it.
//! - [`mapper`]: which addresses of a peer may enter the routing table
//!   (`Passthrough`, `PublicOnly`, `Auto`, or your own).
//! - [`routing`]: routing-table population from identify, done deliberately:
//!   a peer enters the table only when it advertises our Kademlia protocol
//!   (it is a server) and only with addresses the mapper keeps.
//! - [`records`]: resource records as DHT keys and values, and the checks
//!   before one is trusted or stored. Records live under creator-scoped keys
//!   (`/lotus/r/<type>/<id>/<creator>`, only that creator can write there)
//!   and, for TypeScript peers, under the shared `resource:<type>:<id>`
//!   (first writer wins); creators are found through provider records at
//!   the shared key (see the module docs for why).
//! - [`refresh`]: routing-table refreshes (a join runs the self-lookup;
//!   every bucket is refreshed periodically).
//! - [`dht_stats`]: the numbers a node reports.
//!
//! ```
//! use p2p_dht::{DhtConfig, DhtModeSetting};
//! let mut config = DhtConfig::default();
//! config.mode = DhtModeSetting::Server;
//! assert_eq!(config.protocol.as_ref(), "/lotus/kad/1.0.0");
//! let kad = config.behaviour(libp2p::identity::PeerId::random());
//! assert_eq!(kad.mode(), libp2p::kad::Mode::Server);
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod awaited;
mod behaviour;
mod closest;
mod config;
mod inbound;
pub mod mapper;
pub mod providers;
pub mod queries;
pub mod quotas;
mod rates;
pub mod records;
pub mod refresh;
pub mod routing;
mod stats;
pub mod store;

pub use behaviour::{Behaviour, BehaviourConfig, Event, KadObserver};
pub use config::{DEFAULT_PROTOCOL, DhtConfig, DhtModeSetting};
pub use mapper::{AddressMapper, AddressScope, MapperPolicy};
pub use queries::{Lookup, LookupError, NotStored, Put, QueryKind, Reply};
pub use rates::{DhtRate, DhtRates};
pub use stats::{dht_stats, routing_table_size};

/// The Kademlia behaviour type lotus-p2p runs.
pub type Kademlia = libp2p::kad::Behaviour<store::Store>;
