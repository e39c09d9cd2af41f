//! Sending on the TypeScript system's message protocol, one stream per
//! message, to peers that never close their side of those streams.
//!
//! A TypeScript node reads our message to EOF but never closes its half of
//! the stream, and js-libp2p refuses (resets, right after protocol
//! negotiation) a new inbound stream of a protocol once 32 of them are open
//! on the connection. So every message stream we open stays counted against
//! that limit for the life of the connection. Each peer gets a *lane*: the
//! connection its message streams go on, with a count of the streams on it
//! that the peer has not closed. Before the count reaches the peer's limit,
//! the next message goes on another connection (the peer's other one if it
//! has two — the per-peer limit — else a fresh one), which becomes the lane, and the
//! old connection is closed once its last send has finished (the messages on
//! it were read already; closing it releases the peer's streams).
//!
//! A send succeeds when its bytes are written, our side is closed, and the
//! peer did not reset the stream within [`RESET_GRACE`]. On mplex (the
//! TypeScript nodes' muxer) a reset is a [`SendError::Reset`], never a
//! success; yamux reports a reset exactly as a close, so there a reset after
//! our close reads as delivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::swarm::ConnectionId;
use libp2p::{PeerId, Stream};
use tokio::sync::Mutex;

use crate::messaging::{SendError, TYPESCRIPT_PROTOCOL};
use crate::streams::{self, Target};

/// Message streams left open per connection before the lane moves to a fresh
/// connection: js-libp2p's default inbound limit per protocol is 32; two are
/// kept spare for streams the peer may still be negotiating.
pub(crate) const STREAMS_PER_CONNECTION: usize = 30;
/// How long after closing our side a reset still counts as a refusal. The
/// peer resets right after it confirms the protocol, and we open a stream only
/// once that confirmation is in, so its reset is already on the way.
pub(crate) const RESET_GRACE: Duration = Duration::from_millis(100);

/// One connection used for message streams to a peer.
struct Lane {
    peer: PeerId,
    connection: ConnectionId,
    /// Streams on it the peer has not closed (including sends in progress).
    open: AtomicUsize,
    /// Sends in progress on it.
    in_flight: AtomicUsize,
    /// A newer lane replaced it: close it when the last send is done.
    retired: AtomicBool,
}

/// A peer's current lane; the async lock serialises choosing a lane and
/// opening on it.
type LaneSlot = Arc<Mutex<Option<Arc<Lane>>>>;

/// The lanes of every peer.
#[derive(Clone)]
pub(crate) struct TypeScriptLanes {
    control: streams::Control,
    lanes: Arc<StdMutex<HashMap<PeerId, LaneSlot>>>,
}

impl TypeScriptLanes {
    pub(crate) fn new(control: streams::Control) -> Self {
        Self {
            control,
            lanes: Arc::default(),
        }
    }

    /// Forgets a peer (its connections are gone).
    pub(crate) fn forget(&self, peer: &PeerId) {
        self.lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(peer);
    }

    fn slot(&self, peer: PeerId) -> LaneSlot {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(lanes.entry(peer).or_default())
    }

    /// Sends one JSON message on its own stream.
    pub(crate) async fn send(&self, peer: PeerId, bytes: Bytes) -> Result<(), SendError> {
        let (mut stream, lane) = self.open(peer).await?;
        let unclosed = Unclosed(Arc::clone(&lane));
        let mut sending = Sending::new(lane, &self.control);
        let delivered = deliver(&mut stream, &bytes).await;
        sending.done();
        match delivered? {
            PeerSide::Closed => Ok(()),
            PeerSide::Open => {
                // Only the stream's end matters now; it must not keep an
                // otherwise idle connection alive.
                stream.ignore_for_keep_alive();
                tokio::spawn(watch(stream, unclosed));
                Ok(())
            }
        }
    }

