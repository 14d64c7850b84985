//! The content-addressed artifact cache.
//!
//! Layout under the cache directory:
//!
//! ```text
//! CACHEDIR.TAG
//! v1/<wasmtime version>/<key[..2]>/<key>.cwasm   the artifact
//! v1/<wasmtime version>/<key[..2]>/<key>.json    its sha256, size, metadata and MAC
//! ```
//!
//! The key is the sha256 of the input's sha256, the wasmtime version, the target triple,
//! the CPU flags and the profile's sha256. Both files are written to a temporary file in
//! the same directory and renamed into place, so concurrent `pack` processes never see a
//! partial entry.
//!
//! Whoever writes the cache directory writes both files, so an entry is trusted only
//! when its `.json` carries an HMAC-SHA256, made with a [`CacheSecret`] that lives
//! outside the directory, over the cache key and the metadata (the artifact's sha256 and
//! size among it). An entry without a MAC that verifies is never used: it is a miss
//! ([`Lookup::Unauthenticated`]), and compiling the target replaces it. An authenticated
//! entry is used only after the artifact's sha256 and size match its `.json`, computed
//! on the copy the caller gets (a mismatch removes the entry, and the target is compiled
//! again). The `.json`'s modification time is the entry's last use, which
//! `prune --older-than` reads.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pack_engine_settings::WASMTIME_VERSION;
use sha2::{Digest, Sha256};

use super::Error;
use super::fsutil;
use super::secret::CacheSecret;

/// Version of the cache layout; part of every path.
const LAYOUT: &str = "v1";

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by pack.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// A cache directory, and the secret its entries are authenticated with.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// `None` for a handle that only counts and removes entries.
    secret: Option<Arc<CacheSecret>>,
    /// Whether compiles also use the function-level cache (see `functions.rs`).
    functions: bool,
    /// The size limit of one function cache segment, in bytes.
    function_limit: u64,
}

/// What `.json` beside an artifact records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryMeta {
    /// sha256 of the `.cwasm`, hex.
    pub sha256: String,
    pub size: u64,
    pub compatibility_hash: String,
    pub compile_time_ms: u64,
    pub target: String,
    pub triple: String,
    pub cpu_flags: Vec<String>,
    pub profile_sha256: String,
    pub source_sha256: String,
    pub wasmtime_version: String,
}

/// The `.json` file: the metadata and its MAC.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sidecar {
    #[serde(flatten)]
    meta: EntryMeta,
    /// HMAC-SHA256 (hex) of the cache key and `meta`, see [`CacheSecret`].
    #[serde(default)]
    mac: Option<String>,
}

/// The largest `.json` read (they are a few hundred bytes).
const MAX_SIDECAR: u64 = 64 * 1024;

/// What the MAC of an entry covers besides its key: its metadata, serialized.
fn mac_message(meta: &EntryMeta) -> Vec<u8> {
    serde_json::to_vec(meta).expect("metadata serializes")
}

/// A verified cache entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub meta: EntryMeta,
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    Hit(Box<Entry>),
    Miss,
    /// An authenticated entry was there but its artifact did not match its digest; it
    /// was removed.
    Corrupt {
        path: PathBuf,
        reason: String,
    },
    /// An entry was there but its MAC is missing or does not verify (another secret made
    /// it, or it was changed): it is not used, and storing the key replaces it.
    Unauthenticated {
        path: PathBuf,
        reason: String,
    },
}

/// Entries and bytes held for one wasmtime version.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub wasmtime_version: String,
    pub entries: u64,
    /// Every file's bytes, function cache segments included.
    pub bytes: u64,
    /// Function cache segments (one per target and engine settings).
    pub function_segments: u64,
    /// Their bytes (part of `bytes`).
    pub function_bytes: u64,
}

/// `pack cache info`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheInfo {
    pub path: PathBuf,
    pub entries: u64,
    pub bytes: u64,
    pub function_segments: u64,
    pub function_bytes: u64,
    pub versions: Vec<VersionInfo>,
}

/// What `prune` removes.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Entries not used for longer than this.
    pub older_than: Option<Duration>,
    /// Entries made by other wasmtime versions (which this pack cannot use).
    pub other_versions: bool,
}

/// What `prune` or `clear` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    pub entries: u64,
    /// Every file's bytes, function cache segments included.
    pub bytes: u64,
    /// Function cache segments removed.
    pub function_segments: u64,
}

/// The wasmtime version artifacts are compiled with. (wasmtime itself records only the
/// major version in an artifact, and loads it into any engine of that major version.)
pub fn wasmtime_version() -> &'static str {
    WASMTIME_VERSION
}

