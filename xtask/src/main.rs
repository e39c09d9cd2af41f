//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `codegen [--check]`: regenerate the Rust code for `proto/` (protox + prost-build,
//!   no system `protoc`), or fail if the committed code is stale.
//! - `fuzz <target> [--seconds N]`: run one cargo-fuzz target of p2p-protocol on nightly.
//! - `bench`: run the criterion benchmarks and the TypeScript pipeline baseline.
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
/// Node.js in the same invocation (skipped with a note when Node.js is absent).
fn bench(root: &Path) -> Result<()> {
    run(
        root,
        "cargo",
        &["bench", "-p", "p2p-protocol", "--bench", "pipeline"],
    )?;
    let script = root.join("xtask/bench/ts-pipeline.mjs");
    let script = script.to_str().context("non-UTF-8 path")?;
    if Command::new("node").arg("--version").output().is_ok() {
        run(root, "node", &[script])
    } else {
        eprintln!("node not found: TypeScript baseline skipped");
        Ok(())
    }
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