    /// Opens a message stream on the peer's lane, moving the lane to a fresh
    /// connection when the current one is full.
    async fn open(&self, peer: PeerId) -> Result<(Stream, Arc<Lane>), SendError> {
        let slot = self.slot(peer);
        let mut current = slot.lock().await;
        let target = match current.as_ref() {
            Some(lane) if lane.open.load(Ordering::Acquire) < STREAMS_PER_CONNECTION => {
                Target::Connection(lane.connection)
            }
            Some(full) => Target::Except(full.connection),
            None => Target::Any,
        };
        let opened = match self.control.open(peer, TYPESCRIPT_PROTOCOL, target).await {
            // The lane's connection closed under us: take any other.
            Err(_) if matches!(target, Target::Connection(_)) => {
                self.control
                    .open(peer, TYPESCRIPT_PROTOCOL, Target::Any)
                    .await
            }
            other => other,
        }?;
        let lane = match current.as_ref() {
            Some(lane) if lane.connection == opened.connection => Arc::clone(lane),
            previous => {
                let lane = Arc::new(Lane {
                    peer,
                    connection: opened.connection,
                    open: AtomicUsize::new(0),
                    in_flight: AtomicUsize::new(0),
                    retired: AtomicBool::new(false),
                });
                if let Some(old) = previous {
                    tracing::debug!(%peer, old = %old.connection, new = %lane.connection,
                        "message streams move to another connection");
                    // SeqCst with `Sending::done`: of the two sides (marking
                    // retired, ending the last send) at least one sees the other.
                    old.retired.store(true, Ordering::SeqCst);
                    if old.in_flight.load(Ordering::SeqCst) == 0 {
                        close(&self.control, old);
                    }
                }
                *current = Some(Arc::clone(&lane));
                lane
            }
        };
        lane.open.fetch_add(1, Ordering::AcqRel);
        lane.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok((opened.stream, lane))
    }
}

/// Closes a retired lane's connection.
fn close(control: &streams::Control, lane: &Lane) {
    let (control, peer, connection) = (control.clone(), lane.peer, lane.connection);
    tokio::spawn(async move { control.close_connection(peer, connection).await });
}

/// A send in progress on a lane: ends the in-flight count (retiring the lane
/// if it was replaced meanwhile) when done or dropped.
struct Sending<'a> {
    lane: Option<Arc<Lane>>,
    control: &'a streams::Control,
}

impl<'a> Sending<'a> {
    fn new(lane: Arc<Lane>, control: &'a streams::Control) -> Self {
        Self {
            lane: Some(lane),
            control,
        }
    }

    fn done(&mut self) {
        let Some(lane) = self.lane.take() else {
            return;
        };
        let before = lane.in_flight.fetch_sub(1, Ordering::SeqCst);
        if before == 1 && lane.retired.load(Ordering::SeqCst) {
            close(self.control, &lane);
        }
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

/// A stream the peer has not closed: counted on its lane until dropped.
struct Unclosed(Arc<Lane>);

impl Drop for Unclosed {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The peer's half of a message stream after our message went out.
enum PeerSide {
    Closed,
    Open,
}

/// Writes the message, closes our side, and watches for a reset for
/// [`RESET_GRACE`].
async fn deliver(stream: &mut Stream, bytes: &[u8]) -> Result<PeerSide, SendError> {
    stream.write_all(bytes).await.map_err(failure)?;
    stream.close().await.map_err(failure)?;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(RESET_GRACE, stream.read(&mut byte)).await {
        Err(_) => Ok(PeerSide::Open),
        // Both muxers read a reset as the end of the stream. mplex tells them
        // apart on writing: a reset stream refuses with `BrokenPipe`, one
        // both sides closed with `WriteZero` (nothing is sent either way, our
        // side being closed). yamux cannot tell them apart.
        Ok(Ok(0)) => match stream.write(&byte).await {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                Err(SendError::Reset(Arc::new(e)))
            }
            _ => Ok(PeerSide::Closed),
        },
        // The protocol has no answer; whatever the peer writes is ignored.
        Ok(Ok(_)) => Ok(PeerSide::Open),
        Ok(Err(e)) => Err(SendError::Reset(Arc::new(e))),
    }
}

fn failure(error: std::io::Error) -> SendError {
    match error.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
            SendError::Reset(Arc::new(error))
        }
        _ => SendError::io(error),
    }
}

/// Holds a stream the peer left open until the peer closes or resets it, or
/// the connection ends; then its lane counts one stream fewer.
async fn watch(mut stream: Stream, unclosed: Unclosed) {
    let mut sink = [0u8; 256];
    while let Ok(1..) = stream.read(&mut sink).await {}
    drop(unclosed);
}
