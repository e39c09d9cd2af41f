//! DHT behaviours on in-memory swarms, without a node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::kad::{self, Quorum, Record, RecordKey};
use libp2p::{PeerId, StreamProtocol};
use p2p_dht::routing::Population;
use p2p_dht::{Behaviour, DhtRate, DhtRates, MapperPolicy, records, refresh};
use p2p_protocol::ResourceRecord;
use p2p_types::{RejectReason, ResourceKey};
use support::{Net, RawKad, dht_config, dht_net, dht_node, node, raw_kad};
use tokio::sync::oneshot;

fn resource(ty: &str, id: &str) -> ResourceKey {
    ResourceKey::new(ty.parse().unwrap(), id.parse().unwrap())
}

/// A record of `keypair`'s, live for ten minutes.
fn signed(keypair: &Keypair, key: &ResourceKey) -> ResourceRecord {
    let now = p2p_protocol::now_ms();
    ResourceRecord::new(
        key.clone(),
        keypair.public().to_peer_id(),
        &b"{\"a\":1}"[..],
        now,
        Some(now + 600_000),
    )
    .sign(keypair)
    .unwrap()
}

/// Takes the answer out of `rx` once it has come.
fn answer<T>(rx: &mut oneshot::Receiver<T>) -> Option<T> {
    rx.try_recv().ok()
}

/// The scaffolding itself: two plain kad servers connect, one puts a record,
/// the other holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_raw_kad_servers_replicate_a_record_over_the_memory_transport() {
    let mut net: Net<RawKad> = Net {
        nodes: vec![
            node(Keypair::generate_ed25519(), |id| {
                raw_kad(id, kad::Mode::Server)
            })
            .await,
            node(Keypair::generate_ed25519(), |id| {
                raw_kad(id, kad::Mode::Server)
            })
            .await,
        ],
        raw: Vec::new(),
    };
    net.connect(0, 1).await;
    let (b, b_addr) = (net.nodes[1].id(), net.nodes[1].addr.clone());
    net.nodes[0].swarm.behaviour_mut().add_address(&b, b_addr);
    let key = RecordKey::new(b"k");
    let id = net.nodes[0]
        .swarm
        .behaviour_mut()
        .put_record(Record::new(key.clone(), b"v".to_vec()), Quorum::One)
        .unwrap();
    let put = net
        .drive_until("put result", |net| {
            net.nodes[0].events.iter().find_map(|e| match e {
                kad::Event::OutboundQueryProgressed {
                    id: done,
                    result: kad::QueryResult::PutRecord(result),
                    ..
                } if *done == id => Some(result.clone()),
                _ => None,
            })
        })
        .await;
    assert!(put.is_ok(), "{put:?}");
    use libp2p::kad::store::RecordStore as _;
    let held = net.nodes[1].swarm.behaviour_mut().store_mut().get(&key);
    assert_eq!(held.map(|r| r.value.clone()), Some(b"v".to_vec()));
}

/// A record put by one server lands at another, and a third node's lookup
/// finds it there, verified; every kad event passes the observer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_put_by_one_server_is_found_by_another_node() {
    let publisher = Keypair::generate_ed25519();
    let mut net: Net<Behaviour> = Net {
        nodes: vec![
            dht_node(publisher.clone(), dht_config(DhtRates::default())).await,
            dht_node(Keypair::generate_ed25519(), dht_config(DhtRates::default())).await,
            dht_node(Keypair::generate_ed25519(), dht_config(DhtRates::default())).await,
        ],
        raw: Vec::new(),
    };
    let observed = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&observed);
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .set_kad_observer(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
    net.connect(0, 1).await;
    net.connect(2, 1).await;
    let (server, server_addr) = (net.nodes[1].id(), net.nodes[1].addr.clone());
    for i in [0, 2] {
        assert!(
            net.nodes[i]
                .swarm
                .behaviour_mut()
                .add_address(server, server_addr.clone())
        );
    }
    let key = resource("session", "s1");
    let record = signed(&publisher, &key);
    let kad_record =
        records::to_kad_record(&record, p2p_protocol::now_ms(), Instant::now()).unwrap();
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0].swarm.behaviour_mut().put(kad_record, tx);
    let stored_by = net
        .drive_until("put answered", |_| answer(&mut rx))
        .await
        .unwrap();
    assert!(stored_by >= 1, "{stored_by}");
    let publisher_id = net.nodes[0].id();
    net.drive_until("the server stores it", |net| {
        net.nodes[1].events.iter().any(|e| matches!(
            e,
            p2p_dht::Event::RecordStored { peer, key: k } if *peer == publisher_id && *k == records::kad_key(&key)
        )).then_some(())
    })
    .await;
    assert!(
        net.nodes[1]
            .swarm
            .behaviour_mut()
            .stores(&records::kad_key(&key))
    );
    let (tx, mut rx) = oneshot::channel();
    net.nodes[2].swarm.behaviour_mut().get(key.clone(), tx);
    let (found, from) = net
        .drive_until("lookup answered", |_| answer(&mut rx))
        .await
        .unwrap();
    assert_eq!(found, record);
    assert_eq!(from, Some(server));
    assert!(
        observed.load(Ordering::Relaxed) > 0,
        "the observer saw kad's events"
    );
    assert!(net.nodes[2].events.iter().any(|e| matches!(
        e,
        p2p_dht::Event::QueryFinished {
            kind: p2p_dht::QueryKind::GetRecord,
            ..
        }
    )));
}

/// A peer our lookup asks is awaited from the request until its answer,
/// and only then (the node keeps a young connection to it meanwhile, and
/// may close it after): both when kad dials the peer and hands the request
/// to the new connection itself, and when it sends on a connection it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_is_awaited_from_our_request_until_its_answer() {
    let mut net = dht_net(2).await;
    let (server, server_addr) = (net.nodes[1].id(), net.nodes[1].addr.clone());
    // Known, not connected: the lookup's request waits for kad's dial.
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .add_address(server, server_addr);
    let edges = |net: &Net<Behaviour>| -> Vec<bool> {
        net.nodes[0]
            .events
            .iter()
            .filter_map(|e| match e {
                p2p_dht::Event::AwaitingAnswer { peer, awaiting } if *peer == server => {
                    Some(*awaiting)
                }
                _ => None,
            })
            .collect()
    };
    for (round, what) in ["through a dial", "on the connection"].iter().enumerate() {
        let (tx, mut rx) = oneshot::channel();
        net.nodes[0]
            .swarm
            .behaviour_mut()
            .get(resource("session", &format!("nowhere{round}")), tx);
        let before = edges(&net).len();
        // The edges are in by the time the lookup answers (a later kad
        // bootstrap makes edges of its own).
        let at_answer = net
            .drive_until(&format!("lookup {what} answered"), |net| {
                answer(&mut rx).map(|_| edges(net))
            })
            .await;
        assert_eq!(
            at_answer.get(before..),
            Some(&[true, false][..]),
            "lookup {what}: {at_answer:?}"
        );
        if round == 0 {
            assert!(net.nodes[0].connected.contains(&server), "kad dialled");
        }
    }
}

/// Node 1 of `net` (3 nodes) provides `key`; node 0 knows it and node 2,
/// which from here on is never polled, so it answers nothing: returned, to
/// keep it alive, with the ids of the provider and of the silent node.
async fn a_provider_beside_a_silent_node(
    net: &mut Net<Behaviour>,
    key: &RecordKey,
) -> (support::Node<Behaviour>, PeerId, PeerId) {
    let (provider, silent) = (net.nodes[1].id(), net.nodes[2].id());
    let (tx, mut rx) = oneshot::channel();
    net.nodes[1].swarm.behaviour_mut().provide(key.clone(), tx);
    net.drive_until("provide answered", |_| answer(&mut rx))
        .await;
    net.connect(0, 1).await;
    net.connect(0, 2).await;
    for i in [1, 2] {
        let (peer, addr) = (net.nodes[i].id(), net.nodes[i].addr.clone());
        net.nodes[0].swarm.behaviour_mut().add_address(peer, addr);
    }
    (net.nodes.remove(2), provider, silent)
}

/// Three nodes, node 0 ending its provider lookups at the first answer
/// with providers (`provider_answers` 1).
async fn asker_ending_at_the_first_answer() -> Net<Behaviour> {
    let mut config = dht_config(p2p_dht::DhtRates::default());
    config.dht.provider_answers = std::num::NonZeroUsize::new(1);
    let mut net = dht_net(2).await;
    net.nodes
        .insert(0, dht_node(Keypair::generate_ed25519(), config).await);
    net
}

/// The stats of the first provider lookup node 0 of `net` finished.
fn provider_lookup_stats(net: &Net<Behaviour>) -> kad::QueryStats {
    net.nodes[0]
        .events
        .iter()
        .find_map(|e| match e {
            p2p_dht::Event::QueryFinished {
                kind: p2p_dht::QueryKind::GetProviders,
                stats,
                ..
            } => Some(*stats),
            _ => None,
        })
        .expect("a provider lookup finished")
}

