//! Selection: which native manifest of a verified bundle fits this host.
//!
//! A native manifest fits when, in this order:
//!
//! 1. its platform (in the signed index) is this machine's OS and architecture, or it
//!    is pulley bytecode for this pointer width (tried after every native one);
//! 2. it was compiled by this host's wasmtime version;
//! 3. its manifest and config are in the layout (a registry pull fetches only this
//!    host's platforms);
//! 4. this CPU has every feature the config's `cpuFlags` require;
//! 5. its profile is one this host can configure an engine for (and, with a fixed
//!    engine, the host's own);
//! 6. when it is loaded ([`crate::Host::load`]), with the `jit` feature: the
//!    compatibility hash of the engine configured for the artifact's target, CPU flags
//!    and profile equals the one it records. Without a compiler wasmtime cannot compute
//!    that hash; the loader then relies on wasmtime's own check of the artifact's engine
//!    metadata, which it makes before mapping any code.
//!
//! Candidates are tried most specific first: more CPU features before fewer, native
//! before pulley. Every manifest that does not fit is reported with its reason.

use std::fmt;

use oci_spec::image::{Descriptor, MediaType};
use pack_packager::bundle::platform_string;
use pack_packager::compression::{Uncompressed, plain_media_type};
use pack_packager::media_types::{CWASM_LAYER, NATIVE_CONFIG, WASM_CONFIG, WASM_LAYER};
use pack_packager::{Error as PackagerError, NativeConfig, oci_spec};

use crate::Result;
use crate::cpu;
use crate::engine::{EnginePolicy, EngineSettings};
use crate::verify::VerifiedBundle;

/// The version of the `wasmtime` crate this host runs. Artifacts must come from the
/// same version.
pub use pack_engine_settings::WASMTIME_VERSION;

/// [`WASMTIME_VERSION`].
pub fn wasmtime_version() -> &'static str {
    WASMTIME_VERSION
}

/// Why a manifest was passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Built for another OS or architecture.
    Platform { host: String },
    /// This CPU lacks features the artifact uses.
    CpuFeatures { lacks: Vec<String> },
    /// Compiled by another wasmtime.
    WasmtimeVersion { artifact: String, host: String },
    /// The manifest is not in the layout (not pulled, or removed).
    NotPresent,
    /// The profile cannot be read as engine settings.
    Profile { detail: String },
    /// The artifact's profile differs from the host's fixed engine settings.
    ProfileDiffers { differences: Vec<String> },
    /// The recorded compatibility hash is not the one of this host's engine configured
    /// for the artifact.
    CompatibilityHash { recorded: String, host: String },
    /// wasmtime refused the artifact's engine metadata when loading it.
    EngineRefused { detail: String },
    /// The index entry is a native manifest without a `.cwasm` layer, or not a native
    /// manifest at all.
    NotAnArtifact { detail: String },
    /// Fewer of the required rebuilders attested its `.cwasm` than asked for
    /// (`HostOptions::rebuilt_by`, `HostOptions::rebuilds`).
    NotRebuilt {
        /// The `.cwasm` digest that needed attestations.
        cwasm: String,
        /// How many were required.
        required: usize,
        /// The required keys that attested it.
        attested: Vec<String>,
        /// The required keys that did not.
        missing: Vec<String>,
        /// Why attestations found did not count.
        rejected: Vec<String>,
    },
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(16)]
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Platform { host } => {
                write!(f, "built for another platform (this host is {host})")
            }
            Reason::CpuFeatures { lacks } => write!(f, "host lacks {}", lacks.join(", ")),
            Reason::WasmtimeVersion { artifact, host } => {
                write!(
                    f,
                    "compiled by wasmtime {artifact}, this host runs wasmtime {host}"
                )
            }
            Reason::NotPresent => f.write_str("not in the layout (not pulled)"),
            Reason::Profile { detail } => write!(f, "unusable profile: {detail}"),
            Reason::ProfileDiffers { differences } => write!(
                f,
                "compatibility hash differs: profile {}",
                differences.join(", ")
            ),
            Reason::CompatibilityHash { recorded, host } => write!(
                f,
                "compatibility hash differs: the artifact records {}, this host's engine has {} \
                 (another wasmtime build or configuration)",
                short(recorded),
                short(host)
            ),
            Reason::EngineRefused { detail } => write!(f, "wasmtime refused it: {detail}"),
            Reason::NotAnArtifact { detail } => f.write_str(detail),
            Reason::NotRebuilt {
                cwasm,
                required,
                attested,
                missing,
                rejected,
            } => {
                write!(
                    f,
                    "its .cwasm {} has {} of the {required} rebuild attestation(s) required \
                     (no attestation by key {})",
                    short(cwasm.strip_prefix("sha256:").unwrap_or(cwasm)),
                    attested.len(),
                    missing.join(", ")
                )?;
                if !rejected.is_empty() {
                    write!(f, "; not counted: {}", rejected.join("; "))?;
                }
                Ok(())
            }
        }
    }
}

