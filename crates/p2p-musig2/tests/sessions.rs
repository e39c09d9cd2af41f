//! Signing sessions between real nodes on TCP loopback: honest signers end
//! with one valid Lotus signature; a signer that is offline, sends a bad
//! partial signature, equivocates or replays ends the session with the right
//! error and blame.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use p2p_core::{HandlerError, Message, Node, PeerId, ProtocolHandler, ProtocolName, async_trait};
use p2p_musig2::lotus_musig2::{
    self, KeyAggContext, PartialSignature, PubNonce, PublicKey, SecNonce, SecretKey,
};
use p2p_musig2::wire::{Body, RoundMessage, SessionHash};
use p2p_musig2::{BlameReason, Musig2, Rejection, Round, SessionError, Signed};
use tokio::sync::mpsc;

mod common;
use common::{WAIT, network};
const MESSAGE: [u8; 32] = [0x42; 32];

/// A signer with a fresh key on each node, advertised.
async fn signers(nodes: &[Node]) -> Vec<Musig2> {
    let mut signers = Vec::new();
    for node in nodes {
        let signer = Musig2::new(
            node.clone(),
            SecretKey::generate().unwrap(),
            Default::default(),
        )
        .unwrap();
        signer.advertise().await.unwrap();
        signers.push(signer);
    }
    signers
}

fn keys(signers: &[Musig2]) -> Vec<PublicKey> {
    signers.iter().map(|s| *s.public_key()).collect()
}

/// Every signer runs the session at once.
async fn sign_all(
    signers: &[Musig2],
    id: &str,
    keys: &[PublicKey],
    timeout: Duration,
) -> Vec<Result<Signed, SessionError>> {
    futures::future::join_all(signers.iter().map(|s| s.sign(id, &MESSAGE, keys, timeout))).await
}

