//! Reachability: whether peers can dial this node, and which of its addresses
//! they can dial.
//!
//! Two sources confirm an external address, and kad's auto mode serves the
//! DHT exactly while one is confirmed (`DhtModeSetting::Auto`):
//! - the operator declares one ([`NatConfig::external_addresses`],
//!   `--external-address`): confirmed at start;
//! - AutoNAT (libp2p's v1): the node asks connected peers to dial it back at
//!   the addresses they observe it at (identify) and listens on; a dial-back
//!   that gets through confirms that address (public), dial-backs that all
//!   fail make it private. Every node also answers other peers' probes,
//!   bounded by libp2p's throttles (30 probes per period in all, 3 per peer).
//!
//! libp2p's AutoNAT v1 never withdraws an address it confirmed (rust-libp2p
//! #4863): [`Reachability`] withdraws it when the status turns private or
//! unknown, so a node that loses its port forward goes back to being a DHT
//! client. v1 rather than v2: v2 tests each address once for the life of the
//! node and never expires one, so it cannot notice that a node became
//! unreachable; v1 re-probes and reports a status.
//!
//! A node that is not publicly reachable keeps reservations on the relays
//! it is given ([`NatConfig::relays`], Circuit Relay v2, see
//! [`crate::relays`]) and is reachable at their `/p2p-circuit` addresses;
//! DCUtR then upgrades a relayed connection to a direct one where the NATs
//! allow (hole punching, [`NatConfig::hole_punching`]). A node with a public
//! address can serve as a relay for others ([`NatConfig::relay_server`]).
//!
//! Documentation and private address ranges are probed too (libp2p's
//! `only_global_ips` is off): in a private deployment or a LAN they are the
//! addresses that matter, and a dial-back to an address nobody can reach
//! simply fails.

use std::num::NonZeroU32;
use std::time::Duration;

use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Multiaddr, PeerId, autonat, dcutr, relay};
use p2p_types::NodeEvent;

/// How a node learns whether it is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatConfig {
    /// Addresses this node is reachable at, declared by its operator (a
    /// public IP with a port forward, a DNS name): confirmed at start, so a
    /// DHT in auto mode serves from the start. Default none.
    pub external_addresses: Vec<Multiaddr>,
    /// Probe our reachability with AutoNAT, and answer others' probes.
    /// Default true.
    pub autonat: bool,
    /// Delay before the first probe, so identify has told us our observed
    /// address. Default 15 s (libp2p's).
    pub probe_delay: Duration,
    /// Time between probes once the status is known. Default 15 min.
    pub probe_interval: Duration,
    /// Time between probes while the status is unknown or after a probe that
    /// found no peer to ask. Default 90 s (libp2p's).
    pub retry_interval: Duration,
    /// Relays (`…/p2p/<relay id>`) on which the node keeps a reservation
    /// while it is not known to be publicly reachable (no declared external
    /// address, AutoNAT not saying public), so peers reach it at
    /// `<relay>/p2p-circuit/p2p/<us>`. Default none.
    pub relays: Vec<Multiaddr>,
    /// Serve as a relay for other peers, within these bounds. The relay
    /// serves once the node has a confirmed external address (declared, or
    /// confirmed by AutoNAT). Default off.
    pub relay_server: Option<RelayServerConfig>,
    /// Upgrade relayed connections to direct ones by hole punching (DCUtR).
    /// Default true.
    pub hole_punching: bool,
}

/// A token bucket: at most `burst` at once, one more every `refill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRate {
    /// Tokens when full.
    pub burst: NonZeroU32,
    /// Time to regain one token.
    pub refill: Duration,
}

impl RelayRate {
    const fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst: match NonZeroU32::new(burst) {
                Some(burst) => burst,
                None => NonZeroU32::MIN,
            },
            refill,
        }
    }
}

