//! Address-mapper policies: which addresses of an identified peer may enter the
//! routing table.
//!
//! Addresses are classified by real address arithmetic (`std::net`), not by
//! substring tests. The TypeScript system first kept an address if its text
//! contained `127.0.0.1`, then switched to a check under which its default
//! `0.0.0.0` listen address kept private addresses in production. Here:
//!
//! - [`MapperPolicy::Passthrough`] keeps every address (tests, LANs, simulation).
//! - [`MapperPolicy::PublicOnly`] keeps only globally routable IPs and DNS names:
//!   it drops loopback, private (RFC 1918), link-local, IPv6 unique-local, CGNAT
//!   (100.64/10), unspecified, documentation, benchmark, multicast and reserved
//!   ranges, in IPv4 and IPv6 (IPv4-mapped IPv6 is classified as its IPv4), plus
//!   `localhost` names and in-memory addresses.
//! - [`MapperPolicy::Auto`] decides from the node's own listen addresses:
//!   **Passthrough when every listen address is a specific non-public one**
//!   (loopback, private, link-local, unique-local, CGNAT or in-memory: the node
//!   can only be reached by local peers, so local addresses are the useful ones);
//!   **PublicOnly otherwise**, including for `0.0.0.0` / `::` (the usual production
//!   setting) and for public IPs or DNS names. A LAN deployment that listens on
//!   `0.0.0.0` chooses Passthrough explicitly.
//! - [`MapperPolicy::Custom`] is the user's own [`AddressMapper`].
//!
//! [`PublicRanges`] lists ranges to treat as public whatever their class (a
//! private deployment on RFC 1918 space, or tests on documentation ranges):
//! an address in one of them is [`AddressScope::Public`] for every policy
//! above and for the diversity groups (`--public-ranges`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub use ipnet::IpNet;

use multiaddr::{Multiaddr, Protocol};

/// Where an address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressScope {
    /// Globally routable IP.
    Public,
    /// A DNS name other than `localhost`; assumed reachable.
    Dns,
    /// 127.0.0.0/8, ::1, `localhost`.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16).
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 100.64/10, carrier-grade NAT.
    Cgnat,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// Documentation, benchmarking, multicast, broadcast and other reserved ranges.
    Reserved,
    /// In-memory transport (`/memory/<n>`).
    Memory,
    /// No IP, DNS or memory component.
    Unknown,
}

impl AddressScope {
    /// True for scopes other peers on the internet can reach.
    pub fn is_public(self) -> bool {
        matches!(self, Self::Public | Self::Dns)
    }

    /// True for specific addresses that only local peers can reach.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            Self::Loopback
                | Self::Private
                | Self::LinkLocal
                | Self::UniqueLocal
                | Self::Cgnat
                | Self::Memory
        )
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressScope {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => AddressScope::Unspecified,
        (127, _, _) => AddressScope::Loopback,
        (10, _, _) | (192, 168, _) => AddressScope::Private,
        (172, b, _) if (16..32).contains(&b) => AddressScope::Private,
        (169, 254, _) => AddressScope::LinkLocal,
        (100, b, _) if (64..128).contains(&b) => AddressScope::Cgnat,
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressScope::Reserved,
        (198, b, _) if b == 18 || b == 19 => AddressScope::Reserved,
        (a, _, _) if a >= 224 => AddressScope::Reserved,
        _ => AddressScope::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressScope {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        AddressScope::Unspecified
    } else if ip.is_loopback() {
        AddressScope::Loopback
    } else if first & 0xffc0 == 0xfe80 {
        AddressScope::LinkLocal
    } else if first & 0xfe00 == 0xfc00 {
        AddressScope::UniqueLocal
    } else if first & 0xff00 == 0xff00 || (first == 0x2001 && ip.segments()[1] == 0x0db8) {
        AddressScope::Reserved
    } else {
        AddressScope::Public
    }
}

/// Address ranges treated as public whatever their class (see the module
/// docs). Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicRanges(Vec<IpNet>);

impl PublicRanges {
    /// These ranges.
    pub fn new(ranges: Vec<IpNet>) -> Self {
        Self(ranges)
    }

