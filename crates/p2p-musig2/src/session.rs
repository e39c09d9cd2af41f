//! One run of a signing session on this node: find the signers' nodes, send
//! our nonce and collect theirs, sign once, collect and check the partial
//! signatures, aggregate. The run owns every piece of the session's state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lotus_musig2::{
    KeyAggContext, PartialSignature, PubNonce, PublicKey, SecNonce, SessionContext,
    aggregate_nonces,
};
use p2p_core::{Message, Node, PeerId};
use p2p_protocol::{EquivocationGuard, Observation, Slot};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::MAX_SIGNERS;
use crate::error::{Blame, BlameReason, PartialEvidence, Rejection, Round, SessionError};
use crate::service::{Inbound, Inner, Signed};
use crate::wire::{self, Attempt, Body, RoundMessage, SessionHash};

/// Pause between rounds of advert lookups, and between retries of a send.
const RETRY: Duration = Duration::from_millis(250);

/// A session's fixed inputs, checked.
pub(crate) struct Spec {
    pub(crate) hash: SessionHash,
    key_agg: KeyAggContext,
    message: [u8; 32],
    /// Our slot in `key_agg.keys()`.
    ours: usize,
}

impl Spec {
    pub(crate) fn new(
        session_id: &str,
        message: &[u8; 32],
        keys: &[PublicKey],
        ours: &PublicKey,
    ) -> Result<Self, SessionError> {
        if session_id.is_empty() || session_id.len() > 128 {
            return Err(SessionError::SessionId);
        }
        if !(2..=MAX_SIGNERS).contains(&keys.len()) {
            return Err(SessionError::SignerCount { got: keys.len() });
        }
        let mut sorted = keys.to_vec();
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|w| w.first() == w.get(1)) {
            let key = pair.first().copied().unwrap_or(*ours);
            return Err(SessionError::DuplicateKey(Box::new(key)));
        }
        let key_agg = KeyAggContext::new(keys.iter().copied())?;
        let ours = key_agg
            .position(ours)
            .ok_or_else(|| SessionError::NotASigner(Box::new(*ours)))?;
        Ok(Spec {
            hash: SessionHash::new(session_id, message, &key_agg),
            key_agg,
            message: *message,
            ours,
        })
    }

    fn keys(&self) -> &[PublicKey] {
        self.key_agg.keys()
    }

    fn blame(&self, slot: usize, peers: &[Option<PeerId>], reason: BlameReason) -> Blame {
        Blame {
            // Slots are below the number of keys.
            public_key: self
                .keys()
                .get(slot)
                .copied()
                .unwrap_or(*self.key_agg.aggregated_key()),
            peer: peers.get(slot).copied().flatten(),
            reason,
        }
    }
}

/// A signer's nonce as we hold it.
struct HeldNonce {
    attempt: Attempt,
    nonce: PubNonce,
    message: Arc<Message>,
}

/// Round 2, once every nonce is in.
struct Signing {
    context: SessionContext,
    nonces: Vec<PubNonce>,
    partials: Vec<Option<PartialSignature>>,
}

/// What this node says in the session, kept to say it again: a message can
/// be lost after its send succeeded (a connection closing under it), so each
/// co-signer we still wait for is sent our messages again, re-signed (a
/// byte-identical copy would be refused as a duplicate), every [`RESEND`],
/// and a co-signer that repeats itself (it is still waiting for us) is
/// answered at once.
#[derive(Clone)]
pub(crate) struct Said {
    round1: RoundMessage,
    round2: Option<RoundMessage>,
}

/// How often co-signers we still wait for get our messages again; also the
/// least time between two answers to one peer's repeats.
const RESEND: Duration = Duration::from_secs(1);

impl Said {
    /// Sends (re-signed) what we said to `peer`, each send retried until
    /// written or `deadline`.
    pub(crate) fn send_to(
        &self,
        outbox: &mut JoinSet<()>,
        node: &Node,
        peer: PeerId,
        deadline: Instant,
    ) {
        for said in std::iter::once(&self.round1).chain(&self.round2) {
            match said.sign(node) {
                Ok(message) => send(outbox, node, peer, Arc::new(message), deadline),
                Err(error) => tracing::warn!(%error, "cannot sign a musig2 message"),
            }
        }
    }
}

