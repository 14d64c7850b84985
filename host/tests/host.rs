//! The host library on small components: real precompiled artifacts in real signed
//! bundles, run and refused.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};

use pack_host::engine::EngineSettings;
use pack_host::{
    EnginePolicy, Error, Host, HostOptions, Kind, Output, RunOutcome, Source, Trust, WasiOptions,
};
use pack_packager::oci_spec::image::{Arch, Os, Platform, PlatformBuilder};
use pack_packager::signing::{self, PrivateKey, SignOptions};
use pack_packager::{BlobSource, BundleInput, Compilation, Layout, NativeArtifact, PortableConfig};
use sha2::{Digest as _, Sha256};

/// A command whose `run` returns `ok` or `err`, or traps.
fn command(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            (core module $m
              (func $inner (result i32) {body})
              (func (export "run") (result i32) call $inner))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $inst (export "run" (func $run)))
            (export "wasi:cli/run@0.2.0" (instance $inst)))"#
    ))
    .unwrap()
}

fn host_triple() -> &'static str {
    match pack_host::cpu::host_platform().1 {
        "amd64" => "x86_64-unknown-linux-gnu",
        "arm64" => "aarch64-unknown-linux-gnu",
        other => panic!("no test triple for {other}"),
    }
}

/// sha256 of `precompile_compatibility_hash`, as `pack compile` records it.
fn compat_hash(engine: &wasmtime::Engine) -> String {
    #[derive(Default)]
    struct H(Sha256);
    impl std::hash::Hasher for H {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut h = H::default();
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(h.0.finalize())
}

/// What `pack compile` does for one target: explicit triple, the profile, no CPU flags.
fn precompile(wasm: &[u8], triple: &str, settings: &EngineSettings) -> (Vec<u8>, String) {
    let mut config = wasmtime::Config::new();
    config.target(triple).unwrap();
    settings.apply(&mut config);
    let engine = wasmtime::Engine::new(&config).unwrap();
    (
        engine.precompile_component(wasm).unwrap(),
        compat_hash(&engine),
    )
}

struct Native {
    os: &'static str,
    arch: &'static str,
    variant: Option<&'static str>,
    flags: Vec<String>,
    settings: EngineSettings,
}

impl Native {
    fn host() -> Self {
        let (os, arch) = pack_host::cpu::host_platform();
        Native {
            os,
            arch,
            variant: None,
            flags: Vec::new(),
            settings: EngineSettings::default(),
        }
    }
}

fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
    let mut b = PlatformBuilder::default()
        .os(Os::from(os))
        .architecture(Arch::from(arch));
    if let Some(v) = variant {
        b = b.variant(v.to_string());
    }
    b.build().unwrap()
}

/// Builds a bundle of `wasm` with `natives` into `dir/name` (tag `latest`).
fn bundle(dir: &Path, name: &str, wasm: &[u8], natives: &[Native]) -> PathBuf {
    let natives = natives
        .iter()
        .map(|n| {
            let (cwasm, hash) = precompile(wasm, host_triple(), &n.settings);
            let settings = serde_json::to_value(n.settings.non_defaults()).unwrap();
            NativeArtifact {
                platform: platform(n.os, n.arch, n.variant),
                cwasm: BlobSource::Bytes(cwasm),
                cwasm_sha256: None,
                compilation: Compilation {
                    wasmtime_version: "48.0.8".into(),
                    compatibility_hash: hash,
                    target_triple: host_triple().into(),
                    cpu_preset: None,
                    cpu_flags: n.flags.clone(),
                    profile: serde_json::json!({"name": "test", "settings": settings}),
                },
            }
        })
        .collect();
    let input = BundleInput {
        component: BlobSource::Bytes(wasm.to_vec()),
        component_sha256: None,
        portable: PortableConfig {
            exports: vec!["wasi:cli/run@0.2.0".into()],
            imports: vec![],
            target_world: None,
        },
        natives,
        annotations: BTreeMap::new(),
        created: None,
    };
    let path = dir.join(name);
    pack_packager::build_bundle(&path, "latest", &input).unwrap();
    path
}

