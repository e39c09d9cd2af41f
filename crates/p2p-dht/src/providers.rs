//! Provider records: "this peer offers `<name>`".
//!
//! Keys are made the way js-libp2p makes them for a string: the CIDv1 (raw
//! codec) of `sha2-256(utf8(name))`, of which kad carries only the multihash,
//! `0x12 0x20 || sha256(name)`. So a TypeScript node that provides `name` and
//! one of ours that looks `name` up meet at the same key, and the other way round.

use libp2p::kad::RecordKey;
use sha2::{Digest, Sha256};

/// The kad key under which providers of `name` are kept.
pub fn provider_key(name: &str) -> RecordKey {
    let mut multihash = Vec::with_capacity(34);
    multihash.extend_from_slice(&[0x12, 0x20]); // sha2-256, 32 bytes
    multihash.extend_from_slice(&Sha256::digest(name.as_bytes()));
    RecordKey::new(&multihash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_sha256_multihash_of_the_name() {
        let key = provider_key("lotus-interop-provider");
        let bytes = key.as_ref();
        assert_eq!(bytes.len(), 34);
        assert_eq!(&bytes[..2], &[0x12, 0x20]);
        assert_eq!(
            &bytes[2..],
            Sha256::digest(b"lotus-interop-provider").as_slice()
        );
        assert_ne!(provider_key("a"), provider_key("b"));
    }
}
