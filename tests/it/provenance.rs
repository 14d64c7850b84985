//! Signed compile provenance and rebuild verification: `pack build --sign-key` and `pack
//! sign` write an SLSA provenance v1 Statement per native artifact (a referrer of its
//! native manifest), `pack inspect` shows it and `pack verify` requires it; `pack verify
//! --rebuild` compiles each native artifact again and compares it bit for bit, and
//! `--attest-key` vouches for what it reproduced; `pack run --rebuilt-by` loads only
//! what enough rebuilders attested. The forgery of the trust model (a signed bundle
//! whose native code is another component's) is built by hand and must pass the
//! signature checks, then fail the rebuild.

use std::path::Path;

use pack_packager::bundle::{BlobSource, BundleInput, Compilation, NativeArtifact, PortableConfig};
use pack_packager::{Bundle, Layout};

use crate::common::*;

/// `pack build COMPONENT -t <here> -o LAYOUT EXTRA` in `dir`; it must succeed.
fn build(dir: &Path, component: &str, layout: &str, extra: &[&str]) {
    let out = pack_in(dir)
        .args(["build", s(&fixture(component)), "-t", here(), "-o", layout])
        .args(extra)
        .output()
        .unwrap();
    assert_exit(&out, 0);
}

/// The hello-cli fixture built into `dir/layout`, signed with `key`.
fn build_signed_hello(dir: &Path, layout: &str, key: &Path) {
    build(
        dir,
        "components/hello-cli.wasm",
        layout,
        &["--sign-key", s(key)],
    );
}

/// Signed build: inspect shows the provenance (verified with the key, by claimed key
/// without), and verify checks it. A bundle signed without provenance, or whose
/// provenance another key made, is refused naming the platform.
#[test]
fn build_writes_provenance_that_inspect_shows_and_verify_requires() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a_key, a_pub) = key_pair(d, "a");
    let (b_key, b_pub) = key_pair(d, "b");
    build_signed_hello(d, "out", &a_key);

    let out = pack_output(d, &["inspect", "out", "--key", s(&a_pub), "--json"]);
    assert_exit(&out, 0);
    let json = json_stdout(&out);
    let component = entry_where(&json, |m| m["kind"] == "portable")["component"]["digest"].clone();
    let native = entry_where(&json, |m| m["kind"] == "native").clone();
    let provenance = json["provenance"].as_array().unwrap();
    assert_eq!(provenance.len(), 1, "{json}");
    let p = &provenance[0];
    assert_eq!(p["platform"], here());
    assert_eq!(p["manifest"], native["digest"]);
    assert_eq!(p["verified"], true, "{p}");
    let claim = &p["attestations"][0]["claim"];
    assert_eq!(claim["component"], component, "{p}");
    assert_eq!(
        claim["settings"]["targetTriple"],
        native["config"]["targetTriple"]
    );
    assert_eq!(
        claim["settings"]["compatibilityHash"],
        native["config"]["compatibilityHash"]
    );
    assert_eq!(claim["packVersion"], env!("CARGO_PKG_VERSION"));
    // The layer as stored (compressed by default) and the .cwasm itself are subjects.
    let subjects = claim["subjects"].as_array().unwrap();
    assert!(subjects.contains(&native["cwasm"]["digest"]), "{p}");
    assert!(
        subjects.contains(&native["cwasm"]["uncompressedDigest"]),
        "{p}"
    );
    // The referrer of the native manifest is listed, with the SLSA predicate type.
    assert!(
        json["referrers"].as_array().unwrap().iter().any(|r| {
            r["subject"] == native["digest"]
                && r["annotations"]["dev.sigstore.bundle.predicateType"]
                    == "https://slsa.dev/provenance/v1"
        }),
        "{json}"
    );
    let out = pack_output(d, &["inspect", "out"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("provenance"), "{text}");
    assert!(text.contains("not verified (pass --key)"), "{text}");

    let verify = |layout: &str, keys: &[&Path]| {
        let mut cmd = pack_in(d);
        cmd.args(["verify", layout]);
        for k in keys {
            cmd.args(["--key", s(k)]);
        }
        cmd.output().unwrap()
    };
    let out = verify("out", &[&a_pub]);
    assert_exit(&out, 0);
    assert_stdout_has(&out, format!("{}: compile provenance by key", here()));

    // Signed without provenance: refused, naming the platform.
    build(d, "components/hello-cli.wasm", "bare", &[]);
    let out = pack_output(d, &["sign", "bare", "--key", s(&a_key), "--no-provenance"]);
    assert_exit(&out, 0);
    let out = verify("bare", &[&a_pub]);
    assert_exit(&out, 1);
    assert_stdout_has(&out, format!("{} has no compile provenance", here()));
    // Provenance by key b does not count for a verifier who trusts only key a.
    let out = pack_output(d, &["sign", "bare", "--key", s(&b_key), "--json"]);
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["provenance"].as_array().unwrap().len(), 1);
    let out = verify("bare", &[&a_pub]);
    assert_exit(&out, 1);
    assert_stdout_has(&out, format!("{} has no valid compile provenance", here()));
    assert_stdout_has(&out, "made by another key");
    assert_exit(&verify("bare", &[&a_pub, &b_pub]), 0);
}

