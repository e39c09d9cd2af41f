//! What other peers ask us (a server) to store: records and provider records.
//!
//! A resource record must be valid (see [`crate::records::check_value`]), may
//! not replace a live record of another creator, and must fit its creator's
//! quota ([`crate::quotas`]). The put rate is checked before this, by the
//! behaviour.

use libp2p::PeerId;
use std::time::Instant;

use libp2p::kad::{self, store::RecordStore as _};
use p2p_types::{RejectReason, ResourceKey};

use crate::Kademlia;
use crate::behaviour::Event;
use crate::quotas::CreatorQuotas;
use crate::records::Validation;

/// The rules for inbound records and the state they keep.
pub(crate) struct Inbound {
    pub(crate) validation: Validation,
    quotas: Option<CreatorQuotas>,
}

impl Inbound {
    pub(crate) fn new(validation: Validation, quotas: Option<CreatorQuotas>) -> Self {
        Self { validation, quotas }
    }

    /// A record `source` asks us to store; returns what happened to it, if
    /// anyone needs to know.
    pub(crate) fn put(
        &mut self,
        kad: &mut Kademlia,
        source: PeerId,
        record: kad::Record,
    ) -> Option<Event> {
        let rejected = |reason| {
            Some(Event::Rejected {
                peer: source,
                reason,
            })
        };
        let is_resource = ResourceKey::from_bytes(record.key.as_ref()).is_ok();
        if is_resource {
            let incoming = match self.validation.check(record.key.as_ref(), &record.value) {
                Ok(incoming) => incoming,
                Err(e) => {
                    tracing::debug!(peer = %source, error = %e, "refused inbound record");
                    return rejected(RejectReason::InvalidRecord);
                }
            };
            let existing = kad.store_mut().get(&record.key).map(|r| r.value.clone());
            if let Some(existing) = existing
                && let Ok(current) = self.validation.check(record.key.as_ref(), &existing)
                && current.creator != incoming.creator
            {
                tracing::debug!(peer = %source, "refused overwrite by another creator");
                return rejected(RejectReason::InvalidRecord);
            }
            if let Some(quotas) = self.quotas
                && let Err(e) =
                    kad.store_mut()
                        .admit(quotas, incoming.creator, &incoming.key, Instant::now())
            {
                tracing::debug!(peer = %source, error = %e, "refused record over its creator's quota");
                return rejected(RejectReason::RateLimited);
            }
            let stored = store(kad, source, record);
            kad.store_mut().settle(&incoming.key);
            return stored;
        }
        store(kad, source, record)
    }

    /// A provider record `record.provider` sent us (kad checked that the
    /// provider is the sender).
    pub(crate) fn add_provider(&mut self, kad: &mut Kademlia, record: kad::ProviderRecord) {
        if let Err(e) = kad.store_mut().add_provider(record) {
            tracing::debug!(error = %e, "inbound provider record not stored");
        }
    }
}

fn store(kad: &mut Kademlia, source: PeerId, record: kad::Record) -> Option<Event> {
    let key = record.key.clone();
    match kad.store_mut().put(record) {
        Ok(()) => Some(Event::RecordStored { peer: source, key }),
        Err(e) => {
            tracing::debug!(peer = %source, error = %e, "inbound record not stored");
            None
        }
    }
}
