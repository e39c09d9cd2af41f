//! Attacks on a running node. Each test attacks one defence and asserts what
//! is rejected, how it is counted (typed reason, attributed to the attacker),
//! and that an honest peer's traffic still gets through. Real nodes on the
//! memory transport (TCP on 127.0.0.1 port 0 where addresses matter); the attacker is a node of ours writing raw bytes or
//! forged messages, or the js-libp2p peer for DHT records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod js_peer;

use std::time::Duration;

use bytes::BytesMut;
use common::{WAIT, memory_builder, rejection, rid, rtype, started, tcp_builder};
use futures::AsyncWriteExt;
use p2p_core::libp2p;
use p2p_core::libp2p::swarm::DialError;
use p2p_core::{
    AnnounceOptions, ConnectionLimits, DhtModeSetting, Event, IpLimits, Message, MessageBuilder,
    Multiaddr, NATIVE_PROTOCOL, Node, NodeBuilder, NodeError, NodeEvent, PeerId, Rate, RateLimits,
    RejectReason, ResourceError, SendError, TYPESCRIPT_PROTOCOL, WireChoice,
};
use p2p_protocol::{ProtobufCodec, Signable, encode_message_frame};
use serde_json::json;

/// A victim, an honest peer and an attacker, both connected to the victim.
struct Arena {
    victim: Node,
    honest: Node,
    attacker: Node,
}

async fn arena_with(victim: NodeBuilder, peers: DhtModeSetting) -> Arena {
    common::init_logging();
    let victim = started(victim).await;
    // The peers run on the victim's transport.
    let transport = victim.config().transport;
    let builder = || match transport {
        p2p_core::TransportKind::Memory => memory_builder(peers),
        _ => tcp_builder(peers),
    };
    let honest = started(builder()).await;
    let attacker = started(builder()).await;
    for peer in [&honest, &attacker] {
        let seen = common::connected_to(&victim, peer.peer_id());
        peer.connect(common::dial_addr(&victim).await)
            .await
            .unwrap();
        seen.await;
    }
    Arena {
        victim,
        honest,
        attacker,
    }
}

/// An arena of three DHT servers, the victim with `limits`, once every
/// routing table knows the others.
async fn dht_arena(limits: RateLimits) -> Arena {
    let arena = arena_with(
        memory_builder(DhtModeSetting::Server).rate_limits(limits),
        DhtModeSetting::Server,
    )
    .await;
    common::wait_table_at_least(&arena.victim, 2).await;
    common::wait_table_at_least(&arena.attacker, 1).await;
    common::wait_table_at_least(&arena.honest, 1).await;
    arena
}

async fn arena() -> Arena {
    arena_with(
        memory_builder(DhtModeSetting::Client).stream_timeout(Duration::from_millis(300)),
        DhtModeSetting::Client,
    )
    .await
}

impl Arena {
    fn attacker_id(&self) -> PeerId {
        self.attacker.peer_id()
    }

    /// Resolves when the victim rejects something of the attacker's for `reason`.
    fn rejects(&self, reason: RejectReason) -> impl Future<Output = Event> + use<> {
        rejection(&self.victim, self.attacker_id(), reason)
    }

    /// Writes `bytes` on a fresh stream of `protocol` to the victim, then closes it.
    async fn raw(&self, protocol: libp2p::StreamProtocol, bytes: &[u8]) {
        let mut stream = tokio::time::timeout(
            WAIT,
            self.attacker.open_stream(self.victim.peer_id(), protocol),
        )
        .await
        .unwrap()
        .unwrap();
        // The victim may reset the stream mid-write; neither may hang.
        let _ = tokio::time::timeout(WAIT, stream.write_all(bytes)).await;
        let _ = tokio::time::timeout(WAIT, stream.close()).await;
    }

    /// A signed message of the attacker's, ready to be tampered with.
    fn signed(&self, text: &str) -> Message {
        self.signed_with(|b| b.payload(text.as_bytes().to_vec()))
    }

    /// A signed `chat` message of the attacker's, built further by `build`.
    fn signed_with(&self, build: impl FnOnce(MessageBuilder) -> MessageBuilder) -> Message {
        self.attacker
            .sign(build(self.attacker.message("chat".parse().unwrap())))
            .unwrap()
    }

    /// Frames `message` as the native protocol does and writes it raw.
    async fn forge(&self, message: &Message) {
        let mut buf = BytesMut::new();
        encode_message_frame(&ProtobufCodec, message, &mut buf).unwrap();
        self.raw(NATIVE_PROTOCOL, &buf).await;
    }

    /// The attacker sends `message` normally; the victim rejects it for
    /// `reason`; the honest peer is unaffected.
    async fn refused(&self, message: &Message, reason: RejectReason) {
        let rejected = self.rejects(reason);
        self.attacker
            .send(self.victim.peer_id(), message)
            .await
            .unwrap();
        rejected.await;
        self.honest_still_flows().await;
    }

    /// The honest peer's signed message still arrives, and it was not penalised.
    async fn honest_still_flows(&self) {
        let text = format!("honest {}", rand_suffix());
        let got = common::message_from(&self.victim, self.honest.peer_id(), leak(&text));
        let m = self
            .honest
            .sign(
                self.honest
                    .message("chat".parse().unwrap())
                    .payload(text.into_bytes()),
            )
            .unwrap();
        self.honest.send(self.victim.peer_id(), &m).await.unwrap();
        got.await;
        assert_eq!(
            self.victim.peer_score(self.honest.peer_id()).await.unwrap(),
            0.0
        );
    }

    /// Waits (bounded) until at least `n` of the attacker's rejections for
    /// `reason` are counted.
    async fn counted_eventually(&self, reason: RejectReason, n: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.counted(reason) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                self.victim.peer_message_stats(&self.attacker_id())
            );
            let _ = tokio::time::timeout(Duration::from_millis(20), self.victim.subscribe().recv())
                .await;
        }
    }

    /// Rejections of the attacker's counted for `reason`.
    fn counted(&self, reason: RejectReason) -> u64 {
        self.victim
            .peer_message_stats(&self.attacker_id())
            .rejected(reason)
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn leak(text: &str) -> &'static [u8] {
    Box::leak(text.as_bytes().to_vec().into_boxed_slice())
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = varint(body.len() as u64);
    out.extend_from_slice(body);
    out
}

