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
        RoundMessage {
            session,
            attempt,
            signer: *self.key.public_key(),
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
        tokio::time::timeout(WAIT, async {
            while signers
                .iter()
                .zip(&before)
                .any(|(s, before)| s.buffered_messages() <= *before)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the message was not buffered");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_partial_signature_is_blamed_on_its_signer_with_evidence() {
    let nodes = network(3).await;
    let honest = signers(&nodes[..2]).await;
    let mut bad = Scripted::on(nodes[2].clone()).await;
    let keys = vec![
        *honest[0].public_key(),
        *honest[1].public_key(),
        *bad.key.public_key(),
    ];
    let ctx = KeyAggContext::new(keys.iter().copied()).unwrap();
    let session = SessionHash::new("bad-partial", &MESSAGE, &ctx);
    let honest_peers = [nodes[0].peer_id(), nodes[1].peer_id()];

    let run = sign_all(&honest, "bad-partial", &keys, WAIT);
    let script = async {
        let attempt = [7; 16];
        let (_, my_nonce) =
            SecNonce::generate(&bad.key, &ctx, Some(&MESSAGE), b"scripted").unwrap();
        let round1 = bad.message(session, attempt, Body::Nonce(my_nonce));
        bad.send_all(&honest_peers, &round1).await;
        // The honest nonces, then a partial signature that is not one.
        let mut nonces: Vec<Option<PubNonce>> = vec![None; 3];
        nonces[ctx.position(bad.key.public_key()).unwrap()] = Some(my_nonce);
        while nonces.iter().any(Option::is_none) {
            let m = bad.next().await;
            if let Body::Nonce(n) = m.body {
                nonces[ctx.position(&m.signer).unwrap()] = Some(n);
            }
        }
        let forged = PartialSignature::from_bytes(&[1; 32]).unwrap();
        let round2 = bad.message(
            session,
            attempt,
            Body::Partial {
                nonces: nonces.into_iter().map(Option::unwrap).collect(),
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

/// Waits (bounded) until `signer` has refused `n` messages from `peer`.
async fn wait_refused(signer: &Musig2, peer: &PeerId, n: u64) {
    tokio::time::timeout(WAIT, async {
        while signer.rejections_from(peer) < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the message was not refused");
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
        tokio::time::timeout(WAIT, async {
            while signers[1..]
                .iter()
                .zip(&before)
                .any(|(s, before)| s.buffered_messages() <= *before)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the second attempt's nonce did not arrive");
        sign_all(&signers[1..], "restart", &keys, WAIT).await
    };
    let (again, others) = futures::join!(again, others);
    let mut all = vec![again];
    all.extend(others);
    assert_all_signed(all, &keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_messages_of_a_signers_earlier_run_do_not_replace_its_later_one() {
    let nodes = network(3).await;
    let honest = signers(&nodes[..2]).await;
    let mut restarted = Scripted::on(nodes[2].clone()).await;
    let keys = vec![
        *honest[0].public_key(),
        *honest[1].public_key(),
        *restarted.key.public_key(),
    ];
    let ctx = KeyAggContext::new(keys.iter().copied()).unwrap();
    let session = SessionHash::new("late-nonce", &MESSAGE, &ctx);
    let honest_peers = [nodes[0].peer_id(), nodes[1].peer_id()];
    let ours = ctx.position(restarted.key.public_key()).unwrap();

    // The signer ran the session twice. Its later run's nonce reaches the
    // others first, then a send of its earlier run that was still under
    // way; both wait in their buffers before they start.
    let earlier = p2p_musig2::wire::new_attempt().unwrap();
    let later = p2p_musig2::wire::new_attempt().unwrap();
    let (stale_secret, stale) =
        SecNonce::generate(&restarted.key, &ctx, Some(&MESSAGE), &earlier).unwrap();
    let (secret, nonce) = SecNonce::generate(&restarted.key, &ctx, Some(&MESSAGE), &later).unwrap();
    for (attempt, sent) in [(later, nonce), (earlier, stale)] {
        let round1 = restarted.message(session, attempt, Body::Nonce(sent));
        restarted.buffer_at(&honest, &round1).await;
    }

    let run = sign_all(&honest, "late-nonce", &keys, WAIT);
    let script = async {
        // The honest nonces, then a partial signature of its earlier run
        // (under its earlier nonce) arriving late, then its later run's:
        // the session ends only if the others signed under the later nonce
        // and set the earlier partial signature aside.
        let mut nonces: Vec<Option<PubNonce>> = vec![None; 3];
        nonces[ours] = Some(nonce);
        while nonces.iter().any(Option::is_none) {
            let m = restarted.next().await;
            if let Body::Nonce(n) = m.body {
                nonces[ctx.position(&m.signer).unwrap()] = Some(n);
            }
        }
        let mut partial_under = |own: PubNonce, secret: SecNonce| {
            nonces[ours] = Some(own);
            let list: Vec<PubNonce> = nonces.iter().copied().map(Option::unwrap).collect();
            let context = lotus_musig2::SessionContext::new(
                &ctx,
                &lotus_musig2::aggregate_nonces(&list).unwrap(),
                &MESSAGE,
            )
            .unwrap();
            let partial = context.partial_sign(secret, &restarted.key).unwrap();
            Body::Partial {
                nonces: list,
                partial,
            }
        };
        let late = restarted.message(session, earlier, partial_under(stale, stale_secret));
        let round2 = restarted.message(session, later, partial_under(nonce, secret));
        restarted.send_all(&honest_peers, &late).await;
        tokio::time::timeout(WAIT, async {
            while honest
                .iter()
                .any(|s| s.rejections().get(&Rejection::EarlierAttempt) != Some(&2))
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the earlier run's nonce and partial signature were not both refused");
        restarted.send_all(&honest_peers, &round2).await;
    };
    let (results, ()) = futures::join!(run, script);
    assert_all_signed(results, &keys);
    for signer in &honest {
        assert_eq!(signer.rejections_from(&nodes[2].peer_id()), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_partial_signature_of_a_signers_earlier_run_is_set_aside_when_it_restarts() {
    let nodes = network(3).await;
    let honest = signers(&nodes[..2]).await;
    let mut restarted = Scripted::on(nodes[2].clone()).await;
    let keys = vec![
        *honest[0].public_key(),
        *honest[1].public_key(),
        *restarted.key.public_key(),
    ];
    let ctx = KeyAggContext::new(keys.iter().copied()).unwrap();
    let session = SessionHash::new("kept-partial", &MESSAGE, &ctx);
    let ours = ctx.position(restarted.key.public_key()).unwrap();
    let earlier = p2p_musig2::wire::new_attempt().unwrap();
    let later = p2p_musig2::wire::new_attempt().unwrap();
    let (_, stale) = SecNonce::generate(&restarted.key, &ctx, Some(&MESSAGE), &earlier).unwrap();
    let (secret, nonce) = SecNonce::generate(&restarted.key, &ctx, Some(&MESSAGE), &later).unwrap();

    // The first signer gets, in order, the earlier run's nonce and partial
    // signature, then the later run's nonce: the partial signature is kept
    // for when it signs, and by then it was made under a replaced nonce.
    let kept = Body::Partial {
        nonces: vec![stale; 3],
        partial: PartialSignature::from_bytes(&[1; 32]).unwrap(),
    };
    for (attempt, body) in [
        (earlier, Body::Nonce(stale)),
        (earlier, kept),
        (later, Body::Nonce(nonce)),
    ] {
        let m = restarted.message(session, attempt, body);
        restarted.buffer_at(&honest[..1], &m).await;
    }
    let m = restarted.message(session, later, Body::Nonce(nonce));
    restarted.buffer_at(&honest[1..], &m).await;

    let run = sign_all(&honest, "kept-partial", &keys, WAIT);
    let script = async {
        let mut nonces: Vec<Option<PubNonce>> = vec![None; 3];
        nonces[ours] = Some(nonce);
        while nonces.iter().any(Option::is_none) {
            let m = restarted.next().await;
            if let Body::Nonce(n) = m.body {
                nonces[ctx.position(&m.signer).unwrap()] = Some(n);
            }
        }
        let nonces: Vec<PubNonce> = nonces.into_iter().map(Option::unwrap).collect();
        let context = lotus_musig2::SessionContext::new(
            &ctx,
            &lotus_musig2::aggregate_nonces(&nonces).unwrap(),
            &MESSAGE,
        )
        .unwrap();
        let partial = context.partial_sign(secret, &restarted.key).unwrap();
        // The first signer refuses the kept one when it signs (sent before
        // that, ours would take its place).
        tokio::time::timeout(WAIT, async {
            while honest[0].rejections().get(&Rejection::EarlierAttempt) != Some(&1) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the kept partial signature was not refused when the session signed");
        let round2 = restarted.message(session, later, Body::Partial { nonces, partial });
        restarted
            .send_all(&[nodes[0].peer_id(), nodes[1].peer_id()], &round2)
            .await;
    };
    let (results, ()) = futures::join!(run, script);
    assert_all_signed(results, &keys);
    assert_eq!(honest[0].rejections_from(&nodes[2].peer_id()), 1);
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
    tokio::time::timeout(WAIT, async {
        while signers[0].buffered_messages() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the impostor's nonce did not arrive");
    assert_all_signed(sign_all(&signers, "impostor", &keys, WAIT).await, &keys);
    assert_eq!(signers[0].rejections_from(&impostor.node.peer_id()), 1);
    assert_eq!(signers[0].rejections().get(&Rejection::WrongPeer), Some(&1));
}
