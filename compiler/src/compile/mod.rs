//! Ahead-of-time compilation of a component (or core module) for several targets.
//!
//! [`compile`] turns one [`Input`] into one artifact per [`Target`], in parallel and
//! bounded by [`CompileOptions::jobs`], reusing the [`Cache`] when it can. A target that
//! fails (a compiler error, or a panic inside Cranelift) does not stop the others: every
//! result is returned. Progress goes to a [`Reporter`].
//!
//! Artifacts are reproducible: the same input, targets, CPU presets and [`Profile`] give
//! byte-identical files, whatever `jobs` is and whether they came from the cache.

mod admit;
mod cache;
mod error;
mod fsutil;
mod functions;
mod panics;
mod profile;
mod report;
mod reporter;
mod secret;
mod target;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use cache::{
    Cache, CacheInfo, EntryMeta, PruneOptions, PruneReport, VersionInfo, wasmtime_version,
};
pub use functions::{
    AdmitFunctionsError, DEFAULT_SEGMENT_LIMIT, FunctionStats, SegmentError, segment_key,
};
pub use profile::{
    Collector, Inlining, OptLevel, Profile, RegallocAlgorithm, Settings, feature_names,
};
pub use secret::{CacheSecret, MIN_SECRET_LEN, SECRET_ENV, SecretError, SecretOrigin};
pub use target::{
    ALL, Arch, Cpu, CpuPreset, Os, PLATFORMS, PRESETS, Platform, Target, native_flags,
    resolve_targets, supported_targets,
};

use crate::wasm::{Input, Kind};
use cache::Lookup;

pub use admit::{AdmitError, Claimed, admit};
pub use error::{Error, TargetError};
use panics::{POOL_THREAD_PREFIX, panic_message, silence_compiler_panics};
use report::profile_info;
pub use report::{Artifact, CpuInfo, Failure, ProfileInfo, Report};
pub use reporter::{NoReporter, Reporter, Stage};

/// How to compile.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    pub targets: Vec<Target>,
    pub profile: Profile,
    /// Where artifacts go (created if missing).
    pub out_dir: PathBuf,
    /// `None` compiles without reading or writing a cache.
    pub cache: Option<Cache>,
    /// Targets compiled at once, and threads used; 0 means one per core.
    pub jobs: usize,
    /// The file stem of artifacts; by default the input's file name without `.wasm`
    /// (and without `.component`/`.module` before it).
    pub stem: Option<String>,
}

/// What [`compile`] returns: one result per target, in the order of the options.
#[derive(Debug)]
pub struct Outcome {
    pub source_sha256: String,
    pub results: Vec<Result<Artifact, TargetError>>,
}

impl Outcome {
    pub fn all_ok(&self) -> bool {
        self.results.iter().all(|r| r.is_ok())
    }
}

/// The artifact file stem for `input`: its file name without `.wasm`, and without a
/// `.component` or `.module` before that.
pub fn default_stem(input: &Path) -> String {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let name = name.strip_suffix(".wasm").unwrap_or(&name);
    let name = name
        .strip_suffix(".component")
        .or_else(|| name.strip_suffix(".module"))
        .unwrap_or(name);
    if name.is_empty() {
        "out".into()
    } else {
        name.into()
    }
}

/// The cache key of `target`: sha256 over the input's digest, the wasmtime version, the
/// input kind, the target triple, the CPU flags and the profile's digest.
pub fn cache_key(source_sha256: &str, kind: Kind, target: &Target, profile: &Profile) -> String {
    let input = format!("input {source_sha256}\nkind {kind:?}\n");
    engine_key("pack-cache v1", &input, target, profile)
}

