use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmtime::{Engine, Precompiled};

use super::*;

/// A small component with a bit of code in it.
fn component() -> Vec<u8> {
    wat::parse_str(
        r#"(component
            (core module $m
                (memory (export "memory") 1)
                (func (export "fib") (param i32) (result i32)
                    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
                        (then (local.get 0))
                        (else (i32.add
                            (call 0 (i32.sub (local.get 0) (i32.const 1)))
                            (call 0 (i32.sub (local.get 0) (i32.const 2)))))))
                (func (export "sum") (param i32 i32) (result i64)
                    (local i64)
                    (block (loop
                        (br_if 1 (i32.ge_u (local.get 0) (local.get 1)))
                        (local.set 2 (i64.add (local.get 2) (i64.load32_u (local.get 0))))
                        (local.set 0 (i32.add (local.get 0) (i32.const 4)))
                        (br 0)))
                    (local.get 2)))
            (core instance $i (instantiate $m))
            (func (export "fib") (param "n" u32) (result u32)
                (canon lift (core func $i "fib"))))"#,
    )
    .unwrap()
}

fn input(dir: &Path, name: &str, bytes: Vec<u8>) -> Input {
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    Input::read(&path).unwrap()
}

fn targets(values: &[&str]) -> Vec<Target> {
    resolve_targets(values, None).unwrap()
}

fn options(out: &Path, targets: Vec<Target>, cache: Option<&Path>, jobs: usize) -> CompileOptions {
    CompileOptions {
        targets,
        profile: Profile::default(),
        out_dir: out.to_path_buf(),
        cache: cache.map(|c| Cache::new(c, secret())),
        jobs,
        stem: None,
    }
}

/// Options that compile for `values` into `dir/out`, without a cache.
fn uncached(dir: &Path, values: &[&str], jobs: usize) -> CompileOptions {
    options(&dir.join("out"), targets(values), None, jobs)
}

/// The cache secret of these tests.
fn secret() -> CacheSecret {
    CacheSecret::from_value(b"the secret of the compiler's tests").unwrap()
}

fn artifacts(outcome: Outcome) -> Vec<Artifact> {
    outcome.results.into_iter().map(|r| r.unwrap()).collect()
}

/// Records what a compilation reported.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Reporter for Log {
    fn on_queued(&self, index: usize, target: &Target) {
        self.0
            .lock()
            .unwrap()
            .push(format!("queued {index} {target}"));
    }
    fn on_start(&self, index: usize, _target: &Target, stage: Stage) {
        self.0.lock().unwrap().push(format!("{stage:?} {index}"));
    }
    fn on_complete(&self, index: usize, result: Result<&Artifact, &TargetError>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("done {index} {}", result.is_ok()));
    }
    fn on_warning(&self, message: &str) {
        self.0.lock().unwrap().push(format!("warning {message}"));
    }
}

