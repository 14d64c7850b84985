//! Compressed layers: `pack build` writes zstd frames in native manifests (and a plain
//! portable manifest), they travel through a real registry and skopeo unchanged, the host
//! keeps the decompressed artifact in its store, and frames that end early or expand past
//! what the signed config records are refused.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::common::*;
use crate::registry::Registry;

/// A key pair and the hello-cli fixture built (compressed, the default) for this
/// machine's platform as `hello` and signed, once.
fn built() -> &'static SignedHello {
    static BUILT: OnceLock<SignedHello> = OnceLock::new();
    BUILT.get_or_init(|| SignedHello::build("k", &[("hello", here())]))
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn put(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let digest = sha256(bytes);
    let path = blob(layout, &digest);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    (digest, bytes.len() as u64)
}

/// (index, native manifest entry position, manifest, config) of this host's platform.
fn native(layout: &Path) -> (Value, usize, Value, Value) {
    let index = blob_json(layout, &index_digest(layout, "latest"));
    let position = manifests(&index)
        .iter()
        .position(|m| m["platform"]["os"] == "linux")
        .unwrap();
    let manifest = blob_json(
        layout,
        index["manifests"][position]["digest"].as_str().unwrap(),
    );
    let config = blob_json(layout, manifest["config"]["digest"].as_str().unwrap());
    (index, position, manifest, config)
}

/// Replaces the `.cwasm` layer of this host's native manifest with `frame`, keeping what
/// the config records for its content, rewrites the config, manifest, index and
/// `index.json` to match, and signs the result with the trusted key: what a signer (or a
/// compromised build) could publish.
fn replace_cwasm_frame(layout: &Path, frame: &[u8]) {
    let (mut index, position, mut manifest, mut config) = native(layout);
    let old = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (digest, size) = put(layout, frame);
    let content = config["uncompressed"]
        .as_object_mut()
        .unwrap()
        .remove(&old)
        .unwrap();
    config["uncompressed"][&digest] = content;
    let (config_digest, config_size) = put(layout, &serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_size);
    manifest["layers"][0]["digest"] = json!(digest);
    manifest["layers"][0]["size"] = json!(size);
    let (manifest_digest, manifest_size) = put(layout, &serde_json::to_vec(&manifest).unwrap());
    index["manifests"][position]["digest"] = json!(manifest_digest);
    index["manifests"][position]["size"] = json!(manifest_size);
    let (index_digest, index_size) = put(layout, &serde_json::to_vec(&index).unwrap());
    let top = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": index_size,
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let out = pack()
        .arg("sign")
        .arg(format!("{}:latest", s(layout)))
        .arg("--key")
        .arg(&built().private)
        .output()
        .unwrap();
    assert!(out.status.success(), "pack sign: {}", stderr(&out));
}

/// Asserts that the fixture ran: its greeting is on `out`'s stdout (the panic shows the
/// stderr).
#[track_caller]
fn assert_ran(out: &Output) {
    assert!(stdout(out).contains(HELLO_RAN), "{}", stderr(out));
}

/// `pack run` of `layout` without verifying it.
fn run_unverified(layout: &Path) -> Output {
    pack()
        .args(["run", s(layout), "--insecure-skip-verify"])
        .output()
        .unwrap()
}

