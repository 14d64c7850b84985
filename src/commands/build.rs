//! `pack build`: validate, compile, package and sign in one step.

use std::path::PathBuf;

use anyhow::Result;
use pack_compiler::compile::Artifact;
use pack_packager::bundle::BundleSummary;

use crate::args::{CompileArgs, parse_target};
use crate::build::plan::{DEPRECATED_SIGN_KEY_ENV, SigningKey};
use crate::build::{Build, BuildPlan, Compiled, SharedCache};
use crate::exit::Status;
use crate::manifest::{CacheTable, CompressionSetting, Manifest, missing};
use crate::printer::{BOLD, GREEN, Printer};
use crate::remote_cache::Source;

/// Build a signed, multi-platform OCI bundle from a component.
///
/// Validates the component against a WIT world (with --wit), precompiles it for every
/// target (through the same cache as `pack compile`), writes one OCI image index into
/// the layout (a portable wasm manifest plus one native manifest per target), and signs
/// the index when a key is given, with the compile provenance of each native artifact
/// (an SLSA provenance v1 Statement naming the component and the settings, stored as a
/// referrer of its native manifest; docs/provenance.md). Building into an existing layout adds or replaces the
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
    functions: Option<pack_compiler::compile::FunctionStats>,
}

impl BuildCommand {
    /// Merges the flags (each holding its `PACK_*` variable when left out: clap reads
    /// them) with `pack.toml`; the flags are taken, the compile flags given back merged.
    fn resolve_plan(&mut self) -> Result<BuildPlan> {
        let loaded = Manifest::load(self.bundle.manifest.take().as_deref())?;
        let empty = Manifest::default();
        let m = loaded.as_ref().map_or(&empty, |l| &l.manifest);
        let rel = |p: &PathBuf| loaded.as_ref().map_or(p.clone(), |l| l.path_of(p));

        let from_file = self.component.is_none();
        let component = self
            .component
            .take()
            .or_else(|| m.component.path.as_ref().map(rel))
            .ok_or_else(|| {
                missing(
                    "component",
                    "COMPONENT",
                    "PACK_COMPONENT",
                    "[component] path",
                )
            })?;
        let build_command = match (&m.component.build, &loaded) {
            (Some(cmd), Some(l)) if from_file => Some((cmd.clone(), l.dir.clone())),
            _ => None,
        };
        // A WIT path given by flag or variable comes with its own world (or none).
        let wit_overridden = self.wit.is_some();
        let wit = self.wit.take().or_else(|| m.wit.path.as_ref().map(rel));
        let world = self
            .world
            .take()
            .or_else(|| (!wit_overridden).then(|| m.wit.world.clone()).flatten());
        if world.is_some() && wit.is_none() {
            anyhow::bail!("a world needs a WIT path: pass --wit, set PACK_WIT, or `[wit] path`");
        }
        let targets = if self.compile.targets.is_empty() {
            m.build.targets.clone()
        } else {
            Some(std::mem::take(&mut self.compile.targets))
        }
        .ok_or_else(|| missing("target", "--target", "PACK_TARGET", "[build] targets"))?;
        let cpu = self.compile.cpu.take().or_else(|| m.build.cpu.clone());
        let profile = self
            .compile
            .profile
            .take()
            .or_else(|| m.build.profile.as_ref().map(rel));
        let layout = self
            .bundle
            .layout
            .take()
            .or_else(|| m.build.output.as_ref().map(rel))
            .ok_or_else(|| missing("output layout", "--output", "PACK_OUTPUT", "[build] output"))?;
        let tag = self
            .bundle
            .tag
            .take()
            .or_else(|| m.build.tag.clone())
            .unwrap_or_else(|| pack_packager::reference::DEFAULT_TAG.to_string());
        let password_var = m
            .sign
            .password_env
            .clone()
            .unwrap_or_else(|| crate::keys::PASSWORD_ENV.to_string());
        let mut warnings = Vec::new();
        let deprecated_key = match std::env::var_os(DEPRECATED_SIGN_KEY_ENV) {
            Some(path) if self.sign_key.is_none() && !path.is_empty() => {
                warnings.push(format!(
                    "{DEPRECATED_SIGN_KEY_ENV} is deprecated: set PACK_SIGN_KEY_FILE instead"
                ));
                Some(PathBuf::from(path))
            }
            _ => None,
        };
        let sign_key = match self.sign_key.take().or(deprecated_key) {
            Some(path) => Some(SigningKey::File(path)),
            None => match (&m.sign.key, &m.sign.key_env) {
                (Some(path), _) => Some(SigningKey::File(rel(path))),
                (None, Some(var)) => Some(SigningKey::Env {
                    var: var.clone(),
                    password_var,
                }),
                (None, None) => None,
            },
        };
        let reference = self
            .reference
            .take()
            .or_else(|| m.sign.reference.clone())
            .or(self.bundle.repository.take())
            .or_else(|| m.push.repository.clone());
        let mut annotations = m.annotations.clone();
        annotations.extend(std::mem::take(&mut self.annotations));
        let manifest_secret_vars = [&m.sign.key_env, &m.sign.password_env]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Ok(BuildPlan {
            component,
            build_command,
            wit,
            world,
            targets,
            cpu,
            profile,
            layout,
            tag,
            sign_key,
            reference,
            annotations,
            cache: CacheTable {
                repository: m.cache.repository.clone(),
                key: m.cache.key.as_ref().map(rel),
                trust: m.cache.trust.iter().map(rel).collect(),
                ca_cert: m.cache.ca_cert.iter().map(rel).collect(),
                insecure: m.cache.insecure,
            },
            compression: m.build.compression,
            manifest_secret_vars,
            warnings,
        })
    }

