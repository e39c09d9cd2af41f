//! The node's limits as `run` flags (and so as `LOTUS_P2P_*` variables and
//! config-file keys): every bound of the library's `NodeConfig` — connections,
//! message sizes and rates, the replay and sequence memories, peer scoring,
//! the DHT's store and query bounds, the relay server's. A flag not given
//! keeps the library's default (documented on the `NodeConfig` field).

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::str::FromStr;
use std::time::Duration;

use p2p_core::{CreatorQuotas, Diversity, NodeConfig, PeerId, Rate, RelayRate};

/// A rate limit: `off`, `<per-second>` or `<per-second>:<burst>`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateArg(Option<Rate>);

impl FromStr for RateArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "off" {
            return Ok(RateArg(None));
        }
        let (per_second, burst) = pair(text, "off, <per-second> or <per-second>:<burst>")?;
        Ok(RateArg(Some(Rate::new(per_second, burst))))
    }
}

/// `<a>:<b>`, both unsigned.
fn strict_pair<T: FromStr + Copy>(text: &str, expected: &str) -> Result<(T, T), String> {
    if !text.contains(':') {
        return Err(format!("{text:?}: expected {expected}"));
    }
    pair(text, expected)
}

/// `<a>` (meaning `<a>:<a>`) or `<a>:<b>`, both unsigned.
fn pair<T: FromStr + Copy>(text: &str, expected: &str) -> Result<(T, T), String> {
    let number = |s: &str| {
        s.parse::<T>()
            .map_err(|_| format!("{text:?}: expected {expected}"))
    };
    match text.split_once(':') {
        Some((a, b)) => Ok((number(a)?, number(b)?)),
        None => number(text).map(|a| (a, a)),
    }
}

/// A score threshold: a number above the lowest score (−100) and below 0.
fn score_threshold(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > -100.0 && x < 0.0 => Ok(x),
        _ => Err(format!("{text:?}: expected a number between -100 and 0")),
    }
}

/// DHT puts from one peer: `off`, or `<one-every-ms>:<burst>`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PutRateArg(Option<(Duration, u32)>);

impl FromStr for PutRateArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "off" {
            return Ok(PutRateArg(None));
        }
        let expected = "off or <one-every-ms>:<burst>, both at least 1";
        let (every, burst) = strict_pair::<u64>(text, expected)?;
        if every == 0 || burst == 0 {
            return Err(format!("{text:?}: expected {expected}"));
        }
        let burst = u32::try_from(burst).map_err(|_| format!("{text:?}: burst too large"))?;
        Ok(PutRateArg(Some((Duration::from_millis(every), burst))))
    }
}

/// A relay token bucket: `<burst>:<seconds-per-token>`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RelayRateArg(RelayRate);

impl FromStr for RelayRateArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected = "<burst>:<seconds-per-token>, both at least 1";
        let (burst, secs) = strict_pair::<u64>(text, expected)?;
        if secs == 0 {
            return Err(format!("{text:?}: expected {expected}"));
        }
        let burst = u32::try_from(burst)
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| format!("{text:?}: expected {expected}"))?;
        Ok(RelayRateArg(RelayRate {
            burst,
            refill: Duration::from_secs(secs),
        }))
    }
}

/// `off`, or `<a>:<b>`: the DHT's diversity and creator quotas.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PairOrOff(Option<(usize, usize)>);

impl FromStr for PairOrOff {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "off" {
            return Ok(PairOrOff(None));
        }
        Ok(PairOrOff(Some(strict_pair(text, "off or <n>:<m>")?)))
    }
}

