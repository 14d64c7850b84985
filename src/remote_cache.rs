//! The compile cache shared through a registry (`pack build --cache-repo`): this module
//! only connects the pieces. The compiler says what a target's key is and admits an
//! artifact into its local cache after its own checks; the registry client moves the
//! entry (verifying the signature before it fetches a blob, and every blob against its
//! digest); the packager writes, signs, reads and verifies the entry. See docs/cache.md.
//!
//! A shared cache only saves time, so its failures do not fail the build: an entry that
//! is missing, unsigned, signed by another key, tampered with or unfit is a miss (with a
//! warning for all but "missing"), and a registry that cannot be reached or refuses the
//! credentials is warned about once and not asked again during this build.
//!
//! Beside whole artifacts, the registry holds each target's function cache segment
//! (Cranelift's compiled functions, `pack-functions-v1-<segment key>`): a build that
//! finds no artifact for a target, and has no local segment for it, fetches the segment
//! so that unchanged functions are not compiled again; a build that compiled new
//! functions pushes its segment. The same keys sign and verify both.
//!
//! An entry is trusted when it is signed by `--cache-key` (its public half) or by one of
//! the `--cache-trust` public keys. Only a verified entry is admitted into the local
//! cache, where it gets the local cache's MAC; the signing key signs what this build
//! compiled (or found authenticated in its local cache), never what it fetched.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pack_compiler::compile::{self, Artifact, Cache, Claimed, Profile, Target};
use pack_compiler::wasm::{Input, Kind};
use pack_packager::Layout;
use pack_packager::cache_entry::{self, EntryConfig, FunctionsConfig};
use pack_packager::signing::{PrivateKey, PublicKey};
use pack_registry_client::auth::{self, AuthEnv};
use pack_registry_client::{
    ConnectOptions, ErrorKind, NoReporter, PullOptions, PushOptions, Reference, Registry,
};

use crate::keys::load_private_key;

/// What `--cache-key` holds.
pub(crate) enum CacheKey {
    /// A key pair: entries are verified and pushed.
    Private(Box<PrivateKey>),
    /// Only the public half: entries are verified, nothing is pushed.
    Public(PublicKey),
}

impl CacheKey {
    /// Loads a private key (encrypted ones read PACK_KEY_PASSWORD) or a public key.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the cache key `{}`", path.display()))?,
        );
        if text.contains("-----BEGIN PUBLIC KEY-----") {
            Ok(Self::Public(PublicKey::from_pem(&text, path)?))
        } else {
            Ok(Self::Private(Box::new(load_private_key(path)?)))
        }
    }

    fn public(&self) -> PublicKey {
        match self {
            Self::Private(key) => key.public_key(),
            Self::Public(key) => key.clone(),
        }
    }
}

/// What [`RemoteCache::pull_tag`] found.
enum Pulled {
    /// Pulled and verified, from this reference.
    Source(Reference),
    /// The repository has no such tag.
    Missing,
    /// No registry (given up, or never reached).
    Skipped,
    /// Refused (not signed by a trusted key, damaged, ...), and why.
    Refused(Reference, String),
}

/// Where a target's artifact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Source {
    /// Cranelift ran.
    Compiled,
    /// The local compile cache.
    LocalCache,
    /// The shared cache in the registry.
    Registry,
}

impl Source {
    pub(crate) fn of(artifact: &Artifact, from_registry: bool) -> Self {
        match (artifact.cache_hit, from_registry) {
            (false, _) => Self::Compiled,
            (true, true) => Self::Registry,
            (true, false) => Self::LocalCache,
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Compiled => "compiled",
            Self::LocalCache => "cache hit (local)",
            Self::Registry => "cache hit (registry)",
        }
    }
}

/// What was learned about one target before compiling.
pub(crate) enum Fetched {
    /// The local cache has it; the registry was not asked.
    Local,
    /// Verified, admitted into the local cache.
    Registry,
    /// The registry has no entry.
    Missing,
    /// The registry has one, and it was refused (the warning says why).
    Refused,
    /// The registry was not asked (it failed earlier in this build).
    Skipped,
}

/// A `--cache-trust` key: a public key only.
fn load_trusted(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the --cache-trust key `{}`", path.display()))?;
    if !text.contains("-----BEGIN PUBLIC KEY-----") {
        bail!(
            "--cache-trust `{}` is not a public key (PEM `PUBLIC KEY`); pass the `.pub` file \
             of `pack key generate`, and the private key, if this build signs entries, with \
             --cache-key",
            path.display()
        );
    }
    Ok(PublicKey::from_pem(&text, path)?)
}

