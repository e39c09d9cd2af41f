//! Protocol handlers: how applications (MuSig2, CoinJoin, chat) plug in.
//!
//! Each registered handler gets its own worker task and a bounded queue, so a
//! handler that is slow, errors or panics delays only itself: when its queue is
//! full, further messages for it are dropped and counted
//! ([`RejectReason::HandlerBusy`]), never queued without bound, and the rest of
//! the node carries on. Registrations live in the node, not in a run, so they
//! survive stop/start, and a handler registered before `start` gets its raw
//! streams once the node runs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use libp2p::{PeerId, Stream, StreamProtocol};
use p2p_protocol::Message;
use p2p_types::{ProtocolName, RejectReason};
use tokio::sync::mpsc;

/// Messages (and peer notifications) queued per handler before drops start.
pub const HANDLER_QUEUE: usize = 1024;
/// Longest a single handler call may take before it is abandoned; a raw
/// stream ([`ProtocolHandler::handle_stream`]) is held no longer either, then
/// reset.
pub const HANDLER_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a handler returns when it fails; logged and counted, never fatal.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// An application protocol.
#[async_trait]
pub trait ProtocolHandler: Send + Sync + 'static {
    /// The routing name: messages whose `protocol` field equals it come here.
    fn name(&self) -> ProtocolName;

    /// A libp2p protocol id for raw streams (`/lotus/chat/1.0.0`), if the
    /// handler wants them; its streams go to [`ProtocolHandler::handle_stream`].
    fn stream_protocol(&self) -> Option<StreamProtocol> {
        None
    }

    /// True if the handler accepts *unsigned direct* messages (addressed to
    /// this node, over the native protocol, whose sender the Noise connection
    /// already authenticates) — for high-rate traffic. The TypeScript JSON
    /// protocol's messages are unsigned: they reach a handler only if it
    /// returns true here (and then only messages whose `to` is absent or this
    /// node). Messages that can be
    /// relayed or used as evidence must stay signed: leave this false.
    fn accepts_unsigned_direct(&self) -> bool {
        false
    }

    /// A message for this handler passed every inbound check.
    async fn handle_message(&self, message: Arc<Message>, from: PeerId)
    -> Result<(), HandlerError>;

    /// A peer opened a raw stream on [`ProtocolHandler::stream_protocol`].
    /// The call is abandoned (and the stream reset) after
    /// [`HANDLER_CALL_TIMEOUT`]; a peer has at most 32 of a handler's
    /// streams open at once, the handler at most 64 in all.
    async fn handle_stream(&self, stream: Stream, peer: PeerId) -> Result<(), HandlerError> {
        let _ = (stream, peer);
        Ok(())
    }

    /// A peer connected.
    async fn on_peer_connected(&self, peer: PeerId) {
        let _ = peer;
    }

    /// A peer disconnected.
    async fn on_peer_disconnected(&self, peer: PeerId) {
        let _ = peer;
    }
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A handler with this name is registered already.
    #[error("protocol already registered: {0}")]
    Duplicate(ProtocolName),
    /// Another handler already uses this stream protocol.
    #[error("stream protocol already registered: {0}")]
    DuplicateStream(StreamProtocol),
    /// The node itself speaks this stream protocol (its native or TypeScript
    /// message protocol, or its DHT).
    #[error("stream protocol is the node's own: {0}")]
    Reserved(StreamProtocol),
}

/// Work for a handler's worker.
pub(crate) enum Job {
    Message(Arc<Message>, PeerId),
    Connected(PeerId),
    Disconnected(PeerId),
}

#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) handler: Arc<dyn ProtocolHandler>,
    jobs: mpsc::Sender<Job>,
}

impl Registered {
    /// Queues a job without waiting; `Err` when the handler is saturated.
    pub(crate) fn offer(&self, job: Job) -> Result<(), RejectReason> {
        self.jobs
            .try_send(job)
            .map_err(|_| RejectReason::HandlerBusy)
    }
}

/// The registry, shared by the handle, the event loop and the inbound path.
#[derive(Clone, Default)]
pub(crate) struct Handlers {
    inner: Arc<RwLock<HashMap<ProtocolName, Registered>>>,
}

impl Handlers {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ProtocolName, Registered>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ProtocolName, Registered>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `handler` and starts its worker (needs a tokio runtime).
    pub(crate) fn register(
        &self,
        handler: Arc<dyn ProtocolHandler>,
    ) -> Result<Registered, RegisterError> {
        let name = handler.name();
        let mut map = self.write();
        if map.contains_key(&name) {
            return Err(RegisterError::Duplicate(name));
        }
        if let Some(protocol) = handler.stream_protocol()
            && map
                .values()
                .any(|r| r.handler.stream_protocol().as_ref() == Some(&protocol))
        {
            return Err(RegisterError::DuplicateStream(protocol));
        }
        let (jobs, queue) = mpsc::channel(HANDLER_QUEUE);
        tokio::spawn(worker(Arc::clone(&handler), queue));
        let registered = Registered { handler, jobs };
        map.insert(name, registered.clone());
        Ok(registered)
    }

    /// Removes a handler; its worker ends once its queue drains.
    pub(crate) fn unregister(&self, name: &ProtocolName) -> Option<Registered> {
        self.write().remove(name)
    }

    pub(crate) fn get(&self, name: &ProtocolName) -> Option<Registered> {
        self.read().get(name).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Registered> {
        self.read().values().cloned().collect()
    }

    /// Tells every handler about a peer, without waiting for any of them.
    pub(crate) fn notify(&self, make: impl Fn(PeerId) -> Job, peer: PeerId) {
        for registered in self.read().values() {
            if registered.offer(make(peer)).is_err() {
                tracing::debug!(handler = %registered.handler.name(), %peer, "handler busy, peer notification dropped");
            }
        }
    }
}

/// Runs one handler's jobs in order, each bounded in time, isolating failures.
async fn worker(handler: Arc<dyn ProtocolHandler>, mut jobs: mpsc::Receiver<Job>) {
    let name = handler.name();
    while let Some(job) = jobs.recv().await {
        let call = async {
            match job {
                Job::Message(message, from) => handler.handle_message(message, from).await,
                Job::Connected(peer) => {
                    handler.on_peer_connected(peer).await;
                    Ok(())
                }
                Job::Disconnected(peer) => {
                    handler.on_peer_disconnected(peer).await;
                    Ok(())
                }
            }
        };
        // A panicking handler call is contained: the worker lives on.
        let call = std::panic::AssertUnwindSafe(call).catch_unwind();
        match tokio::time::timeout(HANDLER_CALL_TIMEOUT, call).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(handler = %name, %error, "handler failed"),
            Ok(Err(_)) => tracing::error!(handler = %name, "handler panicked"),
            Err(_) => tracing::warn!(handler = %name, "handler call timed out"),
        }
    }
}
