//! `pack inspect`: show a bundle as a tree.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use pack_packager::bundle::{NativeEntry, PortableEntry, platform_string};
use pack_packager::oci_spec::image::{Descriptor, Platform};
use pack_packager::provenance::{self, AttestationCheck, AttestationRejection, ProvenanceCheck};
use pack_packager::signing::{self, Rejection, SignatureCheck};
use pack_packager::{Bundle, Layout, LayoutRef, NativeConfig};

use crate::exit::Status;
use crate::format::{bytes, plural, short_digest};
use crate::json::{JsonAttestation, JsonProvenance, JsonSignature};
use crate::printer::{BOLD, CYAN, DIM, GREEN, Printer, RED, YELLOW};

/// Show a bundle: its platforms and CPU levels, wasmtime version and compatibility hash,
/// sizes, digests, the world, and whose signatures it carries.
///
/// Every document and layer is checked against its digest and size while reading, so a
/// damaged layout is reported (exit 2). On a terminal sizes are human-readable and
/// digests shortened; otherwise both are exact.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack inspect out/app
  pack inspect out/app:v1.2.0 --key pack.pub
  pack inspect out/app --json | jq '.manifests[].platform'

Exit status:
  0  success
  2  usage error or bad input (not a layout, no such tag, a blob that does not match its
     digest, an unreadable key)")]
pub struct InspectCommand {
    /// The bundle: a layout directory and a tag (default `latest`).
    #[arg(value_name = "LAYOUT[:TAG]")]
    pub target: LayoutRef,

    /// Check the signatures against this public key (repeatable); without it, signatures
    /// are listed by the key they claim, unverified.
    #[arg(long, value_name = "PUB")]
    pub key: Vec<PathBuf>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonBlob {
    media_type: String,
    digest: String,
    size: u64,
    /// For a zstd-compressed layer: its content's digest and size (from the config).
    #[serde(skip_serializing_if = "Option::is_none")]
    uncompressed_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uncompressed_size: Option<u64>,
}

impl From<&Descriptor> for JsonBlob {
    fn from(d: &Descriptor) -> Self {
        Self {
            media_type: d.media_type().to_string(),
            digest: d.digest().to_string(),
            size: d.size(),
            uncompressed_digest: None,
            uncompressed_size: None,
        }
    }
}

impl JsonBlob {
    /// A layer of a native manifest, with what it decompresses to.
    fn layer(d: &Descriptor, config: &NativeConfig) -> Self {
        let mut blob = JsonBlob::from(d);
        if let Some(u) = config.uncompressed.get(&d.digest().to_string()) {
            blob.uncompressed_digest = Some(u.digest.clone());
            blob.uncompressed_size = Some(u.size);
        }
        blob
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonManifest<'a> {
    kind: &'static str,
    platform: Option<&'a Platform>,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    world: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exports: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    imports: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<&'a NativeConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwasm: Option<JsonBlob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<JsonBlob>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonInspect<'a> {
    layout: &'a std::path::Path,
    tag: &'a str,
    index: JsonBlob,
    annotations: BTreeMap<String, String>,
    total_size: u64,
    blobs: usize,
    manifests: Vec<JsonManifest<'a>>,
    signatures: Vec<JsonSignature>,
    referrers: Vec<JsonReferrer>,
    provenance: Vec<JsonProvenance>,
    rebuilds: Vec<JsonRebuilds>,
}

/// The rebuild attestations of one native artifact.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonRebuilds {
    platform: String,
    manifest: String,
    cwasm: String,
    attestations: Vec<JsonAttestation>,
}

/// The provenance and rebuild attestations of each native artifact, checked against
/// `keys` (without keys, listed by the key they claim).
fn attestations(
    layout: &Layout,
    bundle: &Bundle,
    keys: &[signing::PublicKey],
) -> Result<(Vec<ProvenanceCheck>, Vec<RebuildListing>)> {
    let checks = provenance::verify_provenance(layout, bundle, keys)?;
    let mut rebuilds = Vec::new();
    for native in &bundle.natives {
        let cwasm = provenance::cwasm_digest(native)?;
        let found = provenance::verify_rebuilds(layout, native.descriptor.digest(), &cwasm, keys)?;
        rebuilds.push((
            provenance::platform_of(native),
            native.descriptor.digest().to_string(),
            cwasm.to_string(),
            found,
        ));
    }
    Ok((checks, rebuilds))
}

/// One referrer of the index or of one of its manifests (a sigstore bundle, an
/// attestation), as listed in the layout; its claims are not verified here.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReferrer {
    subject: String,
    digest: String,
    size: u64,
    artifact_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// Every referrer the layout lists for the index and for each manifest of it.
fn referrers(layout: &Layout, bundle: &Bundle) -> Result<Vec<JsonReferrer>> {
    let mut subjects = vec![bundle.descriptor.digest().clone()];
    subjects.extend(bundle.index.manifests().iter().map(|d| d.digest().clone()));
    let mut out = Vec::new();
    for subject in subjects {
        for entry in pack_packager::referrers::referrers(layout, &subject)? {
            out.push(JsonReferrer {
                subject: subject.to_string(),
                digest: entry.digest().to_string(),
                size: entry.size(),
                artifact_type: pack_packager::referrers::artifact_type(&entry),
                annotations: sorted(entry.annotations()),
            });
        }
    }
    Ok(out)
}

fn sorted(map: &Option<std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
    map.iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl InspectCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let keys = signing::load_public_keys(&self.key)?;
        let layout = Layout::open(&self.target.path)?;
        let bundle = Bundle::read(&layout, &self.target.tag)?;
        bundle.verify_layers(&layout)?;
        let verdict = signing::verify_digest(&layout, bundle.descriptor.digest(), &keys)?;
        let referrers = referrers(&layout, &bundle)?;
        let (checks, rebuilds) = attestations(&layout, &bundle, &keys)?;
        let keys_given = !keys.is_empty();
        if printer.json_output() {
            let mut json = self.to_json(&bundle, &verdict.signatures, keys_given);
            json.referrers = referrers;
            json.provenance = checks
                .iter()
                .map(|c| JsonProvenance::new(c, keys_given))
                .collect();
            json.rebuilds = rebuilds
                .into_iter()
                .map(|(platform, manifest, cwasm, found)| JsonRebuilds {
                    platform,
                    manifest,
                    cwasm,
                    attestations: found
                        .iter()
                        .map(|a| JsonAttestation::new(a, keys_given))
                        .collect(),
                })
                .collect();
            printer.json(&json)?;
        } else {
            let human = std::io::stdout().is_terminal();
            self.print(
                printer,
                &bundle,
                &verdict.signatures,
                !keys.is_empty(),
                human,
            );
            print_referrers(printer, &bundle, &referrers, human);
            print_attestations(printer, &checks, &rebuilds, keys_given, human);
        }
        Ok(Status::Success)
    }

