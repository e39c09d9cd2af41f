//! [`Musig2`]: a node's signer. It owns the signer key, the handler that
//! receives session messages, the inboxes of running sessions, the bounded
//! buffer of messages for sessions not started yet, the finished sessions,
//! and the rejection counters.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use hashlink::LruCache;
use lotus_musig2::{PublicKey, SecretKey, Signature};
use p2p_core::{
    Announced, HandlerError, Message, Node, PeerId, ProtocolHandler, ProtocolName, RegisterError,
    ResourceError, async_trait,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::advert::{self, SignerAdvert};
use crate::error::{Rejection, SessionError};
use crate::session::{self, Answers, Said, Spec};
use crate::wire::{self, RoundMessage, SessionHash};

/// Bounds of a signer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Musig2Config {
    /// Messages kept for sessions this node has not started yet (signers
    /// start at different times), in all. Default 1024.
    pub buffered_messages: usize,
    /// ... and from one peer. Default 32.
    pub buffered_per_peer: usize,
    /// How long such a message is kept. Default 2 min.
    pub buffered_for: Duration,
    /// Finished sessions remembered (their messages are then refused, and
    /// signing one again returns its signature). Default 1024.
    pub finished_kept: usize,
    /// Inbound messages queued for one running session. Default 256.
    pub session_inbox: usize,
}

impl Default for Musig2Config {
    fn default() -> Self {
        Musig2Config {
            buffered_messages: 1024,
            buffered_per_peer: 32,
            buffered_for: Duration::from_secs(120),
            finished_kept: 1024,
            session_inbox: 256,
        }
    }
}

/// A finished session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The session.
    pub session: SessionHash,
    /// The key the signature is valid for (the SDK's `musigKeyAgg`).
    pub aggregated_key: PublicKey,
    /// The Lotus Schnorr signature, verified under `aggregated_key`.
    pub signature: Signature,
    /// Each signer (in key-aggregation order) and its node.
    pub signers: Vec<(PublicKey, PeerId)>,
}

/// A session message on its way to a running session.
pub(crate) struct Inbound {
    pub(crate) from: PeerId,
    pub(crate) message: Arc<Message>,
    pub(crate) round: RoundMessage,
}

struct Buffered {
    at: Instant,
    inbound: Inbound,
}

/// A running session as the router sees it.
struct Route {
    inbox: mpsc::Sender<Inbound>,
    /// The co-signers' nodes, once found: only they may queue messages.
    /// Until then each peer may queue [`PER_PEER_BEFORE_FOUND`].
    signers: Option<Vec<PeerId>>,
    queued: HashMap<PeerId, usize>,
}

/// Messages one peer may queue for a session whose signers are not found yet
/// (an honest co-signer sends two, or a few more when it restarts).
const PER_PEER_BEFORE_FOUND: usize = 8;

struct State {
    running: HashMap<SessionHash, Route>,
    buffered: VecDeque<Buffered>,
    finished: LruCache<SessionHash, Finished>,
}

/// A session that signed: its signature, and until its deadline what we said
/// in it, for co-signers that still wait for it.
struct Finished {
    signed: Signed,
    said: Said,
    signers: Vec<PeerId>,
    until: tokio::time::Instant,
    answers: Answers,
}

/// Signer key → its node, from adverts found (valid for [`KNOWN_FOR`]).
struct Known {
    peers: LruCache<PublicKey, (PeerId, Instant)>,
}

/// How long a signer's node, once found, is used without looking again.
const KNOWN_FOR: Duration = Duration::from_secs(600);

struct Counters {
    by_reason: BTreeMap<Rejection, u64>,
    by_peer: LruCache<PeerId, u64>,
}

pub(crate) struct Inner {
    pub(crate) node: Node,
    pub(crate) key: SecretKey,
    config: Musig2Config,
    state: Mutex<State>,
    known: Mutex<Known>,
    counters: Mutex<Counters>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// The node of signer `key`, if found within [`KNOWN_FOR`].
    pub(crate) fn known_peer(&self, key: &PublicKey) -> Option<PeerId> {
        let mut known = lock(&self.known);
        match known.peers.get(key) {
            Some((peer, at)) if at.elapsed() < KNOWN_FOR => Some(*peer),
            _ => None,
        }
    }

    /// Finds the node of signer `key` (a remembered answer first).
    pub(crate) async fn find_peer(&self, key: &PublicKey, timeout: Duration) -> Option<PeerId> {
        if let Some(peer) = self.known_peer(key) {
            return Some(peer);
        }
        let advert = advert::find(&self.node, key, timeout).await.ok()?;
        lock(&self.known)
            .peers
            .insert(*key, (advert.peer, Instant::now()));
        Some(advert.peer)
    }