/// sha256 (hex) over the lines `first`, `wasmtime <version>`, then `input` (zero or
/// more lines, each ending in a newline), then the target triple, its CPU flags and the
/// profile's digest: what the compiled code depends on besides its input.
fn engine_key(first: &str, input: &str, target: &Target, profile: &Profile) -> String {
    let text = format!(
        "{first}\nwasmtime {}\n{input}target {}\ncpu {}\nprofile {}\n",
        wasmtime_version(),
        target.triple(),
        target.cpu().flags().join(","),
        profile.sha256(),
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// sha256 (hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256 (hex) of the input's bytes: the `source_sha256` of artifacts and cache keys.
pub fn source_sha256(input: &Input) -> String {
    hex::encode(Sha256::digest(&*input.bytes))
}

/// sha256 (hex) of `Engine::precompile_compatibility_hash`, stable across builds.
pub use pack_engine_settings::compatibility_hash;

/// The wasmtime configuration for `target` with `profile`: the target's triple and CPU
/// flags explicitly (so nothing is inferred from the compiling machine), then the
/// profile.
pub fn engine_config(target: &Target, profile: &Profile) -> wasmtime::Result<wasmtime::Config> {
    let mut config = wasmtime::Config::new();
    config.target(&target.triple())?;
    for flag in target.cpu().flags() {
        // SAFETY: these settings only describe the machine the code is for; loading the
        // artifact checks them against the machine it runs on.
        unsafe {
            match flag.split_once('=') {
                Some((name, value)) => config.cranelift_flag_set(name, value),
                None => config.cranelift_flag_enable(&flag),
            };
        }
    }
    profile.apply(&mut config);
    Ok(config)
}

/// Compiles `input` for every target of `options`. Returns an [`Error`] only for what
/// fails every target: an invalid input (same messages as `pack validate`), an output
/// directory that cannot be created, no targets. Everything else is a per-target
/// result.
pub fn compile(
    input: &Input,
    options: &CompileOptions,
    reporter: &dyn Reporter,
) -> Result<Outcome, Error> {
    if options.targets.is_empty() {
        return Err(Error::NoTargets);
    }
    fsutil::create_dir_all(&options.out_dir).map_err(|source| Error::Output {
        path: options.out_dir.clone(),
        source,
    })?;
    let source_sha256 = source_sha256(input);
    let stem = options
        .stem
        .clone()
        .unwrap_or_else(|| default_stem(&input.path));
    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    for (index, target) in options.targets.iter().enumerate() {
        reporter.on_queued(index, target);
    }
    // Cranelift runs on this pool (wasmtime compiles functions in parallel with rayon,
    // which uses the pool it is called from). Targets are fed to it by `jobs` threads,
    // so at most `jobs` targets are in flight and at most `jobs` threads compile.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("{POOL_THREAD_PREFIX}{i}"))
        .build()
        .expect("a thread pool");
    silence_compiler_panics();
    let job = Job {
        input,
        options,
        reporter,
        source_sha256: &source_sha256,
        stem: &stem,
        pool: &pool,
    };
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Artifact, TargetError>>>> =
        options.targets.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(options.targets.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(target) = options.targets.get(index) else {
                        break;
                    };
                    let result = job.run(index, target);
                    reporter.on_complete(index, result.as_ref());
                    *slots[index].lock().expect("result slot") = Some(result);
                }
            });
        }
    });
    let results: Vec<Result<Artifact, TargetError>> = slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .expect("result slot")
                .expect("every target ran")
        })
        .collect();
    // wasmtime validates as it compiles. When it refused the input, tell an invalid
    // input (bad for every target, reported like `pack validate` does) from a problem
    // of one target.
    if results
        .iter()
        .any(|r| matches!(r, Err(TargetError::Compile { .. })))
    {
        input.validate()?;
    }
    Ok(Outcome {
        source_sha256,
        results,
    })
}

struct Job<'a> {
    input: &'a Input,
    options: &'a CompileOptions,
    reporter: &'a dyn Reporter,
    source_sha256: &'a str,
    stem: &'a str,
    pool: &'a rayon::ThreadPool,
}

