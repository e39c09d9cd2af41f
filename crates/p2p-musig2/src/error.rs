//! How a session fails, whom it blames, and what inbound messages are refused.

use std::fmt;

use lotus_musig2::PublicKey;
use p2p_core::PeerId;
use p2p_protocol::{Evidence, Message};

/// The round a session was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Finding each signer's node from its advert.
    Discovery,
    /// Exchanging public nonces.
    Nonces,
    /// Exchanging partial signatures.
    PartialSignatures,
}

impl Round {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Round::Discovery => "discovery",
            Round::Nonces => "nonces",
            Round::PartialSignatures => "partial_signatures",
        }
    }
}

/// What a blamed signer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlameReason {
    /// Its advert, nonce or partial signature did not arrive in time.
    Missing,
    /// Its partial signature does not verify against its nonce.
    InvalidPartialSignature,
    /// It signed two different nonces for one session attempt.
    Equivocation,
    /// Another signer aggregated a different nonce for it than we did: it
    /// showed different nonces to different signers, or restarted.
    NonceMismatch,
}

impl BlameReason {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BlameReason::Missing => "missing",
            BlameReason::InvalidPartialSignature => "invalid_partial_signature",
            BlameReason::Equivocation => "equivocation",
            BlameReason::NonceMismatch => "nonce_mismatch",
        }
    }
}

/// A signer held responsible for a failed session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blame {
    /// Its signing key.
    pub public_key: PublicKey,
    /// Its node, when its advert was found.
    pub peer: Option<PeerId>,
    /// What it did.
    pub reason: BlameReason,
}

impl fmt::Display for Blame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.public_key, self.reason.as_str())?;
        if let Some(peer) = self.peer {
            write!(f, " at {peer}")?;
        }
        Ok(())
    }
}

/// A bad partial signature, provable to anyone who knows the session: the
/// signer's signed nonce message and its signed partial-signature message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialEvidence {
    /// The round-1 message carrying the signer's public nonce.
    pub nonce: Message,
    /// The round-2 message carrying the partial signature that fails.
    pub partial: Message,
}

/// Why a session ended without a signature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Fewer than 2 or more than 15 signer keys.
    #[error("a session has 2 to {max} signers, not {got}", max = crate::MAX_SIGNERS)]
    SignerCount {
        /// The number of keys given.
        got: usize,
    },
    /// The same key was given twice.
    #[error("signer key {0} is listed twice")]
    DuplicateKey(Box<PublicKey>),
    /// This node's signer key is not one of the session's keys.
    #[error("this node's signer key {0} is not one of the session's keys")]
    NotASigner(Box<PublicKey>),
    /// The session id is empty or longer than 128 bytes.
    #[error("the session id must be 1 to 128 bytes")]
    SessionId,
    /// This node is already running the session.
    #[error("this session is already running on this node")]
    AlreadyRunning,
    /// The node is not running.
    #[error("the node is not running")]
    NotStarted,
    /// Signers missed a round: their adverts, nonces or partial signatures
    /// did not arrive before the timeout.
    #[error("timed out in round {}; missing: {}", round.as_str(), list(blame))]
    Timeout {
        /// The round that did not complete.
        round: Round,
        /// The signers that did not take part.
        blame: Vec<Blame>,
    },
    /// A signer's partial signature is invalid.
    #[error("invalid partial signature: {blame}")]
    InvalidPartialSignature {
        /// The signer.
        blame: Box<Blame>,
        /// Its two signed messages.
        evidence: Box<PartialEvidence>,
    },
    /// A signer signed two different nonces for one attempt at the session
    /// (a new attempt, with a new nonce, is a restart, not equivocation).
    #[error("equivocation: {blame}")]
    Equivocation {
        /// The signer.
        blame: Box<Blame>,
        /// Its two signed messages ([`crate::wire::proves_equivocation`]
        /// checks them).
        evidence: Box<Evidence>,
    },
    /// Signers aggregated different nonces (a signer restarted, or showed
    /// different nonces to different signers); nobody signed anything that
    /// could be combined. Run the session again.
    #[error("signers saw different nonces: {}", list(blame))]
    NonceMismatch {
        /// The signers whose nonces differ between views.
        blame: Vec<Blame>,
    },
    /// The cryptography refused (a nonce set that aggregates to infinity,
    /// or a final signature that does not verify).
    #[error("musig2")]
    Crypto(#[from] lotus_musig2::Error),
    /// A message could not be signed by the node's identity.
    #[error("signing a session message")]
    Sign(#[from] p2p_protocol::SignError),
}

impl SessionError {
    /// The signers held responsible (empty when the failure is nobody's).
    pub fn blame(&self) -> Vec<Blame> {
        match self {
            SessionError::Timeout { blame, .. } | SessionError::NonceMismatch { blame } => {
                blame.clone()
            }
            SessionError::InvalidPartialSignature { blame, .. }
            | SessionError::Equivocation { blame, .. } => vec![Blame::clone(blame)],
            _ => Vec::new(),
        }
    }

    /// A stable name for the failure (JSON `code`).
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::SignerCount { .. } => "signer_count",
            SessionError::DuplicateKey(_) => "duplicate_key",
            SessionError::NotASigner(_) => "not_a_signer",
            SessionError::SessionId => "session_id",
            SessionError::AlreadyRunning => "already_running",
            SessionError::NotStarted => "not_started",
            SessionError::Timeout { .. } => "timeout",
            SessionError::InvalidPartialSignature { .. } => "invalid_partial_signature",
            SessionError::Equivocation { .. } => "equivocation",
            SessionError::NonceMismatch { .. } => "nonce_mismatch",
            SessionError::Crypto(_) => "crypto",
            SessionError::Sign(_) => "sign",
        }
    }
}

fn list(blame: &[Blame]) -> String {
    blame
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why an inbound session message was refused. Each is counted (see
/// [`crate::Musig2::rejections`]) and logged with the peer that sent it; none
/// costs the sender score (late messages are what honest but slow signers
/// send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// The payload is not a session message.
    Malformed,
    /// The session is finished (a late or replayed message).
    SessionFinished,
    /// The message names a key that is not one of the session's signers.
    NotASigner,
    /// The sending node is not the node that advertises the key it signs for.
    WrongPeer,
    /// The session's inbox is full.
    SessionBusy,
    /// Messages for sessions this node has not started are buffered, a
    /// bounded number per peer and in all; this one did not fit.
    BufferFull,
    /// A message (nonce or partial signature) of an earlier run of a
    /// signer than the latest the session took a message of (a send of its
    /// earlier run that arrived late); not an offence. Such a message is
    /// not looked at further: two nonces of an abandoned run are not kept
    /// as equivocation evidence (nothing is signed under that run).
    EarlierAttempt,
}

impl Rejection {
    /// Every reason.
    pub const ALL: [Rejection; 7] = [
        Rejection::Malformed,
        Rejection::SessionFinished,
        Rejection::NotASigner,
        Rejection::WrongPeer,
        Rejection::SessionBusy,
        Rejection::BufferFull,
        Rejection::EarlierAttempt,
    ];

    /// The name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::SessionFinished => "session_finished",
            Rejection::NotASigner => "not_a_signer",
            Rejection::WrongPeer => "wrong_peer",
            Rejection::SessionBusy => "session_busy",
            Rejection::BufferFull => "buffer_full",
            Rejection::EarlierAttempt => "earlier_attempt",
        }
    }
}
