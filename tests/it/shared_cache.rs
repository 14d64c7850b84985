//! `pack build --cache-repo`: a compile cache shared through a real registry. Two
//! directories stand for two CI runners, each with its own local compile cache.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common::*;
use crate::registry::Registry;

/// A CI runner: its own home, local compile cache and output.
struct Runner {
    dir: tempfile::TempDir,
}

impl Runner {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn build(&self, component: &Path, targets: &str, repo: &str, key: &Path) -> Output {
        self.build_with(component, targets, repo, key, &[])
    }

    fn build_with(
        &self,
        component: &Path,
        targets: &str,
        repo: &str,
        key: &Path,
        extra: &[&str],
    ) -> Output {
        pack_in(self.path())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg("build")
            .arg(component)
            .args(["-t", targets, "-o", "out/app", "--json"])
            .args(["--cache-repo", repo, "--cache-key"])
            .arg(key)
            .args(extra)
            .output()
            .unwrap()
    }
}

pub(crate) fn summary(out: &Output) -> Value {
    assert_exit(out, 0);
    json_stdout(out)
}

/// The `source` of every native platform, in order.
pub(crate) fn sources(json: &Value) -> Vec<String> {
    json["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["source"].is_null())
        .map(|p| p["source"].as_str().unwrap().to_string())
        .collect()
}

/// `pack cache info --json` of the local compile cache `cache`.
pub(crate) fn cache_info(cache: &Path) -> Value {
    let out = pack()
        .args(["cache", "info", "--json", "--cache-dir"])
        .arg(cache)
        .output()
        .unwrap();
    json_stdout(&out)
}

/// Asserts that the build that gave `out` warned that it ignored the shared cache entry
/// for linux/amd64, saying `why`.
#[track_caller]
pub(crate) fn assert_amd64_entry_ignored(out: &Output, why: &str) {
    let err = stderr(out);
    assert!(
        err.contains("warning: ignoring the shared cache entry for linux/amd64")
            && err.contains(why),
        "no `{why}` in the warning: {err}"
    );
}

#[test]
fn a_second_runner_compiles_nothing_and_builds_the_same_bundle() {
    let Some((registry, keys)) = registry_and_tempdir() else {
        return;
    };
    let Some(py) = corpus("py-cli") else {
        return;
    };
    let (key, _) = key_pair(keys.path(), "cache");
    let repo = format!("{}/team/pack-cache", registry.addr());
    // Two architectures keep the test short on a 2-core machine; every target goes
    // through the same code.
    let targets = "linux/amd64,linux/arm64";

    let first = Runner::new();
    let one = summary(&first.build(&py, targets, &repo, &key));
    assert_eq!(one["compiled"], 2, "{one}");
    assert_eq!(one["registryHits"], 0, "{one}");
    assert_eq!(one["cachePushed"], 2, "{one}");
    assert_eq!(sources(&one), ["compiled", "compiled"]);

    let second = Runner::new();
    let out = second.build(&py, targets, &repo, &key);
    let two = summary(&out);
    assert_eq!(two["compiled"], 0, "{two}\n{}", stderr(&out));
    assert_eq!(two["registryHits"], 2, "{two}");
    assert_eq!(sources(&two), ["registry", "registry"]);
    assert_eq!(two["cachePushed"], 0, "nothing was missing: {two}");
    assert_eq!(two["digest"], one["digest"], "the same bundle");
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // The fetched artifacts went into the second runner's local cache: a third build
    // there needs neither Cranelift nor the registry's artifacts.
    let out = second.build(&py, targets, &repo, &key);
    let three = summary(&out);
    assert_eq!(sources(&three), ["local-cache", "local-cache"]);
    assert_eq!(three["digest"], one["digest"]);
}

#[test]
fn entries_signed_by_another_key_or_tampered_with_are_compiled_instead() {
    let Some((registry, keys)) = registry_and_tempdir() else {
        return;
    };
    let hello = fixture("components/hello-cli.wasm");
    let (ours, ours_public) = key_pair(keys.path(), "ours");
    let (theirs, _) = key_pair(keys.path(), "theirs");
    let repo = format!("{}/pack-cache", registry.addr());
    let target = "linux/amd64";

    // Someone else's key filled the cache.
    let other = Runner::new();
    let made = summary(&other.build(&hello, target, &repo, &theirs));
    assert_eq!(made["cachePushed"], 1);

    // Its entry does not verify with our key: a warning, and the target is compiled
    // (then our own entry replaces it).
    let runner = Runner::new();
    let out = runner.build(&hello, target, &repo, &ours);
    let json = summary(&out);
    assert_eq!(sources(&json), ["compiled"], "{json}");
    assert_eq!(json["digest"], made["digest"]);
    assert_amd64_entry_ignored(&out, "made by another key");
    assert_eq!(json["cachePushed"], 1);
    let reader = Runner::new();
    let json = summary(&reader.build(&hello, target, &repo, &ours_public));
    assert_eq!(
        sources(&json),
        ["registry"],
        "our entry is there now: {json}"
    );

    // A public key reads the cache and pushes nothing: a new target is compiled, and
    // stays missing from the registry.
    let json = summary(&reader.build(&hello, "linux/amd64,linux/arm64", &repo, &ours_public));
    assert_eq!(sources(&json), ["local-cache", "compiled"], "{json}");
    assert_eq!(json["cachePushed"], 0);
    let json = summary(&Runner::new().build(&hello, "linux/arm64", &repo, &ours_public));
    assert_eq!(sources(&json), ["compiled"], "{json}");

    // Flip bytes of the artifact in the registry's storage (same length): the signature
    // still verifies, the layer does not match its digest, and the target is compiled.
    let cwasm = cwasm_digest(&runner.path().join("out/app"));
    flip_middle_byte(&registry.blob_file(&cwasm));

    let victim = Runner::new();
    let out = victim.build(&hello, target, &repo, &ours);
    let json = summary(&out);
    assert_eq!(sources(&json), ["compiled"], "{json}\n{}", stderr(&out));
    assert_eq!(
        json["digest"], made["digest"],
        "the tampered bytes were not used"
    );
    assert_amd64_entry_ignored(&out, &cwasm);
    // Nothing of the tampered entry reached the local cache.
    let info = cache_info(&victim.path().join("cache"));
    assert_eq!(info["entries"], 1, "only the compiled artifact: {info}");
}

#[test]
fn an_unreachable_cache_is_a_warning() {
    // A port nobody listens on: the first connection is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let keys = tempfile::tempdir().unwrap();
    let (key, _) = key_pair(keys.path(), "cache");
    let runner = Runner::new();
    let hello = fixture("components/hello-cli.wasm");
    let out = runner.build(&hello, "linux/amd64", &format!("{addr}/cache"), &key);
    let json = summary(&out);
    assert_eq!(sources(&json), ["compiled"]);
    assert_eq!(json["cachePushed"], 0);
    let err = stderr(&out);
    assert!(
        err.contains("warning: shared compile cache")
            && err.contains("is not used for the rest of this build"),
        "{err}"
    );

    // Bad flags are usage errors, before anything is compiled.
    let out = runner.build(&hello, "linux/amd64", &format!("{addr}/cache:v1"), &key);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "names a tag or digest");
    let out = runner.build(
        &hello,
        "linux/amd64",
        &format!("{addr}/cache"),
        &keys.path().join("missing.key"),
    );
    assert_exit(&out, 2);
    assert_stderr_has(&out, "missing.key");
}

