//! Token buckets on the inbound paths (GCRA, from `governor`): messages and
//! message bytes per peer and for the whole node, inbound streams per peer.
//! The DHT's rates ([`RateLimits::peer_dht_puts`],
//! [`RateLimits::peer_dht_requests`]) are configured here too and enforced by
//! `p2p_dht::Behaviour`, which owns them.
//!
//! Defaults, and why:
//! - **messages per peer 200/s, burst 400**: a MuSig2 or CoinJoin participant
//!   sends a handful of messages per round; 200/s leaves room for chatty
//!   protocols while one peer cannot take more than a few percent of a core
//!   (a signed message costs ~50 µs to verify).
//! - **messages for the node 1 000/s, burst 2 000**: about 5 % of a core of
//!   signature checks at the sustained rate, and it sizes the seen-set: the
//!   replay guard must remember every id for its window (2 × clock skew =
//!   600 s), so its capacity is rate × window = 600 000 ids (~60 MB at most).
//! - **bytes per peer 1 MB/s, burst 2 MB**, **bytes for the node 10 MB/s,
//!   burst 20 MB**: bursts hold the largest message (100 000 bytes) many times
//!   over; sustained rates far above coordination traffic.
//! - **inbound streams per peer 20/s, burst 64**: the native protocol uses one
//!   long-lived stream; the TypeScript protocol one per message, and the
//!   TypeScript nodes send at most ~30 before their connection jams.
//! - **DHT puts per peer 1 per 3 s, burst 200**, **DHT lookups asked of us
//!   per peer 20/s, burst 100**: see `p2p_dht::DhtRates` for why.
//!
//! On the native protocol's long-lived, flow-controlled stream a peer over its
//! message limits is **slowed, not dropped**: its reader waits for tokens and
//! stops reading meanwhile, so yamux's window fills and the sender's writes
//! wait (backpressure, no loss, memory bounded by the window). The node-wide
//! buckets are shared round robin among the peers waiting for them, so
//! flooders holding the node at its limit cannot crowd honest peers out. Where there is
//! nothing to slow — a stream per message (the TypeScript protocol), new
//! inbound streams — the excess is dropped with
//! [`p2p_types::RejectReason::RateLimited`] when the peer is over its own
//! rate, which also lowers the peer's score, so a flooder is disconnected and
//! then banned (see the scoring module). A message within the peer's rate
//! refused because the node's bucket is empty is
//! [`p2p_types::RejectReason::NodeBusy`], counted but never scored: the node's
//! saturation is not the sender's fault, and sybils keeping the bucket empty
//! must not get honest peers banned. DHT puts and lookups over their rate are refused with
//! [`p2p_types::RejectReason::DhtRateLimited`], counted but not scored:
//! honest servers burst them whenever kad replicates.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use libp2p::PeerId;
use tokio::sync::Mutex as AsyncMutex;

/// A sustained rate per second and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained events per second.
    pub per_second: u32,
    /// Events allowed at once.
    pub burst: u32,
}

impl Rate {
    /// `per_second` sustained, `burst` at once.
    pub const fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn quota(self) -> Quota {
        let rate = NonZeroU32::new(self.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(rate).allow_burst(burst)
    }
}

/// Inbound rate limits; `None` means unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimits {
    /// Messages from one peer.
    pub peer_messages: Option<Rate>,
    /// Message bytes from one peer.
    pub peer_bytes: Option<Rate>,
    /// Messages from all peers together.
    pub node_messages: Option<Rate>,
    /// Message bytes from all peers together.
    pub node_bytes: Option<Rate>,
    /// Inbound streams one peer opens (message protocols and handlers').
    pub peer_inbound_streams: Option<Rate>,
    /// DHT record and provider puts from one peer: one every this long,
    /// with a burst.
    pub peer_dht_puts: Option<(Duration, u32)>,
    /// DHT lookups (FIND_NODE, GET_VALUE, GET_PROVIDERS) one peer asks of us.
    pub peer_dht_requests: Option<Rate>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            peer_messages: Some(Rate::new(200, 400)),
            peer_bytes: Some(Rate::new(1_000_000, 2_000_000)),
            node_messages: Some(Rate::new(1_000, 2_000)),
            node_bytes: Some(Rate::new(10_000_000, 20_000_000)),
            peer_inbound_streams: Some(Rate::new(20, 64)),
            peer_dht_puts: Some((Duration::from_secs(3), 200)),
            peer_dht_requests: Some(Rate::new(20, 100)),
        }
    }
}

impl RateLimits {
    /// No limits at all (benchmarks of raw capacity, trusted clusters).
    pub fn unlimited() -> Self {
        Self {
            peer_messages: None,
            peer_bytes: None,
            node_messages: None,
            node_bytes: None,
            peer_inbound_streams: None,
            peer_dht_puts: None,
            peer_dht_requests: None,
        }
    }

    /// The seen-set size that covers `window` at the node's message rate
    /// (burst included), or `fallback` when messages are unlimited.
    pub fn replay_capacity(&self, window: Duration, fallback: usize) -> usize {
        self.node_messages.map_or(fallback, |rate| {
            let ids = u64::from(rate.per_second) * window.as_secs() + u64::from(rate.burst);
            usize::try_from(ids).unwrap_or(usize::MAX)
        })
    }
}

