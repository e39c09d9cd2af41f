//! Prometheus metrics over HTTP (`GET /metrics`, OpenMetrics text).
//!
//! One registry holds libp2p's swarm metrics (`libp2p_*`, recorded by the
//! node's event loop through [`SwarmMetrics`]) and ours (`lotus_p2p_*`: peers,
//! messages in/out/rejected by reason, resources, DHT). Ours are read from the
//! node's stats at scrape time. The endpoint is a tiny bounded HTTP responder
//! (one short read, one response, close) rather than a web framework.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use p2p_core::{Event, Node, NodeStats, Registry, RejectReason, SwarmMetrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The registry the node records into, before the node is built.
pub(crate) struct Metrics {
    registry: Registry,
    swarm: SwarmMetrics,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let swarm = SwarmMetrics::register(&mut registry);
        Self { registry, swarm }
    }

    /// What the node's builder takes.
    pub(crate) fn swarm(&self) -> SwarmMetrics {
        self.swarm.clone()
    }
}

/// Our figures, as of the last scrape.
#[derive(Debug, Default)]
struct Snapshot {
    stats: Mutex<Option<NodeStats>>,
    announced: AtomicU64,
    discovered: AtomicU64,
}

impl Snapshot {
    fn stats(&self) -> Option<NodeStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: usize) -> std::fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        counter(
            &mut e,
            "resources_announced",
            "Resources announced.",
            self.announced.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "resources_discovered",
            "Resources discovered in the DHT.",
            self.discovered.load(Ordering::Relaxed),
        )?;
        let Some(s) = self.stats() else {
            return Ok(());
        };
        gauge(
            &mut e,
            "peers_connected",
            "Peers with an open connection.",
            s.connected_peers,
        )?;
        gauge(
            &mut e,
            "peers_known",
            "Peers known (connected or remembered).",
            s.known_peers,
        )?;
        gauge(&mut e, "connections", "Open connections.", s.connections)?;
        gauge(&mut e, "peers_banned", "Peers banned now.", s.banned_peers)?;
        counter(
            &mut e,
            "connections_denied_per_ip",
            "Inbound connections refused because their address block was full.",
            s.connections_denied_per_ip,
        )?;
        let m = &s.messages;
        counter(
            &mut e,
            "messages_received",
            "Messages accepted.",
            m.received,
        )?;
        counter(&mut e, "messages_sent", "Messages sent.", m.sent)?;
        counter(
            &mut e,
            "messages_send_failures",
            "Sends that failed.",
            m.send_failures,
        )?;
        counter(
            &mut e,
            "message_bytes_received",
            "Bytes of accepted messages.",
            m.bytes_received,
        )?;
        counter(
            &mut e,
            "message_bytes_sent",
            "Bytes of sent messages.",
            m.bytes_sent,
        )?;
        let mut family = e.encode_descriptor(
            "messages_rejected",
            "Inbound messages dropped, by reason.",
            None,
            MetricType::Counter,
        )?;
        for reason in RejectReason::ALL {
            let labels = [("reason", reason.as_str())];
            ConstCounter::new(m.rejected(reason)).encode(family.encode_family(&labels)?)?;
        }
        let d = &s.dht;
        gauge(
            &mut e,
            "dht_routing_table_size",
            "Peers in the DHT routing table.",
            d.routing_table_size,
        )?;
        gauge(
            &mut e,
            "dht_records_stored",
            "Records in the local DHT store.",
            d.records_stored,
        )?;
        gauge(
            &mut e,
            "dht_provider_keys",
            "Keys this node provides.",
            d.provider_keys,
        )?;
        gauge(
            &mut e,
            "dht_queries_in_flight",
            "DHT queries running.",
            d.queries_in_flight,
        )
    }
}

/// Binds `addr` and serves metrics until aborted.
pub(crate) async fn serve(
    addr: SocketAddr,
    node: Node,
    metrics: Metrics,
) -> Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics address {addr}"))?;
    eprintln!("metrics on http://{}/metrics", listener.local_addr()?);
    let Metrics { mut registry, .. } = metrics;
    let snapshot = Arc::new(Snapshot::default());
    registry
        .sub_registry_with_prefix("lotus_p2p")
        .register_collector(Box::new(Arc::clone(&snapshot)));
    let registry = Arc::new(registry);
    let counter_task = tokio::spawn(count_resources(node.clone(), Arc::clone(&snapshot)));
    Ok(tokio::spawn(async move {
        let _counter_task = AbortOnDrop(counter_task);
        // One scrape at a time: each refreshes the snapshot, then encodes it.
        let scrape = Arc::new(tokio::sync::Mutex::new(()));
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let (node, snapshot, registry) =
                (node.clone(), Arc::clone(&snapshot), Arc::clone(&registry));
            let scrape = Arc::clone(&scrape);
            tokio::spawn(async move {
                let mut request = [0u8; 2048];
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), socket.read(&mut request)).await;
                let body = {
                    let _one = scrape.lock().await;
                    *snapshot.stats.lock().unwrap_or_else(|p| p.into_inner()) =
                        node.stats().await.ok();
                    let mut body = String::new();
                    let _ = prometheus_client::encoding::text::encode(&mut body, &registry);
                    body
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    }))
}

/// Counts resource events (the node's stats do not keep these).
async fn count_resources(node: Node, snapshot: Arc<Snapshot>) {
    let mut events = node.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        match event {
            Event::ResourceAnnounced { .. } => snapshot.announced.fetch_add(1, Ordering::Relaxed),
            Event::ResourceDiscovered { .. } => snapshot.discovered.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
