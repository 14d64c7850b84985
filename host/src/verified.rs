//! The content store's record of verified blobs (`verified.json` in the store).
//!
//! A blob of the store whose sha256 was checked is recorded with the identity of its file
//! at that moment: device, inode, size, modification and status-change times (see
//! `docs/host.md`, "A store that verifies once"). A later start that opens the same blob
//! (through the same trusted open as always) and finds exactly that identity on the open
//! file uses it without hashing it again; anything else is hashed, as a blob never seen.
//!
//! The record is a hint that saves work, never a source of trust: it is read through a
//! trusted open (a file only the store's owner can write, like the blobs), a record that
//! cannot be read or parsed is an empty one, and it is replaced atomically (temporary
//! file, fsync, rename), so a crash leaves the old or the new one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The record's file name in the store's directory.
pub const FILE_NAME: &str = "verified.json";

/// The largest record read (about 100 bytes per blob).
const MAX_BYTES: u64 = 16 << 20;

/// What identifies a file's content without hashing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    /// `1`.
    version: u32,
    /// By blob digest (`sha256:<hex>`).
    blobs: BTreeMap<String, Identity>,
}

/// The store's record, loaded once per host.
#[derive(Debug)]
pub(crate) struct Verified {
    root: PathBuf,
    record: Record,
}

impl Verified {
    /// Reads the record of the store at `root` (empty when it is missing, cannot be
    /// trusted, or does not parse).
    pub(crate) fn load(root: &Path) -> Self {
        let record = pack_fs::open_trusted(root, Path::new(FILE_NAME))
            .ok()
            .and_then(|file| {
                let mut bytes = Vec::new();
                file.take(MAX_BYTES).read_to_end(&mut bytes).ok()?;
                serde_json::from_slice::<Record>(&bytes).ok()
            })
            .filter(|r| r.version == 1)
            .unwrap_or_default();
        Self {
            root: root.to_path_buf(),
            record,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `digest` was verified while its file had `identity`.
    pub(crate) fn knows(&self, digest: &str, identity: &Identity) -> bool {
        self.record.blobs.get(digest) == Some(identity)
    }

    /// Records `digest` as verified with `identity`, and writes the record (atomically).
    /// A record that cannot be written is not an error: the next start hashes again.
    pub(crate) fn remember(&mut self, digest: &str, identity: Identity) {
        if self.knows(digest, &identity) {
            return;
        }
        // Blobs removed from the store are dropped from the record.
        let blobs = self.root.join("blobs").join("sha256");
        self.record.blobs.retain(|d, _| {
            d.strip_prefix("sha256:")
                .is_some_and(|hex| blobs.join(hex).exists())
        });
        self.record.version = 1;
        self.record.blobs.insert(digest.to_string(), identity);
        if let Ok(bytes) = serde_json::to_vec(&self.record) {
            let _ = pack_fs::write_atomic(&self.root.join(FILE_NAME), &bytes, pack_fs::FILE_MODE);
        }
    }
}