/// A provider lookup held open by a peer that never answers ends when asked
/// to, with the providers found so far, rather than when kad gives up on the
/// silent peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_lookup_finished_early_answers_with_the_providers_found_so_far() {
    let mut net = dht_net(3).await;
    let key = records::kad_key(&resource("session", "early"));
    let (_silent, provider, silent) = a_provider_beside_a_silent_node(&mut net, &key).await;
    let (tx, mut rx) = oneshot::channel();
    let id = net.nodes[0]
        .swarm
        .behaviour_mut()
        .get_providers(key.clone(), tx);
    // Whether node 0 reported `who` awaited (`true`) or answered.
    let edge = |net: &Net<Behaviour>, who: PeerId, awaited: bool| {
        net.nodes[0].events.iter().any(|e| {
            matches!(e, p2p_dht::Event::AwaitingAnswer { peer, awaiting } if *peer == who && *awaiting == awaited)
        })
    };
    net.drive_until("the provider answered, the silent node asked", |net| {
        (edge(net, provider, false) && edge(net, silent, true)).then_some(())
    })
    .await;
    net.nodes[0].swarm.behaviour_mut().finish_providers(id);
    let found = net
        .drive_until("the lookup answered", |_| answer(&mut rx))
        .await;
    assert_eq!(found, vec![provider]);
    let stats = provider_lookup_stats(&net);
    // Left alone, the lookup ends when kad gives up on the silent node, at
    // 10 s (its fixed per-peer timeout, and its request timeout), not before.
    let took = stats.duration().expect("a finished query has a duration");
    assert!(
        took < Duration::from_secs(10),
        "ended when asked, not when kad gave up: {stats:?}"
    );
    assert_eq!(stats.num_failures(), 0);
}

/// A provider lookup ends as soon as `provider_answers` peers have answered
/// with providers: it does not wait for the rest of the closest peers (here
/// a silent one, which kad would wait 10 s for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_lookup_ends_once_enough_peers_answered_with_providers() {
    let mut net = asker_ending_at_the_first_answer().await;
    let key = records::kad_key(&resource("session", "enough"));
    let (_silent, provider, silent) = a_provider_beside_a_silent_node(&mut net, &key).await;
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .get_providers(key.clone(), tx);
    let found = net
        .drive_until("the lookup answered", |_| answer(&mut rx))
        .await;
    assert_eq!(found, vec![provider]);
    let stats = provider_lookup_stats(&net);
    // The silent node was asked, and the lookup did not wait for it: left
    // alone, kad gives up on it at 10 s (its fixed per-peer timeout).
    assert_eq!(
        (
            stats.num_requests(),
            stats.num_successes(),
            stats.num_failures()
        ),
        (2, 1, 0),
        "{stats:?}"
    );
    let took = stats.duration().expect("a finished query has a duration");
    assert!(
        took < Duration::from_secs(10),
        "ended at the answer, not when kad gave up: {stats:?}"
    );
    assert!(
        net.nodes[0].events.iter().any(|e| matches!(
            e,
            p2p_dht::Event::AwaitingAnswer { peer, awaiting: true } if *peer == silent
        )),
        "the silent node was asked"
    );
}

/// The indices of `net`'s nodes other than node 0, nearest to `key` first.
fn nearest_first(net: &Net<Behaviour>, key: &RecordKey) -> Vec<usize> {
    let target = kad::KBucketKey::new(key.clone());
    let mut order: Vec<usize> = (1..net.nodes.len()).collect();
    order.sort_by_key(|&i| kad::KBucketKey::from(net.nodes[i].id()).distance(&target));
    order
}

/// Node 0 knows every other node of `net` (connected, in its table); the
/// others have each other in their tables (so their answers name each
/// other, as in a network where all know all), and `providers` each
/// provide `key` (to themselves: they answer with it).
async fn asker_knowing_all(net: &mut Net<Behaviour>, key: &RecordKey, providers: &[usize]) {
    for &i in providers {
        let (tx, mut rx) = oneshot::channel();
        net.nodes[i].swarm.behaviour_mut().provide(key.clone(), tx);
        net.drive_until("provide answered", |_| answer(&mut rx))
            .await;
    }
    introduce_all(net);
    for i in 1..net.nodes.len() {
        net.connect(0, i).await;
        let (peer, addr) = (net.nodes[i].id(), net.nodes[i].addr.clone());
        net.nodes[0].swarm.behaviour_mut().add_address(peer, addr);
    }
}

/// Every node of `net` but node 0 has every other one in its table.
fn introduce_all(net: &mut Net<Behaviour>) {
    let known: Vec<(PeerId, libp2p::Multiaddr)> = net.nodes[1..]
        .iter()
        .map(|n| (n.id(), n.addr.clone()))
        .collect();
    for node in &mut net.nodes[1..] {
        let me = node.id();
        for (peer, addr) in known.iter().filter(|(p, _)| *p != me) {
            node.swarm.behaviour_mut().add_address(*peer, addr.clone());
        }
    }
}

/// The providers node 0's provider lookup answers with, once it answers;
/// asserts that it ended before kad would give up on a silent peer (10 s,
/// its fixed per-peer timeout).
async fn answered_before_kad_gave_up(
    net: &mut Net<Behaviour>,
    rx: &mut oneshot::Receiver<Vec<PeerId>>,
) -> HashSet<PeerId> {
    let found = net
        .drive_until("the lookup answered", |_| answer(rx))
        .await
        .into_iter()
        .collect();
    let stats = provider_lookup_stats(net);
    let took = stats.duration().expect("a finished query has a duration");
    assert!(
        took < Duration::from_secs(10),
        "ended at the nearest answers, not when kad gave up on a silent peer: {stats:?}"
    );
    found
}

/// A provider lookup ends once the three peers nearest the key have
/// answered (`provider_closest`, default 3), one naming a provider: it
/// does not wait for a farther peer (here a silent one, which kad would
/// wait 10 s for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_lookup_ends_once_the_nearest_peers_answered() {
    let mut net = dht_net(5).await;
    let key = records::kad_key(&resource("session", "nearest"));
    let order = nearest_first(&net, &key);
    let nearest: HashSet<PeerId> = order[..3].iter().map(|&i| net.nodes[i].id()).collect();
    asker_knowing_all(&mut net, &key, &order[..3]).await;
    let _silent = net.nodes.remove(order[3]);
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .get_providers(key.clone(), tx);
    assert_eq!(
        answered_before_kad_gave_up(&mut net, &mut rx).await,
        nearest
    );
}

/// A provider lookup ended at its nearest answers while kad was dialling a
/// farther peer for it: kad drops that request, so once the dial connects
/// the peer is no longer awaited (before, its count stayed up and kept the
/// young connection in its grace, and a node doing many lookups refused
/// its own dials).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_with_an_ended_provider_lookup_is_not_awaited() {
    let mut net = dht_net(5).await;
    let key = records::kad_key(&resource("session", "orphan"));
    let order = nearest_first(&net, &key);
    // The farthest is held unpolled and known to node 0 only, never
    // connected: the lookup's dial to it stays under way.
    let held = net.nodes.remove(order[3]);
    let (far, far_addr) = (held.id(), held.addr.clone());
    asker_knowing_all(&mut net, &key, &[1, 2, 3]).await;
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .add_address(far, far_addr);
    let seen = net.nodes[0].events.len();
    let awaited = |net: &Net<Behaviour>, awaiting: bool| {
        net.nodes[0].events[seen..].iter().any(|e| {
            matches!(e, p2p_dht::Event::AwaitingAnswer { peer, awaiting: a } if *peer == far && *a == awaiting)
        })
    };
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .get_providers(key.clone(), tx);
    let found = net
        .drive_until("the lookup answered", |_| answer(&mut rx))
        .await;
    assert_eq!(found.len(), 3);
    assert!(
        awaited(&net, true),
        "kad dialled the far peer for the lookup"
    );
    assert!(!awaited(&net, false));
    net.nodes.push(held);
    // Not awaited while connected (a closed connection ends every wait).
    net.drive_until("the far peer connected and no longer awaited", |net| {
        (awaited(net, false) && net.nodes[0].connected.contains(&far)).then_some(())
    })
    .await;
}

/// The attack `provider_answers` falls to: a peer the walk asks early
/// answers first with a provider list of its own. With
/// `provider_closest` 1 its answer ends nothing while the peer nearest the
/// key (held unpolled until then) has not answered; once it has, the
/// lookup returns both providers, without waiting for a silent peer
/// farther than both (kad would wait 10 s for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_peer_answering_first_does_not_end_a_provider_lookup() {
    let mut config = dht_config(p2p_dht::DhtRates::default());
    config.dht.provider_closest = std::num::NonZeroUsize::new(1);
    let mut net = dht_net(3).await;
    net.nodes
        .insert(0, dht_node(Keypair::generate_ed25519(), config).await);
    let key = records::kad_key(&resource("session", "far-first"));
    let order = nearest_first(&net, &key);
    let [near, far, silent] = [0, 1, 2].map(|i| net.nodes[order[i]].id());
    asker_knowing_all(&mut net, &key, &order[..2]).await;
    let at =
        |net: &Net<Behaviour>, id: PeerId| net.nodes.iter().position(|n| n.id() == id).unwrap();
    let _silent = net.nodes.remove(at(&net, silent));
    let held = net.nodes.remove(at(&net, near));
    let seen = net.nodes[0].events.len();
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .get_providers(key.clone(), tx);
    net.drive_until("the far peer answered", |net| {
        net.nodes[0].events[seen..]
            .iter()
            .any(|e| {
                matches!(e, p2p_dht::Event::AwaitingAnswer { peer, awaiting: false } if *peer == far)
            })
            .then_some(())
    })
    .await;
    assert!(answer(&mut rx).is_none(), "the far answer ended the lookup");
    net.nodes.push(held);
    assert_eq!(
        answered_before_kad_gave_up(&mut net, &mut rx).await,
        [near, far].into_iter().collect()
    );
}

