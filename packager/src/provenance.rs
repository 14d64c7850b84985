//! Signed compile provenance and rebuild attestations: in-toto Statements about a
//! bundle's native artifacts, signed and stored the way signatures are (a sigstore
//! bundle holding a DSSE envelope, as an OCI 1.1 referrer; see [`crate::signing`]).
//!
//! - **Compile provenance** (written by `pack build` when it signs): a SLSA provenance v1
//!   predicate (`https://slsa.dev/provenance/v1`) of build type [`COMPILE_BUILD_TYPE`].
//!   Its subjects are the native manifest's `.cwasm` layer as stored and, when that layer
//!   is compressed, the `.cwasm` itself; its external parameters name the portable
//!   component's digest and the compile settings ([`CompileSettings`]).
//! - **Rebuild attestation** (written by `pack verify --rebuild --attest-key`): predicate
//!   type [`REBUILD_PREDICATE`], subject the reproduced `.cwasm`'s digest; the predicate
//!   records the component, the settings and who rebuilt it.
//!
//! Both are referrers of the **native manifest** they are about (its descriptor is the
//! referrer's `subject`): a manifest is what OCI lets an artifact refer to, and the
//! native manifest is the one document that names both the layer and its config. A copy
//! of the bundle (`pack push`, `pack pull`, `skopeo copy`) takes them along with the
//! manifest. `docs/provenance.md` describes the predicates and the trust model.
//!
//! As for signatures, a Statement is parsed only once its envelope verified with one of
//! the given keys; without keys, only the referrers' listing (and their unverified
//! annotations) is shown.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, Digest, MediaType};
use serde::Serialize;

use crate::bundle::{Bundle, Compilation, NativeConfig, NativeEntry, platform_string};
use crate::layout::parse_sha256;
use crate::referrers;
use crate::signing::sigstore::{self, BUNDLE_MEDIA_TYPE, Statement, Subject};
use crate::signing::{
    Fingerprint, PrivateKey, PublicKey, Rejection, announces_bundle, claimed_key, store_statement,
};
use crate::{Error, Layout, Result};

/// The predicate type of compile provenance: SLSA provenance v1.
pub const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
/// `buildDefinition.buildType` of pack's compile provenance.
pub const COMPILE_BUILD_TYPE: &str = "https://pack.dev/compile/v1";
/// The predicate type of a rebuild attestation.
pub const REBUILD_PREDICATE: &str = "https://pack.dev/rebuild/v1";
/// `runDetails.builder.id` of pack's compile provenance.
pub const BUILDER_ID: &str = "https://pack.dev/pack";
/// The version of pack that writes provenance and attestations.
pub const PACK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every predicate type pack stores as a sigstore bundle referrer: what a copy of a
/// bundle takes along.
pub const PREDICATE_TYPES: &[&str] = &[
    sigstore::COSIGN_SIGN_PREDICATE,
    SLSA_PROVENANCE,
    REBUILD_PREDICATE,
];

/// The settings a native artifact was compiled with, what a rebuild must use to get the
/// same bytes: the compiler's report a native manifest is built from ([`Compilation`]).
pub type CompileSettings = Compilation;

impl CompileSettings {
    /// The settings a native config records.
    pub fn of(config: &NativeConfig) -> Self {
        Self {
            target_triple: config.target_triple.clone(),
            cpu_preset: config.cpu_preset.clone(),
            cpu_flags: config.cpu_flags.clone(),
            profile: config.profile.clone(),
            wasmtime_version: config.wasmtime_version.clone(),
            compatibility_hash: config.compatibility_hash.clone(),
        }
    }
}

/// What a signed provenance or rebuild attestation says about one native artifact.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    /// The key that signed it.
    pub key: Fingerprint,
    /// The component it was compiled from (`sha256:<hex>`).
    pub component: String,
    /// The platform it names.
    pub platform: String,
    /// The compile settings.
    pub settings: CompileSettings,
    /// The pack version that wrote it.
    pub pack_version: String,
    /// Its subjects (`sha256:<hex>`).
    pub subjects: Vec<String>,
    /// For a rebuild attestation: the rebuilder's key hint, as it gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuilder: Option<String>,
}

