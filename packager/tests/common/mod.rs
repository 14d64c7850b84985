//! Helpers shared by the packager's integration tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use pack_packager::oci_spec::image::{Arch, Os, Platform, PlatformBuilder};
use pack_packager::{BlobSource, BundleInput, Compilation, NativeArtifact, PortableConfig};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The OCI image-spec v1.1.1 JSON schemas (with their license) are kept next to the tests.
fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/image-spec-v1.1.1")
}

/// Resolves the schemas' `$ref`s (`defs-descriptor.json#...` against an `https://` id)
/// to the local files, by file name.
struct LocalSchemas;

impl jsonschema::Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.as_str().rsplit('/').next().unwrap_or_default();
        let name = name.split('#').next().unwrap_or_default();
        let text = std::fs::read_to_string(schema_dir().join(name))?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// Validates `doc` against one of the image-spec schemas (`image-index-schema.json`, ...).
pub fn validate(schema: &str, doc: &Value) {
    let text = std::fs::read_to_string(schema_dir().join(schema)).unwrap();
    let schema_value: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .with_retriever(LocalSchemas)
        .build(&schema_value)
        .unwrap_or_else(|e| panic!("schema {schema}: {e}"));
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{schema} rejects {doc}: {errors:#?}");
}

pub fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
    let mut builder = PlatformBuilder::default()
        .os(Os::from(os))
        .architecture(Arch::from(arch));
    if let Some(v) = variant {
        builder = builder.variant(v.to_string());
    }
    builder.build().unwrap()
}

pub const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0fake component bytes";

/// A bundle input: a component file in `dir` and two native artifacts (one from a file,
/// one from memory).
pub fn sample_input(dir: &Path) -> BundleInput {
    let component = dir.join("app.wasm");
    std::fs::write(&component, COMPONENT).unwrap();
    let cwasm = dir.join("app.x86_64.cwasm");
    std::fs::write(&cwasm, b"fake x86_64 cwasm").unwrap();
    BundleInput {
        component: BlobSource::File(component),
        component_sha256: None,
        portable: PortableConfig {
            exports: vec!["wasi:cli/run@0.2.0".into()],
            imports: vec![
                "wasi:cli/stdout@0.2.0".into(),
                "wasi:io/streams@0.2.0".into(),
            ],
            target_world: Some("wasi:cli/command@0.2.0".into()),
        },
        natives: vec![
            NativeArtifact {
                platform: platform("linux", "arm64", None),
                cwasm: BlobSource::Bytes(b"fake aarch64 cwasm".to_vec()),
                cwasm_sha256: None,
                compilation: Compilation {
                    wasmtime_version: "48.0.8".into(),
                    compatibility_hash: "0123456789abcdef".into(),
                    target_triple: "aarch64-unknown-linux-gnu".into(),
                    cpu_preset: None,
                    cpu_flags: vec![],
                    profile: serde_json::json!({"name": "release", "optLevel": "speed"}),
                },
            },
            NativeArtifact {
                platform: platform("linux", "amd64", Some("v3")),
                cwasm: BlobSource::File(cwasm),
                cwasm_sha256: Some(hex::encode(Sha256::digest(b"fake x86_64 cwasm"))),
                compilation: Compilation {
                    wasmtime_version: "48.0.8".into(),
                    compatibility_hash: "fedcba9876543210".into(),
                    target_triple: "x86_64-unknown-linux-gnu".into(),
                    cpu_preset: Some("x86-64-v3".into()),
                    cpu_flags: vec!["+avx2".into(), "+bmi2".into(), "+fma".into()],
                    profile: serde_json::json!({"name": "release", "optLevel": "speed"}),
                },
            },
        ],
        annotations: BTreeMap::from([(
            "org.opencontainers.image.version".to_string(),
            "1.0.0".to_string(),
        )]),
        created: None,
    }
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(root: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(root.join("blobs/sha256").join(hex)).unwrap()
}

/// The JSON blob `digest` of the layout at `root`: its text, and the document.
pub fn blob_json(root: &Path, digest: &str) -> (String, Value) {
    let text = String::from_utf8(blob(root, digest)).unwrap();
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

/// Checks a descriptor's size and digest against its blob and returns the blob.
fn check_descriptor(root: &Path, d: &Value) -> Vec<u8> {
    let digest = d["digest"].as_str().unwrap();
    let bytes = blob(root, digest);
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
        digest,
        "digest of {d}"
    );
    assert_eq!(
        bytes.len() as u64,
        d["size"].as_u64().unwrap(),
        "size of {d}"
    );
    bytes
}

/// Walks the whole layout from `index.json`: every document validates against its schema
/// and every blob has the digest and size its descriptor says. Returns how many blobs
/// were checked.
pub fn check_layout(root: &Path) -> usize {
    validate(
        "image-layout-schema.json",
        &read_json(&root.join("oci-layout")),
    );
    let index = read_json(&root.join("index.json"));
    validate("image-index-schema.json", &index);
    let mut seen = HashSet::new();
    for d in index["manifests"].as_array().unwrap() {
        check_tree(root, d, &mut seen);
    }
    seen.len()
}

fn check_tree(root: &Path, d: &Value, seen: &mut HashSet<String>) {
    validate("content-descriptor.json", d);
    let bytes = check_descriptor(root, d);
    seen.insert(d["digest"].as_str().unwrap().to_string());
    match d["mediaType"].as_str().unwrap() {
        "application/vnd.oci.image.index.v1+json" => {
            let doc: Value = serde_json::from_slice(&bytes).unwrap();
            validate("image-index-schema.json", &doc);
            assert!(doc.get("artifactType").is_none());
            for m in doc["manifests"].as_array().unwrap() {
                check_tree(root, m, seen);
            }
        }
        "application/vnd.oci.image.manifest.v1+json" => {
            let doc: Value = serde_json::from_slice(&bytes).unwrap();
            validate("image-manifest-schema.json", &doc);
            let config = &doc["config"];
            let config_bytes = check_descriptor(root, config);
            seen.insert(config["digest"].as_str().unwrap().to_string());
            if config["mediaType"] == "application/vnd.oci.image.config.v1+json" {
                validate(
                    "config-schema.json",
                    &serde_json::from_slice(&config_bytes).unwrap(),
                );
            }
            for layer in doc["layers"].as_array().unwrap() {
                validate("content-descriptor.json", layer);
                check_descriptor(root, layer);
                seen.insert(layer["digest"].as_str().unwrap().to_string());
            }
        }
        other => panic!("unexpected media type {other}"),
    }
}