    /// The ranges.
    pub fn ranges(&self) -> &[IpNet] {
        &self.0
    }

    /// True when `ip` is in one of the ranges (an IPv4-mapped IPv6 address
    /// as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|range| range.contains(&ip))
    }

    /// [`classify`], with addresses in these ranges [`AddressScope::Public`].
    pub fn classify(&self, addr: &Multiaddr) -> AddressScope {
        if !self.0.is_empty() {
            let ip = addr.iter().find_map(|p| match p {
                Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
                Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
                _ => None,
            });
            if ip.is_some_and(|ip| self.contains(ip)) {
                return AddressScope::Public;
            }
        }
        classify(addr)
    }
}

/// Classifies an address by its first IP, DNS or memory component.
pub fn classify(addr: &Multiaddr) -> AddressScope {
    for protocol in addr.iter() {
        return match protocol {
            Protocol::Ip4(ip) => classify_v4(ip),
            Protocol::Ip6(ip) => classify_v6(ip),
            Protocol::Dns(name)
            | Protocol::Dns4(name)
            | Protocol::Dns6(name)
            | Protocol::Dnsaddr(name) => {
                let name = name.trim_end_matches('.');
                if name.eq_ignore_ascii_case("localhost")
                    || name.to_ascii_lowercase().ends_with(".localhost")
                {
                    AddressScope::Loopback
                } else {
                    AddressScope::Dns
                }
            }
            Protocol::Memory(_) => AddressScope::Memory,
            _ => continue,
        };
    }
    AddressScope::Unknown
}

/// Decides which addresses of a peer may be stored in the routing table.
pub trait AddressMapper: Send + Sync + fmt::Debug {
    /// True if `addr` may be stored.
    fn keep(&self, addr: &Multiaddr) -> bool;

    /// The addresses of `addrs` that may be stored.
    fn map(&self, addrs: &[Multiaddr]) -> Vec<Multiaddr> {
        addrs.iter().filter(|a| self.keep(a)).cloned().collect()
    }
}

/// Keeps every address.
#[derive(Debug, Clone, Copy, Default)]
pub struct Passthrough;

impl AddressMapper for Passthrough {
    fn keep(&self, _: &Multiaddr) -> bool {
        true
    }
}

/// Keeps only publicly reachable addresses (see the module docs), and those
/// in its [`PublicRanges`].
#[derive(Debug, Clone, Default)]
pub struct PublicOnly {
    /// Ranges treated as public.
    pub public_ranges: PublicRanges,
}

impl AddressMapper for PublicOnly {
    fn keep(&self, addr: &Multiaddr) -> bool {
        self.public_ranges.classify(addr).is_public()
    }
}

/// Which mapper a node uses.
#[derive(Debug, Clone, Default)]
pub enum MapperPolicy {
    /// Keep every address.
    Passthrough,
    /// Keep public addresses only.
    PublicOnly,
    /// Choose from the listen addresses (see the module docs).
    #[default]
    Auto,
    /// A user-supplied mapper.
    Custom(Arc<dyn AddressMapper>),
}

impl MapperPolicy {
    /// The mapper to use for a node listening on `listen_addrs`, with
    /// `public_ranges` treated as public.
    pub fn resolve(
        &self,
        listen_addrs: &[Multiaddr],
        public_ranges: &PublicRanges,
    ) -> Arc<dyn AddressMapper> {
        let public_only = || {
            Arc::new(PublicOnly {
                public_ranges: public_ranges.clone(),
            })
        };
        match self {
            Self::Passthrough => Arc::new(Passthrough),
            Self::PublicOnly => public_only(),
            Self::Custom(mapper) => Arc::clone(mapper),
            Self::Auto if auto_is_passthrough(listen_addrs, public_ranges) => Arc::new(Passthrough),
            Self::Auto => public_only(),
        }
    }
}

