//! Domain types shared by every lotus-p2p layer.
//!
//! This crate holds the vocabulary the other crates speak: validated names
//! ([`MessageType`], [`ProtocolName`]), resource identifiers ([`ResourceType`],
//! [`ResourceId`], [`ResourceKey`]), the protocol [`ProtocolLimits`], and the
//! stats and event structs that the node layers fill. It does no I/O.
//!
//! ```
//! use p2p_types::{ResourceKey, ResourceType, ResourceId};
//!
//! let key = ResourceKey::new(
//!     ResourceType::new("musig2-session")?,
//!     ResourceId::new("a1b2c3")?,
//! );
//! assert_eq!(key.to_string(), "resource:musig2-session:a1b2c3");
//! assert_eq!(key.to_string().parse::<ResourceKey>()?, key);
//! # Ok::<(), p2p_types::NameError>(())
//! ```
#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod addresses;
mod events;
mod limits;
mod names;
mod resource;
mod stats;

pub use addresses::is_relayed;
pub use events::{DisconnectCause, NodeEvent, Reachability};
pub use libp2p_identity::PeerId;
pub use limits::ProtocolLimits;
pub use multiaddr::Multiaddr;
pub use names::{MessageType, NameError, ProtocolName};
pub use resource::{RESOURCE_KEY_PREFIX, ResourceId, ResourceKey, ResourceType};
pub use stats::{DhtMode, DhtStats, MessageStats, NodeStats, QueryTotals, RejectReason};
