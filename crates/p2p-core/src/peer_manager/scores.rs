//! Peer scores and bans (the state of [`super::PeerManager`]).
//!
//! Every rejection attributed to a peer costs it points ([`penalty`]); the
//! score decays back towards zero with a half-life, so an honest peer's
//! occasional duplicate or clock slip is forgotten while a misbehaving peer
//! sinks. Below [`ScoringConfig::disconnect_below`] the peer is disconnected;
//! below [`ScoringConfig::ban_below`] it is banned for
//! [`ScoringConfig::ban_duration`] (every inbound path refuses it: the node
//! blocks it in libp2p's allow/block list, which closes its connections and
//! denies new ones). Forgery — a spoofed sender or a bad signature — is clear
//! misbehaviour and bans at once, as Bitcoin Core disconnects on it. Peers on
//! the allow-list are never penalised; peers on the deny-list are banned for
//! good. The model is Lighthouse's peer manager (score −100..100, disconnect
//! at −20, ban at −50, 600 s half-life).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use p2p_types::RejectReason;

/// Score bounds.
const MIN_SCORE: f64 = -100.0;

/// How scores are kept and what they trigger.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScoringConfig {
    /// Time for a score to halve on its way back to zero. Default 600 s.
    pub half_life: Duration,
    /// Disconnect a peer whose score falls below this. Default −20.
    pub disconnect_below: f64,
    /// Ban a peer whose score falls below this. Default −50.
    pub ban_below: f64,
    /// How long a score ban lasts. Default 1 h.
    pub ban_duration: Duration,
    /// Peers never penalised, disconnected or banned (operators, own services).
    pub allow: Vec<PeerId>,
    /// Peers banned for good.
    pub deny: Vec<PeerId>,
    /// Peers whose scores are remembered; beyond this the score closest to
    /// zero is forgotten first. Default 8192.
    pub max_tracked: usize,
    /// Timed bans kept at once; beyond this the ban closest to its end is
    /// lifted early to make room. Permanent bans (the deny-list, an
    /// operator's ban without a duration) do not count and are never lifted.
    /// Default 4096: 16 times the connection limit, so lifting early only
    /// happens to an attacker who paid for thousands of fresh identities and
    /// handshakes within one ban duration; about 200 bytes each here and in
    /// libp2p's block list (≈ 1 MB in all).
    pub max_bans: usize,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            half_life: Duration::from_secs(600),
            disconnect_below: -20.0,
            ban_below: -50.0,
            ban_duration: Duration::from_secs(3600),
            allow: Vec::new(),
            deny: Vec::new(),
            max_tracked: 8192,
            max_bans: 4096,
        }
    }
}

/// Points a rejection costs. Forgery bans at once; malformed input, a stream
/// left hanging or a flood disconnects after a few; what honest peers also do
/// now and then (a duplicate from a race, a clock slightly off, an unknown
/// handler of a newer version) costs little; our own saturation and DHT
/// requests refused for their rate cost nothing.
pub fn penalty(reason: RejectReason) -> f64 {
    match reason {
        RejectReason::SpoofedSender | RejectReason::BadSignature => 60.0,
        RejectReason::Oversize
        | RejectReason::Framing
        | RejectReason::Decode
        | RejectReason::InvalidField
        | RejectReason::InvalidRecord
        | RejectReason::StreamTimeout => 10.0,
        RejectReason::MissingSignature
        | RejectReason::TooManyStreams
        | RejectReason::WrongRecipient => 5.0,
        RejectReason::RateLimited => 2.0,
        RejectReason::ClockSkew | RejectReason::Duplicate | RejectReason::UnknownProtocol => 1.0,
        // Refusing a DHT request costs us next to nothing, and honest servers
        // burst lookups and puts when kad replicates their whole store (up
        // to 100 queries at once, a put per record): refused and counted,
        // never scored. A key we do not serve is another network's
        // namespace (js kad-dht puts `/pk/`, `/ipns/` records), not an attack.
        // A record that expired, conflicts with ours or is over its creator's
        // quota is what an honest server replicating its store sends: scoring
        // it would make honest servers ban each other. Only forged and
        // malformed records (InvalidRecord) are scored.
        // The node's own buckets empty (NodeBusy) or a handler's raw-stream
        // slots all taken by others (HandlerBusy) is our saturation: a
        // sender cannot see it coming, and sybils could keep it so to get
        // honest peers banned.
        RejectReason::HandlerBusy
        | RejectReason::NodeBusy
        | RejectReason::DhtRateLimited
        | RejectReason::AcceptQueueFull
        | RejectReason::UnservedKey
        | RejectReason::RecordExpired
        | RejectReason::RecordConflict
        | RejectReason::RecordQuota => 0.0,
        // A reason added later costs like malformed input until it is placed.
        _ => 10.0,
    }
}