    fn to_json<'a>(
        &'a self,
        bundle: &'a Bundle,
        signatures: &[SignatureCheck],
        keys_given: bool,
    ) -> JsonInspect<'a> {
        let mut manifests = Vec::new();
        if let Some(p) = &bundle.portable {
            let component = p.config.component.as_ref();
            manifests.push(JsonManifest {
                kind: "portable",
                platform: p.descriptor.platform().as_ref(),
                digest: p.descriptor.digest().to_string(),
                size: p.descriptor.size(),
                annotations: None,
                world: component.and_then(|c| c.target.as_deref()),
                exports: component.map(|c| c.exports.as_slice()),
                imports: component.map(|c| c.imports.as_slice()),
                config: None,
                cwasm: None,
                component: Some((&p.component).into()),
            });
        }
        for n in &bundle.natives {
            let annotations = sorted(n.descriptor.annotations());
            manifests.push(JsonManifest {
                kind: "native",
                platform: n.descriptor.platform().as_ref(),
                digest: n.descriptor.digest().to_string(),
                size: n.descriptor.size(),
                annotations: (!annotations.is_empty()).then_some(annotations),
                world: None,
                exports: None,
                imports: None,
                config: Some(&n.config),
                cwasm: Some(JsonBlob::layer(&n.cwasm, &n.config)),
                component: n.component.as_ref().map(|c| JsonBlob::layer(c, &n.config)),
            });
        }
        JsonInspect {
            layout: &self.target.path,
            tag: &self.target.tag,
            index: (&bundle.descriptor).into(),
            annotations: sorted(bundle.index.annotations()),
            total_size: bundle.total_size(),
            blobs: bundle.blobs().len(),
            manifests,
            signatures: signatures
                .iter()
                .map(|s| JsonSignature::new(s, keys_given))
                .collect(),
            referrers: Vec::new(),
            provenance: Vec::new(),
            rebuilds: Vec::new(),
        }
    }

    fn print(
        &self,
        printer: &Printer,
        bundle: &Bundle,
        signatures: &[SignatureCheck],
        keys_given: bool,
        human: bool,
    ) {
        let size = |n: u64| if human { bytes(n) } else { format!("{n} B") };
        let digest = |d: &Descriptor| short_digest(d.digest().as_ref(), human);
        printer.result(&format!(
            "{BOLD}{}{BOLD:#}  image index {}  {} in {} blobs",
            self.target,
            digest(&bundle.descriptor),
            size(bundle.total_size()),
            bundle.blobs().len()
        ));
        let count = bundle.portable.iter().count() + bundle.natives.len();
        let mut n = 0;
        let mut branch = |printer: &Printer, head: String, lines: Vec<(String, String)>| {
            n += 1;
            let last = n == count;
            let (tee, bar) = if last {
                ("└──", "   ")
            } else {
                ("├──", "│  ")
            };
            printer.result(&format!("{tee} {head}"));
            for (label, value) in lines {
                printer.result(&format!("{bar}   {DIM}{label:<10}{DIM:#} {value}"));
            }
        };
        if let Some(p) = &bundle.portable {
            let (head, lines) = portable_lines(p, &size, &digest);
            branch(printer, head, lines);
        }
        for native in &bundle.natives {
            let (head, lines) = native_lines(native, &size, &digest);
            branch(printer, head, lines);
        }
        printer.result(&format!("{BOLD}signatures{BOLD:#}"));
        if signatures.is_empty() {
            printer.result(&format!("  {DIM}none{DIM:#}"));
        }
        for s in signatures {
            let claimed = s
                .claimed_key
                .as_deref()
                .and_then(signing::Fingerprint::parse)
                .map(|f| f.short().to_string());
            let format = s.format;
            let line = match &s.outcome {
                Ok(v) => format!(
                    "{GREEN}✓{GREEN:#} {format}  key {}  reference {}  {GREEN}verified{GREEN:#}",
                    v.key.short(),
                    v.reference
                ),
                Err(Rejection::OtherKey) if !keys_given => {
                    unverified_line(&format, claimed.as_deref(), None)
                }
                Err(why) => unverified_line(&format, claimed.as_deref(), Some(why)),
            };
            printer.result(&format!("  {line}"));
        }
        let annotations = sorted(bundle.index.annotations());
        if !annotations.is_empty() {
            printer.result(&format!("{BOLD}annotations{BOLD:#}"));
            for (k, v) in annotations {
                printer.result(&format!("  {CYAN}{k}{CYAN:#}: {v}"));
            }
        }
    }
}