impl Log {
    fn count(&self, prefix: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// Asserts that exactly one line starts with `prefix`, and shows every line if not.
    #[track_caller]
    fn assert_once(&self, prefix: &str) {
        assert_eq!(
            self.count(prefix),
            1,
            "{prefix}: {:?}",
            self.0.lock().unwrap()
        );
    }
}

/// `app.wasm` compiled once for linux/amd64 into `dir/out`, with a cache in `dir/cache`.
struct Cached {
    input: Input,
    /// Options that compile it again, with the same cache.
    opts: CompileOptions,
    cache_dir: PathBuf,
    first: Artifact,
    /// The bytes of the first compile's artifact.
    good: Vec<u8>,
    key: String,
    /// The path of the cache entry, without its extension (`.cwasm`, `.json`).
    entry: PathBuf,
}

fn compiled_into_cache(dir: &Path) -> Cached {
    let input = input(dir, "app.wasm", component());
    let cache_dir = dir.join("cache");
    let amd64 = targets(&["linux/amd64"]);
    let opts = options(&dir.join("out"), amd64.clone(), Some(&cache_dir), 1);
    let first = artifacts(compile(&input, &opts, &NoReporter).unwrap()).remove(0);
    let good = std::fs::read(&first.path).unwrap();
    let key = cache_key(
        &first.source_sha256,
        input.kind,
        &amd64[0],
        &Profile::default(),
    );
    let entry = cache_dir
        .join("v1")
        .join(wasmtime_version())
        .join(&key[..2])
        .join(&key);
    Cached {
        input,
        opts,
        cache_dir,
        first,
        good,
        key,
        entry,
    }
}

#[test]
fn reproducible_across_jobs_and_cache_hits() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), "app.component.wasm", component());
    let list = targets(&["linux/amd64,linux/arm64/v8.4,linux/s390x", "pulley64"]);
    let read = |a: &Artifact| std::fs::read(&a.path).unwrap();

    let out1 = dir.path().join("one");
    let first =
        artifacts(compile(&input, &options(&out1, list.clone(), None, 1), &NoReporter).unwrap());
    let out2 = dir.path().join("two");
    let cache = dir.path().join("cache");
    let second = artifacts(
        compile(
            &input,
            &options(&out2, list.clone(), Some(&cache), 2),
            &NoReporter,
        )
        .unwrap(),
    );
    let log = Log::default();
    let out3 = dir.path().join("three");
    let third =
        artifacts(compile(&input, &options(&out3, list.clone(), Some(&cache), 3), &log).unwrap());

    assert_eq!(first.len(), 4);
    for ((a, b), c) in first.iter().zip(&second).zip(&third) {
        assert_eq!(a.file, b.file);
        assert!(
            a.file.starts_with("app.") && a.file.ends_with(".cwasm"),
            "{}",
            a.file
        );
        assert!(!a.cache_hit && !b.cache_hit && c.cache_hit, "{}", a.target);
        assert_eq!(read(a), read(b), "{} differs with --jobs", a.target);
        assert_eq!(read(a), read(c), "{} differs from the cache", a.target);
        assert_eq!((a.sha256.as_str(), a.size), (c.sha256.as_str(), c.size));
        assert_eq!(hex::encode(Sha256::digest(read(a))), a.sha256);
        assert_eq!(a.compatibility_hash, c.compatibility_hash);
        assert_eq!(
            Engine::detect_precompiled(&read(a)),
            Some(Precompiled::Component)
        );
    }
    // A hit builds no engine: nothing is compiled, every target is found in the cache.
    assert_eq!(log.count("Compiling"), 0, "{:?}", log.0.lock().unwrap());
    assert_eq!(log.count("CheckingCache"), 4);
    assert_eq!(log.count("done"), 4);
    assert_eq!(log.count("queued"), 4);
}

#[test]
fn corrupt_cache_entries_are_discarded_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let Cached {
        input,
        opts,
        first,
        good,
        entry,
        ..
    } = compiled_into_cache(dir.path());
    let entry = entry.with_extension("cwasm");
    let overwrite = |path: &Path| {
        use std::io::{Seek, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.seek(std::io::SeekFrom::Start(100)).unwrap();
        f.write_all(b"garbage").unwrap();
    };

    // The output is a copy: changing it in place leaves the entry alone.
    overwrite(&first.path);
    assert_eq!(std::fs::read(&entry).unwrap(), good);
    let hit = artifacts(compile(&input, &opts, &NoReporter).unwrap()).remove(0);
    assert!(hit.cache_hit);
    assert_eq!(std::fs::read(&hit.path).unwrap(), good);

    // A damaged entry is discarded, and the target compiled again.
    overwrite(&entry);
    let log = Log::default();
    let again = artifacts(compile(&input, &opts, &log).unwrap()).remove(0);
    assert!(!again.cache_hit);
    log.assert_once("warning discarded corrupt cache entry");
    assert_eq!(std::fs::read(&again.path).unwrap(), good);
    assert_eq!(std::fs::read(&entry).unwrap(), good, "stored again");
}

