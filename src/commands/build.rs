//! `pack build`: validate, compile, package and sign in one step.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use pack_compiler::compile::{
    self, Artifact, Cache, CacheSecret, CompileOptions, Profile, SecretError, resolve_targets,
    supported_targets,
};
use pack_compiler::validate::{self, Options};
use pack_compiler::wasm::Input;
use pack_compiler::wit::Wit;
use pack_packager::bundle::{
    BlobSource, BundleInput, BundleSummary, Compilation, NativeArtifact, PortableConfig,
};
use pack_packager::oci_spec::image::{Arch, Os, Platform, PlatformBuilder};

use crate::exit::Status;
use crate::manifest::{BuildFlags, BuildPlan, CompressionSetting};
use crate::printer::{BOLD, GREEN, Printer, RED};
use crate::progress::Progress;
use crate::remote_cache::{Fetched, RemoteCache, Source};

/// Build a signed, multi-platform OCI bundle from a component.
///
/// Validates the component against a WIT world (with --wit), precompiles it for every
/// target (through the same cache as `pack compile`), writes one OCI image index into
/// the layout (a portable wasm manifest plus one native manifest per target), and signs
/// the index when a key is given. Building into an existing layout adds or replaces the
/// tag and shares blobs (a blob already there is reused only when it hashes to its
/// digest; another file under that name is replaced); the layout's index.json is written
/// last, atomically. An existing layout that group or others can write is refused. What
/// gets signed is the index this build wrote, whatever the tag points to by then.
///
/// Arguments left out come from PACK_* environment variables, then from `pack.toml` in
/// the current directory (see docs/pack-toml.md); there, `[component] build` is run
/// first to produce the component.
#[derive(clap::Args, Debug)]
#[command(mut_arg("targets", |a| a.required(false).env("PACK_TARGET")))]
#[command(mut_arg("cpu", |a| a.env("PACK_CPU")))]
#[command(mut_arg("profile", |a| a.env("PACK_PROFILE")))]
#[command(after_help = "\
Examples:
  pack build                    # everything from ./pack.toml
  pack build app.wasm --target all -o out/app
  pack build app.wasm --wit wit/ --world cli -t linux/amd64/v3 -t linux/arm64 \\
      -o out/app --tag v1.2.0 --sign-key pack.key
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) pack build app.wasm -t all -o out/app
  pack build app.wasm -t all -o out/app \\
      --cache-repo ghcr.io/team/pack-cache --cache-key cache.key
  pack build app.wasm -t all -o out/app \\
      --cache-repo ghcr.io/team/pack-cache --cache-trust builder.pub

Exit status:
  0  the bundle was written (and signed)
  1  the component does not conform to the world, or a target failed to compile;
     nothing was written to the layout
  2  usage error or bad input (not a component, invalid wasm, bad WIT, unknown target,
     a layout that is not one or that group or others can write, an unreadable key,
     an invalid pack.toml)
  5  the component's build command (`[component] build` in pack.toml) failed

A shared cache (--cache-repo) never fails the build: an entry that is missing, not
signed by --cache-key or a --cache-trust key, tampered with, or a registry that cannot
be reached, is a warning, and the target is compiled. Whoever holds the private cache
key can put native code into every build that trusts it: give it only to trusted
builders, and --cache-trust (public keys) to the rest. See docs/cache.md.")]
pub struct BuildCommand {
    /// The component (`.wasm`) to package [pack.toml: `[component] path`].
    #[arg(env = "PACK_COMPONENT")]
    pub component: Option<PathBuf>,

    /// Validate against this WIT (file, or directory with `deps/`) first; a component that
    /// does not conform stops the build [pack.toml: `[wit] path`].
    #[arg(long, value_name = "PATH", env = "PACK_WIT")]
    pub wit: Option<PathBuf>,

    /// The world in --wit: `name` or `ns:pkg/name` [pack.toml: `[wit] world`].
    #[arg(long, value_name = "WORLD", env = "PACK_WORLD")]
    pub world: Option<String>,

    #[command(flatten)]
    pub compile: CompileArgs,

    /// Where to write: the layout (created when missing), the tag recorded in its
    /// index.json, and the repository the signature names.
    #[command(flatten)]
    pub bundle: crate::args::BundleArgs,

