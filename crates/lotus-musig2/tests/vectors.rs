//! The checked-in vectors produced by running the Lotus SDK (npm `xpi-ts`
//! 0.3.1, `interop/xpi-ts/xpi.mjs vectors`): this crate must compute the same
//! aggregated keys, coefficients, signatures and session values.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{bytes, pub_nonce, public_key, secret_key, signature, vectors};
use lotus_musig2::{
    AggNonce, Error, KeyAggContext, PartialSignature, SessionContext, Signature, aggregate_nonces,
    sign, verify,
};

#[test]
fn vectors_cover_what_they_claim() {
    let v = vectors();
    assert!(v.source.contains("xpi-ts 0.3.1"));
    assert!(v.keyagg.len() >= 10);
    assert!(v.keyagg.iter().any(|k| k.keys.len() == 15));
    assert!(v.keyagg.iter().any(|k| k.keys.len() == 1));
    // The SDK's second-key rule fires in some vectors, not in others.
    let one = format!("{:064x}", 1);
    assert!(v.keyagg.iter().any(|k| k.coefficients.get(1) == Some(&one)));
    assert!(
        v.keyagg
            .iter()
            .any(|k| k.keys.len() > 1 && !k.coefficients.contains(&one))
    );
    // A session signs with the second-key coefficient 1.
    assert!(v.musig2.iter().any(|s| s.coefficients.get(1) == Some(&one)));
    // Both nonce branches occur in the sessions.
    assert!(v.musig2.iter().any(|s| s.nonce_negated));
    assert!(v.musig2.iter().any(|s| !s.nonce_negated));
    assert!(
        v.musig2
            .iter()
            .all(|s| s.verifies && s.slots.iter().all(|x| x.partial_valid))
    );
    assert!(v.schnorr.iter().all(|s| s.valid));
    assert!(v.schnorr_invalid.iter().all(|s| !s.valid));
}

#[test]
fn key_aggregation_matches_the_sdk() {
    for vector in vectors().keyagg {
        let keys = vector.keys.iter().map(|k| public_key(k));
        let ctx = KeyAggContext::new(keys).unwrap();
        assert_eq!(
            ctx.aggregated_key().to_string(),
            vector.aggregated_key,
            "{}",
            vector.name
        );
        let sorted: Vec<String> = ctx.keys().iter().map(ToString::to_string).collect();
        assert_eq!(sorted, vector.sorted_keys, "{}", vector.name);
        let coefficients: Vec<String> = (0..ctx.signer_count())
            .map(|i| hex::encode(ctx.coefficient(i).unwrap()))
            .collect();
        assert_eq!(coefficients, vector.coefficients, "{}", vector.name);
    }
}

#[test]
fn single_key_signatures_match_the_sdk() {
    for vector in vectors().schnorr {
        let key = secret_key(&vector.secret_key);
        assert_eq!(key.public_key().to_string(), vector.public_key);
        let message = bytes::<32>(&vector.message);
        let ours = sign(&key, &message);
        assert_eq!(
            ours.to_string(),
            vector.signature,
            "message {}",
            vector.message
        );
        assert_eq!(
            verify(key.public_key(), &message, &signature(&vector.signature)),
            Ok(())
        );
    }
}

#[test]
fn signatures_the_sdk_rejects_are_rejected() {
    for vector in vectors().schnorr_invalid {
        let key = public_key(&vector.public_key);
        let message = bytes::<32>(&vector.message);
        let outcome = Signature::from_bytes(&bytes(&vector.signature))
            .and_then(|sig| verify(&key, &message, &sig));
        let expected = if vector.name.starts_with("r = p") || vector.name.starts_with("s = n") {
            Error::InvalidSignatureEncoding
        } else {
            Error::InvalidSignature
        };
        assert_eq!(outcome, Err(expected), "{}", vector.name);
    }
}

#[test]
fn musig2_sessions_match_the_sdk() {
    for vector in vectors().musig2 {
        let name = &vector.name;
        let ctx = KeyAggContext::new(vector.keys.iter().map(|k| public_key(k))).unwrap();
        assert_eq!(
            ctx.aggregated_key().to_string(),
            vector.aggregated_key,
            "{name}"
        );
        let nonces: Vec<_> = vector
            .slots
            .iter()
            .map(|s| pub_nonce(&s.pub_nonce))
            .collect();
        let agg = aggregate_nonces(&nonces).unwrap();
        assert_eq!(hex::encode(agg.to_bytes()), vector.agg_nonce, "{name}");
        assert_eq!(AggNonce::from_bytes(&agg.to_bytes()).unwrap(), agg);
        let message = bytes::<32>(&vector.message);
        let session = SessionContext::new(&ctx, &agg, &message).unwrap();
        assert_eq!(session.nonces_negated(), vector.nonce_negated, "{name}");
        let partials: Vec<_> = vector
            .slots
            .iter()
            .map(|s| PartialSignature::from_bytes(&bytes(&s.partial_signature)).unwrap())
            .collect();
        for (i, slot) in vector.slots.iter().enumerate() {
            // The slot's key is the sorted key at that index.
            assert_eq!(secret_key(&slot.secret_key).public_key(), &ctx.keys()[i]);
            assert_eq!(
                session.verify_partial(i, &nonces[i], &partials[i]),
                Ok(()),
                "{name} slot {i}"
            );
        }
        let sig = session.aggregate_verified(&nonces, &partials).unwrap();
        assert_eq!(sig.to_string(), vector.signature, "{name}");
        assert_eq!(
            verify(ctx.aggregated_key(), &message, &sig),
            Ok(()),
            "{name}"
        );
    }
}
