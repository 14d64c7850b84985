//! Sigstore bundle signatures stored as OCI 1.1 referrers: in a layout (the referrers tag
//! schema, `sha256-<hex>` → an index of the referrers), on push and pull against a real
//! registry without a referrers API (plain and htpasswd), through `skopeo copy`, and
//! checked by an implementation pack did not write (the npm `sigstore` verifier).

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::bundle::sample_layout;
use crate::common::*;
use crate::registry::{Options, Registry, htpasswd, require, skopeo};

const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// The entries of the referrers index the layout's `sha256-<hex>` tag points to.
fn layout_referrers(layout: &Path, digest: &str) -> Vec<Value> {
    let tag = digest.replace(':', "-");
    let index = layout_index(layout);
    let Some(entry) = tagged(&index, &tag) else {
        return Vec::new();
    };
    let referrers: Value = blob_json(layout, entry["digest"].as_str().unwrap());
    assert_eq!(
        referrers["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    manifests(&referrers).to_vec()
}

/// The bundle a referrer entry's manifest holds, checked to be a proper referrer of
/// `subject`.
fn referred_bundle(layout: &Path, entry: &Value, subject: &str) -> Value {
    assert_eq!(entry["artifactType"], BUNDLE, "{entry}");
    let manifest: Value = blob_json(layout, entry["digest"].as_str().unwrap());
    assert_eq!(manifest["artifactType"], BUNDLE);
    assert_eq!(manifest["subject"]["digest"], subject);
    assert_eq!(
        manifest["subject"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(manifest["config"]["mediaType"], EMPTY);
    assert_eq!(manifest["config"]["size"], 2);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], BUNDLE);
    blob_json(layout, layers[0]["digest"].as_str().unwrap())
}

/// `pack COMMAND LAYOUT:v1 --key KEY EXTRA` in `home`.
fn with_key(home: &Path, command: &str, layout: &Path, key: &Path, extra: &[&str]) -> Output {
    pack_in(home)
        .args([command, &format!("{}:v1", s(layout)), "--key", s(key)])
        .args(extra)
        .output()
        .unwrap()
}

/// `pack sign LAYOUT:v1 --key KEY EXTRA` in `home`.
fn sign(home: &Path, layout: &Path, key: &Path, extra: &[&str]) -> Output {
    with_key(home, "sign", layout, key, extra)
}

/// `pack verify LAYOUT:v1 --key KEY EXTRA` in `home`.
fn verify(home: &Path, layout: &Path, key: &Path, extra: &[&str]) -> Output {
    with_key(home, "verify", layout, key, extra)
}

fn statement(bundle: &Value) -> Value {
    let payload = base64::engine::general_purpose::STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

fn hint(public: &Path) -> String {
    let pem = std::fs::read_to_string(public).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(der))
}

#[test]
fn a_bundle_signature_is_a_referrer_of_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (layout, summary) = sample_layout(d, "app", "v1");
    let digest = summary.index.digest().to_string();
    let target = format!("{}:v1", s(&layout));
    let (key, public) = key_pair(d, "a");
    let (other_key, other_public) = key_pair(d, "b");

    // Bundle only: no legacy tag, one referrer, and it verifies.
    let out = sign(
        d,
        &layout,
        &key,
        &[
            "--signature-format",
            "bundle",
            "--reference",
            "registry.example.com/team/app",
            "--json",
        ],
    );
    assert_exit(&out, 0);
    let signed = json_stdout(&out);
    assert!(
        signed["signed"][0].get("signatureTag").is_none(),
        "{signed}"
    );
    assert_eq!(
        signed["signed"][0]["referrersTag"],
        digest.replace(':', "-")
    );
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(!index.contains(".sig\""), "{index}");
    let entries = layout_referrers(&layout, &digest);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["annotations"]["dev.sigstore.bundle.predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
    assert_eq!(signed["signed"][0]["referrer"], entries[0]["digest"]);

    let bundle = referred_bundle(&layout, &entries[0], &digest);
    assert_eq!(bundle["mediaType"], BUNDLE);
    assert_eq!(
        bundle["verificationMaterial"]["publicKey"]["hint"],
        hint(&public)
    );
    // Offline: no transparency log entry, as cosign with --tlog-upload=false.
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"],
        Value::Array(vec![])
    );
    assert_eq!(
        bundle["dsseEnvelope"]["payloadType"],
        "application/vnd.in-toto+json"
    );
    let st = statement(&bundle);
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], "https://sigstore.dev/cosign/sign/v1");
    assert_eq!(st["subject"][0]["name"], "registry.example.com/team/app");
    assert_eq!(
        st["subject"][0]["digest"]["sha256"],
        digest.strip_prefix("sha256:").unwrap()
    );

    let out = verify(d, &layout, &public, &["--json"]);
    assert_exit(&out, 0);
    let verdict = json_stdout(&out);
    assert_eq!(verdict["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(verdict["signatures"][0]["format"], "sigstore-bundle");
    assert_eq!(verdict["signatures"][0]["verified"], true);
    assert_eq!(verdict["referrersTag"], digest.replace(':', "-"));
    // The repository binding holds for bundles as for legacy signatures.
    let out = verify(
        d,
        &layout,
        &public,
        &["--reference", "registry.example.com/team/other"],
    );
    assert_exit(&out, 1);
    assert_stdout_has(&out, "signed for `registry.example.com/team/app`");
    let out = verify(d, &layout, &other_public, &[]);
    assert_exit(&out, 1);
    assert_stdout_has(&out, "made by another key");

    // A second signature (default: both formats) adds a referrer and keeps the first.
    let out = sign(d, &layout, &other_key, &[]);
    assert_exit(&out, 0);
    let entries = layout_referrers(&layout, &digest);
    assert_eq!(entries.len(), 2);
    assert!(index_has_tag(
        &layout,
        &format!("{}.sig", digest.replace(':', "-"))
    ));
    // Signing the same again changes nothing (deterministic signatures).
    let out = sign(d, &layout, &other_key, &["--json"]);
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["signed"][0]["added"], false);
    assert_eq!(layout_referrers(&layout, &digest).len(), 2);
    let out = verify(d, &layout, &other_public, &["--json"]);
    assert_exit(&out, 0);
    let formats: Vec<(String, Value)> = json_stdout(&out)["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["format"].as_str().unwrap().to_string(),
                s["verified"].clone(),
            )
        })
        .collect();
    assert_eq!(
        formats,
        [
            ("simple-signing".to_string(), Value::Bool(true)),
            ("sigstore-bundle".to_string(), Value::Bool(false)),
            ("sigstore-bundle".to_string(), Value::Bool(true)),
        ]
    );

    // inspect lists every referrer, and the signatures by format.
    let out = pack_output(d, &["inspect", &target, "--key", s(&public), "--json"]);
    assert_exit(&out, 0);
    let inspected = json_stdout(&out);
    let referrers = inspected["referrers"].as_array().unwrap();
    // Two signatures of the index; the rest is each native manifest's compile
    // provenance.
    let of_index: Vec<&Value> = referrers
        .iter()
        .filter(|r| r["subject"] == digest.as_str())
        .collect();
    assert_eq!(of_index.len(), 2);
    assert!(referrers.iter().all(|r| r["artifactType"] == BUNDLE));
    let out = pack_output(d, &["inspect", &target]);
    assert_exit(&out, 0);
    assert_stdout_has(&out, "referrers");
    assert_stdout_has(&out, "sigstore bundle  key");
}

