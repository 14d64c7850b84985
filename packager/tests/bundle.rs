//! Building bundles: document shapes, schemas, reproducibility, atomicity.

mod common;

use std::fs;

use common::{blob_json, check_layout, read_json, sample_input};
use pack_packager::{BlobSource, Bundle, Error, Layout, build_bundle};

#[test]
fn builds_a_valid_bundle_with_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample_input(dir.path());
    let root = dir.path().join("out/bundle");
    let summary = build_bundle(&root, "v1", &input).unwrap();
    assert_eq!(summary.tag, "v1");
    assert_eq!(summary.layout, root);
    assert_eq!(summary.natives.len(), 2);
    // index, portable manifest + config, component, 2 x (manifest, config, cwasm).
    assert_eq!(summary.blobs_written, 10);
    assert_eq!(check_layout(&root), 10);

    // index.json: one tagged entry.
    let index_json = read_json(&root.join("index.json"));
    let entries = index_json["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(entries[0]["digest"], summary.index.digest().to_string());

    // The image index: portable first, then natives ordered by platform.
    let (text, index) = blob_json(&root, summary.index.digest().as_ref());
    assert!(
        !text.contains('\n') && !text.contains(": "),
        "canonical JSON: {text}"
    );
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        index["annotations"]["org.opencontainers.image.version"],
        "1.0.0"
    );
    assert!(
        index["annotations"]
            .get("org.opencontainers.image.created")
            .is_none()
    );
    let manifests = index["manifests"].as_array().unwrap();
    let platforms: Vec<String> = manifests
        .iter()
        .map(|m| {
            let p = &m["platform"];
            format!(
                "{}/{}{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap(),
                p.get("variant")
                    .map(|v| format!("/{}", v.as_str().unwrap()))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(platforms, ["wasip2/wasm", "linux/amd64/v3", "linux/arm64"]);
    assert!(manifests[0].get("annotations").is_none());
    assert_eq!(
        manifests[1]["annotations"],
        serde_json::json!({
            "dev.pack.cpu": "x86-64-v3",
            "dev.pack.target": "x86_64-unknown-linux-gnu",
            "dev.pack.wasmtime.compatibility-hash": "fedcba9876543210",
            "dev.pack.wasmtime.version": "48.0.8",
        })
    );

    // The portable manifest and its config (the Wasm OCI Artifact layout).
    let (_, portable) = blob_json(&root, manifests[0]["digest"].as_str().unwrap());
    assert_eq!(
        portable["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = portable["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    let component_digest = layers[0]["digest"].as_str().unwrap().to_string();
    let (config_text, _) = blob_json(&root, portable["config"]["digest"].as_str().unwrap());
    assert_eq!(
        config_text,
        format!(
            r#"{{"architecture":"wasm","component":{{"exports":["wasi:cli/run@0.2.0"],"imports":["wasi:cli/stdout@0.2.0","wasi:io/streams@0.2.0"],"target":"wasi:cli/command@0.2.0"}},"created":"1970-01-01T00:00:00Z","layerDigests":["{component_digest}"],"os":"wasip2"}}"#
        )
    );

    // A native manifest: cwasm layer, then the same component blob.
    let (_, native) = blob_json(&root, manifests[1]["digest"].as_str().unwrap());
    assert_eq!(
        native["config"]["mediaType"],
        "application/vnd.pack.native.config.v1+json"
    );
    let layers = native["layers"].as_array().unwrap();
    assert_eq!(layers[0]["mediaType"], "application/vnd.pack.cwasm.v1");
    assert_eq!(layers[1]["mediaType"], "application/wasm");
    assert_eq!(layers[1]["digest"], component_digest.as_str());
    let (_, config) = blob_json(&root, native["config"]["digest"].as_str().unwrap());
    assert_eq!(
        config,
        serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "variant": "v3",
            "wasmtimeVersion": "48.0.8",
            "compatibilityHash": "fedcba9876543210",
            "targetTriple": "x86_64-unknown-linux-gnu",
            "cpuPreset": "x86-64-v3",
            "cpuFlags": ["+avx2", "+bmi2", "+fma"],
            "profile": {"name": "release", "optLevel": "speed"},
            "sourceDigest": component_digest,
            "world": "wasi:cli/command@0.2.0",
        })
    );

    // No temporary files left in the layout or next to it.
    for dir in [root.as_path(), root.parent().unwrap()] {
        for entry in fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(!name.to_string_lossy().starts_with(".pack-"), "{name:?}");
        }
    }
}

#[test]
fn same_inputs_give_the_same_index_digest_anywhere() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut input_b = sample_input(b.path());
    // Input order of the natives does not matter.
    input_b.natives.reverse();
    let one = build_bundle(&a.path().join("x"), "latest", &sample_input(a.path())).unwrap();
    let two = build_bundle(&b.path().join("elsewhere/y"), "other", &input_b).unwrap();
    assert_eq!(one.index.digest(), two.index.digest());
    assert_eq!(one.index.size(), two.index.size());

    // A creation time changes it, and is recorded where documented.
    let mut dated = sample_input(a.path());
    dated.created = Some("2024-01-02T03:04:05Z".into());
    let three = build_bundle(&a.path().join("z"), "latest", &dated).unwrap();
    assert_ne!(three.index.digest(), one.index.digest());
    let layout = Layout::open(a.path().join("z")).unwrap();
    let bundle = Bundle::read(&layout, "latest").unwrap();
    assert_eq!(
        bundle.index.annotations().as_ref().unwrap()["org.opencontainers.image.created"],
        "2024-01-02T03:04:05Z"
    );
    let portable = bundle.portable.as_ref().unwrap();
    assert_eq!(
        portable.config.created.as_deref(),
        Some("2024-01-02T03:04:05Z")
    );
    assert_eq!(
        portable.manifest.annotations().as_ref().unwrap()["org.opencontainers.image.created"],
        "2024-01-02T03:04:05Z"
    );
}

