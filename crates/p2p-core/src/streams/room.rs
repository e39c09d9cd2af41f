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
//!   still admits a peer that joins; that place is only ever made by closing
//!   an inbound connection, so strangers dialling in cannot push out our own
//!   dials;
//! - when a count would overflow, the oldest connections that may be closed
//!   are closed, as many as needed. A connection may be closed when it is not
//!   kept (see [`super::idle`]: it never carried an application stream and
//!   was not dialled for the node's user; a stream requested on it keeps it
//!   from then on), is not relayed, its peer is not protected (a configured
//!   relay we reserve on, or a peer holding a reservation on us until it
//!   times out or the peer disconnects), and it is older than [`GRACE`]. A
//!   younger one waits for its grace to end (the behaviour is woken then),
//!   unless we dialled it and its peer has answered every DHT request we
//!   sent (p2p-dht's `Event::AwaitingAnswer`): it has done what a lookup
//!   dialled it for, and a lookup that opens connections faster than their
//!   grace ends needs that room for its next dials (a refused dial fails the
//!   peer in the lookup);
//! - a connection to a peer that still owes us a DHT answer goes only when
//!   no other may: libp2p-kad fails a peer in every running query when its
//!   last connection closes, so cutting it costs our own lookups that peer,
//!   just as a refused dial would. At 1 000 nodes each of the bench's 8
//!   queriers closed ~6 500 connections to make room during its 125
//!   lookups (BENCHMARKS.md §5), and an old connection is often the one a
//!   new walk is asking again. The second pass takes such a connection at
//!   once, even when a connection that may go in a moment is still in its
//!   grace: a dial waiting for that grace would be refused meanwhile.
//!
//! Known limits: "idle" means no application stream. A DHT request in
//! flight on a connection older than the grace can still be cut when every
//! connection that may close carries one. Only our own requests end a grace
//! early: a young connection can still
//! carry a request from its peer to us, lost as it would be after the
//! grace. The DHT's answers are per peer, so a connection another behaviour
//! dialled to a peer that has answered the DHT (a hole punch, a dial-back)
//! loses its grace too. And a connection chosen to close as soon as its peer
//! answered can still be handed a new request of ours to that peer before
//! the close is done (kad sends on any of the peer's connections); that
//! request is lost, and kad fails the peer in its query.
//!
//! The limits themselves are enforced here too, not by libp2p's
//! connection-limits behaviour: a connection being closed no longer counts,
//! so the one it makes room for is never refused because the close has not
//! finished. When nothing may be closed, the connection is refused with
//! [`ConnectionLimitReached`]. This module is sans I/O: the streams
//! behaviour tells it what happened and closes what it returns.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;

use super::idle::IdlePolicy;

/// A connection younger than this is not closed to make room: it was made
/// for something (a lookup's request, a newcomer's join) that has not had
/// time to happen; only one we dialled whose peer has answered all our DHT
/// requests may go before (see the module docs).
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

/// Chooses connections to close for [`Room::trim`].
struct Picker<'a> {
    room: &'a Room,
    now: Instant,
    chosen: Vec<ConnectionId>,
    /// The earliest end of grace of a connection that could have been
    /// chosen.
    again: Option<Instant>,
    /// Some count could not get all the room it needs.
    short: bool,
}

impl Picker<'_> {
    /// Chooses up to `wanted` of the oldest connections that may close, of
    /// the given direction (`Some(true)`: outbound) or either, those to
    /// peers owing us a DHT answer last; how many.
    fn oldest(&mut self, wanted: usize, outbound: Option<bool>) -> usize {
        let mut found = self.pass(wanted, outbound, false);
        if found < wanted {
            found += self.pass(wanted - found, outbound, true);
        }
        self.short |= found < wanted;
        found
    }

    /// One pass over the connections, oldest first, for
    /// [`Picker::oldest`]: with `awaited_too`, connections to peers we
    /// await an answer from may be chosen too.
    fn pass(&mut self, wanted: usize, outbound: Option<bool>, awaited_too: bool) -> usize {
        // A connection we dialled whose requests were answered needs no grace.
        let done = |connection: &Connection| connection.outbound && connection.answered;
        let mut found = 0;
        for (&id, connection) in &self.room.open {
            if found == wanted {
                break;
            }
            if connection.pinned
                || self.room.is_protected(&connection.peer)
                || outbound.is_some_and(|o| o != connection.outbound)
                || (!awaited_too && self.room.awaited.contains(&connection.peer))
                || self.chosen.contains(&id)
            {
                continue;
            }
            let grace_ends = connection.since + GRACE;
            if grace_ends > self.now && !done(connection) {
                self.again = Some(self.again.map_or(grace_ends, |at| at.min(grace_ends)));
                continue;
            }
            self.chosen.push(id);
            found += 1;
        }
        found
    }
}

