//! Canonical signing bytes.
//!
//! Signatures and message ids are computed over bytes built field by field from
//! the decoded values, never over a protobuf or JSON encoding (neither is
//! canonical: field order, default values and whitespace can vary). The layout is:
//!
//! ```text
//! domain tag (ASCII, NUL-terminated)
//! for each field, in a fixed order:
//!   variable-length field: u32 big-endian length, then the bytes
//!   integer field:         u64 big-endian
//! ```
//!
//! The domain tag differs between messages and resource records, so a signature
//! over one can never be replayed as the other. Absent optional fields are written
//! as length 0, which is unambiguous because none of them can be present and empty.

/// Domain tag of message signing bytes.
pub const MESSAGE_DOMAIN: &[u8] = b"lotus-p2p/v1/message\0";
/// Domain tag of resource-record signing bytes.
pub const RECORD_DOMAIN: &[u8] = b"lotus-p2p/v1/resource-record\0";

/// Something canonical bytes can be written into: a buffer, or a hasher directly
/// (so a message id needs no allocation).
pub(crate) trait CanonicalSink {
    fn put(&mut self, bytes: &[u8]);

    fn field(&mut self, bytes: &[u8]) {
        // Every field is bounded far below 4 GiB by the protocol limits; saturate
        // rather than wrap so an absurd length can never alias a short one.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.put(&len.to_be_bytes());
        self.put(bytes);
    }

    fn int(&mut self, value: u64) {
        self.put(&value.to_be_bytes());
    }

    /// A PeerId as a field: its multihash bytes (varint code, varint length,
    /// digest), written without allocating.
    fn peer(&mut self, peer: &libp2p_identity::PeerId) {
        let multihash = peer.as_ref();
        let digest = multihash.digest();
        let mut prefix = [0u8; 20];
        let mut len = 0;
        for value in [multihash.code(), digest.len() as u64] {
            let mut v = value;
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if let Some(slot) = prefix.get_mut(len) {
                    *slot = if v == 0 { byte } else { byte | 0x80 };
                }
                len += 1;
                if v == 0 {
                    break;
                }
            }
        }
        let prefix = prefix.get(..len).unwrap_or_default();
        let total = u32::try_from(prefix.len() + digest.len()).unwrap_or(u32::MAX);
        self.put(&total.to_be_bytes());
        self.put(prefix);
        self.put(digest);
    }
}

impl CanonicalSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl CanonicalSink for sha2::Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        sha2::Digest::update(self, bytes);
    }
}