    /// Sign the index with this private key (PKCS#8 PEM from `pack key generate`; an
    /// encrypted key reads its password from PACK_KEY_PASSWORD) [pack.toml: `[sign] key`
    /// or `key-env`].
    #[arg(long, value_name = "KEY", env = "PACK_SIGN_KEY_FILE")]
    pub sign_key: Option<PathBuf>,

    /// With a signing key, which signatures to write: `bundle` (a sigstore bundle as an
    /// OCI 1.1 referrer), `legacy` (cosign's simple signing, `sha256-<hex>.sig`), or
    /// `both`. See docs/signing.md.
    #[arg(long, value_name = "FORMAT", default_value = "both")]
    pub signature_format: pack_packager::signing::SignatureFormat,

    /// `docker-reference` recorded in the signature [default: PACK_REPOSITORY or
    /// `[push] repository` of pack.toml, else the layout's directory name].
    #[arg(long, value_name = "REPO")]
    pub reference: Option<String>,

    /// An annotation on the image index, e.g.
    /// `org.opencontainers.image.source=https://...`. Repeatable.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub annotations: Vec<(String, String)>,

    /// A registry repository used as a compile cache shared by several machines
    /// (`registry/name`, no tag): each target's artifact is fetched from it when its entry
    /// verifies with --cache-key, and what it lacks is pushed after compiling. Credentials
    /// as for `pack push` (PACK_REGISTRY_USERNAME/PASSWORD, docker config).
    #[arg(long, value_name = "REFERENCE")]
    pub cache_repo: Option<String>,

    /// The key of the shared cache: a private key (PKCS#8 PEM; an encrypted one reads its
    /// password from PACK_KEY_PASSWORD) signs pushed entries and verifies fetched ones; a
    /// public key only verifies, and nothing is pushed. Only trusted builders should hold
    /// the private key: any holder can sign an entry for any component.
    #[arg(long, value_name = "KEY")]
    pub cache_key: Option<PathBuf>,

    /// Also use shared cache entries signed by this public key (PEM from `pack key
    /// generate`); repeatable. Without --cache-key, the build only reads the shared cache
    /// and needs no private key.
    #[arg(long = "cache-trust", value_name = "PUB")]
    pub cache_trust: Vec<PathBuf>,

    /// A PEM file of CA certificates to trust for the --cache-repo registry, besides the
    /// platform's roots; repeatable.
    #[arg(long, value_name = "PEM")]
    pub cache_ca_cert: Vec<PathBuf>,

    /// Reach the --cache-repo registry over plain HTTP, or HTTPS without checking its
    /// certificate. Loopback registries may use plain HTTP without it.
    #[arg(long)]
    pub cache_insecure: bool,