    pub(crate) fn reject(&self, reason: Rejection, peer: PeerId) {
        tracing::debug!(%peer, reason = reason.as_str(), "musig2 message refused");
        let mut counters = lock(&self.counters);
        *counters.by_reason.entry(reason).or_default() += 1;
        match counters.by_peer.get_mut(&peer) {
            Some(n) => *n += 1,
            None => {
                counters.by_peer.insert(peer, 1);
            }
        }
    }

    /// Routes a decoded message: to its running session, refused when the
    /// session is finished, else buffered (bounded) until it starts.
    fn route(&self, inbound: Inbound) {
        let from = inbound.from;
        let mut state = lock(&self.state);
        let session = inbound.round.session;
        if let Some(finished) = state.finished.get_mut(&session) {
            // Refused; a co-signer still waiting gets our messages again.
            if finished.signers.contains(&from)
                && tokio::time::Instant::now() < finished.until
                && finished.answers.due(from)
            {
                let mut outbox = JoinSet::new();
                finished
                    .said
                    .send_to(&mut outbox, &self.node, from, finished.until);
                outbox.detach_all();
            }
            drop(state);
            return self.reject(Rejection::SessionFinished, from);
        }
        if let Some(route) = state.running.get_mut(&session) {
            let refused = match &route.signers {
                Some(signers) if !signers.contains(&from) => Some(Rejection::WrongPeer),
                Some(_) => None,
                None => {
                    let queued = route.queued.entry(from).or_default();
                    *queued += 1;
                    (*queued > PER_PEER_BEFORE_FOUND).then_some(Rejection::SessionBusy)
                }
            };
            let refused = refused.or_else(|| {
                route
                    .inbox
                    .try_send(inbound)
                    .is_err()
                    .then_some(Rejection::SessionBusy)
            });
            drop(state);
            if let Some(reason) = refused {
                self.reject(reason, from);
            }
            return;
        }
        let now = Instant::now();
        let keep = self.config.buffered_for;
        state
            .buffered
            .retain(|b| now.saturating_duration_since(b.at) < keep);
        let from_peer = state
            .buffered
            .iter()
            .filter(|b| b.inbound.from == from)
            .count();
        if from_peer >= self.config.buffered_per_peer
            || state.buffered.len() >= self.config.buffered_messages
        {
            drop(state);
            return self.reject(Rejection::BufferFull, from);
        }
        state.buffered.push_back(Buffered { at: now, inbound });
    }

    /// Registers a running session and hands it what was buffered for it;
    /// `Ok(Err(signed))` when it already finished.
    fn open(
        &self,
        session: SessionHash,
    ) -> Result<Result<mpsc::Receiver<Inbound>, Signed>, SessionError> {
        let mut state = lock(&self.state);
        if let Some(finished) = state.finished.get(&session) {
            return Ok(Err(finished.signed.clone()));
        }
        if state.running.contains_key(&session) {
            return Err(SessionError::AlreadyRunning);
        }
        let (inbox, receiver) = mpsc::channel(self.config.session_inbox.max(1));
        let (mine, others): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut state.buffered)
            .into_iter()
            .partition(|b| b.inbound.round.session == session);
        state.buffered = others;
        for buffered in mine {
            let from = buffered.inbound.from;
            if inbox.try_send(buffered.inbound).is_err() {
                self.reject(Rejection::SessionBusy, from);
            }
        }
        state.running.insert(
            session,
            Route {
                inbox,
                signers: None,
                queued: HashMap::new(),
            },
        );
        Ok(Ok(receiver))
    }

    /// From now on only these nodes may queue messages for `session`.
    pub(crate) fn signers_found(&self, session: SessionHash, signers: Vec<PeerId>) {
        if let Some(route) = lock(&self.state).running.get_mut(&session) {
            route.signers = Some(signers);
            route.queued = HashMap::new();
        }
    }

    /// Ends a running session; a signed one is remembered.
    fn close(&self, session: SessionHash, finished: Option<Finished>) {
        let mut state = lock(&self.state);
        state.running.remove(&session);
        if let Some(finished) = finished {
            state.finished.insert(session, finished);
        }
    }
}

/// Takes a running session off the books however its future ends (done,
/// failed, or dropped by a caller that gave up).
struct Running<'a> {
    inner: &'a Inner,
    session: SessionHash,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.inner.close(self.session, None);
    }
}

/// The `musig2` protocol handler: decodes and routes; never blocks.
struct Handler {
    inner: Weak<Inner>,
}

#[async_trait]
impl ProtocolHandler for Handler {
    fn name(&self) -> ProtocolName {
        wire::constant_name(wire::PROTOCOL)
    }

