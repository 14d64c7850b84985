//! An OCI image layout directory (image-spec v1.1 `image-layout.md`):
//!
//! ```text
//! <root>/oci-layout          {"imageLayoutVersion":"1.0.0"}
//! <root>/index.json          an image index; tagged entries carry
//!                            `org.opencontainers.image.ref.name`
//! <root>/blobs/sha256/<hex>  content-addressed blobs
//! ```
//!
//! Writes never leave a half-built layout behind: a blob is written to a temporary file in
//! the layout, synced, and renamed to its digest; `index.json` is replaced the same way,
//! last, while holding an exclusive lock on `oci-layout` so concurrent writers do not lose
//! each other's tags. Reads verify: a blob read through [`Layout::read_blob`] has the size
//! and digest its descriptor says, or the read fails naming the file.
//!
//! Modes: every directory and file a layout writes gets its mode set explicitly
//! (directories 0755, files 0644), whatever the umask ([`pack_fs`]).
//!
//! A layout opened with [`Layout::open_trusted`] (what a host runs code from) reads every
//! file once, without following links below its root, and only when the file and each
//! directory from the root down to it belong to this user or root and are writable by
//! nobody else ([`pack_fs::open_trusted`]); what is hashed is read through that same open
//! file.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{Descriptor, Digest, DigestAlgorithm, ImageIndex, ImageManifest, MediaType};
use pack_fs::{DIR_MODE, FILE_MODE, TrustError};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::annotations::REF_NAME;
use crate::limits::{
    MAX_DOCUMENT_BYTES, MAX_INDEX_ENTRIES, MAX_LAYERS, MAX_LAYOUT_INDEX_BYTES,
    MAX_LAYOUT_MARKER_BYTES, descriptor_problem,
};
use crate::reference::check_tag;
use crate::{Error, Result, json};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const LAYOUT_VERSION: &str = "1.0.0";

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    /// Reads go through [`pack_fs::open_trusted`].
    trusted: bool,
}

/// A blob opened for reading, its size checked against its descriptor (on the open file).
#[derive(Debug)]
pub struct BlobFile {
    /// Its path (for messages: the content is read from `file`).
    pub path: PathBuf,
    /// The open file.
    pub file: File,
    /// Its size, which is the descriptor's.
    pub size: u64,
    /// Its digest (not yet checked).
    pub digest: Digest,
}

/// A blob stored in a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Its digest (`sha256:<hex>`).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Whether this call wrote it (`false`: the layout already had it).
    pub written: bool,
    /// Whether the layout had a file under this digest that did not hash to it (or that
    /// group or others could write), which this call replaced.
    pub replaced: bool,
}

impl Blob {
    /// A descriptor of this blob with the given media type.
    pub fn descriptor(&self, media_type: &str) -> Descriptor {
        Descriptor::new(MediaType::from(media_type), self.size, self.digest.clone())
    }
}

/// A tagged entry of `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The tag (`org.opencontainers.image.ref.name`).
    pub name: String,
    /// What it points to.
    pub descriptor: Descriptor,
}

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    digest_from_hex(&hex::encode(Sha256::digest(bytes)))
}

pub(crate) fn digest_from_hex(hex: &str) -> Digest {
    Digest::from_str(&format!("sha256:{hex}")).expect("a sha256 hex string is a valid digest")
}

/// Parses `sha256:<hex>` or a bare 64-character hex string as a sha256 digest.
pub fn parse_sha256(value: &str) -> Result<Digest> {
    let full = if value.contains(':') {
        value.to_string()
    } else {
        format!("sha256:{value}")
    };
    let digest = Digest::from_str(&full).map_err(|e| Error::InvalidDigest {
        value: value.to_string(),
        reason: e.to_string(),
    })?;
    check_sha256(&digest)?;
    Ok(digest)
}

fn check_sha256(digest: &Digest) -> Result<()> {
    if *digest.algorithm() == DigestAlgorithm::Sha256 {
        Ok(())
    } else {
        Err(Error::InvalidDigest {
            value: digest.to_string(),
            reason: "pack reads only sha256 blobs".to_string(),
        })
    }
}

