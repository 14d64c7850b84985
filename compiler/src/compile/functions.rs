//! The function-level compile cache: Cranelift's incremental compilation cache, kept in
//! pack's cache directory.
//!
//! When a component is not in the whole-artifact cache, wasmtime compiles it function by
//! function, and asks a [`wasmtime::CacheStore`] first for each one: the key is a sha256
//! over the function's Cranelift IR (without its name and the indices it calls, which
//! are fixed up afterwards) and the ISA with its flags; the value is the compiled code
//! before relocation. Two versions of an app whose code did not change (an interpreter
//! with another script in its data) share every function.
//!
//! Entries are packed into one *segment* file per target and engine settings, rather
//! than a file per function (a Python component has tens of thousands of functions):
//!
//! ```text
//! v1/<wasmtime version>/functions/<segment key>.fns
//!
//! "PACKFNC1"                  magic
//! segment key                 32 bytes (sha256, see segment_key)
//! count                       u32, little endian
//! count records:              key (32 bytes), length (u32 LE), value
//! MAC                         64 hex digits: HMAC-SHA256 over everything before it
//! ```
//!
//! The MAC is made with the local cache's [`CacheSecret`], under a cache key of its own
//! (`functions/<segment key>`), so a segment is authenticated like an artifact entry: a
//! segment whose MAC does not verify (another secret made it, or it was changed) is not
//! read at all, which makes every function a miss, and the next compile replaces it. The
//! whole file is read and checked before any record is parsed, and Cranelift only ever
//! sees values from a segment that verified.
//!
//! A segment is loaded when a target is compiled, and written back (atomically, with a
//! new MAC) when the compile produced functions it did not hold: first the functions
//! this compile used or produced, then older ones in the order they were, up to the
//! size limit ([`DEFAULT_SEGMENT_LIMIT`]), so those unused the longest go first. Its
//! modification time is its last use, which `pack cache prune --older-than` reads. Two
//! processes compiling the same target at once each write their own segment: the last
//! one wins, and the other's new functions are compiled again next time.
//!
//! The body (everything before the MAC) is what the shared cache publishes: it is
//! signed there, and admitted into the local cache only after its signature verified
//! ([`Cache::admit_functions`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::cache::{Cache, open_regular};
use super::secret::CacheSecret;
use super::{Error, Profile, Target, fsutil};

/// The default size limit of one segment (one target and engine settings), in bytes.
pub const DEFAULT_SEGMENT_LIMIT: u64 = 512 * 1024 * 1024;

const MAGIC: &[u8; 8] = b"PACKFNC1";
const HEADER_LEN: usize = 8 + 32 + 4;
const MAC_LEN: usize = 64;
/// The largest value of one function (Cranelift's output for one function).
const MAX_VALUE: u32 = 256 * 1024 * 1024;

/// The directory of segments, under a wasmtime version's directory.
pub(crate) const DIR: &str = "functions";
/// The extension of segment files.
pub(crate) const EXTENSION: &str = "fns";

/// What the function cache did for one target. `compiled + cached` is the number of
/// functions of the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStats {
    /// Functions not found in the function cache as it was before this compile:
    /// compiled by Cranelift, or identical to one compiled earlier in the same compile.
    pub compiled: u64,
    /// Functions taken from the function cache (stored by an earlier compile) instead.
    pub cached: u64,
}

/// The key of the segment of `target` with `profile`: sha256 (hex) over the wasmtime
/// version, the triple, the CPU flags and the profile's digest: every setting of the
/// engine that changes generated code.
pub fn segment_key(target: &Target, profile: &Profile) -> String {
    super::engine_key("pack-function-cache v1", "", target, profile)
}

/// The cache key the MAC of a segment is made under (distinct from every artifact key).
fn mac_key(segment_key: &str) -> String {
    format!("functions/{segment_key}")
}

/// Why a segment body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("it is not a function cache segment (bad magic)")]
    Magic,
    #[error("it is the segment {found}, expected {expected}")]
    Key { found: String, expected: String },
    #[error("it is truncated or malformed at byte {at}")]
    Malformed { at: usize },
    #[error("it holds the function {key} twice")]
    Duplicate { key: String },
}

/// One record of a segment body: a function's key and where its value lies in the body.
type Record = ([u8; 32], std::ops::Range<usize>);