fn assert_all_signed(results: Vec<Result<Signed, SessionError>>, keys: &[PublicKey]) {
    let signed: Vec<Signed> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("session failed: {e}")))
        .collect();
    let expected = *KeyAggContext::new(keys.iter().copied())
        .unwrap()
        .aggregated_key();
    for s in &signed {
        assert_eq!(s, &signed[0], "every signer ends with the same signature");
        assert_eq!(s.aggregated_key, expected);
        lotus_musig2::verify(&expected, &MESSAGE, &s.signature).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_signers_end_with_one_valid_lotus_signature() {
    let nodes = network(3).await;
    let signers = signers(&nodes).await;
    let keys = keys(&signers);
    assert_all_signed(sign_all(&signers, "three", &keys, WAIT).await, &keys);
    // Signing the finished session again returns its signature; nothing is
    // signed twice.
    let again = signers[0]
        .sign("three", &MESSAGE, &keys, WAIT)
        .await
        .unwrap();
    lotus_musig2::verify(&again.aggregated_key, &MESSAGE, &again.signature).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_signers_end_with_one_valid_lotus_signature() {
    let nodes = network(15).await;
    let signers = signers(&nodes).await;
    let keys = keys(&signers);
    assert_all_signed(sign_all(&signers, "fifteen", &keys, WAIT).await, &keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_outside_two_to_fifteen_distinct_signers_are_refused() {
    let nodes = network(2).await;
    let signers = signers(&nodes).await;
    let mine = *signers[0].public_key();
    let other = *signers[1].public_key();
    let many: Vec<PublicKey> = std::iter::once(mine)
        .chain((0..15).map(|_| *SecretKey::generate().unwrap().public_key()))
        .collect();
    let stranger = *SecretKey::generate().unwrap().public_key();
    let s = &signers[0];
    assert!(matches!(
        s.sign("x", &MESSAGE, &[mine], WAIT).await,
        Err(SessionError::SignerCount { got: 1 })
    ));
    assert!(matches!(
        s.sign("x", &MESSAGE, &many, WAIT).await,
        Err(SessionError::SignerCount { got: 16 })
    ));
    assert!(matches!(
        s.sign("x", &MESSAGE, &[mine, other, mine], WAIT).await,
        Err(SessionError::DuplicateKey(k)) if *k == mine
    ));
    assert!(matches!(
        s.sign("x", &MESSAGE, &[other, stranger], WAIT).await,
        Err(SessionError::NotASigner(k)) if *k == mine
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_signer_is_named_after_the_timeout() {
    let nodes = network(3).await;
    let signers = signers(&nodes).await;
    let keys = keys(&signers);
    // The third signer advertised, then its node went away.
    nodes[2].stop().await.unwrap();
    let results = sign_all(&signers[..2], "offline", &keys, Duration::from_secs(4)).await;
    for result in results {
        match result {
            Err(SessionError::Timeout { round, blame }) => {
                assert_eq!(round, Round::Nonces);
                assert_eq!(blame.len(), 1, "{blame:?}");
                assert_eq!(blame[0].public_key, keys[2]);
                assert_eq!(blame[0].peer, Some(nodes[2].peer_id()));
                assert_eq!(blame[0].reason, BlameReason::Missing);
            }
            other => panic!("expected a timeout naming the offline signer, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_nobody_advertises_is_named_in_discovery() {
    let nodes = network(2).await;
    let signers = signers(&nodes).await;
    let ghost = *SecretKey::generate().unwrap().public_key();
    let keys = [*signers[0].public_key(), *signers[1].public_key(), ghost];
    match signers[0]
        .sign("ghost", &MESSAGE, &keys, Duration::from_secs(3))
        .await
    {
        Err(SessionError::Timeout { round, blame }) => {
            assert_eq!(round, Round::Discovery);
            assert_eq!(blame.len(), 1);
            assert_eq!((blame[0].public_key, blame[0].peer), (ghost, None));
        }
        other => panic!("expected a discovery timeout, got {other:?}"),
    }
}

/// A scripted signer: it answers with its own messages instead of running
/// the protocol, to misbehave on purpose.
struct Scripted {
    node: Node,
    key: SecretKey,
    inbox: mpsc::UnboundedReceiver<(Arc<Message>, PeerId)>,
}

struct Capture(mpsc::UnboundedSender<(Arc<Message>, PeerId)>);

#[async_trait]
impl ProtocolHandler for Capture {
    fn name(&self) -> ProtocolName {
        "musig2".parse().unwrap()
    }
    async fn handle_message(&self, m: Arc<Message>, from: PeerId) -> Result<(), HandlerError> {
        let _ = self.0.send((m, from));
        Ok(())
    }
}

impl Scripted {
    async fn on(node: Node) -> Self {
        let key = SecretKey::generate().unwrap();
        let (tx, inbox) = mpsc::unbounded_channel();
        node.register_handler(Arc::new(Capture(tx))).unwrap();
        p2p_musig2::advert::publish(&node, &key).await.unwrap();
        Scripted { node, key, inbox }
    }

    fn message(&self, session: SessionHash, attempt: [u8; 16], body: Body) -> Message {
        self.message_for(&self.key, session, attempt, body)
    }

    /// A round message for `key`, another key this node advertises.
    fn message_for(
        &self,
        key: &SecretKey,
        session: SessionHash,
        attempt: [u8; 16],
        body: Body,
    ) -> Message {
        RoundMessage {
            session,
            attempt,
            signer: *key.public_key(),
            body,
        }
        .sign(&self.node)
        .unwrap()
    }

    async fn send_all(&self, to: &[PeerId], message: &Message) {
        for peer in to {
            self.node.send(*peer, message).await.unwrap();
        }
    }

    /// Sends `message` to the nodes of `signers` and waits (bounded) until
    /// each has buffered it: their sessions have not started.
    async fn buffer_at(&self, signers: &[Musig2], message: &Message) {
        let before: Vec<usize> = signers.iter().map(Musig2::buffered_messages).collect();
        for signer in signers {
            self.node
                .send(signer.node().peer_id(), message)
                .await
                .unwrap();
        }
        wait_buffered("the scripted message buffered", signers, &before).await;
    }

    /// Every signer's nonce: `own` in ours, the others' as they come
    /// (bounded).
    async fn nonces(&mut self, ctx: &KeyAggContext, own: PubNonce) -> Vec<PubNonce> {
        let mut known: Vec<Option<PubNonce>> = vec![None; ctx.keys().len()];
        known[ctx.position(self.key.public_key()).unwrap()] = Some(own);
        self.fill(ctx, known).await
    }

    /// `known` with the missing nonces filled in as they come (bounded).
    async fn fill(
        &mut self,
        ctx: &KeyAggContext,
        mut known: Vec<Option<PubNonce>>,
    ) -> Vec<PubNonce> {
        while known.iter().any(Option::is_none) {
            let m = self.next().await;
            if let Body::Nonce(n) = m.body {
                known[ctx.position(&m.signer).unwrap()] = Some(n);
            }
        }
        known.into_iter().map(Option::unwrap).collect()
    }

    /// The next nonce `signer` sends us (bounded); other messages are
    /// passed over.
    async fn nonce_from(&mut self, signer: &PublicKey) -> PubNonce {
        loop {
            let m = self.next().await;
            if let (true, Body::Nonce(n)) = (m.signer == *signer, m.body) {
                return n;
            }
        }
    }

    /// Our partial signature under `nonces` (ours made with `secret`).
    fn partial(&self, ctx: &KeyAggContext, nonces: Vec<PubNonce>, secret: SecNonce) -> Body {
        partial_of(&self.key, ctx, nonces, secret)
    }

    /// The next round message received (bounded).
    async fn next(&mut self) -> RoundMessage {
        let (message, _) = tokio::time::timeout(WAIT, self.inbox.recv())
            .await
            .expect("no session message")
            .unwrap();
        RoundMessage::decode(&message).unwrap()
    }
}

/// `key`'s partial signature under `nonces` (its own made with `secret`).
fn partial_of(
    key: &SecretKey,
    ctx: &KeyAggContext,
    nonces: Vec<PubNonce>,
    secret: SecNonce,
) -> Body {
    let context = lotus_musig2::SessionContext::new(
        ctx,
        &lotus_musig2::aggregate_nonces(&nonces).unwrap(),
        &MESSAGE,
    )
    .unwrap();
    let partial = context.partial_sign(secret, key).unwrap();
    Body::Partial { nonces, partial }
}

/// Two honest signers and a scripted third on a fresh network, with the
/// keys, key context and hash of session `id` between the three.
struct Trio {
    nodes: Vec<Node>,
    honest: Vec<Musig2>,
    scripted: Scripted,
    keys: Vec<PublicKey>,
    ctx: KeyAggContext,
    session: SessionHash,
}

impl Trio {
    async fn new(id: &str) -> Self {
        let nodes = network(3).await;
        let honest = signers(&nodes[..2]).await;
        let scripted = Scripted::on(nodes[2].clone()).await;
        let mut keys = keys(&honest);
        keys.push(*scripted.key.public_key());
        let ctx = KeyAggContext::new(keys.iter().copied()).unwrap();
        let session = SessionHash::new(id, &MESSAGE, &ctx);
        Trio {
            nodes,
            honest,
            scripted,
            keys,
            ctx,
            session,
        }
    }
}

impl Trio {
    /// A trio whose scripted signer ran session `id` twice: its earlier
    /// run's messages come late.
    async fn restarting(id: &str) -> (Self, Runs) {
        let trio = Trio::new(id).await;
        let earlier = p2p_musig2::wire::new_attempt().unwrap();
        let later = p2p_musig2::wire::new_attempt().unwrap();
        let generate = |attempt: &[u8; 16]| {
            SecNonce::generate(&trio.scripted.key, &trio.ctx, Some(&MESSAGE), attempt).unwrap()
        };
        let (stale_secret, stale) = generate(&earlier);
        let (secret, nonce) = generate(&later);
        let runs = Runs {
            earlier,
            later,
            stale,
            stale_secret,
            nonce,
            secret,
        };
        (trio, runs)
    }
}

/// The scripted signer's two runs: their attempts, and each run's nonce.
struct Runs {
    earlier: [u8; 16],
    later: [u8; 16],
    stale: PubNonce,
    stale_secret: SecNonce,
    nonce: PubNonce,
    secret: SecNonce,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_partial_signature_is_blamed_on_its_signer_with_evidence() {
    let Trio {
        nodes,
        honest,
        scripted: mut bad,
        keys,
        ctx,
        session,
    } = Trio::new("bad-partial").await;
    let honest_peers = [nodes[0].peer_id(), nodes[1].peer_id()];

    let run = sign_all(&honest, "bad-partial", &keys, WAIT);
    let script = async {
        let attempt = [7; 16];
        let (_, my_nonce) =
            SecNonce::generate(&bad.key, &ctx, Some(&MESSAGE), b"scripted").unwrap();
        let round1 = bad.message(session, attempt, Body::Nonce(my_nonce));
        bad.send_all(&honest_peers, &round1).await;
        // The honest nonces, then a partial signature that is not one.
        let nonces = bad.nonces(&ctx, my_nonce).await;
        let forged = PartialSignature::from_bytes(&[1; 32]).unwrap();
        let round2 = bad.message(
            session,
            attempt,
            Body::Partial {
                nonces,
                partial: forged,
            },
        );
        bad.send_all(&honest_peers, &round2).await;
    };
    let (results, ()) = futures::join!(run, script);
    for result in results {
        match result {
            Err(SessionError::InvalidPartialSignature { blame, evidence }) => {
                assert_eq!(blame.public_key, *bad.key.public_key());
                assert_eq!(blame.peer, Some(bad.node.peer_id()));
                assert_eq!(blame.reason, BlameReason::InvalidPartialSignature);
                // The evidence is the bad signer's own signed messages.
                for m in [&evidence.nonce, &evidence.partial] {
                    assert_eq!(m.from, bad.node.peer_id());
                    p2p_protocol::verify(m).unwrap();
                    assert_eq!(
                        RoundMessage::decode(m).unwrap().signer,
                        *bad.key.public_key()
                    );
                }
            }
            other => {
                for (i, n) in nodes.iter().enumerate() {
                    eprintln!(
                        "node {i} {}: {:?}",
                        n.peer_id(),
                        n.stats().await.unwrap().messages
                    );
                }
                for h in &honest {
                    eprintln!(
                        "honest {} rejections {:?} buffered {}",
                        h.public_key(),
                        h.rejections(),
                        h.buffered_messages()
                    );
                }
                eprintln!("bad key {}", bad.key.public_key());
                panic!("expected the bad partial to be blamed, got {other:?}")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_signed_nonces_for_one_attempt_are_equivocation_evidence() {
    let nodes = network(3).await;
    let honest = signers(&nodes[..2]).await;
    let bad = Scripted::on(nodes[2].clone()).await;
    let keys = vec![
        *honest[0].public_key(),
        *honest[1].public_key(),
        *bad.key.public_key(),
    ];
    let ctx = KeyAggContext::new(keys.iter().copied()).unwrap();
    let session = SessionHash::new("equivocation", &MESSAGE, &ctx);
    let honest_peers = [nodes[0].peer_id(), nodes[1].peer_id()];

    // Two different nonces, one attempt, both signed; sent before the honest
    // signers start (they are buffered), so both are seen before round 2.
    let attempt = [9; 16];
    for extra in [b"one".as_slice(), b"two"] {
        let (_, nonce) = SecNonce::generate(&bad.key, &ctx, Some(&MESSAGE), extra).unwrap();
        let m = bad.message(session, attempt, Body::Nonce(nonce));
        bad.send_all(&honest_peers, &m).await;
    }
    for result in sign_all(&honest, "equivocation", &keys, WAIT).await {
        match result {
            Err(SessionError::Equivocation { blame, evidence }) => {
                assert_eq!(blame.public_key, *bad.key.public_key());
                assert_eq!(blame.reason, BlameReason::Equivocation);
                assert_eq!(evidence.sender(), bad.node.peer_id());
                assert!(p2p_musig2::wire::proves_equivocation(&evidence));
            }
            other => panic!("expected equivocation evidence, got {other:?}"),
        }
    }
}

/// Waits (bounded by [`WAIT`]) until `done` holds; `what` names it.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within the wait"));
}

/// Waits (bounded) until `signer` has refused `n` messages from `peer`.
async fn wait_refused(signer: &Musig2, peer: &PeerId, n: u64) {
    wait_until("the message refused", || signer.rejections_from(peer) >= n).await;
}

/// Waits (bounded) until each of `signers` holds more buffered messages
/// than it did `before`.
async fn wait_buffered(what: &str, signers: &[Musig2], before: &[usize]) {
    wait_until(what, || {
        signers
            .iter()
            .zip(before)
            .all(|(s, before)| s.buffered_messages() > *before)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_messages_for_a_finished_session_are_refused() {
    let nodes = network(3).await;
    let signers = signers(&nodes[..2]).await;
    let late = Scripted::on(nodes[2].clone()).await;
    // A 2-signer session between the first two nodes.
    let keys = keys(&signers);
    let signed = sign_all(&signers, "finished", &keys, WAIT).await;
    let session = signed[0].as_ref().unwrap().session;
    assert_all_signed(signed, &keys);
    // A message for it afterwards (here a late nonce from a node that is
    // not a signer) is refused and counted against its sender.
    let ctx = KeyAggContext::new(keys.iter().copied()).unwrap();
    let (_, nonce) = SecNonce::generate(&late.key, &ctx, Some(&MESSAGE), b"late").unwrap();
    let m = late.message(session, [1; 16], Body::Nonce(nonce));
    late.node.send(nodes[0].peer_id(), &m).await.unwrap();
    wait_refused(&signers[0], &late.node.peer_id(), 1).await;
    assert_eq!(signers[0].rejections_from(&late.node.peer_id()), 1);
    assert!(signers[0].rejections().get(&Rejection::SessionFinished) >= Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_runs_the_session_again_signs_with_fresh_nonces() {
    let nodes = network(3).await;
    let signers = signers(&nodes).await;
    let keys = keys(&signers);
    // The first signer's run gives up before the others start: its nonce
    // (attempt 1) waits in their buffers. It runs again (attempt 2, a fresh
    // nonce) before they start. (The first run ends before its first resend.)
    let first = signers[0]
        .sign("restart", &MESSAGE, &keys, Duration::from_millis(800))
        .await;
    // (Timed out waiting for nonces: its nonce went out.)
    assert!(
        matches!(
            first,
            Err(SessionError::Timeout {
                round: Round::Nonces,
                ..
            })
        ),
        "{first:?}"
    );
    let before: Vec<usize> = signers[1..].iter().map(Musig2::buffered_messages).collect();
    let again = signers[0].sign("restart", &MESSAGE, &keys, WAIT);
    let others = async {
        // Started once the second attempt's nonce waits at both too.
        wait_buffered("the second attempt's nonce", &signers[1..], &before).await;
        sign_all(&signers[1..], "restart", &keys, WAIT).await
    };
    let (again, others) = futures::join!(again, others);
    let mut all = vec![again];
    all.extend(others);
    assert_all_signed(all, &keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_messages_of_a_signers_earlier_run_do_not_replace_its_later_one() {
    let (mut t, r) = Trio::restarting("late-nonce").await;
    let honest_peers = [t.nodes[0].peer_id(), t.nodes[1].peer_id()];

    // The signer ran the session twice. Its later run's nonce reaches the
    // others first, then a send of its earlier run that was still under
    // way; both wait in their buffers before they start.
    for (attempt, sent) in [(r.later, r.nonce), (r.earlier, r.stale)] {
        let round1 = t.scripted.message(t.session, attempt, Body::Nonce(sent));
        t.scripted.buffer_at(&t.honest, &round1).await;
    }

    let run = sign_all(&t.honest, "late-nonce", &t.keys, WAIT);
    let script = async {
        // The honest nonces, then a partial signature of its earlier run
        // (under its earlier nonce) arriving late, then its later run's:
        // the session ends only if the others signed under the later nonce
        // and set the earlier partial signature aside.
        let nonces = t.scripted.nonces(&t.ctx, r.nonce).await;
        let mut stale_nonces = nonces.clone();
        stale_nonces[t.ctx.position(t.scripted.key.public_key()).unwrap()] = r.stale;
        let late = t.scripted.partial(&t.ctx, stale_nonces, r.stale_secret);
        let late = t.scripted.message(t.session, r.earlier, late);
        let round2 = t.scripted.partial(&t.ctx, nonces, r.secret);
        let round2 = t.scripted.message(t.session, r.later, round2);
        t.scripted.send_all(&honest_peers, &late).await;
        wait_until(
            "the earlier run's nonce and partial signature refused",
            || {
                t.honest
                    .iter()
                    .all(|s| s.rejections().get(&Rejection::EarlierAttempt) == Some(&2))
            },
        )
        .await;
        t.scripted.send_all(&honest_peers, &round2).await;
    };
    let (results, ()) = futures::join!(run, script);
    assert_all_signed(results, &t.keys);
    for signer in &t.honest {
        assert_eq!(signer.rejections_from(&t.nodes[2].peer_id()), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_partial_signature_of_a_signers_earlier_run_is_set_aside_when_it_restarts() {
    let (mut t, r) = Trio::restarting("kept-partial").await;
    let position = |key: &PublicKey| t.ctx.position(key).unwrap();
    let first_node = [t.nodes[0].peer_id()];
    let later_nonce = t.scripted.message(t.session, r.later, Body::Nonce(r.nonce));

    // The first signer starts holding the earlier run's nonce, and gets that
    // run's partial signature, made under its nonce, then the later run's
    // nonce (one stream: in that order). It keeps the partial signature
    // for when it signs; by then its signer has restarted.
    let m = t
        .scripted
        .message(t.session, r.earlier, Body::Nonce(r.stale));
    t.scripted.buffer_at(&t.honest[..1], &m).await;
    let second_started = tokio::sync::Notify::new();
    let first = t.honest[0].sign("kept-partial", &MESSAGE, &t.keys, WAIT);
    let second = async {
        second_started.notified().await;
        t.honest[1]
            .sign("kept-partial", &MESSAGE, &t.keys, WAIT)
            .await
    };
    let script = async {
        let first_nonce = t.scripted.nonce_from(&t.keys[0]).await;
        let mut made_under = vec![r.stale; 3];
        made_under[position(&t.keys[0])] = first_nonce;
        let kept = Body::Partial {
            nonces: made_under,
            partial: PartialSignature::from_bytes(&[1; 32]).unwrap(),
        };
        let kept = t.scripted.message(t.session, r.earlier, kept);
        t.scripted.send_all(&first_node, &kept).await;
        t.scripted.send_all(&first_node, &later_nonce).await;
        // It answers the restart with its nonce again: it has taken the
        // later nonce (and the partial signature before it).
        assert_eq!(t.scripted.nonce_from(&t.keys[0]).await, first_nonce);
        t.scripted.buffer_at(&t.honest[1..], &later_nonce).await;
        second_started.notify_one();
        let mut known = vec![None; 3];
        known[position(&t.keys[0])] = Some(first_nonce);
        known[position(t.scripted.key.public_key())] = Some(r.nonce);
        let nonces = t.scripted.fill(&t.ctx, known).await;
        let round2 = t.scripted.partial(&t.ctx, nonces, r.secret);
        let round2 = t.scripted.message(t.session, r.later, round2);
        // The first signer refuses the kept one when it signs (sent before
        // that, ours would take its place).
        wait_until("the kept partial signature refused", || {
            t.honest[0].rejections().get(&Rejection::EarlierAttempt) == Some(&1)
        })
        .await;
        t.scripted
            .send_all(&[t.nodes[0].peer_id(), t.nodes[1].peer_id()], &round2)
            .await;
    };
    let (first, second, ()) = futures::join!(first, second, script);
    assert_all_signed(vec![first, second], &t.keys);
    assert_eq!(t.honest[0].rejections_from(&t.nodes[2].peer_id()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_of_a_signers_earlier_run_after_a_partial_signature_of_its_later_one_is_refused() {
    let (mut t, r) = Trio::restarting("partial-first").await;
    let later_nonce = t.scripted.message(t.session, r.later, Body::Nonce(r.nonce));

    // The second signer starts with the later run's nonce, and its own
    // nonce waits at the first signer before that one starts: the first
    // then lacks only the restarted signer's nonce.
    t.scripted.buffer_at(&t.honest[1..], &later_nonce).await;
    let before = [t.honest[0].buffered_messages()];
    let second = t.honest[1].sign("partial-first", &MESSAGE, &t.keys, WAIT);
    let rest = async {
        wait_buffered("the second signer's nonce", &t.honest[..1], &before).await;
        let first = t.honest[0].sign("partial-first", &MESSAGE, &t.keys, WAIT);
        let script = async {
            // The later run's partial signature reaches the first signer
            // before any nonce of ours, then a send of the earlier run's
            // nonce still under way, then the later nonce (one stream: in
            // that order). Taken, the earlier nonce would complete its set
            // and it would sign under it.
            let nonces = t.scripted.nonces(&t.ctx, r.nonce).await;
            let round2 = t.scripted.partial(&t.ctx, nonces, r.secret);
            let round2 = t.scripted.message(t.session, r.later, round2);
            let late = t
                .scripted
                .message(t.session, r.earlier, Body::Nonce(r.stale));
            for m in [&round2, &late, &later_nonce] {
                t.scripted.send_all(&[t.nodes[0].peer_id()], m).await;
            }
            t.scripted.send_all(&[t.nodes[1].peer_id()], &round2).await;
        };
        let (first, ()) = futures::join!(first, script);
        first
    };
    let (second, first) = futures::join!(second, rest);
    assert_all_signed(vec![first, second], &t.keys);
    assert_eq!(
        t.honest[0].rejections().get(&Rejection::EarlierAttempt),
        Some(&1)
    );
}

/// One honest signer, and a scripted node that advertises the two other
/// keys of session `id`: what it sends for both reaches the honest signer
/// in order (one stream).
struct Duo {
    nodes: Vec<Node>,
    honest: Vec<Musig2>,
    scripted: Scripted,
    other: SecretKey,
    keys: Vec<PublicKey>,
    ctx: KeyAggContext,
    session: SessionHash,
}

impl Duo {
    async fn new(id: &str) -> Self {
        let nodes = network(2).await;
        let honest = signers(&nodes[..1]).await;
        let scripted = Scripted::on(nodes[1].clone()).await;
        let other = SecretKey::generate().unwrap();
        p2p_musig2::advert::publish(&nodes[1], &other)
            .await
            .unwrap();
        let keys = vec![
            *honest[0].public_key(),
            *scripted.key.public_key(),
            *other.public_key(),
        ];
        let ctx = KeyAggContext::new(keys.iter().copied()).unwrap();
        let session = SessionHash::new(id, &MESSAGE, &ctx);
        Duo {
            nodes,
            honest,
            scripted,
            other,
            keys,
            ctx,
            session,
        }
    }

    /// A nonce of `key` for a run `attempt`.
    fn generate(&self, key: &SecretKey, attempt: &[u8; 16]) -> (SecNonce, PubNonce) {
        SecNonce::generate(key, &self.ctx, Some(&MESSAGE), attempt).unwrap()
    }

    /// The honest signer's nonce (bounded), then the session's three nonces
    /// in key order with `scripted`'s and `other`'s.
    async fn nonces(&mut self, scripted: PubNonce, other: PubNonce) -> Vec<PubNonce> {
        let honest = self.scripted.nonce_from(&self.keys[0]).await;
        let mut nonces = vec![honest; 3];
        nonces[self.ctx.position(&self.keys[1]).unwrap()] = scripted;
        nonces[self.ctx.position(&self.keys[2]).unwrap()] = other;
        nonces
    }

    /// Sends `messages` to the honest signer, in order.
    async fn send(&self, messages: Vec<Message>) {
        for m in &messages {
            self.scripted.send_all(&[self.nodes[0].peer_id()], m).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_signature_of_a_signers_new_run_before_its_nonce_drops_the_old_nonce() {
    let mut d = Duo::new("nonce-lost").await;
    let earlier = p2p_musig2::wire::new_attempt().unwrap();
    let later = p2p_musig2::wire::new_attempt().unwrap();
    // (Its own attempt: the node's messages for both keys pass one
    // equivocation guard, keyed by sender, session and attempt.)
    let other_run = p2p_musig2::wire::new_attempt().unwrap();
    let (_, stale) = d.generate(&d.scripted.key, &earlier);
    let (secret, nonce) = d.generate(&d.scripted.key, &later);
    let (other_secret, other_nonce) = d.generate(&d.other, &other_run);

    // The honest signer starts holding the restarted signer's earlier
    // nonce.
    let m = d.scripted.message(d.session, earlier, Body::Nonce(stale));
    d.scripted.buffer_at(&d.honest, &m).await;
    let honest = d.honest[0].clone();
    let keys = d.keys.clone();
    let run = honest.sign("nonce-lost", &MESSAGE, &keys, WAIT);
    let script = async {
        let nonces = d.nonces(nonce, other_nonce).await;
        // Its new run's partial signature, then the other key's nonce
        // (which, with the old nonce still held, would complete the set),
        // then the new run's nonce that was lost and is resent; then the
        // other key's partial signature.
        let ours = d.scripted.partial(&d.ctx, nonces.clone(), secret);
        let theirs = partial_of(&d.other, &d.ctx, nonces, other_secret);
        let messages = vec![
            d.scripted.message(d.session, later, ours),
            d.scripted
                .message_for(&d.other, d.session, other_run, Body::Nonce(other_nonce)),
            d.scripted.message(d.session, later, Body::Nonce(nonce)),
            d.scripted
                .message_for(&d.other, d.session, other_run, theirs),
        ];
        d.send(messages).await;
    };
    let (result, ()) = futures::join!(run, script);
    assert_all_signed(vec![result], &keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_an_older_build_are_taken_in_arrival_order() {
    // An older build's attempt ids are random: no run is known to be
    // earlier. A partial signature of another run than the nonce held does
    // not drop that nonce (nothing would bring it back): the session signs
    // under the nonce it holds and names the signer whose partial signature
    // was made under another, as before.
    let mut d = Duo::new("older-build").await;
    let (held_run, other_run, another_run) = ([0xb2; 16], [0xc3; 16], [0xa1; 16]);
    let (_, held) = d.generate(&d.scripted.key, &held_run);
    let (another_secret, another) = d.generate(&d.scripted.key, &another_run);
    let (_, other_nonce) = d.generate(&d.other, &other_run);

    let m = d.scripted.message(d.session, held_run, Body::Nonce(held));
    d.scripted.buffer_at(&d.honest, &m).await;
    let honest = d.honest[0].clone();
    let keys = d.keys.clone();
    let run = honest.sign("older-build", &MESSAGE, &keys, WAIT);
    let script = async {
        let nonces = d.nonces(another, other_nonce).await;
        let partial = d.scripted.partial(&d.ctx, nonces, another_secret);
        let messages = vec![
            d.scripted.message(d.session, another_run, partial),
            d.scripted
                .message_for(&d.other, d.session, other_run, Body::Nonce(other_nonce)),
        ];
        d.send(messages).await;
    };
    let (result, ()) = futures::join!(run, script);
    match result {
        Err(SessionError::NonceMismatch { blame }) => {
            assert_eq!(blame.len(), 1, "{blame:?}");
            assert_eq!(blame[0].public_key, keys[1]);
            assert_eq!(blame[0].reason, BlameReason::NonceMismatch);
        }
        other => panic!("expected the older signer named in a nonce mismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_sign_for_a_key_another_node_advertises() {
    let nodes = network(3).await;
    let signers = signers(&nodes[..2]).await;
    let impostor = Scripted::on(nodes[2].clone()).await;
    let keys = keys(&signers);
    let ctx = KeyAggContext::new(keys.iter().copied()).unwrap();
    let session = SessionHash::new("impostor", &MESSAGE, &ctx);
    // The impostor speaks for the second signer's key (it cannot make that
    // key's advert, so it is not the advertised node).
    let (_, nonce) = SecNonce::generate(&impostor.key, &ctx, Some(&MESSAGE), b"x").unwrap();
    let m = RoundMessage {
        session,
        attempt: [3; 16],
        signer: keys[1],
        body: Body::Nonce(nonce),
    }
    .sign(&impostor.node)
    .unwrap();
    impostor.node.send(nodes[0].peer_id(), &m).await.unwrap();
    // It waits in the first signer's buffer before the session starts (a
    // written message can still be on its way when the session is over).
    wait_buffered("the impostor's nonce", &signers[..1], &[0]).await;
    assert_all_signed(sign_all(&signers, "impostor", &keys, WAIT).await, &keys);
    assert_eq!(signers[0].rejections_from(&impostor.node.peer_id()), 1);
    assert_eq!(signers[0].rejections().get(&Rejection::WrongPeer), Some(&1));
}
