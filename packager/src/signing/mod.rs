//! Cosign-compatible, key-based signatures ("simple signing") stored in the layout.
//!
//! Signing digest `sha256:<hex>` writes a manifest tagged `sha256-<hex>.sig` (the tag
//! cosign looks up), whose layers are simple-signing payloads
//! (`application/vnd.dev.cosign.simplesigning.v1+json`):
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"<repo>"},
//!              "image":{"docker-manifest-digest":"sha256:<hex>"},
//!              "type":"cosign container image signature"},
//!  "optional":null}
//! ```
//!
//! each with the base64 DER ECDSA P-256 SHA-256 signature of the payload bytes in the
//! layer annotation `dev.cosignproject.cosign/signature`. Signing again adds a layer.
//!
//! A payload with a field pack does not know at the top level or anywhere in `critical`
//! is refused (as the containers/image signature format requires for `critical`: an
//! unknown critical claim may restrict what is signed); `optional` may hold anything.
//!
//! Verification needs only `index.json`, the signature manifest and the payload blobs:
//! each signature is checked over the payload's bytes before the payload is parsed, and
//! the signed bundle itself is never read, so a host can verify before it deserialises
//! anything it downloaded.

mod identity;
mod keys;
pub mod sigstore;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use oci_spec::image::{Descriptor, Digest, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};

pub use identity::{
    ReferenceMatch, ReferencePattern, ReferencePolicy, is_unbound, normalize_repository,
};
pub use keys::{
    Fingerprint, GeneratedKey, PrivateKey, PublicKey, exposed_key_mode, generate, is_encrypted,
};

use crate::annotations::{BUNDLE_CONTENT, BUNDLE_PREDICATE_TYPE, COSIGN_SIGNATURE, SIGNATURE_KEY};
use crate::layout::{ref_name, set_tag_in};
use crate::media_types::{IMAGE_CONFIG, IMAGE_MANIFEST, SIMPLE_SIGNING};
use crate::referrers::{self, referrers_tag};
use crate::{Error, Layout, Result};
use sigstore::{BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, Statement, Subject};

/// Which signature formats to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureFormat {
    /// cosign's simple signing under the `sha256-<hex>.sig` tag only.
    Legacy,
    /// A sigstore bundle stored as an OCI 1.1 referrer only.
    Bundle,
    /// Both (the default while hosts that read only the legacy tag remain).
    #[default]
    Both,
}

impl SignatureFormat {
    /// Whether the legacy `.sig` signature is written.
    pub fn legacy(self) -> bool {
        matches!(self, Self::Legacy | Self::Both)
    }

    /// Whether the sigstore bundle referrer is written.
    pub fn bundle(self) -> bool {
        matches!(self, Self::Bundle | Self::Both)
    }
}

impl std::str::FromStr for SignatureFormat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "legacy" => Ok(Self::Legacy),
            "bundle" => Ok(Self::Bundle),
            "both" => Ok(Self::Both),
            other => Err(format!(
                "`{other}` is not a signature format: use `legacy`, `bundle` or `both`"
            )),
        }
    }
}

impl fmt::Display for SignatureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Legacy => "legacy",
            Self::Bundle => "bundle",
            Self::Both => "both",
        })
    }
}

/// The kind of one signature found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureKind {
    /// A cosign simple-signing layer of the `sha256-<hex>.sig` manifest.
    SimpleSigning,
    /// A sigstore bundle referrer.
    SigstoreBundle,
}

impl fmt::Display for SignatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SimpleSigning => "simple signing",
            Self::SigstoreBundle => "sigstore bundle",
        })
    }
}

/// The `type` of a cosign simple-signing payload.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm(), digest.digest())
}

/// A simple-signing payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// What is signed.
    pub critical: Critical,
    /// Free-form claims (`cosign sign -a key=value`); `null` when there are none.
    pub optional: Option<BTreeMap<String, serde_json::Value>>,
}

/// `critical` of a [`Payload`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Critical {
    /// The repository the signer meant.
    pub identity: Identity,
    /// The signed digest.
    pub image: Image,
    /// Always [`SIGNATURE_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
}

/// `critical.identity` of a [`Payload`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The repository (`registry.example.com/app`).
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