#[test]
fn entries_that_do_not_authenticate_are_compiled_again_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let Cached {
        input,
        opts,
        cache_dir,
        good,
        key,
        entry,
        ..
    } = compiled_into_cache(dir.path());
    let (cwasm, json) = (entry.with_extension("cwasm"), entry.with_extension("json"));
    let sidecar =
        || -> serde_json::Value { serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap() };
    assert_eq!(sidecar()["mac"].as_str().unwrap().len(), 64);

    // Other bytes with the digests fixed up: the MAC no longer verifies.
    let other = b"\x7fELF not the artifact".to_vec();
    std::fs::write(&cwasm, &other).unwrap();
    let mut forged = sidecar();
    forged["sha256"] = hex::encode(Sha256::digest(&other)).into();
    forged["size"] = other.len().into();
    std::fs::write(&json, serde_json::to_vec(&forged).unwrap()).unwrap();
    let log = Log::default();
    let made = artifacts(compile(&input, &opts, &log).unwrap()).remove(0);
    assert!(!made.cache_hit);
    assert_eq!(std::fs::read(&made.path).unwrap(), good);
    log.assert_once("warning not using cache entry");
    // ... and the fresh entry replaced it.
    assert_eq!(std::fs::read(&cwasm).unwrap(), good);
    assert!(artifacts(compile(&input, &opts, &NoReporter).unwrap())[0].cache_hit);

    // No MAC at all, or a cache made with another secret: the same.
    let mut bare = sidecar();
    bare.as_object_mut().unwrap().remove("mac");
    std::fs::write(&json, serde_json::to_vec(&bare).unwrap()).unwrap();
    let log = Log::default();
    assert!(!artifacts(compile(&input, &opts, &log).unwrap())[0].cache_hit);
    log.assert_once("warning not using cache entry");
    let elsewhere = CompileOptions {
        cache: Some(Cache::new(&cache_dir, CacheSecret::ephemeral())),
        ..opts.clone()
    };
    let log = Log::default();
    assert!(!artifacts(compile(&input, &elsewhere, &log).unwrap())[0].cache_hit);
    log.assert_once("warning not using cache entry");
    // A maintenance handle finds nothing and stores nothing.
    let maintenance = Cache::for_maintenance(&cache_dir);
    assert!(!maintenance.contains(&key));
    assert_eq!(maintenance.info().unwrap().entries, 1);
}

#[test]
fn core_modules_are_precompiled_as_modules() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = wat::parse_str("(module (func (export \"f\") (result i32) i32.const 7))").unwrap();
    let input = input(dir.path(), "m.wasm", wasm);
    let opts = uncached(dir.path(), &["linux/amd64", "pulley32"], 0);
    for a in artifacts(compile(&input, &opts, &NoReporter).unwrap()) {
        assert_eq!(a.kind, Kind::Module);
        let bytes = std::fs::read(&a.path).unwrap();
        assert_eq!(
            Engine::detect_precompiled(&bytes),
            Some(Precompiled::Module)
        );
    }
}

