//! The inbound checks every message passes, in order:
//! size → decode → validate → sender bound to the connection → signature →
//! replay/dedup. Each step's failure is a distinct [`InboundError`] that maps to
//! a [`RejectReason`] for stats. Dedup runs *after* the signature check, so a
//! forged copy can never get a real message suppressed.
//!
//! The checks up to the signature need no shared state ([`Checker`]); only
//! dedup does ([`Inbound::admit`]). A node runs a `Checker` in every stream
//! reader, in parallel, and one [`Inbound`] where the seen-set lives.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use libp2p_identity::{PeerId, PublicKey};
use p2p_types::{ProtocolLimits, RejectReason};

use crate::codec::{Codec, CodecError};
use crate::message::{Message, MessageId};
use crate::replay::{ReplayError, ReplayGuard};
use crate::sequence::{SequenceError, SequenceWindows};
use crate::sign::{self, Signable, VerifyError};
use crate::validate::{ValidationError, validate_message};

/// What the inbound checks enforce.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InboundPolicy {
    /// Size, skew and field limits.
    pub limits: ProtocolLimits,
    /// Refuse unsigned messages unless the caller says otherwise per message.
    pub require_signature: bool,
    /// Most message ids remembered for dedup. Default 100 000: about 100
    /// messages/s sustained over the 10-minute window, at ~100 bytes per entry
    /// (≈ 10 MB).
    pub replay_capacity: usize,
    /// How long ids are remembered. Default twice the clock skew (see
    /// [`ReplayGuard`]).
    pub replay_window: Duration,
    /// Most (sender, protocol) sequence windows kept for numbered messages.
    /// Default 10 000 (≈ 100 bytes each, 1 MB); beyond it the oldest is
    /// forgotten and its sender falls back on the seen-set.
    pub sequence_windows: usize,
}

impl Default for InboundPolicy {
    fn default() -> Self {
        let limits = ProtocolLimits::DEFAULT;
        Self {
            limits,
            require_signature: true,
            replay_capacity: 100_000,
            replay_window: limits.max_clock_skew.saturating_mul(2),
            sequence_windows: 10_000,
        }
    }
}

/// A message that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The message.
    pub message: Message,
    /// Its id.
    pub id: MessageId,
    /// True if its signature was verified.
    pub verified: bool,
}