/// Our own store's providers are not an answer: a node that provides the
/// key itself still asks, and finds the other provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_providers_do_not_end_a_provider_lookup() {
    let mut net = asker_ending_at_the_first_answer().await;
    let key = records::kad_key(&resource("session", "ours-too"));
    let me = net.nodes[0].id();
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0].swarm.behaviour_mut().provide(key.clone(), tx);
    net.drive_until("our provide answered", |_| answer(&mut rx))
        .await;
    let (_silent, provider, _) = a_provider_beside_a_silent_node(&mut net, &key).await;
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .get_providers(key.clone(), tx);
    let found: HashSet<PeerId> = net
        .drive_until("the lookup answered", |_| answer(&mut rx))
        .await
        .into_iter()
        .collect();
    assert_eq!(found, [me, provider].into_iter().collect());
    assert!(provider_lookup_stats(&net).num_requests() > 0);
}

/// A plain kad peer puts a forged (unsigned) record under a resource key:
/// refused as invalid, not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_record_from_a_raw_kad_peer_is_refused() {
    let mut net = server_and_raw_peer(
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        dht_config(DhtRates::default()),
    )
    .await;
    let victim = net.nodes[0].id();
    let attacker = net.raw[0].id();
    let value = format!(
        r#"{{"resourceId":"s1","resourceType":"session","creatorPeerId":"{victim}","data":{{}},"createdAt":{}}}"#,
        p2p_protocol::now_ms()
    );
    let key = RecordKey::new(b"resource:session:s1");
    net.raw[0]
        .swarm
        .behaviour_mut()
        .put_record(Record::new(key.clone(), value.into_bytes()), Quorum::One)
        .unwrap();
    net.drive_until("the refusal", |net| {
        (net.nodes[0].rejections(attacker, RejectReason::InvalidRecord) == 1).then_some(())
    })
    .await;
    assert!(!net.nodes[0].swarm.behaviour_mut().stores(&key));
}

/// A plain kad peer floods lookups: past its burst each gets an empty answer
/// at once (its queries all end well within the wait, none times out), and
/// each refusal is reported as an unscored DhtRateLimited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_flood_is_answered_empty_past_the_peer_rate() {
    let rates = DhtRates {
        peer_requests: Some(DhtRate::per_second(1, 10)),
        ..DhtRates::default()
    };
    let mut net = server_and_raw_peer(
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        dht_config(rates),
    )
    .await;
    let victim = net.nodes[0].id();
    let attacker = net.raw[0].id();
    let kad = net.raw[0].swarm.behaviour_mut();
    for i in 0..40 {
        kad.get_record(RecordKey::new(&format!("resource:probe:p{i}")));
    }
    net.drive_until("every probe answered", |net| {
        let done = net.raw[0]
            .events
            .iter()
            .filter(|e| matches!(e, kad::Event::OutboundQueryProgressed { step, .. } if step.last))
            .count();
        (done == 40).then_some(())
    })
    .await;
    let refused = net.nodes[0].rejections(attacker, RejectReason::DhtRateLimited);
    assert!((20..=30).contains(&refused), "{refused} of 40 refused");
    assert!(net.raw[0].connected.contains(&victim), "still connected");
}

/// Identify tells the behaviour a peer's protocols and addresses: only DHT
/// servers enter the table, and only with addresses the mapper keeps.
#[test]
fn only_identified_servers_with_kept_addresses_enter_the_table() {
    let protocol = StreamProtocol::new(p2p_dht::DEFAULT_PROTOCOL);
    let other = StreamProtocol::new("/ipfs/id/1.0.0");
    let loopback = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
    let mut dht = Behaviour::new(PeerId::random(), dht_config(DhtRates::default()));
    assert_eq!(
        dht.on_identified(
            PeerId::random(),
            std::slice::from_ref(&other),
            std::slice::from_ref(&loopback)
        ),
        Population::NotAServer
    );
    assert_eq!(
        dht.on_identified(
            PeerId::random(),
            &[other, protocol.clone()],
            std::slice::from_ref(&loopback)
        ),
        Population::Added(1)
    );
    assert_eq!(dht.routing_table_size(), 1);
    // A node listening on a public address keeps only public addresses.
    let mut config = dht_config(DhtRates::default());
    config.dht.mapper = MapperPolicy::Auto;
    config.listen = vec!["/ip4/0.0.0.0/tcp/4001".parse().unwrap()];
    let mut public = Behaviour::new(PeerId::random(), config);
    assert_eq!(
        public.on_identified(
            PeerId::random(),
            std::slice::from_ref(&protocol),
            &[loopback]
        ),
        Population::NoUsableAddress
    );
    assert_eq!(public.stats().routing_table_size, 0);
}

/// A creator over its quota of stored records is refused (RecordQuota, not
/// scored); its records within the quota are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_over_a_creators_quota_are_refused() {
    let mut config = dht_config(DhtRates::default());
    config.dht.creator_quotas = Some(p2p_dht::quotas::CreatorQuotas {
        per_creator: 3,
        per_type: 3,
    });
    let creator = Keypair::generate_ed25519();
    let mut net = server_and_raw_peer(Keypair::generate_ed25519(), creator.clone(), config).await;
    let sender = net.raw[0].id();
    let keys: Vec<ResourceKey> = (0..5)
        .map(|i| resource("session", &format!("s{i}")))
        .collect();
    for key in &keys {
        let record = signed(&creator, key);
        let kad_record =
            records::to_kad_record(&record, p2p_protocol::now_ms(), Instant::now()).unwrap();
        net.raw[0]
            .swarm
            .behaviour_mut()
            .put_record(kad_record, Quorum::One)
            .unwrap();
    }
    net.drive_until("every put handled", |net| {
        let stored = net.nodes[0]
            .events
            .iter()
            .filter(|e| matches!(e, p2p_dht::Event::RecordStored { .. }))
            .count();
        let refused = net.nodes[0].rejections(sender, RejectReason::RecordQuota);
        (stored + refused == 5).then_some((stored, refused))
    })
    .await;
    let dht = net.nodes[0].swarm.behaviour_mut();
    let held = keys
        .iter()
        .filter(|k| dht.stores(&records::kad_key(k)))
        .count();
    assert_eq!(held, 3);
    assert_eq!(
        net.nodes[0].rejections(sender, RejectReason::RecordQuota),
        2
    );
}

/// A record under a key that is not a resource key (another network's
/// namespace, or junk to fill the store) is refused, unscored, and not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_under_a_key_we_do_not_serve_is_refused() {
    let mut net = server_and_raw_peer(
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        dht_config(DhtRates::default()),
    )
    .await;
    let sender = net.raw[0].id();
    let key = RecordKey::new(b"/junk/0001");
    net.raw[0]
        .swarm
        .behaviour_mut()
        .put_record(Record::new(key.clone(), vec![0; 1000]), Quorum::One)
        .unwrap();
    net.drive_until("the refusal", |net| {
        (net.nodes[0].rejections(sender, RejectReason::UnservedKey) == 1).then_some(())
    })
    .await;
    assert!(!net.nodes[0].swarm.behaviour_mut().stores(&key));
}

/// Others fill every place the store gives them; our own announcement is
/// still stored locally (before: kad's shared store refused it and the
/// announce reported success anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn others_records_cannot_crowd_out_our_own() {
    let mut config = dht_config(DhtRates::default());
    config.dht.max_records = 3;
    let (server_key, creator) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let mut net = server_and_raw_peer(server_key.clone(), creator.clone(), config).await;
    let theirs: Vec<ResourceKey> = (0..4).map(|i| resource("ad", &format!("a{i}"))).collect();
    for key in &theirs {
        let record = signed(&creator, key);
        let kad_record =
            records::to_kad_record(&record, p2p_protocol::now_ms(), Instant::now()).unwrap();
        net.raw[0]
            .swarm
            .behaviour_mut()
            .put_record(kad_record, Quorum::One)
            .unwrap();
    }
    net.drive_until("the store full of theirs", |net| {
        let dht = net.nodes[0].swarm.behaviour_mut();
        let held = theirs
            .iter()
            .filter(|k| dht.stores(&records::kad_key(k)))
            .count();
        (held == 3).then_some(())
    })
    .await;
    let own = resource("session", "mine");
    let record = signed(&server_key, &own);
    let kad_record =
        records::to_kad_record(&record, p2p_protocol::now_ms(), Instant::now()).unwrap();
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0].swarm.behaviour_mut().put(kad_record, tx);
    let put = net
        .drive_until("own put answered", |_| answer(&mut rx))
        .await;
    assert!(put.is_ok(), "{put:?}");
    assert!(
        net.nodes[0]
            .swarm
            .behaviour_mut()
            .stores(&records::kad_key(&own))
    );
}

