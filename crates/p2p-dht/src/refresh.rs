//! Routing-table refreshes: what joining costs, and what keeps the table fresh.
//!
//! libp2p-kad bootstraps by itself whenever a peer enters a table of fewer
//! than K (20) peers: a lookup of our own key, then one lookup per bucket
//! farther than our closest neighbour (about log2 N more), each reaching
//! ~20–60 new peers (disjoint paths). Run in full at every join, that made a joining node connect to
//! most of a 200-node network and to ~250 peers of a 1 000-node one
//! (BENCHMARKS.md §5, fifth session), each connection a Noise handshake and
//! an identify exchange.
//!
//! A joining node needs its closest neighbours: they are where the records
//! it must hold are put and how others find it, and the self-lookup finds
//! them. So a bootstrap kad starts by itself stops after its self-lookup. The
//! farther buckets fill from the lookup paths and from the peers whose
//! queries reach us, and the buckets are refreshed every
//! [`crate::DhtConfig::bootstrap_interval`] by a bootstrap this module runs
//! itself on tokio's timer. The first one comes after a random half to whole
//! interval, so nodes started together do not refresh together.
//!
//! A periodic refresh walks only the buckets a walk can teach something:
//! - not one that already holds K peers: a full bucket would only get
//!   fresher entries, and at 1 000 nodes the far buckets are full and
//!   walking them was most of the cost (each walk reaches ~20–60 peers,
//!   mostly new connections; with all buckets walked every 5 min, the
//!   refreshes of 1 000 nodes sharing 2 cores kept them busy);
//! - not one closer than the bucket of our K-th closest peer: the
//!   self-lookup, the refresh's first step, found every peer that close.
//!
//! Every [`FULL_WALK_EVERY`]th periodic refresh (hourly with the default
//! 5 min, the Kademlia paper's refresh period) and
//! [`crate::Behaviour::bootstrap`] (which starts the period again) walk every
//! bucket.
//!
//! A periodic refresh is skipped when one of kad's own bootstraps (the
//! join's, or a rejoin's when the table fell under K peers) finished its
//! self-lookup less than an interval before: the table was just built
//! (libp2p-kad too restarts its period at every bootstrap, its automatic one
//! included; the Kademlia paper refreshes only what was not looked up within
//! the period). The refresh then comes at the next tick, one to two
//! intervals after that self-lookup: the ticks keep their random phase, so
//! nodes that joined together do not refresh together, and two ticks in a
//! row are never skipped, so a node whose small table keeps kad
//! bootstrapping still walks its buckets. Only self-lookups that sent
//! requests and did not time out count; an explicit bootstrap restarts the
//! period itself, and a periodic refresh's own self-lookup does not count.
//! Without this, every node of a network started together walked its table
//! again within minutes of joining (a self-lookup and a walk of its
//! non-full far buckets, ~100 new connections each): at 1 000 nodes on 2
//! cores that starved the announces and lookups running at the same time
//! (BENCHMARKS.md §5, eighth session).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use libp2p::kad;

use crate::Kademlia;

/// Every how many periodic refreshes one walks the full buckets too.
pub const FULL_WALK_EVERY: u32 = 12;

/// Which farther buckets a refresh walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    Every,
    /// Those with fewer than K peers and not closer than our K-th closest.
    Useful,
}

/// The refreshes in progress and the timer of the next one.
pub(crate) struct Refresh {
    interval: Option<Duration>,
    /// Created at the first poll (a behaviour may be built outside a runtime).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Our bootstraps and what they walk; any other bootstrap is kad's own
    /// and ends after its self-lookup.
    running: HashMap<kad::QueryId, Walk>,
    /// Periodic refreshes started.
    periodic: u32,
    /// When the self-lookup of kad's last own bootstrap ended (one that sent
    /// requests and did not time out).
    last_join: Option<Instant>,
    /// Whether the last tick of the timer was skipped.
    skipped_last: bool,
    /// Periodic refreshes skipped because kad had just bootstrapped.
    skipped: u64,
}

impl Refresh {
    pub(crate) fn new(interval: Option<Duration>) -> Self {
        Self {
            interval,
            timer: None,
            running: HashMap::new(),
            periodic: 0,
            last_join: None,
            skipped_last: false,
            skipped: 0,
        }
    }

    /// Periodic refreshes skipped because kad's own bootstrap had ended its
    /// self-lookup less than an interval before.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Starts a full refresh: the self-lookup, then every farther bucket.
    pub(crate) fn start_full(
        &mut self,
        kad: &mut Kademlia,
    ) -> Result<kad::QueryId, kad::NoKnownPeers> {
        let id = kad.bootstrap()?;
        self.running.insert(id, Walk::Every);
        if let (Some(interval), Some(timer)) = (self.interval, self.timer.as_mut()) {
            timer.as_mut().reset(tokio::time::Instant::now() + interval);
        }
        Ok(id)
    }

