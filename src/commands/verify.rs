//! `pack verify`: check a bundle's signatures against public keys, then every blob of it.

use std::path::PathBuf;

use anyhow::Result;
use pack_packager::signing::{self, ReferencePattern, ReferencePolicy, Verdict};
use pack_packager::{Layout, LayoutRef, TreeReport};

use crate::exit::Status;
use crate::format::short_digest;
use crate::json::JsonSignature;
use crate::printer::{BOLD, GREEN, Printer, RED};

/// Check that a bundle is signed by one of the given public keys, and intact.
///
/// First the signatures: at least one signature in the layout, a sigstore bundle
/// referrer of the index (listed under the tag `sha256-<hex>`) or a cosign
/// simple-signing signature (tag `sha256-<hex>.sig`), must be made by one of the keys
/// and name exactly the digest the tag points to (and, with --reference, that
/// repository). Then, once a signature
/// holds, the whole tree it covers: the index, every manifest, every config and every
/// layer, each against the size and sha256 its descriptor gives. A damaged blob is named
/// with its file. Manifests the layout lacks entirely (a pull of some platforms only),
/// and the fallback layers after a manifest's first that `pack pull --platform` leaves
/// out, are listed, not counted as damage. --signature-only stops after the signatures.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack verify out/app --key pack.pub
  pack verify out/app:v1.2.0 --key release.pub --key cosign.pub --json
  pack verify out/app --key pack.pub --signature-only
  pack verify out/app --key pack.pub --reference ghcr.io/team/app

Exit status:
  0  a signature by one of the keys covers the exact index digest, and every blob of
     the bundle matches its digest and size
  1  no signature does (unsigned, signed by another key, signing another digest or for
     another repository, or malformed), or a blob is missing or damaged; the reasons
     are listed
  2  usage error or bad input (not a layout, no such tag, unreadable key)")]
pub struct VerifyCommand {
    /// The bundle: a layout directory and a tag (default `latest`).
    #[arg(value_name = "LAYOUT[:TAG]")]
    pub target: LayoutRef,

    /// A public key (SubjectPublicKeyInfo PEM: `pack.pub`, `cosign.pub`); repeatable, any
    /// of them may have signed.
    #[arg(long, value_name = "PUB", required = true)]
    pub key: Vec<PathBuf>,

    /// Check only the signatures over the index digest, not the blobs (fast: reads
    /// nothing of the bundle itself).
    #[arg(long)]
    pub signature_only: bool,

    /// The repository the signature must name (`docker-reference`), e.g.
    /// `ghcr.io/team/app`: a signature made for another one does not count. Compared
    /// after docker's normalization (`app` is `docker.io/library/app`).
    #[arg(long, value_name = "REPO")]
    pub reference: Option<String>,

    /// Also accept signatures made for repositories matching PATTERN (`*` within one
    /// component, `**` as the last component for any suffix); repeatable. See
    /// docs/signing.md.
    #[arg(long, value_name = "PATTERN", requires = "reference")]
    pub allow_reference: Vec<ReferencePattern>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonVerdict<'a> {
    verified: bool,
    layout: &'a std::path::Path,
    tag: &'a str,
    digest: &'a str,
    signature_tag: &'a str,
    referrers_tag: &'a str,
    keys: Vec<String>,
    signatures: Vec<JsonSignature>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
    /// The blobs' check; absent with --signature-only, or when no signature holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    tree: Option<&'a TreeReport>,
}