/// Answers to repeats, at most one per peer per [`RESEND`].
#[derive(Default)]
pub(crate) struct Answers {
    last: HashMap<PeerId, Instant>,
}

impl Answers {
    /// True (and noted) when `peer` may be answered now.
    pub(crate) fn due(&mut self, peer: PeerId) -> bool {
        let now = Instant::now();
        match self.last.get(&peer) {
            Some(at) if now.saturating_duration_since(*at) < RESEND => false,
            _ => {
                self.last.insert(peer, now);
                true
            }
        }
    }
}

/// Runs the session until it signs, fails, or reaches `deadline`.
pub(crate) async fn run(
    inner: &Inner,
    spec: &Spec,
    mut inbox: mpsc::Receiver<Inbound>,
    deadline: Instant,
) -> Result<(Signed, Said), SessionError> {
    let node = &inner.node;
    let n = spec.keys().len();
    let peers = find_peers(inner, spec, deadline).await?;
    inner.signers_found(spec.hash, peers.iter().flatten().copied().collect());
    let mut outbox = Outbox(JoinSet::new());
    let others: Vec<(usize, PeerId)> = peers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != spec.ours)
        .filter_map(|(i, p)| Some((i, (*p)?)))
        .collect();

    // Round 1: fresh nonces for this attempt; the secret half lives only here.
    let attempt =
        wire::new_attempt().map_err(|e| lotus_musig2::Error::Randomness(e.to_string()))?;
    let extra = [spec.hash.0.as_slice(), &attempt].concat();
    let (sec_nonce, pub_nonce) =
        SecNonce::generate(&inner.key, &spec.key_agg, Some(&spec.message), &extra)?;
    let mut sec_nonce = Some(sec_nonce);
    let mut said = Said {
        round1: RoundMessage {
            session: spec.hash,
            attempt,
            signer: *inner.key.public_key(),
            body: Body::Nonce(pub_nonce),
        },
        round2: None,
    };
    let round1 = Arc::new(said.round1.sign(node)?);
    for &(_, peer) in &others {
        send(&mut outbox, node, peer, Arc::clone(&round1), deadline);
    }

    let mut nonces: Vec<Option<HeldNonce>> = (0..n).map(|_| None).collect();
    if let Some(slot) = nonces.get_mut(spec.ours) {
        *slot = Some(HeldNonce {
            attempt,
            nonce: pub_nonce,
            message: Arc::clone(&round1),
        });
    }
    let mut guard = EquivocationGuard::new(4 * MAX_SIGNERS);
    // Each co-signer's latest run we took a message of (its attempt): its
    // earlier runs' messages are refused.
    let mut latest: Vec<Option<Attempt>> = (0..n).map(|_| None).collect();
    // Partial signatures that came before our round 2, the latest per slot.
    let mut early: Vec<Option<Inbound>> = (0..n).map(|_| None).collect();
    let mut signing: Option<Signing> = None;
    let mut answers = Answers::default();
    let mut resend = tokio::time::interval_at(Instant::now() + RESEND, RESEND);

    loop {
        if signing.is_none() && nonces.iter().all(Option::is_some) {
            // Every nonce is in: sign once, with the nonce consumed.
            let list: Vec<PubNonce> = nonces.iter().flatten().map(|h| h.nonce).collect();
            let context =
                SessionContext::new(&spec.key_agg, &aggregate_nonces(&list)?, &spec.message)?;
            let Some(secret) = sec_nonce.take() else {
                unreachable!("the nonce is taken only here, once");
            };
            let partial = context.partial_sign(secret, &inner.key)?;
            let round2 = RoundMessage {
                session: spec.hash,
                attempt,
                signer: *inner.key.public_key(),
                body: Body::Partial {
                    nonces: list.clone(),
                    partial,
                },
            };
            let signed = Arc::new(round2.sign(node)?);
            said.round2 = Some(round2);
            for &(_, peer) in &others {
                send(&mut outbox, node, peer, Arc::clone(&signed), deadline);
            }
            let mut partials = vec![None; n];
            if let Some(slot) = partials.get_mut(spec.ours) {
                *slot = Some(partial);
            }
            signing = Some(Signing {
                context,
                nonces: list,
                partials,
            });
            for (slot, inbound) in early
                .iter_mut()
                .enumerate()
                .filter_map(|(i, kept)| Some((i, kept.take()?)))
            {
                let from = inbound.from;
                if from_earlier_run(&latest, slot, &inbound.round.attempt) {
                    // Its signer restarted after sending it.
                    inner.reject(Rejection::EarlierAttempt, from);
                    continue;
                }
                if let Partial::Stale =
                    on_partial(spec, &peers, &nonces, signing.as_mut(), inbound)?
                    && answers.due(from)
                {
                    said.send_to(&mut outbox, node, from, deadline);
                }
            }
        }
        if let Some(signing) = &signing
            && signing.partials.iter().all(Option::is_some)
        {
            let partials: Vec<PartialSignature> =
                signing.partials.iter().flatten().copied().collect();
            let signature = signing.context.aggregate(&partials)?;
            lotus_musig2::verify(spec.key_agg.aggregated_key(), &spec.message, &signature)?;
            let signed = Signed {
                session: spec.hash,
                aggregated_key: *spec.key_agg.aggregated_key(),
                signature,
                signers: spec
                    .keys()
                    .iter()
                    .zip(&peers)
                    .map(|(key, peer)| (*key, peer.unwrap_or(node.peer_id())))
                    .collect(),
            };
            return Ok((signed, said));
        }
        let inbound = tokio::select! {
            inbound = inbox.recv() => inbound,
            _ = resend.tick() => {
                // Co-signers we still wait for get our messages again.
                for &(i, peer) in &others {
                    let waiting = match &signing {
                        None => nonces.get(i).is_some_and(Option::is_none),
                        Some(s) => s.partials.get(i).is_some_and(Option::is_none),
                    };
                    if waiting && answers.due(peer) {
                        said.send_to(&mut outbox, node, peer, deadline);
                    }
                }
                continue;
            }
            () = tokio::time::sleep_until(deadline) => None,
        };
        let Some(inbound) = inbound else {
            let (round, missing): (Round, Vec<usize>) = match &signing {
                None => (
                    Round::Nonces,
                    (0..n)
                        .filter(|&i| nonces.get(i).is_some_and(Option::is_none))
                        .collect(),
                ),
                Some(s) => (
                    Round::PartialSignatures,
                    (0..n)
                        .filter(|&i| s.partials.get(i).is_some_and(Option::is_none))
                        .collect(),
                ),
            };
            return Err(SessionError::Timeout {
                round,
                blame: missing
                    .into_iter()
                    .map(|i| spec.blame(i, &peers, BlameReason::Missing))
                    .collect(),
            });
        };
        // The sender must be the node that advertises the key it signs for.
        let Some(slot) = spec.key_agg.position(&inbound.round.signer) else {
            inner.reject(Rejection::NotASigner, inbound.from);
            continue;
        };
        if peers.get(slot).copied().flatten() != Some(inbound.from) || slot == spec.ours {
            inner.reject(Rejection::WrongPeer, inbound.from);
            continue;
        }
        let from = inbound.from;
        if from_earlier_run(&latest, slot, &inbound.round.attempt) {
            // A late send of the signer's earlier run (its nonce or partial
            // signature): the later run it restarted with stands.
            inner.reject(Rejection::EarlierAttempt, from);
            continue;
        }
        if let Some(known) = latest.get_mut(slot)
            && *known != Some(inbound.round.attempt)
        {
            *known = Some(inbound.round.attempt);
            // A partial signature of the signer's new run before its nonce
            // (lost on the way; it comes again with the signer's resend):
            // the nonce held from its earlier run is not the one it signed
            // under, so we wait for that one instead of signing without it.
            // Only a run known to be earlier is dropped: runs that cannot
            // be ordered (an older build's) keep the nonce, as before.
            if signing.is_none()
                && matches!(inbound.round.body, Body::Partial { .. })
                && let Some(held) = nonces.get_mut(slot)
                && held
                    .as_ref()
                    .is_some_and(|h| wire::is_earlier(&h.attempt, &inbound.round.attempt))
            {
                *held = None;
            }
        }
        let repeat = match &inbound.round.body {
            Body::Nonce(nonce) => {
                let nonce = *nonce;
                let session = [spec.hash.0.as_slice(), &inbound.round.attempt].concat();
                let observed = guard.observe(
                    Slot {
                        session: session.into(),
                        round: 1,
                    },
                    &inbound.message,
                );
                match observed {
                    Ok(Observation::Equivocation(evidence))
                        if nonce_of(&evidence.first) != Some(nonce) =>
                    {
                        return Err(SessionError::Equivocation {
                            blame: Box::new(spec.blame(slot, &peers, BlameReason::Equivocation)),
                            evidence,
                        });
                    }
                    // The same nonce again, signed anew: it waits for us.
                    Ok(Observation::Equivocation(_) | Observation::Repeat) => true,
                    _ => {
                        let held = nonces.get_mut(slot);
                        match held {
                            Some(Some(h)) if h.attempt == inbound.round.attempt => true,
                            Some(Some(_)) if signing.is_some() => {
                                // It restarted after we signed under its old
                                // nonce: this run cannot finish.
                                return Err(SessionError::NonceMismatch {
                                    blame: vec![spec.blame(
                                        slot,
                                        &peers,
                                        BlameReason::NonceMismatch,
                                    )],
                                });
                            }
                            Some(held) => {
                                // Its first nonce, or a restarted signer's new
                                // one before we signed.
                                let restarted = held.is_some();
                                *held = Some(HeldNonce {
                                    attempt: inbound.round.attempt,
                                    nonce,
                                    message: inbound.message,
                                });
                                restarted
                            }
                            None => false,
                        }
                    }
                }
            }
            Body::Partial { .. } => match signing.as_mut() {
                None => {
                    if let Some(kept) = early.get_mut(slot) {
                        *kept = Some(inbound);
                    }
                    // It signed, so it has our nonce.
                    false
                }
                Some(signing) => {
                    let seen = signing.partials.get(slot).is_some_and(Option::is_some);
                    let stale = matches!(
                        on_partial(spec, &peers, &nonces, Some(signing), inbound)?,
                        Partial::Stale
                    );
                    seen || stale
                }
            },
        };
        if repeat && answers.due(from) {
            said.send_to(&mut outbox, node, from, deadline);
        }
    }
}