/// One malformed-input case: the bytes, the reason, and that the attacker's
/// score dropped.
async fn malformed(bytes: Vec<u8>, reason: RejectReason) {
    let arena = arena().await;
    let rejected = arena.rejects(reason);
    arena.raw(NATIVE_PROTOCOL, &bytes).await;
    rejected.await;
    assert_eq!(arena.counted(reason), 1);
    assert!(arena.victim.peer_score(arena.attacker_id()).await.unwrap() < 0.0);
    arena.honest_still_flows().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame_is_refused_from_its_length_prefix() {
    let mut bytes = varint(50_000_000);
    bytes.extend_from_slice(&[0u8; 64]);
    malformed(bytes, RejectReason::Oversize).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame() {
    let mut bytes = varint(100);
    bytes.extend_from_slice(&[1u8; 10]);
    malformed(bytes, RejectReason::Framing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_varint() {
    malformed(vec![0xff; 11], RejectReason::Framing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf() {
    malformed(frame(&[0xff, 0xff, 0xff, 0x0f, 0x02]), RejectReason::Decode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_fields() {
    // Field 5 (payload) only: no type, no sender.
    malformed(frame(&[0x2a, 0x01, b'x']), RejectReason::Decode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_field_nonce_too_long() {
    let arena = arena().await;
    let mut m = arena.signed("n");
    m.nonce = vec![7u8; 100].into();
    let rejected = arena.rejects(RejectReason::InvalidField);
    arena.forge(&m).await;
    rejected.await;
    arena.honest_still_flows().await;
}

/// Forgery is clear misbehaviour: rejected, counted, and the attacker banned —
/// disconnected and unable to come back — while the honest peer carries on.
async fn forgery(tamper: impl FnOnce(&mut Message, &Arena), reason: RejectReason) {
    let arena = arena().await;
    let mut m = arena.signed("forged");
    tamper(&mut m, &arena);
    let attacker = arena.attacker_id();
    let banned = arena.victim.wait_for(WAIT, move |e| {
        matches!(e.as_node(), Some(NodeEvent::PeerBanned { peer, reason: Some(_), .. }) if *peer == attacker)
    });
    let rejected = arena.rejects(reason);
    arena.forge(&m).await;
    rejected.await;
    banned.await.unwrap();
    assert!(arena.victim.is_banned(attacker).await.unwrap());
    let deadline = tokio::time::Instant::now() + WAIT;
    while arena.victim.is_connected(attacker).await {
        assert!(tokio::time::Instant::now() < deadline, "still connected");
        let _ =
            tokio::time::timeout(Duration::from_millis(50), arena.victim.subscribe().recv()).await;
    }
    // A banned peer cannot come back: its handshake completes, then the
    // victim refuses the connection before anything runs on it.
    refused_connection(
        &arena.attacker,
        arena.victim.peer_id(),
        common::dial_addr(&arena.victim).await,
    )
    .await;
    assert!(
        !arena.victim.is_connected(attacker).await,
        "a banned peer cannot reconnect"
    );
    assert_eq!(arena.victim.stats().await.unwrap().banned_peers, 1);
    arena.honest_still_flows().await;
    // The operator can lift the ban.
    assert!(arena.victim.unban(attacker).await.unwrap());
    arena
        .attacker
        .connect(common::dial_addr(&arena.victim).await)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_bans_are_capped_and_a_lifted_ban_is_unblocked() {
    // Room for one timed ban: a second lifts the one closest to its end.
    let arena = arena_with(
        memory_builder(DhtModeSetting::Client).scoring({
            let mut c = p2p_core::ScoringConfig::default();
            c.max_bans = 1;
            c
        }),
        DhtModeSetting::Client,
    )
    .await;
    let (victim, attacker) = (&arena.victim, arena.attacker_id());
    assert!(
        victim
            .ban(attacker, Some(Duration::from_secs(60)))
            .await
            .unwrap()
    );
    let unbanned = victim.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerUnbanned { peer }) if *peer == attacker),
    );
    let newcomer = PeerId::random();
    assert!(
        victim
            .ban(newcomer, Some(Duration::from_secs(3600)))
            .await
            .unwrap()
    );
    assert!(
        !victim.is_banned(attacker).await.unwrap() && victim.is_banned(newcomer).await.unwrap()
    );
    assert_eq!(victim.stats().await.unwrap().banned_peers, 1);
    // The swarm's block list follows: the lifted peer may connect again
    // (once it has seen the ban close its old connection).
    unbanned.await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while arena.attacker.is_connected(victim.peer_id()).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ban never closed it"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), arena.attacker.subscribe().recv())
            .await;
    }
    let seen = common::connected_to(victim, attacker);
    arena
        .attacker
        .connect(common::dial_addr(victim).await)
        .await
        .unwrap();
    seen.await;
    arena.honest_still_flows().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_sender_bans() {
    forgery(
        |m, a| m.from = a.honest.peer_id(),
        RejectReason::SpoofedSender,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_bans() {
    forgery(
        |m, _| m.payload = b"\"changed after signing\"".to_vec().into(),
        RejectReason::BadSignature,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_type_bans() {
    forgery(
        |m, _| {
            // Signed by a secp256k1 key for an ed25519 sender.
            let other = libp2p::identity::Keypair::generate_secp256k1();
            m.signature = Some(other.sign(&m.signing_bytes()).unwrap().into());
        },
        RejectReason::BadSignature,
    )
    .await;
}

async fn skewed(offset_ms: i64) {
    let arena = arena().await;
    let now = p2p_protocol::now_ms() as i64;
    let m = arena.signed_with(|b| {
        b.timestamp_ms((now + offset_ms) as u64)
            .payload(b"1".to_vec())
    });
    arena.refused(&m, RejectReason::ClockSkew).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_timestamp() {
    skewed(-10 * 60 * 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_timestamp() {
    skewed(10 * 60 * 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_inside_the_window() {
    let arena = arena().await;
    let m = arena.signed("once");
    let first = common::message_from(&arena.victim, arena.attacker_id(), b"once");
    arena
        .attacker
        .send(arena.victim.peer_id(), &m)
        .await
        .unwrap();
    first.await;
    let rejected = arena.rejects(RejectReason::Duplicate);
    arena.forge(&m).await; // on another stream, as a replayer would
    rejected.await;
    assert_eq!(arena.counted(RejectReason::Duplicate), 1);
    arena.honest_still_flows().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_handler_protocol() {
    let arena = arena().await;
    let m = arena.signed_with(|b| {
        b.protocol("no-such-handler".parse().unwrap())
            .payload(b"1".to_vec())
    });
    arena.refused(&m, RejectReason::UnknownProtocol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_stream_is_cut() {
    let arena = arena().await;
    let rejected = arena.rejects(RejectReason::StreamTimeout);
    let mut stream = arena
        .attacker
        .open_stream(arena.victim.peer_id(), NATIVE_PROTOCOL)
        .await
        .unwrap();
    let mut start = varint(100);
    start.extend_from_slice(&[1u8; 5]);
    stream.write_all(&start).await.unwrap();
    stream.flush().await.unwrap();
    // ... and never the rest; the victim gives up after its stream timeout.
    rejected.await;
    arena.honest_still_flows().await;
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_storm_is_capped() {
    let arena = arena_with(tcp_builder(DhtModeSetting::Client), DhtModeSetting::Client).await;
    let mut held = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..100 {
        let open = arena
            .attacker
            .open_stream(arena.victim.peer_id(), NATIVE_PROTOCOL);
        match tokio::time::timeout(Duration::from_secs(5), open).await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push("timed out".to_owned()),
        }
        if errors.len() >= 3 {
            break; // disconnected: the storm is over
        }
    }
    // Four concurrent native streams per peer; each excess stream costs the
    // attacker points, and a storm gets it disconnected.
    assert!(held.len() > 4, "opened {}", held.len());
    let deadline = tokio::time::Instant::now() + WAIT;
    while arena.victim.is_connected(arena.attacker_id()).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "attacker still connected"
        );
        let _ =
            tokio::time::timeout(Duration::from_millis(50), arena.victim.subscribe().recv()).await;
    }
    assert!(!errors.is_empty(), "the storm was cut short");
    let stats = arena.victim.peer_message_stats(&arena.attacker_id());
    assert!(
        stats.rejected(RejectReason::TooManyStreams) >= 4,
        "{stats:?}"
    );
    assert!(arena.victim.peer_score(arena.attacker_id()).await.unwrap() < -20.0);
    arena.honest_still_flows().await;
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_json_malformed_and_oversized() {
    let arena = arena_with(
        memory_builder(DhtModeSetting::Client).accept_typescript_messages(true),
        DhtModeSetting::Client,
    )
    .await;
    let rejected = arena.rejects(RejectReason::Decode);
    arena
        .raw(TYPESCRIPT_PROTOCOL, b"{\"type\": \"chat\", \"from\": ")
        .await;
    rejected.await;
    let rejected = arena.rejects(RejectReason::Oversize);
    arena.raw(TYPESCRIPT_PROTOCOL, &vec![b' '; 150_000]).await;
    rejected.await;
    arena.honest_still_flows().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_protocol_is_not_served_by_default() {
    let arena = arena().await;
    let refused = arena
        .attacker
        .open_stream(arena.victim.peer_id(), TYPESCRIPT_PROTOCOL)
        .await;
    assert!(
        matches!(&refused, Err(SendError::Unsupported(p)) if *p == TYPESCRIPT_PROTOCOL),
        "{:?}",
        refused.map(|_| ())
    );
    arena.honest_still_flows().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_identities_from_one_address_are_capped() {
    // The issue's figure: 200 fresh identities dialling from one address.
    const SYBILS: u64 = 200;
    // Loopback counted for this test; the arena's two peers hold 2 of 6.
    let arena = arena_with(
        tcp_builder(DhtModeSetting::Client).ip_limits({
            let mut c = IpLimits::default();
            c.per_ipv4 = 6;
            c.limit_loopback = true;
            c
        }),
        DhtModeSetting::Client,
    )
    .await;
    let target = common::dial_addr(&arena.victim).await;
    let mut sybils = Vec::new();
    let mut accepted = 0;
    for _ in 0..SYBILS {
        let sybil = started(tcp_builder(DhtModeSetting::Client)).await;
        // Denied before the handshake: the dial itself fails.
        match sybil.connect(target.clone()).await {
            Ok(_) => accepted += 1,
            Err(NodeError::Dial { .. }) => {}
            Err(e) => panic!("unexpected dial outcome: {e:?}"),
        }
        sybils.push(sybil);
    }
    assert_eq!(accepted, 4, "6 per address, 2 already taken");
    let stats = arena.victim.stats().await.unwrap();
    assert_eq!(stats.connections_denied_per_ip, SYBILS - 4);
    // The honest peer's existing connection is unaffected.
    arena.honest_still_flows().await;
    for sybil in sybils {
        sybil.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_bypasses_penalties() {
    let attacker = started(tcp_builder(DhtModeSetting::Client)).await;
    let victim = started(tcp_builder(DhtModeSetting::Client).scoring({
        let mut c = p2p_core::ScoringConfig::default();
        c.allow = vec![attacker.peer_id()];
        c
    }))
    .await;
    attacker
        .connect(common::dial_addr(&victim).await)
        .await
        .unwrap();
    let mut m = attacker
        .sign(
            attacker
                .message("chat".parse().unwrap())
                .payload(b"1".to_vec()),
        )
        .unwrap();
    m.payload = b"2".to_vec().into();
    let rejected = rejection(&victim, attacker.peer_id(), RejectReason::BadSignature);
    let mut buf = BytesMut::new();
    encode_message_frame(&ProtobufCodec, &m, &mut buf).unwrap();
    let mut s = attacker
        .open_stream(victim.peer_id(), NATIVE_PROTOCOL)
        .await
        .unwrap();
    s.write_all(&buf).await.unwrap();
    s.close().await.unwrap();
    rejected.await;
    assert!(
        !victim.is_banned(attacker.peer_id()).await.unwrap(),
        "allowed peers are not banned"
    );
    assert_eq!(victim.peer_score(attacker.peer_id()).await.unwrap(), 0.0);
    assert!(victim.is_connected(attacker.peer_id()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_overwrite_by_another_creator_and_announce_flood() {
    // Puts: 20 at once, then one per 3 s (the default burst is 200).
    let arena = dht_arena({
        let mut c = RateLimits::default();
        c.peer_dht_puts = Some((Duration::from_secs(3), 20));
        c
    })
    .await;
    let ttl = {
        let mut c = AnnounceOptions::default();
        c.ttl = Some(Duration::from_secs(600));
        c
    };
    let original = arena
        .honest
        .announce(&rtype("session"), &rid("s1"), r#"{"owner":"honest"}"#, ttl)
        .await
        .unwrap();
    assert_eq!(
        original.stored_by, 2,
        "the victim and the attacker acknowledged"
    );
    // The victim acknowledged only once it stored the record; its store
    // says so too.
    let deadline = tokio::time::Instant::now() + WAIT;
    while arena.victim.stats().await.unwrap().dht.records_stored == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "victim never stored it"
        );
        let _ =
            tokio::time::timeout(Duration::from_millis(20), arena.victim.subscribe().recv()).await;
    }
    // The attacker announces under the same key, with itself as creator.
    arena
        .attacker
        .announce(
            &rtype("session"),
            &rid("s1"),
            r#"{"owner":"attacker"}"#,
            ttl,
        )
        .await
        .unwrap();
    // The refusal is counted when the victim handles the put, which may come
    // after the attacker's put resolved on another peer's answer. A conflict
    // is what honest replicators cause too: counted, not scored.
    arena
        .counted_eventually(RejectReason::RecordConflict, 1)
        .await;
    // The put has been handled: the victim's shared key still holds the
    // honest record (first writer wins there; the conflict above is the
    // attacker's refused put), and the honest creator's own record is found
    // pinned to it. The attacker's record under its own creator key is
    // valid: unpinned discovery lists both, the newest first.
    let found = arena
        .victim
        .discover_from(&rtype("session"), &rid("s1"), arena.honest.peer_id(), WAIT)
        .await
        .unwrap();
    assert_eq!(found.data, original.record.data, "not overwritten");
    let all = arena
        .victim
        .discover_all(&rtype("session"), &rid("s1"), WAIT)
        .await
        .unwrap();
    let creators: Vec<_> = all.iter().map(|r| r.creator).collect();
    assert_eq!(
        creators,
        vec![arena.attacker.peer_id(), arena.honest.peer_id()]
    );

    // A flood of announcements (two types, within the creator quotas of 20
    // per type): 20 pass at once, the rest are refused for their rate.
    for i in 0..40 {
        let _ = arena
            .attacker
            .announce(
                &rtype(format!("spam{}", i % 2)),
                &rid(format!("r{i}")),
                "{}",
                ttl,
            )
            .await;
    }
    arena
        .counted_eventually(RejectReason::DhtRateLimited, 15)
        .await;
    arena.honest_still_flows().await;
    // Honest announcements are still stored.
    arena
        .honest
        .announce(&rtype("session"), &rid("s2"), "{}", ttl)
        .await
        .unwrap();
    wait_stored(&arena.victim, "session", "s2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_lookup_flood_is_limited_per_peer() {
    let arena = dht_arena({
        let mut c = RateLimits::default();
        c.peer_dht_requests = Some(Rate::new(1, 10));
        c
    })
    .await;
    // Walking the victim's store: lookups of keys that do not exist, each
    // one a GET_VALUE the victim must answer.
    // A refused lookup gets an empty answer at once, so this takes well
    // under the 40 s it would take to refill 40 tokens.
    for i in 0..60 {
        let _ = arena
            .attacker
            .discover(
                &rtype("probe"),
                &rid(format!("p{i}")),
                Duration::from_millis(200),
            )
            .await;
    }
    arena
        .counted_eventually(RejectReason::DhtRateLimited, 20)
        .await;
    // Refused, not scored: honest servers burst lookups when they replicate.
    assert_eq!(
        arena.victim.peer_score(arena.attacker_id()).await.unwrap(),
        0.0
    );
    // The honest peer's lookups are its own bucket's: still answered.
    let ttl = {
        let mut c = AnnounceOptions::default();
        c.ttl = Some(Duration::from_secs(600));
        c
    };
    arena
        .victim
        .announce(&rtype("session"), &rid("v1"), "{}", ttl)
        .await
        .unwrap();
    let found = arena
        .honest
        .discover(&rtype("session"), &rid("v1"), WAIT)
        .await
        .unwrap();
    assert_eq!(found.creator, arena.victim.peer_id());
    assert_eq!(
        arena
            .victim
            .peer_score(arena.honest.peer_id())
            .await
            .unwrap(),
        0.0
    );
    arena.honest_still_flows().await;
    // Dozens of refusals leave the attacker's connection usable for the DHT
    // (no inbound-stream slot is left behind): its own put still lands.
    assert!(arena.attacker.is_connected(arena.victim.peer_id()).await);
    arena
        .attacker
        .announce(&rtype("session"), &rid("a1"), "{}", ttl)
        .await
        .unwrap();
    wait_stored(&arena.victim, "session", "a1").await;
}

/// Waits (bounded) until `node`'s DHT store holds the resource's record.
async fn wait_stored(node: &Node, resource_type: &str, resource_id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !node
        .stores_record(&rtype(resource_type), &rid(resource_id))
        .await
        .unwrap()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{resource_type}/{resource_id} never stored"
        );
        let _ = tokio::time::timeout(Duration::from_millis(20), node.subscribe().recv()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_oversized_dht_records_from_js_are_refused() {
    let victim = started(tcp_builder(DhtModeSetting::Server)).await;
    let js = js_peer::JsPeer::spawn(&["--dht-server"]).await;
    victim.connect(js.tcp_addr()).await.unwrap();
    common::wait_table_at_least(&victim, 1).await;
    js.wait_routing_contains(&[victim.peer_id()]).await;
    // Unsigned, claiming to be the victim's own record.
    js.ok(
        json!({"cmd": "announce", "resourceType": "session", "resourceId": "forged",
        "data": {"x": 1}, "creatorPeerId": victim.peer_id().to_string(), "force": true}),
    )
    .await;
    // 20 KB of data: over the 16 KiB record limit.
    js.ok(
        json!({"cmd": "announce", "resourceType": "session", "resourceId": "big",
        "data": {"blob": "x".repeat(20_000)}, "force": true}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let refused = victim
            .peer_message_stats(&js.peer_id)
            .rejected(RejectReason::InvalidRecord);
        if refused >= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "refused {refused}");
        let _ = tokio::time::timeout(Duration::from_millis(50), victim.subscribe().recv()).await;
    }
    for id in ["forged", "big"] {
        let refused = victim
            .discover(&rtype("session"), &rid(id), Duration::from_secs(3))
            .await;
        assert!(
            matches!(refused, Err(ResourceError::NotFound)),
            "{id}: {refused:?}"
        );
    }
}

/// A session protocol's handler that watches for equivocation.
struct Session {
    guard: std::sync::Mutex<p2p_protocol::EquivocationGuard>,
    evidence: tokio::sync::mpsc::Sender<p2p_protocol::Evidence>,
    /// Every message handled, after its evidence (if any) was sent.
    handled: tokio::sync::mpsc::UnboundedSender<PeerId>,
}

#[async_trait::async_trait]
impl p2p_core::ProtocolHandler for Session {
    fn name(&self) -> p2p_core::ProtocolName {
        "musig2".parse().unwrap()
    }

    async fn handle_message(
        &self,
        message: std::sync::Arc<Message>,
        from: PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        let body: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        let slot = p2p_protocol::Slot {
            session: body["session"].as_str().unwrap().as_bytes().to_vec().into(),
            round: body["round"].as_u64().unwrap(),
        };
        let seen = self.guard.lock().unwrap().observe(slot, &message);
        if let Ok(p2p_protocol::Observation::Equivocation(evidence)) = seen {
            self.evidence.send(*evidence).await.unwrap();
        }
        self.handled.send(from).unwrap();
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_signer_is_caught_with_evidence_anyone_can_verify() {
    let arena = arena().await;
    let mut victim_events = arena.victim.subscribe();
    let mut attacker_events = arena.attacker.subscribe();
    let (tx, mut evidence) = tokio::sync::mpsc::channel(4);
    let (handled, mut handled_rx) = tokio::sync::mpsc::unbounded_channel();
    arena
        .victim
        .register_handler(std::sync::Arc::new(Session {
            guard: std::sync::Mutex::new(p2p_protocol::EquivocationGuard::new(1024)),
            evidence: tx,
            handled,
        }))
        .unwrap();
    let nonce = |node: &Node, round: u64, nonce: &str| {
        node.sign(
            node.message("musig2-nonce".parse().unwrap())
                .protocol("musig2".parse().unwrap())
                .payload(
                    json!({"session": "s-42", "round": round, "nonce": nonce})
                        .to_string()
                        .into_bytes(),
                ),
        )
        .unwrap()
    };
    let victim = arena.victim.peer_id();
    // Honest: one nonce per round. Attacker: two different nonces for round 1.
    for m in [nonce(&arena.honest, 1, "H1"), nonce(&arena.honest, 2, "H2")] {
        arena.honest.send(victim, &m).await.unwrap();
    }
    let (first, second) = (
        nonce(&arena.attacker, 1, "A1"),
        nonce(&arena.attacker, 1, "A1'"),
    );
    if let Err(e) = arena.attacker.send(victim, &first).await {
        let mut seen = Vec::new();
        while let Ok(ev) = victim_events.try_recv() {
            seen.push(format!("victim: {ev:?}"));
        }
        while let Ok(ev) = attacker_events.try_recv() {
            seen.push(format!("attacker: {ev:?}"));
        }
        let conns = (
            arena.attacker.stats().await.unwrap().connections,
            arena.victim.stats().await.unwrap().connections,
        );
        panic!(
            "send failed: {e:?} connections (attacker, victim) {conns:?}\n{}",
            seen.join("\n")
        );
    }
    arena.attacker.send(victim, &second).await.unwrap();
    let caught = tokio::time::timeout(WAIT, evidence.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(caught.sender(), arena.attacker_id());
    assert_eq!(
        (caught.first.clone(), caught.second.clone()),
        (first, second)
    );
    caught.verify().unwrap();
    // Once all four messages are handled, the honest signer's two included,
    // there is no other evidence: the honest signer is not accused.
    for _ in 0..4 {
        tokio::time::timeout(WAIT, handled_rx.recv())
            .await
            .expect("the handler got all four messages")
            .unwrap();
    }
    assert!(
        matches!(
            evidence.try_recv(),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty)
        ),
        "the honest signer is not accused"
    );
    arena.honest_still_flows().await;
}

/// `dialer` dials `victim`, which refuses the connection: the dial fails, or
/// the connection it made is closed at once (a limit checked once the
/// handshake is done). Either way the dialer is told, and ends up without
/// a connection.
async fn refused_connection(dialer: &Node, victim: PeerId, address: Multiaddr) {
    // Start from no connection: one the victim is closing (a ban's) must be
    // gone first, or its close would pass for the refusal.
    let gone = dialer.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerDisconnected { peer, .. }) if *peer == victim),
    );
    if dialer.is_connected(victim).await {
        gone.await.expect("the old connection never closed");
    }
    let closed = dialer.wait_for(
        WAIT,
        move |e| matches!(e.as_node(), Some(NodeEvent::PeerDisconnected { peer, .. }) if *peer == victim),
    );
    match dialer.connect(address).await {
        Ok(peer) => {
            assert_eq!(peer, victim);
            closed
                .await
                .expect("the victim never closed the connection");
        }
        Err(NodeError::Dial { .. }) => {}
        Err(e) => panic!("unexpected dial outcome: {e:?}"),
    }
    assert!(!dialer.is_connected(victim).await);
}

/// Waits (bounded) until `node` holds exactly `n` connections to `peer`.
async fn wait_connections(node: &Node, peer: PeerId, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let open = node
            .peer_info(peer)
            .await
            .unwrap()
            .map_or(0, |info| info.connections);
        if open == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} connections to {peer}, expected {n}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(20), node.subscribe().recv()).await;
    }
}

/// A signed chat message from `from`, received by `to`.
async fn chat(from: &Node, to: &Node) {
    let message = from.message("chat".parse().unwrap()).payload(&b"{}"[..]);
    let message = from.sign(message).unwrap();
    common::send_and_receive(from, to, &message, p2p_core::WireChoice::Native).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn established_connections_are_capped_in_total() {
    // Room for three: the arena's two peers and one more.
    let arena = arena_with(
        memory_builder(DhtModeSetting::Client).limits({
            let mut c = ConnectionLimits::default();
            c.max_established = 3;
            c
        }),
        DhtModeSetting::Client,
    )
    .await;
    let (victim, target) = (
        arena.victim.peer_id(),
        common::dial_addr(&arena.victim).await,
    );
    // Every connection is kept (carried traffic, or the victim dialled it)
    // before the victim is full, so none may be closed to make room (an
    // idle one would be, once its 2 s grace ends: tests/node.rs).
    chat(&arena.honest, &arena.victim).await;
    chat(&arena.attacker, &arena.victim).await;
    // The victim dials the third peer itself: a connection its user asked
    // for is kept from the start.
    let third = started(memory_builder(DhtModeSetting::Client)).await;
    arena
        .victim
        .connect(common::dial_addr(&third).await)
        .await
        .unwrap();
    for _ in 0..2 {
        let extra = started(memory_builder(DhtModeSetting::Client)).await;
        refused_connection(&extra, victim, target.clone()).await;
    }
    let stats = arena.victim.stats().await.unwrap();
    assert_eq!((stats.connected_peers, stats.connections), (3, 3));
    assert_eq!(stats.connections_refused_at_limit, 2);
    assert_eq!(stats.connections_closed_for_room, 0);
    arena.honest_still_flows().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gets_the_per_peer_cap_of_connections_at_most() {
    // The attacker's own node would allow many; the victim has the default.
    let cap = ConnectionLimits::default().max_established_per_peer as usize;
    let victim = started(memory_builder(DhtModeSetting::Client)).await;
    let attacker = started(memory_builder(DhtModeSetting::Client).limits({
        let mut c = ConnectionLimits::default();
        c.max_established_per_peer = 100;
        c
    }))
    .await;
    // Without `/p2p/<id>` every dial opens a new connection.
    let plain = victim.listen_addrs().await.unwrap().remove(0);
    for _ in 0..cap + 2 {
        match attacker.connect(plain.clone()).await {
            Ok(peer) => assert_eq!(peer, victim.peer_id()),
            Err(NodeError::Dial { .. }) => {}
            Err(e) => panic!("unexpected dial outcome: {e:?}"),
        }
    }
    // The victim closes those over the cap once their handshakes are done.
    wait_connections(&attacker, victim.peer_id(), cap).await;
    wait_connections(&victim, attacker.peer_id(), cap).await;
    assert_eq!(victim.stats().await.unwrap().connections, cap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_inbound_connections_are_capped() {
    let arena = arena_with(
        tcp_builder(DhtModeSetting::Client).limits({
            let mut c = ConnectionLimits::default();
            c.max_pending_incoming = 2;
            c
        }),
        DhtModeSetting::Client,
    )
    .await;
    let port = arena
        .victim
        .listen_addrs()
        .await
        .unwrap()
        .remove(0)
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    // Sockets that never start the handshake: each holds a pending slot
    // until the victim's 20 s upgrade timeout.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    // The third is refused at once: closed, well before the upgrade timeout.
    let mut third = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut third, &mut byte),
    )
    .await
    .expect("the third pending connection was not refused");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The two within the limit are still open, waiting for their handshake.
    for socket in &held {
        let pending = socket.try_read(&mut byte);
        assert!(
            matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{pending:?}"
        );
    }
    // Established connections are not affected.
    arena.honest_still_flows().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_outbound_dials_are_capped() {
    // A listener that accepts and never answers: a dial to it stays pending.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole: Multiaddr = format!(
        "/ip4/127.0.0.1/tcp/{}",
        black_hole.local_addr().unwrap().port()
    )
    .parse()
    .unwrap();
    let node = started(tcp_builder(DhtModeSetting::Client).limits({
        let mut c = ConnectionLimits::default();
        c.max_pending_outgoing = 1;
        c
    }))
    .await;
    let stuck = tokio::spawn({
        let node = node.clone();
        async move { node.connect(hole).await }
    });
    let (_socket, _) = tokio::time::timeout(WAIT, black_hole.accept())
        .await
        .expect("the first dial never reached the listener")
        .unwrap();
    // One dial pending: a second, to a live peer, is refused before it starts.
    let live = started(tcp_builder(DhtModeSetting::Client)).await;
    let refused = tokio::time::timeout(WAIT, node.connect(common::dial_addr(&live).await))
        .await
        .expect("the second dial was neither refused nor completed");
    // The cause is typed: libp2p's connection-limits denial, at the limit set.
    let Err(NodeError::Dial { source, .. }) = &refused else {
        panic!("expected the dial to be refused, got {refused:?}");
    };
    let DialError::Denied { cause } = &**source else {
        panic!("expected the dial to be denied, got {source:?}");
    };
    let exceeded = cause
        .downcast_ref::<libp2p::connection_limits::Exceeded>()
        .unwrap_or_else(|| panic!("denied by something else: {cause}"));
    assert_eq!(exceeded.limit(), 1);
    assert!(!node.is_connected(live.peer_id()).await);
    stuck.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_refused_above_the_memory_limit() {
    // A limit every process is above.
    let victim = started(memory_builder(DhtModeSetting::Client).limits({
        let mut c = ConnectionLimits::default();
        c.max_process_memory = Some(1);
        c
    }))
    .await;
    let peer = started(memory_builder(DhtModeSetting::Client)).await;
    refused_connection(&peer, victim.peer_id(), common::dial_addr(&victim).await).await;
    assert_eq!(victim.stats().await.unwrap().connections, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_puts_over_their_rate_are_refused_and_counted() {
    // Puts (records and providers share the bucket): 5 at once, then one per 3 s.
    let arena = dht_arena({
        let mut c = RateLimits::default();
        c.peer_dht_puts = Some((Duration::from_secs(3), 5));
        c
    })
    .await;
    for i in 0..20 {
        assert!(
            arena.attacker.provide(&format!("spam-{i}")).await.unwrap(),
            "the closest peers were told"
        );
    }
    // 20 in a few seconds against a burst of 5: most are refused.
    arena
        .counted_eventually(RejectReason::DhtRateLimited, 12)
        .await;
    // Refused and counted, not scored: honest servers burst puts too.
    assert_eq!(
        arena.victim.peer_score(arena.attacker_id()).await.unwrap(),
        0.0
    );
    assert_eq!(
        arena
            .victim
            .peer_message_stats(&arena.honest.peer_id())
            .rejected(RejectReason::DhtRateLimited),
        0
    );
    arena.honest_still_flows().await;
}

/// Every one of `senders` sends `each` signed messages of `payload` bytes
/// to `victim`, all at once; returns once the victim has accepted them all
/// (failing on any refusal of theirs: backpressure loses nothing), with the
/// time it took.
async fn flood(victim: &Node, senders: &[&Node], each: usize, payload: usize) -> Duration {
    let target = victim.peer_id();
    let ids: Vec<PeerId> = senders.iter().map(|s| s.peer_id()).collect();
    let before: Vec<u64> = ids
        .iter()
        .map(|id| victim.peer_message_stats(id).received)
        .collect();
    let started_at = tokio::time::Instant::now();
    let tasks: Vec<_> = senders
        .iter()
        .map(|&sender| {
            let sender = sender.clone();
            tokio::spawn(async move {
                for n in 0..each {
                    let m = sender
                        .sign(sender.message("load".parse().unwrap()).payload(vec![
                            b'a' + (n % 26)
                                as u8;
                            payload
                        ]))
                        .unwrap();
                    sender.send(target, &m).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats: Vec<_> = ids.iter().map(|id| victim.peer_message_stats(id)).collect();
        for s in &stats {
            assert_eq!(s.rejected_total(), 0, "{s:?}");
        }
        if stats
            .iter()
            .zip(&before)
            .all(|(s, b)| s.received == b + each as u64)
        {
            return started_at.elapsed();
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
        let _ = tokio::time::timeout(Duration::from_millis(20), victim.subscribe().recv()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_byte_rate_slows_every_sender_without_loss() {
    // 100 KB/s for the whole node, 100 KB at once; each peer alone is far
    // below its own 1 MB/s.
    let arena = arena_with(
        memory_builder(DhtModeSetting::Client).rate_limits({
            let mut c = RateLimits::default();
            c.node_bytes = Some(Rate::new(100_000, 100_000));
            c
        }),
        DhtModeSetting::Client,
    )
    .await;
    // Two peers, 10 messages of 20 KB each: over 400 KB through a 100 KB
    // burst at 100 KB/s takes over 3 s.
    let took = flood(&arena.victim, &[&arena.honest, &arena.attacker], 10, 20_000).await;
    assert!(took >= Duration::from_millis(2_500), "took {took:?}");
    for peer in [arena.honest.peer_id(), arena.attacker_id()] {
        assert_eq!(
            arena.victim.peer_score(peer).await.unwrap(),
            0.0,
            "slowed, not punished"
        );
        assert_eq!(arena.victim.peer_message_stats(&peer).received, 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_message_rate_slows_every_sender_without_loss() {
    // 50 messages a second for the whole node, 50 at once; each peer alone
    // is far below its own 200/s (burst 400).
    let arena = arena_with(
        memory_builder(DhtModeSetting::Client).rate_limits({
            let mut c = RateLimits::default();
            c.node_messages = Some(Rate::new(50, 50));
            c
        }),
        DhtModeSetting::Client,
    )
    .await;
    // 200 messages through a burst of 50 at 50/s take over 3 s.
    let took = flood(&arena.victim, &[&arena.honest, &arena.attacker], 100, 8).await;
    assert!(took >= Duration::from_millis(2_500), "took {took:?}");
    for peer in [arena.honest.peer_id(), arena.attacker_id()] {
        assert_eq!(
            arena.victim.peer_score(peer).await.unwrap(),
            0.0,
            "slowed, not punished"
        );
        assert_eq!(arena.victim.peer_message_stats(&peer).received, 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_byte_rate_is_slowed_and_others_are_not() {
    // 100 KB/s per peer, 100 KB at once.
    let arena = arena_with(
        memory_builder(DhtModeSetting::Client).rate_limits({
            let mut c = RateLimits::default();
            c.peer_bytes = Some(Rate::new(100_000, 100_000));
            c
        }),
        DhtModeSetting::Client,
    )
    .await;
    let attacker_id = arena.attacker_id();
    let flooding = {
        let (victim, attacker) = (arena.victim.clone(), arena.attacker.clone());
        // 20 messages of 20 KB: over 400 KB, over 3 s at 100 KB/s.
        tokio::spawn(async move { flood(&victim, &[&attacker], 20, 20_000).await })
    };
    // Wait until the flood is under way, then the honest peer's message
    // goes straight through, long before the flood is done.
    let deadline = tokio::time::Instant::now() + WAIT;
    while arena.victim.peer_message_stats(&attacker_id).received == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood never started"
        );
        let _ =
            tokio::time::timeout(Duration::from_millis(20), arena.victim.subscribe().recv()).await;
    }
    arena.honest_still_flows().await;
    let flooded_meanwhile = arena.victim.peer_message_stats(&attacker_id).received;
    assert!(
        flooded_meanwhile < 20,
        "the honest message waited for the flood"
    );
    let took = flooding.await.unwrap();
    assert!(took >= Duration::from_millis(2_500), "took {took:?}");
    assert_eq!(
        arena.victim.peer_score(attacker_id).await.unwrap(),
        0.0,
        "slowed, not punished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_on_the_deny_list_cannot_connect() {
    let denied = started(memory_builder(DhtModeSetting::Client)).await;
    let victim = started(memory_builder(DhtModeSetting::Client).scoring({
        let mut c = p2p_core::ScoringConfig::default();
        c.deny = vec![denied.peer_id()];
        c
    }))
    .await;
    assert!(victim.is_banned(denied.peer_id()).await.unwrap());
    refused_connection(&denied, victim.peer_id(), common::dial_addr(&victim).await).await;
    // Anyone else connects.
    let other = started(memory_builder(DhtModeSetting::Client)).await;
    let seen = common::connected_to(&victim, other.peer_id());
    other
        .connect(common::dial_addr(&victim).await)
        .await
        .unwrap();
    seen.await;
    assert!(!victim.is_connected(denied.peer_id()).await);
}

/// Opens `n` native streams from the attacker to the victim and keeps them open.
async fn hold_streams(arena: &Arena, n: usize) -> Vec<libp2p::Stream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let open = arena
            .attacker
            .open_stream(arena.victim.peer_id(), NATIVE_PROTOCOL);
        held.push(
            tokio::time::timeout(WAIT, open)
                .await
                .expect("stream open hung")
                .unwrap(),
        );
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_streams_over_their_rate_are_refused_as_rate_limited() {
    // Two new streams at once, then one a second; four concurrent streams
    // would be allowed, so only the rate can refuse.
    let arena = arena_with(
        memory_builder(DhtModeSetting::Client).rate_limits({
            let mut c = RateLimits::default();
            c.peer_inbound_streams = Some(Rate::new(1, 2));
            c
        }),
        DhtModeSetting::Client,
    )
    .await;
    let rejected = arena.rejects(RejectReason::RateLimited);
    let held = hold_streams(&arena, 4).await;
    rejected.await;
    assert_eq!(arena.counted(RejectReason::TooManyStreams), 0);
    assert!(
        arena.victim.peer_score(arena.attacker_id()).await.unwrap() < 0.0,
        "penalised"
    );
    arena.honest_still_flows().await;
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_concurrent_native_stream_is_refused_as_too_many() {
    // The default stream rate (64 at once) leaves the cap of 4 to refuse.
    let arena = arena().await;
    let rejected = arena.rejects(RejectReason::TooManyStreams);
    let held = hold_streams(&arena, 5).await;
    rejected.await;
    assert_eq!(arena.counted(RejectReason::TooManyStreams), 1);
    assert_eq!(arena.counted(RejectReason::RateLimited), 0);
    assert!(
        arena.victim.peer_score(arena.attacker_id()).await.unwrap() < 0.0,
        "penalised"
    );
    arena.honest_still_flows().await;
    drop(held);
}

/// Waits (bounded) until `node` has accounted for `n` messages of `peer`'s,
/// accepted or refused.
async fn accounted(node: &Node, peer: PeerId, n: u64) -> p2p_core::MessageStats {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = node.peer_message_stats(&peer);
        if stats.received + stats.rejected_total() >= n {
            return stats;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
        let _ = tokio::time::timeout(Duration::from_millis(20), node.subscribe().recv()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_wide_saturation_never_costs_an_honest_typescript_sender() {
    // The node takes one message a second from everyone together; each
    // peer's own rate (200/s, burst 400) is far above what it sends here.
    let arena = arena_with(
        memory_builder(DhtModeSetting::Client)
            .accept_typescript_messages(true)
            .rate_limits({
                let mut c = RateLimits::default();
                c.node_messages = Some(Rate::new(1, 1));
                c
            }),
        DhtModeSetting::Client,
    )
    .await;
    let victim = arena.victim.peer_id();
    let plain = |node: &Node, n: usize| {
        node.message("chat".parse().unwrap())
            .payload(format!("{n}").into_bytes())
            .build()
    };
    // A sybil keeps the node's bucket empty...
    for n in 0..5 {
        arena
            .attacker
            .send_with(victim, &plain(&arena.attacker, n), WireChoice::TypeScript)
            .await
            .unwrap();
    }
    // ... while an honest TypeScript-protocol peer sends 40 unsigned
    // messages: at 2 points each they would have banned it (−50).
    let honest = arena.honest.peer_id();
    let mut sent = 0;
    for n in 0..40 {
        let message = plain(&arena.honest, n);
        if arena
            .honest
            .send_with(victim, &message, WireChoice::TypeScript)
            .await
            .is_err()
        {
            break; // disconnected
        }
        sent += 1;
    }
    let stats = accounted(&arena.victim, honest, sent).await;
    assert_eq!(sent, 40, "the honest peer was cut off: {stats:?}");
    assert!(stats.rejected(RejectReason::NodeBusy) > 0, "{stats:?}");
    assert_eq!(stats.rejected(RejectReason::RateLimited), 0, "{stats:?}");
    assert_eq!(arena.victim.peer_score(honest).await.unwrap(), 0.0);
    assert!(!arena.victim.is_banned(honest).await.unwrap());
    assert!(arena.victim.is_connected(honest).await);
}

/// Counts the messages it is handed; accepts unsigned direct ones if `open`.
struct Counting {
    name: &'static str,
    open: bool,
    seen: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
}

#[async_trait::async_trait]
impl p2p_core::ProtocolHandler for Counting {
    fn name(&self) -> p2p_core::ProtocolName {
        self.name.parse().unwrap()
    }

    fn accepts_unsigned_direct(&self) -> bool {
        self.open
    }

    async fn handle_message(
        &self,
        message: std::sync::Arc<Message>,
        _: PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        self.seen.send(message.payload.to_vec())?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_messages_follow_the_handlers_signature_rule_and_their_recipient() {
    let arena = arena_with(
        memory_builder(DhtModeSetting::Client).accept_typescript_messages(true),
        DhtModeSetting::Client,
    )
    .await;
    let (seen, mut handled) = tokio::sync::mpsc::unbounded_channel();
    for (name, open) in [("strict", false), ("open", true)] {
        let handler = Counting {
            name,
            open,
            seen: seen.clone(),
        };
        arena
            .victim
            .register_handler(std::sync::Arc::new(handler))
            .unwrap();
    }
    let victim = arena.victim.peer_id();
    let unsigned = |protocol: &str, payload: &'static str| {
        arena
            .attacker
            .message("chat".parse().unwrap())
            .protocol(protocol.parse().unwrap())
            .payload(payload.as_bytes().to_vec())
    };
    let attacker = &arena.attacker;
    let send = |m: Message| async move {
        attacker
            .send_with(victim, &m, WireChoice::TypeScript)
            .await
            .unwrap();
    };
    // Unsigned, to a handler that refuses unsigned messages.
    let refused = arena.rejects(RejectReason::MissingSignature);
    send(unsigned("strict", "\"strict\"").build()).await;
    refused.await;
    // Unsigned, to a handler that takes them, but addressed to someone else.
    let refused = arena.rejects(RejectReason::WrongRecipient);
    send(
        unsigned("open", "\"elsewhere\"")
            .to(arena.honest.peer_id())
            .build(),
    )
    .await;
    refused.await;
    // Unsigned, to the handler that takes them, for us (or for no one in
    // particular, as TypeScript nodes send): delivered.
    send(unsigned("open", "\"direct\"").to(victim).build()).await;
    send(unsigned("open", "\"plain\"").build()).await;
    for expected in [&b"\"direct\""[..], b"\"plain\""] {
        let got = tokio::time::timeout(WAIT, handled.recv())
            .await
            .expect("an opted-in handler's message")
            .unwrap();
        assert_eq!(got, expected);
    }
    assert_eq!(arena.counted(RejectReason::MissingSignature), 1);
    assert_eq!(arena.counted(RejectReason::WrongRecipient), 1);
    assert!(handled.try_recv().is_err(), "a refused message was handled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_frame_is_cut_at_its_deadline() {
    // Stream timeout 300 ms; a byte every 100 ms keeps each read short, but
    // the frame (99 000 bytes announced) can never finish in time.
    let arena = arena().await;
    let rejected = arena.rejects(RejectReason::StreamTimeout);
    let mut stream = arena
        .attacker
        .open_stream(arena.victim.peer_id(), NATIVE_PROTOCOL)
        .await
        .unwrap();
    stream.write_all(&varint(99_000)).await.unwrap();
    stream.flush().await.unwrap();
    let started = tokio::time::Instant::now();
    let trickle = tokio::spawn(async move {
        // Ends when the victim resets the stream, or after 30 s.
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(&[1]).await.is_err() || stream.flush().await.is_err() {
                break;
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(3), rejected)
        .await
        .expect("a trickling stream held past its frame's deadline");
    assert!(started.elapsed() >= Duration::from_millis(300));
    trickle.abort();
    assert!(arena.victim.peer_score(arena.attacker_id()).await.unwrap() < 0.0);
    arena.honest_still_flows().await;
}

const HOLD: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/lotus/test-hold/1.0.0");

/// Holds every raw stream until its peer closes it, reporting each one.
struct Holder(tokio::sync::mpsc::UnboundedSender<PeerId>);

#[async_trait::async_trait]
impl p2p_core::ProtocolHandler for Holder {
    fn name(&self) -> p2p_core::ProtocolName {
        "holder".parse().unwrap()
    }

    fn stream_protocol(&self) -> Option<libp2p::StreamProtocol> {
        Some(HOLD)
    }

    async fn handle_message(
        &self,
        _: std::sync::Arc<Message>,
        _: PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        Ok(())
    }

    async fn handle_stream(
        &self,
        mut stream: libp2p::Stream,
        peer: PeerId,
    ) -> Result<(), p2p_core::HandlerError> {
        use futures::AsyncReadExt;
        self.0.send(peer)?;
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).await?;
        Ok(())
    }
}

/// Opens `n` streams of [`HOLD`] from `from` to `to`, and waits until the
/// handler holds them all.
async fn hold_raw(
    from: &Node,
    to: &Node,
    n: usize,
    held: &mut tokio::sync::mpsc::UnboundedReceiver<PeerId>,
) -> Vec<libp2p::Stream> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let open = from.open_stream(to.peer_id(), HOLD);
        streams.push(tokio::time::timeout(WAIT, open).await.unwrap().unwrap());
    }
    for _ in 0..n {
        let peer = tokio::time::timeout(WAIT, held.recv())
            .await
            .expect("the handler never got a stream")
            .unwrap();
        assert_eq!(peer, from.peer_id());
    }
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_stream_slots_are_capped_per_peer_and_a_full_handler_charges_no_one() {
    let arena = arena().await;
    let (tx, mut held) = tokio::sync::mpsc::unbounded_channel();
    arena
        .victim
        .register_handler(std::sync::Arc::new(Holder(tx)))
        .unwrap();
    let sybil = started(memory_builder(DhtModeSetting::Client)).await;
    let seen = common::connected_to(&arena.victim, sybil.peer_id());
    sybil
        .connect(common::dial_addr(&arena.victim).await)
        .await
        .unwrap();
    seen.await;
    // The attacker takes its 32 slots; a 33rd stream is its own excess.
    let mut streams = hold_raw(&arena.attacker, &arena.victim, 32, &mut held).await;
    let refused = arena.rejects(RejectReason::TooManyStreams);
    let extra = arena
        .attacker
        .open_stream(arena.victim.peer_id(), HOLD)
        .await;
    refused.await;
    assert!(arena.victim.peer_score(arena.attacker_id()).await.unwrap() < 0.0);
    // A sybil takes the other 32: the handler's 64 are all held.
    streams.extend(hold_raw(&sybil, &arena.victim, 32, &mut held).await);
    // The honest peer, under its own cap, is refused without being charged.
    let busy = rejection(
        &arena.victim,
        arena.honest.peer_id(),
        RejectReason::HandlerBusy,
    );
    let honest = arena.honest.open_stream(arena.victim.peer_id(), HOLD).await;
    busy.await;
    let stats = arena.victim.peer_message_stats(&arena.honest.peer_id());
    assert_eq!(stats.rejected(RejectReason::TooManyStreams), 0, "{stats:?}");
    assert_eq!(
        arena
            .victim
            .peer_score(arena.honest.peer_id())
            .await
            .unwrap(),
        0.0
    );
    assert_eq!(arena.counted(RejectReason::TooManyStreams), 1);
    drop((streams, extra, honest));
}
