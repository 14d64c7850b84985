//! `pack build` as named steps: **plan** (flags, `PACK_*` variables and `pack.toml`
//! merged: [`Build`]), **validate**, **compile** (through the local and the shared
//! cache), **publish** what the shared cache lacked, **package** the OCI index, **sign**
//! it. Each step reports through the printer and hands the next one what it needs; the
//! command (`commands/build.rs`) runs them in order and renders the result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use pack_compiler::compile::{self, Artifact, Cache, CacheSecret, CompileOptions, Profile};
use pack_compiler::validate::{self, Options};
use pack_compiler::wasm::Input;
use pack_compiler::wit::Wit;
use pack_packager::bundle::{
    BlobSource, BundleInput, BundleOptions, BundleSummary, Compilation, NativeArtifact,
    PortableConfig,
};
use pack_packager::signing::{SignOptions, SignatureFormat};

use crate::args::CompileArgs;
use crate::format::duration;

use crate::printer::{BOLD, Printer, RED};
use crate::progress::Progress;
use crate::remote_cache::{Fetched, RemoteCache, Source};

pub(crate) mod plan;

pub(crate) use plan::BuildPlan;

/// A planned build: what to build, where, and how.
pub(crate) struct Build {
    pub plan: BuildPlan,
    /// The compile flags, with the targets, CPU and profile of the plan.
    pub compile: CompileArgs,
    pub shared_cache: Option<SharedCache>,
    /// The zstd level of native layers; `None`: uncompressed.
    pub compression: Option<i32>,
    pub signature_format: SignatureFormat,
}

/// `--cache-repo` and what goes with it.
pub(crate) struct SharedCache {
    pub repository: String,
    pub key: Option<PathBuf>,
    pub trust: Vec<PathBuf>,
    pub connect: pack_registry_client::ConnectOptions,
}

/// The component, read and validated.
pub(crate) struct Validated {
    pub input: Input,
    pub portable: PortableConfig,
    /// The world it conforms to, when `--wit` was given.
    pub world: Option<String>,
}

/// Every target compiled (or taken from a cache).
pub(crate) struct Compiled {
    pub source_sha256: String,
    pub profile: Profile,
    pub artifacts: Vec<Artifact>,
    /// Where each artifact came from, in the same order.
    pub sources: Vec<Source>,
    /// The shared cache, when there is one, for publishing.
    remote: Option<RemoteCache>,
    /// The local cache, whose function cache segments are published.
    local: Option<Cache>,
    /// The scratch directory, where segments are prepared for publishing.
    scratch: PathBuf,
    /// Function cache segments fetched from the shared cache, and pushed to it.
    pub segments_fetched: usize,
    pub segments_pushed: usize,
}

impl Compiled {
    /// Artifacts taken from `--cache-repo`.
    pub fn registry_hits(&self) -> usize {
        self.sources
            .iter()
            .filter(|s| **s == Source::Registry)
            .count()
    }
}

