//! DHT behaviours on in-memory swarms, without a node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use libp2p::identity::Keypair;
use libp2p::kad::{self, Quorum, Record, RecordKey};
use support::{Net, RawKad, node, raw_kad};

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
