//! Runs the Lotus SDK (npm `xpi-ts`, pinned by `interop/xpi-ts/package-lock.json`)
//! from Rust tests, following the pattern of p2p-core's js peer:
//!
//! - the sources are found through `LOTUS_XPI_TS_DIR`, else at
//!   `<workspace root>/interop/xpi-ts`; they are copied once per test binary
//!   into `<target>/tmp/xpi-ts/<pid>/` and installed there with `npm ci` (the
//!   source stays read-only); copies of test binaries that are gone are
//!   removed on the next run;
//! - missing `node` (>= 20), `npm` or sources fail the test with the reason,
//!   nothing passes silently;
//! - every child process runs under a deadline.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Bound on `npm ci`.
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on `node --version` / `npm --version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one `xpi.mjs check` run (bn.js is slow; the machine may be busy).
const CHECK_TIMEOUT: Duration = Duration::from_secs(240);
/// The files the copy needs.
const SOURCES: [&str; 3] = ["xpi.mjs", "package.json", "package-lock.json"];

static INSTALL: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The installed copy (installing it on first use). Panics with the reason if
/// the prerequisites are missing.
pub fn installed_dir() -> &'static Path {
    match INSTALL.get_or_init(install) {
        Ok(dir) => dir,
        Err(reason) => panic!(
            "the xpi-ts cross-check cannot run: {reason}\n\
             (it needs Node.js >= 20 and npm on the PATH, and the repository's \
             interop/xpi-ts; LOTUS_XPI_TS_DIR overrides where it is)"
        ),
    }
}

/// Sends `request` to `node xpi.mjs check` and returns its JSON answer.
pub fn check(request: &Value) -> Value {
    let dir = installed_dir();
    let mut command = Command::new("node");
    command.current_dir(dir).args(["xpi.mjs", "check"]);
    let stdin = serde_json::to_vec(request).expect("the request serializes");
    let out = run_bounded(command, Some(stdin), "`node xpi.mjs check`", CHECK_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("xpi.mjs printed invalid JSON ({e}): {out}"))
}

fn source_dir() -> PathBuf {
    match std::env::var_os("LOTUS_XPI_TS_DIR") {
        Some(dir) => PathBuf::from(dir),
        // CARGO_MANIFEST_DIR is <workspace>/crates/<crate>.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/xpi-ts"),
    }
}

/// Runs a command to completion within `timeout`, feeding it `stdin`; returns
/// its stdout, or the reason with the end of its stderr.
fn run_bounded(
    mut command: Command,
    stdin: Option<Vec<u8>>,
    what: &str,
    timeout: Duration,
) -> Result<String, String> {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let writer = child.stdin.take().map(|mut pipe| {
        let data = stdin.unwrap_or_default();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
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
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if status.success() {
        Ok(out)
    } else {
        let lines: Vec<&str> = err.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        Err(format!("{what} failed ({status}):\n{tail}"))
    }
}

/// Checks the tools, copies the sources and runs `npm ci`, once per binary.
fn install() -> Result<PathBuf, String> {
    let mut node = Command::new("node");
    node.arg("--version");
    let version = run_bounded(node, None, "`node --version`", VERSION_TIMEOUT).map_err(|e| {
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
        return Err(format!("node {version} is too old, xpi-ts needs >= 20"));
    }
    let mut npm = Command::new("npm");
    npm.arg("--version");
    run_bounded(npm, None, "`npm --version`", VERSION_TIMEOUT)
        .map_err(|e| format!("npm is required and `npm` could not be run ({e})"))?;

    let source = source_dir();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xpi-ts");
    sweep_stale(&root);
    let dest = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).map_err(|e| format!("create {}: {e}", dest.display()))?;
    for file in SOURCES {
        let from = source.join(file);
        if !from.is_file() {
            return Err(format!(
                "{} has no {file} (xpi-ts sources not found)",
                source.display()
            ));
        }
        let to = dest.join(file);
        std::fs::copy(&from, &to).map_err(|e| format!("copy {}: {e}", from.display()))?;
        // The sources may be read-only; the copy need not be.
        if let Ok(meta) = std::fs::metadata(&to) {
            let mut permissions = meta.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            permissions.set_readonly(false);
            let _ = std::fs::set_permissions(&to, permissions);
        }
    }
    let mut npm_ci = Command::new("npm");
    npm_ci
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dest);
    let started = Instant::now();
    run_bounded(npm_ci, None, "`npm ci` in the xpi-ts copy", NPM_CI_TIMEOUT)?;
    eprintln!(
        "xpi-ts installed in {} (node {version}, npm ci took {:?})",
        dest.display(),
        started.elapsed()
    );
    Ok(dest)
}

/// Removes copies made by test binaries that are gone (Linux: no
/// `/proc/<pid>`) and installed more than five minutes ago.
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