#[test]
fn invalid_input_fails_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut wasm = wat::parse_str("(module (func (result i32) i32.const 1))").unwrap();
    // Turn `i32.const` (0x41) into `i64.const` (0x42): valid structure, bad body.
    let at = wasm.iter().rposition(|&b| b == 0x41).unwrap();
    wasm[at] = 0x42;
    let input = input(dir.path(), "bad.wasm", wasm);
    let opts = uncached(dir.path(), &["linux/amd64", "linux/arm64"], 2);
    let err = compile(&input, &opts, &NoReporter).unwrap_err();
    assert!(
        matches!(err, Error::Input(crate::Error::InvalidWasm { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("type mismatch"), "{err}");
}

#[test]
fn a_compiler_panic_fails_only_its_target() {
    let dir = tempfile::tempdir().unwrap();
    // Cranelift 0.135's riscv64 backend without the V extension panics on stores of
    // 128-bit values, which component adapters and SIMD code make.
    let wasm = wat::parse_str(
        "(module (memory 1) (func (export \"f\") (v128.store (i32.const 0) (v128.const i64x2 1 2))))",
    )
    .unwrap();
    let input = input(dir.path(), "simd.wasm", wasm);
    let opts = uncached(
        dir.path(),
        &["linux/riscv64/rva20u64", "linux/amd64", "linux/riscv64"],
        2,
    );
    let outcome = compile(&input, &opts, &NoReporter).unwrap();
    let [panicked, amd64, riscv64] = &outcome.results[..] else {
        panic!()
    };
    match panicked {
        Err(TargetError::Panic {
            target, message, ..
        }) => {
            assert_eq!(target.to_string(), "linux/riscv64/rva20u64");
            assert!(message.contains("riscv64"), "{message}");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(amd64.is_ok() && riscv64.is_ok());
    let report = Report::new(
        &input,
        &outcome.source_sha256,
        &opts.profile,
        &outcome.results,
    );
    assert_eq!((report.artifacts.len(), report.failures.len()), (2, 1));
    assert!(report.failures[0].error.contains("panicked"));
    // The V extension is on by default, and the metadata says so.
    let riscv64 = riscv64.as_ref().unwrap();
    assert!(riscv64.cpu.flags.contains(&"has_v".to_string()));
    assert!(
        riscv64
            .cpu
            .note
            .as_deref()
            .unwrap()
            .contains("V vector extension")
    );
    assert_eq!(riscv64.platform.variant().as_deref(), Some("rva23u64"));
}

#[test]
fn compatibility_hash_is_stable_and_follows_the_settings() {
    let target = &targets(&["linux/amd64"])[0];
    let hash = |target: &Target, profile: &Profile| {
        compatibility_hash(&Engine::new(&engine_config(target, profile).unwrap()).unwrap())
    };
    let default = Profile::default();
    let h = hash(target, &default);
    assert_eq!(h.len(), 64);
    assert_eq!(h, hash(target, &default));
    let fuel = Profile::parse(Path::new("fuel.toml"), "consume_fuel = true").unwrap();
    assert_ne!(h, hash(target, &fuel));
    assert_ne!(h, hash(&targets(&["linux/amd64/v3"])[0], &default));
    assert_ne!(h, hash(&targets(&["linux/arm64"])[0], &default));
}

#[test]
fn cache_keys_cover_every_input() {
    let p = Profile::default();
    let fuel = Profile::parse(Path::new("fuel.toml"), "consume_fuel = true").unwrap();
    let [a, v3, arm] = &targets(&["linux/amd64", "linux/amd64/v3", "linux/arm64"])[..] else {
        panic!()
    };
    let key = cache_key("aa", Kind::Component, a, &p);
    assert_eq!(key, cache_key("aa", Kind::Component, a, &p));
    for other in [
        cache_key("ab", Kind::Component, a, &p),
        cache_key("aa", Kind::Module, a, &p),
        cache_key("aa", Kind::Component, v3, &p),
        cache_key("aa", Kind::Component, arm, &p),
        cache_key("aa", Kind::Component, a, &fuel),
    ] {
        assert_ne!(key, other);
    }
}

/// CPU features never come from the compiling machine: the baseline artifact loads on a
/// host that reports no features at all, and a v3 artifact names what it needs.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn cpu_features_are_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), "app.wasm", component());
    let opts = uncached(dir.path(), &["linux/amd64", "linux/amd64/v3"], 2);
    let [base, v3] = &artifacts(compile(&input, &opts, &NoReporter).unwrap())[..] else {
        panic!()
    };
    assert!(base.cpu.flags.is_empty());

    // An engine for a host that reports no CPU features (the explicit target keeps it
    // from enabling the features of this machine for its own code).
    let mut config = wasmtime::Config::new();
    config.target("x86_64-unknown-linux-gnu").unwrap();
    // SAFETY: only used to load, never to run.
    unsafe { config.detect_host_feature(|_| Some(false)) };
    let bare = Engine::new(&config).unwrap();
    // SAFETY: the artifacts were just made by wasmtime.
    unsafe { wasmtime::component::Component::deserialize_file(&bare, &base.path) }.unwrap();
    let err = unsafe { wasmtime::component::Component::deserialize_file(&bare, &v3.path) }
        .expect_err("a v3 artifact does not load on a host without v3 features");
    let text = format!("{err:#}");
    let flag = v3
        .cpu
        .flags
        .iter()
        .find(|f| text.contains(&format!("{f:?}")));
    assert!(
        flag.is_some(),
        "the error names one of the artifact's flags: {text}"
    );
}

#[test]
fn default_stems() {
    assert_eq!(
        default_stem(Path::new("dir/py-cli.component.wasm")),
        "py-cli"
    );
    assert_eq!(default_stem(Path::new("app.wasm")), "app");
    assert_eq!(default_stem(Path::new("lib.module.wasm")), "lib");
    assert_eq!(default_stem(Path::new("plain")), "plain");
}

#[test]
fn artifacts_from_elsewhere_are_admitted_only_when_they_fit() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), "app.wasm", component());
    let amd64 = targets(&["linux/amd64"]);
    let opts = options(&dir.path().join("out"), amd64.clone(), None, 1);
    let made = artifacts(compile(&input, &opts, &NoReporter).unwrap()).remove(0);
    let profile = Profile::default();
    let claimed = Claimed {
        wasmtime_version: &made.wasmtime_version,
        compatibility_hash: &made.compatibility_hash,
        kind: Kind::Component,
        sha256: &made.sha256,
        size: made.size,
    };
    let cache = Cache::new(dir.path().join("cache"), secret());
    let key = cache_key(&made.source_sha256, input.kind, &amd64[0], &profile);

    // Each claim that does not hold keeps the artifact out.
    let arm64 = targets(&["linux/arm64"]).remove(0);
    let zeros = "0".repeat(64);
    let refused = [
        ("another target", &arm64, claimed.clone()),
        (
            "another sha256",
            &amd64[0],
            Claimed {
                sha256: &zeros,
                ..claimed.clone()
            },
        ),
        (
            "a module",
            &amd64[0],
            Claimed {
                kind: Kind::Module,
                ..claimed.clone()
            },
        ),
        (
            "another wasmtime",
            &amd64[0],
            Claimed {
                wasmtime_version: "1.0.0",
                ..claimed.clone()
            },
        ),
    ];
    for (case, target, claim) in refused {
        let result = admit(&cache, &input, target, &profile, &claim, &made.path);
        assert!(
            matches!(result, Err(AdmitError::Mismatch { .. })),
            "{case}: {result:?}"
        );
    }
    assert!(!cache.contains(&key));

    // Bytes that are not a precompiled component, with a claim that matches them.
    let junk = dir.path().join("junk.cwasm");
    std::fs::write(&junk, b"not an artifact").unwrap();
    let junk_sha = hex::encode(Sha256::digest(b"not an artifact"));
    let result = admit(
        &cache,
        &input,
        &amd64[0],
        &profile,
        &Claimed {
            sha256: &junk_sha,
            size: 15,
            ..claimed.clone()
        },
        &junk,
    );
    assert!(
        matches!(&result, Err(AdmitError::Mismatch { reason, .. }) if reason.contains("does not recognise")),
        "{result:?}"
    );
    assert!(!cache.contains(&key));

    // The real thing: compiling then uses it.
    assert_eq!(
        admit(&cache, &input, &amd64[0], &profile, &claimed, &made.path).unwrap(),
        key
    );
    assert!(cache.contains(&key));
    let opts = options(
        &dir.path().join("out2"),
        amd64,
        Some(&dir.path().join("cache")),
        1,
    );
    let used = artifacts(compile(&input, &opts, &NoReporter).unwrap()).remove(0);
    assert!(used.cache_hit);
    assert_eq!(used.sha256, made.sha256);
}

