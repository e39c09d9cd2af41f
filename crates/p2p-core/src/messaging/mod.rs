//! Messaging: the native protocol, the TypeScript system's JSON protocol, the
//! one inbound pipeline both feed, and the outbound writers.
//!
//! - Native, [`NATIVE_PROTOCOL`]: a long-lived stream per peer and direction
//!   carrying varint-framed protobuf envelopes. One writer task per peer batches
//!   frames and flushes once per batch; its queue is bounded, so a sender that
//!   outruns the network waits (backpressure) instead of losing messages.
//! - Legacy, [`LEGACY_PROTOCOL`] (`/lotus/message/1.0.0`): one JSON message per
//!   stream, read to EOF, capped in size and time; we close our side after
//!   reading. The TypeScript node never closes its side, and refuses a 33rd
//!   open one per connection: sending to it goes through
//!   [`crate::legacy_lanes`], which moves to a fresh connection before that.
//! - Streams arrive through [`crate::streams`]: every one is accepted, or
//!   refused with a counted reason attributed to its peer.
//! - [`inbound`]: each stream reader splits bytes into message bodies and runs
//!   the stateless checks on them (size → decode → validate → sender bound to
//!   the connection → handler lookup → signature), so signature verification
//!   runs on every core. Readers hand checked messages over through a bounded
//!   channel, so a busy processor slows the readers, and through them (yamux
//!   flow control) the senders.
//! - [`processor`]: one task owns the replay state and does the rest: dedup →
//!   dispatch.
//! - [`outbound`]: per-peer writers.
//! - Every refusal goes to the peer manager's sink
//!   ([`crate::peer_manager::Rejections`]); counters live in [`crate::stats`].

mod inbound;
mod outbound;
mod processor;

use libp2p::{PeerId, StreamProtocol};
use p2p_protocol::Accepted;
use tokio::sync::mpsc;

use crate::handler::Registered;
use crate::streams::OpenError;

pub(crate) use inbound::{Checks, accept};
pub(crate) use outbound::Outbound;
pub(crate) use processor::Processor;

/// The native message protocol.
pub const NATIVE_PROTOCOL: StreamProtocol = StreamProtocol::new("/lotus/p2p/1.0.0");
/// The TypeScript system's message protocol (JSON, one message per stream).
pub const LEGACY_PROTOCOL: StreamProtocol = StreamProtocol::new("/lotus/message/1.0.0");

/// Checked messages queued between the readers and the processor.
const PROCESSOR_QUEUE: usize = 4096;

/// The protocol a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// [`NATIVE_PROTOCOL`]: framed protobuf, signed by default.
    Native,
    /// [`LEGACY_PROTOCOL`]: the TypeScript system's JSON.
    LegacyJson,
}

/// Which protocol `send` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireChoice {
    /// Native if the peer speaks it, else the TypeScript JSON protocol.
    #[default]
    Auto,
    /// Native only.
    Native,
    /// TypeScript JSON only.
    LegacyJson,
}

/// Why a message could not be delivered to a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The node is not running.
    #[error("node not started")]
    NotStarted,
    /// The peer does not speak the protocol asked for.
    #[error("peer does not support {0}")]
    Unsupported(StreamProtocol),
    /// The message cannot be encoded for the chosen protocol.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// Opening or writing the stream failed.
    #[error("stream: {0}")]
    Io(String),
    /// The peer reset the stream instead of reading the message (a
    /// TypeScript node does this over its inbound stream limit).
    #[error("the peer reset the stream: {0}")]
    Reset(String),
}

impl From<OpenError> for SendError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Unsupported(protocol) => SendError::Unsupported(protocol),
            OpenError::Io(reason) => SendError::Io(reason),
        }
    }
}

/// What readers hand the processor: a message that passed the stateless
/// checks, with the handler it names (looked up once, by the reader).
pub(crate) struct Item {
    peer: PeerId,
    accepted: Box<Accepted>,
    handler: Option<Registered>,
    len: usize,
    wire: Wire,
}

/// The channel readers feed.
pub(crate) fn processor_channel() -> (mpsc::Sender<Item>, mpsc::Receiver<Item>) {
    mpsc::channel(PROCESSOR_QUEUE)
}
