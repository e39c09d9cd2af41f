//! The signer key on disk: 32 secret bytes in a file only its owner can read.

use std::path::Path;

use lotus_musig2::SecretKey;
use p2p_core::IdentityError;
use zeroize::Zeroizing;

/// Why the signer key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignerKeyError {
    /// Reading or creating the file failed, or the file is unsafe (a
    /// symbolic link, not a regular file, readable by others).
    #[error("signer key file")]
    File(#[from] IdentityError),
    /// The file does not hold a secret key (32 bytes, in 1..n).
    #[error("the signer key file does not hold a secp256k1 secret key")]
    NotAKey(#[source] lotus_musig2::Error),
}

/// Reads the signer key in `path`, or creates the file (mode 0600, written
/// atomically) with a new key: the rules of the node's own key file.
pub fn load_or_create(path: &Path) -> Result<SecretKey, SignerKeyError> {
    let bytes = p2p_core::load_or_create_secret_file(path, || {
        let key = SecretKey::generate().map_err(|e| IdentityError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        Ok(Zeroizing::new(key.to_bytes().to_vec()))
    })?;
    let bytes: &[u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SignerKeyError::NotAKey(lotus_musig2::Error::InvalidSecretKey))?;
    SecretKey::from_bytes(bytes).map_err(SignerKeyError::NotAKey)
}
