//! Hardening under load (a plain binary; one JSON line per scenario on stdout).
//!
//! - `flood`: one victim with the default limits; 4 honest peers send signed
//!   messages at 50/s each while 20 attackers try to send valid unsigned
//!   direct messages at 2 000/s each (10× the per-peer limit). Reports honest
//!   delivery, what the attackers got through, the victim's event-loop lag
//!   (round trip of a stats request every 20 ms) and process RSS.
//! - `churn`: 50 memory-transport DHT servers, each announcing one resource
//!   (TTL 40 s, republished by its owner at half the TTL; stored records
//!   replicated every 10 s); 15 (30 %) are stopped; every survivor looks up
//!   a third of the resources, the dead nodes' included. Replication (how
//!   many live nodes store each record) is counted at announce, right after
//!   the stop, and again after the republish and a replication run.
//!
//! Run: `cargo bench -p p2p-core --bench hardening [-- flood|churn]`.
//! `LOTUS_BENCH_QUICK=1` (see `support::quick`) runs both with the smaller
//! numbers of [`QUICK`]: a smoke test that they complete, not a measurement.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use p2p_core::{
    AnnounceOptions, DhtConfig, DhtModeSetting, HandlerError, Message, Node, PeerId,
    ProtocolHandler, ProtocolName, TransportKind,
};
use serde_json::{Value, json};
use support::{rid, rss_kb, rtype, summary};

const HONEST: usize = 4;
const HONEST_RATE: u64 = 50;
const ATTACK_RATE: u64 = 2_000;
const DRAIN: Duration = Duration::from_secs(10);
const CHURN_PUT_EVERY: Duration = Duration::from_millis(50);

/// The sizes and durations of the scenarios.
struct Scale {
    attackers: usize,
    /// How long the flood runs.
    run: Duration,
    /// DHT servers in the churn scenario, and how many of them are stopped.
    nodes: usize,
    killed: usize,
    churn_ttl: Duration,
    churn_replication: Duration,
    /// Waited past the republish and half a replication interval.
    churn_slack: Duration,
}

const FULL: Scale = Scale {
    attackers: 20,
    run: Duration::from_secs(10),
    nodes: 50,
    killed: 15,
    churn_ttl: Duration::from_secs(40),
    churn_replication: Duration::from_secs(10),
    churn_slack: Duration::from_secs(2),
};

/// Quick mode: the same shapes, smaller and shorter.
const QUICK: Scale = Scale {
    attackers: 4,
    run: Duration::from_secs(1),
    nodes: 15,
    killed: 4,
    churn_ttl: Duration::from_secs(6),
    churn_replication: Duration::from_secs(2),
    churn_slack: Duration::from_millis(500),
};

fn scale() -> &'static Scale {
    support::pick(&FULL, &QUICK)
}

fn main() {
    let run = support::scenarios();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if run("flood") {
        // The baseline: the same honest load with nobody attacking.
        println!("{}", rt.block_on(flood(0)));
        println!("{}", rt.block_on(flood(scale().attackers)));
    }
    if run("churn") {
        println!("{}", rt.block_on(churn()));
    }
}

/// Accepts unsigned direct messages, as a high-rate protocol would.
struct Bulk;

#[async_trait::async_trait]
impl ProtocolHandler for Bulk {
    fn name(&self) -> ProtocolName {
        "bulk".parse().unwrap()
    }

    fn accepts_unsigned_direct(&self) -> bool {
        true
    }

    async fn handle_message(&self, _: Arc<Message>, _: PeerId) -> Result<(), HandlerError> {
        Ok(())
    }
}

async fn tcp_node() -> Node {
    // The defaults under test.
    support::tcp_client(p2p_core::RateLimits::default()).await
}

async fn dial_addr(node: &Node) -> p2p_core::Multiaddr {
    let addr = node.listen_addrs().await.unwrap().remove(0);
    addr.with_p2p(node.peer_id()).unwrap()
}

/// Sends at `rate` per second until `stop`; returns how many were sent.
async fn pace(rate: u64, stop: Arc<AtomicBool>, mut send: impl AsyncFnMut(u64) -> bool) -> u64 {
    let started = Instant::now();
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        if !send(sent).await {
            break;
        }
        sent += 1;
    }
    sent
}

