//! The DHT at scale (issue 13 §3), a plain scenario binary (not criterion):
//! N full `p2p_core::Node`s, DHT Server mode, on the memory transport, all in
//! one child process per network size (so its RSS is the network's).
//!
//! Per size the child:
//! 1. starts N nodes (not timed), then every node i > 0 dials 3 random
//!    earlier nodes (fewer for the first three; no hub, which would hit the
//!    inbound connection limits); *network up* is the time from the first
//!    dial until every routing table holds min(20, N − 1) peers (polled with
//!    `Node::stats` every 100 ms, bounded);
//! 2. reads the process RSS: memory per node = (RSS − RSS before the first
//!    node) / N; then leaves the network alone for 10 s and reports the CPU
//!    it used (its upkeep: pings, yamux, timers, kad's periodic work), in
//!    cores and per connection end;
//! 3. announces `resources` records, each from a random node;
//! 4. runs `lookups` lookups (`Node::discover`) of random resources from
//!    `queriers` nodes (never the announcer), each querier sequentially, the
//!    queriers in parallel; after each lookup the querier forgets the
//!    creator's record (`Node::forget`, which drops the local cache's copy)
//!    so that the next lookup of it must find it in the DHT again (before the
//!    eighth session `Node::withdraw` was called here, which since the cache
//!    is kept per creator drops only our own records: a repeated lookup the
//!    DHT failed could answer from the cache, BENCHMARKS.md §5);
//! 5. stops 30 % of the nodes (random, announcers included, queriers never)
//!    and runs the same lookups again, at once.
//!
//! Requests per lookup: each querier's `Node::stats().dht` (the requests of
//! its finished record and provider lookups, from kad's `QueryStats`) before
//! and after each of its lookups; requests = Δrequests of both, everything
//! one `discover` sent (its provider walk, the shared-key lookup, the
//! creator-key reads). Until the tenth session only the record lookups were
//! counted, per record lookup (Δrequests / Δfinished); that figure is still
//! reported as `requests_per_record_lookup`.
//!
//! One JSON line per size on stdout (the child's phase lines merged, so a
//! size that dies part-way still reports what it measured), then a summary
//! line; progress on stderr. The plot (success rate and latency against
//! network size) is written to `target/dht_scale.svg` and, in full mode when
//! every size ran, to `docs/dht_scale.svg`.
//!
//! `LOTUS_BENCH_QUICK=1`: sizes 10 and 30, 40 lookups; seconds.
//! Experiment knobs (`cargo xtask bench` sets none): `LOTUS_DHT_KEEP_IDLE=<n>`
//! (every node's `ConnectionLimits::keep_idle`), `LOTUS_DHT_QUERY_TIMEOUT_S=<s>`
//! (`DhtConfig::query_timeout`), `LOTUS_DHT_DISJOINT=0|1`
//! (`DhtConfig::disjoint_query_paths`), `LOTUS_DHT_PROVIDER_ANSWERS=<n>`
//! (`DhtConfig::provider_answers`; 0 = walk to the end),
//! `LOTUS_DHT_PROVIDER_CLOSEST=<n>` (`DhtConfig::provider_closest`; 0 =
//! walk to the end), `LOTUS_DHT_PARALLELISM=<n>` (`DhtConfig::parallelism`),
//! `LOTUS_DHT_MAX_CONNECTIONS=<n>`
//! (every node's established-connection limits, in all, in and out),
//! `LOTUS_DHT_NO_AUTONAT=1` (no AutoNAT probes), `LOTUS_DHT_IDLE_S=<s>` (the
//! idle window), `LOTUS_DHT_REFRESH_S=<s>` (`DhtConfig::bootstrap_interval`,
//! the periodic full refresh; 0 = none), `LOTUS_DHT_CHECK_AFTER_S=<s>`
//! (`DhtConfig::contact_check_after`; 0 = kad's dial per newcomer),
//! `LOTUS_DHT_PING_S=<s>` (`NodeConfig::ping_interval`); unset, the library's defaults. While the dials run, a line on stderr every 15 s
//! gives the dials done, the connections of 16 sampled nodes and the CPU
//! time used.
//!
//! Run: `cargo bench -p p2p-core --bench dht_scale [-- <size>...]`. The binary
//! re-executes itself with `LOTUS_DHT_SCALE_CHILD=<size>`. Every wait is
//! bounded; a child that exceeds its bound is killed and reported.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::Multiaddr;
use p2p_core::{AnnounceOptions, ConnectionLimits, DhtConfig, DhtModeSetting, Node, TransportKind};
use serde_json::{Map, Value, json};
use support::{rid, rtype, summary};

const CHILD_ENV: &str = "LOTUS_DHT_SCALE_CHILD";

/// `LOTUS_DHT_KEEP_IDLE`, if set (inherited by the child).
fn keep_idle() -> Option<u32> {
    std::env::var("LOTUS_DHT_KEEP_IDLE").ok()?.parse().ok()
}

/// A numeric environment knob, if set.
fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}
const RESOURCE_TYPE: &str = "bench-scale";

