//! The content store: one OCI image layout that every registry reference is pulled into,
//! so blobs are shared between references and stored once, by digest. Blobs are written
//! atomically (temporary file, fsync, rename) by the layout, read-only; tags are set
//! last. Signatures are stored under cosign's `sha256-<hex>.sig` tags beside them.
//!
//! Location: `$PACK_STORE`, else `$XDG_DATA_HOME/pack/store`, else
//! `~/.local/share/pack/store`.

use std::path::{Path, PathBuf};

use pack_packager::Layout;
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// The content store's directory from the environment.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("PACK_STORE")
        .or_else(|| var("XDG_DATA_HOME").map(|d| d.join("pack").join("store")))
        .or_else(|| var("HOME").map(|h| h.join(".local/share/pack/store")))
}

/// The content store.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// The store at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens the store's layout, creating it (and its missing parents, mode 0755 whatever
    /// the umask) when missing. Reads from it are those of [`Layout::open_trusted`]: the
    /// store's directories and files must be writable by nobody but their owner, who is
    /// this user or root.
    pub fn layout(&self) -> Result<Layout> {
        if let Some(parent) = self.root.parent() {
            pack_fs::create_dir_all(parent, pack_fs::DIR_MODE).map_err(|source| Error::Store {
                path: self.root.clone(),
                source,
            })?;
        }
        let layout = Layout::open_or_create(&self.root)?.trusted();
        // A store others can write is refused before anything is pulled into it.
        layout.index()?;
        Ok(layout)
    }
}

/// The store's tag for a registry reference: the reference with every character a tag
/// may not hold replaced by `_`, then `-` and 12 hex digits of its sha256 (so two
/// references never share a tag), at most 128 characters.
pub fn tag_for(reference: &str) -> String {
    let hash = hex::encode(Sha256::digest(reference.as_bytes()));
    let mut name: String = reference
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        name.insert(0, '_');
    }
    name.truncate(128 - 13);
    format!("{name}-{}", &hash[..12])
}

/// Pulls `reference` into the store, verifying the signature with `keys` before fetching
/// anything else when keys are given: the index, the manifests and configs of this
/// host's platform, of pulley and the portable one (documents of a few hundred bytes,
/// so that selection can decide), and every signature, but no layer: the host fetches
/// the one layer it loads ([`fetch_layers`]), and a fallback's only when it falls back.
/// Returns the store's layout and the tag.
#[cfg(feature = "registry")]
pub fn pull(
    store: &ContentStore,
    reference: &str,
    keys: &[pack_packager::signing::PublicKey],
    allow_references: &[pack_packager::signing::ReferencePattern],
    options: &RegistryOptions,
) -> Result<(Layout, String, pack_registry_client::TransferSummary)> {
    use pack_registry_client::{PlatformSpec, PullOptions};

    let (parsed, _) = pack_registry_client::parse_reference(reference)?;
    let tag = tag_for(reference);
    let layout = store.layout()?;
    let (os, arch) = crate::cpu::host_platform();
    let spec = |os: &str, arch: &str| PlatformSpec {
        os: os.to_string(),
        architecture: arch.to_string(),
        variant: None,
    };
    let pull_options = PullOptions {
        jobs: 4,
        platforms: vec![
            spec(os, arch),
            spec("unknown", "pulley64"),
            spec("wasip2", "wasm"),
        ],
        keys: keys.to_vec(),
        allow_references: allow_references.to_vec(),
        layers: pack_registry_client::Layers::None,
        // Signatures and rebuild attestations: a host reads no compile provenance.
        referrer_types: Some(vec![
            pack_packager::signing::sigstore::COSIGN_SIGN_PREDICATE,
            pack_packager::provenance::REBUILD_PREDICATE,
        ]),
    };
    let summary = on_registry(store, &parsed, options, async |registry, reporter| {
        let root = layout.root();
        pack_registry_client::pull(registry, &parsed, root, &tag, &pull_options, reporter).await
    })?
    .map_err(|e| match e {
        // Refused before anything but the signatures was fetched: the host's refusal.
        pack_registry_client::Error::Unverified {
            reference,
            digest,
            reasons,
        } => Error::Unverified {
            bundle: reference,
            digest,
            reasons,
        },
        other => other.into(),
    })?;
    Ok((layout, tag, summary))
}

