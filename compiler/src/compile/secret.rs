//! The secret that authenticates local compile cache entries.
//!
//! Whoever can write the cache directory can write an artifact and its metadata alike
//! (a cache restored from another CI job, a shared runner), so a digest beside the
//! artifact proves nothing. Every entry carries an HMAC-SHA256 over its metadata (the
//! cache key, the artifact's sha256 and size, and what the key was derived from), made
//! with a secret that lives outside the cache directory:
//!
//! - [`SECRET_ENV`] (`PACK_CACHE_SECRET`) when it is set and not empty: any string of at
//!   least [`MIN_SECRET_LEN`] bytes, e.g. a CI secret (`openssl rand -hex 32`);
//! - else a key file of 32 random bytes, [`CacheSecret::default_file`]
//!   (`$XDG_CONFIG_HOME/pack/cache.key`, else `~/.config/pack/cache.key`), created on
//!   first use with mode 0600 in a directory created with mode 0700. A key file that is
//!   not a regular file, is readable or writable by group or others, or is owned by
//!   another user is refused.
//!
//! An entry whose MAC is missing or does not verify (it was written with another secret,
//! or changed since) is never used: the compiler treats it as a miss.

use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The environment variable that holds the cache secret.
pub const SECRET_ENV: &str = "PACK_CACHE_SECRET";

/// The shortest secret accepted from [`SECRET_ENV`], in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The length of a key file, in bytes.
const KEY_FILE_LEN: usize = 32;

/// Where a [`CacheSecret`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    /// [`SECRET_ENV`].
    Environment,
    /// A key file.
    File(PathBuf),
    /// Random, for this process only: what it writes no later process can use.
    Ephemeral,
}

/// The key of the local cache's MACs. Its `Debug` does not show it, and it is zeroed
/// when dropped.
#[derive(Clone)]
pub struct CacheSecret {
    key: Zeroizing<Vec<u8>>,
    origin: SecretOrigin,
}

impl std::fmt::Debug for CacheSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSecret")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why no secret could be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "{} is {len} bytes long; a cache secret needs at least {}",
        SECRET_ENV,
        MIN_SECRET_LEN
    )]
    TooShort { len: usize },

    #[error("no directory for the cache key: neither XDG_CONFIG_HOME (absolute) nor HOME is set")]
    NoConfigDir,

    #[error("the cache key `{path}` is not a regular file")]
    NotAFile { path: PathBuf },

    #[error("the cache key `{path}` is accessible by group or others (mode {mode:03o})")]
    Insecure { path: PathBuf, mode: u32 },

    #[error("the cache key `{path}` is owned by uid {owner}, not by this user (uid {user})")]
    NotOwned {
        path: PathBuf,
        owner: u32,
        user: u32,
    },

    #[error("the cache key `{path}` holds {len} bytes, not {}", KEY_FILE_LEN)]
    Malformed { path: PathBuf, len: usize },

    #[error("cannot read or create the cache key `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SecretError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            SecretError::TooShort { .. } => {
                format!("use a random value, e.g. `{SECRET_ENV}=$(openssl rand -hex 32)`")
            }
            SecretError::Insecure { path, .. } => format!(
                "`chmod 600 {}`, or remove it (a new key is made; existing cache entries are \
                 then compiled again)",
                path.display()
            ),
            SecretError::NotOwned { path, .. }
            | SecretError::NotAFile { path }
            | SecretError::Malformed { path, .. } => format!(
                "remove `{}` (a new key is made; existing cache entries are then compiled \
                 again), or set {SECRET_ENV}",
                path.display()
            ),
            SecretError::NoConfigDir | SecretError::Io { .. } => {
                format!("set {SECRET_ENV}, or XDG_CONFIG_HOME to a writable directory")
            }
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

