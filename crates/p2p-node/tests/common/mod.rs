//! A `lotus-p2p` process driven through stdin, JSON lines out.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub const WAIT: Duration = Duration::from_secs(20);

pub struct Proc {
    pub child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Lines read while looking for another one, still to be matched.
    backlog: Vec<Value>,
    /// A data directory that lives as long as the process (see
    /// [`Proc::owning`]).
    data_dir: Option<TempDir>,
}

impl Proc {
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn_env(data_dir, extra, &[])
    }

    /// `lotus-p2p run --json <args>` started by `program` (e.g. `ip netns
    /// exec <ns>`, given as `["ip", "netns", "exec", ns]`), its stderr
    /// discarded.
    pub fn spawn_wrapped(wrapper: &[&str], args: &[&str]) -> Self {
        let (program, wrapper_args) = wrapper.split_first().expect("a wrapper program");
        let mut command = Command::new(program);
        command
            .args(wrapper_args)
            .arg(env!("CARGO_BIN_EXE_lotus-p2p"))
            .args(["run", "--json", "--api", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::null());
        Self::start(command)
    }

    /// [`Proc::spawn`] with environment variables set.
    pub fn spawn_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lotus-p2p"));
        command
            .envs(env.iter().copied())
            .args([
                "run",
                "--json",
                "--dht-mode",
                "server",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--api",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stderr(Stdio::piped());
        Self::start(command)
    }

    /// Starts `command` and drives it through its piped stdin and stdout.
    fn start(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn lotus-p2p");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            lines,
            backlog: Vec::new(),
            data_dir: None,
        }
    }

    /// Keeps `dir` (the process's data directory) until the process is
    /// dropped, then removes it.
    pub fn owning(mut self, dir: TempDir) -> Self {
        self.data_dir = Some(dir);
        self
    }

    /// The first line (already read or still to come) that satisfies `pred`.
    pub async fn next(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        self.next_within(WAIT, pred).await
    }

    /// [`Proc::next`] waiting at most `wait`.
    pub async fn next_within(&mut self, wait: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let found = tokio::time::timeout(wait, async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("process ended");
                let value: Value =
                    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
                if pred(&value) {
                    return value;
                }
                self.backlog.push(value);
            }
        })
        .await;
        match found {
            Ok(value) => value,
            Err(_) => {
                let seen = self.backlog.len();
                let tail = &self.backlog[seen.saturating_sub(20)..];
                panic!(
                    "no expected line within {wait:?}; the last {} of {seen} other lines: {tail:#?}",
                    tail.len()
                )
            }
        }
    }

    /// Sends a command and returns its result line.
    pub async fn cmd(&mut self, line: &str) -> Value {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        let name = line.split_whitespace().next().unwrap().to_owned();
        self.next(move |v| v["cmd"] == name.as_str()).await
    }
}

/// A second node (its data in the temp dir `name`, removed with the
/// process) joining through `bootstrap`: the process and its PeerId.
pub async fn joining(name: &str, bootstrap: &str) -> (Proc, String) {
    let dir = temp_dir(name);
    let mut proc = Proc::spawn(&dir, &["--bootstrap", bootstrap]).owning(dir);
    let id = proc.next(|v| v["event"] == "listening").await["peerId"]
        .as_str()
        .unwrap()
        .to_owned();
    (proc, id)
}

/// A fresh, empty temp directory path for this test process (`name` tells
/// the tests apart), removed when dropped: a data dir holds a node's secret
/// key, and a test that fails must not leave one behind either.
pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("lotus-p2p-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    TempDir(dir)
}

/// A temp directory path, removed (with its contents) on drop.
pub struct TempDir(PathBuf);

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for TempDir {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Proc {
    /// The `host:port` of the metrics endpoint (`--metrics`), from stderr.
    pub async fn metrics_addr(&mut self) -> String {
        let stderr = self.child.stderr.take().expect("stderr already taken");
        let mut lines = BufReader::new(stderr).lines();
        let line = tokio::time::timeout(WAIT, async {
            loop {
                let line = lines.next_line().await.unwrap().expect("stderr ended");
                if line.contains("metrics on http://") {
                    return line;
                }
            }
        })
        .await
        .expect("metrics address");
        // Keep reading: a closed pipe would fail the process's next log line.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let url = line.split("http://").nth(1).unwrap();
        url.trim_end_matches("/metrics").to_owned()
    }
}
