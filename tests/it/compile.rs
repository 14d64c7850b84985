//! `pack compile` and `pack cache`: every target of `--target all` on real components,
//! reproducibility, running the artifacts (with wasmtime as a library and with the stock
//! wasmtime CLI), CPU-feature and profile mismatches, per-target failures, bad input,
//! and the cache.
//!
//! py-cli takes about 10 s of CPU per target, so it is compiled for `--target all` once
//! (shared by the tests that need it, through `compiled_all`).

// Running artifacts needs an x86_64 Linux host; elsewhere those helpers go unused.
#![cfg_attr(
    not(all(target_arch = "x86_64", target_os = "linux")),
    allow(dead_code, unused_imports)
)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use pack_compiler::compile::Profile;
use serde_json::Value;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Precompiled, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::common::*;

/// A fresh temporary directory that lives as long as the test process (shared outputs
/// outlive the test that made them).
fn scratch() -> PathBuf {
    shared_tempdir().keep()
}

/// Runs `pack compile`, with a private cache unless `extra` says otherwise.
fn compile(input: &Path, out: &Path, cache: &Path, extra: &[&str]) -> std::process::Output {
    pack()
        .arg("compile")
        .arg(input)
        .arg("-o")
        .arg(out)
        .env("PACK_CACHE_DIR", cache)
        .env_remove("XDG_CACHE_HOME")
        .args(extra)
        .output()
        .unwrap()
}

/// [`compile`] into `DIR/out`, with the cache `DIR/cache`.
fn compile_in(dir: &Path, input: &Path, extra: &[&str]) -> std::process::Output {
    compile(input, &dir.join("out"), &dir.join("cache"), extra)
}

fn artifacts(report: &Value) -> &Vec<Value> {
    report["artifacts"].as_array().unwrap()
}

/// The artifact of `target` (as `compile.json` names it) in `report`.
fn artifact<'a>(report: &'a Value, target: &str) -> &'a Value {
    artifacts(report)
        .iter()
        .find(|a| a["target"] == target)
        .unwrap_or_else(|| panic!("no artifact for {target} in {report:#}"))
}

fn artifact_path(out: &Path, a: &Value) -> PathBuf {
    out.join(a["file"].as_str().unwrap())
}

/// `pack compile <corpus component> --target all`, once per process, into a shared
/// output directory with its own cache. Returns `(out dir, cache dir, compile.json)`.
/// `(component, out dir, cache dir, compile.json)` of the builds made so far.
type Builds = Vec<(&'static str, PathBuf, PathBuf, Value)>;

fn compiled_all(name: &'static str) -> Option<(PathBuf, PathBuf, Value)> {
    static DONE: OnceLock<Mutex<Builds>> = OnceLock::new();
    let input = corpus(name)?;
    let done = DONE.get_or_init(Default::default);
    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, out, cache, report)) = done.iter().find(|(n, ..)| *n == name) {
        return Some((out.clone(), cache.clone(), report.clone()));
    }
    let dir = scratch();
    let output = compile_in(&dir, &input, &["--target", "all", "--jobs", "2"]);
    assert_exit(&output, 0);
    let (out, cache) = (dir.join("out"), dir.join("cache"));
    let report = read_json(&out.join("compile.json"));
    done.push((name, out.clone(), cache.clone(), report.clone()));
    Some((out, cache, report))
}

/// The engine configuration pack uses for `target` with `profile`.
fn engine_for(target: &str, profile: &Profile) -> Engine {
    use pack_compiler::compile::{Target, engine_config};
    let target = Target::parse(target).unwrap().remove(0);
    Engine::new(&engine_config(&target, profile).unwrap()).unwrap()
}