#[derive(Debug)]
struct Connection {
    peer: PeerId,
    outbound: bool,
    /// Never closed to make room.
    pinned: bool,
    since: Instant,
    /// The peer answered every DHT request we sent, at least one since this
    /// connection opened.
    answered: bool,
}

/// Peers whose connections never close to make room.
#[derive(Debug, Default)]
struct Protected {
    /// The relays we reserve on (configured).
    relays: HashSet<PeerId>,
    /// Peers holding a reservation on us; bounded by the connected peers.
    reservations: HashSet<PeerId>,
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
    protected: Protected,
    /// Peers we await a DHT answer from (p2p-dht's edges; bounded as its
    /// count is: a peer is dropped on its `false` edge, which an expired
    /// count sends too). Their connections close last.
    awaited: HashSet<PeerId>,
    idle: Arc<IdlePolicy>,
    /// Connections closed to make room, in all.
    trimmed: u64,
    /// Of those, connections to a peer we awaited a DHT answer from.
    trimmed_awaited: u64,
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
            protected: Protected::default(),
            awaited: HashSet::new(),
            idle,
            trimmed: 0,
            trimmed_awaited: 0,
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
                answered: false,
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

    /// Never close the connections of `relay`, one we reserve on.
    pub(crate) fn protect_relay(&mut self, relay: PeerId) {
        self.protected.relays.insert(relay);
    }

    /// `peer` holds a reservation on us (as a relay): its connections stay
    /// until the reservation times out or the peer disconnects.
    pub(crate) fn reservation_held(&mut self, peer: PeerId) {
        self.protected.reservations.insert(peer);
    }

    /// `peer`'s reservation on us ended.
    pub(crate) fn reservation_ended(&mut self, peer: &PeerId) {
        self.protected.reservations.remove(peer);
    }

    /// We await a DHT answer from `peer` (`true`), or no longer: then each
    /// of its connections has been answered.
    pub(crate) fn awaiting_answer(&mut self, peer: PeerId, awaiting: bool) {
        if awaiting {
            self.awaited.insert(peer);
        } else {
            self.awaited.remove(&peer);
        }
        for connection in self.open.values_mut().filter(|c| c.peer == peer) {
            connection.answered = !awaiting;
        }
    }

