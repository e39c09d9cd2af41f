//! A 15-signer MuSig2 session on TCP loopback, one process: time from the
//! moment every signer starts until each has the signature (the slowest
//! signer's time is the session's), over repeated sessions. One JSON line.
//!
//! `cargo bench -p p2p-musig2 --bench session`; `LOTUS_BENCH_QUICK=1` runs 3
//! sessions (proves the scenario completes; its figures mean nothing).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use p2p_musig2::Musig2;
use p2p_musig2::lotus_musig2::{self, PublicKey, SecretKey};

#[path = "../tests/common/mod.rs"]
mod common;

const SIGNERS: usize = 15;

/// The value at percentile `p` (nearest rank) of sorted `v`, in ms.
fn percentile(sorted: &[Duration], p: usize) -> f64 {
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn main() {
    let quick = std::env::var("LOTUS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let sessions = if quick { 3 } else { 200 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let nodes = common::network(SIGNERS).await;
        let mut signers = Vec::new();
        for node in &nodes {
            let signer = Musig2::new(
                node.clone(),
                SecretKey::generate().unwrap(),
                Default::default(),
            )
            .unwrap();
            // Advertising needs the routing tables filled; retried until then.
            let deadline = Instant::now() + Duration::from_secs(30);
            while signer.advertise().await.is_err() {
                assert!(Instant::now() < deadline, "advert not stored in 30 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            signers.push(signer);
        }
        let keys: Vec<PublicKey> = signers.iter().map(|s| *s.public_key()).collect();
        // The first session also finds every signer's node and dials it;
        // it is reported apart.
        let mut first = None;
        let mut times = Vec::with_capacity(sessions);
        for i in 0..=sessions {
            let message = [u8::try_from(i % 256).unwrap(); 32];
            let id = format!("bench-{i}");
            let started = Instant::now();
            let results = futures::future::join_all(signers.iter().map(|s| async {
                let signed = s.sign(&id, &message, &keys, Duration::from_secs(60)).await;
                (signed, started.elapsed())
            }))
            .await;
            let slowest = results.iter().map(|(_, t)| *t).max().unwrap();
            let (signed, _) = &results[0];
            let signed = signed.as_ref().unwrap();
            lotus_musig2::verify(&signed.aggregated_key, &message, &signed.signature).unwrap();
            for (other, _) in &results {
                assert_eq!(other.as_ref().unwrap().signature, signed.signature);
            }
            if i == 0 {
                first = Some(slowest);
            } else {
                times.push(slowest);
            }
        }
        times.sort();
        println!(
            "{}",
            serde_json::json!({
                "scenario": "musig2_session",
                "signers": SIGNERS,
                "sessions": sessions,
                "first_session_ms": first.map(|t| t.as_secs_f64() * 1e3),
                "time_to_signature_ms": {
                    "p50": percentile(&times, 50),
                    "p99": percentile(&times, 99),
                    "max": percentile(&times, 100),
                },
                "sessions_per_s": sessions as f64 / times.iter().sum::<Duration>().as_secs_f64(),
            })
        );
    });
}