fn print_referrers(printer: &Printer, bundle: &Bundle, referrers: &[JsonReferrer], human: bool) {
    printer.result(&format!("{BOLD}referrers{BOLD:#}"));
    if referrers.is_empty() {
        printer.result(&format!("  {DIM}none{DIM:#}"));
    }
    let index = bundle.descriptor.digest().to_string();
    for r in referrers {
        let of = if r.subject == index {
            "index".to_string()
        } else {
            format!("manifest {}", short_digest(&r.subject, human))
        };
        let what = r
            .annotations
            .get(pack_packager::annotations::BUNDLE_PREDICATE_TYPE)
            .map(|p| format!("  {DIM}{p}{DIM:#}"))
            .unwrap_or_default();
        printer.result(&format!(
            "  {}  {}  of {of}{what}",
            short_digest(&r.digest, human),
            r.artifact_type.as_deref().unwrap_or("(no artifact type)"),
        ));
    }
}

fn attestation_line(a: &AttestationCheck, keys_given: bool, human: bool) -> String {
    let claimed = a
        .claimed_key
        .as_deref()
        .and_then(signing::Fingerprint::parse)
        .map(|f| f.short().to_string());
    let layer = short_digest(&a.layer, human);
    match &a.outcome {
        Ok(claim) => {
            let cpu = claim.settings.cpu_preset.as_deref().unwrap_or("-");
            let by = claim
                .rebuilder
                .as_deref()
                .map(|hint| format!(", rebuilder hint {hint}"))
                .unwrap_or_default();
            format!(
                "{GREEN}✓{GREEN:#} {layer}  key {}  component {}  {} cpu {cpu}, wasmtime {}, \
                 pack {}{by}  {GREEN}verified{GREEN:#}",
                claim.key.short(),
                short_digest(&claim.component, human),
                claim.settings.target_triple,
                claim.settings.wasmtime_version,
                claim.pack_version
            )
        }
        Err(AttestationRejection::OtherKey) if !keys_given => {
            unverified_line(&layer, claimed.as_deref(), None)
        }
        Err(why) => unverified_line(&layer, claimed.as_deref(), Some(why)),
    }
}

