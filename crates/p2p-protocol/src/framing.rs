//! Length-delimited framing: an unsigned-varint length, then the body.
//!
//! The decoder is incremental over a [`BytesMut`]: feed it whatever arrived, in
//! chunks of any size, and it yields whole frames. The length is checked against
//! the maximum as soon as the prefix is complete, *before* any of the body is
//! buffered, so a peer cannot make us hold more than one maximum-size frame.
//! After an error the stream is unusable (the frame boundary is lost): drop it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use p2p_types::ProtocolLimits;

use crate::codec::{Codec, CodecError};
use crate::message::Message;

/// Longest length prefix accepted: 5 bytes holds any `u32`, which is far above
/// any sensible frame limit. The multiformats spec allows 9; a 6th byte can only
/// encode lengths we would refuse anyway, so it is rejected outright.
pub const MAX_VARINT_LEN: usize = 5;

/// Why a byte stream could not be split into frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The announced frame length exceeds the maximum.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The length prefix runs past [`MAX_VARINT_LEN`] bytes.
    #[error("length prefix longer than {MAX_VARINT_LEN} bytes")]
    VarintTooLong,
    /// The length prefix is not minimally encoded (a trailing zero group).
    #[error("length prefix is not minimally encoded")]
    NonMinimalVarint,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({buffered} bytes left over)")]
    Truncated {
        /// Bytes buffered when the stream ended.
        buffered: usize,
    },
}

/// Appends `value` as an unsigned varint.
pub(crate) fn put_varint(mut value: u64, dst: &mut BytesMut) {
    while value >= 0x80 {
        dst.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}

/// Appends one frame holding `body`.
pub fn encode_frame(body: &[u8], dst: &mut BytesMut) {
    dst.reserve(MAX_VARINT_LEN + body.len());
    put_varint(body.len() as u64, dst);
    dst.put_slice(body);
}

/// Encodes `message` with `codec` and appends it as one frame, writing the body
/// in place (no intermediate buffer).
pub fn encode_message_frame<C: Codec + ?Sized>(
    codec: &C,
    message: &Message,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let mut body = dst.split_off(dst.len());
    codec.encode_message(message, &mut body)?;
    put_varint(body.len() as u64, dst);
    dst.unsplit(body);
    Ok(())
}

/// Parses a varint at the start of `src`: `Ok(None)` if incomplete, else the
/// value and the prefix length.
fn parse_varint(src: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut value: u64 = 0;
    for (i, &byte) in src.iter().take(MAX_VARINT_LEN).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(FrameError::NonMinimalVarint);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if src.len() >= MAX_VARINT_LEN {
        Err(FrameError::VarintTooLong)
    } else {
        Ok(None)
    }
}

/// Incremental frame decoder with a maximum frame size.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame: usize,
}

impl Default for FrameDecoder {
    /// A decoder with [`ProtocolLimits::DEFAULT`]'s message size.
    fn default() -> Self {
        Self::new(ProtocolLimits::DEFAULT.max_message_size)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    /// The maximum frame length.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes one whole frame off the front of `src`, if it holds one.
    ///
    /// `Ok(None)` means more bytes are needed; `src` is then left untouched
    /// (and space for the announced body is reserved).
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some((len, prefix)) = parse_varint(src)? else {
            return Ok(None);
        };
        let body_len = match usize::try_from(len) {
            Ok(n) if n <= self.max_frame => n,
            _ => {
                return Err(FrameError::TooLarge {
                    len,
                    max: self.max_frame,
                });
            }
        };
        let available = src.len() - prefix;
        if available < body_len {
            src.reserve(body_len - available);
            return Ok(None);
        }
        src.advance(prefix);
        Ok(Some(src.split_to(body_len).freeze()))
    }

    /// Call at end of stream: errors if a partial frame is left.
    pub fn finish(&self, src: &BytesMut) -> Result<(), FrameError> {
        if src.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered: src.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        decoder: &mut FrameDecoder,
        src: &mut BytesMut,
    ) -> Result<Vec<Bytes>, FrameError> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(src)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn varint_boundaries_round_trip() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 99_999] {
            let body = vec![7u8; len];
            let mut buf = BytesMut::new();
            encode_frame(&body, &mut buf);
            let mut dec = FrameDecoder::new(100_000);
            assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), body);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn oversize_is_refused_from_the_prefix_alone() {
        let mut buf = BytesMut::new();
        put_varint(100_001, &mut buf); // no body at all yet
        let err = FrameDecoder::new(100_000).decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: 100_001,
                max: 100_000
            }
        );
    }

    #[test]
    fn over_long_and_non_minimal_varints_are_refused() {
        let mut six = BytesMut::from(&[0x80u8, 0x80, 0x80, 0x80, 0x80, 0x01][..]);
        assert_eq!(
            FrameDecoder::new(usize::MAX).decode(&mut six),
            Err(FrameError::VarintTooLong)
        );
        let mut padded = BytesMut::from(&[0x85u8, 0x00][..]);
        assert_eq!(
            FrameDecoder::default().decode(&mut padded),
            Err(FrameError::NonMinimalVarint)
        );
    }

    #[test]
    fn partial_input_waits_and_truncation_is_reported() {
        let mut whole = BytesMut::new();
        encode_frame(b"hello", &mut whole);
        let mut dec = FrameDecoder::default();
        let mut partial = BytesMut::from(&whole[..3]);
        assert_eq!(dec.decode(&mut partial), Ok(None));
        assert_eq!(partial.len(), 3, "nothing consumed while incomplete");
        assert_eq!(
            dec.finish(&partial),
            Err(FrameError::Truncated { buffered: 3 })
        );
        partial.extend_from_slice(&whole[3..]);
        assert_eq!(
            decode_all(&mut dec, &mut partial).unwrap(),
            vec![Bytes::from_static(b"hello")]
        );
        assert_eq!(dec.finish(&partial), Ok(()));
    }
}
