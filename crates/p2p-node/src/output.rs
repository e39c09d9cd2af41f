//! What the node prints: one line per result or event, JSON with `--json`.

use std::sync::Arc;

use p2p_core::{Event, Multiaddr, Node};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Prints results and events, as JSON lines or readable text.
#[derive(Clone)]
pub(crate) struct Output {
    json: bool,
    /// Serialises lines from the control loop and the event printer.
    lock: Arc<std::sync::Mutex<()>>,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self {
            json,
            lock: Arc::default(),
        }
    }

    fn line(&self, value: &Value, text: impl FnOnce() -> String) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }

    /// The first line: who we are and where to reach us.
    pub(crate) fn listening(
        &self,
        node: &Node,
        addrs: &[Multiaddr],
        api: Option<std::net::SocketAddr>,
    ) {
        let peer = node.peer_id();
        let dialable: Vec<String> = addrs
            .iter()
            .map(|a| {
                a.clone()
                    .with_p2p(peer)
                    .map_or_else(|a| a.to_string(), |a| a.to_string())
            })
            .collect();
        let api = api.map(|a| a.to_string());
        let value = json!({"event": "listening", "peerId": peer.to_string(), "addrs": dialable, "api": api});
        self.line(&value, || {
            format!(
                "listening as {peer}{}\n{}",
                api.as_ref()
                    .map(|a| format!(" (API on http://{a})"))
                    .unwrap_or_default(),
                dialable
                    .iter()
                    .map(|a| format!("  {a}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    }

    /// The result of one command: `{"cmd": .., "ok": true, ..fields}`.
    pub(crate) fn ok(&self, cmd: &str, fields: Value) {
        let mut value = json!({"cmd": cmd, "ok": true});
        merge(&mut value, &fields);
        self.line(&value, || format!("{cmd}: ok {}", text_of(&fields)));
    }

    /// A refused command, with a machine-readable code:
    /// `{"cmd": .., "ok": false, "code": .., "error": ..}`.
    pub(crate) fn error_code(&self, cmd: &str, code: &str, error: &str) {
        self.error_with(cmd, error, json!({"code": code}));
    }

    /// A failed command with more fields (`code`, `blame`, ...).
    pub(crate) fn error_with(&self, cmd: &str, error: &str, fields: Value) {
        let mut value = json!({"cmd": cmd, "ok": false, "error": error});
        merge(&mut value, &fields);
        self.line(&value, || match fields.get("code") {
            Some(code) => format!(
                "{cmd}: error ({}): {error}",
                code.as_str().unwrap_or_default()
            ),
            None => format!("{cmd}: error: {error}"),
        });
    }

    pub(crate) fn event(&self, value: Value) {
        self.line(&value, || text_of(&value));
    }

    pub(crate) fn stopped(&self) {
        self.line(&json!({"event": "stopped"}), || "stopped".to_owned());
    }
}

/// Adds `from`'s fields to `into` (both objects).
pub(crate) fn merge(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// A result or event as one readable line: `key=value` pairs (strings bare,
/// lists comma-separated, nested objects as `key.sub=value`), the event name
/// first.
fn text_of(value: &Value) -> String {
    let mut words = Vec::new();
    if let Some(event) = value.get("event").and_then(Value::as_str) {
        words.push(event.to_owned());
    }
    flatten("", value, &mut words);
    words.join(" ")
}

fn flatten(prefix: &str, value: &Value, words: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if prefix.is_empty() && key == "event" {
                    continue;
                }
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, words);
            }
        }
        Value::Null => {}
        // Peers choose some of these strings (payloads, agents): control
        // characters are escaped so none can forge a line.
        Value::String(text) => words.push(format!("{prefix}={}", text.escape_debug())),
        Value::Array(items) if items.iter().all(|i| !i.is_object()) => {
            let items: Vec<String> = items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map_or_else(|| i.to_string(), |s| s.escape_debug().to_string())
                })
                .collect();
            words.push(format!("{prefix}={}", items.join(",")));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, words);
            }
        }
        other => words.push(format!("{prefix}={other}")),
    }
}

/// The JSON form of an event: the library's own serialization.
pub(crate) fn event_json(event: &Event) -> Option<Value> {
    serde_json::to_value(event).ok()
}

/// Prints events until the subscription ends.
pub(crate) async fn print_events(mut events: broadcast::Receiver<Event>, out: Output) {
    loop {
        match events.recv().await {
            Ok(event) => {
                if let Some(value) = event_json(&event) {
                    out.event(value);
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                out.event(json!({"event": "events:dropped", "count": n}));
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_lines_are_key_value_pairs_not_json() {
        let event = json!({
            "event": "peer:connect",
            "peerId": "12D3KooWA",
            "address": "/ip4/127.0.0.1/tcp/1",
        });
        assert_eq!(
            text_of(&event),
            "peer:connect address=/ip4/127.0.0.1/tcp/1 peerId=12D3KooWA"
        );
        let stats = json!({"peers": {"connected": 2}, "addrs": ["/a", "/b"], "none": null});
        assert_eq!(text_of(&stats), "addrs=/a,/b peers.connected=2");
    }
}
