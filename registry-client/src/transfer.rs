//! What push and pull have in common: the summary, media types, documents.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use crate::client::{Registry, Scheme};
use crate::{CredentialSource, Error, Outcome, Reporter, Result};

/// Media types of documents a tag may point to, the `Accept` of manifest requests.
pub(crate) const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Whether `media_type` is an image index (OCI or docker manifest list).
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == MANIFEST_TYPES[0] || media_type == MANIFEST_TYPES[2]
}

/// Whether `media_type` is an image manifest (OCI or docker).
pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == MANIFEST_TYPES[1] || media_type == MANIFEST_TYPES[3]
}

/// The `mediaType` a document says it is.
pub(crate) fn document_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let head: Head = serde_json::from_slice(bytes).ok()?;
    head.media_type.or_else(|| {
        if head.manifests.is_some() {
            Some(MANIFEST_TYPES[0].to_string())
        } else if head.layers.is_some() {
            Some(MANIFEST_TYPES[1].to_string())
        } else {
            None
        }
    })
}

/// A parsed manifest or index.
pub(crate) enum Document {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

impl Document {
    pub(crate) fn parse(media_type: &str, bytes: &[u8]) -> std::result::Result<Self, String> {
        if is_index(media_type) {
            serde_json::from_slice(bytes)
                .map(|i| Document::Index(Box::new(i)))
                .map_err(|e| format!("not a valid image index: {e}"))
        } else if is_manifest(media_type) {
            serde_json::from_slice(bytes)
                .map(|m| Document::Manifest(Box::new(m)))
                .map_err(|e| format!("not a valid image manifest: {e}"))
        } else {
            Err(format!(
                "`{media_type}` is neither an image index nor an image manifest"
            ))
        }
    }

    /// The blobs a manifest references (config, then layers); nothing for an index.
    pub(crate) fn blobs(&self) -> Vec<Descriptor> {
        match self {
            Document::Index(_) => Vec::new(),
            Document::Manifest(m) => {
                let mut blobs = vec![m.config().clone()];
                blobs.extend(m.layers().iter().cloned());
                blobs
            }
        }
    }
}

/// A descriptor for a document with `media_type` and `bytes`.
pub(crate) fn document_descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(
        MediaType::from(media_type),
        bytes.len() as u64,
        pack_packager::layout::sha256(bytes),
    )
}