impl VerifyCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let keys = signing::load_public_keys(&self.key)?;
        let policy = match &self.reference {
            Some(reference) => Some(
                ReferencePolicy::new(reference, &self.allow_reference)
                    .ok_or_else(|| anyhow::anyhow!("--reference is empty"))?,
            ),
            None => None,
        };
        let layout = Layout::open(&self.target.path)?;
        let descriptor = layout.resolve(&self.target.tag)?;
        let mut verdict = signing::verify_digest(&layout, descriptor.digest(), &keys)?;
        if let Some(policy) = &policy {
            verdict.require_reference(policy);
        }
        let signed = verdict.is_verified();
        // The blobs are read only once a signature says whose they are.
        let tree = if signed && !self.signature_only {
            Some(pack_packager::verify_tree(&layout, &descriptor)?)
        } else {
            None
        };
        let ok = signed && tree.as_ref().is_none_or(TreeReport::is_intact);
        if policy.is_some()
            && signed
            && verdict
                .verified()
                .all(|v| signing::is_unbound(&v.reference))
        {
            let references: Vec<&str> = verdict.verified().map(|v| v.reference.as_str()).collect();
            printer.warn(&crate::diagnostics::unbound_signature(
                &self.target.to_string(),
                &references,
            ));
        }
        if printer.json_output() {
            printer.json(&JsonVerdict {
                verified: ok,
                layout: &self.target.path,
                tag: &self.target.tag,
                digest: &verdict.digest,
                signature_tag: &verdict.signature_tag,
                referrers_tag: &verdict.referrers_tag,
                keys: keys.iter().map(|k| k.fingerprint().to_string()).collect(),
                signatures: verdict
                    .signatures
                    .iter()
                    .map(|s| JsonSignature::new(s, true))
                    .collect(),
                reasons: if signed {
                    Vec::new()
                } else {
                    verdict.reasons()
                },
                tree: tree.as_ref(),
            })?;
        } else {
            self.print(printer, &keys, &verdict, tree.as_ref());
        }
        Ok(if ok {
            Status::Success
        } else {
            Status::Negative
        })
    }

    fn print(
        &self,
        printer: &Printer,
        keys: &[signing::PublicKey],
        verdict: &Verdict,
        tree: Option<&TreeReport>,
    ) {
        let digest = short_digest(&verdict.digest, true);
        if verdict.is_verified() {
            let damaged = tree.is_some_and(|t| !t.is_intact());
            let mark = if damaged {
                format!("{RED}✗{RED:#}")
            } else {
                format!("{GREEN}✓{GREEN:#}")
            };
            for (format, v) in verdict
                .signatures
                .iter()
                .filter_map(|s| Some((s.format, s.outcome.as_ref().ok()?)))
            {
                printer.result(&format!(
                    "{mark} {BOLD}{}{BOLD:#} ({digest}) is signed by key {} \
                     (reference {}, {format})",
                    self.target,
                    v.key.short(),
                    v.reference
                ));
            }
            let Some(tree) = tree else {
                printer.detail("  blobs not checked (--signature-only)");
                return;
            };
            if damaged {
                printer.result(&format!(
                    "  but {} of its blobs {} damaged:",
                    tree.damaged.len(),
                    if tree.damaged.len() == 1 { "is" } else { "are" }
                ));
                for blob in &tree.damaged {
                    printer.result(&format!(
                        "  {} ({}, `{}`): {}",
                        blob.digest,
                        blob.media_type,
                        blob.path.display(),
                        blob.problem
                    ));
                }
            } else {
                printer.detail(&format!(
                    "  {} blobs intact ({})",
                    tree.intact,
                    crate::format::bytes(tree.bytes)
                ));
            }
            if !tree.absent.is_empty() {
                printer.detail(&format!(
                    "  {} manifest(s) of the index are not in the layout (not checked): {}",
                    tree.absent.len(),
                    tree.absent.join(", ")
                ));
            }
            if !tree.unfetched.is_empty() {
                printer.detail(&format!(
                    "  {} fallback layer(s) were not fetched (a pull of the first layers \
                     only; not checked): {}",
                    tree.unfetched.len(),
                    tree.unfetched.join(", ")
                ));
            }
            return;
        }
        let names: Vec<String> = keys
            .iter()
            .map(|k| k.fingerprint().short().to_string())
            .collect();
        printer.result(&format!(
            "{RED}✗{RED:#} {BOLD}{}{BOLD:#} ({digest}) has no valid signature by key {}",
            self.target,
            names.join(", ")
        ));
        for reason in verdict.reasons() {
            printer.result(&format!("  {reason}"));
        }
    }
}
