//! Counters and gauges that the node layers fill and report.

use std::collections::BTreeMap;
use std::fmt;

/// Why an inbound message was dropped. Every drop is counted under one of these
/// and attributed to the peer that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The frame (or TypeScript-protocol stream) was larger than the limit.
    Oversize,
    /// The framing was broken (over-long varint, truncated frame).
    Framing,
    /// The bytes did not decode (protobuf or JSON).
    Decode,
    /// A field was missing or malformed.
    InvalidField,
    /// The timestamp was outside the clock window.
    ClockSkew,
    /// The `from` field did not match the authenticated connection.
    SpoofedSender,
    /// The message was unsigned where a signature is required.
    MissingSignature,
    /// The signature did not verify.
    BadSignature,
    /// The message was already seen (duplicate or replay).
    Duplicate,
    /// No handler is registered for the message's protocol.
    UnknownProtocol,
    /// A rate limit was exceeded.
    RateLimited,
    /// The handler for the message is saturated (its queue is full).
    HandlerBusy,
    /// More concurrent inbound streams than allowed.
    TooManyStreams,
    /// The stream was too slow to deliver a whole message.
    StreamTimeout,
    /// A DHT record failed its checks (signature, key, expiry, overwrite).
    InvalidRecord,
    /// A DHT request (a lookup, or a record or provider put) over the peer's
    /// rate; it was refused.
    DhtRateLimited,
    /// An inbound stream arrived while its protocol's accept queue was full
    /// (the node is overloaded, not the peer at fault); it was reset.
    AcceptQueueFull,
    /// A DHT record under a key this node does not serve (only
    /// `resource:<type>:<id>` keys are stored); refused, not stored.
    UnservedKey,
    /// A DHT record past its own expiry (an honest server replicating a
    /// record that just expired sends these); refused, not stored.
    RecordExpired,
    /// A DHT record that may not replace the one we hold: another creator's,
    /// an older version, or an unsigned record over a signed one (honest
    /// servers holding different records replicate these); refused.
    RecordConflict,
    /// A DHT record over its creator's quota of our store (an honest server
    /// replicating a busy creator's records sends these), or a provider
    /// record over its provider's share; refused.
    RecordQuota,
    /// A TypeScript message refused because the node-wide message or byte
    /// bucket was empty (our saturation, not the sender's fault: counted,
    /// never scored). A peer over its own rate is [`Self::RateLimited`].
    NodeBusy,
    /// A message whose `to` names another peer, on a protocol that only
    /// carries messages for the node at the other end (the TypeScript JSON
    /// protocol).
    WrongRecipient,
}

/// A reason serializes as its name (`"rate_limited"`, ...).
impl serde::Serialize for RejectReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl RejectReason {
    /// Every reason, in a stable order.
    pub const ALL: [RejectReason; 23] = [
        Self::Oversize,
        Self::Framing,
        Self::Decode,
        Self::InvalidField,
        Self::ClockSkew,
        Self::SpoofedSender,
        Self::MissingSignature,
        Self::BadSignature,
        Self::Duplicate,
        Self::UnknownProtocol,
        Self::RateLimited,
        Self::HandlerBusy,
        Self::TooManyStreams,
        Self::StreamTimeout,
        Self::InvalidRecord,
        Self::DhtRateLimited,
        Self::AcceptQueueFull,
        Self::UnservedKey,
        Self::RecordExpired,
        Self::RecordConflict,
        Self::RecordQuota,
        Self::NodeBusy,
        Self::WrongRecipient,
    ];