/// `bytes` with a custom section appended: another input (another artifact cache key),
/// the same functions.
fn with_custom_section(mut bytes: Vec<u8>, payload: &[u8]) -> Vec<u8> {
    let name = b"pack-test";
    let len = 1 + name.len() + payload.len();
    assert!(len < 128, "one LEB128 byte");
    bytes.extend([0u8, len as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.extend(payload);
    bytes
}

#[test]
fn function_cache_artifacts_are_identical_to_cold_compiles_on_every_target() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = |name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/components")
                .join(name),
        )
        .unwrap()
    };
    let hello = fixture("hello-cli.wasm");
    let v1 = input(dir.path(), "v1.wasm", hello.clone());
    let v2 = input(dir.path(), "v2.wasm", with_custom_section(hello, b"v2"));
    let every: Vec<String> = PLATFORMS
        .iter()
        .map(|&(os, arch)| Target::new(os, arch).platform_name())
        .collect();
    let list = targets(&every.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(list.len(), PLATFORMS.len());
    let read = |a: &Artifact| std::fs::read(&a.path).unwrap();
    let compile_into = |input: &Input, out: &str, cache: Option<&Path>| {
        artifacts(
            compile(
                input,
                &options(&dir.path().join(out), list.clone(), cache, 2),
                &NoReporter,
            )
            .unwrap(),
        )
    };

    // Cold, without any cache.
    let cold_v1 = compile_into(&v1, "cold-v1", None);
    let cold_v2 = compile_into(&v2, "cold-v2", None);
    assert!(cold_v1.iter().all(|a| a.functions.is_none()));
    // v1 fills the function cache, v2 takes every function from it.
    let cache = dir.path().join("cache");
    let warm_v1 = compile_into(&v1, "warm-v1", Some(&cache));
    let warm_v2 = compile_into(&v2, "warm-v2", Some(&cache));
    for (i, target) in list.iter().enumerate() {
        let (filled, used) = (warm_v1[i].functions.unwrap(), warm_v2[i].functions.unwrap());
        assert!(filled.compiled > 100, "{target}: {filled:?}");
        assert!(!warm_v2[i].cache_hit, "{target}: not an artifact cache hit");
        // Some functions get other Cranelift IR (and so another key) from one compile
        // to the next, for the same code (about one in ten of hello-cli's, varying from
        // run to run); most are found.
        assert!(used.compiled * 3 <= used.cached, "{target}: {used:?}");
        assert_eq!(
            used.compiled + used.cached,
            filled.compiled + filled.cached,
            "{target}: every function is looked up once"
        );
        assert_eq!(
            read(&cold_v1[i]),
            read(&warm_v1[i]),
            "{target}: filling the cache"
        );
        assert_eq!(
            read(&cold_v2[i]),
            read(&warm_v2[i]),
            "{target}: from the cache"
        );
    }
    let info = Cache::for_maintenance(&cache).info().unwrap();
    assert_eq!(info.function_segments, list.len() as u64);

    // Turned off, nothing is looked up.
    let off = artifacts(
        compile(
            &v2,
            &CompileOptions {
                cache: Some(Cache::new(&cache, secret()).with_functions(false)),
                ..options(&dir.path().join("off"), list.clone(), None, 2)
            },
            &NoReporter,
        )
        .unwrap(),
    );
    assert!(off.iter().all(|a| a.cache_hit && a.functions.is_none()));
}

#[test]
fn a_function_cache_that_does_not_authenticate_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = input(dir.path(), "v1.wasm", component());
    let v2 = input(
        dir.path(),
        "v2.wasm",
        with_custom_section(component(), b"v2"),
    );
    let list = targets(&["linux/amd64"]);
    let cache = dir.path().join("cache");
    compile(
        &v1,
        &options(&dir.path().join("one"), list.clone(), Some(&cache), 1),
        &NoReporter,
    )
    .unwrap();
    // Another home's secret: the segment is not read, every function is compiled, and
    // the segment is replaced by one this secret authenticates.
    let log = Log::default();
    let stranger = CompileOptions {
        cache: Some(Cache::new(&cache, CacheSecret::ephemeral())),
        ..options(&dir.path().join("two"), list.clone(), None, 1)
    };
    let a = artifacts(compile(&v2, &stranger, &log).unwrap()).remove(0);
    let stats = a.functions.unwrap();
    assert_eq!(stats.cached, 0, "{stats:?}");
    assert!(stats.compiled > 0);
    let warnings = log.0.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("not using the function cache") && w.contains("MAC")),
        "{warnings:?}"
    );
}
