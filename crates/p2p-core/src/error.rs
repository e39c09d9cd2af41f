//! Errors of the node handle.

use libp2p::Multiaddr;

use crate::identity::IdentityError;
use crate::transport::TransportError;

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node is not running (never started, or stopped).
    #[error("node not started")]
    NotStarted,
    /// The node stopped while the operation was in progress.
    #[error("node stopped")]
    Stopped,
    /// The identity could not be loaded.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The transport could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A listen address could not be bound.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why: the transport's error (an address in use is
        /// [`std::io::ErrorKind::AddrInUse`]).
        #[source]
        source: std::io::Error,
    },
    /// A dial failed.
    #[error("dial {address} failed")]
    Dial {
        /// The address.
        address: Multiaddr,
        /// Why, as libp2p's swarm reports it.
        #[source]
        source: Box<libp2p::swarm::DialError>,
    },
    /// The native codec's protocol id is one the node already speaks (the
    /// TypeScript message protocol or the DHT's).
    #[error("protocol {0} is already one of the node's own")]
    ProtocolInUse(libp2p::StreamProtocol),
    /// Too many dials are in progress.
    #[error("too many dials in progress ({0})")]
    TooManyPendingDials(usize),
    /// The operation did not finish in time.
    #[error("timed out")]
    Timeout,
}
