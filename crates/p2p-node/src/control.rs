//! Control on stdin: one command per line, one result line per command.
//!
//! ```text
//! connect <multiaddr>                 disconnect <peer>
//! peers                               stats
//! send <peer> <type> <json-payload>   broadcast <type> <json-payload>
//! announce <type> <id> <json-data> [ttl-seconds]
//! discover <type> <id> [timeout-ms]   resources <type>
//! announced
//! discover-from <type> <id> <creator-peer-id> [timeout-ms]
//! provide <name>                      providers <name> [timeout-ms]
//! ban <peer> [seconds]                unban <peer>
//! signer-key
//! musig2-sign <session-id> <msg32-hex> <pubkey-hex>,<pubkey-hex>,... [timeout-ms]
//! stop
//! ```
//!
//! At end of input the node keeps running until Ctrl-C / SIGTERM, so it can run
//! detached from a terminal.
//!
//! Lines are read with a bound: a line longer than [`MAX_LINE`] bytes is
//! answered with `{"cmd": <first word>, "ok": false, "code": "line_too_long",
//! ..}` and skipped up to its newline without being kept (at most `MAX_LINE`
//! bytes of it are held), and reading resumes with the next line. A line that
//! is not UTF-8 is answered with `"code": "not_utf8"` and skipped the same way.

use std::time::Duration;

use anyhow::{Context, Result};
use p2p_core::{AnnounceOptions, BroadcastOptions, Node, PeerId};
use p2p_musig2::lotus_musig2::PublicKey;
use p2p_musig2::{Blame, SessionError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use crate::output::Output;
use crate::signer::Signer;

/// Default bound on `discover` and `discover-from`.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on `musig2-sign`.
const SIGN_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest accepted command line (bounded reads).
pub(crate) const MAX_LINE: usize = 256 * 1024;

/// Longest command name echoed back in the answer to a refused line.
const MAX_ECHOED_CMD: usize = 32;

/// One line of control input.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line of at most [`MAX_LINE`] bytes, without its line ending.
    Text(String),
    /// A line longer than [`MAX_LINE`] bytes, skipped; its command word (as
    /// far as it lies in the first `MAX_LINE` bytes).
    TooLong(String),
    /// A line that is not UTF-8, skipped; its command word.
    NotUtf8(String),
}

/// Reads one line, keeping at most `max` bytes of it: the rest of a longer
/// line is consumed and dropped as it arrives, up to and including its
/// newline, so the next call starts at the next line. `buf` is scratch space,
/// reused across calls. `None` at end of input.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            if !any {
                return Ok(None);
            }
            break;
        }
        any = true;
        let (data, used, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (chunk.get(..i).unwrap_or_default(), i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        // Keep what fits (the start names the command), drop the rest.
        let room = max.saturating_sub(buf.len());
        too_long |= data.len() > room;
        buf.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        reader.consume(used);
        if done {
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let line = match std::str::from_utf8(buf) {
        Ok(text) if !too_long => Line::Text(text.to_owned()),
        _ => {
            let cmd = command_word(buf);
            if too_long {
                Line::TooLong(cmd)
            } else {
                Line::NotUtf8(cmd)
            }
        }
    };
    Ok(Some(line))
}

/// The first word of a refused line, as far as it is short readable text.
fn command_word(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes.get(..MAX_ECHOED_CMD).unwrap_or(bytes));
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Reads and executes commands until `stop` (returns) or end of input (waits).
pub(crate) async fn run(node: Node, signer: &Signer, out: Output) -> Result<()> {
    let mut input = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    while let Some(line) = read_line(&mut input, &mut buf, MAX_LINE).await? {
        // One long line should not keep its buffer for the life of the process.
        buf.clear();
        buf.shrink_to(8 * 1024);
        let line = match line {
            Line::Text(line) => line,
            Line::TooLong(cmd) => {
                out.error_code(
                    &cmd,
                    "line_too_long",
                    &format!("line too long (more than {MAX_LINE} bytes); skipped"),
                );
                continue;
            }
            Line::NotUtf8(cmd) => {
                out.error_code(&cmd, "not_utf8", "line is not UTF-8; skipped");
                continue;
            }
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if cmd == "stop" {
            out.ok("stop", json!({}));
            return Ok(());
        }
        match execute(&node, signer, cmd, rest.trim()).await {
            Ok(fields) => out.ok(cmd, fields),
            Err(e) => out.error_with(cmd, &format!("{e:#}"), failure_fields(&e)),
        }
    }
    std::future::pending::<()>().await;
    Ok(())
}

/// An argument that does not parse: the caller's mistake (HTTP 400).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadInput(String);

fn bad(text: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(text.into()))
}

/// True when a command failed on its arguments, not in the node.
pub(crate) fn is_bad_input(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.is::<BadInput>()
            || e.is::<p2p_core::NameError>()
            || e.is::<p2p_core::libp2p::multiaddr::Error>()
            || e.is::<std::num::ParseIntError>()
            || e.is::<p2p_musig2::lotus_musig2::Error>()
    })
}

