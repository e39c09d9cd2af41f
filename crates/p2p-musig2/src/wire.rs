//! The session's messages on the wire: signed native messages routed to the
//! `musig2` handler, their payload JSON bound to the session and the round.
//!
//! ```text
//! type musig2-nonce:   {"session":<hex32>,"attempt":<hex16>,"signer":<key hex33>,"nonce":<hex66>}
//! type musig2-partial: {"session":<hex32>,"attempt":<hex16>,"signer":<key hex33>,
//!                       "nonces":[<hex66>, one per signer in key order],"partial":<hex32>}
//! ```
//!
//! `session` is [`SessionHash`]: it fixes the signer keys, the message and the
//! caller's session id, so a message can serve no other session. `attempt` is
//! fresh for each run of a session on a node, with fresh nonces: a signer that
//! restarts never reuses a nonce and is recognised as restarted, not as
//! equivocating. A partial signature names the nonces it was made under, so
//! it is only ever checked (and a signer only ever blamed) against the same
//! nonces.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use lotus_musig2::{KeyAggContext, PartialSignature, PubNonce, PublicKey};
use p2p_core::{Message, MessageType, Node, ProtocolName};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The handler name the session messages are routed to.
pub const PROTOCOL: &str = "musig2";
/// Message type of round 1.
pub const NONCE_TYPE: &str = "musig2-nonce";
/// Message type of round 2.
pub const PARTIAL_TYPE: &str = "musig2-partial";
/// Largest payload accepted (a 15-signer round 2 is about 2.3 KB).
pub const MAX_PAYLOAD: usize = 4096;
/// Domain separation of the session hash.
const SESSION_DOMAIN: &[u8] = b"lotus-p2p/musig2/session/v1";

/// What fixes a session: SHA-256 over a domain tag, the session id, the
/// message and the signer keys in key-aggregation order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHash(pub [u8; 32]);

impl SessionHash {
    /// The hash of a session.
    pub fn new(session_id: &str, message: &[u8; 32], keys: &KeyAggContext) -> Self {
        let id = session_id.as_bytes();
        let mut hash = Sha256::new()
            .chain_update(SESSION_DOMAIN)
            .chain_update(u16::try_from(id.len()).unwrap_or(u16::MAX).to_be_bytes())
            .chain_update(id)
            .chain_update(message);
        for key in keys.keys() {
            hash.update(key.as_bytes());
        }
        SessionHash(hash.finalize().into())
    }
}

impl fmt::Display for SessionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHash({self})")
    }
}

/// One run of a session on one node: 8 bytes of a count that only grows
/// (big-endian), then 8 random bytes. A signer's later run has the greater
/// attempt ([`new_attempt`]), so a co-signer can tell a late message of
/// an earlier run from a restart (see [`is_earlier`]).
pub type Attempt = [u8; 16];

/// The last count [`new_attempt`] used in this process.
static LAST_ATTEMPT: AtomicU64 = AtomicU64::new(0);

/// A fresh attempt, greater than any this process made before: its count
/// is the time in milliseconds since the Unix epoch, or one more than the
/// last count if the clock has not moved past it. (Across a restart the
/// count follows the clock: a clock set back by more than the restart
/// took makes a new run look earlier, and co-signers still holding the
/// old run's nonce ignore it until that session times out.)
pub fn new_attempt() -> Result<Attempt, getrandom::Error> {
    let now = p2p_protocol::now_ms();
    let previous = LAST_ATTEMPT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or_else(|last| last);
    let count = now.max(previous.saturating_add(1));
    let mut random = [0; 8];
    getrandom::fill(&mut random)?;
    let mut attempt: Attempt = [0; 16];
    for (slot, byte) in attempt
        .iter_mut()
        .zip(count.to_be_bytes().into_iter().chain(random))
    {
        *slot = byte;
    }
    Ok(attempt)
}

