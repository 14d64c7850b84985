//! zstd-compressed layers.
//!
//! A native manifest may carry its `.cwasm` and the portable component as zstd frames
//! (`application/vnd.pack.cwasm.v1+zstd`, `application/wasm+zstd`). The signed native
//! config records, for each compressed layer, the digest and size of its content
//! ([`Uncompressed`]), so a host keeps the decompressed bytes (a plain file it can map)
//! and checks them against a signed digest as they are written.
//!
//! Frames are made by [`compress`]: one frame, single-threaded, with the content size in
//! its header and nothing else that varies (zstd frames carry no time or name), so the
//! same bytes and level always give the same frame and digest.
//!
//! [`decompress`] is the only way pack reads a frame: it stops at the recorded size (a
//! frame that expands further is refused, having written no more than that), refuses a
//! frame that ends early, and hashes what it writes.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::media_types::{CWASM_LAYER, CWASM_LAYER_ZSTD, WASM_LAYER, WASM_LAYER_ZSTD};
use crate::{Error, Result};

/// The zstd level `pack build` uses unless told otherwise: on a 33 MB `.cwasm`, level 3
/// takes a tenth of the time of level 9 for 95% of its ratio (see docs/bundle-format.md).
pub const DEFAULT_LEVEL: i32 = 3;

/// The levels zstd accepts (negative levels are its fast modes).
pub const LEVELS: std::ops::RangeInclusive<i32> = -7..=22;

/// The content of a compressed layer: what the decompressed bytes must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uncompressed {
    /// sha256 of the decompressed content (`sha256:<hex>`).
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Whether layers of `media_type` are zstd frames.
pub fn is_compressed(media_type: &str) -> bool {
    media_type.ends_with("+zstd")
}

/// The compressed media type of a plain one (`application/wasm` → `application/wasm+zstd`).
pub fn compressed_media_type(plain: &str) -> Option<&'static str> {
    match plain {
        CWASM_LAYER => Some(CWASM_LAYER_ZSTD),
        WASM_LAYER => Some(WASM_LAYER_ZSTD),
        _ => None,
    }
}

/// The plain media type of a layer (itself when it is not compressed).
pub fn plain_media_type(media_type: &str) -> &str {
    media_type.strip_suffix("+zstd").unwrap_or(media_type)
}

/// Compresses `bytes` into one zstd frame at `level`, reproducibly.
pub fn compress(bytes: &[u8], level: i32) -> Result<Vec<u8>> {
    if !LEVELS.contains(&level) {
        return Err(Error::InvalidInput {
            message: format!(
                "zstd level {level} is out of range ({} to {})",
                LEVELS.start(),
                LEVELS.end()
            ),
        });
    }
    let mut compressor = zstd::bulk::Compressor::new(level).map_err(compress_err)?;
    // One frame, the content size in its header, no checksum (the sha256 of the content
    // is in the signed config), no dictionary id: nothing but the content and level.
    compressor
        .include_contentsize(true)
        .and_then(|_| compressor.include_checksum(false))
        .and_then(|_| compressor.include_dictid(false))
        .map_err(compress_err)?;
    compressor.compress(bytes).map_err(compress_err)
}

fn compress_err(e: io::Error) -> Error {
    Error::InvalidInput {
        message: format!("zstd compression failed: {e}"),
    }
}

/// Why a compressed layer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameProblem {
    /// It expands past the recorded size (a decompression bomb, or the wrong record).
    TooLarge { limit: u64 },
    /// It ends before the recorded size, or mid-frame.
    Truncated { expected: u64, actual: u64 },
    /// It is not valid zstd.
    Corrupt { detail: String },
    /// Its content does not hash to the recorded digest.
    Digest { actual: String },
}

impl std::fmt::Display for FrameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameProblem::TooLarge { limit } => write!(
                f,
                "it expands past the {limit} bytes its config records (cut there)"
            ),
            FrameProblem::Truncated { expected, actual } => write!(
                f,
                "it ends after {actual} of the {expected} bytes its config records"
            ),
            FrameProblem::Corrupt { detail } => write!(f, "it is not a valid zstd frame: {detail}"),
            FrameProblem::Digest { actual } => write!(
                f,
                "its content hashes to {actual}, not the digest its config records"
            ),
        }
    }
}