/// `pack build` of the hello-cli fixture for `targets` into `layout`, with `extra`
/// arguments and without the compile cache; it must succeed.
#[track_caller]
fn build_hello_uncached(layout: &Path, targets: &[&str], extra: &[&str]) {
    let mut cmd = pack();
    cmd.arg("build").arg(fixture("components/hello-cli.wasm"));
    for target in targets {
        cmd.args(["-t", target]);
    }
    let out = cmd
        .args(["-o", s(layout), "--no-cache"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "pack build: {}", stderr(&out));
}

#[track_caller]
fn refused(out: &Output, needle: &str) {
    assert_exit(out, 2);
    assert!(!stdout(out).contains(HELLO_RAN), "it ran: {}", stdout(out));
    assert!(
        stderr(out).contains(needle),
        "no {needle:?} in\n{}",
        stderr(out)
    );
}

/// The `.cwasm` of this host's manifest, decompressed.
fn cwasm_content(layout: &Path) -> Vec<u8> {
    let (_, _, manifest, config) = native(layout);
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let content = &config["uncompressed"][layer];
    let record = pack_packager::compression::Uncompressed {
        digest: content["digest"].as_str().unwrap().to_string(),
        size: content["size"].as_u64().unwrap(),
    };
    let frame = std::fs::read(blob(layout, layer)).unwrap();
    let mut out = Vec::new();
    pack_packager::compression::decompress(&frame[..], &mut out, &record, layout).unwrap();
    out
}

#[test]
fn build_writes_zstd_layers_only_in_native_manifests() {
    let b = built();
    let out = pack()
        .args(["inspect", "--json", s(b.layout("hello"))])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_stdout(&out);
    let manifests = v["manifests"].as_array().unwrap();
    let portable = manifests.iter().find(|m| m["kind"] == "portable").unwrap();
    assert_eq!(portable["component"]["mediaType"], "application/wasm");
    assert!(portable["component"]["uncompressedSize"].is_null());
    let entry = manifests.iter().find(|m| m["kind"] == "native").unwrap();
    let cwasm = &entry["cwasm"];
    assert_eq!(cwasm["mediaType"], "application/vnd.pack.cwasm.v1+zstd");
    let (size, full) = (
        cwasm["size"].as_u64().unwrap(),
        cwasm["uncompressedSize"].as_u64().unwrap(),
    );
    assert!(size * 2 < full, "{size} of {full}");
    assert_eq!(entry["component"]["mediaType"], "application/wasm+zstd");
    assert_eq!(
        entry["component"]["uncompressedDigest"],
        portable["component"]["digest"]
    );
    // The content recorded is what the frame holds.
    let content = cwasm_content(b.layout("hello"));
    assert_eq!(content.len() as u64, full);
    assert_eq!(
        sha256(&content),
        cwasm["uncompressedDigest"].as_str().unwrap()
    );

    // The same build again gives the same index (reproducible frames), and without
    // compression another one whose `.cwasm` layer is that content.
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("again");
    build_hello_uncached(&again, &[here()], &[]);
    assert_eq!(
        index_digest(&again, "latest"),
        index_digest(b.layout("hello"), "latest")
    );
    let plain = dir.path().join("plain");
    build_hello_uncached(&plain, &[here()], &["--no-compression"]);
    let (_, _, manifest, config) = native(&plain);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.pack.cwasm.v1"
    );
    assert_eq!(manifest["layers"][1]["mediaType"], "application/wasm");
    assert_eq!(manifest["layers"][0]["digest"], cwasm["uncompressedDigest"]);
    assert!(config.get("uncompressed").is_none(), "{config}");
    assert_ran(&run_unverified(&plain));
}

#[test]
fn compressed_bundles_round_trip_through_a_registry_and_skopeo() {
    let Some(registry) = registry_with_skopeo() else {
        return;
    };
    let b = built();
    let digest = index_digest(b.layout("hello"), "latest");
    let reference = format!("{}/team/hello:v1", registry.addr());
    pack_push(b.layout("hello"), &reference);

    // skopeo reads it back byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let back = dir.path().join("back");
    skopeo_pull(&registry, "team/hello:v1", &back, "latest");
    assert_eq!(index_digest(&back, "latest"), digest);
    let (_, _, manifest, _) = native(&back);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.pack.cwasm.v1+zstd"
    );
    assert_ran(&run_unverified(&back));

    // The host pulls it into its store, verifies and runs it, and keeps the
    // decompressed artifact there (read-only), named by the digest the config records.
    let store = dir.path().join("store");
    let out = built().run(&reference, &["--store", s(&store)]);
    assert_exit(&out, 0);
    assert_stdout_has(&out, HELLO_RAN);
    let content = cwasm_content(b.layout("hello"));
    let kept = blob(&store, &sha256(&content));
    assert_eq!(std::fs::read(&kept).unwrap(), content);
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
    assert_eq!(mode & 0o222 & !0o200, 0, "{mode:o}");
    // And runs it from there again.
    let out = built().run(&reference, &["--store", s(&store)]);
    assert_exit(&out, 0);
    assert_stdout_has(&out, HELLO_RAN);
}

