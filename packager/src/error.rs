use std::path::PathBuf;

/// Errors of the packager crate. Every variant names the layout, file, tag or digest it is
/// about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory is not an OCI image layout (or not one this crate can read).
    #[error("`{path}` is not an OCI image layout: {reason}")]
    NotALayout { path: PathBuf, reason: String },

    /// A new layout cannot be created there.
    #[error("cannot create an OCI image layout at `{path}`: {reason}")]
    CannotCreate { path: PathBuf, reason: String },

    /// A file of a layout that is to be run cannot be trusted: a symbolic link, not a
    /// regular file, writable by group or others, or another user's (see
    /// [`crate::Layout::open_trusted`]).
    #[error(transparent)]
    Untrusted(pack_fs::TrustError),

    /// A file could not be read.
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file or directory could not be written.
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON document in the layout does not parse as what it should be.
    #[error("`{path}` is not a valid {what}: {message}")]
    InvalidJson {
        path: PathBuf,
        what: &'static str,
        message: String,
    },

    /// A tag is not a valid OCI tag.
    #[error(
        "`{tag}` is not a valid tag (1 to 128 characters of `a-z A-Z 0-9 _ . -`, not starting \
         with `.` or `-`)"
    )]
    InvalidTag { tag: String },

    /// The tag does not exist in the layout.
    #[error("{}", tag_not_found(.layout, .tag, .available))]
    TagNotFound {
        layout: PathBuf,
        tag: String,
        available: Vec<String>,
    },

    /// A string is not a valid digest, or uses an algorithm other than sha256.
    /// A file or blob is larger than pack reads for what it is (see [`crate::limits`]).
    #[error("`{path}` is {size} bytes, more than the {limit} bytes pack reads for {what}")]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        size: u64,
        limit: u64,
    },

    /// A document lists more entries than pack follows (see [`crate::limits`]).
    #[error("`{path}` lists {count} {what}, more than the {limit} pack follows")]
    TooMany {
        path: PathBuf,
        what: &'static str,
        count: usize,
        limit: usize,
    },

    /// A descriptor pack cannot follow (an unknown digest algorithm).
    #[error("`{path}`: {reason}")]
    UnusableDescriptor { path: PathBuf, reason: String },

    #[error("`{value}` is not a sha256 digest: {reason}")]
    InvalidDigest { value: String, reason: String },

    /// A blob a descriptor points to is not in the layout.
    #[error("blob {digest} is missing from `{layout}`")]
    BlobMissing { layout: PathBuf, digest: String },

    /// A blob's content does not hash to its digest.
    #[error("`{path}` does not match its digest {expected}: its content hashes to {actual}")]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// A zstd-compressed layer does not decompress to the content its config records.
    #[error("compressed layer `{path}` is refused: {problem} (expected content {expected})")]
    BadCompressedLayer {
        path: PathBuf,
        expected: String,
        problem: String,
    },

    /// A blob's size differs from what its descriptor says.
    #[error("`{path}` ({digest}) has {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        path: PathBuf,
        digest: String,
        expected: u64,
        actual: u64,
    },

    /// A document has a media type this crate did not expect there.
    #[error("{digest} in `{layout}` is a `{found}`, expected {expected}")]
    UnexpectedMediaType {
        layout: PathBuf,
        digest: String,
        expected: String,
        found: String,
    },

    /// The tag points at something that is not a bundle pack can read.
    #[error("tag `{tag}` in `{layout}` is not a pack bundle: {reason}")]
    NotABundle {
        layout: PathBuf,
        tag: String,
        reason: String,
    },

    /// An existing layout that group or others can write: pack does not build (and sign)
    /// into it.
    #[error(
        "`{path}` is writable by group or others (mode {mode:04o}): whoever can write to \
         `{layout}` could change what gets signed"
    )]
    SharedLayout {
        layout: PathBuf,
        path: PathBuf,
        mode: u32,
    },

    /// The bundle input is inconsistent.
    #[error("invalid bundle input: {message}")]
    InvalidInput { message: String },

    /// `SOURCE_DATE_EPOCH` is set but is not a number of seconds.
    #[error("SOURCE_DATE_EPOCH=`{value}` is not a non-negative whole number of seconds since 1970")]
    SourceDateEpoch { value: String },

    /// A key file would be overwritten.
    #[error("`{path}` already exists")]
    KeyExists { path: PathBuf },

    /// The private key is encrypted and no password was given.
    #[error("`{path}` is encrypted and no password was given")]
    PasswordRequired { path: PathBuf },

    /// The password does not decrypt the private key.
    #[error("cannot decrypt `{path}`: wrong password, or the key is damaged")]
    WrongPassword { path: PathBuf },

    /// The key is of a kind pack does not sign with.
    #[error("`{path}` holds {found}; pack signs with ECDSA P-256 keys")]
    UnsupportedKey { path: PathBuf, found: String },

    /// The key file is not a PEM key pack can read.
    #[error("`{path}` is not a usable {expected}: {message}")]
    InvalidKey {
        path: PathBuf,
        expected: &'static str,
        message: String,
    },

    /// A compile-cache entry that is not trusted: unsigned, signed by another key, not
    /// shaped like an entry, or with an artifact that does not match its digest.
    #[error("cache entry `{tag}` is not trusted: {reason}")]
    UntrustedCacheEntry { tag: String, reason: String },

    /// Key generation or encryption failed.
    #[error("cannot {action}: {message}")]
    Crypto {
        action: &'static str,
        message: String,
    },
}

fn tag_not_found(layout: &std::path::Path, tag: &str, available: &[String]) -> String {
    let list = if available.is_empty() {
        "it has no tags".to_string()
    } else {
        format!("tags there: {}", available.join(", "))
    };
    format!("no tag `{tag}` in `{}`; {list}", layout.display())
}

/// The packager crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