/// Whether a message of `attempt` from the signer in `slot` belongs to an
/// earlier run of it than the latest we took a message of.
fn from_earlier_run(latest: &[Option<Attempt>], slot: usize, attempt: &Attempt) -> bool {
    latest
        .get(slot)
        .copied()
        .flatten()
        .is_some_and(|known| wire::is_earlier(attempt, &known))
}

/// The nonce a round-1 message carries.
fn nonce_of(message: &Message) -> Option<PubNonce> {
    match RoundMessage::decode(message).ok()?.body {
        Body::Nonce(nonce) => Some(nonce),
        Body::Partial { .. } => None,
    }
}

/// What became of a partial signature.
enum Partial {
    /// Kept (or ignored as a repeat or not ours to judge).
    Kept,
    /// Made under a view of the session without our current nonce (from an
    /// earlier run of ours): ignored, and its signer should get our
    /// messages again.
    Stale,
}

/// Checks a partial signature (only against the nonces it was made under)
/// and keeps it.
fn on_partial(
    spec: &Spec,
    peers: &[Option<PeerId>],
    held: &[Option<HeldNonce>],
    signing: Option<&mut Signing>,
    inbound: Inbound,
) -> Result<Partial, SessionError> {
    let (Some(signing), Some(slot), Body::Partial { nonces, partial }) = (
        signing,
        spec.key_agg.position(&inbound.round.signer),
        &inbound.round.body,
    ) else {
        return Ok(Partial::Kept);
    };
    if signing.partials.get(slot).is_some_and(Option::is_some) {
        return Ok(Partial::Kept); // a repeat
    }
    let n = spec.keys().len();
    if nonces.len() == n && nonces.get(spec.ours) != signing.nonces.get(spec.ours) {
        return Ok(Partial::Stale);
    }
    if *nonces != signing.nonces {
        // Its signed view differs from ours. A list of the wrong length, or
        // its own nonce other than the one it sent us, is its doing alone;
        // otherwise it or the signers whose entries differ are at fault
        // (one of them restarted or showed two nonces), never we.
        let own_differs = nonces.get(slot) != signing.nonces.get(slot);
        let mut blamed = vec![slot];
        if nonces.len() == n && !own_differs {
            blamed.extend((0..n).filter(|&i| {
                i != slot && i != spec.ours && nonces.get(i) != signing.nonces.get(i)
            }));
        }
        return Err(SessionError::NonceMismatch {
            blame: blamed
                .into_iter()
                .map(|i| spec.blame(i, peers, BlameReason::NonceMismatch))
                .collect(),
        });
    }
    let Some(nonce) = signing.nonces.get(slot) else {
        return Ok(Partial::Kept);
    };
    if signing
        .context
        .verify_partial(slot, nonce, partial)
        .is_err()
    {
        let nonce_message = held
            .get(slot)
            .and_then(Option::as_ref)
            .map(|h| Message::clone(&h.message));
        if let Some(nonce_message) = nonce_message {
            return Err(SessionError::InvalidPartialSignature {
                blame: Box::new(spec.blame(slot, peers, BlameReason::InvalidPartialSignature)),
                evidence: Box::new(PartialEvidence {
                    nonce: nonce_message,
                    partial: Message::clone(&inbound.message),
                }),
            });
        }
    }
    if let Some(kept) = signing.partials.get_mut(slot) {
        *kept = Some(*partial);
    }
    Ok(Partial::Kept)
}