/// Why an inbound message was dropped.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// Larger than the message size limit.
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not decodable.
    #[error(transparent)]
    Decode(#[from] CodecError),
    /// Decoded but invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// `from` is not the peer on the other end of the connection.
    #[error("message claims to be from {claimed} but came from {actual}")]
    SpoofedSender {
        /// The `from` field.
        claimed: Box<PeerId>,
        /// The authenticated remote peer.
        actual: Box<PeerId>,
    },
    /// Unsigned where a signature is required, or the signature failed.
    #[error("signature: {0}")]
    Signature(#[from] VerifyError),
    /// Seen before.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Its sequence number was seen before or is older than the window.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

impl InboundError {
    /// The stats reason this error is counted under.
    pub fn reason(&self) -> RejectReason {
        match self {
            Self::Oversize { .. } => RejectReason::Oversize,
            Self::Decode(_) => RejectReason::Decode,
            Self::Invalid(ValidationError::ClockSkew { .. }) => RejectReason::ClockSkew,
            Self::Invalid(_) => RejectReason::InvalidField,
            Self::SpoofedSender { .. } => RejectReason::SpoofedSender,
            Self::Signature(VerifyError::Unsigned) => RejectReason::MissingSignature,
            Self::Signature(_) => RejectReason::BadSignature,
            Self::Replay(_) | Self::Sequence(_) => RejectReason::Duplicate,
        }
    }
}

/// Decoded public keys of recent signers, bounded by count (oldest out first).
///
/// Decoding an ed25519 key from a PeerId decompresses a curve point, which costs
/// about a third of a verification; a peer sends many messages, so its key is
/// decoded once. A key is a pure function of the PeerId (checked before it is
/// cached), so caching cannot let one peer's key stand in for another's.
#[derive(Debug, Clone, Default)]
struct KeyCache {
    keys: HashMap<PeerId, PublicKey>,
    order: VecDeque<PeerId>,
}

impl KeyCache {
    /// Keys kept; one per recently active peer.
    const CAPACITY: usize = 1024;

    fn resolve(&mut self, message: &Message) -> Result<&PublicKey, VerifyError> {
        if !self.keys.contains_key(&message.from) {
            let key = sign::signer_key(&message.from, message.public_key.as_deref())?;
            if self.order.len() >= Self::CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.keys.remove(&oldest);
            }
            self.order.push_back(message.from);
            self.keys.insert(message.from, key);
        }
        self.keys
            .get(&message.from)
            .ok_or(VerifyError::UndecodableKey)
    }
}

/// The stateless checks: size → decode → validate → sender binding →
/// signature. Cheap to create; one per stream reader, so verification runs on
/// every core. It keeps a small cache of decoded signer keys.
#[derive(Debug, Clone)]
pub struct Checker {
    limits: ProtocolLimits,
    require_signature: bool,
    keys: KeyCache,
}

impl Checker {
    /// Checks with `policy`'s limits and signature requirement.
    pub fn new(policy: &InboundPolicy) -> Self {
        Self {
            limits: policy.limits,
            require_signature: policy.require_signature,
            keys: KeyCache::default(),
        }
    }

    /// Runs the stateless checks on one message body from `remote` at `now_ms`;
    /// `signature_required` decides per decoded message whether an unsigned one
    /// passes (for example by asking the handler its protocol names). A
    /// signature that is present is always verified.
    pub fn check_with<C: Codec + ?Sized>(
        &mut self,
        codec: &C,
        body: Bytes,
        remote: &PeerId,
        now_ms: u64,
        signature_required: impl FnOnce(&Message) -> bool,
    ) -> Result<Accepted, InboundError> {
        let max = self.limits.max_message_size;
        if body.len() > max {
            return Err(InboundError::Oversize {
                len: body.len(),
                max,
            });
        }
        let message = codec.decode_message(body)?;
        validate_message(&message, now_ms, &self.limits)?;
        if message.from != *remote {
            return Err(InboundError::SpoofedSender {
                claimed: Box::new(message.from),
                actual: Box::new(*remote),
            });
        }
        let (id, verified) = if message.is_signed() {
            let signing_bytes = message.signing_bytes();
            let key = self.keys.resolve(&message)?;
            sign::verify_bytes_with(&message, &signing_bytes, key)?;
            (Message::id_from_signing_bytes(&signing_bytes), true)
        } else if signature_required(&message) {
            return Err(VerifyError::Unsigned.into());
        } else {
            (message.id(), false)
        };
        Ok(Accepted {
            message,
            id,
            verified,
        })
    }

    /// [`Checker::check_with`] with the policy's signature requirement.
    pub fn check<C: Codec + ?Sized>(
        &mut self,
        codec: &C,
        body: Bytes,
        remote: &PeerId,
        now_ms: u64,
    ) -> Result<Accepted, InboundError> {
        let require = self.require_signature;
        self.check_with(codec, body, remote, now_ms, |_| require)
    }
}

/// Every check, with the replay state. One per node (the seen-set is shared by
/// all connections, so a message relayed by two peers is seen once).
#[derive(Debug, Clone)]
pub struct Inbound {
    policy: InboundPolicy,
    guard: ReplayGuard,
    sequences: SequenceWindows,
    checker: Checker,
}

impl Inbound {
    /// Checks with `policy` and an empty seen-set.
    pub fn new(policy: InboundPolicy) -> Self {
        let guard = ReplayGuard::new(policy.replay_capacity, policy.replay_window);
        let checker = Checker::new(&policy);
        Self {
            sequences: SequenceWindows::new(policy.sequence_windows),
            policy,
            guard,
            checker,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &InboundPolicy {
        &self.policy
    }

    /// The seen-set.
    pub fn replay_guard(&self) -> &ReplayGuard {
        &self.guard
    }

    /// A stateless checker with this policy, for a reader of its own.
    pub fn checker(&self) -> Checker {
        Checker::new(&self.policy)
    }

    /// The last step: admits a message that passed a [`Checker`] unless its id
    /// was seen inside the window, or its sequence number (if numbered) was
    /// seen or fell below its (sender, protocol) window.
    pub fn admit(&mut self, accepted: &Accepted, now_ms: u64) -> Result<(), InboundError> {
        self.guard.check_and_insert(accepted.id, now_ms)?;
        let m = &accepted.message;
        if let Some(sequence) = m.sequence {
            self.sequences
                .check(m.from, m.protocol.as_ref(), sequence)?;
        }
        Ok(())
    }

    /// Runs every check on one message body from `remote` at `now_ms`, with the
    /// policy's signature requirement.
    pub fn accept<C: Codec + ?Sized>(
        &mut self,
        codec: &C,
        body: Bytes,
        remote: &PeerId,
        now_ms: u64,
    ) -> Result<Accepted, InboundError> {
        let require = self.policy.require_signature;
        self.accept_with(codec, body, remote, now_ms, |_| require)
    }

    /// Like [`Inbound::accept`], but `signature_required` decides per decoded
    /// message (see [`Checker::check_with`]).
    pub fn accept_with<C: Codec + ?Sized>(
        &mut self,
        codec: &C,
        body: Bytes,
        remote: &PeerId,
        now_ms: u64,
        signature_required: impl FnOnce(&Message) -> bool,
    ) -> Result<Accepted, InboundError> {
        let accepted = self
            .checker
            .check_with(codec, body, remote, now_ms, signature_required)?;
        self.admit(&accepted, now_ms)?;
        Ok(accepted)
    }
}
