//! Where a provider lookup may stop: the peers it knows of nearest to its
//! key, and which of them have answered.
//!
//! libp2p-kad walks a provider lookup until the 20 closest peers of each
//! disjoint path have answered (~60–100 requests at 1 000 nodes). A
//! provider record is put to the 20 closest servers to its key, so the few
//! closest peers hold every provider there is. [`Closest`] mirrors what kad
//! knows of one lookup: the 20 peers of the routing table it starts from,
//! every peer an answer names (closer peers and providers: kad walks to
//! both), who answered, and who failed (a failed request; a failed dial or
//! the last connection closed, where kad fails the peer in the queries
//! waiting for it, and this lookup passes it over too, asked yet or not:
//! the walk may then end without a peer kad would still have asked, never
//! wait for one kad gave up on). The lookup may end once the `n` closest
//! peers it knows, failed ones left out, have all answered and one of them
//! named a provider.
//!
//! What it trusts: answers from peers *near the key*, not the first answers
//! of the path. An answer can only end the walk when no peer known to be
//! nearer is still unasked, and every answer names the nearer peers its
//! sender knows, so far peers answering first end nothing (with
//! `DhtConfig::provider_answers` they did). To hide a creator from it, a
//! peer must hold `n` of the places nearest the key, against all 20 of
//! some path's for the full walk; both are the same attack (ids placed
//! near a key), at a different size. When none of the `n` closest names a
//! provider (nothing there yet, or servers newer than the records) the
//! walk goes on to kad's end, as a walk without this rule does.
//!
//! Bounded: at most [`MAX_KNOWN`] peers are kept per lookup, the nearest
//! (an answer naming thousands of made-up closer peers then keeps the
//! lookup from ending early, never makes it end).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use libp2p::PeerId;
use libp2p::kad::{self, KBucketDistance, KBucketKey};

/// Most peers one lookup keeps (the nearest ones).
pub(crate) const MAX_KNOWN: usize = 256;

/// What we know of one peer of the lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Known, not (yet) answered.
    Unanswered,
    /// Answered; whether the answer named a provider.
    Answered { providers: bool },
    /// kad gave up on it in this lookup.
    Failed,
}

/// The peers one provider lookup knows, by distance to its key.
#[derive(Debug)]
pub(crate) struct Closest {
    target: KBucketKey<kad::RecordKey>,
    n: NonZeroUsize,
    peers: BTreeMap<KBucketDistance, (PeerId, State)>,
}

impl Closest {
    /// A lookup of `key` that may end once its `n` closest known peers
    /// answered, starting from `seeds` (the routing table's peers nearest
    /// to the key, as kad's own lookup starts).
    pub(crate) fn new(
        key: &kad::RecordKey,
        n: NonZeroUsize,
        seeds: impl IntoIterator<Item = PeerId>,
    ) -> Self {
        let mut closest = Self {
            target: KBucketKey::new(key.clone()),
            n,
            peers: BTreeMap::new(),
        };
        for peer in seeds {
            closest.learn(peer);
        }
        closest
    }

    fn distance(&self, peer: PeerId) -> KBucketDistance {
        KBucketKey::from(peer).distance(&self.target)
    }

    /// Adds `peer` as unanswered if it is not known yet.
    fn learn(&mut self, peer: PeerId) {
        let distance = self.distance(peer);
        if self.peers.contains_key(&distance) {
            return;
        }
        if self.peers.len() >= MAX_KNOWN {
            match self.peers.last_key_value() {
                Some((farthest, _)) if *farthest > distance => {
                    self.peers.pop_last();
                }
                _ => return,
            }
        }
        self.peers.insert(distance, (peer, State::Unanswered));
    }

    /// `peer` answered, naming `closer` peers; `providers`: it named at
    /// least one provider.
    pub(crate) fn answered(
        &mut self,
        peer: PeerId,
        closer: impl IntoIterator<Item = PeerId>,
        providers: bool,
    ) {
        for other in closer {
            self.learn(other);
        }
        let distance = self.distance(peer);
        // A peer that answered is one kad asked, so it is kept even when
        // made-up closer peers filled the map.
        if self.peers.len() >= MAX_KNOWN && !self.peers.contains_key(&distance) {
            self.peers.pop_last();
        }
        self.peers
            .insert(distance, (peer, State::Answered { providers }));
    }

