//! Atomic file writes: a temporary file in the destination's directory, renamed over the
//! destination, so a reader sees the old file or the new one and never a partial one.
//! Modes are set explicitly, whatever the umask ([`pack_fs`]).

use std::path::Path;

/// Prefix of the temporary files (which `pack cache prune` removes when stale).
pub(crate) const TEMP_PREFIX: &str = pack_fs::TEMP_PREFIX;

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically, mode 0644 (readable like any file the user
/// creates; tempfile's own default is 0600).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    pack_fs::write_atomic(path, bytes, pack_fs::FILE_MODE)
}

/// Creates `dir` and its missing parents, mode 0755 whatever the umask.
pub(crate) fn create_dir_all(dir: &Path) -> std::io::Result<()> {
    pack_fs::create_dir_all(dir, pack_fs::DIR_MODE)
}

/// A temporary file beside `path` (readable like [`write_atomic`]'s), to be persisted
/// over it.
pub(crate) fn temp_file_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    pack_fs::temp_file_in(dir_of(path))
}

/// Renames a temporary file of [`temp_file_beside`] over `dest`, mode 0644 whatever the
/// umask, with file and directory synced.
pub(crate) fn persist(tmp: tempfile::NamedTempFile, dest: &Path) -> std::io::Result<()> {
    pack_fs::persist(tmp, dest, pack_fs::FILE_MODE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        write_atomic(&a, b"one").unwrap();
        write_atomic(&a, b"two").unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"two");
        let mut tmp = temp_file_beside(&dir.path().join("b")).unwrap();
        tmp.write_all(b"three").unwrap();
        persist(tmp, &dir.path().join("b")).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&a).unwrap().permissions().mode();
            assert_eq!(mode & 0o044, 0o044, "{mode:o}");
        }
    }
}
