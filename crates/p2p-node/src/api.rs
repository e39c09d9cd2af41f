//! The local HTTP API: every control command as a JSON endpoint under
//! `/api/v1/<command>`, node events as Server-Sent Events at
//! `/api/v1/events`, all behind a bearer token, and Prometheus metrics at
//! `/metrics` without one (a fresh random cookie in the
//! data dir, readable by its owner only, or a configured token). Requests are
//! served concurrently: a slow `discover` holds no other request.
//!
//! Arguments go as JSON fields named after the command's arguments (see
//! [`ARGUMENTS`]), as query parameters on `GET`, or as one `"args"` string
//! written exactly as on the control line (what `lotus-p2p <command> …`
//! sends). Answers are the control line's JSON: `{"cmd", "ok": true, …}`, or
//! `{"cmd", "ok": false, "error", …}` with a status code that says why.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use p2p_core::Node;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::control;
use crate::metrics::Exporter;
use crate::signer::Signer;

/// The cookie file in the data dir: the token, 64 hex digits.
pub(crate) const COOKIE_FILE: &str = "api.cookie";
/// The file in the data dir that names the API's address (for the CLI).
pub(crate) const ADDRESS_FILE: &str = "api";

/// Each command's arguments, in control-line order: the names JSON fields
/// and query parameters use.
pub(crate) const ARGUMENTS: &[(&str, &[&str])] = &[
    ("stats", &[]),
    ("peers", &[]),
    ("signer-key", &[]),
    ("connect", &["addr"]),
    ("disconnect", &["peer"]),
    ("ban", &["peer", "seconds"]),
    ("unban", &["peer"]),
    ("send", &["peer", "type", "payload"]),
    ("broadcast", &["type", "payload"]),
    ("announce", &["type", "id", "data", "ttl"]),
    ("discover", &["type", "id", "timeoutMs"]),
    ("discover-from", &["type", "id", "creator", "timeoutMs"]),
    ("resources", &["type"]),
    ("announced", &[]),
    ("provide", &["name"]),
    ("providers", &["name", "timeoutMs"]),
    ("musig2-sign", &["session", "message", "keys", "timeoutMs"]),
];

struct Api {
    node: Node,
    signer: Arc<Signer>,
    /// The cookie's token, and the configured one if any.
    tokens: Vec<String>,
}

/// A running API server.
pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    pub(crate) task: JoinHandle<()>,
}

/// Shortest configured token accepted.
const MIN_TOKEN: usize = 16;

/// Binds `addr`, writes the cookie (a configured `token` is accepted too) and the address
/// file into `data_dir`, and serves until the task is aborted.
pub(crate) async fn serve(
    addr: SocketAddr,
    data_dir: &Path,
    token: Option<String>,
    node: Node,
    signer: Arc<Signer>,
    exporter: Exporter,
) -> Result<Served> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot serve the API on {addr}: the port is taken; choose another with --api"
            )
        } else {
            anyhow::Error::new(e).context(format!("API address {addr}"))
        }
    })?;
    let addr = listener.local_addr()?;
    if let Some(token) = &token
        && token.len() < MIN_TOKEN
    {
        anyhow::bail!("--api-token must be at least {MIN_TOKEN} characters");
    }
    // The cookie is written even with a configured token, so the CLI client
    // and a container's health check, which read it, keep working.
    let cookie = write_cookie(&data_dir.join(COOKIE_FILE))?;
    let tokens: Vec<String> = std::iter::once(cookie).chain(token).collect();
    std::fs::write(data_dir.join(ADDRESS_FILE), addr.to_string())
        .with_context(|| format!("writing {}", data_dir.join(ADDRESS_FILE).display()))?;
    let api = Arc::new(Api {
        node,
        signer,
        tokens,
    });
    let router = Router::new()
        .route("/api/v1/events", get(events))
        .route("/api/v1/{cmd}", get(command).post(command))
        // Inside the token check, so a request without the token is told
        // 401 whatever its method.
        .method_not_allowed_fallback(|| async {
            failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "commands take GET or POST; /metrics and / take GET".to_owned(),
            )
        })
        // A request body is one control line's arguments: as bounded.
        .layer(DefaultBodyLimit::max(control::MAX_LINE))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&api), auth))
        .with_state(api)
        // Prometheus scrapes without a token (the address is local unless
        // --api says otherwise); nothing there is secret.
        .merge(
            Router::new()
                .route("/metrics", get(metrics))
                .with_state(exporter),
        )
        // The status page holds no data: its script asks the API, with the
        // token the browser was given (#token=… once, then kept).
        .route("/", get(status_page))
        .fallback(|| async {
            failure(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such path: the API is under /api/v1/<command>".to_owned(),
            )
        });
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "API server stopped");
        }
    });
    Ok(Served { addr, task })
}

