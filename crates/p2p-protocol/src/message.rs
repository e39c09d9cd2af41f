//! The message type, its builder and its id.

use std::fmt;

use bytes::Bytes;
use libp2p_identity::{Keypair, PeerId};
use p2p_types::{MessageType, ProtocolName};
use sha2::{Digest, Sha256};

use crate::canonical::{CanonicalSink, MESSAGE_DOMAIN};
use crate::sign::{self, SignError, Signable};

/// One application message, decoded and typed. The same value travels over the
/// native protobuf protocol and the TypeScript system's JSON protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Application message type.
    pub kind: MessageType,
    /// The sender. Inbound, it must equal the authenticated remote peer.
    pub from: PeerId,
    /// The intended recipient; `None` for broadcasts.
    pub to: Option<PeerId>,
    /// The handler the message is routed to; `None` for plain message events.
    pub protocol: Option<ProtocolName>,
    /// Opaque payload (JSON text when it came from, or goes to, a TypeScript node).
    pub payload: Bytes,
    /// Creation time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Sender-chosen unique bytes (the TypeScript system's `messageId`).
    pub nonce: Bytes,
    /// The sender's sequence number for this protocol, if it numbers its
    /// messages (see [`crate::sequence`]). Signed when present.
    pub sequence: Option<u64>,
    /// Signature over [`Message::signing_bytes`], if signed.
    pub signature: Option<Bytes>,
    /// The sender's protobuf-encoded public key, carried only when the PeerId
    /// does not embed it.
    pub public_key: Option<Bytes>,
}

/// The id of a message: SHA-256 over its canonical signing bytes, so it covers
/// every signed field (type, sender, recipient, protocol, payload, timestamp and
/// nonce). Two messages that differ in anything a signature covers have different
/// ids, so nobody can pre-empt a real message with a look-alike to get it
/// suppressed as a duplicate. The signature itself is not covered: re-signing the
/// same content does not make a new message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl Message {
    fn write_canonical(&self, sink: &mut impl CanonicalSink) {
        sink.put(MESSAGE_DOMAIN);
        sink.field(self.kind.as_str().as_bytes());
        sink.peer(&self.from);
        match &self.to {
            Some(to) => sink.peer(to),
            None => sink.field(&[]),
        }
        sink.field(
            self.protocol
                .as_ref()
                .map_or(&b""[..], |p| p.as_str().as_bytes()),
        );
        sink.field(&self.payload);
        sink.int(self.timestamp_ms);
        sink.field(&self.nonce);
        // Appended only when present, so unnumbered messages keep the bytes
        // (and signatures) they always had; the nonce before it is
        // length-prefixed, so the two forms cannot be confused.
        if let Some(sequence) = self.sequence {
            sink.int(sequence);
        }
    }

    /// The message id (hashes the canonical bytes without allocating them).
    pub fn id(&self) -> MessageId {
        let mut hasher = Sha256::new();
        self.write_canonical(&mut hasher);
        MessageId(hasher.finalize().into())
    }

    /// The id computed from signing bytes the caller already built.
    pub fn id_from_signing_bytes(signing_bytes: &[u8]) -> MessageId {
        MessageId(Sha256::digest(signing_bytes).into())
    }

    /// True when the message carries a signature (not yet verified).
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }
}

impl Signable for Message {
    fn signer(&self) -> &PeerId {
        &self.from
    }

    fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            MESSAGE_DOMAIN.len() + 7 * 4 + 8 + 2 * 40 + 128 + self.payload.len() + self.nonce.len(),
        );
        self.write_canonical(&mut out);
        out
    }

    fn signature(&self) -> Option<&[u8]> {
        self.signature.as_deref()
    }

    fn public_key(&self) -> Option<&[u8]> {
        self.public_key.as_deref()
    }

    fn set_signature(&mut self, signature: Vec<u8>, public_key: Option<Vec<u8>>) {
        self.signature = Some(signature.into());
        self.public_key = public_key.map(Bytes::from);
    }
}

/// A fresh nonce in the TypeScript system's message id format:
/// `<ms since epoch in base 36>-<8 random bytes as 16 lowercase hex chars>`.
pub fn new_nonce(now_ms: u64) -> Bytes {
    let mut base36 = Vec::with_capacity(13);
    let mut n = now_ms;
    loop {
        // `n % 36` is always a valid base-36 digit.
        base36.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    let mut out: String = base36.iter().rev().collect();
    out.push('-');
    out.push_str(&hex::encode(rand::random::<[u8; 8]>()));
    Bytes::from(out)
}

/// Builds a [`Message`], filling the timestamp and nonce unless given.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    kind: MessageType,
    from: PeerId,
    to: Option<PeerId>,
    protocol: Option<ProtocolName>,
    payload: Bytes,
    timestamp_ms: Option<u64>,
    nonce: Option<Bytes>,
    sequence: Option<u64>,
}

impl MessageBuilder {
    /// A message of `kind` from `from`, with an empty payload.
    pub fn new(kind: MessageType, from: PeerId) -> Self {
        Self {
            kind,
            from,
            to: None,
            protocol: None,
            payload: Bytes::new(),
            timestamp_ms: None,
            nonce: None,
            sequence: None,
        }
    }

    /// Addresses the message to one peer.
    pub fn to(mut self, peer: PeerId) -> Self {
        self.to = Some(peer);
        self
    }

    /// Routes the message to a protocol handler.
    pub fn protocol(mut self, protocol: ProtocolName) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Sets the payload.
    pub fn payload(mut self, payload: impl Into<Bytes>) -> Self {
        self.payload = payload.into();
        self
    }

    /// Sets the timestamp instead of reading the clock.
    pub fn timestamp_ms(mut self, timestamp_ms: u64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Sets the nonce instead of drawing a random one.
    pub fn nonce(mut self, nonce: impl Into<Bytes>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Numbers the message: receivers accept each number once per (sender,
    /// protocol), in any order within a window of
    /// [`crate::sequence::WINDOW`] (see [`crate::sequence`]). Numbers start
    /// at 1: 0 is the wire's "none" and leaves the message unnumbered.
    pub fn sequence(mut self, sequence: u64) -> Self {
        self.sequence = (sequence != 0).then_some(sequence);
        self
    }

    /// The unsigned message.
    pub fn build(self) -> Message {
        let timestamp_ms = self.timestamp_ms.unwrap_or_else(crate::now_ms);
        Message {
            kind: self.kind,
            from: self.from,
            to: self.to,
            protocol: self.protocol,
            payload: self.payload,
            timestamp_ms,
            nonce: self.nonce.unwrap_or_else(|| new_nonce(timestamp_ms)),
            sequence: self.sequence,
            signature: None,
            public_key: None,
        }
    }

    /// The message signed by `key`, which must be the sender's.
    pub fn sign(self, key: &Keypair) -> Result<Message, SignError> {
        let mut message = self.build();
        sign::sign(&mut message, key)?;
        Ok(message)
    }
}
