//! `pack build`: validate + compile + package + sign, end to end on real components.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn build(dir: &Path, args: &[&str]) -> std::process::Output {
    pack_in(dir).arg("build").args(args).output().unwrap()
}

/// `pack build ARGS --json` as `home`'s user; it must succeed. Returns its summary.
fn build_json(home: &Path, args: &[&str]) -> Value {
    build_json_by(&mut pack_in(home), args)
}

/// `pack build ARGS --json` run by `cmd`; it must succeed. Returns its summary.
fn build_json_by(cmd: &mut assert_cmd::Command, args: &[&str]) -> Value {
    let out = cmd.arg("build").args(args).arg("--json").output().unwrap();
    assert_exit(&out, 0);
    json_stdout(&out)
}

/// The text of the blob `digest` (a JSON string `sha256:<hex>`) of the layout `layout`.
fn blob_text(layout: &Path, digest: &Value) -> String {
    let hex = digest.as_str().unwrap().trim_start_matches("sha256:");
    std::fs::read_to_string(layout.join("blobs/sha256").join(hex)).unwrap()
}

#[test]
fn builds_a_signed_bundle_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_pair(d, "ci");
    let hello = fixture("components/hello-cli.wasm");
    let wit = fixture("wit/hello-cli");
    let args = [
        s(&hello),
        "--wit",
        s(&wit),
        "-t",
        "linux/amd64,linux/arm64",
        "-o",
        "out/hello",
        "--tag",
        "v1",
    ];
    let json = build_json(d, &[&args[..], &["--sign-key", "ci.key"]].concat());
    assert_eq!(json["tag"], "v1");
    assert_eq!(json["signed"], true);
    assert_eq!(json["world"], "fixtures:hello-cli/hello-cli@0.1.0");
    assert_eq!(
        strings_of(&json["platforms"], "platform"),
        ["wasip2/wasm", "linux/amd64", "linux/arm64"]
    );
    let digest = json["digest"].as_str().unwrap();

    // The tag points at that index, and the signature verifies with the public key.
    assert_eq!(index_digest(&d.join("out/hello"), "v1"), digest);
    let out = pack()
        .current_dir(d)
        .args(["verify", "out/hello:v1", "--key", "ci.pub"])
        .output()
        .unwrap();
    assert_exit(&out, 0);

    // Built again (unsigned) from the cache: no compilation, same digest.
    let again = build_json(d, &args);
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
    // calc for the two targets, in the order given, into the layout `out`.
    let calc_for = |targets: [&'static str; 2], out: &'static str| {
        vec![s(&calc), "-t", targets[0], "-t", targets[1], "-o", out]
    };
    let a = build_json(d, &calc_for(["linux/amd64/v3", "pulley64"], "a"));
    // The targets the other way round, into another layout, with another cache and one job.
    let mut args = calc_for(["pulley64", "linux/amd64/v3"], "elsewhere/b");
    args.extend(["--jobs", "1"]);
    let b = build_json_by(
        pack_in(d).env("PACK_CACHE_DIR", d.join("other-cache")),
        &args,
    );
    assert_eq!(a["digest"], b["digest"], "same inputs, same index digest");
    assert_eq!(b["compiled"], 2);
    // No wall-clock time anywhere unless asked for.
    let index = blob_text(&d.join("a"), &a["digest"]);
    assert!(
        !index.contains("org.opencontainers.image.created"),
        "{index}"
    );
    // SOURCE_DATE_EPOCH sets the creation time, and so changes the digest.
    let c = build_json_by(
        pack_in(d).env("SOURCE_DATE_EPOCH", "1700000000"),
        &calc_for(["linux/amd64/v3", "pulley64"], "c"),
    );
    assert_ne!(c["digest"], a["digest"]);
    let index = blob_text(&d.join("c"), &c["digest"]);
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
            s(&component),
            "--wit",
            s(&wit),
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
    let module = fixture("mismatch/core-module.wasm");
    let out = build(d, &[s(&module), "-t", "linux/amd64", "-o", "out"]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "core WebAssembly module");
    assert!(!d.join("out").exists());
    // Nothing left behind in the parent directory either.
    let names = file_names(d);
    assert!(
        !names.iter().any(|n| n.starts_with(".pack-build")),
        "{names:?}"
    );
}

#[test]
fn tags_share_blobs_in_one_layout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hello = fixture("components/hello-cli.wasm");
    let calc = fixture("components/calc.wasm");
    // `component` for linux/amd64 into the layout `out`, tagged `tag`.
    let build_tagged = |component: &Path, tag: &str| {
        build_json(
            d,
            &[s(component), "-t", "linux/amd64", "-o", "out", "--tag", tag],
        )
    };
    let first = build_tagged(&hello, "hello");
    let second = build_tagged(&calc, "calc");
    assert_ne!(first["digest"], second["digest"]);
    // Re-tagging hello with the same content writes no blob.
    let again = build_tagged(&hello, "hello");
    assert_eq!(again["blobsWritten"], 0);
    let index = layout_index(&d.join("out"));
    let tags = tags(&index);
    assert!(
        tags.contains(&"hello") && tags.contains(&"calc"),
        "{tags:?}"
    );
}
