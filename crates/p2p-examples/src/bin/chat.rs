//! The protocol-extension example that actually chats: a `ProtocolHandler`
//! with rooms (join, leave, message), two nodes talking both ways.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use async_trait::async_trait;
use p2p_core::{
    BroadcastOptions, HandlerError, Message, Node, NodeEvent, PeerId, ProtocolHandler, ProtocolName,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// Chat rooms: who is in which room, and what was said.
struct Chat {
    me: &'static str,
    rooms: Mutex<HashMap<String, HashSet<PeerId>>>,
    said: mpsc::UnboundedSender<String>,
}

#[async_trait]
impl ProtocolHandler for Chat {
    fn name(&self) -> ProtocolName {
        ProtocolName::new("chat").unwrap_or_else(|_| unreachable!("a valid name"))
    }

    async fn handle_message(
        &self,
        message: Arc<Message>,
        from: PeerId,
    ) -> Result<(), HandlerError> {
        let body: Value = serde_json::from_slice(&message.payload)?;
        let room = text(&body, "room", "lobby").to_owned();
        let line = match message.kind.as_str() {
            "chat-join-room" => {
                self.rooms
                    .lock()
                    .map_err(|_| "poisoned")?
                    .entry(room.clone())
                    .or_default()
                    .insert(from);
                format!("[{}] {} joined #{room}", self.me, text(&body, "nick", "?"))
            }
            "chat-leave-room" => {
                if let Some(members) = self.rooms.lock().map_err(|_| "poisoned")?.get_mut(&room) {
                    members.remove(&from);
                }
                format!("[{}] {} left #{room}", self.me, text(&body, "nick", "?"))
            }
            "chat-message" => format!(
                "[{}] #{room} <{}> {}",
                self.me,
                text(&body, "nick", "?"),
                text(&body, "text", "")
            ),
            other => return Err(format!("unknown chat message type {other}").into()),
        };
        println!("{line}");
        self.said.send(line)?;
        Ok(())
    }

    async fn on_peer_disconnected(&self, peer: PeerId) {
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.values_mut().for_each(|members| {
                members.remove(&peer);
            });
        }
    }
}

/// A string field of a chat payload, or `default`.
fn text<'a>(body: &'a Value, name: &str, default: &'a str) -> &'a str {
    body.get(name).and_then(Value::as_str).unwrap_or(default)
}

async fn say(node: &Node, kind: &str, body: Value) -> Result<()> {
    let message = node.sign(
        node.message(kind.parse()?)
            .protocol("chat".parse()?)
            .payload(serde_json::to_vec(&body)?),
    )?;
    let report = node
        .broadcast(&message, &BroadcastOptions::default())
        .await?;
    if !report.failed.is_empty() {
        bail!("broadcast failed: {:?}", report.failed);
    }
    Ok(())
}

async fn heard(lines: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> Result<()> {
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.recv().await {
            if line.contains(needle) {
                return Ok(());
            }
        }
        Err(anyhow!("handler gone"))
    })
    .await
    .map_err(|_| anyhow!("never heard {needle:?}"))?
}

fn chat_node(me: &'static str) -> Result<(Node, Arc<Chat>, mpsc::UnboundedReceiver<String>)> {
    let node = Node::builder()
        .listen("/ip4/127.0.0.1/tcp/0".parse()?)
        .build()?;
    let (said, lines) = mpsc::unbounded_channel();
    let chat = Arc::new(Chat {
        me,
        rooms: Mutex::default(),
        said,
    });
    Ok((node, chat, lines))
}

#[tokio::main]
async fn main() -> Result<()> {
    let (alice, alice_chat, mut alice_hears) = chat_node("alice")?;
    let (bob, bob_chat, mut bob_hears) = chat_node("bob")?;
    // Registered before start: the node wires it up when it runs.
    alice.register_handler(alice_chat.clone())?;
    bob.register_handler(bob_chat.clone())?;
    alice.start().await?;
    bob.start().await?;
    let bob_sees = bob.wait_for(WAIT, |e| {
        matches!(e.as_node(), Some(NodeEvent::PeerConnected { .. }))
    });
    let addr = bob.listen_addrs().await?.remove(0);
    alice.connect(addr).await?;
    bob_sees.await?;

    say(
        &alice,
        "chat-join-room",
        json!({"room": "lotus", "nick": "alice"}),
    )
    .await?;
    heard(&mut bob_hears, "alice joined #lotus").await?;
    say(
        &bob,
        "chat-join-room",
        json!({"room": "lotus", "nick": "bob"}),
    )
    .await?;
    heard(&mut alice_hears, "bob joined #lotus").await?;
    say(
        &alice,
        "chat-message",
        json!({"room": "lotus", "nick": "alice", "text": "hi bob, ready to sign?"}),
    )
    .await?;
    heard(&mut bob_hears, "ready to sign?").await?;
    say(
        &bob,
        "chat-message",
        json!({"room": "lotus", "nick": "bob", "text": "ready, nonce incoming"}),
    )
    .await?;
    heard(&mut alice_hears, "nonce incoming").await?;
    say(
        &bob,
        "chat-leave-room",
        json!({"room": "lotus", "nick": "bob"}),
    )
    .await?;
    heard(&mut alice_hears, "bob left #lotus").await?;

    let members = alice_chat
        .rooms
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .get("lotus")
        .map_or(0, HashSet::len);
    println!("alice sees {members} other member(s) left in #lotus");
    alice.stop().await?;
    bob.stop().await?;
    Ok(())
}