/// What a penalty leads to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// Nothing beyond the lower score.
    None,
    /// Close the peer's connections.
    Disconnect,
    /// Ban the peer until then.
    Ban(Instant),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    score: f64,
    at: Instant,
}

/// Scores of the peers that misbehaved lately, and the bans in force.
#[derive(Debug)]
pub(crate) struct PeerScores {
    config: ScoringConfig,
    scores: HashMap<PeerId, Entry>,
    bans: HashMap<PeerId, Option<Instant>>,
    /// Timed bans lifted early to make room, not yet reported.
    lifted: Vec<PeerId>,
}

impl PeerScores {
    pub(crate) fn new(config: ScoringConfig) -> Self {
        let bans = config.deny.iter().map(|p| (*p, None)).collect();
        Self {
            config,
            scores: HashMap::new(),
            bans,
            lifted: Vec::new(),
        }
    }

    fn decayed(&self, entry: Entry, now: Instant) -> f64 {
        let half_life = self.config.half_life.as_secs_f64();
        if half_life <= 0.0 {
            return 0.0;
        }
        let elapsed = now.saturating_duration_since(entry.at).as_secs_f64();
        entry.score * 0.5f64.powf(elapsed / half_life)
    }

    /// The peer's score now (0 for a peer with no record).
    pub(crate) fn score(&self, peer: &PeerId, now: Instant) -> f64 {
        self.scores
            .get(peer)
            .map_or(0.0, |entry| self.decayed(*entry, now))
    }

    pub(crate) fn is_allowed(&self, peer: &PeerId) -> bool {
        self.config.allow.contains(peer)
    }

    /// Lowers the peer's score for `reason` and says what to do about it.
    pub(crate) fn penalize(&mut self, peer: PeerId, reason: RejectReason, now: Instant) -> Verdict {
        let cost = penalty(reason);
        if cost == 0.0 || self.is_allowed(&peer) || self.bans.contains_key(&peer) {
            return Verdict::None;
        }
        if !self.scores.contains_key(&peer) && self.scores.len() >= self.config.max_tracked {
            self.forget_mildest(now);
        }
        let score = (self.score(&peer, now) - cost).max(MIN_SCORE);
        self.scores.insert(peer, Entry { score, at: now });
        if score < self.config.ban_below {
            let until = now + self.config.ban_duration;
            self.insert_ban(peer, Some(until));
            Verdict::Ban(until)
        } else if score < self.config.disconnect_below {
            Verdict::Disconnect
        } else {
            Verdict::None
        }
    }

    fn forget_mildest(&mut self, now: Instant) {
        let mildest = self
            .scores
            .iter()
            .map(|(peer, entry)| (*peer, self.decayed(*entry, now)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(peer, _)| peer);
        if let Some(peer) = mildest {
            self.scores.remove(&peer);
        }
    }

    /// Bans `peer` until `until` (`None`: for good). Allowed peers are not banned.
    pub(crate) fn ban(&mut self, peer: PeerId, until: Option<Instant>) -> bool {
        if self.is_allowed(&peer) {
            return false;
        }
        self.insert_ban(peer, until);
        true
    }

    /// Records a ban, lifting the timed ban closest to its end first when
    /// `max_bans` timed bans are in force (see [`PeerScores::take_lifted`]).
    fn insert_ban(&mut self, peer: PeerId, until: Option<Instant>) {
        if self.bans.get(&peer) == Some(&None) {
            return; // a permanent ban (deny-list, operator) is never shortened
        }
        let timed = self.bans.values().filter(|u| u.is_some()).count();
        let replaces = self.bans.get(&peer).is_some_and(Option::is_some);
        if until.is_some() && !replaces && timed >= self.config.max_bans.max(1) {
            let soonest = self
                .bans
                .iter()
                .filter_map(|(p, u)| u.map(|u| (*p, u)))
                .min_by_key(|(_, u)| *u)
                .map(|(p, _)| p);
            if let Some(lifted) = soonest {
                self.bans.remove(&lifted);
                self.scores.remove(&lifted);
                self.lifted.push(lifted);
            }
        }
        self.bans.insert(peer, until);
    }

    /// Lifts a ban and forgets the score.
    pub(crate) fn unban(&mut self, peer: &PeerId) -> bool {
        self.scores.remove(peer);
        self.bans.remove(peer).is_some()
    }

    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(peer)
    }

    /// Bans in force.
    pub(crate) fn banned(&self) -> usize {
        self.bans.len()
    }

