//! What an address says about the connection it leads to.

use multiaddr::{Multiaddr, Protocol};

/// True when `addr` goes through a circuit relay (`…/p2p-circuit…`): the
/// connection is limited by the relay (duration, bytes), and an address that
/// only a relay makes reachable does not make a node a DHT server.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_circuit_addresses_are_relayed() {
        let relayed: Multiaddr = "/ip4/198.51.100.10/tcp/4001/p2p/12D3KooWGzG2XNHqCbYBk4JrDoTjvzLDRbQEFjXAdN2FEv3HTwqr/p2p-circuit"
            .parse()
            .unwrap();
        let direct: Multiaddr = "/ip4/198.51.100.10/tcp/4001".parse().unwrap();
        assert!(is_relayed(&relayed));
        assert!(!is_relayed(&direct));
    }
}
