//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `codegen [--check]`: regenerate the Rust code for `proto/` (protox + prost-build,
//!   no system `protoc`), or fail if the committed code is stale.
//! - `fuzz <target> [--seconds N]`: run one cargo-fuzz target of p2p-protocol on nightly.
//! - `bench`: run the criterion benchmarks and the TypeScript pipeline baseline,
//!   then the two-node messaging bench (with its js-libp2p baseline), then the
//!   node scenarios (dial, RSS, connections, 50-node network) and their js-libp2p
//!   dial/RSS baseline (xtask/bench/js-dial.mjs).
//! - `ci`: what `.ci/run` runs: fmt check, clippy, codegen check, the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

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
        Some("bench") => bench(&root),
        Some("ci") => ci(&root),
        _ => {
            eprintln!(
                "usage: cargo xtask codegen [--check] | fuzz <{}> [--seconds N] | bench | ci",
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

/// The criterion pipeline benchmarks, then the TypeScript pipeline baseline in
/// Node.js in the same invocation (skipped with a note when Node.js is absent),
/// then the messaging bench of p2p-core, then its node bench and the js-libp2p
/// dial/RSS baseline (skipped with a note without Node.js, npm or the peer).
fn bench(root: &Path) -> Result<()> {
    run(
        root,
        "cargo",
        &["bench", "-p", "p2p-protocol", "--bench", "pipeline"],
    )?;
    let script = root.join("xtask/bench/ts-pipeline.mjs");
    let script = script.to_str().context("non-UTF-8 path")?;
    if Command::new("node").arg("--version").output().is_ok() {
        run(root, "node", &[script])?;
    } else {
        eprintln!("node not found: TypeScript baseline skipped");
    }
    // Two nodes on TCP loopback; the bench also runs the js-libp2p messaging
    // baseline (xtask/bench/js-messaging.mjs) when Node.js is installed.
    run(
        root,
        "cargo",
        &["bench", "-p", "p2p-core", "--bench", "messaging"],
    )?;
    // Node scenarios: dial latency, idle RSS, RSS per connection, 50-node
    // network (one JSON line each), then their js-libp2p dial/RSS baseline.
    run(
        root,
        "cargo",
        &["bench", "-p", "p2p-core", "--bench", "node"],
    )?;
    if succeeds("node", &["--version"]) && succeeds("npm", &["--version"]) {
        js_dial(root)
    } else {
        eprintln!("node or npm not found: js-libp2p dial baseline skipped");
        Ok(())
    }
}

/// True if `program args` runs and exits successfully.
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The js-libp2p reference peer (for its pinned dependencies): `LOTUS_JS_PEER_DIR`,
/// else `interop/js-peer` in or next to the workspace.
fn js_peer_dir(root: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("LOTUS_JS_PEER_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(root.join("interop/js-peer"));
    if let Some(parent) = root.parent() {
        candidates.push(parent.join("shared/interop/js-peer"));
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("package-lock.json").is_file() && dir.join("polyfill.mjs").is_file())
}

/// The js-libp2p dial/RSS baseline (xtask/bench/js-dial.mjs), run from a copy
/// of the reference peer's manifest in target/js-dial-bench; `npm ci` runs
/// there when nothing is installed yet or the lockfile changed.
fn js_dial(root: &Path) -> Result<()> {
    let Some(peer) = js_peer_dir(root) else {
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
            eprintln!("npm ci failed ({e:#}): js-libp2p dial baseline skipped");
            // Not "installed" next time.
            let _ = std::fs::remove_dir_all(work.join("node_modules"));
            return Ok(());
        }
    }
    run(
        &work,
        "node",
        &["--import", "./polyfill.mjs", "js-dial.mjs"],
    )
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
    run(root, "cargo", &["test", "--workspace"])
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("starting {program}"))?;
    ensure!(
        status.success(),
        "{program} {} failed: {status}",
        args.join(" ")
    );
    Ok(())
}