/// The line of a signature or attestation that does not count: `?` when no key was
/// given to check it with, else `✗` and why.
fn unverified_line(
    label: &dyn std::fmt::Display,
    claimed: Option<&str>,
    why: Option<&dyn std::fmt::Display>,
) -> String {
    let key = claimed.unwrap_or("unknown");
    match why {
        None => {
            format!("{YELLOW}?{YELLOW:#} {label}  key {key}  {DIM}not verified (pass --key){DIM:#}")
        }
        Some(why) => format!("{RED}✗{RED:#} {label}  key {key}  {why}"),
    }
}

type RebuildListing = (String, String, String, Vec<AttestationCheck>);

fn print_attestations(
    printer: &Printer,
    checks: &[ProvenanceCheck],
    rebuilds: &[RebuildListing],
    keys_given: bool,
    human: bool,
) {
    if checks.is_empty() {
        return;
    }
    printer.result(&format!("{BOLD}provenance{BOLD:#}"));
    for check in checks {
        printer.result(&format!(
            "  {}  cwasm {}",
            check.platform,
            short_digest(&check.cwasm, human)
        ));
        if check.referrers.is_empty() {
            printer.result(&format!("    {DIM}no compile provenance{DIM:#}"));
        }
        for a in &check.referrers {
            printer.result(&format!("    {}", attestation_line(a, keys_given, human)));
        }
        if let Some((_, _, _, found)) = rebuilds.iter().find(|r| r.1 == check.manifest) {
            for a in found {
                printer.result(&format!(
                    "    rebuilt: {}",
                    attestation_line(a, keys_given, human)
                ));
            }
        }
    }
}

type Lines = (String, Vec<(String, String)>);

fn portable_lines(
    p: &PortableEntry,
    size: &dyn Fn(u64) -> String,
    digest: &dyn Fn(&Descriptor) -> String,
) -> Lines {
    let platform = p
        .descriptor
        .platform()
        .as_ref()
        .map(platform_string)
        .unwrap_or_else(|| "wasip2/wasm".to_string());
    let head = format!(
        "{BOLD}{platform}{BOLD:#} (portable)  manifest {}",
        digest(&p.descriptor)
    );
    let mut lines = vec![(
        "component".to_string(),
        format!("{}  {}", digest(&p.component), size(p.component.size())),
    )];
    if let Some(c) = &p.config.component {
        let world = c.target.as_deref().unwrap_or("(not validated)");
        lines.push((
            "world".to_string(),
            format!(
                "{world} ({}, {})",
                plural(c.exports.len(), "export"),
                plural(c.imports.len(), "import")
            ),
        ));
    }
    (head, lines)
}

fn native_lines(
    n: &NativeEntry,
    size: &dyn Fn(u64) -> String,
    digest: &dyn Fn(&Descriptor) -> String,
) -> Lines {
    let c = &n.config;
    let platform = n
        .descriptor
        .platform()
        .as_ref()
        .map(platform_string)
        .unwrap_or_else(|| {
            let mut s = format!("{}/{}", c.os, c.architecture);
            if let Some(v) = &c.variant {
                s.push('/');
                s.push_str(v);
            }
            s
        });
    let head = format!(
        "{BOLD}{platform}{BOLD:#}  manifest {}",
        digest(&n.descriptor)
    );
    let mut target = c.target_triple.clone();
    if let Some(preset) = &c.cpu_preset {
        target.push_str(&format!(", cpu {preset}"));
    }
    if !c.cpu_flags.is_empty() {
        target.push_str(&format!(" ({})", c.cpu_flags.join(" ")));
    }
    let profile = match &c.profile {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) if o.get("name").is_some_and(|v| v.is_string()) => {
            o["name"].as_str().unwrap_or_default().to_string()
        }
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let mut lines = vec![
        ("target".to_string(), target),
        (
            "wasmtime".to_string(),
            format!(
                "{}, compatibility {}",
                c.wasmtime_version, c.compatibility_hash
            ),
        ),
        ("profile".to_string(), profile),
        (
            "cwasm".to_string(),
            match c.uncompressed.get(&n.cwasm.digest().to_string()) {
                Some(u) => format!(
                    "{}  {} zstd, {} uncompressed",
                    digest(&n.cwasm),
                    size(n.cwasm.size()),
                    size(u.size)
                ),
                None => format!("{}  {}", digest(&n.cwasm), size(n.cwasm.size())),
            },
        ),
    ];
    if let Some(world) = &c.world {
        lines.push(("world".to_string(), world.clone()));
    }
    if n.component.is_some() {
        lines.push((
            "fallback".to_string(),
            "portable component included".to_string(),
        ));
    }
    (head, lines)
}
