//! Pulling a tag or digest into a layout: the index, its manifests (all, or those of the
//! chosen platforms), their blobs and the signatures; the tag is written last.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use oci_client::Reference;
use oci_spec::image::ImageManifest;
use oci_spec::image::{Descriptor, Digest};
use pack_packager::Layout;
use pack_packager::annotations::{COSIGN_SIGNATURE, SIGNATURE_KEY};
use pack_packager::limits::{
    MAX_DOCUMENT_BYTES, MAX_INDEX_ENTRIES, MAX_LAYERS, descriptor_problem,
    signature_manifest_problem,
};
use pack_packager::media_types::{SIGSTORE_BUNDLE, SIMPLE_SIGNING};
use pack_packager::referrers::referrer_problem;
use pack_packager::signing::{
    self, PublicKey, ReferencePattern, ReferencePolicy, Rejection, SignatureCheck, SignatureKind,
    Verdict, signature_tag,
};

use crate::client::{Registry, with_retry};
use crate::referrers::RegistryTransport;
use crate::reporter::{Item, Outcome, blob_done};
use crate::transfer::{
    Document, MANIFEST_TYPES, PlatformSpec, TransferSummary, document_descriptor,
    document_media_type,
};
use crate::{Error, Reporter, Result};

/// Options of [`pull`].
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Blobs fetched at once.
    pub jobs: usize,
    /// Only the manifests of these platforms (all when empty). The index is kept as it
    /// is, so its digest and signature still hold; the manifests of other platforms are
    /// not in the layout.
    pub platforms: Vec<PlatformSpec>,
    /// Verify the signature with these keys before fetching anything else.
    pub keys: Vec<PublicKey>,
    /// With `keys`: besides the repository pulled from, the repositories a signature may
    /// be made for (a signature that names another one does not count; see
    /// [`ReferencePolicy`]).
    pub allow_references: Vec<ReferencePattern>,
    /// Which layers of the chosen manifests to fetch (configs are always fetched).
    pub layers: Layers,
    /// The predicate types of the sigstore bundle referrers to fetch; `None`: everything
    /// a copy of a bundle takes along ([`pack_packager::provenance::PREDICATE_TYPES`]). A
    /// host that only runs the bundle leaves out what it never reads (compile
    /// provenance).
    pub referrer_types: Option<Vec<&'static str>>,
}

/// Which layers of each fetched manifest a pull fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layers {
    /// Every layer: the layout is complete.
    #[default]
    All,
    /// The first layer of each manifest (what a host loads: the `.cwasm` of a native
    /// manifest, the component of the portable one), not the fallbacks after it (the
    /// portable component a native manifest carries).
    First,
    /// None: a host that knows which layer it will load fetches just that one with
    /// [`fetch_blobs`].
    None,
}

impl Layers {
    /// How many of a document's blobs (config first, then layers) to fetch.
    fn keep(self, blobs: usize) -> usize {
        match self {
            Layers::All => blobs,
            Layers::First => blobs.min(2),
            Layers::None => blobs.min(1),
        }
    }
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            platforms: Vec::new(),
            keys: Vec::new(),
            allow_references: Vec::new(),
            layers: Layers::All,
            referrer_types: None,
        }
    }
}

struct Doc {
    descriptor: Descriptor,
    bytes: Bytes,
}

