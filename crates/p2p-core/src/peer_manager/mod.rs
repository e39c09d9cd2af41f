//! The peer manager: the one owner of peer scores, bans and the allow and
//! deny lists.
//!
//! - **One sink for rejections.** Whatever refuses something a peer sent —
//!   a native or TypeScript stream reader, the message processor, a handler's
//!   raw-stream acceptor, the stream layer, the DHT — reports it here, through
//!   [`Rejections`] (a bounded channel this behaviour polls) or, inside the
//!   swarm task, [`PeerManager::reject`]. Each rejection is then counted (in
//!   [`crate::stats`]), scored ([`scores`]) and emitted
//!   ([`Event::Rejected`]) the same way.
//! - **Bans are enforced here.** A banned peer's connections are closed
//!   (`ToSwarm::CloseConnection`) and every new one, either way, is denied
//!   when it is established (or before dialling, when the peer is known).
//!   A score that falls below the disconnect line closes the peer's
//!   connections. Timed bans end on a timer, not a poll.
//! - Scores and bans outlive the swarm: on stop the node takes them back
//!   ([`PeerManager::take_scores`]) and hands them to the next start.

pub(crate) mod scores;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};
use p2p_types::RejectReason;
use tokio::sync::mpsc;

use crate::stats::SharedStats;
use scores::{PeerScores, Verdict};

/// Rejections queued between their reporters and the peer manager. A
/// reporter waits when it is full (the swarm task drains it on every poll).
const REJECTION_QUEUE: usize = 4096;

/// Something a peer sent, refused, and why.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejection {
    pub(crate) peer: PeerId,
    pub(crate) reason: RejectReason,
}

/// Where rejections are reported from outside the swarm task.
#[derive(Debug, Clone)]
pub(crate) struct Rejections(mpsc::Sender<Rejection>);

impl Rejections {
    /// Reports a rejection; waits while the queue is full.
    pub(crate) async fn report(&self, peer: PeerId, reason: RejectReason) {
        // Closed only once the node has stopped: nothing left to score.
        let _ = self.0.send(Rejection { peer, reason }).await;
    }
}

/// What the peer manager tells the node.
#[derive(Debug)]
pub(crate) enum Event {
    /// A rejection, counted and scored.
    Rejected { peer: PeerId, reason: RejectReason },
    /// A peer was banned (`reason` `None`: by the operator), for `duration`
    /// (`None`: for good).
    Banned {
        peer: PeerId,
        reason: Option<RejectReason>,
        duration: Option<Duration>,
    },
    /// A ban ended or was lifted.
    Unbanned { peer: PeerId },
}

/// A connection refused because the peer is banned: the cause of
/// `DialError::Denied` in [`crate::NodeError::Dial`] when `connect` dials a
/// banned peer. (A send to one fails with [`crate::SendError::Dial`], whose
/// I/O error has kind `PermissionDenied`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("peer {0} is banned")]
pub struct Banned(pub PeerId);

/// See the module docs.
pub(crate) struct PeerManager {
    scores: PeerScores,
    stats: SharedStats,
    rejections: mpsc::Receiver<Rejection>,
    /// Fires when the soonest timed ban ends.
    expiry: Option<Pin<Box<tokio::time::Sleep>>>,
    actions: VecDeque<ToSwarm<Event, THandlerInEvent<Self>>>,
}

impl PeerManager {
    /// Takes over `scores` (kept across runs); returns the rejection sink.
    pub(crate) fn new(scores: PeerScores, stats: SharedStats) -> (Self, Rejections) {
        let (sender, rejections) = mpsc::channel(REJECTION_QUEUE);
        let mut manager = Self {
            scores,
            stats,
            rejections,
            expiry: None,
            actions: VecDeque::new(),
        };
        manager.arm_expiry();
        (manager, Rejections(sender))
    }

    /// Gives the scores back (the node keeps them while stopped), leaving
    /// empty ones under the same rules.
    pub(crate) fn take_scores(&mut self) -> PeerScores {
        let empty = PeerScores::new(self.scores.config().clone());
        std::mem::replace(&mut self.scores, empty)
    }

