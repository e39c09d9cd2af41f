//! The swarm side of [`super::Control`]: tracks each peer's connections,
//! routes open requests to one of them (dialling when asked or needed) and
//! reports refused inbound streams.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::core::ConnectedPoint;
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, DialError, DialFailure,
    FromSwarm, NetworkBehaviour, NotifyHandler, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use super::handler::{Handler, Open, Report};
use super::idle::IdlePolicy;
use super::room::{Limits, Room};
use super::{
    Control, Event, INBOUND_QUEUE, OpenError, OpenRequest, REQUEST_QUEUE, Request, SharedRegistry,
    Target,
};
use crate::config::ConnectionLimits;

pub(crate) struct Behaviour {
    registry: SharedRegistry,
    control: Control,
    requests: mpsc::Receiver<Request>,
    /// Each peer's established connections, oldest first.
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    /// Requests waiting for a (new) connection to their peer.
    waiting: HashMap<PeerId, Vec<OpenRequest>>,
    actions: VecDeque<ToSwarm<Event, Open>>,
    /// Dials made for the node's user: their connections are kept.
    keep: HashSet<ConnectionId>,
    idle: Arc<IdlePolicy>,
    /// Enforces the established-connection limits and closes idle
    /// connections to make room (see [`super::room`]).
    room: Room,
    /// When a connection that could make room leaves its grace.
    room_check: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Behaviour {
    /// Idle connections beyond `limits.keep_idle` in all close unless kept
    /// (see [`super::idle`]); at a connection limit, the oldest idle ones
    /// close to make room (see [`super::room`]).
    pub(crate) fn new(limits: &ConnectionLimits) -> Self {
        Self::with_queue_depth(INBOUND_QUEUE, limits)
    }

    /// With each protocol's inbound queue `depth` deep.
    pub(crate) fn with_queue_depth(depth: usize, limits: &ConnectionLimits) -> Self {
        let registry = SharedRegistry::default();
        let idle = Arc::new(IdlePolicy::new(limits.keep_idle as usize));
        let room = Room::new(
            Limits {
                total: limits.max_established as usize,
                inbound: limits.max_established_incoming as usize,
                outbound: limits.max_established_outgoing as usize,
            },
            Arc::clone(&idle),
        );
        let (sender, requests) = mpsc::channel(REQUEST_QUEUE);
        Self {
            control: Control {
                registry: SharedRegistry::clone(&registry),
                requests: sender,
                queue_depth: depth,
            },
            registry,
            requests,
            connections: HashMap::new(),
            waiting: HashMap::new(),
            actions: VecDeque::new(),
            keep: HashSet::new(),
            idle,
            room,
            room_check: None,
        }
    }

    /// Never close the connections of `relay`, one we reserve on, to make
    /// room.
    pub(crate) fn protect_relay(&mut self, relay: PeerId) {
        self.room.protect_relay(relay);
    }

    /// `peer` holds a reservation on us: its connections stay until it ends
    /// or the peer disconnects.
    pub(crate) fn reservation_held(&mut self, peer: PeerId) {
        self.room.reservation_held(peer);
    }

    /// `peer`'s reservation on us timed out.
    pub(crate) fn reservation_ended(&mut self, peer: &PeerId) {
        self.room.reservation_ended(peer);
    }

    /// We await a DHT answer from `peer` (`true`), or no longer: then a
    /// young connection we dialled to it may make room at once (see
    /// [`super::room`]).
    pub(crate) fn awaiting_answer(&mut self, peer: PeerId, awaiting: bool) {
        self.room.awaiting_answer(peer, awaiting);
        if !awaiting {
            self.make_room();
        }
    }

    /// Connections closed to make room since the start.
    pub(crate) fn trimmed(&self) -> u64 {
        self.room.trimmed()
    }

    /// Connections closed to make room since the start while their peer
    /// owed us a DHT answer.
    pub(crate) fn trimmed_awaited(&self) -> u64 {
        self.room.trimmed_awaited()
    }

    /// Connections refused at an established-connection limit since the
    /// start.
    pub(crate) fn refused_at_limit(&self) -> u64 {
        self.room.refused()
    }

    /// Closes what the room says must go, and arms the timer for the next
    /// look when a connection that could go is still in its grace.
    fn make_room(&mut self) {
        let (closed, again) = self.room.trim(tokio::time::Instant::now().into_std());
        self.room_check =
            again.map(|at| Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at))));
        for (peer_id, connection) in closed {
            tracing::debug!(%peer_id, ?connection, "idle connection closed to make room");
            self.actions.push_back(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(connection),
            });
        }
    }

    /// The connection of this dial, made for the node's user, stays open
    /// while idle.
    pub(crate) fn keep(&mut self, dial: ConnectionId) {
        self.keep.insert(dial);
    }

    /// A handle for accepting and opening streams.
    pub(crate) fn control(&self) -> Control {
        self.control.clone()
    }

    fn route(&mut self, request: OpenRequest) {
        let all = self.connections.get(&request.peer);
        // A connection closed to make room is no place for a new stream.
        let connections: Option<Vec<ConnectionId>> = all.map(|c| {
            c.iter()
                .copied()
                .filter(|id| !self.room.is_closing(id))
                .collect()
        });
        let all_closing =
            all.is_some_and(|c| !c.is_empty()) && connections.as_ref().is_some_and(Vec::is_empty);
        let connections = connections.as_ref();
        let chosen = match request.target {
            Target::Any => connections.and_then(|c| c.last().copied()),
            Target::Connection(id) => {
                if !connections.is_some_and(|c| c.contains(&id)) {
                    let _ = request.reply.send(Err(OpenError::Io(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "connection closed",
                    ))));
                    return;
                }
                Some(id)
            }
            Target::Except(full) => {
                connections.and_then(|c| c.iter().rev().find(|id| **id != full).copied())
            }
        };
        match chosen {
            Some(connection) => self.open_on(connection, request),
            None => {
                let condition = match request.target {
                    Target::Except(_) => PeerCondition::Always,
                    // Its connections still count as connected.
                    _ if all_closing => PeerCondition::NotDialing,
                    _ => PeerCondition::DisconnectedAndNotDialing,
                };
                self.actions.push_back(ToSwarm::Dial {
                    opts: DialOpts::peer_id(request.peer).condition(condition).build(),
                });
                self.waiting.entry(request.peer).or_default().push(request);
            }
        }
    }

    fn open_on(&mut self, connection: ConnectionId, request: OpenRequest) {
        // Kept from now on, not only once the stream is negotiated: it must
        // not be closed to make room in between.
        self.room.kept(connection);
        self.actions.push_back(ToSwarm::NotifyHandler {
            peer_id: request.peer,
            handler: NotifyHandler::One(connection),
            event: Open {
                protocol: request.protocol,
                reply: request.reply,
            },
        });
    }

    fn handler(&mut self, peer: PeerId, connection: ConnectionId) -> Handler {
        Handler::new(
            peer,
            connection,
            SharedRegistry::clone(&self.registry),
            self.keep.contains(&connection),
            Arc::clone(&self.idle),
        )
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        // Only restores the free inbound place if a grace ended since the
        // last look: an unauthenticated connection reserves nothing.
        self.make_room();
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.room.admit(false).map_err(ConnectionDenied::new)?;
        Ok(self.handler(peer, connection))
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.room.admit(true).map_err(ConnectionDenied::new)?;
        Ok(self.handler(peer, connection))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection: ConnectionId,
        _: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.room.dialling(connection);
        self.make_room();
        Ok(Vec::new())
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                let pinned = self.keep.remove(&connection_id) || endpoint.is_relayed();
                let outbound = matches!(endpoint, ConnectedPoint::Dialer { .. });
                self.room.established(
                    connection_id,
                    peer_id,
                    outbound,
                    pinned,
                    tokio::time::Instant::now().into_std(),
                );
                self.make_room();
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .push(connection_id);
                for request in self.waiting.remove(&peer_id).unwrap_or_default() {
                    self.open_on(connection_id, request);
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => {
                self.room.closed(connection_id);
                if let Some(connections) = self.connections.get_mut(&peer_id) {
                    connections.retain(|c| *c != connection_id);
                    if connections.is_empty() {
                        self.connections.remove(&peer_id);
                        self.room.disconnected(&peer_id);
                    }
                }
            }
            FromSwarm::DialFailure(DialFailure {
                peer_id,
                error,
                connection_id,
                ..
            }) => {
                self.keep.remove(&connection_id);
                self.room.dial_failed(connection_id);
                let Some(peer) = peer_id else { return };
                // Another dial to the peer is under way: wait for its outcome.
                if matches!(error, DialError::DialPeerConditionFalse(_)) {
                    return;
                }
                let error = std::sync::Arc::new(dial_io(error));
                for request in self.waiting.remove(&peer).unwrap_or_default() {
                    let _ = request
                        .reply
                        .send(Err(OpenError::Dial(std::sync::Arc::clone(&error))));
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Report::QueueFull(protocol) => self
                .actions
                .push_back(ToSwarm::GenerateEvent(Event::Refused { peer, protocol })),
            Report::Kept => self.room.kept(connection),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        // Polled again after each look, so a new timer registers its waker.
        while let Some(check) = self.room_check.as_mut()
            && check.as_mut().poll(cx).is_ready()
        {
            self.make_room();
        }
        loop {
            if let Some(action) = self.actions.pop_front() {
                return Poll::Ready(action);
            }
            match self.requests.poll_recv(cx) {
                Poll::Ready(Some(Request::Open(request))) => self.route(request),
                Poll::Ready(Some(Request::Close(peer_id, connection))) => {
                    self.actions.push_back(ToSwarm::CloseConnection {
                        peer_id,
                        connection: CloseConnection::One(connection),
                    });
                }
                // The behaviour holds a sender itself, so this never ends.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// libp2p lends a behaviour its dial error by reference only (it is not
/// `Clone`), so a failed dial for a stream is kept as an I/O error of the
/// matching kind, its text the error with its causes.
fn dial_io(error: &DialError) -> std::io::Error {
    use std::io::ErrorKind;
    let kind = match error {
        DialError::LocalPeerId { .. } | DialError::NoAddresses => ErrorKind::AddrNotAvailable,
        DialError::Denied { .. } => ErrorKind::PermissionDenied,
        DialError::Aborted => ErrorKind::ConnectionAborted,
        DialError::WrongPeerId { .. } => ErrorKind::InvalidData,
        _ => ErrorKind::ConnectionRefused,
    };
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    std::io::Error::new(kind, text)
}
