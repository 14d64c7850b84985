//! How pack writes files and directories, and how it opens the files it then trusts.
//!
//! Writing: every directory and file pack makes gets its mode set explicitly (`chmod`
//! after creation), whatever the process's umask: a umask of `000` must not leave a
//! layout, a cache or a content store writable by everyone. Files are written
//! atomically: a temporary file (`.pack-tmp-*`) beside the destination, its mode set, its
//! content synced, renamed over the destination, and the directory synced, so a reader
//! sees the old file or the new one and never a partial one.
//!
//! Reading what is trusted ([`open_trusted`]): a file inside a directory tree that pack
//! runs code from (an OCI layout, the content store) is opened once, relative to the
//! tree's root, one component at a time, following no symbolic link, and refused unless
//! it is a regular file and it and every directory on the way (the root included) is
//! owned by this user or root and writable by nobody else — ssh's `StrictModes`. The
//! caller then hashes and uses that same open file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// Prefix of the temporary files and directories pack writes (and removes when stale).
pub const TEMP_PREFIX: &str = ".pack-tmp-";

/// Directories anyone may read: layouts, the compile cache, the content store.
pub const DIR_MODE: u32 = 0o755;
/// Directories only their owner may enter (credentials, keys).
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Files anyone may read: blobs, `index.json`, cache entries, public keys.
pub const FILE_MODE: u32 = 0o644;
/// Files only their owner may read: private keys, credentials.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// The directory a file `path` is in (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `path` and its missing parents, and sets `mode` on each directory this call
/// created (directories that already existed are left as they are). Unlike
/// `std::fs::DirBuilder::mode`, the mode is not reduced by the umask.
pub fn create_dir_all(path: &Path, mode: u32) -> io::Result<()> {
    if path.as_os_str().is_empty() || path.is_dir() {
        return Ok(());
    }
    // The missing directories, outermost first.
    let mut missing = Vec::new();
    let mut current = Some(path);
    while let Some(dir) = current {
        if dir.as_os_str().is_empty() || dir.is_dir() {
            break;
        }
        missing.push(dir);
        current = dir.parent();
    }
    for dir in missing.into_iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => set_path_mode(dir, mode)?,
            // Another process made it at the same time: it sets its own mode.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sets the mode of `path` (no-op where there are no Unix modes).
pub fn set_path_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Sets the mode of an open file (`fchmod`; no-op where there are no Unix modes).
pub fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}

/// Finishes a temporary file: sets `mode`, syncs its content, renames it to `dest` (which
/// it replaces) and syncs `dest`'s directory.
pub fn persist(tmp: tempfile::NamedTempFile, dest: &Path, mode: u32) -> io::Result<()> {
    finish(tmp, dest, mode)?;
    sync_dir(parent_of(dest))
}

/// [`persist`] without the directory sync, for a caller that renames many files into one
/// directory and then syncs it once ([`sync_dir`]).
pub fn finish(tmp: tempfile::NamedTempFile, dest: &Path, mode: u32) -> io::Result<()> {
    set_mode(tmp.as_file(), mode)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// Writes a new file `path` with `bytes` and `mode`, atomically, as [`write_atomic`] does,
/// but never replaces one: when `path` exists (made meanwhile by another process too), the
/// error is [`io::ErrorKind::AlreadyExists`] and the file is left as it is.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = temp_file_in(parent_of(path))?;
    tmp.write_all(bytes)?;
    set_mode(tmp.as_file(), mode)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(parent_of(path))
}

/// A new temporary file (`.pack-tmp-*`) in `dir`.
pub fn temp_file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
}

/// Replaces `path` with `bytes`, atomically, with `mode`: a temporary file in the same
/// directory, synced, renamed, and the directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = temp_file_in(parent_of(path))?;
    tmp.write_all(bytes)?;
    persist(tmp, path, mode)
}

/// Makes a rename in `dir` durable (no-op where directories cannot be opened).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Why a file pack was to trust was refused, or could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// It cannot be opened (missing, unreadable, ...).
    #[error("cannot open `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// It, or a directory on the way to it, is a symbolic link.
    #[error("`{path}` is a symbolic link, and pack follows none inside a layout")]
    Symlink { path: PathBuf },

    /// It is not a regular file (or, on the way to one, not a directory).
    #[error("`{path}` is {found}, not {expected}")]
    WrongType {
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
    },

    /// It can be written by users other than its owner.
    #[error("`{path}` is writable by {who} (mode {mode:03o}), who could change what pack runs")]
    Writable {
        path: PathBuf,
        mode: u32,
        who: &'static str,
    },

    /// It belongs to another user than this one or root.
    #[error(
        "`{path}` belongs to user {owner}, who could change what pack runs: pack trusts only files of this user ({user}) and root"
    )]
    Owner {
        path: PathBuf,
        owner: u32,
        user: u32,
    },
}

