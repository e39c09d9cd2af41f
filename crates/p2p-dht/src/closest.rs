//! Where a provider lookup may stop: the peers it knows of nearest to its
//! key, and which of them have answered.
//!
//! libp2p-kad walks a provider lookup until the 20 closest peers of each
//! disjoint path have answered (~60–100 requests at 1 000 nodes). A
//! provider record is put to the 20 closest servers to its key, so the few
//! closest peers hold every provider there is. [`Closest`] mirrors what kad
//! knows of one lookup: the 20 peers of the routing table it starts from
//! (its seeds), every peer an answer names (closer peers and providers: kad
//! walks to both), who answered, and who failed (a failed request; a failed
//! dial kad made, or the last connection closed while a request to the peer
//! was in flight: there kad fails the peer in the queries waiting for it,
//! and this lookup passes it over whether it asked it yet or not, so it may
//! end without a peer kad would still have asked, never wait for one kad
//! gave up on). The lookup may end once the `n` closest *corroborated*
//! peers it knows, failed ones left out, have all answered and one of them
//! named a provider other than us.
//!
//! Corroborated: a peer named by answerers reached through two different
//! seeds (a seed, a peer of our own routing table, is reached through
//! itself, and needs one other). Each peer is reached through the seed of
//! the answer that first named it, so no single line of answers, a seed's
//! included, can make a peer count. A peer asked on the way cannot end the
//! walk by naming peers of its own that answer at once with a list of
//! their own (ids placed near the key cost nothing to make): those are
//! named from one line of answers only and are passed over, as failed ones
//! are, and their answers still add to the list. Hiding a creator then takes holding places near
//! the key that honest peers name (the full walk asks that of every
//! disjoint path), or answering for two seeds' lines. When none of the `n`
//! names a provider (nothing there yet, or servers newer than the records)
//! the walk goes on to kad's end, as a walk without this rule does.
//!
//! Bounded: at most [`MAX_KNOWN`] peers are kept per lookup, the nearest;
//! a peer dropped for room is farther than every peer kept. An answer
//! naming thousands of made-up peers near the key can keep the lookup from
//! ending early (it falls back to kad's end), never make it end: made-up
//! peers are named from one line only.

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
    /// Answered; whether the answer named a provider other than us.
    Answered { providers: bool },
    /// kad gave up on it in this lookup.
    Failed,
}

/// The seed a peer was first reached through (an index into the seeds);
/// `None` when the answer that named it came from a peer the lookup had
/// not kept.
type Root = Option<u8>;

#[derive(Debug, Clone, Copy)]
struct Known {
    peer: PeerId,
    state: State,
    root: Root,
    /// Named by answerers of two different roots.
    corroborated: bool,
}

/// The peers one provider lookup knows, by distance to its key.
#[derive(Debug)]
pub(crate) struct Closest {
    target: KBucketKey<kad::RecordKey>,
    n: NonZeroUsize,
    peers: BTreeMap<KBucketDistance, Known>,
    /// The lookup was ended.
    ended: bool,
}

impl Closest {
    /// A lookup of `key` that may end once its `n` closest corroborated
    /// peers answered, starting from `seeds` (the routing table's peers
    /// nearest to the key, as kad's own lookup starts; at most 20 used).
    pub(crate) fn new(
        key: &kad::RecordKey,
        n: NonZeroUsize,
        seeds: impl IntoIterator<Item = PeerId>,
    ) -> Self {
        let mut closest = Self {
            target: KBucketKey::new(key.clone()),
            n,
            peers: BTreeMap::new(),
            ended: false,
        };
        for (i, peer) in (0..kad::K_VALUE.get()).zip(seeds) {
            closest.learn(peer, u8::try_from(i).ok());
        }
        closest
    }

    fn distance(&self, peer: PeerId) -> KBucketDistance {
        KBucketKey::from(peer).distance(&self.target)
    }

