//! Flag groups that several commands share, each flattened where it is used (as
//! wasmtime's `cli-flags` and wasm-tools' `GeneralOpts` do).

use std::path::PathBuf;

use anyhow::{Result, bail};
use pack_registry_client::ConnectOptions;
use pack_registry_client::auth::Credentials;

use pack_compiler::compile::{
    self, Cache, CacheSecret, CompileOptions, Profile, SecretError, resolve_targets,
    supported_targets,
};

use crate::printer::Printer;
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

/// `--jobs` of `push` and `pull`.
#[derive(clap::Args, Debug, Clone)]
pub struct TransferArgs {
    /// Blobs moved at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
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

/// The compile flags `pack compile` and `pack build` share.
#[derive(clap::Args, Debug, Clone)]
pub struct CompileArgs {
    /// A target: an OCI platform (`linux/amd64`, with a CPU preset: `linux/amd64/v3`), a
    /// Rust target triple, `pulley64`/`pulley32`, `native`, or `all` (the four Linux
    /// architectures). Repeat it, or separate values with commas.
    #[arg(long = "target", short = 't', value_name = "TARGET", required = true, value_parser = parse_target)]
    pub targets: Vec<String>,

    /// CPU preset for the targets of its architecture that do not name their own, e.g.
    /// `x86-64-v3`, `rva23u64`, or `native`. See docs/compile.md.
    #[arg(long, value_name = "PRESET")]
    pub cpu: Option<String>,

    /// Engine profile (TOML): the wasmtime settings that change generated code.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,

    /// Cache directory [default: $PACK_CACHE_DIR, else $XDG_CACHE_HOME/pack, else
    /// ~/.cache/pack]. Entries are authenticated with PACK_CACHE_SECRET, else with the key
    /// in $XDG_CONFIG_HOME/pack/cache.key (~/.config/pack/cache.key), made on first use;
    /// an entry that does not authenticate is compiled again.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,

    /// Neither read nor write the compile cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Do not use the function-level cache: a target missing from the compile cache is
    /// compiled whole, and none of its functions are kept for the next version.
    #[arg(long)]
    pub no_function_cache: bool,

    /// Size limit of the function-level cache of one target, in MiB (functions unused
    /// the longest go first).
    #[arg(long, value_name = "MIB", env = "PACK_FUNCTION_CACHE_LIMIT", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub function_cache_limit: u64,

    /// Targets compiled at once [default: the number of cores].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

impl CompileArgs {
    /// The compiler's options, writing artifacts to `out_dir`.
    pub fn options(&self, printer: &Printer, out_dir: PathBuf) -> Result<CompileOptions> {
        let targets = resolve_targets(&self.targets, self.cpu.as_deref())?;
        let profile = match &self.profile {
            Some(path) => Profile::load(path)?,
            None => Profile::default(),
        };
        let cache = if self.no_cache {
            None
        } else {
            match self.cache_dir.clone().or_else(Cache::default_dir) {
                Some(dir) => cache_secret(printer)?.map(|secret| {
                    Cache::new(dir, secret)
                        .with_functions(!self.no_function_cache)
                        .with_function_limit(self.function_cache_limit.saturating_mul(1 << 20))
                }),
                None => {
                    printer.warn(
                        "no cache directory (set PACK_CACHE_DIR or HOME); compiling without a \
                         cache",
                    );
                    None
                }
            }
        };
        Ok(CompileOptions {
            targets,
            profile,
            out_dir,
            cache,
            jobs: self.jobs.map_or(0, usize::from),
            stem: None,
        })
    }
}

/// The secret of the local cache: PACK_CACHE_SECRET, else the user's key file. A
/// PACK_CACHE_SECRET that is too short is an error; a key file that cannot be used is a
/// warning, and the cache is not used.
fn cache_secret(printer: &Printer) -> Result<Option<CacheSecret>> {
    match CacheSecret::from_environment() {
        Ok(secret) => Ok(Some(secret)),
        Err(e @ SecretError::TooShort { .. }) => Err(e.into()),
        Err(e) => {
            printer.warn(&format!(
                "{}; compiling without a cache",
                crate::diagnostics::chain(&e)
            ));
            printer.hint(&e.hint());
            Ok(None)
        }
    }
}

/// Checks every comma-separated target while parsing, so an unknown one is a usage
/// error that lists the supported targets.
pub(crate) fn parse_target(value: &str) -> Result<String, String> {
    for part in value.split(',').filter(|p| !p.trim().is_empty()) {
        compile::Target::parse(part).map_err(|e| match e {
            compile::Error::UnknownTarget { .. } => {
                format!(
                    "unknown target `{part}`\n\nsupported targets: {}",
                    supported_targets()
                )
            }
            other => other.to_string(),
        })?;
    }
    Ok(value.to_string())
}

/// What a host (`pack run`, `pack serve`) trusts, and where and how it gets bundles.
#[derive(clap::Args, Debug, Clone)]
pub struct HostArgs {
    /// A trusted public key (`pack.pub`, `cosign.pub`); repeatable. A signature by one of
    /// them must cover each bundle (`pack serve` also trusts its configuration's `keys`).
    #[arg(long, value_name = "PUB")]
    pub key: Vec<PathBuf>,

    /// Also accept signatures made for repositories matching PATTERN, besides the one a
    /// bundle is pulled from (a mirror of `ghcr.io/team/app`: `--allow-reference
    /// ghcr.io/team/app`). `*` stands for any characters within one `/`-separated
    /// component, `**` as the last component for any suffix; compared after docker's
    /// normalization. Repeatable. See docs/signing.md.
    #[arg(long, value_name = "PATTERN")]
    pub allow_reference: Vec<pack_packager::signing::ReferencePattern>,

    /// Load a native artifact only when this rebuilder (public key) attested its `.cwasm`
    /// with a signed rebuild attestation (`pack verify --rebuild --attest-key`);
    /// repeatable. See docs/provenance.md.
    #[arg(long, value_name = "PUB")]
    pub rebuilt_by: Vec<PathBuf>,

    /// How many distinct --rebuilt-by keys must have attested the artifact [default: 1].
    #[arg(long, value_name = "N", requires = "rebuilt_by")]
    pub rebuilds: Option<usize>,

    /// The content store for registry bundles [default: $PACK_STORE, else
    /// $XDG_DATA_HOME/pack/store, else ~/.local/share/pack/store].
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,

    #[command(flatten)]
    pub connect: ConnectArgs,
}

impl HostArgs {
    /// Sets the repositories allowed, the rebuilds required, the store and the registry
    /// connection of `options`.
    pub(crate) fn apply(&self, options: &mut pack_host::HostOptions) -> Result<()> {
        options.references.allow = self.allow_reference.clone();
        let rebuilders = pack_packager::signing::load_public_keys(&self.rebuilt_by)?;
        options
            .require_rebuilds(rebuilders, self.rebuilds)
            .map_err(|e| anyhow::anyhow!(e))?;
        options.store = self.store.clone();
        options.registry.connect = self.connect.options();
        Ok(())
    }
}
