//! Prometheus metrics over HTTP (`GET /metrics`, text exposition format).
//!
//! The figures come from the node's own stats plus resource counters kept from
//! its events; the endpoint is a tiny bounded HTTP responder (one short read,
//! one response, close) rather than a web framework.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use p2p_core::{Event, Node, RejectReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Counters {
    announced: AtomicU64,
    discovered: AtomicU64,
}

/// Binds `addr` and serves metrics until aborted.
pub(crate) async fn serve(addr: SocketAddr, node: Node) -> Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics address {addr}"))?;
    eprintln!("metrics on http://{}/metrics", listener.local_addr()?);
    let counters = Arc::new(Counters::default());
    let mut events = node.subscribe();
    let counting = Arc::clone(&counters);
    let counter_task = tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            match event {
                Event::ResourceAnnounced { .. } => {
                    counting.announced.fetch_add(1, Ordering::Relaxed)
                }
                Event::ResourceDiscovered { .. } => {
                    counting.discovered.fetch_add(1, Ordering::Relaxed)
                }
                _ => 0,
            };
        }
    });
    Ok(tokio::spawn(async move {
        let _counter_task = AbortOnDrop(counter_task);
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let node = node.clone();
            let counters = Arc::clone(&counters);
            tokio::spawn(async move {
                let mut request = [0u8; 2048];
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), socket.read(&mut request)).await;
                let body = render(&node, &counters).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    }))
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

async fn render(node: &Node, counters: &Counters) -> String {
    let mut out = String::new();
    let Ok(s) = node.stats().await else {
        return out;
    };
    let one = |v: usize| vec![(String::new(), v as u64)];
    metric(
        &mut out,
        "lotus_p2p_peers_connected",
        "gauge",
        "Peers with an open connection.",
        &one(s.connected_peers),
    );
    metric(
        &mut out,
        "lotus_p2p_peers_known",
        "gauge",
        "Peers known (connected or remembered).",
        &one(s.known_peers),
    );
    metric(
        &mut out,
        "lotus_p2p_connections",
        "gauge",
        "Open connections.",
        &one(s.connections),
    );
    metric(
        &mut out,
        "lotus_p2p_messages_received_total",
        "counter",
        "Messages accepted.",
        &[(String::new(), s.messages.received)],
    );
    metric(
        &mut out,
        "lotus_p2p_messages_sent_total",
        "counter",
        "Messages sent.",
        &[(String::new(), s.messages.sent)],
    );
    metric(
        &mut out,
        "lotus_p2p_messages_send_failures_total",
        "counter",
        "Sends that failed.",
        &[(String::new(), s.messages.send_failures)],
    );
    let rejected: Vec<(String, u64)> = RejectReason::ALL
        .iter()
        .map(|r| {
            (
                format!("{{reason=\"{}\"}}", r.as_str()),
                s.messages.rejected(*r),
            )
        })
        .collect();
    metric(
        &mut out,
        "lotus_p2p_messages_rejected_total",
        "counter",
        "Inbound messages dropped, by reason.",
        &rejected,
    );
    metric(
        &mut out,
        "lotus_p2p_resources_announced_total",
        "counter",
        "Resources announced.",
        &[(String::new(), counters.announced.load(Ordering::Relaxed))],
    );
    metric(
        &mut out,
        "lotus_p2p_resources_discovered_total",
        "counter",
        "Resources discovered in the DHT.",
        &[(String::new(), counters.discovered.load(Ordering::Relaxed))],
    );
    metric(
        &mut out,
        "lotus_p2p_dht_routing_table_size",
        "gauge",
        "Peers in the DHT routing table.",
        &one(s.dht.routing_table_size),
    );
    metric(
        &mut out,
        "lotus_p2p_dht_records_stored",
        "gauge",
        "Records in the local DHT store.",
        &one(s.dht.records_stored),
    );
    metric(
        &mut out,
        "lotus_p2p_dht_queries_in_flight",
        "gauge",
        "DHT queries running.",
        &one(s.dht.queries_in_flight),
    );
    out
}