struct Scale {
    sizes: &'static [usize],
    /// Records announced (each by a random node).
    resources: usize,
    /// Lookups before churn, and again after.
    lookups: usize,
    /// Nodes that look up (each sequentially; they run in parallel).
    queriers: usize,
    /// Dials each node makes to earlier nodes.
    dials_per_node: usize,
    lookup_timeout: Duration,
    /// Bound on one lookup phase: no lookup starts after it (those not run
    /// are reported as `not_run`).
    lookup_phase_budget: Duration,
    /// Bound on the network coming up.
    up_wait: Duration,
    /// Bound on one child process (one size).
    child_wait: Duration,
    settle: Duration,
    /// Window in which the network, once up, is left alone and its CPU use
    /// measured (the upkeep of its connections and routing tables).
    idle: Duration,
}

const FULL: Scale = Scale {
    sizes: &[10, 50, 200, 1000],
    resources: 100,
    lookups: 1000,
    queriers: 8,
    dials_per_node: 3,
    lookup_timeout: Duration::from_secs(10),
    lookup_phase_budget: Duration::from_secs(240),
    up_wait: Duration::from_secs(600),
    child_wait: Duration::from_secs(2400),
    settle: Duration::from_secs(2),
    idle: Duration::from_secs(10),
};

/// Quick mode (`LOTUS_BENCH_QUICK=1`): two small networks, a few lookups.
const QUICK: Scale = Scale {
    sizes: &[10, 30],
    resources: 10,
    lookups: 40,
    queriers: 4,
    dials_per_node: 3,
    lookup_timeout: Duration::from_secs(5),
    lookup_phase_budget: Duration::from_secs(30),
    up_wait: Duration::from_secs(30),
    child_wait: Duration::from_secs(120),
    settle: Duration::from_millis(200),
    idle: Duration::from_secs(1),
};

fn scale() -> &'static Scale {
    support::pick(&FULL, &QUICK)
}

fn main() {
    if let Ok(size) = std::env::var(CHILD_ENV) {
        let n: usize = size.parse().expect("child size");
        child(n);
        return;
    }
    let selected: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes: Vec<usize> = if selected.is_empty() {
        scale().sizes.to_vec()
    } else {
        selected.clone()
    };
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for &n in &sizes {
        eprintln!("dht_scale: {n} nodes (child process)");
        let started = Instant::now();
        let result = run_child(n);
        eprintln!(
            "dht_scale: {n} nodes done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        if result.get("error").is_some() {
            failed.push(n);
        }
        println!("{result}");
        results.push(result);
    }
    let target = workspace().join("target/dht_scale.svg");
    let svg = plot(&results);
    std::fs::write(&target, &svg).unwrap();
    let mut written = vec![target.display().to_string()];
    if !support::quick() && selected.is_empty() {
        let docs = workspace().join("docs/dht_scale.svg");
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::write(&docs, &svg).unwrap();
        written.push(docs.display().to_string());
    }
    println!(
        "{}",
        json!({"scenario": "dht_scale_summary", "sizes": sizes, "failed_sizes": failed, "plot": written})
    );
    if !failed.is_empty() {
        eprintln!("dht_scale: sizes {failed:?} did not run to the end");
        std::process::exit(1);
    }
}

fn workspace() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

// ------------------------------------------------------------------ parent

/// Runs one size in a child process; merges its JSON lines into one object.
fn run_child(n: usize) -> Value {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .env(CHILD_ENV, n.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = support::json_lines(child.stdout.take().unwrap());
    let mut merged = Map::new();
    merged.insert("scenario".into(), json!("dht_scale"));
    merged.insert("nodes".into(), json!(n));
    let deadline = Instant::now() + scale().child_wait;
    let mut error = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => match serde_json::from_str::<Value>(&line) {
                Ok(Value::Object(fields)) => merged.extend(fields),
                _ => eprintln!("{line}"),
            },
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                error = Some(format!(
                    "child did not finish within {:?}; killed",
                    scale().child_wait
                ));
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    if error.is_none() && !status.success() {
        error = Some(format!("child exited with {status}"));
    }
    if error.is_none() && merged.get("phase").and_then(Value::as_str) != Some("done") {
        error = Some("child ended before its last phase".into());
    }
    if let Some(error) = error {
        merged.insert("error".into(), json!(error));
    }
    merged.remove("phase");
    Value::Object(merged)
}

// ------------------------------------------------------------------ child

fn child(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(network(n));
}

fn emit(line: Value) {
    println!("{line}");
}

/// splitmix64: reproducible choices without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// VmRSS, RssAnon and VmHWM of this process (kB), and its CPU time (s).
fn proc_status() -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    json!({
        "rss_kb": field("VmRSS:"),
        "anon_kb": field("RssAnon:"),
        "hwm_kb": field("VmHWM:"),
        "cpu_s": cpu_seconds(),
    })
}