    /// The zstd level of the native manifests' layers (-7 to 22) [pack.toml: `[build]
    /// compression`; default: 3]. The portable manifest's component is never compressed.
    #[arg(long, value_name = "LEVEL", allow_hyphen_values = true, conflicts_with = "no_compression",
          value_parser = clap::value_parser!(i32).range(-7..=22))]
    pub compression_level: Option<i32>,

    /// Write every layer uncompressed [pack.toml: `[build] compression = false`].
    #[arg(long)]
    pub no_compression: bool,

    /// The global `--json` (docs/json.md).
    #[arg(skip)]
    pub json: bool,
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
fn parse_target(value: &str) -> Result<String, String> {
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

pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// What `--json` prints.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSummary<'a> {
    layout: &'a std::path::Path,
    tag: &'a str,
    /// `sha256:...` of the image index: the bundle's identity.
    digest: String,
    world: Option<&'a str>,
    platforms: Vec<JsonPlatform>,
    blobs_written: usize,
    blobs_reused: usize,
    /// Digests under which the layout had another file, replaced by the blob.
    blobs_replaced: &'a [String],
    compiled: usize,
    cache_hits: usize,
    /// Of `cache_hits`, those fetched from the shared cache (--cache-repo).
    registry_hits: usize,
    /// Entries pushed to the shared cache.
    cache_pushed: usize,
    /// Function cache segments fetched from the shared cache, and pushed to it.
    function_segments_fetched: usize,
    function_segments_pushed: usize,
    signed: bool,
    key: Option<String>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonPlatform {
    platform: String,
    manifest: String,
    triple: Option<String>,
    cpu: Option<String>,
    cache_hit: Option<bool>,
    /// `compiled`, `local-cache` or `registry`.
    source: Option<Source>,
    /// When Cranelift ran with the function-level cache: functions compiled and taken
    /// from the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    functions: Option<compile::FunctionStats>,
}

impl BuildCommand {
    /// Merges flags, PACK_* variables and pack.toml (in that order).
    fn plan(&mut self) -> Result<BuildPlan> {
        let plan = BuildPlan::resolve(BuildFlags {
            manifest: self.bundle.manifest.take(),
            component: self.component.take(),
            wit: self.wit.take(),
            world: self.world.take(),
            targets: std::mem::take(&mut self.compile.targets),
            cpu: self.compile.cpu.take(),
            profile: self.compile.profile.take(),
            layout: self.bundle.layout.take(),
            tag: self.bundle.tag.take(),
            repository: self.bundle.repository.take(),
            sign_key: self.sign_key.take(),
            reference: self.reference.take(),
            annotations: std::mem::take(&mut self.annotations),
        })?;
        for target in &plan.targets {
            parse_target(target).map_err(|e| anyhow::anyhow!(e))?;
        }
        self.compile.targets.clone_from(&plan.targets);
        self.compile.cpu.clone_from(&plan.cpu);
        self.compile.profile.clone_from(&plan.profile);
        // `[cache]` fills what `--cache-repo`/`--cache-key`/`--cache-trust` left unset.
        plan.cache
            .apply_to(&mut self.cache_repo, &mut self.cache_key);
        plan.cache.apply_trust_to(&mut self.cache_trust);
        plan.cache
            .apply_connection_to(&mut self.cache_ca_cert, &mut self.cache_insecure);
        let keyed = self.cache_key.is_some() || !self.cache_trust.is_empty();
        if self.cache_repo.is_some() != keyed {
            anyhow::bail!(
                "a shared compile cache needs both a repository and a key: pass --cache-repo \
                 and --cache-key (or --cache-trust), or set `repository` and `key` (or \
                 `trust`) under `[cache]` in pack.toml"
            );
        }
        Ok(plan)
    }

    pub fn execute(mut self, printer: &Printer) -> Result<Status> {
        let plan = self.plan()?;
        for warning in &plan.warnings {
            printer.warn(warning);
        }
        pack_packager::reference::check_tag(&plan.tag)?;
        // An existing layout others can write is refused before anything is built.
        if plan.layout.join("oci-layout").exists() {
            pack_packager::bundle::check_not_shared(&plan.layout)?;
        }
        let started = std::time::Instant::now();
        plan.run_build_command(printer, printer.quiet() || self.json)?;
        let validate_started = std::time::Instant::now();
        let input = Input::read(&plan.component)?;
        input.expect_component()?;

        // 1. Validate (or, without a world, only read what the component imports and
        //    exports, for the portable config).
        let (portable, world) = match &plan.wit {
            Some(wit_path) => {
                let wit = Wit::load(wit_path)?;
                let world = wit.world(plan.world.as_deref())?;
                let report = validate::check(&input, &wit, world, Options::default())?;
                if !report.conforms {
                    crate::render::validation_report(printer, &plan.component, &report);
                    printer.error("the component does not conform to the world; nothing was built");
                    return Ok(Status::Negative);
                }
                let portable = PortableConfig {
                    exports: report.exports.clone(),
                    imports: report.imports.clone(),
                    target_world: Some(report.world.clone()),
                };
                (portable, Some(report.world))
            }
            None => {
                let iface = validate::describe(&input)?;
                let portable = PortableConfig {
                    exports: iface.exports,
                    imports: iface.imports,
                    target_world: None,
                };
                (portable, None)
            }
        };
        printer.status(&format!(
            "validated {} in {}",
            plan.component.display(),
            crate::format::duration(validate_started.elapsed())
        ));

        // 2. Compile every target into a scratch directory beside the layout.
        let parent = plan
            .layout
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        pack_fs::create_dir_all(&parent, pack_fs::DIR_MODE)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
        let scratch = tempfile::Builder::new()
            .prefix(".pack-build-")
            .tempdir_in(&parent)
            .with_context(|| {
                format!(
                    "cannot create a scratch directory in `{}`",
                    parent.display()
                )
            })?;
        let mut options = self
            .compile
            .options(printer, scratch.path().join("artifacts"))?;
        // An HTTP handler without a profile of its own gets one a serving host can bound.
        if self.compile.profile.is_none() && is_http_handler(&portable.exports) {
            options.profile = pack_compiler::compile::Profile::http_handler();
        }
        let compile_started = std::time::Instant::now();
        let progress = Progress::new(printer, !self.json);

        // 2a. The shared cache: verified entries go into the local cache, where the
        //     compiler finds them.
        let mut remote = None;
        let mut from_registry = vec![false; options.targets.len()];
        let mut segments_fetched = 0;
        if let Some(repo) = &self.cache_repo {
            let connect = pack_registry_client::ConnectOptions {
                insecure: self.cache_insecure,
                ca_certificates: self.cache_ca_cert.clone(),
                ..Default::default()
            };
            let mut cache = RemoteCache::open(
                repo,
                self.cache_key.as_deref(),
                &self.cache_trust,
                &connect,
                scratch.path(),
            )?;
            // Without a local cache, fetched entries pass through one that lives as long
            // as this build.
            let local = options
                .cache
                .get_or_insert_with(|| {
                    Cache::new(scratch.path().join("local-cache"), CacheSecret::ephemeral())
                        .with_functions(!self.compile.no_function_cache)
                })
                .clone();
            for (index, target) in options.targets.iter().enumerate() {
                match cache.fetch(&local, &input, target, &options.profile) {
                    Fetched::Registry => {
                        from_registry[index] = true;
                        progress.mark_remote(index);
                    }
                    Fetched::Local => {}
                    // No artifact: the functions another runner compiled, if any.
                    _ => {
                        if cache
                            .fetch_functions(&local, target, &options.profile)
                            .is_some()
                        {
                            segments_fetched += 1;
                        }
                    }
                }
            }
            for warning in cache.take_warnings() {
                printer.warn(&warning);
            }
            remote = Some(cache);
        }

        let outcome = compile::compile(&input, &options, &progress).map_err(|e| match e {
            compile::Error::Input(e) => anyhow::Error::from(e),
            other => other.into(),
        });
        progress.clear();
        let outcome = outcome?;
        let mut artifacts = Vec::new();
        let mut failed = false;
        for result in outcome.results {
            match result {
                Ok(artifact) => artifacts.push(artifact),
                Err(error) => {
                    failed = true;
                    printer.result(&format!(
                        "{RED}✗{RED:#} {BOLD}{}{BOLD:#}  failed",
                        error.target()
                    ));
                    crate::diagnostics::report(printer, &anyhow::Error::from(error));
                }
            }
        }
        if failed {
            printer.error("a target failed to compile; nothing was written to the layout");
            return Ok(Status::Negative);
        }
        let sources: Vec<Source> = artifacts
            .iter()
            .zip(&from_registry)
            .map(|(a, remote)| Source::of(a, *remote))
            .collect();
        let hits = artifacts.iter().filter(|a| a.cache_hit).count();
        let registry_hits = sources.iter().filter(|s| **s == Source::Registry).count();
        let from_where = if remote.is_some() {
            let segments = if segments_fetched > 0 {
                format!("; the function cache of {segments_fetched} from the registry")
            } else {
                String::new()
            };
            format!(
                "{} from the local cache, {registry_hits} from the registry{segments}",
                hits - registry_hits
            )
        } else {
            format!("{hits} from cache")
        };
        printer.status(&format!(
            "compiled {} target(s) ({from_where}) in {}",
            artifacts.len(),
            crate::format::duration(compile_started.elapsed()),
        ));

        // 2b. Push what the shared cache lacked.
        let mut pushed = 0;
        let mut segments_pushed = 0;
        if let Some(cache) = &mut remote {
            if cache.writable() {
                for (artifact, source) in artifacts.iter().zip(&sources) {
                    if *source != Source::Registry
                        && cache.publish(&input, &options.profile, artifact)
                    {
                        pushed += 1;
                    }
                }
                // The function cache of every target that compiled new functions.
                if let Some(local) = &options.cache {
                    for artifact in &artifacts {
                        if artifact.functions.is_some_and(|f| f.compiled > 0)
                            && cache.publish_functions(
                                local,
                                scratch.path(),
                                &artifact.target,
                                &options.profile,
                            )
                        {
                            segments_pushed += 1;
                        }
                    }
                }
            }
            for warning in cache.take_warnings() {
                printer.warn(&warning);
            }
        }
        drop(remote);

        // 3. Package.
        let bundle = BundleInput {
            component: BlobSource::File(plan.component.clone()),
            component_sha256: Some(outcome.source_sha256.clone()),
            portable,
            natives: artifacts
                .iter()
                .map(native_artifact)
                .collect::<Result<_>>()?,
            annotations: plan.annotations.clone(),
            created: pack_packager::bundle::source_date_epoch()?,
        };
        let package_started = std::time::Instant::now();
        let compression = match (
            self.no_compression,
            self.compression_level,
            plan.compression,
        ) {
            (true, _, _) => None,
            (false, Some(level), _) => Some(level),
            (false, None, Some(CompressionSetting::Enabled(false))) => None,
            (false, None, Some(CompressionSetting::Level(level))) => {
                if !pack_packager::compression::LEVELS.contains(&level) {
                    anyhow::bail!(
                        "`[build] compression = {level}` is not a zstd level (-7 to 22, or \
                         false)"
                    );
                }
                Some(level)
            }
            (false, None, _) => Some(pack_packager::compression::DEFAULT_LEVEL),
        };
        let summary = pack_packager::bundle::build_bundle_with(
            &plan.layout,
            &plan.tag,
            &bundle,
            &pack_packager::bundle::BundleOptions { compression },
        )?;
        drop(scratch);
        for digest in &summary.blobs_replaced {
            printer.warn(&format!(
                "`{}` had a file named {digest} that was not that blob; it was replaced",
                plan.layout.display()
            ));
        }
        printer.status(&format!(
            "packaged {}:{} in {}",
            plan.layout.display(),
            plan.tag,
            crate::format::duration(package_started.elapsed())
        ));

        // 4. Sign the index this build wrote: its descriptor comes from the packaging
        //    step, never from the tag, which whoever can write the layout may have moved
        //    while the key was being decrypted.
        let mut key_fingerprint = None;
        if let Some(signing_key) = &plan.sign_key {
            let sign_started = std::time::Instant::now();
            let key = signing_key.load(printer)?;
            let layout = pack_packager::Layout::open(&plan.layout)?;
            let signed = pack_packager::signing::sign_descriptor(
                &layout,
                &summary.index,
                &plan.tag,
                &key,
                &pack_packager::signing::SignOptions {
                    reference: plan.reference.clone(),
                    recursive: false,
                    annotations: BTreeMap::new(),
                    format: self.signature_format,
                },
            )?;
            drop(key);
            if layout
                .resolve(&plan.tag)
                .ok()
                .is_none_or(|d| d.digest() != summary.index.digest())
            {
                printer.warn(&format!(
                    "the tag `{}` of `{}` no longer points to the index this build wrote \
                     and signed ({}): something else changed the layout meanwhile",
                    plan.tag,
                    plan.layout.display(),
                    summary.index.digest()
                ));
            }
            key_fingerprint = Some(signed.key.to_string());
            printer.status(&format!(
                "signed in {}",
                crate::format::duration(sign_started.elapsed())
            ));
        }

        if self.json {
            let mut json = json_summary(
                &plan,
                &summary,
                &artifacts,
                &sources,
                world.as_deref(),
                key_fingerprint,
            );
            json.registry_hits = registry_hits;
            json.cache_pushed = pushed;
            json.function_segments_fetched = segments_fetched;
            json.function_segments_pushed = segments_pushed;
            printer.json(&json)?;
        } else {
            print_summary(
                printer,
                &plan,
                &summary,
                &artifacts,
                &sources,
                key_fingerprint.as_deref(),
                started.elapsed(),
            );
        }
        Ok(Status::Success)
    }
}

/// The packager's view of one compiled artifact.
fn native_artifact(a: &Artifact) -> Result<NativeArtifact> {
    let mut platform = PlatformBuilder::default()
        .os(Os::from(a.platform.os.as_str()))
        .architecture(Arch::from(a.platform.architecture.as_str()));
    if let Some(variant) = &a.platform.variant {
        platform = platform.variant(variant.clone());
    }
    let platform: Platform = platform.build().context("building an OCI platform")?;
    Ok(NativeArtifact {
        platform,
        cwasm: BlobSource::File(a.path.clone()),
        cwasm_sha256: Some(a.sha256.clone()),
        compilation: Compilation {
            wasmtime_version: a.wasmtime_version.clone(),
            compatibility_hash: a.compatibility_hash.clone(),
            target_triple: a.triple.clone(),
            cpu_preset: Some(a.cpu.preset.clone()),
            cpu_flags: a.cpu.flags.clone(),
            profile: serde_json::to_value(&a.profile)?,
        },
    })
}

fn json_summary<'a>(
    cmd: &'a BuildPlan,
    summary: &'a BundleSummary,
    artifacts: &[Artifact],
    sources: &[Source],
    world: Option<&'a str>,
    key: Option<String>,
) -> JsonSummary<'a> {
    let mut platforms = vec![JsonPlatform {
        platform: "wasip2/wasm".to_string(),
        manifest: summary.portable.digest().to_string(),
        triple: None,
        cpu: None,
        cache_hit: None,
        source: None,
        functions: None,
    }];
    for native in &summary.natives {
        let p = native.platform().as_ref();
        let position = p.and_then(|p| {
            artifacts.iter().position(|a| {
                a.platform.os == p.os().to_string()
                    && a.platform.architecture == p.architecture().to_string()
                    && a.platform.variant.as_deref() == p.variant().as_deref()
            })
        });
        let artifact = position.map(|i| &artifacts[i]);
        platforms.push(JsonPlatform {
            platform: p
                .map(pack_packager::bundle::platform_string)
                .unwrap_or_default(),
            manifest: native.digest().to_string(),
            triple: artifact.map(|a| a.triple.clone()),
            cpu: artifact.map(|a| a.cpu.preset.clone()),
            cache_hit: artifact.map(|a| a.cache_hit),
            source: position.and_then(|i| sources.get(i).copied()),
            functions: artifact.and_then(|a| a.functions),
        });
    }
    JsonSummary {
        layout: &cmd.layout,
        tag: &cmd.tag,
        digest: summary.index.digest().to_string(),
        world,
        platforms,
        blobs_written: summary.blobs_written,
        blobs_reused: summary.blobs_reused,
        blobs_replaced: &summary.blobs_replaced,
        compiled: artifacts.iter().filter(|a| !a.cache_hit).count(),
        cache_hits: artifacts.iter().filter(|a| a.cache_hit).count(),
        registry_hits: 0,
        cache_pushed: 0,
        function_segments_fetched: 0,
        function_segments_pushed: 0,
        signed: key.is_some(),
        key,
    }
}

