//! Cross-check against the Lotus SDK itself (npm `xpi-ts` 0.3.1, installed
//! from `interop/xpi-ts` with `npm ci` under the target directory): the SDK
//! verifies what this crate produces, and this crate verifies what the SDK
//! produces, for random keys and messages. Needs Node.js >= 20 and npm.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{bytes, public_key, signature, xpi};
use lotus_musig2::{
    Error, KeyAggContext, PubNonce, PublicKey, SecNonce, SecretKey, SessionContext,
    aggregate_nonces, sign, verify,
};
use serde_json::{Value, json};

fn random_message() -> [u8; 32] {
    let key = SecretKey::generate().unwrap();
    *key.to_bytes()
}

/// A full session in this crate; returns (aggregated key, signature).
fn rust_session(signers: &[SecretKey], message: &[u8; 32]) -> (PublicKey, String) {
    let ctx = KeyAggContext::new(signers.iter().map(SecretKey::public_key)).unwrap();
    let mut slots: Vec<&SecretKey> = signers.iter().collect();
    slots.sort_by_key(|s| *s.public_key());
    let round1: Vec<_> = slots
        .iter()
        .map(|s| SecNonce::generate(s, &ctx, Some(message), b"interop").unwrap())
        .collect();
    let nonces: Vec<PubNonce> = round1.iter().map(|(_, p)| *p).collect();
    let session = SessionContext::new(&ctx, &aggregate_nonces(&nonces).unwrap(), message).unwrap();
    let partials: Vec<_> = slots
        .iter()
        .zip(round1)
        .map(|(s, (sec, _))| session.partial_sign(sec, s).unwrap())
        .collect();
    let sig = session.aggregate_verified(&nonces, &partials).unwrap();
    (*ctx.aggregated_key(), sig.to_string())
}

#[test]
fn xpi_ts_and_this_crate_agree_both_ways() {
    // Key sets of 1..=15 random keys, plus duplicates and the equal-first-two case.
    let mut key_sets: Vec<Vec<SecretKey>> = (1..=15)
        .map(|n| (0..n).map(|_| SecretKey::generate().unwrap()).collect())
        .collect();
    let dup = |set: &[SecretKey], i: usize| SecretKey::from_bytes(&set[i].to_bytes()).unwrap();
    let mut with_dups: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate().unwrap()).collect();
    let smallest = (0..4).min_by_key(|&i| *with_dups[i].public_key()).unwrap();
    with_dups.push(dup(&with_dups, smallest)); // the two smallest slots are equal
    with_dups.push(dup(&with_dups, (smallest + 1) % 4));
    key_sets.push(with_dups);

    let keyagg: Vec<Vec<String>> = key_sets
        .iter()
        .map(|set| set.iter().map(|k| k.public_key().to_string()).collect())
        .collect();
    let ours_keyagg: Vec<String> = key_sets
        .iter()
        .map(|set| {
            KeyAggContext::new(set.iter().map(SecretKey::public_key))
                .unwrap()
                .aggregated_key()
                .to_string()
        })
        .collect();

    // Single-key signatures made here, each also tampered (the SDK must refuse those).
    let singles: Vec<(SecretKey, [u8; 32])> = (0..8)
        .map(|_| (SecretKey::generate().unwrap(), random_message()))
        .collect();
    let mut verify_requests = Vec::new();
    let mut expected_verdicts = Vec::new();
    for (key, message) in &singles {
        let sig = sign(key, message).to_bytes();
        let mut tampered = sig;
        tampered[63] ^= 1;
        for (s, valid) in [(sig, true), (tampered, false)] {
            verify_requests.push(json!({
                "publicKey": key.public_key().to_string(),
                "message": hex::encode(message),
                "signature": hex::encode(s),
            }));
            expected_verdicts.push(valid);
        }
    }
    // Aggregate signatures made here, over 2, 3, 5, 15 signers and the duplicate set.
    let session_sets: Vec<&Vec<SecretKey>> = [1usize, 2, 4, 14, 15]
        .iter()
        .map(|&i| &key_sets[i])
        .collect();
    for set in &session_sets {
        let message = random_message();
        let (aggregated, sig) = rust_session(set, &message);
        verify_requests.push(json!({
            "publicKey": aggregated.to_string(),
            "message": hex::encode(message),
            "signature": sig,
        }));
        expected_verdicts.push(true);
    }

    // Signatures for the SDK to make: single-key and whole sessions.
    let sign_requests: Vec<Value> = singles
        .iter()
        .map(|(key, message)| json!({"secretKey": hex::encode(*key.to_bytes()), "message": hex::encode(message)}))
        .collect();
    let musig_requests: Vec<(Vec<String>, [u8; 32])> = session_sets
        .iter()
        .map(|set| {
            (
                set.iter().map(|k| hex::encode(*k.to_bytes())).collect(),
                random_message(),
            )
        })
        .collect();

    let answer = xpi::check(&json!({
        "keyagg": keyagg,
        "verify": verify_requests,
        "sign": sign_requests,
        "musig2": musig_requests
            .iter()
            .map(|(keys, m)| json!({"secretKeys": keys, "message": hex::encode(m)}))
            .collect::<Vec<_>>(),
    }));

    // (a) the SDK agrees with what this crate computed.
    let theirs_keyagg: Vec<String> = serde_json::from_value(answer["keyagg"].clone()).unwrap();
    for (i, (ours, theirs)) in ours_keyagg.iter().zip(&theirs_keyagg).enumerate() {
        assert_eq!(ours, theirs, "aggregated key of {:?}", keyagg[i]);
    }
    assert_eq!(theirs_keyagg.len(), ours_keyagg.len());
    let verdicts: Vec<bool> = serde_json::from_value(answer["verify"].clone()).unwrap();
    assert_eq!(
        verdicts, expected_verdicts,
        "requests: {verify_requests:#?}"
    );

    // (b) this crate verifies what the SDK made (and signs identically).
    let their_sigs: Vec<String> = serde_json::from_value(answer["sign"].clone()).unwrap();
    assert_eq!(their_sigs.len(), singles.len());
    for ((key, message), theirs) in singles.iter().zip(&their_sigs) {
        assert_eq!(
            verify(key.public_key(), message, &signature(theirs)),
            Ok(())
        );
        assert_eq!(&sign(key, message).to_string(), theirs);
        let mut other = *message;
        other[0] ^= 0x80;
        assert_eq!(
            verify(key.public_key(), &other, &signature(theirs)),
            Err(Error::InvalidSignature)
        );
    }
    let sessions = answer["musig2"].as_array().unwrap();
    assert_eq!(sessions.len(), musig_requests.len());
    for ((keys, message), session) in musig_requests.iter().zip(sessions) {
        let ctx = KeyAggContext::new(
            keys.iter()
                .map(|k| *SecretKey::from_bytes(&bytes(k)).unwrap().public_key()),
        )
        .unwrap();
        let aggregated = public_key(session["aggregatedKey"].as_str().unwrap());
        assert_eq!(ctx.aggregated_key(), &aggregated);
        assert_eq!(session["verifies"], json!(true));
        let sig = signature(session["signature"].as_str().unwrap());
        assert_eq!(
            verify(&aggregated, message, &sig),
            Ok(()),
            "{} signers",
            keys.len()
        );
    }
}