/// Why one provenance or attestation does not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum AttestationRejection {
    /// None of the given keys made it.
    OtherKey,
    /// It is about another artifact.
    OtherDigest {
        /// What it is about.
        signed: String,
    },
    /// It says the artifact was compiled from another component than the portable one
    /// of the signed index.
    OtherComponent {
        /// The component it names.
        named: String,
        /// The portable component of the index.
        expected: String,
    },
    /// Its settings are not those the native manifest's config records.
    OtherSettings {
        /// What differs.
        detail: String,
    },
    /// The Statement is not the provenance or attestation it announces.
    MalformedPayload {
        /// What is wrong.
        detail: String,
    },
    /// The bundle or its referrer manifest is malformed.
    MalformedSignature {
        /// What is wrong.
        detail: String,
    },
}

impl From<Rejection> for AttestationRejection {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::OtherKey => Self::OtherKey,
            Rejection::OtherDigest { signed } => Self::OtherDigest { signed },
            Rejection::MalformedPayload { detail } => Self::MalformedPayload { detail },
            Rejection::MalformedSignature { detail } => Self::MalformedSignature { detail },
            Rejection::OtherReference { signed, expected } => Self::MalformedPayload {
                detail: format!("names `{signed}`, not `{expected}`"),
            },
        }
    }
}

impl std::fmt::Display for AttestationRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OtherKey => f.write_str("made by another key"),
            Self::OtherDigest { signed } => write!(f, "is about another artifact, {signed}"),
            Self::OtherComponent { named, expected } => write!(
                f,
                "names component {named}, not the index's portable component {expected}"
            ),
            Self::OtherSettings { detail } => {
                write!(
                    f,
                    "its settings differ from the manifest's config: {detail}"
                )
            }
            Self::MalformedPayload { detail } => write!(f, "malformed statement: {detail}"),
            Self::MalformedSignature { detail } => write!(f, "malformed bundle: {detail}"),
        }
    }
}

/// The check of one provenance or attestation referrer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationCheck {
    /// The referrer manifest's digest.
    pub referrer: String,
    /// The bundle layer's digest.
    pub layer: String,
    /// The key it claims (`dev.pack.signature.key`), not trusted.
    pub claimed_key: Option<String>,
    /// Verified, or why not.
    #[serde(skip)]
    pub outcome: std::result::Result<Claim, AttestationRejection>,
}

impl AttestationCheck {
    /// `<layer digest, 12 hex> <why>` when it does not count; `None` when it verified.
    pub fn rejection(&self) -> Option<String> {
        let why = self.outcome.as_ref().err()?;
        let short = self.layer.strip_prefix("sha256:").unwrap_or(&self.layer);
        Some(format!("{} {why}", &short[..short.len().min(12)]))
    }
}

/// One native artifact of a bundle, and its compile provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceCheck {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The native manifest's digest (the referrers' subject).
    pub manifest: String,
    /// The `.cwasm` layer as stored.
    pub layer: String,
    /// The `.cwasm` itself (the layer's digest when it is not compressed).
    pub cwasm: String,
    /// Each provenance referrer of the manifest.
    #[serde(skip)]
    pub referrers: Vec<AttestationCheck>,
}

impl ProvenanceCheck {
    /// The first provenance that verified and names the right component and settings.
    pub fn verified(&self) -> Option<&Claim> {
        self.referrers.iter().find_map(|r| r.outcome.as_ref().ok())
    }

    /// Why no provenance holds, one line; `None` when one does.
    pub fn problem(&self) -> Option<String> {
        if self.verified().is_some() {
            return None;
        }
        if self.referrers.is_empty() {
            return Some(format!(
                "{} has no compile provenance (no `{SLSA_PROVENANCE}` referrer of manifest {})",
                self.platform, self.manifest
            ));
        }
        let reasons: Vec<String> = self
            .referrers
            .iter()
            .filter_map(AttestationCheck::rejection)
            .collect();
        Some(format!(
            "{} has no valid compile provenance: {}",
            self.platform,
            reasons.join("; ")
        ))
    }
}