    async fn handle_message(
        &self,
        message: Arc<Message>,
        from: PeerId,
    ) -> Result<(), HandlerError> {
        let Some(inner) = self.inner.upgrade() else {
            return Ok(());
        };
        match RoundMessage::decode(&message) {
            Ok(round) => inner.route(Inbound {
                from,
                message,
                round,
            }),
            Err(error) => {
                tracing::debug!(%from, %error, "malformed musig2 message");
                inner.reject(Rejection::Malformed, from);
            }
        }
        Ok(())
    }
}

/// A node's MuSig2 signer: advertises its key and runs signing sessions.
///
/// ```no_run
/// # async fn demo(node: p2p_core::Node, keys: Vec<lotus_musig2::PublicKey>) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let signer = p2p_musig2::Musig2::new(node, lotus_musig2::SecretKey::generate()?, Default::default())?;
/// signer.advertise().await?; // others find this node from the key
/// // Every signer runs the same call (same id, message and keys):
/// let signed = signer.sign("payout-42", &[7; 32], &keys, Duration::from_secs(30)).await?;
/// lotus_musig2::verify(&signed.aggregated_key, &[7; 32], &signed.signature)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Musig2 {
    inner: Arc<Inner>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.node
            .unregister_handler(&wire::constant_name(wire::PROTOCOL));
    }
}

impl Musig2 {
    /// A signer on `node` with `key`; registers the `musig2` handler.
    pub fn new(node: Node, key: SecretKey, config: Musig2Config) -> Result<Self, RegisterError> {
        let kept = config.finished_kept.max(1);
        let inner = Arc::new(Inner {
            node,
            key,
            state: Mutex::new(State {
                running: HashMap::new(),
                buffered: VecDeque::new(),
                finished: LruCache::new(kept),
            }),
            known: Mutex::new(Known {
                peers: LruCache::new(1024),
            }),
            counters: Mutex::new(Counters {
                by_reason: BTreeMap::new(),
                by_peer: LruCache::new(1024),
            }),
            config,
        });
        inner.node.register_handler(Arc::new(Handler {
            inner: Arc::downgrade(&inner),
        }))?;
        Ok(Musig2 { inner })
    }

    /// The signer key's public half.
    pub fn public_key(&self) -> &PublicKey {
        self.inner.key.public_key()
    }

    /// The node it signs on.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// Publishes this signer's advert (republished while the node runs).
    pub async fn advertise(&self) -> Result<Announced, ResourceError> {
        advert::publish(&self.inner.node, &self.inner.key).await
    }

    /// Finds the node that signs with `key`.
    pub async fn find_signer(
        &self,
        key: &PublicKey,
        timeout: Duration,
    ) -> Result<SignerAdvert, ResourceError> {
        advert::find(&self.inner.node, key, timeout).await
    }

    /// Runs a signing session: every signer calls this with the same
    /// `session_id`, `message` and `keys` (in any order). Ends with the
    /// aggregated signature, verified, or with an error that names the
    /// signers to blame. A session that already finished on this node
    /// returns its signature again without signing.
    pub async fn sign(
        &self,
        session_id: &str,
        message: &[u8; 32],
        keys: &[PublicKey],
        timeout: Duration,
    ) -> Result<Signed, SessionError> {
        let now = tokio::time::Instant::now();
        // A timeout too large for the clock waits a year.
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        let spec = Spec::new(session_id, message, keys, self.public_key())?;
        if !self.inner.node.is_running() {
            return Err(SessionError::NotStarted);
        }
        let inbox = match self.inner.open(spec.hash)? {
            Ok(inbox) => inbox,
            Err(signed) => return Ok(signed),
        };
        let _running = Running {
            inner: &self.inner,
            session: spec.hash,
        };
        let (signed, said) = session::run(&self.inner, &spec, inbox, deadline).await?;
        let signers = signed
            .signers
            .iter()
            .map(|(_, peer)| *peer)
            .filter(|peer| *peer != self.inner.node.peer_id())
            .collect();
        self.inner.close(
            spec.hash,
            Some(Finished {
                signed: signed.clone(),
                said,
                signers,
                until: deadline,
                answers: Answers::default(),
            }),
        );
        Ok(signed)
    }

    /// Messages held for sessions this node has not started (yet).
    pub fn buffered_messages(&self) -> usize {
        lock(&self.inner.state).buffered.len()
    }

    /// Sessions running on this node.
    pub fn running_sessions(&self) -> usize {
        lock(&self.inner.state).running.len()
    }

    /// Inbound messages refused, by reason.
    pub fn rejections(&self) -> BTreeMap<Rejection, u64> {
        lock(&self.inner.counters).by_reason.clone()
    }

    /// Inbound messages refused from `peer` (the last 1024 peers refused).
    pub fn rejections_from(&self, peer: &PeerId) -> u64 {
        lock(&self.inner.counters)
            .by_peer
            .get(peer)
            .copied()
            .unwrap_or(0)
    }
}
