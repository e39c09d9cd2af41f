//! The inbound side: accepts native and TypeScript message streams (per-peer
//! caps, stream rate), reads message bodies off them (bounded in size and
//! time) and runs the stateless checks, in one task per stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use p2p_protocol::{Checker, Codec, FrameDecoder, FrameError, InboundPolicy, JsonCodec};
use p2p_types::RejectReason;
use tokio::sync::mpsc;

use super::{Item, Wire};
use crate::handler::Handlers;
use crate::peer_manager::Rejections;
use crate::rate_limits::{Admission, Limiters};
use crate::streams::{Incoming, IncomingStreams, StreamCounts};

/// Concurrent inbound native streams per peer (one is normal).
const MAX_NATIVE_STREAMS_PER_PEER: usize = 4;
/// Concurrent inbound TypeScript-protocol streams per peer.
const MAX_TYPESCRIPT_STREAMS_PER_PEER: usize = 32;

/// Accepts inbound streams of `wire`'s protocol and spawns a bounded reader
/// for each.
pub(crate) async fn accept(
    mut incoming: IncomingStreams,
    wire: Wire,
    items: mpsc::Sender<Item>,
    checks: Checks,
) {
    let rejections = &checks.rejections;
    let counts = StreamCounts::default();
    let max = match wire {
        Wire::Native => MAX_NATIVE_STREAMS_PER_PEER,
        Wire::TypeScript => MAX_TYPESCRIPT_STREAMS_PER_PEER,
    };
    while let Some(Incoming { peer, stream }) = incoming.next().await {
        // Dropping a refused stream resets it.
        if !checks.limiters.stream(&peer) {
            drop(stream);
            rejections.report(peer, RejectReason::RateLimited).await;
            continue;
        }
        let Some(slot) = counts.acquire(peer, max) else {
            drop(stream);
            rejections.report(peer, RejectReason::TooManyStreams).await;
            continue;
        };
        let (items, mut reader) = (items.clone(), checks.reader(peer));
        tokio::spawn(async move {
            let rejected = match wire {
                Wire::Native => read_frames(&mut reader, stream, &items).await,
                Wire::TypeScript => read_typescript(&mut reader, stream, &items).await,
            };
            if let Err(reason) = rejected {
                reader.rejections.report(peer, reason).await;
            }
            drop(slot);
        });
    }
}

fn frame_reason(error: &FrameError) -> RejectReason {
    match error {
        FrameError::TooLarge { .. } => RejectReason::Oversize,
        _ => RejectReason::Framing,
    }
}

/// What every reader needs to run the stateless checks.
#[derive(Clone)]
pub(crate) struct Checks {
    pub(crate) policy: InboundPolicy,
    pub(crate) handlers: Handlers,
    pub(crate) local: PeerId,
    pub(crate) limiters: Arc<Limiters>,
    /// Time a peer has to finish a message it started (slowloris bound).
    pub(crate) stream_timeout: Duration,
    pub(crate) rejections: Rejections,
    /// The native protocol's codec ([`super::NativeCodec`]).
    pub(crate) native_codec: Arc<dyn Codec>,
}

impl Checks {
    fn reader(&self, peer: PeerId) -> Reader {
        Reader {
            peer,
            checker: Checker::new(&self.policy),
            handlers: self.handlers.clone(),
            local: self.local,
            max: self.policy.limits.max_message_size,
            limiters: Arc::clone(&self.limiters),
            timeout: self.stream_timeout,
            rejections: self.rejections.clone(),
            require_signature: self.policy.require_signature,
            native_codec: Arc::clone(&self.native_codec),
        }
    }
}

/// One stream reader's checking state.
struct Reader {
    peer: PeerId,
    checker: Checker,
    handlers: Handlers,
    local: PeerId,
    max: usize,
    limiters: Arc<Limiters>,
    timeout: Duration,
    rejections: Rejections,
    /// [`InboundPolicy::require_signature`].
    require_signature: bool,
    native_codec: Arc<dyn Codec>,
}

