//! Node identity: generated, from secret bytes, or from a key file that is
//! created on first run, so a node keeps its PeerId across restarts (the
//! TypeScript system drew a fresh one on every start).
//!
//! Secrets stay secret: an [`Identity`]'s `Debug` form shows the PeerId, never
//! the key, and secret bytes held here are wiped from memory when dropped. On
//! Unix, a key file is created owner-only without following symbolic links,
//! and an existing one is refused when it is a symbolic link or when group or
//! others may access it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use libp2p::PeerId;
use libp2p::identity::{DecodingError, Keypair};
use zeroize::Zeroizing;

/// Where a node's keypair comes from.
///
/// `Debug` prints the PeerId (when it is known without touching the file
/// system) and `<redacted>` in place of the secret.
#[derive(Clone, Default)]
pub enum Identity {
    /// A fresh ed25519 key (a new PeerId on every build).
    #[default]
    Generate,
    /// An ed25519 key from its 32-byte secret, wiped from memory when the
    /// identity is dropped: `Identity::Ed25519Secret(secret.into())`.
    Ed25519Secret(Zeroizing<[u8; 32]>),
    /// A key file (libp2p protobuf encoding), created with a new ed25519 key if
    /// it does not exist. On Unix the file must be a regular file (not a
    /// symbolic link) that group and others cannot access (mode 0600 or
    /// stricter); a new one is created with mode 0600.
    KeyFile(PathBuf),
    /// A key the caller already has.
    Keypair(Box<Keypair>),
}

/// Why an identity could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The bytes are not a valid key.
    #[error("invalid key: {0}")]
    Decode(#[from] DecodingError),
    /// The key path is a symbolic link. It is not followed: whoever can plant
    /// a link could make the node use a key they know, or write its new key
    /// over another file.
    #[error(
        "key file {path} is a symbolic link; refusing to follow it (give the path of the real file)"
    )]
    Symlink {
        /// The key path.
        path: PathBuf,
    },
    /// The key file may be read or written by group or others.
    #[error(
        "key file {path} is readable or writable by group/others (mode {mode:04o}); run `chmod 600 {path}`"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key path is not a regular file (a directory, a FIFO, a device…).
    #[error("key file {path} is not a regular file")]
    NotAFile {
        /// The key path.
        path: PathBuf,
    },
}

impl Identity {
    /// The keypair this identity stands for (creating the key file if needed).
    pub fn keypair(&self) -> Result<Keypair, IdentityError> {
        match self {
            Self::Generate => Ok(Keypair::generate_ed25519()),
            Self::Ed25519Secret(secret) => ed25519_keypair(secret),
            Self::KeyFile(path) => load_or_create_key_file(path),
            Self::Keypair(key) => Ok(Keypair::clone(key)),
        }
    }

    /// The PeerId, when it is known without generating a key or reading a file.
    fn known_peer_id(&self) -> Option<PeerId> {
        match self {
            Self::Generate | Self::KeyFile(_) => None,
            Self::Ed25519Secret(secret) => ed25519_keypair(secret)
                .ok()
                .map(|key| key.public().to_peer_id()),
            Self::Keypair(key) => Some(key.public().to_peer_id()),
        }
    }
}

/// The keypair of an ed25519 secret. libp2p wipes the bytes it is given, so
/// it gets a copy (which is wiped in any case).
fn ed25519_keypair(secret: &Zeroizing<[u8; 32]>) -> Result<Keypair, IdentityError> {
    let mut copy = Zeroizing::new(**secret);
    Ok(Keypair::ed25519_from_bytes(&mut *copy)?)
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A PeerId in `Debug` output: its base58 text.
struct ShowPeer(Option<PeerId>);

impl fmt::Debug for ShowPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(peer) => write!(f, "{peer}"),
            None => f.write_str("<invalid key>"),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Generate => f.write_str("Generate"),
            Self::KeyFile(path) => f.debug_tuple("KeyFile").field(path).finish(),
            Self::Ed25519Secret(_) => f
                .debug_struct("Ed25519Secret")
                .field("peer_id", &ShowPeer(self.known_peer_id()))
                .field("secret", &Redacted)
                .finish(),
            Self::Keypair(_) => f
                .debug_struct("Keypair")
                .field("peer_id", &ShowPeer(self.known_peer_id()))
                .field("secret", &Redacted)
                .finish(),
        }
    }
}