/// `critical.image` of a [`Payload`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// The signed manifest or index digest.
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl Payload {
    /// The payload that signs `digest` for `reference`.
    pub fn new(
        digest: &Digest,
        reference: &str,
        optional: Option<BTreeMap<String, serde_json::Value>>,
    ) -> Self {
        Self {
            critical: Critical {
                identity: Identity {
                    docker_reference: reference.to_string(),
                },
                image: Image {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: SIGNATURE_TYPE.to_string(),
            },
            optional,
        }
    }

    /// The canonical JSON bytes that get signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::json::to_vec(self).expect("a payload serialises")
    }
}

/// Options of [`sign_index`].
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// `critical.identity.docker-reference`; [`default_reference`] when `None`.
    pub reference: Option<String>,
    /// Also sign every manifest the index lists.
    pub recursive: bool,
    /// `optional` claims of the payload.
    pub annotations: BTreeMap<String, String>,
    /// Which formats to write.
    pub format: SignatureFormat,
}

/// One digest [`sign_index`] signed.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The signed digest.
    pub digest: Digest,
    /// The tag the legacy signature manifest is under, when one was written.
    pub signature_tag: Option<String>,
    /// The sigstore bundle referrer manifest's digest, when one was written.
    pub referrer: Option<Digest>,
    /// `false` when the same signatures were already there (nothing changed).
    pub added: bool,
}

/// What [`sign_index`] did.
#[derive(Debug, Clone)]
pub struct SignSummary {
    /// The `docker-reference` written.
    pub reference: String,
    /// The signing key.
    pub key: Fingerprint,
    /// The index first, then (with `recursive`) each manifest.
    pub signed: Vec<Signed>,
}

/// The `docker-reference` used when none is given. A layout does not know which
/// repository it will be pushed to, so pack uses the layout directory's name (the last
/// component of its absolute path, e.g. `app` for `./out/app`), or `layout` when it has
/// none. Such a name (no `/`) binds the signature to no repository ([`is_unbound`]):
/// pass the real repository with `--reference` when it is known, so a host that pulls
/// the bundle from another repository refuses it ([`ReferencePolicy`]).
pub fn default_reference(layout: &Layout) -> String {
    let root = layout.root();
    let absolute = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "layout".to_string())
}

/// Signs the digest `tag` points to (and, with `recursive`, every manifest of the index)
/// with `key`, adding a layer to each `sha256-<hex>.sig` signature manifest.
pub fn sign_index(
    layout: &Layout,
    tag: &str,
    key: &PrivateKey,
    options: &SignOptions,
) -> Result<SignSummary> {
    let descriptor = layout.resolve(tag)?;
    sign_descriptor(layout, &descriptor, tag, key, options)
}

/// Signs the document `descriptor` names (and, with `recursive`, every manifest of that
/// index), as [`sign_index`] does, without looking at any tag: what a build signs is the
/// descriptor it produced itself, not what a tag points to by the time the key is
/// decrypted. `tag` only names the bundle in errors.
pub fn sign_descriptor(
    layout: &Layout,
    descriptor: &Descriptor,
    tag: &str,
    key: &PrivateKey,
    options: &SignOptions,
) -> Result<SignSummary> {
    let mut targets = vec![descriptor.clone()];
    if options.recursive {
        if *descriptor.media_type() != MediaType::ImageIndex {
            return Err(Error::NotABundle {
                layout: layout.root().to_path_buf(),
                tag: tag.to_string(),
                reason: format!(
                    "--recursive needs an image index, and it points to a `{}`",
                    descriptor.media_type()
                ),
            });
        }
        let index = layout.read_image_index(descriptor)?;
        for entry in index.manifests() {
            if !targets.iter().any(|t| t.digest() == entry.digest()) {
                let mut entry = entry.clone();
                entry.set_annotations(None);
                entry.set_platform(None);
                targets.push(entry);
            }
        }
    }
    let reference = options
        .reference
        .clone()
        .unwrap_or_else(|| default_reference(layout));
    let optional = (!options.annotations.is_empty()).then(|| {
        options
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    });
    // A host follows at most MAX_SIGNATURE_LAYERS bundles per digest, as it does legacy
    // layers: refuse before writing either format.
    if options.format.bundle() {
        for target in &targets {
            let existing = referrers::referrers(layout, target.digest())?
                .iter()
                .filter(|e| announces_bundle(e, COSIGN_SIGN_PREDICATE))
                .count();
            if existing >= crate::limits::MAX_SIGNATURE_LAYERS {
                return Err(Error::TooMany {
                    path: layout.root().join("index.json"),
                    what: "signature referrers for one digest",
                    count: existing + 1,
                    limit: crate::limits::MAX_SIGNATURE_LAYERS,
                });
            }
        }
    }
    let mut signed = Vec::with_capacity(targets.len());
    for target in targets {
        let digest = target.digest().clone();
        let mut entry = Signed {
            digest: digest.clone(),
            signature_tag: None,
            referrer: None,
            added: false,
        };
        if options.format.legacy() {
            entry.added |= sign_digest(layout, &digest, key, &reference, optional.clone())?;
            entry.signature_tag = Some(signature_tag(&digest));
        }
        if options.format.bundle() {
            let (manifest, added) =
                sign_bundle(layout, &target, key, &reference, optional.clone())?;
            entry.added |= added;
            entry.referrer = Some(manifest.digest().clone());
        }
        signed.push(entry);
    }
    Ok(SignSummary {
        reference,
        key: key.public_key().fingerprint(),
        signed,
    })
}

