//! Ahead-of-time compilation of a component (or core module) for several targets.
//!
//! [`compile`] turns one [`Input`] into one artifact per [`Target`], in parallel and
//! bounded by [`CompileOptions::jobs`], reusing the [`Cache`] when it can. A target that
//! fails (a compiler error, or a panic inside Cranelift) does not stop the others: every
//! result is returned. Progress goes to a [`Reporter`].
//!
//! Artifacts are reproducible: the same input, targets, CPU presets and [`Profile`] give
//! byte-identical files, whatever `jobs` is and whether they came from the cache.

mod cache;
mod fsutil;
mod functions;
mod profile;
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

/// What the compiler is doing for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Looking the artifact up in the cache (hashing the entry).
    CheckingCache,
    /// Running Cranelift.
    Compiling,
    /// Writing the artifact (and the cache entry).
    Writing,
}

/// Progress of a compilation. Called from worker threads; `index` is the target's
/// position in [`CompileOptions::targets`]. Every method has an empty default.
pub trait Reporter: Send + Sync {
    /// Once per target, in order, before any work starts.
    fn on_queued(&self, _index: usize, _target: &Target) {}
    /// Work on a target moved to `stage`.
    fn on_start(&self, _index: usize, _target: &Target, _stage: Stage) {}
    /// A target is done.
    fn on_complete(&self, _index: usize, _result: Result<&Artifact, &TargetError>) {}
    /// Something worth telling that does not fail the target (e.g. a corrupt cache
    /// entry that was discarded).
    fn on_warning(&self, _message: &str) {}
}

/// A [`Reporter`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReporter;
impl Reporter for NoReporter {}

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

/// The CPU features of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuInfo {
    /// The preset's name, or `native`.
    pub preset: String,
    /// Whether the features are the compiling machine's.
    pub native: bool,
    /// The Cranelift ISA settings turned on (every other one has Cranelift's default).
    pub flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The profile an artifact was compiled with.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileInfo {
    pub name: String,
    /// sha256 of the profile's canonical form.
    pub sha256: String,
    /// The settings that differ from wasmtime's defaults (empty for the default
    /// profile): an engine must use the same to load the artifact.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// One compiled artifact: what `compile.json` says about it, and where it is.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    #[serde(serialize_with = "display")]
    pub target: Target,
    pub triple: String,
    pub platform: Platform,
    pub cpu: CpuInfo,
    pub profile: ProfileInfo,
    pub wasmtime_version: String,
    /// sha256 of `Engine::precompile_compatibility_hash` for the compiling engine, hex.
    /// Engines with the same hash load each other's artifacts.
    pub compatibility_hash: String,
    /// A component or a core module.
    pub kind: Kind,
    pub source_sha256: String,
    /// The file name, in the output directory.
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// How long Cranelift took (for a cache hit: when the entry was made).
    pub compile_time_ms: u64,
    pub cache_hit: bool,
    /// When Cranelift ran with the function-level cache: how many functions it
    /// compiled, and how many it took from the cache. `None` for an artifact from the
    /// artifact cache, or a compile without the function cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functions: Option<FunctionStats>,
    /// The artifact's path.
    #[serde(skip)]
    pub path: PathBuf,
}

fn display<T: std::fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A target that failed, as `compile.json` lists it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub target: String,
    pub triple: String,
    pub platform: Platform,
    /// The error with its causes, `: `-separated.
    pub error: String,
}

impl From<&TargetError> for Failure {
    fn from(error: &TargetError) -> Self {
        let target = error.target();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure {
            target: target.to_string(),
            triple: target.triple(),
            platform: target.oci_platform(),
            error: message,
        }
    }
}

/// `compile.json`: every artifact, and every target that failed.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub input: PathBuf,
    pub kind: Kind,
    pub source_sha256: String,
    pub wasmtime_version: String,
    pub profile: ProfileInfo,
    pub artifacts: Vec<Artifact>,
    pub failures: Vec<Failure>,
}

impl Report {
    pub fn new(
        input: &Input,
        source_sha256: &str,
        profile: &Profile,
        results: &[Result<Artifact, TargetError>],
    ) -> Report {
        Report {
            input: input.path.clone(),
            kind: input.kind,
            source_sha256: source_sha256.to_string(),
            wasmtime_version: wasmtime_version().to_string(),
            profile: profile_info(profile),
            artifacts: results
                .iter()
                .filter_map(|r| r.as_ref().ok().cloned())
                .collect(),
            failures: results
                .iter()
                .filter_map(|r| r.as_ref().err().map(Failure::from))
                .collect(),
        }
    }

