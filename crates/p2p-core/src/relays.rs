//! The relay reservations a node keeps while it is not publicly reachable
//! ([`crate::NatConfig::relays`]).
//!
//! A reservation is a listener on `<relay>/p2p-circuit`: libp2p's relay client
//! dials the relay, asks for a reservation, renews it, and reports the
//! relayed address as a new listen address (and as a confirmed external
//! address, which identify and provider records then carry). When the
//! listener closes (the relay went away or refused), it is asked for again
//! after a growing delay. While AutoNAT says the node is public, or the
//! operator declared an external address, no reservation is kept.

use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// First delay before asking a failed relay or bootstrap peer again.
const REDIAL_BASE: Duration = Duration::from_secs(1);
/// Longest delay between attempts.
const REDIAL_MAX: Duration = Duration::from_secs(60);

/// The delay before attempt `failures + 1`: 1 s doubling up to 60 s.
pub(crate) fn redial_delay(failures: u32) -> Duration {
    REDIAL_BASE
        .saturating_mul(1u32 << failures.min(6))
        .min(REDIAL_MAX)
}

/// One relay and our reservation on it.
#[derive(Debug)]
struct Relay {
    /// The relay's address, ending in `/p2p/<relay id>`.
    address: Multiaddr,
    peer: Option<PeerId>,
    /// The circuit listener while we hold or ask for a reservation.
    listener: Option<ListenerId>,
    /// True once the relay granted the reservation (its renewals report the
    /// address again).
    reserved: bool,
    failures: u32,
    /// When to ask next; `None` while a listener exists.
    next_attempt: Option<Instant>,
}

/// Every relay the node was given and its reservation.
#[derive(Debug)]
pub(crate) struct Relays {
    relays: Vec<Relay>,
    /// True while the node is not known to be publicly reachable.
    wanted: bool,
    /// The operator declared an external address: never wanted.
    declared: bool,
}

/// A reservation the relay granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reserved {
    /// The relay.
    pub(crate) relay: Option<PeerId>,
    /// Where peers reach us through it.
    pub(crate) address: Multiaddr,
}

impl Relays {
    /// Reservations on `relays`, wanted from the start unless the node is
    /// declared publicly reachable.
    pub(crate) fn new(relays: &[Multiaddr], declared_public: bool) -> Self {
        let now = Instant::now();
        Self {
            relays: relays
                .iter()
                .map(|address| Relay {
                    peer: match address.iter().last() {
                        Some(Protocol::P2p(peer)) => Some(peer),
                        _ => None,
                    },
                    address: address.clone(),
                    listener: None,
                    reserved: false,
                    failures: 0,
                    next_attempt: Some(now),
                })
                .collect(),
            wanted: !declared_public,
            declared: declared_public,
        }
    }

    /// When the next reservation is due, if one is.
    pub(crate) fn next_attempt(&self) -> Option<Instant> {
        if !self.wanted {
            return None;
        }
        self.relays.iter().filter_map(|r| r.next_attempt).min()
    }

    /// The circuit addresses to listen on now; each is handed back with
    /// [`Relays::listening`] (or [`Relays::failed`] when listening failed).
    pub(crate) fn due(&mut self, now: Instant) -> Vec<(usize, Multiaddr)> {
        if !self.wanted {
            return Vec::new();
        }
        let mut due = Vec::new();
        for (index, relay) in self.relays.iter_mut().enumerate() {
            if relay.listener.is_none() && relay.next_attempt.is_some_and(|at| at <= now) {
                relay.next_attempt = None;
                due.push((index, relay.address.clone().with(Protocol::P2pCircuit)));
            }
        }
        due
    }

    /// Relay `index`'s circuit listener is `listener`.
    pub(crate) fn listening(&mut self, index: usize, listener: ListenerId) {
        if let Some(relay) = self.relays.get_mut(index) {
            relay.listener = Some(listener);
        }
    }

    /// Asking relay `index` failed before a listener existed.
    pub(crate) fn failed(&mut self, index: usize) {
        if let Some(relay) = self.relays.get_mut(index) {
            relay.failures += 1;
            relay.next_attempt = Some(Instant::now() + redial_delay(relay.failures));
        }
    }

