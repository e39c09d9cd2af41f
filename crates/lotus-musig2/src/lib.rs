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
//! use lotus_musig2::{KeyAggContext, SecNonce, SecretKey, SessionContext, aggregate_nonces, verify};
//!
//! # fn main() -> Result<(), lotus_musig2::Error> {
//! let alice = SecretKey::generate()?;
//! let bob = SecretKey::generate()?;
//! let ctx = KeyAggContext::new([alice.public_key(), bob.public_key()])?;
//! let message = [7u8; 32];
//! // Round 1: every signer makes fresh nonces and sends the public half.
//! let (alice_sec, alice_pub) = SecNonce::generate(&alice, &ctx, Some(&message), b"")?;
//! let (bob_sec, bob_pub) = SecNonce::generate(&bob, &ctx, Some(&message), b"")?;
//! // Nonces and partial signatures are indexed by the signer's slot in ctx.keys().
//! let mut nonces = [alice_pub.clone(), bob_pub.clone()];
//! if ctx.position(bob.public_key()) == Some(0) { nonces.swap(0, 1); }
//! let session = SessionContext::new(&ctx, &aggregate_nonces(&nonces)?, &message)?;
//! // Round 2: partial signatures (each secret nonce is consumed).
//! let mut partials = [session.partial_sign(alice_sec, &alice)?, session.partial_sign(bob_sec, &bob)?];
//! if ctx.position(bob.public_key()) == Some(0) { partials.swap(0, 1); }
//! let signature = session.aggregate_verified(&nonces, &partials)?;
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
