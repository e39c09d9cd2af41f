//! Raw streams per protocol, ours end to end: the messaging protocols and
//! handlers' raw streams are accepted and opened here.
//!
//! - **Inbound**: a negotiated stream is handed to its protocol's queue
//!   ([`INBOUND_QUEUE`] deep), which the protocol's accept loop drains. Only a
//!   full queue refuses a stream, and that refusal is an [`Event::Refused`]
//!   attributed to the peer, never a silent drop. (libp2p-stream 0.5, used
//!   before, kept one waiting stream per connection and dropped the rest
//!   without a trace: a burst of TypeScript messages, one stream each, lost
//!   most of them.)
//! - **Outbound**: [`Control::open`] opens a stream to a peer on one of its
//!   connections (dialling if there is none) and says which connection it
//!   used; [`Target`] picks an existing connection, a given one, or a fresh
//!   one. [`Control::close_connection`] retires a connection.

mod behaviour;
mod handler;
mod idle;
mod room;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll};

use futures::channel::mpsc as futures_mpsc;
use libp2p::swarm::ConnectionId;
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

pub(crate) use behaviour::Behaviour;
pub use room::{ConnectionLimitKind, ConnectionLimitReached};

/// Streams of one protocol waiting for its accept loop, across all peers.
/// Far above what the per-peer caps let in at once (32 TypeScript streams,
/// 4 native, 64 per handler), so only a stalled accept loop fills it.
pub(crate) const INBOUND_QUEUE: usize = 1024;
/// Open requests waiting for the behaviour.
const REQUEST_QUEUE: usize = 1024;

/// A negotiated inbound stream.
pub(crate) struct Incoming {
    pub(crate) peer: PeerId,
    pub(crate) stream: Stream,
}

/// The inbound streams of one protocol. Dropping it stops accepting the
/// protocol (new streams are then refused in negotiation).
pub(crate) struct IncomingStreams(futures_mpsc::Receiver<Incoming>);

impl futures::Stream for IncomingStreams {
    type Item = Incoming;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Incoming>> {
        futures::StreamExt::poll_next_unpin(&mut self.0, cx)
    }
}

/// Per-peer counts of open inbound streams, with a cap.
#[derive(Clone, Default)]
pub(crate) struct StreamCounts(Arc<StdMutex<HashMap<PeerId, usize>>>);

/// Releases one slot of a peer when dropped.
pub(crate) struct StreamSlot {
    counts: StreamCounts,
    peer: PeerId,
}

impl StreamCounts {
    pub(crate) fn acquire(&self, peer: PeerId, max: usize) -> Option<StreamSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(peer).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            counts: self.clone(),
            peer,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}

/// Which connection an outbound stream goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The peer's newest connection; a dial if there is none.
    Any,
    /// This connection only (an error if it is gone).
    Connection(ConnectionId),
    /// Any connection but this one: the peer's newest other connection, or a
    /// new one dialled for this stream. (With a per-peer limit of two, the
    /// peer's other connection is often all there can be.)
    Except(ConnectionId),
}

/// An outbound stream and the connection it runs on.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) stream: Stream,
    pub(crate) connection: ConnectionId,
}

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The peer does not speak the protocol.
    #[error("peer does not support {0}")]
    Unsupported(StreamProtocol),
    /// No connection could be had (the dial error's kind and text; libp2p
    /// lends it by reference only).
    #[error("dial failed")]
    Dial(#[source] std::sync::Arc<std::io::Error>),
    /// The stream failed to open, or its connection (or the node) went away.
    #[error("stream failed to open")]
    Io(#[source] std::io::Error),
}

/// What the behaviour reports to the event loop.
#[derive(Debug)]
pub(crate) enum Event {
    /// An inbound stream was refused because its protocol's queue was full.
    Refused {
        peer: PeerId,
        protocol: StreamProtocol,
    },
}

/// A request for an outbound stream.
pub(crate) struct OpenRequest {
    peer: PeerId,
    protocol: StreamProtocol,
    target: Target,
    reply: oneshot::Sender<Result<Opened, OpenError>>,
}

impl fmt::Debug for OpenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenRequest")
            .field("peer", &self.peer)
            .field("protocol", &self.protocol)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// What a [`Control`] asks of the behaviour.
#[derive(Debug)]
enum Request {
    Open(OpenRequest),
    Close(PeerId, ConnectionId),
}

/// The protocols accepted, and where their streams go. Shared by the
/// behaviour's connection handlers (which read it) and the controls (which
/// register).
#[derive(Default)]
pub(crate) struct Registry {
    queues: HashMap<StreamProtocol, futures_mpsc::Sender<Incoming>>,
}

pub(crate) type SharedRegistry = Arc<StdMutex<Registry>>;

fn lock(registry: &SharedRegistry) -> std::sync::MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// The protocols whose accept loop is still there.
    fn protocols(&mut self) -> Vec<StreamProtocol> {
        self.queues.retain(|_, queue| !queue.is_closed());
        self.queues.keys().cloned().collect()
    }

    /// Queues an inbound stream; false if its protocol's queue is full or gone.
    fn deliver(&mut self, protocol: &StreamProtocol, incoming: Incoming) -> bool {
        match self.queues.get_mut(protocol) {
            Some(queue) => queue.try_send(incoming).is_ok(),
            None => false,
        }
    }
}