/// A new random token in a new 0600 file (the old one, from an earlier run,
/// is replaced), as bitcoind does with its `.cookie`.
fn write_cookie(path: &PathBuf) -> Result<String> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    let bytes = p2p_core::load_or_create_secret_file(path, || {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| p2p_core::IdentityError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(zeroize::Zeroizing::new(hex::encode(secret).into_bytes()))
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Equal-time comparison of the presented token with ours.
fn token_matches(presented: &str, ours: &str) -> bool {
    presented.len() == ours.len()
        && presented
            .bytes()
            .zip(ours.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn auth(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if api.tokens.iter().any(|ours| token_matches(token, ours)) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"ok": false, "code": "unauthorized", "error": "missing or wrong bearer token (see api.cookie in the data dir)"})),
        )
            .into_response(),
    }
}

/// The control line's arguments from JSON fields or query parameters.
fn arguments(cmd: &str, fields: &serde_json::Map<String, Value>) -> Option<String> {
    let (_, names) = ARGUMENTS.iter().find(|(name, _)| *name == cmd)?;
    if let Some(Value::String(args)) = fields.get("args") {
        return Some(args.clone());
    }
    let mut words = Vec::new();
    for name in *names {
        let Some(value) = fields.get(*name) else {
            break; // the rest are optional
        };
        words.push(match value {
            Value::String(text) => text.clone(),
            // A list of keys is written comma-separated on the line.
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        });
    }
    Some(words.join(" "))
}

/// A typed JSON error answer: `{"ok": false, "code", "error"}`.
fn failure(status: StatusCode, code: &str, error: String) -> Response {
    (
        status,
        Json(json!({"ok": false, "code": code, "error": error})),
    )
        .into_response()
}

async fn command(
    State(api): State<Arc<Api>>,
    UrlPath(cmd): UrlPath<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Response {
    // axum's own refusals, as JSON like every other answer.
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return failure(rejection.status(), "bad_input", rejection.body_text()),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return failure(
                rejection.status(),
                "too_large",
                format!("a request body is at most {} bytes", control::MAX_LINE),
            );
        }
        Err(rejection) => return failure(rejection.status(), "bad_input", rejection.body_text()),
    };
    let mut fields: serde_json::Map<String, Value> = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<serde_json::Map<String, Value>>(&body) {
            Ok(body) => fields.extend(body),
            Err(error) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"cmd": cmd, "ok": false, "code": "bad_input", "error": format!("the body is not a JSON object: {error}")})),
                )
                    .into_response();
            }
        }
    }
    let Some(args) = arguments(&cmd, &fields) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"cmd": cmd, "ok": false, "code": "unknown_command", "error": format!("unknown command {cmd:?}")})),
        )
            .into_response();
    };
    match control::execute(&api.node, &api.signer, &cmd, &args).await {
        Ok(fields) => {
            let mut answer = json!({"cmd": cmd, "ok": true});
            crate::output::merge(&mut answer, &fields);
            Json(answer).into_response()
        }
        Err(error) => {
            let mut answer = json!({"cmd": cmd, "ok": false, "error": format!("{error:#}")});
            crate::output::merge(&mut answer, &control::failure_fields(&error));
            (status_of(&error), Json(answer)).into_response()
        }
    }
}

/// The status code of a failed command.
fn status_of(error: &anyhow::Error) -> StatusCode {
    use p2p_core::ResourceError;
    use p2p_musig2::SessionError;
    if let Some(e) = error.downcast_ref::<ResourceError>() {
        return match e {
            ResourceError::NotFound => StatusCode::NOT_FOUND,
            ResourceError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ResourceError::NotStarted => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
    }
    if let Some(e) = error.downcast_ref::<SessionError>() {
        return match e {
            SessionError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            SessionError::SignerCount { .. }
            | SessionError::DuplicateKey(_)
            | SessionError::NotASigner(_)
            | SessionError::SessionId => StatusCode::BAD_REQUEST,
            SessionError::AlreadyRunning => StatusCode::CONFLICT,
            _ => StatusCode::BAD_GATEWAY,
        };
    }
    if control::is_bad_input(error) {
        return StatusCode::BAD_REQUEST;
    }
    StatusCode::BAD_GATEWAY
}

/// The status page: peers (direct or relayed), DHT mode and table size,
/// message and rejection rates, bans, updated every second.
const STATUS_PAGE: &str = include_str!("status.html");

async fn status_page() -> impl IntoResponse {
    axum::response::Html(STATUS_PAGE)
}

/// The Prometheus text of the node, its swarm and the process.
async fn metrics(State(exporter): State<Exporter>) -> Response {
    match exporter.try_render().await {
        Some(text) => {
            ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
        }
        // One scrape at a time: callers beyond it wait for nothing.
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "a scrape is in progress\n",
        )
            .into_response(),
    }
}

/// Node events, one JSON object per Server-Sent Event, as `--json` prints
/// them; a subscriber too slow to keep up is told how many it missed.
async fn events(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let events = api.node.subscribe();
    let stream = futures::stream::unfold(events, |mut events| async move {
        loop {
            let data = match events.recv().await {
                Ok(event) => match crate::output::event_json(&event) {
                    Some(value) => value,
                    None => continue,
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    json!({"event": "lagged", "missed": n})
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            let event = SseEvent::default().data(data.to_string());
            return Some((Ok::<_, std::convert::Infallible>(event), events));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