#[test]
fn a_cache_registry_behind_a_private_ca_is_used_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, tls_key)) = crate::push_pull::test_ca(dir.path()) else {
        return;
    };
    let Some(registry) = Registry::start_with(&crate::registry::Options {
        tls: Some((cert, tls_key)),
        ..Default::default()
    }) else {
        return;
    };
    let (key, _) = key_pair(dir.path(), "cache");
    let hello = fixture("components/hello-cli.wasm");
    let repo = format!("{}/cache", registry.addr());

    // Not trusted without the CA, even on a loopback address: a warning that says what
    // to pass, and the build compiles.
    let out = Runner::new().build(&hello, "linux/amd64", &repo, &key);
    let json = summary(&out);
    assert_eq!(sources(&json), ["compiled"]);
    assert_eq!(json["cachePushed"], 0);
    assert_stderr_has(&out, "--cache-ca-cert");

    // With the CA: runner 1 pushes, runner 2 compiles nothing.
    let ca_arg = ["--cache-ca-cert", ca.to_str().unwrap()];
    let out = Runner::new().build_with(&hello, "linux/amd64", &repo, &key, &ca_arg);
    assert_eq!(summary(&out)["cachePushed"], 1, "{}", stderr(&out));
    let out = Runner::new().build_with(&hello, "linux/amd64", &repo, &key, &ca_arg);
    assert_eq!(sources(&summary(&out)), ["registry"], "{}", stderr(&out));

    // --cache-insecure accepts the certificate without the CA.
    let out = Runner::new().build_with(&hello, "linux/amd64", &repo, &key, &["--cache-insecure"]);
    assert_eq!(sources(&summary(&out)), ["registry"], "{}", stderr(&out));
}

/// The hex digest of the `.cwasm` of the only native manifest of `layout`'s bundle (its
/// content's, when the layer is compressed).
pub(crate) fn cwasm_digest(layout: &Path) -> String {
    let read = |digest: &str| blob_json(layout, digest);
    let top = layout_index(layout);
    let index = read(top["manifests"][0]["digest"].as_str().unwrap());
    let native = entry_where(&index, |m| m["platform"]["architecture"] == "amd64");
    let manifest = read(native["digest"].as_str().unwrap());
    let layer = &manifest["layers"][0];
    let digest = match layer["mediaType"].as_str().unwrap() {
        "application/vnd.pack.cwasm.v1" => layer["digest"].clone(),
        "application/vnd.pack.cwasm.v1+zstd" => {
            let config = read(manifest["config"]["digest"].as_str().unwrap());
            config["uncompressed"][layer["digest"].as_str().unwrap()]["digest"].clone()
        }
        other => panic!("a `{other}` layer"),
    };
    digest
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string()
}