#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct LimitArgs {
    // Connections.
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
    /// Inbound connections from one IPv4 address (or IPv6 /56) at most.
    #[arg(long, env = "LOTUS_P2P_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<u32>,
    /// Inbound connections from one IPv6 /48 at most.
    #[arg(long, env = "LOTUS_P2P_MAX_CONNECTIONS_PER_IPV6_48")]
    max_connections_per_ipv6_48: Option<u32>,
    /// Connections kept open while idle before idle DHT-only ones close.
    #[arg(long, env = "LOTUS_P2P_KEEP_IDLE")]
    keep_idle: Option<u32>,
    /// Seconds an idle connection beyond --keep-idle stays open (default 30).
    #[arg(long, env = "LOTUS_P2P_IDLE_CONNECTION_TIMEOUT_SECS")]
    idle_connection_timeout_secs: Option<NonZeroU64>,
    /// Connections being set up at once, inbound.
    #[arg(long, env = "LOTUS_P2P_MAX_PENDING_IN")]
    max_pending_in: Option<u32>,
    /// Connections being set up at once, outbound.
    #[arg(long, env = "LOTUS_P2P_MAX_PENDING_OUT")]
    max_pending_out: Option<u32>,
    /// Dials the node's callers may have waiting at once (default 256).
    #[arg(long, env = "LOTUS_P2P_MAX_PENDING_DIALS")]
    max_pending_dials: Option<usize>,
    /// Seconds a dial may take (default 20).
    #[arg(long, env = "LOTUS_P2P_DIAL_TIMEOUT_SECS")]
    dial_timeout_secs: Option<NonZeroU64>,
    /// Seconds between pings on a connection (default 60; a ping only
    /// refreshes the round-trip time shown for the peer).
    #[arg(long, env = "LOTUS_P2P_PING_INTERVAL_SECS")]
    ping_interval_secs: Option<NonZeroU64>,
    /// Refuse new connections once the process uses this many MiB.
    #[arg(long, env = "LOTUS_P2P_MAX_MEMORY_MIB")]
    max_memory_mib: Option<usize>,

    // Messages.
    /// Largest message accepted, bytes (default 100000).
    #[arg(long, env = "LOTUS_P2P_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<usize>,
    /// Largest resource record accepted or stored, bytes (default 16384).
    #[arg(long, env = "LOTUS_P2P_MAX_RECORD_BYTES")]
    max_record_bytes: Option<usize>,
    /// Seconds a message's timestamp may lie from our clock (default 300);
    /// message ids are remembered for twice this long.
    #[arg(long, env = "LOTUS_P2P_MAX_CLOCK_SKEW_SECS")]
    max_clock_skew_secs: Option<NonZeroU64>,
    /// Message ids remembered against replays (default 100000).
    #[arg(long, env = "LOTUS_P2P_REPLAY_CAPACITY")]
    replay_capacity: Option<usize>,
    /// (sender, protocol) sequence windows remembered (default 10000).
    #[arg(long, env = "LOTUS_P2P_SEQUENCE_WINDOWS")]
    sequence_windows: Option<usize>,
    /// Seconds a peer has to finish a message it started (default 10).
    #[arg(long, env = "LOTUS_P2P_STREAM_TIMEOUT_SECS")]
    stream_timeout_secs: Option<NonZeroU64>,
    /// Events buffered for each subscriber (API stream, output) (default 1024).
    #[arg(long, env = "LOTUS_P2P_EVENT_CAPACITY")]
    event_capacity: Option<usize>,
    /// Resource records cached, own and discovered (default 10000).
    #[arg(long, env = "LOTUS_P2P_RESOURCE_CACHE")]
    resource_cache: Option<usize>,

    // Rates.
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
    /// DHT records and provider records one peer may put: `off` or
    /// `<one-every-ms>:<burst>` (default 3000:200).
    #[arg(long, env = "LOTUS_P2P_PEER_DHT_PUTS")]
    peer_dht_puts: Option<PutRateArg>,

    // Peer scoring.
    /// Seconds for a peer's score to halve on its way back to 0 (default 600).
    #[arg(long, env = "LOTUS_P2P_SCORE_HALF_LIFE_SECS")]
    score_half_life_secs: Option<NonZeroU64>,
    /// Disconnect a peer whose score falls below this (default -20).
    #[arg(
        long,
        env = "LOTUS_P2P_SCORE_DISCONNECT_BELOW",
        allow_negative_numbers = true
    )]
    score_disconnect_below: Option<f64>,
    /// Ban a peer whose score falls below this (default -50).
    #[arg(long, env = "LOTUS_P2P_SCORE_BAN_BELOW", allow_negative_numbers = true, value_parser = score_threshold)]
    score_ban_below: Option<f64>,
    /// Seconds a score ban lasts (default 3600).
    #[arg(long, env = "LOTUS_P2P_BAN_DURATION_SECS")]
    ban_duration_secs: Option<NonZeroU64>,
    /// Peers whose scores are remembered (default 8192).
    #[arg(long, env = "LOTUS_P2P_MAX_SCORED_PEERS")]
    max_scored_peers: Option<usize>,
    /// Timed bans kept at once (default 4096).
    #[arg(long, env = "LOTUS_P2P_MAX_BANS")]
    max_bans: Option<usize>,
    /// A peer never penalised, disconnected or banned (repeatable).
    #[arg(long, value_delimiter = ',', env = "LOTUS_P2P_ALLOW_PEER")]
    allow_peer: Vec<PeerId>,
    /// A peer banned for good (repeatable).
    #[arg(long, value_delimiter = ',', env = "LOTUS_P2P_DENY_PEER")]
    deny_peer: Vec<PeerId>,

    // The DHT.
    /// Lifetime of DHT records, seconds (default 3600).
    #[arg(long, env = "LOTUS_P2P_DHT_RECORD_TTL_SECS")]
    dht_record_ttl_secs: Option<NonZeroU64>,
    /// Lifetime of provider records, seconds (default 3600).
    #[arg(long, env = "LOTUS_P2P_DHT_PROVIDER_TTL_SECS")]
    dht_provider_ttl_secs: Option<NonZeroU64>,
    /// Seconds between re-announcements of our provider records (default 1800).
    #[arg(long, env = "LOTUS_P2P_DHT_PROVIDER_INTERVAL_SECS")]
    dht_provider_interval_secs: Option<NonZeroU64>,
    /// Seconds between replications of stored records (default 600).
    #[arg(long, env = "LOTUS_P2P_DHT_REPLICATION_INTERVAL_SECS")]
    dht_replication_interval_secs: Option<NonZeroU64>,
    /// Replication factor k (default 20).
    #[arg(long, env = "LOTUS_P2P_DHT_REPLICATION_FACTOR")]
    dht_replication_factor: Option<NonZeroUsize>,
    /// Longest a DHT query runs, seconds (default 60).
    #[arg(long, env = "LOTUS_P2P_DHT_QUERY_TIMEOUT_SECS")]
    dht_query_timeout_secs: Option<NonZeroU64>,
    /// Seconds between routing-table refreshes (default 300).
    #[arg(long, env = "LOTUS_P2P_DHT_REFRESH_INTERVAL_SECS")]
    dht_refresh_interval_secs: Option<NonZeroU64>,
    /// Seconds after its last connection closed that a routing-table contact
    /// counts as alive, so a newcomer to its full bucket costs no check dial
    /// (default 600; 0 dials for every newcomer, as libp2p-kad does).
    #[arg(long, env = "LOTUS_P2P_DHT_CONTACT_CHECK_AFTER_SECS")]
    dht_contact_check_after_secs: Option<u64>,
    /// Peers whose answers with providers end a provider lookup (default 0:
    /// walk on until the closest peers of every path have answered; a
    /// number trades the union of every answer for a cheaper lookup, see
    /// `DhtConfig::provider_answers`).
    #[arg(long, env = "LOTUS_P2P_DHT_PROVIDER_ANSWERS")]
    dht_provider_answers: Option<usize>,
    /// Peers nearest a key whose answers end a provider lookup once they
    /// have all answered and one named a provider (default 3; 0: walk on
    /// until the closest peers of every path have answered; see
    /// `DhtConfig::provider_closest`).
    #[arg(long, env = "LOTUS_P2P_DHT_PROVIDER_CLOSEST")]
    dht_provider_closest: Option<usize>,
    /// Requests a DHT lookup keeps in flight per path, and the number of
    /// disjoint paths (libp2p-kad's alpha; default 3).
    #[arg(long, env = "LOTUS_P2P_DHT_PARALLELISM")]
    dht_parallelism: Option<NonZeroUsize>,
    /// Records kept in the DHT store at most.
    #[arg(long, env = "LOTUS_P2P_DHT_MAX_RECORDS")]
    dht_max_records: Option<usize>,
    /// Provider keys kept at most.
    #[arg(long, env = "LOTUS_P2P_DHT_MAX_PROVIDER_KEYS")]
    dht_max_provider_keys: Option<usize>,
    /// Provider keys one other peer may hold in our store (default 64).
    #[arg(long, env = "LOTUS_P2P_DHT_MAX_PROVIDER_KEYS_PER_PEER")]
    dht_max_provider_keys_per_peer: Option<usize>,
    /// Resource records one creator may have in our store: `off` or
    /// `<in-all>:<per-type>` (default 100:20).
    #[arg(long, env = "LOTUS_P2P_DHT_CREATOR_QUOTAS")]
    dht_creator_quotas: Option<PairOrOff>,
    /// Routing-table diversity: `off` or `<per-bucket>:<per-table>` peers of
    /// one /16 (IPv4) or /32 (IPv6) (default 2:3).
    #[arg(long, env = "LOTUS_P2P_DHT_DIVERSITY")]
    dht_diversity: Option<PairOrOff>,

    // The relay server: read only with --relay-server (see `apply`); a
    // --relay-*-rate-per-ip bucket is applied after, so wins over
    // --relay-per-ip.
    /// Relay server: reservations held at once (default 128).
    #[arg(long, env = "LOTUS_P2P_RELAY_MAX_RESERVATIONS")]
    relay_max_reservations: Option<usize>,
    /// Relay server: reservations one peer may hold (default 4).
    #[arg(long, env = "LOTUS_P2P_RELAY_MAX_RESERVATIONS_PER_PEER")]
    relay_max_reservations_per_peer: Option<usize>,
    /// Relay server: seconds a reservation lasts (default 3600).
    #[arg(long, env = "LOTUS_P2P_RELAY_RESERVATION_SECS")]
    relay_reservation_secs: Option<NonZeroU64>,
    /// Relay server: circuits relayed at once (default 16).
    #[arg(long, env = "LOTUS_P2P_RELAY_MAX_CIRCUITS")]
    relay_max_circuits: Option<usize>,
    /// Relay server: circuits one peer may have at once (default 4).
    #[arg(long, env = "LOTUS_P2P_RELAY_MAX_CIRCUITS_PER_PEER")]
    relay_max_circuits_per_peer: Option<usize>,
    /// Relay server: seconds a circuit lasts at most (default 120).
    #[arg(long, env = "LOTUS_P2P_RELAY_MAX_CIRCUIT_SECS")]
    relay_max_circuit_secs: Option<NonZeroU64>,
    /// Relay server: bytes a circuit relays at most (default 1048576).
    #[arg(long, env = "LOTUS_P2P_RELAY_MAX_CIRCUIT_BYTES")]
    relay_max_circuit_bytes: Option<u64>,
    /// Relay server: new reservations, and new circuits, one IP address may
    /// ask for at once (default 60, one more a minute).
    #[arg(long, env = "LOTUS_P2P_RELAY_PER_IP")]
    relay_per_ip: Option<NonZeroU32>,
    /// Relay server: new reservations per peer, `<burst>:<seconds-per-token>`
    /// (default 30:120).
    #[arg(long, env = "LOTUS_P2P_RELAY_RESERVATION_RATE_PER_PEER")]
    relay_reservation_rate_per_peer: Option<RelayRateArg>,
    /// Relay server: new reservations per IP address (default 60:60).
    #[arg(long, env = "LOTUS_P2P_RELAY_RESERVATION_RATE_PER_IP")]
    relay_reservation_rate_per_ip: Option<RelayRateArg>,
    /// Relay server: new circuits per source peer (default 30:120).
    #[arg(long, env = "LOTUS_P2P_RELAY_CIRCUIT_RATE_PER_PEER")]
    relay_circuit_rate_per_peer: Option<RelayRateArg>,
    /// Relay server: new circuits per source IP address (default 60:60).
    #[arg(long, env = "LOTUS_P2P_RELAY_CIRCUIT_RATE_PER_IP")]
    relay_circuit_rate_per_ip: Option<RelayRateArg>,
}

