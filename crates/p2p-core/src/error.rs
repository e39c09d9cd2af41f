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
    #[error("cannot listen on {address}: {reason}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A dial failed.
    #[error("dial {address} failed: {reason}")]
    Dial {
        /// The address.
        address: Multiaddr,
        /// Why.
        reason: String,
    },
    /// Too many dials are in progress.
    #[error("too many dials in progress ({0})")]
    TooManyPendingDials(usize),
    /// The operation did not finish in time.
    #[error("timed out")]
    Timeout,
}