    /// `listener` reported `address`: `None` when it is not one of ours,
    /// `Some(Some(_))` when the relay accepted our reservation, `Some(None)`
    /// when it renewed one we hold.
    pub(crate) fn reserved(
        &mut self,
        listener: ListenerId,
        address: &Multiaddr,
    ) -> Option<Option<Reserved>> {
        let relay = self
            .relays
            .iter_mut()
            .find(|r| r.listener == Some(listener))?;
        relay.failures = 0;
        let new = !std::mem::replace(&mut relay.reserved, true);
        Some(new.then(|| Reserved {
            relay: relay.peer,
            address: address.clone(),
        }))
    }

    /// `listener` closed: its relay is asked again later (sooner after a
    /// reservation that held, later after repeated failures). Returns the
    /// relay, when the listener was one of ours.
    pub(crate) fn closed(&mut self, listener: ListenerId) -> Option<Option<PeerId>> {
        let wanted = self.wanted;
        let relay = self
            .relays
            .iter_mut()
            .find(|r| r.listener == Some(listener))?;
        relay.listener = None;
        relay.reserved = false;
        relay.failures += 1;
        relay.next_attempt = wanted.then(|| Instant::now() + redial_delay(relay.failures));
        Some(relay.peer)
    }

    /// The node's reachability changed: reservations are wanted while it is
    /// not public (and no external address was declared). Returns the
    /// listeners to close, with their relays, when they no longer are.
    pub(crate) fn set_public(&mut self, public: bool) -> Vec<(ListenerId, Option<PeerId>)> {
        let wanted = !public && !self.declared;
        if wanted == self.wanted {
            return Vec::new();
        }
        self.wanted = wanted;
        let now = Instant::now();
        let mut close = Vec::new();
        for relay in &mut self.relays {
            if wanted {
                relay.failures = 0;
                relay.next_attempt = Some(now);
            } else {
                close.extend(relay.listener.take().map(|l| (l, relay.peer)));
                relay.reserved = false;
                relay.next_attempt = None;
            }
        }
        close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_addr() -> Multiaddr {
        format!("/ip4/198.51.100.10/tcp/4001/p2p/{}", PeerId::random())
            .parse()
            .unwrap()
    }

    #[test]
    fn a_node_not_known_public_asks_at_once_and_again_after_a_loss() {
        let mut relays = Relays::new(&[relay_addr()], false);
        let due = relays.due(Instant::now());
        assert_eq!(due.len(), 1);
        assert!(due[0].1.iter().any(|p| p == Protocol::P2pCircuit));
        let listener = ListenerId::next();
        relays.listening(0, listener);
        // Listening: nothing more is due.
        assert!(
            relays
                .due(Instant::now() + Duration::from_secs(600))
                .is_empty()
        );
        let circuit: Multiaddr = "/ip4/198.51.100.10/tcp/4001/p2p-circuit".parse().unwrap();
        assert!(matches!(relays.reserved(listener, &circuit), Some(Some(_))));
        // The relay renews it: reported once.
        assert_eq!(relays.reserved(listener, &circuit), Some(None));
        assert!(relays.closed(listener).is_some(), "one of ours");
        assert_eq!(relays.closed(listener), None, "closed already");
        let next = relays.next_attempt().expect("asked again");
        assert!(relays.due(next - Duration::from_millis(1)).is_empty());
        assert_eq!(relays.due(next).len(), 1);
    }

    #[test]
    fn a_node_with_a_declared_address_keeps_no_reservation() {
        let mut relays = Relays::new(&[relay_addr()], true);
        assert!(relays.due(Instant::now()).is_empty());
        assert_eq!(relays.next_attempt(), None);
        // AutoNAT's private does not override the operator.
        assert!(relays.set_public(false).is_empty());
        assert!(relays.due(Instant::now()).is_empty());
    }

    #[test]
    fn a_node_that_turns_public_gives_its_reservation_up() {
        let mut relays = Relays::new(&[relay_addr()], false);
        assert!(relays.set_public(false).is_empty(), "wanted already");
        let due = relays.due(Instant::now());
        assert_eq!(due.len(), 1);
        let listener = ListenerId::next();
        relays.listening(due[0].0, listener);
        // Public: the reservation is given up, not asked again.
        assert_eq!(relays.set_public(true).len(), 1);
        assert_eq!(relays.set_public(true), vec![], "once");
        assert_eq!(relays.next_attempt(), None);
    }

    #[test]
    fn the_redial_delay_doubles_up_to_a_minute() {
        assert_eq!(redial_delay(0), Duration::from_secs(1));
        assert_eq!(redial_delay(3), Duration::from_secs(8));
        assert_eq!(redial_delay(30), Duration::from_secs(60));
    }
}
