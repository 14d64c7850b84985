//! Reading an input binary, classifying it and validating it completely.

use std::path::{Path, PathBuf};

use std::sync::Mutex;

use wasmparser::{
    BinaryReaderError, FuncToValidate, FuncValidatorAllocations, FunctionBody, Parser,
    ValidPayload, Validator, ValidatorResources, WasmFeatures,
};

use crate::{Error, Result};

/// What kind of WebAssembly binary an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A core WebAssembly module (`\0asm` version 1).
    Module,
    /// A component-model component (`\0asm` version 0xd, layer 1).
    Component,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Module => "core module",
            Kind::Component => "component",
        })
    }
}

/// An input binary read from disk (or given as bytes), with its kind.
#[derive(Debug)]
pub struct Input {
    /// The path used in messages.
    pub path: PathBuf,
    pub bytes: Bytes,
    pub kind: Kind,
}

/// An input's bytes: read into memory, or mapped from the file.
#[derive(Debug)]
pub enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::Owned(bytes)
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(bytes) => bytes,
            Bytes::Mapped(map) => map,
        }
    }
}

impl Input {
    /// Reads `path` and classifies it; errors name the file and describe what the bytes
    /// look like when they are not wasm.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, Bytes::Owned(bytes))
    }

    /// Like [`Input::read`], but maps the file instead of copying it: for checks that only
    /// look at the bytes (validation), where an 18 MB component then costs no copy. What
    /// is compiled or hashed for a bundle is read with [`Input::read`], so that the bytes
    /// cannot change under it.
    pub fn map(path: &Path) -> Result<Self> {
        let read_error = |source| Error::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let len = file.metadata().map_err(read_error)?.len();
        if len == 0 || !file.metadata().map_err(read_error)?.is_file() {
            // Empty files cannot be mapped; pipes and devices are read as a stream.
            return Self::read(path);
        }
        // SAFETY: the map is read-only and private. Another process truncating the file
        // while it is mapped would fault; pack reads files it was pointed at, not files
        // it shares with writers.
        let map =
            unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(read_error)?;
        Self::from_bytes(path, Bytes::Mapped(map))
    }

    /// Classifies `bytes`; `path` is only used in messages.
    pub fn from_bytes(path: &Path, bytes: impl Into<Bytes>) -> Result<Self> {
        let bytes = bytes.into();
        let kind = classify(&bytes).map_err(|found| Error::NotWasm {
            path: path.to_path_buf(),
            found,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            kind,
        })
    }

    /// Fails with [`Error::CoreModule`] unless this is a component.
    pub fn expect_component(&self) -> Result<()> {
        match self.kind {
            Kind::Component => Ok(()),
            Kind::Module => Err(Error::CoreModule {
                path: self.path.clone(),
            }),
        }
    }

    /// Validates the whole binary (see [`validate`]), naming the file in the error.
    pub fn validate(&self) -> Result<()> {
        validate(&self.bytes).map_err(|e| Error::InvalidWasm {
            path: self.path.clone(),
            offset: e.offset(),
            message: e.message().to_string(),
        })
    }
}

/// The wasm features wasmtime 48 enables by default with its `gc`, `threads`,
/// `component-model` and `component-model-async` crate features, which pack builds with.
pub fn wasmtime_features() -> WasmFeatures {
    WasmFeatures::WASM3
        | WasmFeatures::GC_TYPES
        | WasmFeatures::EXCEPTIONS
        | WasmFeatures::THREADS
        | WasmFeatures::COMPONENT_MODEL
        | WasmFeatures::CM_ASYNC
}

/// Tells a module from a component from anything else by the header. On anything
/// else, returns a description of what the bytes look like.
pub fn classify(bytes: &[u8]) -> std::result::Result<Kind, String> {
    if bytes.len() >= 8 && bytes.starts_with(b"\0asm") {
        let header: [u8; 4] = bytes[4..8].try_into().expect("four bytes");
        return match header {
            [1, 0, 0, 0] => Ok(Kind::Module),
            [0x0d, 0, 1, 0] => Ok(Kind::Component),
            [v0, v1, 1, 0] => Err(format!(
                "a component in encoding version {:#x}, which this wasmtime does not read \
                 (it reads version 0xd); rebuild it with a current toolchain",
                u16::from_le_bytes([v0, v1])
            )),
            [v0, v1, l0, l1] => Err(format!(
                "a wasm header with unknown version {:#x} and layer {:#x}",
                u16::from_le_bytes([v0, v1]),
                u16::from_le_bytes([l0, l1])
            )),
        };
    }
    Err(describe_non_wasm(bytes))
}