/// `*target = value` when a value was given.
fn set<T: Copy>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

/// `*target = value` in seconds when a value was given (never 0: a zero
/// timeout or interval would fail or spin).
fn set_secs(target: &mut Duration, secs: Option<NonZeroU64>) {
    set(target, secs.map(|s| Duration::from_secs(s.get())));
}

impl LimitArgs {
    /// Sets in `config` every limit given. The relay server's bounds apply
    /// when `config` already serves as a relay.
    pub(crate) fn apply(&self, config: &mut NodeConfig) {
        let limits = &mut config.limits;
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
        set(&mut limits.per_ip.per_ipv4, self.max_connections_per_ip);
        set(&mut limits.per_ip.per_ipv6_56, self.max_connections_per_ip);
        set(
            &mut limits.per_ip.per_ipv6_48,
            self.max_connections_per_ipv6_48,
        );
        if let Some(mib) = self.max_memory_mib {
            limits.max_process_memory = Some(mib.saturating_mul(1024 * 1024));
        }
        set_secs(
            &mut config.idle_connection_timeout,
            self.idle_connection_timeout_secs,
        );
        set(&mut config.max_pending_dials, self.max_pending_dials);
        set_secs(&mut config.dial_timeout, self.dial_timeout_secs);
        set_secs(&mut config.ping_interval, self.ping_interval_secs);

        let inbound = &mut config.inbound;
        set(&mut inbound.limits.max_message_size, self.max_message_bytes);
        set(&mut inbound.limits.max_record_size, self.max_record_bytes);
        set(&mut config.dht.max_value_bytes, self.max_record_bytes);
        if let Some(secs) = self.max_clock_skew_secs {
            inbound.limits.max_clock_skew = Duration::from_secs(secs.get());
            inbound.replay_window = Duration::from_secs(secs.get().saturating_mul(2));
        }
        set(&mut inbound.replay_capacity, self.replay_capacity);
        set(&mut inbound.sequence_windows, self.sequence_windows);
        set_secs(&mut config.stream_timeout, self.stream_timeout_secs);
        set(&mut config.event_capacity, self.event_capacity);
        set(&mut config.resource_cache_capacity, self.resource_cache);

        let rates = &mut config.rate_limits;
        for (target, value) in [
            (&mut rates.peer_messages, self.peer_messages),
            (&mut rates.peer_bytes, self.peer_bytes),
            (&mut rates.node_messages, self.node_messages),
            (&mut rates.node_bytes, self.node_bytes),
            (&mut rates.peer_inbound_streams, self.peer_inbound_streams),
            (&mut rates.peer_dht_requests, self.peer_dht_requests),
        ] {
            set(target, value.map(|RateArg(rate)| rate));
        }
        set(
            &mut rates.peer_dht_puts,
            self.peer_dht_puts.map(|PutRateArg(r)| r),
        );

        let scoring = &mut config.scoring;
        set_secs(&mut scoring.half_life, self.score_half_life_secs);
        set(&mut scoring.disconnect_below, self.score_disconnect_below);
        set(&mut scoring.ban_below, self.score_ban_below);
        set_secs(&mut scoring.ban_duration, self.ban_duration_secs);
        set(&mut scoring.max_tracked, self.max_scored_peers);
        set(&mut scoring.max_bans, self.max_bans);
        scoring.allow.extend(self.allow_peer.iter().copied());
        scoring.deny.extend(self.deny_peer.iter().copied());

        let dht = &mut config.dht;
        set_secs(&mut dht.record_ttl, self.dht_record_ttl_secs);
        set_secs(&mut dht.provider_ttl, self.dht_provider_ttl_secs);
        set_secs(
            &mut dht.provider_publication_interval,
            self.dht_provider_interval_secs,
        );
        set_secs(
            &mut dht.record_replication_interval,
            self.dht_replication_interval_secs,
        );
        set(&mut dht.replication_factor, self.dht_replication_factor);
        set_secs(&mut dht.query_timeout, self.dht_query_timeout_secs);
        if let Some(secs) = self.dht_refresh_interval_secs {
            dht.bootstrap_interval = Some(Duration::from_secs(secs.get()));
        }
        set(
            &mut dht.contact_check_after,
            self.dht_contact_check_after_secs.map(Duration::from_secs),
        );
        if let Some(answers) = self.dht_provider_answers {
            dht.provider_answers = NonZeroUsize::new(answers);
        }
        set(&mut dht.parallelism, self.dht_parallelism);
        if let Some(closest) = self.dht_provider_closest {
            dht.provider_closest = NonZeroUsize::new(closest);
        }
        set(&mut dht.max_records, self.dht_max_records);
        set(&mut dht.max_provider_keys, self.dht_max_provider_keys);
        set(
            &mut dht.max_provider_keys_per_peer,
            self.dht_max_provider_keys_per_peer,
        );
        if let Some(PairOrOff(quotas)) = self.dht_creator_quotas {
            dht.creator_quotas = quotas.map(|(per_creator, per_type)| CreatorQuotas {
                per_creator,
                per_type,
            });
        }
        if let Some(PairOrOff(diversity)) = self.dht_diversity {
            dht.diversity = diversity.map(|(per_bucket, per_table)| Diversity {
                per_bucket,
                per_table,
            });
        }

        if let Some(relay) = config.nat.relay_server.as_mut() {
            set(&mut relay.max_reservations, self.relay_max_reservations);
            set(
                &mut relay.max_reservations_per_peer,
                self.relay_max_reservations_per_peer,
            );
            set_secs(&mut relay.reservation_duration, self.relay_reservation_secs);
            set(&mut relay.max_circuits, self.relay_max_circuits);
            set(
                &mut relay.max_circuits_per_peer,
                self.relay_max_circuits_per_peer,
            );
            set_secs(&mut relay.max_circuit_duration, self.relay_max_circuit_secs);
            set(&mut relay.max_circuit_bytes, self.relay_max_circuit_bytes);
            set(&mut relay.reservation_rate_per_ip.burst, self.relay_per_ip);
            set(&mut relay.circuit_rate_per_ip.burst, self.relay_per_ip);
            for (target, value) in [
                (
                    &mut relay.reservation_rate_per_peer,
                    self.relay_reservation_rate_per_peer,
                ),
                (
                    &mut relay.reservation_rate_per_ip,
                    self.relay_reservation_rate_per_ip,
                ),
                (
                    &mut relay.circuit_rate_per_peer,
                    self.relay_circuit_rate_per_peer,
                ),
                (
                    &mut relay.circuit_rate_per_ip,
                    self.relay_circuit_rate_per_ip,
                ),
            ] {
                set(target, value.map(|RelayRateArg(rate)| rate));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::float_cmp)]

    use clap::Parser;
    use p2p_core::RelayServerConfig;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn configured(flags: &[&str]) -> NodeConfig {
        let flags =
            Flags::try_parse_from(std::iter::once("run").chain(flags.iter().copied())).unwrap();
        let mut config = NodeConfig::default();
        config.nat.relay_server = Some(RelayServerConfig::default());
        flags.limits.apply(&mut config);
        config
    }

    #[test]
    fn every_flag_reaches_its_node_config_field() {
        let (friend, foe) = (PeerId::random(), PeerId::random());
        let config = configured(&[
            "--max-connections-per-ipv6-48=7",
            "--idle-connection-timeout-secs=11",
            "--max-pending-dials=12",
            "--dial-timeout-secs=13",
            "--ping-interval-secs=14",
            "--max-message-bytes=5000",
            "--max-record-bytes=4000",
            "--max-clock-skew-secs=60",
            "--replay-capacity=1000",
            "--sequence-windows=100",
            "--stream-timeout-secs=3",
            "--event-capacity=64",
            "--resource-cache=500",
            "--peer-dht-puts=250:40",
            "--score-half-life-secs=120",
            "--score-disconnect-below=-10",
            "--score-ban-below=-30.5",
            "--ban-duration-secs=900",
            "--max-scored-peers=99",
            "--max-bans=98",
            &format!("--allow-peer={friend}"),
            &format!("--deny-peer={foe}"),
            "--dht-provider-ttl-secs=100",
            "--dht-provider-interval-secs=50",
            "--dht-replication-interval-secs=30",
            "--dht-replication-factor=8",
            "--dht-refresh-interval-secs=45",
            "--dht-contact-check-after-secs=0",
            "--dht-provider-answers=0",
            "--dht-provider-closest=5",
            "--dht-parallelism=2",
            "--dht-max-provider-keys-per-peer=9",
            "--dht-creator-quotas=10:5",
            "--dht-diversity=off",
            "--relay-max-reservations-per-peer=2",
            "--relay-reservation-secs=600",
            "--relay-max-circuits-per-peer=3",
            "--relay-max-circuit-secs=30",
            "--relay-max-circuit-bytes=65536",
            "--relay-reservation-rate-per-peer=5:10",
            "--relay-circuit-rate-per-ip=6:20",
        ]);
        assert_eq!(config.limits.per_ip.per_ipv6_48, 7);
        assert_eq!(config.idle_connection_timeout, Duration::from_secs(11));
        assert_eq!(config.max_pending_dials, 12);
        assert_eq!(config.dial_timeout, Duration::from_secs(13));
        assert_eq!(config.ping_interval, Duration::from_secs(14));
        let inbound = &config.inbound;
        assert_eq!(inbound.limits.max_message_size, 5000);
        assert_eq!(inbound.limits.max_record_size, 4000);
        assert_eq!(config.dht.max_value_bytes, 4000);
        assert_eq!(inbound.limits.max_clock_skew, Duration::from_secs(60));
        assert_eq!(inbound.replay_window, Duration::from_secs(120));
        assert_eq!(inbound.replay_capacity, 1000);
        assert_eq!(inbound.sequence_windows, 100);
        assert_eq!(config.stream_timeout, Duration::from_secs(3));
        assert_eq!(config.event_capacity, 64);
        assert_eq!(config.resource_cache_capacity, 500);
        assert_eq!(
            config.rate_limits.peer_dht_puts,
            Some((Duration::from_millis(250), 40))
        );
        let scoring = &config.scoring;
        assert_eq!(scoring.half_life, Duration::from_secs(120));
        assert_eq!(scoring.disconnect_below, -10.0);
        assert_eq!(scoring.ban_below, -30.5);
        assert_eq!(scoring.ban_duration, Duration::from_secs(900));
        assert_eq!(scoring.max_tracked, 99);
        assert_eq!(scoring.max_bans, 98);
        assert_eq!(
            (scoring.allow.as_slice(), scoring.deny.as_slice()),
            (&[friend][..], &[foe][..])
        );
        let dht = &config.dht;
        assert_eq!(dht.provider_ttl, Duration::from_secs(100));
        assert_eq!(dht.provider_publication_interval, Duration::from_secs(50));
        assert_eq!(dht.record_replication_interval, Duration::from_secs(30));
        assert_eq!(dht.replication_factor.get(), 8);
        assert_eq!(dht.bootstrap_interval, Some(Duration::from_secs(45)));
        assert_eq!(dht.contact_check_after, Duration::ZERO);
        assert_eq!(dht.provider_answers, None);
        assert_eq!(dht.provider_closest, NonZeroUsize::new(5));
        assert_eq!(dht.parallelism.get(), 2);
        assert_eq!(dht.max_provider_keys_per_peer, 9);
        assert_eq!(
            dht.creator_quotas,
            Some(CreatorQuotas {
                per_creator: 10,
                per_type: 5
            })
        );
        assert_eq!(dht.diversity, None);
        let relay = config.nat.relay_server.unwrap();
        assert_eq!(relay.max_reservations_per_peer, 2);
        assert_eq!(relay.reservation_duration, Duration::from_secs(600));
        assert_eq!(relay.max_circuits_per_peer, 3);
        assert_eq!(relay.max_circuit_duration, Duration::from_secs(30));
        assert_eq!(relay.max_circuit_bytes, 65536);
        assert_eq!(
            (
                relay.reservation_rate_per_peer.burst.get(),
                relay.reservation_rate_per_peer.refill
            ),
            (5, Duration::from_secs(10))
        );
        assert_eq!(
            (
                relay.circuit_rate_per_ip.burst.get(),
                relay.circuit_rate_per_ip.refill
            ),
            (6, Duration::from_secs(20))
        );
        // Untouched settings keep the library's defaults.
        let defaults = NodeConfig::default();
        assert_eq!(
            config.limits.max_established,
            defaults.limits.max_established
        );
        assert_eq!(config.dht.max_records, defaults.dht.max_records);
        assert_eq!(
            relay.max_circuits,
            RelayServerConfig::default().max_circuits
        );
    }

    #[test]
    fn malformed_limits_are_refused_naming_the_form() {
        for (flag, expected) in [
            (
                "--peer-messages=fast",
                "expected off, <per-second> or <per-second>:<burst>",
            ),
            (
                "--peer-dht-puts=250",
                "expected off or <one-every-ms>:<burst>",
            ),
            ("--relay-circuit-rate-per-ip=0:20", "both at least 1"),
            ("--relay-circuit-rate-per-ip=5:0", "both at least 1"),
            ("--peer-dht-puts=0:5", "both at least 1"),
            ("--dial-timeout-secs=0", "invalid value"),
            ("--score-ban-below=nan", "between -100 and 0"),
            ("--score-ban-below=-200", "between -100 and 0"),
            ("--dht-diversity=2", "expected off or <n>:<m>"),
            ("--dht-replication-factor=0", "invalid value"),
        ] {
            let error = Flags::try_parse_from(["run", flag])
                .err()
                .unwrap()
                .to_string();
            assert!(error.contains(expected), "{flag}: {error}");
        }
    }
}
