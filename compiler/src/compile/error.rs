//! The errors of a compilation: [`Error`] stops all of it, [`TargetError`] one target.

use super::*;

/// Errors that stop a whole compilation (bad options, bad input, an unusable output
/// directory). Errors of one target are [`TargetError`]s.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not valid wasm (same messages as `pack validate`).
    #[error(transparent)]
    Input(#[from] crate::Error),

    #[error("unknown target `{target}`; supported targets: {supported}")]
    UnknownTarget { target: String, supported: String },

    #[error("unknown CPU preset `{preset}` for {target}; available: {available}")]
    UnknownPreset {
        preset: String,
        target: String,
        available: String,
    },

    #[error("cannot compile for the native CPU: {reason}")]
    NativeUnsupported { reason: String },

    #[error("invalid profile `{path}`: {message}")]
    Profile { path: PathBuf, message: String },

    #[error("cannot write to the output directory `{path}`")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cache error at `{path}`")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("no targets to compile for")]
    NoTargets,
}

/// Why one target failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// wasmtime refused the configuration or the input for this target.
    #[error("cannot compile `{input}` for {target}")]
    Compile {
        target: Target,
        input: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The compiler panicked; the message says where.
    #[error("the compiler panicked while compiling `{input}` for {target}: {message}")]
    Panic {
        target: Target,
        input: PathBuf,
        message: String,
    },

    /// The artifact could not be written.
    #[error("cannot write the artifact for {target} to `{path}`")]
    Write {
        target: Target,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TargetError {
    pub fn target(&self) -> &Target {
        match self {
            TargetError::Compile { target, .. }
            | TargetError::Panic { target, .. }
            | TargetError::Write { target, .. } => target,
        }
    }
}
