//! Node lifecycle, connections, peers and stats over real TCP sockets on
//! 127.0.0.1 port 0 (the original coordinator tests, seed-study §6.2, strict).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{WAIT, connected_to, dial_addr, identified, rid, rtype, tcp_node};
use p2p_core::libp2p::swarm::DialError;
use p2p_core::{
    Banned, DhtModeSetting, DisconnectCause, Event, Identity, Node, NodeError, NodeEvent,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_reports_real_addresses_and_stop_makes_calls_fail() {
    let node = Node::builder()
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .build()
        .unwrap();
    let id = node.peer_id();
    assert!(matches!(node.stats().await, Err(NodeError::NotStarted)));
    node.start().await.unwrap();
    node.start().await.unwrap(); // idempotent
    assert!(node.is_running());
    let addrs = node.listen_addrs().await.unwrap();
    assert_eq!(addrs.len(), 1);
    assert!(
        !addrs[0].to_string().ends_with("/tcp/0"),
        "a real port: {}",
        addrs[0]
    );
    let stats = node.stats().await.unwrap();
    assert_eq!(stats.listen_addrs, 1);
    assert_eq!(stats.connected_peers, 0);
    node.stop().await.unwrap();
    node.stop().await.unwrap(); // idempotent
    assert!(!node.is_running());
    assert!(matches!(
        node.listen_addrs().await,
        Err(NodeError::NotStarted)
    ));
    node.start().await.unwrap();
    assert_eq!(node.peer_id(), id, "restart keeps the identity");
    assert_eq!(node.listen_addrs().await.unwrap().len(), 1);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_connect_and_both_sides_report_it() {
    let alice = tcp_node(DhtModeSetting::Client).await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    assert!(!alice.is_connected(bob.peer_id()).await);
    let alice_sees = connected_to(&alice, bob.peer_id());
    let bob_sees = connected_to(&bob, alice.peer_id());
    let remote = alice.connect(dial_addr(&bob).await).await.unwrap();
    assert_eq!(remote, bob.peer_id());
    alice_sees.await;
    bob_sees.await;
    assert!(alice.is_connected(bob.peer_id()).await);
    assert!(bob.is_connected(alice.peer_id()).await);
    let alice_peers = alice.connected_peers().await.unwrap();
    assert_eq!(alice_peers.len(), 1);
    assert_eq!(alice_peers[0].peer_id, bob.peer_id());
    assert_eq!(
        bob.connected_peers().await.unwrap()[0].peer_id,
        alice.peer_id()
    );
    let stats = alice.stats().await.unwrap();
    assert_eq!((stats.connected_peers, stats.connections), (1, 1));
    assert_eq!(stats.known_peers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_without_peer_id_and_twice_returns_the_same_peer() {
    let alice = tcp_node(DhtModeSetting::Client).await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    let plain = bob.listen_addrs().await.unwrap().remove(0);
    assert_eq!(alice.connect(plain).await.unwrap(), bob.peer_id());
    assert_eq!(
        alice.connect(dial_addr(&bob).await).await.unwrap(),
        bob.peer_id()
    );
    assert_eq!(alice.stats().await.unwrap().connected_peers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_info_carries_identify_and_ping_results() {
    let alice = tcp_node(DhtModeSetting::Server).await;
    let bob = tcp_node(DhtModeSetting::Server).await;
    let identified = identified(&alice, bob.peer_id());
    alice.connect(dial_addr(&bob).await).await.unwrap();
    let Event::Node(NodeEvent::PeerIdentified {
        agent, protocols, ..
    }) = identified.await
    else {
        unreachable!()
    };
    assert!(agent.starts_with("lotus-p2p/"), "{agent}");
    for p in ["/lotus/kad/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"] {
        assert!(
            protocols.iter().any(|x| x == p),
            "{p} missing from {protocols:?}"
        );
    }
    let info = alice
        .peer_info(bob.peer_id())
        .await
        .unwrap()
        .expect("known peer");
    assert_eq!(info.agent.as_deref(), Some(agent.as_str()));
    assert_eq!(info.connections, 1);
    assert_eq!(info.addresses.len(), 1);
    assert!(!info.listen_addrs.is_empty());
    // Ping runs on connection; its result arrives shortly after identify.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = alice.peer_info(bob.peer_id()).await.unwrap().unwrap();
        if let Some(rtt) = info.rtt {
            assert!(rtt < WAIT);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no ping result");
        let _ = tokio::time::timeout(Duration::from_millis(100), alice.subscribe().recv()).await;
    }
    assert_eq!(
        alice.peer_info(p2p_types::PeerId::random()).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_closes_both_sides() {
    let alice = tcp_node(DhtModeSetting::Client).await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    let bob_connected = connected_to(&bob, alice.peer_id());
    alice.connect(dial_addr(&bob).await).await.unwrap();
    bob_connected.await;
    let alice_id = alice.peer_id();
    let bob_sees_close = bob.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerDisconnected { peer, .. }) if *peer == alice_id),
    );
    let alice_sees_close = alice.wait_for(WAIT, |e| {
        matches!(e.as_node(), Some(NodeEvent::PeerDisconnected { .. }))
    });
    alice.disconnect(bob.peer_id()).await.unwrap();
    assert!(!alice.is_connected(bob.peer_id()).await);
    let Event::Node(NodeEvent::PeerDisconnected { cause, .. }) = alice_sees_close.await.unwrap()
    else {
        unreachable!()
    };
    assert_eq!(cause, DisconnectCause::Local);
    bob_sees_close.await.unwrap();
    assert!(!bob.is_connected(alice.peer_id()).await);
    // Remembered after disconnect, with no open connection.
    let info = alice.peer_info(bob.peer_id()).await.unwrap().unwrap();
    assert_eq!(info.connections, 0);
    assert_eq!(alice.stats().await.unwrap().connected_peers, 0);
    // Disconnecting again is harmless.
    alice.disconnect(bob.peer_id()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_errors_are_reported_not_hung() {
    let alice = tcp_node(DhtModeSetting::Client).await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    // A port nobody listens on: bind one, learn it, stop listening.
    let gone = tcp_node(DhtModeSetting::Client).await;
    let gone_addr = dial_addr(&gone).await;
    gone.stop().await.unwrap();
    assert!(matches!(
        alice.connect(gone_addr).await,
        Err(NodeError::Dial { .. })
    ));
    // The right address with the wrong PeerId is refused.
    let wrong = bob
        .listen_addrs()
        .await
        .unwrap()
        .remove(0)
        .with_p2p(p2p_types::PeerId::random())
        .unwrap();
    let refused = alice.connect(wrong).await;
    // The cause is libp2p's typed dial error, naming the peer that answered.
    let Err(NodeError::Dial { source, .. }) = &refused else {
        panic!("expected a dial error, got {refused:?}")
    };
    let DialError::WrongPeerId { obtained, .. } = &**source else {
        panic!("expected a wrong-peer dial error, got {source:?}")
    };
    assert_eq!(*obtained, bob.peer_id());
    assert!(!alice.is_connected(bob.peer_id()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_disconnects_peers_and_subscriptions_survive_restart() {
    let alice = tcp_node(DhtModeSetting::Client).await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    let mut alice_events = alice.subscribe();
    alice.connect(dial_addr(&bob).await).await.unwrap();
    let bob_id = bob.peer_id();
    let alice_id = alice.peer_id();
    let bob_sees_close = bob.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerDisconnected { peer, .. }) if *peer == alice_id),
    );
    alice.stop().await.unwrap();
    bob_sees_close.await.unwrap();
    alice.start().await.unwrap();
    alice.connect(dial_addr(&bob).await).await.unwrap();
    // The subscription taken before the restart sees events from both runs.
    let mut connects = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while connects < 2 {
        let event = tokio::time::timeout_at(deadline, alice_events.recv())
            .await
            .expect("two connect events")
            .unwrap();
        if matches!(event.as_node(), Some(NodeEvent::PeerConnected { peer, .. }) if *peer == bob_id)
        {
            connects += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_persists_in_the_key_file() {
    let dir = std::env::temp_dir().join(format!("lotus-p2p-key-{}", std::process::id()));
    let path = dir.join("nested").join("node.key");
    let _ = std::fs::remove_dir_all(&dir);
    let first = Node::builder()
        .identity(Identity::KeyFile(path.clone()))
        .build()
        .unwrap();
    assert!(path.exists(), "created on first run");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner-only permissions, got {mode:o}");
    }
    let second = Node::builder()
        .identity(Identity::KeyFile(path.clone()))
        .build()
        .unwrap();
    assert_eq!(first.peer_id(), second.peer_id());
    let other = Node::builder().build().unwrap();
    assert_ne!(first.peer_id(), other.peer_id());
    std::fs::write(&path, b"not a key").unwrap();
    assert!(matches!(
        Node::builder().identity(Identity::KeyFile(path)).build(),
        Err(NodeError::Identity(_))
    ));
    let secret = Identity::Ed25519Secret([7; 32].into());
    assert_eq!(
        Node::builder()
            .identity(secret.clone())
            .build()
            .unwrap()
            .peer_id(),
        Node::builder().identity(secret).build().unwrap().peer_id()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_stop_start_cycles_leak_no_tasks() {
    let peer = tcp_node(DhtModeSetting::Server).await;
    let node = tcp_node(DhtModeSetting::Server).await;
    node.stop().await.unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut baseline = None;
    for cycle in 0..20 {
        node.start().await.unwrap();
        node.connect(dial_addr(&peer).await).await.unwrap();
        node.stop().await.unwrap();
        // Connection tasks of the stopped swarm end shortly after it is dropped.
        let deadline = tokio::time::Instant::now() + WAIT;
        let alive = loop {
            let alive = metrics.num_alive_tasks();
            match baseline {
                Some(b) if alive > b && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => break alive,
            }
        };
        if cycle == 1 {
            baseline = Some(alive);
        }
        if let Some(b) = baseline {
            assert!(
                alive <= b,
                "cycle {cycle}: {alive} tasks alive, baseline {b}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_peer_is_dialled_at_start_and_redialled_after_it_restarts() {
    // A memory address of our choosing (no socket involved), so the bootstrap
    // node can come back on the same address.
    let port: u64 = rand_port();
    let address: p2p_types::Multiaddr = format!("/memory/{port}").parse().unwrap();
    let boot = Node::builder()
        .transport(p2p_core::TransportKind::Memory)
        .listen(address.clone())
        .build()
        .unwrap();
    boot.start().await.unwrap();
    let node = Node::builder()
        .transport(p2p_core::TransportKind::Memory)
        .listen("/memory/0".parse().unwrap())
        .bootstrap(address.with_p2p(boot.peer_id()).unwrap())
        .build()
        .unwrap();
    let first = connected_to(&node, boot.peer_id());
    node.start().await.unwrap();
    first.await;
    let boot_id = boot.peer_id();
    let gone = node.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerDisconnected { peer, .. }) if *peer == boot_id),
    );
    boot.stop().await.unwrap();
    gone.await.unwrap();
    let again = connected_to(&node, boot.peer_id());
    boot.start().await.unwrap();
    again.await;
    assert!(node.is_connected(boot.peer_id()).await);
}

/// A random memory-transport port in a range the transport's own picks
/// (random u64s) are unlikely to hit.
fn rand_port() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id()) | 1
}

/// A node that keeps no idle connection without a reason, closing idle ones
/// after 300 ms.
async fn strict_idle_node() -> Node {
    common::started(
        common::tcp_builder(DhtModeSetting::Client)
            .limits({
                let mut c = p2p_core::ConnectionLimits::default();
                c.keep_idle = 0;
                c
            })
            .idle_connection_timeout(Duration::from_millis(300)),
    )
    .await
}

/// A future resolving when `node` reports `peer` disconnected.
fn disconnected_from(
    node: &Node,
    peer: p2p_types::PeerId,
) -> impl std::future::Future<Output = Result<Event, NodeError>> + use<> {
    node.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerDisconnected { peer: p, .. }) if *p == peer),
    )
}

/// How long a kept connection is watched for an unwanted close: ten idle
/// timeouts of [`strict_idle_node`].
const WATCH: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_nobody_asked_for_closes_above_the_watermark() {
    let alice = strict_idle_node().await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    let bob_sees_close = disconnected_from(&bob, alice.peer_id());
    let alice_sees_close = disconnected_from(&alice, bob.peer_id());
    // Bob dialled (his side is kept); Alice never used the connection and
    // keeps no idle one, so she closes it.
    bob.connect(dial_addr(&alice).await).await.unwrap();
    let Event::Node(NodeEvent::PeerDisconnected { cause, .. }) = alice_sees_close.await.unwrap()
    else {
        unreachable!()
    };
    assert_eq!(cause, DisconnectCause::Local);
    bob_sees_close.await.unwrap();
    assert_eq!(alice.stats().await.unwrap().connections, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_carried_a_message_stays_open_while_idle() {
    let alice = strict_idle_node().await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    let alice_connected = connected_to(&alice, bob.peer_id());
    bob.connect(dial_addr(&alice).await).await.unwrap();
    alice_connected.await;
    let received = alice.wait_for(WAIT, |e| matches!(e, Event::Message { .. }));
    let message = bob
        .message("idle-test".parse().unwrap())
        .payload(&b"{}"[..]);
    bob.send(alice.peer_id(), &bob.sign(message).unwrap())
        .await
        .unwrap();
    received.await.unwrap();
    let closed = disconnected_from(&alice, bob.peer_id());
    assert!(
        tokio::time::timeout(WATCH, closed).await.is_err(),
        "the connection that carried a message was closed while idle"
    );
    assert!(alice.is_connected(bob.peer_id()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_user_dialled_stays_open_while_idle() {
    let alice = strict_idle_node().await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    let bob_connected = connected_to(&bob, alice.peer_id());
    alice.connect(dial_addr(&bob).await).await.unwrap();
    bob_connected.await;
    // Bob is under his watermark (32) and keeps it too.
    let closed = disconnected_from(&alice, bob.peer_id());
    assert!(
        tokio::time::timeout(WATCH, closed).await.is_err(),
        "the connection alice dialled was closed while idle"
    );
    assert!(alice.is_connected(bob.peer_id()).await);
}

/// A node with room for `inbound` connections in and `outbound` out.
async fn limited_node(inbound: u32, outbound: u32) -> Node {
    common::started(common::tcp_builder(DhtModeSetting::Client).limits({
        let mut c = p2p_core::ConnectionLimits::default();
        c.max_established_incoming = inbound;
        c.max_established_outgoing = outbound;
        c
    }))
    .await
}

/// The refusal a connection gets at a full limit with nothing to close.
fn limit_reached(
    result: &Result<p2p_types::PeerId, NodeError>,
) -> p2p_core::ConnectionLimitReached {
    let Err(NodeError::Dial { source, .. }) = result else {
        panic!("expected the dial to be refused, got {result:?}");
    };
    let DialError::Denied { cause } = &**source else {
        panic!("expected the dial to be denied, got {source:?}");
    };
    *cause
        .downcast_ref::<p2p_core::ConnectionLimitReached>()
        .unwrap_or_else(|| panic!("denied by something else: {cause}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbound_side_closes_an_idle_connection_so_a_newcomer_gets_in() {
    let alice = limited_node(2, 128).await;
    let (bob, carol, dave) = (
        tcp_node(DhtModeSetting::Client).await,
        tcp_node(DhtModeSetting::Client).await,
        tcp_node(DhtModeSetting::Client).await,
    );
    let target = dial_addr(&alice).await;
    // Bob's connection carries a message: Alice keeps it.
    let alice_connected = connected_to(&alice, bob.peer_id());
    bob.connect(target.clone()).await.unwrap();
    alice_connected.await;
    let received = alice.wait_for(WAIT, |e| matches!(e, Event::Message { .. }));
    let message = bob
        .message("room-test".parse().unwrap())
        .payload(&b"{}"[..]);
    bob.send(alice.peer_id(), &bob.sign(message).unwrap())
        .await
        .unwrap();
    received.await.unwrap();
    // Carol's carries nothing. With two of two inbound places taken, Alice
    // closes it once its grace ends, so that a place is free again.
    let carol_closed = disconnected_from(&carol, alice.peer_id());
    carol.connect(target.clone()).await.unwrap();
    carol_closed.await.unwrap();
    assert_eq!(alice.stats().await.unwrap().connections_closed_for_room, 1);
    dave.connect(target).await.unwrap();
    assert!(
        alice.is_connected(bob.peer_id()).await,
        "the kept connection was closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_at_the_outbound_limit_closes_an_idle_dht_connection_and_only_that() {
    // Alice has two outbound places: one for the server she dials, one
    // that her DHT lookup takes to a peer the server knows.
    let alice = limited_node(128, 2).await;
    let server = tcp_node(DhtModeSetting::Server).await;
    let far = tcp_node(DhtModeSetting::Server).await;
    let newcomer = tcp_node(DhtModeSetting::Client).await;
    let newcomer_addr = dial_addr(&newcomer).await;
    far.connect(dial_addr(&server).await).await.unwrap();
    common::wait_table_at_least(&server, 1).await;
    alice.connect(dial_addr(&server).await).await.unwrap();
    common::wait_table_at_least(&alice, 1).await;
    let reached_far = connected_to(&alice, far.peer_id());
    let far_closed = disconnected_from(&alice, far.peer_id());
    let (kind, id) = (rtype("room"), rid("none"));
    let lookup = alice.discover(&kind, &id, Duration::from_secs(2));
    let (found, _) = tokio::join!(lookup, reached_far);
    assert!(
        matches!(found, Err(p2p_core::ResourceError::NotFound)),
        "the lookup ended with its answers: {found:?}"
    );
    // The lookup's connection to `far` is young, but `far` has answered:
    // a dial the user asks for right away closes it rather than being
    // refused (it would be, were the connection to wait out its 2 s grace).
    alice.connect(newcomer_addr).await.unwrap();
    far_closed.await.unwrap();
    assert!(
        alice.is_connected(server.peer_id()).await,
        "the kept connection was closed"
    );
    assert_eq!(alice.stats().await.unwrap().connections_closed_for_room, 1);
    // Both places now hold connections the user dialled: nothing may close,
    // and the next dial is refused, typed.
    let third = tcp_node(DhtModeSetting::Client).await;
    let refused = alice.connect(dial_addr(&third).await).await;
    assert_eq!(
        limit_reached(&refused),
        p2p_core::ConnectionLimitReached {
            kind: p2p_core::ConnectionLimitKind::Outbound,
            limit: 2,
        }
    );
    assert!(alice.is_connected(server.peer_id()).await);
    assert!(alice.is_connected(newcomer.peer_id()).await);
    assert!(alice.stats().await.unwrap().connections_refused_at_limit >= 1);
}

/// Polls `done` every 20 ms until it holds, failing after [`WAIT`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_a_started_node() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let peer = tcp_node(DhtModeSetting::Server).await;
    let node = tcp_node(DhtModeSetting::Server).await;
    let (node_id, address) = (node.peer_id(), dial_addr(&node).await);
    let gone = disconnected_from(&peer, node_id);
    peer.connect(address.clone()).await.unwrap();
    // A resource to republish keeps a task busy; it must not keep the node.
    node.announce(
        &rtype("session"),
        &rid("dropped"),
        "{}",
        p2p_core::AnnounceOptions::default(),
    )
    .await
    .unwrap();
    let clone = node.clone();
    drop(node);
    assert!(clone.is_running(), "a clone still holds the node");
    drop(clone);
    // The peer sees the connection close, and the port is free again.
    gone.await.unwrap();
    let port = address
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    eventually("the port is released", || {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
    .await;
    peer.stop().await.unwrap();
    drop(peer);
    eventually("every task of both nodes ended", || {
        metrics.num_alive_tasks() <= before
    })
    .await;
}

/// A handler that serves raw streams on `/test/echo-peer/1.0.0` by naming
/// the peer that opened one.
struct StreamNamer(tokio::sync::mpsc::UnboundedSender<p2p_types::PeerId>);

#[async_trait::async_trait]
impl p2p_core::ProtocolHandler for StreamNamer {
    fn name(&self) -> p2p_core::ProtocolName {
        "stream-namer".parse().unwrap()
    }

    fn stream_protocol(&self) -> Option<libp2p::StreamProtocol> {
        Some(libp2p::StreamProtocol::new("/test/stream-namer/1.0.0"))
    }

    async fn handle_message(
        &self,
        _: std::sync::Arc<p2p_core::Message>,
        _: p2p_types::PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        Ok(())
    }

    async fn handle_stream(
        &self,
        _: libp2p::Stream,
        peer: p2p_types::PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        let _ = self.0.send(peer);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_registered_while_start_is_under_way_serves_its_streams() {
    let client = tcp_node(DhtModeSetting::Client).await;
    for _ in 0..5 {
        let node = common::tcp_builder(DhtModeSetting::Client).build().unwrap();
        let (tx, mut opened) = tokio::sync::mpsc::unbounded_channel();
        // Registered from another task while `start` runs.
        let starting = tokio::spawn({
            let node = node.clone();
            async move { node.start().await }
        });
        tokio::task::yield_now().await;
        node.register_handler(std::sync::Arc::new(StreamNamer(tx)))
            .unwrap();
        starting.await.unwrap().unwrap();
        client.connect(dial_addr(&node).await).await.unwrap();
        let protocol = libp2p::StreamProtocol::new("/test/stream-namer/1.0.0");
        client.open_stream(node.peer_id(), protocol).await.unwrap();
        let who = tokio::time::timeout(WAIT, opened.recv()).await.unwrap();
        assert_eq!(who, Some(client.peer_id()));
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_ban_refuses_the_peer_then_ends_on_its_own() {
    let alice = tcp_node(DhtModeSetting::Client).await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    let (bob_id, bob_addr) = (bob.peer_id(), dial_addr(&bob).await);
    let unbanned = alice.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerUnbanned { peer }) if *peer == bob_id),
    );
    assert!(
        alice
            .ban(bob_id, Some(Duration::from_millis(300)))
            .await
            .unwrap()
    );
    assert!(alice.is_banned(bob_id).await.unwrap());
    let refused = alice.connect(bob_addr.clone()).await;
    // Denied by the peer manager, which says whom.
    let Err(NodeError::Dial { source, .. }) = &refused else {
        panic!("expected a dial error, got {refused:?}")
    };
    let DialError::Denied { cause } = &**source else {
        panic!("expected a denied dial, got {source:?}")
    };
    assert_eq!(cause.downcast_ref::<Banned>(), Some(&Banned(bob_id)));
    // The peer manager's timer ends the ban; nothing polls for it.
    unbanned.await.unwrap();
    assert!(!alice.is_banned(bob_id).await.unwrap());
    assert_eq!(alice.connect(bob_addr).await.unwrap(), bob_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_unregistered_and_registered_again_serves_its_streams() {
    let client = tcp_node(DhtModeSetting::Client).await;
    let node = tcp_node(DhtModeSetting::Client).await;
    client.connect(dial_addr(&node).await).await.unwrap();
    let protocol = libp2p::StreamProtocol::new("/test/stream-namer/1.0.0");
    let name: p2p_core::ProtocolName = "stream-namer".parse().unwrap();
    let (tx, _first) = tokio::sync::mpsc::unbounded_channel();
    node.register_handler(std::sync::Arc::new(StreamNamer(tx)))
        .unwrap();
    assert!(node.unregister_handler(&name));
    let (tx, mut opened) = tokio::sync::mpsc::unbounded_channel();
    node.register_handler(std::sync::Arc::new(StreamNamer(tx)))
        .unwrap();
    // Served by the new registration once the loop has taken it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if client
            .open_stream(node.peer_id(), protocol.clone())
            .await
            .is_ok()
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let who = tokio::time::timeout(WAIT, opened.recv()).await.unwrap();
    assert_eq!(who, Some(client.peer_id()));
}

/// Two nodes talk over IPv6 loopback (`::1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_talk_over_ipv6_loopback() {
    let six = || {
        Node::builder()
            .listen("/ip6/::1/tcp/0".parse().unwrap())
            .build()
            .unwrap()
    };
    let (alice, bob) = (six(), six());
    alice.start().await.unwrap();
    bob.start().await.unwrap();
    let addr = dial_addr(&bob).await;
    assert!(addr.to_string().starts_with("/ip6/::1/tcp/"), "{addr}");
    let mut inbox = bob.subscribe();
    alice.connect(addr).await.unwrap();
    let hello = alice
        .sign(
            alice
                .message("greeting".parse().unwrap())
                .payload(&b"{}"[..]),
        )
        .unwrap();
    alice.send(bob.peer_id(), &hello).await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(Event::Message { from, .. }) = inbox.recv().await
                && from == alice.peer_id()
            {
                return;
            }
        }
    })
    .await
    .expect("the message over IPv6");
}

/// A listen address the node may start without (the default IPv6 one, on a
/// host without IPv6) is skipped when it cannot be bound; a required one
/// fails the start with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_listen_address_that_cannot_be_bound_is_skipped() {
    // Not assigned to any interface here: binding fails (EADDRNOTAVAIL).
    let absent: p2p_core::Multiaddr = "/ip6/2001:db8::77/tcp/0".parse().unwrap();
    let node = Node::builder()
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .listen_optional(absent.clone())
        .build()
        .unwrap();
    node.start().await.unwrap();
    let addrs = node.listen_addrs().await.unwrap();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert!(addrs[0].to_string().starts_with("/ip4/127.0.0.1/"));
    node.stop().await.unwrap();

    let required = Node::builder().listen(absent.clone()).build().unwrap();
    match required.start().await {
        Err(NodeError::Listen { address, source }) => {
            assert_eq!(address, absent);
            assert_eq!(
                source.kind(),
                std::io::ErrorKind::AddrNotAvailable,
                "{source:?}"
            );
        }
        other => panic!("expected a listen error, got {other:?}"),
    }
}