/// Temporary files older than this are left-overs of a process that died.
const STALE_TEMP: Duration = Duration::from_secs(3600);

impl Cache {
    /// The cache at `root`, whose entries are authenticated with `secret`.
    pub fn new(root: impl Into<PathBuf>, secret: CacheSecret) -> Cache {
        Cache {
            root: root.into(),
            secret: Some(Arc::new(secret)),
            functions: true,
            function_limit: super::functions::DEFAULT_SEGMENT_LIMIT,
        }
    }

    /// A handle for [`info`](Self::info), [`prune`](Self::prune) and
    /// [`clear`](Self::clear), which need no secret. It finds no entry and stores none.
    pub fn for_maintenance(root: impl Into<PathBuf>) -> Cache {
        Cache {
            root: root.into(),
            secret: None,
            functions: false,
            function_limit: super::functions::DEFAULT_SEGMENT_LIMIT,
        }
    }

    /// Turns the function-level cache on (the default) or off. Off, a target missing
    /// from the artifact cache is compiled whole, and no function is stored.
    pub fn with_functions(mut self, enabled: bool) -> Cache {
        self.functions = enabled;
        self
    }

    /// Sets the size limit of one function cache segment (one target and engine
    /// settings), in bytes.
    pub fn with_function_limit(mut self, bytes: u64) -> Cache {
        self.function_limit = bytes;
        self
    }

    /// Whether compiles use the function-level cache.
    pub fn functions_enabled(&self) -> bool {
        self.functions && self.secret.is_some()
    }

    pub(crate) fn function_limit(&self) -> u64 {
        self.function_limit
    }

    pub(crate) fn secret(&self) -> Option<&CacheSecret> {
        self.secret.as_deref()
    }