/// The digest of the `.cwasm` of `native`: its layer's, or, when the layer is
/// compressed, the uncompressed content's its config records.
pub fn cwasm_digest(native: &NativeEntry) -> Result<Digest> {
    match native.config.uncompressed_of(&native.cwasm)? {
        Some(u) => parse_sha256(&u.digest),
        None => Ok(native.cwasm.digest().clone()),
    }
}

/// The platform of `native`, `os/arch[/variant]`.
pub fn platform_of(native: &NativeEntry) -> String {
    native
        .descriptor
        .platform()
        .as_ref()
        .map(platform_string)
        .unwrap_or_else(|| "(no platform)".to_string())
}

/// The subject descriptor of a referrer about `native`: its manifest, without the
/// index entry's platform and annotations.
fn manifest_subject(descriptor: &Descriptor) -> Descriptor {
    Descriptor::new(
        MediaType::ImageManifest,
        descriptor.size(),
        descriptor.digest().clone(),
    )
}

fn digest_map(digest: &Digest) -> BTreeMap<String, String> {
    [(digest.algorithm().to_string(), digest.digest().to_string())].into()
}

/// The compile provenance Statement of `native`, compiled from `component`.
pub fn provenance_statement(native: &NativeEntry, component: &Digest) -> Result<Statement> {
    let platform = platform_of(native);
    let mut subjects = vec![Subject::new(
        &format!("{platform}:layer"),
        native.cwasm.digest(),
    )];
    let cwasm = cwasm_digest(native)?;
    if cwasm != *native.cwasm.digest() {
        subjects.push(Subject::new(&format!("{platform}:cwasm"), &cwasm));
    }
    let settings = CompileSettings::of(&native.config);
    let predicate = serde_json::json!({
        "buildDefinition": {
            "buildType": COMPILE_BUILD_TYPE,
            "externalParameters": {
                "component": component.to_string(),
                "platform": platform,
                "targetTriple": settings.target_triple,
                "cpuPreset": settings.cpu_preset,
                "cpuFlags": settings.cpu_flags,
                "profile": settings.profile,
            },
            "internalParameters": {
                "wasmtimeVersion": settings.wasmtime_version,
                "compatibilityHash": settings.compatibility_hash,
            },
            "resolvedDependencies": [{
                "name": "component",
                "digest": digest_map(component),
                "mediaType": crate::media_types::WASM_LAYER,
            }],
        },
        "runDetails": {
            "builder": {
                "id": BUILDER_ID,
                "version": { "pack": PACK_VERSION, "wasmtime": settings.wasmtime_version },
            },
        },
    });
    Ok(Statement::new(subjects, SLSA_PROVENANCE, predicate))
}

/// What [`sign_provenance`] wrote for one native artifact.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its platform.
    pub platform: String,
    /// The native manifest (the referrer's subject).
    pub manifest: Digest,
    /// The referrer manifest.
    pub referrer: Digest,
    /// `false` when the identical referrer was already there.
    pub added: bool,
}

/// Signs the compile provenance of every native artifact of `bundle` with `key`, each
/// stored as a referrer of its native manifest. The component named is the bundle's
/// portable component ([`component_of`]); a bundle without one has nothing to name, and
/// is refused.
pub fn sign_provenance(layout: &Layout, bundle: &Bundle, key: &PrivateKey) -> Result<Vec<Written>> {
    let mut written = Vec::new();
    for native in &bundle.natives {
        let component = match component_of(bundle, native)? {
            Some(c) => c,
            None => portable_component(layout, bundle)?,
        };
        let statement = provenance_statement(native, &component)?;
        let subject = manifest_subject(&native.descriptor);
        let (referrer, added) = store_statement(layout, &subject, &statement, key)?;
        written.push(Written {
            platform: platform_of(native),
            manifest: subject.digest().clone(),
            referrer: referrer.digest().clone(),
            added,
        });
    }
    Ok(written)
}

