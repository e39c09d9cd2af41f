//! What the scenario benches share: the quick switch, percentile summaries
//! and RSS readings.
#![allow(dead_code)]

use std::sync::OnceLock;

use p2p_core::{DhtConfig, DhtModeSetting, Node, RateLimits};
use serde_json::{Value, json};

/// The environment variable that turns every scenario bench into its quick
/// (smoke) mode: `LOTUS_BENCH_QUICK=1` (any value but empty or `0`). Quick
/// mode runs every scenario with counts and durations cut so that each takes
/// seconds: it shows the scenario still completes (a failure panics, so the
/// process exits non-zero); its figures mean nothing. It is inherited by the
/// child processes a bench starts.
pub(crate) const QUICK_ENV: &str = "LOTUS_BENCH_QUICK";

/// True in quick mode. The one place [`QUICK_ENV`] is read.
pub(crate) fn quick() -> bool {
    static QUICK: OnceLock<bool> = OnceLock::new();
    *QUICK.get_or_init(|| std::env::var(QUICK_ENV).is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// `full` normally, `quick` in quick mode.
pub(crate) fn pick<T>(full: T, quick: T) -> T {
    if self::quick() { quick } else { full }
}

/// A started DHT-client node on TCP loopback (port 0) with `limits`.
pub(crate) async fn tcp_client(limits: RateLimits) -> Node {
    let node = Node::builder()
        .rate_limits(limits)
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .dht({
            let mut c = DhtConfig::default();
            c.mode = DhtModeSetting::Client;
            c
        })
        .build()
        .unwrap();
    node.start().await.unwrap();
    node
}

/// Median (lower of the two middle values), p90, p99 (nearest rank), min, max.
pub(crate) fn summary(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let rank = |p: f64| v[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
    json!({
        "median": rank(50.0),
        "p90": rank(90.0),
        "p99": rank(99.0),
        "min": v[0],
        "max": v[n - 1],
        "mean": (v.iter().sum::<f64>() / n as f64 * 1e3).round() / 1e3,
    })
}

/// The scenarios named on the command line (flags ignored); all when none is.
pub(crate) fn scenarios() -> impl Fn(&str) -> bool {
    let selected: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    move |name: &str| selected.is_empty() || selected.iter().any(|s| s == name)
}

/// VmRSS of this process, kB.
pub(crate) fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Reads a child process's stdout on a thread of its own: JSON lines (the
/// scenario results) arrive on the returned channel, anything else (a
/// wrapper's chatter) goes to stderr.
pub(crate) fn json_lines(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !line.starts_with('{') {
                eprintln!("{line}");
                continue;
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A resource type from a name the bench knows is valid.
pub(crate) fn rtype(name: impl AsRef<str>) -> p2p_core::ResourceType {
    name.as_ref().parse().expect("a valid resource type")
}

/// A resource id from a name the bench knows is valid.
pub(crate) fn rid(name: impl AsRef<str>) -> p2p_core::ResourceId {
    name.as_ref().parse().expect("a valid resource id")
}
