//! Routing-table population from identify.
//!
//! With `BucketInserts::Manual`, libp2p-kad adds nobody by itself. When identify
//! tells us a peer's protocols and listen addresses, [`on_identified`] adds the
//! peer if (and only if) it advertises our Kademlia protocol, i.e. runs in server
//! mode, with the addresses the mapper keeps. Client-mode peers can still query
//! us but never enter our table, so queries are never routed to nodes that cannot
//! answer them. (js kad-dht behaves the same, and it pings a contact before adding
//! it, which is why lotus-p2p nodes always run ping.)

use std::collections::HashMap;

use libp2p::kad::{KBucketKey, RoutingUpdate};
use libp2p::{Multiaddr, PeerId, StreamProtocol};

use crate::Kademlia;
use crate::mapper::AddressMapper;

/// What [`on_identified`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Population {
    /// The peer does not advertise our Kademlia protocol.
    NotAServer,
    /// The mapper kept none of its addresses.
    NoUsableAddress,
    /// The peer was added (or its addresses refreshed) with this many addresses.
    Added(usize),
    /// The table refused it (bucket full, or pending).
    Refused,
}

/// Adds an identified peer to the routing table when it is a DHT server.
pub fn on_identified(
    kad: &mut Kademlia,
    mapper: &dyn AddressMapper,
    kad_protocol: &StreamProtocol,
    peer: PeerId,
    protocols: &[StreamProtocol],
    listen_addrs: &[Multiaddr],
) -> Population {
    if !protocols.contains(kad_protocol) {
        return Population::NotAServer;
    }
    let addrs = mapper.map(listen_addrs);
    if addrs.is_empty() {
        return Population::NoUsableAddress;
    }
    let mut added = 0;
    for addr in addrs {
        match kad.add_address(&peer, addr) {
            RoutingUpdate::Success => added += 1,
            RoutingUpdate::Pending | RoutingUpdate::Failed => {}
        }
    }
    if added > 0 {
        Population::Added(added)
    } else {
        Population::Refused
    }
}

/// How many of `peers` a routing table of `local` can hold when each k-bucket
/// (peers at the same XOR-distance order) keeps at most `k`: the size a fully
/// populated table reaches, for tests and benchmarks.
pub fn table_capacity(local: PeerId, peers: impl IntoIterator<Item = PeerId>, k: usize) -> usize {
    let local = KBucketKey::from(local);
    let mut buckets = HashMap::<u32, usize>::new();
    for peer in peers {
        // Distinct peers are never at distance zero.
        let bucket = local.distance(&KBucketKey::from(peer)).ilog2().unwrap_or(0);
        *buckets.entry(bucket).or_default() += 1;
    }
    buckets.values().map(|&n| n.min(k)).sum()
}