    /// The cache directory: `$PACK_CACHE_DIR`, else `$XDG_CACHE_HOME/pack`, else
    /// `~/.cache/pack` (`%LOCALAPPDATA%\pack\cache` on Windows).
    pub fn default_dir() -> Option<PathBuf> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(dir) = var("PACK_CACHE_DIR") {
            return Some(dir);
        }
        if let Some(dir) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
            return Some(dir.join("pack"));
        }
        if cfg!(windows)
            && let Some(dir) = var("LOCALAPPDATA")
        {
            return Some(dir.join("pack").join("cache"));
        }
        var("HOME").map(|home| home.join(".cache").join("pack"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn version_dir(&self) -> PathBuf {
        self.root.join(LAYOUT).join(wasmtime_version())
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let dir = self.version_dir().join(&key[..2]);
        (
            dir.join(format!("{key}.cwasm")),
            dir.join(format!("{key}.json")),
        )
    }

    /// Reads the `.json` of `key` and checks its MAC: the metadata, or what to return.
    fn authenticated_meta(&self, key: &str) -> Result<EntryMeta, Lookup> {
        let (artifact, sidecar) = self.paths(key);
        let Some(secret) = &self.secret else {
            return Err(Lookup::Miss);
        };
        let text = match read_regular(&sidecar, MAX_SIDECAR) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Lookup::Miss),
            Err(e) => {
                return Err(Lookup::Unauthenticated {
                    path: artifact,
                    reason: format!("unreadable metadata: {e}"),
                });
            }
        };
        let unauthenticated = |reason: String| {
            Err(Lookup::Unauthenticated {
                path: artifact.clone(),
                reason,
            })
        };
        let parsed: Sidecar = match serde_json::from_slice(&text) {
            Ok(parsed) => parsed,
            Err(e) => return unauthenticated(format!("unreadable metadata: {e}")),
        };
        let Some(mac) = &parsed.mac else {
            return unauthenticated("its metadata has no MAC".into());
        };
        if !secret.verify(key, &mac_message(&parsed.meta), mac) {
            return unauthenticated(
                "its MAC does not verify: it was made with another cache secret, or changed".into(),
            );
        }
        Ok(parsed.meta)
    }

    /// Looks `key` up and verifies its MAC and the artifact's digest, in place.
    pub(crate) fn lookup(&self, key: &str) -> Lookup {
        let meta = match self.authenticated_meta(key) {
            Ok(meta) => meta,
            Err(lookup) => return lookup,
        };
        let (artifact, sidecar) = self.paths(key);
        let checked = open_regular(&artifact).and_then(|mut file| sha256_reader(&mut file));
        if let Err(lookup) = self.check(&artifact, &sidecar, &meta, checked) {
            return lookup;
        }
        self.touch(&sidecar);
        Lookup::Hit(Box::new(Entry { meta }))
    }

    /// Looks `key` up and, when its MAC verifies, copies the artifact to `dst`
    /// (atomically, through a temporary file beside it; never a link into the cache).
    /// The digest is checked on the copy, so `dst` holds exactly the bytes that matched.
    /// `Err` is a failure to write `dst`.
    pub(crate) fn copy_out(&self, key: &str, dst: &Path) -> std::io::Result<Lookup> {
        let meta = match self.authenticated_meta(key) {
            Ok(meta) => meta,
            Err(lookup) => return Ok(lookup),
        };
        let (artifact, sidecar) = self.paths(key);
        let mut source = match open_regular(&artifact) {
            Ok(file) => file,
            Err(e) => return Ok(self.check(&artifact, &sidecar, &meta, Err(e)).unwrap_err()),
        };
        let mut tmp = fsutil::temp_file_beside(dst)?;
        // At most one byte more than recorded: enough to tell a longer file.
        std::io::copy(&mut (&mut source).take(meta.size + 1), tmp.as_file_mut())?;
        tmp.as_file_mut().rewind()?;
        let checked = sha256_reader(tmp.as_file_mut());
        if let Err(lookup) = self.check(&artifact, &sidecar, &meta, checked) {
            return Ok(lookup);
        }
        fsutil::persist(tmp, dst)?;
        self.touch(&sidecar);
        Ok(Lookup::Hit(Box::new(Entry { meta })))
    }

    /// Compares what hashing the artifact gave with `meta`; a mismatch discards the entry.
    fn check(
        &self,
        artifact: &Path,
        sidecar: &Path,
        meta: &EntryMeta,
        hashed: std::io::Result<(String, u64)>,
    ) -> Result<(), Lookup> {
        match hashed {
            Ok((digest, size)) if digest == meta.sha256 && size == meta.size => Ok(()),
            Ok((digest, size)) => Err(self.discard(
                artifact,
                sidecar,
                format!(
                    "artifact has sha256 {digest} ({size} bytes), expected {} ({} bytes)",
                    meta.sha256, meta.size
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Lookup::Miss),
            Err(e) => Err(self.discard(artifact, sidecar, e.to_string())),
        }
    }

    /// Records the use, for `prune --older-than`.
    fn touch(&self, sidecar: &Path) {
        if let Ok(file) = std::fs::File::options().append(true).open(sidecar) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Whether a verified entry for `key` is there (a corrupt one is removed, and is not).
    pub fn contains(&self, key: &str) -> bool {
        matches!(self.lookup(key), Lookup::Hit(_))
    }

    fn discard(&self, artifact: &Path, sidecar: &Path, reason: String) -> Lookup {
        let _ = std::fs::remove_file(sidecar);
        let _ = std::fs::remove_file(artifact);
        Lookup::Corrupt {
            path: artifact.to_path_buf(),
            reason,
        }
    }

    /// Stores an artifact under `key`, both files atomically, the metadata with its MAC
    /// (replacing whatever entry was there), and returns the artifact's path in the
    /// cache; `None` for a [maintenance](Self::for_maintenance) handle, which stores
    /// nothing. `meta` must describe `bytes`: the caller computed it from them.
    pub(crate) fn store(
        &self,
        key: &str,
        bytes: &[u8],
        meta: &EntryMeta,
    ) -> Result<Option<PathBuf>, Error> {
        let Some(secret) = &self.secret else {
            return Ok(None);
        };
        let (artifact, sidecar) = self.paths(key);
        let dir = artifact.parent().expect("entries are in a directory");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Cache { path, source }
        };
        fsutil::create_dir_all(dir).map_err(io(dir))?;
        let tag = self.root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = fsutil::write_atomic(&tag, CACHEDIR_TAG.as_bytes());
        }
        fsutil::write_atomic(&artifact, bytes).map_err(io(&artifact))?;
        let sidecar_json = Sidecar {
            meta: meta.clone(),
            mac: Some(secret.sign(key, &mac_message(meta))),
        };
        let json = serde_json::to_vec_pretty(&sidecar_json).expect("metadata serializes");
        fsutil::write_atomic(&sidecar, &json).map_err(io(&sidecar))?;
        Ok(Some(artifact))
    }

    /// Counts entries and bytes, per wasmtime version.
    pub fn info(&self) -> Result<CacheInfo, Error> {
        let mut versions = Vec::new();
        for (version, dir) in self.version_dirs()? {
            let mut info = VersionInfo {
                wasmtime_version: version,
                ..Default::default()
            };
            walk(&dir, &mut |path, meta| {
                info.bytes += meta.len();
                if path.extension().is_some_and(|e| e == "cwasm") {
                    info.entries += 1;
                } else if is_segment(path) {
                    info.function_segments += 1;
                    info.function_bytes += meta.len();
                }
            })
            .map_err(|source| Error::Cache {
                path: dir.clone(),
                source,
            })?;
            versions.push(info);
        }
        Ok(CacheInfo {
            path: self.root.clone(),
            entries: versions.iter().map(|v| v.entries).sum(),
            bytes: versions.iter().map(|v| v.bytes).sum(),
            function_segments: versions.iter().map(|v| v.function_segments).sum(),
            function_bytes: versions.iter().map(|v| v.function_bytes).sum(),
            versions,
        })
    }

    /// `(version, directory)` for every wasmtime version with entries.
    fn version_dirs(&self) -> Result<Vec<(String, PathBuf)>, Error> {
        let layout = self.root.join(LAYOUT);
        let entries = match std::fs::read_dir(&layout) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Cache {
                    path: layout,
                    source,
                });
            }
        };
        let mut dirs: Vec<(String, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        dirs.sort();
        Ok(dirs)
    }

    /// Removes entries unused for longer than `older_than`, and with `other_versions`
    /// every entry of another wasmtime version. Temporary files left by processes that
    /// died are removed too.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport, Error> {
        let mut report = PruneReport::default();
        let now = SystemTime::now();
        let age = |meta: &std::fs::Metadata| {
            meta.modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default()
        };
        for (version, dir) in self.version_dirs()? {
            if options.other_versions && version != wasmtime_version() {
                let (entries, bytes, segments) = count(&dir);
                std::fs::remove_dir_all(&dir).map_err(|source| Error::Cache {
                    path: dir.clone(),
                    source,
                })?;
                report.entries += entries;
                report.bytes += bytes;
                report.function_segments += segments;
                continue;
            }
            let mut doomed = Vec::new();
            walk(&dir, &mut |path, meta| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if name.starts_with(fsutil::TEMP_PREFIX) {
                    if age(meta) > STALE_TEMP {
                        doomed.push((path.to_path_buf(), meta.len(), Removed::Other));
                    }
                    return;
                }
                if is_segment(path) {
                    if options.older_than.is_some_and(|limit| age(meta) >= limit) {
                        doomed.push((path.to_path_buf(), meta.len(), Removed::Segment));
                    }
                    return;
                }
                if path.extension().is_some_and(|e| e == "json") {
                    let artifact = path.with_extension("cwasm");
                    let unused = options.older_than.is_some_and(|limit| age(meta) >= limit);
                    if unused {
                        let size = std::fs::metadata(&artifact).map(|m| m.len()).unwrap_or(0);
                        doomed.push((path.to_path_buf(), meta.len(), Removed::Other));
                        doomed.push((artifact, size, Removed::Entry));
                    }
                } else if path.extension().is_some_and(|e| e == "cwasm")
                    && !path.with_extension("json").exists()
                    && age(meta) > STALE_TEMP
                {
                    // An artifact whose metadata never got written.
                    doomed.push((path.to_path_buf(), meta.len(), Removed::Entry));
                }
            })
            .map_err(|source| Error::Cache {
                path: dir.clone(),
                source,
            })?;
            for (path, size, what) in doomed {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        report.bytes += size;
                        report.entries += u64::from(what == Removed::Entry);
                        report.function_segments += u64::from(what == Removed::Segment);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(Error::Cache { path, source }),
                }
            }
        }
        Ok(report)
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<PruneReport, Error> {
        let layout = self.root.join(LAYOUT);
        let (entries, bytes, function_segments) = count(&layout);
        match std::fs::remove_dir_all(&layout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Cache {
                    path: layout,
                    source,
                });
            }
        }
        Ok(PruneReport {
            entries,
            bytes,
            function_segments,
        })
    }
}

