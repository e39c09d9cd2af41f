//! The swarm side of [`super::Control`]: tracks each peer's connections,
//! routes open requests to one of them (dialling when asked or needed) and
//! reports refused inbound streams.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};

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

use super::handler::{Handler, Open, Refused};
use super::idle::IdlePolicy;
use super::{
    Control, Event, INBOUND_QUEUE, OpenError, OpenRequest, REQUEST_QUEUE, Request, SharedRegistry,
    Target,
};

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
}

impl Behaviour {
    /// Idle connections beyond `keep_idle` in all close unless kept (see
    /// [`super::idle`]).
    pub(crate) fn new(keep_idle: usize) -> Self {
        Self::with_queue_depth(INBOUND_QUEUE, keep_idle)
    }

    /// With each protocol's inbound queue `depth` deep.
    pub(crate) fn with_queue_depth(depth: usize, keep_idle: usize) -> Self {
        let registry = SharedRegistry::default();
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
            idle: Arc::new(IdlePolicy::new(keep_idle)),
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
        let connections = self.connections.get(&request.peer);
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
            self.keep.remove(&connection),
            Arc::clone(&self.idle),
        )
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
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
        Ok(self.handler(peer, connection))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            }) => {
                self.idle.established();
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
                self.idle.closed();
                if let Some(connections) = self.connections.get_mut(&peer_id) {
                    connections.retain(|c| *c != connection_id);
                    if connections.is_empty() {
                        self.connections.remove(&peer_id);
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
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Refused::QueueFull(protocol) => self
                .actions
                .push_back(ToSwarm::GenerateEvent(Event::Refused { peer, protocol })),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
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