/// A manifest that was passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedOver {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The manifest's digest.
    pub digest: String,
    pub reason: Reason,
}

impl fmt::Display for PassedOver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.platform, self.reason)
    }
}

/// A native manifest that fits as far as can be told before loading it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The manifest's descriptor in the index.
    pub manifest: Descriptor,
    /// Its config.
    pub config: NativeConfig,
    /// The `.cwasm` layer.
    pub cwasm: Descriptor,
    /// What the `.cwasm` layer decompresses to, when it is compressed.
    pub cwasm_uncompressed: Option<Uncompressed>,
    /// The engine settings it needs.
    pub settings: EngineSettings,
    /// Whether it is pulley bytecode (run by the interpreter).
    pub pulley: bool,
}

/// The outcome of selection: candidates in the order to try them, the manifests passed
/// over, and the portable component (for JIT when allowed).
#[derive(Debug, Clone)]
pub struct Selection {
    pub bundle: VerifiedBundle,
    pub candidates: Vec<Candidate>,
    pub passed_over: Vec<PassedOver>,
    /// The portable component layer, when the bundle has one in the layout.
    pub portable: Option<Descriptor>,
    /// What it decompresses to, when it is a native manifest's compressed layer.
    pub portable_uncompressed: Option<Uncompressed>,
}

/// What selection needs to know about the host.
pub(crate) struct HostFacts<'a> {
    pub policy: &'a EnginePolicy,
}

fn is_pulley(arch: &str) -> Option<usize> {
    match arch {
        "pulley64" => Some(64),
        "pulley32" => Some(32),
        _ => None,
    }
}