/// The portable component of `bundle` that `native` must have been compiled from: the
/// portable manifest's layer, or, when the layout lacks that manifest (a pull of some
/// platforms only), the content of `native`'s own fallback layer, which is the same
/// component of the same index. `None` when neither is there.
pub fn component_of(bundle: &Bundle, native: &NativeEntry) -> Result<Option<Digest>> {
    if let Some(p) = &bundle.portable {
        return Ok(Some(p.component.digest().clone()));
    }
    let Some(layer) = &native.component else {
        return Ok(None);
    };
    Ok(Some(match native.config.uncompressed_of(layer)? {
        Some(u) => parse_sha256(&u.digest)?,
        None => layer.digest().clone(),
    }))
}

fn portable_component(layout: &Layout, bundle: &Bundle) -> Result<Digest> {
    bundle
        .portable
        .as_ref()
        .map(|p| p.component.digest().clone())
        .ok_or_else(|| Error::NotABundle {
            layout: layout.root().to_path_buf(),
            tag: bundle.tag.clone(),
            reason: "it has no portable manifest, so no component its native artifacts \
                     could name as their source"
                .to_string(),
        })
}

/// A referrer found, and its bundle's layer digest and bytes, or why its manifest is
/// not a single-bundle artifact about the subject.
type Found = (Descriptor, std::result::Result<(String, Vec<u8>), String>);

/// The referrers of `subject` announcing a bundle of `predicate_type`, bounded as
/// signature referrers are, each with its manifest checked and its bundle read (`Err`:
/// why the referrer is not a single-bundle artifact about `subject`).
fn bundles_of(layout: &Layout, subject: &Digest, predicate_type: &str) -> Result<Vec<Found>> {
    let entries: Vec<Descriptor> = referrers::referrers(layout, subject)?
        .into_iter()
        .filter(|e| announces_bundle(e, predicate_type))
        .collect();
    if entries.len() > crate::limits::MAX_SIGNATURE_LAYERS {
        return Err(Error::TooMany {
            path: layout.root().join("index.json"),
            what: "attestation referrers for one digest",
            count: entries.len(),
            limit: crate::limits::MAX_SIGNATURE_LAYERS,
        });
    }
    let mut out = Vec::new();
    for entry in entries {
        if entry.size() > crate::limits::MAX_SIGNATURE_BLOB_BYTES {
            out.push((entry, Err("its manifest is too large".to_string())));
            continue;
        }
        let mut plain = entry.clone();
        plain.set_annotations(None);
        plain.set_artifact_type(None);
        let manifest = layout.read_manifest(&plain)?;
        let read = match referrers::referrer_problem(
            &manifest,
            subject,
            BUNDLE_MEDIA_TYPE,
            BUNDLE_MEDIA_TYPE,
        ) {
            Some(problem) => Err(problem),
            None => {
                let layer = &manifest.layers()[0];
                let bytes = layout.read_document(layer, "a sigstore bundle")?;
                Ok((layer.digest().to_string(), bytes))
            }
        };
        out.push((entry, read));
    }
    Ok(out)
}

fn check_all(
    found: Vec<Found>,
    open: impl Fn(&[u8]) -> std::result::Result<Claim, AttestationRejection>,
) -> Vec<AttestationCheck> {
    found
        .into_iter()
        .map(|(entry, read)| {
            let (layer, outcome) = match read {
                Ok((layer, bytes)) => (layer, open(&bytes)),
                Err(detail) => (
                    entry.digest().to_string(),
                    Err(AttestationRejection::MalformedSignature { detail }),
                ),
            };
            AttestationCheck {
                referrer: entry.digest().to_string(),
                layer,
                claimed_key: claimed_key(&entry),
                outcome,
            }
        })
        .collect()
}

