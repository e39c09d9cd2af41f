//! Reachability on a real network with NAT, built by the test in Linux
//! network namespaces: an "internet" bridge on 198.51.100.0/24 with two public
//! nodes B1 and B2, and a wallet W behind a router that masquerades its LAN
//! 192.0.2.0/24 (nftables). Real `lotus-p2p` processes run in the namespaces.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables), so it is ignored in a
//! plain `cargo test`; `cargo xtask netns` runs it (CI does, as root). Only
//! documentation address ranges are used, only inside the test's own
//! namespaces (their names carry the test's pid); the root namespace is never
//! touched, and every namespace is deleted when the test ends, also on failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::Command;

use common::{Proc, temp_dir};
use serde_json::Value;

/// The test's namespaces; deleted on drop (their interfaces and nftables
/// rules go with them).
struct Net {
    prefix: String,
    namespaces: Vec<String>,
}

impl Net {
    fn new() -> Self {
        Self {
            prefix: format!("lp2p{}", std::process::id()),
            namespaces: Vec::new(),
        }
    }

    /// Creates namespace `name` (loopback up) and returns its full name.
    fn namespace(&mut self, name: &str) -> String {
        let full = format!("{}-{name}", self.prefix);
        run(&["ip", "netns", "add", &full]);
        self.namespaces.push(full.clone());
        exec(&full, &["ip", "link", "set", "lo", "up"]);
        full
    }

    /// A veth pair created directly inside the two namespaces (never in the
    /// root namespace), `a_if` in `a` with `a_addr`, `b_if` in `b`.
    fn link(
        &self,
        (a, a_if, a_addr): (&str, &str, Option<&str>),
        (b, b_if, b_addr): (&str, &str, Option<&str>),
    ) {
        run(&[
            "ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        for (ns, iface, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
            if let Some(addr) = addr {
                exec(ns, &["ip", "addr", "add", addr, "dev", iface]);
            }
            exec(ns, &["ip", "link", "set", iface, "up"]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e} (this test needs iproute2 and nftables)"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn exec(ns: &str, args: &[&str]) {
    run(&[&["ip", "netns", "exec", ns][..], args].concat());
}

/// A `lotus-p2p` in namespace `ns`, listening on `ip`:4001, AutoNAT probing
/// after 1 s and every 2 s until it knows.
fn node(ns: &str, ip: &str, extra: &[&str]) -> Proc {
    let listen = format!("/ip4/{ip}/tcp/4001");
    let dir = temp_dir(&format!("netns-{ns}"));
    let dir = dir.to_str().unwrap();
    let args = [
        &[
            "--listen",
            &listen,
            "--data-dir",
            dir,
            "--autonat-delay-secs",
            "1",
            "--autonat-retry-secs",
            "2",
        ][..],
        extra,
    ]
    .concat();
    Proc::spawn_wrapped(&["ip", "netns", "exec", ns], &args)
}

async fn listening(node: &mut Proc) -> (String, String) {
    let line = node.next(|v| v["event"] == "listening").await;
    let id = line["peerId"].as_str().unwrap().to_owned();
    // Already ends in /p2p/<id>.
    let addr = line["addrs"][0].as_str().unwrap().to_owned();
    (id, addr)
}

fn reachability(status: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["event"] == "reachability" && v["status"] == status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, iproute2 and nftables: run with `cargo xtask netns`"]
async fn public_nodes_confirm_each_other_and_serve_the_dht_a_wallet_behind_nat_stays_a_client() {
    let mut net = Net::new();
    let inet = net.namespace("inet");
    exec(&inet, &["ip", "link", "add", "br0", "type", "bridge"]);
    exec(&inet, &["ip", "link", "set", "br0", "up"]);
    let attach = |ns_if: &str| exec(&inet, &["ip", "link", "set", ns_if, "master", "br0"]);
    let (b1, b2, router, wallet) = (
        net.namespace("b1"),
        net.namespace("b2"),
        net.namespace("r1"),
        net.namespace("w1"),
    );
    net.link((&b1, "eth0", Some("198.51.100.10/24")), (&inet, "b1", None));
    net.link((&b2, "eth0", Some("198.51.100.11/24")), (&inet, "b2", None));
    net.link(
        (&router, "wan", Some("198.51.100.20/24")),
        (&inet, "r1", None),
    );
    for port in ["b1", "b2", "r1"] {
        attach(port);
    }
    net.link(
        (&router, "lan", Some("192.0.2.1/24")),
        (&wallet, "eth0", Some("192.0.2.10/24")),
    );
    exec(
        &wallet,
        &["ip", "route", "add", "default", "via", "192.0.2.1"],
    );
    exec(&router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    // Endpoint-independent mapping (Linux masquerade): the LAN leaves as
    // 198.51.100.20; nothing unsolicited comes back in.
    exec(&router, &["nft", "add", "table", "ip", "nat"]);
    exec(
        &router,
        &[
            "nft",
            "add",
            "chain",
            "ip",
            "nat",
            "post",
            "{ type nat hook postrouting priority 100 ; }",
        ],
    );
    exec(
        &router,
        &[
            "nft",
            "add",
            "rule",
            "ip",
            "nat",
            "post",
            "oifname",
            "wan",
            "masquerade",
        ],
    );

    let mut public1 = node(&b1, "198.51.100.10", &[]);
    let (_, public1_addr) = listening(&mut public1).await;
    let mut public2 = node(&b2, "198.51.100.11", &["--bootstrap", &public1_addr]);
    let (_, public2_addr) = listening(&mut public2).await;
    let mut behind_nat = node(
        &wallet,
        "192.0.2.10",
        &["--bootstrap", &public1_addr, "--bootstrap", &public2_addr],
    );
    listening(&mut behind_nat).await;

    // The public nodes dial each other back: reachable, so their DHT (auto
    // mode) turns server on its own.
    for node in [&mut public1, &mut public2] {
        let public = node.next(reachability("public")).await;
        assert!(
            public["addrs"].as_array().is_some_and(|a| !a.is_empty()),
            "{public}"
        );
        node.next(|v| v["event"] == "dht:mode" && v["mode"] == "server")
            .await;
    }
    // The wallet's dial-backs die at its NAT: private, and a DHT client.
    let private = behind_nat.next(reachability("private")).await;
    assert_eq!(private["addrs"], serde_json::json!([]), "{private}");
    let stats = behind_nat.cmd("stats").await;
    assert_eq!(stats["dht"]["mode"], "client", "{stats}");
    // It still reached the public nodes through its NAT.
    let peers = behind_nat.cmd("peers").await;
    assert!(
        peers["peers"].as_array().is_some_and(|p| p.len() >= 2),
        "{peers}"
    );
}
