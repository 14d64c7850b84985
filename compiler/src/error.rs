use std::path::PathBuf;

/// Errors of the compiler crate. Every variant names the file or item it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input file could not be read.
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The input is not a WebAssembly binary at all.
    #[error("`{path}` is not a WebAssembly binary: {found}")]
    NotWasm { path: PathBuf, found: String },

    /// A component was expected but the input is a core module.
    #[error("`{path}` is a core WebAssembly module, not a component")]
    CoreModule { path: PathBuf },

    /// The input is malformed or does not validate.
    #[error("`{path}` is not valid WebAssembly: {message} (at offset {offset:#x})")]
    InvalidWasm {
        path: PathBuf,
        offset: usize,
        message: String,
    },

    /// The component is valid wasm, but its type could not be read as WIT.
    #[error("cannot read the WIT interface of `{path}`: {message}")]
    Decode { path: PathBuf, message: String },

    /// The WIT path could not be read or parsed. `message` holds wit-parser's
    /// rendering, with file, line and a source snippet.
    #[error("cannot load WIT from `{path}`:\n{message}")]
    Wit { path: PathBuf, message: String },

    /// The requested world does not exist (or none was named and there are several).
    #[error("{}", world_not_found(.path, .requested, .available))]
    WorldNotFound {
        path: PathBuf,
        requested: Option<String>,
        available: Vec<String>,
    },
}

fn world_not_found(
    path: &std::path::Path,
    requested: &Option<String>,
    available: &[String],
) -> String {
    let list = if available.is_empty() {
        "it defines no worlds".to_string()
    } else {
        format!("worlds defined there: {}", available.join(", "))
    };
    match requested {
        Some(name) => format!("no world `{name}` in `{}`; {list}", path.display()),
        None => format!(
            "`{}` defines more than one world, so name one with --world; {list}",
            path.display()
        ),
    }
}

/// The compiler crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
