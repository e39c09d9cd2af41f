//! Test scaffolding shared by the p2p-core integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use p2p_core::{DhtConfig, DhtModeSetting, Event, Node, NodeBuilder, NodeEvent, TransportKind};
use p2p_types::PeerId;

/// Upper bound on any single wait in these tests. Generous because CI machines
/// are shared; waits end as soon as the awaited event happens.
pub const WAIT: Duration = Duration::from_secs(20);

/// A resource type from a name the test knows is valid.
pub fn rtype(name: impl AsRef<str>) -> p2p_core::ResourceType {
    name.as_ref().parse().unwrap()
}

/// A resource id from a name the test knows is valid.
pub fn rid(name: impl AsRef<str>) -> p2p_core::ResourceId {
    name.as_ref().parse().unwrap()
}

/// A DHT configuration pinned to `mode` (Auto never turns server on loopback).
pub fn dht(mode: DhtModeSetting) -> DhtConfig {
    {
        let mut c = DhtConfig::default();
        c.mode = mode;
        c
    }
}

/// A builder for a node on TCP loopback, port 0.
pub fn tcp_builder(mode: DhtModeSetting) -> NodeBuilder {
    Node::builder()
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .dht(dht(mode))
}

/// Builds and starts.
pub async fn started(builder: NodeBuilder) -> Node {
    let node = builder.build().unwrap();
    node.start().await.unwrap();
    node
}

/// A started node on TCP loopback, port 0.
pub async fn tcp_node(mode: DhtModeSetting) -> Node {
    started(tcp_builder(mode)).await
}

/// A builder for a node on the memory transport.
pub fn memory_builder(mode: DhtModeSetting) -> NodeBuilder {
    Node::builder()
        .transport(TransportKind::Memory)
        .listen("/memory/0".parse().unwrap())
        .dht(dht(mode))
}

/// A started node on the memory transport.
pub async fn memory_node(mode: DhtModeSetting) -> Node {
    let node = Node::builder()
        .transport(TransportKind::Memory)
        .listen("/memory/0".parse().unwrap())
        .dht(dht(mode))
        .build()
        .unwrap();
    node.start().await.unwrap();
    node
}

/// The first listen address of `node`, with `/p2p/<id>` appended.
pub async fn dial_addr(node: &Node) -> p2p_types::Multiaddr {
    let addr = node.listen_addrs().await.unwrap().remove(0);
    addr.with_p2p(node.peer_id()).unwrap()
}

/// Routing-table size of `node`.
pub async fn table_size(node: &Node) -> usize {
    node.stats().await.unwrap().dht.routing_table_size
}

/// Waits (bounded by [`WAIT`]) until `node`'s routing table holds at least `n`
/// peers. Subscribes before checking, so no update can slip between the two.
pub async fn wait_table_at_least(node: &Node, n: usize) {
    let mut events = node.subscribe();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let size = table_size(node).await;
        if size >= n {
            return;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event stream ended: {e}"),
            Err(_) => panic!(
                "routing table of {} stayed at {size}, wanted {n}",
                node.peer_id()
            ),
        }
    }
}

/// A future resolving when `node` reports `peer` connected.
pub fn connected_to(node: &Node, peer: PeerId) -> impl std::future::Future<Output = Event> + use<> {
    let wait = node.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerConnected { peer: p, .. }) if *p == peer),
    );
    async move { wait.await.expect("peer connected event") }
}

/// A future resolving when `node` reports `peer` identified.
pub fn identified(node: &Node, peer: PeerId) -> impl std::future::Future<Output = Event> + use<> {
    let wait = node.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerIdentified { peer: p, .. }) if *p == peer),
    );
    async move { wait.await.expect("peer identified event") }
}

/// Two client-mode TCP nodes, `a` connected to `b`, both sides aware.
pub async fn connected_pair() -> (Node, Node) {
    connect_pair(
        tcp_node(DhtModeSetting::Client).await,
        tcp_node(DhtModeSetting::Client).await,
    )
    .await
}

/// `a` dials `b`; returns once both see the connection.
pub async fn connect_pair(a: Node, b: Node) -> (Node, Node) {
    let b_sees = connected_to(&b, a.peer_id());
    a.connect(dial_addr(&b).await).await.unwrap();
    b_sees.await;
    (a, b)
}

/// A future resolving with the next message `node` accepts from `from` whose
/// payload equals `payload`.
pub fn message_from(
    node: &Node,
    from: PeerId,
    payload: &'static [u8],
) -> impl std::future::Future<Output = Event> + use<> {
    let wait = node.wait_for(WAIT, move |e| {
        matches!(e, Event::Message { from: f, message, .. } if *f == from && message.payload == payload)
    });
    async move { wait.await.expect("message event") }
}

/// Sends `message` from `from` to `to` on `choice` and returns what `to`
/// received: the message, the protocol it came on, and whether its
/// signature verified.
pub async fn send_and_receive(
    from: &Node,
    to: &Node,
    message: &p2p_core::Message,
    choice: p2p_core::WireChoice,
) -> (std::sync::Arc<p2p_core::Message>, p2p_core::Wire, bool) {
    let (sender, id) = (from.peer_id(), message.id());
    let got = to.wait_for(WAIT, move |e| {
        matches!(e, Event::Message { from: f, message: m, .. } if *f == sender && m.id() == id)
    });
    from.send_with(to.peer_id(), message, choice).await.unwrap();
    let Ok(Event::Message {
        message,
        wire,
        verified,
        ..
    }) = got.await
    else {
        panic!("no message event")
    };
    (message, wire, verified)
}

/// A future resolving when `node` rejects a message from `from` for `reason`.
pub fn rejection(
    node: &Node,
    from: PeerId,
    reason: p2p_core::RejectReason,
) -> impl std::future::Future<Output = Event> + use<> {
    let wait = node.wait_for(WAIT, move |e| {
        matches!(e.as_node(), Some(NodeEvent::MessageRejected { peer, reason: r }) if *peer == from && *r == reason)
    });
    async move { wait.await.expect("rejection event") }
}

/// Waits until `node` has accepted `count` messages in all, failing on any
/// rejection or at the deadline.
pub async fn wait_received(node: &Node, count: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = node.stats().await.unwrap().messages;
        assert_eq!(stats.rejected_total(), 0, "{stats:?}");
        if stats.received == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "received {} of {count}",
            stats.received
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), node.subscribe().recv()).await;
    }
}

/// Logs to the test's output when `RUST_LOG` is set (for chasing failures).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