fn sign(layout: &Path, key: &PrivateKey) {
    let layout = Layout::open(layout).unwrap();
    signing::sign_index(&layout, "latest", key, &SignOptions::default()).unwrap();
}

/// A bundle of `command(body)` precompiled for this host into `dir/name`, signed by `key`.
fn signed_command(dir: &Path, name: &str, body: &str, key: &PrivateKey) -> PathBuf {
    let path = bundle(dir, name, &command(body), &[Native::host()]);
    sign(&path, key);
    path
}

fn host(key: &PrivateKey) -> Host {
    Host::new(HostOptions::new(Trust::Keys(vec![key.public_key()])))
}

fn source(path: &Path) -> Source {
    Source::parse(path.to_str().unwrap())
}

fn quiet() -> WasiOptions {
    WasiOptions {
        args: vec!["app".into()],
        stdout: Output::Null,
        stderr: Output::Null,
        ..WasiOptions::default()
    }
}

/// Opens the command at `path` with `host` and runs it once, without output.
fn run_quietly(host: &Host, path: &Path) -> RunOutcome {
    host.open(&source(path))
        .unwrap()
        .command()
        .unwrap()
        .run(&quiet())
        .unwrap()
}

/// The path of the `.cwasm` blob of the first native manifest.
fn cwasm_path(layout: &Path) -> PathBuf {
    let l = Layout::open(layout).unwrap();
    let bundle = pack_packager::Bundle::read(&l, "latest").unwrap();
    l.blob_path(bundle.natives[0].cwasm.digest()).unwrap()
}

#[test]
fn runs_a_signed_bundle_from_its_precompiled_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let ok = signed_command(dir.path(), "ok", "i32.const 0", &key);
    let err = signed_command(dir.path(), "err", "i32.const 1", &key);
    let host = host(&key);

    let loaded = host.open(&source(&ok)).unwrap();
    assert_eq!(loaded.kind(), Kind::Command);
    assert!(
        matches!(
            &loaded.artifact,
            pack_host::Artifact::Precompiled { pulley: false, .. }
        ),
        "{:?}",
        loaded.artifact
    );
    // One key, both formats (the legacy signature and the sigstore bundle).
    assert!(matches!(&loaded.verification, pack_host::Verification::Signed(v) if v.len() == 2));
    let pre = loaded.command().unwrap();
    assert_eq!(pre.run(&quiet()).unwrap(), RunOutcome::Exit(0));
    // The same pre-instance again: a new instance each time.
    assert_eq!(pre.run(&quiet()).unwrap(), RunOutcome::Exit(0));

    assert_eq!(run_quietly(&host, &err), RunOutcome::Exit(1));
}

#[test]
fn a_trap_is_an_outcome_with_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let trap = signed_command(dir.path(), "trap", "unreachable", &key);
    let outcome = run_quietly(&host(&key), &trap);
    let RunOutcome::Trap(trap) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(trap.message.contains("unreachable"), "{trap}");
    let bt = trap.backtrace.unwrap();
    assert!(bt.contains("wasm backtrace"), "{bt}");
    assert_eq!(RunOutcome::Trap(Default::default()).exit_code(), 1);
}

#[test]
fn refuses_unsigned_and_foreign_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let other = PrivateKey::generate();
    let path = bundle(
        dir.path(),
        "app",
        &command("i32.const 0"),
        &[Native::host()],
    );
    let err = host(&key).open(&source(&path)).unwrap_err();
    assert!(matches!(err, Error::Unverified { .. }), "{err}");
    assert!(err.to_string().contains("unsigned"), "{err}");

    sign(&path, &other);
    let err = host(&key).open(&source(&path)).unwrap_err();
    assert!(err.to_string().contains("made by another key"), "{err}");

    // No keys at all is a refusal too, unless verification is skipped explicitly.
    let err = Host::new(HostOptions::new(Trust::Keys(vec![])))
        .open(&source(&path))
        .unwrap_err();
    assert!(matches!(err, Error::NoTrustedKeys { .. }), "{err}");
    let loaded = Host::new(HostOptions::new(Trust::InsecureSkipVerify))
        .open(&source(&path))
        .unwrap();
    assert_eq!(loaded.verification, pack_host::Verification::Skipped);
}

