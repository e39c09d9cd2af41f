//! Kademlia configuration with lotus-p2p's defaults.

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::kad;
use libp2p::{PeerId, StreamProtocol};

use crate::Kademlia;
use crate::mapper::MapperPolicy;

/// The DHT protocol of the TypeScript system, kept for interop.
pub const DEFAULT_PROTOCOL: &str = "/lotus/kad/1.0.0";

/// Which Kademlia mode a node runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DhtModeSetting {
    /// Query only; never store or answer (not advertised in identify).
    Client,
    /// Store records and answer queries.
    Server,
    /// Server while the node has a confirmed direct external address (kad's
    /// automatic mode, except that a relayed address does not count: a node
    /// reachable only through a relay stays a client). A node whose listen addresses are all local
    /// (loopback, LAN, memory) advertises them as external addresses by default
    /// (`NodeConfig::advertise_listen_addrs`), so Auto turns Server there at
    /// once; a node on `0.0.0.0` stays a client until an address is confirmed.
    #[default]
    Auto,
}

/// Kademlia settings. Every default is documented on its field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DhtConfig {
    /// Protocol id. Default `/lotus/kad/1.0.0` (the TypeScript network's).
    pub protocol: StreamProtocol,
    /// Mode. Default [`DhtModeSetting::Auto`].
    pub mode: DhtModeSetting,
    /// Which peer addresses enter the routing table. Default Auto (see [`crate::mapper`]).
    pub mapper: MapperPolicy,
    /// Address ranges the mapper and the diversity groups treat as public
    /// (private deployments, tests on documentation ranges). Default none.
    pub public_ranges: crate::mapper::PublicRanges,
    /// How long stored records live unless they carry an earlier expiry.
    /// Default 1 hour: resources are sessions and rounds that last minutes to
    /// hours (the TypeScript examples announce with `ttl: 3600`), so a record
    /// should not outlive its usefulness by days as with kad's 48 h default.
    pub record_ttl: Duration,
    /// How often stored records are replicated to the closest peers. Default
    /// 10 minutes, so records follow churn within a small network.
    pub record_replication_interval: Duration,
    /// Provider-record TTL. Default 1 hour, as for records.
    pub provider_ttl: Duration,
    /// Provider re-announcement interval. Default 30 minutes.
    pub provider_publication_interval: Duration,
    /// Replication factor (k). Default 20, the Kademlia standard and js kad-dht's.
    pub replication_factor: NonZeroUsize,
    /// Bound on one query. Default 60 s (libp2p's). A put is the slow query:
    /// a full walk to the k closest peers, then a PUT to each of them, α (3)
    /// at a time, and the reply waits for all of them. In a 200-node network
    /// on 2 cores with 16 announces at once a put took 5–19 s (median 8 s);
    /// with the 10 s bound this used before, about one put in ten timed out
    /// before its first PUT and was stored by no one (BENCHMARKS.md §5).
    /// Lookups are bounded by the caller (`discover`'s timeout); a lookup
    /// left running is dropped at this bound.
    pub query_timeout: Duration,
    /// Interval of the routing-table refresh (a self-lookup, then a lookup
    /// in every bucket farther than the closest neighbour that holds fewer
    /// than K peers; every 12th refresh walks the full buckets too), run by
    /// [`crate::Behaviour`]. Default 5 minutes (libp2p's). Joining runs
    /// only the self-lookup, and a refresh due less than an interval after
    /// such a join (or a rejoin) is skipped (see [`crate::refresh`]).
    pub bootstrap_interval: Option<Duration>,
    /// How long after its last connection closed a routing-table contact
    /// counts as alive. A newcomer whose k-bucket is full is turned away when
    /// the bucket's oldest contact counts as alive; kad would dial that
    /// contact to check it, and with idle connections closed after 30 s that
    /// was a dial per newcomer (see [`crate::routing`]). Default 10 minutes;
    /// zero dials for every newcomer, as kad does.
    pub contact_check_after: Duration,
    /// Most records stored for others. Default 10 000 (≈ 160 MB worst case at
    /// the value limit; ~10 MB for typical 1 KB adverts). Our own records
    /// have as many places of their own, so others' cannot crowd them out.
    pub max_records: usize,
    /// Most keys others provide in our store. Default 1 024 (libp2p-kad's).
    /// Keys we provide have as many places of their own.
    pub max_provider_keys: usize,
    /// Most keys one other peer provides in our store. Default 64: a peer
    /// offers a few names; without a cap, a handful of peers could take
    /// every place.
    pub max_provider_keys_per_peer: usize,
    /// Largest record value stored. Default 16 384 bytes (one kad packet).
    pub max_value_bytes: usize,
    /// Use disjoint lookup paths (S/Kademlia). Default true: costs a few more
    /// messages, resists a single eclipsing path.
    pub disjoint_query_paths: bool,
    /// Requests a lookup keeps in flight per path, and, with
    /// `disjoint_query_paths`, the number of paths (libp2p-kad's α).
    /// Default 3 (kad's).
    pub parallelism: NonZeroUsize,
    /// End a provider lookup once this many peers we asked have answered
    /// with providers (our own store does not count). Default `None`: the
    /// lookup walks until the 20 closest peers of each disjoint path have
    /// answered, and the providers are the union of every answer, so
    /// hiding one means controlling every path's closest peers.
    ///
    /// Every honest server near a key holds every provider record put
    /// there, so the first answers usually hold the whole list, and ending
    /// there costs a fraction of the walk: at 1 000 nodes a `discover` sent
    /// 19–22 requests (p50) with 2 answers and the creator read once, 41–46
    /// with 3 (BENCHMARKS.md §5, tenth session). But kad does not check an
    /// answer's list, and any peer the walk asks counts, so `n` peers on
    /// the path (placed near the key, or simply asked early) answering
    /// first with lists of their own hide every other provider from that
    /// lookup; so does a provider record that reached few of the closest
    /// servers. Set it where lookups must be cheap and provider lists come
    /// from trusted servers; [`DhtConfig::provider_closest`] is the early end
    /// that trusts only the peers nearest the key.
    pub provider_answers: Option<NonZeroUsize>,
    /// End a provider lookup once the `n` corroborated peers nearest to
    /// the key that it knows of (those kad gave up on left out) have all
    /// answered and one of them named a provider other than us. Default 3.
    /// A provider record is put to the 20 nearest servers, so the nearest
    /// few hold every provider put there. Corroborated: named by answers
    /// reached through two different peers of our routing table (a
    /// table peer's own line counts as one); so no single line of
    /// answers ends the walk, neither a peer asked on the way naming ids of
    /// its own placed near the key nor a table peer alone, and a far peer
    /// answering first ends nothing. Hiding a creator takes holding places near the key that
    /// honest peers name (the full walk asks that of every disjoint path)
    /// or answering for two lines of the walk. When none of them names a
    /// provider the walk goes on to kad's end. `None`: the full walk. See
    /// the `closest` module and BENCHMARKS.md §5.
    pub provider_closest: Option<NonZeroUsize>,
    /// Routing-table diversity for peers connected from public IPs or DNS
    /// names, grouped by the connection's observed address. Default on (2
    /// per group per bucket, 3 per table); `None` turns it off.
    pub diversity: Option<crate::routing::Diversity>,
    /// Resource records one creator may have in our store (server mode).
    /// Default 100 in all, 20 per type; `None` turns it off.
    pub creator_quotas: Option<crate::quotas::CreatorQuotas>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            protocol: StreamProtocol::new(DEFAULT_PROTOCOL),
            mode: DhtModeSetting::Auto,
            mapper: MapperPolicy::Auto,
            public_ranges: crate::mapper::PublicRanges::default(),
            record_ttl: Duration::from_secs(3600),
            record_replication_interval: Duration::from_secs(600),
            provider_ttl: Duration::from_secs(3600),
            provider_publication_interval: Duration::from_secs(1800),
            replication_factor: NonZeroUsize::new(20).unwrap_or(NonZeroUsize::MIN),
            query_timeout: Duration::from_secs(60),
            bootstrap_interval: Some(Duration::from_secs(300)),
            contact_check_after: Duration::from_secs(600),
            max_records: 10_000,
            max_provider_keys: 1024,
            max_provider_keys_per_peer: 64,
            max_value_bytes: 16_384,
            disjoint_query_paths: true,
            parallelism: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            provider_answers: None,
            provider_closest: NonZeroUsize::new(3),
            diversity: Some(crate::routing::Diversity::default()),
            creator_quotas: Some(crate::quotas::CreatorQuotas::default()),
        }
    }
}

