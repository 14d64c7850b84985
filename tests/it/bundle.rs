//! Bundles in OCI layouts: `pack inspect`, bad layouts, and a round trip through a real
//! registry with skopeo that must keep the index digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pack_packager::oci_spec::image::{Arch, Os, PlatformBuilder};
use pack_packager::{
    BlobSource, BundleInput, BundleSummary, Compilation, NativeArtifact, PortableConfig,
};
use serde_json::Value;

use crate::common::*;
use crate::registry::{oci_ref, require, skopeo};

/// A bundle input with a small component and two native artifacts of fake `.cwasm`
/// bytes (the packager does not interpret them).
pub fn sample_input(dir: &Path) -> BundleInput {
    let component = dir.join("app.wasm");
    std::fs::write(
        &component,
        b"\0asm\x0d\0\x01\0 a component, as far as packaging goes",
    )
    .unwrap();
    let native =
        |os: &str, arch: &str, variant: Option<&str>, triple: &str, preset: Option<&str>| {
            let mut platform = PlatformBuilder::default()
                .os(Os::from(os))
                .architecture(Arch::from(arch));
            if let Some(v) = variant {
                platform = platform.variant(v.to_string());
            }
            NativeArtifact {
                platform: platform.build().unwrap(),
                cwasm: BlobSource::Bytes(
                    format!("cwasm for {triple} {preset:?}")
                        .repeat(200)
                        .into_bytes(),
                ),
                cwasm_sha256: None,
                compilation: Compilation {
                    wasmtime_version: "48.0.8".into(),
                    compatibility_hash: format!("hash-{arch}"),
                    target_triple: triple.into(),
                    cpu_preset: preset.map(Into::into),
                    cpu_flags: if preset.is_some() {
                        vec!["+avx2".into(), "+bmi2".into()]
                    } else {
                        vec![]
                    },
                    profile: serde_json::json!({"name": "release"}),
                },
            }
        };
    BundleInput {
        component: BlobSource::File(component),
        component_sha256: None,
        portable: PortableConfig {
            exports: vec!["wasi:cli/run@0.2.0".into()],
            imports: vec!["wasi:cli/stdout@0.2.0".into()],
            target_world: Some("wasi:cli/command@0.2.0".into()),
        },
        natives: vec![
            native(
                "linux",
                "amd64",
                Some("v3"),
                "x86_64-unknown-linux-gnu",
                Some("x86-64-v3"),
            ),
            native("linux", "arm64", None, "aarch64-unknown-linux-gnu", None),
        ],
        annotations: BTreeMap::new(),
        created: None,
    }
}

/// Builds the sample bundle into `dir/<name>` under `tag`.
pub fn sample_layout(dir: &Path, name: &str, tag: &str) -> (PathBuf, BundleSummary) {
    let layout = dir.join(name);
    let summary = pack_packager::build_bundle(&layout, tag, &sample_input(dir)).unwrap();
    (layout, summary)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = pack().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn arg(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// Asserts that `pack inspect TARGET` fails with exit 2 and that its stderr says each of
/// `needles`.
#[track_caller]
fn assert_inspect_fails(target: &str, needles: &[&str]) {
    let (code, _, err) = run(&["inspect", target]);
    assert_eq!(code, 2, "pack inspect {target}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
}

#[test]
fn inspect_shows_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, summary) = sample_layout(dir.path(), "app", "v1");
    let (code, out, err) = run(&["inspect", &format!("{}:v1", arg(&layout))]);
    assert_eq!(code, 0, "{err}");
    let index = summary.index.digest().to_string();
    // Not a terminal: exact sizes and full digests.
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains(&format!("image index {index}")),
        "{out}"
    );
    for needle in [
        "wasip2/wasm (portable)",
        "linux/amd64/v3",
        "linux/arm64",
        "x86_64-unknown-linux-gnu, cpu x86-64-v3 (+avx2 +bmi2)",
        "48.0.8, compatibility hash-amd64",
        "wasi:cli/command@0.2.0 (1 export, 1 import)",
        "portable component included",
        "profile    release",
        summary.natives[0].digest().as_ref(),
        "signatures\n  none",
        " B in 10 blobs",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    assert!(out.contains("├── ") && out.contains("└── "), "{out}");
}

#[test]
fn inspect_json() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, summary) = sample_layout(dir.path(), "app", "latest");
    let (code, out, err) = run(&["inspect", &arg(&layout), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v = json_str(&out);
    assert_eq!(v["tag"], "latest");
    assert_eq!(v["index"]["digest"], summary.index.digest().to_string());
    assert_eq!(v["blobs"], 10);
    let manifests = v["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3);
    assert_eq!(manifests[0]["kind"], "portable");
    assert_eq!(
        manifests[0]["platform"],
        serde_json::json!({"architecture": "wasm", "os": "wasip2"})
    );
    assert_eq!(manifests[0]["world"], "wasi:cli/command@0.2.0");
    assert_eq!(manifests[1]["kind"], "native");
    assert_eq!(manifests[1]["platform"]["variant"], "v3");
    assert_eq!(manifests[1]["config"]["compatibilityHash"], "hash-amd64");
    assert_eq!(manifests[1]["config"]["wasmtimeVersion"], "48.0.8");
    assert_eq!(
        manifests[1]["cwasm"]["mediaType"],
        "application/vnd.pack.cwasm.v1"
    );
    assert_eq!(
        manifests[1]["component"]["digest"],
        manifests[0]["component"]["digest"]
    );
    assert_eq!(v["signatures"], serde_json::json!([]));
}

#[test]
fn bad_layouts_are_reported_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, summary) = sample_layout(dir.path(), "app", "latest");

    // A tag that does not exist: the tags that do are listed.
    assert_inspect_fails(
        &format!("{}:nope", arg(&layout)),
        &["no tag `nope`", "tags there: latest"],
    );

    // A blob that does not match its digest.
    let cwasm = dir.path().join("app/blobs/sha256").join(
        pack_packager::Layout::open(&layout)
            .and_then(|l| pack_packager::Bundle::read(&l, "latest"))
            .unwrap()
            .natives[1]
            .cwasm
            .digest()
            .digest(),
    );
    let mut bytes = std::fs::read(&cwasm).unwrap();
    bytes[10] ^= 0x20;
    std::fs::write(&cwasm, &bytes).unwrap();
    assert_inspect_fails(
        &arg(&layout),
        &[
            "does not match its digest",
            &arg(&cwasm),
            "hint: the layout is damaged",
        ],
    );

    // The index itself damaged.
    let index_blob = dir
        .path()
        .join("app/blobs/sha256")
        .join(summary.index.digest().digest());
    std::fs::write(&index_blob, b"{}").unwrap();
    assert_inspect_fails(
        &arg(&layout),
        &[&format!(
            "has 2 bytes, but its descriptor says {}",
            summary.index.size()
        )],
    );

    // index.json that is not JSON.
    std::fs::write(layout.join("index.json"), b"{\"manifests\": [").unwrap();
    assert_inspect_fails(&arg(&layout), &["index.json` is not a valid image index"]);

    // No oci-layout file.
    std::fs::remove_file(layout.join("oci-layout")).unwrap();
    assert_inspect_fails(
        &arg(&layout),
        &["is not an OCI image layout: it has no `oci-layout` file"],
    );

    // Not there at all.
    assert_inspect_fails(&arg(&dir.path().join("missing")), &["it does not exist"]);
}

