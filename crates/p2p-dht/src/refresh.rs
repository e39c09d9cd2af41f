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
//! queries reach us, and every bucket is refreshed by a full bootstrap every
//! [`crate::DhtConfig::bootstrap_interval`] (and by
//! [`crate::Behaviour::bootstrap`], which starts the period again), which this
//! module runs itself on tokio's timer. The first one comes after a random
//! half to whole interval, so nodes started together do not refresh together.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::kad;

use crate::Kademlia;

/// The full refreshes in progress and the timer of the next one.
pub(crate) struct Refresh {
    interval: Option<Duration>,
    /// Created at the first poll (a behaviour may be built outside a runtime).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bootstraps that refresh every bucket; any other bootstrap is kad's
    /// own and ends after its self-lookup.
    full: HashSet<kad::QueryId>,
}

impl Refresh {
    pub(crate) fn new(interval: Option<Duration>) -> Self {
        Self {
            interval,
            timer: None,
            full: HashSet::new(),
        }
    }

    /// Starts a full refresh: the self-lookup, then every farther bucket.
    pub(crate) fn start_full(
        &mut self,
        kad: &mut Kademlia,
    ) -> Result<kad::QueryId, kad::NoKnownPeers> {
        let id = kad.bootstrap()?;
        self.full.insert(id);
        if let (Some(interval), Some(timer)) = (self.interval, self.timer.as_mut()) {
            timer.as_mut().reset(tokio::time::Instant::now() + interval);
        }
        Ok(id)
    }

    /// A step of a bootstrap ended: one kad started by itself goes no further.
    pub(crate) fn progressed(&mut self, kad: &mut Kademlia, id: kad::QueryId, last: bool) {
        if last {
            self.full.remove(&id);
        } else if !self.full.contains(&id)
            && let Some(mut next) = kad.query_mut(&id)
        {
            next.finish();
        }
    }

    /// Starts the periodic full refresh when it is due (none while one runs).
    pub(crate) fn poll(&mut self, kad: &mut Kademlia, cx: &mut Context<'_>) {
        let Some(interval) = self.interval else {
            return;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(first_delay(interval))));
        while timer.as_mut().poll(cx) == Poll::Ready(()) {
            timer.as_mut().reset(tokio::time::Instant::now() + interval);
            if self.full.is_empty()
                && let Ok(id) = kad.bootstrap()
            {
                self.full.insert(id);
            }
        }
    }
}

/// A random point in the second half of the first interval.
fn first_delay(interval: Duration) -> Duration {
    let half = interval / 2;
    half + half.mul_f64(rand::random_range(0.0..=1.0))
}