impl DhtConfig {
    /// The libp2p-kad configuration. Routing-table inserts are manual (see
    /// [`crate::routing`]), inbound records are filtered by the node before
    /// they are stored, and the periodic refresh is [`crate::Behaviour`]'s,
    /// not kad's.
    pub fn kad_config(&self) -> kad::Config {
        let mut c = kad::Config::new(self.protocol.clone());
        c.set_record_ttl(Some(self.record_ttl))
            // Our own records have one republisher, the node's (p2p-core:
            // a freshly signed record at half its TTL); kad's would re-put
            // the same stale bytes.
            .set_publication_interval(None)
            .set_replication_interval(Some(self.record_replication_interval))
            .set_provider_record_ttl(Some(self.provider_ttl))
            .set_provider_publication_interval(Some(self.provider_publication_interval))
            .set_replication_factor(self.replication_factor)
            .set_query_timeout(self.query_timeout)
            .set_periodic_bootstrap_interval(None)
            .set_kbucket_inserts(kad::BucketInserts::Manual)
            .set_record_filtering(kad::StoreInserts::FilterBoth)
            .set_max_packet_size(self.max_value_bytes * 2)
            .set_parallelism(self.parallelism)
            .disjoint_query_paths(self.disjoint_query_paths);
        c
    }

    /// A kad behaviour for `local` with this configuration, in the configured
    /// mode. On its own it has no periodic refresh and walks every bucket
    /// when it joins: [`crate::Behaviour`], which wraps it, adds the refresh
    /// and cuts the join to the self-lookup (see [`crate::refresh`]).
    pub fn behaviour(&self, local: PeerId) -> Kademlia {
        let store = crate::store::Store::new(
            local,
            crate::store::StoreLimits {
                records: self.max_records,
                value_bytes: self.max_value_bytes,
                provider_keys: self.max_provider_keys,
                provider_keys_per_peer: self.max_provider_keys_per_peer,
            },
        );
        let mut kad = kad::Behaviour::with_config(local, store, self.kad_config());
        // Auto starts as a client; `crate::Behaviour` decides from the
        // node's direct external addresses (kad's own auto mode would also
        // count relayed ones).
        kad.set_mode(Some(match self.mode {
            DhtModeSetting::Server => kad::Mode::Server,
            DhtModeSetting::Client | DhtModeSetting::Auto => kad::Mode::Client,
        }));
        kad
    }
}
