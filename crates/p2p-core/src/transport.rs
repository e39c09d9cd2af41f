//! Transports: TCP + WebSocket (+ DNS) for real networks, in-memory for tests
//! and simulation, each with circuits through relays (`/p2p-circuit`); always
//! Noise, with yamux (and mplex on request, its new outbound streams paced:
//! see [`crate::mplex_pacing`]).

use std::time::Duration;

use futures::future::Either;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, MemoryTransport};
use libp2p::core::upgrade::{SelectUpgrade, Version};
use libp2p::futures::{AsyncRead, AsyncWrite};
use libp2p::identity::Keypair;
use libp2p::{PeerId, Transport, dns, noise, relay, tcp, websocket, yamux};

use crate::mplex_pacing::Paced;

/// Which transport a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    /// TCP and WebSocket over TCP, with DNS resolution for `/dns*` addresses.
    #[default]
    Tcp,
    /// The in-process memory transport (`/memory/<n>` addresses): no sockets,
    /// for tests and simulations of many nodes.
    Memory,
}

/// Time allowed for the security and muxer handshakes of one connection.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The Noise keys could not be derived.
    #[error("noise: {0}")]
    Noise(#[from] noise::Error),
    /// The system DNS configuration could not be read.
    #[error("dns: {0}")]
    Dns(#[from] std::io::Error),
}

/// The authenticated, multiplexed transport of a node.
pub(crate) type NodeTransport = Boxed<(PeerId, StreamMuxerBox)>;

/// Builds the transport for `kind`, with `relayed` (the relay client's
/// transport) for circuit addresses. `mplex` also offers mplex (after yamux)
/// for the TypeScript system's Phase-1 nodes, which speak nothing else.
pub(crate) fn build(
    kind: TransportKind,
    key: &Keypair,
    mplex: bool,
    relayed: relay::client::Transport,
) -> Result<NodeTransport, TransportError> {
    match kind {
        TransportKind::Memory => {
            secure(relayed.or_transport(MemoryTransport::default()), key, mplex)
        }
        TransportKind::Tcp => {
            let tcp_config = tcp::Config::default().nodelay(true);
            let tcp =
                dns::tokio::Transport::system(tcp::tokio::Transport::new(tcp_config.clone()))?;
            let ws = websocket::Config::new(dns::tokio::Transport::system(
                tcp::tokio::Transport::new(tcp_config),
            )?);
            secure(relayed.or_transport(ws.or_transport(tcp)), key, mplex)
        }
    }
}

fn secure<T>(transport: T, key: &Keypair, mplex: bool) -> Result<NodeTransport, TransportError>
where
    T: Transport + Send + Unpin + 'static,
    T::Output: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
{
    let authenticated = transport
        .upgrade(Version::V1)
        .authenticate(noise::Config::new(key)?);
    Ok(if mplex {
        authenticated
            .multiplex(SelectUpgrade::new(
                yamux::Config::default(),
                libp2p_mplex::Config::default(),
            ))
            .timeout(UPGRADE_TIMEOUT)
            .map(|(peer, muxer), _| match muxer {
                Either::Left(yamux) => (peer, StreamMuxerBox::new(yamux)),
                // The TypeScript nodes' mplex closes connections that open
                // streams too fast: pace ours.
                Either::Right(mplex) => (peer, StreamMuxerBox::new(Paced::new(mplex))),
            })
            .boxed()
    } else {
        authenticated
            .multiplex(yamux::Config::default())
            .timeout(UPGRADE_TIMEOUT)
            .boxed()
    })
}
