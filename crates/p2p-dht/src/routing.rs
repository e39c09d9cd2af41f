//! Routing-table population from identify.
//!
//! With `BucketInserts::Manual`, libp2p-kad adds nobody by itself. When identify
//! tells us a peer's protocols and listen addresses, [`on_identified`] adds the
//! peer if (and only if) it advertises our Kademlia protocol, i.e. runs in server
//! mode, with the addresses the mapper keeps. Client-mode peers can still query
//! us but never enter our table, so queries are never routed to nodes that cannot
//! answer them. (js kad-dht behaves the same, and it pings a contact before adding
//! it, which is why lotus-p2p nodes always run ping.)
//!
//! [`Diversity`] keeps one network operator from filling the table (an
//! eclipse): peers connected from public IPs of the same group may take a
//! few places per k-bucket and per table, the rest are refused. The group is
//! that of the address the peer's connection was observed at, never of the
//! addresses it claims in identify (which cost nothing to vary); peers
//! connected through a DNS name share one group, since the name says nothing
//! about the operator behind it.
//!
//! A newcomer whose k-bucket is full makes libp2p-kad dial the bucket's
//! oldest disconnected contact to check it is alive (the newcomer replaces it
//! if not). Nodes close idle connections after 30 s, so nearly every contact
//! is "disconnected" and every newcomer costs a dial; each such dial is a
//! connection on which the other side identifies us, a newcomer to *its* full
//! bucket, and so on. While a 1 000-node network joined on one machine, 16
//! sampled nodes made 228 such dials in 127 s (about 110 a second for the
//! network), and with 15 s pings the network was not up within 600 s
//! (157 s with this rule; BENCHMARKS.md §5, seventh session). [`Seen`] remembers
//! when each contact's last connection closed; while the oldest one was seen
//! within the check window, the newcomer is turned away without a dial
//! ([`Population::BucketFull`]). A close is weak evidence of life (a dead
//! peer's idle connection closes by timeout too), so it only defers the check
//! by the window. Contacts that stopped answering still leave:
//! a failed dial drops them (`Behaviour::forget_unreachable`), and a contact
//! unseen for longer than the window is checked as before.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::kad::{self, KBucketKey, RoutingUpdate};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, StreamProtocol};

use crate::Kademlia;
use crate::mapper::{AddressMapper, AddressScope, PublicRanges};

/// Routing-table diversity, after go-libp2p's peer-diversity filter: peers are
/// grouped by the address their connection was observed at (a public IPv4
/// /16, a public IPv6 /32, or "a DNS name", one group for all names); a group
/// may hold at most `per_bucket` peers in one k-bucket and `per_table` in the
/// whole table. Peers connected from loopback, LAN or memory addresses are
/// not grouped, so LAN and test networks are not policed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diversity {
    /// Peers of one group in one k-bucket. Default 2.
    pub per_bucket: usize,
    /// Peers of one group in the table. Default 3.
    pub per_table: usize,
}

impl Default for Diversity {
    fn default() -> Self {
        Self {
            per_bucket: 2,
            per_table: 3,
        }
    }
}

/// The diversity group of a connection observed at `addr`, if it has one.
fn group_of(addr: &Multiaddr, public_ranges: &PublicRanges) -> Option<Vec<u8>> {
    match public_ranges.classify(addr) {
        AddressScope::Public => addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(prefix(IpAddr::V4(ip))),
            Protocol::Ip6(ip) => Some(prefix(IpAddr::V6(ip))),
            _ => None,
        }),
        AddressScope::Dns => Some(b"dns".to_vec()),
        _ => None,
    }
}

fn prefix(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => [&[4u8][..], v4.octets().get(..2).unwrap_or_default()].concat(),
        IpAddr::V6(v6) => [&[6u8][..], v6.octets().get(..4).unwrap_or_default()].concat(),
    }
}

fn bucket_of(local: &KBucketKey<PeerId>, peer: PeerId) -> u32 {
    local.distance(&KBucketKey::from(peer)).ilog2().unwrap_or(0)
}

/// The diversity group each peer had when it entered the routing table
/// (its observed connection address then); peers not listed are not grouped.
#[derive(Debug, Default)]
pub struct Groups {
    of: HashMap<PeerId, Vec<u8>>,
}

impl Groups {
    /// Forgets peers no longer in `kad`'s table once the map has grown past
    /// twice the table (so it stays bounded by the table's size).
    fn prune(&mut self, kad: &mut Kademlia) {
        if self.of.len() <= 64 || self.of.len() <= crate::routing_table_size(kad).saturating_mul(2)
        {
            return;
        }
        let mut keep = HashMap::new();
        for bucket in kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                if let Some(group) = self.of.remove(&peer) {
                    keep.insert(peer, group);
                }
            }
        }
        self.of = keep;
    }
}

/// When each routing-table contact's last connection closed (see the
/// module docs): a full bucket whose oldest contact closed within `window`
/// turns a newcomer away without dialling that contact.
#[derive(Debug)]
pub struct Seen {
    at: HashMap<PeerId, Instant>,
    window: Duration,
    /// Contacts kad dialled to check them (a newcomer found their bucket
    /// full and the oldest contact not seen within the window).
    checks: u64,
}

impl Seen {
    /// Contacts seen within `window` are not dialled to make room for a
    /// newcomer; a zero window dials for every newcomer (kad's own rule).
    pub fn new(window: Duration) -> Self {
        Self {
            at: HashMap::new(),
            window,
            checks: 0,
        }
    }