/// Decompresses the frame(s) read from `reader` (the layer at `path`, for messages) into
/// `writer`, writing at most `expected.size` bytes, and checks the content's size and
/// sha256 against `expected`. Returns the digest of what was written.
pub fn decompress(
    reader: impl Read,
    writer: &mut dyn Write,
    expected: &Uncompressed,
    path: &Path,
) -> Result<Digest> {
    let refuse = |problem: FrameProblem| Error::BadCompressedLayer {
        path: path.to_path_buf(),
        expected: expected.digest.clone(),
        problem: problem.to_string(),
    };
    let expected_digest = crate::layout::parse_sha256(&expected.digest)?;
    let mut decoder = zstd::stream::read::Decoder::new(reader).map_err(|e| {
        refuse(FrameProblem::Corrupt {
            detail: e.to_string(),
        })
    })?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        // One byte past the limit is enough to know it is exceeded.
        let room = (expected.size + 1 - written).min(buf.len() as u64) as usize;
        let n = match decoder.read(&mut buf[..room]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(refuse(FrameProblem::Truncated {
                    expected: expected.size,
                    actual: written,
                }));
            }
            Err(e) => {
                return Err(refuse(FrameProblem::Corrupt {
                    detail: e.to_string(),
                }));
            }
        };
        if written + n as u64 > expected.size {
            let keep = (expected.size - written) as usize;
            hasher.update(&buf[..keep]);
            writer
                .write_all(&buf[..keep])
                .map_err(|source| write_err(path, source))?;
            return Err(refuse(FrameProblem::TooLarge {
                limit: expected.size,
            }));
        }
        hasher.update(&buf[..n]);
        writer
            .write_all(&buf[..n])
            .map_err(|source| write_err(path, source))?;
        written += n as u64;
    }
    if written != expected.size {
        return Err(refuse(FrameProblem::Truncated {
            expected: expected.size,
            actual: written,
        }));
    }
    let actual = crate::layout::digest_from_hex(&hex::encode(hasher.finalize()));
    if actual != expected_digest {
        return Err(refuse(FrameProblem::Digest {
            actual: actual.to_string(),
        }));
    }
    Ok(actual)
}

fn write_err(path: &Path, source: io::Error) -> Error {
    Error::Write {
        path: PathBuf::from(format!("{} (decompressed)", path.display())),
        source,
    }
}

/// [`decompress`] into memory (at most `expected.size` bytes are allocated).
pub fn decompress_to_vec(
    reader: impl Read,
    expected: &Uncompressed,
    path: &Path,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(expected.size.min(1 << 32) as usize);
    decompress(reader, &mut out, expected, path)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bytes: &[u8]) -> Uncompressed {
        Uncompressed {
            digest: crate::layout::sha256(bytes).to_string(),
            size: bytes.len() as u64,
        }
    }

    fn content() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn frames_are_reproducible_and_round_trip() {
        let data = content();
        let a = compress(&data, DEFAULT_LEVEL).unwrap();
        let b = compress(&data, DEFAULT_LEVEL).unwrap();
        assert_eq!(a, b);
        assert!(a.len() < data.len() / 4, "{}", a.len());
        let out = decompress_to_vec(&a[..], &record(&data), Path::new("l")).unwrap();
        assert_eq!(out, data);
        assert!(compress(&data, 99).is_err());
    }

    #[test]
    fn a_truncated_frame_is_refused() {
        let data = content();
        let frame = compress(&data, DEFAULT_LEVEL).unwrap();
        for cut in [frame.len() - 1, frame.len() / 2, 5] {
            let err = decompress_to_vec(&frame[..cut], &record(&data), Path::new("l"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("ends after") || err.contains("not a valid zstd frame"),
                "{cut}: {err}"
            );
        }
    }

    #[test]
    fn a_frame_expanding_past_the_record_is_cut_and_refused() {
        // A bomb: 64 MiB of zeros in a few kilobytes, recorded as 1000 bytes.
        let zeros = vec![0u8; 64 << 20];
        let bomb = compress(&zeros, 1).unwrap();
        assert!(bomb.len() < 64 << 10);
        let claimed = record(&zeros[..1000]);
        let mut out = Vec::new();
        let err = decompress(&bomb[..], &mut out, &claimed, Path::new("l"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expands past the 1000 bytes"), "{err}");
        assert_eq!(out.len(), 1000);
    }

    #[test]
    fn other_content_is_refused() {
        let data = content();
        let frame = compress(&data, DEFAULT_LEVEL).unwrap();
        let mut other = record(&data);
        other.digest = crate::layout::sha256(b"x").to_string();
        let err = decompress_to_vec(&frame[..], &other, Path::new("l"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hashes to"), "{err}");
    }
}
