//! Interop with a real js-libp2p 3.x peer (`shared/interop/js-peer`): TCP and
//! WebSocket dials both ways, Noise, yamux and mplex, identify, ping, the
//! Kademlia routing tables, the TypeScript system's resource records and
//! `/lotus/message/1.0.0` JSON messages, provider records stored and served
//! by our node, and a raw `/lotus/echo/1.0.0` stream.
//!
//! Needs Node >= 20 and npm; see `js_peer` for how the peer is found and
//! installed. Without them every test here fails with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod js_peer;

use std::time::Duration;

use common::{rid, rtype};
use futures::{AsyncReadExt, AsyncWriteExt};
use js_peer::{JsPeer, WAIT, is_ws};
use libp2p::StreamProtocol;
use p2p_core::{
    AnnounceOptions, DhtConfig, DhtModeSetting, Event, Multiaddr, Node, NodeBuilder, NodeConfig,
    NodeEvent, PeerId, RejectReason, ResourceError, Wire, WireChoice,
};
use serde_json::{Value, json};

const ECHO: StreamProtocol = StreamProtocol::new("/lotus/echo/1.0.0");

// ------------------------------------------------------------------ helpers

/// A node configuration on 127.0.0.1 (TCP and WS, port 0) in DHT `mode`.
fn config(mode: DhtModeSetting) -> NodeConfig {
    {
        let mut c = NodeConfig::default();
        c.listen = vec![
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            "/ip4/127.0.0.1/tcp/0/ws".parse().unwrap(),
        ];
        c.dht = {
            let mut c = DhtConfig::default();
            c.mode = mode;
            c
        };
        c.accept_typescript_messages = true;
        c
    }
}

async fn start(config: NodeConfig) -> Node {
    let node = NodeBuilder::from_config(config).build().unwrap();
    node.start().await.unwrap();
    node
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Tcp,
    Ws,
}

/// Our listen address on `via`, with `/p2p/<id>`.
async fn our_addr(node: &Node, via: Via) -> Multiaddr {
    node.listen_addrs()
        .await
        .unwrap()
        .into_iter()
        .find(|a| is_ws(a) == (via == Via::Ws))
        .expect("a listen address for the transport")
        .with_p2p(node.peer_id())
        .unwrap()
}

fn js_addr(js: &JsPeer, via: Via) -> Multiaddr {
    match via {
        Via::Tcp => js.tcp_addr(),
        Via::Ws => js.ws_addr(),
    }
}

/// A future resolving with `node`'s identify event for `peer`.
fn identified(node: &Node, peer: PeerId) -> impl Future<Output = (String, Vec<String>)> + use<> {
    let event = common::identified(node, peer);
    async move {
        match event.await {
            Event::Node(NodeEvent::PeerIdentified {
                agent, protocols, ..
            }) => (agent, protocols),
            other => unreachable!("{other:?}"),
        }
    }
}

/// A future resolving with the address of `node`'s connection to `peer`.
fn connected(node: &Node, peer: PeerId) -> impl Future<Output = Multiaddr> + use<> {
    let event = common::connected_to(node, peer);
    async move {
        match event.await {
            Event::Node(NodeEvent::PeerConnected { address, .. }) => address,
            other => unreachable!("{other:?}"),
        }
    }
}