impl Reader {
    /// Runs the stateless checks on `body` and hands a checked message to the
    /// processor (a refusal to the peer manager); false once the processor is
    /// gone (node stopping).
    async fn check(&mut self, body: Bytes, wire: Wire, items: &mpsc::Sender<Item>) -> bool {
        let (peer, len) = (self.peer, body.len());
        // A native stream is slowed to the peer's rate (backpressure); a
        // stream-per-message sender has nothing to slow, so its excess drops.
        // Only the peer's own excess is its fault; an empty node bucket is
        // our saturation (sybils could keep it empty to get honest peers
        // banned), refused but not scored.
        let refused = match wire {
            Wire::Native => {
                (!self.limiters.wait_message(&peer, len).await).then_some(RejectReason::RateLimited)
            }
            Wire::TypeScript => match self.limiters.message(&peer, len) {
                Admission::Within => None,
                Admission::PeerExcess => Some(RejectReason::RateLimited),
                Admission::NodeBusy => Some(RejectReason::NodeBusy),
            },
        };
        if let Some(reason) = refused {
            self.rejections.report(peer, reason).await;
            return !items.is_closed();
        }
        let (handlers, local, required) = (&self.handlers, self.local, self.require_signature);
        let now = p2p_protocol::now_ms();
        // The one lookup of the handler the message names: in the signature
        // rule for an unsigned message, after the checks for a signed one.
        let mut looked_up = None;
        let checked = match wire {
            Wire::Native => self
                .checker
                .check_with(&*self.native_codec, body, &peer, now, |m| {
                    let handler = m.protocol.as_ref().and_then(|p| handlers.get(p));
                    // Unsigned is allowed only for direct messages to a handler that opts in.
                    let opted_in = looked_up
                        .insert(handler)
                        .as_ref()
                        .is_some_and(|h| h.handler.accepts_unsigned_direct());
                    required && !(opted_in && m.to == Some(local))
                }),
            // TypeScript nodes cannot sign; their messages are accepted as
            // unauthenticated content (the connection still proves the
            // sender), but the handler's rule holds: an unsigned message
            // reaches only a handler that accepts unsigned direct messages.
            // One naming no handler is an event only (an unknown handler is
            // refused below).
            Wire::TypeScript => self.checker.check_with(&JsonCodec, body, &peer, now, |m| {
                let handler = m.protocol.as_ref().and_then(|p| handlers.get(p));
                let strict = looked_up
                    .insert(handler)
                    .as_ref()
                    .is_some_and(|h| !h.handler.accepts_unsigned_direct());
                required && strict
            }),
        };
        let accepted = match checked {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%peer, %error, "inbound message refused");
                self.rejections.report(peer, error.reason()).await;
                return !items.is_closed();
            }
        };
        // A stream of the TypeScript protocol carries messages for us alone
        // (its messages are direct): one addressed to another peer is refused.
        if wire == Wire::TypeScript
            && let Some(to) = accepted.message.to
            && to != local
        {
            self.rejections
                .report(peer, RejectReason::WrongRecipient)
                .await;
            return !items.is_closed();
        }
        let handler = looked_up.unwrap_or_else(|| {
            accepted
                .message
                .protocol
                .as_ref()
                .and_then(|p| handlers.get(p))
        });
        // A message for no handler takes no place in the seen-set.
        if accepted.message.protocol.is_some() && handler.is_none() {
            self.rejections
                .report(peer, RejectReason::UnknownProtocol)
                .await;
            return !items.is_closed();
        }
        let item = Item {
            peer,
            accepted: Box::new(accepted),
            handler,
            len,
            wire,
        };
        items.send(item).await.is_ok()
    }
}

/// Reads frames off a native stream until it ends or misbehaves.
async fn read_frames(
    reader: &mut Reader,
    mut stream: Stream,
    items: &mpsc::Sender<Item>,
) -> Result<(), RejectReason> {
    let mut decoder = FrameDecoder::new(reader.max);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    // When the frame being read must be complete: set when its first byte
    // is buffered, cleared when it is decoded. The deadline bounds the whole
    // frame, not each read, so a peer trickling a byte at a time cannot hold
    // the stream (and the buffer reserved for the announced length).
    let mut deadline = None;
    loop {
        while let Some(body) = decoder.decode(&mut buf).map_err(|e| frame_reason(&e))? {
            deadline = None;
            if !reader.check(body, Wire::Native, items).await {
                return Ok(()); // node stopping
            }
        }
        // Between messages a stream may idle; inside one it must finish in time.
        let read = stream.read(&mut chunk);
        let n = if buf.is_empty() {
            read.await
        } else {
            let by = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + reader.timeout);
            tokio::time::timeout_at(by, read)
                .await
                .map_err(|_| RejectReason::StreamTimeout)?
        };
        match n {
            Ok(0) | Err(_) => return decoder.finish(&buf).map_err(|e| frame_reason(&e)),
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

/// Reads one JSON message to EOF (bounded in size and time), then closes our side.
async fn read_typescript(
    reader: &mut Reader,
    mut stream: Stream,
    items: &mpsc::Sender<Item>,
) -> Result<(), RejectReason> {
    let max = reader.max;
    let mut body = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX) + 1;
    let mut capped = (&mut stream).take(limit);
    match tokio::time::timeout(reader.timeout, capped.read_to_end(&mut body)).await {
        Err(_) => return Err(RejectReason::StreamTimeout),
        Ok(Err(_)) => return Err(RejectReason::Framing),
        Ok(Ok(_)) => {}
    }
    if body.len() > max {
        return Err(RejectReason::Oversize);
    }
    let _ = stream.close().await;
    if body.is_empty() {
        return Ok(()); // the TypeScript node ignores empty streams too
    }
    reader.check(body.into(), Wire::TypeScript, items).await;
    Ok(())
}
