//! The outbound side: one writer task per peer on a long-lived native stream
//! (batched flushes, bounded queue: a sender that outruns the network waits),
//! and the TypeScript protocol's lanes ([`crate::typescript_lanes`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use bytes::{Bytes, BytesMut};
use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream};
use p2p_protocol::{Codec, JsonCodec, Message, encode_message_frame};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{NativeCodec, SendError, WireChoice};
use crate::stats::SharedStats;
use crate::streams::{self, OpenError, Target};
use crate::typescript_lanes::TypeScriptLanes;

/// Frames queued per peer writer before `send` waits.
const WRITER_QUEUE: usize = 256;
/// Most frames written between two flushes.
const WRITER_BATCH: usize = 64;

/// One frame for a writer, with where to report the write result.
struct OutFrame {
    bytes: Bytes,
    done: oneshot::Sender<Result<(), SendError>>,
}

/// How we reach one peer.
#[derive(Clone)]
enum Route {
    Native(mpsc::Sender<OutFrame>),
    /// The peer does not speak native; use JSON.
    TypeScript,
}

/// A peer's route, filled on first use; the async lock makes concurrent first
/// sends open one stream, not several.
type RouteSlot = Arc<Mutex<Option<Route>>>;

/// Outbound side: per-peer writers over one stream control.
#[derive(Clone)]
pub(crate) struct Outbound {
    control: streams::Control,
    routes: Arc<StdMutex<HashMap<PeerId, RouteSlot>>>,
    typescript: TypeScriptLanes,
    stats: SharedStats,
    native: NativeCodec,
}

impl Outbound {
    pub(crate) fn new(control: streams::Control, stats: SharedStats, native: NativeCodec) -> Self {
        Self {
            native,
            typescript: TypeScriptLanes::new(control.clone()),
            control,
            routes: Arc::default(),
            stats,
        }
    }

    /// Forgets a peer's routes (its writer ends with its connection).
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.forget_route(peer);
        self.typescript.forget(peer);
    }

    /// Forgets a peer's cached native route (its stream failed).
    fn forget_route(&self, peer: &PeerId) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(peer);
    }

    fn slot(&self, peer: PeerId) -> RouteSlot {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(routes.entry(peer).or_default())
    }

    /// Sends `message` to `peer`; resolves once it is written to the stream.
    pub(crate) async fn send(
        &self,
        peer: PeerId,
        message: &Message,
        choice: WireChoice,
    ) -> Result<(), SendError> {
        let (mut attempt, on_typescript) = match self.route(peer, choice).await {
            Ok(Route::Native(writer)) => (self.send_native(writer, message).await, false),
            Ok(Route::TypeScript) => (self.send_typescript(peer, message).await, true),
            Err(e) => ((Err(e), 0), false),
        };
        // A cached native stream dies with its connection; the first send
        // after that finds out. Retry once on a fresh stream (redialling if
        // need be). A frame that did get through is dropped as a duplicate.
        // A TypeScript message is never retried: its lane already chose the
        // connection, and the peer may have read it.
        if !on_typescript && retryable(&attempt.0) && choice != WireChoice::TypeScript {
            tracing::debug!(%peer, error = ?attempt.0, "native stream failed; retrying on a fresh one");
            self.forget_route(&peer);
            if let Ok(Route::Native(writer)) = self.route(peer, choice).await {
                attempt = self.send_native(writer, message).await;
            }
        }
        let (result, bytes) = attempt;
        self.stats.sent(result.is_ok(), bytes);
        result
    }

    async fn route(&self, peer: PeerId, choice: WireChoice) -> Result<Route, SendError> {
        if choice == WireChoice::TypeScript {
            return Ok(Route::TypeScript);
        }
        let slot = self.slot(peer);
        let mut route = slot.lock().await;
        match route.as_ref() {
            Some(Route::Native(writer)) if !writer.is_closed() => {
                return Ok(Route::Native(writer.clone()));
            }
            Some(Route::TypeScript) if choice == WireChoice::Auto => return Ok(Route::TypeScript),
            _ => {}
        }
        match self
            .control
            .open(peer, self.native.protocol().clone(), Target::Any)
            .await
        {
            Ok(opened) => {
                let (writer, frames) = mpsc::channel(WRITER_QUEUE);
                tokio::spawn(write_frames(opened.stream, frames));
                *route = Some(Route::Native(writer.clone()));
                Ok(Route::Native(writer))
            }
            Err(OpenError::Unsupported(_)) if choice == WireChoice::Auto => {
                *route = Some(Route::TypeScript);
                Ok(Route::TypeScript)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn send_native(
        &self,
        writer: mpsc::Sender<OutFrame>,
        message: &Message,
    ) -> (Result<(), SendError>, usize) {
        let mut buf = BytesMut::new();
        if let Err(e) = encode_message_frame(&**self.native.codec(), message, &mut buf) {
            return (Err(SendError::Encode(Arc::new(e))), 0);
        }
        let len = buf.len();
        let (done, written) = oneshot::channel();
        let frame = OutFrame {
            bytes: buf.freeze(),
            done,
        };
        if writer.send(frame).await.is_err() {
            return (Err(SendError::closed("stream closed")), 0);
        }
        let result = written
            .await
            .unwrap_or_else(|_| Err(SendError::closed("stream closed")));
        (result, len)
    }

    async fn send_typescript(
        &self,
        peer: PeerId,
        message: &Message,
    ) -> (Result<(), SendError>, usize) {
        let mut buf = BytesMut::new();
        if let Err(e) = JsonCodec.encode_message(message, &mut buf) {
            return (Err(SendError::Encode(Arc::new(e))), 0);
        }
        let len = buf.len();
        (self.typescript.send(peer, buf.freeze()).await, len)
    }
}

/// Whether a failed native send is worth one more try on a fresh stream: a
/// stream that broke, or a dial that failed because it rode on someone
/// else's dial to the peer (kad's, a bootstrap redial) that failed; not a
/// denial (ban, limits) or a peer without addresses.
fn retryable(result: &Result<(), SendError>) -> bool {
    match result {
        Err(SendError::Io(_)) => true,
        Err(SendError::Dial(error)) => !matches!(
            error.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// Writes frames to one stream, flushing once per batch, and reports each
/// frame's result. Ends (closing the stream) on the first error or when every
/// sender is gone.
async fn write_frames(mut stream: Stream, mut frames: mpsc::Receiver<OutFrame>) {
    let mut batch = Vec::with_capacity(WRITER_BATCH);
    while frames.recv_many(&mut batch, WRITER_BATCH).await > 0 {
        let mut result = Ok(());
        for frame in &batch {
            result = stream.write_all(&frame.bytes).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = stream.flush().await;
        }
        let failure = result.err().map(Arc::new);
        for frame in batch.drain(..) {
            let _ = frame.done.send(match &failure {
                None => Ok(()),
                Some(error) => Err(SendError::Io(Arc::clone(error))),
            });
        }
        if failure.is_some() {
            return;
        }
    }
    let _ = stream.close().await;
}