/// Signs `digest` (which need not be in the layout) and stores the signature under
/// `sha256-<hex>.sig`. Returns `false` when the identical signature was already there.
pub fn sign_digest(
    layout: &Layout,
    digest: &Digest,
    key: &PrivateKey,
    reference: &str,
    optional: Option<BTreeMap<String, serde_json::Value>>,
) -> Result<bool> {
    let payload = Payload::new(digest, reference, optional).to_bytes();
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload));
    let mut layer = layout.put_bytes(&payload)?.descriptor(SIMPLE_SIGNING);
    layer.set_annotations(Some(
        [
            (COSIGN_SIGNATURE.to_string(), signature),
            (
                SIGNATURE_KEY.to_string(),
                key.public_key().fingerprint().to_string(),
            ),
        ]
        .into(),
    ));
    let tag = signature_tag(digest);
    layout.update_index(|index| {
        let existing = index
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(tag.as_str()))
            .cloned();
        let mut layers = match &existing {
            Some(d) => layout.read_manifest(d)?.layers().clone(),
            None => Vec::new(),
        };
        if layers.contains(&layer) {
            return Ok(false);
        }
        // A host refuses a signature manifest with more layers than it follows
        // (`limits::MAX_SIGNATURE_LAYERS`): never write one.
        if layers.len() >= crate::limits::MAX_SIGNATURE_LAYERS {
            return Err(Error::TooMany {
                path: layout.root().join("index.json"),
                what: "signatures for one digest",
                count: layers.len() + 1,
                limit: crate::limits::MAX_SIGNATURE_LAYERS,
            });
        }
        layers.push(layer);
        // cosign's config: an image config whose rootfs lists the payloads.
        let config = serde_json::json!({
            "architecture": "",
            "config": {},
            "os": "",
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.digest().to_string()).collect::<Vec<_>>(),
            },
        });
        let (config, _) = layout.put_json(IMAGE_CONFIG, &config)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(layers)
            .build()
            .expect("every required manifest field is set");
        let (descriptor, _) = layout.put_json(IMAGE_MANIFEST, &manifest)?;
        set_tag_in(index, &tag, &descriptor);
        Ok(true)
    })
}

/// Signs `subject` (which need not be in the layout) with a sigstore bundle: a DSSE
/// envelope over an in-toto Statement whose subject is `subject`'s digest named
/// `reference`, predicate type [`COSIGN_SIGN_PREDICATE`], predicate the `optional`
/// claims (`{}` when none). The bundle is stored as a referrer of `subject`
/// ([`referrers::add_referrer`]). Returns the referrer manifest's descriptor and whether
/// it was added (`false` when the identical bundle was already there: ECDSA signatures
/// here are deterministic, RFC 6979).
pub fn sign_bundle(
    layout: &Layout,
    subject: &Descriptor,
    key: &PrivateKey,
    reference: &str,
    optional: Option<BTreeMap<String, serde_json::Value>>,
) -> Result<(Descriptor, bool)> {
    let predicate = serde_json::Value::Object(optional.unwrap_or_default().into_iter().collect());
    let statement = Statement::new(
        vec![Subject::new(reference, subject.digest())],
        COSIGN_SIGN_PREDICATE,
        predicate,
    );
    store_statement(layout, subject, &statement, key)
}