    /// Writes the report as `compile.json` in `dir`, atomically; returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, Error> {
        let path = dir.join("compile.json");
        let mut json = serde_json::to_vec_pretty(self).expect("report serializes");
        json.push(b'\n');
        fsutil::write_atomic(&path, &json).map_err(|source| Error::Output {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

fn profile_info(profile: &Profile) -> ProfileInfo {
    ProfileInfo {
        name: profile.name().to_string(),
        sha256: profile.sha256().to_string(),
        settings: profile.non_defaults(),
    }
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
    let text = format!(
        "pack-cache v1\nwasmtime {}\ninput {source_sha256}\nkind {kind:?}\ntarget {}\ncpu {}\nprofile {}\n",
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

/// Why an artifact from elsewhere was not admitted into the cache.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The artifact does not fit what the target and profile need.
    #[error("the artifact for {target} does not fit: {reason}")]
    Mismatch { target: Target, reason: String },

    /// The engine for the target cannot be configured.
    #[error("cannot configure an engine for {target}")]
    Engine {
        target: Target,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error(transparent)]
    Cache(#[from] Error),
}

/// What an artifact compiled elsewhere claims to be: the fields its (verified) origin
/// recorded beside it.
#[derive(Debug, Clone)]
pub struct Claimed<'a> {
    pub wasmtime_version: &'a str,
    pub compatibility_hash: &'a str,
    pub kind: Kind,
    /// sha256 (hex) and size of the artifact.
    pub sha256: &'a str,
    pub size: u64,
}

/// Puts an artifact compiled elsewhere (e.g. fetched from a shared cache, after its
/// origin was verified) into `cache` under `target`'s key, so [`compile`] uses it
/// instead of running Cranelift. The entry is authenticated with `cache`'s secret, so
/// the caller must have verified where the artifact comes from (a signature) first.
///
/// The same checks as a local entry, and those a local entry does not need: the bytes
/// match the claimed sha256 and size; the wasmtime version and the input kind are the
/// ones expected; the compatibility hash equals that of the engine this target and
/// profile configure; and wasmtime recognises the bytes as a precompiled component (or
/// module). The artifact is never deserialized. Returns the cache key.
pub fn admit(
    cache: &Cache,
    input: &Input,
    target: &Target,
    profile: &Profile,
    claimed: &Claimed<'_>,
    artifact: &Path,
) -> Result<String, AdmitError> {
    let mismatch = |reason: String| AdmitError::Mismatch {
        target: target.clone(),
        reason,
    };
    let bytes = std::fs::read(artifact).map_err(|source| Error::Cache {
        path: artifact.to_path_buf(),
        source,
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != claimed.sha256 || bytes.len() as u64 != claimed.size {
        return Err(mismatch(format!(
            "it has sha256 {sha256} ({} bytes), expected {} ({} bytes)",
            bytes.len(),
            claimed.sha256,
            claimed.size
        )));
    }
    if claimed.wasmtime_version != wasmtime_version() {
        return Err(mismatch(format!(
            "it was compiled by wasmtime {}, this is {}",
            claimed.wasmtime_version,
            wasmtime_version()
        )));
    }
    if claimed.kind != input.kind {
        return Err(mismatch(format!(
            "it is a precompiled {}, the input a {}",
            claimed.kind, input.kind
        )));
    }
    let engine_error = |source: wasmtime::Error| AdmitError::Engine {
        target: target.clone(),
        source: source.into(),
    };
    let config = engine_config(target, profile).map_err(engine_error)?;
    let engine = wasmtime::Engine::new(&config).map_err(engine_error)?;
    let expected = compatibility_hash(&engine);
    if claimed.compatibility_hash != expected {
        return Err(mismatch(format!(
            "its compatibility hash is {}, the engine for this target and profile has {expected}",
            claimed.compatibility_hash
        )));
    }
    let detected = wasmtime::Engine::detect_precompiled(&bytes);
    let wanted = match input.kind {
        Kind::Component => wasmtime::Precompiled::Component,
        Kind::Module => wasmtime::Precompiled::Module,
    };
    if detected != Some(wanted) {
        return Err(mismatch(format!(
            "wasmtime does not recognise it as a precompiled {} ({detected:?})",
            input.kind
        )));
    }
    let source_sha256 = source_sha256(input);
    let key = cache_key(&source_sha256, input.kind, target, profile);
    let meta = EntryMeta {
        sha256,
        size: claimed.size,
        compatibility_hash: expected,
        compile_time_ms: 0,
        target: target.to_string(),
        triple: target.triple(),
        cpu_flags: target.cpu().flags(),
        profile_sha256: profile.sha256().to_string(),
        source_sha256,
        wasmtime_version: wasmtime_version().to_string(),
    };
    cache.store(&key, &bytes, &meta)?;
    Ok(key)
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

/// Threads of the compile pool; their panics are captured, not printed.
const POOL_THREAD_PREFIX: &str = "pack-compile-";

/// Where the last panics on pool threads happened, by message.
static PANIC_LOCATIONS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Installs (once) a panic hook that keeps panics on compile-pool threads off stderr:
/// they are reported as that target's error instead. Panics elsewhere go to the hook
/// that was installed before.
fn silence_compiler_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(POOL_THREAD_PREFIX));
            if !ours {
                return previous(info);
            }
            let message = info.payload_as_str().unwrap_or("(no message)").to_string();
            let location = info
                .location()
                .map(|l| format!("{}:{}", crate_relative(l.file()), l.line()))
                .unwrap_or_default();
            if let Ok(mut locations) = PANIC_LOCATIONS.lock() {
                if locations.len() > 64 {
                    locations.remove(0);
                }
                locations.push((message, location));
            }
        }));
    });
}

/// `cranelift-codegen-0.135.8/src/...` for a file in cargo's registry.
fn crate_relative(file: &str) -> &str {
    match file.find("/registry/src/") {
        Some(at) => {
            let rest = &file[at + "/registry/src/".len()..];
            rest.split_once('/').map_or(rest, |(_, path)| path)
        }
        None => file,
    }
}

/// The text of a panic payload, with where it happened when the hook saw it.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    };
    let location = PANIC_LOCATIONS.lock().ok().and_then(|locations| {
        locations
            .iter()
            .rev()
            .find(|(m, _)| *m == text)
            .map(|(_, l)| l.clone())
    });
    match location {
        Some(l) if !l.is_empty() && !text.contains(&l) => format!("{text} (at {l})"),
        _ => text,
    }
}

#[cfg(test)]
mod tests;