fn index_has_tag(layout: &Path, tag: &str) -> bool {
    tagged(&layout_index(layout), tag).is_some()
}

#[test]
fn a_bundle_listed_for_another_digest_does_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (layout, summary) = sample_layout(d, "app", "v1");
    let other_layout = d.join("other");
    let mut input = crate::bundle::sample_input(d);
    input
        .annotations
        .insert("org.opencontainers.image.version".into(), "2".into());
    let other = pack_packager::build_bundle(&other_layout, "v1", &input).unwrap();
    assert_ne!(summary.index.digest(), other.index.digest());
    let (key, public) = key_pair(d, "a");
    // A genuine bundle signature of the other bundle...
    let out = sign(d, &other_layout, &key, &["--signature-format", "bundle"]);
    assert_exit(&out, 0);
    // ...listed by someone as a referrer of this one.
    let entry = layout_referrers(&other_layout, other.index.digest().as_ref())[0].clone();
    for name in std::fs::read_dir(other_layout.join("blobs/sha256")).unwrap() {
        let name = name.unwrap();
        let to = layout.join("blobs/sha256").join(name.file_name());
        if !to.exists() {
            std::fs::copy(name.path(), to).unwrap();
        }
    }
    let referrers = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry],
    }))
    .unwrap();
    let hex = sha256_hex(&referrers);
    write(&layout.join("blobs/sha256"), &hex, &referrers);
    let mut index = layout_index(&layout);
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": referrers.len(),
            "annotations": {"org.opencontainers.image.ref.name":
                summary.index.digest().to_string().replace(':', "-")},
        }));
    write(&layout, "index.json", serde_json::to_vec(&index).unwrap());

    let out = verify(d, &layout, &public, &[]);
    assert_exit(&out, 1);
    assert_stdout_has(&out, format!("its subject is {}", other.index.digest()));
}

