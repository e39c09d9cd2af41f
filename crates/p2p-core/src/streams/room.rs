//! The established-connection limits, and which idle connection closes to
//! make room for a new one.
//!
//! A connection refused at a limit is lost work: a refused dial of a DHT
//! lookup counts as a failed peer, and at 1 000 nodes a querier that refused
//! its own dials at 128 outbound connections found 76 % of the records it
//! looked for (BENCHMARKS.md §5). So, like kubo's connection manager, the
//! node makes room before a limit refuses:
//!
//! - each outbound dial in progress reserves a place among the outbound
//!   connections, and among all connections;
//! - one place stays free for the next inbound connection (among the inbound
//!   ones and among all), so a DHT server full of idle lookup connections
//!   still admits a peer that joins;
//! - when a count would overflow, the oldest connections that may be closed
//!   are closed, as many as needed. A connection may be closed when it is not
//!   kept (see [`super::idle`]: it never carried an application stream and
//!   was not dialled for the node's user), is not relayed, its peer is not
//!   protected (a relay we hold a reservation on, or a peer holding one on
//!   us), and it is older than [`GRACE`]. A younger one waits for its
//!   grace to end (the behaviour is woken then).
//!
//! The limits themselves are enforced here too, not by libp2p's
//! connection-limits behaviour: a connection being closed no longer counts,
//! so the one it makes room for is never refused because the close has not
//! finished. When nothing may be closed, the connection is refused with
//! [`ConnectionLimitReached`]. This module is sans I/O: the streams
//! behaviour tells it what happened and closes what it returns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;

use super::idle::IdlePolicy;

/// A connection younger than this is never closed to make room: it was made
/// for something (a lookup's request, a newcomer's join) that has not had
/// time to happen. Short next to a lookup (a querier at 1 000 nodes opens
/// ~16 connections a second: 32 young ones of 128 outbound).
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// Which established-connection limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionLimitKind {
    /// `ConnectionLimits::max_established`.
    Total,
    /// `ConnectionLimits::max_established_incoming`.
    Inbound,
    /// `ConnectionLimits::max_established_outgoing`.
    Outbound,
}

/// A connection refused because an established-connection limit was
/// reached and no idle connection could be closed to make room (the error
/// inside `DialError::Denied` / a listen failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection limit reached: {kind:?} at {limit}, no idle connection to close")]
pub struct ConnectionLimitReached {
    /// The limit.
    pub kind: ConnectionLimitKind,
    /// Its value.
    pub limit: usize,
}

/// The established-connection limits the room is kept under (the node's
/// `ConnectionLimits`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) total: usize,
    pub(crate) inbound: usize,
    pub(crate) outbound: usize,
}

#[derive(Debug)]
struct Connection {
    peer: PeerId,
    outbound: bool,
    /// Never closed to make room.
    pinned: bool,
    since: Instant,
}

/// The node's connections as far as making room goes.
#[derive(Debug)]
pub(crate) struct Room {
    limits: Limits,
    /// Established connections not being closed, oldest first (connection
    /// ids grow with each dial and accept).
    open: BTreeMap<ConnectionId, Connection>,
    /// Connections closed to make room, until libp2p reports them closed.
    closing: HashSet<ConnectionId>,
    /// Outbound dials in progress.
    dialling: HashSet<ConnectionId>,
    inbound: usize,
    outbound: usize,
    /// Peers whose connections are never closed to make room, with a count
    /// of the reasons (a relay reservation each way).
    protected: HashMap<PeerId, usize>,
    idle: Arc<IdlePolicy>,
    /// Connections closed to make room, in all.
    trimmed: u64,
    /// Connections refused at a limit, in all.
    refused: u64,
}

impl Room {
    pub(crate) fn new(limits: Limits, idle: Arc<IdlePolicy>) -> Self {
        Self {
            limits,
            open: BTreeMap::new(),
            closing: HashSet::new(),
            dialling: HashSet::new(),
            inbound: 0,
            outbound: 0,
            protected: HashMap::new(),
            idle,
            trimmed: 0,
            refused: 0,
        }
    }

    /// An outbound dial started: it holds a place until it ends.
    pub(crate) fn dialling(&mut self, id: ConnectionId) {
        self.dialling.insert(id);
    }

    /// An outbound dial failed.
    pub(crate) fn dial_failed(&mut self, id: ConnectionId) {
        self.dialling.remove(&id);
    }

    /// Whether one more established connection fits under the limits
    /// (counted when it does not).
    pub(crate) fn admit(&mut self, outbound: bool) -> Result<(), ConnectionLimitReached> {
        let fits = self.fits(outbound);
        if fits.is_err() {
            self.refused += 1;
        }
        fits
    }

