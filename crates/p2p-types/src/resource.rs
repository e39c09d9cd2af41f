//! Resource identifiers and the DHT key `resource:<type>:<id>`.
//!
//! The TypeScript system built keys by plain concatenation, so a `:` inside a
//! type or an id made two different resources share a key, and a `/` changed how
//! js kad-dht validated the record. Here neither part may contain `:` or `/`, so
//! every key parses back to exactly one (type, id) pair.

use std::fmt;
use std::str::FromStr;

use crate::names::{NameError, check_name, name_type};

/// Prefix of every resource key, kept from the TypeScript system for interop.
pub const RESOURCE_KEY_PREFIX: &str = "resource:";

fn is_type_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Printable ASCII except space, `:` and `/`.
fn is_id_byte(b: u8) -> bool {
    b.is_ascii_graphic() && b != b':' && b != b'/'
}

name_type!(
    /// The type of a resource (`musig2-session`, `coinjoin-round`, ...):
    /// 1..=64 bytes of ASCII letters, digits and `._-`.
    ResourceType,
    "resource type",
    64,
    is_type_byte
);

name_type!(
    /// The id of a resource within its type: 1..=128 bytes of printable ASCII
    /// other than `:` and `/`.
    ResourceId,
    "resource id",
    128,
    is_id_byte
);

/// The key a resource is stored under: `resource:<type>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    resource_type: ResourceType,
    resource_id: ResourceId,
}

impl ResourceKey {
    /// Builds the key of a resource.
    pub fn new(resource_type: ResourceType, resource_id: ResourceId) -> Self {
        Self {
            resource_type,
            resource_id,
        }
    }

    /// The resource type.
    pub fn resource_type(&self) -> &ResourceType {
        &self.resource_type
    }

    /// The resource id.
    pub fn resource_id(&self) -> &ResourceId {
        &self.resource_id
    }

    /// The key as the bytes stored in the DHT (UTF-8 of `resource:<type>:<id>`).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Parses the DHT form of a key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NameError> {
        std::str::from_utf8(bytes)
            .map_err(|_| NameError::BadKey)?
            .parse()
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{RESOURCE_KEY_PREFIX}{}:{}",
            self.resource_type, self.resource_id
        )
    }
}

impl FromStr for ResourceKey {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        let rest = s
            .strip_prefix(RESOURCE_KEY_PREFIX)
            .ok_or(NameError::BadKey)?;
        let (ty, id) = rest.split_once(':').ok_or(NameError::BadKey)?;
        check_name("resource type", ty, ResourceType::MAX_LEN, is_type_byte)?;
        Ok(Self::new(ResourceType::new(ty)?, ResourceId::new(id)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_has_the_typescript_format() {
        let key = ResourceKey::new(
            ResourceType::new("coinjoin-round").unwrap(),
            ResourceId::new("r-42").unwrap(),
        );
        assert_eq!(key.to_string(), "resource:coinjoin-round:r-42");
        assert_eq!(key.to_bytes(), b"resource:coinjoin-round:r-42");
        assert_eq!(ResourceKey::from_bytes(&key.to_bytes()).unwrap(), key);
    }

    #[test]
    fn separators_are_refused_so_keys_stay_unambiguous() {
        // With plain concatenation, ("a:b", "c") and ("a", "b:c") collide.
        assert!(ResourceType::new("a:b").is_err());
        assert!(ResourceId::new("b:c").is_err());
        assert!(ResourceId::new("x/y").is_err());
        assert!(ResourceId::new("has space").is_err());
        assert_eq!(
            "resource:a:b:c".parse::<ResourceKey>(),
            Err(NameError::BadChar {
                what: "resource id",
                found: ':',
                position: 1
            })
        );
        assert_eq!("resource:ab".parse::<ResourceKey>(), Err(NameError::BadKey));
        assert_eq!("res:a:b".parse::<ResourceKey>(), Err(NameError::BadKey));
        assert!(ResourceKey::from_bytes(&[0xff, 0xfe]).is_err());
    }

    proptest! {
        #[test]
        fn every_valid_key_round_trips(ty in "[A-Za-z0-9._-]{1,64}", id in "[!-.0-9;-~]{1,128}") {
            let key = ResourceKey::new(ResourceType::new(ty).unwrap(), ResourceId::new(id).unwrap());
            prop_assert_eq!(key.to_string().parse::<ResourceKey>().unwrap(), key);
        }

        #[test]
        fn parsing_arbitrary_strings_never_panics(s in ".{0,200}") {
            if let Ok(key) = s.parse::<ResourceKey>() {
                prop_assert_eq!(key.to_string(), s);
            }
        }
    }
}
