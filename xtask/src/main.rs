//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `codegen [--check]`: regenerate the Rust code for `proto/` (protox + prost-build,
//!   no system `protoc`), or fail if the committed code is stale.
//! - `fuzz <target> [--seconds N]`: run one cargo-fuzz target of p2p-protocol on nightly.
//! - `fuzz-check`: type-check the fuzz crate (excluded from the workspace) on
//!   the default toolchain, so its targets keep compiling against p2p-protocol.
//! - `bench [--quick]`: run the criterion benchmarks and the TypeScript pipeline
//!   baseline, then the two-node messaging bench (with its js-libp2p baseline),
//!   then the node scenarios (dial, RSS, connections, 50-node network) and their
//!   js-libp2p dial/RSS baseline (xtask/bench/js-dial.mjs), then the hardening
//!   scenarios (flood, churn). `--quick` runs every one of them in its quick
//!   mode (criterion's `--test`, `LOTUS_BENCH_QUICK=1` for the scenario benches,
//!   small counts for the Node.js baselines): a smoke test that each completes,
//!   failing if one does not; its figures mean nothing.
//! - `netns`: the tests that build networks with NAT in Linux network
//!   namespaces (`crates/p2p-node/tests/netns.rs`; root, iproute2 and
//!   nftables needed), ignored by a plain `cargo test`.
//! - `ci`: fmt check, clippy, codegen check, fuzz-check, the tests, `netns`,
//!   `bench --quick`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The proto files that make up the wire contract, relative to `proto/`.
const PROTO_FILES: &[&str] = &["lotus/p2p/v1/envelope.proto"];
/// Where the generated code is committed, relative to the workspace root.
const GENERATED_DIR: &str = "crates/p2p-protocol/src/generated";
/// Fuzz targets of p2p-protocol.
const FUZZ_TARGETS: &[&str] = &["frame_decoder", "protobuf_decode", "json_decode"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root()?;
    match args.first().map(String::as_str) {
        Some("codegen") => codegen(&root, args.iter().any(|a| a == "--check")),
        Some("fuzz") => fuzz(&root, args.get(1..).unwrap_or_default()),
        Some("fuzz-check") => fuzz_check(&root),
        Some("bench") => bench(&root, args.iter().any(|a| a == "--quick")),
        Some("netns") => netns(&root),
        Some("ci") => ci(&root),
        _ => {
            eprintln!(
                "usage: cargo xtask codegen [--check] | fuzz <{}> [--seconds N] | fuzz-check \
                 | bench [--quick] | netns | ci",
                FUZZ_TARGETS.join("|")
            );
            bail!("unknown or missing task")
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask has no parent directory")?
        .to_path_buf())
}

/// Generates the prost code into a fresh directory and either installs it or
/// compares it with the committed copy.
fn codegen(root: &Path, check: bool) -> Result<()> {
    let out = std::env::temp_dir().join(format!("lotus-p2p-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&out)?;
    let descriptors = protox::compile(PROTO_FILES, [root.join("proto")])
        .context("compiling proto/ with protox")?;
    prost_build::Config::new()
        .bytes(["."])
        .out_dir(&out)
        .compile_fds(descriptors)
        .context("generating Rust with prost-build")?;

    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&out)? {
        let entry = entry?;
        let name = entry.file_name();
        let fresh = std::fs::read(entry.path())?;
        let committed_path = root.join(GENERATED_DIR).join(&name);
        if check {
            if std::fs::read(&committed_path).ok().as_deref() != Some(fresh.as_slice()) {
                stale.push(committed_path.display().to_string());
            }
        } else {
            std::fs::create_dir_all(root.join(GENERATED_DIR))?;
            std::fs::write(&committed_path, fresh)?;
            println!("wrote {}", committed_path.display());
        }
    }
    std::fs::remove_dir_all(&out)?;
    ensure!(
        stale.is_empty(),
        "generated code is stale or missing: {}; run `cargo xtask codegen`",
        stale.join(", ")
    );
    if check {
        println!("codegen: committed code is up to date");
    }
    Ok(())
}

/// Runs one fuzz target for a bounded time with cargo-fuzz on nightly.
fn fuzz(root: &Path, args: &[String]) -> Result<()> {
    let target = args.first().context("which fuzz target?")?;
    ensure!(
        FUZZ_TARGETS.contains(&target.as_str()),
        "unknown fuzz target {target}; known: {}",
        FUZZ_TARGETS.join(", ")
    );
    let seconds = match args.iter().position(|a| a == "--seconds") {
        Some(i) => args
            .get(i + 1)
            .context("--seconds needs a value")?
            .parse::<u64>()
            .context("--seconds must be a whole number")?,
        None => 60,
    };
    let has_cargo_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_cargo_fuzz {
        run(root, "cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    let fuzz_dir = root.join("crates/p2p-protocol/fuzz");
    let corpus = fuzz_dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    let max_time = format!("-max_total_time={seconds}");
    run(
        &fuzz_dir,
        "cargo",
        &[
            "+nightly",
            "fuzz",
            "run",
            target,
            "--",
            &max_time,
            "-print_final_stats=1",
        ],
    )
}

/// Type-checks the fuzz targets with the default (stable) toolchain:
/// libfuzzer-sys builds there (its build script compiles libFuzzer with the
/// system C++ compiler), only running the targets needs nightly and
/// cargo-fuzz. `--locked`: the fuzz crate's own Cargo.lock must be current.
fn fuzz_check(root: &Path) -> Result<()> {
    run(
        root,
        "cargo",
        &[
            "check",
            "--locked",
            "--manifest-path",
            "crates/p2p-protocol/fuzz/Cargo.toml",
        ],
    )
}

/// The environment variable that puts the scenario benches of p2p-core in
/// their quick mode (read by `crates/p2p-core/benches/support` and
/// `crates/p2p-musig2/benches/session.rs`).
const BENCH_QUICK_ENV: &str = "LOTUS_BENCH_QUICK";

/// The criterion pipeline benchmarks, then lotus-musig2's criterion bench
/// (MuSig2 partial sign/verify next to k256's raw scalar multiplication), then
/// p2p-musig2's 15-signer session on loopback, then the TypeScript pipeline
/// baseline in
/// Node.js in the same invocation (skipped with a note when Node.js is absent),
/// then the messaging bench of p2p-core, then its node bench and the js-libp2p
/// dial/RSS baseline (skipped with a note without Node.js, npm or the peer),
/// then its hardening bench, then its DHT-at-scale bench (`dht_scale`).
/// Everything is built first, so the times printed at the end are the runs'
/// (unless the sources change meanwhile).
///
/// `quick`: every bench and baseline still runs, each cut to seconds; a
/// failure of any (the js baselines included, when Node.js is there) fails
/// the task.
fn bench(root: &Path, quick: bool) -> Result<()> {
    // Quick mode only proves the scenarios complete, so it builds with the
    // test profile (dependencies optimised, shared with `cargo test`) instead
    // of a second, release-like build of the whole tree.
    let profile: &[&str] = if quick { &["--profile", "dev"] } else { &[] };
    // Every bench is built and run with `--workspace` (bench names are
    // unique in it): features are then unified as for `cargo test
    // --workspace`, so the dependencies built for the tests serve the
    // benches too. With `-p <crate>`, each crate's own feature set rebuilt
    // shared dependencies once per bench (about 10 minutes of a CI run).
    let cargo_bench = |rest: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec!["bench", "--workspace"];
        args.extend_from_slice(profile);
        args.extend_from_slice(rest);
        args
    };
    run(root, "cargo", &cargo_bench(&["--bench", "*", "--no-run"]))?;
    let quick_env = |command: &mut Command| {
        if quick {
            command.env(BENCH_QUICK_ENV, "1");
        } else {
            command.env_remove(BENCH_QUICK_ENV);
        }
    };
    let mut times: Vec<(&str, Duration)> = Vec::new();
    let mut timed = |name, step: &mut dyn FnMut() -> Result<()>| {
        let started = Instant::now();
        let result = step();
        times.push((name, started.elapsed()));
        result
    };
    let node = succeeds("node", &["--version"]);

    timed("pipeline (criterion)", &mut || {
        let mut args = cargo_bench(&["--bench", "pipeline"]);
        if quick {
            // Criterion's own smoke mode: every benchmark once, unmeasured.
            args.extend(["--", "--test"]);
        }
        run(root, "cargo", &args)
    })?;
    timed("musig2 (criterion)", &mut || {
        let mut args = cargo_bench(&["--bench", "musig2"]);
        if quick {
            args.extend(["--", "--test"]);
        }
        run(root, "cargo", &args)
    })?;
    // A 15-signer MuSig2 session on TCP loopback: time to signature.
    timed("musig2 session", &mut || {
        let mut command = Command::new("cargo");
        command.args(cargo_bench(&["--bench", "session"]));
        quick_env(&mut command);
        run_command(root, &mut command)
    })?;
    timed("TypeScript pipeline baseline", &mut || {
        if !node {
            eprintln!("node not found: TypeScript baseline skipped");
            return Ok(());
        }
        let script = root.join("xtask/bench/ts-pipeline.mjs");
        let mut command = Command::new("node");
        command.arg(script);
        if quick {
            command.env("TS_PIPELINE_MESSAGES", "20000");
        }
        run_command(root, &mut command)
    })?;
    // Two nodes on TCP loopback; the bench also runs the js-libp2p messaging
    // baseline (xtask/bench/js-messaging.mjs) when Node.js is installed.
    // Node scenarios: dial latency, idle RSS, RSS per connection, 50-node
    // network (one JSON line each), then their js-libp2p dial/RSS baseline.
    for (name, bench) in [
        ("messaging (+ js-libp2p flood)", "messaging"),
        ("node", "node"),
    ] {
        timed(name, &mut || {
            let mut command = Command::new("cargo");
            command.args(cargo_bench(&["--bench", bench]));
            quick_env(&mut command);
            run_command(root, &mut command)
        })?;
    }
    timed("js-libp2p dial/RSS baseline", &mut || {
        if node && succeeds("npm", &["--version"]) {
            js_dial(root, quick)
        } else {
            eprintln!("node or npm not found: js-libp2p dial baseline skipped");
            Ok(())
        }
    })?;
    timed("hardening", &mut || {
        let mut command = Command::new("cargo");
        command.args(cargo_bench(&["--bench", "hardening"]));
        quick_env(&mut command);
        run_command(root, &mut command)
    })?;
    // N DHT servers on the memory transport (issue 13 §3): network up,
    // lookups before and after 30 % churn, memory per node, and the plot.
    timed("dht_scale", &mut || {
        let mut command = Command::new("cargo");
        command.args(cargo_bench(&["--bench", "dht_scale"]));
        quick_env(&mut command);
        run_command(root, &mut command)
    })?;

    let total: Duration = times.iter().map(|(_, t)| *t).sum();
    eprintln!(
        "\nbench{}: every step completed; wall time of each (after the build above; \
         a step also holds any rebuild cargo made for a change since):",
        if quick { " --quick" } else { "" }
    );
    for (name, time) in &times {
        eprintln!("  {:>7.1} s  {name}", time.as_secs_f64());
    }
    eprintln!("  {:>7.1} s  total", total.as_secs_f64());
    Ok(())
}

/// True if `program args` runs and exits successfully.
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The js-libp2p reference peer (for its pinned dependencies): `LOTUS_JS_PEER_DIR`,
/// else the workspace's `interop/js-peer`.
fn js_peer_dir(root: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("LOTUS_JS_PEER_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(root.join("interop/js-peer"));
    candidates
        .into_iter()
        .find(|dir| dir.join("package-lock.json").is_file() && dir.join("polyfill.mjs").is_file())
}

/// The js-libp2p dial/RSS baseline (xtask/bench/js-dial.mjs), run from a copy
/// of the reference peer's manifest in target/js-dial-bench; `npm ci` runs
/// there when nothing is installed yet or the lockfile changed. Skipped with a
/// note when the peer or `npm ci` is missing, except in `quick` mode (5 dials),
/// where a failing `npm ci` fails the task.
fn js_dial(root: &Path, quick: bool) -> Result<()> {
    let Some(peer) = js_peer_dir(root) else {
        ensure!(
            !quick,
            "js-libp2p reference peer not found (set LOTUS_JS_PEER_DIR)"
        );
        eprintln!(
            "js-libp2p reference peer not found (set LOTUS_JS_PEER_DIR): js dial baseline skipped"
        );
        return Ok(());
    };
    let work = root.join("target/js-dial-bench");
    std::fs::create_dir_all(&work)?;
    let lock = std::fs::read(peer.join("package-lock.json"))?;
    let installed = work.join("node_modules").is_dir()
        && std::fs::read(work.join("package-lock.json"))
            .ok()
            .as_deref()
            == Some(lock.as_slice());
    // Contents only: the sources may be read-only.
    for file in ["package.json", "package-lock.json", "polyfill.mjs"] {
        std::fs::write(work.join(file), std::fs::read(peer.join(file))?)?;
    }
    std::fs::write(
        work.join("js-dial.mjs"),
        std::fs::read(root.join("xtask/bench/js-dial.mjs"))?,
    )?;
    if !installed {
        let install = run(&work, "npm", &["ci", "--no-audit", "--no-fund"]);
        if let Err(e) = install {
            // Not "installed" next time.
            let _ = std::fs::remove_dir_all(work.join("node_modules"));
            ensure!(!quick, "npm ci for the js-libp2p dial baseline: {e:#}");
            eprintln!("npm ci failed ({e:#}): js-libp2p dial baseline skipped");
            return Ok(());
        }
    }
    let mut command = Command::new("node");
    command.args(["--import", "./polyfill.mjs", "js-dial.mjs"]);
    if quick {
        command.env("DIALS", "5");
    }
    run_command(&work, &mut command)
}

fn ci(root: &Path) -> Result<()> {
    run(root, "cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    codegen(root, true)?;
    fuzz_check(root)?;
    run(root, "cargo", &["test", "--workspace"])?;
    netns(root)?;
    bench(root, true)
}

/// Runs the network-namespace tests (ignored in a plain `cargo test`: they
/// need root, iproute2 and nftables), one at a time.
fn netns(root: &Path) -> Result<()> {
    run(
        root,
        "cargo",
        &[
            // Workspace-wide, so the build is the one `cargo test
            // --workspace` made (same features), not a rebuild.
            "test",
            "--workspace",
            "--test",
            "netns",
            "--",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ],
    )
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    let mut command = Command::new(program);
    command.args(args);
    run_command(dir, &mut command)
}

/// Runs `command` in `dir`, failing unless it exits successfully.
fn run_command(dir: &Path, command: &mut Command) -> Result<()> {
    let shown = {
        let envs: Vec<String> = command
            .get_envs()
            .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v?.to_str()?)))
            .collect();
        let words: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        envs.into_iter().chain(words).collect::<Vec<_>>().join(" ")
    };
    eprintln!("$ {shown}");
    let status = command
        .current_dir(dir)
        .status()
        .with_context(|| format!("starting {shown}"))?;
    ensure!(status.success(), "{shown} failed: {status}");
    Ok(())
}