#[test]
fn refuses_a_tampered_artifact_before_loading_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let path = signed_command(dir.path(), "app", "i32.const 0", &key);
    // Loaded once by this host (which then remembers the blob as verified) ...
    let host = host(&key);
    host.open(&source(&path)).unwrap();
    // ... and changed afterwards: the change is seen, and refused.
    let blob = cwasm_path(&path);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    // Writable by its owner only (what others can write is refused before hashing).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&blob, &bytes).unwrap();
    let err = host.open(&source(&path)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Layout(pack_packager::Error::DigestMismatch { .. })
        ),
        "{err}"
    );
}

#[test]
fn lists_every_manifest_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let wasm = command("i32.const 0");
    let foreign = Native {
        os: "linux",
        arch: if pack_host::cpu::host_platform().1 == "arm64" {
            "amd64"
        } else {
            "arm64"
        },
        ..Native::host()
    };
    let epoch = Native {
        variant: Some("epoch"),
        settings: EngineSettings {
            epoch_interruption: true,
            ..Default::default()
        },
        ..Native::host()
    };
    let mut natives = vec![foreign, epoch];
    // A CPU feature this machine lacks, when there is one to name.
    let lacking = [
        "has_avx512vbmi",
        "has_avx512bitalg",
        "has_avx_vnni",
        "has_avx512vnni",
        "has_i8mm",
        "has_fp16",
    ]
    .into_iter()
    .find(|f| pack_host::cpu::supports(f) == Some(false));
    if let Some(flag) = lacking {
        natives.push(Native {
            variant: Some("v9"),
            flags: vec![flag.to_string()],
            ..Native::host()
        });
    }
    let path = bundle(dir.path(), "app", &wasm, &natives);
    sign(&path, &key);
    // A host with stock engine settings, which adopts no artifact's profile.
    let fixed = || {
        let mut options = HostOptions::new(Trust::Keys(vec![key.public_key()]));
        options.engine = EnginePolicy::Fixed(EngineSettings::default());
        options
    };
    let err = Host::new(fixed()).open(&source(&path)).unwrap_err();
    let Error::NoArtifact {
        passed_over,
        jit_possible,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(jit_possible);
    let text = err.to_string();
    assert!(text.contains("built for another platform"), "{text}");
    assert!(
        text.contains("/epoch: compatibility hash differs: profile with epoch interruption"),
        "{text}"
    );
    if let Some(flag) = lacking {
        let short = flag.trim_start_matches("has_");
        assert!(text.contains(&format!("/v9: host lacks {short}")), "{text}");
        assert_eq!(passed_over.len(), 3);
    }
    // JIT allowed, but this build has no compiler (or compiles, with `jit`).
    let mut options = fixed();
    options.allow_jit = true;
    let result = Host::new(options).open(&source(&path));
    if pack_host::HAS_COMPILER {
        let loaded = result.unwrap();
        assert!(matches!(loaded.artifact, pack_host::Artifact::Jit { .. }));
    } else {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::JitUnavailable { .. }), "{err}");
    }
}

#[test]
fn adopts_the_artifacts_profile() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let settings = EngineSettings {
        epoch_interruption: true,
        consume_fuel: true,
        ..Default::default()
    };
    let path = bundle(
        dir.path(),
        "app",
        &command("i32.const 0"),
        &[Native {
            settings: settings.clone(),
            ..Native::host()
        }],
    );
    sign(&path, &key);
    let loaded = host(&key).open(&source(&path)).unwrap();
    assert_eq!(loaded.settings, settings);
    // The store gets fuel and a deadline, or the code would trap at once.
    assert_eq!(
        loaded.command().unwrap().run(&quiet()).unwrap(),
        RunOutcome::Exit(0)
    );
}

#[test]
fn a_layout_that_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate();
    let err = host(&key)
        .open(&source(&dir.path().join("nope")))
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
