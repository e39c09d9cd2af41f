//! Messaging: the native protocol, the TypeScript system's JSON protocol, the
//! one inbound pipeline both feed, and the outbound writers.
//!
//! - Native, [`NATIVE_PROTOCOL`]: a long-lived stream per peer and direction
//!   carrying varint-framed protobuf envelopes. One writer task per peer batches
//!   frames and flushes once per batch; its queue is bounded, so a sender that
//!   outruns the network waits (backpressure) instead of losing messages.
//! - Legacy, [`LEGACY_PROTOCOL`] (`/lotus/message/1.0.0`): one JSON message per
//!   stream, read to EOF, capped in size and time; we close our side after
//!   reading. The TypeScript node never closes its side, and refuses a 33rd
//!   open one per connection: sending to it goes through
//!   [`crate::legacy_lanes`], which moves to a fresh connection before that.
//! - Streams arrive through [`crate::streams`]: every one is accepted, or
//!   refused with a counted reason attributed to its peer.
//! - Inbound: each stream reader splits bytes into message bodies and runs the
//!   stateless checks on them (size → decode → validate → sender bound to the
//!   connection → signature), so signature verification runs on every core.
//!   One processor task owns the replay state and does the rest: dedup →
//!   dispatch. Readers hand checked messages over through a bounded channel, so
//!   a busy processor slows the readers, and through them (yamux flow control)
//!   the senders.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use p2p_protocol::{
    Accepted, Checker, Codec, FrameDecoder, FrameError, Inbound, InboundPolicy, JsonCodec, Message,
    ProtobufCodec, encode_message_frame,
};
use p2p_types::{MessageStats, NodeEvent, RejectReason};
use tokio::sync::{Mutex, Semaphore, broadcast, mpsc, oneshot};

use crate::events::Event;
use crate::handler::{Handlers, Job};
use crate::legacy_lanes::LegacyLanes;
use crate::rate_limits::Limiters;
use crate::scoring::{PeerScores, ScoringConfig, Verdict};
use crate::streams::{self, Incoming, IncomingStreams, OpenError, Target};

/// The native message protocol.
pub const NATIVE_PROTOCOL: StreamProtocol = StreamProtocol::new("/lotus/p2p/1.0.0");
/// The TypeScript system's message protocol (JSON, one message per stream).
pub const LEGACY_PROTOCOL: StreamProtocol = StreamProtocol::new("/lotus/message/1.0.0");

/// Frames queued per peer writer before `send` waits.
const WRITER_QUEUE: usize = 256;
/// Most frames written between two flushes.
const WRITER_BATCH: usize = 64;
/// Checked messages queued between the readers and the processor.
const PROCESSOR_QUEUE: usize = 4096;
/// Concurrent inbound native streams per peer (one is normal).
const MAX_NATIVE_STREAMS_PER_PEER: usize = 4;
/// Concurrent inbound legacy streams per peer.
const MAX_LEGACY_STREAMS_PER_PEER: usize = 32;
/// Per-peer counters kept (least recently created dropped first beyond this).
const MAX_PEER_STATS: usize = 4096;

/// The protocol a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// [`NATIVE_PROTOCOL`]: framed protobuf, signed by default.
    Native,
    /// [`LEGACY_PROTOCOL`]: the TypeScript system's JSON.
    LegacyJson,
}

/// Which protocol `send` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireChoice {
    /// Native if the peer speaks it, else the TypeScript JSON protocol.
    #[default]
    Auto,
    /// Native only.
    Native,
    /// TypeScript JSON only.
    LegacyJson,
}

/// Why a message could not be delivered to a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The node is not running.
    #[error("node not started")]
    NotStarted,
    /// The peer does not speak the protocol asked for.
    #[error("peer does not support {0}")]
    Unsupported(StreamProtocol),
    /// The message cannot be encoded for the chosen protocol.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// Opening or writing the stream failed.
    #[error("stream: {0}")]
    Io(String),
    /// The peer reset the stream instead of reading the message (a
    /// TypeScript node does this over its inbound stream limit).
    #[error("the peer reset the stream: {0}")]
    Reset(String),
}

impl From<OpenError> for SendError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Unsupported(protocol) => SendError::Unsupported(protocol),
            OpenError::Io(reason) => SendError::Io(reason),
        }
    }
}

/// A penalty that calls for action by the event loop.
pub(crate) type Sanction = (PeerId, RejectReason, Verdict);

/// Message counters (node totals and per peer) and peer scores: every
/// rejection is counted against its peer here, and lowers its score; a
/// disconnect or ban it calls for goes to the event loop.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) total: MessageStats,
    pub(crate) per_peer: HashMap<PeerId, MessageStats>,
    pub(crate) scores: PeerScores,
    /// To the running event loop; `None` while stopped.
    pub(crate) sanctions: Option<mpsc::Sender<Sanction>>,
    /// Inbound connections refused per address block (counted by the swarm).
    pub(crate) denied_per_ip: Arc<AtomicU64>,
}

