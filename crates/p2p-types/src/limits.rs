//! Protocol limits: the bounds every decoder and validator enforces.

use std::time::Duration;

/// Bounds on what a peer may send. Every inbound byte is checked against these
/// before it is buffered or acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProtocolLimits {
    /// Largest encoded message (one frame body, or one TypeScript-protocol stream), in bytes.
    ///
    /// Default 100 000: the cap the TypeScript system settled on after running
    /// without one (seed-study §3). The coordination messages it carries (MuSig2
    /// nonces and partial signatures, CoinJoin round state, adverts) are well under
    /// 10 KB; 100 KB leaves room for batched inputs while keeping one message's
    /// buffer small enough that many peers cannot exhaust memory.
    pub max_message_size: usize,
    /// Largest encoded resource record, in bytes.
    ///
    /// Default 16 384: one record must fit in a single Kademlia packet, and
    /// rust-libp2p's kad protocol defaults to 16 KiB packets.
    pub max_record_size: usize,
    /// How far a message timestamp may lie from the receiver's clock, either way.
    ///
    /// Default 5 minutes, the TypeScript system's window: wide enough for
    /// unsynchronised wallets, narrow enough that the replay guard only has to
    /// remember ids for twice this long.
    pub max_clock_skew: Duration,
    /// Longest nonce, in bytes. Default 64 (the builder uses 25).
    pub max_nonce_len: usize,
}

impl ProtocolLimits {
    /// The default limits (see each field).
    pub const DEFAULT: Self = Self {
        max_message_size: 100_000,
        max_record_size: 16_384,
        max_clock_skew: Duration::from_secs(300),
        max_nonce_len: 64,
    };

    /// The clock skew in milliseconds, saturating.
    pub fn max_clock_skew_ms(&self) -> u64 {
        u64::try_from(self.max_clock_skew.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for ProtocolLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
