//! DHT topology: routing tables fill from identify (seed-study §6.2 "DHT
//! Topology Integration" and §6.3, strict: no fallback to local state).

mod common;

use std::time::{Duration, Instant};

use common::{
    dial_addr, identified, memory_node, rid, rtype, table_size, tcp_node, wait_table_at_least,
};
use p2p_core::{DhtMode, DhtModeSetting};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_populate_their_tables_from_connections() {
    let alice = tcp_node(DhtModeSetting::Server).await;
    let bob = tcp_node(DhtModeSetting::Server).await;
    let charlie = tcp_node(DhtModeSetting::Server).await;
    for node in [&alice, &bob, &charlie] {
        let dht = node.stats().await.unwrap().dht;
        assert_eq!(dht.mode, DhtMode::Server);
        assert_eq!(dht.routing_table_size, 0);
        assert!(!dht.ready);
    }
    // A–B: each learns the other.
    alice.connect(dial_addr(&bob).await).await.unwrap();
    wait_table_at_least(&alice, 1).await;
    wait_table_at_least(&bob, 1).await;
    assert!(alice.stats().await.unwrap().dht.ready);
    assert!(bob.stats().await.unwrap().dht.ready);
    // C–A: A now knows two, C at least one (A), and through A's answer to its
    // bootstrap lookup, B as well.
    charlie.connect(dial_addr(&alice).await).await.unwrap();
    wait_table_at_least(&alice, 2).await;
    wait_table_at_least(&charlie, 1).await;
    assert_eq!(table_size(&alice).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_queries_servers_but_is_never_added_as_one() {
    let server = tcp_node(DhtModeSetting::Server).await;
    let client = tcp_node(DhtModeSetting::Client).await;
    let server_identified_client = identified(&server, client.peer_id());
    client.connect(dial_addr(&server).await).await.unwrap();
    // The client adds the server (it advertises /lotus/kad/1.0.0)...
    wait_table_at_least(&client, 1).await;
    assert_eq!(client.stats().await.unwrap().dht.mode, DhtMode::Client);
    // ...the server has identified the client, and did not add it.
    server_identified_client.await;
    assert_eq!(table_size(&server).await, 0);
    let info = server.peer_info(client.peer_id()).await.unwrap().unwrap();
    assert!(!info.protocols.iter().any(|p| p == "/lotus/kad/1.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_on_the_memory_transport_bootstrapped_through_one() {
    const N: usize = 50;
    let hub = memory_node(DhtModeSetting::Server).await;
    let hub_addr = dial_addr(&hub).await;
    let mut nodes = Vec::with_capacity(N - 1);
    for _ in 1..N {
        nodes.push(memory_node(DhtModeSetting::Server).await);
    }
    let started = Instant::now();
    for node in &nodes {
        node.connect(hub_addr.clone()).await.unwrap();
    }
    // The hub learns everyone its k-buckets can hold (k = 20 per bucket; with
    // 49 random peers the farthest bucket usually overflows); everyone learns
    // the hub and, through the bootstrap lookup the first routing update
    // triggers, peers beyond it.
    let expected_hub =
        p2p_dht::routing::table_capacity(hub.peer_id(), nodes.iter().map(|n| n.peer_id()), 20);
    wait_table_at_least(&hub, expected_hub).await;
    for node in &nodes {
        wait_table_at_least(node, 2).await;
    }
    let sizes: Vec<usize> = futures::future::join_all(nodes.iter().map(table_size)).await;
    eprintln!(
        "50-node memory network populated in {:?}; table sizes min {} max {}",
        started.elapsed(),
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap()
    );
    assert_eq!(table_size(&hub).await, expected_hub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_counts_replicas_and_a_dead_peer_leaves_the_tables() {
    let nodes = [
        memory_node(DhtModeSetting::Server).await,
        memory_node(DhtModeSetting::Server).await,
        memory_node(DhtModeSetting::Server).await,
        memory_node(DhtModeSetting::Server).await,
    ];
    let hub = dial_addr(&nodes[0]).await;
    for node in &nodes[1..] {
        node.connect(hub.clone()).await.unwrap();
    }
    for node in &nodes {
        wait_table_at_least(node, 3).await;
    }
    let options = p2p_core::AnnounceOptions::default();
    // The put goes to every closest peer and counts each confirmation.
    let announced = nodes[3]
        .announce(&rtype("session"), &rid("a"), "{}", options)
        .await;
    assert_eq!(announced.unwrap().stored_by, 3);
    for node in &nodes {
        assert!(
            node.stores_record(&rtype("session"), &rid("a"))
                .await
                .unwrap()
        );
    }

    // A stopped peer stays in kad's tables until a dial to it fails; then it
    // is dropped, so lookups and puts stop counting on it.
    let dead = nodes[2].peer_id();
    nodes[2].stop().await.unwrap();
    let deadline = Instant::now() + common::WAIT;
    let mut probe = 0;
    while table_size(&nodes[1]).await > 2 {
        assert!(Instant::now() < deadline, "the dead peer is still listed");
        probe += 1;
        let _ = nodes[1]
            .discover(
                &rtype("probe"),
                &rid(format!("p{probe}")),
                Duration::from_millis(500),
            )
            .await;
    }
    assert!(!nodes[1].is_connected(dead).await);
    let announced = nodes[3]
        .announce(&rtype("session"), &rid("b"), "{}", options)
        .await;
    assert_eq!(announced.unwrap().stored_by, 2, "the two live servers");
}
