//! MuSig2 and Lotus Schnorr costs on k256, next to k256's raw scalar
//! multiplications measured in the same run (figures go to BENCHMARKS.md):
//!
//! - `partial_sign_15`: one partial signature in a 15-signer session (one
//!   constant-time scalar expression, no point multiplication);
//! - `partial_verify_15`: one partial-signature check (`s·G − e·a·P` against
//!   `R1 + b·R2`, variable time: public data);
//! - `session_context_15`: fixing a session (nonce coefficient, `R`, residue check);
//! - `aggregate_15` / `aggregate_verified_15`: the final signature from 15
//!   partials, unchecked / checking all 15;
//! - `key_agg_15`: aggregating 15 keys;
//! - `schnorr_sign` / `schnorr_verify`: single-key Lotus Schnorr;
//! - `k256_mul` / `k256_mul_by_generator`: constant-time `k·P` and `k·G`.
//!
//! Quick (smoke) run: `cargo bench -p lotus-musig2 --bench musig2 -- --test`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use k256::{ProjectivePoint, Scalar};
use lotus_musig2::{
    KeyAggContext, PartialSignature, PubNonce, SecNonce, SecretKey, SessionContext,
    aggregate_nonces, sign, verify,
};

const SIGNERS: usize = 15;

fn signers() -> Vec<SecretKey> {
    let mut keys: Vec<SecretKey> = (0..SIGNERS)
        .map(|_| SecretKey::generate().unwrap())
        .collect();
    keys.sort_by_key(|k| *k.public_key());
    keys
}

fn bench(c: &mut Criterion) {
    let keys = signers();
    let ctx = KeyAggContext::new(keys.iter().map(SecretKey::public_key)).unwrap();
    let message = [0x5a; 32];
    let round1: Vec<(SecNonce, PubNonce)> = keys
        .iter()
        .map(|k| SecNonce::generate(k, &ctx, Some(&message), b"bench").unwrap())
        .collect();
    let nonces: Vec<PubNonce> = round1.iter().map(|(_, p)| *p).collect();
    let agg = aggregate_nonces(&nonces).unwrap();
    let session = SessionContext::new(&ctx, &agg, &message).unwrap();
    let partials: Vec<PartialSignature> = keys
        .iter()
        .zip(round1)
        .map(|(k, (sec, _))| session.partial_sign(sec, k).unwrap())
        .collect();

    c.bench_function("partial_sign_15", |b| {
        b.iter_batched(
            || {
                SecNonce::generate(&keys[0], &ctx, Some(&message), b"bench")
                    .unwrap()
                    .0
            },
            |sec| session.partial_sign(sec, &keys[0]).unwrap(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("partial_verify_15", |b| {
        b.iter(|| {
            session
                .verify_partial(black_box(3), &nonces[3], &partials[3])
                .unwrap()
        })
    });
    c.bench_function("session_context_15", |b| {
        b.iter(|| SessionContext::new(&ctx, black_box(&agg), &message).unwrap())
    });
    c.bench_function("aggregate_15", |b| {
        b.iter(|| session.aggregate(black_box(&partials)).unwrap())
    });
    c.bench_function("aggregate_verified_15", |b| {
        b.iter(|| {
            session
                .aggregate_verified(&nonces, black_box(&partials))
                .unwrap()
        })
    });
    c.bench_function("key_agg_15", |b| {
        b.iter(|| KeyAggContext::new(black_box(ctx.keys())).unwrap())
    });

    let single = SecretKey::generate().unwrap();
    let sig = sign(&single, &message);
    c.bench_function("schnorr_sign", |b| {
        b.iter(|| sign(&single, black_box(&message)))
    });
    c.bench_function("schnorr_verify", |b| {
        b.iter(|| verify(single.public_key(), black_box(&message), &sig).unwrap())
    });

    let point = ProjectivePoint::GENERATOR * Scalar::from(0x1234_5678_u64);
    let k = Scalar::from(0xdead_beef_u64).invert().unwrap();
    c.bench_function("k256_mul", |b| b.iter(|| black_box(point) * black_box(k)));
    c.bench_function("k256_mul_by_generator", |b| {
        b.iter(|| ProjectivePoint::mul_by_generator(black_box(&k)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