/// The records of a segment body, in file order. The body must be authenticated (local
/// MAC) or verified (a signature) before it is parsed.
fn parse(body: &[u8], expected: &str) -> Result<Vec<Record>, SegmentError> {
    if body.len() < HEADER_LEN || &body[..8] != MAGIC {
        return Err(SegmentError::Magic);
    }
    let found = hex::encode(&body[8..40]);
    if found != expected {
        return Err(SegmentError::Key {
            found,
            expected: expected.to_string(),
        });
    }
    let count = u32::from_le_bytes(body[40..44].try_into().expect("4 bytes"));
    let mut at = HEADER_LEN;
    let mut records = Vec::with_capacity((count as usize).min(body.len() / 36));
    let mut seen = HashSet::with_capacity(records.capacity());
    for _ in 0..count {
        let Some(head) = body.get(at..at + 36) else {
            return Err(SegmentError::Malformed { at });
        };
        let key: [u8; 32] = head[..32].try_into().expect("32 bytes");
        let len = u32::from_le_bytes(head[32..].try_into().expect("4 bytes"));
        let start = at + 36;
        let end = start + len as usize;
        if len > MAX_VALUE || end > body.len() {
            return Err(SegmentError::Malformed { at });
        }
        if !seen.insert(key) {
            return Err(SegmentError::Duplicate {
                key: hex::encode(key),
            });
        }
        records.push((key, start..end));
        at = end;
    }
    if at != body.len() {
        return Err(SegmentError::Malformed { at });
    }
    Ok(records)
}

/// Writes records as a segment body to `out`, also feeding them to `mac`.
struct BodyWriter<W: Write> {
    out: W,
    mac: Option<super::secret::MacState>,
}

impl<W: Write> BodyWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(mac) = &mut self.mac {
            mac.update(bytes);
        }
        self.out.write_all(bytes)
    }

    fn body(&mut self, segment_key: &str, records: &[(&[u8; 32], &[u8])]) -> std::io::Result<()> {
        self.write(MAGIC)?;
        self.write(&hex::decode(segment_key).expect("segment keys are sha256 hex"))?;
        self.write(
            &u32::try_from(records.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        )?;
        for (key, value) in records {
            self.write(&key[..])?;
            self.write(&(value.len() as u32).to_le_bytes())?;
            self.write(value)?;
        }
        Ok(())
    }
}

/// A target's function cache during one compile: the segment as loaded (authenticated)
/// and what the compile adds. Shared by wasmtime's compile threads.
#[derive(Debug)]
pub(crate) struct FunctionStore {
    segment_key: String,
    path: PathBuf,
    /// The authenticated body of the segment as loaded (empty when there was none).
    loaded: Vec<u8>,
    index: HashMap<[u8; 32], std::ops::Range<usize>>,
    /// Keys of `loaded` in file order.
    order: Vec<[u8; 32]>,
    used: Mutex<HashSet<[u8; 32]>>,
    fresh: Mutex<HashMap<[u8; 32], Vec<u8>>>,
    /// Lookups found in `loaded`.
    hits: AtomicU64,
    /// Lookups found in `fresh`: a function identical to one this compile produced.
    duplicates: AtomicU64,
    inserts: AtomicU64,
    /// Whether the file on disk must be replaced even when nothing is new (it did not
    /// authenticate, or was malformed).
    replace: bool,
}

/// What loading a segment found worth a warning.
pub(crate) enum LoadWarning {
    /// The segment's MAC does not verify; it is not used.
    Unauthenticated { path: PathBuf, reason: String },
}

impl wasmtime::CacheStore for FunctionStore {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let key: [u8; 32] = key.try_into().ok()?;
        if let Some(range) = self.index.get(&key) {
            self.used.lock().expect("used set").insert(key);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(Cow::Borrowed(&self.loaded[range.clone()]));
        }
        // A function identical to one this compile already produced: not from the
        // cache as it was, so counted with the compiled ones.
        let fresh = self.fresh.lock().expect("fresh map");
        let found = fresh.get(&key).map(|value| Cow::Owned(value.clone()));
        if found.is_some() {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        self.inserts.fetch_add(1, Ordering::Relaxed);
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            return false;
        };
        if value.len() > MAX_VALUE as usize {
            return false;
        }
        self.fresh.lock().expect("fresh map").insert(key, value);
        true
    }
}