/// Signs `statement` with `key` as a sigstore bundle and stores it as a referrer of
/// `subject` ([`referrers::add_referrer`], at most
/// [`MAX_SIGNATURE_LAYERS`](crate::limits::MAX_SIGNATURE_LAYERS) of them). Returns the
/// referrer manifest's descriptor and whether it was added.
pub(crate) fn store_statement(
    layout: &Layout,
    subject: &Descriptor,
    statement: &Statement,
    key: &PrivateKey,
) -> Result<(Descriptor, bool)> {
    let bundle = sigstore::sign_statement(statement, key);
    referrers::add_referrer(
        layout,
        subject,
        BUNDLE_MEDIA_TYPE,
        BUNDLE_MEDIA_TYPE,
        &bundle,
        &bundle_annotations(&statement.predicate_type, &key.public_key()),
        crate::limits::MAX_SIGNATURE_LAYERS,
    )
}

/// The annotations of a bundle referrer manifest: what cosign writes
/// (`dev.sigstore.bundle.content`, `dev.sigstore.bundle.predicateType`) and the claimed
/// key (`dev.pack.signature.key`, never trusted).
pub fn bundle_annotations(predicate_type: &str, key: &PublicKey) -> BTreeMap<String, String> {
    [
        (BUNDLE_CONTENT.to_string(), "dsse-envelope".to_string()),
        (
            BUNDLE_PREDICATE_TYPE.to_string(),
            predicate_type.to_string(),
        ),
        (SIGNATURE_KEY.to_string(), key.fingerprint().to_string()),
    ]
    .into()
}

/// Whether the referrers index entry `entry` announces a sigstore bundle with predicate
/// type `predicate_type` (by its `artifactType`, when it has one, and the
/// `dev.sigstore.bundle.predicateType` annotation; an entry without the annotation
/// counts, its Statement is checked anyway). A filter before anything is fetched, not
/// a check: only the signed Statement says what it is.
pub fn announces_bundle(entry: &Descriptor, predicate_type: &str) -> bool {
    // An entry without `artifactType` counts too (a copy by skopeo drops it); the
    // manifest's own `artifactType` is checked before its layer is read.
    referrers::artifact_type(entry).is_none_or(|t| t == BUNDLE_MEDIA_TYPE)
        && entry
            .annotations()
            .as_ref()
            .and_then(|a| a.get(BUNDLE_PREDICATE_TYPE))
            .is_none_or(|p| p == predicate_type)
}

/// Checks the sigstore bundle `bytes` as a signature of `expected`: signed by one of
/// `keys` (over the DSSE envelope, before the Statement is parsed), a Statement of
/// predicate type [`COSIGN_SIGN_PREDICATE`] with a subject naming `expected`, whose name
/// is the `docker-reference`.
pub fn verify_bundle(
    bytes: &[u8],
    expected: &Digest,
    keys: &[PublicKey],
) -> std::result::Result<Verified, Rejection> {
    let opened = sigstore::open_bundle(bytes, keys)?;
    let statement = opened.statement;
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(Rejection::MalformedPayload {
            detail: format!(
                "predicate type `{}`, not `{COSIGN_SIGN_PREDICATE}`",
                statement.predicate_type
            ),
        });
    }
    let Some(subject) = statement.subject.iter().find(|s| s.matches(expected)) else {
        return Err(Rejection::OtherDigest {
            signed: statement
                .subject
                .first()
                .and_then(|s| s.digest.iter().next())
                .map(|(a, h)| format!("{a}:{h}"))
                .unwrap_or_else(|| "nothing (no subject)".to_string()),
        });
    };
    let optional = match statement.predicate {
        serde_json::Value::Object(map) if !map.is_empty() => Some(map.into_iter().collect()),
        _ => None,
    };
    Ok(Verified {
        key: opened.key,
        reference: subject.name.clone(),
        optional,
    })
}

