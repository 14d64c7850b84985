//! Limits on what pack reads from layouts and registries, so that a hostile or damaged
//! document cannot make it allocate without bound or fetch without end. Every limit is
//! checked before the thing it limits is read or allocated: a size against the
//! descriptor (or `Content-Length`) first, then again while the bytes arrive.
//!
//! The numbers are documented in `docs/bundle-format.md` ("Limits").

use oci_spec::image::{Descriptor, DigestAlgorithm, ImageManifest};

/// The largest manifest, image index, config or signature payload pack reads (4 MiB, the
/// limit containerd and distribution apply to manifests). Bundles pack writes are a few
/// KiB.
pub const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;

/// The largest `index.json` of a layout pack opens (64 MiB). It grows with tags, so it
/// gets more room than a single document; a content store with thousands of pulled
/// references stays far below it.
pub const MAX_LAYOUT_INDEX_BYTES: u64 = 64 * 1024 * 1024;

/// The largest `oci-layout` file (it holds one short JSON object).
pub const MAX_LAYOUT_MARKER_BYTES: u64 = 4 * 1024;

/// The most manifests an image index (a bundle) may list. A bundle has one portable
/// manifest and one per target.
pub const MAX_INDEX_ENTRIES: usize = 1024;

/// The most layers a manifest may list.
pub const MAX_LAYERS: usize = 1024;

/// The most layers a signature manifest (`sha256-<hex>.sig`) may list. Each layer is one
/// signature (cosign appends one per `cosign sign`, pack one per key and identity); a
/// bundle carries one or a few. A signature manifest is not covered by any signature, so
/// whoever can write to the registry chooses its content: this bounds what a pull fetches
/// for it (cosign's own ceiling is 1000 layers, with a 128 MiB payload limit,
/// `COSIGN_MAX_ATTACHMENT_SIZE`; pack's are far lower because its payloads are tiny).
pub const MAX_SIGNATURE_LAYERS: usize = 16;

/// The largest blob of a signature manifest: a simple-signing payload (a few hundred
/// bytes) or the manifest's config (about 100 bytes per layer) (64 KiB).
pub const MAX_SIGNATURE_BLOB_BYTES: u64 = 64 * 1024;

/// Why the blobs of a signature manifest are not fetched: it lists more than
/// [`MAX_SIGNATURE_LAYERS`] layers, or its config or a layer says more than
/// [`MAX_SIGNATURE_BLOB_BYTES`]. Checked on the manifest, before any blob is fetched.
/// `None` when it is within the limits.
pub fn signature_manifest_problem(manifest: &ImageManifest) -> Option<String> {
    let layers = manifest.layers().len();
    if layers > MAX_SIGNATURE_LAYERS {
        return Some(format!(
            "it lists {layers} signature layers, more than the {MAX_SIGNATURE_LAYERS} pack \
             reads for one digest"
        ));
    }
    std::iter::once(manifest.config())
        .chain(manifest.layers())
        .find(|d| d.size() > MAX_SIGNATURE_BLOB_BYTES)
        .map(|d| {
            format!(
                "its blob {} says {} bytes, more than the {MAX_SIGNATURE_BLOB_BYTES} bytes \
                 pack reads for a signature",
                d.digest(),
                d.size()
            )
        })
}

/// Why a descriptor cannot be followed: a digest algorithm other than sha256, which is
/// all pack stores and verifies. `None` when it is usable.
pub fn descriptor_problem(descriptor: &Descriptor) -> Option<String> {
    let digest = descriptor.digest();
    if *digest.algorithm() != DigestAlgorithm::Sha256 {
        return Some(format!(
            "descriptor {digest} uses the digest algorithm `{}`; pack reads only sha256",
            digest.algorithm()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{Digest, MediaType};
    use std::str::FromStr;

    #[test]
    fn signature_manifests_are_bounded() {
        let blob = |size: u64| {
            Descriptor::new(
                MediaType::Other(crate::media_types::SIMPLE_SIGNING.to_string()),
                size,
                Digest::from_str(&format!("sha256:{}", "b".repeat(64))).unwrap(),
            )
        };
        let manifest = |layers: Vec<Descriptor>, config: u64| {
            oci_spec::image::ImageManifestBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageManifest)
                .config(blob(config))
                .layers(layers)
                .build()
                .unwrap()
        };
        let ok = manifest(vec![blob(300); MAX_SIGNATURE_LAYERS], 1000);
        assert_eq!(signature_manifest_problem(&ok), None);
        let many = manifest(vec![blob(300); MAX_SIGNATURE_LAYERS + 1], 1000);
        let problem = signature_manifest_problem(&many).unwrap();
        assert!(problem.contains("17 signature layers"), "{problem}");
        let huge = manifest(vec![blob(300), blob(MAX_SIGNATURE_BLOB_BYTES + 1)], 1000);
        let problem = signature_manifest_problem(&huge).unwrap();
        assert!(problem.contains("65537 bytes"), "{problem}");
        let config = manifest(vec![blob(300)], 1 << 40);
        assert!(signature_manifest_problem(&config).is_some());
    }

    #[test]
    fn only_sha256_descriptors_are_followed() {
        let ok = Descriptor::new(
            MediaType::ImageManifest,
            1,
            Digest::from_str(&format!("sha256:{}", "a".repeat(64))).unwrap(),
        );
        assert_eq!(descriptor_problem(&ok), None);
        for other in ["sha999:abcd", "md5:d41d8cd98f00b204e9800998ecf8427e"] {
            let d = Descriptor::new(
                MediaType::ImageManifest,
                1,
                Digest::from_str(other).unwrap(),
            );
            let problem = descriptor_problem(&d).unwrap();
            assert!(problem.contains("pack reads only sha256"), "{problem}");
        }
    }
}