/// What a file removed by `prune` was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removed {
    /// An artifact (one entry).
    Entry,
    /// A function cache segment.
    Segment,
    /// Metadata, or a temporary file.
    Other,
}

/// Whether `path` is a function cache segment (`functions/<key>.fns`).
fn is_segment(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == super::functions::EXTENSION)
        && path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == super::functions::DIR)
}

/// `(artifacts, bytes, function segments)` under `dir`.
fn count(dir: &Path) -> (u64, u64, u64) {
    let (mut entries, mut bytes, mut segments) = (0, 0, 0);
    let _ = walk(dir, &mut |path, meta| {
        bytes += meta.len();
        if path.extension().is_some_and(|e| e == "cwasm") {
            entries += 1;
        } else if is_segment(path) {
            segments += 1;
        }
    });
    (entries, bytes, segments)
}

/// Calls `f` for every file under `dir` (which may not exist).
fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk(&path, f)?;
        } else {
            f(&path, &meta);
        }
    }
    Ok(())
}

/// Opens `path` for reading without following a symbolic link (nor blocking on a FIFO),
/// and only when it is a regular file.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::File::options();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The first `limit` bytes of the regular file at `path`; a longer file is an error.
fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// sha256 (hex) and size of what `reader` holds, read in chunks.
fn sha256_reader(reader: &mut impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(bytes: &[u8]) -> EntryMeta {
        EntryMeta {
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
            compatibility_hash: "c".into(),
            compile_time_ms: 1,
            target: "linux/amd64".into(),
            triple: "x86_64-unknown-linux-gnu".into(),
            cpu_flags: vec![],
            profile_sha256: "p".into(),
            source_sha256: "s".into(),
            wasmtime_version: wasmtime_version().into(),
        }
    }

    fn secret() -> CacheSecret {
        CacheSecret::from_value(b"the cache module's test secret").unwrap()
    }

    #[test]
    fn store_lookup_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), secret());
        let key = "ab".repeat(32);
        assert!(matches!(cache.lookup(&key), Lookup::Miss));
        let path = cache
            .store(&key, b"artifact", &meta(b"artifact"))
            .unwrap()
            .unwrap();
        assert!(path.starts_with(dir.path().join("v1").join(wasmtime_version())));
        assert!(dir.path().join("CACHEDIR.TAG").exists());
        let Lookup::Hit(entry) = cache.lookup(&key) else {
            panic!("expected a hit")
        };
        assert_eq!(entry.meta.size, 8);
        let info = cache.info().unwrap();
        assert_eq!((info.entries, info.versions.len()), (1, 1));
        // Copied out, not linked.
        let out = dir.path().join("out.cwasm");
        assert!(matches!(
            cache.copy_out(&key, &out).unwrap(),
            Lookup::Hit(_)
        ));
        assert_eq!(std::fs::read(&out).unwrap(), b"artifact");
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
            assert_ne!(ino(&out), ino(&path));
        }
        std::fs::remove_file(&out).unwrap();
        // Another secret does not authenticate it; the entry stays for `store` to replace.
        let stranger = Cache::new(dir.path(), CacheSecret::ephemeral());
        assert!(matches!(
            stranger.lookup(&key),
            Lookup::Unauthenticated { .. }
        ));
        assert!(path.exists());

        // A corrupt artifact is discarded, not used.
        std::fs::write(&path, b"artifacT").unwrap();
        assert!(matches!(cache.lookup(&key), Lookup::Corrupt { .. }));
        assert!(!path.exists());
        assert!(matches!(cache.lookup(&key), Lookup::Miss));
        // No temporary files are left behind.
        let mut files = 0;
        walk(dir.path(), &mut |p, _| {
            assert!(
                !p.to_string_lossy().contains(fsutil::TEMP_PREFIX),
                "{}",
                p.display()
            );
            files += 1;
        })
        .unwrap();
        assert_eq!(files, 1, "only CACHEDIR.TAG is left");
    }

    #[test]
    fn prune_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), secret());
        cache
            .store(&"01".repeat(32), b"one", &meta(b"one"))
            .unwrap();
        // An entry of another wasmtime version.
        let old = dir.path().join("v1").join("1.0.0").join("02");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(format!("{}.cwasm", "02".repeat(32))), b"old").unwrap();
        std::fs::write(old.join(format!("{}.json", "02".repeat(32))), b"{}").unwrap();
        assert_eq!(cache.info().unwrap().entries, 2);

        let kept = cache.prune(&PruneOptions::default()).unwrap();
        assert_eq!(kept.entries, 0);
        let report = cache
            .prune(&PruneOptions {
                other_versions: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(report.entries, 1);
        assert_eq!(cache.info().unwrap().entries, 1);

        let report = cache
            .prune(&PruneOptions {
                older_than: Some(Duration::ZERO),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(report.entries, 1);
        assert_eq!(cache.info().unwrap().entries, 0);

        cache
            .store(&"03".repeat(32), b"three", &meta(b"three"))
            .unwrap();
        assert_eq!(cache.clear().unwrap().entries, 1);
        assert_eq!(cache.info().unwrap().entries, 0);
    }
}