// ---------------------------------------------------------------------------------------
// The npm `sigstore` verifier.

/// Where scripts/setup.sh installs `@sigstore/bundle` and `@sigstore/verify`.
fn sigstore_js() -> Option<PathBuf> {
    let dir = std::env::var_os("PACK_SIGSTORE_JS")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(cache.join("pack-test/sigstore-js"))
        })?;
    if dir.join("node_modules/@sigstore/verify").is_dir() {
        return Some(dir);
    }
    skip(format_args!(
        "the npm sigstore packages are missing at {} (scripts/setup.sh installs them)",
        dir.display()
    ))
}

/// Verifies a bundle with sigstore-js: the public key as trust material (by its hint),
/// thresholds 0 (no transparency log, no timestamps), then the Statement's subject
/// against the expected digest, as a consumer of an image signature does.
const VERIFY_JS: &str = r#"'use strict';
const fs = require('fs');
const path = require('path');
const nodeCrypto = require('crypto');
const modules = path.join(process.env.SIGSTORE_JS, 'node_modules');
const { bundleFromJSON } = require(path.join(modules, '@sigstore/bundle'));
const { Verifier, toSignedEntity, toTrustMaterial } = require(path.join(modules, '@sigstore/verify'));
const [bundlePath, keyPath, digest] = process.argv.slice(2);
const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
const der = nodeCrypto.createPublicKey(fs.readFileSync(keyPath, 'utf8')).export({ type: 'spki', format: 'der' });
const hint = nodeCrypto.createHash('sha256').update(der).digest('base64');
const trust = toTrustMaterial(
  { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] },
  { [hint]: { rawBytes: der } });
const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
try {
  verifier.verify(toSignedEntity(bundle));
} catch (e) {
  console.error(`rejected: ${e.code || ''} ${e.message}`);
  process.exit(1);
}
const statement = JSON.parse(Buffer.from(bundle.content.dsseEnvelope.payload).toString('utf8'));
const [algorithm, hex] = digest.split(':');
if (!statement.subject.some((s) => s.digest[algorithm] === hex)) {
  console.error(`rejected: the statement is about another digest`);
  process.exit(1);
}
console.log(`verified: ${statement.predicateType} ${statement.subject[0].name}`);
"#;

