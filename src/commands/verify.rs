//! `pack verify`: check a bundle's signatures against public keys, then every blob of it,
//! the compile provenance of its native artifacts, and (with --rebuild) that each is the
//! compile of its component.

use std::path::PathBuf;

use anyhow::Result;
use pack_packager::provenance::{self, ProvenanceCheck};
use pack_packager::signing::{self, ReferencePattern, ReferencePolicy, Verdict};
use pack_packager::{Bundle, Layout, LayoutRef, TreeReport};

use crate::exit::Status;
use crate::format::short_digest;
use crate::json::{JsonProvenance, JsonSignature};
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
///
/// Then the compile provenance of each native artifact the layout has: a signed SLSA
/// provenance v1 Statement, a referrer of its native manifest, made by one of the keys,
/// whose subject is the `.cwasm` layer and which names the portable component of the
/// same index and the settings the manifest records (docs/provenance.md).
///
/// With --rebuild, each native artifact is compiled again from the signed portable
/// component with its recorded target, CPU flags and engine profile (no cache), and
/// compared bit for bit with the `.cwasm` in the bundle. With --attest-key, each artifact
/// reproduced is vouched for with a signed rebuild attestation (a referrer of its native
/// manifest), which hosts require with `--rebuilt-by`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack verify out/app --key pack.pub
  pack verify out/app:v1.2.0 --key release.pub --key cosign.pub --json
  pack verify out/app --key pack.pub --signature-only
  pack verify out/app --key pack.pub --reference ghcr.io/team/app
  pack verify out/app --key pack.pub --rebuild --attest-key rebuilder.key

Exit status:
  0  a signature by one of the keys covers the exact index digest, every blob of the
     bundle matches its digest and size, each native artifact has compile provenance
     by one of the keys naming the index's portable component (and, with --rebuild,
     each was reproduced bit for bit)
  1  no signature does (unsigned, signed by another key, signing another digest or for
     another repository, or malformed), a blob is missing or damaged, a native
     artifact has no valid provenance, or (with --rebuild) a rebuild differs or fails;
     the reasons are listed, naming each platform
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

    /// Compile every native artifact again from the signed portable component, with its
    /// recorded settings and without any cache, and compare it bit for bit with the
    /// bundle's. A full compile of each platform.
    #[arg(long, conflicts_with = "signature_only")]
    pub rebuild: bool,

    /// With --rebuild: sign a rebuild attestation of each artifact reproduced, with this
    /// private key (PKCS#8 PEM; an encrypted one is decrypted with PACK_KEY_PASSWORD),
    /// stored as a referrer of its native manifest.
    #[arg(long, value_name = "KEY", requires = "rebuild")]
    pub attest_key: Option<PathBuf>,

    /// Threads for --rebuild (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "rebuild")]
    pub jobs: usize,
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
    /// Each native artifact's compile provenance; absent with --signature-only or when
    /// the signature or the blobs do not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<Vec<JsonProvenance>>,
    /// With --rebuild: each native artifact's rebuild.
    #[serde(skip_serializing_if = "Option::is_none")]
    rebuild: Option<&'a [Rebuilt]>,
}

/// The rebuild of one native artifact.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rebuilt {
    platform: String,
    manifest: String,
    /// The `.cwasm` in the bundle.
    cwasm: String,
    /// Whether the rebuild is the same, bit for bit.
    reproduced: bool,
    /// The rebuilt `.cwasm`'s digest, when it compiled.
    #[serde(skip_serializing_if = "Option::is_none")]
    rebuilt: Option<String>,
    /// Why it could not be rebuilt.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// How long the compile took.
    compile_ms: u64,
    /// The rebuild attestation signed (--attest-key).
    #[serde(skip_serializing_if = "Option::is_none")]
    attestation: Option<String>,
}

impl Rebuilt {
    fn problem(&self) -> Option<String> {
        if self.reproduced {
            return None;
        }
        Some(match (&self.rebuilt, &self.error) {
            (_, Some(error)) => format!("{}: cannot be rebuilt: {error}", self.platform),
            (Some(rebuilt), None) => format!(
                "{}: the rebuild differs: the bundle's .cwasm is {}, the compile of its \
                 component is {rebuilt}",
                self.platform, self.cwasm
            ),
            (None, None) => format!("{}: not rebuilt", self.platform),
        })
    }
}