    /// Counts, scores and emits a rejection of something `peer` sent.
    pub(crate) fn reject(&mut self, peer: PeerId, reason: RejectReason) {
        tracing::debug!(%peer, %reason, "rejected");
        self.stats.rejected(peer, reason);
        self.emit(Event::Rejected { peer, reason });
        let now = Instant::now();
        match self.scores.penalize(peer, reason, now) {
            Verdict::None => {}
            Verdict::Disconnect => {
                tracing::info!(%peer, %reason, "disconnecting a misbehaving peer");
                self.close(peer);
            }
            Verdict::Ban(until) => {
                tracing::info!(%peer, %reason, "banning a peer");
                self.banned(
                    peer,
                    Some(reason),
                    Some(until.saturating_duration_since(now)),
                );
            }
        }
    }

    /// Bans `peer` for `duration` (`None`, or a duration past what the
    /// clock can represent: for good); false for an allow-listed peer.
    pub(crate) fn ban(&mut self, peer: PeerId, duration: Option<Duration>) -> bool {
        let until = duration.and_then(|d| Instant::now().checked_add(d));
        if !self.scores.ban(peer, until) {
            return false;
        }
        self.banned(peer, None, until.and(duration));
        true
    }

    /// Lifts a ban and forgets the score; false if there was no ban.
    pub(crate) fn unban(&mut self, peer: PeerId) -> bool {
        let lifted = self.scores.unban(&peer);
        if lifted {
            self.emit(Event::Unbanned { peer });
            self.arm_expiry();
        }
        lifted
    }

    /// The peer's score now.
    pub(crate) fn score(&self, peer: &PeerId) -> f64 {
        self.scores.score(peer, Instant::now())
    }

    /// True while `peer` is banned.
    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.scores.is_banned(peer)
    }

    /// Bans in force.
    pub(crate) fn banned_count(&self) -> usize {
        self.scores.banned()
    }

    fn banned(&mut self, peer: PeerId, reason: Option<RejectReason>, duration: Option<Duration>) {
        self.close(peer);
        self.emit(Event::Banned {
            peer,
            reason,
            duration,
        });
        for lifted in self.scores.take_lifted() {
            self.emit(Event::Unbanned { peer: lifted });
        }
        self.arm_expiry();
    }

    fn close(&mut self, peer: PeerId) {
        self.actions.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::All,
        });
    }

    fn emit(&mut self, event: Event) {
        self.actions.push_back(ToSwarm::GenerateEvent(event));
    }

    /// Sets the timer to the soonest end of a timed ban.
    fn arm_expiry(&mut self) {
        self.expiry = self
            .scores
            .next_expiry()
            .map(|at| Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at))));
    }

    fn deny_banned(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        if self.scores.is_banned(peer) {
            return Err(ConnectionDenied::new(Banned(*peer)));
        }
        Ok(())
    }
}

impl NetworkBehaviour for PeerManager {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Event;

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = peer {
            self.deny_banned(&peer)?;
        }
        Ok(Vec::new())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.deny_banned(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.deny_banned(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm<'_>) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        // A bounded batch per poll, so a flood of rejections cannot hold the
        // swarm task.
        for _ in 0..256 {
            match self.rejections.poll_recv(cx) {
                Poll::Ready(Some(Rejection { peer, reason })) => self.reject(peer, reason),
                _ => break,
            }
        }
        // Re-armed until the timer is pending, so its waker is registered.
        while let Some(expiry) = self.expiry.as_mut()
            && expiry.as_mut().poll(cx).is_ready()
        {
            // The timer's clock: a ban never seems unexpired to its timer.
            for peer in self.scores.expire(tokio::time::Instant::now().into_std()) {
                self.emit(Event::Unbanned { peer });
            }
            self.arm_expiry();
        }
        if let Some(action) = self.actions.pop_front() {
            if !self.actions.is_empty() || !self.rejections.is_empty() {
                cx.waker().wake_by_ref();
            }
            return Poll::Ready(action);
        }
        Poll::Pending
    }
}
