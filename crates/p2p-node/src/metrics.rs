//! Prometheus metrics over HTTP (`GET /metrics`, OpenMetrics text).
//!
//! One registry holds libp2p's swarm metrics (`libp2p_*`, recorded by the
//! node's event loop through [`SwarmMetrics`]) and ours (`lotus_p2p_*`: peers,
//! messages in/out/rejected by reason, resources, DHT). Ours are read from the
//! node's stats at scrape time, with `lotus_p2p_build_info` and the
//! conventional `process_*` figures. The API server serves them at
//! `/metrics`; `--metrics <addr>` adds a listener of its own, a tiny bounded
//! HTTP responder (one short read, one response, close).
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections are served at once (one
//! over the cap is closed as soon as it is accepted), each within
//! [`CONNECTION_TIMEOUT`]; after a failed `accept` (out of file descriptors,
//! say) the listener waits [`ACCEPT_BACKOFF`] instead of spinning.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use p2p_core::{
    Event, Node, NodeEvent, NodeStats, Reachability, Registry, RejectReason, SwarmMetrics,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Connections served at once; more are closed on arrival. A scrape takes
/// milliseconds and Prometheus scrapes one at a time.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Pause after a failed `accept` (the error usually persists for a while:
/// no file descriptors left, no memory).
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Time one connection may take in all (request, scrape, response).
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The last reachability status: 0 unknown, 1 public, 2 private.
    reachability: AtomicU64,
    relay_reservations: AtomicU64,
    hole_punches_ok: AtomicU64,
    hole_punches_failed: AtomicU64,
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
        let status = self.reachability.load(Ordering::Relaxed);
        let mut family = e.encode_descriptor(
            "reachability",
            "1 for the node's reachability as AutoNAT last reported it, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for (value, name) in [(0, "unknown"), (1, "public"), (2, "private")] {
            ConstGauge::new(i64::from(status == value))
                .encode(family.encode_family(&[("status", name)])?)?;
        }
        counter(
            &mut e,
            "relay_reservations",
            "Reservations relays granted this node.",
            self.relay_reservations.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "hole_punches_succeeded",
            "Relayed connections upgraded to direct ones (DCUtR).",
            self.hole_punches_ok.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "hole_punches_failed",
            "Hole punches that failed.",
            self.hole_punches_failed.load(Ordering::Relaxed),
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
        counter(
            &mut e,
            "connections_closed_for_room",
            "Idle connections closed to make room for a new one at a connection limit.",
            s.connections_closed_for_room,
        )?;
        counter(
            &mut e,
            "connections_closed_for_room_awaited",
            "Of the connections closed to make room, those whose peer still owed us a DHT answer.",
            s.connections_closed_for_room_awaited,
        )?;
        counter(
            &mut e,
            "connections_refused_at_limit",
            "Connections refused at an established-connection limit with no idle connection to close.",
            s.connections_refused_at_limit,
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
        )?;
        counter(
            &mut e,
            "dht_contact_checks",
            "Routing-table contacts dialled to check they are alive before a newcomer could replace them.",
            d.contact_checks,
        )?;
        counter(
            &mut e,
            "dht_refreshes_skipped",
            "Periodic routing-table refreshes skipped because the DHT had just bootstrapped (joined or rejoined).",
            d.refreshes_skipped,
        )
    }
}

/// Binds `addr` and serves metrics until aborted.
/// Everything a scrape reads: the registry (libp2p's and ours), our
/// snapshot, and the node. Shared by the `--metrics` listener and the API's
/// `/metrics`.
#[derive(Clone)]
pub(crate) struct Exporter {
    node: Node,
    registry: Arc<Registry>,
    snapshot: Arc<Snapshot>,
    /// One scrape at a time: each refreshes the snapshot, then encodes it.
    scrape: Arc<tokio::sync::Mutex<()>>,
    /// Counts events into the snapshot while the exporter lives.
    _counter: Arc<AbortOnDrop>,
}

impl Exporter {
    /// Starts counting `node`'s events into `metrics`' registry.
    pub(crate) fn new(node: Node, metrics: Metrics) -> Self {
        let Metrics { mut registry, .. } = metrics;
        let snapshot = Arc::new(Snapshot::default());
        let ours = registry.sub_registry_with_prefix("lotus_p2p");
        ours.register_collector(Box::new(Arc::clone(&snapshot)));
        ours.register_collector(Box::new(BuildInfo));
        registry.register_collector(Box::new(Process));
        let counter = tokio::spawn(count_events(node.clone(), Arc::clone(&snapshot)));
        Exporter {
            node,
            registry: Arc::new(registry),
            snapshot,
            scrape: Arc::default(),
            _counter: Arc::new(AbortOnDrop(counter)),
        }
    }