fn print_summary(
    printer: &Printer,
    cmd: &BuildPlan,
    summary: &BundleSummary,
    artifacts: &[Artifact],
    sources: &[Source],
    key: Option<&str>,
    elapsed: std::time::Duration,
) {
    if printer.quiet() {
        printer.result(&format!(
            "{}:{}@{}",
            cmd.layout.display(),
            cmd.tag,
            summary.index.digest()
        ));
        return;
    }
    printer.result(&format!(
        "{GREEN}✓{GREEN:#} built {BOLD}{}:{}{BOLD:#} in {}",
        cmd.layout.display(),
        cmd.tag,
        crate::format::duration(elapsed)
    ));
    printer.result(&format!("  digest    {}", summary.index.digest()));
    let mut names = vec!["wasip2/wasm".to_string()];
    names.extend(artifacts.iter().map(|a| a.target.to_string()));
    printer.result(&format!("  platforms {}", names.join(", ")));
    for (i, (artifact, source)) in artifacts.iter().zip(sources).enumerate() {
        let label = if i == 0 { "targets" } else { "" };
        let functions = artifact
            .functions
            .map(|f| format!(" ({})", crate::progress::functions(&f)))
            .unwrap_or_default();
        printer.result(&format!(
            "  {label:<9} {}: {}{functions}",
            artifact.target,
            source.describe()
        ));
    }
    printer.result(&format!(
        "  blobs     {} written, {} already there",
        summary.blobs_written, summary.blobs_reused
    ));
    match key {
        Some(key) => printer.result(&format!("  signed    by key {key}")),
        None => printer.result("  signed    no (pass --sign-key, or run `pack sign` later)"),
    }
}

/// Whether a component exports `wasi:http/incoming-handler` (any 0.2 version).
fn is_http_handler(exports: &[String]) -> bool {
    exports
        .iter()
        .any(|e| e.starts_with("wasi:http/incoming-handler@0.2"))
}