    fn fits(&self, outbound: bool) -> Result<(), ConnectionLimitReached> {
        let full = |kind, count: usize, limit: usize| {
            if count >= limit {
                Err(ConnectionLimitReached { kind, limit })
            } else {
                Ok(())
            }
        };
        full(
            ConnectionLimitKind::Total,
            self.inbound + self.outbound,
            self.limits.total,
        )?;
        if outbound {
            full(
                ConnectionLimitKind::Outbound,
                self.outbound,
                self.limits.outbound,
            )
        } else {
            full(
                ConnectionLimitKind::Inbound,
                self.inbound,
                self.limits.inbound,
            )
        }
    }

    /// A connection was established (after [`Room::admit`]); `pinned` when
    /// it may never be closed to make room (kept from the start, or
    /// relayed).
    pub(crate) fn established(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        outbound: bool,
        pinned: bool,
        now: Instant,
    ) {
        self.dialling.remove(&id);
        self.idle.established();
        if outbound {
            self.outbound += 1;
        } else {
            self.inbound += 1;
        }
        self.open.insert(
            id,
            Connection {
                peer,
                outbound,
                pinned,
                since: now,
            },
        );
    }

    /// The connection carried an application stream: it is kept.
    pub(crate) fn kept(&mut self, id: ConnectionId) {
        if let Some(connection) = self.open.get_mut(&id) {
            connection.pinned = true;
        }
    }

    pub(crate) fn closed(&mut self, id: ConnectionId) {
        self.idle.closed();
        if self.closing.remove(&id) {
            return; // already uncounted
        }
        if let Some(connection) = self.open.remove(&id) {
            self.uncount(&connection);
        }
    }

    /// Never close `peer`'s connections to make room, until as many
    /// [`Room::unprotect`] calls.
    pub(crate) fn protect(&mut self, peer: PeerId) {
        *self.protected.entry(peer).or_default() += 1;
    }