/// Every target of `--target all`: an artifact wasmtime recognises, for an engine
/// configured the way compile.json says (same compatibility hash), with the metadata.
fn check_all_targets(name: &'static str) {
    let Some((out, _, report)) = compiled_all(name) else {
        return;
    };
    assert_eq!(report["failures"], Value::Array(vec![]));
    let expected = [
        ("linux/amd64", "x86_64-unknown-linux-gnu", None),
        ("linux/arm64", "aarch64-unknown-linux-gnu", None),
        (
            "linux/riscv64",
            "riscv64gc-unknown-linux-gnu",
            Some("rva23u64"),
        ),
        ("linux/s390x", "s390x-unknown-linux-gnu", None),
    ];
    assert_eq!(artifacts(&report).len(), expected.len());
    for (target, triple, variant) in expected {
        let a = artifact(&report, target);
        let path = artifact_path(&out, a);
        assert_eq!(
            a["file"],
            format!("{name}.{}.cwasm", target.replace('/', "-"))
        );
        assert_eq!(a["triple"], triple);
        let (os, arch) = target.split_once('/').unwrap();
        assert_eq!(a["platform"]["os"], os);
        assert_eq!(a["platform"]["architecture"], arch);
        assert_eq!(a["platform"]["variant"].as_str(), variant);
        assert_eq!(a["wasmtimeVersion"], "48.0.8");
        assert_eq!(a["kind"], "component");
        assert_eq!(a["profile"]["name"], "default");
        assert_eq!(a["cacheHit"], false);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(a["size"], bytes.len() as u64);
        assert_eq!(a["sha256"], sha256_hex(&bytes));
        assert_eq!(
            Engine::detect_precompiled(&bytes),
            Some(Precompiled::Component),
            "{target}"
        );
        let engine = engine_for(target, &Profile::default());
        assert_eq!(
            a["compatibilityHash"],
            pack_compiler::compile::compatibility_hash(&engine),
            "{target}"
        );
    }
    // riscv64 carries the V extension, and says so.
    let riscv = artifact(&report, "linux/riscv64");
    let flags = riscv["cpu"]["flags"].as_array().unwrap();
    assert!(flags.iter().any(|f| f == "has_v"), "{riscv:#}");
    assert!(
        riscv["cpu"]["note"]
            .as_str()
            .unwrap()
            .contains("V vector extension")
    );
    // The baselines use no optional CPU feature.
    assert_eq!(
        artifact(&report, "linux/amd64")["cpu"]["flags"],
        Value::Array(vec![])
    );
}

#[test]
fn py_cli_compiles_for_every_linux_target() {
    check_all_targets("py-cli");
}

#[test]
fn js_http_proxy_compiles_for_every_linux_target() {
    check_all_targets("js-http-proxy-sm");
}

/// Same input and options give the same bytes: a cache hit (with other `--jobs`), and a
/// fresh compilation without the cache.
#[test]
fn artifacts_are_reproducible() {
    let Some((out, cache, cold)) = compiled_all("py-cli") else {
        return;
    };
    let input = corpus("py-cli").unwrap();
    let dir = scratch();

    // Warm: every target from the cache.
    let warm_out = dir.join("warm");
    let output = compile(
        &input,
        &warm_out,
        &cache,
        &["--target", "all", "--jobs", "1"],
    );
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("cached"));
    let warm = read_json(&warm_out.join("compile.json"));
    for a in artifacts(&warm) {
        assert_eq!(a["cacheHit"], true, "{a:#}");
        let c = artifact(&cold, a["target"].as_str().unwrap());
        assert_eq!(a["sha256"], c["sha256"]);
        assert_eq!(a["compatibilityHash"], c["compatibilityHash"]);
        assert_eq!(
            std::fs::read(artifact_path(&warm_out, a)).unwrap(),
            std::fs::read(artifact_path(&out, c)).unwrap()
        );
    }

    // Cold again, without the cache and one thread: x86_64 only, to keep the suite fast.
    let fresh_out = dir.join("fresh");
    let output = compile(
        &input,
        &fresh_out,
        &dir.join("unused"),
        &["--target", "linux/amd64", "--no-cache", "--jobs", "1"],
    );
    // (PACK_CACHE_DIR is set, and --no-cache still wins.)
    assert_exit(&output, 0);
    assert!(!dir.join("unused").exists(), "--no-cache wrote a cache");
    let fresh = read_json(&fresh_out.join("compile.json"));
    let (f, c) = (
        artifact(&fresh, "linux/amd64"),
        artifact(&cold, "linux/amd64"),
    );
    assert_eq!(f["cacheHit"], false);
    assert_eq!(f["sha256"], c["sha256"]);
    assert_eq!(
        std::fs::read(artifact_path(&fresh_out, f)).unwrap(),
        std::fs::read(artifact_path(&out, c)).unwrap()
    );
}

