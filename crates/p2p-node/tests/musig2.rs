//! MuSig2 from the command line: offline key aggregation and verification
//! checked against the Lotus SDK's own vectors, and a signing session across
//! three `lotus-p2p` processes driven through stdin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::Output;

use common::{Proc, temp_dir};
use serde_json::Value;

/// The vectors produced by running the Lotus SDK (npm xpi-ts 0.3.1).
fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../lotus-musig2/tests/vectors/xpi-ts-0.3.1.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn musig2(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lotus-p2p"))
        .arg("musig2")
        .args(args)
        .output()
        .unwrap()
}

fn json_out(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {} / {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn keyagg_prints_the_sdks_aggregated_key_for_every_vector() {
    let vectors = vectors();
    let sets = vectors["keyagg"].as_array().unwrap();
    assert!(sets.len() >= 10);
    for set in sets {
        let keys: Vec<&str> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let out = musig2(&[&["keyagg"], keys.as_slice()].concat());
        assert!(out.status.success(), "{}", set["name"]);
        assert_eq!(
            json_out(&out)["aggregatedKey"],
            set["aggregatedKey"],
            "{}",
            set["name"]
        );
    }
}

#[test]
fn verify_exits_0_for_the_sdks_signatures_1_for_those_it_rejects_2_for_garbage() {
    let vectors = vectors();
    for (list, valid) in [("schnorr", true), ("schnorrInvalid", false)] {
        for v in vectors[list].as_array().unwrap() {
            let out = musig2(&[
                "verify",
                v["publicKey"].as_str().unwrap(),
                v["message"].as_str().unwrap(),
                v["signature"].as_str().unwrap(),
            ]);
            assert_eq!(json_out(&out)["valid"], valid, "{v}");
            assert_eq!(out.status.code(), Some(if valid { 0 } else { 1 }), "{v}");
        }
    }
    let v = &vectors["schnorr"][0];
    let garbage = musig2(&[
        "verify",
        "not-a-key",
        v["message"].as_str().unwrap(),
        v["signature"].as_str().unwrap(),
    ]);
    assert_eq!(garbage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("public key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_sign_one_message_with_musig2_sign() {
    let dirs: Vec<_> = (0..3).map(|i| temp_dir(&format!("musig2-{i}"))).collect();
    let mut a = Proc::spawn(&dirs[0], &[]);
    let listening = a.next(|v| v["event"] == "listening").await;
    let bootstrap = listening["addrs"][0].as_str().unwrap().to_owned();
    let mut procs = vec![a];
    for dir in &dirs[1..] {
        procs.push(Proc::spawn(dir, &["--bootstrap", &bootstrap]));
    }
    let mut keys = Vec::new();
    for (p, dir) in procs.iter_mut().zip(&dirs) {
        let answer = p.cmd("signer-key").await;
        assert_eq!(answer["ok"], true, "{answer}");
        keys.push(answer["publicKey"].as_str().unwrap().to_owned());
        // The key is kept in the data dir, readable by its owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("signer.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
    let message = "9a92ac5641893be31bc9c92453abf265f5ff37bae897fe486002ed57d5a18482";
    // Shorter than the test's wait, so a failed session shows its blame.
    let line = format!("musig2-sign payout-1 {message} {} 15000", keys.join(","));
    let answers = futures::future::join_all(procs.iter_mut().map(|p| p.cmd(&line))).await;
    let expected = json_out(&musig2(
        &[
            &["keyagg"],
            keys.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
        ]
        .concat(),
    ))["aggregatedKey"]
        .clone();
    for answer in &answers {
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(answer["session"], "payout-1");
        assert_eq!(answer["aggregatedKey"], expected);
        assert_eq!(answer["signature"], answers[0]["signature"]);
    }
    let verified = musig2(&[
        "verify",
        expected.as_str().unwrap(),
        message,
        answers[0]["signature"].as_str().unwrap(),
    ]);
    assert_eq!(verified.status.code(), Some(0));

    // A session with a key nobody runs fails naming it.
    let stranger = "02cb8c4bd39abc0887907ada72fee4335fea504a4b5526cc52095890e6a605e1a1";
    let failed = procs[0]
        .cmd(&format!(
            "musig2-sign payout-2 {message} {},{stranger} 2000",
            keys[0]
        ))
        .await;
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(failed["code"], "timeout");
    assert_eq!(failed["blame"][0]["publicKey"], stranger);
    assert_eq!(failed["blame"][0]["reason"], "missing");
    let stats = procs[0].cmd("stats").await;
    assert_eq!(stats["musig2"]["publicKey"], keys[0].as_str());
    assert_eq!(stats["musig2"]["runningSessions"], 0);
}