/// Checks the compile provenance of every native artifact of `bundle` whose manifest
/// the layout has (a pull of some platforms leaves the others out): each provenance
/// referrer must be signed by one of `keys`, have the `.cwasm` layer (and, compressed,
/// the `.cwasm`) as subjects, name the portable component of the same index, and record
/// the settings the native manifest's config gives.
pub fn verify_provenance(
    layout: &Layout,
    bundle: &Bundle,
    keys: &[PublicKey],
) -> Result<Vec<ProvenanceCheck>> {
    let mut checks = Vec::new();
    for native in &bundle.natives {
        let expected = component_of(bundle, native)?.map(|d| d.to_string());
        let cwasm = cwasm_digest(native)?;
        let platform = platform_of(native);
        let found = bundles_of(layout, native.descriptor.digest(), SLSA_PROVENANCE)?;
        let referrers = check_all(found, |bytes| {
            open_provenance(bytes, keys, native, &cwasm, expected.as_deref())
        });
        checks.push(ProvenanceCheck {
            platform,
            manifest: native.descriptor.digest().to_string(),
            layer: native.cwasm.digest().to_string(),
            cwasm: cwasm.to_string(),
            referrers,
        });
    }
    Ok(checks)
}

fn subjects_of(statement: &Statement) -> Vec<String> {
    statement
        .subject
        .iter()
        .flat_map(|s| s.digest.iter().map(|(a, h)| format!("{a}:{h}")))
        .collect()
}

fn require_subject(
    statement: &Statement,
    digest: &Digest,
) -> std::result::Result<(), AttestationRejection> {
    if statement.subject.iter().any(|s| s.matches(digest)) {
        return Ok(());
    }
    Err(AttestationRejection::OtherDigest {
        signed: subjects_of(statement)
            .first()
            .cloned()
            .unwrap_or_else(|| "nothing (no subject)".to_string()),
    })
}

fn field<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    pointer: &str,
) -> std::result::Result<T, AttestationRejection> {
    let found = value
        .pointer(pointer)
        .ok_or_else(|| AttestationRejection::MalformedPayload {
            detail: format!("no `{}` in the predicate", pointer.trim_start_matches('/')),
        })?;
    serde_json::from_value(found.clone()).map_err(|e| AttestationRejection::MalformedPayload {
        detail: format!("`{}`: {e}", pointer.trim_start_matches('/')),
    })
}