    /// `peer`'s last connection closed (its reservation went with it).
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.protected.reservations.remove(peer);
    }

    /// Whether the connection is being closed to make room.
    pub(crate) fn is_closing(&self, id: &ConnectionId) -> bool {
        self.closing.contains(id)
    }

    fn is_protected(&self, peer: &PeerId) -> bool {
        self.protected.relays.contains(peer) || self.protected.reservations.contains(peer)
    }

    /// Connections closed to make room since the start.
    pub(crate) fn trimmed(&self) -> u64 {
        self.trimmed
    }

    /// Connections closed to make room since the start while we awaited a
    /// DHT answer from their peer (no other could close).
    pub(crate) fn trimmed_awaited(&self) -> u64 {
        self.trimmed_awaited
    }

    /// Connections refused at a limit since the start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }

    /// The connections to close now so that every count has room, oldest
    /// first; each is counted as gone from here on. Also when to ask again:
    /// a count still lacks room and a connection that could close for it is
    /// in its grace until then.
    ///
    /// A direction's own shortage is met from that direction, the total's
    /// shortage for the dials in progress from either, and the free inbound
    /// place only from inbound connections: strangers dialling in can push
    /// out idle inbound connections, never our own dials.
    pub(crate) fn trim(&mut self, now: Instant) -> (Vec<(PeerId, ConnectionId)>, Option<Instant>) {
        let dialling = self.dialling.len();
        let mut pick = Picker {
            room: self,
            now,
            chosen: Vec::new(),
            again: None,
            short: false,
        };
        let outbound_short = (self.outbound + dialling).saturating_sub(self.limits.outbound);
        let outbound = pick.oldest(outbound_short, Some(true));
        // Dials the outbound limit will refuse anyway need no place in all.
        let in_use =
            (self.inbound + self.outbound + dialling).saturating_sub(outbound_short - outbound);
        let mut closed_so_far = outbound;
        closed_so_far += pick.oldest(
            (self.inbound + 1).saturating_sub(self.limits.inbound),
            Some(false),
        );
        // The free inbound place first, from inbound connections only, so
        // that the pass for either direction does not take the inbound one
        // it needs; then what the total lacks for the dials.
        let total_short = in_use
            .saturating_sub(self.limits.total)
            .saturating_sub(closed_so_far);
        let free_place = (in_use + 1)
            .saturating_sub(self.limits.total)
            .saturating_sub(closed_so_far)
            .min(1);
        pick.oldest(free_place, Some(false));
        pick.oldest(total_short, None);
        let Picker {
            chosen,
            again,
            short,
            ..
        } = pick;
        let mut closed = Vec::with_capacity(chosen.len());
        for id in chosen {
            if let Some(connection) = self.open.remove(&id) {
                self.uncount(&connection);
                self.closing.insert(id);
                self.trimmed += 1;
                if self.awaited.contains(&connection.peer) {
                    self.trimmed_awaited += 1;
                }
                closed.push((connection.peer, id));
            }
        }
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
    fn a_connection_to_a_peer_owing_us_an_answer_closes_only_when_no_other_may() {
        let mut room = room(100, 100, 3);
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for (n, &peer) in peers.iter().enumerate() {
            room.established(id(n + 1), peer, true, false, Instant::now());
        }
        // A new walk asks the oldest connection's peer again.
        room.awaiting_answer(peers[0], true);
        room.dialling(id(10));
        assert_eq!(trim(&mut room), vec![(peers[1], id(2))]);
        let newcomer = PeerId::random();
        room.established(id(10), newcomer, true, false, Instant::now());
        // An answered peer is fair game again; one awaited before it
        // connected counts too (a lookup's dial is its first request).
        room.awaiting_answer(peers[0], false);
        let dialled = PeerId::random();
        room.awaiting_answer(dialled, true);
        room.dialling(id(11));
        assert_eq!(trim(&mut room), vec![(peers[0], id(1))]);
        room.established(id(11), dialled, true, false, Instant::now());
        // When every connection that may close is awaited, the oldest goes
        // rather than the dial being refused.
        room.awaiting_answer(peers[2], true);
        room.awaiting_answer(newcomer, true);
        room.dialling(id(12));
        assert_eq!(trim(&mut room), vec![(peers[2], id(3))]);
        assert_eq!((room.trimmed(), room.trimmed_awaited()), (3, 1));
    }

    #[test]
    fn kept_relayed_and_protected_connections_are_never_closed() {
        let mut room = room(100, 100, 2);
        let (user, relay, used) = (PeerId::random(), PeerId::random(), PeerId::random());
        room.established(id(1), user, true, true, Instant::now());
        room.established(id(2), relay, true, false, Instant::now());
        room.protect_relay(relay);
        room.established(id(3), used, true, false, Instant::now());
        room.kept(id(3));
        room.dialling(id(4));
        assert!(
            trim(&mut room).is_empty(),
            "nothing may close: the limit refuses"
        );
        assert_eq!(
            room.admit(true),
            Err(ConnectionLimitReached {
                kind: ConnectionLimitKind::Outbound,
                limit: 2
            })
        );
    }

    #[test]
    fn a_peer_holding_a_reservation_on_us_stays_until_it_ends_or_leaves() {
        let mut room = room(100, 2, 100);
        let client = PeerId::random();
        room.established(id(1), client, false, false, Instant::now());
        room.reservation_held(client);
        room.established(id(2), PeerId::random(), false, true, Instant::now());
        assert!(trim(&mut room).is_empty());
        room.reservation_ended(&client);
        assert_eq!(trim(&mut room), vec![(client, id(1))]);
        room.closed(id(1));
        // Held again on a new connection; the peer leaves: no longer held.
        room.established(id(3), client, false, false, Instant::now());
        room.reservation_held(client);
        assert!(trim(&mut room).is_empty());
        room.disconnected(&client);
        assert_eq!(trim(&mut room), vec![(client, id(3))]);
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
        // With the dial, the free inbound place among all is taken: the
        // oldest idle inbound connection goes (never an outbound one).
        assert_eq!(trim(&mut room), vec![(peers[1], id(2))]);
    }

    #[test]
    fn the_free_inbound_place_is_kept_whatever_the_order_of_the_connections() {
        // Total 2, an idle inbound and an idle outbound one, a dial: both
        // go (one for the dial, the inbound one for the free place).
        let mut room = room(2, 10, 10);
        let (a, b) = (PeerId::random(), PeerId::random());
        let old = Instant::now() - GRACE * 2;
        room.established(id(1), a, false, false, old);
        room.established(id(2), b, true, false, old);
        room.dialling(id(3));
        let mut closed = trim(&mut room);
        closed.sort_by_key(|(_, id)| *id);
        assert_eq!(closed, vec![(a, id(1)), (b, id(2))]);
    }

    #[test]
    fn nothing_closes_for_dials_the_outbound_limit_refuses_anyway() {
        // Outbound is full of kept connections: the two dials will be
        // refused, so the idle inbound connection stays.
        let mut room = room(4, 10, 2);
        let old = Instant::now() - GRACE * 2;
        room.established(id(1), PeerId::random(), true, true, old);
        room.established(id(2), PeerId::random(), true, true, old);
        room.established(id(3), PeerId::random(), false, false, old);
        room.dialling(id(4));
        room.dialling(id(5));
        assert!(trim(&mut room).is_empty());
    }

    #[test]
    fn a_dial_at_the_total_closes_an_idle_outbound_one_while_inbound_is_stuck() {
        // Inbound is full of kept connections (its own shortage cannot be
        // met); the total's shortage for a dial still closes an idle
        // outbound connection.
        let mut room = room(3, 2, 4);
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let old = Instant::now() - GRACE * 2;
        room.established(id(1), peers[0], false, true, old);
        room.established(id(2), peers[1], false, true, old);
        room.established(id(3), peers[2], true, false, old);
        room.dialling(id(4));
        assert_eq!(trim(&mut room), vec![(peers[2], id(3))]);
        assert_eq!(room.admit(true), Ok(()));
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
    fn a_young_dialled_connection_whose_requests_were_answered_makes_room_at_once() {
        let mut room = room(100, 100, 2);
        let (asked, answered) = (PeerId::random(), PeerId::random());
        let start = Instant::now();
        room.established(id(1), asked, true, false, start);
        room.established(id(2), answered, true, false, start);
        room.awaiting_answer(asked, true);
        room.awaiting_answer(answered, true);
        room.awaiting_answer(answered, false);
        room.dialling(id(3));
        // Within the grace: the answered one goes, the one still asked stays.
        assert_eq!(
            room.trim(start + GRACE / 2),
            (vec![(answered, id(2))], None)
        );
        room.dial_failed(id(3));
        // Asked again: young again.
        room.established(id(4), answered, true, false, start);
        room.awaiting_answer(answered, false);
        room.awaiting_answer(answered, true);
        room.dialling(id(5));
        let (closed, again) = room.trim(start + GRACE / 2);
        assert!(closed.is_empty(), "{closed:?}");
        assert_eq!(again, Some(start + GRACE));
        // An inbound connection keeps its whole grace, answered or not.
        let mut room = self::room(100, 1, 100);
        room.established(id(6), answered, false, false, start);
        room.awaiting_answer(answered, true);
        room.awaiting_answer(answered, false);
        let (closed, again) = room.trim(start + GRACE / 2);
        assert!(closed.is_empty());
        assert_eq!(again, Some(start + GRACE));
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