impl Counters {
    pub(crate) fn new(scoring: ScoringConfig) -> Self {
        Self {
            total: MessageStats::default(),
            per_peer: HashMap::new(),
            scores: PeerScores::new(scoring),
            sanctions: None,
            denied_per_ip: Arc::default(),
        }
    }

    fn peer(&mut self, peer: PeerId) -> &mut MessageStats {
        if !self.per_peer.contains_key(&peer)
            && self.per_peer.len() >= MAX_PEER_STATS
            && let Some(evict) = self.per_peer.keys().next().copied()
        {
            self.per_peer.remove(&evict);
        }
        self.per_peer.entry(peer).or_default()
    }

    pub(crate) fn reject(&mut self, peer: PeerId, reason: RejectReason) {
        self.total.record_rejection(reason);
        self.peer(peer).record_rejection(reason);
        let verdict = self.scores.penalize(peer, reason, Instant::now());
        if verdict != Verdict::None
            && let Some(sanctions) = &self.sanctions
        {
            // Full means the loop is behind: the peer's next rejection retries
            // a disconnect, the loop's reconciliation applies a ban.
            let _ = sanctions.try_send((peer, reason, verdict));
        }
    }

    fn received(&mut self, peer: PeerId, bytes: usize) {
        self.total.received += 1;
        self.total.bytes_received += bytes as u64;
        let stats = self.peer(peer);
        stats.received += 1;
        stats.bytes_received += bytes as u64;
    }

    fn sent(&mut self, result: &Result<(), SendError>, bytes: usize) {
        match result {
            Ok(()) => {
                self.total.sent += 1;
                self.total.bytes_sent += bytes as u64;
            }
            Err(_) => self.total.send_failures += 1,
        }
    }
}

pub(crate) type SharedCounters = Arc<StdMutex<Counters>>;

pub(crate) fn lock(counters: &SharedCounters) -> std::sync::MutexGuard<'_, Counters> {
    counters.lock().unwrap_or_else(|p| p.into_inner())
}

/// What readers hand the processor.
pub(crate) enum Item {
    /// A message that passed the stateless checks.
    Checked {
        peer: PeerId,
        accepted: Box<Accepted>,
        len: usize,
        wire: Wire,
    },
    Rejected {
        peer: PeerId,
        reason: RejectReason,
    },
}

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
    Legacy,
}

/// A peer's route, filled on first use; the async lock makes concurrent first
/// sends open one stream, not several.
type RouteSlot = Arc<Mutex<Option<Route>>>;

/// Outbound side: per-peer writers over one stream control.
#[derive(Clone)]
pub(crate) struct Outbound {
    control: streams::Control,
    routes: Arc<StdMutex<HashMap<PeerId, RouteSlot>>>,
    legacy: LegacyLanes,
    counters: SharedCounters,
}

impl Outbound {
    pub(crate) fn new(control: streams::Control, counters: SharedCounters) -> Self {
        Self {
            legacy: LegacyLanes::new(control.clone()),
            control,
            routes: Arc::default(),
            counters,
        }
    }