    /// The OpenMetrics text of a scrape, after any scrape running (one at a
    /// time: each refreshes the snapshot, then encodes it).
    pub(crate) async fn render(&self) -> String {
        let _one = self.scrape.lock().await;
        self.encode().await
    }

    /// [`Exporter::render`], or `None` at once while another scrape runs
    /// (for a server whose connections are not bounded otherwise).
    pub(crate) async fn try_render(&self) -> Option<String> {
        let _one = self.scrape.try_lock().ok()?;
        Some(self.encode().await)
    }

    async fn encode(&self) -> String {
        let stats = tokio::time::timeout(STATS_TIMEOUT, self.node.stats()).await;
        *self
            .snapshot
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = stats.ok().and_then(Result::ok);
        let mut body = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut body, &self.registry);
        body
    }
}

/// Longest a scrape waits for the node's figures (then reports without them).
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// The content type of [`Exporter::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves metrics until aborted.
pub(crate) async fn serve(addr: SocketAddr, exporter: Exporter) -> Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics address {addr}"))?;
    eprintln!("metrics on http://{}/metrics", listener.local_addr()?);
    Ok(tokio::spawn(async move {
        let accept = || async { listener.accept().await.map(|(socket, _)| socket) };
        accept_loop(
            accept,
            MAX_CONNECTIONS,
            |socket: TcpStream, permit: OwnedSemaphorePermit| {
                let exporter = exporter.clone();
                tokio::spawn(async move {
                    let respond = respond(socket, permit, exporter);
                    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, respond).await;
                });
            },
        )
        .await;
    }))
}

/// Accepts connections forever, handing each to `serve` with a permit that
/// it holds while it serves the connection. With `cap` permits out, a new
/// connection is dropped (closed) at once. A failed accept is logged and
/// followed by [`ACCEPT_BACKOFF`] of sleep, so a persistent error does not
/// spin the thread.
async fn accept_loop<S, A>(
    mut accept: impl FnMut() -> A,
    cap: usize,
    mut serve: impl FnMut(S, OwnedSemaphorePermit),
) where
    A: Future<Output = std::io::Result<S>>,
{
    let permits = Arc::new(Semaphore::new(cap));
    loop {
        let socket = match accept().await {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(%error, "metrics listener: accept failed; retrying in {ACCEPT_BACKOFF:?}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                serve(socket, permit);
            }
            Err(_) => {
                tracing::debug!("metrics listener: {cap} connections open; closing a new one");
                drop(socket);
            }
        }
    }
}

/// Answers one scrape: reads the request (briefly), encodes, writes, closes;
/// any other path is 404.
async fn respond(mut socket: TcpStream, permit: OwnedSemaphorePermit, exporter: Exporter) {
    let mut request = [0u8; 2048];
    let read = tokio::time::timeout(REQUEST_TIMEOUT, socket.read(&mut request)).await;
    let read = read.ok().and_then(Result::ok).unwrap_or(0);
    // Only `GET /metrics` (and `/metrics?...`) is answered.
    let line = request.get(..read).unwrap_or_default();
    let wanted = line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?");
    let response = if wanted {
        let body = exporter.render().await;
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {CONTENT_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
    };
    let _ = socket.write_all(response.as_bytes()).await;
    // The slot is free once the response is out, before the client sees the
    // end of it (so a client that read a whole response can count on a slot).
    drop(permit);
    let _ = socket.shutdown().await;
}

/// `lotus_p2p_build_info{version, commit} 1`.
#[derive(Debug)]
struct BuildInfo;

impl Collector for BuildInfo {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut family = e.encode_descriptor(
            "build_info",
            "The version and git commit of this binary (always 1).",
            None,
            MetricType::Gauge,
        )?;
        let labels = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("commit", env!("LOTUS_P2P_COMMIT")),
        ];
        ConstGauge::new(1).encode(family.encode_family(&labels)?)
    }
}

/// The conventional `process_*` metrics, from `/proc/self` (Linux; none
/// elsewhere).
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some(process) = process_figures() else {
            return Ok(());
        };
        gauge(
            &mut e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            process.rss_bytes,
        )?;
        gauge(
            &mut e,
            "process_open_fds",
            "Open file descriptors.",
            process.open_fds,
        )?;
        let cpu = ConstCounter::new(process.cpu_seconds);
        cpu.encode(e.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        let Some(start) = process.start_time_seconds else {
            return Ok(());
        };
        let start = ConstGauge::new(start);
        start.encode(e.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            None,
            start.metric_type(),
        )?)
    }
}

struct ProcessFigures {
    rss_bytes: usize,
    open_fds: usize,
    cpu_seconds: f64,
    /// Unreadable where /proc/stat is hidden (systemd's ProcSubset=pid).
    start_time_seconds: Option<f64>,
}