/// Each other signer's node, from its advert; lookups repeat until every
/// signer is found or the deadline passes.
async fn find_peers(
    inner: &Inner,
    spec: &Spec,
    deadline: Instant,
) -> Result<Vec<Option<PeerId>>, SessionError> {
    let mut peers: Vec<Option<PeerId>> = vec![None; spec.keys().len()];
    if let Some(ours) = peers.get_mut(spec.ours) {
        *ours = Some(inner.node.peer_id());
    }
    loop {
        let missing: Vec<usize> = (0..peers.len())
            .filter(|&i| peers.get(i).is_some_and(Option::is_none))
            .collect();
        if missing.is_empty() {
            return Ok(peers);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SessionError::Timeout {
                round: Round::Discovery,
                blame: missing
                    .into_iter()
                    .map(|i| spec.blame(i, &peers, BlameReason::Missing))
                    .collect(),
            });
        }
        tracing::debug!(
            missing = missing.len(),
            ?left,
            "looking up co-signers' adverts"
        );
        let lookups = missing.iter().map(|&i| async move {
            let key = spec.keys().get(i)?;
            let started = Instant::now();
            let peer = inner.find_peer(key, left).await;
            tracing::debug!(signer = %key, found = ?peer, took = ?started.elapsed(), "co-signer advert lookup");
            Some((i, peer?))
        });
        for (i, peer) in futures::future::join_all(lookups)
            .await
            .into_iter()
            .flatten()
        {
            if let Some(slot) = peers.get_mut(i) {
                *slot = Some(peer);
            }
        }
        if peers.iter().any(Option::is_none) {
            tokio::time::sleep_until((Instant::now() + RETRY).min(deadline)).await;
        }
    }
}