    /// Plan: merges flags, PACK_* variables and pack.toml (in that order).
    fn plan(mut self) -> Result<Build> {
        let plan = self.resolve_plan()?;
        for target in &plan.targets {
            parse_target(target).map_err(|e| anyhow::anyhow!(e))?;
        }
        pack_packager::reference::check_tag(&plan.tag)?;
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
        let shared_cache = self.cache_repo.map(|repository| SharedCache {
            repository,
            key: self.cache_key,
            trust: self.cache_trust,
            connect: pack_registry_client::ConnectOptions {
                insecure: self.cache_insecure,
                ca_certificates: self.cache_ca_cert,
                ..Default::default()
            },
        });
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
        Ok(Build {
            plan,
            compile: self.compile,
            shared_cache,
            compression,
            signature_format: self.signature_format,
        })
    }

    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let build = self.plan()?;
        for warning in &build.plan.warnings {
            printer.warn(warning);
        }
        // An existing layout others can write is refused before anything is built.
        if build.plan.layout.join("oci-layout").exists() {
            pack_packager::bundle::check_not_shared(&build.plan.layout)?;
        }
        let started = std::time::Instant::now();
        let Some(validated) = build.validate(printer)? else {
            return Ok(Status::Negative);
        };
        let scratch = build.scratch()?;
        let Some(mut compiled) = build.compile(printer, &validated, scratch.path())? else {
            return Ok(Status::Negative);
        };
        let pushed = build.publish(printer, &validated, &mut compiled);
        let summary = build.package(printer, &validated, &compiled)?;
        drop(scratch);
        let key = build.sign(printer, &summary)?;

        if printer.json_output() {
            let json = json_summary(
                &build.plan,
                &summary,
                &compiled,
                pushed,
                validated.world.as_deref(),
                key,
            );
            printer.json(&json)?;
        } else {
            print_summary(
                printer,
                &build.plan,
                &summary,
                &compiled.artifacts,
                &compiled.sources,
                key.as_deref(),
                started.elapsed(),
            );
        }
        Ok(Status::Success)
    }
}

fn json_summary<'a>(
    cmd: &'a BuildPlan,
    summary: &'a BundleSummary,
    compiled: &Compiled,
    pushed: usize,
    world: Option<&'a str>,
    key: Option<String>,
) -> JsonSummary<'a> {
    let (artifacts, sources) = (&compiled.artifacts, &compiled.sources);
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
        let position = p.and_then(|p| artifacts.iter().position(|a| a.platform == *p));
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
        registry_hits: compiled.registry_hits(),
        cache_pushed: pushed,
        function_segments_fetched: compiled.segments_fetched,
        function_segments_pushed: compiled.segments_pushed,
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
