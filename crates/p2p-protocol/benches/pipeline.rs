//! The inbound pipeline for a 256-byte payload (results in BENCHMARKS.md):
//!
//! - `unsigned_protobuf`: frame → decode → validate → id → seen-set (target ≥ 1 M msg/s);
//! - `signed_protobuf`: the same plus ed25519 verification (target ≥ 90% of `ed25519_verify`);
//! - `unsigned_json`: the TypeScript JSON codec doing the unsigned pipeline;
//! - `ed25519_verify`: one bare signature verification, the limit for `signed_protobuf`.
//!
//! Every message in a run is distinct (its own nonce), so the seen-set does real
//! inserts and evictions rather than rejecting duplicates.
//!
//! Quick (smoke) run, as `cargo xtask bench --quick` does it: criterion's own
//! test mode, `cargo bench -p p2p-protocol --bench pipeline -- --test`, runs
//! every benchmark once without measuring.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use libp2p_identity::Keypair;
use p2p_protocol::{
    Codec, FrameDecoder, Inbound, InboundPolicy, JsonCodec, Message, MessageBuilder, ProtobufCodec,
    Signable, encode_message_frame,
};

const NOW_MS: u64 = 1_764_460_000_000;
const PAYLOAD_LEN: usize = 256;

/// A 256-byte JSON payload (valid for both codecs).
fn payload() -> Vec<u8> {
    let mut p = b"{\"text\":\"".to_vec();
    p.resize(PAYLOAD_LEN - 2, b'x');
    p.extend_from_slice(b"\"}");
    p
}

fn message(key: &Keypair, n: u64, signed: bool) -> Message {
    let builder = MessageBuilder::new("chat".parse().unwrap(), key.public().to_peer_id())
        .protocol("chat".parse().unwrap())
        .payload(payload())
        .timestamp_ms(NOW_MS)
        .nonce(format!("mik3r5a8-{n:016x}"));
    if signed {
        builder.sign(key).unwrap()
    } else {
        builder.build()
    }
}

/// Frames `count` distinct messages into one buffer, as they would arrive on a stream.
fn wire(codec: &dyn Codec, key: &Keypair, count: u64, signed: bool) -> BytesMut {
    let mut buf = BytesMut::new();
    for n in 0..count {
        encode_message_frame(codec, &message(key, n, signed), &mut buf).unwrap();
    }
    buf
}

fn run_pipeline(codec: &dyn Codec, key: &Keypair, iters: u64, signed: bool) -> Duration {
    let mut wire = wire(codec, key, iters, signed);
    let remote = key.public().to_peer_id();
    let mut decoder = FrameDecoder::default();
    let mut inbound = Inbound::new({
        let mut c = InboundPolicy::default();
        c.require_signature = signed;
        c
    });
    let start = Instant::now();
    while let Some(body) = decoder.decode(&mut wire).unwrap() {
        let accepted = inbound.accept(codec, body, &remote, NOW_MS).unwrap();
        black_box(accepted.id);
    }
    start.elapsed()
}

fn pipeline(c: &mut Criterion) {
    let key = Keypair::generate_ed25519();
    let mut group = c.benchmark_group("inbound_256B");
    group.throughput(Throughput::Elements(1));
    group.bench_function("unsigned_protobuf", |b| {
        b.iter_custom(|iters| run_pipeline(&ProtobufCodec, &key, iters, false))
    });
    group.bench_function("unsigned_json", |b| {
        b.iter_custom(|iters| run_pipeline(&JsonCodec, &key, iters, false))
    });
    group.bench_function("signed_protobuf", |b| {
        b.iter_custom(|iters| run_pipeline(&ProtobufCodec, &key, iters, true))
    });
    let signed = message(&key, 0, true);
    let bytes = signed.signing_bytes();
    let signature = signed.signature.clone().unwrap();
    let public = key.public();
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| assert!(public.verify(black_box(&bytes), black_box(&signature))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = pipeline
}
criterion_main!(benches);