struct Host {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// Runs a precompiled `wasi:cli/command` with `args`; returns (success, stdout).
fn run_precompiled(
    engine: &Engine,
    path: &Path,
    args: &[&str],
) -> wasmtime::Result<(bool, String)> {
    // SAFETY: the artifact was made by wasmtime 48 (through pack) for this engine.
    let component = unsafe { Component::deserialize_file(engine, path)? };
    let mut linker = Linker::<Host>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let stdout = MemoryOutputPipe::new(1 << 20);
    let ctx = WasiCtx::builder().args(args).stdout(stdout.clone()).build();
    let mut store = Store::new(
        engine,
        Host {
            ctx,
            table: ResourceTable::new(),
        },
    );
    let command =
        wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, &component, &linker)?;
    let ok = command.wasi_cli_run().call_run(&mut store)?.is_ok();
    drop(store);
    Ok((ok, String::from_utf8_lossy(&stdout.contents()).into_owned()))
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn x86_64_artifacts_run() {
    let Some(c_cli) = corpus("c-cli") else { return };
    let dir = scratch();
    assert_exit(&compile_in(&dir, &c_cli, &["--target", "linux/amd64"]), 0);
    let engine = Engine::default();
    let cwasm = dir.join("out/c-cli.linux-amd64.cwasm");
    let (ok, text) = run_precompiled(&engine, &cwasm, &["c-cli", "2"]).unwrap();
    assert!(ok && text.starts_with("primes<=2: 1 argv-hash="), "{text}");

    // The shared py-cli build's x86_64 artifact runs too.
    let Some((out, _, report)) = compiled_all("py-cli") else {
        return;
    };
    let path = artifact_path(&out, artifact(&report, "linux/amd64"));
    let (ok, text) = run_precompiled(&engine, &path, &["py-cli", "hello"]).unwrap();
    assert!(
        ok && text.contains("Hello from componentize-py! sum=332833500"),
        "{text}"
    );
}

/// The stock wasmtime CLI (48.0.8, on PATH) runs the x86_64 artifact of the default
/// profile. Outside CI a missing CLI skips; in CI it fails.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn stock_wasmtime_cli_runs_the_artifact() {
    let Some(c_cli) = corpus("c-cli") else { return };
    let Some(wasmtime) = tool("wasmtime") else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "install it with `cargo install --locked wasmtime-cli@48.0.8 --features all-arch`"
            );
        }
        return;
    };
    let version = std::process::Command::new(&wasmtime)
        .arg("--version")
        .output()
        .unwrap();
    let version = stdout(&version);
    assert!(
        version.starts_with("wasmtime 48."),
        "wasmtime 48 is needed, found {version}"
    );
    let dir = scratch();
    assert_exit(&compile_in(&dir, &c_cli, &["--target", "linux/amd64"]), 0);
    let run = std::process::Command::new(&wasmtime)
        .args(["run", "--allow-precompiled"])
        .arg(dir.join("out/c-cli.linux-amd64.cwasm"))
        .arg("2")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stdout(&run).starts_with("primes<=2: 1 argv-hash="),
        "{}",
        stdout(&run)
    );
}

