//! Behaviour of the public API: full sessions, the errors a caller relies on,
//! and property tests over 2–15 signers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use lotus_musig2::{
    AggNonce, Error, KeyAggContext, PartialSignature, PubNonce, SecNonce, SecretKey,
    SessionContext, Signature, aggregate_nonces, sign, verify,
};
use proptest::prelude::*;

/// Secret keys from seeds (SHA-256-like spread is not needed: any 1..n works).
fn key(seed: u8) -> SecretKey {
    let mut bytes = [seed; 32];
    bytes[0] = 0x01;
    SecretKey::from_bytes(&bytes).unwrap()
}

/// Signers sorted into slot order, with their nonces, for one session.
struct Run {
    signers: Vec<SecretKey>,
    ctx: KeyAggContext,
    message: [u8; 32],
    pub_nonces: Vec<PubNonce>,
    session: SessionContext,
    partials: Vec<PartialSignature>,
}

fn run(mut signers: Vec<SecretKey>, message: [u8; 32], rand_seed: u64) -> Run {
    let ctx = KeyAggContext::new(signers.iter().map(SecretKey::public_key)).unwrap();
    signers.sort_by_key(|s| *s.public_key());
    let round1: Vec<(SecNonce, PubNonce)> = signers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut rand = [0u8; 32];
            rand[..8].copy_from_slice(&rand_seed.to_be_bytes());
            rand[8..16].copy_from_slice(&(i as u64).to_be_bytes());
            SecNonce::generate_with_rand(&rand, s, &ctx, Some(&message), b"test").unwrap()
        })
        .collect();
    let pub_nonces: Vec<PubNonce> = round1.iter().map(|(_, p)| *p).collect();
    let session =
        SessionContext::new(&ctx, &aggregate_nonces(&pub_nonces).unwrap(), &message).unwrap();
    let partials = signers
        .iter()
        .zip(round1)
        .map(|(s, (sec, _))| session.partial_sign(sec, s).unwrap())
        .collect();
    Run {
        signers,
        ctx,
        message,
        pub_nonces,
        session,
        partials,
    }
}

