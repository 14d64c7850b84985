//! `pack sign`: sign a bundle in a layout, the way cosign signs an image.

use std::path::PathBuf;

use anyhow::Result;
use pack_packager::signing::{self, SignOptions};
use pack_packager::{Layout, LayoutRef};

use crate::exit::Status;
use crate::format::short_digest;
use crate::keys::load_private_key_checked;
use crate::printer::{BOLD, DIM, GREEN, Printer};

/// Sign a bundle's image index with a private key, cosign-style.
///
/// By default writes two signatures of the index digest (`--signature-format both`):
/// a sigstore bundle v0.3 (a DSSE envelope over an in-toto Statement, predicate type
/// `https://sigstore.dev/cosign/sign/v1`) stored as an OCI 1.1 referrer of the index
/// (listed under the tag `sha256-<hex>`, the referrers tag schema), as cosign v3 signs;
/// and the legacy signature manifest tagged `sha256-<hex>.sig`, whose layer is a cosign
/// "simple signing" payload with the ECDSA P-256 signature in the layer annotation
/// `dev.cosignproject.cosign/signature`. Both are offline: no transparency log entry.
/// Signing again (with the same or another key) adds a signature; earlier ones are kept.
///
/// An encrypted key is decrypted with PACK_KEY_PASSWORD, or a password asked for when
/// stdin is a terminal.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack sign out/app --key pack.key
  pack sign out/app:v1.2.0 --key pack.key --reference registry.example.com/team/app
  pack sign out/app --key pack.key --recursive -a build=1234
  pack sign out/app --key pack.key --signature-format bundle

Exit status:
  0  signed
  2  usage error or bad input (not a layout, no such tag, unreadable key, wrong password)")]
pub struct SignCommand {
    /// The bundle: a layout directory and a tag (default `latest`).
    #[arg(value_name = "LAYOUT[:TAG]")]
    pub target: LayoutRef,

    /// The private key (PKCS#8 PEM, e.g. from `pack key generate`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,

    /// The repository the signature names (`docker-reference`), e.g.
    /// `registry.example.com/app`. A layout does not know where it will be pushed, so the
    /// default is the layout directory's name; cosign does not check this field.
    #[arg(long, value_name = "REPO")]
    pub reference: Option<String>,

    /// Also sign every manifest of the index (the portable and each native manifest).
    #[arg(long)]
    pub recursive: bool,

    /// A claim for the payload's `optional` section (like `cosign sign -a`); repeatable.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub annotations: Vec<(String, String)>,

    /// Which signatures to write: `bundle` (a sigstore bundle as an OCI 1.1 referrer),
    /// `legacy` (cosign's simple signing under `sha256-<hex>.sig`), or `both`.
    #[arg(long, value_name = "FORMAT", default_value = "both")]
    pub signature_format: signing::SignatureFormat,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSigned {
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referrer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referrers_tag: Option<String>,
    added: bool,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSummary<'a> {
    layout: &'a std::path::Path,
    tag: &'a str,
    key: &'a str,
    reference: &'a str,
    signed: Vec<JsonSigned>,
}

impl SignCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let layout = Layout::open(&self.target.path)?;
        // Resolve the tag before asking for a password, and sign what it pointed to
        // then: a tag moved while the key is decrypted does not change what is signed.
        let descriptor = layout.resolve(&self.target.tag)?;
        let key = load_private_key_checked(&self.key, printer)?;
        let options = SignOptions {
            reference: self.reference.clone(),
            recursive: self.recursive,
            annotations: self.annotations.iter().cloned().collect(),
            format: self.signature_format,
        };
        let summary =
            signing::sign_descriptor(&layout, &descriptor, &self.target.tag, &key, &options)?;
        if printer.json_output() {
            printer.json(&JsonSummary {
                layout: &self.target.path,
                tag: &self.target.tag,
                key: summary.key.as_str(),
                reference: &summary.reference,
                signed: summary
                    .signed
                    .iter()
                    .map(|s| JsonSigned {
                        digest: s.digest.to_string(),
                        signature_tag: s.signature_tag.clone(),
                        referrer: s.referrer.as_ref().map(ToString::to_string),
                        referrers_tag: s
                            .referrer
                            .as_ref()
                            .map(|_| pack_packager::referrers::referrers_tag(&s.digest)),
                        added: s.added,
                    })
                    .collect(),
            })?;
            return Ok(Status::Success);
        }
        let index = &summary.signed[0];
        let verb = if index.added {
            "signed"
        } else {
            "already signed"
        };
        printer.result(&format!(
            "{GREEN}✓{GREEN:#} {verb} {BOLD}{}{BOLD:#} ({}) with key {} for {BOLD}{}{BOLD:#}",
            self.target,
            short_digest(index.digest.as_ref(), true),
            summary.key.short(),
            summary.reference,
        ));
        for signed in &summary.signed {
            let note = if signed.added { "" } else { " (unchanged)" };
            if let Some(tag) = &signed.signature_tag {
                printer.detail(&format!("  {DIM}{tag} (simple signing){note}{DIM:#}"));
            }
            if let Some(referrer) = &signed.referrer {
                printer.detail(&format!(
                    "  {DIM}{} → sigstore bundle {}{note}{DIM:#}",
                    pack_packager::referrers::referrers_tag(&signed.digest),
                    short_digest(referrer.as_ref(), true)
                ));
            }
        }
        Ok(Status::Success)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        sign: SignCommand,
    }

    #[test]
    fn parses_target_and_claims() {
        let cli = Cli::try_parse_from([
            "sign",
            "out/app:v1",
            "--key",
            "k.key",
            "-a",
            "build=42",
            "-a",
            "note=a=b",
        ])
        .unwrap();
        assert_eq!(cli.sign.target.path, std::path::Path::new("out/app"));
        assert_eq!(cli.sign.target.tag, "v1");
        assert_eq!(
            cli.sign.annotations,
            [("build".into(), "42".into()), ("note".into(), "a=b".into())]
        );
        assert!(Cli::try_parse_from(["sign", "x", "--key", "k", "-a", "novalue"]).is_err());
        assert!(Cli::try_parse_from(["sign", "x"]).is_err());
        assert_eq!(cli.sign.signature_format, signing::SignatureFormat::Both);
        let cli = Cli::try_parse_from(["sign", "x", "--key", "k", "--signature-format", "bundle"])
            .unwrap();
        assert_eq!(cli.sign.signature_format, signing::SignatureFormat::Bundle);
        assert!(
            Cli::try_parse_from(["sign", "x", "--key", "k", "--signature-format", "x"]).is_err()
        );
    }
}