/// Six peers provide 200 keys each (the issue's attack on the 1 024 shared
/// provider keys): each keeps at most its per-peer share (the rest refused,
/// RecordQuota), and our own provider record is still stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_floods_are_capped_per_peer_and_our_own_provide_is_kept() {
    const PEERS: usize = 6;
    const KEYS: usize = 200;
    let mut net: Net<Behaviour> = Net {
        nodes: vec![
            dht_node(
                Keypair::generate_ed25519(),
                dht_config(DhtRates::unlimited()),
            )
            .await,
        ],
        raw: Vec::new(),
    };
    for _ in 0..PEERS {
        net.raw.push(
            node(Keypair::generate_ed25519(), |id| {
                raw_kad(id, kad::Mode::Client)
            })
            .await,
        );
    }
    let adds = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&adds);
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .set_kad_observer(move |e| {
            if let kad::Event::InboundRequest {
                request: kad::InboundRequest::AddProvider { .. },
            } = e
            {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
    let (server, server_addr) = (net.nodes[0].id(), net.nodes[0].addr.clone());
    let keys = |p: usize| -> Vec<RecordKey> {
        (0..KEYS)
            .map(|i| RecordKey::new(&format!("provided-{p}-{i}")))
            .collect()
    };
    for p in 0..PEERS {
        net.connect_raw(p, 0).await;
        let kad = net.raw[p].swarm.behaviour_mut();
        kad.add_address(&server, server_addr.clone());
        for key in keys(p) {
            kad.start_providing(key).unwrap();
        }
    }
    let per_peer = p2p_dht::DhtConfig::default().max_provider_keys_per_peer;
    net.drive_until("every provider record handled", |_| {
        (adds.load(Ordering::Relaxed) == PEERS * KEYS).then_some(())
    })
    .await;
    let own = RecordKey::new(b"our-own-offer");
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0].swarm.behaviour_mut().provide(own.clone(), tx);
    net.drive_until("own provide answered", |_| answer(&mut rx))
        .await;
    assert!(
        net.nodes[0].swarm.behaviour_mut().provides(&own),
        "our own provider record is kept"
    );
    for p in 0..PEERS {
        let dht = net.nodes[0].swarm.behaviour_mut();
        let held = keys(p)
            .iter()
            .filter(|k| !dht.stored_providers(k).is_empty())
            .count();
        assert!(held <= per_peer, "peer {p} holds {held} keys");
        let refused = net.nodes[0].rejections(net.raw[p].id(), RejectReason::RecordQuota);
        assert_eq!(held + refused, KEYS, "the rest refused as over quota");
    }
}

/// A record of `keypair`'s created `age_ms` ago, live for `ttl_ms` from now.
fn version(
    keypair: &Keypair,
    key: &ResourceKey,
    data: &str,
    age_ms: u64,
    ttl_ms: u64,
) -> ResourceRecord {
    let now = p2p_protocol::now_ms();
    ResourceRecord::new(
        key.clone(),
        keypair.public().to_peer_id(),
        data.as_bytes().to_vec(),
        now - age_ms,
        Some(now + ttl_ms),
    )
    .sign(keypair)
    .unwrap()
}

/// An unsigned (TypeScript) record naming `creator`.
fn unsigned(creator: PeerId, key: &ResourceKey) -> Record {
    let value = format!(
        r#"{{"resourceId":"{}","resourceType":"{}","creatorPeerId":"{creator}","data":{{"by":"impostor"}},"createdAt":{}}}"#,
        key.resource_id(),
        key.resource_type(),
        p2p_protocol::now_ms()
    );
    Record::new(records::kad_key(key), value.into_bytes())
}

/// Puts `record` from raw peer `from` to `nodes[to]` only.
fn raw_put(net: &mut Net<Behaviour>, from: usize, to: usize, record: Record) {
    let target = net.nodes[to].id();
    net.raw[from]
        .swarm
        .behaviour_mut()
        .put_record_to(record, std::iter::once(target), Quorum::One);
}

/// One DHT node (`nodes[0]`) and one plain kad client (`raw[0]`, the
/// attacker in most tests), linked.
async fn server_and_raw_peer(
    server: Keypair,
    peer: Keypair,
    config: p2p_dht::BehaviourConfig,
) -> Net<Behaviour> {
    let mut net = Net {
        nodes: vec![dht_node(server, config).await],
        raw: vec![node(peer, |id| raw_kad(id, kad::Mode::Client)).await],
    };
    raw_link(&mut net, 0, 0).await;
    net
}

/// Connects raw peer `from` to `nodes[to]` and puts the node in its table.
async fn raw_link(net: &mut Net<Behaviour>, from: usize, to: usize) {
    net.connect_raw(from, to).await;
    let (id, addr) = (net.nodes[to].id(), net.nodes[to].addr.clone());
    net.raw[from].swarm.behaviour_mut().add_address(&id, addr);
}

/// Our own store's record under `key`, through a lookup from the node itself.
async fn held(net: &mut Net<Behaviour>, node: usize, key: &ResourceKey) -> ResourceRecord {
    let (tx, mut rx) = oneshot::channel();
    net.nodes[node].swarm.behaviour_mut().get(key.clone(), tx);
    net.drive_until("local lookup", |_| answer(&mut rx))
        .await
        .unwrap()
        .0
}

/// Three honest servers replicate every second. Two of them were given
/// different creators' records under one key, and one was given a record
/// that expires in 1.5 s (with no kad TTL, so kad alone would keep it an
/// hour). Rounds of replication later, no server has reported another for
/// anything scored: the conflicts are RecordConflict, and the expired record
/// is neither kept nor replicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_between_honest_servers_is_never_scored() {
    let mut config = dht_config(DhtRates::default());
    config.dht.record_replication_interval = Duration::from_secs(1);
    let mut net: Net<Behaviour> = Net {
        nodes: Vec::new(),
        raw: Vec::new(),
    };
    for _ in 0..3 {
        net.nodes
            .push(dht_node(Keypair::generate_ed25519(), config.clone()).await);
    }
    let (x, y) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    net.raw
        .push(node(x.clone(), |id| raw_kad(id, kad::Mode::Client)).await);
    net.raw
        .push(node(y.clone(), |id| raw_kad(id, kad::Mode::Client)).await);
    net.connect(0, 1).await;
    net.connect(0, 2).await;
    net.connect(1, 2).await;
    let servers: Vec<(PeerId, libp2p::Multiaddr)> =
        net.nodes.iter().map(|n| (n.id(), n.addr.clone())).collect();
    for (i, node) in net.nodes.iter_mut().enumerate() {
        for (j, (peer, addr)) in servers.iter().enumerate() {
            if i != j {
                assert!(node.swarm.behaviour_mut().add_address(*peer, addr.clone()));
            }
        }
    }
    raw_link(&mut net, 0, 0).await;
    raw_link(&mut net, 1, 1).await;
    let contested = resource("round", "r1");
    let now = p2p_protocol::now_ms();
    let put = |record: &ResourceRecord| {
        let mut kad = records::to_kad_record(record, now, Instant::now()).unwrap();
        kad.expires = None;
        kad
    };
    raw_put(
        &mut net,
        0,
        0,
        put(&version(&x, &contested, "{}", 0, 600_000)),
    );
    raw_put(
        &mut net,
        1,
        1,
        put(&version(&y, &contested, "{}", 0, 600_000)),
    );
    let brief = resource("session", "brief");
    raw_put(&mut net, 0, 0, put(&version(&x, &brief, "{}", 0, 1_500)));
    let (a, b) = (servers[0].0, servers[1].0);
    net.drive_until("rounds of replication", |net| {
        let conflicts = net.nodes[0].rejections(b, RejectReason::RecordConflict)
            + net.nodes[1].rejections(a, RejectReason::RecordConflict);
        (conflicts >= 4).then_some(())
    })
    .await;
    let ids: Vec<PeerId> = servers.iter().map(|(p, _)| *p).collect();
    for node in &net.nodes {
        for event in &node.events {
            if let p2p_dht::Event::Rejected { peer, reason } = event {
                assert!(
                    !ids.contains(peer) || p2p_core_penalty_free(*reason),
                    "an honest server reported for {reason:?}"
                );
            }
        }
    }
    for node in &mut net.nodes {
        assert!(!node.swarm.behaviour_mut().stores(&records::kad_key(&brief)));
    }
}

/// The reasons the node does not score (see p2p-core's scoring module).
fn p2p_core_penalty_free(reason: RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::RecordExpired
            | RejectReason::RecordConflict
            | RejectReason::RecordQuota
            | RejectReason::DhtRateLimited
            | RejectReason::UnservedKey
    )
}