    /// Ends the bans that ran out; returns the peers to unblock. Their scores
    /// restart from zero.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let over: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| until.is_some_and(|t| t <= now))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &over {
            self.bans.remove(peer);
            self.scores.remove(peer);
        }
        over
    }

    /// The timed bans lifted early to make room since the last call.
    pub(crate) fn take_lifted(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.lifted)
    }

    /// When the next timed ban ends.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.bans.values().filter_map(|until| *until).min()
    }

    /// The scoring rules these scores follow.
    pub(crate) fn config(&self) -> &ScoringConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgery_bans_at_once_and_malformed_input_disconnects_then_bans() {
        let now = Instant::now();
        let mut scores = PeerScores::new(ScoringConfig::default());
        let forger = PeerId::random();
        assert!(matches!(
            scores.penalize(forger, RejectReason::BadSignature, now),
            Verdict::Ban(_)
        ));
        assert!(scores.is_banned(&forger));

        let sloppy = PeerId::random();
        let verdicts: Vec<Verdict> = (0..6)
            .map(|_| scores.penalize(sloppy, RejectReason::Decode, now))
            .collect();
        assert_eq!(verdicts[0], Verdict::None);
        assert_eq!(verdicts[1], Verdict::None); // −20 is not below −20
        assert_eq!(verdicts[2], Verdict::Disconnect);
        assert!(matches!(verdicts[5], Verdict::Ban(_)), "{verdicts:?}");
    }

    #[test]
    fn scores_decay_with_the_half_life_and_bans_expire() {
        let now = Instant::now();
        let config = ScoringConfig::default();
        let (half_life, ban) = (config.half_life, config.ban_duration);
        let mut scores = PeerScores::new(config);
        let peer = PeerId::random();
        scores.penalize(peer, RejectReason::Decode, now);
        scores.penalize(peer, RejectReason::Decode, now);
        assert!((scores.score(&peer, now) + 20.0).abs() < 1e-9);
        assert!((scores.score(&peer, now + half_life) + 10.0).abs() < 1e-9);
        // Honest slips spread over time never add up to a disconnect.
        let honest = PeerId::random();
        for minute in 0..600 {
            let at = now + Duration::from_secs(minute * 60);
            assert_eq!(
                scores.penalize(honest, RejectReason::Duplicate, at),
                Verdict::None
            );
        }
        let Verdict::Ban(until) = scores.penalize(peer, RejectReason::SpoofedSender, now) else {
            panic!("not banned");
        };
        assert_eq!(until, now + ban);
        assert!(scores.expire(now).is_empty());
        assert_eq!(scores.expire(until), vec![peer]);
        assert!(!scores.is_banned(&peer));
        assert_eq!(scores.score(&peer, until), 0.0);
    }

    #[test]
    fn allow_list_bypasses_deny_list_is_permanent_and_tracking_is_bounded() {
        let now = Instant::now();
        let (friend, enemy) = (PeerId::random(), PeerId::random());
        let mut scores = PeerScores::new(ScoringConfig {
            allow: vec![friend],
            deny: vec![enemy],
            max_tracked: 3,
            ..ScoringConfig::default()
        });
        assert_eq!(
            scores.penalize(friend, RejectReason::BadSignature, now),
            Verdict::None
        );
        assert!(!scores.ban(friend, None));
        assert!(scores.is_banned(&enemy));
        assert!(scores.expire(now + Duration::from_secs(1 << 30)).is_empty());
        let worst = PeerId::random();
        scores.penalize(worst, RejectReason::Decode, now);
        scores.penalize(worst, RejectReason::Decode, now);
        for _ in 0..5 {
            scores.penalize(PeerId::random(), RejectReason::Duplicate, now);
        }
        assert!(scores.scores.len() <= 3);
        assert!(scores.score(&worst, now) < -19.0, "the worst is kept");
    }

    #[test]
    fn timed_bans_are_capped_by_lifting_the_soonest_to_end() {
        let now = Instant::now();
        let enemy = PeerId::random();
        let mut scores = PeerScores::new(ScoringConfig {
            deny: vec![enemy],
            max_bans: 3,
            ..ScoringConfig::default()
        });
        let minute = Duration::from_secs(60);
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        for (i, peer) in peers.iter().enumerate() {
            let at = now + minute * u32::try_from(i).unwrap_or(0);
            assert!(matches!(
                scores.penalize(*peer, RejectReason::BadSignature, at),
                Verdict::Ban(_)
            ));
        }
        assert!(
            scores.ban(PeerId::random(), None),
            "permanent bans are not capped"
        );
        // Three timed bans (the latest), the deny-list entry and the permanent one.
        assert_eq!(scores.banned(), 5);
        assert!(!scores.is_banned(&peers[0]) && !scores.is_banned(&peers[1]));
        assert!(peers[2..].iter().all(|p| scores.is_banned(p)));
        assert!(scores.is_banned(&enemy));

        // The two lifted early are reported once, and the next expiry is
        // the soonest timed ban left.
        assert_eq!(scores.take_lifted(), vec![peers[0], peers[1]]);
        assert!(scores.take_lifted().is_empty());
        let ban_duration = ScoringConfig::default().ban_duration;
        assert_eq!(scores.next_expiry(), Some(now + minute * 2 + ban_duration));
    }
}