impl Build {
    /// Validate: builds the component when `pack.toml` says how, reads it, and checks it
    /// against the world (or, without one, only reads what it imports and exports, for
    /// the portable config). `None`: it does not conform (reported; nothing is built).
    pub fn validate(&self, printer: &Printer) -> Result<Option<Validated>> {
        let plan = &self.plan;
        plan.run_build_command(printer, printer.quiet() || printer.json_output())?;
        let started = Instant::now();
        let input = Input::read(&plan.component)?;
        input.expect_component()?;
        let (portable, world) = match &plan.wit {
            Some(wit_path) => {
                let wit = Wit::load(wit_path)?;
                let world = wit.world(plan.world.as_deref())?;
                let report = validate::check(&input, &wit, world, Options::default())?;
                if !report.conforms {
                    crate::render::validation_report(printer, &plan.component, &report);
                    printer.error("the component does not conform to the world; nothing was built");
                    return Ok(None);
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
            duration(started.elapsed())
        ));
        Ok(Some(Validated {
            input,
            portable,
            world,
        }))
    }

    /// A scratch directory beside the layout, for the artifacts until they are packaged.
    pub fn scratch(&self) -> Result<tempfile::TempDir> {
        let parent = self
            .plan
            .layout
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        pack_fs::create_dir_all(&parent, pack_fs::DIR_MODE)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
        tempfile::Builder::new()
            .prefix(".pack-build-")
            .tempdir_in(&parent)
            .with_context(|| {
                format!(
                    "cannot create a scratch directory in `{}`",
                    parent.display()
                )
            })
    }

    /// Compile every target into `scratch`, through the local cache and, first, the
    /// shared one (verified entries go into the local cache, where the compiler finds
    /// them). `None`: a target failed (reported; nothing is written to the layout).
    pub fn compile(
        &self,
        printer: &Printer,
        validated: &Validated,
        scratch: &Path,
    ) -> Result<Option<Compiled>> {
        let input = &validated.input;
        let mut options = self.compile.options(printer, scratch.join("artifacts"))?;
        // An HTTP handler without a profile of its own gets one a serving host can bound.
        if self.compile.profile.is_none() && is_http_handler(&validated.portable.exports) {
            options.profile = Profile::http_handler();
        }
        let started = Instant::now();
        let progress = Progress::new(printer, !printer.json_output());
        let (remote, from_registry, segments_fetched) =
            self.fetch_shared(printer, input, &mut options, scratch, &progress)?;

        let outcome = compile::compile(input, &options, &progress).map_err(|e| match e {
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
            return Ok(None);
        }
        let sources: Vec<Source> = artifacts
            .iter()
            .zip(&from_registry)
            .map(|(a, remote)| Source::of(a, *remote))
            .collect();
        let compiled = Compiled {
            source_sha256: outcome.source_sha256,
            profile: options.profile,
            artifacts,
            sources,
            remote,
            local: options.cache,
            scratch: scratch.to_path_buf(),
            segments_fetched,
            segments_pushed: 0,
        };
        let hits = compiled.artifacts.iter().filter(|a| a.cache_hit).count();
        let registry_hits = compiled.registry_hits();
        let from_where = if compiled.remote.is_some() {
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
            compiled.artifacts.len(),
            duration(started.elapsed()),
        ));
        Ok(Some(compiled))
    }

    /// The shared cache's entries for `options`' targets, verified, into the local cache
    /// (one that lives as long as this build when there is none): the cache, which
    /// targets it had, and for how many of the others it had a function cache segment.
    fn fetch_shared(
        &self,
        printer: &Printer,
        input: &Input,
        options: &mut CompileOptions,
        scratch: &Path,
        progress: &Progress,
    ) -> Result<(Option<RemoteCache>, Vec<bool>, usize)> {
        let mut from_registry = vec![false; options.targets.len()];
        let Some(shared) = &self.shared_cache else {
            return Ok((None, from_registry, 0));
        };
        let mut cache = RemoteCache::open(
            &shared.repository,
            shared.key.as_deref(),
            &shared.trust,
            &shared.connect,
            scratch,
        )?;
        let local = options
            .cache
            .get_or_insert_with(|| {
                Cache::new(scratch.join("local-cache"), CacheSecret::ephemeral())
                    .with_functions(!self.compile.no_function_cache)
            })
            .clone();
        let mut segments = 0;
        for (index, target) in options.targets.iter().enumerate() {
            match cache.fetch(&local, input, target, &options.profile) {
                Fetched::Registry => {
                    from_registry[index] = true;
                    progress.mark_remote(index);
                }
                Fetched::Local => {}
                // No artifact: the functions another runner compiled, if any.
                Fetched::Missing | Fetched::Refused | Fetched::Skipped => {
                    if cache
                        .fetch_functions(&local, target, &options.profile)
                        .is_some()
                    {
                        segments += 1;
                    }
                }
            }
        }
        for warning in cache.take_warnings() {
            printer.warn(&warning);
        }
        Ok((Some(cache), from_registry, segments))
    }

    /// Publish: pushes to the shared cache the entries it lacked (when this build may
    /// write to it), and the function cache segment of every target that compiled new
    /// functions (counted in `segments_pushed`); returns how many entries.
    pub fn publish(
        &self,
        printer: &Printer,
        validated: &Validated,
        compiled: &mut Compiled,
    ) -> usize {
        let Some(cache) = &mut compiled.remote else {
            return 0;
        };
        let mut pushed = 0;
        if cache.writable() {
            for (artifact, source) in compiled.artifacts.iter().zip(&compiled.sources) {
                if *source != Source::Registry
                    && cache.publish(&validated.input, &compiled.profile, artifact)
                {
                    pushed += 1;
                }
            }
            if let Some(local) = &compiled.local {
                for artifact in &compiled.artifacts {
                    if artifact.functions.is_some_and(|f| f.compiled > 0)
                        && cache.publish_functions(
                            local,
                            &compiled.scratch,
                            &artifact.target,
                            &compiled.profile,
                        )
                    {
                        compiled.segments_pushed += 1;
                    }
                }
            }
        }
        for warning in cache.take_warnings() {
            printer.warn(&warning);
        }
        compiled.remote = None;
        pushed
    }

    /// Package: writes the index, its manifests and blobs into the layout.
    pub fn package(
        &self,
        printer: &Printer,
        validated: &Validated,
        compiled: &Compiled,
    ) -> Result<BundleSummary> {
        let plan = &self.plan;
        let bundle = BundleInput {
            component: BlobSource::File(plan.component.clone()),
            component_sha256: Some(compiled.source_sha256.clone()),
            portable: validated.portable.clone(),
            natives: compiled
                .artifacts
                .iter()
                .map(native_artifact)
                .collect::<Result<_>>()?,
            annotations: plan.annotations.clone(),
            created: pack_packager::bundle::source_date_epoch()?,
        };
        let started = Instant::now();
        let summary = pack_packager::bundle::build_bundle_with(
            &plan.layout,
            &plan.tag,
            &bundle,
            &BundleOptions {
                compression: self.compression,
            },
        )?;
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
            duration(started.elapsed())
        ));
        Ok(summary)
    }

    /// Sign the index this build wrote: its descriptor comes from the packaging step,
    /// never from the tag, which whoever can write the layout may have moved while the
    /// key was being decrypted. Returns the key's fingerprint; `None` without a key.
    pub fn sign(&self, printer: &Printer, summary: &BundleSummary) -> Result<Option<String>> {
        let plan = &self.plan;
        let Some(signing_key) = &plan.sign_key else {
            return Ok(None);
        };
        let started = Instant::now();
        let key = signing_key.load(printer)?;
        let layout = pack_packager::Layout::open(&plan.layout)?;
        let signed = pack_packager::signing::sign_descriptor(
            &layout,
            &summary.index,
            &plan.tag,
            &key,
            &SignOptions {
                reference: plan.reference.clone(),
                recursive: false,
                annotations: BTreeMap::new(),
                format: self.signature_format,
            },
        )?;
        // The compile provenance of each native artifact this build compiled, read back
        // from the index it just wrote (not from the tag).
        let bundle = pack_packager::Bundle::read_at(&layout, &plan.tag, summary.index.clone())?;
        pack_packager::provenance::sign_provenance(&layout, &bundle, &key)?;
        drop(key);
        if layout
            .resolve(&plan.tag)
            .ok()
            .is_none_or(|d| d.digest() != summary.index.digest())
        {
            printer.warn(&format!(
                "the tag `{}` of `{}` no longer points to the index this build wrote and \
                 signed ({}): something else changed the layout meanwhile",
                plan.tag,
                plan.layout.display(),
                summary.index.digest()
            ));
        }
        printer.status(&format!("signed in {}", duration(started.elapsed())));
        Ok(Some(signed.key.to_string()))
    }
}

/// The packager's view of one compiled artifact.
fn native_artifact(a: &Artifact) -> Result<NativeArtifact> {
    Ok(NativeArtifact {
        platform: a.platform.clone(),
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

/// Whether a component exports `wasi:http/incoming-handler` (any 0.2 version).
fn is_http_handler(exports: &[String]) -> bool {
    exports
        .iter()
        .any(|e| e.starts_with("wasi:http/incoming-handler@0.2"))
}
