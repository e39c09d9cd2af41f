//! The node's limits as `run` flags (and so as `LOTUS_P2P_*` variables and
//! config-file keys): connections, message and stream rates, the DHT's store
//! and query bounds. A flag not given keeps the library's default.

use std::str::FromStr;
use std::time::Duration;

use p2p_core::{NodeConfig, Rate};

/// A rate limit: `off`, `<per-second>` or `<per-second>:<burst>`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateArg(Option<Rate>);

impl FromStr for RateArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "off" {
            return Ok(RateArg(None));
        }
        let number = |s: &str| {
            s.parse::<u32>().map_err(|_| {
                format!("{text:?}: expected off, <per-second> or <per-second>:<burst>")
            })
        };
        let (per_second, burst) = match text.split_once(':') {
            Some((rate, burst)) => (number(rate)?, number(burst)?),
            None => (number(text)?, number(text)?),
        };
        Ok(RateArg(Some(Rate::new(per_second, burst))))
    }
}

#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct LimitArgs {
    /// Connections at most, in all (default 256).
    #[arg(long, env = "LOTUS_P2P_MAX_CONNECTIONS")]
    max_connections: Option<u32>,
    /// Inbound connections at most.
    #[arg(long, env = "LOTUS_P2P_MAX_CONNECTIONS_IN")]
    max_connections_in: Option<u32>,
    /// Outbound connections at most.
    #[arg(long, env = "LOTUS_P2P_MAX_CONNECTIONS_OUT")]
    max_connections_out: Option<u32>,
    /// Connections to one peer at most (default 4).
    #[arg(long, env = "LOTUS_P2P_MAX_CONNECTIONS_PER_PEER")]
    max_connections_per_peer: Option<u32>,
    /// Inbound connections from one IPv4 address (or IPv6 /64) at most.
    #[arg(long, env = "LOTUS_P2P_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<u32>,
    /// Connections kept open while idle before idle DHT-only ones close.
    #[arg(long, env = "LOTUS_P2P_KEEP_IDLE")]
    keep_idle: Option<u32>,
    /// Connections being set up at once, inbound.
    #[arg(long, env = "LOTUS_P2P_MAX_PENDING_IN")]
    max_pending_in: Option<u32>,
    /// Connections being set up at once, outbound.
    #[arg(long, env = "LOTUS_P2P_MAX_PENDING_OUT")]
    max_pending_out: Option<u32>,
    /// Refuse new connections once the process uses this many MiB.
    #[arg(long, env = "LOTUS_P2P_MAX_MEMORY_MIB")]
    max_memory_mib: Option<usize>,
    /// Messages accepted from one peer (`off`, `<per-second>[:<burst>]`).
    #[arg(long, env = "LOTUS_P2P_PEER_MESSAGES")]
    peer_messages: Option<RateArg>,
    /// Message bytes accepted from one peer per second (`off`, `<n>[:<burst>]`).
    #[arg(long, env = "LOTUS_P2P_PEER_BYTES")]
    peer_bytes: Option<RateArg>,
    /// Messages accepted from all peers together.
    #[arg(long, env = "LOTUS_P2P_NODE_MESSAGES")]
    node_messages: Option<RateArg>,
    /// Message bytes accepted from all peers together per second.
    #[arg(long, env = "LOTUS_P2P_NODE_BYTES")]
    node_bytes: Option<RateArg>,
    /// Streams one peer may open.
    #[arg(long, env = "LOTUS_P2P_PEER_INBOUND_STREAMS")]
    peer_inbound_streams: Option<RateArg>,
    /// DHT requests one peer may make.
    #[arg(long, env = "LOTUS_P2P_PEER_DHT_REQUESTS")]
    peer_dht_requests: Option<RateArg>,
    /// Lifetime of DHT records, seconds (default 3600).
    #[arg(long, env = "LOTUS_P2P_DHT_RECORD_TTL_SECS")]
    dht_record_ttl_secs: Option<u64>,
    /// Longest a DHT query runs, seconds (default 60).
    #[arg(long, env = "LOTUS_P2P_DHT_QUERY_TIMEOUT_SECS")]
    dht_query_timeout_secs: Option<u64>,
    /// Records kept in the DHT store at most.
    #[arg(long, env = "LOTUS_P2P_DHT_MAX_RECORDS")]
    dht_max_records: Option<usize>,
    /// Provider keys kept at most.
    #[arg(long, env = "LOTUS_P2P_DHT_MAX_PROVIDER_KEYS")]
    dht_max_provider_keys: Option<usize>,
}

impl LimitArgs {
    /// Sets in `config` every limit given.
    pub(crate) fn apply(&self, config: &mut NodeConfig) {
        let limits = &mut config.limits;
        let set = |target: &mut u32, value: Option<u32>| {
            if let Some(value) = value {
                *target = value;
            }
        };
        set(&mut limits.max_established, self.max_connections);
        set(
            &mut limits.max_established_incoming,
            self.max_connections_in,
        );
        set(
            &mut limits.max_established_outgoing,
            self.max_connections_out,
        );
        set(
            &mut limits.max_established_per_peer,
            self.max_connections_per_peer,
        );
        set(&mut limits.keep_idle, self.keep_idle);
        set(&mut limits.max_pending_incoming, self.max_pending_in);
        set(&mut limits.max_pending_outgoing, self.max_pending_out);
        if let Some(per_ip) = self.max_connections_per_ip {
            limits.per_ip.per_ipv4 = per_ip;
            limits.per_ip.per_ipv6_56 = per_ip;
        }
        if let Some(mib) = self.max_memory_mib {
            limits.max_process_memory = Some(mib.saturating_mul(1024 * 1024));
        }
        let rates = &mut config.rate_limits;
        for (target, value) in [
            (&mut rates.peer_messages, self.peer_messages),
            (&mut rates.peer_bytes, self.peer_bytes),
            (&mut rates.node_messages, self.node_messages),
            (&mut rates.node_bytes, self.node_bytes),
            (&mut rates.peer_inbound_streams, self.peer_inbound_streams),
            (&mut rates.peer_dht_requests, self.peer_dht_requests),
        ] {
            if let Some(RateArg(rate)) = value {
                *target = rate;
            }
        }
        let dht = &mut config.dht;
        if let Some(secs) = self.dht_record_ttl_secs {
            dht.record_ttl = Duration::from_secs(secs);
        }
        if let Some(secs) = self.dht_query_timeout_secs {
            dht.query_timeout = Duration::from_secs(secs);
        }
        if let Some(n) = self.dht_max_records {
            dht.max_records = n;
        }
        if let Some(n) = self.dht_max_provider_keys {
            dht.max_provider_keys = n;
        }
    }
}