impl FunctionStore {
    /// How many functions were compiled, and how many came from the cache.
    pub(crate) fn stats(&self) -> FunctionStats {
        // Cranelift inserts what it compiled after a miss (or after a value it found
        // did not deserialize, which is then counted twice: it does not happen with
        // authenticated entries of the same Cranelift).
        FunctionStats {
            compiled: self.inserts.load(Ordering::Relaxed)
                + self.duplicates.load(Ordering::Relaxed),
            cached: self.hits.load(Ordering::Relaxed),
        }
    }

    /// Writes the segment back when this compile added to it (or it must be replaced),
    /// else records its use. Keeps what this compile used or made first, then older
    /// functions, within `limit` bytes.
    pub(crate) fn save(&self, secret: &CacheSecret, limit: u64) -> Result<(), Error> {
        let fresh = self.fresh.lock().expect("fresh map");
        let used = self.used.lock().expect("used set");
        if fresh.is_empty() && !self.replace {
            touch(&self.path);
            return Ok(());
        }
        let mut current: Vec<(&[u8; 32], &[u8])> = fresh
            .iter()
            .map(|(k, v)| (k, v.as_slice()))
            .chain(
                used.iter()
                    .map(|k| (k, &self.loaded[self.index[k].clone()])),
            )
            .collect();
        current.sort_by(|a, b| a.0.cmp(b.0));
        let older = self
            .order
            .iter()
            .filter(|k| !used.contains(*k) && !fresh.contains_key(*k))
            .map(|k| (k, &self.loaded[self.index[k].clone()]));
        let records = within_limit(current.into_iter().chain(older), limit);
        write_segment(&self.path, &self.segment_key, &records, secret)
    }
}

/// The records that fit in `limit` bytes of segment, in order.
fn within_limit<'a>(
    records: impl Iterator<Item = (&'a [u8; 32], &'a [u8])>,
    limit: u64,
) -> Vec<(&'a [u8; 32], &'a [u8])> {
    let mut size = (HEADER_LEN + MAC_LEN) as u64;
    let mut kept = Vec::new();
    for record in records {
        size += 36 + record.1.len() as u64;
        if size > limit {
            break;
        }
        kept.push(record);
    }
    kept
}

/// Writes a segment atomically: the body and its MAC, through a temporary file.
fn write_segment(
    path: &Path,
    segment_key: &str,
    records: &[(&[u8; 32], &[u8])],
    secret: &CacheSecret,
) -> Result<(), Error> {
    let io = |source| Error::Cache {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().expect("segments are in a directory");
    fsutil::create_dir_all(dir).map_err(io)?;
    let mut tmp = fsutil::temp_file_beside(path).map_err(io)?;
    {
        let mut writer = BodyWriter {
            out: std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut()),
            mac: Some(secret.begin(&mac_key(segment_key))),
        };
        writer.body(segment_key, records).map_err(io)?;
        let mac = writer.mac.take().expect("a MAC").finish();
        writer.out.write_all(mac.as_bytes()).map_err(io)?;
        writer.out.flush().map_err(io)?;
    }
    fsutil::persist(tmp, path).map_err(io)
}

/// Records the use of a segment, for `prune --older-than`.
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Reads the regular file at `path`, at most `limit` bytes (`None` when it is larger).
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// The authenticated body of the segment at `path`: `Ok(None)` when there is none.
fn read_authenticated(
    path: &Path,
    segment_key: &str,
    secret: &CacheSecret,
    limit: u64,
) -> Result<Option<Vec<u8>>, String> {
    let bytes = match read_bounded(path, limit + (HEADER_LEN + MAC_LEN) as u64) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(format!("it is larger than the limit of {limit} bytes")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("unreadable: {e}")),
    };
    if bytes.len() < MAC_LEN {
        return Err("it has no MAC".into());
    }
    let (body, mac) = bytes.split_at(bytes.len() - MAC_LEN);
    let mac = std::str::from_utf8(mac).unwrap_or("");
    if !secret.verify(&mac_key(segment_key), body, mac) {
        return Err(
            "its MAC does not verify: it was made with another cache secret, or changed".into(),
        );
    }
    let mut bytes = bytes;
    bytes.truncate(bytes.len() - MAC_LEN);
    Ok(Some(bytes))
}

impl Cache {
    fn segments_dir(&self) -> PathBuf {
        self.version_dir().join(DIR)
    }

    /// The path of the segment `segment_key`.
    pub fn segment_path(&self, segment_key: &str) -> PathBuf {
        self.segments_dir()
            .join(format!("{segment_key}.{EXTENSION}"))
    }

