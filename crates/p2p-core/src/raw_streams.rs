//! Handlers' raw streams: each handler that speaks its own framing gets an
//! acceptor that serves its inbound streams, bounded in number, per peer and
//! in time.
//!
//! - **Per peer**: at most [`MAX_RAW_STREAMS_PER_PEER`] of a handler's streams
//!   from one peer at once; one more is reset and refused as
//!   [`RejectReason::TooManyStreams`], scored against that peer.
//! - **Per handler**: at most [`MAX_RAW_STREAMS`] at once from all peers. When
//!   they are all taken, a peer under its own cap is refused as
//!   [`RejectReason::HandlerBusy`]: counted, never scored (the slots were
//!   taken by others, so it is not this peer's doing, and scoring it would let
//!   sybils get honest peers banned).
//! - **In time**: a handler holds a stream for at most
//!   [`crate::HANDLER_CALL_TIMEOUT`] (30 s), as it may take for a message;
//!   then the call is abandoned and the stream reset, so a peer that never
//!   finishes cannot keep a slot. A protocol that needs longer sessions opens
//!   a stream per exchange.

use std::sync::Arc;

use futures::StreamExt;
use p2p_types::RejectReason;
use tokio::sync::Semaphore;

use crate::handler::HANDLER_CALL_TIMEOUT;
use crate::peer_manager::Rejections;
use crate::rate_limits::Limiters;
use crate::streams::{Incoming, IncomingStreams, StreamCounts};

/// Raw streams one handler serves at once.
pub(crate) const MAX_RAW_STREAMS: usize = 64;
/// Raw streams one handler serves at once from one peer: a TypeScript node's
/// own limit of inbound streams per protocol and connection (32), so a burst
/// from one of them fits, and a peer takes at most half of the handler's slots.
pub(crate) const MAX_RAW_STREAMS_PER_PEER: usize = 32;

/// Accepts `handler`'s inbound streams until the node stops or the handler
/// is unregistered; a stream over the peer's stream rate, its cap or the
/// handler's limit is reset and reported (see the module docs).
pub(crate) async fn accept(
    mut incoming: IncomingStreams,
    handler: Arc<dyn crate::ProtocolHandler>,
    rejections: Rejections,
    limiters: Arc<Limiters>,
) {
    let permits = Arc::new(Semaphore::new(MAX_RAW_STREAMS));
    let counts = StreamCounts::default();
    while let Some(Incoming { peer, stream }) = incoming.next().await {
        if !limiters.stream(&peer) {
            drop(stream);
            rejections.report(peer, RejectReason::RateLimited).await;
            continue;
        }
        let Some(slot) = counts.acquire(peer, MAX_RAW_STREAMS_PER_PEER) else {
            drop(stream);
            rejections.report(peer, RejectReason::TooManyStreams).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            drop((stream, slot));
            rejections.report(peer, RejectReason::HandlerBusy).await;
            continue;
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            match tokio::time::timeout(HANDLER_CALL_TIMEOUT, handler.handle_stream(stream, peer))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(handler = %handler.name(), %peer, %error, "stream handler failed");
                }
                Err(_) => {
                    tracing::debug!(handler = %handler.name(), %peer, "stream handler timed out; stream reset");
                }
            }
            drop((permit, slot));
        });
    }
}