#[test]
fn the_npm_sigstore_verifier_accepts_packs_bundle() {
    let Some(node) = tool("node") else {
        return;
    };
    let Some(modules) = sigstore_js() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (layout, summary) = sample_layout(d, "app", "v1");
    let digest = summary.index.digest().to_string();
    let (key, public) = key_pair(d, "a");
    let (_, other_public) = key_pair(d, "b");
    let out = sign(
        d,
        &layout,
        &key,
        &["--reference", "registry.example.com/team/app"],
    );
    assert_exit(&out, 0);
    let entry = layout_referrers(&layout, &digest)[0].clone();
    let bundle = referred_bundle(&layout, &entry, &digest);
    let bundle_path = write(d, "bundle.json", serde_json::to_vec(&bundle).unwrap());
    let script = write(d, "verify.js", VERIFY_JS);
    let verify = |bundle: &Path, key: &Path, digest: &str| {
        std::process::Command::new(&node)
            .env("SIGSTORE_JS", &modules)
            .arg(&script)
            .args([bundle, key])
            .arg(digest)
            .output()
            .unwrap()
    };

    let out = verify(&bundle_path, &public, &digest);
    assert_exit(&out, 0);
    assert_stdout_has(
        &out,
        "verified: https://sigstore.dev/cosign/sign/v1 registry.example.com/team/app",
    );
    // Another key: its hint finds nothing.
    let out = verify(&bundle_path, &other_public, &digest);
    assert_exit(&out, 1);
    assert_stderr_has(&out, "rejected");
    // Another key, with the (unsigned) hint pointed at it: the signature fails.
    let mut forged = bundle.clone();
    forged["verificationMaterial"]["publicKey"]["hint"] = hint(&other_public).into();
    let forged_path = write(d, "forged.json", serde_json::to_vec(&forged).unwrap());
    let out = verify(&forged_path, &other_public, &digest);
    assert_exit(&out, 1);
    assert_stderr_has(&out, "rejected");
    // Another digest.
    let other = format!("sha256:{}", "0".repeat(64));
    let out = verify(&bundle_path, &public, &other);
    assert_exit(&out, 1);
    assert_stderr_has(&out, "another digest");
}

// ---------------------------------------------------------------------------------------
// Registries.

/// `pack` with its own docker config and, when `auth`, the test registry's credentials.
fn pack_for(home: &Path, auth: bool) -> assert_cmd::Command {
    let mut cmd = pack_in(home);
    if auth {
        cmd.env("PACK_REGISTRY_USERNAME", "alice")
            .env("PACK_REGISTRY_PASSWORD", "wonderland");
    }
    cmd
}

/// The digests listed under the registry's referrers tag for `digest`, read with skopeo.
fn registry_referrers(registry: &Registry, repo: &str, digest: &str, auth: bool) -> Vec<String> {
    let reference = registry.docker_ref(&format!("{repo}:{}", digest.replace(':', "-")));
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if auth {
        args.push("--creds=alice:wonderland");
    }
    args.push(&reference);
    let index: Value = serde_json::from_slice(&skopeo(&args)).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    manifests(&index)
        .iter()
        .map(|m| {
            // skopeo's copy drops the entries' artifactType; pack's push keeps it.
            assert!(m["artifactType"] == BUNDLE || repo != "team/app", "{m}");
            m["digest"].as_str().unwrap().to_string()
        })
        .collect()
}

