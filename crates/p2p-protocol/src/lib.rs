//! The lotus-p2p message protocol, sans-I/O.
//!
//! Bytes in, typed values or a precise error out; no sockets, no tasks, no
//! clocks inside the checks (time is passed in). A wallet can depend on this crate
//! alone to build, sign, encode, decode and verify coordination messages.
//!
//! ```
//! use bytes::BytesMut;
//! use libp2p_identity::Keypair;
//! use p2p_protocol::{Codec, FrameDecoder, Inbound, InboundPolicy, MessageBuilder, ProtobufCodec};
//!
//! let key = Keypair::generate_ed25519();
//! let msg = MessageBuilder::new("chat".parse()?, key.public().to_peer_id())
//!     .payload(&b"{\"text\":\"hi\"}"[..])
//!     .sign(&key)?;
//!
//! // Sender: encode and frame.
//! let mut wire = BytesMut::new();
//! p2p_protocol::encode_message_frame(&ProtobufCodec, &msg, &mut wire)?;
//!
//! // Receiver: unframe and run the inbound checks.
//! let body = FrameDecoder::default().decode(&mut wire)?.expect("one whole frame");
//! let mut inbound = Inbound::new(InboundPolicy::default());
//! let accepted = inbound.accept(&ProtobufCodec, body, &key.public().to_peer_id(), msg.timestamp_ms)?;
//! assert_eq!(accepted.message, msg);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod canonical;
pub mod codec;
mod equivocation;
mod framing;
mod message;
mod pipeline;
mod record;
mod replay;
pub mod sequence;
mod sign;
mod validate;

/// Types generated from `proto/lotus/p2p/v1` by `cargo xtask codegen`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    include!("generated/lotus.p2p.v1.rs");
}

pub use canonical::{MESSAGE_DOMAIN, RECORD_DOMAIN};
pub use codec::{Codec, CodecError, DecodeError, JsonCodec, ProtobufCodec};
pub use equivocation::{EquivocationGuard, Evidence, EvidenceError, Observation, Slot, Unsigned};
pub use framing::{FrameDecoder, FrameError, MAX_VARINT_LEN, encode_frame, encode_message_frame};
pub use message::{Message, MessageBuilder, MessageId, new_nonce};
pub use p2p_types::ProtocolLimits;
pub use pipeline::{Accepted, Checker, Inbound, InboundError, InboundPolicy};
pub use record::{RecordError, ResourceRecord};
pub use replay::{ReplayError, ReplayGuard};
pub use sequence::{SequenceError, SequenceWindows};
pub use sign::{SignError, Signable, VerifyError, sign, verify};
pub use validate::{ValidationError, validate_message, validate_record};

/// Milliseconds since the Unix epoch, from the system clock. The checks in this
/// crate take time as an argument; this is for callers that build messages.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
