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
//! libp2p-kad sends a request to a connected peer through the behaviour
//! (counted when it passes), but hands the requests waiting for a dial
//! straight to the new connection's handler, where the behaviour never sees
//! them. Each such request comes with one dial from kad, so a dial counts as
//! a request. A query that ends before its dial connects drops its request
//! and leaves the count one too high: the peer then stays awaited until one
//! of its connections closes, which only keeps its young connection for the
//! whole grace, as before. A count one too low would let a connection close
//! under a request, so every path errs high. Whatever was in flight is
//! forgotten when one of the peer's connections closes (kad sends a request
//! on any of them; the closed one's are lost) or its dial fails.

use std::collections::HashMap;

use libp2p::PeerId;

/// Requests in flight per peer; only peers with at least one are held
/// (bounded by kad's requests in flight).
#[derive(Debug, Default)]
pub(crate) struct Awaited {
    in_flight: HashMap<PeerId, u32>,
}

impl Awaited {
    /// A request went out to `peer`, or kad dialled it for one; true when it
    /// is the only one in flight (the peer is awaited from now on).
    pub(crate) fn sent(&mut self, peer: PeerId) -> bool {
        let count = self.in_flight.entry(peer).or_default();
        *count = count.saturating_add(1);
        *count == 1
    }

    /// `peer` answered a request (or it failed); true when none is left in
    /// flight. An answer we did not count (after a reset) changes nothing.
    pub(crate) fn answered(&mut self, peer: &PeerId) -> bool {
        let Some(count) = self.in_flight.get_mut(peer) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            self.in_flight.remove(peer);
            return true;
        }
        false
    }

    /// One of `peer`'s connections closed, or a dial to it failed: whatever
    /// was in flight is not awaited any more; true when some was.
    pub(crate) fn reset(&mut self, peer: &PeerId) -> bool {
        self.in_flight.remove(peer).is_some()
    }

    /// Whether a request to `peer` is in flight.
    #[cfg(test)]
    pub(crate) fn is_awaited(&self, peer: &PeerId) -> bool {
        self.in_flight.contains_key(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_awaited_from_its_first_request_until_its_last_answer_or_a_reset() {
        let mut awaited = Awaited::default();
        let peer = PeerId::random();
        assert!(awaited.sent(peer), "the first request starts the wait");
        assert!(!awaited.sent(peer), "a second one does not");
        assert!(!awaited.answered(&peer), "one still in flight");
        assert!(awaited.is_awaited(&peer));
        assert!(awaited.answered(&peer), "the last answer ends the wait");
        assert!(!awaited.is_awaited(&peer));
        assert!(
            !awaited.answered(&peer),
            "an uncounted answer changes nothing"
        );
        assert!(awaited.sent(peer));
        assert!(awaited.reset(&peer), "a closed connection ends the wait");
        assert!(!awaited.reset(&peer));
        assert!(!awaited.answered(&peer));
    }
}
