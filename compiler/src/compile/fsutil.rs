//! Atomic file writes: a temporary file in the destination's directory, renamed over the
//! destination, so a reader sees the old file or the new one and never a partial one.
//! Modes are set explicitly, whatever the umask ([`pack_fs`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A fresh temporary name in `dir`.
fn temp_name(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!("{TEMP_PREFIX}{}-{n}-{nanos:x}", std::process::id()))
}

/// Makes `dst` a hard link to `src` (a copy when linking is impossible, e.g. across
/// file systems), atomically. Returns whether it linked.
pub(crate) fn link_or_copy_atomic(src: &Path, dst: &Path) -> std::io::Result<bool> {
    let tmp = temp_name(dir_of(dst));
    let linked = match std::fs::hard_link(src, &tmp) {
        Ok(()) => true,
        Err(_) => {
            if let Err(e) = std::fs::copy(src, &tmp) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            false
        }
    };
    if let Err(e) = std::fs::rename(&tmp, dst) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(linked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_links_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        write_atomic(&a, b"one").unwrap();
        write_atomic(&a, b"two").unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"two");
        let b = dir.path().join("b");
        std::fs::write(&b, b"old").unwrap();
        assert!(link_or_copy_atomic(&a, &b).unwrap());
        assert_eq!(std::fs::read(&b).unwrap(), b"two");
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