/// Polls `node` until it has measured a ping round trip to `peer` (ping has
/// no event of its own), bounded by [`WAIT`].
async fn wait_rtt(node: &Node, peer: PeerId) -> Duration {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(rtt) = node.peer_info(peer).await.unwrap().and_then(|i| i.rtt) {
            return rtt;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ping round trip to {peer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes one unsigned-varint length-prefixed frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    let mut n = payload.len();
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(payload);
    out
}

/// Sends one frame on a fresh `/lotus/echo/1.0.0` stream and returns the echo.
async fn echo_once(node: &Node, peer: PeerId, payload: &[u8]) -> Vec<u8> {
    let exchange = async {
        let mut stream = node.open_stream(peer, ECHO).await.unwrap();
        stream.write_all(&frame(payload)).await.unwrap();
        stream.flush().await.unwrap();
        let mut len = 0usize;
        for shift in (0..).step_by(7).take(10) {
            let mut byte = [0u8];
            stream.read_exact(&mut byte).await.unwrap();
            len |= usize::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        assert!(len <= 1 << 20, "echo frame of {len} bytes");
        let mut reply = vec![0u8; len];
        stream.read_exact(&mut reply).await.unwrap();
        stream.close().await.unwrap();
        reply
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("echo within the deadline")
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------- connections

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Muxer {
    Yamux,
    Mplex,
}

/// One connection between our node and a js peer over `via` and `muxer`,
/// dialled by js or by us, checked from both ends: transport, Noise, muxer,
/// identify both ways, ping both ways, and an echo stream.
async fn connection_case(via: Via, muxer: Muxer, js_dials: bool) {
    let js_args: &[&str] = match muxer {
        // js offers both (its default); we offer yamux only.
        Muxer::Yamux => &[],
        Muxer::Mplex => &["--muxers", "mplex"],
    };
    let js = JsPeer::spawn(js_args).await;
    let node = start({
        let mut c = config(DhtModeSetting::Client);
        c.mplex = muxer == Muxer::Mplex;
        c
    })
    .await;
    let we = node.peer_id();
    let we_identify = identified(&node, js.peer_id);
    let we_connect = connected(&node, js.peer_id);

    if js_dials {
        let target = our_addr(&node, via).await;
        let dial = js
            .ok(json!({"cmd": "dial", "target": target.to_string(), "timeout": 20_000}))
            .await;
        assert_eq!(dial["peerId"], we.to_string());
    } else {
        let target = js_addr(&js, via);
        assert_eq!(node.connect(target).await.unwrap(), js.peer_id);
    }

    // js's view of the connection.
    let open = js.event_for("connection:open", we).await;
    let expected_muxer = match muxer {
        Muxer::Yamux => "/yamux/1.0.0",
        Muxer::Mplex => "/mplex/6.7.0",
    };
    assert_eq!(open["multiplexer"], expected_muxer, "{open}");
    assert_eq!(open["encryption"], "/noise", "{open}");
    assert_eq!(
        open["direction"],
        if js_dials { "outbound" } else { "inbound" },
        "{open}"
    );
    let js_remote: Multiaddr = open["remoteAddr"].as_str().unwrap().parse().unwrap();
    assert_eq!(is_ws(&js_remote), via == Via::Ws, "js sees {js_remote}");
    // Ours.
    let our_remote = we_connect.await;
    assert_eq!(is_ws(&our_remote), via == Via::Ws, "we see {our_remote}");

    // Identify, both ways.
    let (agent, protocols) = we_identify.await;
    assert!(agent.starts_with("js-libp2p/"), "js agent {agent:?}");
    for p in [
        "/ipfs/ping/1.0.0",
        "/lotus/echo/1.0.0",
        "/lotus/message/1.0.0",
    ] {
        assert!(
            protocols.iter().any(|q| q == p),
            "js lacks {p}: {protocols:?}"
        );
    }
    let js_identify = js.event_for("peer:identify", we).await;
    assert_eq!(
        js_identify["agentVersion"],
        node.config().agent_version.as_str()
    );
    let ours = strings(&js_identify["protocols"]);
    for p in [
        "/ipfs/id/1.0.0",
        "/ipfs/ping/1.0.0",
        "/lotus/message/1.0.0",
        "/lotus/p2p/1.0.0",
    ] {
        assert!(ours.contains(&p), "js sees no {p} in {ours:?}");
    }

    // Ping, both ways.
    let ping = js
        .ok(json!({"cmd": "ping", "target": we.to_string(), "timeout": 10_000}))
        .await;
    assert!(ping["rtt"].is_number(), "{ping}");
    wait_rtt(&node, js.peer_id).await;

    // A raw stream on the custom protocol.
    let payload = format!("hello over {via:?}/{muxer:?}, js dials: {js_dials}");
    let reply = echo_once(&node, js.peer_id, payload.as_bytes()).await;
    assert_eq!(reply, payload.as_bytes());
    let served = js.event_for("echo:served", we).await;
    assert_eq!(
        (served["frames"].as_u64(), served["trailingBytes"].as_u64()),
        (Some(1), Some(0))
    );

    // Still one connection, the one checked above.
    assert_eq!(
        node.peer_info(js.peer_id)
            .await
            .unwrap()
            .unwrap()
            .connections,
        1
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_we_dial_js() {
    connection_case(Via::Tcp, Muxer::Yamux, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_js_dials_us() {
    connection_case(Via::Tcp, Muxer::Yamux, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_we_dial_js() {
    connection_case(Via::Ws, Muxer::Yamux, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_js_dials_us() {
    connection_case(Via::Ws, Muxer::Yamux, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mplex_we_dial_a_js_peer_that_offers_only_mplex() {
    connection_case(Via::Tcp, Muxer::Mplex, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mplex_a_js_peer_that_offers_only_mplex_dials_us() {
    connection_case(Via::Tcp, Muxer::Mplex, true).await;
}

// ------------------------------------------------------------------- kad

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kad_routing_tables_fill_on_both_sides_whoever_dials() {
    let js = JsPeer::spawn(&["--dht-server"]).await;
    let dialer = start(config(DhtModeSetting::Server)).await;
    let dialled = start(config(DhtModeSetting::Server)).await;
    // We dial js; js dials the other node (an inbound connection for us,
    // where js's address comes from identify).
    dialer.connect(js.tcp_addr()).await.unwrap();
    let target = our_addr(&dialled, Via::Tcp).await;
    js.ok(json!({"cmd": "dial", "target": target.to_string(), "timeout": 20_000}))
        .await;
    common::wait_table_at_least(&dialer, 1).await;
    common::wait_table_at_least(&dialled, 1).await;
    for node in [&dialer, &dialled] {
        let dht = node.stats().await.unwrap().dht;
        assert!(dht.ready);
        assert_eq!(dht.mode, p2p_core::DhtMode::Server);
    }
    let routing = js
        .wait_routing_contains(&[dialer.peer_id(), dialled.peer_id()])
        .await;
    assert_eq!(routing["mode"], "server");
    assert!(routing["size"].as_u64().unwrap() >= 2, "{routing}");
}

// ------------------------------------------------------------- resources

/// Our DHT-server node connected to a js DHT server, both routing tables
/// holding the other.
async fn dht_pair(config: NodeConfig) -> (JsPeer, Node) {
    let js = JsPeer::spawn(&["--dht-server"]).await;
    let node = start(config).await;
    node.connect(js.tcp_addr()).await.unwrap();
    common::wait_table_at_least(&node, 1).await;
    js.wait_routing_contains(&[node.peer_id()]).await;
    (js, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_announced_resource_is_discovered_by_our_node_when_it_accepts_unsigned_records() {
    let (js, node) = dht_pair({
        let mut c = config(DhtModeSetting::Server);
        c.accept_unsigned_records = true;
        c
    })
    .await;
    let announce = js
        .ok(json!({
            "cmd": "announce",
            "resourceType": "session",
            "resourceId": "js-s1",
            "data": {"status": "active", "n": 1},
        }))
        .await;
    assert_eq!(announce["dhtPut"], true, "{announce}");
    assert!(
        announce["putValueAccepted"].as_u64().unwrap() >= 1,
        "{announce}"
    );
    assert!(node.resource(&rtype("session"), &rid("js-s1")).is_none());
    let found = node
        .discover(&rtype("session"), &rid("js-s1"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(found.key.to_string(), "resource:session:js-s1");
    assert_eq!(found.creator, js.peer_id);
    let data: Value = serde_json::from_slice(&found.data).unwrap();
    assert_eq!(data, json!({"status": "active", "n": 1}));
    assert_eq!(
        Some(found.created_ms),
        announce["announcement"]["createdAt"].as_u64()
    );
    assert_eq!(found.expires_ms, None, "the seed sets no expiry by default");
    assert!(
        found.signature.is_none(),
        "the TypeScript system never signs"
    );

    // A node with the default policy refuses the same (unsigned) record, from
    // js and from the first node alike, and says so in its stats.
    let strict = start(config(DhtModeSetting::Server)).await;
    strict.connect(js.tcp_addr()).await.unwrap();
    common::wait_table_at_least(&strict, 1).await;
    let refused = strict
        .discover(&rtype("session"), &rid("js-s1"), Duration::from_secs(10))
        .await;
    assert!(
        matches!(
            refused,
            Err(ResourceError::NotFound | ResourceError::Timeout)
        ),
        "{refused:?}"
    );
    let rejected = strict
        .stats()
        .await
        .unwrap()
        .messages
        .rejected(RejectReason::InvalidRecord);
    assert!(rejected >= 1, "no invalid record counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_we_announce_is_discovered_by_js() {
    let (js, node) = dht_pair(config(DhtModeSetting::Server)).await;
    let announced = node
        .announce(
            &rtype("offer"),
            &rid("rust-o1"),
            r#"{"amount":5,"asset":"XPI"}"#,
            {
                let mut c = AnnounceOptions::default();
                c.ttl = Some(Duration::from_secs(600));
                c
            },
        )
        .await
        .unwrap();
    assert!(announced.stored_by >= 1, "js stored nothing");
    let found = js
        .ok(json!({
            "cmd": "discover",
            "resourceType": "offer",
            "resourceId": "rust-o1",
            "cache": false,
        }))
        .await;
    assert_eq!(found["source"], "dht", "{found}");
    assert_eq!(found["matchesKey"], true, "{found}");
    assert_eq!(found["expired"], false, "{found}");
    let from = found["from"].as_str().unwrap();
    assert!(
        from == node.peer_id().to_string() || from == js.peer_id.to_string(),
        "{found}"
    );
    let a = &found["announcement"];
    assert_eq!(a["creatorPeerId"], node.peer_id().to_string());
    assert_eq!(a["resourceType"], "offer");
    assert_eq!(a["resourceId"], "rust-o1");
    assert_eq!(a["data"], json!({"amount": 5, "asset": "XPI"}));
    assert_eq!(a["createdAt"].as_u64(), Some(announced.record.created_ms));
    assert_eq!(a["expiresAt"].as_u64(), announced.record.expires_ms);
    // Our signature travels in Node's Buffer form; TypeScript ignores it.
    assert_eq!(a["signature"]["type"], "Buffer", "{found}");
    assert_eq!(a["signature"]["data"].as_array().map(Vec::len), Some(64));
}

// ------------------------------------------------------------- providers

/// js provides, our node stores the ADD_PROVIDER and finds it with
/// `providers`, and with the provider gone a second js node that only knows
/// us finds it through our answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_provider_record_is_stored_and_served_by_our_node() {
    let (provider, node) = dht_pair(config(DhtModeSetting::Server)).await;
    let provided = provider
        .ok(json!({"cmd": "provide", "key": "lotus-interop-provider", "timeout": 10_000}))
        .await;
    assert!(
        provided["addProviderSent"].as_u64().unwrap() >= 1,
        "{provided}"
    );
    let provider_id = provider.peer_id;
    let ours = node
        .providers("lotus-interop-provider", WAIT)
        .await
        .unwrap();
    assert_eq!(ours, vec![provider_id]);
    let gone = node.wait_for(WAIT, move |e| {
        matches!(e.as_node(), Some(NodeEvent::PeerDisconnected { peer, .. }) if *peer == provider_id)
    });
    provider.stop().await;
    gone.await.unwrap();

    let seeker = JsPeer::spawn(&[]).await; // a DHT client
    let target = our_addr(&node, Via::Tcp).await;
    seeker
        .ok(json!({"cmd": "dial", "target": target.to_string(), "timeout": 20_000}))
        .await;
    seeker.wait_routing_contains(&[node.peer_id()]).await;
    let found = seeker
        .ok(json!({"cmd": "findproviders", "key": "lotus-interop-provider", "timeout": 15_000}))
        .await;
    assert_eq!(found["dhtKeyHex"], provided["dhtKeyHex"]);
    assert!(
        strings(&found["providers"]).contains(&provider_id.to_string().as_str()),
        "{found}"
    );
    let addrs = &found["providerAddrs"][provider_id.to_string()];
    assert!(!strings(addrs).is_empty(), "no provider addresses: {found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_record_of_ours_is_found_by_js_in_client_and_server_mode() {
    for mode in [DhtModeSetting::Server, DhtModeSetting::Client] {
        let js = JsPeer::spawn(&["--dht-server"]).await;
        let node = start(config(mode)).await;
        node.connect(js.tcp_addr()).await.unwrap();
        common::wait_table_at_least(&node, 1).await;
        let name = format!("lotus-rust-provider-{mode:?}");
        assert!(node.provide(&name).await.unwrap(), "{mode:?}: nobody told");
        // A js client that knows only the js server looks it up there.
        let seeker = JsPeer::spawn(&[]).await;
        seeker
            .ok(json!({"cmd": "dial", "target": js.tcp_addr().to_string(), "timeout": 20_000}))
            .await;
        seeker.wait_routing_contains(&[js.peer_id]).await;
        let found = seeker
            .ok(json!({"cmd": "findproviders", "key": name, "timeout": 15_000}))
            .await;
        assert!(
            strings(&found["providers"]).contains(&node.peer_id().to_string().as_str()),
            "{mode:?}: {found}"
        );
        assert!(
            node.providers(&format!("{name}-other"), WAIT)
                .await
                .unwrap()
                .is_empty()
        );
        seeker.stop().await;
        js.stop().await;
    }
}

// -------------------------------------------------------------- messages

fn message_with_nonce(node: &Node, nonce: String) -> impl Future<Output = Event> + use<> {
    let wait = node.wait_for(WAIT, move |e| {
        matches!(e, Event::Message { message, .. } if message.nonce.as_ref() == nonce.as_bytes())
    });
    async move { wait.await.expect("message event") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_messages_arrive_and_stale_duplicate_and_forged_ones_are_rejected() {
    let js = JsPeer::spawn(&[]).await;
    let node = start(config(DhtModeSetting::Client)).await;
    let we = node.peer_id().to_string();
    let target = our_addr(&node, Via::Tcp).await;
    js.ok(json!({"cmd": "dial", "target": target.to_string(), "timeout": 20_000}))
        .await;

    // A plain message, as the seed's sendTo writes it.
    let mut events = node.subscribe();
    let sent = js
        .ok(json!({"cmd": "sendmsg", "target": we, "type": "chat", "payload": {"text": "hi"}}))
        .await;
    let message_id = sent["message"]["messageId"].as_str().unwrap().to_owned();
    let got = tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Message {
                from,
                message,
                id,
                verified,
                wire,
            } = events.recv().await.unwrap()
            {
                return (from, message, id, verified, wire);
            }
        }
    })
    .await
    .expect("the js message");
    let (from, message, id, verified, wire) = got;
    assert_eq!(from, js.peer_id);
    assert_eq!(wire, Wire::TypeScript);
    assert!(!verified, "TypeScript messages are unsigned");
    assert_eq!(message.from, js.peer_id);
    assert_eq!(message.kind.as_str(), "chat");
    assert_eq!(message.payload.as_ref(), br#"{"text":"hi"}"#);
    assert_eq!(message.nonce.as_ref(), message_id.as_bytes());
    assert_eq!(
        Some(message.timestamp_ms),
        sent["message"]["timestamp"].as_u64()
    );
    assert_eq!(id, message.id());

    // Ten minutes off either way: outside the 5-minute window.
    for offset in [-600_000i64, 600_000] {
        let skewed = common::rejection(&node, js.peer_id, RejectReason::ClockSkew);
        js.ok(json!({
            "cmd": "sendmsg", "target": we, "type": "chat",
            "payload": {"offset": offset}, "timestampOffset": offset,
        }))
        .await;
        skewed.await;
    }

    // The same message twice: one gets through, the other is a duplicate
    // (the two streams may be read in either order).
    let now = p2p_protocol::now_ms();
    let dup_id = format!("dup-{now}");
    let delivered = message_with_nonce(&node, dup_id.clone());
    let duplicate = common::rejection(&node, js.peer_id, RejectReason::Duplicate);
    let twice = json!({
        "cmd": "sendmsg", "target": we, "type": "chat", "payload": {"n": 1},
        "messageId": dup_id, "timestamp": now,
    });
    js.ok(twice.clone()).await;
    js.ok(twice).await;
    delivered.await;
    duplicate.await;
    // Same type, sender and messageId with another payload: the seed's hash
    // ignores the payload and would drop it; ours covers it, so it is new.
    let other_payload = node.wait_for(WAIT, move |e| {
        matches!(e, Event::Message { message, .. } if message.payload.as_ref() == br#"{"n":2}"#)
    });
    js.ok(json!({
        "cmd": "sendmsg", "target": we, "type": "chat", "payload": {"n": 2},
        "messageId": format!("dup-{now}"), "timestamp": now,
    }))
    .await;
    other_payload.await.unwrap();

    // A `from` that is not the connection's peer.
    let spoofed = common::rejection(&node, js.peer_id, RejectReason::SpoofedSender);
    js.ok(json!({
        "cmd": "sendmsg", "target": we, "type": "chat", "payload": {},
        "from": PeerId::random().to_string(),
    }))
    .await;
    spoofed.await;

    let stats = node.stats().await.unwrap().messages;
    assert_eq!(stats.received, 3, "{stats:?}");
    assert_eq!(stats.rejected(RejectReason::ClockSkew), 2, "{stats:?}");
    assert_eq!(stats.rejected(RejectReason::Duplicate), 1, "{stats:?}");
    assert_eq!(stats.rejected(RejectReason::SpoofedSender), 1, "{stats:?}");
    assert_eq!(stats.rejected_total(), 4, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_messages_reach_js_over_the_json_protocol() {
    let js = JsPeer::spawn(&[]).await;
    let node = start(config(DhtModeSetting::Client)).await;
    let we = node.peer_id();
    node.connect(js.tcp_addr()).await.unwrap();
    let kind = |s: &str| s.parse::<p2p_core::MessageType>().unwrap();

    // Signed, explicitly on the JSON protocol.
    let signed = node
        .sign(
            node.message(kind("chat"))
                .payload(&br#"{"text":"from rust"}"#[..]),
        )
        .unwrap();
    node.send_with(js.peer_id, &signed, WireChoice::TypeScript)
        .await
        .unwrap();
    let nonce = std::str::from_utf8(&signed.nonce).unwrap().to_owned();
    let got = js
        .event("our signed message", |e| {
            e["event"] == "message" && e["message"]["messageId"] == nonce.as_str()
        })
        .await;
    assert_eq!(got["from"], we.to_string(), "{got}");
    assert_eq!(got["fromMatchesSender"], true, "{got}");
    assert_eq!(got["protocol"], "/lotus/message/1.0.0");
    let m = &got["message"];
    assert_eq!(m["type"], "chat");
    assert_eq!(m["from"], we.to_string());
    assert_eq!(m["payload"], json!({"text": "from rust"}));
    assert_eq!(m["timestamp"].as_u64(), Some(signed.timestamp_ms));
    assert_eq!(m["signature"]["type"], "Buffer", "{got}");

    // Unsigned through plain `send`: js does not speak /lotus/p2p/1.0.0, so
    // it falls back to JSON, and stays there for the following sends.
    let mut nonces = Vec::new();
    for n in 0..4u8 {
        let plain = node
            .message(kind("status"))
            .to(js.peer_id)
            .payload(format!("[{n},2,3]").into_bytes())
            .build();
        node.send(js.peer_id, &plain).await.unwrap();
        nonces.push(std::str::from_utf8(&plain.nonce).unwrap().to_owned());
    }
    for (n, nonce) in nonces.iter().enumerate() {
        let got = js
            .event("an unsigned message", |e| {
                e["event"] == "message" && e["message"]["messageId"] == nonce.as_str()
            })
            .await;
        assert_eq!(got["fromMatchesSender"], true, "{got}");
        assert_eq!(got["message"]["to"], js.peer_id.to_string());
        assert_eq!(got["message"]["payload"], json!([n, 2, 3]));
        assert!(got["message"].get("signature").is_none(), "{got}");
    }
    let stats = js.ok(json!({"cmd": "msgstats"})).await;
    assert_eq!(stats["valid"], 5, "{stats}");
    assert_eq!(stats["invalid"], 0, "{stats}");
    assert_eq!(stats["duplicate"], 0, "{stats}");
    let ours = node.stats().await.unwrap().messages;
    assert_eq!((ours.sent, ours.send_failures), (5, 0), "{ours:?}");
}

/// A js-libp2p peer reaches a node of ours through a relay of ours (Circuit
/// Relay v2 on both sides) and its message arrives over the relayed
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_peer_reaches_our_node_through_our_relay() {
    let quiet = |mut c: NodeConfig| {
        c.nat.autonat = false;
        c.nat.hole_punching = false;
        c
    };
    let relay = start({
        let mut c = quiet(config(DhtModeSetting::Client));
        c.nat.relay_server = Some(p2p_core::RelayServerConfig::default());
        c
    })
    .await;
    let relay_addr = our_addr(&relay, Via::Tcp).await;
    let wallet = NodeBuilder::from_config({
        let mut c = quiet(config(DhtModeSetting::Client));
        c.nat.relays = vec![relay_addr];
        c
    })
    .build()
    .unwrap();
    let mut events = wallet.subscribe();
    wallet.start().await.unwrap();
    let relayed = tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Node(NodeEvent::RelayReserved { addr, .. }) = events.recv().await.unwrap()
            {
                return addr;
            }
        }
    })
    .await
    .expect("a reservation on our relay");

    let js = JsPeer::spawn(&[]).await;
    js.ok(json!({"cmd": "dial", "target": relayed.to_string(), "timeout": 20_000}))
        .await;
    js.ok(json!({
        "cmd": "sendmsg", "target": wallet.peer_id().to_string(),
        "type": "chat", "payload": {"via": "relay"},
    }))
    .await;
    let message = tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Message { from, message, .. } = events.recv().await.unwrap()
                && from == js.peer_id
            {
                return message;
            }
        }
    })
    .await
    .expect("the js message through the relay");
    assert_eq!(message.payload.as_ref(), br#"{"via":"relay"}"#);
    let js_info = wallet
        .peer_info(js.peer_id)
        .await
        .unwrap()
        .expect("js known");
    assert!(js_info.is_relayed(), "{js_info:?}");
}