/// A creator's older version, still unexpired, cannot be put back over its
/// newer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_version_cannot_replace_a_newer_one() {
    let creator = Keypair::generate_ed25519();
    let mut net = server_and_raw_peer(
        Keypair::generate_ed25519(),
        creator.clone(),
        dht_config(DhtRates::default()),
    )
    .await;
    let key = resource("session", "s1");
    let now = p2p_protocol::now_ms();
    let newer = version(&creator, &key, r#"{"v":2}"#, 0, 600_000);
    let older = version(&creator, &key, r#"{"v":1}"#, 10_000, 600_000);
    let sender = net.raw[0].id();
    raw_put(
        &mut net,
        0,
        0,
        records::to_kad_record(&newer, now, Instant::now()).unwrap(),
    );
    net.drive_until("the newer stored", |net| {
        net.nodes[0]
            .events
            .iter()
            .any(|e| matches!(e, p2p_dht::Event::RecordStored { .. }))
            .then_some(())
    })
    .await;
    raw_put(
        &mut net,
        0,
        0,
        records::to_kad_record(&older, now, Instant::now()).unwrap(),
    );
    net.drive_until("the rollback refused", |net| {
        (net.nodes[0].rejections(sender, RejectReason::RecordConflict) == 1).then_some(())
    })
    .await;
    assert_eq!(held(&mut net, 0, &key).await, newer);
}

/// With unsigned records accepted, an unsigned record naming a signed
/// creator neither replaces its record nor uses its quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_records_cannot_impersonate_a_signed_creator() {
    let mut config = dht_config(DhtRates::default());
    config.accept_unsigned = true;
    config.dht.creator_quotas = Some(p2p_dht::quotas::CreatorQuotas {
        per_creator: 2,
        per_type: 2,
    });
    let creator = Keypair::generate_ed25519();
    let victim = creator.public().to_peer_id();
    let mut net: Net<Behaviour> = Net {
        nodes: vec![dht_node(Keypair::generate_ed25519(), config).await],
        raw: vec![
            node(creator.clone(), |id| raw_kad(id, kad::Mode::Client)).await,
            node(Keypair::generate_ed25519(), |id| {
                raw_kad(id, kad::Mode::Client)
            })
            .await,
        ],
    };
    raw_link(&mut net, 0, 0).await;
    raw_link(&mut net, 1, 0).await;
    let impostor = net.raw[1].id();
    let now = p2p_protocol::now_ms();
    let (s1, s2) = (resource("session", "s1"), resource("session", "s2"));
    let original = signed(&creator, &s1);
    raw_put(
        &mut net,
        0,
        0,
        records::to_kad_record(&original, now, Instant::now()).unwrap(),
    );
    net.drive_until("the signed record stored", |net| {
        net.nodes[0]
            .swarm
            .behaviour_mut()
            .stores(&records::kad_key(&s1))
            .then_some(())
    })
    .await;
    for id in ["s1", "u1", "u2"] {
        raw_put(&mut net, 1, 0, unsigned(victim, &resource("session", id)));
    }
    net.drive_until("the impostor's puts handled", |net| {
        let stored = net.nodes[0]
            .events
            .iter()
            .filter(|e| matches!(e, p2p_dht::Event::RecordStored { peer, .. } if *peer == impostor))
            .count();
        (net.nodes[0].rejections(impostor, RejectReason::RecordConflict) == 1 && stored == 2)
            .then_some(())
    })
    .await;
    assert_eq!(
        held(&mut net, 0, &s1).await,
        original,
        "the signed record stays"
    );
    // The victim's own second record still fits its quota of 2.
    raw_put(
        &mut net,
        0,
        0,
        records::to_kad_record(&signed(&creator, &s2), now, Instant::now()).unwrap(),
    );
    net.drive_until("the victim's second record stored", |net| {
        net.nodes[0]
            .swarm
            .behaviour_mut()
            .stores(&records::kad_key(&s2))
            .then_some(())
    })
    .await;
    let creator_id = net.raw[0].id();
    assert_eq!(
        net.nodes[0].rejections(creator_id, RejectReason::RecordQuota),
        0
    );
}

/// A contact none of whose addresses can be dialled leaves the routing table
/// (kad alone keeps a contact's last address even when it fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_contact_leaves_the_routing_table() {
    let mut net: Net<Behaviour> = Net {
        nodes: vec![dht_node(Keypair::generate_ed25519(), dht_config(DhtRates::default())).await],
        raw: Vec::new(),
    };
    let ghost = PeerId::random();
    // These swarms speak only the memory transport: a TCP address fails at
    // once with a transport error, without touching the network.
    let nowhere: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().unwrap();
    let dht = net.nodes[0].swarm.behaviour_mut();
    assert!(dht.add_address(ghost, nowhere));
    assert_eq!(dht.routing_table_size(), 1);
    net.nodes[0].swarm.dial(ghost).unwrap();
    net.drive_until("the ghost dropped", |net| {
        (net.nodes[0].swarm.behaviour_mut().routing_table_size() == 0).then_some(())
    })
    .await;
}

/// A put is acknowledged only once the record is stored: a publisher whose
/// record reaches two servers, one of which already holds another
/// creator's record under the key, is told one server stored it, and the
/// refusing server reports the conflict against the publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_put_is_not_acknowledged() {
    let publisher = Keypair::generate_ed25519();
    let first = Keypair::generate_ed25519();
    let mut net: Net<Behaviour> = Net {
        nodes: vec![
            dht_node(publisher.clone(), dht_config(DhtRates::default())).await,
            dht_node(Keypair::generate_ed25519(), dht_config(DhtRates::default())).await,
            dht_node(Keypair::generate_ed25519(), dht_config(DhtRates::default())).await,
        ],
        raw: vec![node(first.clone(), |id| raw_kad(id, kad::Mode::Client)).await],
    };
    let key = resource("round", "r1");
    raw_link(&mut net, 0, 2).await;
    let now = p2p_protocol::now_ms();
    raw_put(
        &mut net,
        0,
        2,
        records::to_kad_record(&signed(&first, &key), now, Instant::now()).unwrap(),
    );
    net.drive_until("the first creator's record stored", |net| {
        net.nodes[2]
            .events
            .iter()
            .any(|e| matches!(e, p2p_dht::Event::RecordStored { .. }))
            .then_some(())
    })
    .await;
    net.connect(0, 1).await;
    net.connect(0, 2).await;
    for server in [1, 2] {
        let (id, addr) = (net.nodes[server].id(), net.nodes[server].addr.clone());
        assert!(net.nodes[0].swarm.behaviour_mut().add_address(id, addr));
    }
    let record = signed(&publisher, &key);
    let kad_record =
        records::to_kad_record(&record, p2p_protocol::now_ms(), Instant::now()).unwrap();
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0].swarm.behaviour_mut().put(kad_record, tx);
    let stored_by = net
        .drive_until("put answered", |_| answer(&mut rx))
        .await
        .unwrap();
    assert_eq!(stored_by, 1, "only the server that stored it counts");
    let publisher_id = net.nodes[0].id();
    assert_eq!(
        net.nodes[2].rejections(publisher_id, RejectReason::RecordConflict),
        1
    );
    assert!(
        net.nodes[1]
            .swarm
            .behaviour_mut()
            .stores(&records::kad_key(&key))
    );
}

/// A squatter announcing first under a resource's type and id takes the
/// shared key (first writer wins there) but cannot write the creator's key:
/// its record under the creator's key is refused as invalid and counted
/// against it, the creator's own put is stored, and a reader asking for the
/// creator's record gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_cannot_write_a_creators_key() {
    let creator = Keypair::generate_ed25519();
    let squatter = Keypair::generate_ed25519();
    let mut net: Net<Behaviour> = Net {
        nodes: vec![
            dht_node(Keypair::generate_ed25519(), dht_config(DhtRates::default())).await,
            dht_node(creator.clone(), dht_config(DhtRates::default())).await,
            dht_node(Keypair::generate_ed25519(), dht_config(DhtRates::default())).await,
        ],
        raw: vec![node(squatter.clone(), |id| raw_kad(id, kad::Mode::Client)).await],
    };
    let key = resource("musig2-session", "s1");
    let creator_id = creator.public().to_peer_id();
    let squatter_id = squatter.public().to_peer_id();
    raw_link(&mut net, 0, 0).await;
    let now = p2p_protocol::now_ms();
    let theirs = signed(&squatter, &key);
    raw_put(
        &mut net,
        0,
        0,
        records::to_kad_record(&theirs, now, Instant::now()).unwrap(),
    );
    let mut under_creators_key = records::to_kad_record(&theirs, now, Instant::now()).unwrap();
    under_creators_key.key = records::creator_key(&key, &creator_id);
    raw_put(&mut net, 0, 0, under_creators_key);
    net.drive_until("the squatter's two puts handled", |net| {
        let stored = net.nodes[0].events.iter().any(
            |e| matches!(e, p2p_dht::Event::RecordStored { peer, .. } if *peer == squatter_id),
        );
        let refused = net.nodes[0].rejections(squatter_id, RejectReason::InvalidRecord) == 1;
        (stored && refused).then_some(())
    })
    .await;
    net.connect(1, 0).await;
    net.connect(2, 0).await;
    let (server, server_addr) = (net.nodes[0].id(), net.nodes[0].addr.clone());
    for i in [1, 2] {
        assert!(
            net.nodes[i]
                .swarm
                .behaviour_mut()
                .add_address(server, server_addr.clone())
        );
    }
    let ours = signed(&creator, &key);
    let (tx, mut rx) = oneshot::channel();
    net.nodes[1].swarm.behaviour_mut().put(
        records::to_creator_record(&ours, p2p_protocol::now_ms(), Instant::now()).unwrap(),
        tx,
    );
    let stored_by = net
        .drive_until("creator's put answered", |_| answer(&mut rx))
        .await
        .unwrap();
    assert_eq!(stored_by, 1, "the server stored the creator's record");
    let (tx, mut rx) = oneshot::channel();
    net.nodes[2]
        .swarm
        .behaviour_mut()
        .get(records::StoredKey::Creator(key.clone(), creator_id), tx);
    let (found, from) = net
        .drive_until("creator-key lookup", |_| answer(&mut rx))
        .await
        .unwrap();
    assert_eq!((found, from), (ours, Some(server)));
    // The shared key is first-writer-wins: the squatter's record is there.
    let (tx, mut rx) = oneshot::channel();
    net.nodes[2].swarm.behaviour_mut().get(key.clone(), tx);
    let (found, _) = net
        .drive_until("shared-key lookup", |_| answer(&mut rx))
        .await
        .unwrap();
    assert_eq!(found, theirs);
}

/// Keeps memory-transport addresses only (what a public node's mapper is to
/// LAN addresses).
#[derive(Debug)]
struct MemoryOnly;