fn settings_difference(claimed: &CompileSettings, config: &CompileSettings) -> Option<String> {
    let mut diffs = Vec::new();
    if claimed.target_triple != config.target_triple {
        diffs.push(format!(
            "target triple {} (config: {})",
            claimed.target_triple, config.target_triple
        ));
    }
    if claimed.cpu_preset != config.cpu_preset || claimed.cpu_flags != config.cpu_flags {
        diffs.push("CPU preset or flags".to_string());
    }
    if claimed.profile != config.profile {
        diffs.push("engine profile".to_string());
    }
    if claimed.wasmtime_version != config.wasmtime_version {
        diffs.push(format!(
            "wasmtime {} (config: {})",
            claimed.wasmtime_version, config.wasmtime_version
        ));
    }
    if claimed.compatibility_hash != config.compatibility_hash {
        diffs.push("compatibility hash".to_string());
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

/// The sigstore bundle `bytes`, signed by one of `keys` (checked over the DSSE envelope
/// before the Statement is parsed), whose Statement has predicate type `predicate`.
fn open_statement(
    bytes: &[u8],
    keys: &[PublicKey],
    predicate: &str,
) -> std::result::Result<sigstore::OpenedBundle, AttestationRejection> {
    let opened = sigstore::open_bundle(bytes, keys)?;
    if opened.statement.predicate_type != predicate {
        return Err(AttestationRejection::MalformedPayload {
            detail: format!(
                "predicate type `{}`, not `{predicate}`",
                opened.statement.predicate_type
            ),
        });
    }
    Ok(opened)
}

fn open_provenance(
    bytes: &[u8],
    keys: &[PublicKey],
    native: &NativeEntry,
    cwasm: &Digest,
    expected_component: Option<&str>,
) -> std::result::Result<Claim, AttestationRejection> {
    let opened = open_statement(bytes, keys, SLSA_PROVENANCE)?;
    let statement = &opened.statement;
    let p = &statement.predicate;
    let build_type: String = field(p, "/buildDefinition/buildType")?;
    if build_type != COMPILE_BUILD_TYPE {
        return Err(AttestationRejection::MalformedPayload {
            detail: format!("build type `{build_type}`, not `{COMPILE_BUILD_TYPE}`"),
        });
    }
    require_subject(statement, native.cwasm.digest())?;
    require_subject(statement, cwasm)?;
    let params = "/buildDefinition/externalParameters";
    let internal = "/buildDefinition/internalParameters";
    let component: String = field(p, &format!("{params}/component"))?;
    let settings = CompileSettings {
        target_triple: field(p, &format!("{params}/targetTriple"))?,
        cpu_preset: field(p, &format!("{params}/cpuPreset"))?,
        cpu_flags: field(p, &format!("{params}/cpuFlags"))?,
        profile: field(p, &format!("{params}/profile"))?,
        wasmtime_version: field(p, &format!("{internal}/wasmtimeVersion"))?,
        compatibility_hash: field(p, &format!("{internal}/compatibilityHash"))?,
    };
    let Some(expected) = expected_component else {
        return Err(AttestationRejection::OtherComponent {
            named: component,
            expected: "none (the index has no portable manifest)".to_string(),
        });
    };
    if component != expected {
        return Err(AttestationRejection::OtherComponent {
            named: component,
            expected: expected.to_string(),
        });
    }
    if let Some(detail) = settings_difference(&settings, &CompileSettings::of(&native.config)) {
        return Err(AttestationRejection::OtherSettings { detail });
    }
    Ok(Claim {
        key: opened.key,
        component,
        platform: field(p, &format!("{params}/platform"))?,
        settings,
        pack_version: field(p, "/runDetails/builder/version/pack")?,
        subjects: subjects_of(statement),
        rebuilder: None,
    })
}

/// The rebuild attestation Statement: `cwasm` (the reproduced `.cwasm`'s digest) of
/// `native` was rebuilt from `component` with its recorded settings by the holder of
/// `key`.
pub fn rebuild_statement(
    native: &NativeEntry,
    component: &Digest,
    cwasm: &Digest,
    key: &PublicKey,
) -> Statement {
    let platform = platform_of(native);
    let predicate = serde_json::json!({
        "component": component.to_string(),
        "platform": platform,
        "settings": CompileSettings::of(&native.config),
        "rebuilder": { "keyHint": sigstore::key_hint(key), "key": key.fingerprint().to_string() },
        "packVersion": PACK_VERSION,
    });
    Statement::new(
        vec![Subject::new(&format!("{platform}:cwasm"), cwasm)],
        REBUILD_PREDICATE,
        predicate,
    )
}

/// Signs a rebuild attestation of `native` (its `.cwasm` reproduced bit for bit from
/// `component`) with `key`, stored as a referrer of its native manifest. The caller
/// signs only what it just rebuilt and compared.
pub fn sign_rebuild(
    layout: &Layout,
    native: &NativeEntry,
    component: &Digest,
    key: &PrivateKey,
) -> Result<Written> {
    let cwasm = cwasm_digest(native)?;
    let statement = rebuild_statement(native, component, &cwasm, &key.public_key());
    let subject = manifest_subject(&native.descriptor);
    let (referrer, added) = store_statement(layout, &subject, &statement, key)?;
    Ok(Written {
        platform: platform_of(native),
        manifest: subject.digest().clone(),
        referrer: referrer.digest().clone(),
        added,
    })
}

/// Checks the rebuild attestations listed for the native manifest `manifest` against
/// `keys`: each must be signed by one of them and have `cwasm` (the `.cwasm`'s digest)
/// as its subject.
pub fn verify_rebuilds(
    layout: &Layout,
    manifest: &Digest,
    cwasm: &Digest,
    keys: &[PublicKey],
) -> Result<Vec<AttestationCheck>> {
    let found = bundles_of(layout, manifest, REBUILD_PREDICATE)?;
    Ok(check_all(found, |bytes| open_rebuild(bytes, keys, cwasm)))
}

/// The distinct keys among `checks` whose attestation verified.
pub fn attesters(checks: &[AttestationCheck]) -> Vec<Fingerprint> {
    let mut keys: Vec<Fingerprint> = Vec::new();
    for claim in checks.iter().filter_map(|c| c.outcome.as_ref().ok()) {
        if !keys.contains(&claim.key) {
            keys.push(claim.key.clone());
        }
    }
    keys
}

fn open_rebuild(
    bytes: &[u8],
    keys: &[PublicKey],
    cwasm: &Digest,
) -> std::result::Result<Claim, AttestationRejection> {
    let opened = open_statement(bytes, keys, REBUILD_PREDICATE)?;
    let statement = &opened.statement;
    require_subject(statement, cwasm)?;
    let p = &statement.predicate;
    Ok(Claim {
        key: opened.key,
        component: field(p, "/component")?,
        platform: field(p, "/platform")?,
        settings: field(p, "/settings")?,
        pack_version: field(p, "/packVersion")?,
        subjects: subjects_of(statement),
        rebuilder: field(p, "/rebuilder/keyHint")?,
    })
}

/// The unverified listing of the provenance and rebuild referrers of a native manifest,
/// for `pack inspect` without keys: each referrer's digest, announced predicate type
/// and claimed key.
pub fn listed(layout: &Layout, manifest: &Digest) -> Result<Vec<Descriptor>> {
    Ok(referrers::referrers(layout, manifest)?
        .into_iter()
        .filter(|e| announces_bundle(e, SLSA_PROVENANCE) || announces_bundle(e, REBUILD_PREDICATE))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{
        BlobSource, BundleInput, BundleOptions, Compilation, NativeArtifact, build_bundle_with,
    };
    use oci_spec::image::PlatformBuilder;

    fn bundle(dir: &std::path::Path, compression: Option<i32>, cwasm: &[u8]) -> (Layout, Bundle) {
        let input = BundleInput {
            component: BlobSource::Bytes(b"\0asm\x0d\0\x01\0".to_vec()),
            component_sha256: None,
            portable: Default::default(),
            natives: vec![NativeArtifact {
                platform: PlatformBuilder::default()
                    .os(oci_spec::image::Os::Linux)
                    .architecture(oci_spec::image::Arch::Amd64)
                    .build()
                    .unwrap(),
                cwasm: BlobSource::Bytes(cwasm.to_vec()),
                cwasm_sha256: None,
                compilation: Compilation {
                    wasmtime_version: "48.0.8".into(),
                    compatibility_hash: "ab".repeat(32),
                    target_triple: "x86_64-unknown-linux-gnu".into(),
                    cpu_preset: Some("x86-64-v3".into()),
                    cpu_flags: vec!["has_avx2".into()],
                    profile: serde_json::json!({"name": "default", "sha256": "00", "settings": {}}),
                },
            }],
            annotations: Default::default(),
            created: None,
        };
        let path = dir.join("l");
        build_bundle_with(&path, "v1", &input, &BundleOptions { compression }).unwrap();
        let layout = Layout::open(&path).unwrap();
        let bundle = Bundle::read(&layout, "v1").unwrap();
        (layout, bundle)
    }

    #[test]
    fn provenance_names_the_layer_the_cwasm_and_the_component() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, bundle) = bundle(dir.path(), Some(3), &[7u8; 4096]);
        let key = PrivateKey::generate();
        let written = sign_provenance(&layout, &bundle, &key).unwrap();
        assert_eq!(written.len(), 1);
        assert!(written[0].added);
        // Signing again writes the identical referrer: nothing is added.
        assert!(!sign_provenance(&layout, &bundle, &key).unwrap()[0].added);
        let checks = verify_provenance(&layout, &bundle, &[key.public_key()]).unwrap();
        let claim = checks[0].verified().expect("verified");
        let native = &bundle.natives[0];
        assert_eq!(
            claim.component,
            bundle
                .portable
                .as_ref()
                .unwrap()
                .component
                .digest()
                .to_string()
        );
        assert_eq!(claim.settings, CompileSettings::of(&native.config));
        assert_eq!(claim.platform, "linux/amd64");
        // Compressed: the layer as stored and the .cwasm are both subjects.
        assert_ne!(checks[0].layer, checks[0].cwasm);
        assert!(claim.subjects.contains(&checks[0].layer));
        assert!(claim.subjects.contains(&checks[0].cwasm));
        assert_eq!(checks[0].problem(), None);

        let other = PrivateKey::generate();
        let checks = verify_provenance(&layout, &bundle, &[other.public_key()]).unwrap();
        assert_eq!(
            checks[0].referrers[0].outcome,
            Err(AttestationRejection::OtherKey)
        );
        assert!(checks[0].problem().unwrap().contains("linux/amd64"));
    }

    #[test]
    fn provenance_of_another_component_or_settings_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, bundle) = bundle(dir.path(), None, b"native code");
        let key = PrivateKey::generate();
        let native = &bundle.natives[0];
        let subject = manifest_subject(&native.descriptor);
        // A statement naming another component, signed by the key.
        let other = crate::layout::sha256(b"another component");
        let statement = provenance_statement(native, &other).unwrap();
        store_statement(&layout, &subject, &statement, &key).unwrap();
        // And one whose settings are not the config's.
        let component = bundle.portable.as_ref().unwrap().component.digest().clone();
        let mut statement = provenance_statement(native, &component).unwrap();
        statement.predicate["buildDefinition"]["externalParameters"]["cpuPreset"] = "x86-64".into();
        store_statement(&layout, &subject, &statement, &key).unwrap();
        let checks = verify_provenance(&layout, &bundle, &[key.public_key()]).unwrap();
        let outcomes: Vec<_> = checks[0].referrers.iter().map(|r| &r.outcome).collect();
        assert!(matches!(
            outcomes[0],
            Err(AttestationRejection::OtherComponent { .. })
        ));
        assert!(matches!(
            outcomes[1],
            Err(AttestationRejection::OtherSettings { .. })
        ));
        assert!(checks[0].verified().is_none());
    }

    #[test]
    fn rebuild_attestations_count_each_key_once_and_only_for_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, bundle) = bundle(dir.path(), Some(1), &[9u8; 2048]);
        let native = &bundle.natives[0];
        let component = bundle.portable.as_ref().unwrap().component.digest().clone();
        let (a, b) = (PrivateKey::generate(), PrivateKey::generate());
        sign_rebuild(&layout, native, &component, &a).unwrap();
        sign_rebuild(&layout, native, &component, &b).unwrap();
        let cwasm = cwasm_digest(native).unwrap();
        assert_ne!(cwasm, *native.cwasm.digest());
        let keys = [a.public_key(), b.public_key()];
        let checks = verify_rebuilds(&layout, native.descriptor.digest(), &cwasm, &keys).unwrap();
        assert_eq!(attesters(&checks).len(), 2);
        let only_a = verify_rebuilds(
            &layout,
            native.descriptor.digest(),
            &cwasm,
            &[a.public_key()],
        )
        .unwrap();
        assert_eq!(attesters(&only_a), vec![a.public_key().fingerprint()]);
        // Not about the stored (compressed) layer, nor about anything else.
        let checks = verify_rebuilds(
            &layout,
            native.descriptor.digest(),
            native.cwasm.digest(),
            &keys,
        )
        .unwrap();
        assert!(attesters(&checks).is_empty());
        assert!(matches!(
            checks[0].outcome,
            Err(AttestationRejection::OtherDigest { .. })
        ));
        // Provenance is not a rebuild attestation, nor the reverse.
        assert!(
            verify_provenance(&layout, &bundle, &keys).unwrap()[0]
                .referrers
                .is_empty()
        );
    }
}
