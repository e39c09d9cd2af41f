//! One connection's side of [`super::Behaviour`]: negotiates inbound streams
//! for the registered protocols and hands them to their queues, and opens the
//! outbound streams the behaviour asks for.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use libp2p::core::UpgradeInfo;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, ConnectionId, StreamUpgradeError, SubstreamProtocol,
};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::oneshot;

use std::sync::Arc;

use super::idle::IdlePolicy;
use super::{Incoming, OpenError, Opened, SharedRegistry, lock};

/// The protocols offered (inbound) or asked for (outbound, exactly one).
#[derive(Debug, Clone)]
pub(crate) struct Protocols(Vec<StreamProtocol>);

impl UpgradeInfo for Protocols {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Protocols {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

impl OutboundUpgrade<Stream> for Protocols {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_outbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

/// An outbound stream to open, and where its result goes.
#[derive(Debug)]
pub(crate) struct Open {
    pub(crate) protocol: StreamProtocol,
    pub(crate) reply: oneshot::Sender<Result<Opened, OpenError>>,
}

/// Told to the behaviour.
#[derive(Debug)]
pub(crate) enum Report {
    /// The protocol's queue was full; the stream was dropped (reset).
    QueueFull(StreamProtocol),
    /// The connection carried its first application stream: it is kept.
    Kept,
}

pub(crate) struct Handler {
    peer: PeerId,
    connection: ConnectionId,
    registry: SharedRegistry,
    /// Opens not yet handed to the connection.
    opens: VecDeque<Open>,
    /// Opens handed to the connection and not yet negotiated.
    negotiating: usize,
    reports: VecDeque<Report>,
    /// Kept open while idle: it carried an application stream or the node
    /// dialled it for its user (see [`super::idle`]).
    kept: bool,
    idle: Arc<IdlePolicy>,
}

impl Handler {
    pub(crate) fn new(
        peer: PeerId,
        connection: ConnectionId,
        registry: SharedRegistry,
        kept: bool,
        idle: Arc<IdlePolicy>,
    ) -> Self {
        Self {
            peer,
            connection,
            registry,
            opens: VecDeque::new(),
            negotiating: 0,
            reports: VecDeque::new(),
            kept,
            idle,
        }
    }
}

impl Handler {
    /// The connection carried an application stream; the behaviour is told
    /// once (it never closes a kept connection to make room).
    fn keep(&mut self) {
        if !self.kept {
            self.kept = true;
            self.reports.push_back(Report::Kept);
        }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Open;
    type ToBehaviour = Report;
    type InboundProtocol = Protocols;
    type OutboundProtocol = Protocols;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Open;

    fn listen_protocol(&self) -> SubstreamProtocol<Protocols> {
        SubstreamProtocol::new(Protocols(lock(&self.registry).protocols()), ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.kept || !self.opens.is_empty() || self.negotiating > 0 || self.idle.room_for_idle()
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Protocols, Self::OutboundOpenInfo, Report>> {
        if let Some(report) = self.reports.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(report));
        }
        while let Some(open) = self.opens.pop_front() {
            if open.reply.is_closed() {
                continue; // the caller gave up
            }
            self.negotiating += 1;
            let protocols = Protocols(vec![open.protocol.clone()]);
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(protocols, open),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, open: Open) {
        self.opens.push_back(open);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Protocols, Protocols, (), Self::OutboundOpenInfo>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, protocol),
                ..
            }) => {
                let incoming = Incoming {
                    peer: self.peer,
                    stream,
                };
                // Kept only for a stream actually handed on: one refused at
                // a full queue does not pin the connection.
                if lock(&self.registry).deliver(&protocol, incoming) {
                    self.keep();
                } else {
                    self.reports.push_back(Report::QueueFull(protocol));
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (stream, _),
                info: open,
            }) => {
                self.keep();
                self.negotiating = self.negotiating.saturating_sub(1);
                let _ = open.reply.send(Ok(Opened {
                    stream,
                    connection: self.connection,
                }));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: open, error }) => {
                self.negotiating = self.negotiating.saturating_sub(1);
                let error = match error {
                    StreamUpgradeError::NegotiationFailed => OpenError::Unsupported(open.protocol),
                    StreamUpgradeError::Timeout => OpenError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "stream negotiation timed out",
                    )),
                    StreamUpgradeError::Io(e) => OpenError::Io(e),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = open.reply.send(Err(error));
            }
            _ => {}
        }
    }
}
