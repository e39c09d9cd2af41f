//! Control on stdin: one command per line, one result line per command.
//!
//! ```text
//! connect <multiaddr>                 disconnect <peer>
//! peers                               stats
//! send <peer> <type> <json-payload>   broadcast <type> <json-payload>
//! announce <type> <id> <json-data> [ttl-seconds]
//! discover <type> <id> [timeout-ms]   resources <type>
//! discover-from <type> <id> <creator-peer-id> [timeout-ms]
//! provide <name>                      providers <name> [timeout-ms]
//! stop
//! ```
//!
//! At end of input the node keeps running until Ctrl-C / SIGTERM, so it can run
//! detached from a terminal.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use p2p_core::{AnnounceOptions, BroadcastOptions, Node, PeerId, RejectReason};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::output::Output;

/// Default bound on `discover` and `discover-from`.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest accepted command line (bounded reads).
const MAX_LINE: usize = 256 * 1024;

/// Reads and executes commands until `stop` (returns) or end of input (waits).
pub(crate) async fn run(node: Node, out: Output) -> Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if cmd == "stop" {
            out.ok("stop", json!({}));
            return Ok(());
        }
        if line.len() > MAX_LINE {
            out.error(cmd, "line too long");
            continue;
        }
        match execute(&node, cmd, rest.trim()).await {
            Ok(fields) => out.ok(cmd, fields),
            Err(e) => out.error(cmd, &format!("{e:#}")),
        }
    }
    std::future::pending::<()>().await;
    Ok(())
}

fn peer(text: &str) -> Result<PeerId> {
    text.parse().map_err(|_| anyhow!("not a PeerId: {text}"))
}

/// Splits off the first word.
fn word(text: &str) -> Result<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        bail!("missing argument");
    }
    Ok(text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(w, r)| (w, r.trim_start())))
}

/// JSON text, checked.
fn json_text(text: &str) -> Result<Vec<u8>> {
    let value: Value = serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))?;
    Ok(serde_json::to_vec(&value)?)
}

