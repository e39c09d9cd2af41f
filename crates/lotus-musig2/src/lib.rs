//! Lotus Schnorr signatures and the Lotus SDK's MuSig2, sans I/O.
//!
//! Lotus signs with a BCH-style Schnorr scheme, **not** BIP-340: a signature is
//! 64 bytes `r ‖ s`, the challenge is `e = SHA256(R.x ‖ compressed(P) ‖ m) mod n`
//! over the 33-byte compressed key, and a valid `R = s·G − e·P` has `R.x = r`
//! and a `y` that is a quadratic residue. Its SDK (`lotus-sdk`, published on npm
//! as `xpi-ts`) adapts MuSig2 (BIP-327) to that scheme; this crate computes
//! exactly what the SDK computes, so an aggregated key or signature made here is
//! the one the SDK (and a Lotus node) expects. The differences from BIP-327 are
//! listed on [`KeyAggContext`] and [`SessionContext`].
//!
//! The crate does no I/O: exchanging nonces and partial signatures is the
//! caller's job (the session protocol lives in another crate).
//!
//! ```
//! use lotus_musig2::{KeyAggContext, PubNonce, SecNonce, SecretKey, SessionContext, aggregate_nonces, verify};
//!
//! # fn main() -> Result<(), lotus_musig2::Error> {
//! let mut signers = [SecretKey::generate()?, SecretKey::generate()?, SecretKey::generate()?];
//! let ctx = KeyAggContext::new(signers.iter().map(SecretKey::public_key))?;
//! // Nonces and partial signatures go by slot: ctx.keys() is the keys sorted.
//! signers.sort_by_key(|s| *s.public_key());
//! let message = [7u8; 32];
//! // Round 1: each signer makes fresh nonces and sends the public half.
//! let round1 = signers
//!     .iter()
//!     .map(|s| SecNonce::generate(s, &ctx, Some(&message), b"session id"))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let pub_nonces: Vec<PubNonce> = round1.iter().map(|(_, public)| *public).collect();
//! let session = SessionContext::new(&ctx, &aggregate_nonces(&pub_nonces)?, &message)?;
//! // Round 2: partial signatures; each secret nonce is consumed.
//! let partials = signers
//!     .iter()
//!     .zip(round1)
//!     .map(|(s, (sec_nonce, _))| session.partial_sign(sec_nonce, s))
//!     .collect::<Result<Vec<_>, _>>()?;
//! // A bad partial signature would be blamed on its signer here.
//! let signature = session.aggregate_verified(&pub_nonces, &partials)?;
//! verify(ctx.aggregated_key(), &message, &signature)?;
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod curve;
mod error;
mod hash;
mod keyagg;
mod keys;
mod nonce;
mod schnorr;
mod session;

pub use error::Error;
pub use keyagg::KeyAggContext;
pub use keys::{PublicKey, SecretKey};
pub use nonce::{AggNonce, PubNonce, SecNonce, aggregate_nonces};
pub use schnorr::{Signature, sign, verify};
pub use session::{PartialSignature, SessionContext};

/// Compiles and runs the README's example.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