/// Loading an artifact made for CPU features the host lacks fails with wasmtime's
/// reason, which names a flag compile.json lists for the artifact.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn artifacts_for_other_cpu_features_do_not_load() {
    let Some(c_cli) = corpus("c-cli") else { return };
    let dir = scratch();
    let output = compile_in(
        &dir,
        &c_cli,
        &["--target", "linux/amd64", "--cpu", "x86-64-v4"],
    );
    assert_exit(&output, 0);
    let out = dir.join("out");
    let report = read_json(&out.join("compile.json"));
    let a = artifact(&report, "linux/amd64/v4");
    assert_eq!(a["file"], "c-cli.linux-amd64-v4.cwasm");
    assert_eq!(a["platform"]["variant"], "v4");
    assert_eq!(a["cpu"]["preset"], "x86-64-v4");
    let flags: Vec<&str> = a["cpu"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        flags.contains(&"has_avx512f") && flags.contains(&"has_avx2"),
        "{flags:?}"
    );
    let path = artifact_path(&out, a);

    // This host, when it lacks AVX-512; otherwise an x86-64-v3 host (an engine whose
    // feature detection reports no AVX-512), since wasmtime checks each flag that way.
    let has_avx512 = std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl");
    let engine = if has_avx512 {
        let mut config = Config::new();
        config.target("x86_64-unknown-linux-gnu").unwrap();
        // SAFETY: this engine only loads; it never runs code.
        unsafe {
            config.detect_host_feature(|feature| {
                if feature.starts_with("avx512") {
                    Some(false)
                } else {
                    Some(std::is_x86_feature_detected!("avx2"))
                }
            })
        };
        Engine::new(&config).unwrap()
    } else {
        Engine::default()
    };
    // SAFETY: made by wasmtime 48; the check under test runs before any code would.
    let err = unsafe { Component::deserialize_file(&engine, &path) }
        .expect_err("an x86-64-v4 artifact must not load without AVX-512");
    let text = format!("{err:#}");
    assert!(
        text.contains("is enabled, but not available on the host"),
        "{text}"
    );
    let named = flags
        .iter()
        .find(|f| text.contains(&format!("\"{f}\"")))
        .copied();
    assert!(named.is_some_and(|f| f.starts_with("has_avx512")), "{text}");

    // The baseline artifact of the same input loads on that engine.
    assert_exit(&compile_in(&dir, &c_cli, &["--target", "linux/amd64"]), 0);
    unsafe { Component::deserialize_file(&engine, out.join("c-cli.linux-amd64.cwasm")) }.unwrap();
}

/// An artifact of another profile does not load in a default engine; wasmtime's reason
/// names the setting compile.json lists, and an engine with that setting loads it.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn artifacts_of_another_profile_do_not_load() {
    let Some(c_cli) = corpus("c-cli") else { return };
    let dir = scratch();
    let profile = write(
        &dir,
        "epoch.toml",
        "# interrupt long runs\nepoch_interruption = true\n",
    );
    let output = compile_in(
        &dir,
        &c_cli,
        &["-t", "linux/amd64", "--profile", s(&profile), "--no-cache"],
    );
    assert_exit(&output, 0);
    let out = dir.join("out");
    let report = read_json(&out.join("compile.json"));
    let a = artifact(&report, "linux/amd64");
    assert_eq!(a["profile"]["name"], "epoch");
    assert_eq!(
        a["profile"]["settings"],
        serde_json::json!({"epoch_interruption": true})
    );
    assert_ne!(a["profile"]["sha256"], Profile::default().sha256());
    let path = artifact_path(&out, a);

    let err = unsafe { Component::deserialize_file(&Engine::default(), &path) }
        .expect_err("an epoch-interruption artifact must not load in a default engine");
    let text = format!("{err:#}");
    assert!(
        text.contains(
            "Module was compiled with epoch interruption but it is not enabled for the host"
        ),
        "{text}"
    );

    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config).unwrap();
    unsafe { Component::deserialize_file(&engine, &path) }.unwrap();
    let engine = engine_for("linux/amd64", &Profile::load(&profile).unwrap());
    assert_eq!(
        a["compatibilityHash"],
        pack_compiler::compile::compatibility_hash(&engine)
    );
}