/// What a failure adds to its answer: a failed session's code and blame.
pub(crate) fn failure_fields(error: &anyhow::Error) -> Value {
    match error.downcast_ref::<SessionError>() {
        Some(failed) => json!({"code": failed.code(), "blame": blame_json(&failed.blame())}),
        None if is_bad_input(error) => json!({"code": "bad_input"}),
        None => json!({}),
    }
}

fn peer(text: &str) -> Result<PeerId> {
    text.parse()
        .map_err(|_| bad(format!("not a PeerId: {text}")))
}

/// Splits off the first word.
fn word(text: &str) -> Result<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return Err(bad("missing argument"));
    }
    Ok(text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(w, r)| (w, r.trim_start())))
}

/// JSON text, checked.
fn json_text(text: &str) -> Result<Vec<u8>> {
    let value: Value = serde_json::from_str(text).map_err(|_| bad(format!("not JSON: {text}")))?;
    Ok(serde_json::to_vec(&value)?)
}

/// The 32 bytes of a hex argument.
fn bytes32(text: &str, what: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| bad(format!("{what}: not 32 bytes of hex")))?;
    Ok(out)
}

fn blame_json(blame: &[Blame]) -> Value {
    blame
        .iter()
        .map(|b| {
            json!({
                "publicKey": b.public_key.to_string(),
                "peerId": b.peer.map(|p| p.to_string()),
                "reason": b.reason.as_str(),
            })
        })
        .collect()
}

