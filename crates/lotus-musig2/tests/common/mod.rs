//! Shared scaffolding for the integration tests: the checked-in xpi-ts vectors
//! and hex helpers.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

pub mod xpi;

use lotus_musig2::{PubNonce, PublicKey, SecretKey, Signature};
use serde::Deserialize;

/// The vectors produced by `node interop/xpi-ts/xpi.mjs vectors`.
pub const VECTORS_JSON: &str = include_str!("../vectors/xpi-ts-0.3.1.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vectors {
    pub source: String,
    pub keyagg: Vec<KeyAggVector>,
    pub schnorr: Vec<SchnorrVector>,
    pub schnorr_invalid: Vec<InvalidSchnorrVector>,
    pub musig2: Vec<SessionVector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyAggVector {
    pub name: String,
    pub keys: Vec<String>,
    pub sorted_keys: Vec<String>,
    pub coefficients: Vec<String>,
    pub aggregated_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchnorrVector {
    pub secret_key: String,
    pub public_key: String,
    pub message: String,
    pub signature: String,
    pub valid: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidSchnorrVector {
    pub name: String,
    pub public_key: String,
    pub message: String,
    pub signature: String,
    pub valid: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionVector {
    pub name: String,
    pub keys: Vec<String>,
    pub sorted_keys: Vec<String>,
    pub coefficients: Vec<String>,
    pub aggregated_key: String,
    pub message: String,
    pub slots: Vec<SlotVector>,
    pub agg_nonce: String,
    pub nonce_negated: bool,
    pub signature: String,
    pub verifies: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotVector {
    pub secret_key: String,
    pub sec_nonce: [String; 2],
    pub pub_nonce: String,
    pub partial_signature: String,
    pub partial_valid: bool,
}

pub fn vectors() -> Vectors {
    serde_json::from_str(VECTORS_JSON).expect("the vectors parse")
}

pub fn bytes<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).unwrap_or_else(|e| panic!("{text}: {e}"));
    out
}

pub fn public_key(text: &str) -> PublicKey {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

pub fn secret_key(text: &str) -> SecretKey {
    SecretKey::from_bytes(&bytes(text)).unwrap()
}

pub fn signature(text: &str) -> Signature {
    Signature::from_hex(text).unwrap()
}

pub fn pub_nonce(text: &str) -> PubNonce {
    PubNonce::from_bytes(&hex::decode(text).unwrap()).unwrap()
}