/// Compiles every native artifact of `bundle` again from its portable component and
/// compares the bytes.
fn rebuild_all(layout: &Layout, bundle: &Bundle, jobs: usize) -> Result<Vec<Rebuilt>> {
    use pack_compiler::compile::{self, Recorded};
    let portable = bundle.portable.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "`{}:{}` has no portable manifest: there is no signed component to rebuild from",
            layout.root().display(),
            bundle.tag
        )
    })?;
    // The component's bytes, read from the one open file and checked against the digest
    // the signed index leads to.
    let bytes = layout.read_blob(&portable.component)?;
    let path = layout.blob_path(portable.component.digest())?;
    let input = pack_compiler::wasm::Input::from_bytes(&path, bytes)?;
    let recorded: Vec<Recorded> = bundle
        .natives
        .iter()
        .map(|n| {
            let c = &n.config;
            Recorded {
                target_triple: c.target_triple.clone(),
                cpu_preset: c.cpu_preset.clone(),
                cpu_flags: c.cpu_flags.clone(),
                profile: c.profile.clone(),
                wasmtime_version: c.wasmtime_version.clone(),
                compatibility_hash: c.compatibility_hash.clone(),
            }
        })
        .collect();
    let scratch = tempfile::tempdir()?;
    let results = compile::rebuild(&input, &recorded, scratch.path(), jobs)?;
    let mut out = Vec::new();
    for (native, result) in bundle.natives.iter().zip(results) {
        let cwasm = provenance::cwasm_digest(native)?;
        let mut rebuilt = Rebuilt {
            platform: provenance::platform_of(native),
            manifest: native.descriptor.digest().to_string(),
            cwasm: cwasm.to_string(),
            reproduced: false,
            rebuilt: None,
            error: None,
            compile_ms: 0,
            attestation: None,
        };
        match result {
            Err(e) => rebuilt.error = Some(crate::diagnostics::chain(&e)),
            Ok(artifact) => {
                rebuilt.compile_ms = artifact.compile_time_ms;
                rebuilt.rebuilt = Some(format!("sha256:{}", artifact.sha256));
                let ours = std::fs::read(&artifact.path)?;
                // The bundle's bytes: the layer read and checked against its digest, and
                // when compressed, decompressed and checked against the recorded one.
                let layer = layout.read_blob(&native.cwasm)?;
                let theirs = match native.config.uncompressed_of(&native.cwasm)? {
                    Some(u) => pack_packager::compression::decompress_to_vec(
                        &layer[..],
                        u,
                        &layout.blob_path(native.cwasm.digest())?,
                    )?,
                    None => layer,
                };
                rebuilt.reproduced = ours == theirs;
            }
        }
        out.push(rebuilt);
    }
    Ok(out)
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
        let intact = tree.as_ref().is_none_or(TreeReport::is_intact);
        // Provenance (and rebuilds) once the signature and the blobs hold: the native
        // manifests are read through the verified index.
        let mut checks = None;
        let mut rebuilds = None;
        if signed && intact && !self.signature_only {
            // An index that is not a pack bundle has no native artifacts to check.
            let bundle = match Bundle::read_present(&layout, &self.target.tag, descriptor.clone()) {
                Ok(bundle) => Some(bundle),
                Err(pack_packager::Error::NotABundle { .. }) if !self.rebuild => None,
                Err(e) => return Err(e.into()),
            };
            checks = match &bundle {
                Some(bundle) => Some(provenance::verify_provenance(&layout, bundle, &keys)?),
                None => Some(Vec::new()),
            };
            if let Some(bundle) = bundle.as_ref().filter(|_| self.rebuild) {
                let mut rebuilt = rebuild_all(&layout, bundle, self.jobs)?;
                if let Some(path) = &self.attest_key {
                    let key = crate::keys::load_private_key_checked(path, printer)?;
                    let component = bundle
                        .portable
                        .as_ref()
                        .map(|p| p.component.digest().clone())
                        .expect("a rebuild needs the portable component");
                    for (native, r) in bundle.natives.iter().zip(rebuilt.iter_mut()) {
                        if r.reproduced {
                            let written =
                                provenance::sign_rebuild(&layout, native, &component, &key)?;
                            r.attestation = Some(written.referrer.to_string());
                        }
                    }
                }
                rebuilds = Some(rebuilt);
            }
        }
        let mut problems: Vec<String> = Vec::new();
        if let Some(checks) = &checks {
            problems.extend(checks.iter().filter_map(ProvenanceCheck::problem));
        }
        if let Some(rebuilds) = &rebuilds {
            problems.extend(rebuilds.iter().filter_map(Rebuilt::problem));
        }
        let ok = signed && intact && problems.is_empty();
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
                    problems.clone()
                } else {
                    verdict.reasons()
                },
                tree: tree.as_ref(),
                provenance: checks.as_ref().map(|checks| {
                    checks
                        .iter()
                        .map(|c| JsonProvenance::new(c, true))
                        .collect()
                }),
                rebuild: rebuilds.as_deref(),
            })?;
        } else {
            self.print(printer, &keys, &verdict, tree.as_ref());
            if let Some(checks) = &checks {
                print_provenance(printer, checks, rebuilds.as_deref());
            }
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

fn print_provenance(printer: &Printer, checks: &[ProvenanceCheck], rebuilds: Option<&[Rebuilt]>) {
    for check in checks {
        match (check.verified(), check.problem()) {
            (Some(claim), _) => printer.result(&format!(
                "{GREEN}✓{GREEN:#} {}: compile provenance by key {} names component {}",
                check.platform,
                claim.key.short(),
                short_digest(&claim.component, true)
            )),
            (None, problem) => printer.result(&format!(
                "{RED}✗{RED:#} {}",
                problem.unwrap_or_else(|| format!("{}: no provenance", check.platform))
            )),
        }
    }
    for r in rebuilds.unwrap_or_default() {
        match r.problem() {
            None => {
                let attested = r
                    .attestation
                    .as_deref()
                    .map(|a| format!(", attested ({})", short_digest(a, true)))
                    .unwrap_or_default();
                printer.result(&format!(
                    "{GREEN}✓{GREEN:#} {}: rebuilt bit for bit ({}, {}){attested}",
                    r.platform,
                    short_digest(&r.cwasm, true),
                    crate::format::duration(std::time::Duration::from_millis(r.compile_ms))
                ));
            }
            Some(problem) => printer.result(&format!("{RED}✗{RED:#} {problem}")),
        }
    }
}