impl TrustError {
    /// The file or directory refused.
    pub fn path(&self) -> &Path {
        match self {
            TrustError::Io { path, .. }
            | TrustError::Symlink { path }
            | TrustError::WrongType { path, .. }
            | TrustError::Writable { path, .. }
            | TrustError::Owner { path, .. } => path,
        }
    }

    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, TrustError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// How to fix it, when that is known.
    pub fn hint(&self) -> Option<String> {
        let path = self.path().display();
        Some(match self {
            TrustError::Io { .. } => return None,
            TrustError::Symlink { .. } => format!(
                "replace the link with a copy of the file it points to \
                 (`cp --remove-destination \"$(readlink -f {path})\" {path}`), or copy the \
                 layout with `cp -rL`"
            ),
            TrustError::WrongType { .. } => {
                "the layout is damaged: build it again or copy it again from its source".to_string()
            }
            TrustError::Writable { .. } => format!(
                "if nobody else changed it, take the write permission away: `chmod go-w {path}`"
            ),
            TrustError::Owner { .. } => format!(
                "copy the layout to a directory of yours (`cp -r`), or, as root, \
                 `chown -R $(id -u) {path}`"
            ),
        })
    }
}

/// Opens `relative` (a path of plain names, such as `blobs/sha256/<hex>`) under `root`
/// for reading, once, and only when it can be trusted: no component after `root` is a
/// symbolic link, the file is a regular file, and the file and every directory from
/// `root` down to it belong to this user or root and are writable by neither group nor
/// others. `root` itself is the directory the user named: a link there is followed, and
/// the directories above it are not checked (as ssh stops at the home directory).
///
/// Each component is opened relative to the directory before it (`openat` with
/// `O_NOFOLLOW`), and checked on its open descriptor (`fstat`), so nothing can be
/// swapped between the check and the open. The file is opened `O_NONBLOCK` so a FIFO
/// cannot make the open hang; that flag changes nothing for reading a regular file.
#[cfg(unix)]
pub fn open_trusted(root: &Path, relative: &Path) -> Result<File, TrustError> {
    use rustix::fs::{Mode, OFlags};

    let names: Vec<&std::ffi::OsStr> = relative
        .components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(TrustError::Io {
                path: root.join(relative),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a path of plain names inside the layout",
                ),
            }),
        })
        .collect::<Result<_, _>>()?;
    let user = rustix::process::geteuid().as_raw();
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: rustix::io::Errno| TrustError::Io {
            path,
            source: e.into(),
        }
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir =
        File::from(rustix::fs::open(root, dir_flags, Mode::empty()).map_err(io_err(root))?);
    check(&dir, root, user, true)?;
    let mut path = root.to_path_buf();
    for (i, name) in names.iter().enumerate() {
        path.push(name);
        let last = i + 1 == names.len();
        let flags = if last {
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
        } else {
            dir_flags | OFlags::NOFOLLOW
        };
        let fd = match rustix::fs::openat(&dir, *name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                // ELOOP (or ENOTDIR for O_DIRECTORY) when it is a link: say so.
                let lstat = rustix::fs::statat(&dir, *name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
                if let Ok(st) = lstat {
                    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
                    if kind == rustix::fs::FileType::Symlink {
                        return Err(TrustError::Symlink { path });
                    }
                    if !last && kind != rustix::fs::FileType::Directory {
                        return Err(TrustError::WrongType {
                            path,
                            found: type_name(kind),
                            expected: "a directory",
                        });
                    }
                }
                return Err(io_err(&path)(e));
            }
        };
        let file = File::from(fd);
        check(&file, &path, user, !last)?;
        if last {
            return Ok(file);
        }
        dir = file;
    }
    // `relative` was empty: the root itself is not a file.
    Err(TrustError::WrongType {
        path,
        found: "a directory",
        expected: "a regular file",
    })
}

/// Where there are no owners and modes: opens the file, refusing what is not one.
#[cfg(not(unix))]
pub fn open_trusted(root: &Path, relative: &Path) -> Result<File, TrustError> {
    let path = root.join(relative);
    let file = File::open(&path).map_err(|source| TrustError::Io {
        path: path.clone(),
        source,
    })?;
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(TrustError::WrongType {
            path,
            found: "not a regular file",
            expected: "a regular file",
        }),
        Err(source) => Err(TrustError::Io { path, source }),
    }
}

/// Checks an open file or directory: its type, owner and mode.
#[cfg(unix)]
fn check(file: &File, path: &Path, user: u32, directory: bool) -> Result<(), TrustError> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().map_err(|source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let kind = rustix::fs::FileType::from_raw_mode(meta.mode());
    let expected = if directory {
        rustix::fs::FileType::Directory
    } else {
        rustix::fs::FileType::RegularFile
    };
    if kind != expected {
        return Err(TrustError::WrongType {
            path: path.to_path_buf(),
            found: type_name(kind),
            expected: type_name(expected),
        });
    }
    if meta.uid() != user && meta.uid() != 0 {
        return Err(TrustError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            user,
        });
    }
    let mode = meta.mode() & 0o7777;
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "its group and others",
        (true, false) => "its group",
        (false, true) => "others",
        (false, false) => return Ok(()),
    };
    Err(TrustError::Writable {
        path: path.to_path_buf(),
        mode,
        who,
    })
}