    /// Forgets a peer's routes (its writer ends with its connection).
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.forget_route(peer);
        self.legacy.forget(peer);
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
        let (mut attempt, legacy) = match self.route(peer, choice).await {
            Ok(Route::Native(writer)) => (self.send_native(writer, message).await, false),
            Ok(Route::Legacy) => (self.send_legacy(peer, message).await, true),
            Err(e) => ((Err(e), 0), false),
        };
        // A cached native stream dies with its connection; the first send
        // after that finds out. Retry once on a fresh stream (redialling if
        // need be). A frame that did get through is dropped as a duplicate.
        // A TypeScript message is never retried: its lane already chose the
        // connection, and the peer may have read it.
        if !legacy && matches!(attempt.0, Err(SendError::Io(_))) && choice != WireChoice::LegacyJson
        {
            tracing::debug!(%peer, error = ?attempt.0, "native stream failed; retrying on a fresh one");
            self.forget_route(&peer);
            if let Ok(Route::Native(writer)) = self.route(peer, choice).await {
                attempt = self.send_native(writer, message).await;
            }
        }
        let (result, bytes) = attempt;
        lock(&self.counters).sent(&result, bytes);
        result
    }

    async fn route(&self, peer: PeerId, choice: WireChoice) -> Result<Route, SendError> {
        if choice == WireChoice::LegacyJson {
            return Ok(Route::Legacy);
        }
        let slot = self.slot(peer);
        let mut route = slot.lock().await;
        match route.as_ref() {
            Some(Route::Native(writer)) if !writer.is_closed() => {
                return Ok(Route::Native(writer.clone()));
            }
            Some(Route::Legacy) if choice == WireChoice::Auto => return Ok(Route::Legacy),
            _ => {}
        }
        match self.control.open(peer, NATIVE_PROTOCOL, Target::Any).await {
            Ok(opened) => {
                let (writer, frames) = mpsc::channel(WRITER_QUEUE);
                tokio::spawn(write_frames(opened.stream, frames));
                *route = Some(Route::Native(writer.clone()));
                Ok(Route::Native(writer))
            }
            Err(OpenError::Unsupported(_)) if choice == WireChoice::Auto => {
                *route = Some(Route::Legacy);
                Ok(Route::Legacy)
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
        if let Err(e) = encode_message_frame(&ProtobufCodec, message, &mut buf) {
            return (Err(SendError::Encode(e.to_string())), 0);
        }
        let len = buf.len();
        let (done, written) = oneshot::channel();
        let frame = OutFrame {
            bytes: buf.freeze(),
            done,
        };
        if writer.send(frame).await.is_err() {
            return (Err(SendError::Io("stream closed".to_owned())), 0);
        }
        let result = written
            .await
            .unwrap_or_else(|_| Err(SendError::Io("stream closed".to_owned())));
        (result, len)
    }

    async fn send_legacy(&self, peer: PeerId, message: &Message) -> (Result<(), SendError>, usize) {
        let mut buf = BytesMut::new();
        if let Err(e) = JsonCodec.encode_message(message, &mut buf) {
            return (Err(SendError::Encode(e.to_string())), 0);
        }
        let len = buf.len();
        (self.legacy.send(peer, buf.freeze()).await, len)
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
        let failed = result.is_err();
        for frame in batch.drain(..) {
            let _ = frame.done.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| SendError::Io(e.to_string())),
            );
        }
        if failed {
            return;
        }
    }
    let _ = stream.close().await;
}

/// Per-peer counts of open inbound streams, with a cap.
#[derive(Clone, Default)]
struct StreamCounts(Arc<StdMutex<HashMap<PeerId, usize>>>);

/// Releases one slot of a peer when dropped.
struct StreamSlot {
    counts: StreamCounts,
    peer: PeerId,
}

