//! Two `lotus-p2p` processes driven through stdin, as scripts and operators
//! drive them: connect, message, announce/discover, stats, metrics, stop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{Proc, WAIT, temp_dir};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// `GET <path>` on a plain HTTP server, the whole response (bounded).
async fn get(host: &str, path: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    socket
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, socket.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_connect_message_announce_discover_and_stop() {
    let (dir_a, dir_b) = (temp_dir("a"), temp_dir("b"));
    let mut a = Proc::spawn(&dir_a, &["--metrics", "127.0.0.1:0"]);
    let mut b = Proc::spawn(&dir_b, &[]);
    let listening_a = a.next(|v| v["event"] == "listening").await;
    let listening_b = b.next(|v| v["event"] == "listening").await;
    let a_id = listening_a["peerId"].as_str().unwrap().to_owned();
    let b_id = listening_b["peerId"].as_str().unwrap().to_owned();
    let a_addr = listening_a["addrs"][0].as_str().unwrap().to_owned();
    assert!(a_addr.ends_with(&format!("/p2p/{a_id}")));

    let connected = b.cmd(&format!("connect {a_addr}")).await;
    assert_eq!(connected["ok"], true, "{connected}");
    assert_eq!(connected["peerId"], a_id.as_str());
    a.next(|v| v["event"] == "peer:connect" && v["peerId"] == b_id.as_str())
        .await;

    let sent = b
        .cmd(&format!(r#"send {a_id} greeting {{"text": "hello a"}}"#))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let got = a.next(|v| v["event"] == "message").await;
    assert_eq!(got["from"], b_id.as_str());
    assert_eq!(got["payload"]["text"], "hello a");
    assert_eq!(got["verified"], true);

    let bad = b.cmd("send not-a-peer x {}").await;
    assert_eq!(bad["ok"], false);
    assert!(bad["error"].as_str().unwrap().contains("PeerId"));

    // B's routing table holds A once identify has run.
    b.next(|v| v["event"] == "routing:updated" && v["peerId"] == a_id.as_str())
        .await;
    let announced = a.cmd(r#"announce session s1 {"status": "open"} 600"#).await;
    assert_eq!(announced["ok"], true, "{announced}");
    assert_eq!(announced["key"], "resource:session:s1");
    let found = b.cmd("discover session s1 10000").await;
    assert_eq!(found["ok"], true, "{found}");
    assert_eq!(found["resource"]["creator"], a_id.as_str());
    assert_eq!(found["resource"]["data"]["status"], "open");
    assert_eq!(found["resources"][0], found["resource"], "{found}");
    assert_eq!(found["resources"].as_array().unwrap().len(), 1);
    let pinned = b
        .cmd(&format!("discover-from session s1 {a_id} 10000"))
        .await;
    assert_eq!(pinned["ok"], true, "{pinned}");
    assert_eq!(pinned["resource"], found["resource"]);
    let nobody = b
        .cmd(&format!("discover-from session s1 {b_id} 10000"))
        .await;
    assert_eq!(nobody["ok"], false, "B never announced s1: {nobody}");
    assert_eq!(nobody["error"], "resource not found", "{nobody}");
    let local = b.cmd("resources session").await;
    assert_eq!(local["resources"].as_array().unwrap().len(), 1);

    let peers = a.cmd("peers").await;
    assert_eq!(peers["peers"][0]["peerId"], b_id.as_str());
    let stats = a.cmd("stats").await;
    assert_eq!(stats["messages"]["received"], 1);

    // Metrics: our counters over HTTP.
    let stderr = a.child.stderr.take().unwrap();
    let mut err_lines = BufReader::new(stderr).lines();
    let metrics_line = tokio::time::timeout(WAIT, async {
        loop {
            let line = err_lines.next_line().await.unwrap().expect("stderr ended");
            if line.contains("metrics on http://") {
                return line;
            }
        }
    })
    .await
    .unwrap();
    let url = metrics_line.split("http://").nth(1).unwrap();
    let host = url.trim_end_matches("/metrics");
    // Only /metrics answers.
    let other = get(host, "/admin").await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let body = get(host, "/metrics").await;
    assert!(
        body.contains("lotus_p2p_messages_received_total 1"),
        "{body}"
    );
    assert!(
        body.contains("lotus_p2p_resources_announced_total 1"),
        "{body}"
    );
    assert!(body.contains("lotus_p2p_peers_connected 1"), "{body}");
    // Reachability (AutoNAT has not probed yet: unknown), no relay, no
    // hole punch.
    for line in [
        "lotus_p2p_reachability{status=\"unknown\"} 1",
        "lotus_p2p_reachability{status=\"public\"} 0",
        "lotus_p2p_relay_reservations_total 0",
        "lotus_p2p_hole_punches_succeeded_total 0",
        "lotus_p2p_hole_punches_failed_total 0",
    ] {
        assert!(body.contains(line), "{line} in {body}");
    }
    assert!(
        body.contains("lotus_p2p_messages_rejected_total{reason=\"duplicate\"} 0"),
        "{body}"
    );
    // libp2p's own swarm metrics: the connection to B was counted.
    let established = body
        .lines()
        .filter(|l| l.starts_with("libp2p_swarm_connections_established_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum::<u64>();
    assert_eq!(established, 1, "B's one connection: {body}");
    assert!(body.contains("libp2p_identify_"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");

    // Stop gracefully; B sees A go.
    assert_eq!(a.cmd("stop").await["ok"], true);
    a.next(|v| v["event"] == "stopped").await;
    let status = tokio::time::timeout(WAIT, a.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    b.next(|v| v["event"] == "peer:disconnect" && v["peerId"] == a_id.as_str())
        .await;

    // The identity persists in the data directory.
    let id = std::process::Command::new(env!("CARGO_BIN_EXE_lotus-p2p"))
        .args(["id", "--key-file"])
        .arg(dir_a.join("node.key"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(id.stdout).unwrap().trim(), a_id);
    drop(b);
}

/// The control reader's bound (`MAX_LINE` in control.rs).
const MAX_LINE: usize = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_control_line_is_refused_and_the_next_command_runs() {
    let dir = temp_dir("long-line");
    let mut a = Proc::spawn(&dir, &[]);
    let listening = a.next(|v| v["event"] == "listening").await;
    let id = listening["peerId"].as_str().unwrap().to_owned();
    let huge = format!(r#"send {id} greeting "{}""#, "a".repeat(MAX_LINE * 4));
    let refused = a.cmd(&huge).await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["code"], "line_too_long", "{refused}");
    // Read from the next newline on: the next command runs as usual.
    let stats = a.cmd("stats").await;
    assert_eq!(stats["ok"], true, "{stats}");
    assert_eq!(stats["peerId"], id.as_str());
    // A line just within the bound is still executed (and fails as JSON).
    let within = format!("send {id} greeting {}", "b".repeat(MAX_LINE - 100));
    let answer = a.cmd(&within).await;
    assert_eq!(answer["ok"], false, "{answer}");
    // Executed: refused as bad input, not as an overlong line.
    assert_eq!(answer["code"], "bad_input", "{}", answer["cmd"]);
    assert!(
        answer["error"].as_str().unwrap().contains("not JSON"),
        "{answer}"
    );
    assert_eq!(a.cmd("stop").await["ok"], true);
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_after_a_burst_of_connections_beyond_the_cap() {
    /// `MAX_CONNECTIONS` in metrics.rs.
    const CAP: usize = 64;
    const BURST: usize = 3 * CAP;
    let dir = temp_dir("metrics-burst");
    let mut a = Proc::spawn(&dir, &["--metrics", "127.0.0.1:0"]);
    a.next(|v| v["event"] == "listening").await;
    let host = a.metrics_addr().await;

    // Connections that send nothing: served ones wait for their request (up
    // to 2 s) and are answered 404 (they asked for no path), the ones over
    // the cap are closed on arrival, answerless.
    let mut burst = Vec::new();
    for _ in 0..BURST {
        burst.push(tokio::net::TcpStream::connect(&host).await.unwrap());
    }
    let (mut closed, mut answered) = (0, 0);
    for mut socket in burst {
        let mut reply = Vec::new();
        let read = tokio::time::timeout(WAIT, socket.read_to_end(&mut reply))
            .await
            .expect("every connection ends");
        match read {
            Ok(_) if reply.is_empty() => closed += 1,
            Ok(_) => {
                assert!(reply.starts_with(b"HTTP/1.1 404"));
                answered += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(
        closed >= BURST - CAP,
        "{closed} closed, {answered} answered"
    );
    assert!(answered <= CAP, "{closed} closed, {answered} answered");

    // Every served connection has finished: a scrape is answered.
    let body = get(&host, "/metrics").await;
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("lotus_p2p_peers_connected 0"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_keeps_running_when_its_stderr_is_closed() {
    let (dir_a, dir_b) = (temp_dir("stderr-a"), temp_dir("stderr-b"));
    // Debug logs, so the connection below makes the event loop log.
    let mut a = Proc::spawn_env(&dir_a, &[], &[("RUST_LOG", "debug")]);
    let listening = a.next(|v| v["event"] == "listening").await;
    let a_addr = listening["addrs"][0].as_str().unwrap().to_owned();
    // Whoever read the logs went away.
    drop(a.child.stderr.take());
    let mut b = Proc::spawn(&dir_b, &[]);
    b.next(|v| v["event"] == "listening").await;
    let connected = b.cmd(&format!("connect {a_addr}")).await;
    assert_eq!(connected["ok"], true, "{connected}");
    a.next(|v| v["event"] == "peer:connect").await;
    let stats = a.cmd("stats").await;
    assert_eq!(stats["ok"], true, "{stats}");
    assert_eq!(stats["connectedPeers"], 1, "{stats}");
    assert_eq!(a.cmd("stop").await["ok"], true);
    drop((a, b));
}

/// `lotus-p2p run` with its output collected, killed if still running after
/// the wait (a refused start exits at once).
async fn run_to_exit(args: &[&str]) -> std::process::Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lotus-p2p"))
        .args(["run", "--api", "127.0.0.1:0"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the node kept running")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_an_error_that_says_so() {
    // A plain socket holds the port.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = temp_dir("taken");
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let data_dir = dir.to_str().unwrap();
    let out = run_to_exit(&["--data-dir", data_dir, "--listen", &listen]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("TCP port {port} is taken")),
        "{stderr}"
    );
    // With --json the failure is one JSON line on stdout as well.
    let out = run_to_exit(&["--json", "--data-dir", data_dir, "--listen", &listen]).await;
    assert!(!out.status.success());
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["event"], "error");
    assert!(
        line["error"].as_str().unwrap().contains("is taken"),
        "{line}"
    );
    drop(holder);

    // Another node holds it (libp2p listens with SO_REUSEPORT: without the
    // check, the second node would start and share the port).
    let mut first = Proc::spawn(&dir, &[]);
    let listening = first.next(|v| v["event"] == "listening").await;
    let addr = listening["addrs"][0].as_str().unwrap();
    let taken: String = addr.split("/p2p/").next().unwrap().to_owned();
    let second_dir = temp_dir("taken-2");
    let out = run_to_exit(&[
        "--data-dir",
        second_dir.to_str().unwrap(),
        "--listen",
        &taken,
    ])
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is taken"));
}

#[test]
fn keygen_and_id_use_the_data_dir_and_version_names_the_commit() {
    let dir = temp_dir("keygen");
    let exe = env!("CARGO_BIN_EXE_lotus-p2p");
    let keygen = std::process::Command::new(exe)
        .args(["keygen", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    assert!(dir.join("node.key").exists());
    let made = String::from_utf8(keygen.stdout).unwrap();
    let id = std::process::Command::new(exe)
        .args(["id", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(id.stdout).unwrap(), made);
    let version = std::process::Command::new(exe)
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    // "lotus-p2p 0.1.0 (<commit>)": the commit of this checkout.
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .unwrap();
    let commit = match String::from_utf8(commit.stdout).unwrap().trim() {
        "" => "unknown".to_owned(), // not a git checkout (or git refuses it)
        commit => commit.to_owned(),
    };
    assert!(
        version.starts_with("lotus-p2p ") && version.contains(&format!("({commit})")),
        "{version} / {commit}"
    );
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_config_file() {
    let dir = temp_dir("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        r#"
api = "127.0.0.1:4999"
listen = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]
relay-server = true
dht_mode = "server"
api-token = "s3cret"
score-ban-below = -30.5
"#,
    )
    .unwrap();
    let exe = env!("CARGO_BIN_EXE_lotus-p2p");
    let out = std::process::Command::new(exe)
        .args([
            "config",
            "--dht-mode",
            "client",
            "--max-connections",
            "64",
            "--data-dir",
        ])
        .arg(&dir)
        .env("LOTUS_P2P_PEER_MESSAGES", "100:200")
        .env("LOTUS_P2P_API", "127.0.0.1:4888")
        .env("LOTUS_P2P_DHT_MODE", "auto")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (settings, sources) = (&config["settings"], &config["sources"]);
    assert_eq!(settings["dht-mode"], "client");
    assert_eq!(sources["dht-mode"], "flag");
    assert_eq!(settings["api"], "127.0.0.1:4888");
    assert_eq!(sources["api"], "env");
    assert_eq!(settings["relay-server"], "true");
    assert_eq!(sources["relay-server"], "file");
    assert_eq!(settings["listen"].as_array().unwrap().len(), 2);
    assert_eq!(settings["api-token"], "(hidden)");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));
    assert_eq!(sources["no-api"], "default");
    // Limits are settings like any other.
    assert_eq!(settings["max-connections"], "64");
    assert_eq!(settings["peer-messages"], "100:200");
    assert_eq!(sources["peer-messages"], "env");
    // A TOML float is a value like the others.
    assert_eq!(settings["score-ban-below"], "-30.5");
    assert_eq!(sources["score-ban-below"], "file");
    assert!(
        config["configFile"]
            .as_str()
            .unwrap()
            .ends_with("config.toml")
    );

    // A limit that does not parse is refused before anything starts.
    let out = std::process::Command::new(exe)
        .args(["config", "--peer-messages", "lots", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected off"));

    // A key that is no setting is refused, naming it.
    std::fs::write(
        dir.join("config.toml"),
        "lisen = [\"/ip4/127.0.0.1/tcp/0\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(exe)
        .args(["config", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting \"lisen\""));
}

/// The repository's own files for operators.
fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_systemd_unit_verifies_and_runs_this_binary_hardened() {
    let unit = repo_file("contrib/systemd/lotus-p2p.service");
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "DynamicUser=yes",
        "CapabilityBoundingSet=\n",
        "StateDirectory=lotus-p2p",
    ] {
        assert!(unit.contains(hardening), "missing {hardening}");
    }
    // systemd-analyze checks the unit against this machine's systemd, with
    // ExecStart pointing at the binary under test (it must exist).
    let Ok(version) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze not installed: only the unit's text was checked");
        return;
    };
    assert!(version.status.success());
    let dir = temp_dir("systemd");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lotus-p2p.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/lotus-p2p", env!("CARGO_BIN_EXE_lotus-p2p")),
    )
    .unwrap();
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    assert!(
        !String::from_utf8_lossy(&verify.stderr).contains("lotus-p2p.service:"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn the_dockerfile_runs_unprivileged_with_a_volume_and_a_health_check() {
    // No Dockerfile linter (hadolint) and no Docker engine here: the
    // rules a linter would check that matter to operators, by hand.
    let dockerfile = repo_file("Dockerfile");
    let from: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "a build stage and a runtime stage");
    assert!(from.iter().all(|l| !l.contains(":latest")), "pinned images");
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .unwrap();
    assert_ne!(user.trim(), "USER root");
    assert!(dockerfile.contains("VOLUME [\"/data\"]"));
    assert!(dockerfile.contains("EXPOSE 4001 4002"));
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("--locked"));
    // The health check is a client command this binary knows.
    let health = dockerfile
        .lines()
        .find(|l| l.trim_start().starts_with("CMD [\"lotus-p2p\""))
        .unwrap();
    assert!(health.contains("\"stats\""), "{health}");
}