/// Builds, by hand, the bundle a compromised builder would sign: the component of
/// `honest` and its manifests' records, but the `.cwasm` of `other`.
fn forge(honest: &Path, other: &Path, forged: &Path) {
    let read = |path: &Path| {
        let layout = Layout::open(path).unwrap();
        let bundle = Bundle::read(&layout, "latest").unwrap();
        (layout, bundle)
    };
    let (layout, bundle) = read(honest);
    let portable = bundle.portable.as_ref().unwrap();
    let component = layout.read_blob(&portable.component).unwrap();
    let native = &bundle.natives[0];
    let (other_layout, other_bundle) = read(other);
    let other_native = &other_bundle.natives[0];
    let layer = other_layout.read_blob(&other_native.cwasm).unwrap();
    let cwasm = match other_native
        .config
        .uncompressed_of(&other_native.cwasm)
        .unwrap()
    {
        Some(u) => pack_packager::compression::decompress_to_vec(&layer[..], u, other).unwrap(),
        None => layer,
    };
    let info = portable.config.component.as_ref().unwrap();
    let input = BundleInput {
        component: BlobSource::Bytes(component),
        component_sha256: None,
        portable: PortableConfig {
            exports: info.exports.clone(),
            imports: info.imports.clone(),
            target_world: info.target.clone(),
        },
        natives: vec![NativeArtifact {
            platform: native.descriptor.platform().clone().unwrap(),
            cwasm: BlobSource::Bytes(cwasm),
            cwasm_sha256: None,
            compilation: Compilation::of(&native.config),
        }],
        annotations: Default::default(),
        created: None,
    };
    pack_packager::build_bundle(forged, "latest", &input).unwrap();
}

