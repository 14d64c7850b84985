//! Pushing a tag of a layout: every blob, every manifest, the signatures, and the tagged
//! index last.

use std::collections::HashSet;
use std::time::Instant;

use bytes::Bytes;
use oci_client::Reference;
use oci_spec::image::Descriptor;
use pack_packager::Layout;
use pack_packager::signing::signature_tag;

use crate::client::{Registry, with_retry};
use crate::error::Operation;
use crate::referrers::{RegistryTransport, attach};
use crate::reporter::{Item, Outcome, blob_done};
use crate::transfer::{Document, TransferSummary, document_media_type, is_index};
use crate::{Error, Reporter, Result};

/// Options of [`push`].
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Blobs sent at once.
    pub jobs: usize,
    /// Another repository of the same registry to mount blobs from, instead of sending
    /// them, when it has them.
    pub mount_from: Option<String>,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            mount_from: None,
        }
    }
}

/// A document (manifest or index) to push.
struct Doc {
    descriptor: Descriptor,
    media_type: String,
    bytes: Bytes,
}

/// Everything a tag of a layout references.
struct Plan {
    root: Doc,
    /// Manifests the root references, children before parents.
    manifests: Vec<Doc>,
    /// Signature manifests and their tags.
    signatures: Vec<(String, Doc)>,
    /// Referrers (sigstore bundles, attestations): the digest they refer to, their
    /// entry in the layout's referrers index, and the manifest.
    referrers: Vec<(oci_spec::image::Digest, Descriptor, Doc)>,
    /// Every blob, once.
    blobs: Vec<Descriptor>,
}

fn read_doc(layout: &Layout, descriptor: &Descriptor) -> Result<(Doc, Document)> {
    let bytes = layout.read_blob(descriptor)?;
    let declared = descriptor.media_type().to_string();
    let media_type = if is_index(&declared) || crate::transfer::is_manifest(&declared) {
        declared
    } else {
        document_media_type(&bytes).unwrap_or(declared)
    };
    let document = Document::parse(&media_type, &bytes).map_err(|reason| {
        Error::Layout(pack_packager::Error::InvalidJson {
            path: layout
                .blob_path(descriptor.digest())
                .unwrap_or_else(|_| layout.root().to_path_buf()),
            what: "manifest",
            message: reason,
        })
    })?;
    Ok((
        Doc {
            descriptor: descriptor.clone(),
            media_type,
            bytes: Bytes::from(bytes),
        },
        document,
    ))
}