    /// A step of a bootstrap ended: one kad started by itself goes no
    /// further, and a periodic one skips the next bucket if it is full.
    /// The end of the self-lookup of one of kad's own bootstraps is
    /// remembered.
    pub(crate) fn progressed(
        &mut self,
        kad: &mut Kademlia,
        id: kad::QueryId,
        result: &kad::BootstrapResult,
        stats: &kad::QueryStats,
        step: &kad::ProgressStep,
    ) {
        // A bootstrap's first step is its self-lookup.
        if result.is_ok()
            && step.count.get() == 1
            && stats.num_requests() > 0
            && !self.running.contains_key(&id)
        {
            self.last_join = Some(Instant::now());
        }
        if step.last {
            self.running.remove(&id);
            return;
        }
        let skip = match self.running.get(&id) {
            None => true,
            Some(Walk::Every) => false,
            Some(Walk::Useful) => !next_bucket_is_useful(kad, id),
        };
        if skip && let Some(mut next) = kad.query_mut(&id) {
            next.finish();
        }
    }

    /// Starts the periodic refresh when it is due: none while one runs, nor
    /// (one tick in a row at most) when kad's own bootstrap ended its
    /// self-lookup less than an interval before.
    pub(crate) fn poll(&mut self, kad: &mut Kademlia, cx: &mut Context<'_>) {
        let Some(interval) = self.interval else {
            return;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(first_delay(interval))));
        while timer.as_mut().poll(cx) == Poll::Ready(()) {
            timer.as_mut().reset(tokio::time::Instant::now() + interval);
            if !self.running.is_empty() {
                continue;
            }
            self.skipped_last =
                skip_tick(self.last_join, self.skipped_last, interval, Instant::now());
            if self.skipped_last {
                self.skipped += 1;
                continue;
            }
            if let Ok(id) = kad.bootstrap() {
                self.periodic = self.periodic.wrapping_add(1);
                self.running.insert(id, periodic_walk(self.periodic));
            }
        }
    }
}

/// Whether a tick of the refresh timer at `now` is skipped: kad's own
/// bootstrap ended its self-lookup less than an interval before, and the
/// last tick was not skipped.
fn skip_tick(
    last_join: Option<Instant>,
    skipped_last: bool,
    interval: Duration,
    now: Instant,
) -> bool {
    !skipped_last && last_join.is_some_and(|at| now.saturating_duration_since(at) < interval)
}

/// What the `n`th periodic refresh (from 1) walks.
fn periodic_walk(n: u32) -> Walk {
    if n.is_multiple_of(FULL_WALK_EVERY) {
        Walk::Every
    } else {
        Walk::Useful
    }
}

/// Whether the bucket of the bootstrap step now running is worth a walk:
/// it holds fewer than K peers and is not closer than the bucket of our
/// K-th closest peer.
fn next_bucket_is_useful(kad: &mut Kademlia, id: kad::QueryId) -> bool {
    let k = kad::K_VALUE.get();
    let target = match kad.query(&id).as_ref().map(|q| q.info()) {
        Some(kad::QueryInfo::Bootstrap { peer, .. }) => *peer,
        _ => return true,
    };
    let Some((range, entries)) = kad.kbucket(target).map(|b| (b.range(), b.num_entries())) else {
        return true;
    };
    if entries >= k {
        return false;
    }
    // The buckets come closest first.
    let mut known = 0;
    let kth = kad.kbuckets().find_map(|bucket| {
        known += bucket.num_entries();
        (known >= k).then(|| bucket.range())
    });
    kth.is_none_or(|kth| range.1 >= kth.0)
}

/// A random point in the second half of the first interval.
fn first_delay(interval: Duration) -> Duration {
    let half = interval / 2;
    half + half.mul_f64(rand::random_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_within_an_interval_of_a_join_is_skipped_but_never_two_in_a_row() {
        let interval = Duration::from_secs(300);
        let joined = Instant::now();
        let tick = |after: u64, skipped_last| {
            skip_tick(
                Some(joined),
                skipped_last,
                interval,
                joined + Duration::from_secs(after),
            )
        };
        assert!(tick(200, false), "a tick 200 s after the join");
        assert!(!tick(200, true), "the tick after a skipped one");
        assert!(!tick(300, false), "a tick an interval after the join");
        assert!(!skip_tick(None, false, interval, joined), "no join yet");
    }

    #[test]
    fn every_twelfth_periodic_refresh_walks_the_full_buckets_too() {
        let walks: Vec<Walk> = (1..=24).map(periodic_walk).collect();
        let every: Vec<usize> = (1..=24)
            .zip(&walks)
            .filter(|(_, w)| **w == Walk::Every)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(every, vec![12, 24]);
    }
}