/// A target that fails is reported with the others: exit 1, the good artifacts written,
/// the failure in compile.json and on stderr.
#[test]
fn a_failing_target_does_not_hide_the_others() {
    let Some(c_cli) = corpus("c-cli") else { return };
    let dir = scratch();
    let out = dir.join("out");
    let output = compile_in(
        &dir,
        &c_cli,
        &[
            "-t",
            "linux/riscv64/rva20u64",
            "-t",
            "linux/amd64,pulley64",
            "--json",
        ],
    );
    assert_exit(&output, 1);
    let report: Value = json_stdout(&output);
    assert_eq!(
        report,
        read_json(&out.join("compile.json")),
        "--json prints compile.json"
    );
    assert_eq!(artifacts(&report).len(), 2);
    assert!(
        out.join("c-cli.linux-amd64.cwasm").exists() && out.join("c-cli.pulley64.cwasm").exists()
    );
    assert!(!out.join("c-cli.linux-riscv64-rva20u64.cwasm").exists());
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["target"], "linux/riscv64/rva20u64");
    assert_eq!(failures[0]["platform"]["variant"], "rva20u64");
    assert!(
        failures[0]["error"].as_str().unwrap().contains("panicked"),
        "{report:#}"
    );
    let err = stderr(&output);
    assert!(
        err.contains("error: the compiler panicked while compiling"),
        "{err}"
    );
    assert!(err.contains("hint:") && err.contains("rva23u64"), "{err}");
    assert!(
        !err.contains("RUST_BACKTRACE"),
        "the panic message itself is not printed: {err}"
    );
}

#[test]
fn unknown_targets_and_presets_are_usage_errors() {
    let dir = scratch();
    let input = write(&dir, "m.wasm", wat::parse_str("(module)").unwrap());
    let output = compile_in(&dir, &input, &["--target", "linux/mips"]);
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert!(err.contains("unknown target `linux/mips`"), "{err}");
    for supported in [
        "linux/amd64",
        "linux/s390x",
        "darwin/arm64",
        "windows/amd64",
        "pulley32",
        "native",
        "all",
    ] {
        assert!(err.contains(supported), "{supported} missing from: {err}");
    }
    let output = compile_in(&dir, &input, &["-t", "linux/arm64", "--cpu", "x86-64-v3"]);
    assert_exit(&output, 2);
    assert_stderr_has(&output, "armv8.4-a");
    assert!(
        !dir.join("out").exists(),
        "nothing is written on a usage error"
    );
}

/// Bad input gets the messages `pack validate` gives, and exit 2.
#[test]
fn bad_input_is_reported_like_validate() {
    let dir = scratch();
    let wit = write(&dir, "w.wit", "package a:b;\nworld w {}\n");
    // A component whose module has a body that does not type-check.
    let mut invalid =
        wat::parse_str("(component (core module (func (result i32) i32.const 1)))").unwrap();
    let at = invalid.iter().rposition(|&b| b == 0x41).unwrap();
    invalid[at] = 0x42;
    let cases = [
        write(&dir, "image.wasm", b"\x89PNG\r\n\x1a\n0000"),
        write(&dir, "invalid.wasm", invalid),
        write(&dir, "empty.wasm", b""),
        dir.join("missing.wasm"),
    ];
    for input in cases {
        let output = compile_in(&dir, &input, &["-t", "linux/amd64"]);
        assert_eq!(output.status.code(), Some(2), "{}", input.display());
        let validate = pack()
            .arg("validate")
            .arg(&input)
            .arg("--wit")
            .arg(&wit)
            .output()
            .unwrap();
        let error_line = |o: &std::process::Output| {
            stderr(o)
                .lines()
                .find(|l| l.starts_with("error: "))
                .unwrap_or("")
                .to_string()
        };
        assert!(!error_line(&output).is_empty(), "{}", stderr(&output));
        assert_eq!(
            error_line(&output),
            error_line(&validate),
            "{}",
            input.display()
        );
    }
}