/// A repository of cache entries.
pub(crate) struct RemoteCache {
    runtime: tokio::runtime::Runtime,
    /// `None` once the registry failed in a way that would repeat.
    registry: Option<Registry>,
    repository: Reference,
    /// `--cache-key`: `None` when only `--cache-trust` keys are given (read-only).
    key: Option<CacheKey>,
    /// Entries signed by one of these are used: `key`'s public half and `--cache-trust`.
    trusted: Vec<PublicKey>,
    /// Entries pass through this layout (inside the build's scratch directory).
    layout: Layout,
    warnings: Vec<String>,
}

impl RemoteCache {
    /// Parses `repository` (`registry/name`, without a tag) and loads `key` and the
    /// `trust`ed public keys. A bad reference or key is an error (exit 2); a registry that
    /// cannot be reached is not, it only disables the shared cache for this build.
    pub(crate) fn open(
        repository: &str,
        key: Option<&Path>,
        trust: &[PathBuf],
        connect: &ConnectOptions,
        scratch: &Path,
    ) -> Result<Self> {
        let (reference, tagged) =
            pack_registry_client::parse_reference(repository).map_err(anyhow::Error::from)?;
        if tagged || reference.digest().is_some() {
            bail!(
                "--cache-repo `{repository}` names a tag or digest; give the repository only \
                 (entries are tagged by their cache key)"
            );
        }
        let key = key.map(CacheKey::load).transpose()?;
        let mut trusted: Vec<PublicKey> = key.iter().map(CacheKey::public).collect();
        for path in trust {
            trusted.push(load_trusted(path)?);
        }
        let layout = Layout::create(scratch.join("cache-entries"))?;
        let runtime = crate::registry::runtime()?;
        let mut cache = Self {
            runtime,
            registry: None,
            repository: reference,
            key,
            trusted,
            layout,
            warnings: Vec::new(),
        };
        // The environment's credentials only for the cache's registry (or PACK_REGISTRY's).
        let registry = cache.repository.registry().to_string();
        let env = AuthEnv::from_process().for_command(&registry);
        if let Some(withheld) = env.withheld_from(&registry) {
            cache.warnings.push(withheld.to_string());
        }
        let connected = cache.runtime.block_on(async {
            let resolved = auth::resolve(&registry, None, &env)?;
            Registry::connect(&cache.repository, resolved, connect).await
        });
        match connected {
            Ok(registry) => cache.registry = Some(registry),
            Err(e) => cache.give_up(&e),
        }
        Ok(cache)
    }

    /// `registry/repository`, as written in signatures.
    fn name(&self) -> String {
        format!(
            "{}/{}",
            self.repository.registry(),
            self.repository.repository()
        )
    }

    /// Whether entries are pushed (`--cache-key` is a private key).
    pub(crate) fn writable(&self) -> bool {
        matches!(self.key, Some(CacheKey::Private(_)))
    }

    /// Warnings since the last call.
    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn give_up(&mut self, error: &pack_registry_client::Error) {
        self.registry = None;
        let hint = if error.is_tls() {
            " (its certificate is not trusted, or it does not speak TLS: pass \
             --cache-ca-cert with the CA that signed it, or --cache-insecure for a plain-HTTP \
             registry)"
        } else {
            ""
        };
        self.warnings.push(format!(
            "shared compile cache `{}` is not used for the rest of this build: {}{hint}",
            self.name(),
            crate::diagnostics::chain(error)
        ));
    }

    /// Looks `target` up: the local cache first, then the registry. A verified entry is
    /// admitted into `local` (after the compiler's checks), so compiling finds it there.
    pub(crate) fn fetch(
        &mut self,
        local: &Cache,
        input: &Input,
        target: &Target,
        profile: &Profile,
    ) -> Fetched {
        let key = compile::cache_key(&compile::source_sha256(input), input.kind, target, profile);
        if local.contains(&key) {
            return Fetched::Local;
        }
        let tag = cache_entry::tag_for(&key).expect("the compiler's keys are sha256 hex");
        let source = match self.pull_tag(&tag) {
            Pulled::Source(source) => source,
            Pulled::Missing => return Fetched::Missing,
            Pulled::Skipped => return Fetched::Skipped,
            Pulled::Refused(source, why) => {
                self.refuse(target, &source, &why);
                return Fetched::Refused;
            }
        };
        let entry = match cache_entry::read_entry(&self.layout, &key, &self.trusted) {
            Ok(entry) => entry,
            Err(e) => {
                self.refuse(target, &source, &crate::diagnostics::chain(&e));
                return Fetched::Refused;
            }
        };
        let kind = match entry.config.kind.as_str() {
            "component" => Kind::Component,
            "module" => Kind::Module,
            other => {
                self.refuse(target, &source, &format!("unknown kind `{other}`"));
                return Fetched::Refused;
            }
        };
        let claimed = Claimed {
            wasmtime_version: &entry.config.wasmtime_version,
            compatibility_hash: &entry.config.compatibility_hash,
            kind,
            sha256: &entry.layer_sha256,
            size: entry.layer_size,
        };
        match compile::admit(local, input, target, profile, &claimed, &entry.layer) {
            Ok(_) => Fetched::Registry,
            Err(e) => {
                self.refuse(target, &source, &crate::diagnostics::chain(&e));
                Fetched::Refused
            }
        }
    }

