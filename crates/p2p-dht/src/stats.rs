//! DHT statistics.

use libp2p::kad::{self, store::RecordStore};
use p2p_types::{DhtMode, DhtStats, QueryTotals};

use crate::Kademlia;

/// Peers in the routing table.
pub fn routing_table_size(kad: &mut Kademlia) -> usize {
    kad.kbuckets().map(|b| b.num_entries()).sum()
}

/// The DHT's numbers now. `queries_in_flight` is counted by the caller, which
/// owns the queries.
pub fn dht_stats(kad: &mut Kademlia, queries_in_flight: usize) -> DhtStats {
    let routing_table_size = routing_table_size(kad);
    let store = kad.store_mut();
    let records_stored = store.records().count();
    let provider_keys = store.provided().count();
    DhtStats {
        mode: match kad.mode() {
            kad::Mode::Server => DhtMode::Server,
            kad::Mode::Client => DhtMode::Client,
        },
        routing_table_size,
        records_stored,
        provider_keys,
        queries_in_flight,
        ready: routing_table_size > 0,
        record_lookups: QueryTotals::default(),
        provider_lookups: QueryTotals::default(),
        contact_checks: 0,
        refreshes_skipped: 0,
    }
}