impl Job<'_> {
    fn run(&self, index: usize, target: &Target) -> Result<Artifact, TargetError> {
        let started = Instant::now();
        let profile = &self.options.profile;
        let file = format!("{}.{}.cwasm", self.stem, target.file_suffix());
        let path = self.options.out_dir.join(&file);
        let key = cache_key(self.source_sha256, self.input.kind, target, profile);
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TargetError::Write {
                target: target.clone(),
                path,
                source,
            }
        };
        let artifact = |meta: &EntryMeta, cache_hit: bool, functions| Artifact {
            target: target.clone(),
            triple: target.triple(),
            platform: target.oci_platform(),
            cpu: CpuInfo {
                preset: target.cpu().name().to_string(),
                native: target.cpu().is_native(),
                flags: target.cpu().flags(),
                note: target.cpu_note(),
            },
            profile: profile_info(profile),
            wasmtime_version: wasmtime_version().to_string(),
            compatibility_hash: meta.compatibility_hash.clone(),
            kind: self.input.kind,
            source_sha256: self.source_sha256.to_string(),
            file: file.clone(),
            sha256: meta.sha256.clone(),
            size: meta.size,
            compile_time_ms: meta.compile_time_ms,
            cache_hit,
            functions,
            path: path.clone(),
        };

        // A cache hit costs copying the entry and hashing the copy: no engine is built.
        if let Some(cache) = &self.options.cache {
            self.reporter.on_start(index, target, Stage::CheckingCache);
            match cache.copy_out(&key, &path).map_err(write_error(&path))? {
                Lookup::Hit(entry) => {
                    return Ok(artifact(&entry.meta, true, None));
                }
                Lookup::Corrupt { path, reason } => self.reporter.on_warning(&format!(
                    "discarded corrupt cache entry `{}` ({reason}); compiling {target} again",
                    path.display()
                )),
                Lookup::Unauthenticated { path, reason } => self.reporter.on_warning(&format!(
                    "not using cache entry `{}`: {reason}; compiling {target} again",
                    path.display()
                )),
                Lookup::Miss => {}
            }
        }

        self.reporter.on_start(index, target, Stage::Compiling);
        let compile_error = |source: wasmtime::Error| TargetError::Compile {
            target: target.clone(),
            input: self.input.path.clone(),
            source: source.into(),
        };
        let mut config = engine_config(target, profile).map_err(compile_error)?;
        // The function-level cache: Cranelift looks every function up before compiling
        // it. What it returns is the same code compiling gives, so the artifact is
        // byte-identical either way.
        let store = self
            .options
            .cache
            .as_ref()
            .and_then(|cache| cache.function_store(target, profile))
            .map(|(store, warning)| {
                if let Some(functions::LoadWarning::Unauthenticated { path, reason }) = warning {
                    self.reporter.on_warning(&format!(
                        "not using the function cache `{}`: {reason}; its functions are \
                         compiled again",
                        path.display()
                    ));
                }
                std::sync::Arc::new(store)
            });
        if let Some(store) = &store {
            config
                .enable_incremental_compilation(store.clone())
                .map_err(compile_error)?;
        }
        let compiled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.pool
                .install(|| -> wasmtime::Result<(Vec<u8>, String)> {
                    let engine = wasmtime::Engine::new(&config)?;
                    let bytes = match self.input.kind {
                        Kind::Component => engine.precompile_component(&self.input.bytes)?,
                        Kind::Module => engine.precompile_module(&self.input.bytes)?,
                    };
                    Ok((bytes, compatibility_hash(&engine)))
                })
        }));
        let (bytes, compatibility_hash) = match compiled {
            Ok(result) => result.map_err(compile_error)?,
            Err(payload) => {
                return Err(TargetError::Panic {
                    target: target.clone(),
                    input: self.input.path.clone(),
                    message: panic_message(payload.as_ref()),
                });
            }
        };
        let compile_time = started.elapsed();
        let functions = store.as_ref().map(|s| s.stats());

        self.reporter.on_start(index, target, Stage::Writing);
        let meta = EntryMeta {
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
            compatibility_hash,
            compile_time_ms: millis(compile_time),
            target: target.to_string(),
            triple: target.triple(),
            cpu_flags: target.cpu().flags(),
            profile_sha256: profile.sha256().to_string(),
            source_sha256: self.source_sha256.to_string(),
            wasmtime_version: wasmtime_version().to_string(),
        };
        // The output is a file of its own, never a link into the cache: changing one must
        // not change the other.
        fsutil::write_atomic(&path, &bytes).map_err(write_error(&path))?;
        if let Some(cache) = &self.options.cache
            && let Err(e) = cache.store(&key, &bytes, &meta)
        {
            self.reporter.on_warning(&format!(
                "cannot store {target} in the cache: {}",
                error_chain(&e)
            ));
        }
        if let (Some(store), Some(cache)) = (&store, &self.options.cache)
            && let Some(secret) = cache.secret()
            && let Err(e) = store.save(secret, cache.function_limit())
        {
            self.reporter.on_warning(&format!(
                "cannot store the functions of {target} in the function cache: {}",
                error_chain(&e)
            ));
        }
        Ok(artifact(&meta, false, functions))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `error: cause: cause`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;