    /// Fetches the function cache segment of `target` into `local` when `local` has
    /// none (and uses the function cache). Returns how many functions were admitted.
    pub(crate) fn fetch_functions(
        &mut self,
        local: &Cache,
        target: &Target,
        profile: &Profile,
    ) -> Option<usize> {
        if !local.functions_enabled() || local.has_function_segment(target, profile) {
            return None;
        }
        let segment_key = compile::segment_key(target, profile);
        let tag = cache_entry::functions_tag_for(&segment_key).expect("segment keys are hex");
        let source = match self.pull_tag(&tag) {
            Pulled::Source(source) => source,
            Pulled::Missing | Pulled::Skipped => return None,
            Pulled::Refused(source, why) => {
                self.refuse_functions(target, &source, &why);
                return None;
            }
        };
        let admitted = cache_entry::read_functions_entry(&self.layout, &segment_key, &self.trusted)
            .map_err(|e| crate::diagnostics::chain(&e))
            .and_then(|entry| {
                if entry.config.wasmtime_version != compile::wasmtime_version() {
                    return Err(format!(
                        "it was made by wasmtime {}, this is {}",
                        entry.config.wasmtime_version,
                        compile::wasmtime_version()
                    ));
                }
                // The bytes admitted are the bytes hashed here, whatever happens to the
                // file meanwhile.
                let body = std::fs::read(&entry.layer).map_err(|e| e.to_string())?;
                let digest = compile::sha256_hex(&body);
                if digest != entry.layer_sha256 || body.len() as u64 != entry.layer_size {
                    return Err(format!(
                        "the segment changed after it was verified (sha256 {digest})"
                    ));
                }
                local
                    .admit_functions(target, profile, &body)
                    .map_err(|e| crate::diagnostics::chain(&e))
            });
        match admitted {
            Ok(count) => Some(count),
            Err(why) => {
                self.refuse_functions(target, &source, &why);
                None
            }
        }
    }

    fn refuse_functions(&mut self, target: &Target, source: &Reference, why: &str) {
        self.warnings.push(format!(
            "ignoring the shared function cache of {target} ({source}): {why}; compiling its \
             functions"
        ));
    }

    /// The key entries are signed with, while they can be published: a private key (not
    /// only the public half) and a registry that has not failed.
    fn publishing_key(&self) -> Option<&PrivateKey> {
        match (&self.key, &self.registry) {
            (Some(CacheKey::Private(key)), Some(_)) => Some(key),
            _ => None,
        }
    }

