//! `pack verify`: check a bundle's signatures against public keys.

use std::path::PathBuf;

use anyhow::Result;
use pack_packager::signing::{self, Rejection, SignatureCheck, Verdict};
use pack_packager::{Layout, LayoutRef};

use crate::commands::inspect::short_digest;
use crate::exit::Status;
use crate::printer::{BOLD, GREEN, Printer, RED};

/// Check that a bundle's image index is signed by one of the given public keys.
///
/// Succeeds when at least one cosign simple-signing signature in the layout (tag
/// `sha256-<hex>.sig`) was made by one of the keys and names exactly the digest the tag
/// points to. Only the signatures are read, not the bundle.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack verify out/app --key pack.pub
  pack verify out/app:v1.2.0 --key release.pub --key cosign.pub --json

Exit status:
  0  a signature by one of the keys covers the exact index digest
  1  none does (unsigned, signed by another key, signing another digest, or malformed);
     the reasons are listed
  2  usage error or bad input (not a layout, no such tag, unreadable key)")]
pub struct VerifyCommand {
    /// The bundle: a layout directory and a tag (default `latest`).
    #[arg(value_name = "LAYOUT[:TAG]")]
    pub target: LayoutRef,

    /// A public key (SubjectPublicKeyInfo PEM: `pack.pub`, `cosign.pub`); repeatable, any
    /// of them may have signed.
    #[arg(long, value_name = "PUB", required = true)]
    pub key: Vec<PathBuf>,

    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One signature in JSON output (`inspect` and `verify`).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JsonSignature {
    layer: String,
    claimed_key: Option<String>,
    /// `true`, `false`, or `null` when no key was given to check it with.
    verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Rejection>,
}

impl JsonSignature {
    pub(crate) fn new(check: &SignatureCheck, keys_given: bool) -> Self {
        let (verified, key, reference, reason) = match &check.outcome {
            Ok(v) => (
                Some(true),
                Some(v.key.to_string()),
                Some(v.reference.clone()),
                None,
            ),
            Err(Rejection::OtherKey) if !keys_given => (None, None, None, None),
            Err(r) => (Some(false), None, None, Some(r.clone())),
        };
        Self {
            layer: check.layer.clone(),
            claimed_key: check.claimed_key.clone(),
            verified,
            key,
            reference,
            reason,
        }
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonVerdict<'a> {
    verified: bool,
    layout: &'a std::path::Path,
    tag: &'a str,
    digest: &'a str,
    signature_tag: &'a str,
    keys: Vec<String>,
    signatures: Vec<JsonSignature>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
}

impl VerifyCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let keys = signing::load_public_keys(&self.key)?;
        let layout = Layout::open(&self.target.path)?;
        let verdict = signing::verify(&layout, &self.target.tag, &keys)?;
        let ok = verdict.is_verified();
        if self.json {
            printer.json(&JsonVerdict {
                verified: ok,
                layout: &self.target.path,
                tag: &self.target.tag,
                digest: &verdict.digest,
                signature_tag: &verdict.signature_tag,
                keys: keys.iter().map(|k| k.fingerprint().to_string()).collect(),
                signatures: verdict
                    .signatures
                    .iter()
                    .map(|s| JsonSignature::new(s, true))
                    .collect(),
                reasons: if ok { Vec::new() } else { verdict.reasons() },
            })?;
        } else {
            self.print(printer, &keys, &verdict);
        }
        Ok(if ok {
            Status::Success
        } else {
            Status::Negative
        })
    }

    fn print(&self, printer: &Printer, keys: &[signing::PublicKey], verdict: &Verdict) {
        let digest = short_digest(&verdict.digest, true);
        if verdict.is_verified() {
            for v in verdict.verified() {
                printer.result(&format!(
                    "{GREEN}✓{GREEN:#} {BOLD}{}{BOLD:#} ({digest}) is signed by key {} \
                     (reference {})",
                    self.target,
                    v.key.short(),
                    v.reference
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