pub(crate) async fn execute(node: &Node, signer: &Signer, cmd: &str, args: &str) -> Result<Value> {
    match cmd {
        "ban" => {
            let (who, rest) = word(args)?;
            let duration = match rest.trim() {
                "" => None,
                secs => Some(Duration::from_secs(
                    secs.parse().map_err(|_| bad("seconds"))?,
                )),
            };
            let banned = node.ban(peer(who)?, duration).await?;
            Ok(json!({"peerId": who, "banned": banned}))
        }
        "unban" => {
            let unbanned = node.unban(peer(args.trim())?).await?;
            Ok(json!({"peerId": args.trim(), "unbanned": unbanned}))
        }
        "signer-key" => {
            let signer = signer.get().await?;
            Ok(json!({"publicKey": signer.public_key().to_string()}))
        }
        "musig2-sign" => {
            let (session, rest) = word(args)?;
            let (message, rest) = word(rest)?;
            let (keys, rest) = word(rest)?;
            let timeout = match rest.trim() {
                "" => SIGN_TIMEOUT,
                ms => Duration::from_millis(ms.parse().context("timeout-ms")?),
            };
            let message = bytes32(message, "message")?;
            let keys = keys
                .split(',')
                .map(|k| {
                    k.parse::<PublicKey>()
                        .with_context(|| format!("not a public key: {k}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let signed = signer
                .advertised()
                .await?
                .sign(session, &message, &keys, timeout)
                .await?;
            Ok(json!({
                "session": session,
                "sessionHash": signed.session.to_string(),
                "aggregatedKey": signed.aggregated_key.to_string(),
                "signature": signed.signature.to_string(),
                "signers": signed.signers.iter().map(|(k, p)| json!({"publicKey": k.to_string(), "peerId": p.to_string()})).collect::<Vec<_>>(),
            }))
        }
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
        "peers" => Ok(json!({"peers": node.connected_peers().await?})),
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
                "failed": report.failed.iter().map(|(p, e)| json!({"peerId": p.to_string(), "error": format!("{:#}", anyhow::Error::new(e.clone()))})).collect::<Vec<_>>(),
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
            let options = {
                let mut c = AnnounceOptions::default();
                c.ttl = ttl;
                c.republish = true;
                c
            };
            let announced = node
                .announce(&ty.parse()?, &id.parse()?, data, options)
                .await?;
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
            let records = node
                .discover_all(&ty.parse()?, &id.parse()?, timeout)
                .await?;
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
            let record = node
                .discover_from(&ty.parse()?, &id.parse()?, peer(creator)?, timeout)
                .await?;
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
        "announced" => Ok(json!({
            "resources": node.announced().iter().map(|r| record_json(r)).collect::<Vec<_>>(),
        })),
        "resources" => {
            let records = node.local_resources(&args.trim().parse()?, &[]);
            Ok(json!({"resources": records.iter().map(|r| record_json(r)).collect::<Vec<_>>()}))
        }
        "stats" => {
            let mut stats = serde_json::to_value(node.stats().await?)?;
            crate::output::merge(
                &mut stats,
                &json!({
                    "peerId": node.peer_id(),
                    "musig2": signer.existing().map(|m| json!({
                        "publicKey": m.public_key().to_string(),
                        "runningSessions": m.running_sessions(),
                        "bufferedMessages": m.buffered_messages(),
                        "rejected": m.rejections().into_iter().map(|(r, n)| (r.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
                    })),
                }),
            );
            Ok(stats)
        }
        other => Err(bad(format!("unknown command {other:?}"))),
    }
}

fn record_json(record: &p2p_core::ResourceRecord) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn lines(input: &[u8], max: usize) -> (Vec<Line>, usize) {
        let mut reader = BufReader::new(input);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        let mut most = 0;
        while let Some(line) = read_line(&mut reader, &mut buf, max).await.unwrap() {
            most = most.max(buf.capacity());
            lines.push(line);
        }
        (lines, most)
    }

    #[tokio::test]
    async fn a_line_four_times_too_long_is_refused_without_being_kept_and_the_next_is_read() {
        let mut input = b"send 12D3KooW x \"".to_vec();
        input.resize(MAX_LINE * 4, b'a');
        input.extend_from_slice(b"\"\nstats\r\n");
        let mut reader = BufReader::new(&input[..]);
        let mut buf = Vec::new();
        let first = read_line(&mut reader, &mut buf, MAX_LINE).await.unwrap();
        assert_eq!(first, Some(Line::TooLong("send".into())));
        // At most the bound was held (buffering the whole line would have
        // taken four times as much).
        assert!(buf.capacity() <= MAX_LINE, "{}", buf.capacity());
        let second = read_line(&mut reader, &mut buf, MAX_LINE).await.unwrap();
        assert_eq!(second, Some(Line::Text("stats".into())));
        assert_eq!(
            read_line(&mut reader, &mut buf, MAX_LINE).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn lines_up_to_the_bound_pass_and_bad_utf8_is_skipped() {
        let mut input = vec![b'y'; 10];
        input.extend_from_slice(b"\n");
        input.extend_from_slice(&[b'z'; 11]);
        input.extend_from_slice(b"\npeers \xff\xfe\n\nlast");
        let (got, most) = lines(&input, 10).await;
        assert!(most <= 16, "{most}");
        assert_eq!(
            got,
            [
                Line::Text("y".repeat(10)),
                Line::TooLong("z".repeat(10)),
                Line::NotUtf8("peers".into()),
                Line::Text(String::new()),
                Line::Text("last".into()),
            ]
        );
    }
}