/// Bounds of a relay server (Circuit Relay v2 "hop"). The defaults are
/// libp2p's, except the byte limit per circuit (1 MiB, libp2p 128 KiB: a
/// signing session's messages fit while hole punching runs; bulk transfers
/// wait for the direct connection).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayServerConfig {
    /// Reservations held at once. Default 128.
    pub max_reservations: usize,
    /// Reservations one peer may hold. Default 4.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the client renews it. Default 1 h.
    pub reservation_duration: Duration,
    /// New reservations per peer. Default 30, one more every 2 min.
    pub reservation_rate_per_peer: RelayRate,
    /// New reservations per IP address. Default 60, one more every minute.
    pub reservation_rate_per_ip: RelayRate,
    /// Circuits relayed at once. Default 16.
    pub max_circuits: usize,
    /// Circuits one peer may have at once. Default 4.
    pub max_circuits_per_peer: usize,
    /// A circuit is closed after this long. Default 2 min.
    pub max_circuit_duration: Duration,
    /// A circuit is closed after relaying this many bytes. Default 1 MiB.
    pub max_circuit_bytes: u64,
    /// New circuits per source peer. Default 30, one more every 2 min.
    pub circuit_rate_per_peer: RelayRate,
    /// New circuits per source IP address. Default 60, one more every
    /// minute (libp2p's). This bounds a rate, not how many circuits one
    /// address holds at once (libp2p has no such cap): many wallets behind
    /// one carrier NAT share an address, and a tighter default refused
    /// them. Lower it on a relay that serves few users.
    pub circuit_rate_per_ip: RelayRate,
}

impl Default for RelayServerConfig {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_reservations_per_peer: 4,
            reservation_duration: Duration::from_secs(60 * 60),
            reservation_rate_per_peer: RelayRate::new(30, Duration::from_secs(120)),
            reservation_rate_per_ip: RelayRate::new(60, Duration::from_secs(60)),
            max_circuits: 16,
            max_circuits_per_peer: 4,
            max_circuit_duration: Duration::from_secs(120),
            max_circuit_bytes: 1 << 20,
            circuit_rate_per_peer: RelayRate::new(30, Duration::from_secs(120)),
            circuit_rate_per_ip: RelayRate::new(60, Duration::from_secs(60)),
        }
    }
}

impl RelayServerConfig {
    fn to_libp2p(&self) -> relay::Config {
        relay::Config {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_peer,
            reservation_duration: self.reservation_duration,
            reservation_rate_limiters: Vec::new(),
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_duration: self.max_circuit_duration,
            max_circuit_bytes: self.max_circuit_bytes,
            circuit_src_rate_limiters: Vec::new(),
        }
        .reservation_rate_per_peer(
            self.reservation_rate_per_peer.burst,
            self.reservation_rate_per_peer.refill,
        )
        .reservation_rate_per_ip(
            self.reservation_rate_per_ip.burst,
            self.reservation_rate_per_ip.refill,
        )
        .circuit_src_per_peer(
            self.circuit_rate_per_peer.burst,
            self.circuit_rate_per_peer.refill,
        )
        .circuit_src_per_ip(
            self.circuit_rate_per_ip.burst,
            self.circuit_rate_per_ip.refill,
        )
    }
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            external_addresses: Vec::new(),
            autonat: true,
            probe_delay: Duration::from_secs(15),
            probe_interval: Duration::from_secs(15 * 60),
            retry_interval: Duration::from_secs(90),
            relays: Vec::new(),
            relay_server: None,
            hole_punching: true,
        }
    }
}

impl NatConfig {
    /// libp2p's AutoNAT behaviour for this configuration (probing and serving
    /// off when `autonat` is false).
    pub(crate) fn autonat(&self, local: PeerId) -> Toggle<autonat::Behaviour> {
        let behaviour = self.autonat.then(|| {
            autonat::Behaviour::new(
                local,
                autonat::Config {
                    boot_delay: self.probe_delay,
                    refresh_interval: self.probe_interval,
                    retry_interval: self.retry_interval,
                    // One answer decides; a later probe revises it.
                    confidence_max: 1,
                    only_global_ips: false,
                    ..autonat::Config::default()
                },
            )
        });
        behaviour.into()
    }