/// Auto's rule: Passthrough iff there is at least one listen address and every
/// one is a specific local address (not in `public_ranges`).
pub fn auto_is_passthrough(listen_addrs: &[Multiaddr], public_ranges: &PublicRanges) -> bool {
    !listen_addrs.is_empty()
        && listen_addrs
            .iter()
            .all(|a| public_ranges.classify(a).is_local())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn classification_table() {
        let table = [
            ("/ip4/127.0.0.1/tcp/1", AddressScope::Loopback),
            ("/ip4/127.8.9.1/tcp/1", AddressScope::Loopback),
            ("/ip6/::1/tcp/1", AddressScope::Loopback),
            ("/ip4/10.1.2.3/tcp/1", AddressScope::Private),
            ("/ip4/172.16.0.1/tcp/1", AddressScope::Private),
            ("/ip4/172.31.255.1/tcp/1", AddressScope::Private),
            ("/ip4/172.32.0.1/tcp/1", AddressScope::Public),
            ("/ip4/192.168.1.20/tcp/4001", AddressScope::Private),
            ("/ip4/100.64.0.1/tcp/1", AddressScope::Cgnat),
            ("/ip4/100.127.255.254/tcp/1", AddressScope::Cgnat),
            ("/ip4/100.128.0.1/tcp/1", AddressScope::Public),
            ("/ip4/169.254.10.1/tcp/1", AddressScope::LinkLocal),
            ("/ip6/fe80::1/tcp/1", AddressScope::LinkLocal),
            ("/ip6/fd12:3456::1/tcp/1", AddressScope::UniqueLocal),
            ("/ip6/fc00::1/tcp/1", AddressScope::UniqueLocal),
            ("/ip4/0.0.0.0/tcp/0", AddressScope::Unspecified),
            ("/ip6/::/tcp/0", AddressScope::Unspecified),
            ("/ip4/8.8.8.8/tcp/4001", AddressScope::Public),
            ("/ip4/1.1.1.1/tcp/4001/ws", AddressScope::Public),
            ("/ip6/2a01:4f8::1/tcp/4001", AddressScope::Public),
            ("/ip6/2001:db8::1/tcp/1", AddressScope::Reserved),
            ("/ip6/ff02::1/tcp/1", AddressScope::Reserved),
            ("/ip4/224.0.0.1/tcp/1", AddressScope::Reserved),
            ("/ip4/192.0.2.7/tcp/1", AddressScope::Reserved),
            ("/ip4/198.18.0.1/tcp/1", AddressScope::Reserved),
            ("/ip6/::ffff:192.168.0.1/tcp/1", AddressScope::Private),
            ("/ip6/::ffff:8.8.4.4/tcp/1", AddressScope::Public),
            ("/dns4/seed.lotusia.org/tcp/4001", AddressScope::Dns),
            ("/dnsaddr/bootstrap.example.com", AddressScope::Dns),
            ("/dns/localhost/tcp/1", AddressScope::Loopback),
            ("/dns6/LOCALHOST./tcp/1", AddressScope::Loopback),
            ("/memory/1234", AddressScope::Memory),
        ];
        for (addr, scope) in table {
            assert_eq!(classify(&ma(addr)), scope, "{addr}");
        }
    }

    #[test]
    fn public_only_keeps_public_ips_and_dns_and_nothing_else() {
        let addrs = [
            ma("/ip4/127.0.0.1/tcp/1"),
            ma("/ip4/192.168.1.2/tcp/1"),
            ma("/ip4/100.64.1.1/tcp/1"),
            ma("/ip6/fe80::1/tcp/1"),
            ma("/ip6/fd00::1/tcp/1"),
            ma("/ip4/0.0.0.0/tcp/1"),
            ma("/ip4/8.8.8.8/tcp/1"),
            ma("/ip6/2a01:4f8::1/tcp/1"),
            ma("/dns4/node.example.com/tcp/1"),
        ];
        assert_eq!(PublicOnly::default().map(&addrs), addrs[6..].to_vec());
        assert_eq!(Passthrough.map(&addrs), addrs.to_vec());
    }

    #[test]
    fn auto_choice_for_typical_listen_sets() {
        let passthrough = |addrs: &[&str]| {
            auto_is_passthrough(
                &addrs.iter().map(|a| ma(a)).collect::<Vec<_>>(),
                &PublicRanges::default(),
            )
        };
        // Tests and local simulations.
        assert!(passthrough(&["/ip4/127.0.0.1/tcp/0"]));
        assert!(passthrough(&[
            "/ip4/127.0.0.1/tcp/0",
            "/ip4/127.0.0.1/tcp/0/ws"
        ]));
        assert!(passthrough(&["/memory/7"]));
        assert!(passthrough(&[
            "/ip4/192.168.1.5/tcp/4001",
            "/ip6/::1/tcp/4001"
        ]));
        // Production defaults and public nodes.
        assert!(!passthrough(&["/ip4/0.0.0.0/tcp/4001"]));
        assert!(!passthrough(&["/ip6/::/tcp/4001"]));
        assert!(!passthrough(&[
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/0.0.0.0/tcp/4002/ws"
        ]));
        assert!(!passthrough(&["/ip4/203.0.114.9/tcp/4001"]));
        assert!(!passthrough(&[]));
        // And resolve() follows the rule or the override.
        let local = [ma("/ip4/127.0.0.1/tcp/0")];
        assert!(
            MapperPolicy::Auto
                .resolve(&local, &PublicRanges::default())
                .keep(&ma("/ip4/127.0.0.1/tcp/5"))
        );
        assert!(
            !MapperPolicy::PublicOnly
                .resolve(&local, &PublicRanges::default())
                .keep(&ma("/ip4/127.0.0.1/tcp/5"))
        );
        let any = [ma("/ip4/0.0.0.0/tcp/0")];
        assert!(
            !MapperPolicy::Auto
                .resolve(&any, &PublicRanges::default())
                .keep(&ma("/ip4/10.0.0.1/tcp/5"))
        );
        assert!(
            MapperPolicy::Passthrough
                .resolve(&any, &PublicRanges::default())
                .keep(&ma("/ip4/10.0.0.1/tcp/5"))
        );
    }

    #[test]
    fn public_ranges_make_their_addresses_public_for_every_policy() {
        let ranges = PublicRanges::new(vec![
            "198.51.100.0/24".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
            "10.1.0.0/16".parse().unwrap(),
        ]);
        for (addr, scope) in [
            ("/ip4/198.51.100.7/tcp/1", AddressScope::Public),
            ("/ip4/203.0.113.7/tcp/1", AddressScope::Reserved),
            ("/ip6/2001:db8:1::5/tcp/1", AddressScope::Public),
            ("/ip6/2001:db8:2::5/tcp/1", AddressScope::Reserved),
            ("/ip6/::ffff:198.51.100.9/tcp/1", AddressScope::Public),
            ("/ip4/10.1.2.3/tcp/1", AddressScope::Public),
            ("/ip4/10.2.2.3/tcp/1", AddressScope::Private),
            // A relayed address is classified by its relay's IP.
            (
                "/ip4/198.51.100.10/tcp/4001/p2p/12D3KooWGzG2XNHqCbYBk4JrDoTjvzLDRbQEFjXAdN2FEv3HTwqr/p2p-circuit",
                AddressScope::Public,
            ),
        ] {
            assert_eq!(ranges.classify(&ma(addr)), scope, "{addr}");
        }
        let public_only = MapperPolicy::PublicOnly.resolve(&[], &ranges);
        assert!(public_only.keep(&ma("/ip4/198.51.100.7/tcp/1")));
        assert!(!public_only.keep(&ma("/ip4/203.0.113.7/tcp/1")));
        // A node listening in a public range is public: Auto keeps only
        // public addresses (and those in the ranges).
        let listen = [ma("/ip4/198.51.100.10/tcp/4001")];
        assert!(!auto_is_passthrough(&listen, &ranges));
        let auto = MapperPolicy::Auto.resolve(&listen, &ranges);
        assert!(auto.keep(&ma("/ip4/198.51.100.11/tcp/4001")));
        assert!(!auto.keep(&ma("/ip4/192.168.1.1/tcp/4001")));
        // A private listener stays Passthrough unless its range is listed.
        let lan = [ma("/ip4/10.2.0.5/tcp/4001")];
        assert!(auto_is_passthrough(&lan, &ranges));
        assert!(!auto_is_passthrough(
            &[ma("/ip4/10.1.0.5/tcp/4001")],
            &ranges
        ));
    }
}
