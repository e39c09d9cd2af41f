//! The processor: one task owns the replay state. It dedups checked messages
//! (seen-set, sequence windows), hands each to its handler, counts it and
//! emits it; a refusal goes to the peer manager.

use std::sync::Arc;

use libp2p::PeerId;
use p2p_protocol::Inbound;
use p2p_protocol::InboundPolicy;
use p2p_types::RejectReason;
use tokio::sync::{broadcast, mpsc};

use super::Item;
use crate::events::Event;
use crate::handler::Job;
use crate::peer_manager::Rejections;
use crate::stats::SharedStats;

/// See the module docs.
pub(crate) struct Processor {
    inbound: Inbound,
    events: broadcast::Sender<Event>,
    stats: SharedStats,
    rejections: Rejections,
}

impl Processor {
    pub(crate) fn new(
        policy: InboundPolicy,
        events: broadcast::Sender<Event>,
        stats: SharedStats,
        rejections: Rejections,
    ) -> Self {
        Self {
            inbound: Inbound::new(policy),
            events,
            stats,
            rejections,
        }
    }

    pub(crate) async fn run(mut self, mut items: mpsc::Receiver<Item>) {
        while let Some(item) = items.recv().await {
            if let Err((peer, reason)) = self.on_checked(item) {
                self.rejections.report(peer, reason).await;
            }
        }
    }

    fn on_checked(&mut self, item: Item) -> Result<(), (PeerId, RejectReason)> {
        let Item {
            peer,
            accepted,
            handler,
            len,
            wire,
        } = item;
        if let Err(error) = self.inbound.admit(&accepted, p2p_protocol::now_ms()) {
            tracing::debug!(%peer, %error, "inbound message refused");
            return Err((peer, error.reason()));
        }
        let accepted = *accepted;
        let message = Arc::new(accepted.message);
        if let Some(registered) = handler {
            registered
                .offer(Job::Message(Arc::clone(&message), peer))
                .map_err(|reason| (peer, reason))?;
        }
        self.stats.received(peer, len);
        let _ = self.events.send(Event::Message {
            from: peer,
            message,
            id: accepted.id,
            verified: accepted.verified,
            wire,
        });
        Ok(())
    }
}
