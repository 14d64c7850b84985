//! Artifacts compiled elsewhere (a shared cache), admitted into the local cache only
//! after every check a local entry gets and those it does not need.

use super::*;

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