#[cfg(unix)]
fn type_name(kind: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType as T;
    match kind {
        T::RegularFile => "a regular file",
        T::Directory => "a directory",
        T::Symlink => "a symbolic link",
        T::Fifo => "a FIFO",
        T::Socket => "a socket",
        T::CharacterDevice => "a character device",
        T::BlockDevice => "a block device",
        T::Unknown => "of an unknown type",
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_get_their_modes_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        // Permissive modes on purpose: what is set is what is asked, not less.
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep, 0o777).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&dir.path().join(d)), 0o777, "{d}");
        }
        // Existing directories are left alone.
        set_path_mode(&dir.path().join("a"), 0o700).unwrap();
        create_dir_all(&dir.path().join("a/d"), 0o755).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a/d")), 0o755);

        let file = deep.join("f");
        write_atomic(&file, b"one", 0o666).unwrap();
        assert_eq!(mode(&file), 0o666);
        write_atomic(&file, b"two", 0o600).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(fs::read(&file).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&deep).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left");
    }

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layout");
        create_dir_all(&root.join("blobs/sha256"), 0o755).unwrap();
        write_atomic(&root.join("blobs/sha256/aa"), b"blob", 0o644).unwrap();
        (dir, root)
    }

    #[test]
    fn trusted_opens_read_the_file() {
        let (_dir, root) = tree();
        let mut file = open_trusted(&root, Path::new("blobs/sha256/aa")).unwrap();
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!(text, "blob");
        let err = open_trusted(&root, Path::new("blobs/sha256/bb")).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(open_trusted(&root, Path::new("blobs/../blobs/sha256/aa")).is_err());
    }

    #[test]
    fn links_are_refused_anywhere_below_the_root() {
        let (dir, root) = tree();
        let elsewhere = dir.path().join("elsewhere");
        write_atomic(&elsewhere, b"blob", 0o644).unwrap();
        let blob = root.join("blobs/sha256/aa");
        fs::remove_file(&blob).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &blob).unwrap();
        let err = open_trusted(&root, Path::new("blobs/sha256/aa")).unwrap_err();
        assert!(
            matches!(err, TrustError::Symlink { ref path } if *path == blob),
            "{err}"
        );

        // A linked directory on the way.
        let other = dir.path().join("other");
        fs::rename(root.join("blobs/sha256"), &other).unwrap();
        std::os::unix::fs::symlink(&other, root.join("blobs/sha256")).unwrap();
        let err = open_trusted(&root, Path::new("blobs/sha256/aa")).unwrap_err();
        assert!(
            matches!(err, TrustError::Symlink { ref path } if path.ends_with("blobs/sha256")),
            "{err}"
        );

        // The root itself may be a link: the user named it.
        let (_dir2, real) = tree();
        let named = dir.path().join("named");
        std::os::unix::fs::symlink(&real, &named).unwrap();
        open_trusted(&named, Path::new("blobs/sha256/aa")).unwrap();
    }

    #[test]
    fn what_others_can_write_is_refused() {
        let (_dir, root) = tree();
        let rel = Path::new("blobs/sha256/aa");
        for (path, bad) in [
            (root.join("blobs/sha256/aa"), 0o666),
            (root.join("blobs/sha256/aa"), 0o664),
            (root.join("blobs/sha256"), 0o777),
            (root.join("blobs"), 0o775),
            (root.clone(), 0o757),
        ] {
            let good = mode(&path);
            set_path_mode(&path, bad).unwrap();
            let err = open_trusted(&root, rel).unwrap_err();
            assert!(
                matches!(err, TrustError::Writable { path: ref p, .. } if *p == path),
                "{err}"
            );
            assert!(err.hint().unwrap().contains("chmod go-w"), "{err}");
            set_path_mode(&path, good).unwrap();
        }
        open_trusted(&root, rel).unwrap();
        // Not a regular file.
        let fifo = root.join("blobs/sha256/ff");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = open_trusted(&root, Path::new("blobs/sha256/ff")).unwrap_err();
        assert!(matches!(err, TrustError::WrongType { .. }), "{err}");
    }

    #[test]
    fn files_of_other_users_are_refused() {
        // Only root can give a file away.
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let (_dir, root) = tree();
        let blob = root.join("blobs/sha256/aa");
        std::os::unix::fs::chown(&blob, Some(54321), None).unwrap();
        let err = open_trusted(&root, Path::new("blobs/sha256/aa")).unwrap_err();
        assert!(
            matches!(err, TrustError::Owner { owner: 54321, .. }),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("chown"), "{err}");
    }
}
