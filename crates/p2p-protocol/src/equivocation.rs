//! Equivocation: a signer saying two different things where it may say one —
//! two MuSig2 nonces for the same session and round, two CoinJoin inputs lists
//! for one round. Session protocols name the slot (session, round); the guard
//! remembers the first signed message each sender put in each slot and, when
//! the same sender signs a different one for it, returns [`Evidence`] holding
//! both messages. Evidence is self-contained: anyone can check it with
//! [`Evidence::verify`], so it can be forwarded to the other participants.
//!
//! The guard does not verify signatures (the inbound pipeline already did);
//! it refuses unsigned messages, which prove nothing about their sender.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use libp2p_identity::PeerId;

use crate::message::{Message, MessageId};
use crate::sign::{self, VerifyError};

/// A place where a sender may put one message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slot {
    /// The session (application-defined bytes, e.g. a session id).
    pub session: Bytes,
    /// The round within the session.
    pub round: u64,
}

/// Two different signed messages of one sender for one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The slot.
    pub slot: Slot,
    /// The message seen first.
    pub first: Message,
    /// The conflicting one.
    pub second: Message,
}

/// Why evidence does not hold up.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The two messages are from different senders.
    #[error("the messages are from different senders")]
    DifferentSenders,
    /// The two messages are the same message.
    #[error("the messages are identical")]
    Identical,
    /// A signature is missing or does not verify.
    #[error("signature: {0}")]
    Signature(#[from] VerifyError),
}

impl Evidence {
    /// The equivocating sender.
    pub fn sender(&self) -> PeerId {
        self.first.from
    }

    /// Checks the evidence from scratch: same sender, different messages, both
    /// signatures valid for that sender.
    pub fn verify(&self) -> Result<(), EvidenceError> {
        if self.first.from != self.second.from {
            return Err(EvidenceError::DifferentSenders);
        }
        if self.first.id() == self.second.id() {
            return Err(EvidenceError::Identical);
        }
        sign::verify(&self.first)?;
        sign::verify(&self.second)?;
        Ok(())
    }
}

/// What the guard made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The sender's first message for the slot; remembered.
    First,
    /// The same message again (a retransmission, not equivocation).
    Repeat,
    /// A different signed message for a slot the sender already used.
    Equivocation(Box<Evidence>),
}

/// A message the guard cannot judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsigned messages cannot be evidence")]
pub struct Unsigned;

/// Remembers, per (slot, sender), the first signed message; bounded by count
/// (oldest slot forgotten first).
#[derive(Debug, Clone)]
pub struct EquivocationGuard {
    capacity: usize,
    seen: HashMap<(Slot, PeerId), (MessageId, Message)>,
    order: VecDeque<(Slot, PeerId)>,
}

impl EquivocationGuard {
    /// A guard remembering at most `capacity` (slot, sender) pairs.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `message` as its sender's word for `slot`.
    pub fn observe(&mut self, slot: Slot, message: &Message) -> Result<Observation, Unsigned> {
        if !message.is_signed() {
            return Err(Unsigned);
        }
        let id = message.id();
        let key = (slot, message.from);
        if let Some((first_id, first)) = self.seen.get(&key) {
            if *first_id == id {
                return Ok(Observation::Repeat);
            }
            return Ok(Observation::Equivocation(Box::new(Evidence {
                slot: key.0,
                first: first.clone(),
                second: message.clone(),
            })));
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.seen.insert(key, (id, message.clone()));
        Ok(Observation::First)
    }

    /// (slot, sender) pairs remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use libp2p_identity::Keypair;

    use super::*;
    use crate::message::MessageBuilder;

    fn nonce_message(key: &Keypair, nonce_commitment: &str) -> Message {
        MessageBuilder::new("musig2-nonce".parse().unwrap(), key.public().to_peer_id())
            .payload(nonce_commitment.as_bytes().to_vec())
            .sign(key)
            .unwrap()
    }

    fn slot(round: u64) -> Slot {
        Slot {
            session: Bytes::from_static(b"session-7"),
            round,
        }
    }

    #[test]
    fn a_second_different_signed_message_for_a_slot_is_evidence_anyone_can_check() {
        let signer = Keypair::generate_ed25519();
        let mut guard = EquivocationGuard::new(16);
        let first = nonce_message(&signer, "\"R1\"");
        assert_eq!(guard.observe(slot(1), &first), Ok(Observation::First));
        assert_eq!(guard.observe(slot(1), &first), Ok(Observation::Repeat));
        // Another round is another slot.
        let next = nonce_message(&signer, "\"R2\"");
        assert_eq!(guard.observe(slot(2), &next), Ok(Observation::First));

        let second = nonce_message(&signer, "\"R1-other\"");
        let Ok(Observation::Equivocation(evidence)) = guard.observe(slot(1), &second) else {
            panic!("no evidence");
        };
        assert_eq!(evidence.sender(), signer.public().to_peer_id());
        assert_eq!(evidence.first, first);
        assert_eq!(evidence.second, second);
        evidence.verify().unwrap();

        // Evidence cannot be fabricated: a tampered or foreign message fails.
        let mut forged = (*evidence).clone();
        forged.second.payload = Bytes::from_static(b"\"R9\"");
        assert!(matches!(forged.verify(), Err(EvidenceError::Signature(_))));
        let mut mixed = (*evidence).clone();
        mixed.second = nonce_message(&Keypair::generate_ed25519(), "\"R1\"");
        assert!(matches!(
            mixed.verify(),
            Err(EvidenceError::DifferentSenders)
        ));
        let mut same = (*evidence).clone();
        same.second = same.first.clone();
        assert!(matches!(same.verify(), Err(EvidenceError::Identical)));
    }

    #[test]
    fn unsigned_messages_are_refused_and_memory_is_bounded() {
        let signer = Keypair::generate_ed25519();
        let mut guard = EquivocationGuard::new(2);
        let unsigned =
            MessageBuilder::new("x".parse().unwrap(), signer.public().to_peer_id()).build();
        assert_eq!(guard.observe(slot(1), &unsigned), Err(Unsigned));
        for round in 0..10 {
            guard
                .observe(slot(round), &nonce_message(&signer, "1"))
                .unwrap();
        }
        assert_eq!(guard.len(), 2);
    }
}
