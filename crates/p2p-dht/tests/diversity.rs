//! Routing-table poisoning from one IP group: however many identities one
//! operator brings from one /16, only a few reach the table, whatever
//! addresses they claim.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use libp2p::{Multiaddr, PeerId, StreamProtocol};
use p2p_dht::mapper::PublicOnly;
use p2p_dht::routing::{Diversity, Groups, Identified, Local, Population, Seen, on_identified};
use p2p_dht::{DhtConfig, DhtModeSetting, routing_table_size};

/// Fifteen servers identify themselves: server `i` connected from
/// `observed(i)` and claims to listen at `claimed(i)`.
fn identify_from(
    diversity: Option<Diversity>,
    observed: impl Fn(usize) -> String,
    claimed: impl Fn(usize) -> String,
) -> Vec<Population> {
    let config = {
        let mut c = DhtConfig::default();
        c.mode = DhtModeSetting::Server;
        c.diversity = diversity;
        c
    };
    let local = PeerId::random();
    let mut kad = config.behaviour(local);
    let mut groups = Groups::default();
    let mut last_seen = Seen::new(config.contact_check_after);
    let protocol = StreamProtocol::new(p2p_dht::DEFAULT_PROTOCOL);
    let me = Local {
        peer: local,
        kad_protocol: &protocol,
        diversity: config.diversity,
        public_ranges: &config.public_ranges,
    };
    let populations: Vec<Population> = (0..15)
        .map(|i| {
            let seen: Multiaddr = observed(i).parse().unwrap();
            let listen: Multiaddr = claimed(i).parse().unwrap();
            on_identified(
                &mut kad,
                &PublicOnly::default(),
                me,
                &mut groups,
                &mut last_seen,
                Identified {
                    peer: PeerId::random(),
                    observed: Some(&seen),
                    protocols: std::slice::from_ref(&protocol),
                    listen_addrs: &[listen],
                },
            )
        })
        .collect();
    assert_eq!(routing_table_size(&mut kad), added(&populations));
    populations
}

/// Servers connected from, and claiming, `addr(i)`.
fn identify_many(diversity: Option<Diversity>, addr: impl Fn(usize) -> String) -> Vec<Population> {
    identify_from(diversity, &addr, &addr)
}

fn added(populations: &[Population]) -> usize {
    populations
        .iter()
        .filter(|p| matches!(p, Population::Added(_)))
        .count()
}

#[test]
fn fifteen_identities_from_one_slash_16_get_three_places() {
    let p = identify_many(Some(Diversity::default()), |i| {
        format!("/ip4/45.33.{}.{}/tcp/4001", i / 200, i % 200 + 1)
    });
    assert_eq!(added(&p), 3);
    assert_eq!(
        p.iter().filter(|p| **p == Population::NotDiverse).count(),
        12
    );
}

#[test]
fn the_same_identities_spread_over_many_networks_all_get_in() {
    let p = identify_many(Some(Diversity::default()), |i| {
        format!("/ip4/45.{}.1.1/tcp/4001", i + 1)
    });
    assert_eq!(added(&p), 15);
}

#[test]
fn ipv6_groups_by_slash_32_and_the_filter_can_be_turned_off() {
    let p = identify_many(Some(Diversity::default()), |i| {
        format!("/ip6/2a01:4f8:{:x}::1/tcp/4001", i + 1)
    });
    assert_eq!(added(&p), 3, "one /32");
    let p = identify_many(None, |i| format!("/ip4/45.33.0.{}/tcp/4001", i + 1));
    assert_eq!(added(&p), 15);
}

/// Claimed addresses cost nothing to vary: identities connected from one
/// /16 that claim listen addresses in fifteen different /16s still get three
/// places.
#[test]
fn claimed_addresses_do_not_spread_one_slash_16() {
    let p = identify_from(
        Some(Diversity::default()),
        |i| format!("/ip4/45.33.0.{}/tcp/{}", i + 1, 40_000 + i),
        |i| format!("/ip4/45.{}.1.1/tcp/4001", i + 100),
    );
    assert_eq!(added(&p), 3);
}

/// Connections through DNS names (one name each) share one group: names say
/// nothing about who runs the host.
#[test]
fn dns_names_do_not_bypass_the_limit() {
    let p = identify_from(
        Some(Diversity::default()),
        |i| format!("/dns4/node{i}.example.net/tcp/4001"),
        |i| format!("/ip4/45.{}.1.1/tcp/4001", i + 100),
    );
    assert_eq!(added(&p), 3);
}
