//! Resources over the DHT (seed-study §6.2 resource tests and §6.3 DHT
//! integration tests), strict: discovery must come from the network, never
//! from a fallback to the announcer's local cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{WAIT, dial_addr, memory_node, tcp_node, wait_table_at_least};
use p2p_core::{AnnounceOptions, DhtModeSetting, Event, Node, ResourceError};
use serde_json::json;

fn ttl(secs: u64) -> AnnounceOptions {
    AnnounceOptions {
        ttl: Some(Duration::from_secs(secs)),
        ..AnnounceOptions::default()
    }
}

/// Connects `node` to `to` and waits until both routing tables hold each other.
async fn link(node: &Node, to: &Node) {
    node.connect(dial_addr(to).await).await.unwrap();
    wait_table_at_least(node, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_resources_are_kept_locally_and_filterable() {
    let node = tcp_node(DhtModeSetting::Server).await;
    let announced = node
        .announce("session", "s-1", r#"{"status":"active","n":1}"#, ttl(3600))
        .await
        .unwrap();
    assert_eq!(announced.stored_by, 0, "a lone node stores nowhere else");
    node.announce("session", "s-2", r#"{"status":"done"}"#, ttl(3600))
        .await
        .unwrap();
    node.announce("other", "o-1", "{}", ttl(3600))
        .await
        .unwrap();
    let got = node.resource("session", "s-1").unwrap();
    assert_eq!(got.key.to_string(), "resource:session:s-1");
    assert_eq!(got.creator, node.peer_id());
    assert_eq!(node.local_resources("session", &[]).len(), 2);
    let active = node.local_resources("session", &[("status", json!("active"))]);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].key.resource_id().as_str(), "s-1");
    // The TTL is honoured, not ignored: the expiry is an hour from creation.
    assert_eq!(got.expires_ms.unwrap() - got.created_ms, 3_600_000);
    // Expired entries are hidden and cleaned up.
    let past = p2p_protocol::now_ms() - 1;
    let gone = node.announce(
        "session",
        "old",
        "{}",
        AnnounceOptions {
            expires_at_ms: Some(past),
            ..AnnounceOptions::default()
        },
    );
    assert!(
        gone.await.is_err(),
        "an already expired record cannot be put"
    );
    assert!(node.resource("session", "old").is_none());
    // Names that would make keys ambiguous are refused.
    assert!(matches!(
        node.announce("a:b", "c", "{}", ttl(60)).await,
        Err(ResourceError::Name(_))
    ));
    assert!(matches!(
        node.announce("t", "i", "not json", ttl(60)).await,
        Err(ResourceError::Data(_))
    ));
    // A missing resource on a lone node fails fast and bounded.
    let started = std::time::Instant::now();
    let missing = node
        .discover("session", "nope", Duration::from_secs(5))
        .await;
    assert!(matches!(
        missing,
        Err(ResourceError::NotFound | ResourceError::Timeout)
    ));
    assert!(started.elapsed() < Duration::from_secs(6));
    // A short timeout is honoured (the original's "abort on timeout" test).
    let started = std::time::Instant::now();
    let _ = node
        .discover("session", "also-missing", Duration::from_millis(100))
        .await;
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_node_discovers_a_verified_record_over_the_dht() {
    let alice = tcp_node(DhtModeSetting::Server).await;
    let bob = tcp_node(DhtModeSetting::Server).await;
    link(&alice, &bob).await;
    wait_table_at_least(&bob, 1).await;
    let announced = alice
        .announce(
            "auto-test",
            "auto-resource-id",
            r#"{"sharedBy":"Alice"}"#,
            ttl(3600),
        )
        .await
        .unwrap();
    assert!(announced.stored_by >= 1);
    assert!(
        bob.resource("auto-test", "auto-resource-id").is_none(),
        "not in Bob's cache"
    );
    let discovered = bob.wait_for(WAIT, |e| matches!(e, Event::ResourceDiscovered { .. }));
    let found = bob
        .discover("auto-test", "auto-resource-id", WAIT)
        .await
        .unwrap();
    assert_eq!(*found, *announced.record);
    assert_eq!(found.creator, alice.peer_id());
    discovered.await.unwrap();
    // Now cached by Bob.
    assert!(bob.resource("auto-test", "auto-resource-id").is_some());
    // Wrong type or id: nothing.
    for (ty, id) in [
        ("auto-test", "other-id"),
        ("other-type", "auto-resource-id"),
    ] {
        assert!(bob.discover(ty, id, WAIT).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_node_star_every_spoke_discovers_the_hubs_resource() {
    let hub = tcp_node(DhtModeSetting::Server).await;
    let mut spokes = Vec::new();
    for _ in 0..4 {
        let spoke = tcp_node(DhtModeSetting::Server).await;
        hub.connect(dial_addr(&spoke).await).await.unwrap();
        spokes.push(spoke);
    }
    wait_table_at_least(&hub, 4).await;
    for spoke in &spokes {
        wait_table_at_least(spoke, 1).await;
    }
    hub.announce(
        "star-test",
        "propagation-test-id",
        r#"{"message":"hello star"}"#,
        ttl(3600),
    )
    .await
    .unwrap();
    for spoke in &spokes {
        let found = spoke
            .discover("star-test", "propagation-test-id", WAIT)
            .await
            .unwrap();
        assert_eq!(found.creator, hub.peer_id());
        assert_eq!(found.data.as_ref(), br#"{"message":"hello star"}"#);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_bootstrap_node_bob_finds_alices_resource() {
    let bootstrap = tcp_node(DhtModeSetting::Server).await;
    let alice = tcp_node(DhtModeSetting::Server).await;
    let bob = tcp_node(DhtModeSetting::Server).await;
    link(&alice, &bootstrap).await;
    link(&bob, &bootstrap).await;
    wait_table_at_least(&bootstrap, 2).await;
    alice
        .announce(
            "bootstrap-test",
            "shared-resource",
            r#"{"sharedBy":"Alice"}"#,
            ttl(3600),
        )
        .await
        .unwrap();
    let found = bob
        .discover("bootstrap-test", "shared-resource", WAIT)
        .await
        .unwrap();
    let data: serde_json::Value = serde_json::from_slice(&found.data).unwrap();
    assert_eq!(data["sharedBy"], "Alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_mode_announcement_reaches_the_servers() {
    let server_a = tcp_node(DhtModeSetting::Server).await;
    let server_b = tcp_node(DhtModeSetting::Server).await;
    link(&server_a, &server_b).await;
    let client = tcp_node(DhtModeSetting::Client).await;
    link(&client, &server_a).await;
    let announced = client
        .announce("client-test", "c-1", r#"{"from":"client"}"#, ttl(3600))
        .await
        .unwrap();
    assert!(announced.stored_by >= 1, "put to the closest servers");
    let reader = tcp_node(DhtModeSetting::Client).await;
    link(&reader, &server_b).await;
    let found = reader.discover("client-test", "c-1", WAIT).await.unwrap();
    assert_eq!(found.creator, client.peer_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_honoured_across_the_network_and_republish_outlives_one_ttl() {
    let alice = tcp_node(DhtModeSetting::Server).await;
    let bob = tcp_node(DhtModeSetting::Server).await;
    link(&alice, &bob).await;
    wait_table_at_least(&bob, 1).await;
    let short = AnnounceOptions {
        ttl: Some(Duration::from_millis(1500)),
        ..AnnounceOptions::default()
    };
    let kept = AnnounceOptions {
        republish: true,
        ..short
    };
    let once = alice
        .announce("ttl-test", "once", "1", short)
        .await
        .unwrap();
    let alive = alice.announce("ttl-test", "kept", "2", kept).await.unwrap();
    assert!(bob.discover("ttl-test", "once", WAIT).await.is_ok());
    // Wait for the wall clock to pass the first record's expiry: that passage
    // of time is the behaviour under test.
    let until = once.record.expires_ms.unwrap() + 200;
    let wait = until.saturating_sub(p2p_protocol::now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert!(
        bob.resource("ttl-test", "once").is_none(),
        "expired in Bob's cache"
    );
    assert!(
        bob.discover("ttl-test", "once", WAIT).await.is_err(),
        "expired in the DHT"
    );
    // The republished one is still there, re-signed with a later expiry.
    let found = bob.discover("ttl-test", "kept", WAIT).await.unwrap();
    assert!(found.expires_ms.unwrap() > alive.record.expires_ms.unwrap());
    assert!(found.expires_ms.unwrap() > p2p_protocol::now_ms());
    assert_eq!(found.data.as_ref(), b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_each_discover_every_other_nodes_resource() {
    const N: usize = 20;
    let hub = memory_node(DhtModeSetting::Server).await;
    let mut nodes = vec![hub.clone()];
    for _ in 1..N {
        let node = memory_node(DhtModeSetting::Server).await;
        node.connect(dial_addr(&hub).await).await.unwrap();
        nodes.push(node);
    }
    for node in &nodes {
        wait_table_at_least(node, 1).await;
    }
    for (i, node) in nodes.iter().enumerate() {
        node.announce("node", &format!("n{i}"), format!("{i}"), ttl(3600))
            .await
            .unwrap();
    }
    let lookups = nodes.iter().enumerate().map(|(i, node)| async move {
        for j in (0..N).filter(|&j| j != i) {
            let found = node.discover("node", &format!("n{j}"), WAIT).await;
            let found = found.unwrap_or_else(|e| panic!("node {i} could not find n{j}: {e}"));
            assert_eq!(found.data.as_ref(), format!("{j}").as_bytes());
        }
    });
    futures::future::join_all(lookups).await;
}

/// An announcement our own DHT store does not take (here larger than the
/// store's value limit) is an error, not an `Ok` with nobody storing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_our_store_refuses_is_an_error() {
    let node = common::started(Node::builder().dht(p2p_core::DhtConfig {
        max_value_bytes: 256,
        ..common::dht(DhtModeSetting::Server)
    }))
    .await;
    let data = json!({ "blob": "x".repeat(1000) }).to_string();
    let result = node.announce("session", "big", data, ttl(600)).await;
    assert!(
        matches!(result, Err(ResourceError::NotStored)),
        "{result:?}"
    );
    assert!(!node.stores_record("session", "big").await.unwrap());
}