#[test]
fn building_into_an_existing_layout_adds_or_replaces_the_tag_and_shares_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("layout");
    let input = sample_input(dir.path());
    let first = build_bundle(&root, "v1", &input).unwrap();
    let again = build_bundle(&root, "v2", &input).unwrap();
    assert_eq!(again.blobs_written, 0);
    assert_eq!(again.blobs_reused, 10);
    assert_eq!(again.index.digest(), first.index.digest());

    let mut changed = input.clone();
    changed.natives[0].cwasm = BlobSource::Bytes(b"other aarch64 cwasm".to_vec());
    let third = build_bundle(&root, "v1", &changed).unwrap();
    // A new cwasm, its manifest and a new index; the config and component are shared.
    assert_eq!(third.blobs_written, 3, "{third:?}");
    let layout = Layout::open(&root).unwrap();
    let tags: Vec<_> = layout.tags().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(tags, ["v1", "v2"]);
    assert_eq!(layout.resolve("v1").unwrap().digest(), third.index.digest());
    assert_eq!(layout.resolve("v2").unwrap().digest(), first.index.digest());
    check_layout(&root);
}

#[test]
fn a_failed_build_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = sample_input(dir.path());
    input.natives[1].cwasm = BlobSource::File(dir.path().join("missing.cwasm"));
    input.natives[1].cwasm_sha256 = None;
    let root = dir.path().join("new");
    let err = build_bundle(&root, "latest", &input).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing.cwasm"), "{err}");
    assert!(!root.exists());
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".pack-")), "{names:?}");

    // In an existing layout, index.json is untouched.
    let good = sample_input(dir.path());
    build_bundle(&root, "latest", &good).unwrap();
    let before = fs::read(root.join("index.json")).unwrap();
    assert!(build_bundle(&root, "next", &input).is_err());
    assert_eq!(fs::read(root.join("index.json")).unwrap(), before);
}