/// How far past our clock (in milliseconds) an attempt's count may be and
/// still order runs: clocks differ, but a count much further ahead is not a
/// time (older builds made attempts wholly random). A day.
const CLOCK_SLACK_MS: u64 = 24 * 3600 * 1000;

/// Whether `attempt` is an earlier run of its signer than `than`. Only
/// counts that can be times order runs: with `than` more than a day past
/// our clock (an older build's random attempt, or a clock far ahead)
/// nothing is earlier, and a restart is taken in arrival order.
pub fn is_earlier(attempt: &Attempt, than: &Attempt) -> bool {
    let limit = p2p_protocol::now_ms().saturating_add(CLOCK_SLACK_MS);
    count(attempt) < count(than) && count(than) <= limit
}

/// The count an attempt starts with.
fn count(attempt: &Attempt) -> u64 {
    attempt
        .first_chunk::<8>()
        .copied()
        .map_or(0, u64::from_be_bytes)
}

/// What a round message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Round 1: the signer's public nonce.
    Nonce(PubNonce),
    /// Round 2: the signer's partial signature, and the nonces (one per
    /// signer, in key order) it was made under.
    Partial {
        /// The nonces the signer aggregated.
        nonces: Vec<PubNonce>,
        /// Its partial signature.
        partial: PartialSignature,
    },
}

/// A decoded session message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundMessage {
    /// The session.
    pub session: SessionHash,
    /// The sender's run of it.
    pub attempt: Attempt,
    /// The key the sender signs for.
    pub signer: PublicKey,
    /// Round 1 or 2.
    pub body: Body,
}

/// Why a payload is not a session message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not of a session message type.
    #[error("not a musig2 session message type")]
    WrongType,
    /// Larger than [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes, more than {MAX_PAYLOAD}")]
    TooLarge(usize),
    /// Not the JSON of the message type.
    #[error("malformed payload")]
    Json(#[from] serde_json::Error),
    /// A field that does not decode.
    #[error("malformed field {0}")]
    Field(&'static str),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoncePayload {
    session: String,
    attempt: String,
    signer: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialPayload {
    session: String,
    attempt: String,
    signer: String,
    nonces: Vec<String>,
    partial: String,
}

fn fixed<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N], WireError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| WireError::Field(field))?;
    Ok(out)
}

fn nonce(text: &str, field: &'static str) -> Result<PubNonce, WireError> {
    let bytes: [u8; 66] = fixed(text, field)?;
    PubNonce::from_bytes(&bytes).map_err(|_| WireError::Field(field))
}