/// User + system CPU time of this process, seconds (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat; `after` starts at field 3.
    let tick = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    round2((tick(11) + tick(12)) / 100.0)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn start_node() -> Node {
    let mut builder = Node::builder();
    if let Some(secs) = env_u64("LOTUS_DHT_PING_S") {
        builder = builder.ping_interval(Duration::from_secs(secs));
    }
    let node = builder
        .transport(TransportKind::Memory)
        .listen("/memory/0".parse().unwrap())
        .dht({
            let mut c = DhtConfig::default();
            c.mode = DhtModeSetting::Server;
            // Experiment knobs (not used by `cargo xtask bench`).
            if let Some(secs) = env_u64("LOTUS_DHT_QUERY_TIMEOUT_S") {
                c.query_timeout = Duration::from_secs(secs);
            }
            if let Some(disjoint) = env_u64("LOTUS_DHT_DISJOINT") {
                c.disjoint_query_paths = disjoint != 0;
            }
            if let Some(answers) = env_u64("LOTUS_DHT_PROVIDER_ANSWERS") {
                c.provider_answers = usize::try_from(answers)
                    .ok()
                    .and_then(std::num::NonZeroUsize::new);
            }
            if let Some(alpha) = env_u64("LOTUS_DHT_PARALLELISM") {
                c.parallelism = usize::try_from(alpha)
                    .ok()
                    .and_then(std::num::NonZeroUsize::new)
                    .unwrap();
            }
            if let Some(closest) = env_u64("LOTUS_DHT_PROVIDER_CLOSEST") {
                c.provider_closest = usize::try_from(closest)
                    .ok()
                    .and_then(std::num::NonZeroUsize::new);
            }
            if let Some(secs) = env_u64("LOTUS_DHT_REFRESH_S") {
                c.bootstrap_interval = (secs > 0).then(|| Duration::from_secs(secs));
            }
            if let Some(secs) = env_u64("LOTUS_DHT_CHECK_AFTER_S") {
                c.contact_check_after = Duration::from_secs(secs);
            }
            c
        })
        .nat({
            let mut nat = p2p_core::NatConfig::default();
            if env_u64("LOTUS_DHT_NO_AUTONAT") == Some(1) {
                nat.autonat = false;
            }
            nat
        })
        // The whole network shares this process: libp2p's process-memory
        // connection limit (1 GiB by default) would refuse dials of every
        // node once the network passes it, an artefact of the harness.
        .limits({
            let mut c = ConnectionLimits::default();
            c.max_process_memory = None;
            if let Some(keep) = keep_idle() {
                c.keep_idle = keep;
            }
            if let Some(max) = env_u64("LOTUS_DHT_MAX_CONNECTIONS") {
                let max = u32::try_from(max).unwrap();
                c.max_established = max;
                c.max_established_incoming = max;
                c.max_established_outgoing = max;
            }
            c
        })
        .build()
        .unwrap();
    node.start().await.unwrap();
    node
}

async fn dial_addr(node: &Node) -> Multiaddr {
    let addr = node.listen_addrs().await.unwrap().remove(0);
    addr.with_p2p(node.peer_id()).unwrap()
}

async fn table_sizes(nodes: &[Node]) -> Vec<usize> {
    futures::stream::iter(nodes)
        .map(|n| async move {
            n.stats()
                .await
                .map(|s| s.dht.routing_table_size)
                .unwrap_or(0)
        })
        .buffered(64)
        .collect()
        .await
}

/// Idle connections the running nodes closed to make room at a connection
/// limit, and connections they refused at one, in all and by the queriers;
/// and the routing-table contacts they dialled to check them.
async fn closed_for_room(nodes: &[Node], queriers: &[usize]) -> Value {
    let counts: Vec<(u64, u64, u64, u64, u64)> = futures::stream::iter(nodes)
        .map(|n| async move {
            n.stats()
                .await
                .map(|s| {
                    (
                        s.connections_closed_for_room,
                        s.connections_refused_at_limit,
                        s.dht.contact_checks,
                        s.dht.refreshes_skipped,
                        s.connections_closed_for_room_awaited,
                    )
                })
                .unwrap_or((0, 0, 0, 0, 0))
        })
        .buffered(64)
        .collect()
        .await;
    json!({
        "closed": counts.iter().map(|c| c.0).sum::<u64>(),
        "refused": counts.iter().map(|c| c.1).sum::<u64>(),
        "closed_by_queriers": queriers.iter().map(|&q| counts[q].0).sum::<u64>(),
        "closed_awaited_by_queriers": queriers.iter().map(|&q| counts[q].4).sum::<u64>(),
        "refused_by_queriers": queriers.iter().map(|&q| counts[q].1).sum::<u64>(),
        "contact_checks": counts.iter().map(|c| c.2).sum::<u64>(),
        "refreshes_skipped": counts.iter().map(|c| c.3).sum::<u64>(),
    })
}

fn usize_summary(v: &[usize]) -> Value {
    summary(v.iter().map(|&x| x as f64).collect())
}

/// What `node`'s finished DHT lookups have sent so far.
#[derive(Clone, Copy)]
struct LookupTotals {
    /// Record lookups finished, and their requests.
    records: (u64, u64),
    /// Provider lookups finished, and their requests.
    providers: (u64, u64),
}