    /// Loads the function cache of `target` with `profile` for a compile: `None` when the
    /// function cache is off (or this handle has no secret).
    pub(crate) fn function_store(
        &self,
        target: &Target,
        profile: &Profile,
    ) -> Option<(FunctionStore, Option<LoadWarning>)> {
        if !self.functions_enabled() {
            return None;
        }
        let secret = self.secret()?;
        let segment_key = segment_key(target, profile);
        let path = self.segment_path(&segment_key);
        let mut warning = None;
        let mut replace = false;
        let (loaded, records) =
            match read_authenticated(&path, &segment_key, secret, self.function_limit()) {
                Ok(Some(body)) => match parse(&body, &segment_key) {
                    Ok(records) => (body, records),
                    Err(e) => {
                        replace = true;
                        warning = Some(LoadWarning::Unauthenticated {
                            path: path.clone(),
                            reason: e.to_string(),
                        });
                        (Vec::new(), Vec::new())
                    }
                },
                Ok(None) => (Vec::new(), Vec::new()),
                Err(reason) => {
                    replace = true;
                    warning = Some(LoadWarning::Unauthenticated {
                        path: path.clone(),
                        reason,
                    });
                    (Vec::new(), Vec::new())
                }
            };
        let order: Vec<[u8; 32]> = records.iter().map(|(k, _)| *k).collect();
        let store = FunctionStore {
            segment_key,
            path,
            loaded,
            index: records.into_iter().collect(),
            order,
            used: Mutex::new(HashSet::new()),
            fresh: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            replace,
        };
        Some((store, warning))
    }

    /// The body of the local segment of `target` with `profile` (what a shared cache
    /// publishes) and how many functions it holds, when it authenticates.
    pub fn function_segment(&self, target: &Target, profile: &Profile) -> Option<(Vec<u8>, usize)> {
        let secret = self.secret()?;
        let segment_key = segment_key(target, profile);
        let path = self.segment_path(&segment_key);
        let body = read_authenticated(&path, &segment_key, secret, self.function_limit())
            .ok()
            .flatten()?;
        let count = parse(&body, &segment_key).ok()?.len();
        Some((body, count))
    }

    /// Whether an authenticated segment of `target` with `profile` is there.
    pub fn has_function_segment(&self, target: &Target, profile: &Profile) -> bool {
        self.function_segment(target, profile).is_some()
    }

    /// Merges a segment body from elsewhere into the local segment of `target` with
    /// `profile`, which then carries the local MAC. The caller must have verified where
    /// the body comes from (a signature over it) first. Local functions are kept first;
    /// the size limit applies. Returns how many functions were added.
    pub fn admit_functions(
        &self,
        target: &Target,
        profile: &Profile,
        body: &[u8],
    ) -> Result<usize, AdmitFunctionsError> {
        let Some(secret) = self.secret() else {
            return Ok(0);
        };
        let segment_key = segment_key(target, profile);
        let incoming = parse(body, &segment_key)?;
        let path = self.segment_path(&segment_key);
        let local = read_authenticated(&path, &segment_key, secret, self.function_limit())
            .ok()
            .flatten()
            .unwrap_or_default();
        let local_records = parse(&local, &segment_key).unwrap_or_default();
        let known: HashSet<[u8; 32]> = local_records.iter().map(|(k, _)| *k).collect();
        let added: Vec<_> = incoming
            .iter()
            .filter(|(k, _)| !known.contains(k))
            .collect();
        let count = added.len();
        if count == 0 {
            return Ok(0);
        }
        let records = within_limit(
            local_records
                .iter()
                .map(|(k, r)| (k, &local[r.clone()]))
                .chain(added.into_iter().map(|(k, r)| (k, &body[r.clone()]))),
            self.function_limit(),
        );
        write_segment(&path, &segment_key, &records, secret)?;
        Ok(count)
    }
}

