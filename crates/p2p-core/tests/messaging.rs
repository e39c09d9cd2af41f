//! Messaging between real nodes over TCP loopback: direct sends, broadcast,
//! the inbound checks (spoofing, duplicates, size, signatures, unknown
//! handlers), the TypeScript JSON protocol, and backpressure without loss.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{WAIT, connected_pair, dial_addr, message_from, rejection, tcp_node};
use p2p_core::{
    BroadcastOptions, DhtModeSetting, Event, MessageBuilder, RejectReason, Wire, WireChoice,
};

fn kind(s: &str) -> p2p_core::MessageType {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_message_reaches_the_peer_with_its_sender_bound() {
    let (alice, bob) = connected_pair().await;
    let received = message_from(&bob, alice.peer_id(), b"{\"text\":\"hello\"}");
    let message = alice
        .sign(
            alice
                .message(kind("test-message"))
                .payload(&b"{\"text\":\"hello\"}"[..]),
        )
        .unwrap();
    alice.send(bob.peer_id(), &message).await.unwrap();
    let Event::Message {
        from,
        message: got,
        id,
        verified,
        wire,
    } = received.await
    else {
        unreachable!()
    };
    assert_eq!(from, alice.peer_id());
    assert_eq!(*got, message);
    assert_eq!(id, message.id());
    assert!(verified);
    assert_eq!(wire, Wire::Native);
    let stats = bob.stats().await.unwrap().messages;
    assert_eq!((stats.received, stats.rejected_total()), (1, 0));
    assert_eq!(alice.stats().await.unwrap().messages.sent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_peer_and_honours_exclusions() {
    let alice = tcp_node(DhtModeSetting::Client).await;
    let bob = tcp_node(DhtModeSetting::Client).await;
    let charlie = tcp_node(DhtModeSetting::Client).await;
    alice.connect(dial_addr(&bob).await).await.unwrap();
    alice.connect(dial_addr(&charlie).await).await.unwrap();

    let all = alice
        .sign(alice.message(kind("data-broadcast")).payload(&b"1"[..]))
        .unwrap();
    let (bob_gets, charlie_gets) = (
        message_from(&bob, alice.peer_id(), b"1"),
        message_from(&charlie, alice.peer_id(), b"1"),
    );
    let report = alice
        .broadcast(&all, &BroadcastOptions::default())
        .await
        .unwrap();
    assert_eq!(report.delivered.len(), 2);
    assert!(report.failed.is_empty());
    bob_gets.await;
    charlie_gets.await;

    // Excluding Bob: only Charlie gets it. A marker sent to Bob afterwards on
    // the same ordered stream proves the excluded message never came.
    let mut bob_events = bob.subscribe();
    let some = alice
        .sign(alice.message(kind("data-broadcast")).payload(&b"2"[..]))
        .unwrap();
    let charlie_gets = message_from(&charlie, alice.peer_id(), b"2");
    let options = {
        let mut c = BroadcastOptions::default();
        c.exclude = vec![bob.peer_id()];
        c
    };
    let report = alice.broadcast(&some, &options).await.unwrap();
    assert_eq!(report.delivered, vec![charlie.peer_id()]);
    charlie_gets.await;
    let marker = alice
        .sign(alice.message(kind("marker")).payload(&b"3"[..]))
        .unwrap();
    alice.send(bob.peer_id(), &marker).await.unwrap();
    loop {
        let event = tokio::time::timeout(WAIT, bob_events.recv())
            .await
            .unwrap()
            .unwrap();
        if let Event::Message { message, .. } = event {
            assert_ne!(
                message.payload.as_ref(),
                b"2",
                "excluded peer got the broadcast"
            );
            if message.payload.as_ref() == b"3" {
                break;
            }
        }
    }
    // include_only narrows to the named peers.
    let only = {
        let mut c = BroadcastOptions::default();
        c.include_only = vec![bob.peer_id()];
        c
    };
    let report = alice.broadcast(&marker, &only).await.unwrap();
    assert_eq!(report.delivered, vec![bob.peer_id()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_sender_is_rejected_and_attributed_to_the_connection() {
    let (alice, bob) = connected_pair().await;
    let mallory = libp2p::identity::Keypair::generate_ed25519();
    // Validly signed by Mallory, but it arrives over Alice's connection.
    let forged = MessageBuilder::new(kind("chat"), mallory.public().to_peer_id())
        .payload(&b"{}"[..])
        .sign(&mallory)
        .unwrap();
    let rejected = rejection(&bob, alice.peer_id(), RejectReason::SpoofedSender);
    alice.send(bob.peer_id(), &forged).await.unwrap();
    rejected.await;
    assert_eq!(
        bob.peer_message_stats(&alice.peer_id())
            .rejected(RejectReason::SpoofedSender),
        1
    );
    assert_eq!(bob.stats().await.unwrap().messages.received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_suppressed_and_counted() {
    let (alice, bob) = connected_pair().await;
    let message = alice
        .sign(alice.message(kind("chat")).payload(&b"\"once\""[..]))
        .unwrap();
    let first = message_from(&bob, alice.peer_id(), b"\"once\"");
    let duplicate = rejection(&bob, alice.peer_id(), RejectReason::Duplicate);
    alice.send(bob.peer_id(), &message).await.unwrap();
    alice.send(bob.peer_id(), &message).await.unwrap();
    first.await;
    duplicate.await;
    let stats = bob.stats().await.unwrap().messages;
    assert_eq!(stats.received, 1);
    assert_eq!(stats.rejected(RejectReason::Duplicate), 1);
    // Same content with a different payload is a different message.
    let other = alice
        .sign(
            alice
                .message(kind("chat"))
                .payload(&b"\"twice\""[..])
                .nonce(message.nonce.clone()),
        )
        .unwrap();
    let second = message_from(&bob, alice.peer_id(), b"\"twice\"");
    alice.send(bob.peer_id(), &other).await.unwrap();
    second.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_rejected_counted_and_the_sender_can_go_on() {
    let (alice, bob) = connected_pair().await;
    let big = alice
        .sign(alice.message(kind("chat")).payload(vec![b'x'; 100_001]))
        .unwrap();
    let rejected = rejection(&bob, alice.peer_id(), RejectReason::Oversize);
    let _ = alice.send(bob.peer_id(), &big).await; // written, then refused by the reader
    rejected.await;
    assert_eq!(
        bob.peer_message_stats(&alice.peer_id())
            .rejected(RejectReason::Oversize),
        1
    );
    // Bob reset the refused stream. Until Alice's side has seen that reset,
    // her next write still goes into the dead stream and is lost (a send
    // reports the write, not the remote's receipt). A message Bob sends
    // after the reset, on the same connection, reaches Alice after the reset
    // does: once she has it, her next send finds the stream dead and opens a
    // new one.
    let after_reset = bob
        .sign(
            bob.message(kind("chat"))
                .payload(&b"\"after the reset\""[..]),
        )
        .unwrap();
    let reset_seen = message_from(&alice, bob.peer_id(), b"\"after the reset\"");
    bob.send(alice.peer_id(), &after_reset).await.unwrap();
    reset_seen.await;
    let ok = alice
        .sign(alice.message(kind("chat")).payload(&b"\"still here\""[..]))
        .unwrap();
    let got = message_from(&bob, alice.peer_id(), b"\"still here\"");
    alice.send(bob.peer_id(), &ok).await.unwrap();
    got.await;
    let stats = bob.stats().await.unwrap().messages;
    assert_eq!((stats.received, stats.rejected_total()), (1, 1));
}

/// A count of a handler's calls that can be waited on.
#[derive(Default)]
struct Calls {
    count: AtomicUsize,
    changed: tokio::sync::Notify,
}

impl Calls {
    fn add(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `n` calls happened.
    async fn reached(&self, n: usize, what: &str) {
        let wait = async {
            loop {
                // Registered before the check, so no call slips in between.
                let changed = self.changed.notified();
                if self.get() >= n {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("{what}: {} calls, expected {n}", self.get()));
    }
}

struct Recorder {
    name: &'static str,
    unsigned_ok: bool,
    seen: Arc<Calls>,
    connected: Arc<Calls>,
}

#[async_trait::async_trait]
impl p2p_core::ProtocolHandler for Recorder {
    fn name(&self) -> p2p_core::ProtocolName {
        self.name.parse().unwrap()
    }
    fn accepts_unsigned_direct(&self) -> bool {
        self.unsigned_ok
    }
    async fn handle_message(
        &self,
        _message: Arc<p2p_core::Message>,
        _from: p2p_types::PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        self.seen.add();
        Ok(())
    }
    async fn on_peer_connected(&self, _peer: p2p_types::PeerId) {
        self.connected.add();
    }
}

fn recorder(name: &'static str, unsigned_ok: bool) -> (Arc<Recorder>, Arc<Calls>) {
    let seen = Arc::new(Calls::default());
    let handler = Arc::new(Recorder {
        name,
        unsigned_ok,
        seen: Arc::clone(&seen),
        connected: Arc::default(),
    });
    (handler, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_messages_only_for_direct_traffic_to_opted_in_handlers() {
    let (alice, bob) = connected_pair().await;
    let (fast, fast_seen) = recorder("fast", true);
    let (strict, _) = recorder("strict", false);
    bob.register_handler(fast).unwrap();
    bob.register_handler(strict).unwrap();

    let direct = alice
        .message(kind("tick"))
        .protocol("fast".parse().unwrap())
        .to(bob.peer_id())
        .payload(&b"1"[..])
        .build();
    let got = message_from(&bob, alice.peer_id(), b"1");
    alice.send(bob.peer_id(), &direct).await.unwrap();
    let Event::Message { verified, .. } = got.await else {
        unreachable!()
    };
    assert!(!verified);

    // Not addressed to Bob: could be relayed, so it must be signed.
    let undirected = alice
        .message(kind("tick"))
        .protocol("fast".parse().unwrap())
        .payload(&b"2"[..])
        .build();
    let refused = rejection(&bob, alice.peer_id(), RejectReason::MissingSignature);
    alice.send(bob.peer_id(), &undirected).await.unwrap();
    refused.await;
    // A handler that did not opt in never gets unsigned messages.
    let to_strict = alice
        .message(kind("tick"))
        .protocol("strict".parse().unwrap())
        .to(bob.peer_id())
        .payload(&b"3"[..])
        .build();
    let refused = rejection(&bob, alice.peer_id(), RejectReason::MissingSignature);
    alice.send(bob.peer_id(), &to_strict).await.unwrap();
    refused.await;
    // Unknown handler names are refused too.
    let nowhere = alice
        .sign(
            alice
                .message(kind("tick"))
                .protocol("nope".parse().unwrap())
                .payload(&b"4"[..]),
        )
        .unwrap();
    let refused = rejection(&bob, alice.peer_id(), RejectReason::UnknownProtocol);
    alice.send(bob.peer_id(), &nowhere).await.unwrap();
    refused.await;
    // The handler got the one accepted message (its call runs on the
    // handler's own task, after the message event); the refused ones never
    // reached it.
    fast_seen.reached(1, "fast handler").await;
    assert_eq!(fast_seen.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_json_protocol_is_served_only_when_configured_and_works_both_ways() {
    // Off by default: its messages cannot be signed.
    let (alice, bob) = connected_pair().await;
    let plain = alice.message(kind("chat")).payload(&b"1"[..]).build();
    assert!(matches!(
        alice
            .send_with(bob.peer_id(), &plain, WireChoice::TypeScript)
            .await,
        Err(p2p_core::SendError::Unsupported(_))
    ));

    let typescript =
        || common::tcp_builder(DhtModeSetting::Client).accept_typescript_messages(true);
    let (alice, bob) = common::connect_pair(
        common::started(typescript()).await,
        common::started(typescript()).await,
    )
    .await;
    let message = alice
        .sign(
            alice
                .message(kind("chat"))
                .payload(&b"{\"text\":\"hi\"}"[..]),
        )
        .unwrap();
    let (m, wire, verified) =
        common::send_and_receive(&alice, &bob, &message, WireChoice::TypeScript).await;
    assert_eq!(wire, Wire::TypeScript);
    assert!(verified, "our signature survives the JSON form");
    assert_eq!(*m, message);
    // Unsigned, as TypeScript nodes send: accepted as unauthenticated content.
    let plain = bob.message(kind("chat")).payload(&b"[1,2]"[..]).build();
    let got = message_from(&alice, bob.peer_id(), b"[1,2]");
    bob.send_with(alice.peer_id(), &plain, WireChoice::TypeScript)
        .await
        .unwrap();
    let Event::Message { verified, .. } = got.await else {
        unreachable!()
    };
    assert!(!verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_registered_before_start_get_messages_and_survive_restart() {
    let bob = p2p_core::Node::builder()
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .build()
        .unwrap();
    let seen = Arc::new(Calls::default());
    let connected = Arc::new(Calls::default());
    let handler = Arc::new(Recorder {
        name: "chat",
        unsigned_ok: false,
        seen: Arc::clone(&seen),
        connected: Arc::clone(&connected),
    });
    bob.register_handler(handler.clone()).unwrap();
    assert!(matches!(
        bob.register_handler(handler),
        Err(p2p_core::RegisterError::Duplicate(_))
    ));
    for round in 1..=2 {
        bob.start().await.unwrap();
        let alice = tcp_node(DhtModeSetting::Client).await;
        alice.connect(dial_addr(&bob).await).await.unwrap();
        let message = alice
            .sign(
                alice
                    .message(kind("chat-message"))
                    .protocol("chat".parse().unwrap())
                    .payload(&b"{}"[..]),
            )
            .unwrap();
        let got = message_from(&bob, alice.peer_id(), b"{}");
        alice.send(bob.peer_id(), &message).await.unwrap();
        got.await;
        seen.reached(round, "handle_message").await;
        connected.reached(round, "on_peer_connected").await;
        bob.stop().await.unwrap();
    }
    assert!(bob.unregister_handler(&"chat".parse().unwrap()));
    assert!(!bob.unregister_handler(&"chat".parse().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_or_panicking_handler_does_not_stall_others() {
    struct Stuck;
    #[async_trait::async_trait]
    impl p2p_core::ProtocolHandler for Stuck {
        fn name(&self) -> p2p_core::ProtocolName {
            "stuck".parse().unwrap()
        }
        async fn handle_message(
            &self,
            _: Arc<p2p_core::Message>,
            _: p2p_types::PeerId,
        ) -> Result<(), p2p_core::HandlerError> {
            std::future::pending::<()>().await;
            Ok(())
        }
    }
    struct Panics;
    #[async_trait::async_trait]
    impl p2p_core::ProtocolHandler for Panics {
        fn name(&self) -> p2p_core::ProtocolName {
            "panics".parse().unwrap()
        }
        async fn handle_message(
            &self,
            _: Arc<p2p_core::Message>,
            _: p2p_types::PeerId,
        ) -> Result<(), p2p_core::HandlerError> {
            panic!("a buggy handler")
        }
    }
    let (alice, bob) = connected_pair().await;
    bob.register_handler(Arc::new(Stuck)).unwrap();
    bob.register_handler(Arc::new(Panics)).unwrap();
    for n in 0..3u8 {
        let to_panics = alice
            .sign(
                alice
                    .message(kind("x"))
                    .protocol("panics".parse().unwrap())
                    .payload(vec![b'0' + n]),
            )
            .unwrap();
        alice.send(bob.peer_id(), &to_panics).await.unwrap();
    }
    let (fine, fine_seen) = recorder("fine", false);
    bob.register_handler(fine).unwrap();
    for n in 0..5u8 {
        let to_stuck = alice
            .sign(
                alice
                    .message(kind("x"))
                    .protocol("stuck".parse().unwrap())
                    .payload(vec![b'0' + n]),
            )
            .unwrap();
        alice.send(bob.peer_id(), &to_stuck).await.unwrap();
    }
    let to_fine = alice
        .sign(
            alice
                .message(kind("x"))
                .protocol("fine".parse().unwrap())
                .payload(&b"\"ok\""[..]),
        )
        .unwrap();
    let got = message_from(&bob, alice.peer_id(), b"\"ok\"");
    alice.send(bob.peer_id(), &to_fine).await.unwrap();
    got.await;
    fine_seen.reached(1, "the fine handler").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_senders_lose_nothing() {
    // The pipeline's own backpressure, without rate limits.
    let unlimited = || {
        common::tcp_builder(DhtModeSetting::Client).rate_limits(p2p_core::RateLimits::unlimited())
    };
    let (alice, bob) = common::connect_pair(
        common::started(unlimited()).await,
        common::started(unlimited()).await,
    )
    .await;
    const SENDERS: usize = 64;
    const EACH: usize = 100;
    let bob_id = bob.peer_id();
    let tasks: Vec<_> = (0..SENDERS)
        .map(|s| {
            let alice = alice.clone();
            tokio::spawn(async move {
                for n in 0..EACH {
                    let m = alice
                        .sign(
                            alice
                                .message(kind("load"))
                                .payload(format!("[{s},{n}]").into_bytes()),
                        )
                        .unwrap();
                    alice.send(bob_id, &m).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    common::wait_received(&bob, (SENDERS * EACH) as u64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_registered_before_start_receives_raw_streams() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    struct Echo(mpsc::UnboundedSender<Vec<u8>>);
    #[async_trait::async_trait]
    impl p2p_core::ProtocolHandler for Echo {
        fn name(&self) -> p2p_core::ProtocolName {
            "echo".parse().unwrap()
        }
        fn stream_protocol(&self) -> Option<libp2p::StreamProtocol> {
            Some(libp2p::StreamProtocol::new("/lotus/test-echo/1.0.0"))
        }
        async fn handle_message(
            &self,
            _: Arc<p2p_core::Message>,
            _: p2p_types::PeerId,
        ) -> Result<(), p2p_core::HandlerError> {
            Ok(())
        }
        async fn handle_stream(
            &self,
            mut stream: libp2p::Stream,
            _peer: p2p_types::PeerId,
        ) -> Result<(), p2p_core::HandlerError> {
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await?;
            stream.write_all(&got).await?;
            stream.close().await?;
            self.0.send(got)?;
            Ok(())
        }
    }

    let bob = p2p_core::Node::builder()
        .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .build()
        .unwrap();
    let (seen, mut streams) = mpsc::unbounded_channel();
    bob.register_handler(Arc::new(Echo(seen))).unwrap();
    for round in 0..2u8 {
        bob.start().await.unwrap();
        let alice = tcp_node(DhtModeSetting::Client).await;
        alice.connect(dial_addr(&bob).await).await.unwrap();
        let mut stream = alice
            .open_stream(
                bob.peer_id(),
                libp2p::StreamProtocol::new("/lotus/test-echo/1.0.0"),
            )
            .await
            .unwrap();
        stream.write_all(&[round; 3]).await.unwrap();
        stream.close().await.unwrap();
        let mut back = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, vec![round; 3]);
        assert_eq!(
            tokio::time::timeout(WAIT, streams.recv())
                .await
                .unwrap()
                .unwrap(),
            vec![round; 3]
        );
        bob.stop().await.unwrap(); // the registration survives for the next round
    }
    // Unregistered: the protocol is no longer served.
    bob.start().await.unwrap();
    assert!(bob.unregister_handler(&"echo".parse().unwrap()));
    let alice = tcp_node(DhtModeSetting::Client).await;
    alice.connect(dial_addr(&bob).await).await.unwrap();
    let refused = alice
        .open_stream(
            bob.peer_id(),
            libp2p::StreamProtocol::new("/lotus/test-echo/1.0.0"),
        )
        .await;
    assert!(
        matches!(&refused, Err(p2p_core::SendError::Unsupported(p)) if p.as_ref() == "/lotus/test-echo/1.0.0"),
        "{:?}",
        refused.map(|_| ())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_over_its_rate_is_slowed_not_dropped_or_punished() {
    use p2p_core::{Rate, RateLimits};
    let limited = || {
        common::tcp_builder(DhtModeSetting::Client).rate_limits({
            let mut c = RateLimits::default();
            c.peer_messages = Some(Rate::new(100, 50));
            c
        })
    };
    let (alice, bob) = common::connect_pair(
        common::started(limited()).await,
        common::started(limited()).await,
    )
    .await;
    const COUNT: u64 = 250;
    let started = tokio::time::Instant::now();
    for n in 0..COUNT {
        let m = alice
            .sign(
                alice
                    .message(kind("load"))
                    .payload(format!("[{n}]").into_bytes()),
            )
            .unwrap();
        alice.send(bob.peer_id(), &m).await.unwrap();
    }
    common::wait_received(&bob, COUNT).await;
    // 50 at once, then 100 per second: the limiter, not luck, set the pace.
    assert!(started.elapsed() >= std::time::Duration::from_millis(1_900));
    assert_eq!(bob.peer_score(alice.peer_id()).await.unwrap(), 0.0);
    assert!(bob.is_connected(alice.peer_id()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbered_messages_are_accepted_once_per_sender_and_protocol() {
    let (alice, bob) = common::connect_pair(
        common::started(common::tcp_builder(DhtModeSetting::Client).sequence_numbers(true)).await,
        tcp_node(DhtModeSetting::Client).await,
    )
    .await;
    let first = alice
        .sign(alice.message(kind("chat")).payload(&b"first"[..]))
        .unwrap();
    let second = alice
        .sign(alice.message(kind("chat")).payload(&b"second"[..]))
        .unwrap();
    let (n1, n2) = (first.sequence.unwrap(), second.sequence.unwrap());
    assert_eq!(n2, n1 + 1, "numbers count up by one");
    // Out of order inside the window is fine.
    let got = message_from(&bob, alice.peer_id(), b"second");
    alice.send(bob.peer_id(), &second).await.unwrap();
    got.await;
    let got = message_from(&bob, alice.peer_id(), b"first");
    alice.send(bob.peer_id(), &first).await.unwrap();
    got.await;

    // A fresh message (new nonce, new id, so the seen-set passes it) reusing
    // a number is a replay; so is one older than the window.
    for sequence in [n1, n1.saturating_sub(1_000)] {
        let replay = alice
            .sign(
                MessageBuilder::new(kind("chat"), alice.peer_id())
                    .payload(&b"again"[..])
                    .sequence(sequence),
            )
            .unwrap();
        let refused = rejection(&bob, alice.peer_id(), RejectReason::Duplicate);
        alice.send(bob.peer_id(), &replay).await.unwrap();
        refused.await;
    }
    let stats = bob.stats().await.unwrap().messages;
    assert_eq!(stats.rejected(RejectReason::Duplicate), 2);
}

/// `InboundPolicy::require_signature` off (a closed deployment that trusts
/// the authenticated connection): unsigned messages reach every handler,
/// relayable ones included. On (the default) they are refused (see
/// `unsigned_messages_only_for_direct_traffic_to_opted_in_handlers`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_signatures_not_required_unsigned_messages_reach_every_handler() {
    let bob = common::started(common::tcp_builder(DhtModeSetting::Client).inbound({
        let mut c = p2p_protocol::InboundPolicy::default();
        c.require_signature = false;
        c
    }))
    .await;
    let (alice, bob) = common::connect_pair(tcp_node(DhtModeSetting::Client).await, bob).await;
    let (strict, _) = recorder("strict", false);
    bob.register_handler(strict).unwrap();
    let undirected = alice
        .message(kind("tick"))
        .protocol("strict".parse().unwrap())
        .payload(&b"5"[..])
        .build();
    let got = message_from(&bob, alice.peer_id(), b"5");
    alice.send(bob.peer_id(), &undirected).await.unwrap();
    let Event::Message { verified, .. } = got.await else {
        unreachable!()
    };
    assert!(!verified);
}