/// Read from `/proc/self/stat` (CPU ticks, start ticks after boot, RSS
/// pages), `/proc/stat` (boot time) and `/proc/self/fd`; assumes the usual
/// 100 ticks a second and 4 KiB pages.
fn process_figures() -> Option<ProcessFigures> {
    const TICKS: f64 = 100.0;
    const PAGE: usize = 4096;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n).and_then(|v| v.parse::<u64>().ok());
    // stat(5) numbers from 1 with pid and comm first: utime is 14, stime 15,
    // starttime 22, rss 24; here index 0 is field 3.
    let (utime, stime, start, rss) = (field(11)?, field(12)?, field(19)?, field(21)?);
    let boot: Option<u64> = std::fs::read_to_string("/proc/stat").ok().and_then(|stat| {
        stat.lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
    });
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(ProcessFigures {
        rss_bytes: usize::try_from(rss).ok()? * PAGE,
        open_fds,
        cpu_seconds: (utime + stime) as f64 / TICKS,
        start_time_seconds: boot.map(|boot| boot as f64 + start as f64 / TICKS),
    })
}

/// Counts resource, relay and hole-punch events and keeps the reachability
/// (the node's stats do not keep these).
async fn count_events(node: Node, snapshot: Arc<Snapshot>) {
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
            Event::Node(NodeEvent::RelayReserved { .. }) => {
                snapshot.relay_reservations.fetch_add(1, Ordering::Relaxed)
            }
            Event::Node(NodeEvent::HolePunch { ok: true, .. }) => {
                snapshot.hole_punches_ok.fetch_add(1, Ordering::Relaxed)
            }
            Event::Node(NodeEvent::HolePunch { ok: false, .. }) => {
                snapshot.hole_punches_failed.fetch_add(1, Ordering::Relaxed)
            }
            Event::Node(NodeEvent::Reachability { status, .. }) => {
                let value = match status {
                    Reachability::Public => 1,
                    Reachability::Private => 2,
                    _ => 0,
                };
                snapshot.reachability.swap(value, Ordering::Relaxed)
            }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;

    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_instead_of_spinning() {
        const FAILURES: usize = 10;
        let calls = Arc::new(AtomicUsize::new(0));
        let failed_enough = Arc::new(tokio::sync::Notify::new());
        let accept = {
            let (calls, failed_enough) = (Arc::clone(&calls), Arc::clone(&failed_enough));
            move || {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                let failed_enough = Arc::clone(&failed_enough);
                async move {
                    if n <= FAILURES {
                        return Err(std::io::Error::other("too many open files"));
                    }
                    failed_enough.notify_one();
                    std::future::pending::<std::io::Result<()>>().await
                }
            }
        };
        let start = tokio::time::Instant::now();
        tokio::select! {
            () = accept_loop(accept, 1, |(), _| ()) => unreachable!("accept_loop never returns"),
            () = failed_enough.notified() => {}
        }
        // Paused clock: time only passes through the loop's sleeps.
        let waited = start.elapsed();
        assert!(
            waited >= ACCEPT_BACKOFF * u32::try_from(FAILURES).unwrap(),
            "{FAILURES} failures in {waited:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), FAILURES + 1);
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_at_once() {
        const CAP: usize = 3;
        const OFFERED: usize = 10;
        let (clients, servers): (Vec<_>, Vec<_>) =
            (0..OFFERED).map(|_| tokio::io::duplex(64)).unzip();
        let mut servers = servers.into_iter();
        let all_taken = Arc::new(tokio::sync::Notify::new());
        let accept = {
            let all_taken = Arc::clone(&all_taken);
            move || {
                let next = servers.next();
                let all_taken = Arc::clone(&all_taken);
                async move {
                    match next {
                        Some(server) => Ok(server),
                        None => {
                            all_taken.notify_one();
                            std::future::pending().await
                        }
                    }
                }
            }
        };
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let serve = {
            let held = Arc::clone(&held);
            move |stream, permit| held.lock().unwrap().push((stream, permit))
        };
        let accepting = accept_loop(accept, CAP, serve);
        tokio::pin!(accepting);
        tokio::select! {
            () = &mut accepting => unreachable!("accept_loop never returns"),
            () = all_taken.notified() => {}
        }
        assert_eq!(held.lock().unwrap().len(), CAP, "served");
        // Every connection was handed on or dropped: the dropped ones read
        // end of stream now, the served ones have nothing to read yet.
        let mut closed = 0;
        for mut client in clients {
            let mut byte = [0u8; 1];
            let read = client.read(&mut byte);
            tokio::pin!(read);
            let poll =
                std::future::poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx))).await;
            match poll {
                std::task::Poll::Ready(Ok(0)) => closed += 1,
                std::task::Poll::Pending => {}
                other => panic!("unexpected read {other:?}"),
            }
        }
        assert_eq!(closed, OFFERED - CAP, "closed on arrival");
    }
}