async fn lookup_totals(node: &Node) -> Option<LookupTotals> {
    let dht = node.stats().await.ok()?.dht;
    Some(LookupTotals {
        records: (dht.record_lookups.finished, dht.record_lookups.requests),
        providers: (dht.provider_lookups.finished, dht.provider_lookups.requests),
    })
}

/// The ranks (1 = closest) of the nodes holding resource `id` among the
/// running nodes, by kad's distance to its shared key; `held[i]` says
/// whether node `i` holds it (`None`: not running). The first 20 ranks
/// are where a put goes and where a lookup ends.
fn holder_ranks(nodes: &[Node], held: &[Option<bool>], id: &str) -> Vec<usize> {
    let key = p2p_types::ResourceKey::new(rtype(RESOURCE_TYPE), rid(id));
    let target = libp2p::kad::KBucketKey::new(p2p_dht::records::kad_key(&key));
    let mut running: Vec<(libp2p::kad::KBucketDistance, bool)> = nodes
        .iter()
        .zip(held)
        .filter_map(|(node, held)| {
            let distance = libp2p::kad::KBucketKey::from(node.peer_id()).distance(&target);
            held.map(|held| (distance, held))
        })
        .collect();
    running.sort_by_key(|(distance, _)| *distance);
    running
        .iter()
        .enumerate()
        .filter(|(_, (_, held))| *held)
        .map(|(rank, _)| rank + 1)
        .collect()
}

/// Misses each querier describes in full (the others are counted, not
/// listed).
const MISSES_DESCRIBED: usize = 4;

struct Lookup {
    ok: bool,
    timed_out: bool,
    latency: Duration,
    /// Requests the whole `discover` sent: its provider walk, the shared-key
    /// lookup and the creator-key reads.
    requests: Option<f64>,
    /// Requests per record lookup of it (the shared key's and each
    /// creator-key read; the figure reported until the tenth session).
    record_requests: Option<f64>,
    /// Requests of its provider walk.
    provider_requests: Option<f64>,
    /// For a lookup that failed: the resource, how many servers
    /// acknowledged its announce, how many nodes hold it under the shared
    /// key, the error, and whether the same lookup and one pinned to its
    /// creator (`Node::discover_from`, skipping the provider records) found
    /// it right after.
    miss: Option<Value>,
}