/// Reads a manifest, mapping a missing blob to `None` (a registry pull fetches only this
/// host's platforms); anything else that does not verify is an error.
fn read_present<T>(result: pack_packager::Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(PackagerError::BlobMissing { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn select(bundle: VerifiedBundle, host: &HostFacts<'_>) -> Result<Selection> {
    let layout = &bundle.layout;
    let (host_os, host_arch) = cpu::host_platform();
    let host_platform = format!("{host_os}/{host_arch}");
    let version = wasmtime_version();
    let mut candidates = Vec::new();
    let mut passed_over = Vec::new();
    let mut portable = None;
    let mut fallback_component = None;

    for entry in bundle.index.manifests() {
        if *entry.media_type() != MediaType::ImageManifest {
            continue;
        }
        let platform = entry.platform().as_ref();
        let label = platform
            .map(platform_string)
            .unwrap_or_else(|| "(no platform)".into());
        let pass = |reason: Reason| PassedOver {
            platform: label.clone(),
            digest: entry.digest().to_string(),
            reason,
        };
        let os = platform.map(|p| p.os().to_string()).unwrap_or_default();
        let arch = platform
            .map(|p| p.architecture().to_string())
            .unwrap_or_default();

        if arch == "wasm" {
            // The portable manifest: its component is the JIT fallback.
            if portable.is_none()
                && let Some(manifest) = read_present(layout.read_manifest(entry))?
                && manifest.config().media_type().to_string() == WASM_CONFIG
            {
                portable = manifest
                    .layers()
                    .iter()
                    .find(|l| l.media_type().to_string() == WASM_LAYER)
                    .cloned();
            }
            continue;
        }
        let pulley = match is_pulley(&arch) {
            Some(width) if width == usize::BITS as usize && cfg!(target_endian = "little") => true,
            Some(_) => {
                passed_over.push(pass(Reason::Platform {
                    host: host_platform.clone(),
                }));
                continue;
            }
            None if os == host_os && arch == host_arch => false,
            None => {
                passed_over.push(pass(Reason::Platform {
                    host: host_platform.clone(),
                }));
                continue;
            }
        };
        let annotations = entry.annotations().clone().unwrap_or_default();
        if let Some(v) = annotations.get(pack_packager::annotations::WASMTIME_VERSION)
            && v != version
        {
            passed_over.push(pass(Reason::WasmtimeVersion {
                artifact: v.clone(),
                host: version.to_string(),
            }));
            continue;
        }
        let Some(manifest) = read_present(layout.read_manifest(entry))? else {
            passed_over.push(pass(Reason::NotPresent));
            continue;
        };
        if manifest.config().media_type().to_string() != NATIVE_CONFIG {
            passed_over.push(pass(Reason::NotAnArtifact {
                detail: format!(
                    "not a native manifest (config `{}`)",
                    manifest.config().media_type()
                ),
            }));
            continue;
        }
        let config: NativeConfig = layout.read_json(manifest.config(), "native config")?;
        let Some(cwasm) = manifest
            .layers()
            .iter()
            .find(|l| plain_media_type(l.media_type().as_ref()) == CWASM_LAYER)
            .cloned()
        else {
            passed_over.push(pass(Reason::NotAnArtifact {
                detail: format!("native manifest without a `{CWASM_LAYER}` layer"),
            }));
            continue;
        };
        let cwasm_uncompressed = match config.uncompressed_of(&cwasm) {
            Ok(u) => u.cloned(),
            Err(e) => {
                passed_over.push(pass(Reason::NotAnArtifact {
                    detail: e.to_string(),
                }));
                continue;
            }
        };
        if fallback_component.is_none()
            && let Some(layer) = manifest
                .layers()
                .iter()
                .find(|l| plain_media_type(l.media_type().as_ref()) == WASM_LAYER)
            && let Ok(content) = config.uncompressed_of(layer)
        {
            fallback_component = Some((layer.clone(), content.cloned()));
        }
        if config.wasmtime_version != version {
            passed_over.push(pass(Reason::WasmtimeVersion {
                artifact: config.wasmtime_version.clone(),
                host: version.to_string(),
            }));
            continue;
        }
        if !pulley {
            let (lacks, _unknown) = cpu::missing(&config.cpu_flags);
            if !lacks.is_empty() {
                passed_over.push(pass(Reason::CpuFeatures { lacks }));
                continue;
            }
        }
        let settings = match EngineSettings::from_profile(&config.profile) {
            Ok(s) => s,
            Err(e) => {
                passed_over.push(pass(Reason::Profile { detail: e.0 }));
                continue;
            }
        };
        if let EnginePolicy::Fixed(fixed) = host.policy
            && *fixed != settings
        {
            passed_over.push(pass(Reason::ProfileDiffers {
                differences: settings.differences(fixed),
            }));
            continue;
        }
        candidates.push(Candidate {
            platform: label.clone(),
            manifest: entry.clone(),
            config,
            cwasm,
            cwasm_uncompressed,
            settings,
            pulley,
        });
    }
    // Most specific first; the index order (by platform, then digest) breaks ties.
    candidates.sort_by_key(|c| (c.pulley, std::cmp::Reverse(c.config.cpu_flags.len())));
    let (portable, portable_uncompressed) = match (portable, fallback_component) {
        (Some(layer), _) => (Some(layer), None),
        (None, Some((layer, content))) => (Some(layer), content),
        (None, None) => (None, None),
    };
    Ok(Selection {
        bundle,
        candidates,
        passed_over,
        portable,
        portable_uncompressed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_well() {
        let p = PassedOver {
            platform: "linux/amd64/v3".into(),
            digest: "sha256:x".into(),
            reason: Reason::CpuFeatures {
                lacks: vec!["avx2".into(), "bmi2".into()],
            },
        };
        assert_eq!(p.to_string(), "linux/amd64/v3: host lacks avx2, bmi2");
        let r = Reason::ProfileDiffers {
            differences: vec!["with epoch interruption".into()],
        };
        assert_eq!(
            r.to_string(),
            "compatibility hash differs: profile with epoch interruption"
        );
    }
}