    /// libp2p's relay server, when this node is one.
    pub(crate) fn relay_server(&self, local: PeerId) -> Toggle<relay::Behaviour> {
        self.relay_server
            .as_ref()
            .map(|config| relay::Behaviour::new(local, config.to_libp2p()))
            .into()
    }

    /// libp2p's DCUtR, when hole punching is on.
    pub(crate) fn hole_punching(&self, local: PeerId) -> Toggle<dcutr::Behaviour> {
        self.hole_punching
            .then(|| dcutr::Behaviour::new(local))
            .into()
    }
}

/// The node's reachability as AutoNAT last reported it, and the address it
/// confirmed (the one to withdraw when it turns private).
#[derive(Debug, Default)]
pub(crate) struct Reachability {
    confirmed: Option<Multiaddr>,
    status: p2p_types::Reachability,
}

/// What the event loop does with a status change.
pub(crate) struct Change {
    /// An address AutoNAT confirmed earlier and that no longer holds: the
    /// loop removes it from the swarm's external addresses.
    pub(crate) withdraw: Option<Multiaddr>,
    /// The status to report.
    pub(crate) status: p2p_types::Reachability,
    /// The address AutoNAT confirmed, when public.
    pub(crate) confirmed: Option<Multiaddr>,
}

impl Reachability {
    /// The status last reported.
    pub(crate) fn status(&self) -> p2p_types::Reachability {
        self.status
    }

    /// Takes AutoNAT's new status.
    pub(crate) fn changed(&mut self, status: autonat::NatStatus) -> Change {
        let change = self.change(status);
        self.status = change.status;
        change
    }

    fn change(&mut self, status: autonat::NatStatus) -> Change {
        match status {
            autonat::NatStatus::Public(address) => {
                let previous = self.confirmed.replace(address.clone());
                Change {
                    withdraw: previous.filter(|p| *p != address),
                    status: p2p_types::Reachability::Public,
                    confirmed: Some(address),
                }
            }
            autonat::NatStatus::Private => Change {
                withdraw: self.confirmed.take(),
                status: p2p_types::Reachability::Private,
                confirmed: None,
            },
            autonat::NatStatus::Unknown => Change {
                withdraw: self.confirmed.take(),
                status: p2p_types::Reachability::Unknown,
                confirmed: None,
            },
        }
    }
}

/// The event reporting `status` with the node's confirmed addresses.
pub(crate) fn event(status: p2p_types::Reachability, addrs: Vec<Multiaddr>) -> NodeEvent {
    NodeEvent::Reachability { status, addrs }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_node_that_turns_private_withdraws_the_address_autonat_confirmed() {
        let mut reachability = Reachability::default();
        let public = addr("/ip4/198.51.100.10/tcp/4001");
        let change = reachability.changed(autonat::NatStatus::Public(public.clone()));
        assert_eq!(change.status, p2p_types::Reachability::Public);
        assert_eq!(change.withdraw, None);
        // The same address again withdraws nothing; another replaces it.
        assert_eq!(
            reachability
                .changed(autonat::NatStatus::Public(public.clone()))
                .withdraw,
            None
        );
        let moved = addr("/ip4/198.51.100.11/tcp/4001");
        assert_eq!(
            reachability
                .changed(autonat::NatStatus::Public(moved.clone()))
                .withdraw,
            Some(public)
        );
        let change = reachability.changed(autonat::NatStatus::Private);
        assert_eq!(change.status, p2p_types::Reachability::Private);
        assert_eq!(change.withdraw, Some(moved));
        assert_eq!(
            reachability.changed(autonat::NatStatus::Unknown).withdraw,
            None
        );
    }
}