/// The protocol already has an accept loop.
#[derive(Debug, thiserror::Error)]
#[error("{0} is already accepted")]
pub(crate) struct AlreadyAccepted(StreamProtocol);

/// The cloneable handle to the behaviour.
#[derive(Clone)]
pub(crate) struct Control {
    registry: SharedRegistry,
    requests: mpsc::Sender<Request>,
    /// Depth of each protocol's queue ([`INBOUND_QUEUE`] outside tests).
    queue_depth: usize,
}

impl Control {
    /// Starts accepting `protocol`; its streams arrive on the returned stream.
    pub(crate) fn accept(
        &self,
        protocol: StreamProtocol,
    ) -> Result<IncomingStreams, AlreadyAccepted> {
        let mut registry = lock(&self.registry);
        if registry
            .queues
            .get(&protocol)
            .is_some_and(|queue| !queue.is_closed())
        {
            return Err(AlreadyAccepted(protocol));
        }
        let (queue, incoming) = futures_mpsc::channel(self.queue_depth);
        registry.queues.insert(protocol, queue);
        Ok(IncomingStreams(incoming))
    }

    /// Stops accepting `protocol` at once (its new streams are refused in
    /// negotiation), so it can be accepted again right away.
    pub(crate) fn stop_accepting(&self, protocol: &StreamProtocol) {
        lock(&self.registry).queues.remove(protocol);
    }

    /// Opens a stream to `peer` on `protocol`, on the connection `target` picks.
    pub(crate) async fn open(
        &self,
        peer: PeerId,
        protocol: StreamProtocol,
        target: Target,
    ) -> Result<Opened, OpenError> {
        let (reply, opened) = oneshot::channel();
        let request = OpenRequest {
            peer,
            protocol,
            target,
            reply,
        };
        let stopped = || {
            OpenError::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "node stopped",
            ))
        };
        self.requests
            .send(Request::Open(request))
            .await
            .map_err(|_| stopped())?;
        opened.await.map_err(|_| stopped())?
    }

    /// Closes one connection to `peer` (its streams end with it).
    pub(crate) async fn close_connection(&self, peer: PeerId, connection: ConnectionId) {
        let _ = self.requests.send(Request::Close(peer, connection)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::identity::Keypair;
    use libp2p::swarm::SwarmEvent;
    use libp2p::{Multiaddr, Swarm};

    use super::*;
    use crate::transport::{TransportKind, build};

    fn swarm(queue_depth: usize) -> Swarm<Behaviour> {
        let key = Keypair::generate_ed25519();
        // The relay client's behaviour is not in this swarm: no circuits here.
        let (relayed, _) = libp2p::relay::client::new(key.public().to_peer_id());
        let transport = build(TransportKind::Memory, &key, false, relayed).expect("transport");
        Swarm::new(
            transport,
            Behaviour::with_queue_depth(
                queue_depth,
                &crate::config::ConnectionLimits {
                    keep_idle: u32::MAX,
                    ..Default::default()
                },
            ),
            key.public().to_peer_id(),
            libp2p::swarm::Config::with_tokio_executor()
                .with_idle_connection_timeout(Duration::from_secs(30)),
        )
    }

    /// A stalled accept loop: the streams past its queue are refused, each
    /// one reported against the peer that opened it, never dropped silently.
    #[tokio::test]
    async fn streams_past_a_full_queue_are_refused_and_reported() {
        const PROTOCOL: StreamProtocol = StreamProtocol::new("/lotus/test-queue/1.0.0");
        let mut receiver = swarm(1);
        let mut sender = swarm(1);
        // Accepted, but nobody reads the queue.
        let _stalled = receiver
            .behaviour()
            .control()
            .accept(PROTOCOL)
            .expect("accept");
        let address: Multiaddr = "/memory/0".parse().expect("address");
        receiver.listen_on(address).expect("listen");
        let listening = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = receiver.select_next_some().await {
                break address;
            }
        };
        sender.dial(listening).expect("dial");
        let connected = async {
            loop {
                tokio::select! {
                    event = sender.select_next_some() => {
                        if matches!(event, SwarmEvent::ConnectionEstablished { .. }) {
                            return;
                        }
                    }
                    _ = receiver.select_next_some() => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), connected)
            .await
            .expect("connected");
        let control = sender.behaviour().control();
        let target = *receiver.local_peer_id();
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let control = control.clone();
                tokio::spawn(async move { control.open(target, PROTOCOL, Target::Any).await })
            })
            .collect();
        // futures' channel holds its depth plus one per sender (the registry's).
        let expected_refusals = 6 - 2;
        let mut refused = 0;
        let run = async {
            loop {
                tokio::select! {
                    event = receiver.select_next_some() => {
                        if let SwarmEvent::Behaviour(Event::Refused { peer, protocol }) = event {
                            assert_eq!(peer, *sender.local_peer_id());
                            assert_eq!(protocol, PROTOCOL);
                            refused += 1;
                            if refused == expected_refusals {
                                return;
                            }
                        }
                    }
                    _ = sender.select_next_some() => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("every stream past the queue is refused and reported");
        for open in opens {
            open.abort();
        }
    }
}
