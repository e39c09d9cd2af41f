//! The node handle: cheap to clone, every method talks to the task that owns
//! the swarm through a bounded channel.

use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use p2p_types::{NodeEvent, NodeStats};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{NodeBuilder, NodeConfig};
use crate::error::NodeError;
use crate::event_loop::{Command, EventLoop};
use crate::peers::PeerInfo;

/// Commands queued to the event loop before callers wait (backpressure).
const COMMAND_CAPACITY: usize = 256;
/// Bound on start-up (binding the listeners).
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A lotus-p2p node. Clone it freely: clones share one node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    keypair: Keypair,
    /// Lives as long as the node, so subscriptions survive stop/start.
    events: broadcast::Sender<NodeEvent>,
    /// The running task; the lock serialises start and stop.
    running: Mutex<Option<Running>>,
    /// The command channel of the running task, for cheap access.
    commands: StdMutex<Option<mpsc::Sender<Command>>>,
}

struct Running {
    task: JoinHandle<()>,
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id())
            .finish()
    }
}

impl Node {
    /// A builder.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::new()
    }

    pub(crate) fn new(config: NodeConfig) -> Result<Self, NodeError> {
        let keypair = config.identity.keypair()?;
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                keypair,
                events,
                running: Mutex::new(None),
                commands: StdMutex::new(None),
            }),
        })
    }

    /// This node's PeerId (stable across stop/start).
    pub fn peer_id(&self) -> PeerId {
        self.inner.keypair.public().to_peer_id()
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Starts the node: binds every listen address and returns once each has
    /// reported its real address. Starting a running node does nothing.
    pub async fn start(&self) -> Result<(), NodeError> {
        let mut running = self.inner.running.lock().await;
        if running.as_ref().is_some_and(|r| !r.task.is_finished()) {
            return Ok(());
        }
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (ready_tx, ready_rx) = oneshot::channel();
        let event_loop = EventLoop::new(
            &self.inner.config,
            &self.inner.keypair,
            self.inner.events.clone(),
            ready_tx,
        )?;
        let task = tokio::spawn(event_loop.run(command_rx));
        match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                task.abort();
                return Err(e);
            }
            Ok(Err(_)) => return Err(NodeError::Stopped),
            Err(_) => {
                task.abort();
                return Err(NodeError::Timeout);
            }
        }
        *self.lock_commands() = Some(commands.clone());
        *running = Some(Running { task, commands });
        Ok(())
    }

    /// Stops the node gracefully: closes every connection and listener, then
    /// waits for the task to end. Stopping a stopped node does nothing; the
    /// node can be started again.
    pub async fn stop(&self) -> Result<(), NodeError> {
        let mut running = self.inner.running.lock().await;
        *self.lock_commands() = None;
        let Some(Running { task, commands }) = running.take() else {
            return Ok(());
        };
        let (reply, done) = oneshot::channel();
        if commands.send(Command::Stop(reply)).await.is_ok() {
            let _ = done.await;
        }
        drop(commands);
        let _ = task.await;
        Ok(())
    }

    /// True while the node runs.
    pub fn is_running(&self) -> bool {
        self.lock_commands()
            .as_ref()
            .is_some_and(|c| !c.is_closed())
    }

    fn lock_commands(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<Command>>> {
        self.inner
            .commands
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let commands = self.lock_commands().clone().ok_or(NodeError::NotStarted)?;
        let (reply, rx) = oneshot::channel();
        commands
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// The addresses the node listens on now (with real ports).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        self.request(Command::ListenAddrs).await
    }

    /// Dials `address` and resolves when the connection is up, with the remote
    /// PeerId. An address ending in `/p2p/<id>` must lead to that peer.
    pub async fn connect(&self, address: Multiaddr) -> Result<PeerId, NodeError> {
        let pending = self
            .request(|reply| Command::Dial { address, reply })
            .await?;
        match tokio::time::timeout(self.inner.config.dial_timeout, pending).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NodeError::Stopped),
            Err(_) => Err(NodeError::Timeout),
        }
    }

    /// Closes every connection to `peer` and resolves once they are closed.
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NodeError> {
        let closed = self
            .request(|reply| Command::Disconnect { peer, reply })
            .await?;
        match tokio::time::timeout(Duration::from_secs(5), closed).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NodeError::Stopped),
            Err(_) => Err(NodeError::Timeout),
        }
    }

    /// Peers with an open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.request(Command::ConnectedPeers).await
    }

    /// What the node knows about `peer` (connected or remembered).
    pub async fn peer_info(&self, peer: PeerId) -> Result<Option<PeerInfo>, NodeError> {
        self.request(|reply| Command::PeerInfo { peer, reply })
            .await
    }

    /// True if at least one connection to `peer` is open (false when stopped).
    pub async fn is_connected(&self, peer: PeerId) -> bool {
        self.request(|reply| Command::IsConnected { peer, reply })
            .await
            .unwrap_or(false)
    }

    /// Totals of the running node.
    pub async fn stats(&self) -> Result<NodeStats, NodeError> {
        self.request(Command::Stats).await
    }

    /// A new subscription to the node's events. A subscriber that falls more
    /// than `event_capacity` events behind misses the oldest ones (and learns
    /// how many through `RecvError::Lagged`); the node never waits for it.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Waits up to `timeout` for an event matching `predicate`. The
    /// subscription is taken when this is called, not when the future is first
    /// polled, so call it *before* the action whose event you expect.
    pub fn wait_for<F>(
        &self,
        timeout: Duration,
        mut predicate: F,
    ) -> impl Future<Output = Result<NodeEvent, NodeError>> + Send + 'static + use<F>
    where
        F: FnMut(&NodeEvent) -> bool + Send + 'static,
    {
        let mut events = self.subscribe();
        async move {
            let wait = async {
                loop {
                    match events.recv().await {
                        Ok(event) if predicate(&event) => return Ok(event),
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return Err(NodeError::Stopped),
                    }
                }
            };
            tokio::time::timeout(timeout, wait)
                .await
                .map_err(|_| NodeError::Timeout)?
        }
    }
}
