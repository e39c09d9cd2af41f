//! Per-peer rates of what other peers ask of our DHT (GCRA token buckets from
//! `governor`): record and provider puts, and lookups (FIND_NODE, GET_VALUE,
//! GET_PROVIDERS).
//!
//! Defaults, and why:
//! - **puts: one every 3 s, burst 200** (the original allowed one announcement
//!   per 30 s per resource and 100 per peer): the sustained rate is 200 per
//!   10 minutes, kad's replication interval, and the burst lets a neighbour's
//!   whole replication run through (kad re-puts every stored record at once;
//!   a server holding 200 records near our id sends us about that many).
//!   Storage is bounded separately by the creator quotas.
//! - **lookups: 20/s, burst 100**: one iterative lookup asks each contacted
//!   peer once or twice; a js kad-dht node refreshing its table at start-up
//!   sends a few dozen lookups at once, and kad's replication job one per
//!   stored record. A peer walking our table or store as fast as it can is
//!   held to 20 answers a second.
//!
//! Both refusals are counted as [`p2p_types::RejectReason::DhtRateLimited`]
//! and not scored: honest servers burst them whenever kad replicates.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use libp2p::PeerId;

/// How often the state of idle peers is dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One event every `every`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhtRate {
    /// Time for one token to come back.
    pub every: Duration,
    /// Events allowed at once.
    pub burst: u32,
}

impl DhtRate {
    /// `per_second` sustained (at least one), `burst` at once.
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        Self {
            every: Duration::from_secs(1) / per_second.max(1),
            burst,
        }
    }

    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.every)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }
}

/// Per-peer limits on inbound DHT work; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhtRates {
    /// Record and provider puts from one peer. Default one every 3 s, burst 200.
    pub peer_puts: Option<DhtRate>,
    /// Lookups one peer asks of us. Default 20/s, burst 100.
    pub peer_requests: Option<DhtRate>,
}

impl Default for DhtRates {
    fn default() -> Self {
        Self {
            peer_puts: Some(DhtRate {
                every: Duration::from_secs(3),
                burst: 200,
            }),
            peer_requests: Some(DhtRate::per_second(20, 100)),
        }
    }
}

impl DhtRates {
    /// No limits.
    pub fn unlimited() -> Self {
        Self {
            peer_puts: None,
            peer_requests: None,
        }
    }
}

/// The buckets. Idle peers' state is dropped once a minute, on the next check.
pub(crate) struct Rates {
    puts: Option<DefaultKeyedRateLimiter<PeerId>>,
    requests: Option<DefaultKeyedRateLimiter<PeerId>>,
    swept: Instant,
}

impl Rates {
    pub(crate) fn new(rates: DhtRates) -> Self {
        Self {
            puts: rates.peer_puts.map(|r| RateLimiter::keyed(r.quota())),
            requests: rates.peer_requests.map(|r| RateLimiter::keyed(r.quota())),
            swept: Instant::now(),
        }
    }

    /// One record or provider put from `peer`: false when over its rate.
    pub(crate) fn put(&mut self, peer: &PeerId) -> bool {
        self.sweep_if_due();
        self.puts.as_ref().is_none_or(|l| l.check_key(peer).is_ok())
    }

    /// One lookup asked by `peer`: false when over its rate.
    pub(crate) fn request(&mut self, peer: &PeerId) -> bool {
        self.sweep_if_due();
        self.requests
            .as_ref()
            .is_none_or(|l| l.check_key(peer).is_ok())
    }

    fn sweep_if_due(&mut self) {
        if self.swept.elapsed() < SWEEP_EVERY {
            return;
        }
        self.swept = Instant::now();
        for limiter in [&self.puts, &self.requests].into_iter().flatten() {
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
        let mut rates = Rates::new(DhtRates {
            peer_puts: Some(DhtRate {
                every: Duration::from_secs(3),
                burst: 5,
            }),
            peer_requests: None,
        });
        let (flooder, honest) = (PeerId::random(), PeerId::random());
        assert_eq!((0..50).filter(|_| rates.put(&flooder)).count(), 5);
        assert!(rates.put(&honest));
        assert!((0..50).all(|_| rates.request(&flooder)), "unlimited");
    }

    #[test]
    fn per_second_is_the_period_of_one_token() {
        assert_eq!(
            DhtRate::per_second(20, 100).every,
            Duration::from_millis(50)
        );
        assert_eq!(DhtRate::per_second(0, 1).every, Duration::from_secs(1));
    }
}
