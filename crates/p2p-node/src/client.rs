//! `lotus-p2p [--data-dir <dir>] <command> …`: one control command sent to
//! the running node's HTTP API, whose address and token the node wrote into
//! its data dir.

use std::path::Path;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::api::{ADDRESS_FILE, COOKIE_FILE};

/// Sends `words` (a command and its arguments, as on the control line) and
/// prints the answer; `Ok(false)` when the node answered that it failed.
pub(crate) async fn run(data_dir: &Path, words: &[String]) -> Result<bool> {
    let Some((cmd, args)) = words.split_first() else {
        bail!("no command");
    };
    if !crate::api::ARGUMENTS.iter().any(|(name, _)| name == cmd) {
        let known: Vec<&str> = crate::api::ARGUMENTS
            .iter()
            .map(|(name, _)| *name)
            .collect();
        bail!(
            "unknown command {cmd:?}: the node's commands are {}; the others are run, config, keygen, id, musig2 (see --help)",
            known.join(", ")
        );
    }
    if let Some(flag) = args.iter().find(|a| a.starts_with("--")) {
        bail!(
            "{flag} after the command is not read: put lotus-p2p's own flags (--data-dir) before it"
        );
    }
    let read = |name: &str| {
        let path = data_dir.join(name);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is a node running with this --data-dir and its API on?)",
                path.display()
            )
        })
    };
    let addr = read(ADDRESS_FILE)?;
    let token = read(COOKIE_FILE)?;
    let stream = tokio::net::TcpStream::connect(addr.trim())
        .await
        .with_context(|| format!("connecting to the node's API at {}", addr.trim()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake with the node's API")?;
    tokio::spawn(connection);
    let body = json!({"args": args.join(" ")}).to_string();
    let request = Request::post(format!("/api/v1/{cmd}"))
        .header(hyper::header::HOST, addr.trim())
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()),
        )
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await.context("API request")?;
    let bytes = response.into_body().collect().await?.to_bytes();
    let answer: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&bytes)))?;
    println!("{answer}");
    Ok(answer.get("ok") == Some(&Value::Bool(true)))
}
