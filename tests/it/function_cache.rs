//! The function-level compile cache: the next version of an app compiles only what
//! changed, locally and through a registry, into the same bytes as a cold compile.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::*;
use crate::registry::Registry;
use crate::shared_cache::{cache_info, sources, summary};

/// `pack compile` with its own cache directory (`None`: no cache at all).
fn compile(input: &Path, targets: &str, out: &Path, cache: Option<&Path>) -> Value {
    let mut cmd = pack();
    cmd.env("PACK_CACHE_SECRET", "the function cache tests' secret")
        .arg("compile")
        .arg(input)
        .args(["-t", targets, "-o"])
        .arg(out)
        .arg("--json");
    match cache {
        Some(dir) => cmd.arg("--cache-dir").arg(dir),
        None => cmd.arg("--no-cache"),
    };
    let output = cmd.output().unwrap();
    assert_exit(&output, 0);
    json_stdout(&output)
}

fn artifacts(report: &Value) -> &Vec<Value> {
    report["artifacts"].as_array().unwrap()
}

fn bytes_of(dir: &Path, artifact: &Value) -> Vec<u8> {
    std::fs::read(dir.join(artifact["file"].as_str().unwrap())).unwrap()
}

/// The Python app's two versions (same code, other data): v2 after v1 takes nearly every
/// function from the cache, and its artifact is byte for byte that of a cold compile of
/// v2 without any cache. One target, to keep the test short: every target is compared
/// on a smaller pair by the compiler's tests, and on this pair by `bench/compile.sh`.
#[test]
fn the_next_version_of_an_app_compiles_only_what_changed_into_the_same_bytes() {
    let (Some(v1), Some(v2)) = (corpus("py-app-v1"), corpus("py-app-v2")) else {
        return;
    };
    let dir = shared_tempdir();
    let cache = dir.path().join("cache");
    let target = "linux/amd64";
    let one = compile(&v1, target, &dir.path().join("v1"), Some(&cache));
    let (warm, cold) = (dir.path().join("v2"), dir.path().join("cold"));
    let two = compile(&v2, target, &warm, Some(&cache));
    let reference = compile(&v2, target, &cold, None);
    assert_eq!(artifacts(&two).len(), 1);
    for ((a, b), c) in artifacts(&one)
        .iter()
        .zip(artifacts(&two))
        .zip(artifacts(&reference))
    {
        let target = &b["target"];
        let (filled, used) = (&a["functions"], &b["functions"]);
        assert!(
            filled["compiled"].as_u64().unwrap() > 10_000,
            "{target}: {a}"
        );
        assert_eq!(b["cacheHit"], false, "{target}: another component");
        // Nearly every function is found (a few get other Cranelift IR from one
        // compile to the next, for the same code).
        let cached = used["cached"].as_u64().unwrap();
        assert!(cached > 10_000, "{target}: {used}");
        assert!(
            used["compiled"].as_u64().unwrap() * 10 <= cached,
            "{target}: {used}"
        );
        // Every function is looked up once, in both versions.
        assert_eq!(
            used["compiled"].as_u64().unwrap() + cached,
            filled["compiled"].as_u64().unwrap() + filled["cached"].as_u64().unwrap(),
            "{target}: {filled} then {used}"
        );
        assert_eq!(filled["cached"], 0, "{target}: an empty cache: {filled}");
        assert!(c.get("functions").is_none(), "{c}");
        assert_eq!(
            b["sha256"], c["sha256"],
            "{target}: from the function cache"
        );
        assert!(
            bytes_of(&warm, b) == bytes_of(&cold, c),
            "{target}: the artifacts differ"
        );
    }

    // `pack cache` counts the segments, and `prune --older-than` removes unused ones.
    let info = cache_info(&cache);
    assert_eq!(info["functionSegments"], 1, "{info}");
    assert!(
        info["functionBytes"].as_u64().unwrap() > 1_000_000,
        "{info}"
    );
    let out = pack()
        .args(["cache", "prune", "--older-than", "0s", "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    assert_stdout_has(&out, "and the function cache of 1 target(s)");
    assert_eq!(cache_info(&cache)["functionSegments"], 0);
}

/// `hello-cli` with a custom section appended: another component (another artifact
/// cache key) with the same functions.
fn next_version(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(fixture("components/hello-cli.wasm")).unwrap();
    let (name, payload) = (&b"pack-test"[..], &b"v2"[..]);
    bytes.extend([0, (1 + name.len() + payload.len()) as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.extend(payload);
    write(dir, "hello-v2.wasm", bytes)
}

fn build(home: &Path, component: &Path, extra: &[&str]) -> Output {
    pack_in(home)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .arg("build")
        .arg(component)
        .args(["-t", "linux/amd64,linux/arm64", "-o", "out/app"])
        .args(extra)
        .output()
        .unwrap()
}

/// [`build`] with `--json` through the shared cache `repo`, with `key_flag`
/// (`--cache-key` or `--cache-trust`) `key`.
fn build_through(home: &Path, component: &Path, repo: &str, key_flag: &str, key: &Path) -> Output {
    build(
        home,
        component,
        &["--json", "--cache-repo", repo, key_flag, s(key)],
    )
}

/// The segment layer of every function cache entry of `repo` in the registry's storage,
/// with bytes flipped in its middle (same length): the signature over the manifest
/// still verifies, the layer no longer matches its digest.
fn tamper_with_segments(registry: &Registry, repo: &str) -> usize {
    let tags = registry
        .storage()
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_manifests/tags");
    let mut tampered = 0;
    for tag in std::fs::read_dir(&tags).unwrap() {
        let tag = tag.unwrap().path();
        if !tag
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pack-functions-v1-")
        {
            continue;
        }
        let manifest = std::fs::read_to_string(tag.join("current/link")).unwrap();
        let manifest = read_json(&registry.blob_file(manifest.trim()));
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        flip_middle_byte(&registry.blob_file(layer));
        tampered += 1;
    }
    tampered
}

/// Asserts that the build that gave `out` took no function from the shared function cache,
/// warned that it ignored the function cache of `platform`, and made the bundle `digest`.
#[track_caller]
fn assert_segments_refused(out: &Output, platform: &str, digest: &Value) {
    let json = summary(out);
    assert_eq!(json["functionSegmentsFetched"], 0, "{json}");
    for native in json["platforms"].as_array().unwrap().iter().skip(1) {
        assert_eq!(native["functions"]["cached"], 0, "{native}");
    }
    assert_stderr_has(
        out,
        format!("ignoring the shared function cache of {platform}"),
    );
    assert_eq!(&json["digest"], digest);
}

/// Runner 2, with an empty local cache, builds v2 after runner 1 built v1: it fetches
/// runner 1's functions (signed, verified) and compiles none, into the bundle a cold
/// build makes. A segment signed by another key, or changed in the registry, is not
/// used.
#[test]
fn a_runner_with_an_empty_cache_takes_the_functions_another_runner_compiled() {
    let Some((registry, dir)) = registry_and_tempdir() else {
        return;
    };
    let (key, public) = key_pair(dir.path(), "cache");
    let (other_key, _) = key_pair(dir.path(), "other");
    let v1 = fixture("components/hello-cli.wasm");
    let v2 = next_version(dir.path());
    let repo = format!("{}/team/pack-cache", registry.addr());
    let k = "--cache-key";

    let runner1 = tempfile::tempdir().unwrap();
    let one = summary(&build_through(runner1.path(), &v1, &repo, k, &key));
    assert_eq!(one["functionSegmentsPushed"], 2, "{one}");

    let runner2 = tempfile::tempdir().unwrap();
    let out = build_through(runner2.path(), &v2, &repo, k, &public);
    let two = summary(&out);
    assert_eq!(two["functionSegmentsFetched"], 2, "{two}");
    assert_eq!(sources(&two), ["compiled", "compiled"], "{two}");
    for platform in two["platforms"].as_array().unwrap().iter().skip(1) {
        let cached = platform["functions"]["cached"].as_u64().unwrap();
        assert!(cached > 100, "{platform}");
        assert!(
            platform["functions"]["compiled"].as_u64().unwrap() * 5 <= cached,
            "{platform}"
        );
    }
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    // The same bundle as a cold build of v2 without any cache.
    let cold = tempfile::tempdir().unwrap();
    let out = build(cold.path(), &v2, &["--json", "--no-cache"]);
    assert_eq!(summary(&out)["digest"], two["digest"]);

    // Changed in the registry: refused, every function compiled, the same bundle.
    assert_eq!(tamper_with_segments(&registry, "team/pack-cache"), 2);
    let runner3 = tempfile::tempdir().unwrap();
    let out = build_through(runner3.path(), &v2, &repo, k, &public);
    assert_segments_refused(&out, "linux/arm64", &two["digest"]);

    // Another key's segment is refused, and every function compiled.
    let repo2 = format!("{}/team/other-cache", registry.addr());
    let theirs = tempfile::tempdir().unwrap();
    let pushed = build_through(theirs.path(), &v1, &repo2, k, &other_key);
    assert_eq!(summary(&pushed)["functionSegmentsPushed"], 2);
    let victim = tempfile::tempdir().unwrap();
    let out = build_through(victim.path(), &v2, &repo2, "--cache-trust", &public);
    assert_segments_refused(&out, "linux/amd64", &two["digest"]);
}

/// What the function cache did is in the CI log and the human summary.
#[test]
fn builds_report_functions_compiled_and_cached_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = next_version(dir.path());
    let out = build(dir.path(), &fixture("components/hello-cli.wasm"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ci = |out: &Output| {
        assert!(out.status.success(), "{}", stderr(out));
        (stdout(out), stderr(out))
    };
    let out = pack_in(dir.path())
        .env("CI", "true")
        .arg("build")
        .arg(&v2)
        .args(["-t", "linux/amd64", "-o", "out/app"])
        .output()
        .unwrap();
    let (result, log) = ci(&out);
    assert!(
        log.lines()
            .any(|l| l.starts_with("linux/amd64: compiled in")
                && l.contains(" functions compiled, ")
                && l.ends_with(" from the function cache")),
        "{log}"
    );
    assert!(
        result.contains("linux/amd64: compiled (") && result.contains(" from the function cache)"),
        "{result}"
    );
}
