//! OCI 1.1 referrers in a layout: artifacts (signatures, attestations) that point at a
//! manifest or index through their `subject`.
//!
//! A referrer is an image manifest with an `artifactType`, the empty config
//! (`application/vnd.oci.empty.v1+json`, `{}`), its content as layers, and `subject` = the
//! descriptor of what it refers to. A layout has no referrers API, so pack keeps them the
//! way distribution-spec 1.1 tells clients to for a registry without one (the *referrers
//! tag schema*): the tag `sha256-<hex>` (the subject's digest with `:` replaced by `-`)
//! points to an image index that lists every referrer of that digest, each entry
//! carrying the referrer's `artifactType` and annotations. Adding a referrer rewrites that
//! index keeping every entry already there (whoever added it), under the layout's lock.
//! `skopeo copy` of the tag copies the index and every referrer with it.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};

use crate::layout::{ref_name, set_tag_in};
use crate::limits::{MAX_INDEX_ENTRIES, signature_manifest_problem};
use crate::media_types::{EMPTY_CONFIG, IMAGE_INDEX, IMAGE_MANIFEST};
use crate::{Error, Layout, Result};

/// The bytes of the empty config (`{}`).
pub const EMPTY_CONFIG_BYTES: &[u8] = b"{}";

/// The referrers tag of `digest`: `sha256-<hex>`.
pub fn referrers_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.digest())
}

/// The referrer manifest (JSON value) for one artifact: `artifact_type`, the empty
/// config, `layer` as its only layer, `subject`, and `annotations`.
pub fn referrer_manifest(
    artifact_type: &str,
    layer: &Descriptor,
    subject: &Descriptor,
    annotations: &BTreeMap<String, String>,
) -> serde_json::Value {
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": IMAGE_MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": EMPTY_CONFIG,
            "digest": crate::layout::sha256(EMPTY_CONFIG_BYTES).to_string(),
            "size": EMPTY_CONFIG_BYTES.len(),
        },
        "layers": [layer],
        "subject": {
            "mediaType": subject.media_type().to_string(),
            "digest": subject.digest().to_string(),
            "size": subject.size(),
        },
    });
    if !annotations.is_empty() {
        manifest["annotations"] = serde_json::to_value(annotations).expect("strings serialise");
    }
    manifest
}

/// The entry of a referrers index for the referrer manifest `manifest` (its descriptor
/// `descriptor`): media type, digest and size, plus its `artifactType` and annotations.
pub fn index_entry(descriptor: &Descriptor, manifest: &ImageManifest) -> Descriptor {
    let mut entry = Descriptor::new(
        MediaType::ImageManifest,
        descriptor.size(),
        descriptor.digest().clone(),
    );
    entry.set_artifact_type(
        manifest
            .artifact_type()
            .clone()
            .or_else(|| Some(manifest.config().media_type().clone())),
    );
    entry.set_annotations(manifest.annotations().clone());
    entry
}

/// A referrers index listing `entries`.
pub fn referrers_index(entries: Vec<Descriptor>) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": IMAGE_INDEX,
        "manifests": entries,
    })
}

/// Stores an artifact `content` (media type `layer_media_type`) as a referrer of
/// `subject` with `artifact_type` and `annotations`, and lists it under the referrers tag
/// of `subject`. Returns the referrer manifest's descriptor and whether it was added
/// (`false` when the identical referrer was already listed). At most `limit` referrers of
/// `artifact_type` are kept per subject: one more is an error, not a silent drop.
pub fn add_referrer(
    layout: &Layout,
    subject: &Descriptor,
    artifact_type: &str,
    layer_media_type: &str,
    content: &[u8],
    annotations: &BTreeMap<String, String>,
    limit: usize,
) -> Result<(Descriptor, bool)> {
    layout.put_bytes(EMPTY_CONFIG_BYTES)?;
    let layer = layout.put_bytes(content)?.descriptor(layer_media_type);
    let manifest = referrer_manifest(artifact_type, &layer, subject, annotations);
    let (descriptor, bytes) = layout.put_json(IMAGE_MANIFEST, &manifest)?;
    let parsed = crate::layout::parse_manifest(&bytes, layout.root())?;
    let entry = index_entry(&descriptor, &parsed);
    let added = list_referrer(
        layout,
        subject.digest(),
        &entry,
        Some((artifact_type, limit)),
    )?;
    Ok((descriptor, added))
}