    /// Signs and pushes the local function cache segment of `target` (nothing with a
    /// public key, after the registry failed, or without a local segment).
    pub(crate) fn publish_functions(
        &mut self,
        local: &Cache,
        scratch: &Path,
        target: &Target,
        profile: &Profile,
    ) -> bool {
        let what = format!("the shared function cache of {target}");
        self.sign_and_push(&what, |layout, key, reference| {
            let Some((body, count)) = local.function_segment(target, profile) else {
                return Ok(None);
            };
            let segment_key = compile::segment_key(target, profile);
            let config = FunctionsConfig {
                segment_key: segment_key.clone(),
                wasmtime_version: compile::wasmtime_version().to_string(),
                target: target.to_string(),
                triple: target.triple(),
                cpu_flags: target.cpu().flags(),
                profile_sha256: profile.sha256().to_string(),
                functions: count as u64,
            };
            let file = scratch.join(format!("functions-{segment_key}"));
            let written = pack_fs::write_atomic(&file, &body, pack_fs::FILE_MODE)
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    cache_entry::write_functions_entry(layout, &config, &file, key, reference)
                        .map_err(anyhow::Error::from)
                });
            drop(body);
            let _ = std::fs::remove_file(&file);
            written?;
            Ok(Some(cache_entry::functions_tag_for(&segment_key)?))
        })
    }

    /// Pulls the cache repository's `tag` into the staging layout, its signature checked
    /// against the trusted keys. A network or credentials failure gives up the registry
    /// for the rest of the build.
    fn pull_tag(&mut self, tag: &str) -> Pulled {
        let Some(registry) = &self.registry else {
            return Pulled::Skipped;
        };
        let source = Reference::with_tag(
            self.repository.registry().to_string(),
            self.repository.repository().to_string(),
            tag.to_string(),
        );
        let options = PullOptions {
            keys: self.trusted.clone(),
            ..PullOptions::default()
        };
        let pulled = self.runtime.block_on(pack_registry_client::pull(
            registry,
            &source,
            self.layout.root(),
            tag,
            &options,
            &NoReporter,
        ));
        match pulled {
            Ok(_) => Pulled::Source(source),
            Err(e) if e.kind() == ErrorKind::NotFound => Pulled::Missing,
            Err(e) if matches!(e.kind(), ErrorKind::Network | ErrorKind::Auth) => {
                self.give_up(&e);
                Pulled::Skipped
            }
            Err(e) => Pulled::Refused(source, crate::diagnostics::chain(&e)),
        }
    }

    /// The one way entries reach the shared cache: `write` stages an entry into the
    /// staging layout, signed with the publishing key for the repository's name, and
    /// returns its tag (`None`: nothing to publish); the tag is then pushed. Nothing
    /// happens with a public key or after the registry failed; a failure to stage or to
    /// push is a warning naming `what`, and a network or credentials failure gives up the
    /// registry for the rest of the build.
    fn sign_and_push(
        &mut self,
        what: &str,
        write: impl FnOnce(&Layout, &PrivateKey, &str) -> Result<Option<String>>,
    ) -> bool {
        let Some(key) = self.publishing_key() else {
            return false;
        };
        let tag = match write(&self.layout, key, &self.name()) {
            Ok(Some(tag)) => tag,
            Ok(None) => return false,
            Err(e) => {
                self.warnings.push(format!(
                    "cannot prepare {what}: {}",
                    crate::diagnostics::chain(e.as_ref())
                ));
                return false;
            }
        };
        let Some(registry) = &self.registry else {
            return false;
        };
        let destination = Reference::with_tag(
            self.repository.registry().to_string(),
            self.repository.repository().to_string(),
            tag.clone(),
        );
        let pushed = self.runtime.block_on(pack_registry_client::push(
            registry,
            &self.layout,
            &tag,
            &destination,
            &PushOptions::default(),
            &NoReporter,
        ));
        match pushed {
            Ok(_) => true,
            Err(e) if matches!(e.kind(), ErrorKind::Network | ErrorKind::Auth) => {
                self.give_up(&e);
                false
            }
            Err(e) => {
                self.warnings.push(format!(
                    "cannot push {what}: {}",
                    crate::diagnostics::chain(&e)
                ));
                false
            }
        }
    }

    fn refuse(&mut self, target: &Target, source: &Reference, why: &str) {
        self.warnings.push(format!(
            "ignoring the shared cache entry for {target} ({source}): {why}; compiling it"
        ));
    }

    /// Signs and pushes the entry for `artifact` (a no-op for what the registry has;
    /// nothing with a public key, or after the registry failed).
    pub(crate) fn publish(
        &mut self,
        input: &Input,
        profile: &Profile,
        artifact: &Artifact,
    ) -> bool {
        let what = format!("the shared cache entry for {}", artifact.target);
        self.sign_and_push(&what, |layout, key, reference| {
            let config = entry_config(input, profile, artifact);
            cache_entry::write_entry(layout, &config, &artifact.path, key, reference)?;
            Ok(Some(cache_entry::tag_for(&config.key)?))
        })
    }
}

/// The entry config of a compiled artifact.
fn entry_config(input: &Input, profile: &Profile, artifact: &Artifact) -> EntryConfig {
    EntryConfig {
        key: compile::cache_key(
            &artifact.source_sha256,
            input.kind,
            &artifact.target,
            profile,
        ),
        wasmtime_version: artifact.wasmtime_version.clone(),
        compatibility_hash: artifact.compatibility_hash.clone(),
        kind: match input.kind {
            Kind::Component => "component",
            Kind::Module => "module",
        }
        .to_string(),
        source_sha256: artifact.source_sha256.clone(),
        target: artifact.target.to_string(),
        triple: artifact.triple.clone(),
        cpu_flags: artifact.cpu.flags.clone(),
        profile_sha256: artifact.profile.sha256.clone(),
    }
}