fn describe_non_wasm(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "the file is empty".to_string();
    }
    if bytes.starts_with(b"\0asm") {
        return format!("a truncated wasm header ({} bytes)", bytes.len());
    }
    let magic: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\x7fELF", "an ELF executable or library"),
        (b"MZ", "a Windows PE executable"),
        (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
        (b"\x1f\x8b", "gzip-compressed data"),
        (b"PK\x03\x04", "a zip archive"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
        (b"%PDF", "a PDF document"),
        (b"\xff\xd8\xff", "a JPEG image"),
    ];
    if let Some((_, what)) = magic.iter().find(|(m, _)| bytes.starts_with(m)) {
        return format!("the bytes look like {what}");
    }
    if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        return "the bytes look like a tar archive".to_string();
    }
    let sample = &bytes[..bytes.len().min(4096)];
    let text = match std::str::from_utf8(sample) {
        Ok(text) => Some(text),
        // A sample may end inside a multi-byte character.
        Err(e) if e.error_len().is_none() && sample.len() - e.valid_up_to() < 4 => {
            std::str::from_utf8(&sample[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    if let Some(text) = text
        && !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() || c.is_ascii_whitespace())
    {
        let trimmed = text.trim_start();
        if looks_like_wat(trimmed) {
            return "the file is WebAssembly text (WAT); turn it into a binary first, \
                    e.g. with `wasm-tools parse`"
                .to_string();
        }
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            return "the file is text that looks like JSON".to_string();
        }
        let first_line: String = trimmed
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect();
        return format!("the file is text, starting with {first_line:?}");
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(
        "it starts with bytes {} where a wasm binary starts with 00 61 73 6d (`\\0asm`)",
        head.join(" ")
    )
}

/// Whether text is WebAssembly text format: `(module` or `(component` after any
/// whitespace and `;;` / `(; ;)` comments.
fn looks_like_wat(mut text: &str) -> bool {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix(";;") {
            text = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = text.strip_prefix("(;") {
            text = rest.split_once(";)").map_or("", |(_, after)| after);
        } else {
            return text.starts_with("(module") || text.starts_with("(component");
        }
    }
}

/// Validates a whole module or component, function bodies included, with
/// [`wasmtime_features`]. The structure is validated in one pass; function bodies are
/// handed to the thread pool in batches as the pass reaches them, so that body
/// validation overlaps with parsing. The error reported is the one at the lowest offset,
/// so the result does not depend on scheduling.
pub fn validate(bytes: &[u8]) -> std::result::Result<(), BinaryReaderError> {
    /// Bodies per task: large enough that scheduling costs nothing, small enough that
    /// both threads get work early.
    const BATCH: usize = 256;
    type Body<'a> = (FuncToValidate<ValidatorResources>, FunctionBody<'a>);

    let first_error: Mutex<Option<BinaryReaderError>> = Mutex::new(None);
    let record = |error: BinaryReaderError| {
        let mut first = first_error.lock().expect("no panics while held");
        if first.as_ref().is_none_or(|e| error.offset() < e.offset()) {
            *first = Some(error);
        }
    };
    let validate_batch = |batch: Vec<Body<'_>>| {
        let mut allocs = FuncValidatorAllocations::default();
        for (to_validate, body) in batch {
            let mut validator = to_validate.into_validator(allocs);
            if let Err(e) = validator.validate(&body) {
                record(e);
                // Later bodies of this batch can only have higher offsets.
                return;
            }
            allocs = validator.into_allocations();
        }
    };
    let validate_batch = &validate_batch;
    rayon::scope(|scope| {
        let mut validator = Validator::new_with_features(wasmtime_features());
        let mut batch = Vec::with_capacity(BATCH);
        for payload in Parser::new(0).parse_all(bytes) {
            let structure = payload.and_then(|payload| validator.payload(&payload));
            match structure {
                Ok(ValidPayload::Func(to_validate, body)) => {
                    batch.push((to_validate, body));
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        scope.spawn(move |_| validate_batch(full));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    record(e);
                    break;
                }
            }
        }
        validate_batch(batch);
    });
    match first_error.into_inner().expect("no panics while held") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_headers() {
        assert_eq!(classify(b"\0asm\x01\0\0\0"), Ok(Kind::Module));
        assert_eq!(classify(b"\0asm\x0d\0\x01\0"), Ok(Kind::Component));
        assert!(classify(b"\0asm\x0a\0\x01\0").unwrap_err().contains("0xa"));
        assert!(classify(b"").unwrap_err().contains("empty"));
        assert!(
            classify(b"\x89PNG\r\n\x1a\n....")
                .unwrap_err()
                .contains("PNG")
        );
        assert!(classify(b"(module)").unwrap_err().contains("WAT"));
        assert!(
            classify(b";; a comment\n(; block ;) (component)")
                .unwrap_err()
                .contains("WAT")
        );
        assert!(
            classify(b"hello world\n")
                .unwrap_err()
                .contains("\"hello world\"")
        );
        assert!(
            classify(&[0xde, 0xad, 0xbe, 0xef, 0x80])
                .unwrap_err()
                .contains("de ad be ef")
        );
    }

    #[test]
    fn reports_lowest_offset_body_error() {
        let wasm = wat::parse_str(
            r#"(module
                (func (result i32) i32.const 1)
                (func (result i32) i64.const 1)
                (func (result i32) f32.const 1))"#,
        )
        .unwrap();
        let err = validate(&wasm).unwrap_err();
        assert!(err.message().contains("type mismatch"), "{}", err.message());
        // The same error a sequential validator reports first.
        let sequential = Validator::new_with_features(wasmtime_features())
            .validate_all(&wasm)
            .err()
            .unwrap();
        assert_eq!(err.offset(), sequential.offset());
        assert_eq!(err.message(), sequential.message());
    }
}
