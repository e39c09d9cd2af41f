//! libp2p's own swarm and protocol metrics, for Prometheus.

use std::fmt;
use std::sync::Arc;

use libp2p::metrics::{Metrics, Recorder, Registry};

/// libp2p's swarm and protocol metrics (connections opened and closed, dial
/// and listen errors, identify, ping RTTs, Kademlia queries and inbound
/// requests), registered once in a Prometheus registry under `libp2p_` and
/// recorded by the node's event loop while it runs, across restarts.
///
/// ```
/// use p2p_core::{Node, SwarmMetrics, TransportKind};
/// let mut registry = p2p_core::Registry::default();
/// let node = Node::builder()
///     .transport(TransportKind::Memory)
///     .metrics(SwarmMetrics::register(&mut registry))
///     .build()?;
/// # let _ = node;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SwarmMetrics(Arc<Metrics>);

impl SwarmMetrics {
    /// Registers the metric families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        Self(Arc::new(Metrics::new(registry)))
    }

    pub(crate) fn record<E>(&self, event: &E)
    where
        Metrics: Recorder<E>,
    {
        self.0.record(event);
    }
}

impl fmt::Debug for SwarmMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SwarmMetrics")
    }
}
