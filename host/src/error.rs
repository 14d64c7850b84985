use std::path::PathBuf;

use crate::select::PassedOver;

/// A boxed error from wasmtime or another library, kept as the source of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the host. Every variant names the bundle, file, digest or component it is
/// about; none of them means the component ran (see [`crate::RunOutcome`] for that).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The argument is neither an OCI layout nor a registry reference.
    #[error("`{input}` is neither an OCI image layout nor a registry reference: {reason}")]
    InvalidSource { input: String, reason: String },

    /// Reading the layout or the content store failed: not a layout, no such tag, a blob
    /// that is missing or does not match its digest, ...
    #[error(transparent)]
    Layout(#[from] pack_packager::Error),

    /// Pulling from the registry failed.
    #[cfg(feature = "registry")]
    #[error(transparent)]
    Registry(#[from] pack_registry_client::Error),

    /// A registry reference was given, but this host was built without the `registry`
    /// feature.
    #[error(
        "`{reference}` is a registry reference, and this host was built without registry support"
    )]
    RegistryUnsupported { reference: String },

    /// The content store cannot be used.
    #[error("cannot use the content store at `{path}`")]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Neither `$PACK_STORE` nor a data directory (`$XDG_DATA_HOME`, `$HOME`) is set.
    #[error("no content store: set PACK_STORE (or XDG_DATA_HOME or HOME)")]
    NoStore,

    /// `--pull never`, and the content store has no copy of the reference.
    #[error("`{reference}` is not in the content store `{store}`, and pulling was not allowed")]
    NotInStore { reference: String, store: PathBuf },

    /// Verification was asked for, and no trusted key was given.
    #[error("no trusted key to verify `{bundle}` with")]
    NoTrustedKeys { bundle: String },

    /// No signature by a trusted key covers the bundle's digest.
    #[error("{}", unverified(.bundle, .digest, .reasons))]
    Unverified {
        bundle: String,
        digest: String,
        reasons: Vec<String>,
    },

    /// The tag does not point at a pack bundle (an image index).
    #[error("`{bundle}` is not a pack bundle: {reason}")]
    NotABundle { bundle: String, reason: String },

    /// No precompiled artifact of the bundle fits this host, and JIT compilation was not
    /// allowed.
    #[error("{}", no_artifact(.bundle, .passed_over, *.jit_possible))]
    NoArtifact {
        bundle: String,
        passed_over: Vec<PassedOver>,
        /// Whether the bundle has a portable component that `--allow-jit` could compile.
        jit_possible: bool,
    },

    /// JIT compilation was allowed, but this host has no compiler.
    #[error("{}", jit_unavailable(.bundle, .passed_over))]
    JitUnavailable {
        bundle: String,
        passed_over: Vec<PassedOver>,
    },

    /// The engine could not be created with the settings the artifact needs.
    #[error("cannot configure the engine for {what}")]
    Engine {
        what: String,
        #[source]
        source: BoxError,
    },

    /// wasmtime refused to load the artifact or compile the component.
    #[error("cannot load {what} from `{path}`")]
    Load {
        what: String,
        path: PathBuf,
        #[source]
        source: BoxError,
    },

    /// The component cannot be linked against WASI or instantiated.
    #[error("cannot instantiate `{bundle}`")]
    Instantiate {
        bundle: String,
        #[source]
        source: BoxError,
    },

    /// The component exports neither `wasi:cli/run` nor `wasi:http/incoming-handler`.
    #[error(
        "`{bundle}` exports {found}; pack runs components that export `wasi:cli/run` (a command) or `wasi:http/incoming-handler` (an HTTP handler)"
    )]
    NotRunnable { bundle: String, found: String },

    /// A WASI option is invalid (a preopened directory that does not exist, ...).
    #[error("{message}")]
    Wasi {
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    /// The HTTP server could not start.
    #[error("cannot serve HTTP on {addr}")]
    Serve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The host's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn unverified(bundle: &str, digest: &str, reasons: &[String]) -> String {
    let mut text = format!("`{bundle}` ({digest}) has no valid signature by a trusted key");
    for reason in reasons {
        text.push_str("\n  ");
        text.push_str(reason);
    }
    text
}

fn list(passed_over: &[PassedOver]) -> String {
    let mut text = String::new();
    for p in passed_over {
        text.push_str("\n  ");
        text.push_str(&p.to_string());
    }
    text
}

fn no_artifact(bundle: &str, passed_over: &[PassedOver], jit_possible: bool) -> String {
    let mut text = format!("no precompiled artifact in `{bundle}` fits this host");
    if passed_over.is_empty() {
        text.push_str(": it has no native manifest");
    } else {
        text.push_str(&list(passed_over));
    }
    if !jit_possible {
        text.push_str("\n  and it has no portable component to compile");
    }
    text
}

fn jit_unavailable(bundle: &str, passed_over: &[PassedOver]) -> String {
    format!(
        "no precompiled artifact in `{bundle}` fits this host, and this host was built \
         without a compiler (cargo feature `jit`), so it cannot compile the portable \
         component{}",
        list(passed_over)
    )
}

/// Boxes a wasmtime error as a source.
pub(crate) fn boxed(error: wasmtime::Error) -> BoxError {
    error.into_boxed_dyn_error()
}
