//! Validated names: message types and protocol handler names.

use std::fmt;
use std::str::FromStr;

/// Why a name (message type, protocol name, resource type or id) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which kind of name.
        what: &'static str,
    },
    /// The name is longer than allowed.
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Which kind of name.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The name holds a character outside its charset.
    #[error("{what} holds {found:?} at byte {position}, outside its charset")]
    BadChar {
        /// Which kind of name.
        what: &'static str,
        /// The offending character.
        found: char,
        /// Its byte offset.
        position: usize,
    },
    /// A resource key string did not have the `resource:<type>:<id>` shape.
    #[error("resource key must be resource:<type>:<id>")]
    BadKey,
}

/// Checks `s` against a maximum length and a per-byte charset.
pub(crate) fn check_name(
    what: &'static str,
    s: &str,
    max: usize,
    allowed: fn(u8) -> bool,
) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { what });
    }
    if s.len() > max {
        return Err(NameError::TooLong {
            what,
            len: s.len(),
            max,
        });
    }
    match s.bytes().position(|b| !allowed(b)) {
        None => Ok(()),
        Some(position) => Err(NameError::BadChar {
            what,
            found: s
                .get(position..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or('\u{fffd}'),
            position,
        }),
    }
}

/// Declares a validated string newtype.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                check_name($what, &s, Self::MAX_LEN, $allowed)?;
                Ok(Self(s))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps into the owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use name_type;

/// Bytes allowed in message types and protocol names: ASCII letters, digits and
/// `.`, `_`, `-`, `:` (the TypeScript system uses names such as `peer-handshake`
/// and `musig2:nonce`). No spaces, no control characters, no `/`.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':')
}

name_type!(
    /// The application-level type of a message (`chat`, `peer-handshake`, ...):
    /// 1..=64 bytes of ASCII letters, digits and `._-:`.
    MessageType,
    "message type",
    64,
    is_name_byte
);

name_type!(
    /// The name of a protocol handler, used to route a message to it (`chat`,
    /// `musig2`): 1..=64 bytes of ASCII letters, digits and `._-:`.
    ProtocolName,
    "protocol name",
    64,
    is_name_byte
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_the_typescript_system_uses() {
        for n in [
            "chat",
            "peer-handshake",
            "data-broadcast",
            "musig2:nonce",
            "v1.2_x",
        ] {
            assert_eq!(MessageType::new(n).unwrap().as_str(), n);
            assert_eq!(ProtocolName::new(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn rejects_empty_long_and_bad_charset_naming_the_field() {
        assert_eq!(
            MessageType::new(""),
            Err(NameError::Empty {
                what: "message type"
            })
        );
        let long = "a".repeat(65);
        assert_eq!(
            ProtocolName::new(long),
            Err(NameError::TooLong {
                what: "protocol name",
                len: 65,
                max: 64
            })
        );
        assert_eq!(
            MessageType::new("a b"),
            Err(NameError::BadChar {
                what: "message type",
                found: ' ',
                position: 1
            })
        );
        assert!(matches!(
            MessageType::new("é"),
            Err(NameError::BadChar { found: 'é', .. })
        ));
        assert!(MessageType::new("/lotus/chat").is_err());
        assert!(MessageType::new("a".repeat(64)).is_ok());
    }
}