impl StreamCounts {
    fn acquire(&self, peer: PeerId, max: usize) -> Option<StreamSlot> {
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

/// Accepts inbound streams of `wire`'s protocol and spawns a bounded reader
/// for each.
pub(crate) async fn accept(
    mut incoming: IncomingStreams,
    wire: Wire,
    items: mpsc::Sender<Item>,
    checks: Checks,
) {
    let counts = StreamCounts::default();
    let max = match wire {
        Wire::Native => MAX_NATIVE_STREAMS_PER_PEER,
        Wire::LegacyJson => MAX_LEGACY_STREAMS_PER_PEER,
    };
    while let Some(Incoming { peer, stream }) = incoming.next().await {
        if !checks.limiters.stream(&peer) {
            let _ = items.try_send(Item::Rejected {
                peer,
                reason: RejectReason::RateLimited,
            });
            continue; // dropping the stream resets it
        }
        let Some(slot) = counts.acquire(peer, max) else {
            let _ = items.try_send(Item::Rejected {
                peer,
                reason: RejectReason::TooManyStreams,
            });
            continue; // dropping the stream resets it
        };
        let (items, mut reader) = (items.clone(), checks.reader(peer));
        tokio::spawn(async move {
            let rejected = match wire {
                Wire::Native => read_frames(&mut reader, stream, &items).await,
                Wire::LegacyJson => read_legacy(&mut reader, stream, &items).await,
            };
            if let Err(reason) = rejected {
                let _ = items.send(Item::Rejected { peer, reason }).await;
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
}

impl Reader {
    /// Runs the stateless checks on `body` and hands the result to the
    /// processor; false once the processor is gone (node stopping).
    async fn check(&mut self, body: Bytes, wire: Wire, items: &mpsc::Sender<Item>) -> bool {
        let (peer, len) = (self.peer, body.len());
        // A native stream is slowed to the peer's rate (backpressure); a
        // stream-per-message sender has nothing to slow, so its excess drops.
        let within = match wire {
            Wire::Native => self.limiters.wait_message(&peer, len).await,
            Wire::LegacyJson => self.limiters.message(&peer, len),
        };
        if !within {
            let item = Item::Rejected {
                peer,
                reason: RejectReason::RateLimited,
            };
            return items.send(item).await.is_ok();
        }
        let (handlers, local) = (&self.handlers, self.local);
        let now = p2p_protocol::now_ms();
        let checked = match wire {
            Wire::Native => self
                .checker
                .check_with(&ProtobufCodec, body, &peer, now, |m| {
                    // Unsigned is allowed only for direct messages to a handler that opts in.
                    let opted_in = m
                        .protocol
                        .as_ref()
                        .and_then(|p| handlers.get(p))
                        .is_some_and(|h| h.handler.accepts_unsigned_direct());
                    !(opted_in && m.to == Some(local))
                }),
            // TypeScript nodes cannot sign; their messages are accepted as
            // unauthenticated content (the connection still proves the sender).
            Wire::LegacyJson => self
                .checker
                .check_with(&JsonCodec, body, &peer, now, |_| false),
        };
        let item = match checked {
            Ok(accepted) => Item::Checked {
                peer,
                accepted: Box::new(accepted),
                len,
                wire,
            },
            Err(error) => {
                tracing::debug!(%peer, %error, "inbound message refused");
                Item::Rejected {
                    peer,
                    reason: error.reason(),
                }
            }
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
    loop {
        while let Some(body) = decoder.decode(&mut buf).map_err(|e| frame_reason(&e))? {
            if !reader.check(body, Wire::Native, items).await {
                return Ok(()); // node stopping
            }
        }
        // Between messages a stream may idle; inside one it must keep moving.
        let read = stream.read(&mut chunk);
        let n = if buf.is_empty() {
            read.await
        } else {
            tokio::time::timeout(reader.timeout, read)
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
async fn read_legacy(
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
    reader.check(body.into(), Wire::LegacyJson, items).await;
    Ok(())
}

/// The channel readers feed.
pub(crate) fn processor_channel() -> (mpsc::Sender<Item>, mpsc::Receiver<Item>) {
    mpsc::channel(PROCESSOR_QUEUE)
}

/// Owns the replay state: dedups checked messages, counts, dispatches.
pub(crate) struct Processor {
    inbound: Inbound,
    handlers: Handlers,
    events: broadcast::Sender<Event>,
    counters: SharedCounters,
}

impl Processor {
    pub(crate) fn new(
        policy: InboundPolicy,
        handlers: Handlers,
        events: broadcast::Sender<Event>,
        counters: SharedCounters,
    ) -> Self {
        Self {
            inbound: Inbound::new(policy),
            handlers,
            events,
            counters,
        }
    }

    pub(crate) async fn run(mut self, mut items: mpsc::Receiver<Item>) {
        while let Some(item) = items.recv().await {
            match item {
                Item::Checked {
                    peer,
                    accepted,
                    len,
                    wire,
                } => self.on_checked(peer, *accepted, len, wire),
                Item::Rejected { peer, reason } => self.reject(peer, reason),
            }
        }
    }

    fn reject(&self, peer: PeerId, reason: RejectReason) {
        tracing::debug!(%peer, %reason, "message rejected");
        lock(&self.counters).reject(peer, reason);
        let _ = self
            .events
            .send(Event::Node(NodeEvent::MessageRejected { peer, reason }));
    }

    fn on_checked(&mut self, peer: PeerId, accepted: Accepted, len: usize, wire: Wire) {
        // Before admission, so a message for no handler takes no place in the
        // seen-set and opens no sequence window.
        let handler = match &accepted.message.protocol {
            Some(name) => match self.handlers.get(name) {
                Some(registered) => Some(registered),
                None => return self.reject(peer, RejectReason::UnknownProtocol),
            },
            None => None,
        };
        if let Err(error) = self.inbound.admit(&accepted, p2p_protocol::now_ms()) {
            tracing::debug!(%peer, %error, "inbound message refused");
            return self.reject(peer, error.reason());
        }
        let message = Arc::new(accepted.message);
        if let Some(registered) = handler
            && let Err(reason) = registered.offer(Job::Message(Arc::clone(&message), peer))
        {
            return self.reject(peer, reason);
        }
        lock(&self.counters).received(peer, len);
        let _ = self.events.send(Event::Message {
            from: peer,
            message,
            id: accepted.id,
            verified: accepted.verified,
            wire,
        });
    }
}

/// Semaphore-bounded raw-stream acceptor for one handler.
pub(crate) async fn accept_raw(
    mut incoming: IncomingStreams,
    handler: Arc<dyn crate::ProtocolHandler>,
    counters: SharedCounters,
    limiters: Arc<Limiters>,
) {
    /// Raw streams one handler serves at once.
    const MAX_RAW_STREAMS: usize = 64;
    let permits = Arc::new(Semaphore::new(MAX_RAW_STREAMS));
    while let Some(Incoming { peer, stream }) = incoming.next().await {
        if !limiters.stream(&peer) {
            lock(&counters).reject(peer, RejectReason::RateLimited);
            continue;
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            lock(&counters).reject(peer, RejectReason::TooManyStreams);
            continue;
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            if let Err(error) = handler.handle_stream(stream, peer).await {
                tracing::debug!(handler = %handler.name(), %peer, %error, "stream handler failed");
            }
            drop(permit);
        });
    }
}