/// Pulls `source` into the layout at `layout_dir` (created when missing) under `tag`.
///
/// With `keys`, the signature of the tagged digest is fetched and verified first, and
/// nothing is written when none verifies ([`Error::Unverified`]); a signature that names
/// a repository other than `source`'s (and than `allow_references`) does not count. Every blob is checked
/// against its digest while it streams; a mismatch aborts it and leaves no file. Blobs
/// the layout has are not fetched again, so a pull that was interrupted finishes where it
/// stopped. The tag is written last.
pub async fn pull(
    registry: &Registry,
    source: &Reference,
    layout_dir: &Path,
    tag: &str,
    options: &PullOptions,
    reporter: &dyn Reporter,
) -> Result<TransferSummary> {
    let started = Instant::now();
    pack_packager::reference::check_tag(tag)?;
    let repository = source.repository();
    let reference = source
        .digest()
        .or(source.tag())
        .unwrap_or("latest")
        .to_string();
    let what = format!("manifest {reference}");
    let (root_bytes, root_digest) = with_retry(registry, &what, reporter, || {
        registry.get_manifest(repository, &reference, MANIFEST_TYPES)
    })
    .await?;
    let root = to_doc(registry, repository, &reference, root_bytes, &root_digest)?;
    let root_document = parse(registry, repository, &root)?;

    let mut verified_by = Vec::new();
    let mut verified_references = Vec::new();
    if !options.keys.is_empty() {
        let mut verdict =
            verify_remote(registry, repository, &root_digest, &options.keys, reporter).await?;
        let pulled_from = format!("{}/{}", source.registry(), repository);
        if let Some(policy) = ReferencePolicy::new(&pulled_from, &options.allow_references) {
            verdict.require_reference(&policy);
        }
        if !verdict.is_verified() {
            return Err(Error::Unverified {
                reference: source.to_string(),
                digest: root_digest.to_string(),
                reasons: verdict.reasons(),
            });
        }
        verified_by = verdict.verified().map(|v| v.key.to_string()).collect();
        verified_references = verdict.verified().map(|v| v.reference.clone()).collect();
    }

    // The manifests to fetch.
    let mut manifests: Vec<Doc> = Vec::new();
    let mut seen = HashSet::from([root_digest.clone()]);
    if let Document::Index(index) = &root_document {
        let chosen: Vec<&Descriptor> = if options.platforms.is_empty() {
            index.manifests().iter().collect()
        } else {
            index
                .manifests()
                .iter()
                .filter(|d| options.platforms.iter().any(|p| p.matches(d)))
                .collect()
        };
        if chosen.is_empty() && !options.platforms.is_empty() {
            return Err(Error::NoMatchingPlatform {
                reference: source.to_string(),
                requested: options.platforms.iter().map(ToString::to_string).collect(),
                available: index
                    .manifests()
                    .iter()
                    .filter_map(|d| d.platform().as_ref())
                    .map(pack_packager::bundle::platform_string)
                    .collect(),
            });
        }
        let mut queue: Vec<Descriptor> = chosen.into_iter().cloned().collect();
        while let Some(child) = queue.pop() {
            if !seen.insert(child.digest().clone()) {
                continue;
            }
            // Nested indexes count too: the fetches stay bounded.
            if manifests.len() >= MAX_INDEX_ENTRIES {
                return Err(Error::InvalidContent {
                    operation: Box::new(
                        registry
                            .context(repository, format!("fetch manifest {reference}"))
                            .operation,
                    ),
                    reason: format!(
                        "it references more than {MAX_INDEX_ENTRIES} manifests (nested \
                         indexes included), more than pack follows"
                    ),
                });
            }
            let doc = fetch_manifest(registry, repository, &child, reporter).await?;
            if let Document::Index(nested) = parse(registry, repository, &doc)? {
                queue.extend(nested.manifests().iter().cloned());
            }
            manifests.push(doc);
        }
    }

    // Signatures of the root and of each fetched manifest: legacy ones and sigstore
    // bundle referrers.
    let mut signatures: Vec<(String, Doc)> = Vec::new();
    let mut bundles: Vec<(Digest, Descriptor, Doc)> = Vec::new();
    let signed: Vec<Digest> = std::iter::once(root_digest.clone())
        .chain(manifests.iter().map(|d| d.descriptor.digest().clone()))
        .collect();
    for digest in signed {
        let sig_tag = signature_tag(&digest);
        let what = format!("manifest {sig_tag}");
        let found = with_retry(registry, &what, reporter, || {
            registry.get_manifest(repository, &sig_tag, &MANIFEST_TYPES[1..2])
        })
        .await;
        match found {
            Ok((bytes, digest)) => {
                let doc = to_doc(registry, repository, &sig_tag, bytes, &digest)?;
                // Nobody signs a signature manifest: its blobs are bounded before any of
                // them is fetched.
                signature_manifest(registry, repository, &sig_tag, &doc)?;
                signatures.push((sig_tag, doc));
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let types = options
            .referrer_types
            .as_deref()
            .unwrap_or(pack_packager::provenance::PREDICATE_TYPES);
        // A referrer that fails its check is left out.
        let checked =
            signature_bundle_checks(registry, repository, &digest, types, reporter).await?;
        for (entry, check) in checked {
            if let Ok((doc, _)) = check {
                bundles.push((digest.clone(), entry, doc));
            }
        }
    }

    // Blobs, once each.
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut seen_blobs = HashSet::new();
    let documents = std::iter::once((&root, Layers::All))
        .chain(manifests.iter().map(|d| (d, options.layers)))
        .chain(signatures.iter().map(|(_, d)| (d, Layers::All)))
        .chain(bundles.iter().map(|(_, _, d)| (d, Layers::All)));
    for (doc, layers) in documents {
        let mut listed = parse(registry, repository, doc)?.blobs();
        listed.truncate(layers.keep(listed.len()));
        for blob in listed {
            if seen_blobs.insert(blob.digest().clone()) {
                blobs.push(blob);
            }
        }
    }

    let layout = Layout::open_or_create(layout_dir)?;
    let mut summary = TransferSummary::new(
        registry,
        source.to_string(),
        layout.root(),
        tag,
        root_digest.to_string(),
        root.descriptor.media_type().to_string(),
    );
    summary.verified_by = verified_by;
    summary.verified_references = verified_references;
    summary
        .move_blobs(&blobs, options.jobs, reporter, |(id, blob)| {
            pull_blob(registry, &layout, repository, reporter, id, blob)
        })
        .await?;

    // Documents (exact bytes, checked against their digests), then the tags, ours last.
    let write = |doc: &Doc, summary: &mut TransferSummary| -> Result<()> {
        let blob = layout.put_blob(&doc.bytes[..], Some(doc.descriptor.digest()))?;
        if blob.written {
            summary.manifests_transferred += 1;
        } else {
            summary.manifests_skipped += 1;
        }
        Ok(())
    };
    for doc in &manifests {
        write(doc, &mut summary)?;
    }
    for (_, doc) in &signatures {
        write(doc, &mut summary)?;
    }
    for (subject, entry, doc) in &bundles {
        write(doc, &mut summary)?;
        pack_packager::referrers::list_referrer(&layout, subject, entry, None)?;
        summary.referrers.push(doc.descriptor.digest().to_string());
    }
    write(&root, &mut summary)?;
    for (sig_tag, doc) in &signatures {
        layout.set_tag(sig_tag, &doc.descriptor)?;
        summary.signatures.push(sig_tag.clone());
    }
    layout.set_tag(tag, &root.descriptor)?;
    summary.duration = started.elapsed();
    Ok(summary)
}

fn to_doc(
    registry: &Registry,
    repository: &str,
    reference: &str,
    bytes: Bytes,
    digest: &Digest,
) -> Result<Doc> {
    let media_type = document_media_type(&bytes).ok_or_else(|| Error::InvalidContent {
        operation: Box::new(
            registry
                .context(repository, format!("fetch manifest {reference}"))
                .operation,
        ),
        reason: "the registry sent a document that is neither an image index nor a manifest"
            .to_string(),
    })?;
    let mut descriptor = document_descriptor(&media_type, &bytes);
    if descriptor.digest() != digest {
        return Err(Error::DigestMismatch {
            operation: Box::new(
                registry
                    .context(repository, format!("fetch manifest {reference}"))
                    .operation,
            ),
            expected: digest.to_string(),
            actual: descriptor.digest().to_string(),
        });
    }
    descriptor.set_digest(digest.clone());
    Ok(Doc { descriptor, bytes })
}

/// Parses a fetched document and checks what it references before anything of it is
/// followed: at most [`MAX_INDEX_ENTRIES`] manifests or [`MAX_LAYERS`] layers, each by a
/// sha256 digest, and manifests no larger than [`MAX_DOCUMENT_BYTES`].
fn parse(registry: &Registry, repository: &str, doc: &Doc) -> Result<Document> {
    let invalid = |reason: String| Error::InvalidContent {
        operation: Box::new(
            registry
                .context(
                    repository,
                    format!("read manifest {}", doc.descriptor.digest()),
                )
                .operation,
        ),
        reason,
    };
    let document =
        Document::parse(doc.descriptor.media_type().as_ref(), &doc.bytes).map_err(&invalid)?;
    let (listed, limit, what) = match &document {
        Document::Index(index) => (index.manifests().len(), MAX_INDEX_ENTRIES, "manifests"),
        Document::Manifest(manifest) => (manifest.layers().len(), MAX_LAYERS, "layers"),
    };
    if listed > limit {
        return Err(invalid(format!(
            "it lists {listed} {what}, more than the {limit} pack follows"
        )));
    }
    let referenced: Vec<&Descriptor> = match &document {
        Document::Index(index) => index.manifests().iter().collect(),
        Document::Manifest(manifest) => std::iter::once(manifest.config())
            .chain(manifest.layers())
            .collect(),
    };
    for descriptor in referenced {
        if let Some(reason) = descriptor_problem(descriptor) {
            return Err(invalid(reason));
        }
        if matches!(document, Document::Index(_)) && descriptor.size() > MAX_DOCUMENT_BYTES {
            return Err(invalid(format!(
                "its entry {} says {} bytes, more than the {MAX_DOCUMENT_BYTES} bytes pack \
                 reads for a manifest",
                descriptor.digest(),
                descriptor.size()
            )));
        }
    }
    Ok(document)
}

/// Parses the signature manifest `doc` (tag `sig_tag`) and checks it against the
/// signature limits ([`signature_manifest_problem`]): an image manifest of at most
/// [`MAX_SIGNATURE_LAYERS`](pack_packager::limits::MAX_SIGNATURE_LAYERS) layers, none of
/// its blobs larger than
/// [`MAX_SIGNATURE_BLOB_BYTES`](pack_packager::limits::MAX_SIGNATURE_BLOB_BYTES). Called
/// before any of its blobs is fetched; the error names the tag and the manifest's digest.
fn signature_manifest(
    registry: &Registry,
    repository: &str,
    sig_tag: &str,
    doc: &Doc,
) -> Result<oci_spec::image::ImageManifest> {
    let refuse = |reason: String| Error::InvalidContent {
        operation: Box::new(
            registry
                .context(
                    repository,
                    format!(
                        "read signature manifest {sig_tag} ({})",
                        doc.descriptor.digest()
                    ),
                )
                .operation,
        ),
        reason: format!("{reason}; none of its blobs was fetched"),
    };
    match parse(registry, repository, doc)? {
        Document::Index(_) => Err(refuse(
            "it is an image index, not the image manifest a signature tag holds".to_string(),
        )),
        Document::Manifest(manifest) => match signature_manifest_problem(&manifest) {
            Some(problem) => Err(refuse(problem)),
            None => Ok(*manifest),
        },
    }
}

async fn fetch_manifest(
    registry: &Registry,
    repository: &str,
    descriptor: &Descriptor,
    reporter: &dyn Reporter,
) -> Result<Doc> {
    let digest = descriptor.digest().to_string();
    let what = format!("manifest {digest}");
    let (bytes, found) = with_retry(registry, &what, reporter, || {
        registry.get_manifest(repository, &digest, MANIFEST_TYPES)
    })
    .await?;
    let mut doc = to_doc(registry, repository, &digest, bytes, &found)?;
    // Keep the media type the index gave it.
    doc.descriptor
        .set_media_type(descriptor.media_type().clone());
    Ok(doc)
}

/// Fetches the blobs `blobs` (layers of manifests already pulled and verified) from
/// `source`'s repository into the layout at `layout_dir`, skipping those it has, each
/// checked against its size and digest as it streams. Returns the bytes fetched.
pub async fn fetch_blobs(
    registry: &Registry,
    source: &Reference,
    layout_dir: &Path,
    blobs: &[Descriptor],
    reporter: &dyn Reporter,
) -> Result<u64> {
    let layout = Layout::open_or_create(layout_dir)?;
    reporter.on_plan(blobs.len(), blobs.iter().map(Descriptor::size).sum());
    let mut fetched = 0;
    for (id, blob) in blobs.iter().enumerate() {
        let (outcome, size) =
            pull_blob(registry, &layout, source.repository(), reporter, id, blob).await?;
        if outcome == Outcome::Transferred {
            fetched += size;
        }
    }
    Ok(fetched)
}

async fn pull_blob(
    registry: &Registry,
    layout: &Layout,
    repository: &str,
    reporter: &dyn Reporter,
    id: usize,
    blob: &Descriptor,
) -> Result<(Outcome, u64)> {
    let digest = blob.digest();
    reporter.on_start(&Item::blob(id, blob));
    if layout.has_blob(digest) {
        return Ok(blob_done(reporter, id, Outcome::Skipped, blob));
    }
    let progress = |received: u64| reporter.on_progress(id, received);
    let what = format!("blob {digest}");
    with_retry(registry, &what, reporter, || {
        registry.download_blob(repository, layout, blob, &progress)
    })
    .await?;
    Ok(blob_done(reporter, id, Outcome::Transferred, blob))
}

type BundleCheck = std::result::Result<(Doc, ImageManifest), String>;

/// The sigstore bundle referrers of `digest` that a copy takes along (signatures, compile
/// provenance and rebuild attestations: their index entry
/// announces one), each manifest fetched and checked ([`referrer_problem`]: one bundle
/// layer, `subject` = `digest`, within the signature limits) before anything of it is
/// fetched; each with the outcome of its check. At most
/// [`MAX_SIGNATURE_LAYERS`](pack_packager::limits::MAX_SIGNATURE_LAYERS) of them, each
/// manifest at most [`MAX_SIGNATURE_BLOB_BYTES`](pack_packager::limits::MAX_SIGNATURE_BLOB_BYTES),
/// or the whole listing is refused.
async fn signature_bundle_checks(
    registry: &Registry,
    repository: &str,
    digest: &Digest,
    predicate_types: &[&str],
    reporter: &dyn Reporter,
) -> Result<Vec<(Descriptor, BundleCheck)>> {
    let invalid = |reason: String| Error::InvalidContent {
        operation: Box::new(
            registry
                .context(repository, format!("list referrers of {digest}"))
                .operation,
        ),
        reason,
    };
    let transport = RegistryTransport { registry, reporter };
    let listing = crate::referrers::list(&transport, repository, digest, invalid).await?;
    let place = Path::new(repository);
    let entries =
        signing::bundle_referrers(place, listing.entries, predicate_types).map_err(|e| {
            Error::InvalidContent {
                operation: Box::new(
                    registry
                        .context(repository, format!("list referrers of {digest}"))
                        .operation,
                ),
                reason: format!("{e}; none of them was fetched"),
            }
        })?;
    let mut out = Vec::new();
    for entry in entries {
        let what = format!("manifest {}", entry.digest());
        let reference = entry.digest().to_string();
        let (bytes, found) = with_retry(registry, &what, reporter, || {
            registry.get_manifest(repository, &reference, &MANIFEST_TYPES[1..2])
        })
        .await?;
        let doc = to_doc(registry, repository, &reference, bytes, &found)?;
        let checked = match parse(registry, repository, &doc) {
            Ok(Document::Manifest(manifest)) => {
                match referrer_problem(&manifest, digest, SIGSTORE_BUNDLE, SIGSTORE_BUNDLE) {
                    None => Ok((doc, *manifest)),
                    Some(problem) => Err(problem),
                }
            }
            Ok(Document::Index(_)) => Err("it is an image index, not a manifest".to_string()),
            Err(e) => Err(e.to_string()),
        };
        out.push((entry, checked));
    }
    Ok(out)
}

/// Fetches the signatures of `digest` (the layers of the `sha256-<hex>.sig` manifest and
/// the sigstore bundles among its referrers) and checks them against `keys`, in memory:
/// nothing is written.
pub async fn verify_remote(
    registry: &Registry,
    repository: &str,
    digest: &Digest,
    keys: &[PublicKey],
    reporter: &dyn Reporter,
) -> Result<Verdict> {
    let mut verdict = Verdict::new(digest);
    let sig_tag = verdict.signature_tag.clone();
    let what = format!("manifest {sig_tag}");
    let legacy = match with_retry(registry, &what, reporter, || {
        registry.get_manifest(repository, &sig_tag, &MANIFEST_TYPES[1..2])
    })
    .await
    {
        Ok(found) => Some(found),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some((bytes, found)) = legacy {
        let doc = to_doc(registry, repository, &sig_tag, bytes, &found)?;
        let manifest = signature_manifest(registry, repository, &sig_tag, &doc)?;
        for layer in manifest.layers() {
            if layer.media_type().to_string() != SIMPLE_SIGNING {
                continue;
            }
            let annotations = layer.annotations().clone().unwrap_or_default();
            let outcome = match annotations.get(COSIGN_SIGNATURE) {
                None => Err(Rejection::MalformedSignature {
                    detail: format!("no `{COSIGN_SIGNATURE}` annotation"),
                }),
                Some(signature) => {
                    let what = format!("blob {}", layer.digest());
                    let payload = with_retry(registry, &what, reporter, || {
                        registry.get_blob(repository, layer)
                    })
                    .await?;
                    signing::verify_payload(&payload, signature, digest, keys)
                }
            };
            verdict.signatures.push(SignatureCheck {
                format: SignatureKind::SimpleSigning,
                layer: layer.digest().to_string(),
                claimed_key: annotations.get(SIGNATURE_KEY).cloned(),
                outcome,
            });
        }
    }
    let checks = signature_bundle_checks(
        registry,
        repository,
        digest,
        &[signing::sigstore::COSIGN_SIGN_PREDICATE],
        reporter,
    )
    .await?;
    for (entry, checked) in checks {
        let bundle = match &checked {
            Err(problem) => Err(problem.clone()),
            Ok((_, manifest)) => {
                let layer = &manifest.layers()[0];
                let what = format!("blob {}", layer.digest());
                let bytes = with_retry(registry, &what, reporter, || {
                    registry.get_blob(repository, layer)
                })
                .await?;
                Ok((layer, bytes))
            }
        };
        let check = SignatureCheck::sigstore_bundle(&entry, bundle, digest, keys);
        verdict.signatures.push(check);
    }
    Ok(verdict)
}