    /// A stable snake_case label (used in metrics and JSON output).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oversize => "oversize",
            Self::Framing => "framing",
            Self::Decode => "decode",
            Self::InvalidField => "invalid_field",
            Self::ClockSkew => "clock_skew",
            Self::SpoofedSender => "spoofed_sender",
            Self::MissingSignature => "missing_signature",
            Self::BadSignature => "bad_signature",
            Self::Duplicate => "duplicate",
            Self::UnknownProtocol => "unknown_protocol",
            Self::RateLimited => "rate_limited",
            Self::HandlerBusy => "handler_busy",
            Self::TooManyStreams => "too_many_streams",
            Self::StreamTimeout => "stream_timeout",
            Self::InvalidRecord => "invalid_record",
            Self::DhtRateLimited => "dht_rate_limited",
            Self::AcceptQueueFull => "accept_queue_full",
            Self::UnservedKey => "unserved_key",
            Self::RecordExpired => "record_expired",
            Self::RecordConflict => "record_conflict",
            Self::RecordQuota => "record_quota",
            Self::NodeBusy => "node_busy",
            Self::WrongRecipient => "wrong_recipient",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Message counters of a node (or of one peer).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStats {
    /// Messages accepted and dispatched.
    pub received: u64,
    /// Messages sent successfully.
    pub sent: u64,
    /// Sends that failed.
    pub send_failures: u64,
    /// Inbound payload bytes accepted.
    pub bytes_received: u64,
    /// Outbound payload bytes written.
    pub bytes_sent: u64,
    /// Dropped messages by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
}

impl MessageStats {
    /// Counts one rejection.
    pub fn record_rejection(&mut self, reason: RejectReason) {
        *self.rejected.entry(reason).or_insert(0) += 1;
    }

    /// Rejections for one reason.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected.get(&reason).copied().unwrap_or(0)
    }

    /// All rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Kademlia mode of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DhtMode {
    /// Queries others, does not answer or store.
    #[default]
    Client,
    /// Answers queries and stores records.
    Server,
}

impl DhtMode {
    /// `"client"` or `"server"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DhtMode::Client => "client",
            DhtMode::Server => "server",
        }
    }
}

/// State of the DHT.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DhtStats {
    /// Current mode.
    pub mode: DhtMode,
    /// Peers in the routing table.
    pub routing_table_size: usize,
    /// Records held in the local store.
    pub records_stored: usize,
    /// Keys this node holds provider records for.
    pub provider_keys: usize,
    /// Queries running now.
    pub queries_in_flight: usize,
    /// True when the routing table is non-empty, so queries can make progress.
    pub ready: bool,
    /// Record lookups (`discover`, `get_record`) finished since start, and
    /// the requests they sent: requests per lookup is the ratio of the
    /// change in both over a period.
    pub record_lookups: QueryTotals,
    /// Provider lookups (the creators of a resource for `discover`,
    /// `providers`) finished since start, and the requests they sent.
    pub provider_lookups: QueryTotals,
    /// Routing-table contacts dialled since start to check they are alive
    /// before a newcomer could replace them.
    pub contact_checks: u64,
    /// Periodic routing-table refreshes skipped since start because the
    /// DHT's own bootstrap (the join's) had ended its self-lookup less than
    /// an interval before.
    pub refreshes_skipped: u64,
}

/// Totals of one kind of finished DHT query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueryTotals {
    /// Queries finished (found or not).
    pub finished: u64,
    /// Requests they sent to peers (kad's `QueryStats::num_requests`).
    pub requests: u64,
}

/// Totals of a running node.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// Peers with at least one open connection.
    pub connected_peers: usize,
    /// Peers known (connected now, or with known addresses).
    pub known_peers: usize,
    /// Open connections.
    pub connections: usize,
    /// Addresses the node listens on.
    pub listen_addrs: usize,
    /// Message counters.
    pub messages: MessageStats,
    /// DHT state.
    pub dht: DhtStats,
    /// Peers banned now.
    pub banned_peers: usize,
    /// Inbound connections refused because their address block was full.
    pub connections_denied_per_ip: u64,
    /// Idle connections closed to make room for a new one at a connection
    /// limit (the oldest that carried no application stream).
    pub connections_closed_for_room: u64,
    /// Of those, connections to a peer that still owed us a DHT answer
    /// (closed only when no other could: the DHT then fails that peer in
    /// its running lookups).
    pub connections_closed_for_room_awaited: u64,
    /// Connections (either way) refused at an established-connection limit
    /// with no idle connection to close.
    pub connections_refused_at_limit: u64,
    /// Reachability as AutoNAT last reported it (`Unknown` until it has).
    pub reachability: crate::Reachability,
}