#[test]
fn layout_paths_may_contain_colons() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = sample_layout(dir.path(), "app:v1", "latest");
    // The whole string is an existing path: the default tag.
    let (code, out, err) = run(&["inspect", &arg(&layout)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("{}:latest", arg(&layout))),
        "{out}"
    );
    // Split at the last colon.
    let (code, _, err) = run(&["inspect", &format!("{}:latest", arg(&layout))]);
    assert_eq!(code, 0, "{err}");
}

/// skopeo copies the bundle to a real registry and back without changing a byte of the
/// index, and reads it there.
#[test]
fn registry_round_trip_keeps_the_index_digest() {
    if require("skopeo").is_none() {
        return;
    }
    let Some((registry, dir)) = registry_and_tempdir() else {
        return;
    };
    let (layout, summary) = sample_layout(dir.path(), "app", "v1");
    let index_bytes = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(summary.index.digest().digest()),
    )
    .unwrap();

    // Sign it so the signature travels too.
    let (key, public) = key_pair(dir.path(), "k");
    pack()
        .args(["sign", &format!("{}:v1", arg(&layout)), "--key", &arg(&key)])
        .assert()
        .success();
    let sig_tag = format!("sha256-{}.sig", summary.index.digest().digest());
    // The referrers (the index's signature bundle, each native manifest's compile
    // provenance) travel under their referrers tags, `sha256-<hex>`.
    let index = layout_index(&layout);
    let referrer_tags: Vec<String> = tags(&index)
        .into_iter()
        .filter(|t| t.starts_with("sha256-") && !t.ends_with(".sig"))
        .map(str::to_string)
        .collect();
    assert!(referrer_tags.len() >= 3, "{index}");
    // The bundle, its signature and its referrers.
    let mut travelling = vec!["v1".to_string(), sig_tag];
    travelling.extend(referrer_tags);
    let remote = |tag: &str| registry.docker_ref(&format!("pack/app:{tag}"));
    for tag in &travelling {
        skopeo(&[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &oci_ref(&layout, tag),
            &remote(tag),
        ]);
    }

    // The registry serves the index byte for byte.
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &remote("v1")]);
    assert_eq!(raw, index_bytes);
    let raw: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 3);

    // And back into a new layout: same digest, and pack reads, verifies and signs it.
    let back = dir.path().join("back");
    for tag in &travelling {
        skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &remote(tag),
            &oci_ref(&back, tag),
        ]);
    }
    assert_eq!(
        index_digest(&back, "v1"),
        summary.index.digest().to_string()
    );
    let (code, out, err) = run(&["inspect", &format!("{}:v1", arg(&back)), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v = json_str(&out);
    assert_eq!(v["index"]["digest"], summary.index.digest().to_string());
    assert_eq!(v["manifests"].as_array().unwrap().len(), 3);
    let (code, _, err) = run(&[
        "verify",
        &format!("{}:v1", arg(&back)),
        "--key",
        &arg(&public),
    ]);
    assert_eq!(code, 0, "{err}");
}
