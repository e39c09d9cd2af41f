//! Per-(sender, protocol) sequence numbers: a sliding anti-replay window.
//!
//! A sender may number its messages ([`crate::MessageBuilder::sequence`]); the
//! number is signed with the rest. The receiver keeps, per (sender, protocol),
//! the highest number seen and a bitmap of the [`WINDOW`] numbers below it —
//! the anti-replay window of IPsec (RFC 4303 §3.4.3). A number above the
//! highest moves the window; one inside it is accepted once; one below it is
//! refused. Messages sent concurrently may arrive out of order by up to
//! `WINDOW` places. Unlike the seen-set of message ids, which forgets after
//! its time window and capacity, a window refuses an old number for as long as
//! it is kept. Messages without a number are not affected.
//!
//! Memory is bounded by a number of windows; the least recently used is
//! forgotten first (a forgotten sender falls back on the seen-set alone), so
//! identities made up to flush the table push out idle senders before
//! active ones.

use hashlink::LruCache;

use libp2p_identity::PeerId;
use p2p_types::ProtocolName;

/// How far below the highest number a late message is still accepted.
pub const WINDOW: u64 = 64;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// This number was already accepted from this sender for this protocol.
    #[error("sequence number {0} already seen")]
    Replayed(u64),
    /// The number is older than the window.
    #[error("sequence number {sequence} is older than the window below {highest}")]
    TooOld {
        /// The refused number.
        sequence: u64,
        /// The highest number seen.
        highest: u64,
    },
}

/// One (sender, protocol)'s window.
#[derive(Debug, Clone, Copy)]
struct Window {
    highest: u64,
    /// Bit i set: `highest - i` was seen (bit 0 is `highest` itself).
    seen: u64,
}

impl Window {
    fn new(sequence: u64) -> Self {
        Self {
            highest: sequence,
            seen: 1,
        }
    }

    fn check(&mut self, sequence: u64) -> Result<(), SequenceError> {
        if sequence > self.highest {
            let shift = sequence - self.highest;
            self.seen = if shift >= WINDOW {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.highest = sequence;
            return Ok(());
        }
        let below = self.highest - sequence;
        if below >= WINDOW {
            return Err(SequenceError::TooOld {
                sequence,
                highest: self.highest,
            });
        }
        let bit = 1u64 << below;
        if self.seen & bit != 0 {
            return Err(SequenceError::Replayed(sequence));
        }
        self.seen |= bit;
        Ok(())
    }
}

type Key = (PeerId, Option<ProtocolName>);

/// The windows of the senders seen lately, bounded in number.
#[derive(Debug, Clone)]
pub struct SequenceWindows {
    windows: LruCache<Key, Window>,
}

impl SequenceWindows {
    /// At most `capacity` windows (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            windows: LruCache::new(capacity.max(1)),
        }
    }

    /// Windows kept now.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True when no window is kept.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Accepts `sequence` from `from` for `protocol` unless it was seen or is
    /// older than the window.
    pub fn check(
        &mut self,
        from: PeerId,
        protocol: Option<&ProtocolName>,
        sequence: u64,
    ) -> Result<(), SequenceError> {
        let key = (from, protocol.cloned());
        if let Some(window) = self.windows.get_mut(&key) {
            return window.check(sequence);
        }
        // A full cache drops its least recently used window.
        self.windows.insert(key, Window::new(sequence));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_pass_once_in_any_order_inside_the_window() {
        let mut windows = SequenceWindows::new(8);
        let (peer, chat) = (PeerId::random(), "chat".parse::<ProtocolName>().ok());
        let p = chat.as_ref();
        for n in [10, 12, 11, 100, 40, 99] {
            assert_eq!(windows.check(peer, p, n), Ok(()), "{n}");
        }
        assert_eq!(windows.check(peer, p, 40), Err(SequenceError::Replayed(40)));
        assert_eq!(
            windows.check(peer, p, 100),
            Err(SequenceError::Replayed(100))
        );
        assert_eq!(
            windows.check(peer, p, 12),
            Err(SequenceError::TooOld {
                sequence: 12,
                highest: 100
            })
        );
        // Each protocol and each sender counts on its own.
        assert_eq!(windows.check(peer, None, 12), Ok(()));
        assert_eq!(windows.check(PeerId::random(), p, 12), Ok(()));
        // A jump past the whole window forgets the bitmap, not the floor.
        assert_eq!(windows.check(peer, p, 1_000), Ok(()));
        assert!(windows.check(peer, p, 99).is_err());
        assert_eq!(windows.check(peer, p, 999), Ok(()));
    }

    #[test]
    fn windows_are_bounded_oldest_first() {
        let mut windows = SequenceWindows::new(3);
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        for peer in &peers {
            windows.check(*peer, None, 7).unwrap();
        }
        assert_eq!(windows.len(), 3);
        // The first two were forgotten: their replays fall back on the seen-set.
        assert_eq!(windows.check(peers[0], None, 7), Ok(()));
        assert_eq!(
            windows.check(peers[4], None, 7),
            Err(SequenceError::Replayed(7))
        );
    }
}