/// The session's sends under way. They go on when the session ends, with a
/// signature or an error (each task ends by the next resend or the
/// deadline, whichever is first): a co-signer may still need our nonce or partial signature to
/// reach the same end (a session that blamed a signer at once used to
/// abort its own nonce on the way to a slower co-signer, which then timed
/// out blaming us).
struct Outbox(JoinSet<()>);

impl std::ops::Deref for Outbox {
    type Target = JoinSet<()>;
    fn deref(&self) -> &JoinSet<()> {
        &self.0
    }
}

impl std::ops::DerefMut for Outbox {
    fn deref_mut(&mut self) -> &mut JoinSet<()> {
        &mut self.0
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.0.detach_all();
    }
}

/// Sends `message` to `peer`, retried until it is written, the next resend
/// or the deadline.
pub(crate) fn send(
    outbox: &mut JoinSet<()>,
    node: &Node,
    peer: PeerId,
    message: Arc<Message>,
    deadline: Instant,
) {
    let node = node.clone();
    // Retried until the next resend at most: what is still missing then is
    // sent again, re-signed, so tasks never pile up.
    let until = deadline.min(Instant::now() + RESEND);
    outbox.spawn(async move {
        // Each attempt is bounded too (a dial or a peer that stops reading
        // could hold one), so no task outlives `until`.
        loop {
            match tokio::time::timeout_at(until, node.send(peer, &message)).await {
                Ok(Ok(_)) | Err(_) => return,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "musig2 send failed; retrying");
                }
            }
            if Instant::now() + RETRY >= until {
                return;
            }
            tokio::time::sleep(RETRY).await;
        }
    });
    // Finished sends are reaped here, so the set holds only running ones.
    while outbox.try_join_next().is_some() {}
}