    /// `peer`'s last connection closed at `now`: remembered if it is in the
    /// table (the map stays bounded by twice the table, as [`Groups`], and
    /// is pruned to the table's peers seen within the window).
    pub fn disconnected(&mut self, kad: &mut Kademlia, peer: PeerId, now: Instant) {
        if self.window.is_zero() || !in_table(kad, peer) {
            return;
        }
        self.at.insert(peer, now);
        // The table is summed only past 64 entries, not on every close.
        if self.at.len() > 64 && self.at.len() > crate::routing_table_size(kad).saturating_mul(2) {
            // What is left is at most the table.
            let window = self.window;
            self.at.retain(|peer, at| {
                now.saturating_duration_since(*at) <= window && in_table(kad, *peer)
            });
        }
    }

    /// Contacts dialled so far to check they are alive.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    fn recently(&self, peer: &PeerId, now: Instant) -> bool {
        self.at
            .get(peer)
            .is_some_and(|at| now.saturating_duration_since(*at) <= self.window)
    }
}

fn in_table(kad: &mut Kademlia, peer: PeerId) -> bool {
    kad.kbucket(peer)
        .is_some_and(|b| b.iter().any(|e| *e.node.key.preimage() == peer))
}

/// True when `peer` is not in the table and its bucket is full, with no
/// newcomer pending, and the contact kad would dial to make room (the
/// oldest disconnected one) was seen within the window.
fn turned_away(kad: &mut Kademlia, seen: &Seen, peer: PeerId, now: Instant) -> bool {
    let Some(bucket) = kad.kbucket(peer) else {
        return false;
    };
    // kad's bucket size: `DhtConfig::kad_config` leaves it at K_VALUE.
    if bucket.num_entries() < kad::K_VALUE.get()
        || bucket.has_pending()
        || bucket.iter().any(|e| *e.node.key.preimage() == peer)
    {
        return false;
    }
    bucket.iter().next().is_some_and(|oldest| {
        oldest.status == kad::NodeStatus::Disconnected
            && seen.recently(oldest.node.key.preimage(), now)
    })
}

/// True when adding `peer`, of `group`, keeps the table diverse.
fn diverse(
    kad: &mut Kademlia,
    groups: &Groups,
    local: PeerId,
    limits: Diversity,
    peer: PeerId,
    group: &[u8],
) -> bool {
    let local = KBucketKey::from(local);
    let target = bucket_of(&local, peer);
    let (mut in_bucket, mut in_table) = (0, 0);
    for bucket in kad.kbuckets() {
        for entry in bucket.iter() {
            let other = *entry.node.key.preimage();
            if other == peer || groups.of.get(&other).map(Vec::as_slice) != Some(group) {
                continue;
            }
            in_table += 1;
            if bucket_of(&local, other) == target {
                in_bucket += 1;
            }
        }
    }
    in_bucket < limits.per_bucket && in_table < limits.per_table
}

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
    /// Its IP group already has its share of the table ([`Diversity`]).
    NotDiverse,
    /// Its k-bucket is full and the contact kad would check to make room
    /// (the oldest disconnected one) was seen within the check window: it
    /// stays, and is not dialled ([`Seen`]).
    BucketFull,
}

/// What [`on_identified`] needs to know about the local node.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// Our PeerId (k-buckets are relative to it).
    pub peer: PeerId,
    /// Our Kademlia protocol.
    pub kad_protocol: &'a StreamProtocol,
    /// Diversity limits; `None` turns them off.
    pub diversity: Option<Diversity>,
    /// Ranges treated as public (grouped like public addresses).
    pub public_ranges: &'a PublicRanges,
}

/// A peer identify told us about.
#[derive(Debug, Clone, Copy)]
pub struct Identified<'a> {
    /// The peer.
    pub peer: PeerId,
    /// The address its connection was observed at (the diversity group comes
    /// from it; `None`: not grouped).
    pub observed: Option<&'a Multiaddr>,
    /// The protocols it advertises.
    pub protocols: &'a [StreamProtocol],
    /// The listen addresses it claims.
    pub listen_addrs: &'a [Multiaddr],
}

/// Adds an identified peer to the routing table when it is a DHT server,
/// recording its diversity group in `groups`.
pub fn on_identified(
    kad: &mut Kademlia,
    mapper: &dyn AddressMapper,
    local: Local<'_>,
    groups: &mut Groups,
    seen: &mut Seen,
    identified: Identified<'_>,
) -> Population {
    let Identified {
        peer,
        observed,
        protocols,
        listen_addrs,
    } = identified;
    if !protocols.contains(local.kad_protocol) {
        return Population::NotAServer;
    }
    let addrs = mapper.map(listen_addrs);
    if addrs.is_empty() {
        return Population::NoUsableAddress;
    }
    if turned_away(kad, seen, peer, Instant::now()) {
        return Population::BucketFull;
    }
    let group = observed.and_then(|addr| group_of(addr, local.public_ranges));
    if let Some(limits) = local.diversity
        && let Some(group) = &group
        && !diverse(kad, groups, local.peer, limits, peer, group)
    {
        return Population::NotDiverse;
    }
    groups.prune(kad);
    match group {
        Some(group) => groups.of.insert(peer, group),
        None => groups.of.remove(&peer),
    };
    // kad dials the oldest contact when the peer becomes its bucket's
    // pending node; a peer already pending (another of its addresses, a
    // second identify) is answered `Pending` too, without a dial.
    let was_pending = kad.kbucket(peer).is_some_and(|b| b.has_pending());
    let (mut added, mut pending) = (0, false);
    for addr in addrs {
        match kad.add_address(&peer, addr) {
            RoutingUpdate::Success => added += 1,
            RoutingUpdate::Pending => pending = true,
            RoutingUpdate::Failed => {}
        }
    }
    if pending && !was_pending {
        seen.checks += 1;
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
