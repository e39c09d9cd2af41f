//! Resources over the DHT (seed-study §6.2 resource tests and §6.3 DHT
//! integration tests), strict: discovery must come from the network, never
//! from a fallback to the announcer's local cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{WAIT, dial_addr, memory_node, rid, rtype, tcp_node, wait_table_at_least};
use p2p_core::{
    AnnounceOptions, DhtModeSetting, Event, Node, PeerId, ProtocolHandler, ResourceError,
};
use serde_json::json;

fn ttl(secs: u64) -> AnnounceOptions {
    {
        let mut c = AnnounceOptions::default();
        c.ttl = Some(Duration::from_secs(secs));
        c
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
        .announce(
            &rtype("session"),
            &rid("s-1"),
            r#"{"status":"active","n":1}"#,
            ttl(3600),
        )
        .await
        .unwrap();
    assert_eq!(announced.stored_by, 0, "a lone node stores nowhere else");
    node.announce(
        &rtype("session"),
        &rid("s-2"),
        r#"{"status":"done"}"#,
        ttl(3600),
    )
    .await
    .unwrap();
    node.announce(&rtype("other"), &rid("o-1"), "{}", ttl(3600))
        .await
        .unwrap();
    let got = node.resource(&rtype("session"), &rid("s-1")).unwrap();
    assert_eq!(got.key.to_string(), "resource:session:s-1");
    assert_eq!(got.creator, node.peer_id());
    assert_eq!(node.local_resources(&rtype("session"), &[]).len(), 2);
    let active = node.local_resources(&rtype("session"), &[("status", json!("active"))]);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].key.resource_id().as_str(), "s-1");
    // The TTL is honoured, not ignored: the expiry is an hour from creation.
    assert_eq!(got.expires_ms.unwrap() - got.created_ms, 3_600_000);
    // Expired entries are hidden and cleaned up.
    let past = p2p_protocol::now_ms() - 1;
    let mut expired = AnnounceOptions::default();
    expired.expires_at_ms = Some(past);
    let gone = node
        .announce(&rtype("session"), &rid("old"), "{}", expired)
        .await;
    assert!(
        matches!(gone, Err(ResourceError::Data(_))),
        "an already expired record cannot be put"
    );
    assert!(node.resource(&rtype("session"), &rid("old")).is_none());
    // Names that would make keys ambiguous cannot be made.
    assert!(matches!(
        "a:b".parse::<p2p_core::ResourceType>(),
        Err(p2p_types::NameError::BadChar { .. })
    ));
    assert!(matches!(
        node.announce(&rtype("t"), &rid("i"), "not json", ttl(60))
            .await,
        Err(ResourceError::Data(_))
    ));
    // A missing resource on a lone node: no one to ask, so the lookup ends
    // at once with NotFound, long before its timeout. (A peer that never
    // answers makes it time out instead: see
    // `discover_from_a_peer_that_never_answers_times_out`.)
    let started = std::time::Instant::now();
    let missing = node
        .discover(&rtype("session"), &rid("nope"), Duration::from_secs(5))
        .await;
    assert!(
        matches!(missing, Err(ResourceError::NotFound)),
        "{missing:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A DHT peer that never answers: it advertises the DHT protocol (so it
/// enters routing tables) and accepts its streams, reads the request and
/// keeps the stream open without a word (dropping it would reset it and fail
/// the request at once). Each request it swallows is reported on `asked`.
struct Silent {
    asked: tokio::sync::mpsc::UnboundedSender<PeerId>,
    held: std::sync::Mutex<Vec<libp2p::Stream>>,
}

#[async_trait::async_trait]
impl ProtocolHandler for Silent {
    fn name(&self) -> p2p_core::ProtocolName {
        "silent-kad".parse().unwrap()
    }

    fn stream_protocol(&self) -> Option<libp2p::StreamProtocol> {
        Some(libp2p::StreamProtocol::new(p2p_dht::DEFAULT_PROTOCOL))
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
        peer: PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        use futures::AsyncReadExt;
        // kad writes its request and closes its side; read it to the end.
        let mut swallowed = Vec::new();
        stream.read_to_end(&mut swallowed).await?;
        self.held.lock().unwrap().push(stream);
        let _ = self.asked.send(peer);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_cannot_take_a_protocol_the_node_itself_speaks() {
    let node = common::memory_builder(DhtModeSetting::Client)
        .build()
        .unwrap();
    let (asked, _) = tokio::sync::mpsc::unbounded_channel();
    let refused = node.register_handler(Arc::new(Silent {
        asked,
        held: std::sync::Mutex::default(),
    }));
    assert!(
        matches!(&refused, Err(p2p_core::RegisterError::Reserved(p)) if p.as_ref() == p2p_dht::DEFAULT_PROTOCOL),
        "{refused:?}"
    );
}

/// A peer that looks like a DHT server and never answers: a client-mode node
/// whose own kad speaks another protocol id (a handler cannot take a
/// protocol the node itself speaks), and whose handler takes the DHT
/// protocol's streams and holds them. The receiver names each peer that
/// asked.
async fn silent_server() -> (Node, tokio::sync::mpsc::UnboundedReceiver<PeerId>) {
    let mut dht = common::dht(DhtModeSetting::Client);
    dht.protocol = libp2p::StreamProtocol::new("/lotus-test/unused-kad/1.0.0");
    let silent = Node::builder()
        .transport(p2p_core::TransportKind::Memory)
        .listen("/memory/0".parse().unwrap())
        .dht(dht)
        .build()
        .unwrap();
    let (asked, requests) = tokio::sync::mpsc::unbounded_channel();
    silent
        .register_handler(Arc::new(Silent {
            asked,
            held: std::sync::Mutex::default(),
        }))
        .unwrap();
    silent.start().await.unwrap();
    (silent, requests)
}

/// A DHT client whose provider walks run until every closest peer has
/// answered (`provider_answers: None`), so a silent peer holds them open.
async fn walking_asker() -> Node {
    let mut dht = common::dht(DhtModeSetting::Client);
    dht.provider_answers = None;
    let node = Node::builder()
        .transport(p2p_core::TransportKind::Memory)
        .listen("/memory/0".parse().unwrap())
        .dht(dht)
        .build()
        .unwrap();
    node.start().await.unwrap();
    node
}

/// A DHT server, and a second one linked to it and in its routing table.
async fn linked_servers() -> (Node, Node) {
    let server = memory_node(DhtModeSetting::Server).await;
    let other = memory_node(DhtModeSetting::Server).await;
    link(&other, &server).await;
    wait_table_at_least(&server, 1).await;
    (server, other)
}

/// A [`walking_asker`] that knows `server` and a silent server: the asker,
/// the silent server, and the peers whose requests it swallows.
async fn asker_beside_a_silent_peer(
    server: &Node,
) -> (Node, Node, tokio::sync::mpsc::UnboundedReceiver<PeerId>) {
    let (silent, requests) = silent_server().await;
    let asker = walking_asker().await;
    asker.connect(dial_addr(&silent).await).await.unwrap();
    asker.connect(dial_addr(server).await).await.unwrap();
    wait_table_at_least(&asker, 2).await;
    (asker, silent, requests)
}

/// The next peer whose request the silent server swallowed.
async fn next_asker(requests: &mut tokio::sync::mpsc::UnboundedReceiver<PeerId>) -> PeerId {
    tokio::time::timeout(WAIT, requests.recv())
        .await
        .expect("the silent peer was never asked")
        .expect("the silent server is running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_from_a_peer_that_never_answers_times_out() {
    let (silent, mut requests) = silent_server().await;
    let asker = memory_node(DhtModeSetting::Client).await;
    asker.connect(dial_addr(&silent).await).await.unwrap();
    // Identify showed the asker a DHT server: the silent peer is its table.
    wait_table_at_least(&asker, 1).await;

    let timeout = Duration::from_millis(500);
    let started = tokio::time::Instant::now();
    let result = asker
        .discover(&rtype("session"), &rid("unanswered"), timeout)
        .await;
    let took = started.elapsed();
    assert!(matches!(result, Err(ResourceError::Timeout)), "{result:?}");
    assert!(
        took >= timeout,
        "returned after {took:?}, before its timeout"
    );
    assert!(
        took < timeout + Duration::from_secs(1),
        "returned {took:?} after a {timeout:?} timeout"
    );
    // It timed out waiting on the silent peer, which was asked.
    assert_eq!(next_asker(&mut requests).await, asker.peer_id());
}

/// A provider walk that a silent peer holds open does not cost the lookup:
/// past half its timeout `discover` ends the walk and reads the creators it
/// found (kad would wait 10 s for the silent peer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_reads_the_creators_found_while_a_silent_peer_holds_the_walk_open() {
    // A squatter announces first and holds the shared key, so the
    // creator's record can only come from the creators the walk found.
    let (server, squatter) = linked_servers().await;
    squatter
        .announce(&rtype("session"), &rid("held-open"), "{}", ttl(3600))
        .await
        .unwrap();
    let creator = memory_node(DhtModeSetting::Server).await;
    link(&creator, &server).await;
    wait_table_at_least(&server, 2).await;
    let announced = creator
        .announce(&rtype("session"), &rid("held-open"), "{}", ttl(3600))
        .await
        .unwrap();
    assert!(announced.stored_by >= 1, "{announced:?}");
    let (asker, _silent, mut requests) = asker_beside_a_silent_peer(&server).await;
    let found = asker
        .discover_all(&rtype("session"), &rid("held-open"), Duration::from_secs(4))
        .await
        .unwrap();
    let creators: std::collections::HashSet<PeerId> = found.iter().map(|r| r.creator).collect();
    assert_eq!(
        creators,
        [squatter.peer_id(), creator.peer_id()]
            .into_iter()
            .collect()
    );
    // The silent peer was asked: something held a walk open.
    assert_eq!(next_asker(&mut requests).await, asker.peer_id());
}

/// The record lookups `node` has finished, once none of its queries runs.
async fn record_lookups_when_idle(node: &Node) -> u64 {
    tokio::time::timeout(WAIT, async {
        loop {
            let dht = node.stats().await.unwrap().dht;
            if dht.queries_in_flight == 0 {
                return dht.record_lookups.finished;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the node's queries ended")
}

/// A creator whose signed record the shared-key lookup found is not looked
/// up again under its own key: one creator, one record lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_reads_a_creator_once_when_the_shared_key_gave_its_record() {
    let (server, creator) = linked_servers().await;
    let announced = creator
        .announce(&rtype("session"), &rid("once"), "{}", ttl(3600))
        .await
        .unwrap();
    let asker = memory_node(DhtModeSetting::Client).await;
    asker.connect(dial_addr(&server).await).await.unwrap();
    wait_table_at_least(&asker, 1).await;
    let before = record_lookups_when_idle(&asker).await;
    let found = asker
        .discover_all(&rtype("session"), &rid("once"), WAIT)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(*found[0], *announced.record);
    assert_eq!(record_lookups_when_idle(&asker).await - before, 1);
}

/// `providers` answers with the providers its walk found when its timeout
/// ends it: a silent peer holding the walk open no longer turns them into a
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_answers_with_those_found_when_a_silent_peer_holds_the_walk_open() {
    let (server, provider) = linked_servers().await;
    assert!(
        provider.provide("held-open").await.unwrap(),
        "the server was told"
    );
    let (asker, _silent, mut requests) = asker_beside_a_silent_peer(&server).await;
    let found = asker
        .providers("held-open", Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(found, vec![provider.peer_id()]);
    // The silent peer was asked: something held the walk open.
    assert_eq!(next_asker(&mut requests).await, asker.peer_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_node_discovers_a_verified_record_over_the_dht() {
    let alice = tcp_node(DhtModeSetting::Server).await;
    let bob = tcp_node(DhtModeSetting::Server).await;
    link(&alice, &bob).await;
    wait_table_at_least(&bob, 1).await;
    let announced = alice
        .announce(
            &rtype("auto-test"),
            &rid("auto-resource-id"),
            r#"{"sharedBy":"Alice"}"#,
            ttl(3600),
        )
        .await
        .unwrap();
    assert_eq!(announced.stored_by, 1, "Bob acknowledged the put");
    assert!(
        bob.resource(&rtype("auto-test"), &rid("auto-resource-id"))
            .is_none(),
        "not in Bob's cache"
    );
    let discovered = bob.wait_for(WAIT, |e| matches!(e, Event::ResourceDiscovered { .. }));
    let found = bob
        .discover(&rtype("auto-test"), &rid("auto-resource-id"), WAIT)
        .await
        .unwrap();
    assert_eq!(*found, *announced.record);
    assert_eq!(found.creator, alice.peer_id());
    discovered.await.unwrap();
    // Now cached by Bob.
    assert!(
        bob.resource(&rtype("auto-test"), &rid("auto-resource-id"))
            .is_some()
    );
    // Wrong type or id: nothing.
    for (ty, id) in [
        ("auto-test", "other-id"),
        ("other-type", "auto-resource-id"),
    ] {
        let missing = bob.discover(&rtype(ty), &rid(id), WAIT).await;
        assert!(
            matches!(missing, Err(ResourceError::NotFound)),
            "{ty}/{id}: {missing:?}"
        );
    }
}

/// What the operator's `announced` shows: our own live announcements of
/// every type, newest first; records discovered from others and withdrawn
/// ones are not ours to list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_lists_only_our_own_live_announcements_newest_first() {
    let alice = tcp_node(DhtModeSetting::Server).await;
    let bob = tcp_node(DhtModeSetting::Server).await;
    link(&alice, &bob).await;
    wait_table_at_least(&bob, 1).await;
    bob.announce(&rtype("round"), &rid("bobs"), "{}", ttl(3600))
        .await
        .unwrap();
    alice
        .announce(&rtype("session"), &rid("first"), "{}", ttl(3600))
        .await
        .unwrap();
    // `created` is in milliseconds: the second is strictly newer.
    until_past(p2p_protocol::now_ms()).await;
    alice
        .announce(&rtype("round"), &rid("second"), "{}", ttl(3600))
        .await
        .unwrap();
    let found = alice
        .discover(&rtype("round"), &rid("bobs"), WAIT)
        .await
        .unwrap();
    assert_eq!(found.creator, bob.peer_id());
    let announced = || -> Vec<String> {
        alice
            .announced()
            .iter()
            .map(|r| r.key.to_string())
            .collect()
    };
    assert_eq!(
        announced(),
        ["resource:round:second", "resource:session:first"],
        "Bob's record, though cached, is not Alice's announcement"
    );
    assert!(alice.withdraw(&rtype("session"), &rid("first")));
    assert_eq!(announced(), ["resource:round:second"]);
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
        &rtype("star-test"),
        &rid("propagation-test-id"),
        r#"{"message":"hello star"}"#,
        ttl(3600),
    )
    .await
    .unwrap();
    for spoke in &spokes {
        let found = spoke
            .discover(&rtype("star-test"), &rid("propagation-test-id"), WAIT)
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
            &rtype("bootstrap-test"),
            &rid("shared-resource"),
            r#"{"sharedBy":"Alice"}"#,
            ttl(3600),
        )
        .await
        .unwrap();
    let found = bob
        .discover(&rtype("bootstrap-test"), &rid("shared-resource"), WAIT)
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
        .announce(
            &rtype("client-test"),
            &rid("c-1"),
            r#"{"from":"client"}"#,
            ttl(3600),
        )
        .await
        .unwrap();
    assert_eq!(announced.stored_by, 2, "put to both servers");
    let reader = tcp_node(DhtModeSetting::Client).await;
    link(&reader, &server_b).await;
    let found = reader
        .discover(&rtype("client-test"), &rid("c-1"), WAIT)
        .await
        .unwrap();
    assert_eq!(found.creator, client.peer_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_honoured_across_the_network_and_republish_outlives_one_ttl() {
    let alice = tcp_node(DhtModeSetting::Server).await;
    let bob = tcp_node(DhtModeSetting::Server).await;
    link(&alice, &bob).await;
    wait_table_at_least(&bob, 1).await;
    let short = {
        let mut c = AnnounceOptions::default();
        c.ttl = Some(Duration::from_millis(1500));
        c
    };
    let kept = {
        let mut c = short;
        c.republish = true;
        c
    };
    let once = alice
        .announce(&rtype("ttl-test"), &rid("once"), "1", short)
        .await
        .unwrap();
    let alive = alice
        .announce(&rtype("ttl-test"), &rid("kept"), "2", kept)
        .await
        .unwrap();
    let found = bob
        .discover(&rtype("ttl-test"), &rid("once"), WAIT)
        .await
        .unwrap();
    assert_eq!(found.creator, alice.peer_id());
    // Wait for the wall clock to pass the first record's expiry: that passage
    // of time is the behaviour under test.
    let until = once.record.expires_ms.unwrap() + 200;
    let wait = until.saturating_sub(p2p_protocol::now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert!(
        bob.resource(&rtype("ttl-test"), &rid("once")).is_none(),
        "expired in Bob's cache"
    );
    let expired = bob.discover(&rtype("ttl-test"), &rid("once"), WAIT).await;
    assert!(
        matches!(expired, Err(ResourceError::NotFound)),
        "expired in the DHT: {expired:?}"
    );
    // The republished one is still there, re-signed with a later expiry.
    let found = bob
        .discover(&rtype("ttl-test"), &rid("kept"), WAIT)
        .await
        .unwrap();
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
        node.announce(
            &rtype("node"),
            &rid(format!("n{i}")),
            format!("{i}"),
            ttl(3600),
        )
        .await
        .unwrap();
    }
    let lookups = nodes.iter().enumerate().map(|(i, node)| async move {
        for j in (0..N).filter(|&j| j != i) {
            let found = node
                .discover(&rtype("node"), &rid(format!("n{j}")), WAIT)
                .await;
            let found = found.unwrap_or_else(|e| panic!("node {i} could not find n{j}: {e}"));
            assert_eq!(found.data.as_ref(), format!("{j}").as_bytes());
        }
    });
    futures::future::join_all(lookups).await;
}

/// Sleeps until the wall clock (the one records' expiry is measured on) is
/// past `ms`: the passage of time is the behaviour under test here.
async fn until_past(ms: u64) {
    loop {
        let now = p2p_protocol::now_ms();
        if now > ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis(ms - now + 1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_expired_entries_and_counts_them() {
    let node = memory_node(DhtModeSetting::Client).await;
    // Two seconds leave the announcements and the stop ample time to finish
    // before the expiry, even on a loaded machine.
    let expires = p2p_protocol::now_ms() + 2_000;
    let brief = {
        let mut c = AnnounceOptions::default();
        c.expires_at_ms = Some(expires);
        c
    };
    node.announce(&rtype("cache"), &rid("brief"), "{}", brief)
        .await
        .unwrap();
    node.announce(&rtype("cache"), &rid("lasting"), "{}", ttl(3600))
        .await
        .unwrap();
    // Stopped, the node no longer sweeps its cache on its own (the cache
    // outlives the run), so only `cleanup` can remove the entry.
    node.stop().await.unwrap();
    until_past(expires).await;
    assert!(
        node.resource(&rtype("cache"), &rid("brief")).is_none(),
        "hidden once expired"
    );
    assert_eq!(node.cleanup(), 1, "the expired entry, and only it");
    assert_eq!(node.cleanup(), 0, "gone: nothing left to remove");
    assert!(node.resource(&rtype("cache"), &rid("lasting")).is_some());
    assert_eq!(node.local_resources(&rtype("cache"), &[]).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_node_sweeps_expired_entries_on_its_own() {
    let node = memory_node(DhtModeSetting::Client).await;
    let expires = p2p_protocol::now_ms() + 300;
    let brief = {
        let mut c = AnnounceOptions::default();
        c.expires_at_ms = Some(expires);
        c
    };
    node.announce(&rtype("cache"), &rid("brief"), "{}", brief)
        .await
        .unwrap();
    // A record republished at half its 2 s TTL marks the sweeps: each
    // periodic pass first sweeps the cache at its time `now`, then re-signs
    // due records with `created_ms = now`.
    let ticker = {
        let mut c = AnnounceOptions::default();
        c.ttl = Some(Duration::from_secs(2));
        c.republish = true;
        c
    };
    node.announce(&rtype("cache"), &rid("ticker"), "{}", ticker)
        .await
        .unwrap();
    let mut events = node.subscribe();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let swept_at = node
            .resource(&rtype("cache"), &rid("ticker"))
            .unwrap()
            .created_ms;
        if swept_at > expires {
            break; // a pass ran after the expiry
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event stream ended: {e}"),
            Err(_) => panic!("no republish after the expiry"),
        }
    }
    assert_eq!(node.cleanup(), 0, "the periodic sweep already removed it");
    assert!(node.resource(&rtype("cache"), &rid("brief")).is_none());
    assert!(node.resource(&rtype("cache"), &rid("ticker")).is_some());
}

/// An announcement our own DHT store does not take (here larger than the
/// store's value limit) is an error, not an `Ok` with nobody storing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_our_store_refuses_is_an_error() {
    let node = common::started(Node::builder().dht({
        let mut c = common::dht(DhtModeSetting::Server);
        c.max_value_bytes = 256;
        c
    }))
    .await;
    let data = json!({ "blob": "x".repeat(1000) }).to_string();
    let result = node
        .announce(&rtype("session"), &rid("big"), data, ttl(600))
        .await;
    assert!(
        matches!(result, Err(ResourceError::NotStored)),
        "{result:?}"
    );
    assert!(
        !node
            .stores_record(&rtype("session"), &rid("big"))
            .await
            .unwrap()
    );
}

/// A squatter announces a resource first; the real creator announces it
/// after. The creator's record is still found: pinned to the creator, and
/// among every creator's records (newest first, so `discover` returns the
/// creator's). The shared TypeScript key keeps the squatter's record (first
/// writer wins there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_announcing_first_cannot_hide_the_creators_record() {
    let squatter = tcp_node(DhtModeSetting::Server).await;
    let creator = tcp_node(DhtModeSetting::Server).await;
    let reader = tcp_node(DhtModeSetting::Server).await;
    link(&squatter, &reader).await;
    link(&creator, &reader).await;
    link(&creator, &squatter).await;
    wait_table_at_least(&reader, 2).await;
    wait_table_at_least(&squatter, 2).await;
    let theirs = squatter
        .announce(
            &rtype("musig2-session"),
            &rid("s1"),
            r#"{"by":"squatter"}"#,
            ttl(600),
        )
        .await
        .unwrap();
    let ours = creator
        .announce(
            &rtype("musig2-session"),
            &rid("s1"),
            r#"{"by":"creator"}"#,
            ttl(600),
        )
        .await
        .unwrap();
    assert_eq!(
        ours.stored_by, 2,
        "both other servers stored the creator's key"
    );
    let all = reader
        .discover_all(&rtype("musig2-session"), &rid("s1"), WAIT)
        .await
        .unwrap();
    let creators: Vec<PeerId> = all.iter().map(|r| r.creator).collect();
    assert_eq!(
        creators,
        vec![creator.peer_id(), squatter.peer_id()],
        "every creator, newest first"
    );
    assert_eq!(*all[0], *ours.record);
    assert_eq!(*all[1], *theirs.record);
    let first = reader
        .discover(&rtype("musig2-session"), &rid("s1"), WAIT)
        .await
        .unwrap();
    assert_eq!(*first, *ours.record);
    let pinned = reader
        .discover_from(
            &rtype("musig2-session"),
            &rid("s1"),
            creator.peer_id(),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(*pinned, *ours.record);
    // The cache holds both creators' records; neither hides the other.
    let cached = squatter
        .discover_from(
            &rtype("musig2-session"),
            &rid("s1"),
            creator.peer_id(),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(*cached, *ours.record);
    assert_eq!(
        *squatter
            .resource(&rtype("musig2-session"), &rid("s1"))
            .unwrap(),
        *ours.record,
        "the newest cached record"
    );
}

/// Seventeen creators announce one resource: unpinned discovery answers with
/// sixteen of them (`MAX_DISCOVERED`), newest first, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_all_answers_at_most_sixteen_records_newest_first() {
    let server = memory_node(DhtModeSetting::Server).await;
    let creators = p2p_core::MAX_DISCOVERED + 1;
    let mut announcers = Vec::with_capacity(creators);
    for i in 0..creators {
        let node = memory_node(DhtModeSetting::Client).await;
        link(&node, &server).await;
        node.announce(
            &rtype("coinjoin-round"),
            &rid("crowded"),
            format!(r#"{{"n":{i}}}"#),
            ttl(600),
        )
        .await
        .unwrap();
        announcers.push(node);
    }
    let reader = memory_node(DhtModeSetting::Client).await;
    link(&reader, &server).await;
    let all = reader
        .discover_all(&rtype("coinjoin-round"), &rid("crowded"), WAIT)
        .await
        .unwrap();
    assert_eq!(all.len(), p2p_core::MAX_DISCOVERED);
    assert!(
        all.windows(2).all(|w| w[0].created_ms >= w[1].created_ms),
        "newest first"
    );
    let distinct: std::collections::HashSet<PeerId> = all.iter().map(|r| r.creator).collect();
    assert_eq!(distinct.len(), all.len(), "one record per creator");
}

/// A lookup that times out answers with what the cache holds: the record
/// discovered earlier, when the only peer left never answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_that_times_out_falls_back_to_the_cache() {
    let holder = memory_node(DhtModeSetting::Server).await;
    let asker = memory_node(DhtModeSetting::Client).await;
    link(&asker, &holder).await;
    let announced = holder
        .announce(
            &rtype("musig2-session"),
            &rid("cached"),
            r#"{"k":1}"#,
            ttl(600),
        )
        .await
        .unwrap();
    let found = asker
        .discover_all(&rtype("musig2-session"), &rid("cached"), WAIT)
        .await
        .unwrap();
    assert_eq!(*found[0], *announced.record);
    // The holder goes away; the only DHT server left holds every request.
    holder.stop().await.unwrap();
    let (silent, mut asked) = silent_server().await;
    let silent_id = silent.peer_id();
    let in_table = asker.wait_for(WAIT, move |e| {
        matches!(e.as_node(), Some(p2p_core::NodeEvent::RoutingUpdated { peer, .. }) if *peer == silent_id)
    });
    asker.connect(dial_addr(&silent).await).await.unwrap();
    in_table.await.unwrap();
    let timeout = Duration::from_millis(500);
    let started = tokio::time::Instant::now();
    let cached = asker
        .discover_all(&rtype("musig2-session"), &rid("cached"), timeout)
        .await
        .unwrap();
    assert!(started.elapsed() >= timeout, "answered before its timeout");
    assert_eq!(cached.len(), 1);
    assert_eq!(*cached[0], *announced.record);
    let who = tokio::time::timeout(WAIT, asked.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who, asker.peer_id(), "the silent peer was asked");
    // Nothing cached under another id: the timeout itself.
    let other = asker
        .discover_all(&rtype("musig2-session"), &rid("never"), timeout)
        .await;
    assert!(matches!(other, Err(ResourceError::Timeout)), "{other:?}");
    // Withdrawing is for our own records; forgetting the holder's drops the
    // copy, and the same lookup then times out.
    assert!(!asker.withdraw(&rtype("musig2-session"), &rid("cached")));
    assert!(asker.forget(
        &rtype("musig2-session"),
        &rid("cached"),
        announced.record.creator
    ));
    assert!(
        asker
            .resource(&rtype("musig2-session"), &rid("cached"))
            .is_none()
    );
    let forgotten = asker
        .discover_all(&rtype("musig2-session"), &rid("cached"), timeout)
        .await;
    assert!(
        matches!(forgotten, Err(ResourceError::Timeout)),
        "{forgotten:?}"
    );
}
