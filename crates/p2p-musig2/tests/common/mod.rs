//! Real nodes on TCP loopback for the session tests and the session bench.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use p2p_core::{DhtConfig, DhtModeSetting, Node};

/// Upper bound on any wait; waits end as soon as what they wait for happens.
pub const WAIT: Duration = Duration::from_secs(30);

/// Logs to the test's output when `RUST_LOG` is set (for chasing failures).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A started DHT server on TCP loopback, port 0.
pub async fn server() -> Node {
    init_logging();
    let mut dht = DhtConfig::default();
    dht.mode = DhtModeSetting::Server;
    let node = Node::builder()
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .dht(dht)
        .build()
        .unwrap();
    node.start().await.unwrap();
    node
}

/// Waits (bounded) until `node`'s routing table holds a peer.
pub async fn wait_table(node: &Node) {
    let mut events = node.subscribe();
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.stats().await.unwrap().dht.routing_table_size == 0 {
        tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("routing table stayed empty")
            .ok();
    }
}

/// `n` DHT servers, each connected to the first.
pub async fn network(n: usize) -> Vec<Node> {
    let hub = server().await;
    let hub_addr = hub
        .listen_addrs()
        .await
        .unwrap()
        .remove(0)
        .with_p2p(hub.peer_id())
        .unwrap();
    let mut nodes = vec![hub];
    for _ in 1..n {
        let node = server().await;
        node.connect(hub_addr.clone()).await.unwrap();
        nodes.push(node);
    }
    for node in &nodes {
        wait_table(node).await;
    }
    nodes
}
