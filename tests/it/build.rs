//! `pack build`: validate + compile + package + sign, end to end on real components.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn build(dir: &Path, args: &[&str]) -> std::process::Output {
    pack_in(dir).arg("build").args(args).output().unwrap()
}

fn build_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = build(dir, &all);
    assert_exit(&out, 0);
    json_stdout(&out)
}

#[test]
fn builds_a_signed_bundle_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_pair(d, "ci");
    let hello = fixture("components/hello-cli.wasm");
    let wit = fixture("wit/hello-cli");
    let json = build_json(
        d,
        &[
            hello.to_str().unwrap(),
            "--wit",
            wit.to_str().unwrap(),
            "-t",
            "linux/amd64,linux/arm64",
            "-o",
            "out/hello",
            "--tag",
            "v1",
            "--sign-key",
            "ci.key",
        ],
    );
    assert_eq!(json["tag"], "v1");
    assert_eq!(json["signed"], true);
    assert_eq!(json["world"], "fixtures:hello-cli/hello-cli@0.1.0");
    let platforms: Vec<&str> = json["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["wasip2/wasm", "linux/amd64", "linux/arm64"]);
    let digest = json["digest"].as_str().unwrap();

    // The tag points at that index, and the signature verifies with the public key.
    assert_eq!(index_digest(&d.join("out/hello"), "v1"), digest);
    let out = pack()
        .current_dir(d)
        .args(["verify", "out/hello:v1", "--key", "ci.pub"])
        .output()
        .unwrap();
    assert_exit(&out, 0);

    // Built again from the cache: no compilation, same digest.
    let again = build_json(
        d,
        &[
            hello.to_str().unwrap(),
            "--wit",
            wit.to_str().unwrap(),
            "-t",
            "linux/amd64,linux/arm64",
            "-o",
            "out/hello",
            "--tag",
            "v1",
        ],
    );
    assert_eq!(again["digest"], digest);
    assert_eq!(again["compiled"], 0);
    assert_eq!(again["cacheHits"], 2);
    assert_eq!(again["blobsWritten"], 0);
}

#[test]
fn reproducible_across_layouts_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let calc = fixture("components/calc.wasm");
    let a = build_json(
        d,
        &[
            calc.to_str().unwrap(),
            "-t",
            "linux/amd64/v3",
            "-t",
            "pulley64",
            "-o",
            "a",
        ],
    );
    let b = pack()
        .current_dir(d)
        .env("PACK_CACHE_DIR", d.join("other-cache"))
        .args([
            "build",
            calc.to_str().unwrap(),
            "-t",
            "pulley64",
            "-t",
            "linux/amd64/v3",
            "-o",
            "elsewhere/b",
            "--json",
            "--jobs",
            "1",
        ])
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", stderr(&b));
    let b: Value = json_stdout(&b);
    assert_eq!(a["digest"], b["digest"], "same inputs, same index digest");
    assert_eq!(b["compiled"], 2);
    // No wall-clock time anywhere unless asked for.
    let index = std::fs::read_to_string(
        d.join("a/blobs/sha256")
            .join(a["digest"].as_str().unwrap().trim_start_matches("sha256:")),
    )
    .unwrap();
    assert!(
        !index.contains("org.opencontainers.image.created"),
        "{index}"
    );
    // SOURCE_DATE_EPOCH sets the creation time, and so changes the digest.
    let out = pack()
        .current_dir(d)
        .env("PACK_CACHE_DIR", d.join("cache"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args([
            "build",
            calc.to_str().unwrap(),
            "-t",
            "linux/amd64/v3",
            "-t",
            "pulley64",
            "-o",
            "c",
            "--json",
        ])
        .output()
        .unwrap();
    let c: Value = json_stdout(&out);
    assert_ne!(c["digest"], a["digest"]);
    let index = std::fs::read_to_string(
        d.join("c/blobs/sha256")
            .join(c["digest"].as_str().unwrap().trim_start_matches("sha256:")),
    )
    .unwrap();
    assert!(index.contains("2023-11-14T22:13:20Z"), "{index}");
}

#[test]
fn a_component_that_does_not_conform_builds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let component = fixture("mismatch/type-param.wasm");
    let wit = fixture("wit/calc");
    let out = build(
        d,
        &[
            component.to_str().unwrap(),
            "--wit",
            wit.to_str().unwrap(),
            "--world",
            "calc",
            "-t",
            "linux/amd64",
            "-o",
            "out",
        ],
    );
    assert_exit(&out, 1);
    assert_stdout_has(&out, "param a: expected u64, found u32");
    assert!(!d.join("out").exists(), "no layout is written");
    // Bad input exits 2, like `pack validate`.
    let out = build(
        d,
        &[
            fixture("mismatch/core-module.wasm").to_str().unwrap(),
            "-t",
            "linux/amd64",
            "-o",
            "out",
        ],
    );
    assert_exit(&out, 2);
    assert_stderr_has(&out, "core WebAssembly module");
    assert!(!d.join("out").exists());
    // Nothing left behind in the parent directory either.
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".pack-build"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn tags_share_blobs_in_one_layout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hello = fixture("components/hello-cli.wasm");
    let calc = fixture("components/calc.wasm");
    let first = build_json(
        d,
        &[
            hello.to_str().unwrap(),
            "-t",
            "linux/amd64",
            "-o",
            "out",
            "--tag",
            "hello",
        ],
    );
    let second = build_json(
        d,
        &[
            calc.to_str().unwrap(),
            "-t",
            "linux/amd64",
            "-o",
            "out",
            "--tag",
            "calc",
        ],
    );
    assert_ne!(first["digest"], second["digest"]);
    // Re-tagging hello with the same content writes no blob.
    let again = build_json(
        d,
        &[
            hello.to_str().unwrap(),
            "-t",
            "linux/amd64",
            "-o",
            "out",
            "--tag",
            "hello",
        ],
    );
    assert_eq!(again["blobsWritten"], 0);
    let index = layout_index(&d.join("out"));
    let tags = tags(&index);
    assert!(
        tags.contains(&"hello") && tags.contains(&"calc"),
        "{tags:?}"
    );
}
