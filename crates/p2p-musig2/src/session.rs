//! One run of a signing session on this node: find the signers' nodes, send
//! our nonce and collect theirs, sign once, collect and check the partial
//! signatures, aggregate. The run owns every piece of the session's state.

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
use crate::wire::{Attempt, Body, RoundMessage, SessionHash};

/// Longest single advert lookup; lookups repeat until the session's deadline
/// (a signer may advertise after we start).
const LOOKUP: Duration = Duration::from_secs(5);
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

/// Runs the session until it signs, fails, or reaches `deadline`.
pub(crate) async fn run(
    inner: &Inner,
    spec: &Spec,
    mut inbox: mpsc::Receiver<Inbound>,
    deadline: Instant,
) -> Result<Signed, SessionError> {
    let node = &inner.node;
    let n = spec.keys().len();
    let peers = find_peers(inner, spec, deadline).await?;
    let mut outbox = JoinSet::new();

    // Round 1: fresh nonces for this attempt; the secret half lives only here.
    let mut attempt: Attempt = [0; 16];
    getrandom::fill(&mut attempt).map_err(|e| lotus_musig2::Error::Randomness(e.to_string()))?;
    let extra = [spec.hash.0.as_slice(), &attempt].concat();
    let (sec_nonce, pub_nonce) =
        SecNonce::generate(&inner.key, &spec.key_agg, Some(&spec.message), &extra)?;
    let mut sec_nonce = Some(sec_nonce);
    let round1 = RoundMessage {
        session: spec.hash,
        attempt,
        signer: *inner.key.public_key(),
        body: Body::Nonce(pub_nonce),
    };
    let round1 = Arc::new(round1.sign(node)?);
    send_to_all(&mut outbox, node, &peers, spec.ours, &round1, deadline);

    let mut nonces: Vec<Option<HeldNonce>> = (0..n).map(|_| None).collect();
    if let Some(slot) = nonces.get_mut(spec.ours) {
        *slot = Some(HeldNonce {
            attempt,
            nonce: pub_nonce,
            message: Arc::clone(&round1),
        });
    }
    let mut guard = EquivocationGuard::new(4 * MAX_SIGNERS);
    let mut early: Vec<Inbound> = Vec::new();
    let mut signing: Option<Signing> = None;

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
            let round2 = Arc::new(round2.sign(node)?);
            send_to_all(&mut outbox, node, &peers, spec.ours, &round2, deadline);
            let mut partials = vec![None; n];
            if let Some(slot) = partials.get_mut(spec.ours) {
                *slot = Some(partial);
            }
            signing = Some(Signing {
                context,
                nonces: list,
                partials,
            });
            for inbound in std::mem::take(&mut early) {
                on_partial(spec, &peers, &nonces, signing.as_mut(), inbound)?;
            }
        }
        if let Some(signing) = &signing
            && signing.partials.iter().all(Option::is_some)
        {
            let partials: Vec<PartialSignature> =
                signing.partials.iter().flatten().copied().collect();
            let signature = signing.context.aggregate(&partials)?;
            lotus_musig2::verify(spec.key_agg.aggregated_key(), &spec.message, &signature)?;
            // What is still being sent goes on (bounded by the deadline): a
            // slower signer may still need our partial signature.
            outbox.detach_all();
            return Ok(Signed {
                session: spec.hash,
                aggregated_key: *spec.key_agg.aggregated_key(),
                signature,
                signers: spec
                    .keys()
                    .iter()
                    .zip(&peers)
                    .map(|(key, peer)| (*key, peer.unwrap_or(node.peer_id())))
                    .collect(),
            });
        }
        let inbound = tokio::select! {
            inbound = inbox.recv() => inbound,
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
        match &inbound.round.body {
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
                if let Ok(Observation::Equivocation(evidence)) = observed {
                    if nonce_of(&evidence.first) != Some(nonce) {
                        return Err(SessionError::Equivocation {
                            blame: Box::new(spec.blame(slot, &peers, BlameReason::Equivocation)),
                            evidence,
                        });
                    }
                    continue; // the same nonce, signed again
                }
                let Some(held) = nonces.get_mut(slot) else {
                    continue;
                };
                match held {
                    Some(h) if h.attempt == inbound.round.attempt => {}
                    Some(_) if signing.is_some() => {
                        // It restarted after we signed under its old nonce:
                        // this run cannot finish.
                        return Err(SessionError::NonceMismatch {
                            blame: vec![spec.blame(slot, &peers, BlameReason::NonceMismatch)],
                        });
                    }
                    _ => {
                        *held = Some(HeldNonce {
                            attempt: inbound.round.attempt,
                            nonce,
                            message: inbound.message,
                        });
                    }
                }
            }
            Body::Partial { .. } => match signing.as_mut() {
                None if early.len() < 2 * n => early.push(inbound),
                None => inner.reject(Rejection::SessionBusy, inbound.from),
                Some(signing) => on_partial(spec, &peers, &nonces, Some(signing), inbound)?,
            },
        }
    }
}

/// The nonce a round-1 message carries.
fn nonce_of(message: &Message) -> Option<PubNonce> {
    match RoundMessage::decode(message).ok()?.body {
        Body::Nonce(nonce) => Some(nonce),
        Body::Partial { .. } => None,
    }
}

/// Checks a partial signature (only against the nonces it was made under)
/// and keeps it.
fn on_partial(
    spec: &Spec,
    peers: &[Option<PeerId>],
    held: &[Option<HeldNonce>],
    signing: Option<&mut Signing>,
    inbound: Inbound,
) -> Result<(), SessionError> {
    let Some(signing) = signing else {
        return Ok(());
    };
    let Some(slot) = spec.key_agg.position(&inbound.round.signer) else {
        return Ok(());
    };
    let Body::Partial { nonces, partial } = &inbound.round.body else {
        return Ok(());
    };
    if signing.partials.get(slot).is_some_and(Option::is_some) {
        return Ok(()); // a repeat
    }
    if *nonces != signing.nonces {
        let differ: Vec<usize> = (0..spec.keys().len())
            .filter(|&i| nonces.get(i) != signing.nonces.get(i))
            .collect();
        return Err(SessionError::NonceMismatch {
            blame: differ
                .into_iter()
                .map(|i| spec.blame(i, peers, BlameReason::NonceMismatch))
                .collect(),
        });
    }
    let Some(nonce) = signing.nonces.get(slot) else {
        return Ok(());
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
    Ok(())
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
        let lookups = missing.iter().map(|&i| async move {
            let key = spec.keys().get(i)?;
            let peer = inner.find_peer(key, left.min(LOOKUP)).await?;
            Some((i, peer))
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

/// Sends `message` to every other signer, each send retried until it is
/// written or the deadline passes.
fn send_to_all(
    outbox: &mut JoinSet<()>,
    node: &Node,
    peers: &[Option<PeerId>],
    ours: usize,
    message: &Arc<Message>,
    deadline: Instant,
) {
    for (i, peer) in peers.iter().enumerate() {
        let Some(peer) = *peer else { continue };
        if i == ours {
            continue;
        }
        let node = node.clone();
        let message = Arc::clone(message);
        outbox.spawn(async move {
            while let Err(error) = node.send(peer, &message).await {
                tracing::debug!(%peer, %error, "musig2 send failed; retrying");
                if Instant::now() + RETRY >= deadline {
                    return;
                }
                tokio::time::sleep(RETRY).await;
            }
        });
    }
}
