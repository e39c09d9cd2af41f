//! The HTTP API of a running `lotus-p2p` and the command-line client that
//! talks to it: the token, concurrent requests, typed errors with status
//! codes, and the event stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{Proc, WAIT, joining, temp_dir};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// One HTTP/1.1 request, read to the end: (status, JSON body).
async fn http(
    api: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let (status, body) = http_text(api, method, path, token, body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// One HTTP/1.1 request, read to the end: (status, body).
async fn http_text(
    api: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(api).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("API answer")
        .unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, body.to_owned())
}

/// `lotus-p2p --data-dir <dir> <words…>`, started.
fn client(dir: &std::path::Path, words: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_lotus-p2p"))
        .arg("--data-dir")
        .arg(dir)
        .args(words)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn answer(child: tokio::process::Child) -> (bool, Value) {
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("client answer")
        .unwrap();
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_every_command_concurrently_behind_its_token() {
    let dir = temp_dir("api");
    let configured = "configured-token-0123456789";
    let mut a = Proc::spawn(&dir, &["--api-token", configured]);
    let listening = a.next(|v| v["event"] == "listening").await;
    let api = listening["api"].as_str().unwrap().to_owned();
    let a_id = listening["peerId"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::read_to_string(dir.join("api")).unwrap(), api);
    let token = std::fs::read_to_string(dir.join("api.cookie")).unwrap();
    assert_eq!(token.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("api.cookie"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // No token, a wrong token: refused.
    let (status, body) = http(&api, "GET", "/api/v1/stats", None, "").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let wrong = "0".repeat(64);
    let (status, _) = http(&api, "GET", "/api/v1/stats", Some(&wrong), "").await;
    assert_eq!(status, 401);
    // A configured token works beside the cookie's (which the CLI uses).
    let (status, _) = http(&api, "GET", "/api/v1/stats", Some(configured), "").await;
    assert_eq!(status, 200);

    // Prometheus scrapes /metrics without a token: the node's, libp2p's,
    // the process's figures and the build.
    let (status, metrics) = http_text(&api, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200);
    for name in [
        "lotus_p2p_peers_connected",
        "lotus_p2p_build_info{",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "libp2p_",
    ] {
        assert!(metrics.contains(name), "no {name} in\n{metrics}");
    }

    // The CLI client finds the node through the data dir.
    let (ok, stats) = answer(client(&dir, &["stats"])).await;
    assert!(ok, "{stats}");
    assert_eq!(stats["peerId"], a_id.as_str());

    // A slow command (a session with a signer nobody runs: 4 s until it
    // gives up) holds up nothing: stats answers while it runs.
    let ghost = "02cb8c4bd39abc0887907ada72fee4335fea504a4b5526cc52095890e6a605e1a1";
    let (ok, key) = answer(client(&dir, &["signer-key"])).await;
    assert!(ok);
    let keys = format!("{},{ghost}", key["publicKey"].as_str().unwrap());
    let message = "00".repeat(32);
    let mut slow = client(&dir, &["musig2-sign", "slow", &message, &keys, "6000"]);
    // Once the session runs, stats still answers (and the slow command is
    // still running).
    tokio::time::timeout(WAIT, async {
        loop {
            let (status, stats) = http(&api, "GET", "/api/v1/stats", Some(&token), "").await;
            assert_eq!(status, 200, "{stats}");
            if stats["musig2"]["runningSessions"] == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the session never started");
    let (status, stats) = http(&api, "GET", "/api/v1/peers", Some(&token), "").await;
    assert_eq!(status, 200, "{stats}");
    assert!(
        slow.try_wait().unwrap().is_none(),
        "the slow command ended before the others were answered"
    );
    let (ok, failed) = answer(slow).await;
    assert!(!ok);
    assert_eq!(failed["code"], "timeout");
    assert_eq!(failed["blame"][0]["publicKey"], ghost);

    // A name that is no command is refused by the client, naming it.
    let typo = client(&dir, &["peerz"]);
    let out = tokio::time::timeout(WAIT, typo.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command \"peerz\""));

    // Typed errors with status codes.
    let (status, body) = http(
        &api,
        "POST",
        "/api/v1/connect",
        Some(&token),
        r#"{"addr":"not-an-address"}"#,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_input")),
        "{body}"
    );
    let (status, _) = http(&api, "POST", "/api/v1/no-such-command", Some(&token), "{}").await;
    assert_eq!(status, 404);
    let (status, _) = http(
        &api,
        "POST",
        "/api/v1/no-such-command",
        Some(&token),
        r#"{"args":"x"}"#,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = http(
        &api,
        "GET",
        "/api/v1/discover?type=nothing&id=here&timeoutMs=500",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // axum's own refusals are typed JSON too: a path outside the API, a
    // method a command does not take, a body over one control line's bound
    // (refused once that much of it is read).
    let (status, body) = http(&api, "GET", "/api/v2/stats", Some(&token), "").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = http(&api, "DELETE", "/api/v1/stats", Some(&token), "").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );
    let (status, body) = http(&api, "DELETE", "/api/v1/stats", None, "").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (mut from_api, mut to_api) = tokio::net::TcpStream::connect(&api)
        .await
        .unwrap()
        .into_split();
    let size = 1024 * 1024;
    let head = format!(
        "POST /api/v1/send HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    // The server may stop reading once it refuses: the rest of the body is
    // written by a task of its own, whose errors do not matter.
    let writer = tokio::spawn(async move {
        let _ = to_api.write_all(head.as_bytes()).await;
        let _ = to_api.write_all(&vec![b' '; size]).await;
        to_api
    });
    // Read up to the answer's end, not the connection's: a server closing
    // with body bytes unread may reset the connection after its answer.
    let mut response = String::new();
    tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 4096];
        while !response.ends_with('}') {
            // A reset after the answer ends the read; what came is checked.
            let Ok(n @ 1..) = from_api.read(&mut chunk).await else {
                break;
            };
            response.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    })
    .await
    .expect("an answer to the oversized body");
    writer.abort();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains(r#""code":"too_large""#), "{response}");

    // Announced resources are listed.
    let (ok, announced) = answer(client(
        &dir,
        &["announce", "round", "r-1", r#"{"n":1}"#, "600"],
    ))
    .await;
    assert!(ok, "{announced}");
    let (status, listed) = http(&api, "GET", "/api/v1/announced", Some(&token), "").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["resources"][0]["key"], "resource:round:r-1",
        "{listed}"
    );
    assert_eq!(listed["resources"][0]["data"]["n"], 1, "{listed}");

    // Events: a peer that connects is streamed.
    let mut events = tokio::net::TcpStream::connect(&api).await.unwrap();
    events
        .write_all(format!("GET /api/v1/events HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut events = BufReader::new(events).lines();
    let header = tokio::time::timeout(WAIT, events.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(header.contains("200"), "{header}");
    let (_b, b_id) = joining("api-b", listening["addrs"][0].as_str().unwrap()).await;
    let seen = tokio::time::timeout(WAIT, async {
        loop {
            let line = events
                .next_line()
                .await
                .unwrap()
                .expect("event stream ended");
            if let Some(data) = line.strip_prefix("data:") {
                let event: Value = serde_json::from_str(data.trim()).unwrap();
                if event["event"] == "peer:connect" && event["peerId"] == b_id.as_str() {
                    return event;
                }
            }
        }
    })
    .await
    .expect("no peer:connect event for B");
    assert_eq!(seen["peerId"], b_id.as_str());

    // Named fields: ban B for a minute, then unban it.
    let body = format!(r#"{{"peer":"{b_id}","seconds":60}}"#);
    let (status, banned) = http(&api, "POST", "/api/v1/ban", Some(&token), &body).await;
    assert_eq!(
        (status, &banned["banned"]),
        (200, &Value::Bool(true)),
        "{banned}"
    );
    let (ok, unbanned) = answer(client(&dir, &["unban", &b_id])).await;
    assert!(ok, "{unbanned}");
    assert_eq!(unbanned["unbanned"], true);
}