impl p2p_dht::AddressMapper for MemoryOnly {
    fn keep(&self, addr: &libp2p::Multiaddr) -> bool {
        addr.iter()
            .any(|p| matches!(p, libp2p::multiaddr::Protocol::Memory(_)))
    }
}

/// A DHT peer answering a lookup with a closer peer at an address our
/// mapper refuses does not make us dial that address: answers pass the
/// mapper as the routing table does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_in_lookup_answers_pass_the_mapper() {
    let mut config = dht_config(DhtRates::default());
    config.dht.mapper = MapperPolicy::Custom(Arc::new(MemoryOnly));
    let mut net: Net<Behaviour> = Net {
        nodes: vec![dht_node(Keypair::generate_ed25519(), config).await],
        raw: vec![
            node(Keypair::generate_ed25519(), |id| {
                raw_kad(id, kad::Mode::Server)
            })
            .await,
        ],
    };
    let lan: libp2p::Multiaddr = "/ip4/10.1.2.3/tcp/4001".parse().unwrap();
    let planted = PeerId::random();
    net.raw[0]
        .swarm
        .behaviour_mut()
        .add_address(&planted, lan.clone());
    net.connect_raw(0, 0).await;
    let (raw_id, raw_addr) = (net.raw[0].id(), net.raw[0].addr.clone());
    assert!(
        net.nodes[0]
            .swarm
            .behaviour_mut()
            .add_address(raw_id, raw_addr)
    );
    let (tx, mut rx) = oneshot::channel();
    net.nodes[0]
        .swarm
        .behaviour_mut()
        .get(resource("session", "nowhere"), tx);
    let found = net
        .drive_until("lookup answered", |_| answer(&mut rx))
        .await;
    assert_eq!(found, Err(p2p_dht::LookupError::NotFound));
    assert!(
        !net.nodes[0]
            .failed_dials
            .iter()
            .any(|(_, addr)| addr.to_string().starts_with(&lan.to_string())),
        "dialled a refused address: {:?}",
        net.nodes[0].failed_dials
    );
}

/// The behaviour groups a peer by the address its connection came from:
/// fifteen servers connecting from one public /16 while each claims a
/// listen address in its own /16 get three places (the default diversity).
#[test]
fn the_behaviour_groups_peers_by_their_observed_connection_address() {
    use libp2p::core::ConnectedPoint;
    use libp2p::swarm::behaviour::ConnectionEstablished;
    use libp2p::swarm::{ConnectionId, FromSwarm, NetworkBehaviour as _};

    let protocol = StreamProtocol::new(p2p_dht::DEFAULT_PROTOCOL);
    let mut dht = Behaviour::new(PeerId::random(), dht_config(DhtRates::default()));
    let local_addr: libp2p::Multiaddr = "/ip4/0.0.0.0/tcp/4001".parse().unwrap();
    let mut added = 0;
    for i in 0..15 {
        let peer = PeerId::random();
        let endpoint = ConnectedPoint::Listener {
            local_addr: local_addr.clone(),
            send_back_addr: format!("/ip4/45.33.0.{}/tcp/{}", i + 1, 40_000 + i)
                .parse()
                .unwrap(),
        };
        dht.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(i),
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
        let claimed: libp2p::Multiaddr =
            format!("/ip4/45.{}.1.1/tcp/4001", i + 100).parse().unwrap();
        let population = dht.on_identified(
            peer,
            std::slice::from_ref(&protocol),
            std::slice::from_ref(&claimed),
        );
        if matches!(population, Population::Added(_)) {
            added += 1;
        } else {
            assert_eq!(population, Population::NotDiverse);
        }
    }
    assert_eq!(added, 3);
    assert_eq!(dht.routing_table_size(), 3);
}

/// Auto mode serves the DHT exactly while a direct external address is
/// confirmed: an address through a relay (a wallet behind NAT holding a
/// reservation) does not make a server, though kad's own auto mode would.
#[test]
fn auto_mode_serves_on_a_direct_address_and_never_on_a_relayed_one() {
    use libp2p::swarm::behaviour::{ExternalAddrConfirmed, ExternalAddrExpired};
    use libp2p::swarm::{FromSwarm, NetworkBehaviour as _};
    use p2p_types::DhtMode;

    let mut config = dht_config(DhtRates::default());
    config.dht.mode = p2p_dht::DhtModeSetting::Auto;
    let mut dht = Behaviour::new(PeerId::random(), config);
    assert_eq!(dht.stats().mode, DhtMode::Client);
    let relayed: libp2p::Multiaddr = format!(
        "/ip4/198.51.100.10/tcp/4001/p2p/{}/p2p-circuit",
        PeerId::random()
    )
    .parse()
    .unwrap();
    dht.on_swarm_event(FromSwarm::ExternalAddrConfirmed(ExternalAddrConfirmed {
        addr: &relayed,
    }));
    assert_eq!(dht.stats().mode, DhtMode::Client, "relayed only");
    let direct: libp2p::Multiaddr = "/ip4/198.51.100.20/tcp/4001".parse().unwrap();
    dht.on_swarm_event(FromSwarm::ExternalAddrConfirmed(ExternalAddrConfirmed {
        addr: &direct,
    }));
    assert_eq!(dht.stats().mode, DhtMode::Server, "a direct address");
    dht.on_swarm_event(FromSwarm::ExternalAddrExpired(ExternalAddrExpired {
        addr: &direct,
    }));
    assert_eq!(dht.stats().mode, DhtMode::Client, "back to relayed only");
}

/// A provider that is a DHT client (behind NAT) is in no routing table: the
/// addresses its provider record gives (here a relayed one) are where the
/// node dials it after a lookup.
/// Plants in raw server `raw`'s store a provider record of `provider` under
/// `key`, with `addresses`.
fn plant_provider(
    net: &mut Net<Behaviour>,
    raw: usize,
    key: &RecordKey,
    provider: PeerId,
    addresses: Vec<libp2p::Multiaddr>,
) {
    use kad::store::RecordStore as _;
    net.raw[raw]
        .swarm
        .behaviour_mut()
        .store_mut()
        .add_provider(kad::ProviderRecord {
            key: key.clone(),
            provider,
            expires: None,
            addresses,
        })
        .unwrap();
}

/// The addresses node `node` would dial `peer` at, knowing no other.
fn dial_addresses(net: &mut Net<Behaviour>, node: usize, peer: PeerId) -> Vec<libp2p::Multiaddr> {
    use libp2p::core::Endpoint;
    use libp2p::swarm::{ConnectionId, NetworkBehaviour as _};
    static NEXT: AtomicUsize = AtomicUsize::new(1_000);
    net.nodes[node]
        .swarm
        .behaviour_mut()
        .handle_pending_outbound_connection(
            ConnectionId::new_unchecked(NEXT.fetch_add(1, Ordering::Relaxed)),
            Some(peer),
            &[],
            Endpoint::Dialer,
        )
        .unwrap()
}

/// Looks `key`'s providers up from node `node` until the answer.
async fn lookup_providers(net: &mut Net<Behaviour>, node: usize, key: RecordKey) -> Vec<PeerId> {
    let (tx, mut rx) = oneshot::channel();
    net.nodes[node].swarm.behaviour_mut().get_providers(key, tx);
    net.drive_until("providers found", |_| answer(&mut rx))
        .await
}

#[tokio::test]
async fn a_providers_addresses_from_a_lookup_are_used_to_dial_it() {
    let mut net: Net<Behaviour> = Net {
        nodes: vec![dht_node(Keypair::generate_ed25519(), dht_config(DhtRates::default())).await],
        raw: vec![
            node(Keypair::generate_ed25519(), |id| {
                raw_kad(id, kad::Mode::Server)
            })
            .await,
        ],
    };
    let key = RecordKey::new(&"resource:session:relayed");
    let provider = PeerId::random();
    let relayed: libp2p::Multiaddr = format!(
        "/memory/77/p2p/{}/p2p-circuit/p2p/{provider}",
        net.raw[0].id()
    )
    .parse()
    .unwrap();
    plant_provider(&mut net, 0, &key, provider, vec![relayed.clone()]);
    net.connect_raw(0, 0).await;
    let (raw_id, raw_addr) = (net.raw[0].id(), net.raw[0].addr.clone());
    assert!(
        net.nodes[0]
            .swarm
            .behaviour_mut()
            .add_address(raw_id, raw_addr)
    );
    assert!(
        dial_addresses(&mut net, 0, provider).is_empty(),
        "unknown before the lookup"
    );
    assert_eq!(lookup_providers(&mut net, 0, key).await, vec![provider]);
    assert_eq!(dial_addresses(&mut net, 0, provider), vec![relayed.clone()]);

    // A later answer cannot erase those addresses, nor give one that names
    // another peer (an attacker's redirect).
    let other_key = RecordKey::new(&"resource:session:other");
    let redirect: libp2p::Multiaddr = format!("/memory/99/p2p/{}", PeerId::random())
        .parse()
        .unwrap();
    plant_provider(&mut net, 0, &other_key, provider, vec![redirect]);
    lookup_providers(&mut net, 0, other_key).await;
    assert_eq!(dial_addresses(&mut net, 0, provider), vec![relayed]);
}

/// One step of a bootstrap, as the kad observer saw it.
#[derive(Debug, Clone, Copy)]
struct BootstrapStep {
    id: kad::QueryId,
    count: usize,
    last: bool,
    requests: u32,
    /// The key the step looked up.
    target: PeerId,
}

