//! The peers we await a DHT answer from.
//!
//! A node at its connection limit closes idle connections to make room for
//! new ones (p2p-core's `streams::room`), but not one younger than a short
//! grace: it was opened for a request that has not had time to happen. A
//! lookup opens connections faster than their grace ends, so without more
//! knowledge it has its own next dials refused. Only the DHT sees its
//! requests and their answers, so it counts them here and reports each
//! peer's edges ([`crate::Event::AwaitingAnswer`]): a young connection whose
//! peer has answered everything has done what it was opened for.
//!
//! The count may be too high (the connection then waits out its grace, as
//! before, and is closed to make room only when no other may) but never
//! too low (a connection could close under a request):
//! - libp2p-kad sends a request to a connected peer through the behaviour
//!   (counted as it passes), but hands the requests waiting for a dial
//!   straight to the new connection's handler, where the behaviour never
//!   sees them. kad dials once per such request, so each of its dials counts
//!   as one (its routing-table checks dial too, and count high);
//! - an announce (`AddProvider`) has no answer when it succeeds: it counts
//!   until the peer's connections close;
//! - a query that ends before its dial connects drops its request, and a
//!   failed dial leaves it waiting in kad for the peer's next connection:
//!   both stay counted;
//! - the count is cleared when the peer's last connection closes (kad then
//!   fails the peer in every query), and the count of a peer that is not
//!   connected is dropped after kad's query timeout, by which every query
//!   that could have sent it has ended (swept when the map has doubled since
//!   the last sweep). So the map holds the connected peers and those dialled
//!   within one query timeout, at most twice over.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// The smallest map [`Awaited::expire`] sweeps.
const MIN_SWEEP: usize = 64;

/// Requests in flight per peer, with when the last was counted; only peers
/// with at least one are held.
#[derive(Debug)]
pub(crate) struct Awaited {
    in_flight: HashMap<PeerId, (u32, Instant)>,
    /// kad's query timeout: no request of a query outlives it.
    expiry: Duration,
    /// The map's size at which [`Awaited::expire`] sweeps next: twice what
    /// the last sweep left, at least 64, so each sweep is paid for by as
    /// many insertions.
    sweep_at: usize,
}

impl Awaited {
    /// Counts whose peer is not connected are dropped `expiry` (kad's query
    /// timeout) after they were last raised.
    pub(crate) fn new(expiry: Duration) -> Self {
        Self {
            in_flight: HashMap::new(),
            expiry,
            sweep_at: MIN_SWEEP,
        }
    }

    /// A request went out to `peer`, or kad dialled it for one, at `now`;
    /// true when it is the only one in flight (the peer is awaited from now
    /// on).
    pub(crate) fn sent(&mut self, peer: PeerId, now: Instant) -> bool {
        let (count, at) = self.in_flight.entry(peer).or_insert((0, now));
        *count = count.saturating_add(1);
        *at = now;
        *count == 1
    }

    /// `peer` answered a request (or it failed); true when none is left in
    /// flight. An answer we did not count (after a reset) changes nothing.
    pub(crate) fn answered(&mut self, peer: &PeerId) -> bool {
        let Some((count, _)) = self.in_flight.get_mut(peer) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            self.in_flight.remove(peer);
            return true;
        }
        false
    }

    /// `peer`'s last connection closed: whatever was in flight is not
    /// awaited any more; true when some was.
    pub(crate) fn reset(&mut self, peer: &PeerId) -> bool {
        self.in_flight.remove(peer).is_some()
    }

    /// Drops the counts of peers not `connected` last raised more than the
    /// expiry before `now`, once the map has reached its next sweep size;
    /// the peers dropped (none of them has a connection).
    pub(crate) fn expire(&mut self, now: Instant, connected: &HashSet<PeerId>) -> Vec<PeerId> {
        if self.in_flight.len() < self.sweep_at {
            return Vec::new();
        }
        let expiry = self.expiry;
        let mut dropped = Vec::new();
        self.in_flight.retain(|peer, (_, at)| {
            let keep = connected.contains(peer) || now.saturating_duration_since(*at) <= expiry;
            if !keep {
                dropped.push(*peer);
            }
            keep
        });
        self.sweep_at = self.in_flight.len().saturating_mul(2).max(MIN_SWEEP);
        dropped
    }

    /// Whether a request to `peer` is in flight.
    pub(crate) fn is_awaited(&self, peer: &PeerId) -> bool {
        self.in_flight.contains_key(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_awaited_from_its_first_request_until_its_last_answer_or_a_reset() {
        let mut awaited = Awaited::new(Duration::from_secs(60));
        let peer = PeerId::random();
        let now = Instant::now();
        assert!(awaited.sent(peer, now), "the first request starts the wait");
        assert!(!awaited.sent(peer, now), "a second one does not");
        assert!(!awaited.answered(&peer), "one still in flight");
        assert!(awaited.is_awaited(&peer));
        assert!(awaited.answered(&peer), "the last answer ends the wait");
        assert!(!awaited.is_awaited(&peer));
        assert!(
            !awaited.answered(&peer),
            "an uncounted answer changes nothing"
        );
        assert!(awaited.sent(peer, now));
        assert!(awaited.reset(&peer), "a closed connection ends the wait");
        assert!(!awaited.reset(&peer));
        assert!(!awaited.answered(&peer));
    }

    #[test]
    fn only_counts_of_peers_not_connected_expire_and_only_once_the_map_has_grown() {
        let expiry = Duration::from_secs(60);
        let mut awaited = Awaited::new(expiry);
        let start = Instant::now();
        let peers: Vec<PeerId> = (0..MIN_SWEEP + 1).map(|_| PeerId::random()).collect();
        let connected: HashSet<PeerId> = peers[..1].iter().copied().collect();
        for peer in &peers[..MIN_SWEEP - 1] {
            awaited.sent(*peer, start);
        }
        let late = start + expiry * 2;
        // Under the sweep size: nothing is dropped.
        assert!(awaited.expire(late, &connected).is_empty());
        awaited.sent(peers[MIN_SWEEP - 1], start);
        // At it: swept; the connected peer is kept.
        let mut dropped = awaited.expire(late, &connected);
        dropped.sort();
        let mut expected = peers[1..MIN_SWEEP].to_vec();
        expected.sort();
        assert_eq!(dropped, expected);
        assert!(awaited.is_awaited(&peers[0]), "a connected peer is kept");
        // Raised within the expiry: kept.
        for peer in &peers[1..] {
            awaited.sent(*peer, late);
        }
        assert!(awaited.expire(late + expiry / 2, &connected).is_empty());
        assert!(peers.iter().all(|p| awaited.is_awaited(p)));
    }
}
