//! Per-peer limits on inbound Kademlia lookups.
//!
//! libp2p-kad answers FIND_NODE, GET_VALUE and GET_PROVIDERS itself and
//! reports them without naming the asking peer, so a peer could make a
//! server walk its routing table and store as fast as it can send. This
//! behaviour wraps kad and sees each request, with its peer, before kad does:
//! a request within the peer's bucket goes on to kad; one over it gets an
//! empty answer (no closer peers, no record, no providers) without kad doing
//! any work, so the asker's query moves on to other peers at once, and is
//! reported as [`KadEvent::Refused`], which the node counts as
//! [`p2p_types::RejectReason::DhtRateLimited`] against the peer in its stats.
//! It does not lower the peer's score: refusing costs us a short reply, and
//! honest servers burst lookups when kad replicates their store. Record and
//! provider puts are limited (the same way, unscored) where they are
//! validated, in the event loop.
//!
//! An empty answer rather than kad's `Reset`: a reset stream is left in kad's
//! handler un-woken and, with no inbound timeout in kad, keeps one of the
//! connection's 32 inbound-stream slots until the connection closes — 32
//! refusals would cut the peer off the DHT on that connection.
//!
//! kad's connection-handler types are private to it; they are reached here
//! through the swarm's `THandlerInEvent`/`THandlerOutEvent` aliases, so a kad
//! upgrade that renames a variant fails to compile here rather than silently
//! letting requests through.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, kad};
use p2p_dht::Kademlia;

use crate::rate_limits::Limiters;

type HandlerOut = THandlerOutEvent<Kademlia>;
type HandlerIn = THandlerInEvent<Kademlia>;

/// What the limited Kademlia behaviour reports.
// kad's event is as large unwrapped (libp2p passes it by value); boxing it
// would cost an allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum KadEvent {
    /// kad's own event.
    Kad(kad::Event),
    /// An inbound lookup refused: the peer is over its request rate.
    Refused {
        /// Who asked.
        peer: PeerId,
    },
}

/// kad, with inbound lookups limited per peer.
pub(crate) struct LimitedKad {
    inner: Kademlia,
    limiters: Arc<Limiters>,
    queued: VecDeque<ToSwarm<KadEvent, HandlerIn>>,
}

impl LimitedKad {
    pub(crate) fn new(inner: Kademlia, limiters: Arc<Limiters>) -> Self {
        Self {
            inner,
            limiters,
            queued: VecDeque::new(),
        }
    }
}

impl std::ops::Deref for LimitedKad {
    type Target = Kademlia;

    fn deref(&self) -> &Kademlia {
        &self.inner
    }
}

impl std::ops::DerefMut for LimitedKad {
    fn deref_mut(&mut self) -> &mut Kademlia {
        &mut self.inner
    }
}

impl NetworkBehaviour for LimitedKad {
    type ConnectionHandler = THandler<Kademlia>;
    type ToSwarm = KadEvent;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: HandlerOut,
    ) {
        let empty_answer = match &event {
            HandlerOut::FindNodeReq { request_id, .. } => Some(HandlerIn::FindNodeRes {
                closer_peers: Vec::new(),
                request_id: *request_id,
            }),
            HandlerOut::GetProvidersReq { request_id, .. } => Some(HandlerIn::GetProvidersRes {
                closer_peers: Vec::new(),
                provider_peers: Vec::new(),
                request_id: *request_id,
            }),
            HandlerOut::GetRecord { request_id, .. } => Some(HandlerIn::GetRecordRes {
                record: None,
                closer_peers: Vec::new(),
                request_id: *request_id,
            }),
            _ => None,
        };
        if let Some(answer) = empty_answer
            && !self.limiters.dht_request(&peer)
        {
            self.queued.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(connection),
                event: answer,
            });
            self.queued
                .push_back(ToSwarm::GenerateEvent(KadEvent::Refused { peer }));
            return;
        }
        self.inner
            .on_connection_handler_event(peer, connection, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<KadEvent, HandlerIn>> {
        if let Some(event) = self.queued.pop_front() {
            return Poll::Ready(event);
        }
        self.inner
            .poll(cx)
            .map(|event| event.map_out(KadEvent::Kad))
    }
}