type BootstrapSteps = Arc<std::sync::Mutex<Vec<BootstrapStep>>>;

/// A key whose peer is not in `joiner`'s farthest bucket, so a first contact
/// with it leaves farther buckets to refresh (half of all keys would not).
fn near_contact(joiner: &Keypair) -> Keypair {
    let joiner = kad::KBucketKey::from(joiner.public().to_peer_id());
    std::iter::repeat_with(Keypair::generate_ed25519)
        .find(|k| {
            joiner
                .distance(&kad::KBucketKey::from(k.public().to_peer_id()))
                .ilog2()
                .is_some_and(|b| b < 255)
        })
        .unwrap()
}

/// Records every bootstrap step `node`'s kad reports.
fn watch_bootstraps(node: &mut support::Node<Behaviour>) -> BootstrapSteps {
    let steps = BootstrapSteps::default();
    let seen = Arc::clone(&steps);
    node.swarm.behaviour_mut().set_kad_observer(move |event| {
        if let kad::Event::OutboundQueryProgressed {
            id,
            result: kad::QueryResult::Bootstrap(result),
            step,
            stats,
        } = event
        {
            let target = match result {
                Ok(ok) => ok.peer,
                Err(kad::BootstrapError::Timeout { peer, .. }) => *peer,
            };
            seen.lock().unwrap().push(BootstrapStep {
                id: *id,
                count: step.count.get(),
                last: step.last,
                requests: stats.num_requests(),
                target,
            });
        }
    });
    steps
}

/// Joining costs a self-lookup, not a walk of every bucket: the bootstrap
/// kad starts by itself when a peer enters a near-empty table sends no
/// request past its self-lookup, while an explicit (or periodic) refresh
/// still looks up every bucket farther than the closest neighbour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_runs_the_self_lookup_and_a_refresh_walks_every_bucket() {
    let joiner = Keypair::generate_ed25519();
    let contact = near_contact(&joiner);
    let mut nodes = vec![
        dht_node(joiner, dht_config(DhtRates::default())).await,
        dht_node(contact, dht_config(DhtRates::default())).await,
    ];
    for _ in 0..11 {
        nodes.push(dht_node(Keypair::generate_ed25519(), dht_config(DhtRates::default())).await);
    }
    let mut net: Net<Behaviour> = Net {
        nodes,
        raw: Vec::new(),
    };
    // Servers 1..=12 know each other; node 0 joins through server 1.
    let contacts: Vec<_> = net.nodes.iter().map(|n| (n.id(), n.addr.clone())).collect();
    for i in 1..net.nodes.len() {
        for (j, (peer, addr)) in contacts.iter().enumerate().skip(1) {
            if i != j {
                net.nodes[i]
                    .swarm
                    .behaviour_mut()
                    .add_address(*peer, addr.clone());
            }
        }
    }
    let steps = watch_bootstraps(&mut net.nodes[0]);
    let (first, first_addr) = contacts[1].clone();
    assert!(
        net.nodes[0]
            .swarm
            .behaviour_mut()
            .add_address(first, first_addr)
    );
    let finished = |steps: &BootstrapSteps, id: Option<kad::QueryId>| {
        steps
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.last && id.is_none_or(|id| s.id == id))
            .then_some(())
    };
    net.drive_until("kad's own bootstrap ends", |_| finished(&steps, None))
        .await;
    let joined: Vec<BootstrapStep> = steps.lock().unwrap().drain(..).collect();
    let self_lookup = joined.iter().find(|s| s.count == 1).expect("a self-lookup");
    assert!(self_lookup.requests > 0, "{joined:?}");
    let refreshes: Vec<_> = joined.iter().filter(|s| s.count > 1).collect();
    assert!(
        !refreshes.is_empty(),
        "farther buckets to refresh: {joined:?}"
    );
    assert!(
        refreshes.iter().all(|s| s.requests == 0),
        "joining walked the buckets: {joined:?}"
    );

    let id = net.nodes[0].swarm.behaviour_mut().bootstrap().unwrap();
    net.drive_until("the full refresh ends", |_| finished(&steps, Some(id)))
        .await;
    let full: Vec<BootstrapStep> = steps
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.id == id)
        .copied()
        .collect();
    assert!(
        full.iter().filter(|s| s.count > 1).any(|s| s.requests > 0),
        "a refresh looks up the farther buckets: {full:?}"
    );
}

/// Node 0, refreshing every `interval`, joins through node 1, a contact not
/// in its farthest bucket (so there are farther buckets to walk); its
/// bootstrap steps are recorded.
async fn joining_pair(interval: Duration) -> (Net<Behaviour>, BootstrapSteps) {
    let joiner = Keypair::generate_ed25519();
    let contact = near_contact(&joiner);
    let mut config = dht_config(DhtRates::default());
    config.dht.bootstrap_interval = Some(interval);
    let mut net: Net<Behaviour> = Net {
        nodes: vec![
            dht_node(joiner, config).await,
            dht_node(contact, dht_config(DhtRates::default())).await,
        ],
        raw: Vec::new(),
    };
    let steps = watch_bootstraps(&mut net.nodes[0]);
    let (first, first_addr) = (net.nodes[1].id(), net.nodes[1].addr.clone());
    assert!(
        net.nodes[0]
            .swarm
            .behaviour_mut()
            .add_address(first, first_addr)
    );
    (net, steps)
}

/// The periodic refresh walks the buckets by itself, again and again: with
/// a 1 s interval, two refreshes (bucket steps that send requests; none of
/// the buckets is full) run without anyone calling `bootstrap`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_refresh_runs_again_and_again() {
    let (mut net, steps) = joining_pair(Duration::from_secs(1)).await;
    let walked = net
        .drive_until("two periodic refreshes", |_| {
            let steps = steps.lock().unwrap();
            let full: HashSet<kad::QueryId> = steps
                .iter()
                .filter(|s| s.count > 1 && s.requests > 0)
                .map(|s| s.id)
                .collect();
            let ended = full
                .iter()
                .filter(|id| steps.iter().any(|s| s.id == **id && s.last))
                .count();
            (ended >= 2).then_some(ended)
        })
        .await;
    assert!(walked >= 2);
}

/// A periodic refresh within an interval of the join's self-lookup is
/// skipped, and the next ones run: with a 4 s interval, the first periodic
/// refresh is due 2-4 s after the start, long after the join's self-lookup
/// (milliseconds in memory), and is skipped; the next two, 4 and 8 s later,
/// run in full. (That a periodic refresh's own self-lookup
/// does not count is not caught here: in memory it ends within
/// milliseconds, so the next tick comes an interval after it anyway.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_refresh_within_an_interval_of_the_joins_self_lookup_is_skipped() {
    let (mut net, steps) = joining_pair(Duration::from_secs(4)).await;
    let me = net.nodes[0].id();
    // A periodic refresh is a bootstrap whose bucket steps sent requests
    // (kad's own stops after its self-lookup). For the first two: their
    // self-lookups, and the refreshes skipped when each was seen.
    let mut seen: Vec<(BootstrapStep, u64)> = Vec::new();
    net.drive_until("two periodic refreshes", |net| {
        let steps = steps.lock().unwrap();
        for periodic in steps.iter().filter(|s| s.count > 1 && s.requests > 0) {
            if seen.iter().any(|(own, _)| own.id == periodic.id) {
                continue;
            }
            let own = steps
                .iter()
                .find(|s| s.id == periodic.id && s.count == 1)
                .copied()?;
            let skipped = net.nodes[0].swarm.behaviour_mut().stats().refreshes_skipped;
            seen.push((own, skipped));
        }
        (seen.len() >= 2).then_some(())
    })
    .await;
    assert_eq!(
        seen[0].1, 1,
        "the refresh due right after the join ran: {seen:?}"
    );
    assert_eq!(seen[1].1, 1, "another refresh was skipped: {seen:?}");
    assert!(
        seen.iter()
            .all(|(own, _)| own.target == me && own.requests > 0),
        "{seen:?}"
    );
}