    /// `peer` named by an answerer of `root` (or a seed, of its own root):
    /// added if new, corroborated once a second root names it.
    fn learn(&mut self, peer: PeerId, root: Root) {
        let distance = self.distance(peer);
        if let Some(known) = self.peers.get_mut(&distance) {
            match (known.root, root) {
                (None, Some(_)) => known.root = root,
                (Some(first), Some(other)) if first != other => known.corroborated = true,
                _ => {}
            }
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
        self.peers.insert(
            distance,
            Known {
                peer,
                state: State::Unanswered,
                root,
                corroborated: false,
            },
        );
    }

    /// `peer` answered, naming `named` peers; `providers`: it named at
    /// least one provider other than us.
    pub(crate) fn answered(
        &mut self,
        peer: PeerId,
        named: impl IntoIterator<Item = PeerId>,
        providers: bool,
    ) {
        let distance = self.distance(peer);
        let root = self.peers.get(&distance).and_then(|known| known.root);
        for other in named {
            if other != peer {
                self.learn(other, root);
            }
        }
        if !self.peers.contains_key(&distance) {
            // Asked by kad but not kept here (dropped for room, so farther
            // than every peer kept, or not named to us): it cannot count.
            self.learn(peer, None);
        }
        if let Some(known) = self.peers.get_mut(&distance) {
            known.state = State::Answered { providers };
        }
    }

    /// kad failed `peer` in this lookup (an answer it already gave stands).
    pub(crate) fn failed(&mut self, peer: PeerId) {
        let distance = self.distance(peer);
        if let Some(known) = self.peers.get_mut(&distance)
            && known.state == State::Unanswered
        {
            known.state = State::Failed;
        }
    }

    /// If the lookup [may end](Closest::done) and has not ended yet: marks
    /// it ended and returns the peers it has not heard from that are
    /// `dialling` (a dial kad made for a request carries the request only
    /// if its query still runs when the dial connects; see
    /// `Behaviour::orphans`).
    pub(crate) fn end(&mut self, dialling: impl Fn(&PeerId) -> bool) -> Option<Vec<PeerId>> {
        if self.ended || !self.done() {
            return None;
        }
        self.ended = true;
        Some(
            self.peers
                .values()
                .filter(|known| known.state == State::Unanswered && dialling(&known.peer))
                .map(|known| known.peer)
                .collect(),
        )
    }

    /// Whether the lookup may end: the `n` closest corroborated peers
    /// known, failed ones left out, have all answered, and one of them
    /// named a provider other than us.
    pub(crate) fn done(&self) -> bool {
        let mut counted = 0;
        let mut providers = false;
        for known in self.peers.values() {
            if !known.corroborated {
                continue;
            }
            match known.state {
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
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

    fn n(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    /// Every seed names every other (as in a small network where all know
    /// all): each is corroborated.
    fn seeds_naming_each_other(walk: &mut Closest, seeds: &[PeerId], providers: bool) {
        for &seed in seeds {
            walk.answered(seed, seeds.iter().copied(), providers);
        }
    }

    #[test]
    fn ends_when_the_nearest_peers_answered_and_one_named_a_provider() {
        let p = by_distance(10);
        let mut walk = Closest::new(&key(), n(3), p[3..].iter().copied());
        seeds_naming_each_other(&mut walk, &p[3..], false);
        assert!(!walk.done(), "no answer named a provider");
        // Far peers answering with providers end nothing: they name nearer
        // peers, still unasked (two seeds' lines name them).
        walk.answered(p[8], [p[0], p[1], p[2]], true);
        walk.answered(p[9], [p[0], p[1], p[2]], true);
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
        let mut walk = Closest::new(&key(), n(3), p.iter().copied());
        seeds_naming_each_other(&mut walk, &p[..5], false);
        // A far peer's list does not stand for the nearest ones'.
        walk.answered(p[5], [], true);
        assert!(!walk.done());
    }

    /// Review of the first version: a far peer named ids of its own nearest
    /// the key, which answered at once with a list of their own.
    #[test]
    fn peers_named_through_one_seed_only_do_not_end_it() {
        let p = by_distance(9);
        let (sybils, honest, seeds) = (&p[..3], &p[3..6], &p[6..]);
        let attacker = seeds[2];
        let mut walk = Closest::new(&key(), n(3), seeds.iter().copied());
        walk.answered(attacker, sybils.iter().copied(), true);
        for &sybil in sybils {
            walk.answered(sybil, sybils.iter().copied(), true);
        }
        assert!(!walk.done(), "the attacker's own ids ended the walk");
        walk.answered(seeds[0], honest.iter().copied(), false);
        walk.answered(seeds[1], honest.iter().copied(), false);
        assert!(!walk.done(), "the honest nearest peers have not answered");
        walk.answered(seeds[0], seeds.iter().copied(), false);
        walk.answered(seeds[1], seeds.iter().copied(), false);
        for &peer in honest {
            walk.answered(peer, [], peer == honest[0]);
        }
        assert!(walk.done());
    }

    /// Review of the second version: a seed's own answer counted, so with
    /// n = 1 the nearest seed ended the walk with a list of its own.
    #[test]
    fn a_seed_counts_only_once_another_line_names_it() {
        let p = by_distance(3);
        let mut walk = Closest::new(&key(), n(1), p.iter().copied());
        walk.answered(p[0], [], true);
        assert!(!walk.done(), "the nearest seed alone ended the walk");
        walk.answered(p[1], [p[0]], false);
        assert!(walk.done());
    }

    #[test]
    fn a_failed_peer_is_passed_over_and_a_late_answer_still_counts() {
        let p = by_distance(6);
        let mut walk = Closest::new(&key(), n(3), p.iter().copied());
        walk.answered(p[5], p.iter().copied(), false);
        walk.answered(p[4], p.iter().copied(), false);
        walk.answered(p[1], [], true);
        walk.answered(p[2], [], true);
        assert!(!walk.done());
        walk.failed(p[0]);
        assert!(!walk.done(), "the third nearest still owes its answer");
        walk.answered(p[3], [], false);
        assert!(walk.done());
        // kad may still hear from a peer it failed: its answer counts.
        let mut walk = Closest::new(&key(), n(3), p.iter().copied());
        walk.answered(p[5], p.iter().copied(), false);
        walk.answered(p[4], p.iter().copied(), false);
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
    fn it_ends_once_naming_the_peers_it_has_not_heard_from_being_dialled() {
        let p = by_distance(5);
        let mut walk = Closest::new(&key(), n(3), p.iter().copied());
        seeds_naming_each_other(&mut walk, &p[3..], false);
        walk.answered(p[4], p.iter().copied(), false);
        walk.answered(p[3], p.iter().copied(), false);
        walk.answered(p[0], [], true);
        assert_eq!(walk.end(|_| true), None, "it may not end yet");
        walk.answered(p[1], [], true);
        walk.answered(p[2], [], false);
        let unheard = PeerId::random();
        walk.learn(unheard, Some(0));
        let dialling = [p[0], unheard];
        assert_eq!(
            walk.end(|peer| dialling.contains(peer)),
            Some(vec![unheard])
        );
        assert_eq!(walk.end(|_| true), None, "it ends once");
    }

    /// Review of the first version: with n = 1, made-up peers pushed every
    /// seed out, failed, and the flooder's own answer ended the walk.
    #[test]
    fn a_flood_of_made_up_peers_never_ends_it_and_stays_bounded() {
        let p = by_distance(4);
        let mut walk = Closest::new(&key(), n(1), p.iter().copied());
        let flood: Vec<PeerId> = (0..4 * MAX_KNOWN).map(|_| PeerId::random()).collect();
        walk.answered(p[3], flood.clone(), true);
        assert!(walk.peers.len() <= MAX_KNOWN);
        for peer in &flood {
            walk.failed(*peer);
        }
        assert!(!walk.done(), "the flooder's own answer ended the walk");
        for peer in &flood[..8] {
            walk.answered(*peer, [], true);
        }
        assert!(walk.peers.len() <= MAX_KNOWN);
        assert!(!walk.done());
    }
}
