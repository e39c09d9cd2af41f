//! No message lost to or from TypeScript nodes under load, against the real
//! js-libp2p reference peer configured as the TypeScript system's Phase-1
//! nodes are: mplex only, and message streams it never closes (its default).
//!
//! - A burst of message streams from one TypeScript peer, up to the per-peer
//!   cap, all arrive (our accept path used to keep one waiting stream per
//!   connection and silently drop the rest).
//! - A DHT bootstrap and back-to-back sends right after connecting keep the
//!   mplex connection alive (its muxer aborts a connection whose remote opens
//!   more than 5 streams in a second: ours are paced).
//! - 100 messages to a node that never closes its message streams all arrive
//!   (js-libp2p resets the 33rd open one on a connection: we move to a fresh
//!   connection before that), and a reset is a send failure, never a success.
//!
//! Needs Node >= 20 and npm (see `js_peer`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod js_peer;

use std::time::Duration;

use js_peer::{JsPeer, WAIT};
use p2p_core::{
    DhtConfig, DhtModeSetting, Event, MessageType, Node, NodeBuilder, NodeConfig, NodeEvent,
    PeerId, SendError, TYPESCRIPT_PROTOCOL, WireChoice,
};
use serde_json::{Value, json};

/// A node on 127.0.0.1 (port 0) that offers mplex and serves the TypeScript
/// message protocol.
fn config(mode: DhtModeSetting) -> NodeConfig {
    {
        let mut c = NodeConfig::default();
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        c.dht = {
            let mut c = DhtConfig::default();
            c.mode = mode;
            c
        };
        c.mplex = true;
        c.accept_typescript_messages = true;
        c
    }
}

async fn start(config: NodeConfig) -> Node {
    let node = NodeBuilder::from_config(config).build().unwrap();
    node.start().await.unwrap();
    node
}

/// The js peer as the TypeScript system's nodes run: mplex only.
async fn typescript_node(extra: &[&str]) -> JsPeer {
    let mut args = vec!["--muxers", "mplex"];
    args.extend_from_slice(extra);
    JsPeer::spawn(&args).await
}

/// Our node's TCP address with `/p2p/<id>`.
async fn our_addr(node: &Node) -> String {
    let addr = node.listen_addrs().await.unwrap().remove(0);
    format!("{addr}/p2p/{}", node.peer_id())
}

fn chat(node: &Node, n: usize) -> p2p_core::Message {
    node.message("chat".parse::<MessageType>().unwrap())
        .payload(format!(r#"{{"n":{n}}}"#).into_bytes())
        .build()
}

/// Messages the js peer has accepted.
async fn js_valid(js: &JsPeer) -> u64 {
    js.ok(json!({"cmd": "msgstats"})).await["valid"]
        .as_u64()
        .unwrap()
}

/// Waits until the js peer has accepted `count` messages.
async fn wait_js_valid(js: &JsPeer, count: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = js.ok(json!({"cmd": "msgstats"})).await;
        if stats["valid"].as_u64() == Some(count) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "js accepted {stats} of {count}"
        );
        // Each message is one `message` event: wait for the next one.
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            js.event("a message", |e| e["event"] == "message"),
        )
        .await;
    }
}

