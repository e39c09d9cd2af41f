//! The replay guard: a seen-set bounded by count and by age.
//!
//! A message is accepted only if its timestamp is within `skew` of the
//! receiver's clock, so a replay can only succeed while the original is still
//! remembered if ids are kept for at least `2 × skew` (an original stamped `skew`
//! in the future, replayed when it is `skew` in the past). [`ReplayGuard::for_limits`]
//! uses exactly that window. The count bound caps memory; when it forces out an
//! entry younger than the window, a replay of that message would slip through,
//! so such evictions are counted ([`ReplayGuard::early_evictions`]) and the
//! capacity should be sized as peak rate × window.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use p2p_types::ProtocolLimits;

use crate::message::MessageId;

/// A message id was seen before.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message {id} was already seen")]
pub struct ReplayError {
    /// The repeated id.
    pub id: MessageId,
}

/// Remembers message ids for a time window, up to a maximum count. Time is
/// passed in, so behaviour is deterministic.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    capacity: usize,
    window_ms: u64,
    seen: HashSet<MessageId>,
    /// Insertion order with insertion time, oldest first.
    order: VecDeque<(u64, MessageId)>,
    early_evictions: u64,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` ids, each for `window`.
    pub fn new(capacity: usize, window: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            // Grown on demand: a node that receives few messages (most of a
            // DHT's) should not hold ~430 KB of empty tables (measured with
            // heaptrack on a 50-node run of the DHT benchmark, BENCHMARKS.md §5).
            seen: HashSet::new(),
            order: VecDeque::new(),
            early_evictions: 0,
        }
    }

    /// A guard whose window is twice the clock skew of `limits`.
    pub fn for_limits(capacity: usize, limits: &ProtocolLimits) -> Self {
        Self::new(capacity, limits.max_clock_skew.saturating_mul(2))
    }

    /// Records `id` at time `now_ms`; errors if it is already remembered.
    pub fn check_and_insert(&mut self, id: MessageId, now_ms: u64) -> Result<(), ReplayError> {
        self.expire(now_ms);
        if !self.seen.insert(id) {
            return Err(ReplayError { id });
        }
        if self.order.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
            self.early_evictions += 1;
        }
        self.order.push_back((now_ms, id));
        Ok(())
    }

    /// True if `id` is remembered (as of the last insertion or expiry).
    pub fn contains(&self, id: &MessageId) -> bool {
        self.seen.contains(id)
    }

    /// Forgets ids older than the window at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some(&(at, id)) = self.order.front() {
            if now_ms.saturating_sub(at) < self.window_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The count bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Ids forgotten because of the count bound before their window ended.
    pub fn early_evictions(&self) -> u64 {
        self.early_evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> MessageId {
        MessageId([n; 32])
    }

    #[test]
    fn duplicate_inside_window_is_refused_and_forgotten_after() {
        let mut g = ReplayGuard::new(10, Duration::from_secs(600));
        g.check_and_insert(id(1), 1_000).unwrap();
        assert_eq!(
            g.check_and_insert(id(1), 1_000 + 599_999),
            Err(ReplayError { id: id(1) })
        );
        assert!(
            g.check_and_insert(id(1), 1_000 + 600_000).is_ok(),
            "expired after the window"
        );
    }

    #[test]
    fn count_bound_holds_and_early_evictions_are_counted() {
        let mut g = ReplayGuard::new(3, Duration::from_secs(600));
        for n in 0..5 {
            g.check_and_insert(id(n), 10).unwrap();
        }
        assert_eq!(g.len(), 3);
        assert_eq!(g.early_evictions(), 2);
        assert!(!g.contains(&id(0)) && !g.contains(&id(1)));
        assert!(g.contains(&id(4)));
    }

    #[test]
    fn window_is_twice_the_skew() {
        let mut g = ReplayGuard::for_limits(100, &ProtocolLimits::DEFAULT);
        g.check_and_insert(id(9), 0).unwrap();
        assert!(g.check_and_insert(id(9), 599_999).is_err());
        assert!(g.check_and_insert(id(9), 600_000).is_ok());
    }
}