/// One native artifact as its bundle records it: what [`rebuild`] compiles again.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The Rust target triple.
    pub target_triple: String,
    /// The CPU preset (`x86-64-v3`, `native`), when one was recorded.
    pub cpu_preset: Option<String>,
    /// The Cranelift ISA settings turned on.
    pub cpu_flags: Vec<String>,
    /// The engine profile (`{"name", "sha256", "settings"}`).
    pub profile: serde_json::Value,
    /// The wasmtime version that compiled it.
    pub wasmtime_version: String,
    /// sha256 of the compiling engine's compatibility hash.
    pub compatibility_hash: String,
}

/// Why one recorded artifact cannot be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Another wasmtime generates other code: the comparison would mean nothing.
    #[error(
        "it was compiled by wasmtime {recorded}, and this pack has wasmtime {ours}: rebuild \
         it with a pack built on wasmtime {recorded}"
    )]
    WasmtimeVersion { recorded: String, ours: String },
    /// The recorded target, CPU or profile is not one this pack knows.
    #[error("its recorded settings cannot be reproduced")]
    Settings(#[source] Error),
    /// The compile failed.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The rebuilt engine is not the recorded one (same version, other settings).
    #[error("the rebuild's engine has compatibility hash {ours}, the artifact records {recorded}")]
    CompatibilityHash { recorded: String, ours: String },
}

/// Compiles `input` again for every recorded artifact, with its recorded target, CPU
/// flags and profile, without any cache (nothing is read from or written to one), into
/// `out_dir`. One result per record, in order: the rebuilt artifact (whose bytes the
/// caller compares), or why it could not be rebuilt.
pub fn rebuild(
    input: &Input,
    recorded: &[Recorded],
    out_dir: &Path,
    jobs: usize,
) -> Result<Vec<Result<Artifact, RebuildError>>, Error> {
    let mut results: Vec<Option<Result<Artifact, RebuildError>>> =
        recorded.iter().map(|_| None).collect();
    // Records grouped by profile: one compile per profile, every target of it at once.
    let mut groups: Vec<(Profile, Vec<(usize, Target)>)> = Vec::new();
    for (index, record) in recorded.iter().enumerate() {
        if record.wasmtime_version != wasmtime_version() {
            results[index] = Some(Err(RebuildError::WasmtimeVersion {
                recorded: record.wasmtime_version.clone(),
                ours: wasmtime_version().to_string(),
            }));
            continue;
        }
        let settings = Target::from_recorded(
            &record.target_triple,
            record.cpu_preset.as_deref(),
            &record.cpu_flags,
        )
        .and_then(|target| Ok((target, Profile::from_recorded(&record.profile)?)));
        let (target, profile) = match settings {
            Ok(found) => found,
            Err(e) => {
                results[index] = Some(Err(RebuildError::Settings(e)));
                continue;
            }
        };
        match groups.iter_mut().find(|(p, _)| *p == profile) {
            Some((_, targets)) => targets.push((index, target)),
            None => groups.push((profile, vec![(index, target)])),
        }
    }
    for (group, (profile, targets)) in groups.into_iter().enumerate() {
        let options = CompileOptions {
            targets: targets.iter().map(|(_, t)| t.clone()).collect(),
            profile,
            out_dir: out_dir.join(format!("profile-{group}")),
            cache: None,
            jobs,
            stem: Some("rebuild".to_string()),
        };
        let outcome = compile(input, &options, &NoReporter)?;
        for ((index, _), result) in targets.iter().zip(outcome.results) {
            let record = &recorded[*index];
            results[*index] = Some(match result {
                Ok(a) if a.compatibility_hash != record.compatibility_hash => {
                    Err(RebuildError::CompatibilityHash {
                        recorded: record.compatibility_hash.clone(),
                        ours: a.compatibility_hash,
                    })
                }
                Ok(a) => Ok(a),
                Err(e) => Err(e.into()),
            });
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every record has a result"))
        .collect())
}