    /// kad failed `peer` in this lookup (an answer it already gave stands).
    pub(crate) fn failed(&mut self, peer: PeerId) {
        let distance = self.distance(peer);
        if let Some((_, state)) = self.peers.get_mut(&distance)
            && *state == State::Unanswered
        {
            *state = State::Failed;
        }
    }

    /// Whether the lookup may end: the `n` closest peers known, failed
    /// ones left out, have all answered, and one of them named a provider.
    pub(crate) fn done(&self) -> bool {
        let mut counted = 0;
        let mut providers = false;
        for (_, state) in self.peers.values() {
            match state {
                State::Failed => continue,
                State::Unanswered => return false,
                State::Answered { providers: named } => {
                    providers |= named;
                    counted += 1;
                    if counted == self.n.get() {
                        return providers;
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn key() -> kad::RecordKey {
        kad::RecordKey::new(&"resource:session:abc")
    }

    /// `count` random peers sorted nearest to the key first.
    fn by_distance(count: usize) -> Vec<PeerId> {
        let target = KBucketKey::new(key());
        let mut peers: Vec<PeerId> = (0..count).map(|_| PeerId::random()).collect();
        peers.sort_by_key(|p| KBucketKey::from(*p).distance(&target));
        peers
    }

    fn three() -> NonZeroUsize {
        NonZeroUsize::new(3).unwrap()
    }

    #[test]
    fn ends_when_the_nearest_peers_answered_and_one_named_a_provider() {
        let p = by_distance(10);
        let mut walk = Closest::new(&key(), three(), p[3..].iter().copied());
        // Far peers answering first, with providers, end nothing: they name
        // nearer peers, still unasked.
        walk.answered(p[8], [p[0], p[1]], true);
        walk.answered(p[9], [p[2]], true);
        assert!(!walk.done(), "far answers named nearer peers still unasked");
        walk.answered(p[0], [], false);
        walk.answered(p[1], [], false);
        assert!(!walk.done(), "one of the three nearest has not answered");
        walk.answered(p[2], [], true);
        assert!(walk.done());
    }

    #[test]
    fn never_ends_when_none_of_the_nearest_named_a_provider() {
        let p = by_distance(6);
        let mut walk = Closest::new(&key(), three(), p.iter().copied());
        for &peer in &p[..3] {
            walk.answered(peer, [], false);
        }
        // A far peer's list does not stand for the nearest ones'.
        walk.answered(p[5], [], true);
        assert!(!walk.done());
    }

    #[test]
    fn a_failed_peer_is_passed_over_and_a_late_answer_still_counts() {
        let p = by_distance(5);
        let mut walk = Closest::new(&key(), three(), p.iter().copied());
        walk.answered(p[1], [], true);
        walk.answered(p[2], [], true);
        assert!(!walk.done());
        walk.failed(p[0]);
        assert!(!walk.done(), "the third nearest still owes its answer");
        walk.answered(p[3], [], false);
        assert!(walk.done());
        // kad may still hear from a peer it failed: its answer counts.
        let mut walk = Closest::new(&key(), three(), p.iter().copied());
        walk.failed(p[0]);
        walk.answered(p[0], [], true);
        walk.answered(p[1], [], false);
        walk.answered(p[2], [], false);
        assert!(walk.done());
        // A failure after an answer leaves the answer standing.
        walk.failed(p[0]);
        assert!(walk.done());
    }

    #[test]
    fn made_up_closer_peers_keep_it_from_ending_and_stay_bounded() {
        let p = by_distance(4);
        let mut walk = Closest::new(&key(), three(), p.iter().copied());
        let flood: Vec<PeerId> = (0..4 * MAX_KNOWN).map(|_| PeerId::random()).collect();
        walk.answered(p[3], flood, true);
        assert!(walk.peers.len() <= MAX_KNOWN);
        for &peer in &p[..3] {
            walk.answered(peer, [], true);
        }
        assert!(walk.peers.len() <= MAX_KNOWN);
        assert!(
            !walk.done(),
            "unasked peers named nearer than ours keep the walk going"
        );
    }
}
