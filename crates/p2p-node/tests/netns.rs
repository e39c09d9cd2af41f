//! Reachability, relays and hole punching on a real network with NAT, built
//! by the tests in Linux network namespaces: an "internet" bridge on
//! 198.51.100.0/24 with public nodes, and wallets behind routers that
//! masquerade their LANs (192.0.2.0/24, 203.0.113.0/24) with nftables. Real
//! `lotus-p2p` processes run in the namespaces.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables), so it is ignored in a
//! plain `cargo test`; `cargo xtask netns` runs it (CI does, as root). Only
//! documentation address ranges are used, only inside the test's own
//! namespaces (their names carry the test's pid); the root namespace is never
//! touched, and every namespace is deleted when the test ends, also on failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::Command;
use std::time::Duration;

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

/// The "internet": namespace `inet` with bridge `br0`.
fn internet(net: &mut Net) -> String {
    let inet = net.namespace("inet");
    exec(&inet, &["ip", "link", "add", "br0", "type", "bridge"]);
    exec(&inet, &["ip", "link", "set", "br0", "up"]);
    inet
}

/// Host `name` on the internet bridge at `addr` (in 198.51.100.0/24).
fn public_host(net: &mut Net, inet: &str, name: &str, addr: &str) -> String {
    let ns = net.namespace(name);
    net.link((&ns, "eth0", Some(addr)), (inet, name, None));
    exec(inet, &["ip", "link", "set", name, "master", "br0"]);
    ns
}

/// How a home router treats traffic.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Router {
    /// Masquerade with ports preserved where free (endpoint-independent
    /// mapping); what arrives unasked is answered by the router's own stack
    /// (a TCP reset).
    Resets,
    /// The same mapping; what arrives unasked is dropped, as home routers do.
    Drops,
    /// Drops, and gives every connection a random source port
    /// (`masquerade fully-random`: endpoint-dependent mapping, where hole
    /// punching cannot work).
    RandomPorts,
}