/// Why a segment from elsewhere was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AdmitFunctionsError {
    #[error("the function cache segment does not fit: {0}")]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Cache(#[from] Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::CacheStore;

    fn secret() -> CacheSecret {
        CacheSecret::from_value(b"the function cache's test secret").unwrap()
    }

    fn target() -> Target {
        super::super::resolve_targets(&["linux/amd64"], None)
            .unwrap()
            .remove(0)
    }

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn segments_round_trip_and_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), secret());
        let profile = Profile::default();
        let (store, warning) = cache.function_store(&target(), &profile).unwrap();
        assert!(warning.is_none());
        // As Cranelift does: a lookup, then the insertion of what it compiled.
        assert!(store.get(&key(1)).is_none());
        assert!(store.insert(&key(1), b"one".to_vec()));
        assert!(store.get(&key(2)).is_none());
        assert!(store.insert(&key(2), b"two".to_vec()));
        // A function compiled twice in one compile is found the second time, and
        // counted as compiled: it was not in the cache before this compile.
        assert_eq!(store.get(&key(2)).as_deref(), Some(&b"two"[..]));
        assert_eq!(
            store.stats(),
            FunctionStats {
                compiled: 3,
                cached: 0
            }
        );
        store.save(&secret(), DEFAULT_SEGMENT_LIMIT).unwrap();

        let (again, warning) = cache.function_store(&target(), &profile).unwrap();
        assert!(warning.is_none());
        assert_eq!(again.get(&key(1)).as_deref(), Some(&b"one"[..]));
        assert!(again.get(&key(3)).is_none());
        assert_eq!(
            again.stats(),
            FunctionStats {
                compiled: 0,
                cached: 1
            }
        );
        let (body, count) = cache.function_segment(&target(), &profile).unwrap();
        assert_eq!(count, 2);

        // Another secret: nothing is read, and the next save replaces the segment.
        let stranger = Cache::new(dir.path(), CacheSecret::ephemeral());
        let (store, warning) = stranger.function_store(&target(), &profile).unwrap();
        assert!(matches!(warning, Some(LoadWarning::Unauthenticated { .. })));
        assert!(store.get(&key(1)).is_none());

        // A changed value does not authenticate.
        let path = cache.segment_path(&segment_key(&target(), &profile));
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(3).position(|w| w == b"one").unwrap();
        bytes[at] = b'O';
        std::fs::write(&path, &bytes).unwrap();
        let (store, warning) = cache.function_store(&target(), &profile).unwrap();
        assert!(matches!(warning, Some(LoadWarning::Unauthenticated { .. })));
        assert!(store.get(&key(1)).is_none());
        assert!(cache.function_segment(&target(), &profile).is_none());

        // The published body is admitted into an empty cache elsewhere.
        let other = tempfile::tempdir().unwrap();
        let elsewhere = Cache::new(other.path(), CacheSecret::ephemeral());
        assert_eq!(
            elsewhere
                .admit_functions(&target(), &profile, &body)
                .unwrap(),
            2
        );
        let (store, _) = elsewhere.function_store(&target(), &profile).unwrap();
        assert_eq!(store.get(&key(2)).as_deref(), Some(&b"two"[..]));
        // Another target's segment is refused.
        let arm = super::super::resolve_targets(&["linux/arm64"], None)
            .unwrap()
            .remove(0);
        assert!(matches!(
            elsewhere.admit_functions(&arm, &profile, &body),
            Err(AdmitFunctionsError::Segment(SegmentError::Key { .. }))
        ));
        // A truncated body is refused.
        assert!(
            elsewhere
                .admit_functions(&target(), &profile, &body[..body.len() - 1])
                .is_err()
        );
    }

    #[test]
    fn segments_stay_within_their_limit_keeping_what_was_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), secret());
        let profile = Profile::default();
        let (store, _) = cache.function_store(&target(), &profile).unwrap();
        for n in 0..10 {
            store.insert(&key(n), vec![n; 100]);
        }
        store.save(&secret(), DEFAULT_SEGMENT_LIMIT).unwrap();
        // The next compile uses 2 of them and makes 1; the limit holds 4 records.
        let (store, _) = cache.function_store(&target(), &profile).unwrap();
        assert!(store.get(&key(7)).is_some());
        assert!(store.get(&key(8)).is_some());
        store.insert(&key(20), vec![20; 100]);
        let limit = (HEADER_LEN + MAC_LEN + 4 * 136) as u64;
        store.save(&secret(), limit).unwrap();
        let path = cache.segment_path(&segment_key(&target(), &profile));
        assert!(std::fs::metadata(&path).unwrap().len() <= limit);
        let (store, _) = cache.function_store(&target(), &profile).unwrap();
        for n in [7, 8, 20] {
            assert!(store.get(&key(n)).is_some(), "{n}");
        }
        assert_eq!(store.index.len(), 4);
    }
}
