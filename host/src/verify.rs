//! Verification: a signature by a trusted key must cover the digest the tag points to,
//! and every document is read through the layout's verified reads, so nothing reaches
//! wasmtime that does not hash to a digest the signature covers (directly, or through
//! the index and manifests it covers).

use oci_spec::image::{Digest, ImageIndex, MediaType};
use pack_packager::signing::{self, PublicKey, Verified};
use pack_packager::{Layout, oci_spec};

use crate::{Error, Result};

/// Whose signatures a host accepts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// A signature by one of these keys must cover the bundle's index digest.
    Keys(Vec<PublicKey>),
    /// Run unsigned bundles. Digests are still checked; nothing says who made the bundle.
    InsecureSkipVerify,
}

/// How a bundle was verified.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    /// Signed by these keys (those of the trusted keys whose signatures verified).
    Signed(Vec<Verified>),
    /// Signatures were not checked ([`Trust::InsecureSkipVerify`]).
    Skipped,
}

/// A bundle whose image index verified: its signature (unless skipped), and its digest.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// What the bundle was called (`out/app:latest`, `registry.example.com/app:v1`).
    pub name: String,
    /// The layout holding it: the one given, or the content store.
    pub layout: Layout,
    /// Its tag in that layout.
    pub tag: String,
    /// The index digest the signature covers.
    pub digest: Digest,
    /// The image index, read from the blob with that digest.
    pub index: ImageIndex,
    /// How it was verified.
    pub verification: Verification,
}

/// Verifies the bundle `tag` points to in `layout`: first the signature over the digest
/// in `index.json` (reading only the signature manifest and its payloads), then the
/// index blob against that digest.
pub fn verify(layout: &Layout, tag: &str, name: &str, trust: &Trust) -> Result<VerifiedBundle> {
    let descriptor = layout.resolve(tag)?;
    if *descriptor.media_type() != MediaType::ImageIndex {
        return Err(Error::NotABundle {
            bundle: name.to_string(),
            reason: format!(
                "its tag points to a `{}`, not an image index",
                descriptor.media_type()
            ),
        });
    }
    let digest = descriptor.digest().clone();
    let verification = match trust {
        Trust::InsecureSkipVerify => Verification::Skipped,
        Trust::Keys(keys) if keys.is_empty() => {
            return Err(Error::NoTrustedKeys {
                bundle: name.to_string(),
            });
        }
        Trust::Keys(keys) => {
            let verdict = signing::verify_digest(layout, &digest, keys)?;
            if !verdict.is_verified() {
                return Err(Error::Unverified {
                    bundle: name.to_string(),
                    digest: digest.to_string(),
                    reasons: verdict.reasons(),
                });
            }
            Verification::Signed(verdict.verified().cloned().collect())
        }
    };
    let index = layout.read_image_index(&descriptor)?;
    Ok(VerifiedBundle {
        name: name.to_string(),
        layout: layout.clone(),
        tag: tag.to_string(),
        digest,
        index,
        verification,
    })
}
