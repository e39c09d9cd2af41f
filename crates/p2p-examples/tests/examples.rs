//! Runs every example binary of this crate, as a user would, and checks the
//! lines of its output that show it did what its README says. Each run is
//! bounded: a process still running at its deadline is killed and the test
//! fails with whatever it printed. The examples listen on port 0 (or the
//! memory transport), so runs never collide on a port.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// Bound on one example run (they take well under a second to ~15 s here).
const DEADLINE: Duration = Duration::from_secs(60);

/// What a finished example printed.
struct Output {
    stdout: String,
    stderr: String,
}

impl Output {
    /// The first stdout line starting with `prefix`.
    fn line(&self, prefix: &str) -> Result<&str> {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .with_context(|| format!("no line starting with {prefix:?} in\n{self}"))
    }

    /// Fails unless stdout has exactly this line.
    fn has_line(&self, line: &str) -> Result<()> {
        ensure!(
            self.stdout.lines().any(|l| l == line),
            "missing line {line:?} in\n{self}"
        );
        Ok(())
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout\n{}--- stderr\n{}---",
            self.stdout, self.stderr
        )
    }
}

/// Runs `exe args`, kills it at [`DEADLINE`], and fails unless it exited
/// successfully in time.
fn run(exe: &str, args: &[&str]) -> Result<Output> {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {exe}"))?;
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().context("stdout")?));
    let stderr = drain(Box::new(child.stderr.take().context("stderr")?));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    match status {
        None => bail!("{exe} {args:?} still running after {DEADLINE:?}: killed\n{output}"),
        Some(status) if !status.success() => bail!("{exe} {args:?} failed: {status}\n{output}"),
        Some(_) => Ok(output),
    }
}

#[test]
fn basic_sends_a_signed_message_and_discovers_through_the_dht() -> Result<()> {
    let out = run(env!("CARGO_BIN_EXE_basic"), &[])?;
    let alice = out
        .line("alice ")?
        .strip_prefix("alice ")
        .context("alice's id")?
        .trim();
    ensure!(alice.starts_with("12D3KooW"), "alice's PeerId: {alice:?}");
    out.has_line("connected; DHT routing tables populated")?;
    out.has_line(
        r#"bob got greeting from alice (signature verified: true): {"text":"Hello Bob!"}"#,
    )?;
    out.line("alice announced resource:example-resource:resource-123 (stored by ")?;
    out.has_line(&format!(
        r#"bob discovered resource:example-resource:resource-123 created by {alice}: {{"name":"Example","data":"hello DHT"}}"#
    ))?;
    let alice_stats = out.line("alice: ")?;
    // One announcement is two records: under Alice's creator-scoped key and
    // under the shared (TypeScript) key.
    ensure!(
        alice_stats.starts_with("alice: 1 connected peer(s)")
            && alice_stats.contains("2 record(s)")
            && alice_stats.ends_with("messages sent 1 received 0"),
        "alice's stats: {alice_stats}"
    );
    let bob_stats = out.line("bob: ")?;
    ensure!(
        bob_stats.starts_with("bob: 1 connected peer(s)")
            && bob_stats.ends_with("messages sent 0 received 1"),
        "bob's stats: {bob_stats}"
    );
    Ok(())
}

#[test]
fn musig2_three_wallets_end_with_one_verified_signature() -> Result<()> {
    let out = run(env!("CARGO_BIN_EXE_musig2"), &[])?;
    let signatures: Vec<&str> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| {
            let prefix = format!("{name} has signature ");
            out.line(&prefix)
                .map(|l| l.trim_start_matches(prefix.as_str()))
        })
        .collect::<Result<_>>()?;
    ensure!(
        signatures[0].len() == 128,
        "a 64-byte signature: {}",
        signatures[0]
    );
    ensure!(signatures.iter().all(|s| *s == signatures[0]), "{out}");
    out.has_line("signature verifies under the aggregated key: true")?;
    Ok(())
}

#[test]
fn chat_talks_both_ways_and_leaves() -> Result<()> {
    let out = run(env!("CARGO_BIN_EXE_chat"), &[])?;
    let expected = [
        "[bob] alice joined #lotus",
        "[alice] bob joined #lotus",
        "[bob] #lotus <alice> hi bob, ready to sign?",
        "[alice] #lotus <bob> ready, nonce incoming",
        "[alice] bob left #lotus",
        "alice sees 0 other member(s) left in #lotus",
    ];
    // Every line, in this order (each is sent only after the previous arrived).
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(lines == expected, "chat transcript differs:\n{out}");
    Ok(())
}

/// Checks the summary line of a dht-network run of `nodes` nodes.
fn check_dht_network(out: &Output, nodes: usize, transport: &str) -> Result<()> {
    let summary = out.line(&format!("{nodes} nodes ({transport}): "))?;
    let expected = nodes * (nodes - 1);
    ensure!(
        summary.contains(&format!(", {expected}/{expected} discoveries in ")),
        "not every resource was discovered: {summary}"
    );
    Ok(())
}

#[test]
fn dht_network_discovers_every_resource_on_the_memory_transport() -> Result<()> {
    // 20 rather than the default 50 nodes: the same work, a third of the time.
    let out = run(env!("CARGO_BIN_EXE_dht-network"), &["--nodes", "20"])?;
    check_dht_network(&out, 20, "memory")
}

#[test]
fn dht_network_discovers_every_resource_over_tcp() -> Result<()> {
    let out = run(
        env!("CARGO_BIN_EXE_dht-network"),
        &["--nodes", "8", "--tcp"],
    )?;
    check_dht_network(&out, 8, "tcp")
}