#[test]
fn profile_errors_name_the_key_and_the_file() {
    let dir = scratch();
    let input = write(&dir, "m.wasm", wat::parse_str("(module)").unwrap());
    let profile = write(&dir, "bad.toml", "opt_level = \"speed\"\nepoch = true\n");
    // `--profile` without its file is a usage error too.
    let output = compile_in(&dir, &input, &["-t", "linux/amd64", "--profile"]);
    assert_exit(&output, 2);
    let output = compile_in(
        &dir,
        &input,
        &["-t", "linux/amd64", "--no-cache", "--profile", s(&profile)],
    );
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert!(
        err.contains("bad.toml") && err.contains("epoch") && err.contains("line 2"),
        "{err}"
    );
}

/// Concurrent `pack` processes share a cache safely, and a second compile is all hits.
#[test]
fn the_cache_is_shared_safely_and_managed() {
    let Some(c_cli) = corpus("c-cli") else { return };
    let dir = scratch();
    let cache = dir.join("cache");
    let children: Vec<_> = (0..3)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_pack"))
                .arg("compile")
                .arg(&c_cli)
                .args(["--target", "all,pulley64", "--jobs", "2", "-o"])
                .arg(dir.join(format!("out{i}")))
                .arg("--cache-dir")
                .arg(&cache)
                .env("NO_COLOR", "1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let reports: Vec<Value> = (0..3)
        .map(|i| read_json(&dir.join(format!("out{i}/compile.json"))))
        .collect();
    for a in artifacts(&reports[0]) {
        for r in &reports[1..] {
            assert_eq!(
                artifact(r, a["target"].as_str().unwrap())["sha256"],
                a["sha256"]
            );
        }
    }
    for i in 0..3 {
        for name in file_names(&dir.join(format!("out{i}"))) {
            assert!(
                name == "compile.json" || name.ends_with(".cwasm"),
                "left over: {name}"
            );
        }
    }

    let cache_cmd = |args: &[&str]| {
        let output = pack()
            .arg("cache")
            .args(args)
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .unwrap();
        assert_exit(&output, 0);
        output
    };
    let info: Value = json_stdout(&cache_cmd(&["info", "--json"]));
    assert_eq!(info["entries"], 5, "{info:#}");
    assert_eq!(info["versions"][0]["wasmtimeVersion"], "48.0.8");
    assert!(stdout(&cache_cmd(&["info"])).contains("5 entries"));

    // All hits now.
    let output = compile(
        &c_cli,
        &dir.join("again"),
        &cache,
        &["--target", "all,pulley64"],
    );
    assert_exit(&output, 0);
    let again = read_json(&dir.join("again/compile.json"));
    assert!(
        artifacts(&again).iter().all(|a| a["cacheHit"] == true),
        "{again:#}"
    );

    // Entries of another wasmtime version go with a plain prune; recent ones stay.
    let old = cache.join("v1/47.0.0/ab");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("abcd.cwasm"), b"old").unwrap();
    let pruned: Value = json_stdout(&cache_cmd(&["prune", "--json"]));
    assert_eq!(pruned["removedEntries"], 1, "{pruned:#}");
    let pruned: Value = json_stdout(&cache_cmd(&["prune", "--older-than", "1d", "--json"]));
    assert_eq!(pruned["removedEntries"], 0);
    let pruned: Value = json_stdout(&cache_cmd(&["prune", "--older-than", "0s", "--json"]));
    assert_eq!(pruned["removedEntries"], 5);
    compile(
        &c_cli,
        &dir.join("again"),
        &cache,
        &["--target", "linux/amd64"],
    );
    assert!(stdout(&cache_cmd(&["clear"])).contains("removed 1 entry"));
    let info: Value = json_stdout(&cache_cmd(&["info", "--json"]));
    assert_eq!(info["entries"], 0);

    let output = pack()
        .args(["cache", "prune", "--older-than", "soon"])
        .output()
        .unwrap();
    assert_exit(&output, 2);
}

#[test]
fn help_has_examples_and_exit_status() {
    for args in [
        &["compile", "--help"][..],
        &["cache", "--help"],
        &["cache", "prune", "--help"],
    ] {
        let output = pack().args(args).output().unwrap();
        assert_exit(&output, 0);
        let text = stdout(&output);
        assert!(
            text.contains("Examples:") && text.contains("Exit status:"),
            "{args:?}: {text}"
        );
    }
}