#[test]
fn input_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("l");

    let mut wrong_digest = sample_input(dir.path());
    wrong_digest.natives[1].cwasm_sha256 = Some("00".repeat(32));
    let err = build_bundle(&root, "latest", &wrong_digest).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("app.x86_64.cwasm"), "{err}");

    let mut duplicate = sample_input(dir.path());
    let copy = duplicate.natives[0].clone();
    duplicate.natives.push(copy);
    let err = build_bundle(&root, "latest", &duplicate).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");

    let err = build_bundle(&root, "not/a/tag", &sample_input(dir.path())).unwrap_err();
    assert!(matches!(err, Error::InvalidTag { .. }), "{err}");

    // A directory with other things in it is not turned into a layout.
    fs::create_dir(&root).unwrap();
    fs::write(root.join("notes.txt"), "mine").unwrap();
    let err = build_bundle(&root, "latest", &sample_input(dir.path())).unwrap_err();
    assert!(matches!(err, Error::CannotCreate { .. }), "{err}");
    // An empty directory is fine.
    fs::remove_file(root.join("notes.txt")).unwrap();
    build_bundle(&root, "latest", &sample_input(dir.path())).unwrap();
}

#[test]
fn bundles_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("l");
    let summary = build_bundle(&root, "latest", &sample_input(dir.path())).unwrap();
    let layout = Layout::open(&root).unwrap();
    let bundle = Bundle::read(&layout, "latest").unwrap();
    assert_eq!(bundle.descriptor.digest(), summary.index.digest());
    let portable = bundle.portable.as_ref().unwrap();
    assert_eq!(portable.config.os, "wasip2");
    assert_eq!(
        portable
            .config
            .component
            .as_ref()
            .unwrap()
            .target
            .as_deref(),
        Some("wasi:cli/command@0.2.0")
    );
    assert_eq!(portable.component.size(), common::COMPONENT.len() as u64);
    assert_eq!(bundle.natives.len(), 2);
    assert_eq!(
        bundle.natives[0].config.target_triple,
        "x86_64-unknown-linux-gnu"
    );
    assert_eq!(bundle.natives[0].config.variant.as_deref(), Some("v3"));
    assert_eq!(
        bundle.natives[0].component.as_ref().unwrap().digest(),
        portable.component.digest()
    );
    assert_eq!(bundle.blobs().len(), 10);
    bundle.verify_layers(&layout).unwrap();

    // A corrupted cwasm is found by verify_layers, naming the file and digest.
    let cwasm = &bundle.natives[1].cwasm;
    let path = layout.blob_path(cwasm.digest()).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 1;
    fs::write(&path, bytes).unwrap();
    let err = bundle.verify_layers(&layout).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(cwasm.digest().digest()), "{err}");

    // A tag that is not an index.
    layout
        .set_tag("raw", &bundle.natives[0].descriptor)
        .unwrap();
    let err = Bundle::read(&layout, "raw").unwrap_err();
    assert!(matches!(err, Error::NotABundle { .. }), "{err}");
}

#[test]
fn source_date_epoch_formats() {
    // Only this test touches the variable.
    // SAFETY: no other test in this binary reads or writes SOURCE_DATE_EPOCH.
    unsafe { std::env::set_var("SOURCE_DATE_EPOCH", "1700000000") };
    assert_eq!(
        pack_packager::bundle::source_date_epoch()
            .unwrap()
            .as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    unsafe { std::env::set_var("SOURCE_DATE_EPOCH", "soon") };
    assert!(matches!(
        pack_packager::bundle::source_date_epoch(),
        Err(Error::SourceDateEpoch { .. })
    ));
    unsafe { std::env::remove_var("SOURCE_DATE_EPOCH") };
    assert_eq!(pack_packager::bundle::source_date_epoch().unwrap(), None);
}

#[test]
fn the_schema_check_rejects_bad_documents() {
    // Through `$ref`s into defs-descriptor.json: a digest without an algorithm, and a
    // manifest without layers.
    let bad_descriptor =
        serde_json::json!({"mediaType": "application/wasm", "size": 1, "digest": "abc"});
    let bad_manifest = serde_json::json!({"schemaVersion": 2, "config": {"mediaType": "a/b", "size": 1, "digest": "sha256:00"}, "layers": []});
    for (schema, doc) in [
        ("content-descriptor.json", bad_descriptor),
        ("image-manifest-schema.json", bad_manifest),
    ] {
        let result = std::panic::catch_unwind(|| common::validate(schema, &doc));
        assert!(result.is_err(), "{schema} accepted {doc}");
    }
}