    pub(crate) fn unprotect(&mut self, peer: PeerId) {
        if let Some(count) = self.protected.get_mut(&peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.protected.remove(&peer);
            }
        }
    }

    /// Connections closed to make room since the start.
    pub(crate) fn trimmed(&self) -> u64 {
        self.trimmed
    }

    /// Connections refused at a limit since the start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }

    /// The connections to close now so that every count has room, oldest
    /// first; each is counted as gone from here on. Also when to ask again:
    /// a count still lacks room and a connection that could close is in its
    /// grace until then.
    pub(crate) fn trim(&mut self, now: Instant) -> (Vec<(PeerId, ConnectionId)>, Option<Instant>) {
        let dialling = self.dialling.len();
        let mut outbound = (self.outbound + dialling).saturating_sub(self.limits.outbound);
        let mut inbound = (self.inbound + 1).saturating_sub(self.limits.inbound);
        let mut total =
            (self.inbound + self.outbound + dialling + 1).saturating_sub(self.limits.total);
        if outbound == 0 && inbound == 0 && total == 0 {
            return (Vec::new(), None);
        }
        let mut chosen = Vec::new();
        let mut again: Option<Instant> = None;
        for (&id, connection) in &self.open {
            if outbound == 0 && inbound == 0 && total == 0 {
                break;
            }
            if connection.pinned || self.protected.contains_key(&connection.peer) {
                continue;
            }
            let grace_ends = connection.since + GRACE;
            if grace_ends > now {
                again = Some(again.map_or(grace_ends, |at| at.min(grace_ends)));
                continue;
            }
            let wanted = if connection.outbound {
                outbound > 0 || (total > 0 && inbound == 0)
            } else {
                inbound > 0 || (total > 0 && outbound == 0)
            };
            if !wanted {
                continue;
            }
            if connection.outbound {
                outbound = outbound.saturating_sub(1);
            } else {
                inbound = inbound.saturating_sub(1);
            }
            total = total.saturating_sub(1);
            chosen.push(id);
        }
        let mut closed = Vec::with_capacity(chosen.len());
        for id in chosen {
            if let Some(connection) = self.open.remove(&id) {
                self.uncount(&connection);
                self.closing.insert(id);
                self.trimmed += 1;
                closed.push((connection.peer, id));
            }
        }
        let short = outbound > 0 || inbound > 0 || total > 0;
        (closed, again.filter(|_| short))
    }

    fn uncount(&mut self, connection: &Connection) {
        if connection.outbound {
            self.outbound = self.outbound.saturating_sub(1);
        } else {
            self.inbound = self.inbound.saturating_sub(1);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn room(total: usize, inbound: usize, outbound: usize) -> Room {
        Room::new(
            Limits {
                total,
                inbound,
                outbound,
            },
            Arc::new(IdlePolicy::new(0)),
        )
    }

    fn id(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    /// Long after every connection's grace.
    fn later() -> Instant {
        Instant::now() + GRACE * 10
    }

    /// `room.trim` long after every grace, without the wake-up time.
    fn trim(room: &mut Room) -> Vec<(PeerId, ConnectionId)> {
        room.trim(later()).0
    }

    #[test]
    fn a_dial_at_the_outbound_limit_closes_the_oldest_idle_outbound_connection() {
        let mut room = room(100, 100, 3);
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        room.established(id(1), peers[0], true, true, Instant::now()); // kept: a user's dial
        room.established(id(2), peers[1], false, false, Instant::now()); // inbound
        room.established(id(3), peers[2], true, false, Instant::now());
        room.established(id(4), peers[3], true, false, Instant::now());
        assert!(
            trim(&mut room).is_empty(),
            "three outbound of three: no dial yet"
        );
        room.dialling(id(5));
        assert_eq!(trim(&mut room), vec![(peers[2], id(3))]);
        // The closing connection is not chosen twice, and the dial has room.
        assert!(trim(&mut room).is_empty());
        room.established(id(5), PeerId::random(), true, false, Instant::now());
        room.closed(id(3));
        assert!(trim(&mut room).is_empty());
        assert_eq!(room.trimmed(), 1);
    }

    #[test]
    fn kept_relayed_and_protected_connections_are_never_closed() {
        let mut room = room(100, 100, 2);
        let (user, relay, used) = (PeerId::random(), PeerId::random(), PeerId::random());
        room.established(id(1), user, true, true, Instant::now());
        room.established(id(2), relay, true, false, Instant::now());
        room.protect(relay);
        room.established(id(3), used, true, false, Instant::now());
        room.kept(id(3));
        room.dialling(id(4));
        assert!(
            trim(&mut room).is_empty(),
            "nothing may close: the limit refuses"
        );
        room.unprotect(relay);
        assert_eq!(trim(&mut room), vec![(relay, id(2))]);
    }

    #[test]
    fn one_inbound_place_stays_free_and_the_total_counts_dials() {
        let mut room = room(4, 2, 4);
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        room.established(id(1), peers[0], false, false, Instant::now());
        assert!(trim(&mut room).is_empty());
        room.established(id(2), peers[1], false, false, Instant::now());
        // Inbound is full: the oldest inbound one makes room for the next.
        assert_eq!(trim(&mut room), vec![(peers[0], id(1))]);
        room.closed(id(1));
        room.established(id(3), peers[2], true, false, Instant::now());
        room.established(id(4), peers[3], true, false, Instant::now());
        // 3 of 4 in all: the last place is the inbound one.
        assert!(trim(&mut room).is_empty());
        room.dialling(id(5));
        // A dial needs a place in all: the oldest idle connection goes,
        // whichever way it runs.
        assert_eq!(trim(&mut room), vec![(peers[1], id(2))]);
    }

    #[test]
    fn a_young_connection_is_closed_only_when_its_grace_ends() {
        let mut room = room(100, 100, 1);
        let peer = PeerId::random();
        let start = Instant::now();
        room.established(id(1), peer, true, false, start);
        room.dialling(id(2));
        let (closed, again) = room.trim(start + GRACE / 2);
        assert!(closed.is_empty());
        assert_eq!(again, Some(start + GRACE));
        assert_eq!(room.trim(start + GRACE), (vec![(peer, id(1))], None));
    }

    #[test]
    fn the_limits_refuse_what_does_not_fit_and_a_closing_connection_does_not_count() {
        let mut room = room(3, 2, 2);
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let old = Instant::now() - GRACE * 2;
        room.established(id(1), peers[0], true, false, old);
        room.established(id(2), peers[1], true, true, old);
        let outbound_full = Err(ConnectionLimitReached {
            kind: ConnectionLimitKind::Outbound,
            limit: 2,
        });
        assert_eq!(room.admit(true), outbound_full);
        assert_eq!(room.admit(false), Ok(()));
        room.established(id(3), peers[2], false, true, old);
        assert_eq!(
            room.admit(false),
            Err(ConnectionLimitReached {
                kind: ConnectionLimitKind::Total,
                limit: 3,
            })
        );
        room.dialling(id(4));
        assert_eq!(trim(&mut room), vec![(peers[0], id(1))]);
        // Closing, not yet closed: the dial already fits.
        assert_eq!(room.admit(true), Ok(()));
        assert_eq!(room.refused(), 2);
    }
}
