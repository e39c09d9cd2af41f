//! MuSig2 signing sessions over lotus-p2p, producing Lotus Schnorr signatures.
//!
//! - **Signer adverts** ([`advert`]): a node publishes, as a resource record
//!   signed by its identity, that it signs with a key, with a proof signed by
//!   that key; signers find each other's nodes from the keys alone.
//! - **Sessions** ([`Musig2::sign`]): fixed by the signer keys, the 32-byte
//!   message and a session id ([`SessionHash`]). Round 1 exchanges public
//!   nonces, round 2 partial signatures, each as a signed native message
//!   bound to the session and round ([`wire`]); every signer ends with the
//!   same signature, checked under the aggregated key, which is the Lotus
//!   SDK's `musigKeyAgg` (see `lotus-musig2`).
//! - **Failures are explicit** ([`SessionError`]): a missing signer is named
//!   after the timeout, an invalid partial signature names its signer with
//!   both its signed messages as evidence, two signed nonces from one signer
//!   for one attempt are equivocation evidence, and messages for a finished
//!   session are refused ([`Rejection`]).
//! - **A nonce is used once.** Secret nonces live only in the session run
//!   that made them, are consumed by signing and zeroized; nothing about them
//!   is persisted, so a restarted node runs the session again with fresh
//!   nonces under a new attempt id. Attempt ids grow ([`wire::new_attempt`]),
//!   so a co-signer keeps a signer's later run when a send of its earlier
//!   run arrives late.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod advert;
mod error;
mod service;
mod session;
pub mod signer_key;
pub mod wire;

pub use advert::SignerAdvert;
pub use error::{Blame, BlameReason, PartialEvidence, Rejection, Round, SessionError};
pub use lotus_musig2;
pub use service::{Musig2, Musig2Config, Signed};
pub use wire::SessionHash;

/// The most signers in one session (the original system's limit).
pub const MAX_SIGNERS: usize = 15;

/// Compiles the README's example.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