async fn flood(attackers_n: usize) -> Value {
    eprintln!("flood: starting {} nodes…", 1 + HONEST + attackers_n);
    let victim = tcp_node().await;
    victim.register_handler(Arc::new(Bulk)).unwrap();
    let target = dial_addr(&victim).await;
    let mut honest = Vec::new();
    let mut attackers = Vec::new();
    for i in 0..HONEST + attackers_n {
        let node = tcp_node().await;
        node.connect(target.clone()).await.unwrap();
        if i < HONEST {
            honest.push(node);
        } else {
            attackers.push(node);
        }
    }
    let rss_before = rss_kb();
    let stop = Arc::new(AtomicBool::new(false));
    let victim_id = victim.peer_id();

    // Event-loop lag probe.
    let lags = tokio::spawn({
        let (victim, stop) = (victim.clone(), Arc::clone(&stop));
        async move {
            let mut lags = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                victim.stats().await.unwrap();
                lags.push(asked.elapsed().as_secs_f64() * 1e3);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            lags
        }
    });
    let rss_peak = Arc::new(AtomicU64::new(rss_before));
    let sampler = tokio::spawn({
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&rss_peak));
        async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let run = scale().run;
    eprintln!("flood: running {run:?}…");
    let started = Instant::now();
    let honest_tasks: Vec<_> = honest
        .iter()
        .map(|node| {
            let (node, stop) = (node.clone(), Arc::clone(&stop));
            tokio::spawn(pace(HONEST_RATE, stop, async move |n| {
                let m = node
                    .sign(
                        node.message("chat".parse().unwrap())
                            .payload(format!("[{n}]").into_bytes()),
                    )
                    .unwrap();
                node.send(victim_id, &m).await.is_ok()
            }))
        })
        .collect();
    let attack_tasks: Vec<_> = attackers
        .iter()
        .map(|node| {
            let (node, stop) = (node.clone(), Arc::clone(&stop));
            tokio::spawn(pace(ATTACK_RATE, stop, async move |n| {
                let m = node
                    .message("flood".parse().unwrap())
                    .to(victim_id)
                    .protocol("bulk".parse().unwrap())
                    .payload(format!("[{n}]").into_bytes())
                    .build();
                node.send(victim_id, &m).await.is_ok()
            }))
        })
        .collect();
    tokio::time::sleep(run).await;
    stop.store(true, Ordering::Relaxed);
    let mut honest_sent = 0;
    for t in honest_tasks {
        honest_sent += t.await.unwrap();
    }
    let honest_s = started.elapsed().as_secs_f64();
    let mut attack_sent = 0;
    for t in attack_tasks {
        attack_sent += t.await.unwrap();
    }
    let sending_s = started.elapsed().as_secs_f64();
    let lags = lags.await.unwrap();
    sampler.await.unwrap();
    // Let what was written drain, bounded.
    let received = |nodes: &[Node]| -> u64 {
        nodes
            .iter()
            .map(|n| victim.peer_message_stats(&n.peer_id()).received)
            .sum()
    };
    let deadline = Instant::now() + DRAIN;
    while received(&honest) < honest_sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let honest_received = received(&honest);
    let attack_received = received(&attackers);
    let stats = victim.stats().await.unwrap();
    json!({
        "scenario": if attackers_n == 0 { "flood-baseline" } else { "flood" },
        "honest_peers": HONEST,
        "honest_rate_each": HONEST_RATE,
        "honest_rate_each_achieved": (honest_received as f64 / HONEST as f64 / honest_s * 10.0).round() / 10.0,
        "attackers": attackers_n,
        "attack_rate_each_offered": ATTACK_RATE,
        "sending_s": (sending_s * 100.0).round() / 100.0,
        "honest_sent": honest_sent,
        "honest_received": honest_received,
        "honest_delivery": (honest_received as f64 / honest_sent.max(1) as f64 * 1e4).round() / 1e4,
        "attack_sent": attack_sent,
        "attack_received": attack_received,
        "attack_received_per_s": (attack_received as f64 / sending_s).round(),
        "victim_rejections": stats.messages.rejected_total(),
        "victim_banned": stats.banned_peers,
        "event_loop_lag_ms": summary(lags),
        "process_rss_kb_before_peak": [rss_before, rss_peak.load(Ordering::Relaxed)],
    })
}

/// How many of `nodes` store each of `resources` (their replication).
async fn replicas(nodes: &[&Node], resources: &[usize]) -> Vec<f64> {
    let mut counts = Vec::new();
    for r in resources {
        let mut count = 0;
        for node in nodes {
            if node
                .stores_record(&rtype("churn"), &rid(format!("r{r}")))
                .await
                .unwrap()
            {
                count += 1;
            }
        }
        counts.push(f64::from(count));
    }
    counts
}