/// A periodic refresh walks only the buckets a walk can teach something:
/// not a full one, nor one closer than the bucket of the K-th closest peer
/// (the self-lookup found every peer that close). An explicit bootstrap
/// walks every bucket. Node 0 knows 20 real servers in its buckets up to
/// 252 and 20 in its farthest bucket (255), which is therefore full; 253
/// and 254 are empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_refresh_walks_only_the_buckets_it_can_learn_from() {
    let joiner = Keypair::generate_ed25519();
    let me = kad::KBucketKey::from(joiner.public().to_peer_id());
    let bucket = move |peer: &PeerId| me.distance(&kad::KBucketKey::from(*peer)).ilog2();
    let k = kad::K_VALUE.get();
    let keys = |wanted: fn(u32) -> bool| {
        std::iter::repeat_with(Keypair::generate_ed25519)
            .filter(|key| bucket(&key.public().to_peer_id()).is_some_and(wanted))
            .take(k)
            .collect::<Vec<_>>()
    };
    let near = keys(|b| b <= 252);
    let far = keys(|b| b == 255);
    // The bucket of the K-th closest peer: every closer one is covered.
    let kth = near
        .iter()
        .filter_map(|key| bucket(&key.public().to_peer_id()))
        .max()
        .unwrap();
    let mut config = dht_config(DhtRates::default());
    config.dht.bootstrap_interval = Some(Duration::from_secs(1));
    let mut nodes = vec![dht_node(joiner, config).await];
    for key in near.into_iter().chain(far) {
        nodes.push(dht_node(key, dht_config(DhtRates::default())).await);
    }
    let mut net: Net<Behaviour> = Net {
        nodes,
        raw: Vec::new(),
    };
    let contacts: Vec<_> = net.nodes.iter().map(|n| (n.id(), n.addr.clone())).collect();
    let steps = watch_bootstraps(&mut net.nodes[0]);
    for (peer, addr) in contacts.iter().skip(1) {
        net.nodes[0]
            .swarm
            .behaviour_mut()
            .add_address(*peer, addr.clone());
    }
    // Periodic refreshes (bootstraps whose bucket steps sent requests; kad's
    // own sends none past its self-lookup) until one has had a step for a
    // full bucket and one for a covered bucket: kad picks each step's key at
    // random, and a key for a near bucket often lands farther.
    let step_in = |s: &BootstrapStep, wanted: &dyn Fn(u32) -> bool| {
        s.count > 1 && bucket(&s.target).is_some_and(wanted)
    };
    let periodic: Vec<kad::QueryId> = net
        .drive_until("periodic refreshes with full and covered steps", |_| {
            let steps = steps.lock().unwrap();
            // One id per refresh (each reports several steps), in order.
            let mut ids: Vec<kad::QueryId> = steps
                .iter()
                .filter(|s| s.count > 1 && s.requests > 0)
                .map(|s| s.id)
                .filter(|id| steps.iter().any(|s| s.id == *id && s.last))
                .collect();
            let mut once = HashSet::new();
            ids.retain(|id| once.insert(*id));
            let seen = |wanted: &dyn Fn(u32) -> bool| {
                steps
                    .iter()
                    .any(|s| ids.contains(&s.id) && step_in(s, wanted))
            };
            (seen(&|b| b == 255) && seen(&|b| b < kth)).then_some(ids)
        })
        .await;
    assert!(
        periodic.len() < refresh::FULL_WALK_EVERY as usize,
        "the every-bucket walk came before: {periodic:?}"
    );
    let walked_in = |ids: &[kad::QueryId], wanted: &dyn Fn(u32) -> bool| -> Vec<BootstrapStep> {
        steps
            .lock()
            .unwrap()
            .iter()
            .filter(|s| ids.contains(&s.id) && step_in(s, wanted))
            .copied()
            .collect()
    };
    let full = walked_in(&periodic, &|b| b == 255);
    assert!(
        full.iter().all(|s| s.requests == 0),
        "a periodic refresh walked the full bucket: {full:?}"
    );
    let covered = walked_in(&periodic, &|b| b < kth);
    assert!(
        covered.iter().all(|s| s.requests == 0),
        "a periodic refresh walked a bucket closer than the K-th peer's ({kth}): {covered:?}"
    );
    let explicit = net.nodes[0].swarm.behaviour_mut().bootstrap().unwrap();
    net.drive_until("the explicit refresh ends", |_| {
        let steps = steps.lock().unwrap();
        steps
            .iter()
            .any(|s| s.id == explicit && s.last)
            .then_some(())
    })
    .await;
    let walked = walked_in(&[explicit], &|b| b == 255);
    assert!(
        !walked.is_empty() && walked.iter().all(|s| s.requests > 0),
        "an explicit bootstrap walks the full bucket: {walked:?}"
    );
}

/// The peers `dht` asks its swarm to dial, from everything it has ready.
fn dialled(dht: &mut Behaviour) -> Vec<PeerId> {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut peers = Vec::new();
    // Bounded: a behaviour that never runs dry fails the test, not hangs it.
    for _ in 0..10_000 {
        match libp2p::swarm::NetworkBehaviour::poll(dht, &mut cx) {
            std::task::Poll::Ready(libp2p::swarm::ToSwarm::Dial { opts }) => {
                peers.extend(opts.get_peer_id());
            }
            std::task::Poll::Ready(_) => {}
            std::task::Poll::Pending => return peers,
        }
    }
    panic!("the behaviour never ran out of events");
}

/// A connection to `peer` opens and, after `during`, closes.
fn connection(dht: &mut Behaviour, peer: PeerId, id: usize, during: impl FnOnce(&mut Behaviour)) {
    use libp2p::core::{ConnectedPoint, Endpoint, transport::PortUse};
    use libp2p::swarm::behaviour::ConnectionEstablished;
    use libp2p::swarm::{ConnectionClosed, ConnectionId, FromSwarm};
    let endpoint = ConnectedPoint::Dialer {
        address: "/memory/7".parse().unwrap(),
        role_override: Endpoint::Dialer,
        port_use: PortUse::Reuse,
    };
    let connection_id = ConnectionId::new_unchecked(id);
    libp2p::swarm::NetworkBehaviour::on_swarm_event(
        dht,
        FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id,
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }),
    );
    during(dht);
    libp2p::swarm::NetworkBehaviour::on_swarm_event(
        dht,
        FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id,
            endpoint: &endpoint,
            cause: None,
            remaining_established: 0,
        }),
    );
}

/// What `dht` makes of `peer`'s identify, which comes over a connection (so
/// the peer is connected while it is handled).
fn identified_over_a_connection(
    dht: &mut Behaviour,
    peer: PeerId,
    id: usize,
    addrs: &[libp2p::Multiaddr],
) -> Population {
    let protocols = [StreamProtocol::new(p2p_dht::DEFAULT_PROTOCOL)];
    let mut population = None;
    connection(dht, peer, id, |dht| {
        population = Some(dht.on_identified(peer, &protocols, addrs));
    });
    population.unwrap()
}

/// A newcomer whose k-bucket is full, its oldest contact seen lately, is
/// turned away without a dial. kad dials the bucket's oldest disconnected contact for
/// every newcomer to check it is alive; nodes close idle connections after
/// 30 s, so in a large network each identify cost a dial, whose identify
/// cost the other side one, and so on (about 110 dials a second while a
/// 1 000-node network joined). A contact the node has not seen is still
/// checked.
#[tokio::test]
async fn a_full_bucket_of_recently_seen_contacts_costs_a_newcomer_no_dial() {
    use libp2p::kad::KBucketKey;
    let local = PeerId::random();
    let key = KBucketKey::from(local);
    let distance = |p: &PeerId| key.distance(&KBucketKey::from(*p));
    let in_top_bucket = || loop {
        let p = PeerId::random();
        if distance(&p).ilog2() == Some(255) {
            break p;
        }
    };
    // The oldest contact (the one kad would check) is the farthest, so a
    // lookup kad may start by itself, which dials the closest first and gets
    // no answer here, never dials it.
    let mut contacts: Vec<PeerId> = (0..kad::K_VALUE.get()).map(|_| in_top_bucket()).collect();
    contacts.sort_by_key(|p| std::cmp::Reverse(distance(p)));
    let protocols = [StreamProtocol::new(p2p_dht::DEFAULT_PROTOCOL)];
    let addrs: [libp2p::Multiaddr; 1] = ["/memory/7".parse().unwrap()];

    // Contacts the node has never been connected to: a newcomer makes kad
    // check the oldest.
    let mut unseen = Behaviour::new(local, dht_config(DhtRates::default()));
    for contact in &contacts {
        assert_eq!(
            unseen.on_identified(*contact, &protocols, &addrs),
            Population::Added(1)
        );
    }
    // Identify comes over a connection: the newcomer is connected. It lists
    // two addresses; kad checks the contact once (and it is counted once).
    let newcomer = in_top_bucket();
    let two: [libp2p::Multiaddr; 2] = ["/memory/7".parse().unwrap(), "/memory/8".parse().unwrap()];
    assert_eq!(
        identified_over_a_connection(&mut unseen, newcomer, 100, &two),
        Population::Refused
    );
    assert!(dialled(&mut unseen).contains(&contacts[0]));
    assert_eq!(unseen.stats().contact_checks, 1);

    // Contacts whose connections closed a moment ago: no dial.
    let mut seen = Behaviour::new(local, dht_config(DhtRates::default()));
    for (i, contact) in contacts.iter().enumerate() {
        assert_eq!(
            identified_over_a_connection(&mut seen, *contact, i, &addrs),
            Population::Added(1)
        );
    }
    assert_eq!(seen.routing_table_size(), kad::K_VALUE.get());
    for i in 0..5 {
        assert_eq!(
            identified_over_a_connection(&mut seen, in_top_bucket(), 100 + i, &addrs),
            Population::BucketFull
        );
    }
    assert!(!dialled(&mut seen).contains(&contacts[0]));
    assert_eq!(seen.stats().contact_checks, 0);
    assert_eq!(seen.routing_table_size(), kad::K_VALUE.get());

    // What counts is the contact kad would check, the oldest: unseen here,
    // though every other contact was seen a moment ago.
    let mut oldest_unseen = Behaviour::new(local, dht_config(DhtRates::default()));
    assert_eq!(
        oldest_unseen.on_identified(contacts[0], &protocols, &addrs),
        Population::Added(1)
    );
    for (i, contact) in contacts.iter().enumerate().skip(1) {
        assert_eq!(
            identified_over_a_connection(&mut oldest_unseen, *contact, i, &addrs),
            Population::Added(1)
        );
    }
    assert_eq!(
        identified_over_a_connection(&mut oldest_unseen, in_top_bucket(), 200, &addrs),
        Population::Refused
    );
    assert!(dialled(&mut oldest_unseen).contains(&contacts[0]));
    assert_eq!(oldest_unseen.stats().contact_checks, 1);
}
