//! Swarms on the memory transport (Noise, yamux) for testing DHT behaviours
//! without a node: build one, connect two, and drive a set of them from the
//! test's task until a condition holds, with a deadline on every wait.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, Transport, noise, yamux};

/// Upper bound on any single wait; waits end as soon as their condition holds.
pub const WAIT: Duration = Duration::from_secs(20);

/// A plain libp2p-kad behaviour: what an attacker (or any other
/// implementation) runs, with none of our rules.
pub type RawKad = kad::Behaviour<MemoryStore>;

/// One swarm, its listen address, and what it reported so far.
pub struct Node<B: NetworkBehaviour> {
    /// The swarm.
    pub swarm: Swarm<B>,
    /// Where it listens (`/memory/<n>`, chosen by the transport).
    pub addr: Multiaddr,
    /// Every behaviour event, in order.
    pub events: Vec<B::ToSwarm>,
    /// Peers with at least one open connection.
    pub connected: HashSet<PeerId>,
    /// Every address a dial failed at, with its peer.
    pub failed_dials: Vec<(Option<PeerId>, Multiaddr)>,
}

/// A swarm of `behaviour` listening on a fresh memory address.
pub async fn node<B: NetworkBehaviour>(
    keypair: Keypair,
    behaviour: impl FnOnce(PeerId) -> B,
) -> Node<B> {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise keys"))
                .multiplex(yamux::Config::default())
        })
        .unwrap()
        .with_behaviour(|key| behaviour(key.public().to_peer_id()))
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(WAIT))
        .build();
    swarm.listen_on("/memory/0".parse().unwrap()).unwrap();
    let addr = tokio::time::timeout(WAIT, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        }
    })
    .await
    .expect("no listen address");
    Node {
        swarm,
        addr,
        events: Vec::new(),
        connected: HashSet::new(),
        failed_dials: Vec::new(),
    }
}

impl<B: NetworkBehaviour> Node<B> {
    /// This node's PeerId.
    pub fn id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Dials `peer` at `addr` (the connection is up once both list each
    /// other in `connected`; see [`Net::connect`]).
    pub fn dial(&mut self, peer: PeerId, addr: Multiaddr) {
        self.swarm
            .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build())
            .unwrap();
    }

    /// Handles everything the swarm has ready, recording it.
    fn drain(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(event)) = self.swarm.poll_next_unpin(cx) {
            match event {
                SwarmEvent::Behaviour(event) => self.events.push(event),
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    self.connected.insert(peer_id);
                }
                SwarmEvent::ConnectionClosed {
                    peer_id,
                    num_established: 0,
                    ..
                } => {
                    self.connected.remove(&peer_id);
                }
                SwarmEvent::OutgoingConnectionError {
                    peer_id,
                    error: libp2p::swarm::DialError::Transport(failed),
                    ..
                } => {
                    self.failed_dials
                        .extend(failed.into_iter().map(|(addr, _)| (peer_id, addr)));
                }
                _ => {}
            }
        }
    }
}

/// A raw kad behaviour on our protocol id, in `mode`.
pub fn raw_kad(local: PeerId, mode: kad::Mode) -> RawKad {
    let config = kad::Config::new(StreamProtocol::new(p2p_dht::DEFAULT_PROTOCOL));
    let mut kad = kad::Behaviour::with_config(local, MemoryStore::new(local), config);
    kad.set_mode(Some(mode));
    kad
}

/// Swarms of the behaviour under test (`nodes`) and raw kad swarms (`raw`),
/// driven together.
pub struct Net<B: NetworkBehaviour> {
    /// Swarms of the behaviour under test.
    pub nodes: Vec<Node<B>>,
    /// Raw kad swarms.
    pub raw: Vec<Node<RawKad>>,
}

impl<B: NetworkBehaviour> Net<B> {
    /// Drives every swarm until `done` returns a value, which is returned;
    /// panics naming `what` after [`WAIT`].
    pub async fn drive_until<T>(
        &mut self,
        what: &str,
        mut done: impl FnMut(&mut Self) -> Option<T>,
    ) -> T {
        let run = poll_fn(|cx| {
            for node in &mut self.nodes {
                node.drain(cx);
            }
            for node in &mut self.raw {
                node.drain(cx);
            }
            match done(self) {
                Some(value) => Poll::Ready(value),
                None => Poll::Pending,
            }
        });
        match tokio::time::timeout(WAIT, run).await {
            Ok(value) => value,
            Err(_) => panic!("timed out waiting for: {what}"),
        }
    }

    /// Connects `nodes[from]` to `nodes[to]` and waits until both see it.
    pub async fn connect(&mut self, from: usize, to: usize) {
        let (a, b) = (self.nodes[from].id(), self.nodes[to].id());
        let target = &self.nodes[to];
        let (addr, id) = (target.addr.clone(), target.id());
        self.nodes[from].dial(id, addr);
        self.drive_until("connection", |net| {
            (net.nodes[from].connected.contains(&b) && net.nodes[to].connected.contains(&a))
                .then_some(())
        })
        .await;
    }

    /// Connects `raw[from]` to `nodes[to]` and waits until both see it.
    pub async fn connect_raw(&mut self, from: usize, to: usize) {
        let (a, b) = (self.raw[from].id(), self.nodes[to].id());
        let target = &self.nodes[to];
        let (addr, id) = (target.addr.clone(), target.id());
        self.raw[from].dial(id, addr);
        self.drive_until("raw connection", |net| {
            (net.raw[from].connected.contains(&b) && net.nodes[to].connected.contains(&a))
                .then_some(())
        })
        .await;
    }
}

/// A server-mode [`p2p_dht::Behaviour`] keeping every address (memory
/// addresses included), with `rates`.
pub fn dht_config(rates: p2p_dht::DhtRates) -> p2p_dht::BehaviourConfig {
    p2p_dht::BehaviourConfig {
        dht: {
            let mut c = p2p_dht::DhtConfig::default();
            c.mode = p2p_dht::DhtModeSetting::Server;
            c.mapper = p2p_dht::MapperPolicy::Passthrough;
            c
        },
        rates,
        ..p2p_dht::BehaviourConfig::default()
    }
}

/// A swarm of our behaviour with `config`.
pub async fn dht_node(
    keypair: Keypair,
    config: p2p_dht::BehaviourConfig,
) -> Node<p2p_dht::Behaviour> {
    node(keypair, |id| p2p_dht::Behaviour::new(id, config)).await
}

/// `n` swarms of our behaviour with [`dht_config`] and default rates, not
/// connected.
pub async fn dht_net(n: usize) -> Net<p2p_dht::Behaviour> {
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(
            dht_node(
                Keypair::generate_ed25519(),
                dht_config(p2p_dht::DhtRates::default()),
            )
            .await,
        );
    }
    Net {
        nodes,
        raw: Vec::new(),
    }
}

impl Node<p2p_dht::Behaviour> {
    /// Refusals this node reported against `peer` for `reason`.
    pub fn rejections(&self, peer: PeerId, reason: p2p_types::RejectReason) -> usize {
        self.events
            .iter()
            .filter(|e| {
                matches!(e, p2p_dht::Event::Rejected { peer: p, reason: r } if *p == peer && *r == reason)
            })
            .count()
    }
}
