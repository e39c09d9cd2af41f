//! The node's counters: messages received, sent and rejected (in all and per
//! peer) and connections refused per address block. Kept across stop and
//! start. Readers, writers and the peer manager add to them; `Node::stats`
//! and `Node::peer_message_stats` read them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};

use hashlink::LruCache;
use libp2p::PeerId;
use p2p_types::{MessageStats, RejectReason};

/// Per-peer counters kept; beyond this the least recently counted peer's are
/// dropped.
const MAX_PEER_STATS: usize = 4096;

/// The counters, shared.
pub(crate) type SharedStats = Arc<Stats>;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Stats {
    messages: StdMutex<MessageCounters>,
    /// Inbound connections refused per address block (counted by the swarm's
    /// per-IP limiter).
    pub(crate) denied_per_ip: Arc<AtomicU64>,
}

#[derive(Debug)]
struct MessageCounters {
    total: MessageStats,
    per_peer: LruCache<PeerId, MessageStats>,
}

impl MessageCounters {
    /// Updates `peer`'s counters, making it the most recently counted.
    fn peer(&mut self, peer: PeerId, update: impl FnOnce(&mut MessageStats)) {
        if let Some(stats) = self.per_peer.get_mut(&peer) {
            update(stats);
        } else {
            let mut stats = MessageStats::default();
            update(&mut stats);
            self.per_peer.insert(peer, stats);
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            messages: StdMutex::new(MessageCounters {
                total: MessageStats::default(),
                per_peer: LruCache::new(MAX_PEER_STATS),
            }),
            denied_per_ip: Arc::default(),
        }
    }
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, MessageCounters> {
        self.messages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message from `peer` passed every check.
    pub(crate) fn received(&self, peer: PeerId, bytes: usize) {
        let mut counters = self.lock();
        counters.total.received += 1;
        counters.total.bytes_received += bytes as u64;
        counters.peer(peer, |stats| {
            stats.received += 1;
            stats.bytes_received += bytes as u64;
        });
    }

    /// A send ended (written, or failed).
    pub(crate) fn sent(&self, ok: bool, bytes: usize) {
        let mut counters = self.lock();
        if ok {
            counters.total.sent += 1;
            counters.total.bytes_sent += bytes as u64;
        } else {
            counters.total.send_failures += 1;
        }
    }

    /// Something `peer` sent was refused (counted by the peer manager only).
    pub(crate) fn rejected(&self, peer: PeerId, reason: RejectReason) {
        let mut counters = self.lock();
        counters.total.record_rejection(reason);
        counters.peer(peer, |stats| stats.record_rejection(reason));
    }

    /// The node's totals.
    pub(crate) fn total(&self) -> MessageStats {
        self.lock().total.clone()
    }

    /// One peer's counters (zero for a peer never counted or forgotten).
    pub(crate) fn peer(&self, peer: &PeerId) -> MessageStats {
        self.lock().per_peer.peek(peer).cloned().unwrap_or_default()
    }

    /// Inbound connections refused per address block so far.
    pub(crate) fn denied_per_ip(&self) -> u64 {
        self.denied_per_ip.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_peer_counters_forget_the_least_recently_counted_peer() {
        let stats = Stats::default();
        let first = PeerId::random();
        stats.received(first, 1);
        for _ in 1..MAX_PEER_STATS {
            stats.received(PeerId::random(), 1);
        }
        // `first` is counted again: the oldest is now the second peer.
        stats.rejected(first, RejectReason::Duplicate);
        stats.received(PeerId::random(), 1);
        assert_eq!(stats.peer(&first).received, 1);
        assert_eq!(stats.peer(&first).rejected_total(), 1);
        assert_eq!(stats.total().received, MAX_PEER_STATS as u64 + 1);
    }
}