/// Why a signature does not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Rejection {
    /// None of the given keys made it.
    OtherKey,
    /// It is valid, but signs another digest.
    OtherDigest {
        /// The digest it signs.
        signed: String,
    },
    /// The signature checks out but the payload is not a cosign simple-signing payload.
    MalformedPayload {
        /// What is wrong.
        detail: String,
    },
    /// The signature annotation is missing, not base64, or not DER.
    MalformedSignature {
        /// What is wrong.
        detail: String,
    },
    /// It is valid, but names another repository than the one the bundle came from
    /// (see [`ReferencePolicy`]).
    OtherReference {
        /// Its `docker-reference`.
        signed: String,
        /// The repository expected (normalized).
        expected: String,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherKey => f.write_str("made by another key"),
            Self::OtherDigest { signed } => write!(f, "signs another digest, {signed}"),
            Self::MalformedPayload { detail } => write!(f, "malformed payload: {detail}"),
            Self::MalformedSignature { detail } => write!(f, "malformed signature: {detail}"),
            Self::OtherReference { signed, expected } => {
                write!(f, "signed for `{signed}`, not for `{expected}`")
            }
        }
    }
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verified {
    /// The key that made it.
    pub key: Fingerprint,
    /// Its `docker-reference`.
    pub reference: String,
    /// Its `optional` claims.
    pub optional: Option<BTreeMap<String, serde_json::Value>>,
}

/// The check of one signature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignatureCheck {
    /// Its format.
    pub format: SignatureKind,
    /// The payload blob's digest (simple signing) or the bundle's (sigstore bundle).
    pub layer: String,
    /// The key fingerprint the layer claims (`dev.pack.signature.key`), if any. Not
    /// trusted: only a verified signature says who signed.
    pub claimed_key: Option<String>,
    /// Verified, or why not.
    pub outcome: std::result::Result<Verified, Rejection>,
}

/// The answer of [`verify`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The digest that was checked.
    pub digest: String,
    /// The tag its legacy signatures are stored under (`sha256-<hex>.sig`).
    pub signature_tag: String,
    /// The tag its referrers are listed under without a referrers API (`sha256-<hex>`).
    pub referrers_tag: String,
    /// One entry per signature (legacy layer or bundle); empty when unsigned.
    pub signatures: Vec<SignatureCheck>,
}

impl SignatureCheck {
    /// The check of the sigstore bundle referrer `entry` of `digest`: `bundle` is the
    /// bundle layer and its bytes, or why the referrer's manifest is not a proper one (one
    /// bundle layer, `subject` = `digest`), in which case nothing of it was fetched.
    pub fn sigstore_bundle(
        entry: &Descriptor,
        bundle: std::result::Result<(&Descriptor, Vec<u8>), String>,
        digest: &Digest,
        keys: &[PublicKey],
    ) -> Self {
        let (layer, outcome) = match bundle {
            Err(problem) => (
                entry.digest().to_string(),
                Err(Rejection::MalformedSignature { detail: problem }),
            ),
            Ok((layer, bytes)) => (
                layer.digest().to_string(),
                verify_bundle(&bytes, digest, keys),
            ),
        };
        SignatureCheck {
            format: SignatureKind::SigstoreBundle,
            layer,
            claimed_key: claimed_key(entry),
            outcome,
        }
    }
}

impl Verdict {
    /// The verdict on `digest` before any signature is checked: its signature and
    /// referrers tags, no signatures yet.
    pub fn new(digest: &Digest) -> Self {
        Verdict {
            digest: digest.to_string(),
            signature_tag: signature_tag(digest),
            referrers_tag: referrers_tag(digest),
            signatures: Vec::new(),
        }
    }

    /// Whether at least one signature by one of the keys covers the digest.
    pub fn is_verified(&self) -> bool {
        self.signatures.iter().any(|s| s.outcome.is_ok())
    }

    /// Whether there are no signatures at all.
    pub fn is_unsigned(&self) -> bool {
        self.signatures.is_empty()
    }