/// What a push or pull did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferSummary {
    /// The registry reference (`registry/repository:tag`).
    pub reference: String,
    /// The layout directory.
    pub layout: std::path::PathBuf,
    /// The tag in the layout.
    pub tag: String,
    /// The digest of what the tag points to (the bundle's index).
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// HTTPS or HTTP.
    pub scheme: Scheme,
    /// Where the credentials came from.
    pub credentials: CredentialSource,
    /// Blobs whose bytes were sent (push) or fetched (pull).
    pub blobs_transferred: usize,
    /// Blobs the other side already had.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository (push with `--mount-from`).
    pub blobs_mounted: usize,
    /// Blob bytes sent or fetched.
    pub bytes_transferred: u64,
    /// Blob bytes not moved (skipped or mounted).
    pub bytes_skipped: u64,
    /// Manifests and indexes written (by digest or tag), the tagged one included.
    pub manifests_transferred: usize,
    /// Manifests the other side already had.
    pub manifests_skipped: usize,
    /// Signature tags moved (`sha256-<hex>.sig`).
    pub signatures: Vec<String>,
    /// Referrer manifests moved (sigstore bundles), by digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<String>,
    /// With `--key` on pull: the fingerprints of the keys whose signatures verified.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verified_by: Vec<String>,
    /// With `--key` on pull: the `docker-reference` of each signature that verified.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verified_references: Vec<String>,
    /// Wall time, in milliseconds.
    #[serde(rename = "durationMs", serialize_with = "as_millis")]
    pub duration: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl TransferSummary {
    /// A summary of moving `digest` (`media_type`) between `registry`'s `reference` and
    /// the layout at `layout` under `tag`, with nothing counted yet.
    pub(crate) fn new(
        registry: &Registry,
        reference: String,
        layout: &std::path::Path,
        tag: &str,
        digest: String,
        media_type: String,
    ) -> Self {
        TransferSummary {
            reference,
            layout: layout.to_path_buf(),
            tag: tag.to_string(),
            digest,
            media_type,
            scheme: registry.scheme(),
            credentials: registry.credential_source().clone(),
            blobs_transferred: 0,
            blobs_skipped: 0,
            blobs_mounted: 0,
            bytes_transferred: 0,
            bytes_skipped: 0,
            manifests_transferred: 0,
            manifests_skipped: 0,
            signatures: Vec::new(),
            referrers: Vec::new(),
            verified_by: Vec::new(),
            verified_references: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    /// Moves `blobs` (push or pull), `jobs` at a time, each with `one(id, blob)` (its
    /// number is its index), after telling `reporter` what will move; counts each
    /// outcome.
    pub(crate) async fn move_blobs<'a, F, Fut>(
        &mut self,
        blobs: &'a [Descriptor],
        jobs: usize,
        reporter: &dyn Reporter,
        one: F,
    ) -> Result<()>
    where
        F: FnMut((usize, &'a Descriptor)) -> Fut,
        Fut: std::future::Future<Output = Result<(Outcome, u64)>>,
    {
        reporter.on_plan(blobs.len(), blobs.iter().map(Descriptor::size).sum());
        let outcomes: Vec<(Outcome, u64)> = futures_util::stream::iter(blobs.iter().enumerate())
            .map(one)
            .buffer_unordered(jobs.max(1))
            .try_collect()
            .await?;
        for (outcome, size) in outcomes {
            self.count(outcome, size);
        }
        Ok(())
    }

    pub(crate) fn count(&mut self, outcome: Outcome, size: u64) {
        match outcome {
            Outcome::Transferred => {
                self.blobs_transferred += 1;
                self.bytes_transferred += size;
            }
            Outcome::Skipped => {
                self.blobs_skipped += 1;
                self.bytes_skipped += size;
            }
            Outcome::Mounted => {
                self.blobs_mounted += 1;
                self.bytes_skipped += size;
            }
        }
    }
}

/// `os/arch[/variant]`, as given to `--platform`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    /// The OS (`linux`, `wasip2`).
    pub os: String,
    /// The architecture (`amd64`, `wasm`).
    pub architecture: String,
    /// The variant (`v3`); any variant matches when `None`.
    pub variant: Option<String>,
}

impl std::str::FromStr for PlatformSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || Error::InvalidPlatform {
            value: s.to_string(),
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Self {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl std::fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl PlatformSpec {
    /// Whether a descriptor's platform matches.
    pub fn matches(&self, descriptor: &Descriptor) -> bool {
        let Some(p) = descriptor.platform() else {
            return false;
        };
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.architecture
            && self
                .variant
                .as_ref()
                .is_none_or(|v| p.variant().as_deref() == Some(v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let spec: PlatformSpec = "linux/amd64".parse().unwrap();
        assert_eq!(spec.variant, None);
        assert_eq!(
            "linux/amd64/v3"
                .parse::<PlatformSpec>()
                .unwrap()
                .to_string(),
            "linux/amd64/v3"
        );
        for bad in ["linux", "linux/", "a/b/c/d", ""] {
            assert!(bad.parse::<PlatformSpec>().is_err(), "{bad}");
        }
        let descriptor: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
                "digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "platform":{"os":"linux","architecture":"amd64","variant":"v3"}}"#,
        )
        .unwrap();
        assert!(spec.matches(&descriptor));
        assert!(
            "linux/amd64/v3"
                .parse::<PlatformSpec>()
                .unwrap()
                .matches(&descriptor)
        );
        assert!(
            !"linux/amd64/v2"
                .parse::<PlatformSpec>()
                .unwrap()
                .matches(&descriptor)
        );
        assert!(
            !"linux/arm64"
                .parse::<PlatformSpec>()
                .unwrap()
                .matches(&descriptor)
        );
    }

    #[test]
    fn documents_say_what_they_are() {
        assert_eq!(
            document_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(MANIFEST_TYPES[0])
        );
        assert_eq!(
            document_media_type(
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            )
            .as_deref(),
            Some(MANIFEST_TYPES[3])
        );
        assert_eq!(document_media_type(b"[]"), None);
    }
}