/// `lookups` lookups of random resources (never by their announcer), spread
/// over `queriers`, each querier sequential.
#[allow(clippy::too_many_arguments)]
async fn lookups(
    nodes: &[Node],
    queriers: &[usize],
    announced: &[(usize, String)],
    stored_by: &[usize],
    count: usize,
    rng: &mut Rng,
) -> Vec<Lookup> {
    let s = scale();
    let phase = Instant::now();
    // The plan: per querier, a list of resources.
    let mut plan: Vec<Vec<usize>> = vec![Vec::new(); queriers.len()];
    for k in 0..count {
        let q = k % queriers.len();
        let resource = loop {
            let r = rng.below(announced.len());
            if announced[r].0 != queriers[q] || announced.len() == 1 {
                break r;
            }
        };
        plan[q].push(resource);
    }
    let runs = queriers.iter().zip(plan).map(|(&q, resources)| {
        let node = &nodes[q];
        async move {
            let mut out = Vec::with_capacity(resources.len());
            // Misses described per querier (each costs two more lookups and
            // a question to every node).
            let mut described = 0;
            for r in resources {
                if phase.elapsed() > s.lookup_phase_budget {
                    break;
                }
                let (announcer, id) = &announced[r];
                let creator = nodes[*announcer].peer_id();
                let before = lookup_totals(node).await;
                let started = Instant::now();
                let found = node
                    .discover(&rtype(RESOURCE_TYPE), &rid(id), s.lookup_timeout)
                    .await;
                let latency = started.elapsed();
                let after = lookup_totals(node).await;
                let (requests, record_requests, provider_requests) = match (before, after) {
                    (Some(b), Some(a)) if a.records.0 > b.records.0 => {
                        let records = a.records.1 - b.records.1;
                        let providers = a.providers.1 - b.providers.1;
                        (
                            Some((records + providers) as f64),
                            Some(records as f64 / (a.records.0 - b.records.0) as f64),
                            (a.providers.0 > b.providers.0).then_some(providers as f64),
                        )
                    }
                    _ => (None, None, None),
                };
                let timed_out = matches!(found, Err(p2p_core::ResourceError::Timeout));
                let error = match &found {
                    Ok(rec) if rec.creator == creator => None,
                    Ok(_) => Some("another creator's record".to_string()),
                    Err(e) => Some(e.to_string()),
                };
                let forget = || node.forget(&rtype(RESOURCE_TYPE), &rid(id), creator);
                forget();
                let miss = match error {
                    None => None,
                    Some(error) if described == MISSES_DESCRIBED => Some(json!({"error": error})),
                    Some(error) => {
                        described += 1;
                        let retry = node
                            .discover(&rtype(RESOURCE_TYPE), &rid(id), s.lookup_timeout)
                            .await;
                        forget();
                        let pinned = node
                            .discover_from(
                                &rtype(RESOURCE_TYPE),
                                &rid(id),
                                creator,
                                s.lookup_timeout,
                            )
                            .await;
                        forget();
                        // Nodes whose store holds the record under the
                        // shared key (where the provider records are too),
                        // and where they rank among the running nodes by
                        // distance to that key (1 = closest).
                        let held: Vec<Option<bool>> = futures::stream::iter(nodes)
                            .map(|n| async move {
                                if !n.is_running() {
                                    return None;
                                }
                                n.stores_record(&rtype(RESOURCE_TYPE), &rid(id)).await.ok()
                            })
                            .buffered(64)
                            .collect()
                            .await;
                        let holders = held.iter().filter(|h| **h == Some(true)).count();
                        let holder_ranks = holder_ranks(nodes, &held, id);
                        Some(json!({
                            "resource": id,
                            "stored_by": stored_by[r],
                            "shared_key_holders": holders,
                            "holder_ranks": holder_ranks,
                            "error": error,
                            "found_on_retry": retry.is_ok_and(|rec| rec.creator == creator),
                            "found_from_creator_after": pinned.is_ok(),
                        }))
                    }
                };
                out.push(Lookup {
                    ok: miss.is_none(),
                    timed_out,
                    latency,
                    requests,
                    record_requests,
                    provider_requests,
                    miss,
                });
            }
            out
        }
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn lookup_report(results: &[Lookup], planned: usize, wall: Duration) -> Value {
    let n = results.len();
    let ok = results.iter().filter(|l| l.ok).count();
    let latency: Vec<f64> = results
        .iter()
        .filter(|l| l.ok)
        .map(|l| ms(l.latency))
        .collect();
    let requests: Vec<f64> = results.iter().filter_map(|l| l.requests).collect();
    let record_requests: Vec<f64> = results.iter().filter_map(|l| l.record_requests).collect();
    let provider_requests: Vec<f64> = results.iter().filter_map(|l| l.provider_requests).collect();
    json!({
        "lookups": n,
        "not_run": planned - n,
        "succeeded": ok,
        "success_rate": if n == 0 { 0.0 } else { (ok as f64 / n as f64 * 1e4).round() / 1e4 },
        "timed_out": results.iter().filter(|l| l.timed_out).count(),
        "latency_ms_of_successes": summary(latency),
        "requests_per_lookup": summary(requests.clone()),
        "requests_per_record_lookup": summary(record_requests),
        "requests_per_provider_lookup": summary(provider_requests),
        "lookups_with_request_count": requests.len(),
        "lookups_with_zero_requests": requests.iter().filter(|&&r| r == 0.0).count(),
        "misses": results.iter().filter_map(|l| l.miss.clone()).filter(|m| m.get("resource").is_some()).collect::<Vec<_>>(),
        "wall_s": round2(wall.as_secs_f64()),
    })
}

async fn network(n: usize) {
    let s = scale();
    let child_started = Instant::now();
    let t = || round2(child_started.elapsed().as_secs_f64());
    let mut rng = Rng(0x00d7_5ca1e ^ n as u64);
    let baseline = proc_status();
    let stop_count = n * 3 / 10;
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let stopped: Vec<usize> = order[..stop_count].to_vec();
    let queriers: Vec<usize> = order[stop_count..]
        .iter()
        .copied()
        .take(s.queriers)
        .collect();

    // 1. Start the nodes.
    let started = Instant::now();
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        nodes.push(start_node().await);
        if (i + 1) % 200 == 0 {
            eprintln!("  {} nodes started", i + 1);
        }
    }
    let start_time = started.elapsed();
    let mut addrs = Vec::with_capacity(n);
    for node in &nodes {
        addrs.push(dial_addr(node).await);
    }
    let started_status = proc_status();
    emit(json!({
        "phase": "started",
        "t_started_s": t(),
        "start_nodes_ms": ms(start_time),
        "queriers": queriers.len(),
        "rss_baseline": baseline,
        "rss_nodes_started_not_connected": started_status,
    }));

    // 2. Every node dials a few random earlier nodes.
    let mut dials = Vec::new();
    for i in 1..n {
        let mut earlier: Vec<usize> = (0..i).collect();
        rng.shuffle(&mut earlier);
        for &j in earlier.iter().take(s.dials_per_node) {
            dials.push((i, j));
        }
    }
    let dial_count = dials.len();
    let up_started = Instant::now();
    // Progress on stderr every 15 s while the dials run: dials done, and the
    // connections of a sample of nodes (the limits are 256 in all, 128 out).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sample: Vec<Node> = nodes.iter().step_by((n / 16).max(1)).cloned().collect();
    let progress = tokio::spawn({
        let done = std::sync::Arc::clone(&done);
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let (mut connections, mut checks) = (Vec::new(), 0);
                for node in &sample {
                    let stats = node.stats().await.ok();
                    connections.push(stats.as_ref().map_or(0, |s| s.connections));
                    checks += stats.map_or(0, |s| s.dht.contact_checks);
                }
                connections.sort_unstable();
                eprintln!(
                    "  {:>4.0} s: {} dials done; sampled connections per node {:?}, contact checks {checks}; cpu {:.0} s",
                    up_started.elapsed().as_secs_f64(),
                    done.load(std::sync::atomic::Ordering::Relaxed),
                    connections,
                    cpu_seconds()
                );
            }
        }
    });
    let dial_results: Vec<bool> = futures::stream::iter(dials)
        .map(|(i, j)| {
            let node = nodes[i].clone();
            let addr = addrs[j].clone();
            let done = std::sync::Arc::clone(&done);
            async move {
                let ok = matches!(
                    tokio::time::timeout(Duration::from_secs(30), node.connect(addr)).await,
                    Ok(Ok(_))
                );
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ok
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    progress.abort();
    let dials_done = up_started.elapsed();
    let dial_failures = dial_results.iter().filter(|ok| !**ok).count();
    let target = 20.min(n - 1);
    let mut up = None;
    let mut sizes;
    loop {
        sizes = table_sizes(&nodes).await;
        if sizes.iter().all(|&x| x >= target) {
            up = Some(up_started.elapsed());
            break;
        }
        if up_started.elapsed() > s.up_wait {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "  network up: {:?} (dials {:?}, {dial_failures} failed)",
        up, dials_done
    );
    tokio::time::sleep(s.settle).await;
    let up_status = proc_status();
    let per_node_kb =
        (up_status["rss_kb"].as_f64().unwrap() - baseline["rss_kb"].as_f64().unwrap()) / n as f64;
    let connections: Vec<usize> = futures::stream::iter(&nodes)
        .map(|n| async move { n.stats().await.map(|s| s.connections).unwrap_or(0) })
        .buffered(64)
        .collect()
        .await;
    // Upkeep: CPU of the network left alone (pings, yamux, timers, kad's
    // periodic work), in cores, and per connection end.
    let idle = env_u64("LOTUS_DHT_IDLE_S").map_or(s.idle, Duration::from_secs);
    let cpu_before = cpu_seconds();
    tokio::time::sleep(idle).await;
    let idle_cores = (cpu_seconds() - cpu_before) / idle.as_secs_f64();
    let connection_ends: usize = connections.iter().sum();
    emit(json!({
        "phase": "up",
        "closed_for_room_up": closed_for_room(&nodes, &queriers).await,
        "idle_cpu_cores": round2(idle_cores),
        "idle_cpu_us_per_connection_end_per_s":
            round2(idle_cores * 1e6 / connection_ends.max(1) as f64),
        "t_up_s": t(),
        "keep_idle": keep_idle(),
        "query_timeout_s": env_u64("LOTUS_DHT_QUERY_TIMEOUT_S"),
        "disjoint": env_u64("LOTUS_DHT_DISJOINT"),
        "provider_answers": env_u64("LOTUS_DHT_PROVIDER_ANSWERS"),
        "provider_closest": env_u64("LOTUS_DHT_PROVIDER_CLOSEST"),
        "parallelism": env_u64("LOTUS_DHT_PARALLELISM"),
        "refresh_s": env_u64("LOTUS_DHT_REFRESH_S"),
        "check_after_s": env_u64("LOTUS_DHT_CHECK_AFTER_S"),
        "ping_s": env_u64("LOTUS_DHT_PING_S"),
        "dials": dial_count,
        "dial_failures": dial_failures,
        "dials_done_ms": ms(dials_done),
        "table_target": target,
        "network_up_ms": up.map(ms),
        "network_up_bound_s": s.up_wait.as_secs(),
        "tables_when_up": usize_summary(&sizes),
        "tables_below_target": sizes.iter().filter(|&&x| x < target).count(),
        "connections_per_node": usize_summary(&connections),
        "rss_up": up_status,
        "memory_per_node_kb": per_node_kb.round(),
        "memory_per_node_mb": round2(per_node_kb * 1024.0 / 1e6),
    }));

    // 3. Announce resources from random nodes.
    let announce_started = Instant::now();
    let plan: Vec<(usize, String)> = (0..s.resources)
        .map(|r| (rng.below(n), format!("r{r}")))
        .collect();
    let outcomes: Vec<(Option<usize>, f64)> = futures::stream::iter(plan.iter().cloned())
        .map(|(i, id)| {
            let node = nodes[i].clone();
            async move {
                let data = format!("{{\"r\":\"{id}\"}}");
                let started = Instant::now();
                let outcome = match tokio::time::timeout(
                    Duration::from_secs(30),
                    node.announce(
                        &rtype(RESOURCE_TYPE),
                        &rid(&id),
                        data,
                        AnnounceOptions::default(),
                    ),
                )
                .await
                {
                    Ok(Ok(a)) => Some(a.stored_by),
                    _ => None,
                };
                (outcome, ms(started.elapsed()))
            }
        })
        .buffered(16)
        .collect()
        .await;
    let announce_ms: Vec<f64> = outcomes.iter().map(|(_, t)| *t).collect();
    let unacknowledged_ms: Vec<f64> = outcomes
        .iter()
        .filter(|(o, _)| *o == Some(0))
        .map(|(_, t)| *t)
        .collect();
    let outcomes: Vec<Option<usize>> = outcomes.into_iter().map(|(o, _)| o).collect();
    // Refusals the whole network counted since it started, announcing
    // included (a put refused by rate or quota shows here).
    let rejected = futures::stream::iter(&nodes)
        .map(|n| async move {
            n.stats()
                .await
                .map(|s| s.messages.rejected)
                .unwrap_or_default()
        })
        .buffered(64)
        .fold(
            std::collections::BTreeMap::new(),
            |mut all, one| async move {
                for (reason, count) in one {
                    *all.entry(format!("{reason:?}")).or_insert(0u64) += count;
                }
                all
            },
        )
        .await;
    let announce_wall = announce_started.elapsed();
    let announced: Vec<(usize, String)> = plan
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.is_some())
        .map(|(p, _)| p.clone())
        .collect();
    // Servers that acknowledged each announced resource's put.
    let stored_by: Vec<usize> = outcomes.iter().flatten().copied().collect();
    emit(json!({
        "phase": "announced",
        "t_announced_s": t(),
        "announce": {
            "resources": s.resources,
            "announced": announced.len(),
            "stored_by": usize_summary(&stored_by),
            "wall_s": round2(announce_wall.as_secs_f64()),
            "announce_ms": summary(announce_ms),
            "unacknowledged_announce_ms": summary(unacknowledged_ms),
            "rejections_in_network": rejected,
        },
    }));
    assert!(!announced.is_empty(), "no resource could be announced");

    // 4. Lookups.
    let wall = Instant::now();
    let before = lookups(
        &nodes, &queriers, &announced, &stored_by, s.lookups, &mut rng,
    )
    .await;
    let before = lookup_report(&before, s.lookups, wall.elapsed());
    let after_lookups = proc_status();
    let per_node_after_kb = (after_lookups["rss_kb"].as_f64().unwrap()
        - baseline["rss_kb"].as_f64().unwrap())
        / n as f64;
    eprintln!("  before churn: {before}");
    emit(json!({
        "phase": "before_churn",
        "t_before_churn_s": t(),
        "before_churn": before,
        "closed_for_room_before_churn": closed_for_room(&nodes, &queriers).await,
        "rss_after_lookups": after_lookups,
        "memory_per_node_mb_after_lookups": round2(per_node_after_kb * 1024.0 / 1e6),
        "requests_per_lookup_source": "the change in Node::stats().dht.record_lookups and provider_lookups of the querier over one discover (kad QueryStats::num_requests of its finished get-record and get-providers queries); requests_per_record_lookup: the record lookups' requests over their number",
    }));

    // 5. Churn: stop 30 % (never a querier), then the same lookups at once.
    let stop_started = Instant::now();
    futures::future::join_all(stopped.iter().map(|&i| {
        let node = nodes[i].clone();
        async move {
            let _ = tokio::time::timeout(Duration::from_secs(30), node.stop()).await;
        }
    }))
    .await;
    let stop_time = stop_started.elapsed();
    let announcers_stopped = announced
        .iter()
        .filter(|(a, _)| stopped.contains(a))
        .count();
    let wall = Instant::now();
    let after = lookups(
        &nodes, &queriers, &announced, &stored_by, s.lookups, &mut rng,
    )
    .await;
    let after = lookup_report(&after, s.lookups, wall.elapsed());
    eprintln!("  after churn: {after}");
    emit(json!({
        "phase": "after_churn",
        "t_after_churn_s": t(),
        "stopped": stop_count,
        "stop_ms": ms(stop_time),
        "resources_whose_announcer_stopped": announcers_stopped,
        "after_churn": after,
        "closed_for_room_after_churn": closed_for_room(&nodes, &queriers).await,
    }));
    let cpu = cpu_seconds();
    // All at once: one by one, each stop's 2 s grace for its connections
    // added up to minutes at 1 000 nodes.
    futures::future::join_all(
        nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !stopped.contains(i))
            .map(|(_, node)| tokio::time::timeout(Duration::from_secs(30), node.stop())),
    )
    .await;
    emit(json!({"phase": "done", "t_done_s": t(), "child_cpu_s": cpu, "final": proc_status()}));
}

// ------------------------------------------------------------------ plot

/// Two panels against network size (log scale): success rate before and
/// after churn, and lookup latency p50/p99 (log scale).
fn plot(results: &[Value]) -> String {
    let (w, h) = (860.0, 360.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{w}" height="{h}" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="14">lotus-p2p DHT at scale: N memory-transport DHT servers in one process (issue 13 §3)</text>"#,
        w / 2.0
    );
    let sizes: Vec<f64> = results.iter().filter_map(|r| r["nodes"].as_f64()).collect();
    let (xmin, xmax) = (
        sizes.iter().copied().fold(f64::MAX, f64::min).min(10.0),
        sizes.iter().copied().fold(0.0, f64::max).max(1000.0),
    );
    let series = |phase: &str, field: &dyn Fn(&Value) -> Option<f64>| -> Vec<(f64, f64)> {
        results
            .iter()
            .filter_map(|r| Some((r["nodes"].as_f64()?, field(&r[phase])?)))
            .collect()
    };
    let rate = |v: &Value| v["success_rate"].as_f64().map(|x| x * 100.0);
    let p50 = |v: &Value| v["latency_ms_of_successes"]["median"].as_f64();
    let p99 = |v: &Value| v["latency_ms_of_successes"]["p99"].as_f64();
    let success = [
        ("before churn", "#1f77b4", "", series("before_churn", &rate)),
        (
            "after 30 % stopped",
            "#d62728",
            "5,3",
            series("after_churn", &rate),
        ),
    ];
    let mut ymin_rate = 90.0_f64;
    for (_, _, _, s) in &success {
        for &(_, y) in s {
            ymin_rate = ymin_rate.min((y / 10.0).floor() * 10.0);
        }
    }
    panel(
        &mut svg,
        60.0,
        "lookups that succeeded (%)",
        (xmin, xmax),
        (ymin_rate, 100.0),
        false,
        &success,
    );
    let latency = [
        (
            "p50 before churn",
            "#1f77b4",
            "",
            series("before_churn", &p50),
        ),
        (
            "p99 before churn",
            "#1f77b4",
            "2,2",
            series("before_churn", &p99),
        ),
        (
            "p50 after churn",
            "#d62728",
            "",
            series("after_churn", &p50),
        ),
        (
            "p99 after churn",
            "#d62728",
            "2,2",
            series("after_churn", &p99),
        ),
    ];
    let all: Vec<f64> = latency
        .iter()
        .flat_map(|(_, _, _, s)| s.iter().map(|p| p.1))
        .filter(|y| *y > 0.0)
        .collect();
    let lo = all.iter().copied().fold(f64::MAX, f64::min);
    let hi = all.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if all.is_empty() {
        (0.1, 1000.0)
    } else {
        (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)),
        )
    };
    panel(
        &mut svg,
        480.0,
        "lookup latency (ms, log scale)",
        (xmin, xmax),
        (lo, hi),
        true,
        &latency,
    );
    let _ = writeln!(svg, "</svg>");
    svg
}