async fn execute(node: &Node, cmd: &str, args: &str) -> Result<Value> {
    match cmd {
        "connect" => {
            let peer = node
                .connect(args.parse().context("not a multiaddr")?)
                .await?;
            Ok(json!({"peerId": peer.to_string()}))
        }
        "disconnect" => {
            node.disconnect(peer(args)?).await?;
            Ok(json!({}))
        }
        "peers" => {
            let peers: Vec<Value> = node
                .connected_peers()
                .await?
                .into_iter()
                .map(|p| {
                    json!({
                        "peerId": p.peer_id.to_string(),
                        "addrs": p.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "agent": p.agent,
                        "protocols": p.protocols,
                        "rttMs": p.rtt.map(|d| d.as_secs_f64() * 1000.0),
                    })
                })
                .collect();
            Ok(json!({"peers": peers}))
        }
        "send" => {
            let (to, rest) = word(args)?;
            let (kind, payload) = word(rest)?;
            let message = node.sign(
                node.message(kind.parse()?)
                    .to(peer(to)?)
                    .payload(json_text(payload)?),
            )?;
            node.send(peer(to)?, &message).await?;
            Ok(json!({"id": message.id().to_string()}))
        }
        "broadcast" => {
            let (kind, payload) = word(args)?;
            let message = node.sign(node.message(kind.parse()?).payload(json_text(payload)?))?;
            let report = node
                .broadcast(&message, &BroadcastOptions::default())
                .await?;
            Ok(json!({
                "id": message.id().to_string(),
                "sent": report.delivered.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "failed": report.failed.iter().map(|(p, e)| json!({"peerId": p.to_string(), "error": e.to_string()})).collect::<Vec<_>>(),
            }))
        }
        "announce" => {
            let (ty, rest) = word(args)?;
            let (id, rest) = word(rest)?;
            // The data is JSON; an optional trailing number is the TTL.
            let (data, ttl) = match json_text(rest) {
                Ok(data) => (data, None),
                Err(_) => {
                    let (data, ttl) = rest
                        .rsplit_once(char::is_whitespace)
                        .context("missing data")?;
                    (
                        json_text(data)?,
                        Some(Duration::from_secs(ttl.parse().context("ttl-seconds")?)),
                    )
                }
            };
            let options = AnnounceOptions {
                ttl,
                republish: true,
                ..AnnounceOptions::default()
            };
            let announced = node.announce(ty, id, data, options).await?;
            Ok(json!({
                "key": announced.record.key.to_string(),
                "storedBy": announced.stored_by,
                "expiresAt": announced.record.expires_ms,
            }))
        }
        "discover" => {
            let (ty, rest) = word(args)?;
            let (id, rest) = word(rest)?;
            let timeout = match rest.trim() {
                "" => DISCOVER_TIMEOUT,
                ms => Duration::from_millis(ms.parse().context("timeout-ms")?),
            };
            // Every creator's valid record, newest first; `resource` is the
            // first, as before.
            let records = node.discover_all(ty, id, timeout).await?;
            Ok(json!({
                "resources": records.iter().map(|r| record_json(r)).collect::<Vec<_>>(),
                "resource": records.first().map(|r| record_json(r)),
            }))
        }
        "discover-from" => {
            let (ty, rest) = word(args)?;
            let (id, rest) = word(rest)?;
            let (creator, rest) = word(rest)?;
            let timeout = match rest.trim() {
                "" => DISCOVER_TIMEOUT,
                ms => Duration::from_millis(ms.parse().context("timeout-ms")?),
            };
            let record = node.discover_from(ty, id, peer(creator)?, timeout).await?;
            Ok(json!({"resource": record_json(&record)}))
        }
        "provide" => {
            let told = node.provide(args.trim()).await?;
            Ok(json!({"key": args.trim(), "told": told}))
        }
        "providers" => {
            let (name, rest) = word(args)?;
            let timeout = match rest.trim() {
                "" => DISCOVER_TIMEOUT,
                ms => Duration::from_millis(ms.parse().context("timeout-ms")?),
            };
            let providers = node.providers(name, timeout).await?;
            Ok(
                json!({"key": name, "providers": providers.iter().map(ToString::to_string).collect::<Vec<_>>()}),
            )
        }
        "resources" => {
            let records = node.local_resources(args.trim(), &[]);
            Ok(json!({"resources": records.iter().map(|r| record_json(r)).collect::<Vec<_>>()}))
        }
        "stats" => {
            let s = node.stats().await?;
            let rejected: serde_json::Map<String, Value> = RejectReason::ALL
                .iter()
                .map(|r| (r.as_str().to_owned(), json!(s.messages.rejected(*r))))
                .filter(|(_, n)| n != &json!(0))
                .collect();
            Ok(json!({
                "peerId": node.peer_id().to_string(),
                "peers": {"connected": s.connected_peers, "known": s.known_peers},
                "connections": s.connections,
                "bannedPeers": s.banned_peers,
                "connectionsDeniedPerIp": s.connections_denied_per_ip,
                "listenAddrs": s.listen_addrs,
                "messages": {"received": s.messages.received, "sent": s.messages.sent, "sendFailures": s.messages.send_failures, "rejected": rejected},
                "dht": {"mode": format!("{:?}", s.dht.mode).to_lowercase(), "routingTableSize": s.dht.routing_table_size, "records": s.dht.records_stored, "ready": s.dht.ready},
            }))
        }
        other => bail!("unknown command {other:?}"),
    }
}

fn record_json(record: &p2p_core::ResourceRecord) -> Value {
    json!({
        "key": record.key.to_string(),
        "creator": record.creator.to_string(),
        "data": serde_json::from_slice::<Value>(&record.data).unwrap_or(Value::Null),
        "createdAt": record.created_ms,
        "expiresAt": record.expires_ms,
        "signed": record.signature.is_some(),
    })
}
