//! Verification: a signature by a trusted key must cover the digest the tag points to,
//! and every document is read through the layout's verified reads, so nothing reaches
//! wasmtime that does not hash to a digest the signature covers (directly, or through
//! the index and manifests it covers).
//!
//! A signature also names a repository (`docker-reference`). A bundle pulled from a
//! registry counts as signed only by signatures made for the repository it was pulled
//! from, or for one [`References::allow`] lets through (mirrors); for a layout the
//! check is made when [`References::layout`] names the repository. A signature that
//! names no repository at all (pack's default for a layout signed without
//! `--reference`) still counts: see [`signing::is_unbound`].

use oci_spec::image::{Digest, ImageIndex, MediaType};
use pack_packager::signing::{self, PublicKey, ReferencePattern, ReferencePolicy, Verified};
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

/// Which repositories signatures must be made for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// For a layout: the repository its signature must name (`--reference`); `None`
    /// checks nothing. A bundle pulled from a registry must name the repository it was
    /// pulled from, whatever this says.
    pub layout: Option<String>,
    /// Other repositories a signature may name (`--allow-reference`).
    pub allow: Vec<ReferencePattern>,
}

impl References {
    /// The policy for a bundle pulled from `registry_reference` (`Some`), or read from a
    /// layout (`None`).
    pub fn policy(&self, registry_reference: Option<&str>) -> Option<ReferencePolicy> {
        let expected = registry_reference.or(self.layout.as_deref())?;
        ReferencePolicy::new(expected, &self.allow)
    }
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
/// in `index.json` (reading only the signature manifest and its payloads), which must
/// name the repository `references` expects when it expects one, then the index blob
/// against that digest.
pub fn verify(
    layout: &Layout,
    tag: &str,
    name: &str,
    trust: &Trust,
    references: Option<&ReferencePolicy>,
) -> Result<VerifiedBundle> {
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
            let mut verdict = signing::verify_digest(layout, &digest, keys)?;
            if let Some(policy) = references {
                verdict.require_reference(policy);
            }
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
