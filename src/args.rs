//! Flag groups that several commands share, each flattened where it is used (as
//! wasmtime's `cli-flags` and wasm-tools' `GeneralOpts` do).

use std::path::PathBuf;

use anyhow::{Result, bail};
use pack_registry_client::ConnectOptions;
use pack_registry_client::auth::Credentials;

use crate::registry::{connect_options, read_password_stdin};

/// How to reach a registry: `--insecure`, `--ca-cert`, `--timeout`, `--retries` (every
/// command that talks to one).
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Allow plain HTTP, and do not verify the registry's TLS certificate. Loopback
    /// registries (127.0.0.0/8, ::1, localhost) may use plain HTTP without it.
    #[arg(long, visible_alias = "insecure-registry")]
    pub insecure: bool,

    /// A PEM file of CA certificates to trust besides the platform's roots; repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_cert: Vec<PathBuf>,

    /// Seconds to wait for a connection and for each read from it; a stalled transfer
    /// fails after this long and is retried [default: 30 to connect, 120 per read].
    #[arg(long, value_name = "SECONDS", env = "PACK_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,

    /// Retries of a request that failed transiently (connection error, timeout, 408,
    /// 429, 5xx), with exponential backoff or the registry's Retry-After (at most 30 s
    /// each), each reported as a warning; 0 fails at the first error.
    #[arg(long, value_name = "N", env = "PACK_RETRIES", default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: u32,
}

impl ConnectArgs {
    /// The registry client's options for these flags.
    pub(crate) fn options(&self) -> ConnectOptions {
        connect_options(self.insecure, &self.ca_cert, self.timeout, self.retries)
    }
}

/// How to reach and log in to a registry (`push`, `pull`, `login`).
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// The username; the password (or token) is read from stdin with --password-stdin.
    /// Otherwise PACK_REGISTRY_USERNAME/PACK_REGISTRY_PASSWORD, sent only to the registry
    /// PACK_REGISTRY (host[:port]) names, else to the registry of this command's
    /// reference; then the docker config (credential helpers and `auths`), then
    /// anonymous.
    #[arg(long, short = 'u', value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the password (or token) from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

impl RegistryArgs {
    pub(crate) fn connect_options(&self) -> ConnectOptions {
        self.connect.options()
    }

    /// `--username` with the password read from stdin.
    pub(crate) fn explicit_credentials(&self) -> Result<Option<Credentials>> {
        let Some(username) = &self.username else {
            return Ok(None);
        };
        if !self.password_stdin {
            bail!("--username needs --password-stdin");
        }
        Ok(Some(Credentials::new(
            username.clone(),
            read_password_stdin()?.as_str(),
        )))
    }
}

/// `--jobs` (and the global `--json`) of `push` and `pull`.
#[derive(clap::Args, Debug, Clone)]
pub struct TransferArgs {
    /// Blobs moved at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// The global `--json` (docs/json.md).
    #[arg(skip)]
    pub json: bool,
}

/// Which bundle: the manifest, the layout, the tag and the repository. Each left out comes
/// from its `PACK_*` variable, then from `pack.toml` (`pack build`, `pack push`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BundleArgs {
    /// The manifest to read [default: ./pack.toml when it exists].
    #[arg(long, value_name = "FILE", env = "PACK_MANIFEST")]
    pub manifest: Option<PathBuf>,

    /// The OCI image layout of the bundle [pack.toml: `[build] output`].
    #[arg(
        long = "output",
        short = 'o',
        value_name = "LAYOUT",
        env = "PACK_OUTPUT"
    )]
    pub layout: Option<PathBuf>,

    /// The tag of the bundle, in the layout and in the registry [pack.toml: `[build] tag`;
    /// default: latest].
    #[arg(long, env = "PACK_TAG")]
    pub tag: Option<String>,

    /// The registry repository the bundle is for, `REGISTRY/REPOSITORY` without a tag
    /// [pack.toml: `[push] repository`].
    #[arg(long, value_name = "REPO", env = "PACK_REPOSITORY")]
    pub repository: Option<String>,
}
