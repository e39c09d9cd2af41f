//! Arbitrary bytes, fed in arbitrary chunks, into the frame decoder: it must
//! never panic, never yield a frame over the limit, and yield the same frames
//! whatever the chunking.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use p2p_protocol::FrameDecoder;

const MAX: usize = 4096;

fn frames(input: &[u8], chunk: usize) -> (Vec<bytes::Bytes>, bool) {
    let mut decoder = FrameDecoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX);
                    out.push(frame);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let (whole, whole_err) = frames(input, input.len());
    let (chunked, chunked_err) = frames(input, usize::from(chunk));
    assert_eq!(whole, chunked);
    assert_eq!(whole_err, chunked_err);
});