#[test]
fn a_frame_that_ends_early_or_expands_too_far_is_refused() {
    let b = built();
    let content = cwasm_content(b.layout("hello"));
    let frame = pack_packager::compression::compress(&content, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A copy of the built layout at `dir/<name>` whose `.cwasm` layer is `frame`.
    let with_frame = |name: &str, frame: &[u8]| {
        let layout = dir.path().join(name);
        copy_layout(b.layout("hello"), &layout);
        replace_cwasm_frame(&layout, frame);
        layout
    };

    // The frame cut short.
    let truncated = with_frame("truncated", &frame[..frame.len() - 100]);
    refused(&built().run(s(&truncated), &[]), "ends after");

    // A frame that expands to the content and then 64 MiB of zeros: cut at the size the
    // config records and refused.
    let mut bomb = content.clone();
    bomb.resize(content.len() + (64 << 20), 0);
    let bomb = pack_packager::compression::compress(&bomb, 1).unwrap();
    assert!(bomb.len() < 4 << 20, "{}", bomb.len());
    let expanding = with_frame("bomb", &bomb);
    let out = built().run(s(&expanding), &[]);
    refused(&out, "expands past");
    refused(&out, "compressed layer");

    // The honest frame, rewritten the same way, runs.
    let honest = with_frame("honest", &frame);
    assert_ran(&built().run(s(&honest), &[]));
}

#[test]
fn a_store_blob_changed_after_its_verification_is_hashed_again_and_refused() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let b = built();
    let reference = format!("{}/team/hello-store:v1", registry.addr());
    pack_push(b.layout("hello"), &reference);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store_arg = ["--store", s(&store)];

    // The first start pulls and decompresses; the next one hashes the decompressed
    // artifact and records it (its file is settled by then); the one after runs it.
    for _ in 0..2 {
        assert_ran(&built().run(&reference, &store_arg));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let content = sha256(&cwasm_content(b.layout("hello")));
    let record = read_json(&store.join("verified.json"));
    let identity = &record["blobs"][&content];
    let kept = blob(&store, &content);
    assert_eq!(
        identity["size"].as_u64(),
        Some(std::fs::metadata(&kept).unwrap().len()),
        "{record}"
    );
    assert_ran(&built().run(&reference, &store_arg));

    // The owner changes one byte of it in place (same size, same inode): the record no
    // longer matches, so it is hashed, and refused.
    let mut bytes = std::fs::read(&kept).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&kept)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();
    refused(
        &built().run(&reference, &store_arg),
        "does not match its digest",
    );
}

/// The `os/arch` of an index entry.
fn platform_of(entry: &Value) -> String {
    let platform = &entry["platform"];
    format!(
        "{}/{}",
        platform["os"].as_str().unwrap(),
        platform["architecture"].as_str().unwrap()
    )
}