fn keyed(rate: Option<Rate>) -> Option<DefaultKeyedRateLimiter<PeerId>> {
    rate.map(|r| RateLimiter::keyed(r.quota()))
}

/// Whether a message fits the buckets ([`Limiters::message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Within every bucket.
    Within,
    /// Over the peer's own message or byte rate: the peer's doing.
    PeerExcess,
    /// Within the peer's rates, but the node's bucket is empty (other peers
    /// used it): our saturation, not the peer's fault.
    NodeBusy,
}

/// Places in the queue for the node's buckets.
#[derive(Debug, Default)]
struct Turns {
    /// One place per waiting peer: a peer's other readers wait behind it.
    peers: StdMutex<HashMap<PeerId, Arc<AsyncMutex<()>>>>,
    /// The peers' places, served in arrival order (tokio's mutex is fair).
    node: AsyncMutex<()>,
}

impl Turns {
    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Arc<AsyncMutex<()>>>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn place(&self, peer: &PeerId) -> Arc<AsyncMutex<()>> {
        Arc::clone(self.peers().entry(*peer).or_default())
    }

    /// Forgets the peer's place once no reader of it holds or waits for it.
    fn leave(&self, peer: &PeerId, place: Arc<AsyncMutex<()>>) {
        let mut peers = self.peers();
        // Ours and the map's: nobody else cloned it (clones happen under this lock).
        if Arc::strong_count(&place) == 2 {
            peers.remove(peer);
        }
    }

    /// Drops places left behind by readers cancelled while waiting.
    fn forget_idle(&self) {
        let mut peers = self.peers();
        peers.retain(|_, place| Arc::strong_count(place) > 1);
        peers.shrink_to_fit();
    }
}

/// The buckets, shared by the readers, acceptors and event loop.
#[derive(Debug)]
pub(crate) struct Limiters {
    peer_messages: Option<DefaultKeyedRateLimiter<PeerId>>,
    peer_bytes: Option<DefaultKeyedRateLimiter<PeerId>>,
    node_messages: Option<DefaultDirectRateLimiter>,
    node_bytes: Option<DefaultDirectRateLimiter>,
    peer_streams: Option<DefaultKeyedRateLimiter<PeerId>>,
    turns: Turns,
}

fn take_n(limiter: Option<&DefaultKeyedRateLimiter<PeerId>>, peer: &PeerId, n: usize) -> bool {
    let Some(limiter) = limiter else {
        return true;
    };
    let n = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    matches!(limiter.check_key_n(peer, n), Ok(Ok(())))
}

