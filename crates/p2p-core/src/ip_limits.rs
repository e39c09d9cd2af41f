//! Inbound connections per IP address block, denied before the handshake.
//!
//! Identities are free, addresses are not: one machine can mint 200 PeerIds
//! but it has one IPv4 address (or one IPv6 /56–/48 from its provider). None of
//! libp2p's guards count by address, so this behaviour does, in
//! `handle_pending_inbound_connection` — before Noise spends a key exchange on
//! the connection. Groups: an IPv4 address (/32; IPv4-mapped IPv6 counts as
//! IPv4), and for IPv6 both the /56 and the /48 it lies in. Loopback is exempt
//! unless asked (local processes belong to the machine's operator, and tests
//! run many nodes on 127.0.0.1).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};

/// Inbound connection caps per address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IpLimits {
    /// Per IPv4 address. Default 8: a household behind one NAT runs a few
    /// wallets; an attacker's 200 identities get 8 connections.
    pub per_ipv4: u32,
    /// Per IPv6 /56 (what a provider gives one customer). Default 8.
    pub per_ipv6_56: u32,
    /// Per IPv6 /48 (one site or a small provider). Default 32.
    pub per_ipv6_48: u32,
    /// Count loopback connections too. Default false.
    pub limit_loopback: bool,
}

impl Default for IpLimits {
    fn default() -> Self {
        Self {
            per_ipv4: 8,
            per_ipv6_56: 8,
            per_ipv6_48: 32,
            limit_loopback: false,
        }
    }
}

/// An address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Block {
    V4([u8; 4]),
    V6Slash56([u8; 7]),
    V6Slash48([u8; 6]),
}

/// A connection denied because its address block is full.
#[derive(Debug, thiserror::Error)]
#[error("too many inbound connections from the block of {ip} (limit {limit})")]
pub struct IpLimitExceeded {
    /// The remote address.
    pub ip: IpAddr,
    /// The limit that was reached.
    pub limit: u32,
}

fn remote_ip(address: &Multiaddr) -> Option<IpAddr> {
    address.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4)),
        _ => None,
    })
}

impl IpLimits {
    fn blocks(&self, ip: IpAddr) -> Vec<(Block, u32)> {
        match ip {
            IpAddr::V4(v4) => vec![(Block::V4(v4.octets()), self.per_ipv4)],
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let mut b56 = [0u8; 7];
                let mut b48 = [0u8; 6];
                b56.copy_from_slice(o.get(..7).unwrap_or(&[0; 7]));
                b48.copy_from_slice(o.get(..6).unwrap_or(&[0; 6]));
                vec![
                    (Block::V6Slash56(b56), self.per_ipv6_56),
                    (Block::V6Slash48(b48), self.per_ipv6_48),
                ]
            }
        }
    }
}

/// The behaviour enforcing [`IpLimits`].
pub(crate) struct IpLimiter {
    limits: IpLimits,
    counts: HashMap<Block, u32>,
    by_connection: HashMap<ConnectionId, Vec<Block>>,
    denied: Arc<AtomicU64>,
}

impl IpLimiter {
    pub(crate) fn new(limits: IpLimits, denied: Arc<AtomicU64>) -> Self {
        Self {
            limits,
            counts: HashMap::new(),
            by_connection: HashMap::new(),
            denied,
        }
    }

    fn release(&mut self, connection: ConnectionId) {
        for block in self.by_connection.remove(&connection).unwrap_or_default() {
            if let Some(count) = self.counts.get_mut(&block) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.counts.remove(&block);
                }
            }
        }
    }
}

impl NetworkBehaviour for IpLimiter {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = remote_ip(remote) else {
            return Ok(()); // memory transport, no address to count
        };
        if ip.is_loopback() && !self.limits.limit_loopback {
            return Ok(());
        }
        let blocks = self.limits.blocks(ip);
        for (block, limit) in &blocks {
            if self.counts.get(block).copied().unwrap_or(0) >= *limit {
                self.denied.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%ip, limit, "inbound connection denied: address block full");
                return Err(ConnectionDenied::new(IpLimitExceeded { ip, limit: *limit }));
            }
        }
        for (block, _) in &blocks {
            *self.counts.entry(*block).or_default() += 1;
        }
        self.by_connection
            .insert(connection_id, blocks.into_iter().map(|(b, _)| b).collect());
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.release(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(limiter: &mut IpLimiter, addr: &str) -> Result<ConnectionId, ConnectionDenied> {
        let id = ConnectionId::new_unchecked(rand_id());
        let remote: Multiaddr = addr.parse().unwrap();
        limiter
            .handle_pending_inbound_connection(id, &remote, &remote)
            .map(|()| id)
    }

    fn rand_id() -> usize {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        usize::try_from(NEXT.fetch_add(1, Ordering::Relaxed)).unwrap()
    }

    #[test]
    fn one_ipv4_address_gets_its_quota_and_no_more() {
        let denied = Arc::new(AtomicU64::new(0));
        let mut limiter = IpLimiter::new(IpLimits::default(), Arc::clone(&denied));
        let ids: Vec<_> = (0..8)
            .map(|_| pending(&mut limiter, "/ip4/203.0.113.9/tcp/1").unwrap())
            .collect();
        assert!(pending(&mut limiter, "/ip4/203.0.113.9/tcp/1").is_err());
        assert!(
            pending(&mut limiter, "/ip6/::ffff:203.0.113.9/tcp/1").is_err(),
            "mapped"
        );
        assert!(pending(&mut limiter, "/ip4/203.0.113.10/tcp/1").is_ok());
        assert_eq!(denied.load(Ordering::Relaxed), 2);
        limiter.release(ids[0]);
        assert!(pending(&mut limiter, "/ip4/203.0.113.9/tcp/1").is_ok());
        // Loopback and memory are exempt by default.
        for _ in 0..50 {
            pending(&mut limiter, "/ip4/127.0.0.1/tcp/1").unwrap();
            pending(&mut limiter, "/memory/7").unwrap();
        }
    }

    #[test]
    fn ipv6_counts_by_56_and_by_48() {
        let mut limiter = IpLimiter::new(IpLimits::default(), Arc::default());
        for i in 0..8 {
            pending(&mut limiter, &format!("/ip6/2001:db8:1:100::{i}/tcp/1")).unwrap();
        }
        assert!(
            pending(&mut limiter, "/ip6/2001:db8:1:1ff::1/tcp/1").is_err(),
            "same /56"
        );
        for i in 0..24 {
            pending(
                &mut limiter,
                &format!("/ip6/2001:db8:1:{:x}00::1/tcp/1", i + 2),
            )
            .unwrap();
        }
        assert!(
            pending(&mut limiter, "/ip6/2001:db8:1:ff00::1/tcp/1").is_err(),
            "/48 full"
        );
        assert!(pending(&mut limiter, "/ip6/2001:db8:2::1/tcp/1").is_ok());
    }
}
