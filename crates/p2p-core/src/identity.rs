//! Node identity: generated, from secret bytes, or from a key file that is
//! created on first run, so a node keeps its PeerId across restarts (the
//! TypeScript system drew a fresh one on every start).

use std::io;
use std::path::{Path, PathBuf};

use libp2p::identity::{DecodingError, Keypair};

/// Where a node's keypair comes from.
#[derive(Debug, Clone, Default)]
pub enum Identity {
    /// A fresh ed25519 key (a new PeerId on every build).
    #[default]
    Generate,
    /// An ed25519 key from its 32-byte secret.
    Ed25519Secret([u8; 32]),
    /// A key file (libp2p protobuf encoding), created with a new ed25519 key if
    /// it does not exist.
    KeyFile(PathBuf),
    /// A key the caller already has.
    Keypair(Box<Keypair>),
}

/// Why an identity could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The bytes are not a valid key.
    #[error("invalid key: {0}")]
    Decode(#[from] DecodingError),
}

impl Identity {
    /// The keypair this identity stands for (creating the key file if needed).
    pub fn keypair(&self) -> Result<Keypair, IdentityError> {
        match self {
            Self::Generate => Ok(Keypair::generate_ed25519()),
            Self::Ed25519Secret(secret) => Ok(Keypair::ed25519_from_bytes(*secret)?),
            Self::KeyFile(path) => load_or_create_key_file(path),
            Self::Keypair(key) => Ok(Keypair::clone(key)),
        }
    }
}

/// Reads the keypair in `path`, or creates the file with a new ed25519 key.
/// The file is written atomically (temporary file, then rename) and, on Unix,
/// readable by its owner only.
pub fn load_or_create_key_file(path: &Path) -> Result<Keypair, IdentityError> {
    let io_err = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => Ok(Keypair::from_protobuf_encoding(&bytes)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding()?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
            let tmp = path.with_extension("tmp");
            write_private(&tmp, &bytes).map_err(io_err)?;
            std::fs::rename(&tmp, path).map_err(io_err)?;
            Ok(key)
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    std::fs::write(path, bytes)
}
