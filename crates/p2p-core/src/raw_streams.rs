//! Handlers' raw streams: each handler that speaks its own framing gets an
//! acceptor that serves its inbound streams, bounded in number.

use std::sync::Arc;

use futures::StreamExt;
use p2p_types::RejectReason;
use tokio::sync::Semaphore;

use crate::peer_manager::Rejections;
use crate::rate_limits::Limiters;
use crate::streams::{Incoming, IncomingStreams};

/// Raw streams one handler serves at once.
const MAX_RAW_STREAMS: usize = 64;

/// Accepts `handler`'s inbound streams until the node stops or the handler
/// is unregistered; a stream over the peer's stream rate or the handler's
/// limit is reset and reported.
pub(crate) async fn accept(
    mut incoming: IncomingStreams,
    handler: Arc<dyn crate::ProtocolHandler>,
    rejections: Rejections,
    limiters: Arc<Limiters>,
) {
    let permits = Arc::new(Semaphore::new(MAX_RAW_STREAMS));
    while let Some(Incoming { peer, stream }) = incoming.next().await {
        if !limiters.stream(&peer) {
            drop(stream);
            rejections.report(peer, RejectReason::RateLimited).await;
            continue;
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            drop(stream);
            rejections.report(peer, RejectReason::TooManyStreams).await;
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