    /// Applies `policy` to the signatures that verified: one that names another
    /// repository, which the policy does not allow, becomes
    /// [`Rejection::OtherReference`].
    pub fn require_reference(&mut self, policy: &ReferencePolicy) {
        for check in &mut self.signatures {
            if let Ok(verified) = &check.outcome
                && let Err(rejection) = policy.check(&verified.reference)
            {
                check.outcome = Err(rejection);
            }
        }
    }

    /// The signatures that verified.
    pub fn verified(&self) -> impl Iterator<Item = &Verified> {
        self.signatures
            .iter()
            .filter_map(|s| s.outcome.as_ref().ok())
    }

    /// Why the digest does not verify, one line per signature (or one for "unsigned").
    pub fn reasons(&self) -> Vec<String> {
        if self.is_unsigned() {
            return vec![format!(
                "{} is unsigned: there is no signature tag `{}` and no signature referrer",
                self.digest, self.signature_tag
            )];
        }
        self.signatures
            .iter()
            .filter_map(|s| {
                let why = s.outcome.as_ref().err()?;
                let short = s.layer.strip_prefix("sha256:").unwrap_or(&s.layer);
                let kind = match s.format {
                    SignatureKind::SimpleSigning => "signature",
                    SignatureKind::SigstoreBundle => "bundle",
                };
                Some(format!("{kind} {}: {why}", &short[..short.len().min(12)]))
            })
            .collect()
    }
}

/// Checks the signatures of the digest `tag` points to against `keys`.
pub fn verify(layout: &Layout, tag: &str, keys: &[PublicKey]) -> Result<Verdict> {
    let descriptor = layout.resolve(tag)?;
    verify_digest(layout, descriptor.digest(), keys)
}

/// Checks the signatures stored in `layout` for `digest` against `keys`: the layers of
/// the legacy `sha256-<hex>.sig` manifest and the sigstore bundles among the referrers
/// of `digest`. The signed content itself is not read.
pub fn verify_digest(layout: &Layout, digest: &Digest, keys: &[PublicKey]) -> Result<Verdict> {
    let mut verdict = Verdict::new(digest);
    let signature_tag = verdict.signature_tag.clone();
    if let Some(entry) = layout.tags()?.into_iter().find(|t| t.name == signature_tag) {
        let manifest = layout.read_manifest(&entry.descriptor)?;
        for layer in manifest.layers() {
            if layer.media_type().to_string() != SIMPLE_SIGNING {
                continue;
            }
            let annotations = layer.annotations().clone().unwrap_or_default();
            let claimed_key = annotations.get(SIGNATURE_KEY).cloned();
            let outcome = match annotations.get(COSIGN_SIGNATURE) {
                None => Err(Rejection::MalformedSignature {
                    detail: format!("no `{COSIGN_SIGNATURE}` annotation"),
                }),
                Some(signature) => {
                    let payload = layout.read_document(layer, "a signature payload")?;
                    verify_payload(&payload, signature, digest, keys)
                }
            };
            verdict.signatures.push(SignatureCheck {
                format: SignatureKind::SimpleSigning,
                layer: layer.digest().to_string(),
                claimed_key,
                outcome,
            });
        }
    }
    let bundles = signature_referrers(layout.root(), referrers::referrers(layout, digest)?)?;
    for entry in bundles {
        let manifest = layout.read_manifest(&entry)?;
        let bundle = match referrers::referrer_problem(
            &manifest,
            digest,
            BUNDLE_MEDIA_TYPE,
            BUNDLE_MEDIA_TYPE,
        ) {
            Some(problem) => Err(problem),
            None => {
                let layer = &manifest.layers()[0];
                Ok((layer, layout.read_document(layer, "a sigstore bundle")?))
            }
        };
        let check = SignatureCheck::sigstore_bundle(&entry, bundle, digest, keys);
        verdict.signatures.push(check);
    }
    Ok(verdict)
}

/// The claimed signing key of a referrer entry (`dev.pack.signature.key`), not trusted.
pub fn claimed_key(entry: &Descriptor) -> Option<String> {
    entry
        .annotations()
        .as_ref()
        .and_then(|a| a.get(SIGNATURE_KEY))
        .cloned()
}

