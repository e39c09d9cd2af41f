//! Validation of decoded messages and records against the limits and a clock.
//!
//! Decoding already guarantees the typed fields are well formed (names within
//! their charset and length, PeerIds parse). Validation adds what depends on the
//! limits and on the current time, which the caller passes in so every check is
//! deterministic.

use p2p_types::ProtocolLimits;

use crate::message::Message;
use crate::record::ResourceRecord;

/// Longest signature accepted (RSA-4096 signatures are 512 bytes; ed25519 64).
pub(crate) const MAX_SIGNATURE_LEN: usize = 1024;
/// Longest carried public key accepted (an RSA-4096 key is about 550 bytes).
pub(crate) const MAX_PUBLIC_KEY_LEN: usize = 1024;

/// Why a message or record failed validation. Each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// A field is larger than allowed.
    #[error("{field} is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A required field is empty.
    #[error("{field} is empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A timestamp lies outside the accepted clock window.
    #[error("{field} {timestamp_ms} is more than {max_skew_ms} ms from now ({now_ms})")]
    ClockSkew {
        /// The field.
        field: &'static str,
        /// Its value.
        timestamp_ms: u64,
        /// The receiver's clock.
        now_ms: u64,
        /// The window.
        max_skew_ms: u64,
    },
    /// A record's expiry is not after its creation.
    #[error("expires_ms {expires_ms} is not after created_ms {created_ms}")]
    ExpiresBeforeCreated {
        /// Creation time.
        created_ms: u64,
        /// Expiry time.
        expires_ms: u64,
    },
    /// A record has expired.
    #[error("expired at {expires_ms} (now {now_ms})")]
    Expired {
        /// Expiry time.
        expires_ms: u64,
        /// The receiver's clock.
        now_ms: u64,
    },
}

fn at_most(field: &'static str, len: usize, max: usize) -> Result<(), ValidationError> {
    if len > max {
        Err(ValidationError::TooLarge { field, len, max })
    } else {
        Ok(())
    }
}

fn signature_fields(
    signature: Option<&[u8]>,
    public_key: Option<&[u8]>,
) -> Result<(), ValidationError> {
    at_most(
        "signature",
        signature.map_or(0, <[u8]>::len),
        MAX_SIGNATURE_LEN,
    )?;
    at_most(
        "public_key",
        public_key.map_or(0, <[u8]>::len),
        MAX_PUBLIC_KEY_LEN,
    )
}

/// Checks a message against `limits` at time `now_ms`.
///
/// Rejects: a payload over the message size limit, an empty or over-long nonce,
/// oversized signature or key fields, and a timestamp (zero included) more than
/// `limits.max_clock_skew` in the past *or* the future.
pub fn validate_message(
    message: &Message,
    now_ms: u64,
    limits: &ProtocolLimits,
) -> Result<(), ValidationError> {
    at_most("payload", message.payload.len(), limits.max_message_size)?;
    if message.nonce.is_empty() {
        return Err(ValidationError::Empty { field: "nonce" });
    }
    at_most("nonce", message.nonce.len(), limits.max_nonce_len)?;
    signature_fields(message.signature.as_deref(), message.public_key.as_deref())?;
    let max_skew_ms = limits.max_clock_skew_ms();
    if message.timestamp_ms.abs_diff(now_ms) > max_skew_ms {
        return Err(ValidationError::ClockSkew {
            field: "timestamp_ms",
            timestamp_ms: message.timestamp_ms,
            now_ms,
            max_skew_ms,
        });
    }
    Ok(())
}

/// Checks a resource record against `limits` at time `now_ms`.
///
/// Rejects: data over the record size limit, a creation time in the future
/// (beyond the clock skew) or zero, an expiry not after creation, and an expired
/// record.
pub fn validate_record(
    record: &ResourceRecord,
    now_ms: u64,
    limits: &ProtocolLimits,
) -> Result<(), ValidationError> {
    at_most("data", record.data.len(), limits.max_record_size)?;
    signature_fields(record.signature.as_deref(), record.public_key.as_deref())?;
    let max_skew_ms = limits.max_clock_skew_ms();
    if record.created_ms == 0 || record.created_ms > now_ms.saturating_add(max_skew_ms) {
        return Err(ValidationError::ClockSkew {
            field: "created_ms",
            timestamp_ms: record.created_ms,
            now_ms,
            max_skew_ms,
        });
    }
    if let Some(expires_ms) = record.expires_ms {
        if expires_ms <= record.created_ms {
            return Err(ValidationError::ExpiresBeforeCreated {
                created_ms: record.created_ms,
                expires_ms,
            });
        }
        if expires_ms <= now_ms {
            return Err(ValidationError::Expired { expires_ms, now_ms });
        }
    }
    Ok(())
}