/// A home router `name` on the internet at `wan`, masquerading its LAN for
/// one wallet host: the router's LAN address `lan` and the wallet's
/// `wallet` (cidrs). Returns the wallet's namespace.
fn home_network(
    net: &mut Net,
    inet: &str,
    (name, wan): (&str, &str),
    (lan, wallet): (&str, &str),
    kind: Router,
) -> String {
    let router = public_host(net, inet, name, wan);
    let wallet_ns = net.namespace(&format!("{name}w"));
    net.link(
        (&router, "lan", Some(lan)),
        (&wallet_ns, "eth0", Some(wallet)),
    );
    let gateway = lan.split('/').next().unwrap();
    exec(
        &wallet_ns,
        &["ip", "route", "add", "default", "via", gateway],
    );
    exec(&router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    let masquerade = if kind == Router::RandomPorts {
        "masquerade fully-random"
    } else {
        "masquerade"
    };
    let mut rules = format!(
        "table ip nat {{\n chain post {{\n  type nat hook postrouting priority 100;\n  oifname \"eth0\" {masquerade}\n }}\n}}\n",
    );
    if kind != Router::Resets {
        for hook in ["input", "forward"] {
            rules.push_str(&format!(
                "table ip wan_{hook} {{\n chain {hook} {{\n  type filter hook {hook} priority 0;\n  iifname \"eth0\" ct state established,related accept\n  iifname \"eth0\" drop\n }}\n}}\n"
            ));
        }
    }
    let file =
        std::env::temp_dir().join(format!("lotus-p2p-nft-{}-{name}.nft", std::process::id()));
    std::fs::write(&file, rules).unwrap();
    exec(&router, &["nft", "-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    wallet_ns
}

/// The internet with two public hosts, `b1` at 198.51.100.10 and `b2` at
/// .11: their namespaces and the internet's.
fn internet_with_two_hosts(net: &mut Net) -> (String, String, String) {
    let inet = internet(net);
    let b1 = public_host(net, &inet, "b1", "198.51.100.10/24");
    let b2 = public_host(net, &inet, "b2", "198.51.100.11/24");
    (inet, b1, b2)
}

/// Wallet W1's home: router `r1` at 198.51.100.20, the wallet at
/// 192.0.2.10 on its LAN. Returns the wallet's namespace.
fn first_home(net: &mut Net, inet: &str, kind: Router) -> String {
    home_network(
        net,
        inet,
        ("r1", "198.51.100.20/24"),
        ("192.0.2.1/24", "192.0.2.10/24"),
        kind,
    )
}

/// AutoNAT probing after 1 s and every 2 s until it knows.
const QUICK_AUTONAT: [&str; 4] = ["--autonat-delay-secs", "1", "--autonat-retry-secs", "2"];

/// A `lotus-p2p` in namespace `ns`, listening on `ip`:4001, AutoNAT probing
/// quickly.
fn node(ns: &str, ip: &str, extra: &[&str]) -> Proc {
    node_at(
        ns,
        &format!("{ip}/tcp/4001"),
        &[&QUICK_AUTONAT[..], extra].concat(),
    )
}

/// A `lotus-p2p` in namespace `ns`, listening on `/ip4/<ip_port>` (e.g.
/// `192.0.2.10/tcp/4001`), with a fresh data directory (a fresh identity).
fn node_at(ns: &str, ip_port: &str, extra: &[&str]) -> Proc {
    let listen = format!("/ip4/{ip_port}");
    let dir = temp_dir(&format!("netns-{ns}-{}", ip_port.replace('/', "-")));
    let args = [
        &["--listen", &listen, "--data-dir", dir.to_str().unwrap()][..],
        extra,
    ]
    .concat();
    Proc::spawn_wrapped(&["ip", "netns", "exec", ns], &args).owning(dir)
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
    let (inet, b1, b2) = internet_with_two_hosts(&mut net);
    // The router resets what arrives unasked, so AutoNAT's dial-backs to the
    // wallet fail at once.
    let wallet = first_home(&mut net, &inet, Router::Resets);

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

/// The "internet" segment, public for the nodes' address policies.
const PUBLIC: [&str; 2] = ["--public-ranges", "198.51.100.0/24"];

/// Two public nodes in `b1` and `b2` (198.51.100.10 and .11), bootstrap and
/// relay servers: they confirm each other (AutoNAT), so their DHTs serve and
/// their relays open, on their own. Returns them and their addresses.
async fn public_servers(b1_ns: &str, b2_ns: &str) -> (Proc, String, Proc, String) {
    public_servers_with(b1_ns, b2_ns, &[]).await
}

/// [`public_servers`] with `relay` flags (the relay servers' limits).
async fn public_servers_with(
    b1_ns: &str,
    b2_ns: &str,
    relay: &[&str],
) -> (Proc, String, Proc, String) {
    let server = [&PUBLIC[..], &["--relay-server"][..], relay].concat();
    let mut b1 = node(b1_ns, "198.51.100.10", &server);
    let (_, b1_addr) = listening(&mut b1).await;
    let mut b2 = node(
        b2_ns,
        "198.51.100.11",
        &[&server[..], &["--bootstrap", &b1_addr][..]].concat(),
    );
    let (_, b2_addr) = listening(&mut b2).await;
    for b in [&mut b1, &mut b2] {
        b.next(reachability("public")).await;
        b.next(|v| v["event"] == "dht:mode" && v["mode"] == "server")
            .await;
    }
    (b1, b1_addr, b2, b2_addr)
}

/// A wallet in `ns` at `ip_port` bootstrapping from both servers, with
/// `extra` flags; returns it and its id once it is connected to both.
async fn wallet(ns: &str, ip_port: &str, servers: [&str; 2], extra: &[&str]) -> (Proc, String) {
    let args = [
        &PUBLIC[..],
        &["--bootstrap", servers[0], "--bootstrap", servers[1]][..],
        extra,
    ]
    .concat();
    let mut w = node_at(ns, ip_port, &args);
    let (id, _) = listening(&mut w).await;
    // Bootstrapped: connected to both servers (a relayed dial started
    // while the bootstrap dial to the same relay is under way fails).
    for server in servers {
        let server_id = server.rsplit('/').next().unwrap().to_owned();
        w.next(move |v| v["event"] == "peer:connect" && v["peerId"] == server_id.as_str())
            .await;
    }
    (w, id)
}

/// Waits until `w` holds a reservation on a relay and advertises the relayed
/// address, still a DHT client; returns that address.
async fn reserved(w: &mut Proc) -> String {
    let reserved = w.next(|v| v["event"] == "relay_reserved").await;
    let relayed = reserved["addr"].as_str().unwrap().to_owned();
    assert!(relayed.contains("/p2p-circuit"), "{reserved}");
    w.next(|v| {
        v["event"] == "addresses"
            && v["addrs"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a.as_str() == Some(relayed.as_str())))
    })
    .await;
    let stats = w.cmd("stats").await;
    assert_eq!(
        stats["dht"]["mode"], "client",
        "a relayed address does not make a server: {stats}"
    );
    relayed
}

/// Hole-punch trials run by the scenario.
const TRIALS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, iproute2 and nftables: run with `cargo xtask netns`"]
async fn wallets_behind_two_nats_meet_through_a_relay_and_punch_a_direct_connection() {
    let mut net = Net::new();
    let (inet, b1_ns, b2_ns) = internet_with_two_hosts(&mut net);
    let w1_ns = first_home(&mut net, &inet, Router::Drops);
    let w2_ns = home_network(
        &mut net,
        &inet,
        ("r2", "198.51.100.21/24"),
        ("203.0.113.1/24", "203.0.113.10/24"),
        Router::Drops,
    );

    let (_b1, b1_addr, _b2, b2_addr) = public_servers(&b1_ns, &b2_ns).await;

    let mut punched = 0;
    let mut rediscovered = 0;
    let mut upgrade_ms = Vec::new();
    for trial in 0..TRIALS {
        // Fresh wallets each trial (fresh identities, and a fresh port so no
        // NAT mapping is left from the last trial).
        let port = 4100 + trial;
        let servers = [b1_addr.as_str(), b2_addr.as_str()];
        let (mut w1, w1_id) = wallet(
            &w1_ns,
            &format!("192.0.2.10/tcp/{port}"),
            servers,
            &["--relay", &b1_addr],
        )
        .await;
        let (mut w2, _) = wallet(&w2_ns, &format!("203.0.113.10/tcp/{port}"), servers, &[]).await;
        // W1 holds a reservation on B1 and advertises the relayed address.
        reserved(&mut w1).await;

        // W1 announces; W2 discovers it through the DHT on B1 and B2.
        let id = format!("trial-{trial}");
        let announced = w1
            .cmd(&format!(r#"announce musig2-session {id} {{"n":2}}"#))
            .await;
        assert_eq!(announced["ok"], true, "{announced}");
        assert_eq!(announced["storedBy"], 2, "stored by B1 and B2: {announced}");
        // W2 discovers it and reaches W1 at the address W1's provider record
        // gives: through B1's relay. Kademlia's ADD_PROVIDER has no answer,
        // so a lookup right after the announce can reach a server before
        // the provider record does: the record is found, W1's address not.
        // Then the send fails with "no addresses" and W2 looks again
        // (counted; at most twice).
        let mut sent_at = std::time::Instant::now();
        for attempt in 0.. {
            let found = w2.cmd(&format!("discover musig2-session {id} 10000")).await;
            assert_eq!(found["ok"], true, "{found}");
            assert_eq!(found["resource"]["creator"], w1_id.as_str(), "{found}");
            sent_at = std::time::Instant::now();
            let sent = w2
                .cmd(&format!(r#"send {w1_id} greeting {{"trial":{trial}}}"#))
                .await;
            if sent["ok"] == true {
                break;
            }
            let no_address = sent["error"]
                .as_str()
                .is_some_and(|e| e.contains("no addresses for peer"));
            assert!(no_address && attempt < 2, "{sent}");
            rediscovered += 1;
        }
        let message = w1
            .next(|v| v["event"] == "message" && v["type"] == "greeting")
            .await;
        assert_eq!(message["payload"]["trial"], trial, "{message}");
        // W2 dialled the relayed connection; DCUtR reports on each side once
        // that side holds the direct connection (or gave up).
        let punch = w2.next(|v| v["event"] == "hole_punch").await;
        if punch["ok"] == true {
            upgrade_ms.push(sent_at.elapsed().as_secs_f64() * 1000.0);
            let peers = w2.cmd("peers").await;
            let direct = peers["peers"].as_array().unwrap().iter().any(|p| {
                p["peerId"] == w1_id.as_str()
                    && p["connections"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["relayed"] == false))
            });
            assert!(
                direct,
                "a direct connection to W1 after the hole punch: {peers}"
            );
            punched += 1;
        } else {
            println!("trial {trial}: hole punch failed: {punch}");
        }
    }
    upgrade_ms.sort_by(f64::total_cmp);
    let p50 = upgrade_ms.get(upgrade_ms.len() / 2).copied();
    println!(
        "{}",
        serde_json::json!({
            "scenario": "two wallets behind masquerade NATs, relay then DCUtR",
            "trials": TRIALS,
            "hole_punched": punched,
            "discover_repeated_for_an_address": rediscovered,
            "first_relayed_message_to_direct_ms_p50": p50,
            "first_relayed_message_to_direct_ms": upgrade_ms,
        })
    );
    assert!(
        punched * 10 >= TRIALS * 9,
        "hole punching worked in {punched} of {TRIALS} trials (target 90 %)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, iproute2 and nftables: run with `cargo xtask netns`"]
async fn behind_a_port_randomising_nat_hole_punching_fails_cleanly_and_the_relay_carries_every_message()
 {
    const MESSAGES: u64 = 50;
    let mut net = Net::new();
    let (inet, b1_ns, b2_ns) = internet_with_two_hosts(&mut net);
    let w1_ns = first_home(&mut net, &inet, Router::Drops);
    let w3_ns = home_network(
        &mut net,
        &inet,
        ("r3", "198.51.100.23/24"),
        ("203.0.113.1/24", "203.0.113.30/24"),
        Router::RandomPorts,
    );
    // A dial into a dropping NAT fails after the kernel's SYN retries; fewer
    // of them keep DCUtR's three attempts short.
    for ns in [&w1_ns, &w3_ns] {
        exec(ns, &["sysctl", "-q", "-w", "net.ipv4.tcp_syn_retries=2"]);
    }
    let (_b1, b1_addr, _b2, b2_addr) = public_servers(&b1_ns, &b2_ns).await;
    let servers = [b1_addr.as_str(), b2_addr.as_str()];
    let (mut w1, w1_id) = wallet(
        &w1_ns,
        "192.0.2.10/tcp/4001",
        servers,
        &["--relay", &b1_addr],
    )
    .await;
    let relayed = reserved(&mut w1).await;
    let (mut w3, _) = wallet(&w3_ns, "203.0.113.30/tcp/4001", servers, &[]).await;

    // W3 reaches W1 through the relay and sends while DCUtR tries.
    let connected = w3.cmd(&format!("connect {relayed}")).await;
    assert_eq!(connected["ok"], true, "{connected}");
    for i in 0..MESSAGES {
        let sent = w3.cmd(&format!(r#"send {w1_id} tick {{"i":{i}}}"#)).await;
        assert_eq!(sent["ok"], true, "{sent}");
    }
    let mut seen = std::collections::BTreeSet::new();
    while (seen.len() as u64) < MESSAGES {
        let message = w1
            .next(|v| v["event"] == "message" && v["type"] == "tick")
            .await;
        assert!(
            seen.insert(message["payload"]["i"].as_u64().unwrap()),
            "{message}"
        );
    }
    // The hole punch fails and says so; the relayed connection stays.
    let punch = tokio::select! {
        v = w1.next_within(Duration::from_secs(90), |v| v["event"] == "hole_punch") => v,
        v = w3.next_within(Duration::from_secs(90), |v| v["event"] == "hole_punch") => v,
    };
    assert_eq!(punch["ok"], false, "{punch}");
    assert!(punch["error"].is_string(), "{punch}");
    let peers = w3.cmd("peers").await;
    let only_relayed = peers["peers"].as_array().unwrap().iter().any(|p| {
        p["peerId"] == w1_id.as_str()
            && p["connections"]
                .as_array()
                .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["relayed"] == true))
    });
    assert!(only_relayed, "W1 reached through the relay only: {peers}");
    let sent = w3
        .cmd(&format!(r#"send {w1_id} tick {{"i":{MESSAGES}}}"#))
        .await;
    assert_eq!(sent["ok"], true, "still talking over the relay: {sent}");
    w1.next(|v| v["event"] == "message" && v["payload"]["i"] == MESSAGES)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, iproute2 and nftables: run with `cargo xtask netns`"]
async fn two_nodes_talk_over_ipv6() {
    let mut net = Net::new();
    let (_inet, a_ns, b_ns) = internet_with_two_hosts(&mut net);
    for (ns, addr) in [(&a_ns, "2001:db8::10/64"), (&b_ns, "2001:db8::11/64")] {
        // No duplicate-address detection: the address is usable at once.
        exec(
            ns,
            &["ip", "-6", "addr", "add", addr, "dev", "eth0", "nodad"],
        );
    }
    let six = |ip: &str| vec!["--listen".to_owned(), format!("/ip6/{ip}/tcp/4001")];
    let (a_args, b_args) = (six("2001:db8::10"), six("2001:db8::11"));
    let mut a = node_at(
        &a_ns,
        "198.51.100.10/tcp/4001",
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (a_id, _) = listening(&mut a).await;
    let mut b = node_at(
        &b_ns,
        "198.51.100.11/tcp/4001",
        &b_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    listening(&mut b).await;
    let connected = b
        .cmd(&format!("connect /ip6/2001:db8::10/tcp/4001/p2p/{a_id}"))
        .await;
    assert_eq!(connected["ok"], true, "{connected}");
    let sent = b
        .cmd(&format!(r#"send {a_id} greeting {{"over":"ipv6"}}"#))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let message = a.next(|v| v["event"] == "message").await;
    assert_eq!(message["payload"]["over"], "ipv6", "{message}");
    let peers = b.cmd("peers").await;
    let over_ipv6 = peers["peers"].as_array().unwrap().iter().any(|p| {
        p["peerId"] == a_id.as_str()
            && p["addrs"][0]
                .as_str()
                .is_some_and(|a| a.starts_with("/ip6/2001:db8::10/"))
    });
    assert!(over_ipv6, "{peers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, iproute2 and nftables: run with `cargo xtask netns`"]
async fn one_address_cannot_take_every_reservation_or_circuit_of_a_relay() {
    /// Nodes the attacker runs, all at one address.
    const ATTACKERS: usize = 6;
    /// New reservations, and new circuits, one address may ask for.
    const PER_IP: usize = 2;
    let mut net = Net::new();
    let (inet, b1_ns, b2_ns) = internet_with_two_hosts(&mut net);
    let evil_ns = public_host(&mut net, &inet, "evil", "198.51.100.66/24");
    let w1_ns = first_home(&mut net, &inet, Router::Drops);
    let w2_ns = home_network(
        &mut net,
        &inet,
        ("r2", "198.51.100.21/24"),
        ("203.0.113.1/24", "203.0.113.10/24"),
        Router::Drops,
    );
    // Room for 4 reservations and 4 circuits in all: enough for the honest
    // wallets, not if one address could take them all.
    let per_ip = PER_IP.to_string();
    let limits = [
        "--relay-max-reservations",
        "4",
        "--relay-max-circuits",
        "4",
        "--relay-per-ip",
        &per_ip,
    ];
    let (_b1, b1_addr, _b2, b2_addr) = public_servers_with(&b1_ns, &b2_ns, &limits).await;
    let servers = [b1_addr.as_str(), b2_addr.as_str()];

    // The attacker asks for a reservation from every node it runs.
    let mut attackers = Vec::new();
    let mut granted = 0;
    for i in 0..ATTACKERS {
        let mut attacker = node_at(
            &evil_ns,
            &format!("198.51.100.66/tcp/{}", 4001 + i),
            &[
                &PUBLIC[..],
                &["--relay", &b1_addr, "--no-autonat", "--no-hole-punching"][..],
            ]
            .concat(),
        );
        listening(&mut attacker).await;
        let outcome = attacker
            .next(|v| v["event"] == "relay_reserved" || v["event"] == "relay_reservation_ended")
            .await;
        if outcome["event"] == "relay_reserved" {
            granted += 1;
        }
        attackers.push(attacker);
    }
    assert_eq!(
        granted, PER_IP,
        "one address gets its share of reservations"
    );

    // An honest wallet still gets one.
    let (mut w1, w1_id) = wallet(
        &w1_ns,
        "192.0.2.10/tcp/4001",
        servers,
        &["--relay", &b1_addr],
    )
    .await;
    let relayed = reserved(&mut w1).await;

    // The attacker tries to hold circuits to it from every node.
    let mut circuits = 0;
    for attacker in &mut attackers {
        if attacker.cmd(&format!("connect {relayed}")).await["ok"] == true {
            circuits += 1;
        }
    }
    assert_eq!(circuits, PER_IP, "one address gets its share of circuits");

    // Another honest wallet still reaches W1 through the relay.
    let (mut w2, _) = wallet(&w2_ns, "203.0.113.10/tcp/4001", servers, &[]).await;
    let connected = w2.cmd(&format!("connect {relayed}")).await;
    assert_eq!(connected["ok"], true, "{connected}");
    let sent = w2
        .cmd(&format!(r#"send {w1_id} greeting {{"from":"w2"}}"#))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    w1.next(|v| v["event"] == "message" && v["payload"]["from"] == "w2")
        .await;
}