/// Fetches `layers` (of manifests of `reference` already pulled into the store and
/// verified) that the store lacks; returns the bytes fetched.
#[cfg(feature = "registry")]
pub fn fetch_layers(
    store: &ContentStore,
    reference: &str,
    layers: &[pack_packager::oci_spec::image::Descriptor],
    options: &RegistryOptions,
) -> Result<u64> {
    let (parsed, _) = pack_registry_client::parse_reference(reference)?;
    let layout = store.layout()?;
    let fetched = on_registry(store, &parsed, options, async |registry, reporter| {
        pack_registry_client::fetch_blobs(registry, &parsed, layout.root(), layers, reporter).await
    })??;
    Ok(fetched)
}

/// Runs `transfer` on a current-thread runtime against the registry of `reference`,
/// connected with `options` and the credentials the environment holds for that registry
/// only (the caller's scoped ones, else the process's: `PACK_REGISTRY`, or the reference
/// the user gave), telling `options.reporter` of its progress. The outer error is the
/// store's (no runtime); the inner one is the registry's.
#[cfg(feature = "registry")]
fn on_registry<T>(
    store: &ContentStore,
    reference: &pack_registry_client::Reference,
    options: &RegistryOptions,
    transfer: impl AsyncFnOnce(
        &pack_registry_client::Registry,
        &dyn pack_registry_client::Reporter,
    ) -> pack_registry_client::Result<T>,
) -> Result<pack_registry_client::Result<T>> {
    use pack_registry_client::{NoReporter, Registry, auth};

    let reporter: &dyn pack_registry_client::Reporter = match &options.reporter {
        Some(reporter) => reporter.as_ref(),
        None => &NoReporter,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Store {
            path: store.root.clone(),
            source,
        })?;
    Ok(runtime.block_on(async {
        let env = options
            .credentials
            .clone()
            .unwrap_or_else(auth::AuthEnv::from_process);
        let credentials = auth::resolve(reference.registry(), None, &env)?;
        let registry = Registry::connect(reference, credentials, &options.connect).await?;
        transfer(&registry, reporter).await
    }))
}

/// How to reach registries.
#[derive(Clone, Default)]
pub struct RegistryOptions {
    /// TLS, timeouts and retries.
    #[cfg(feature = "registry")]
    pub connect: pack_registry_client::ConnectOptions,
    /// Told of each retry (and the transfer's progress); `None` reports nothing.
    #[cfg(feature = "registry")]
    pub reporter: Option<std::sync::Arc<dyn pack_registry_client::Reporter>>,
    /// Where credentials are looked up; `None` reads the process's
    /// ([`AuthEnv::from_process`](pack_registry_client::auth::AuthEnv::from_process)), whose
    /// `PACK_REGISTRY_USERNAME`/`PASSWORD` then go only to the registry `PACK_REGISTRY`
    /// names. A CLI that runs a reference the user typed scopes them to it with
    /// [`AuthEnv::for_command`](pack_registry_client::auth::AuthEnv::for_command).
    #[cfg(feature = "registry")]
    pub credentials: Option<pack_registry_client::auth::AuthEnv>,
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("RegistryOptions");
        #[cfg(feature = "registry")]
        s.field("connect", &self.connect)
            .field("reporter", &self.reporter.as_ref().map(|_| "..."))
            .field("credentials", &self.credentials);
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_valid_and_distinct() {
        for r in [
            "127.0.0.1:5000/app:v1",
            "registry.example.com/team/app@sha256:abcd",
            &format!("r.io/{}", "x".repeat(300)),
        ] {
            let tag = tag_for(r);
            assert!(pack_packager::reference::is_valid_tag(&tag), "{tag}");
        }
        assert_ne!(tag_for("r.io/a/b"), tag_for("r.io/a_b"));
        assert!(tag_for("127.0.0.1:5000/app:v1").starts_with("127.0.0.1_5000_app_v1-"));
    }
}
