//! Which connections stay open while no stream runs on them.
//!
//! - A connection that has carried one of our application streams (messages,
//!   TypeScript lanes, handlers' raw streams), or that the node dialled for
//!   its user (`connect`, bootstrap peers), is *kept*: it stays open until
//!   someone closes it on purpose (disconnect, ban, limits) or the remote
//!   goes away.
//! - Any other connection (one a DHT lookup opened, either way) stays open
//!   while the node has at most `keep_idle` connections in all. Above that,
//!   libp2p closes it once it has been idle (no stream, no pending DHT work)
//!   for the swarm's idle timeout. Without this, every peer a lookup ever
//!   touched stayed connected for an hour: 189 connections per node in a
//!   200-node network, most of a node's memory.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Shared by the behaviour (which counts connections) and its handlers (which
/// answer libp2p's keep-alive question).
#[derive(Debug)]
pub(crate) struct IdlePolicy {
    established: AtomicUsize,
    keep_idle: usize,
}

impl IdlePolicy {
    pub(crate) fn new(keep_idle: usize) -> Self {
        Self {
            established: AtomicUsize::new(0),
            keep_idle,
        }
    }

    /// Whether an idle connection that is not kept may stay open now.
    pub(crate) fn room_for_idle(&self) -> bool {
        self.established.load(Ordering::Relaxed) <= self.keep_idle
    }

    pub(crate) fn established(&self) {
        self.established.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        // Saturating: a close is only reported for an established connection.
        let _ = self
            .established
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}
