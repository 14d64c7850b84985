//! Limits on what pack reads from layouts and registries, so that a hostile or damaged
//! document cannot make it allocate without bound or fetch without end. Every limit is
//! checked before the thing it limits is read or allocated: a size against the
//! descriptor (or `Content-Length`) first, then again while the bytes arrive.
//!
//! The numbers are documented in `docs/bundle-format.md` ("Limits").

use oci_spec::image::{Descriptor, DigestAlgorithm};

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