/// Lists the referrer `entry` (an index entry, [`index_entry`]) under the referrers tag
/// of `subject`, keeping every entry already there; returns `false` when it was already
/// listed. With `bound = (artifact_type, limit)`, refuses to list more than `limit`
/// referrers of that type. The referrer manifest must already be in the layout.
pub fn list_referrer(
    layout: &Layout,
    subject: &Digest,
    entry: &Descriptor,
    bound: Option<(&str, usize)>,
) -> Result<bool> {
    let tag = referrers_tag(subject);
    layout.update_index(|index| {
        let mut entries = listed(layout, index, &tag)?;
        if entries.iter().any(|e| e.digest() == entry.digest()) {
            return Ok(false);
        }
        let too_many = |count: usize, limit: usize| Error::TooMany {
            path: layout.root().join("index.json"),
            what: "referrers for one digest",
            count,
            limit,
        };
        if let Some((artifact_type, limit)) = bound {
            let same = entries
                .iter()
                .filter(|e| self::artifact_type(e).as_deref() == Some(artifact_type))
                .count();
            if same >= limit {
                return Err(too_many(same + 1, limit));
            }
        }
        if entries.len() >= MAX_INDEX_ENTRIES {
            return Err(too_many(entries.len() + 1, MAX_INDEX_ENTRIES));
        }
        entries.push(entry.clone());
        let (index_descriptor, _) = layout.put_json(IMAGE_INDEX, &referrers_index(entries))?;
        set_tag_in(index, &tag, &index_descriptor);
        Ok(true)
    })
}

fn listed(layout: &Layout, index: &ImageIndex, tag: &str) -> Result<Vec<Descriptor>> {
    match index.manifests().iter().find(|d| ref_name(d) == Some(tag)) {
        Some(d) => Ok(layout.read_image_index(&strip_ref(d))?.manifests().clone()),
        None => Ok(Vec::new()),
    }
}

fn strip_ref(descriptor: &Descriptor) -> Descriptor {
    let mut d = descriptor.clone();
    d.set_annotations(None);
    d
}

/// The referrers of `digest` listed in the layout (the entries of its referrers tag's
/// index), in order; empty when it has none. The index is read within the document
/// limits (at most [`MAX_INDEX_ENTRIES`] entries).
pub fn referrers(layout: &Layout, digest: &Digest) -> Result<Vec<Descriptor>> {
    let tag = referrers_tag(digest);
    let Some(entry) = layout.tags()?.into_iter().find(|t| t.name == tag) else {
        return Ok(Vec::new());
    };
    if *entry.descriptor.media_type() != MediaType::ImageIndex {
        return Err(Error::UnexpectedMediaType {
            layout: layout.root().to_path_buf(),
            digest: entry.descriptor.digest().to_string(),
            expected: IMAGE_INDEX.to_string(),
            found: entry.descriptor.media_type().to_string(),
        });
    }
    Ok(layout
        .read_image_index(&strip_ref(&entry.descriptor))?
        .manifests()
        .clone())
}

/// The artifact type of an index entry, as a string.
pub fn artifact_type(entry: &Descriptor) -> Option<String> {
    entry.artifact_type().as_ref().map(ToString::to_string)
}

/// Why the referrer manifest `manifest` is not a single-layer artifact of
/// `artifact_type` about `subject`, within the signature limits; `None` when it is.
/// Checked before its layer is read.
pub fn referrer_problem(
    manifest: &ImageManifest,
    subject: &Digest,
    artifact_type: &str,
    layer_media_type: &str,
) -> Option<String> {
    if let Some(problem) = signature_manifest_problem(manifest) {
        return Some(problem);
    }
    match manifest.subject() {
        Some(s) if s.digest() == subject => {}
        Some(s) => return Some(format!("its subject is {}, not {subject}", s.digest())),
        None => return Some("it has no subject".to_string()),
    }
    let found = manifest
        .artifact_type()
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    if found != artifact_type {
        return Some(format!(
            "its artifactType is `{found}`, not `{artifact_type}`"
        ));
    }
    match manifest.layers().as_slice() {
        [layer] if layer.media_type().to_string() == layer_media_type => None,
        [layer] => Some(format!(
            "its layer is a `{}`, not a `{layer_media_type}`",
            layer.media_type()
        )),
        layers => Some(format!("it has {} layers, not one", layers.len())),
    }
}