fn plan(layout: &Layout, tag: &str) -> Result<Plan> {
    let root_descriptor = layout.resolve(tag)?;
    let mut seen_blobs = HashSet::new();
    let mut blobs = Vec::new();
    let mut add_blobs = |document: &Document, blobs: &mut Vec<Descriptor>| {
        for blob in document.blobs() {
            if seen_blobs.insert(blob.digest().clone()) {
                blobs.push(blob);
            }
        }
    };
    let (root, root_document) = read_doc(layout, &root_descriptor)?;
    add_blobs(&root_document, &mut blobs);
    let mut manifests = Vec::new();
    let mut seen_manifests = HashSet::from([root.descriptor.digest().clone()]);
    // Depth-first, children pushed before the index that lists them.
    fn walk(
        layout: &Layout,
        document: &Document,
        seen: &mut HashSet<oci_spec::image::Digest>,
        out: &mut Vec<(Doc, Document)>,
    ) -> Result<()> {
        if let Document::Index(index) = document {
            for child in index.manifests() {
                if !seen.insert(child.digest().clone()) {
                    continue;
                }
                let (doc, parsed) = read_doc(layout, child)?;
                walk(layout, &parsed, seen, out)?;
                out.push((doc, parsed));
            }
        }
        Ok(())
    }
    let mut children = Vec::new();
    walk(layout, &root_document, &mut seen_manifests, &mut children)?;
    for (doc, parsed) in children {
        add_blobs(&parsed, &mut blobs);
        manifests.push(doc);
    }
    let mut signatures = Vec::new();
    let tags = layout.tags()?;
    let signed: Vec<_> = std::iter::once(&root)
        .chain(manifests.iter())
        .map(|d| d.descriptor.digest().clone())
        .collect();
    let mut referrers = Vec::new();
    for digest in signed {
        let sig_tag = signature_tag(&digest);
        if let Some(entry) = tags.iter().find(|t| t.name == sig_tag) {
            let (doc, parsed) = read_doc(layout, &entry.descriptor)?;
            add_blobs(&parsed, &mut blobs);
            signatures.push((sig_tag, doc));
        }
        for entry in pack_packager::referrers::referrers(layout, &digest)? {
            let mut plain = entry.clone();
            plain.set_annotations(None);
            plain.set_artifact_type(None);
            let (doc, parsed) = read_doc(layout, &plain)?;
            add_blobs(&parsed, &mut blobs);
            referrers.push((digest.clone(), entry, doc));
        }
    }
    // Fail before sending anything when a blob is missing.
    for blob in &blobs {
        let path = layout.blob_path(blob.digest())?;
        if !path.is_file() {
            return Err(Error::Layout(pack_packager::Error::BlobMissing {
                layout: layout.root().to_path_buf(),
                digest: blob.digest().to_string(),
            }));
        }
    }
    Ok(Plan {
        root,
        manifests,
        signatures,
        referrers,
        blobs,
    })
}

/// Pushes what `tag` points to in `layout` to `target` (whose tag is used; its digest, if
/// any, must not be set).
///
/// Order: blobs (several at once; a blob the repository has is not sent, one that
/// `mount_from` has is mounted), then the manifests by digest, then the signature
/// manifests under their `sha256-<hex>.sig` tags and the referrers (listed by the
/// registry's referrers API, else under `sha256-<hex>`), and the tagged index last, so a reader
/// never sees the tag before its content. Run again after an interruption, it sends only
/// what did not arrive.
pub async fn push(
    registry: &Registry,
    layout: &Layout,
    tag: &str,
    target: &Reference,
    options: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<TransferSummary> {
    let started = Instant::now();
    if target.digest().is_some() {
        return Err(Error::UnsupportedReference {
            reference: target.to_string(),
            reason: "push needs a tag, not a digest".to_string(),
        });
    }
    let repository = target.repository();
    let target_tag = target.tag().unwrap_or(tag);
    let plan = plan(layout, tag)?;
    let mut summary = TransferSummary::new(
        registry,
        format!("{}/{}:{}", registry.registry(), repository, target_tag),
        layout.root(),
        tag,
        plan.root.descriptor.digest().to_string(),
        plan.root.media_type.clone(),
    );
    // 1. Blobs.
    summary
        .move_blobs(&plan.blobs, options.jobs, reporter, |(id, blob)| {
            push_blob(registry, layout, repository, options, reporter, id, blob)
        })
        .await?;

    // 2. Manifests by digest, children first.
    let mut manifests = Manifests {
        registry,
        repository,
        reporter,
        next_id: plan.blobs.len(),
    };
    for doc in &plan.manifests {
        let digest = doc.descriptor.digest().to_string();
        manifests.put(&digest, doc, &mut summary).await?;
    }
    // 3. Referrers: each manifest by digest, then listed among the referrers of its
    // subject (by the registry itself when it has the referrers API, else in the
    // `sha256-<hex>` index, keeping what other clients listed there).
    let transport = RegistryTransport { registry, reporter };
    for (subject, entry, doc) in &plan.referrers {
        let digest = doc.descriptor.digest().to_string();
        manifests.put(&digest, doc, &mut summary).await?;
        let invalid = |reason: String| Error::InvalidContent {
            operation: Box::new(
                registry
                    .context(repository, format!("list referrer {digest} of {subject}"))
                    .operation,
            ),
            reason,
        };
        attach(&transport, repository, subject, entry, invalid).await?;
        summary.referrers.push(digest);
    }
    // 4. Signatures under their tags; 5. the index under its tag.
    for (sig_tag, doc) in &plan.signatures {
        manifests.put(sig_tag, doc, &mut summary).await?;
        summary.signatures.push(sig_tag.clone());
    }
    manifests.put(target_tag, &plan.root, &mut summary).await?;
    summary.duration = started.elapsed();
    Ok(summary)
}

async fn push_blob(
    registry: &Registry,
    layout: &Layout,
    repository: &str,
    options: &PushOptions,
    reporter: &dyn Reporter,
    id: usize,
    blob: &Descriptor,
) -> Result<(Outcome, u64)> {
    let digest = blob.digest();
    reporter.on_start(&Item::blob(id, blob));
    let what = format!("blob {digest}");
    let exists = with_retry(registry, &what, reporter, || {
        registry.blob_exists(repository, digest)
    })
    .await?;
    if exists {
        return Ok(blob_done(reporter, id, Outcome::Skipped, blob));
    }
    if let Some(from) = &options.mount_from {
        let mounted = with_retry(registry, &what, reporter, || {
            registry.mount_blob(repository, from, digest)
        })
        .await?;
        if mounted {
            return Ok(blob_done(reporter, id, Outcome::Mounted, blob));
        }
    }
    let path = layout.blob_path(digest)?;
    let progress = |accepted: u64| reporter.on_progress(id, accepted);
    with_retry(registry, &what, reporter, || {
        registry.push_blob_file(repository, &path, digest, blob.size(), &progress)
    })
    .await?;
    reporter.on_progress(id, blob.size());
    Ok(blob_done(reporter, id, Outcome::Transferred, blob))
}

/// Puts a push's documents one after the other: each a reporter item numbered after the
/// blobs, and counted in the summary as sent or already there.
struct Manifests<'a> {
    registry: &'a Registry,
    repository: &'a str,
    reporter: &'a dyn Reporter,
    next_id: usize,
}