fn referrers_over_a_registry(auth: bool) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        htpasswd: if auth {
            let Some(file) = htpasswd(dir.path()) else {
                return;
            };
            Some(file)
        } else {
            None
        },
        ..Options::default()
    };
    let Some(registry) = Registry::start_with(&options) else {
        return;
    };
    if require("skopeo").is_none() {
        return;
    }
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (layout, summary) = sample_layout(dir.path(), "app", "v1");
    let digest = summary.index.digest().to_string();
    let repo = format!("{}/team/app", registry.addr());
    let keys: Vec<(PathBuf, PathBuf)> = ["a", "b", "c"]
        .iter()
        .map(|n| key_pair(dir.path(), n))
        .collect();
    // `pack ARGS` in `home`, with the registry's credentials when it wants them.
    let pack_out = |args: &[&str]| pack_for(&home, auth).args(args).output().unwrap();
    let sign_for_repo = |layout: &Path, key: &Path| {
        assert_exit(&sign(&home, layout, key, &["--reference", &repo]), 0);
    };
    let push = |layout: &Path| {
        let target = format!("{}:v1", s(layout));
        let out = pack_out(&["push", &target, &format!("{repo}:v1"), "--json"]);
        assert_exit(&out, 0);
        json_stdout(&out)
    };

    // Two clients sign copies of the same bundle and push; then the first signs again.
    sign_for_repo(&layout, &keys[0].0);
    let copy = dir.path().join("copy");
    copy_dir(&layout, &copy);
    sign_for_repo(&copy, &keys[1].0);
    let first = push(&layout);
    // The index's signature, and the compile provenance of each of the two native
    // manifests.
    let natives = 2;
    assert_eq!(
        first["referrers"].as_array().unwrap().len(),
        1 + natives,
        "{first}"
    );
    let a = layout_referrers(&layout, &digest)[0]["digest"].clone();
    assert_eq!(
        registry_referrers(&registry, "team/app", &digest, auth),
        [a.as_str().unwrap()]
    );
    push(&copy);
    sign_for_repo(&layout, &keys[2].0);
    push(&layout);
    // The fallback index lists all three: nobody's entry was lost.
    let listed = registry_referrers(&registry, "team/app", &digest, auth);
    assert_eq!(listed.len(), 3, "{listed:?}");
    let b = layout_referrers(&copy, &digest)[1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(listed.contains(&b), "{listed:?}");

    // The legacy `.sig` tag, rewritten whole by each push, lost key b's signature; the
    // bundle referrer kept it, so a pull verifying with key b still succeeds.
    let pulled = dir.path().join("pulled");
    let out = pack_out(&[
        "pull",
        &format!("{repo}:v1"),
        "-o",
        s(&pulled),
        "--json",
        "--key",
        s(&keys[1].1),
    ]);
    assert_exit(&out, 0);
    let summary_json = json_stdout(&out);
    // Three keys, each a signature of the index and a provenance per native manifest.
    assert_eq!(
        summary_json["referrers"].as_array().unwrap().len(),
        3 * (1 + natives),
        "{summary_json}"
    );
    let out = verify(
        &home,
        &pulled,
        &keys[1].1,
        &["--json", "--reference", &repo],
    );
    assert_exit(&out, 0);
    let verdict = json_stdout(&out);
    let verified: Vec<&Value> = verdict["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["verified"] == true)
        .collect();
    assert_eq!(verified.len(), 1, "{verdict}");
    assert_eq!(verified[0]["format"], "sigstore-bundle");

    // `pack run`-style checks go through the same reading: a pull from another
    // repository does not count the signature (the repository binding).
    let mirror = format!("{}/mirror/app", registry.addr());
    let mut creds = vec!["--src-tls-verify=false", "--dest-tls-verify=false"];
    if auth {
        creds.extend([
            "--src-creds=alice:wonderland",
            "--dest-creds=alice:wonderland",
        ]);
    }
    let copy_tag = |tag: &str| {
        let from = registry.docker_ref(&format!("team/app:{tag}"));
        let to = registry.docker_ref(&format!("mirror/app:{tag}"));
        // The referrers index lists artifacts, which skopeo copies only re-encoded (the
        // entries' digests stay those of the referrer manifests).
        let mut args = vec!["copy", "--all"];
        args.extend(creds.iter().copied());
        args.extend([from.as_str(), to.as_str()]);
        skopeo(&args);
    };
    // skopeo copies the bundle and, as another tag, the referrers index with every
    // referrer: they stay reachable in the mirror.
    copy_tag("v1");
    copy_tag(&digest.replace(':', "-"));
    assert_eq!(
        registry_referrers(&registry, "mirror/app", &digest, auth).len(),
        3
    );
    let from_mirror = dir.path().join("from-mirror");
    let pull_from_mirror = |extra: &[&str]| {
        pack_for(&home, auth)
            .args(["pull", &format!("{mirror}:v1"), "-o", s(&from_mirror)])
            .args(["--key", s(&keys[1].1)])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = pull_from_mirror(&[]);
    assert_exit(&out, 1);
    assert_stderr_has(&out, "signed for");
    assert_exit(&pull_from_mirror(&["--allow-reference", &repo]), 0);
}

#[test]
fn bundle_referrers_through_a_registry_without_a_referrers_api() {
    referrers_over_a_registry(false);
}

#[test]
fn bundle_referrers_through_a_registry_with_basic_auth() {
    referrers_over_a_registry(true);
}