impl Limiters {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        Self {
            peer_messages: keyed(limits.peer_messages),
            peer_bytes: keyed(limits.peer_bytes),
            node_messages: limits.node_messages.map(|r| RateLimiter::direct(r.quota())),
            node_bytes: limits.node_bytes.map(|r| RateLimiter::direct(r.quota())),
            peer_streams: keyed(limits.peer_inbound_streams),
            turns: Turns::default(),
        }
    }

    /// One message of `bytes` from `peer`. The peer's own buckets are
    /// checked first, so a flooder exhausts its own allowance before it can
    /// touch the node's; an empty node bucket is [`Admission::NodeBusy`],
    /// which is never the sender's fault.
    pub(crate) fn message(&self, peer: &PeerId, bytes: usize) -> Admission {
        if !(take_n(self.peer_messages.as_ref(), peer, 1)
            && take_n(self.peer_bytes.as_ref(), peer, bytes))
        {
            return Admission::PeerExcess;
        }
        let node_within = self
            .node_messages
            .as_ref()
            .is_none_or(|l| l.check().is_ok())
            && self.node_bytes.as_ref().is_none_or(|l| {
                let n = NonZeroU32::new(u32::try_from(bytes).unwrap_or(u32::MAX))
                    .unwrap_or(NonZeroU32::MIN);
                matches!(l.check_n(n), Ok(Ok(())))
            });
        if node_within {
            Admission::Within
        } else {
            Admission::NodeBusy
        }
    }

    /// Waits until `peer` and the node may have one more message of `bytes`:
    /// the backpressure path. False only for a message no bucket could ever
    /// hold (larger than a burst).
    ///
    /// The node's buckets are shared **round robin among the peers waiting
    /// for them**: each peer has one place in a first-come queue (its other
    /// streams wait behind that place), and whoever is served goes to the
    /// back. Under a flood the node's rate is split evenly between the
    /// flooders and the honest peers, and a peer asking for less than its
    /// share gets all it asks for (max-min fairness), instead of the flooders'
    /// many retries winning most tokens.
    pub(crate) async fn wait_message(&self, peer: &PeerId, bytes: usize) -> bool {
        let n =
            NonZeroU32::new(u32::try_from(bytes).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        if let Some(l) = &self.peer_messages {
            l.until_key_ready(peer).await;
        }
        if let Some(l) = &self.peer_bytes
            && l.until_key_n_ready(peer, n).await.is_err()
        {
            return false;
        }
        if self.node_messages.is_none() && self.node_bytes.is_none() {
            return true;
        }
        let place = self.turns.place(peer);
        let within = {
            let _peer_turn = place.lock().await;
            let _node_turn = self.turns.node.lock().await;
            if let Some(l) = &self.node_messages {
                l.until_ready().await;
            }
            match &self.node_bytes {
                Some(l) => l.until_n_ready(n).await.is_ok(),
                None => true,
            }
        };
        self.turns.leave(peer, place);
        within
    }

    /// One inbound stream from `peer`.
    pub(crate) fn stream(&self, peer: &PeerId) -> bool {
        take_n(self.peer_streams.as_ref(), peer, 1)
    }

    /// Drops the state of peers whose buckets are full again (bounds memory).
    pub(crate) fn forget_idle(&self) {
        self.turns.forget_idle();
        for limiter in [&self.peer_messages, &self.peer_bytes, &self.peer_streams]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_held_to_its_burst_and_others_are_not_affected() {
        let limits = RateLimits {
            peer_messages: Some(Rate::new(1, 5)),
            ..RateLimits::unlimited()
        };
        let limiters = Limiters::new(&limits);
        let (flooder, honest) = (PeerId::random(), PeerId::random());
        let passed = (0..50)
            .filter(|_| limiters.message(&flooder, 100) == Admission::Within)
            .count();
        assert_eq!(passed, 5);
        assert_eq!(limiters.message(&flooder, 100), Admission::PeerExcess);
        assert_eq!(limiters.message(&honest, 100), Admission::Within);
    }

    #[test]
    fn bytes_count_per_message_size_and_node_limits_cap_everyone() {
        let limits = RateLimits {
            peer_bytes: Some(Rate::new(1_000, 10_000)),
            node_messages: Some(Rate::new(1, 3)),
            ..RateLimits::unlimited()
        };
        let limiters = Limiters::new(&limits);
        let peer = PeerId::random();
        assert_eq!(
            limiters.message(&peer, 20_000),
            Admission::PeerExcess,
            "larger than the burst"
        );
        assert_eq!(limiters.message(&peer, 6_000), Admission::Within);
        assert_eq!(
            limiters.message(&peer, 6_000),
            Admission::PeerExcess,
            "bytes bucket drained"
        );
        let others: Vec<_> = (0..10)
            .map(|_| limiters.message(&PeerId::random(), 1))
            .collect();
        let within = others.iter().filter(|a| **a == Admission::Within).count();
        assert_eq!(within, 2, "node bucket: 3 at once, one used above");
        // The rest are the node's saturation, not the peers' excess.
        assert!(
            others
                .iter()
                .all(|a| matches!(a, Admission::Within | Admission::NodeBusy)),
            "{others:?}"
        );
    }

    #[test]
    fn the_seen_set_covers_the_window_at_the_node_rate() {
        let window = Duration::from_secs(600);
        assert_eq!(
            RateLimits::default().replay_capacity(window, 7),
            1_000 * 600 + 2_000
        );
        assert_eq!(RateLimits::unlimited().replay_capacity(window, 7), 7);
    }

    #[tokio::test]
    async fn the_node_rate_is_shared_round_robin_between_waiting_peers() {
        let limits = RateLimits {
            node_messages: Some(Rate::new(1_000, 1)),
            ..RateLimits::unlimited()
        };
        let limiters = Arc::new(Limiters::new(&limits));
        let (flooder, honest) = (PeerId::random(), PeerId::random());
        let grants = Arc::new(StdMutex::new(Vec::new()));
        let record = |grants: &Arc<StdMutex<Vec<char>>>, c| grants.lock().unwrap().push(c);
        // The flooder waits on four streams at once, the honest peer on one.
        let flooding: Vec<_> = (0..4)
            .map(|_| {
                let (limiters, grants) = (Arc::clone(&limiters), Arc::clone(&grants));
                tokio::spawn(async move {
                    loop {
                        assert!(limiters.wait_message(&flooder, 1).await);
                        record(&grants, 'f');
                    }
                })
            })
            .collect();
        let honest_task = tokio::spawn({
            let (limiters, grants) = (Arc::clone(&limiters), Arc::clone(&grants));
            async move {
                for _ in 0..20 {
                    assert!(limiters.wait_message(&honest, 1).await);
                    record(&grants, 'h');
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), honest_task)
            .await
            .expect("honest peer starved")
            .unwrap();
        for task in flooding {
            task.abort();
        }
        let grants = grants.lock().unwrap().clone();
        let first = grants.iter().position(|c| *c == 'h').unwrap();
        let last = grants.iter().rposition(|c| *c == 'h').unwrap();
        let flooder_meanwhile = grants[first..last].iter().filter(|c| **c == 'f').count();
        // Round robin gives the flooder one turn per honest turn (19 here);
        // a turn per stream would give it 4 times that.
        assert!(flooder_meanwhile <= 30, "{flooder_meanwhile}: {grants:?}");
    }
}