/// Reads the open `file` (at `path`), refusing one larger than `limit` bytes without
/// reading more than `limit + 1` (the size on disk is not trusted: a special file or a
/// symlink to one reports 0).
fn read_limited(
    file: File,
    path: &Path,
    limit: u64,
    what: &'static str,
) -> io::Result<Result<Vec<u8>>> {
    let size = file.metadata()?.len();
    let too_large = |size| {
        Err(Error::TooLarge {
            path: path.to_path_buf(),
            what,
            size,
            limit,
        })
    };
    if size > limit {
        return Ok(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(too_large(bytes.len() as u64));
    }
    Ok(Ok(bytes))
}

/// Parses `bytes`, the `what` at `path`, as JSON.
fn parse_json_at<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::InvalidJson {
        path: path.to_path_buf(),
        what,
        message: e.to_string(),
    })
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// A refusal of [`pack_fs::open_trusted`] as a layout error (an I/O error is a read error).
fn trust_err(error: TrustError) -> Error {
    match error {
        TrustError::Io { path, source } => Error::Read { path, source },
        other => Error::Untrusted(other),
    }
}

impl Layout {
    /// Opens an existing layout: `oci-layout` must name version 1.x and `index.json`
    /// must be a valid image index.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_as(path.as_ref(), false)
    }

    /// [`Layout::open`] for a layout whose content will be run: this and every later read
    /// refuses a symbolic link below the root, anything but a regular file, and a file or
    /// directory (from the root down) that is writable by group or others or belongs to
    /// another user than this one or root ([`Error::Untrusted`]).
    pub fn open_trusted(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_as(path.as_ref(), true)
    }

    /// This layout, read from now on as [`Layout::open_trusted`] reads.
    pub fn trusted(mut self) -> Self {
        self.trusted = true;
        self
    }

    /// Opens the file `relative` of the layout for reading: in a trusted layout through
    /// [`pack_fs::open_trusted`].
    fn open_in(&self, relative: &Path) -> std::result::Result<File, TrustError> {
        if self.trusted {
            return pack_fs::open_trusted(&self.root, relative);
        }
        let path = self.root.join(relative);
        File::open(&path).map_err(|source| TrustError::Io { path, source })
    }

    fn open_as(path: &Path, trusted: bool) -> Result<Self> {
        let root = path.to_path_buf();
        let not_a_layout = |reason: &str| Error::NotALayout {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        match fs::metadata(&root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_a_layout("it does not exist"));
            }
            Err(source) => return Err(Error::Read { path: root, source }),
            Ok(m) if !m.is_dir() => return Err(not_a_layout("it is not a directory")),
            Ok(_) => {}
        }
        let marker = root.join(OCI_LAYOUT_FILE);
        let layout = Self { root, trusted };
        let file = match layout.open_in(Path::new(OCI_LAYOUT_FILE)) {
            Err(e) if e.is_not_found() => {
                return Err(not_a_layout("it has no `oci-layout` file"));
            }
            other => other.map_err(trust_err)?,
        };
        let bytes = read_limited(
            file,
            &marker,
            MAX_LAYOUT_MARKER_BYTES,
            "an `oci-layout` file",
        )
        .map_err(read_err(&marker))??;
        let header: oci_spec::image::OciLayout =
            parse_json_at(&bytes, &marker, "`oci-layout` file")?;
        let version = header.image_layout_version();
        if !version.starts_with("1.") {
            return Err(not_a_layout(&format!(
                "unsupported imageLayoutVersion `{version}` (pack reads 1.x)"
            )));
        }
        if !layout.index_path().exists() {
            return Err(not_a_layout("it has no `index.json`"));
        }
        layout.index()?;
        Ok(layout)
    }

    /// Creates a new, empty layout at `path`, which must not exist or be an empty
    /// directory. The layout is made in a temporary directory beside `path` and renamed
    /// into place, so an interrupted creation leaves no layout rather than a broken one,
    /// and of two processes creating the same layout at once one wins and the other gets
    /// [`Error::CannotCreate`] (see [`Layout::open_or_create`]).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        let not_empty = || Error::CannotCreate {
            path: root.clone(),
            reason: "it is a directory that is neither empty nor an OCI image layout".to_string(),
        };
        match fs::read_dir(&root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(not_empty());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if root.is_file() => {
                return Err(Error::CannotCreate {
                    path: root,
                    reason: format!("it is a file ({e})"),
                });
            }
            Err(source) => return Err(Error::Read { path: root, source }),
        }
        let parent = match root.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        pack_fs::create_dir_all(&parent, DIR_MODE).map_err(write_err(&parent))?;
        let staging = locked_temp_dir(&parent)?;
        let staged = Self {
            root: staging.path().to_path_buf(),
            trusted: false,
        };
        let blobs = staged.blobs_dir();
        pack_fs::create_dir_all(&blobs, DIR_MODE).map_err(write_err(&blobs))?;
        let header = serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION });
        staged.write_atomic(
            &staged.root.join(OCI_LAYOUT_FILE),
            &json::to_vec(&header).unwrap(),
        )?;
        staged.write_index(&empty_index())?;
        pack_fs::set_path_mode(staging.path(), DIR_MODE).map_err(write_err(staging.path()))?;
        // rename(2) replaces a missing or empty directory, and fails when another process
        // has put a layout there first.
        match fs::rename(staging.path(), &root) {
            Ok(()) => {}
            Err(_) if root.join(OCI_LAYOUT_FILE).exists() => return Err(not_empty()),
            Err(source) => return Err(Error::Write { path: root, source }),
        }
        // Renamed away: nothing is left for the guard to remove.
        let _ = staging.keep();
        sync_dir(&parent)?;
        Ok(Self {
            root,
            trusted: false,
        })
    }

    /// Opens the layout at `path`, or creates it when `path` does not exist or is an
    /// empty directory. Safe when several processes do it at once: one creates the
    /// layout, the others open it. Temporary files that writers killed before they
    /// finished left in the layout are removed ([`Layout::remove_stale_temp_files`]).
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self> {
        let layout = if path.as_ref().join(OCI_LAYOUT_FILE).exists() {
            Self::open(path)?
        } else {
            match Self::create(&path) {
                Ok(layout) => layout,
                Err(Error::CannotCreate { .. }) if path.as_ref().join(OCI_LAYOUT_FILE).exists() => {
                    Self::open(path)?
                }
                Err(e) => return Err(e),
            }
        };
        layout.remove_stale_temp_files();
        Ok(layout)
    }

    /// Removes the temporary files (`.pack-tmp-*` in the layout directory) that no live
    /// writer holds: a writer keeps an exclusive lock on its temporary file until it is
    /// renamed into place, and the lock goes with the process, so a file nobody locks
    /// was left by a writer that was killed. Returns how many were removed; files that
    /// cannot be removed are left alone (they are never read).
    pub fn remove_stale_temp_files(&self) -> usize {
        pack_fs::remove_stale_temp_files(&self.root)
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let file = self.open_in(Path::new(INDEX_FILE)).map_err(trust_err)?;
        let bytes = read_limited(
            file,
            &path,
            MAX_LAYOUT_INDEX_BYTES,
            "a layout's `index.json`",
        )
        .map_err(read_err(&path))??;
        let index: ImageIndex = parse_json_at(&bytes, &path, "image index (`index.json`)")?;
        if index.schema_version() != 2 {
            return Err(Error::InvalidJson {
                path,
                what: "image index (`index.json`)",
                message: format!("schemaVersion is {}, expected 2", index.schema_version()),
            });
        }
        Ok(index)
    }

    /// The tagged entries of `index.json`, in file order.
    pub fn tags(&self) -> Result<Vec<Tag>> {
        Ok(self
            .index()?
            .manifests()
            .iter()
            .filter_map(|d| {
                let name = d.annotations().as_ref()?.get(REF_NAME)?;
                Some(Tag {
                    name: name.clone(),
                    descriptor: d.clone(),
                })
            })
            .collect())
    }

    /// What `tag` points to.
    pub fn resolve(&self, tag: &str) -> Result<Descriptor> {
        let tags = self.tags()?;
        if let Some(found) = tags.iter().find(|t| t.name == tag) {
            return Ok(found.descriptor.clone());
        }
        let mut available: Vec<String> = tags.into_iter().map(|t| t.name).collect();
        available.sort();
        available.dedup();
        Err(Error::TagNotFound {
            layout: self.root.clone(),
            tag: tag.to_string(),
            available,
        })
    }

    /// Points `tag` at `descriptor` (adding or replacing the tag), atomically.
    pub fn set_tag(&self, tag: &str, descriptor: &Descriptor) -> Result<()> {
        check_tag(tag)?;
        self.update_index(|index| {
            set_tag_in(index, tag, descriptor);
            Ok(())
        })
    }

    /// Removes `tag`; returns whether it existed. Blobs are left in place.
    pub fn remove_tag(&self, tag: &str) -> Result<bool> {
        self.update_index(|index| {
            let mut manifests = index.manifests().clone();
            let before = manifests.len();
            manifests.retain(|d| ref_name(d) != Some(tag));
            let removed = manifests.len() != before;
            index.set_manifests(manifests);
            Ok(removed)
        })
    }

    /// Reads `index.json`, lets `f` change it, and writes it back atomically, holding an
    /// exclusive lock on `oci-layout` throughout so concurrent updates are serialised.
    /// Nothing is written when `f` fails.
    pub fn update_index<R>(&self, f: impl FnOnce(&mut ImageIndex) -> Result<R>) -> Result<R> {
        let marker = self.root.join(OCI_LAYOUT_FILE);
        let lock = File::open(&marker).map_err(read_err(&marker))?;
        lock.lock().map_err(write_err(&marker))?;
        let mut index = self.index()?;
        let result = f(&mut index)?;
        self.write_index(&index)?;
        drop(lock);
        Ok(result)
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let bytes = json::to_vec(index).expect("an image index serialises");
        self.write_atomic(&self.index_path(), &bytes)
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        check_sha256(digest)?;
        Ok(self.blobs_dir().join(digest.digest()))
    }

    /// Whether the layout has a blob with `digest`.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Streams `reader` into the layout as a blob, hashing as it goes. When `expected` is
    /// given the content must hash to it (and when the layout already has that blob,
    /// `reader` is not read at all).
    pub fn put_blob(&self, reader: impl Read, expected: Option<&Digest>) -> Result<Blob> {
        self.put_blob_named(reader, expected, None)
    }

    /// [`Layout::put_blob`] for a file; errors name the file.
    pub fn put_file(&self, path: &Path, expected: Option<&Digest>) -> Result<Blob> {
        if let Some(existing) = self.existing(expected)? {
            return Ok(existing);
        }
        let file = File::open(path).map_err(read_err(path))?;
        self.put_blob_named(file, expected, Some(path))
    }

    /// Stores `bytes` as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Blob> {
        let digest = sha256(bytes);
        if let Some(existing) = self.existing(Some(&digest))? {
            return Ok(existing);
        }
        self.put_blob_named(bytes, Some(&digest), None)
    }

    /// Serialises `value` as canonical JSON, stores it, and returns its descriptor with
    /// `media_type`, and the bytes.
    pub fn put_json<T: Serialize + ?Sized>(
        &self,
        media_type: &str,
        value: &T,
    ) -> Result<(Descriptor, Vec<u8>)> {
        let bytes = json::to_vec(value).map_err(|e| Error::InvalidInput {
            message: format!("cannot serialise a `{media_type}` document: {e}"),
        })?;
        let blob = self.put_bytes(&bytes)?;
        Ok((blob.descriptor(media_type), bytes))
    }

    fn existing(&self, expected: Option<&Digest>) -> Result<Option<Blob>> {
        let Some(digest) = expected else {
            return Ok(None);
        };
        let path = self.blob_path(digest)?;
        Ok(reusable_blob(&path, digest).map(|size| Blob {
            digest: digest.clone(),
            size,
            written: false,
            replaced: false,
        }))
    }

    fn put_blob_named(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        source: Option<&Path>,
    ) -> Result<Blob> {
        if let Some(existing) = self.existing(expected)? {
            return Ok(existing);
        }
        let blobs = self.blobs_dir();
        pack_fs::create_dir_all(&blobs, DIR_MODE).map_err(write_err(&blobs))?;
        let mut tmp = self.temp_file()?;
        let tmp_path = tmp.path().to_path_buf();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source_err) => {
                    return Err(Error::Read {
                        path: source.map_or_else(|| PathBuf::from("<input>"), Path::to_path_buf),
                        source: source_err,
                    });
                }
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(write_err(&tmp_path))?;
            size += n as u64;
        }
        let digest = digest_from_hex(&hex::encode(hasher.finalize()));
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(Error::DigestMismatch {
                path: source.map_or_else(|| PathBuf::from("<input>"), Path::to_path_buf),
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        let dest = self.blob_path(&digest)?;
        if reusable_blob(&dest, &digest).is_some() {
            // Same content already there; the temporary file is removed on drop.
            return Ok(Blob {
                digest,
                size,
                written: false,
                replaced: false,
            });
        }
        // Whatever is under that name and is not the content is replaced (rename(2) over
        // it), never reused.
        let replaced = fs::symlink_metadata(&dest).is_ok();
        finish_temp(tmp, &dest)?;
        sync_dir(&blobs)?;
        Ok(Blob {
            digest,
            size,
            written: true,
            replaced,
        })
    }

    /// A new temporary file in the layout directory, exclusively locked for as long as it
    /// is open (see [`Layout::remove_stale_temp_files`]).
    fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        pack_fs::locked_temp_file_in(&self.root).map_err(write_err(&self.root))
    }

    /// Replaces `dest` with `bytes`: temporary file, fsync, rename, fsync of the directory.
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes).map_err(write_err(dest))?;
        finish_temp(tmp, dest)?;
        sync_dir(dest.parent().unwrap_or(&self.root))
    }

    /// Opens the blob with `digest` and returns its size (from the open file). A blob
    /// that is not there, or not a regular file in a layout that is not trusted, is
    /// missing; a trusted layout refuses what is not a regular file.
    fn open_blob_file(&self, digest: &Digest) -> Result<(PathBuf, File, u64)> {
        let path = self.blob_path(digest)?;
        let missing = || Error::BlobMissing {
            layout: self.root.clone(),
            digest: digest.to_string(),
        };
        if !self.trusted {
            // A special file is not opened (a FIFO would block).
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(missing()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                Err(source) => return Err(Error::Read { path, source }),
            }
        }
        let relative = Path::new("blobs").join("sha256").join(digest.digest());
        let file = match self.open_in(&relative) {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return Err(missing()),
            Err(e) => return Err(trust_err(e)),
        };
        let meta = file.metadata().map_err(read_err(&path))?;
        if !meta.is_file() {
            return Err(missing());
        }
        Ok((path, file, meta.len()))
    }

    /// Opens the blob `descriptor` points to and checks its size (on the open file), so
    /// that what is then read from [`BlobFile::file`] and hashed is what is used.
    pub fn open_blob(&self, descriptor: &Descriptor) -> Result<BlobFile> {
        let (path, file, actual) = self.open_blob_file(descriptor.digest())?;
        if actual != descriptor.size() {
            return Err(Error::SizeMismatch {
                path,
                digest: descriptor.digest().to_string(),
                expected: descriptor.size(),
                actual,
            });
        }
        Ok(BlobFile {
            path,
            file,
            size: actual,
            digest: descriptor.digest().clone(),
        })
    }

    /// Reads the blob `descriptor` points to, checking its size (before reading) and its
    /// digest.
    pub fn read_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let blob = self.open_blob(descriptor)?;
        let path = blob.path.clone();
        let bytes = blob.read_all()?;
        check_digest(&path, descriptor.digest(), &bytes)?;
        Ok(bytes)
    }

    /// Reads the blob with `digest`, checking its digest.
    pub fn read_blob_by_digest(&self, digest: &Digest) -> Result<Vec<u8>> {
        let (path, mut file, _) = self.open_blob_file(digest)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(read_err(&path))?;
        check_digest(&path, digest, &bytes)?;
        Ok(bytes)
    }

    /// Checks the size and digest of the blob `descriptor` points to, streaming it, and
    /// returns its path. For large layers that should not be read into memory.
    pub fn verify_blob(&self, descriptor: &Descriptor) -> Result<PathBuf> {
        let BlobFile { path, mut file, .. } = self.open_blob(descriptor)?;
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher).map_err(read_err(&path))?;
        let actual = digest_from_hex(&hex::encode(hasher.finalize()));
        if actual != *descriptor.digest() {
            return Err(Error::DigestMismatch {
                path,
                expected: descriptor.digest().to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(path)
    }

    /// Reads and parses the image manifest `descriptor` points to (verified). A manifest
    /// larger than [`MAX_DOCUMENT_BYTES`], with more than [`MAX_LAYERS`] layers, or
    /// referencing a blob by a digest other than sha256 is refused.
    pub fn read_manifest(&self, descriptor: &Descriptor) -> Result<ImageManifest> {
        self.expect_media_type(descriptor, &MediaType::ImageManifest)?;
        let bytes = self.read_document(descriptor, "an image manifest")?;
        parse_manifest(&bytes, &self.document_path(descriptor))
    }

    /// Reads and parses the image index `descriptor` points to (verified). An index
    /// larger than [`MAX_DOCUMENT_BYTES`], with more than [`MAX_INDEX_ENTRIES`] entries,
    /// or with an entry whose digest is not sha256 is refused.
    pub fn read_image_index(&self, descriptor: &Descriptor) -> Result<ImageIndex> {
        self.expect_media_type(descriptor, &MediaType::ImageIndex)?;
        let bytes = self.read_document(descriptor, "an image index")?;
        parse_index(&bytes, &self.document_path(descriptor))
    }

    /// Reads the blob `descriptor` points to (verified, at most [`MAX_DOCUMENT_BYTES`])
    /// and parses it as JSON.
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        descriptor: &Descriptor,
        what: &'static str,
    ) -> Result<T> {
        let bytes = self.read_document(descriptor, what)?;
        self.parse_json(descriptor, &bytes, what)
    }

    /// Reads a small blob (a manifest, index, config or signature payload): refused
    /// before it is read when its descriptor says more than [`MAX_DOCUMENT_BYTES`].
    pub fn read_document(&self, descriptor: &Descriptor, what: &'static str) -> Result<Vec<u8>> {
        if descriptor.size() > MAX_DOCUMENT_BYTES {
            return Err(Error::TooLarge {
                path: self.document_path(descriptor),
                what,
                size: descriptor.size(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        self.read_blob(descriptor)
    }

    fn document_path(&self, descriptor: &Descriptor) -> PathBuf {
        self.blob_path(descriptor.digest())
            .unwrap_or_else(|_| self.root.clone())
    }

    fn parse_json<T: serde::de::DeserializeOwned>(
        &self,
        descriptor: &Descriptor,
        bytes: &[u8],
        what: &'static str,
    ) -> Result<T> {
        parse_json_at(bytes, &self.document_path(descriptor), what)
    }

    fn expect_media_type(&self, descriptor: &Descriptor, expected: &MediaType) -> Result<()> {
        if descriptor.media_type() == expected {
            Ok(())
        } else {
            Err(Error::UnexpectedMediaType {
                layout: self.root.clone(),
                digest: descriptor.digest().to_string(),
                expected: expected.to_string(),
                found: descriptor.media_type().to_string(),
            })
        }
    }
}

/// Parses an image manifest (the bytes of the blob at `path`, named in errors) and checks
/// it against the limits: at most [`MAX_LAYERS`] layers, config and layers by sha256.
pub fn parse_manifest(bytes: &[u8], path: &Path) -> Result<ImageManifest> {
    parse_document(
        bytes,
        path,
        "image manifest",
        ("layers", MAX_LAYERS),
        |m: &ImageManifest| {
            (
                m.layers().len(),
                std::iter::once(m.config()).chain(m.layers()).collect(),
            )
        },
    )
}

/// Parses an image index (the bytes of the blob at `path`, named in errors) and checks it
/// against the limits: at most [`MAX_INDEX_ENTRIES`] entries, each by sha256.
pub fn parse_index(bytes: &[u8], path: &Path) -> Result<ImageIndex> {
    parse_document(
        bytes,
        path,
        "image index",
        ("manifests", MAX_INDEX_ENTRIES),
        |i: &ImageIndex| (i.manifests().len(), i.manifests().iter().collect()),
    )
}

/// Parses `what` from `bytes` (the blob at `path`, named in errors); `entries` says how
/// many of what `limit` counts it has, and every descriptor in it, each of which must be
/// usable ([`descriptor_problem`]).
fn parse_document<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    what: &'static str,
    (counted, limit): (&'static str, usize),
    entries: impl Fn(&T) -> (usize, Vec<&Descriptor>),
) -> Result<T> {
    let doc: T = parse_json_at(bytes, path, what)?;
    let (count, descriptors) = entries(&doc);
    if count > limit {
        return Err(Error::TooMany {
            path: path.to_path_buf(),
            what: counted,
            count,
            limit,
        });
    }
    if let Some(reason) = descriptors.into_iter().find_map(descriptor_problem) {
        return Err(Error::UnusableDescriptor {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(doc)
}

impl BlobFile {
    /// Reads the whole file: exactly its size, or [`Error::SizeMismatch`] when it changed
    /// size since it was opened.
    pub fn read_all(mut self) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(self.size as usize);
        (&mut self.file)
            .take(self.size + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err(&self.path))?;
        if bytes.len() as u64 != self.size {
            return Err(Error::SizeMismatch {
                digest: self.digest.to_string(),
                path: self.path,
                expected: self.size,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }
}

/// Checks that `bytes` (the content of the blob at `path`) hash to `expected`.
pub fn check_digest(path: &Path, expected: &Digest, bytes: &[u8]) -> Result<()> {
    let actual = sha256(bytes);
    if actual == *expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

fn empty_index() -> ImageIndex {
    let mut index = ImageIndex::default();
    index.set_schema_version(2);
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(Vec::new());
    index
}

/// The tag of an `index.json` entry.
pub(crate) fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()?
        .get(REF_NAME)
        .map(String::as_str)
}

pub(crate) fn set_tag_in(index: &mut ImageIndex, tag: &str, descriptor: &Descriptor) {
    let mut entry = descriptor.clone();
    let mut annotations = entry.annotations().clone().unwrap_or_default();
    annotations.insert(REF_NAME.to_string(), tag.to_string());
    entry.set_annotations(Some(annotations));
    let mut manifests = index.manifests().clone();
    match manifests.iter().position(|d| ref_name(d) == Some(tag)) {
        Some(i) => {
            manifests[i] = entry;
            let mut seen = false;
            manifests.retain(|d| {
                if ref_name(d) != Some(tag) {
                    return true;
                }
                let keep = !seen;
                seen = true;
                keep
            });
        }
        None => manifests.push(entry),
    }
    index.set_manifests(manifests);
}

/// A locked temporary directory ([`pack_fs::LockedTempDir`]), as a layout error.
pub(crate) fn locked_temp_dir(parent: &Path) -> Result<pack_fs::LockedTempDir> {
    pack_fs::LockedTempDir::new(parent).map_err(write_err(parent))
}

fn finish_temp(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<()> {
    pack_fs::finish(tmp, dest, FILE_MODE).map_err(write_err(dest))
}

/// The size of the blob file at `path` when it may be reused as the blob `digest`: a
/// regular file (not a link), not writable by group or others, whose content hashes to
/// `digest`. A file written by someone else into a layout must not become part of a
/// bundle because of its name: it is replaced instead.
fn reusable_blob(path: &Path, digest: &Digest) -> Option<u64> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o022 != 0 {
            return None;
        }
    }
    let mut file = File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher).ok()?;
    (digest_from_hex(&hex::encode(hasher.finalize())) == *digest).then_some(size)
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    pack_fs::sync_dir(dir).map_err(write_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path().join("l")).unwrap();
        (dir, layout)
    }

    #[test]
    fn create_then_open() {
        let (_dir, layout) = layout();
        let root = layout.root();
        assert_eq!(
            fs::read_to_string(root.join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        assert_eq!(
            fs::read_to_string(root.join("index.json")).unwrap(),
            r#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
        );
        assert!(root.join("blobs/sha256").is_dir());
        Layout::open(root).unwrap();
        // Creating over an existing layout is refused; open_or_create opens it.
        assert!(matches!(
            Layout::create(root),
            Err(Error::CannotCreate { .. })
        ));
        Layout::open_or_create(root).unwrap();
    }

    #[test]
    fn concurrent_open_or_create_all_get_the_same_layout() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20 {
            let root = dir.path().join(format!("l{round}"));
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|i| {
                    let (root, barrier) = (root.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        let layout = Layout::open_or_create(&root)?;
                        layout.set_tag(&format!("t{i}"), &sha256_descriptor(&layout, i))
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
            let layout = Layout::open(&root).unwrap();
            assert_eq!(layout.tags().unwrap().len(), 8, "a tag was lost");
            let leftovers: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| n.to_string_lossy().starts_with(pack_fs::TEMP_PREFIX))
                .collect();
            assert!(leftovers.is_empty(), "{leftovers:?}");
        }
    }

    fn sha256_descriptor(layout: &Layout, i: usize) -> Descriptor {
        layout
            .put_bytes(format!("blob {i}").as_bytes())
            .unwrap()
            .descriptor("application/octet-stream")
    }

    #[test]
    fn stale_temporary_files_are_removed_and_live_ones_kept() {
        let (_dir, layout) = layout();
        let stale = layout.root().join(format!("{}stale", pack_fs::TEMP_PREFIX));
        fs::write(&stale, b"half a blob").unwrap();
        let live = layout.temp_file().unwrap();
        assert_eq!(layout.remove_stale_temp_files(), 1);
        assert!(!stale.exists());
        assert!(live.path().exists(), "a file a writer holds was removed");
        drop(live);
        Layout::open_or_create(layout.root()).unwrap();
    }

    #[test]
    fn stale_temporary_directories_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(format!("{}killed", pack_fs::TEMP_PREFIX));
        fs::create_dir_all(stale.join("layout/blobs")).unwrap();
        let live = locked_temp_dir(dir.path()).unwrap();
        pack_fs::remove_stale_temp_dirs(dir.path());
        assert!(!stale.exists());
        assert!(
            live.path().is_dir(),
            "a directory a build holds was removed"
        );
    }

    #[test]
    fn open_rejects_what_is_not_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        let err = Layout::open(dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let err = Layout::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no `oci-layout` file"), "{err}");
        fs::write(dir.path().join("oci-layout"), "{").unwrap();
        let err = Layout::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::InvalidJson { .. }), "{err}");
        fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        let err = Layout::open(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("unsupported imageLayoutVersion"),
            "{err}"
        );
        fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let err = Layout::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no `index.json`"), "{err}");
        fs::write(
            dir.path().join("index.json"),
            r#"{"schemaVersion":2,"manifests":[{"#,
        )
        .unwrap();
        let err = Layout::open(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("index.json` is not a valid image index"),
            "{err}"
        );
        fs::write(
            dir.path().join("index.json"),
            r#"{"schemaVersion":2,"manifests":[{"mediaType":"x/y","size":1,"digest":"sha256:zz"}]}"#,
        )
        .unwrap();
        assert!(Layout::open(dir.path()).is_err());
    }

    #[test]
    fn blobs_round_trip_and_are_verified() {
        let (_dir, layout) = layout();
        let blob = layout.put_bytes(b"hello").unwrap();
        assert!(blob.written);
        assert_eq!(blob.size, 5);
        assert_eq!(
            blob.digest.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(!layout.put_bytes(b"hello").unwrap().written);
        let descriptor = blob.descriptor("text/plain");
        assert_eq!(layout.read_blob(&descriptor).unwrap(), b"hello");
        layout.verify_blob(&descriptor).unwrap();

        // A streamed blob with the wrong expected digest is refused and not stored.
        let wrong = sha256(b"other");
        let err = layout.put_blob(&b"hello!"[..], Some(&wrong)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!layout.has_blob(&sha256(b"hello!")));
        let leftovers: Vec<_> = fs::read_dir(layout.root())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(pack_fs::TEMP_PREFIX)
            })
            .collect();
        assert!(leftovers.is_empty());

        // Corruption: same size, other content.
        let path = layout.blob_path(&blob.digest).unwrap();
        fs::write(&path, b"jello").unwrap();
        let err = layout.read_blob(&descriptor).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&blob.digest.to_string()), "{err}");
        assert!(layout.verify_blob(&descriptor).is_err());
        // Other size.
        fs::write(&path, b"hello world").unwrap();
        let err = layout.read_blob(&descriptor).unwrap_err();
        assert!(
            matches!(
                err,
                Error::SizeMismatch {
                    expected: 5,
                    actual: 11,
                    ..
                }
            ),
            "{err}"
        );
        fs::remove_file(&path).unwrap();
        let err = layout.read_blob(&descriptor).unwrap_err();
        assert!(matches!(err, Error::BlobMissing { .. }), "{err}");
    }

    #[test]
    fn tags_are_added_replaced_and_removed() {
        let (_dir, layout) = layout();
        let a = layout.put_bytes(b"a").unwrap().descriptor("x/a");
        let b = layout.put_bytes(b"b").unwrap().descriptor("x/b");
        layout.set_tag("one", &a).unwrap();
        layout.set_tag("two", &b).unwrap();
        assert_eq!(layout.resolve("one").unwrap().digest(), a.digest());
        layout.set_tag("one", &b).unwrap();
        assert_eq!(layout.resolve("one").unwrap().digest(), b.digest());
        let names: Vec<_> = layout.tags().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["one", "two"]);
        let err = layout.resolve("three").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no tag `three` in `{}`; tags there: one, two",
                layout.root().display()
            )
        );
        assert!(layout.remove_tag("one").unwrap());
        assert!(!layout.remove_tag("one").unwrap());
        assert!(matches!(
            layout.set_tag("bad/tag", &a),
            Err(Error::InvalidTag { .. })
        ));
    }

    #[test]
    fn concurrent_tag_updates_are_not_lost() {
        let (_dir, layout) = layout();
        let d = layout.put_bytes(b"x").unwrap().descriptor("x/x");
        std::thread::scope(|s| {
            for t in 0..8 {
                let layout = layout.clone();
                let d = d.clone();
                s.spawn(move || {
                    for i in 0..5 {
                        layout.set_tag(&format!("t{t}-{i}"), &d).unwrap();
                    }
                });
            }
        });
        assert_eq!(layout.tags().unwrap().len(), 40);
    }

    #[test]
    fn digests() {
        assert!(parse_sha256(&"a".repeat(64)).is_ok());
        assert!(parse_sha256(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(parse_sha256("sha256:abc").is_err());
        assert!(parse_sha256(&format!("sha512:{}", "a".repeat(128))).is_err());
    }
}