/// The layer digests of the manifest an index entry of `layout` points at.
fn layer_digests(layout: &Path, entry: &Value) -> Vec<String> {
    let manifest = blob_json(layout, entry["digest"].as_str().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Every layer digest of `layout`'s `latest` bundle, with the `os/arch` of its manifest.
fn layers(layout: &Path) -> Vec<(String, String)> {
    let index = blob_json(layout, &index_digest(layout, "latest"));
    let mut out = Vec::new();
    for entry in manifests(&index) {
        for digest in layer_digests(layout, entry) {
            out.push((platform_of(entry), digest));
        }
    }
    out
}

#[test]
fn a_host_fetches_the_layer_it_loads_and_fallbacks_only_when_it_falls_back() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = elsewhere();
    let build = |name: &str, targets: &[&str]| {
        let layout = dir.path().join(name);
        build_hello_uncached(&layout, targets, &["--sign-key", s(&b.private)]);
        let reference = format!("{}/team/{name}:v1", registry.addr());
        pack_push(&layout, &reference);
        (layout, reference)
    };
    let stored = |store: &Path, digest: &str| blob(store, digest).exists();

    // A bundle with this machine's artifact, pulley's and the portable component: only
    // this machine's `.cwasm` layer is fetched.
    let (layout, reference) = build("everything", &[here(), "pulley64"]);
    let store = dir.path().join("store-1");
    let out = built().run(&reference, &["--store", s(&store)]);
    assert_ran(&out);
    assert!(!stderr(&out).contains("fallback"), "{}", stderr(&out));
    let (first_reference, first_store) = (reference.clone(), store.clone());
    let all = layers(&layout);
    let os_arch = here();
    let (ours, others): (Vec<_>, Vec<_>) = all.iter().partition(|(p, d)| {
        p == os_arch && *d == all.iter().find(|(q, _)| q == os_arch).unwrap().1
    });
    assert_eq!(ours.len(), 1, "{all:?}");
    assert!(
        stored(&store, &ours[0].1),
        "this machine's artifact was not fetched"
    );
    for (platform, digest) in others {
        assert!(
            !stored(&store, digest),
            "{platform} layer {digest} was fetched"
        );
    }

    // `pack pull --platform` of this machine: the config and first layer of its native
    // manifest, not the portable component it carries for falling back, nor other
    // platforms. The layout runs, and verifies with the fallback listed as not fetched.
    let pulled = dir.path().join("pulled");
    let pull = |extra: &[&str]| {
        let out = pack()
            .args(["pull", &reference, "-o", s(&pulled), "--platform", here()])
            .args(["--key", s(&b.public), "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "pack pull: {}", stderr(&out));
        json_stdout(&out)
    };
    let summary = pull(&[]);
    let index = blob_json(&pulled, &index_digest(&pulled, "v1"));
    let native = entry_where(&index, |m| platform_of(m) == here());
    let native_layers = layer_digests(&pulled, native);
    assert_eq!(
        native_layers.len(),
        2,
        "a .cwasm and the portable component"
    );
    assert!(stored(&pulled, &native_layers[0]));
    assert!(
        !stored(&pulled, &native_layers[1]),
        "the fallback was fetched"
    );
    for (platform, digest) in &all {
        assert_eq!(
            stored(&pulled, digest),
            *digest == native_layers[0],
            "{platform} layer {digest}: {summary}"
        );
    }
    let pulled_v1 = format!("{}:v1", s(&pulled));
    let out = pack()
        .args(["verify", &pulled_v1, "--key", s(&b.public), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pack verify: {}", stdout(&out));
    let tree = &json_stdout(&out)["tree"];
    assert_eq!(tree["unfetched"], json!([native_layers[1]]), "{tree}");
    assert_eq!(tree["damaged"], json!([]), "{tree}");
    assert_ran(&built().run(&pulled_v1, &[]));
    // --all-layers fetches the fallback too, and nothing else.
    let summary = pull(&["--all-layers"]);
    assert_eq!(summary["blobsTransferred"], 1, "{summary}");
    assert!(stored(&pulled, &native_layers[1]));

    // A bundle without this machine's artifact, run with --allow-jit: the portable
    // component is fetched then, with a warning, and nothing of the other platform.
    let (layout, reference) = build("foreign", &[elsewhere]);
    let store = dir.path().join("store-2");
    let out = built().run(&reference, &["--store", s(&store), "--allow-jit"]);
    assert_ran(&out);
    assert_stderr_has(&out, "fetched the fallback layer");
    for (platform, digest) in layers(&layout) {
        let fetched = stored(&store, &digest);
        assert_eq!(
            fetched,
            platform == "wasip2/wasm",
            "{platform} layer {digest} fetched: {fetched}"
        );
    }

    // The registry gone: `--pull missing` starts from the store's verified copy,
    // `--pull always` cannot, and `--pull never` with an empty store says so.
    drop(registry);
    let out = built().run(
        &first_reference,
        &["--store", s(&first_store), "--pull", "missing"],
    );
    assert_ran(&out);
    let out = built().run(
        &first_reference,
        &["--store", s(&first_store), "--retries", "0"],
    );
    assert_exit(&out, 4);
    let empty = dir.path().join("store-empty");
    refused(
        &built().run(&first_reference, &["--store", s(&empty), "--pull", "never"]),
        "is not in the content store",
    );
}