impl RoundMessage {
    /// The message type this body travels as.
    pub fn kind(&self) -> &'static str {
        match self.body {
            Body::Nonce(_) => NONCE_TYPE,
            Body::Partial { .. } => PARTIAL_TYPE,
        }
    }

    /// The JSON payload.
    pub fn payload(&self) -> Vec<u8> {
        let session = self.session.to_string();
        let attempt = hex::encode(self.attempt);
        let signer = self.signer.to_string();
        let encoded = match &self.body {
            Body::Nonce(nonce) => serde_json::to_vec(&NoncePayload {
                session,
                attempt,
                signer,
                nonce: hex::encode(nonce.to_bytes()),
            }),
            Body::Partial { nonces, partial } => serde_json::to_vec(&PartialPayload {
                session,
                attempt,
                signer,
                nonces: nonces.iter().map(|n| hex::encode(n.to_bytes())).collect(),
                partial: hex::encode(partial.to_bytes()),
            }),
        };
        // Serializing strings into a Vec cannot fail.
        encoded.unwrap_or_default()
    }

    /// The signed message carrying this one (no recipient: the same message
    /// goes to every signer, so it is evidence for all of them).
    pub fn sign(&self, node: &Node) -> Result<Message, p2p_protocol::SignError> {
        let kind: MessageType = constant_name(self.kind());
        let protocol: ProtocolName = constant_name(PROTOCOL);
        node.sign(
            node.message(kind)
                .protocol(protocol)
                .payload(self.payload()),
        )
    }

    /// Decodes a received message (its signature and sender were checked by
    /// the node's inbound pipeline).
    pub fn decode(message: &Message) -> Result<Self, WireError> {
        let len = message.payload.len();
        if len > MAX_PAYLOAD {
            return Err(WireError::TooLarge(len));
        }
        let header = |session: &str, attempt: &str, signer: &str| {
            Ok::<_, WireError>((
                SessionHash(fixed(session, "session")?),
                fixed(attempt, "attempt")?,
                signer
                    .parse::<PublicKey>()
                    .map_err(|_| WireError::Field("signer"))?,
            ))
        };
        match message.kind.as_str() {
            NONCE_TYPE => {
                let p: NoncePayload = serde_json::from_slice(&message.payload)?;
                let (session, attempt, signer) = header(&p.session, &p.attempt, &p.signer)?;
                Ok(RoundMessage {
                    session,
                    attempt,
                    signer,
                    body: Body::Nonce(nonce(&p.nonce, "nonce")?),
                })
            }
            PARTIAL_TYPE => {
                let p: PartialPayload = serde_json::from_slice(&message.payload)?;
                let (session, attempt, signer) = header(&p.session, &p.attempt, &p.signer)?;
                if p.nonces.len() > crate::MAX_SIGNERS {
                    return Err(WireError::Field("nonces"));
                }
                let nonces = p
                    .nonces
                    .iter()
                    .map(|n| nonce(n, "nonces"))
                    .collect::<Result<_, _>>()?;
                let partial = PartialSignature::from_bytes(&fixed(&p.partial, "partial")?)
                    .map_err(|_| WireError::Field("partial"))?;
                Ok(RoundMessage {
                    session,
                    attempt,
                    signer,
                    body: Body::Partial { nonces, partial },
                })
            }
            _ => Err(WireError::WrongType),
        }
    }
}

/// True when `evidence` proves nonce equivocation: both messages are validly
/// signed by one node ([`p2p_protocol::Evidence::verify`]) and are round-1
/// messages for the same session, attempt and signer key with different
/// nonces. (Two signed copies of one nonce, which the protocol's resends
/// are, prove nothing.)
pub fn proves_equivocation(evidence: &p2p_protocol::Evidence) -> bool {
    if evidence.verify().is_err() {
        return false;
    }
    match (
        RoundMessage::decode(&evidence.first),
        RoundMessage::decode(&evidence.second),
    ) {
        (Ok(a), Ok(b)) => match (&a.body, &b.body) {
            (Body::Nonce(x), Body::Nonce(y)) => {
                a.session == b.session && a.attempt == b.attempt && a.signer == b.signer && x != y
            }
            _ => false,
        },
        _ => false,
    }
}

/// One of this module's name constants, parsed (they are in the charset; a
/// unit test parses each).
pub(crate) fn constant_name<T: std::str::FromStr>(name: &str) -> T {
    match name.parse() {
        Ok(name) => name,
        Err(_) => unreachable!("{name} is a valid name"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_new_attempt_is_later_than_the_ones_before() {
        let mut last = new_attempt().unwrap();
        // Many within one millisecond: the count still grows.
        for _ in 0..1000 {
            let next = new_attempt().unwrap();
            assert!(is_earlier(&last, &next), "{last:?} then {next:?}");
            assert!(!is_earlier(&next, &last));
            last = next;
        }
        assert!(
            !is_earlier(&last, &last),
            "an attempt is not earlier than itself"
        );
        // An older build's attempt is random: its count is no time, and
        // orders nothing.
        assert!(!is_earlier(&last, &[0xee; 16]));
    }

    #[test]
    fn the_constant_names_are_valid() {
        for name in [PROTOCOL, NONCE_TYPE, PARTIAL_TYPE] {
            assert!(name.parse::<MessageType>().is_ok(), "{name}");
            assert!(name.parse::<ProtocolName>().is_ok(), "{name}");
        }
    }
}