type Series<'a> = (&'a str, &'a str, &'a str, Vec<(f64, f64)>);

fn panel(
    svg: &mut String,
    left: f64,
    title: &str,
    (xmin, xmax): (f64, f64),
    (ymin, ymax): (f64, f64),
    log_y: bool,
    series: &[Series<'_>],
) {
    let (top, pw, ph) = (50.0, 340.0, 230.0);
    let x = |v: f64| left + (v.log10() - xmin.log10()) / (xmax.log10() - xmin.log10()) * pw;
    let y = |v: f64| {
        let f = if log_y {
            (v.max(ymin).log10() - ymin.log10()) / (ymax.log10() - ymin.log10())
        } else {
            (v - ymin) / (ymax - ymin)
        };
        top + ph - f.clamp(0.0, 1.0) * ph
    };
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle">{title}</text><rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##,
        left + pw / 2.0,
        top - 8.0
    );
    // x ticks: decades and the measured sizes.
    let mut ticks: Vec<f64> = vec![10.0, 100.0, 1000.0];
    ticks.retain(|t| *t >= xmin && *t <= xmax);
    for t in ticks {
        let _ = writeln!(
            svg,
            r##"<line x1="{0}" x2="{0}" y1="{top}" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" text-anchor="middle">{t}</text>"##,
            x(t),
            top + ph,
            top + ph + 16.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">nodes in the network (log scale)</text>"#,
        left + pw / 2.0,
        top + ph + 34.0
    );
    let yticks: Vec<f64> = if log_y {
        let mut v = Vec::new();
        let mut t = ymin;
        while t <= ymax * 1.0001 {
            v.push(t);
            t *= 10.0;
        }
        v
    } else {
        (0..=4)
            .map(|i| ymin + (ymax - ymin) * i as f64 / 4.0)
            .collect()
    };
    for t in yticks {
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{0}" y1="{1}" y2="{1}" stroke="#ddd"/><text x="{2}" y="{3}" text-anchor="end">{4}</text>"##,
            left + pw,
            y(t),
            left - 4.0,
            y(t) + 4.0,
            if log_y {
                format!("{t}")
            } else {
                format!("{t:.1}")
            }
        );
    }
    for (k, (name, color, dash, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        if !path.is_empty() {
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
                path.join(" ")
            );
        }
        for &(px, py) in points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{name}: {py} at {px} nodes</title></circle>"#,
                x(px),
                y(py)
            );
        }
        let ly = top + ph + 50.0 + (k / 2) as f64 * 14.0;
        let lx = left + (k % 2) as f64 * 170.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" x2="{}" y1="{}" y2="{}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{}" y="{ly}">{name}</text>"#,
            lx + 20.0,
            ly - 4.0,
            ly - 4.0,
            lx + 24.0
        );
    }
}