async fn churn() -> Value {
    let Scale {
        nodes: nodes_n,
        killed: killed_n,
        churn_ttl,
        churn_replication,
        churn_slack,
        ..
    } = *scale();
    eprintln!("churn: {nodes_n} nodes…");
    let memory_node = || async {
        let node = Node::builder()
            .transport(TransportKind::Memory)
            .listen("/memory/0".parse().unwrap())
            .dht({
                let mut c = DhtConfig::default();
                c.mode = DhtModeSetting::Server;
                // Stored records are re-put to the closest peers this often
                // (10 min by default): the repair of a dead owner's records.
                c.record_replication_interval = churn_replication;
                c
            })
            // Replication 60× faster than the default needs puts per peer
            // allowed 60× faster too (one per 3 s by default).
            .rate_limits({
                let mut c = p2p_core::RateLimits::default();
                c.peer_dht_puts = Some((CHURN_PUT_EVERY, 20));
                c
            })
            .build()
            .unwrap();
        node.start().await.unwrap();
        node
    };
    let hub = memory_node().await;
    let hub_addr = dial_addr(&hub).await;
    let mut nodes = vec![hub];
    for _ in 1..nodes_n {
        let node = memory_node().await;
        node.connect(hub_addr.clone()).await.unwrap();
        nodes.push(node);
    }
    // Let the tables fill (bounded), then everyone announces.
    let deadline = Instant::now() + Duration::from_secs(20);
    for node in &nodes {
        while node.stats().await.unwrap().dht.routing_table_size < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Owners republish at half the TTL.
    let options = {
        let mut c = AnnounceOptions::default();
        c.ttl = Some(churn_ttl);
        c.republish = true;
        c
    };
    let announced = Instant::now();
    let mut stored_by = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let a = node
            .announce(&rtype("churn"), &rid(format!("r{i}")), "{}", options)
            .await
            .unwrap();
        stored_by.push(a.stored_by as f64);
    }
    let all: Vec<usize> = (0..nodes_n).collect();
    let everyone: Vec<&Node> = nodes.iter().collect();
    let at_announce = replicas(&everyone, &all).await;
    // Stop 30 %, chosen by a fixed stride (not the hub's neighbours only).
    let killed: Vec<usize> = (0..killed_n).map(|k| 1 + k * 3).collect();
    for &k in &killed {
        nodes[k].stop().await.unwrap();
    }
    eprintln!("churn: {} stopped, looking up…", killed.len());
    let alive: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| !killed.contains(i))
        .collect();
    let survivors: Vec<&Node> = alive.iter().map(|&i| &nodes[i]).collect();
    let after_kill = (
        replicas(&survivors, &alive).await,
        replicas(&survivors, &killed).await,
    );
    let started = Instant::now();
    let (mut found, mut missed, mut lookups) = (0u64, 0u64, Vec::new());
    for (s, node) in survivors.iter().enumerate() {
        // Each survivor looks up a different third of the resources (a full
        // cross product of 35 × 50 lookups adds nothing but time).
        for r in (s % 3..nodes_n).step_by(3) {
            let asked = Instant::now();
            match node
                .discover(
                    &rtype("churn"),
                    &rid(format!("r{r}")),
                    Duration::from_secs(10),
                )
                .await
            {
                Ok(_) => found += 1,
                Err(_) => missed += 1,
            }
            lookups.push(asked.elapsed().as_secs_f64() * 1e3);
        }
    }
    let lookup_phase_s = started.elapsed().as_secs_f64();
    // Past the owners' republish (half the TTL) and a replication run, but
    // before the dead owners' records expire.
    let repaired_at = announced + churn_ttl / 2 + churn_replication / 2 + churn_slack;
    eprintln!("churn: waiting for republish and replication…");
    tokio::time::sleep_until(repaired_at.into()).await;
    let after_repair = (
        replicas(&survivors, &alive).await,
        replicas(&survivors, &killed).await,
    );
    let stats: Vec<_> = {
        let mut all = Vec::new();
        for node in &survivors {
            all.push(node.stats().await.unwrap());
        }
        all
    };
    let mut rejected = std::collections::BTreeMap::new();
    for s in &stats {
        for (reason, n) in &s.messages.rejected {
            *rejected.entry(reason.as_str()).or_insert(0u64) += n;
        }
    }
    json!({
        "scenario": "churn",
        "nodes": nodes_n,
        "stopped": killed.len(),
        "record_ttl_s": churn_ttl.as_secs(),
        "replication_interval_s": churn_replication.as_secs(),
        "dht_put_every_ms": CHURN_PUT_EVERY.as_millis(),
        "stored_by_at_announce": summary(stored_by),
        "replicas_at_announce": summary(at_announce),
        "replicas_after_stop": {
            "owner_alive": summary(after_kill.0),
            "owner_stopped": summary(after_kill.1),
        },
        "replicas_after_republish": {
            "owner_alive": summary(after_repair.0),
            "owner_stopped": summary(after_repair.1),
        },
        "seconds_after_announce": (repaired_at - announced).as_secs(),
        "lookups": found + missed,
        "found": found,
        "missed": missed,
        "found_ratio": (found as f64 / (found + missed).max(1) as f64 * 1e4).round() / 1e4,
        "lookup_ms": summary(lookups),
        "lookup_phase_s": (lookup_phase_s * 100.0).round() / 100.0,
        "survivor_rejections": rejected,
    })
}