/// The entries of `referrers` (listed at `place`) that announce a signature
/// bundle ([`announces_bundle`]), bounded: more than
/// [`MAX_SIGNATURE_LAYERS`](crate::limits::MAX_SIGNATURE_LAYERS) of them is refused
/// before any is read, as a legacy signature manifest with too many layers is.
pub fn signature_referrers(place: &Path, referrers: Vec<Descriptor>) -> Result<Vec<Descriptor>> {
    bundle_referrers(place, referrers, &[COSIGN_SIGN_PREDICATE])
}

/// The entries of `referrers` (listed at `place`) that announce a sigstore bundle of
/// one of `predicate_types` (signatures, compile provenance, rebuild attestations:
/// [`crate::provenance::PREDICATE_TYPES`] is what a copy of a bundle takes along),
/// bounded: more than [`MAX_SIGNATURE_LAYERS`](crate::limits::MAX_SIGNATURE_LAYERS) of
/// one type is refused before any is read.
pub fn bundle_referrers(
    place: &Path,
    referrers: Vec<Descriptor>,
    predicate_types: &[&str],
) -> Result<Vec<Descriptor>> {
    let bundles: Vec<Descriptor> = referrers
        .into_iter()
        .filter(|e| predicate_types.iter().any(|t| announces_bundle(e, t)))
        .collect();
    for predicate_type in predicate_types {
        let count = bundles
            .iter()
            .filter(|e| announces_bundle(e, predicate_type))
            .count();
        if count > crate::limits::MAX_SIGNATURE_LAYERS {
            return Err(Error::TooMany {
                path: place.to_path_buf(),
                what: "signature referrers for one digest",
                count,
                limit: crate::limits::MAX_SIGNATURE_LAYERS,
            });
        }
    }
    for entry in &bundles {
        if entry.size() > crate::limits::MAX_SIGNATURE_BLOB_BYTES {
            return Err(Error::TooLarge {
                path: place.to_path_buf(),
                what: "a signature referrer manifest",
                size: entry.size(),
                limit: crate::limits::MAX_SIGNATURE_BLOB_BYTES,
            });
        }
    }
    Ok(bundles)
}

/// Checks one simple-signing payload and its base64 DER signature against `keys`, and
/// that it signs `expected`. The signature is checked over the raw bytes first; the
/// payload is parsed only once a key has verified it.
pub fn verify_payload(
    payload: &[u8],
    signature_base64: &str,
    expected: &Digest,
    keys: &[PublicKey],
) -> std::result::Result<Verified, Rejection> {
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature_base64.trim())
        .map_err(|e| Rejection::MalformedSignature {
            detail: format!("not base64: {e}"),
        })?;
    if p256::ecdsa::Signature::from_der(&signature).is_err() {
        return Err(Rejection::MalformedSignature {
            detail: "not a DER ECDSA signature".to_string(),
        });
    }
    let key = keys
        .iter()
        .find(|k| k.verify(payload, &signature))
        .ok_or(Rejection::OtherKey)?;
    let parsed: Payload =
        serde_json::from_slice(payload).map_err(|e| Rejection::MalformedPayload {
            detail: e.to_string(),
        })?;
    if parsed.critical.kind != SIGNATURE_TYPE {
        return Err(Rejection::MalformedPayload {
            detail: format!("type is `{}`, not `{SIGNATURE_TYPE}`", parsed.critical.kind),
        });
    }
    let signed = &parsed.critical.image.docker_manifest_digest;
    if signed != expected.as_ref() {
        return Err(Rejection::OtherDigest {
            signed: signed.clone(),
        });
    }
    Ok(Verified {
        key: key.fingerprint(),
        reference: parsed.critical.identity.docker_reference,
        optional: parsed.optional,
    })
}

/// The signature tags in `layout` (`sha256-<hex>.sig`) and the digests they sign.
pub fn signature_tags(layout: &Layout) -> Result<Vec<(String, Descriptor)>> {
    Ok(layout
        .tags()?
        .into_iter()
        .filter(|t| t.name.starts_with("sha256-") && t.name.ends_with(".sig"))
        .map(|t| (t.name, t.descriptor))
        .collect())
}

/// Loads the public keys at `paths`.
pub fn load_public_keys(paths: &[impl AsRef<Path>]) -> Result<Vec<PublicKey>> {
    paths.iter().map(|p| PublicKey::load(p.as_ref())).collect()
}