/// Disconnections from `peer` seen on `events` so far.
fn disconnections(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    peer: PeerId,
) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Node(NodeEvent::PeerDisconnected { peer: p, cause, .. }) = &event
            && *p == peer
        {
            seen.push(format!("{cause:?}"));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_typescript_message_streams_arrives_whole() {
    let js = typescript_node(&[]).await;
    let node = start(config(DhtModeSetting::Client)).await;
    let we = node.peer_id().to_string();
    js.ok(json!({"cmd": "dial", "target": our_addr(&node).await, "timeout": 20_000}))
        .await;

    // 30, then the whole per-peer cap of 32, each message on its own stream
    // and all of them at once, as the TypeScript node sends.
    let mut expected = 0;
    for burst in [30u64, 32] {
        let flood = js
            .ok(json!({
                "cmd": "flood", "target": we, "protocolId": TYPESCRIPT_PROTOCOL.as_ref(),
                "count": burst, "msgType": "chat", "concurrency": burst,
            }))
            .await;
        assert_eq!(flood["succeeded"].as_u64(), Some(burst), "{flood}");
        expected += burst;
        // Fails on any rejection (a refused stream is counted as one).
        common::wait_received(&node, expected).await;
    }
    let stats = node.stats().await.unwrap().messages;
    assert_eq!(stats.received, 62, "{stats:?}");
    assert_eq!(stats.rejected_total(), 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dht_bootstrap_and_back_to_back_sends_keep_the_mplex_connection() {
    let js = typescript_node(&["--dht-server"]).await;
    let mut config = config(DhtModeSetting::Server);
    // Bootstrapping through the js node: kad lookups right after connecting.
    config.bootstrap = vec![js.tcp_addr()];
    let node = NodeBuilder::from_config(config).build().unwrap();
    let mut events = node.subscribe();
    node.start().await.unwrap();
    common::connected_to(&node, js.peer_id).await;

    for n in 0..10 {
        node.send_with(js.peer_id, &chat(&node, n), WireChoice::TypeScript)
            .await
            .unwrap_or_else(|e| panic!("send {n}: {e}\n{}", js.diag()));
    }
    wait_js_valid(&js, 10).await;
    // The bootstrap ran over the same connection.
    js.wait_routing_contains(&[node.peer_id()]).await;
    assert_eq!(
        disconnections(&mut events, js.peer_id),
        Vec::<String>::new()
    );
    let peers = js.ok(json!({"cmd": "peers"})).await;
    let ours = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peerId"] == node.peer_id().to_string())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        ours["connections"].as_array().map(Vec::len),
        Some(1),
        "one connection from start to end: {peers}"
    );
    let stats = node.stats().await.unwrap().messages;
    assert_eq!((stats.sent, stats.send_failures), (10, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_messages_reach_a_node_that_never_closes_its_streams() {
    let js = typescript_node(&[]).await;
    let node = start(config(DhtModeSetting::Client)).await;
    node.connect(js.tcp_addr()).await.unwrap();

    let sending = async {
        for n in 0..100 {
            node.send_with(js.peer_id, &chat(&node, n), WireChoice::TypeScript)
                .await
                .unwrap_or_else(|e| panic!("send {n}: {e}\n{}", js.diag()));
        }
    };
    // Paced at 5 new streams per 1.5 s on mplex, and a fresh connection
    // every 30 messages: about 35 s.
    tokio::time::timeout(Duration::from_secs(90), sending)
        .await
        .expect("100 sends within 90 s");
    wait_js_valid(&js, 100).await;
    assert_eq!(js_valid(&js).await, 100);
    let stats = node.stats().await.unwrap().messages;
    assert_eq!((stats.sent, stats.send_failures), (100, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_stream_reset_after_negotiation_is_a_send_failure() {
    let js = typescript_node(&[]).await;
    let node = start(config(DhtModeSetting::Client)).await;
    node.connect(js.tcp_addr()).await.unwrap();

    // Hold the peer's 32 message streams open ourselves, on the one connection
    // (paced: about 10 s).
    let mut held = Vec::new();
    for _ in 0..32 {
        held.push(
            node.open_stream(js.peer_id, TYPESCRIPT_PROTOCOL)
                .await
                .expect("a message stream"),
        );
    }
    let refused = node
        .send_with(js.peer_id, &chat(&node, 0), WireChoice::TypeScript)
        .await;
    assert!(
        matches!(refused, Err(SendError::Reset(_))),
        "over the peer's limit: {refused:?}"
    );
    let stats = node.stats().await.unwrap().messages;
    assert_eq!((stats.sent, stats.send_failures), (0, 1), "{stats:?}");
    assert_eq!(js_valid(&js).await, 0);
    drop(held);
}

/// Counts the raw streams it is handed, reading each to its end.
struct StreamCounter(tokio::sync::mpsc::UnboundedSender<Vec<u8>>);

const RAW: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/lotus/test-raw/1.0.0");

#[async_trait::async_trait]
impl p2p_core::ProtocolHandler for StreamCounter {
    fn name(&self) -> p2p_core::ProtocolName {
        "raw-counter".parse().unwrap()
    }
    fn stream_protocol(&self) -> Option<libp2p::StreamProtocol> {
        Some(RAW)
    }
    async fn handle_message(
        &self,
        _: std::sync::Arc<p2p_core::Message>,
        _: PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        Ok(())
    }
    async fn handle_stream(
        &self,
        mut stream: libp2p::Stream,
        _: PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        use futures::AsyncReadExt;
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await?;
        self.0.send(got)?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_raw_streams_reaches_the_handler_whole() {
    let js = typescript_node(&[]).await;
    let node = NodeBuilder::from_config(config(DhtModeSetting::Client))
        .build()
        .unwrap();
    let (seen, mut streams) = tokio::sync::mpsc::unbounded_channel();
    node.register_handler(std::sync::Arc::new(StreamCounter(seen)))
        .unwrap();
    node.start().await.unwrap();
    js.ok(json!({"cmd": "dial", "target": our_addr(&node).await, "timeout": 20_000}))
        .await;

    let flood = js
        .ok(json!({
            "cmd": "flood", "target": node.peer_id().to_string(), "protocolId": RAW.as_ref(),
            // Up to the per-peer cap of a handler's raw streams (32, a
            // TypeScript node's own per-connection limit), all at once.
            "count": 32, "hex": "0102", "concurrency": 32,
        }))
        .await;
    assert_eq!(flood["succeeded"].as_u64(), Some(32), "{flood}");
    for n in 0..32 {
        let got = tokio::time::timeout(WAIT, streams.recv())
            .await
            .unwrap_or_else(|_| panic!("stream {n} of 32 never reached the handler"));
        assert_eq!(got, Some(vec![1, 2]));
    }
    let stats = node.stats().await.unwrap().messages;
    assert_eq!(stats.rejected_total(), 0, "{stats:?}");
}