/// The forgery: a bundle whose native artifact is another component's compile, signed
/// with `pack sign` (signature and provenance). `pack verify` accepts it (every claim
/// is signed by the key); `pack verify --rebuild` does not, naming the platform, and
/// attests nothing; `pack run --rebuilt-by` refuses it before loading. The honest bundle
/// passes all three, and only attestations by the --rebuilt-by keys count.
#[test]
fn a_swapped_native_artifact_is_caught_by_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (release_key, release_pub) = key_pair(d, "release");
    let (farm_key, farm_pub) = key_pair(d, "farm");
    let (_, other_pub) = key_pair(d, "other");
    build_signed_hello(d, "honest", &release_key);
    build(d, "components/calc.wasm", "calc", &[]);
    forge(&d.join("honest"), &d.join("calc"), &d.join("forged"));
    let out = pack_output(d, &["sign", "forged", "--key", s(&release_key)]);
    assert_exit(&out, 0);

    // `pack COMMAND LAYOUT --key release.pub EXTRA`.
    let with_release_key = |command: &str, layout: &str, extra: &[&str]| {
        pack_in(d)
            .args([command, layout, "--key", s(&release_pub)])
            .args(extra)
            .output()
            .unwrap()
    };
    let verify = |layout: &str, extra: &[&str]| with_release_key("verify", layout, extra);
    let run = |layout: &str, extra: &[&str]| with_release_key("run", layout, extra);

    // Signatures and provenance: both say yes.
    assert_exit(&verify("honest", &[]), 0);
    assert_exit(&verify("forged", &[]), 0);

    // The rebuild: the honest bundle is reproduced and attested by the farm's key.
    let out = verify(
        "honest",
        &["--rebuild", "--attest-key", s(&farm_key), "--json"],
    );
    assert_exit(&out, 0);
    let json = json_stdout(&out);
    let rebuilt = &json["rebuild"][0];
    assert_eq!(rebuilt["platform"], here(), "{json}");
    assert_eq!(rebuilt["reproduced"], true, "{json}");
    assert_eq!(rebuilt["rebuilt"], rebuilt["cwasm"], "{json}");
    assert!(rebuilt["attestation"].is_string(), "{json}");
    // The forged one differs: exit 1, naming the platform; nothing is attested.
    let out = verify("forged", &["--rebuild", "--attest-key", s(&farm_key)]);
    assert_exit(&out, 1);
    assert_stdout_has(&out, format!("{}: the rebuild differs", here()));
    let out = pack_output(d, &["inspect", "forged", "--key", s(&farm_pub), "--json"]);
    assert_exit(&out, 0);
    let json = json_stdout(&out);
    assert_eq!(
        json["rebuilds"][0]["attestations"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "{json}"
    );
    let out = pack_output(d, &["inspect", "honest", "--key", s(&farm_pub), "--json"]);
    let json = json_stdout(&out);
    let attestation = &json["rebuilds"][0]["attestations"][0];
    assert_eq!(attestation["verified"], true, "{json}");
    assert_eq!(
        attestation["claim"]["subjects"][0], json["rebuilds"][0]["cwasm"],
        "{json}"
    );

    // The host: the honest bundle runs with the farm's attestation; the forged one is
    // refused before anything is loaded, naming what is missing.
    let out = run("honest", &["--rebuilt-by", s(&farm_pub), "--", "x"]);
    assert_exit(&out, 0);
    assert_stdout_has(&out, HELLO_RAN);
    let out = run("forged", &["--rebuilt-by", s(&farm_pub)]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(here()) && err.contains("rebuild attestation"),
        "{err}"
    );
    // An attestation by a key not in --rebuilt-by does not count, nor does one key
    // twice when two are required.
    let out = run("honest", &["--rebuilt-by", s(&other_pub)]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("0 of the 1 rebuild attestation(s)") && err.contains("made by another key"),
        "{err}"
    );
    let out = run(
        "honest",
        &[
            "--rebuilt-by",
            s(&farm_pub),
            "--rebuilt-by",
            s(&other_pub),
            "--rebuilds",
            "2",
        ],
    );
    assert_exit(&out, 2);
    assert_stderr_has(&out, "1 of the 2 rebuild attestation(s)");
    // More required than keys given is a usage error, before anything is read.
    let out = run("honest", &["--rebuilt-by", s(&farm_pub), "--rebuilds", "2"]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "more rebuilders than the 1 --rebuilt-by key(s)");
}

/// Provenance and rebuild attestations are referrers of the native manifests: a push
/// and a pull take them along, and the pulled copy verifies and runs with
/// `--rebuilt-by`.
#[test]
fn provenance_and_attestations_survive_push_and_pull() {
    let Some((registry, dir)) = registry_and_tempdir() else {
        return;
    };
    let d = dir.path();
    let (release_key, release_pub) = key_pair(d, "release");
    let (farm_key, farm_pub) = key_pair(d, "farm");
    build_signed_hello(d, "out", &release_key);
    let out = pack_output(
        d,
        &[
            "verify",
            "out",
            "--key",
            s(&release_pub),
            "--rebuild",
            "--attest-key",
            s(&farm_key),
        ],
    );
    assert_exit(&out, 0);
    let target = format!("{}/team/app:v1", registry.addr());
    let out = pack_output(d, &["push", "out", &target, "--json"]);
    assert_exit(&out, 0);
    // Signature (index), provenance and attestation (native manifest).
    let pushed = json_stdout(&out);
    let out = pack_output(
        d,
        &[
            "pull",
            &target,
            "-o",
            "pulled",
            "--json",
            "--key",
            s(&release_pub),
        ],
    );
    assert_exit(&out, 0);
    let pulled = json_stdout(&out);
    assert_eq!(
        pulled["referrers"].as_array().unwrap().len(),
        3,
        "pushed {pushed}\npulled {pulled}"
    );
    let out = pack_output(
        d,
        &["verify", "pulled:v1", "--key", s(&release_pub), "--json"],
    );
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["provenance"][0]["verified"], true);
    let rebuilt_by_farm = ["--key", s(&release_pub), "--rebuilt-by", s(&farm_pub)];
    let out = pack_in(d)
        .args(["run", "pulled:v1"])
        .args(rebuilt_by_farm)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    // The host's own pull from the registry takes them along too.
    let out = pack_in(d)
        .args(["run", &target, "--insecure-registry"])
        .args(rebuilt_by_farm)
        .output()
        .unwrap();
    assert_exit(&out, 0);
}