impl CacheSecret {
    /// A secret from a value (what [`SECRET_ENV`] holds), of at least
    /// [`MIN_SECRET_LEN`] bytes.
    pub fn from_value(value: &[u8]) -> Result<Self, SecretError> {
        if value.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort { len: value.len() });
        }
        Ok(Self {
            key: Zeroizing::new(value.to_vec()),
            origin: SecretOrigin::Environment,
        })
    }

    /// A random secret for this process only.
    pub fn ephemeral() -> Self {
        Self {
            key: Zeroizing::new(random_key().to_vec()),
            origin: SecretOrigin::Ephemeral,
        }
    }

    /// [`SECRET_ENV`] when it is set and not empty, else the key file
    /// [`default_file`](Self::default_file), created when missing.
    pub fn from_environment() -> Result<Self, SecretError> {
        if let Some(value) = std::env::var_os(SECRET_ENV).filter(|v| !v.is_empty()) {
            return Self::from_value(value.as_encoded_bytes());
        }
        let path = Self::default_file().ok_or(SecretError::NoConfigDir)?;
        Self::load_or_create(&path)
    }

    /// `$XDG_CONFIG_HOME/pack/cache.key` (when XDG_CONFIG_HOME is absolute), else
    /// `~/.config/pack/cache.key` (`%APPDATA%\pack\cache.key` on Windows).
    pub fn default_file() -> Option<PathBuf> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let config = var("XDG_CONFIG_HOME")
            .filter(|d| d.is_absolute())
            .or_else(|| if cfg!(windows) { var("APPDATA") } else { None })
            .or_else(|| var("HOME").map(|home| home.join(".config")))?;
        Some(config.join("pack").join("cache.key"))
    }

    /// Reads the key file at `path`, or creates it (32 random bytes, mode 0600, its
    /// directory 0700) when it does not exist. Concurrent processes agree on one key: the
    /// file is put in place only if it is still missing.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        match read_key_file(path) {
            Err(SecretError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io)?;
        let key = random_key();
        match pack_fs::write_new(path, &key[..], pack_fs::PRIVATE_FILE_MODE) {
            Ok(()) => Ok(Self {
                key: Zeroizing::new(key.to_vec()),
                origin: SecretOrigin::File(path.to_path_buf()),
            }),
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
            Err(e) => Err(io(e)),
        }
    }

    /// Where the secret came from.
    pub fn origin(&self) -> &SecretOrigin {
        &self.origin
    }

    fn hmac(&self, cache_key: &str, message: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any size");
        mac.update(b"pack-cache-entry v1\0");
        mac.update(cache_key.as_bytes());
        mac.update(b"\0");
        mac.update(message);
        mac
    }

    /// A MAC under `cache_key` computed over data given piece by piece; the same as
    /// [`sign`](Self::sign) of the pieces joined.
    pub(crate) fn begin(&self, cache_key: &str) -> MacState {
        MacState(self.hmac(cache_key, b""))
    }

    /// The MAC (hex) of an entry's metadata `message` under `cache_key`.
    pub(crate) fn sign(&self, cache_key: &str, message: &[u8]) -> String {
        hex::encode(self.hmac(cache_key, message).finalize().into_bytes())
    }

    /// Whether `mac` (hex) is the MAC of `message` under `cache_key` (compared in
    /// constant time).
    pub(crate) fn verify(&self, cache_key: &str, message: &[u8], mac: &str) -> bool {
        let Ok(bytes) = hex::decode(mac) else {
            return false;
        };
        self.hmac(cache_key, message).verify_slice(&bytes).is_ok()
    }
}

/// A MAC being computed, see [`CacheSecret::begin`].
pub(crate) struct MacState(HmacSha256);

impl MacState {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The MAC, hex.
    pub(crate) fn finish(self) -> String {
        hex::encode(self.0.finalize().into_bytes())
    }
}

fn random_key() -> Zeroizing<[u8; KEY_FILE_LEN]> {
    use rand_core::RngCore;
    let mut key = Zeroizing::new([0u8; KEY_FILE_LEN]);
    rand_core::OsRng.fill_bytes(&mut key[..]);
    key
}

/// Opens the key file without following a symbolic link and checks it before reading.
fn read_key_file(path: &Path) -> Result<CacheSecret, SecretError> {
    let io = |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::File::options();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(SecretError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(SecretError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let user = unsafe { libc::geteuid() };
        if meta.uid() != user {
            return Err(SecretError::NotOwned {
                path: path.to_path_buf(),
                owner: meta.uid(),
                user,
            });
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Insecure {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let mut key = Zeroizing::new(Vec::with_capacity(KEY_FILE_LEN + 1));
    file.take(KEY_FILE_LEN as u64 + 1)
        .read_to_end(&mut key)
        .map_err(io)?;
    if key.len() != KEY_FILE_LEN {
        return Err(SecretError::Malformed {
            path: path.to_path_buf(),
            len: key.len(),
        });
    }
    Ok(CacheSecret {
        key,
        origin: SecretOrigin::File(path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_depend_on_the_secret_the_key_and_the_message() {
        let one = CacheSecret::from_value(b"0123456789abcdef").unwrap();
        let two = CacheSecret::from_value(b"0123456789abcdeF").unwrap();
        let mac = one.sign("k", b"meta");
        assert!(one.verify("k", b"meta", &mac));
        assert!(!two.verify("k", b"meta", &mac));
        assert!(!one.verify("j", b"meta", &mac));
        assert!(!one.verify("k", b"metA", &mac));
        assert!(!one.verify("k", b"meta", "not hex"));
        assert!(!one.verify("k", b"meta", ""));
        assert!(matches!(
            CacheSecret::from_value(b"short"),
            Err(SecretError::TooShort { len: 5 })
        ));
        assert!(!format!("{one:?}").contains("0123"), "{one:?}");
    }

    #[test]
    fn the_key_file_is_made_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/pack/cache.key");
        let made = CacheSecret::load_or_create(&path).unwrap();
        let again = CacheSecret::load_or_create(&path).unwrap();
        assert_eq!(made.sign("k", b"m"), again.sign("k", b"m"));
        assert_eq!(std::fs::read(&path).unwrap().len(), KEY_FILE_LEN);
        let other = dir.path().join("other/cache.key");
        let different = CacheSecret::load_or_create(&other).unwrap();
        assert_ne!(made.sign("k", b"m"), different.sign("k", b"m"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);

            // Readable by others: refused, and left alone.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = CacheSecret::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, SecretError::Insecure { mode: 0o644, .. }),
                "{err}"
            );
            assert!(err.hint().contains("chmod 600"), "{}", err.hint());

            // A symbolic link is not followed.
            let link = dir.path().join("link.key");
            std::os::unix::fs::symlink(&other, &link).unwrap();
            let err = CacheSecret::load_or_create(&link).unwrap_err();
            assert!(matches!(err, SecretError::NotAFile { .. }), "{err}");
        }
        std::fs::write(&other, b"short").unwrap();
        let err = CacheSecret::load_or_create(&other).unwrap_err();
        assert!(
            matches!(err, SecretError::Malformed { len: 5, .. }),
            "{err}"
        );
    }
}