#[test]
fn three_signers_with_os_randomness() {
    let mut signers = [key(1), key(2), key(3)];
    let ctx = KeyAggContext::new(signers.iter().map(SecretKey::public_key)).unwrap();
    signers.sort_by_key(|s| *s.public_key());
    let message = [0x42; 32];
    let round1: Vec<_> = signers
        .iter()
        .map(|s| SecNonce::generate(s, &ctx, None, b"").unwrap())
        .collect();
    let nonces: Vec<_> = round1.iter().map(|(_, p)| *p).collect();
    // Fresh randomness: no two nonces alike, and a second call differs.
    let (_, again) = SecNonce::generate(&signers[0], &ctx, None, b"").unwrap();
    assert_ne!(again, nonces[0]);
    let session = SessionContext::new(&ctx, &aggregate_nonces(&nonces).unwrap(), &message).unwrap();
    let partials: Vec<_> = signers
        .iter()
        .zip(round1)
        .map(|(s, (sec, _))| session.partial_sign(sec, s).unwrap())
        .collect();
    let sig = session.aggregate_verified(&nonces, &partials).unwrap();
    assert_eq!(verify(ctx.aggregated_key(), &message, &sig), Ok(()));
    assert_eq!(Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
}

#[test]
fn sec_nonce_is_redacted_and_tied_to_its_key() {
    let run = run(vec![key(1), key(2)], [1; 32], 7);
    let (sec, _) = SecNonce::generate(&run.signers[0], &run.ctx, None, b"").unwrap();
    let debug = format!("{sec:?}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert_eq!(
        run.session.partial_sign(sec, &run.signers[1]).unwrap_err(),
        Error::SecNonceKeyMismatch
    );
}

#[test]
fn outsider_cannot_partial_sign() {
    let run = run(vec![key(1), key(2)], [1; 32], 7);
    let outsider = key(9);
    let (sec, _) = SecNonce::generate(&outsider, &run.ctx, None, b"").unwrap();
    assert_eq!(
        run.session.partial_sign(sec, &outsider).unwrap_err(),
        Error::SignerNotInKeySet(Box::new(*outsider.public_key()))
    );
}

#[test]
fn wrong_counts_and_indices_are_typed_errors() {
    let run = run(vec![key(1), key(2), key(3)], [2; 32], 1);
    assert_eq!(
        run.session.aggregate(&run.partials[..2]).unwrap_err(),
        Error::WrongNumberOfSigners {
            expected: 3,
            got: 2
        }
    );
    assert_eq!(
        run.session
            .aggregate_verified(&run.pub_nonces[..1], &run.partials)
            .unwrap_err(),
        Error::WrongNumberOfSigners {
            expected: 3,
            got: 1
        }
    );
    assert_eq!(
        run.session
            .verify_partial(3, &run.pub_nonces[0], &run.partials[0])
            .unwrap_err(),
        Error::SignerIndexOutOfRange {
            index: 3,
            signers: 3
        }
    );
    assert_eq!(
        KeyAggContext::new(Vec::<lotus_musig2::PublicKey>::new()).unwrap_err(),
        Error::NoPublicKeys
    );
    assert_eq!(aggregate_nonces(&[]).unwrap_err(), Error::NoPubNonces);
}

#[test]
fn several_bad_partials_are_all_blamed() {
    let mut run = run(vec![key(1), key(2), key(3), key(4)], [3; 32], 2);
    run.partials.swap(0, 2);
    assert_eq!(
        run.session
            .aggregate_verified(&run.pub_nonces, &run.partials)
            .unwrap_err(),
        Error::InvalidPartialSignatures {
            signer_indices: vec![0, 2]
        }
    );
    // A nonce sent by the wrong signer is caught the same way.
    let mut run2 = self::run(vec![key(1), key(2)], [3; 32], 2);
    run2.pub_nonces.swap(0, 1);
    assert_eq!(
        run2.session
            .verify_partial(1, &run2.pub_nonces[1], &run2.partials[1])
            .unwrap_err(),
        Error::InvalidPartialSignature {
            signer_index: 1,
            public_key: Box::new(run2.ctx.keys()[1])
        }
    );
}

#[test]
fn cancelling_nonces_and_zero_signatures_are_refused() {
    let run = run(vec![key(1), key(2)], [4; 32], 3);
    // A second "signer" whose nonce is the negation of the first: both halves cancel.
    let mut negated = run.pub_nonces[0].to_bytes();
    negated[0] ^= 1; // 02 <-> 03 negates a compressed point
    negated[33] ^= 1;
    let negated = PubNonce::from_bytes(&negated).unwrap();
    assert_eq!(
        aggregate_nonces(&[run.pub_nonces[0], negated]).unwrap_err(),
        Error::AggregateNonceAtInfinity
    );
    assert_eq!(
        AggNonce::from_bytes(&[0u8; 66]).unwrap_err(),
        Error::InvalidPubNonce
    );
    assert_eq!(
        PubNonce::from_bytes(&[2u8; 65]).unwrap_err(),
        Error::InvalidPubNonce
    );
    // Partial signatures summing to zero.
    let s = run.partials[0].to_bytes();
    let n =
        hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141").unwrap();
    let mut minus = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(n[i]) - i16::from(s[i]) - borrow;
        minus[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    let minus = PartialSignature::from_bytes(&minus).unwrap();
    assert_eq!(
        run.session
            .aggregate(&[run.partials[0], minus])
            .unwrap_err(),
        Error::ZeroSignature
    );
    assert_eq!(
        PartialSignature::from_bytes(&n.try_into().unwrap()).unwrap_err(),
        Error::InvalidPartialSignatureEncoding
    );
}

#[test]
fn duplicate_key_signs_once_per_slot() {
    let run = run(vec![key(5), key(6), key(5)], [5; 32], 4);
    assert_eq!(run.ctx.signer_count(), 3);
    let sig = run
        .session
        .aggregate_verified(&run.pub_nonces, &run.partials)
        .unwrap();
    assert_eq!(verify(run.ctx.aggregated_key(), &run.message, &sig), Ok(()));
}

#[test]
fn single_key_signature_is_not_valid_under_another_key() {
    let message = [9; 32];
    let sig = sign(&key(1), &message);
    assert_eq!(
        verify(key(2).public_key(), &message, &sig),
        Err(Error::InvalidSignature)
    );
}

fn secret_keys(min: usize, max: usize) -> impl Strategy<Value = Vec<SecretKey>> {
    prop::collection::vec(any::<[u8; 32]>(), min..=max).prop_map(|seeds| {
        seeds
            .into_iter()
            .map(|mut bytes| {
                // Keep every seed in 1..n (the top byte below 0xff does it).
                bytes[0] &= 0x7f;
                bytes[31] |= 1;
                SecretKey::from_bytes(&bytes).unwrap()
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any 2–15 signers, any message: the aggregate verifies with single-key
    /// verification under the aggregated key.
    #[test]
    fn aggregate_verifies(signers in secret_keys(2, 15), message in any::<[u8; 32]>(), seed in any::<u64>()) {
        let run = run(signers, message, seed);
        let sig = run.session.aggregate_verified(&run.pub_nonces, &run.partials).unwrap();
        prop_assert_eq!(verify(run.ctx.aggregated_key(), &message, &sig), Ok(()));
        // Key order does not matter.
        let reversed = KeyAggContext::new(run.signers.iter().rev().map(SecretKey::public_key)).unwrap();
        prop_assert_eq!(reversed.aggregated_key(), run.ctx.aggregated_key());
    }

    /// Any changed partial signature is caught and blamed on its signer.
    #[test]
    fn changed_partial_is_attributed(
        signers in secret_keys(2, 15),
        message in any::<[u8; 32]>(),
        seed in any::<u64>(),
        victim in any::<prop::sample::Index>(),
        delta in 1u8..=255,
        byte in 0usize..32,
    ) {
        let mut run = run(signers, message, seed);
        let index = victim.index(run.partials.len());
        let mut bytes = run.partials[index].to_bytes();
        bytes[byte] = bytes[byte].wrapping_add(delta);
        // Changes that leave the range of scalars are refused at parsing.
        let Ok(changed) = PartialSignature::from_bytes(&bytes) else {
            return Ok(());
        };
        run.partials[index] = changed;
        let expected = Error::InvalidPartialSignature {
            signer_index: index,
            public_key: Box::new(run.ctx.keys()[index]),
        };
        prop_assert_eq!(run.session.verify_partial(index, &run.pub_nonces[index], &changed), Err(expected.clone()));
        prop_assert_eq!(run.session.aggregate_verified(&run.pub_nonces, &run.partials), Err(expected));
        // Unchecked aggregation gives a signature that does not verify.
        let sig = run.session.aggregate(&run.partials).unwrap();
        prop_assert_eq!(verify(run.ctx.aggregated_key(), &message, &sig), Err(Error::InvalidSignature));
    }

    /// A tampered signature or message fails verification (single key and aggregate).
    #[test]
    fn tampering_fails(
        signers in secret_keys(1, 4),
        message in any::<[u8; 32]>(),
        bit in 0usize..512,
        message_bit in 0usize..256,
    ) {
        let single = sign(&signers[0], &message);
        prop_assert_eq!(verify(signers[0].public_key(), &message, &single), Ok(()));
        let aggregate = if signers.len() > 1 {
            let run = run(signers.iter().map(|s| SecretKey::from_bytes(&s.to_bytes()).unwrap()).collect(), message, 0);
            Some((run.ctx.aggregated_key().to_owned(), run.session.aggregate(&run.partials).unwrap()))
        } else {
            None
        };
        let mut cases = vec![(*signers[0].public_key(), single)];
        cases.extend(aggregate);
        for (key, sig) in cases {
            let mut bytes = sig.to_bytes();
            bytes[bit / 8] ^= 1 << (bit % 8);
            match Signature::from_bytes(&bytes) {
                Ok(tampered) => prop_assert_eq!(verify(&key, &message, &tampered), Err(Error::InvalidSignature)),
                Err(e) => prop_assert_eq!(e, Error::InvalidSignatureEncoding),
            }
            let mut other = message;
            other[message_bit / 8] ^= 1 << (message_bit % 8);
            prop_assert_eq!(verify(&key, &other, &sig), Err(Error::InvalidSignature));
        }
    }
}
