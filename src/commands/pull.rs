//! `pack pull`: fetch a bundle and its signatures from a registry into a layout.

use std::path::PathBuf;

use anyhow::Result;
use pack_packager::LayoutRef;
use pack_packager::reference::DEFAULT_TAG;
use pack_packager::signing;
use pack_registry_client::{Layers, PlatformSpec, PullOptions};

use crate::args::{RegistryArgs, TransferArgs};
use crate::exit::Status;
use crate::printer::{DIM, Printer};
use crate::registry::{print_summary, transfer};

/// Fetch a bundle from a registry into a layout, with its signatures.
///
/// Fetches the index (or manifest) REFERENCE names, its manifests (all, or those of the
/// --platform ones), their blobs and the signatures (`sha256-<hex>.sig`, and sigstore
/// bundle referrers). With --platform, only the first layer of each chosen manifest is
/// fetched (the `.cwasm` a host loads; the portable component a native manifest carries
/// for falling back is left out unless --all-layers). Every blob is
/// checked against its digest as it streams; a mismatch aborts it and leaves no file.
/// Blobs the layout has are not fetched again, so an interrupted pull finishes where it
/// stopped. The tag is written last.
///
/// With --key, the signature is fetched and verified first: when no signature by the
/// keys covers the digest, nothing is fetched or written and the exit status is 1. A
/// signature made for another repository than REFERENCE's (its `docker-reference`)
/// does not count, unless --allow-reference allows that repository.
///
/// The layout tag is the one after `-o LAYOUT:`, else REFERENCE's, else `latest`.
///
/// Credentials: --username with --password-stdin; else PACK_REGISTRY_USERNAME and
/// PACK_REGISTRY_PASSWORD, sent only to the registry PACK_REGISTRY (host[:port]) names,
/// or to REFERENCE's registry when PACK_REGISTRY is unset (never to another host, e.g.
/// one a redirect leads to); else the docker config; else anonymous.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack pull ghcr.io/team/app:v1.2.0 -o out/app
  pack pull ghcr.io/team/app:v1.2.0 -o out/app --key cosign.pub --platform linux/amd64
  pack pull ghcr.io/team/app:v1.2.0 -o mirror/app --platform linux/arm64 --all-layers
  pack pull 127.0.0.1:5000/app@sha256:... -o out/app:pinned --json

Exit status:
  0  pulled (and verified)
  1  --key: no signature by the keys covers the digest; nothing was written
  2  usage error or bad input (no such tag, no such platform, content that does not
     match its digest)
  3  the registry refused the credentials (or needs some)
  4  the registry cannot be reached (network, TLS, or retries ran out)")]
pub struct PullCommand {
    /// What to pull: REGISTRY/REPOSITORY[:TAG][@DIGEST].
    #[arg(value_name = "REFERENCE")]
    pub reference: String,

    /// The layout to write into (created when missing), and optionally the tag.
    #[arg(long = "output", short = 'o', value_name = "LAYOUT[:TAG]")]
    pub output: String,

    /// Only the manifests of this platform (OS/ARCH[/VARIANT], e.g. linux/amd64 or
    /// wasip2/wasm); repeatable. The index is kept whole, so its digest and signatures
    /// still hold.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Vec<PlatformSpec>,

    /// With --platform: fetch every layer of the chosen manifests, the fallback portable
    /// component of native manifests too (by default only the first layer, the one a
    /// host loads).
    #[arg(long, requires = "platform")]
    pub all_layers: bool,

    /// Verify the signature with this public key before writing anything; repeatable,
    /// any of them may have signed.
    #[arg(long, value_name = "PUB")]
    pub key: Vec<PathBuf>,

    /// With --key: also accept signatures made for repositories matching PATTERN (`*`
    /// within one component, `**` as the last component for any suffix), e.g. the
    /// original of a mirror; repeatable. See docs/signing.md.
    #[arg(long, value_name = "PATTERN", requires = "key")]
    pub allow_reference: Vec<signing::ReferencePattern>,

    #[command(flatten)]
    pub transfer: TransferArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl PullCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let (reference, explicit_tag) = pack_registry_client::parse_reference(&self.reference)?;
        let output = LayoutRef::parse(&self.output);
        let tag_given = output.path.as_os_str() != std::ffi::OsStr::new(&self.output);
        let tag = if tag_given {
            output.tag.clone()
        } else if explicit_tag || reference.digest().is_none() {
            reference.tag().unwrap_or(DEFAULT_TAG).to_string()
        } else {
            DEFAULT_TAG.to_string()
        };
        pack_packager::reference::check_tag(&tag)?;
        let keys = signing::load_public_keys(&self.key)?;
        let options = PullOptions {
            jobs: usize::from(self.transfer.jobs),
            platforms: self.platform.clone(),
            keys,
            allow_references: self.allow_reference.clone(),
            layers: if self.platform.is_empty() || self.all_layers {
                Layers::All
            } else {
                Layers::First
            },
            // A copy takes every signature, provenance and attestation along.
            referrer_types: None,
        };
        let summary = transfer(
            printer,
            &reference,
            &self.registry,
            "fetching",
            async |registry, progress| {
                let layout = &output.path;
                pack_registry_client::pull(registry, &reference, layout, &tag, &options, progress)
                    .await
            },
        )?;
        if !summary.verified_references.is_empty()
            && summary
                .verified_references
                .iter()
                .all(|r| signing::is_unbound(r))
        {
            let references: Vec<&str> = summary
                .verified_references
                .iter()
                .map(String::as_str)
                .collect();
            printer.warn(&crate::diagnostics::unbound_signature(
                &self.reference,
                &references,
            ));
        }
        if printer.json_output() {
            printer.json(&summary)?;
        } else {
            print_summary(printer, "pulled", &summary, "fetched");
            let into = format!("into {}:{}", summary.layout.display(), summary.tag);
            let keys = summary
                .verified_by
                .iter()
                .map(|k| format!("signature verified: key {k}"));
            for line in std::iter::once(into).chain(keys) {
                printer.detail(&format!("  {DIM}{line}{DIM:#}"));
            }
        }
        Ok(Status::Success)
    }
}
