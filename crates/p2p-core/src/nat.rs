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
//! Documentation and private address ranges are probed too (libp2p's
//! `only_global_ips` is off): in a private deployment or a LAN they are the
//! addresses that matter, and a dial-back to an address nobody can reach
//! simply fails.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId, autonat};
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
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            external_addresses: Vec::new(),
            autonat: true,
            probe_delay: Duration::from_secs(15),
            probe_interval: Duration::from_secs(15 * 60),
            retry_interval: Duration::from_secs(90),
        }
    }
}

impl NatConfig {
    /// libp2p's AutoNAT behaviour for this configuration (probing and serving
    /// off when `autonat` is false).
    pub(crate) fn autonat(
        &self,
        local: PeerId,
    ) -> libp2p::swarm::behaviour::toggle::Toggle<autonat::Behaviour> {
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
}

/// The node's reachability as AutoNAT last reported it, and the address it
/// confirmed (the one to withdraw when it turns private).
#[derive(Debug, Default)]
pub(crate) struct Reachability {
    confirmed: Option<Multiaddr>,
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
    /// Takes AutoNAT's new status.
    pub(crate) fn changed(&mut self, status: autonat::NatStatus) -> Change {
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