/// Reads the keypair in `path`, or creates the file with a new ed25519 key.
///
/// The file is written atomically: a temporary file next to it (`<name>.tmp`;
/// one left over by a crash is removed first) is created, written, synced and
/// renamed. On Unix the temporary file is created anew (never reused, never
/// through a symbolic link) with mode 0600, and an existing key file is
/// refused when it is a symbolic link ([`IdentityError::Symlink`]), not a
/// regular file ([`IdentityError::NotAFile`]), or accessible to group or
/// others ([`IdentityError::Permissions`]).
pub fn load_or_create_key_file(path: &Path) -> Result<Keypair, IdentityError> {
    let mut created = None;
    let bytes = load_or_create_secret_file(path, || {
        let key = Keypair::generate_ed25519();
        let bytes = Zeroizing::new(key.to_protobuf_encoding()?);
        created = Some(key);
        Ok(bytes)
    })?;
    match created {
        Some(key) => Ok(key),
        None => Ok(Keypair::from_protobuf_encoding(&bytes)?),
    }
}

/// Reads the secret in `path`, or creates the file with the bytes `make`
/// returns; the same rules as [`load_or_create_key_file`] (atomic creation,
/// mode 0600, no symbolic links, refused when group or others can access
/// it), for any secret a node keeps on disk (a MuSig2 signer key, an API
/// token).
pub fn load_or_create_secret_file(
    path: &Path,
    make: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, IdentityError>,
) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
    if let Some(bytes) = read_key_file(path)? {
        return Ok(bytes);
    }
    let bytes = make()?;
    create_key_file(path, &bytes)?;
    Ok(bytes)
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The key file's bytes, or `None` if there is no file.
#[cfg(unix)]
fn read_key_file(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, IdentityError> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    // O_NOFOLLOW: a symbolic link (dangling or not) fails the open instead of
    // being followed. O_NONBLOCK: a FIFO planted there does not hang the open;
    // it is refused below like any other non-regular file.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            return Err(if is_link {
                IdentityError::Symlink {
                    path: path.to_path_buf(),
                }
            } else {
                io_error(path)(e)
            });
        }
    };
    // Checked on the open file, so the answer is about the file we read.
    let meta = file.metadata().map_err(io_error(path))?;
    if !meta.is_file() {
        return Err(IdentityError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    // Sized up front so the buffer is not reallocated, which would leave
    // copies of the key behind in freed memory.
    let capacity = usize::try_from(meta.len()).unwrap_or(usize::MAX).min(4096);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.read_to_end(&mut bytes).map_err(io_error(path))?;
    Ok(Some(bytes))
}

#[cfg(not(unix))]
fn read_key_file(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, IdentityError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Writes a new key file: temporary file, sync, rename, sync the directory.
fn create_key_file(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let tmp = path.with_extension("tmp");
    // Left over by a crash (or planted): unlink it, whatever it is. Unlinking
    // a symbolic link removes the link, not its target.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&tmp)(e)),
    }
    if let Err(e) = write_new_private(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(&tmp)(e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(path)(e));
    }
    sync_dir(dir.unwrap_or(Path::new("."))).map_err(io_error(path))
}

/// Creates `path` (failing if anything exists there, a symbolic link
/// included), readable by its owner only, and writes `bytes` durably.
#[cfg(unix)]
fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::config::{NodeBuilder, NodeConfig};

    /// A secret whose bytes are all different, so no form of it can occur by
    /// accident.
    fn known_secret() -> [u8; 32] {
        std::array::from_fn(|i| u8::try_from(i).unwrap().wrapping_mul(37).wrapping_add(11))
    }

    fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            }
            if pad {
                out.push_str(&"=".repeat(3 - chunk.len()));
            }
        }
        out
    }

    /// Every usual text form of `secret`.
    fn forms(secret: &[u8]) -> Vec<String> {
        const STANDARD: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        vec![
            hex.to_uppercase(),
            hex,
            base64(secret, STANDARD, true),
            base64(secret, STANDARD, false),
            base64(secret, URL, false),
            format!("{secret:?}"),
            format!("{secret:#?}"),
        ]
    }

    fn assert_hides(debug: &str, secret: &[u8], peer: PeerId) {
        for form in forms(secret) {
            assert!(!debug.contains(&form), "secret as {form} in {debug}");
        }
        assert!(debug.contains(&peer.to_string()), "no PeerId in {debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let secret = known_secret();
        let key = Keypair::ed25519_from_bytes(secret).unwrap();
        let peer = key.public().to_peer_id();
        // What the key file would hold: the secret inside its protobuf form.
        let encoded = key.to_protobuf_encoding().unwrap();
        assert_eq!(
            forms(&[0xfb]),
            ["FB", "fb", "+w==", "+w", "-w", "[251]", "[\n    251,\n]"]
        );

        let identities = [
            Identity::Ed25519Secret(secret.into()),
            Identity::Keypair(Box::new(key)),
        ];
        for identity in identities {
            let config = NodeConfig {
                identity: identity.clone(),
                ..NodeConfig::default()
            };
            let builder = NodeBuilder::new().identity(identity.clone());
            for debug in [
                format!("{identity:?}"),
                format!("{identity:#?}"),
                format!("{config:?}"),
                format!("{config:#?}"),
                format!("{builder:?}"),
                format!("{builder:#?}"),
            ] {
                assert_hides(&debug, &secret, peer);
                assert_hides(&debug, &encoded, peer);
            }
        }
        assert_eq!(format!("{:?}", Identity::Generate), "Generate");
        assert_eq!(
            format!("{:?}", Identity::KeyFile("/k/node.key".into())),
            r#"KeyFile("/k/node.key")"#
        );
    }

    #[test]
    fn a_secret_identity_is_the_key_of_its_secret() {
        let secret = known_secret();
        let expected = Keypair::ed25519_from_bytes(secret).unwrap().public();
        let identity = Identity::Ed25519Secret(secret.into());
        assert_eq!(identity.keypair().unwrap().public(), expected);
        // libp2p wipes the bytes it parses: the identity keeps its own.
        assert_eq!(identity.keypair().unwrap().public(), expected);
    }

    #[cfg(unix)]
    mod key_file {
        use std::os::unix::fs::{PermissionsExt, symlink};

        use super::*;

        /// A fresh directory, removed on drop.
        struct TempDir(PathBuf);

        impl TempDir {
            fn new(name: &str) -> Self {
                let dir = std::env::temp_dir()
                    .join(format!("lotus-p2p-identity-{}-{name}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                Self(dir)
            }
        }

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        fn mode(path: &Path) -> u32 {
            std::fs::symlink_metadata(path)
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        }

        fn write_key(path: &Path, mode: u32) -> PeerId {
            let key = Keypair::generate_ed25519();
            std::fs::write(path, key.to_protobuf_encoding().unwrap()).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
            key.public().to_peer_id()
        }

        #[test]
        fn a_new_key_file_is_a_regular_owner_only_file_and_is_read_back() {
            let dir = TempDir::new("fresh");
            let path = dir.0.join("nested").join("node.key");
            let created = load_or_create_key_file(&path).unwrap();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.file_type().is_file());
            assert_eq!(mode(&path), 0o600);
            assert!(
                !path.with_extension("tmp").exists(),
                "no temporary file left"
            );
            let loaded = load_or_create_key_file(&path).unwrap();
            assert_eq!(loaded.public(), created.public());
        }

        #[test]
        fn a_leftover_temporary_file_is_replaced_not_reused() {
            // A crash (or another user) left node.tmp behind, readable by all:
            // opening it with create(true) kept its mode 0644.
            let dir = TempDir::new("leftover");
            let path = dir.0.join("node.key");
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, b"stale").unwrap();
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
            let created = load_or_create_key_file(&path).unwrap();
            assert_eq!(mode(&path), 0o600);
            assert!(!tmp.exists());
            assert_eq!(
                load_or_create_key_file(&path).unwrap().public(),
                created.public()
            );
        }

        #[test]
        fn a_symlink_planted_at_the_temporary_path_is_removed_not_followed() {
            let dir = TempDir::new("tmp-link");
            let path = dir.0.join("node.key");
            let tmp = path.with_extension("tmp");
            let victim = dir.0.join("victim");
            std::fs::write(&victim, b"precious").unwrap();
            std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
            symlink(&victim, &tmp).unwrap();

            let created = load_or_create_key_file(&path).unwrap();
            assert_eq!(
                std::fs::read(&victim).unwrap(),
                b"precious",
                "target untouched"
            );
            assert_eq!(mode(&victim), 0o644);
            assert!(std::fs::symlink_metadata(&tmp).is_err(), "link removed");
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.file_type().is_file(), "the key file is no link");
            assert_eq!(mode(&path), 0o600);
            assert_eq!(
                load_or_create_key_file(&path).unwrap().public(),
                created.public()
            );
        }

        #[test]
        fn a_key_path_that_is_a_symlink_is_refused() {
            let dir = TempDir::new("key-link");
            // To a valid owner-only key: someone else's key is not ours.
            let elsewhere = dir.0.join("elsewhere.key");
            write_key(&elsewhere, 0o600);
            let path = dir.0.join("node.key");
            symlink(&elsewhere, &path).unwrap();
            match load_or_create_key_file(&path) {
                Err(IdentityError::Symlink { path: p }) => assert_eq!(p, path),
                other => panic!("expected Symlink, got {other:?}"),
            }
            // Dangling: following it would create a file where the link points.
            let dangling = dir.0.join("dangling.key");
            let target = dir.0.join("target.key");
            symlink(&target, &dangling).unwrap();
            match load_or_create_key_file(&dangling) {
                Err(IdentityError::Symlink { path: p }) => assert_eq!(p, dangling),
                other => panic!("expected Symlink, got {other:?}"),
            }
            assert!(!target.exists(), "nothing created through the link");
            assert!(
                std::fs::symlink_metadata(&dangling)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
        }

        #[test]
        fn a_key_file_others_can_access_is_refused_with_a_clear_message() {
            let dir = TempDir::new("mode");
            let path = dir.0.join("node.key");
            for bad in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660] {
                write_key(&path, bad);
                let err = load_or_create_key_file(&path).unwrap_err();
                let text = err.to_string();
                match err {
                    IdentityError::Permissions { path: p, mode } => {
                        assert_eq!(p, path);
                        assert_eq!(mode, bad);
                    }
                    other => panic!("expected Permissions for {bad:o}, got {other:?}"),
                }
                assert!(text.contains(&format!("(mode 0{bad:o})")), "{text}");
                assert!(
                    text.contains(&format!("chmod 600 {}", path.display())),
                    "{text}"
                );
                assert_eq!(mode(&path), bad, "the file is left alone");
            }
            let peer = write_key(&path, 0o600);
            assert_eq!(
                load_or_create_key_file(&path)
                    .unwrap()
                    .public()
                    .to_peer_id(),
                peer
            );
            let peer = write_key(&path, 0o400);
            assert_eq!(
                load_or_create_key_file(&path)
                    .unwrap()
                    .public()
                    .to_peer_id(),
                peer
            );
        }

        #[test]
        fn a_key_path_that_is_a_directory_is_refused() {
            let dir = TempDir::new("dir");
            let path = dir.0.join("node.key");
            std::fs::create_dir(&path).unwrap();
            match load_or_create_key_file(&path) {
                Err(IdentityError::NotAFile { path: p }) => assert_eq!(p, path),
                other => panic!("expected NotAFile, got {other:?}"),
            }
        }
    }
}
