//! `pack push`: send a bundle and its signatures from a layout to a registry.

use std::path::PathBuf;

use anyhow::Result;

use crate::manifest::{Manifest, missing};
use pack_packager::{Layout, LayoutRef};
use pack_registry_client::PushOptions;

use crate::args::{RegistryArgs, TransferArgs};
use crate::exit::Status;
use crate::printer::Printer;
use crate::registry::{print_summary, transfer};

/// Send a bundle from a layout to a registry, with its signatures.
///
/// Sends every blob (those the repository already has are skipped; with --mount-from,
/// those another repository of the registry has are mounted), every manifest, the
/// signature manifests under their `sha256-<hex>.sig` tags, and the index under the tag
/// last, so nobody sees the tag before its content. Pushing again after an interruption
/// sends only what is missing.
///
/// The tag is REFERENCE's, or the layout's when REFERENCE has none.
///
/// Left out, LAYOUT is `[build] output` and `[build] tag` of `pack.toml` (PACK_OUTPUT,
/// PACK_TAG override them), and REFERENCE is `[push] repository` (PACK_REPOSITORY) with
/// that tag; see docs/pack-toml.md.
///
/// Credentials: --username with --password-stdin; else PACK_REGISTRY_USERNAME and
/// PACK_REGISTRY_PASSWORD, sent only to the registry PACK_REGISTRY (host[:port]) names,
/// or to REFERENCE's registry when PACK_REGISTRY is unset; else the docker config; else
/// anonymous.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack push                     # the bundle and repository of ./pack.toml
  pack push out/app ghcr.io/team/app:v1.2.0
  pack push out/app:v1.2.0 registry.example.com/team/app --mount-from team/base
  echo \"$TOKEN\" | pack push out/app ghcr.io/team/app -u team --password-stdin
  pack push out/app 127.0.0.1:5000/app --json

Exit status:
  0  pushed
  2  usage error or bad input (not a layout, no such tag, a registry that rejects it,
     an invalid pack.toml)
  3  the registry refused the credentials (or needs some)
  4  the registry cannot be reached (network, TLS, or retries ran out)")]
pub struct PushCommand {
    /// The bundle: a layout directory and a tag (default `latest`).
    #[arg(value_name = "LAYOUT[:TAG]")]
    pub source: Option<String>,

    /// Where to push: REGISTRY/REPOSITORY[:TAG].
    #[arg(value_name = "REFERENCE")]
    pub reference: Option<String>,

    /// What LAYOUT and REFERENCE are when left out.
    #[command(flatten)]
    pub bundle: crate::args::BundleArgs,

    /// Mount blobs from this repository of the same registry when it has them.
    #[arg(long, value_name = "REPO")]
    pub mount_from: Option<String>,

    #[command(flatten)]
    pub transfer: TransferArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl PushCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let plan = PushPlan::resolve(&self.bundle, self.source.clone(), self.reference.clone())?;
        let source = LayoutRef::parse(&plan.source);
        let (mut reference, explicit_tag) = pack_registry_client::parse_reference(&plan.reference)?;
        if !explicit_tag && reference.digest().is_none() {
            reference = pack_registry_client::Reference::with_tag(
                reference.registry().to_string(),
                reference.repository().to_string(),
                source.tag.clone(),
            );
        }
        let layout = Layout::open(&source.path)?;
        layout.resolve(&source.tag)?;
        let options = PushOptions {
            jobs: usize::from(self.transfer.jobs),
            mount_from: self.mount_from.clone(),
        };
        let summary = transfer(
            printer,
            &reference,
            &self.registry,
            "sending",
            async |registry, progress| {
                let tag = &source.tag;
                pack_registry_client::push(registry, &layout, tag, &reference, &options, progress)
                    .await
            },
        )?;
        if printer.json_output() {
            printer.json(&summary)?;
        } else {
            print_summary(printer, "pushed", &summary, "sent");
        }
        Ok(Status::Success)
    }
}

/// What `pack push` reads from the manifest when its arguments are left out.
#[derive(Debug)]
pub struct PushPlan {
    /// `LAYOUT[:TAG]`.
    pub source: String,
    /// `REGISTRY/REPOSITORY[:TAG]`.
    pub reference: String,
}

impl PushPlan {
    pub fn resolve(
        bundle: &crate::args::BundleArgs,
        source: Option<String>,
        reference: Option<String>,
    ) -> Result<PushPlan> {
        let loaded = Manifest::load(bundle.manifest.as_deref())?;
        let empty = Manifest::default();
        let m = loaded.as_ref().map_or(&empty, |l| &l.manifest);
        let rel = |p: &PathBuf| loaded.as_ref().map_or(p.clone(), |l| l.path_of(p));
        let tag = bundle.tag.clone().or_else(|| m.build.tag.clone());
        let with_tag = |name: String| match &tag {
            Some(tag) => format!("{name}:{tag}"),
            None => name,
        };
        let source = match source {
            Some(s) => s,
            None => bundle
                .layout
                .clone()
                .or_else(|| m.build.output.as_ref().map(rel))
                .map(|layout| with_tag(layout.display().to_string()))
                .ok_or_else(|| missing("layout", "LAYOUT", "PACK_OUTPUT", "[build] output"))?,
        };
        let reference = match reference {
            Some(r) => r,
            None => bundle
                .repository
                .clone()
                .or_else(|| m.push.repository.clone())
                .map(with_tag)
                .ok_or_else(|| {
                    missing(
                        "repository",
                        "REFERENCE",
                        "PACK_REPOSITORY",
                        "[push] repository",
                    )
                })?,
        };
        Ok(PushPlan { source, reference })
    }
}
