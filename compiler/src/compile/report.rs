//! What `compile.json` says: one [`Artifact`] per target compiled, one [`Failure`] per
//! target that failed, in a [`Report`].

use super::*;

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
        let message = super::error_chain(error);
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

pub(super) fn profile_info(profile: &Profile) -> ProfileInfo {
    ProfileInfo {
        name: profile.name().to_string(),
        sha256: profile.sha256().to_string(),
        settings: profile.non_defaults(),
    }
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
