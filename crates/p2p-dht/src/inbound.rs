//! What other peers ask us (a server) to store: records and provider records.
//!
//! Only resource keys (shared `resource:<type>:<id>` and creator-scoped
//! `/lotus/r/<type>/<id>/<creator>`, see [`crate::records`]) are served: a
//! record under any other key is refused ([`RejectReason::UnservedKey`], not scored), as js
//! kad-dht refuses keys it has no validator for. A resource record must be
//! valid (see [`crate::records::check_value`]; under a creator-scoped key,
//! signed by that creator, so nobody else can write there); it may not replace a live
//! record of another creator, a newer version, or (unsigned) a signed record;
//! and it must fit its creator's quota ([`crate::quotas`]). It is stored no
//! longer than its own `expiresAt`. Refusals an honest server replicating its
//! store can cause (expired, conflicting, over quota) are reported with
//! unscored reasons; only forged and malformed records as
//! [`RejectReason::InvalidRecord`]. The put rate is checked before this, by
//! the behaviour.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::kad::{self, store::RecordStore as _};
use p2p_protocol::ResourceRecord;
use p2p_types::RejectReason;

use crate::Kademlia;
use crate::behaviour::Event;
use crate::quotas::CreatorQuotas;
use crate::records::{StoredKey, Validation};

/// The rules for inbound records and the state they keep.
pub(crate) struct Inbound {
    local: PeerId,
    pub(crate) validation: Validation,
    quotas: Option<CreatorQuotas>,
}

impl Inbound {
    pub(crate) fn new(
        local: PeerId,
        validation: Validation,
        quotas: Option<CreatorQuotas>,
    ) -> Self {
        Self {
            local,
            validation,
            quotas,
        }
    }

    /// A record `source` asks us to store: [`Ok`] with the event to report
    /// once it is in our store (only then is the put acknowledged), or the
    /// refusal to report, if any.
    pub(crate) fn put(
        &mut self,
        kad: &mut Kademlia,
        source: PeerId,
        mut record: kad::Record,
    ) -> Result<Event, Option<Event>> {
        let rejected = |reason| {
            Err(Some(Event::Rejected {
                peer: source,
                reason,
            }))
        };
        let Some(stored_key) = StoredKey::parse(record.key.as_ref()) else {
            tracing::debug!(peer = %source, "refused a record under a key we do not serve");
            return rejected(RejectReason::UnservedKey);
        };
        let now_ms = p2p_protocol::now_ms();
        let incoming = match self
            .validation
            .check_at(record.key.as_ref(), &record.value, now_ms)
        {
            Ok(incoming) => incoming,
            Err(e) => {
                tracing::debug!(peer = %source, error = %e, "refused inbound record");
                return rejected(e.reject_reason());
            }
        };
        let signed = incoming.signature.is_some();
        let existing = kad.store_mut().get(&record.key).map(|r| r.value.clone());
        if let Some(existing) = existing
            && let Ok(current) = self
                .validation
                .check_at(record.key.as_ref(), &existing, now_ms)
            && let Some(why) = conflict(&current, &incoming)
        {
            tracing::debug!(peer = %source, why, "refused a record that may not replace ours");
            return rejected(RejectReason::RecordConflict);
        }
        if let Some(quotas) = self.quotas
            && let Err(e) = kad.store_mut().admit(
                quotas,
                incoming.creator,
                &stored_key,
                signed,
                Instant::now(),
            )
        {
            tracing::debug!(peer = %source, error = %e, "refused record over its creator's quota");
            return rejected(RejectReason::RecordQuota);
        }
        // Stored no longer than the record itself lives, so we never hold
        // (and replicate) a record others must refuse as expired.
        if let Some(expires_ms) = incoming.expires_ms {
            let at = Instant::now() + Duration::from_millis(expires_ms.saturating_sub(now_ms));
            record.expires = Some(record.expires.map_or(at, |kad| kad.min(at)));
        }
        // Only a record we signed is ours (it has our own places in the
        // store and kad republishes it as ours); the publisher field is the
        // sender's word.
        let ours = incoming.creator == self.local && incoming.signature.is_some();
        if record.publisher == Some(self.local) && !ours {
            record.publisher = Some(source);
        }
        let key = record.key.clone();
        let stored = match kad.store_mut().put(record) {
            Ok(()) => Ok(Event::RecordStored { peer: source, key }),
            Err(e) => {
                tracing::debug!(peer = %source, error = %e, "inbound record not stored");
                Err(None)
            }
        };
        kad.store_mut().settle(&stored_key);
        stored
    }

    /// A provider record `record.provider` sent us (kad checked that the
    /// provider is the sender). One over the provider's share of our store
    /// is refused as [`RejectReason::RecordQuota`] (not scored).
    pub(crate) fn add_provider(
        &mut self,
        kad: &mut Kademlia,
        record: kad::ProviderRecord,
    ) -> Option<Event> {
        let peer = record.provider;
        match kad.store_mut().add_provider(record) {
            Ok(()) => None,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "inbound provider record not stored");
                Some(Event::Rejected {
                    peer,
                    reason: RejectReason::RecordQuota,
                })
            }
        }
    }
}

/// Why `incoming` may not replace `current` (both valid now), if it may not:
/// only the creator writes its record, versions only move forward (the
/// signed `created` time), and an unsigned record never replaces a signed one.
fn conflict(current: &ResourceRecord, incoming: &ResourceRecord) -> Option<&'static str> {
    let (current_signed, signed) = (current.signature.is_some(), incoming.signature.is_some());
    if current.creator != incoming.creator {
        Some("another creator's record")
    } else if current_signed && !signed {
        Some("an unsigned record over a signed one")
    } else if current_signed == signed && incoming.created_ms < current.created_ms {
        Some("an older version")
    } else {
        None
    }
}
