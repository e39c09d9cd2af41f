//! Drives the js-libp2p reference peer (`interop/js-peer` in this repository,
//! see its README) from Rust tests: a Node process with commands on stdin and JSON
//! lines on stdout.
//!
//! - The peer's directory is found through `LOTUS_JS_PEER_DIR`, else at
//!   `<workspace root>/interop/js-peer`. It is copied once per test
//!   binary into `<target>/tmp/js-peer/<pid>/` and installed there with
//!   `npm ci` (the source stays read-only). Copies left by test binaries that
//!   are no longer running are removed on the next run.
//! - Missing `node` (>= 20), `npm` or peer sources fail every test that needs
//!   them, with the reason; nothing passes silently.
//! - Every wait has a deadline; nothing sleeps to synchronise. A peer is
//!   killed when its [`JsPeer`] is dropped, and stops by itself after
//!   `--exit-after` in any case.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;

/// Bound on one wait for an event or a command result (beyond the command's
/// own `timeout`). Generous: the machine may be busy compiling.
pub const WAIT: Duration = Duration::from_secs(30);
/// Bound on `npm ci`.
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on `node --version` / `npm --version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Safety bound passed to every peer: it stops by itself after this long.
const EXIT_AFTER_SECS: u32 = 120;
/// Diagnostic lines kept per peer (stdout and stderr each).
const TAIL: usize = 60;

static INSTALL: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The installed copy of the js peer (installing it on first use). Panics with
/// the reason if the prerequisites are missing.
pub fn installed_dir() -> &'static Path {
    match INSTALL.get_or_init(install) {
        Ok(dir) => dir,
        Err(reason) => panic!(
            "the js interop tests cannot run: {reason}\n\
             (they need Node.js >= 20 and npm on the PATH, and the repository's \
             interop/js-peer; LOTUS_JS_PEER_DIR overrides where it is)"
        ),
    }
}

/// Where the read-only js-peer sources are.
fn source_dir() -> PathBuf {
    match std::env::var_os("LOTUS_JS_PEER_DIR") {
        Some(dir) => PathBuf::from(dir),
        // CARGO_MANIFEST_DIR is <workspace>/crates/<crate>.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/js-peer"),
    }
}

/// Runs a short command to completion within `timeout`; returns its stdout.
fn run_bounded(
    mut command: std::process::Command,
    what: &str,
    timeout: Duration,
) -> Result<String, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                // Polling a child process: there is no portable bounded wait.
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if status.success() {
        Ok(out)
    } else {
        let tail: String = err
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        Err(format!("{what} failed ({status}):\n{tail}"))
    }
}

/// Checks the tools, copies the sources and runs `npm ci`, once per binary.
fn install() -> Result<PathBuf, String> {
    let mut node = std::process::Command::new("node");
    node.arg("--version");
    let version = run_bounded(node, "`node --version`", VERSION_TIMEOUT).map_err(|e| {
        format!("Node.js 20 or newer is required and `node` could not be run ({e})")
    })?;
    let version = version.trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("cannot parse the node version {version:?}"))?;
    if major < 20 {
        return Err(format!(
            "node {version} is too old, the js peer needs >= 20"
        ));
    }
    let mut npm = std::process::Command::new("npm");
    npm.arg("--version");
    run_bounded(npm, "`npm --version`", VERSION_TIMEOUT)
        .map_err(|e| format!("npm is required and `npm` could not be run ({e})"))?;

    let source = source_dir();
    for file in [
        "peer.mjs",
        "polyfill.mjs",
        "package.json",
        "package-lock.json",
    ] {
        if !source.join(file).is_file() {
            return Err(format!(
                "{} has no {file} (js peer sources not found)",
                source.display()
            ));
        }
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-peer");
    sweep_stale(&root);
    let dest = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).map_err(|e| format!("create {}: {e}", dest.display()))?;
    let entries =
        std::fs::read_dir(&source).map_err(|e| format!("read {}: {e}", source.display()))?;
    for entry in entries.flatten() {
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file {
            continue; // node_modules of a local install, if any
        }
        let to = dest.join(entry.file_name());
        std::fs::copy(entry.path(), &to)
            .map_err(|e| format!("copy {}: {e}", entry.path().display()))?;
        // The sources are read-only; the copy need not be.
        if let Ok(meta) = std::fs::metadata(&to) {
            let mut permissions = meta.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            permissions.set_readonly(false);
            let _ = std::fs::set_permissions(&to, permissions);
        }
    }
    let mut npm_ci = std::process::Command::new("npm");
    npm_ci
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dest);
    let started = Instant::now();
    run_bounded(npm_ci, "`npm ci` in the js peer copy", NPM_CI_TIMEOUT)?;
    eprintln!(
        "js peer installed in {} (node {version}, npm ci took {:?})",
        dest.display(),
        started.elapsed()
    );
    Ok(dest)
}

/// Removes copies made by test binaries that are gone (Linux: no
/// `/proc/<pid>`) and installed more than five minutes ago (the age guards
/// against a concurrent run in another PID namespace sharing the target
/// directory).
fn sweep_stale(root: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(300));
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// What the peer printed so far.
#[derive(Default)]
struct Log {
    /// Every line that is not a command result with an `id`, parsed.
    events: Vec<Value>,
    /// Command results by request id.
    results: HashMap<u64, Value>,
    /// stdout ended (the process is exiting).
    closed: bool,
    stdout_tail: VecDeque<String>,
    stderr_tail: VecDeque<String>,
}

struct Shared {
    log: Mutex<Log>,
    updates: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stdout_line(&self, line: String) {
        {
            let mut log = self.lock();
            push_tail(&mut log.stdout_tail, &line);
            match serde_json::from_str::<Value>(&line) {
                Ok(value) if value.get("cmd").is_some() && value["id"].is_u64() => {
                    let id = value["id"].as_u64().unwrap_or_default();
                    log.results.insert(id, value);
                }
                Ok(value) => log.events.push(value),
                Err(_) => log.events.push(json!({"event": "unparsed", "line": line})),
            }
        }
        self.updates.send_modify(|n| *n += 1);
    }

    fn stdout_closed(&self) {
        self.lock().closed = true;
        self.updates.send_modify(|n| *n += 1);
    }
}

fn push_tail(tail: &mut VecDeque<String>, line: &str) {
    if tail.len() >= TAIL {
        tail.pop_front();
    }
    tail.push_back(line.chars().take(2000).collect());
}

/// A running js peer.
pub struct JsPeer {
    /// Its PeerId.
    pub peer_id: PeerId,
    /// Its listen addresses, each ending in `/p2p/<id>`.
    pub addrs: Vec<Multiaddr>,
    label: String,
    child: Child,
    stdin: tokio::sync::Mutex<ChildStdin>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

impl JsPeer {
    /// Starts a peer listening on TCP and WS (127.0.0.1, port 0) with `args`
    /// added, and waits for its `listening` line.
    pub async fn spawn(args: &[&str]) -> JsPeer {
        let dir = installed_dir();
        let mut command = Command::new("node");
        command
            .current_dir(dir)
            .args(["--import", "./polyfill.mjs", "peer.mjs"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0/ws"])
            .args(["--exit-after", &EXIT_AFTER_SECS.to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the js peer with node: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdin = child.stdin.take().expect("piped stdin");
        let (updates, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            log: Mutex::new(Log::default()),
            updates,
        });
        let reader = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                reader.stdout_line(line);
            }
            reader.stdout_closed();
        });
        let errors = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                push_tail(&mut errors.lock().stderr_tail, &line);
            }
        });
        let mut peer = JsPeer {
            peer_id: PeerId::random(),
            addrs: Vec::new(),
            label: format!("js peer {args:?}"),
            child,
            stdin: tokio::sync::Mutex::new(stdin),
            shared,
            next_id: AtomicU64::new(1),
        };
        let listening = peer
            .wait_until("its `listening` line", WAIT, |log| {
                if let Some(fatal) = log.events.iter().find(|e| e["event"] == "fatal") {
                    return Some(Err(fatal.clone()));
                }
                log.events
                    .iter()
                    .find(|e| e["event"] == "listening")
                    .cloned()
                    .map(Ok)
            })
            .await
            .unwrap_or_else(|fatal| panic!("js peer failed to start: {fatal}\n{}", peer.diag()));
        peer.peer_id = listening["peerId"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("listening.peerId");
        peer.addrs = listening["addrs"]
            .as_array()
            .expect("listening.addrs")
            .iter()
            .map(|a| a.as_str().and_then(|s| s.parse().ok()).expect("multiaddr"))
            .collect();
        peer.label = format!("js peer {} {args:?}", peer.peer_id);
        peer
    }

    /// The TCP listen address (with `/p2p/<id>`).
    pub fn tcp_addr(&self) -> Multiaddr {
        self.addrs
            .iter()
            .find(|a| !is_ws(a))
            .cloned()
            .expect("a TCP address")
    }

    /// The WebSocket listen address (with `/p2p/<id>`).
    pub fn ws_addr(&self) -> Multiaddr {
        self.addrs
            .iter()
            .find(|a| is_ws(a))
            .cloned()
            .expect("a WS address")
    }

    /// The last lines it printed, for failure messages.
    pub fn diag(&self) -> String {
        let log = self.shared.lock();
        format!(
            "--- {} stdout (last {} lines) ---\n{}\n--- stderr ---\n{}",
            self.label,
            log.stdout_tail.len(),
            log.stdout_tail
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            log.stderr_tail
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }

    /// Waits until `check` finds what it wants in the log; panics (with the
    /// peer's output) after `timeout` or if the peer exits first.
    async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Log) -> Option<T>,
    ) -> T {
        let mut updates = self.shared.updates.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            updates.borrow_and_update();
            {
                let log = self.shared.lock();
                if let Some(found) = check(&log) {
                    return found;
                }
                if log.closed {
                    drop(log);
                    panic!(
                        "{} exited while we waited for {what}\n{}",
                        self.label,
                        self.diag()
                    );
                }
            }
            match tokio::time::timeout_at(deadline, updates.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("{} output reader gone\n{}", self.label, self.diag()),
                Err(_) => panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.diag()
                ),
            }
        }
    }

    /// Sends a JSON command (an `id` is added) and returns its result line,
    /// successful or not.
    pub async fn command(&self, mut command: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        command["id"] = json!(id);
        let own_timeout = command["timeout"].as_u64().unwrap_or(30_000);
        let line = format!("{command}\n");
        let write = async {
            let mut stdin = self.stdin.lock().await;
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        };
        match tokio::time::timeout(WAIT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("writing {command} to {}: {e}\n{}", self.label, self.diag()),
            Err(_) => panic!("writing {command} timed out\n{}", self.diag()),
        }
        self.wait_until(
            &format!("the result of {command}"),
            Duration::from_millis(own_timeout) + WAIT,
            |log| log.results.get(&id).cloned(),
        )
        .await
    }

    /// [`JsPeer::command`] that must succeed (`"ok":true`).
    pub async fn ok(&self, command: Value) -> Value {
        let result = self.command(command.clone()).await;
        assert_eq!(
            result["ok"],
            json!(true),
            "js command {command} failed: {result}\n{}",
            self.diag()
        );
        result
    }

    /// Waits for the first event (earlier ones included) matching `predicate`.
    pub async fn event(&self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(what, WAIT, |log| {
            log.events.iter().find(|e| predicate(e)).cloned()
        })
        .await
    }

    /// Waits for event `name` about `peer` (its `peerId` field).
    pub async fn event_for(&self, name: &str, peer: PeerId) -> Value {
        let peer = peer.to_string();
        self.event(&format!("{name} for {peer}"), |e| {
            e["event"] == name && e["peerId"] == peer.as_str()
        })
        .await
    }

    /// Events so far that match `predicate`.
    pub fn events(&self, predicate: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.shared
            .lock()
            .events
            .iter()
            .filter(|e| predicate(e))
            .cloned()
            .collect()
    }

    /// Asks `routing` until the kad routing table holds every one of `peers`
    /// (there is no routing event to wait for); returns the last answer.
    pub async fn wait_routing_contains(&self, peers: &[PeerId]) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let routing = self.ok(json!({"cmd": "routing"})).await;
            let table: Vec<&str> = routing["peers"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if peers
                .iter()
                .all(|p| table.contains(&p.to_string().as_str()))
            {
                return routing;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "js routing table {table:?} still lacks some of {peers:?}\n{}",
                self.diag()
            );
            // Polling a remote process's state; bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the peer (`stop`) and waits for the process to exit.
    pub async fn stop(mut self) {
        self.ok(json!({"cmd": "stop"})).await;
        self.event("the stopped event", |e| e["event"] == "stopped")
            .await;
        match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(Ok(status)) => assert!(status.success(), "js peer exited with {status}"),
            Ok(Err(e)) => panic!("waiting for the js peer: {e}"),
            Err(_) => panic!("js peer did not exit after stop\n{}", self.diag()),
        }
    }
}

/// True for a `/ws` address.
pub fn is_ws(address: &Multiaddr) -> bool {
    address.iter().any(|p| matches!(p, Protocol::Ws(_)))
}