impl Manifests<'_> {
    /// Puts `doc` under `reference` unless the registry has it there already.
    async fn put(
        &mut self,
        reference: &str,
        doc: &Doc,
        summary: &mut TransferSummary,
    ) -> Result<()> {
        let (registry, repository, reporter) = (self.registry, self.repository, self.reporter);
        let id = self.next_id;
        self.next_id += 1;
        let digest = doc.descriptor.digest();
        reporter.on_start(&Item {
            id,
            digest: digest.clone(),
            size: doc.descriptor.size(),
            media_type: doc.media_type.clone(),
            manifest: true,
        });
        let what = format!("manifest {reference}");
        let current = with_retry(registry, &what, reporter, || {
            registry.manifest_digest(repository, reference)
        })
        .await?;
        if current.as_ref() == Some(digest) {
            reporter.on_complete(id, Outcome::Skipped);
            summary.manifests_skipped += 1;
            return Ok(());
        }
        with_retry(registry, &what, reporter, || {
            registry.put_manifest(repository, reference, doc.bytes.clone(), &doc.media_type)
        })
        .await
        .map_err(|e| with_hint_operation(e, digest))?;
        reporter.on_progress(id, doc.descriptor.size());
        reporter.on_complete(id, Outcome::Transferred);
        summary.manifests_transferred += 1;
        Ok(())
    }
}

/// Names the manifest digest in errors about a manifest pushed by tag.
fn with_hint_operation(error: Error, digest: &oci_spec::image::Digest) -> Error {
    match error {
        Error::Registry {
            mut operation,
            status,
            messages,
            retry_after,
        } => {
            if !operation.action.contains(digest.as_ref()) {
                operation = Box::new(Operation {
                    action: format!("{} ({digest})", operation.action),
                    ..*operation
                });
            }
            Error::Registry {
                operation,
                status,
                messages,
                retry_after,
            }
        }
        other => other,
    }
}
