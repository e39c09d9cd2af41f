//! Messaging: the native protocol, the TypeScript system's JSON protocol, the
//! one inbound pipeline both feed, and the outbound writers.
//!
//! - Native, [`NATIVE_PROTOCOL`]: a long-lived stream per peer and direction
//!   carrying varint-framed envelopes in the node's [`NativeCodec`] (protobuf
//!   unless configured otherwise, under the codec's own protocol id). One writer task per peer batches
//!   frames and flushes once per batch; its queue is bounded, so a sender that
//!   outruns the network waits (backpressure) instead of losing messages.
//! - TypeScript, [`TYPESCRIPT_PROTOCOL`] (`/lotus/message/1.0.0`): one JSON message per
//!   stream, read to EOF, capped in size and time; we close our side after
//!   reading. The TypeScript node never closes its side, and refuses a 33rd
//!   open one per connection: sending to it goes through
//!   [`crate::typescript_lanes`], which moves to a fresh connection before that.
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

use std::sync::Arc;

use libp2p::{PeerId, StreamProtocol};
use p2p_protocol::{Accepted, Codec, ProtobufCodec};
use tokio::sync::mpsc;

use crate::handler::Registered;
use crate::streams::OpenError;

pub(crate) use inbound::{Checks, accept};
pub(crate) use outbound::Outbound;
pub(crate) use processor::Processor;

/// The native message protocol's default id (protobuf; see [`NativeCodec`]).
pub const NATIVE_PROTOCOL: StreamProtocol = StreamProtocol::new("/lotus/p2p/1.0.0");
/// The TypeScript system's message protocol (JSON, one message per stream).
pub const TYPESCRIPT_PROTOCOL: StreamProtocol = StreamProtocol::new("/lotus/message/1.0.0");

/// The codec of the native protocol and the protocol id it is negotiated
/// under. Default: protobuf on [`NATIVE_PROTOCOL`].
///
/// A node serves and dials its native protocol with this codec only; a peer
/// configured with another codec under another id is, for native messages,
/// a peer that does not speak native (multistream-select finds no common
/// protocol), so `send` with [`WireChoice::Auto`] falls back to the
/// TypeScript protocol and [`WireChoice::Native`] fails with
/// [`SendError::Unsupported`]. Give a codec of your own its own protocol id:
/// two encodings under one id would fail as malformed messages.
///
/// Signatures cover canonical bytes, not the encoding, so a message signed
/// once verifies whichever codec carried it.
#[derive(Clone)]
pub struct NativeCodec {
    protocol: StreamProtocol,
    codec: Arc<dyn Codec>,
}

impl NativeCodec {
    /// `codec` served under `protocol`.
    pub fn new(protocol: StreamProtocol, codec: Arc<dyn Codec>) -> Self {
        Self { protocol, codec }
    }

    /// The default: protobuf on [`NATIVE_PROTOCOL`].
    pub fn protobuf() -> Self {
        Self::new(NATIVE_PROTOCOL, Arc::new(ProtobufCodec))
    }

    /// The protocol id.
    pub fn protocol(&self) -> &StreamProtocol {
        &self.protocol
    }

    /// The codec.
    pub fn codec(&self) -> &Arc<dyn Codec> {
        &self.codec
    }
}

impl Default for NativeCodec {
    fn default() -> Self {
        Self::protobuf()
    }
}

impl std::fmt::Debug for NativeCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeCodec")
            .field("protocol", &self.protocol)
            .field("codec", &self.codec.name())
            .finish()
    }
}

/// Checked messages queued between the readers and the processor.
const PROCESSOR_QUEUE: usize = 4096;

/// The protocol a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// The native protocol ([`NativeCodec`]; by default protobuf frames on
    /// [`NATIVE_PROTOCOL`]), signed by default.
    Native,
    /// [`TYPESCRIPT_PROTOCOL`]: the TypeScript system's JSON.
    TypeScript,
}

impl Wire {
    /// `native` or `typescript`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::TypeScript => "typescript",
        }
    }
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
    TypeScript,
}

/// Why a message could not be delivered to a peer. Causes are kept as typed
/// sources (shared, so that one failed write can fail every message of its
/// batch).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The node is not running.
    #[error("node not started")]
    NotStarted,
    /// The peer does not speak the protocol asked for.
    #[error("peer does not support {0}")]
    Unsupported(StreamProtocol),
    /// The message cannot be encoded for the chosen protocol.
    #[error("cannot encode the message")]
    Encode(#[source] Arc<p2p_protocol::CodecError>),
    /// No connection to the peer could be had: libp2p's dial error, as an
    /// I/O error of the matching kind (libp2p lends it by reference only).
    #[error("dial failed")]
    Dial(#[source] Arc<std::io::Error>),
    /// Opening or writing the stream failed, or its connection closed.
    #[error("stream failed")]
    Io(#[source] Arc<std::io::Error>),
    /// The peer reset the stream instead of reading the message (a
    /// TypeScript node does this over its inbound stream limit).
    #[error("the peer reset the stream")]
    Reset(#[source] Arc<std::io::Error>),
}

impl SendError {
    /// An I/O failure.
    pub(crate) fn io(error: std::io::Error) -> Self {
        Self::Io(Arc::new(error))
    }

    /// The stream (or the node behind it) went away.
    pub(crate) fn closed(what: &'static str) -> Self {
        Self::io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, what))
    }
}

impl From<OpenError> for SendError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Unsupported(protocol) => SendError::Unsupported(protocol),
            OpenError::Io(error) => SendError::io(error),
            OpenError::Dial(error) => SendError::Dial(error),
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
