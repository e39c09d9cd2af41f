//! One network of two `lotus-p2p` processes and a js-libp2p node (the
//! TypeScript system's stack and wire formats), every step driven through
//! stdin: connections, messages both ways over the TypeScript JSON protocol,
//! resources announced by either side and discovered by the others, provider
//! records, peers. Needs Node.js; fails (never skips) without it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
#[path = "../../p2p-core/tests/js_peer/mod.rs"]
mod js_peer;

use common::{Proc, temp_dir};
use js_peer::JsPeer;
use serde_json::{Value, json};

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lotus_p2p_processes_and_a_js_node_form_one_network() {
    let js = JsPeer::spawn(&["--dht-server"]).await;
    let js_id = js.peer_id.to_string();
    let (dir_a, dir_b) = (temp_dir("mixed-a"), temp_dir("mixed-b"));
    let interop = ["--accept-unsigned-records", "--accept-typescript-messages"];
    let mut a = Proc::spawn(&dir_a, &interop);
    let listening_a = a.next(|v| v["event"] == "listening").await;
    let a_id = listening_a["peerId"].as_str().unwrap().to_owned();
    let a_addr = listening_a["addrs"][0].as_str().unwrap().to_owned();
    let mut b = Proc::spawn(&dir_b, &[&interop[..], &["--bootstrap", &a_addr]].concat());
    let listening_b = b.next(|v| v["event"] == "listening").await;
    let b_id = listening_b["peerId"].as_str().unwrap().to_owned();

    // Connections: B joins through A (bootstrap); both dial the js node.
    b.next(|v| v["event"] == "peer:connect" && v["peerId"] == a_id.as_str())
        .await;
    for p in [&mut a, &mut b] {
        let connected = p.cmd(&format!("connect {}", js.tcp_addr())).await;
        assert_eq!(connected["ok"], true, "{connected}");
        assert_eq!(connected["peerId"], js_id.as_str());
    }
    let a_peer: libp2p::PeerId = a_id.parse().unwrap();
    let b_peer: libp2p::PeerId = b_id.parse().unwrap();
    js.wait_routing_contains(&[a_peer, b_peer]).await;
    let peers = a.cmd("peers").await;
    let ids: Vec<&str> = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["peerId"].as_str())
        .collect();
    assert!(
        ids.contains(&b_id.as_str()) && ids.contains(&js_id.as_str()),
        "{peers}"
    );

    // Messages: ours reach js over /lotus/message/1.0.0 (js has no native
    // protocol), and js's reach ours.
    let sent = b
        .cmd(&format!(r#"send {js_id} greeting {{"text":"from B"}}"#))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let got = js
        .event("B's greeting", |e| {
            e["event"] == "message" && e["message"]["type"] == "greeting"
        })
        .await;
    assert_eq!(got["from"], b_id.as_str());
    assert_eq!(got["fromMatchesSender"], true);
    assert_eq!(got["message"]["payload"], json!({"text": "from B"}));
    js.ok(
        json!({"cmd": "sendmsg", "target": a_id, "type": "chat", "payload": {"text": "from js"}}),
    )
    .await;
    let got = a
        .next(|v| v["event"] == "message" && v["type"] == "chat")
        .await;
    assert_eq!(got["from"], js_id.as_str());
    assert_eq!(got["payload"], json!({"text": "from js"}));
    assert_eq!(got["wire"], "typescript");
    assert_eq!(got["verified"], false, "TypeScript nodes cannot sign");

    // Resources: B's signed record is found by js and by A; js's record by B.
    let announced = b.cmd(r#"announce session s1 {"status":"open"} 600"#).await;
    assert_eq!(announced["ok"], true, "{announced}");
    assert!(announced["storedBy"].as_u64().unwrap() >= 1, "{announced}");
    let found = js
        .ok(json!({"cmd": "discover", "resourceType": "session", "resourceId": "s1", "cache": false}))
        .await;
    assert_eq!(
        found["announcement"]["creatorPeerId"],
        b_id.as_str(),
        "{found}"
    );
    assert_eq!(found["announcement"]["data"], json!({"status": "open"}));
    let found = a.cmd("discover session s1").await;
    assert_eq!(found["ok"], true, "{found}");
    assert_eq!(found["resource"]["creator"], b_id.as_str());
    assert_eq!(found["resource"]["signed"], true);

    let put = js
        .ok(json!({"cmd": "announce", "args": ["round", "r1", "{\"n\": 1}"]}))
        .await;
    assert_eq!(put["dhtPut"], true, "{put}");
    let found = b.cmd("discover round r1").await;
    assert_eq!(found["ok"], true, "{found}");
    assert_eq!(found["resource"]["creator"], js_id.as_str());
    assert_eq!(found["resource"]["data"], json!({"n": 1}));
    assert_eq!(found["resource"]["signed"], false);

    // Provider records: A provides, js finds A.
    let provided = a.cmd("provide lotus-mixed-network").await;
    assert_eq!(provided["told"], true, "{provided}");
    let providers = js
        .ok(json!({"cmd": "findproviders", "key": "lotus-mixed-network", "timeout": 15_000}))
        .await;
    assert!(
        strings(&providers["providers"]).contains(&a_id.as_str()),
        "{providers}"
    );

    // Everyone stops cleanly.
    for p in [&mut a, &mut b] {
        assert_eq!(p.cmd("stop").await["ok"], true);
        p.next(|v| v["event"] == "stopped").await;
    }
    js.stop().await;
}
