//! `pack run` (and the runtime-only `pack-host`): corpus components built, signed, run
//! from a layout and through a real registry, with output compared to the stock wasmtime
//! CLI; and every refusal, each before the artifact is deserialized.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use pack_packager::Layout;
use pack_packager::signing::signature_tag;

use crate::common::*;
use crate::registry::Registry;

/// Keys and bundles built once with `pack build` and shared read-only by the tests.
struct Fixtures {
    dir: tempfile::TempDir,
    /// The trusted public key (and its private key `trusted.key`).
    trusted: PathBuf,
    /// Another key pair.
    other: PathBuf,
    c_cli: PathBuf,
    /// c-cli compiled with an engine profile far from the defaults.
    c_cli_profiled: PathBuf,
    py_cli: PathBuf,
    js_http: PathBuf,
}

/// A profile that changes most settings that reach the compatibility hash, so that the
/// host's engine configured for it must reproduce the compiler's exactly.
const PROFILE: &str = "\
opt_level = \"none\"
regalloc_algorithm = \"single_pass\"
consume_fuel = true
epoch_interruption = true
nan_canonicalization = true
debug_symbols = false
memory_guard_size = 65536
table_lazy_init = false
[features]
memory64 = true
";

impl Fixtures {
    fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `pack run BUNDLE FLAGS --key trusted.pub -- 2`: c-cli counts the primes up to 2.
    fn run(&self, bundle: &str, flags: &[&str]) -> Output {
        pack_run(&[&[bundle], flags, &["--key", s(&self.trusted), "--", "2"]].concat())
    }
}

/// `pack build WASM -o LAYOUT --sign-key KEY ARGS` (the targets and profile in `args`).
fn build_signed(wasm: &Path, layout: &Path, key: &Path, args: &[&str]) {
    pack_build(&[&[s(wasm), "-o", s(layout), "--sign-key", s(key)], args].concat());
}

fn fixtures() -> Option<&'static Fixtures> {
    static FIXTURES: OnceLock<Option<Fixtures>> = OnceLock::new();
    FIXTURES
        .get_or_init(|| {
            let (c, py, js) = (
                corpus("c-cli")?,
                corpus("py-cli")?,
                corpus("js-http-proxy-sm")?,
            );
            let dir = shared_tempdir();
            for name in ["trusted", "other"] {
                key_pair(dir.path(), name);
            }
            let key = dir.path().join("trusted.key");
            let (here, elsewhere) = (here(), elsewhere());
            let v3 = format!("{here}/v3");
            let mut c_targets = vec!["-t", here, "-t", elsewhere];
            if cfg!(target_arch = "x86_64") {
                c_targets.extend(["-t", &v3]);
            }
            let (c_cli, py_cli, js_http) = (
                dir.path().join("c-cli"),
                dir.path().join("py-cli"),
                dir.path().join("js-http-proxy-sm"),
            );
            build_signed(&c, &c_cli, &key, &c_targets);
            let profile = write(dir.path(), "profile.toml", PROFILE);
            let c_cli_profiled = dir.path().join("c-cli-profiled");
            build_signed(
                &c,
                &c_cli_profiled,
                &key,
                &["-t", here, "--profile", s(&profile)],
            );
            build_signed(&py, &py_cli, &key, &["-t", here]);
            build_signed(&js, &js_http, &key, &["-t", here]);
            Some(Fixtures {
                trusted: dir.path().join("trusted.pub"),
                other: dir.path().join("other.pub"),
                c_cli,
                c_cli_profiled,
                py_cli,
                js_http,
                dir,
            })
        })
        .as_ref()
}

/// The most specific platform of the c-cli bundle that this CPU runs: `linux/amd64/v3` on
/// an x86-64 with AVX2, else [`here`].
fn best_platform() -> String {
    if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx2") {
        format!("{}/v3", here())
    } else {
        here().to_string()
    }
}

fn pack_run(args: &[&str]) -> Output {
    pack().arg("run").args(args).output().unwrap()
}

fn wasmtime(args: &[&str]) -> Option<Output> {
    let wasmtime = tool("wasmtime")?;
    Some(Command::new(wasmtime).args(args).output().unwrap())
}

/// `pack run` of `layout` and `wasmtime run` of `wasm` give the same stdout and status.
fn same_as_wasmtime(run_args: &[&str], name: &str, wasm: &Path, args: &[&str]) {
    let ours = pack_run(&[run_args, &["--"], args].concat());
    let mut theirs_args = vec!["run", "--argv0", name, s(wasm)];
    theirs_args.extend(args);
    let Some(theirs) = wasmtime(&theirs_args) else {
        return;
    };
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "pack: {}\nwasmtime: {}",
        stderr(&ours),
        stderr(&theirs)
    );
    assert_eq!(stdout(&ours), stdout(&theirs), "pack: {}", stderr(&ours));
    assert!(!stdout(&ours).is_empty());
}

#[test]
fn c_cli_runs_like_wasmtime_run() {
    let Some(f) = fixtures() else { return };
    let c = corpus("c-cli").unwrap();
    for n in ["2", "1000"] {
        same_as_wasmtime(&[s(&f.c_cli), "--key", s(&f.trusted)], "c-cli", &c, &[n]);
    }
    // The most specific artifact this CPU can run is chosen.
    let out = f.run(s(&f.c_cli), &[]);
    let expected = match best_platform() {
        v3 if v3.ends_with("/v3") => format!("{v3} artifact"),
        here => here,
    };
    assert_stderr_has(&out, expected);
}

#[test]
fn a_trap_prints_the_wasm_backtrace_and_exits_1() {
    let Some(f) = fixtures() else { return };
    // c-cli without an argument reads out of bounds.
    let out = pack_run(&[s(&f.c_cli), "--key", s(&f.trusted)]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("out of bounds memory access"), "{err}");
    assert!(err.contains("wasm backtrace:"), "{err}");
    assert!(err.contains("wasi:cli/run@0.2.12#run"), "{err}");
}

#[test]
fn py_cli_runs_like_wasmtime_run() {
    let Some(f) = fixtures() else { return };
    let py = corpus("py-cli").unwrap();
    same_as_wasmtime(
        &[s(&f.py_cli), "--key", s(&f.trusted)],
        "py-cli",
        &py,
        &["hello", "world"],
    );
}

#[test]
fn args_env_dirs_and_exit_codes_reach_the_component() {
    let Some(f) = fixtures() else { return };
    let hello = fixture("components/hello-cli.wasm");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("hello");
    build_hello(here(), &layout, &f.key("trusted.key"));
    let run = [s(&layout), "--key", s(&f.trusted)];
    // `--env K=V`, and `--env K` for this process's value, like `wasmtime run --env`.
    let out = pack_run(&[&run[..], &["--env", "GREETING=hi", "--", "a", "b"]].concat());
    assert_eq!(
        stdout(&out),
        "hello from pack fixture: args=[\"a\", \"b\"]\ngreeting: hi\n",
        "{}",
        stderr(&out)
    );
    let with_greeting_set = |flags: &[&str]| {
        pack()
            .env("GREETING", "from the host")
            .arg("run")
            .args(run)
            .args(flags)
            .output()
            .unwrap()
    };
    let out = with_greeting_set(&["--env", "GREETING"]);
    assert_stdout_has(&out, "greeting: from the host");
    // Nothing is inherited unasked.
    let out = with_greeting_set(&[]);
    assert_stdout_has(&out, "greeting: <unset>");
    // Exit statuses are the component's, as wasmtime reports them.
    for args in [&["0"][..], &["3"], &["a", "b"]] {
        same_as_wasmtime(&run, "hello", &hello, args);
    }

    // A directory that does not exist is refused before anything runs; one that does is
    // given.
    let out = pack_run(&[&run[..], &["--dir", "/nonexistent/dir::/data"]].concat());
    assert_exit(&out, 2);
    assert_stderr_has(&out, "/nonexistent/dir");
    assert!(stdout(&out).is_empty());
    let data = format!("{}::/data", dir.path().display());
    let out = pack_run(&[&run[..], &["--dir", &data]].concat());
    assert_exit(&out, 0);
}

/// A server process that is stopped on drop.
struct Server {
    child: Spawned,
    addr: String,
    log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `cmd` and waits for a stderr line with `http://ADDR/`.
    fn start(mut cmd: Command) -> Server {
        let (child, rx) = spawn_reading_stderr(&mut cmd, |line| line);
        let child = Spawned(child);
        let mut seen = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
            if let Some(rest) = line.split("http://").nth(1) {
                let addr = rest.split('/').next().unwrap().to_string();
                return Server {
                    child,
                    addr,
                    log: rx,
                };
            }
            seen.push(line);
        }
        panic!("the server did not report its address: {seen:?}");
    }

    /// Sends SIGINT (Ctrl-C) and returns the exit status.
    fn interrupt(mut self) -> Option<i32> {
        self.child.signal("-INT");
        self.child.exit_code_within(Duration::from_secs(5))
    }
}

fn serve_and_compare(run_args: &[&str]) {
    let js = corpus("js-http-proxy-sm").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pack"));
    cmd.arg("run")
        .args(run_args)
        .args(["--listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1");
    let server = Server::start(cmd);
    let (status, body) = http_get(&server.addr, "/hello/world?x=1");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from ComponentizeJS"), "{body}");
    // One instance per request: a second one works the same.
    let (status2, body2) = http_get(&server.addr, "/other");
    assert_eq!(status2, 200);
    assert!(body2.contains("/other"), "{body2}");

    if let Some(wasmtime) = tool("wasmtime") {
        let mut cmd = Command::new(wasmtime);
        cmd.args(["serve", "-Scli", "--addr", "127.0.0.1:0"])
            .arg(&js);
        let theirs = Server::start(cmd);
        let (their_status, their_body) = http_get(&theirs.addr, "/hello/world?x=1");
        assert_eq!((status, body.as_str()), (their_status, their_body.as_str()));
    }
    // A line per request, then Ctrl-C stops it cleanly.
    let lines: Vec<String> = server.log.try_iter().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("GET /hello/world?x=1 -> 200")),
        "{lines:?}"
    );
    assert_eq!(server.interrupt(), Some(0));
}

#[test]
fn js_http_proxy_serves_like_wasmtime_serve() {
    let Some(f) = fixtures() else { return };
    serve_and_compare(&[s(&f.js_http), "--key", s(&f.trusted)]);
}

/// Makes `file` writable by its owner (only: `set_readonly(false)` would let everyone
/// write it).
fn owner_writable(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// The file range of an ELF64 section.
fn elf_section(bytes: &[u8], wanted: &str) -> Option<(usize, usize)> {
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    if &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 24);
    (0..shnum).find_map(|i| {
        let h = header(i);
        let name_at = strtab + u32_at(h);
        let end = bytes[name_at..].iter().position(|&b| b == 0)? + name_at;
        (&bytes[name_at..end] == wanted.as_bytes()).then(|| (u64_at(h + 24), u64_at(h + 32)))
    })
}

/// The path of the `.cwasm` blob of the native manifest for `platform` that `tag`
/// points to (the first tag that is not a signature when `None`).
fn cwasm_blob_of(layout: &Path, tag: Option<&str>, platform: &str) -> PathBuf {
    let l = Layout::open(layout).unwrap();
    let tag = match tag {
        Some(t) => t.to_string(),
        None => {
            l.tags()
                .unwrap()
                .into_iter()
                .find(|t| !t.name.ends_with(".sig"))
                .unwrap()
                .name
        }
    };
    cwasm_layer(layout, &tag, platform).1
}

fn cwasm_blob(layout: &Path, platform: &str) -> PathBuf {
    cwasm_blob_of(layout, None, platform)
}

/// Flips one byte in the middle of the `.text` section of `cwasm`.
fn flip_text_byte(cwasm: &Path) {
    let mut bytes = std::fs::read(cwasm).unwrap();
    // A compressed layer is no ELF file: a byte in its middle.
    let (offset, size) = elf_section(&bytes, ".text").unwrap_or((0, bytes.len()));
    bytes[offset + size / 2] ^= 0x01;
    std::fs::write(cwasm, bytes).unwrap();
}

fn refused(out: &Output, needle: &str) {
    assert_exit(out, 2);
    assert!(
        stderr(out).contains(needle),
        "missing {needle:?} in\n{}",
        stderr(out)
    );
    // Nothing ran: the component's output never appeared.
    assert!(!stdout(out).contains("primes"), "{}", stdout(out));
}

#[test]
fn refuses_a_flipped_byte_in_the_artifact() {
    let Some(f) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("c-cli");
    copy_layout(&f.c_cli, &layout);
    let here = here();
    for platform in [format!("{here}/v3"), here.to_string()] {
        if platform.ends_with("/v3") && !cfg!(target_arch = "x86_64") {
            continue;
        }
        flip_text_byte(&cwasm_blob(&layout, &platform));
    }
    let out = f.run(s(&layout), &[]);
    refused(&out, "does not match its digest");
}

#[test]
fn refuses_a_swapped_manifest() {
    let Some(f) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("c-cli");
    copy_layout(&f.c_cli, &layout);
    // The host platform's manifest blob now holds the other platform's manifest.
    let l = Layout::open(&layout).unwrap();
    let bundle = pack_packager::Bundle::read(&l, "latest").unwrap();
    let (here, elsewhere) = (here(), elsewhere());
    let find = |p: &str| {
        bundle
            .natives
            .iter()
            .find(|n| {
                pack_packager::bundle::platform_string(n.descriptor.platform().as_ref().unwrap())
                    == p
            })
            .unwrap()
            .descriptor
            .digest()
            .clone()
    };
    let (ours, theirs) = (find(here), find(elsewhere));
    std::fs::copy(l.blob_path(&theirs).unwrap(), l.blob_path(&ours).unwrap()).unwrap();
    let out = f.run(s(&layout), &[]);
    refused(&out, "does not match its digest");
}

#[test]
fn refuses_unsigned_bundles_and_foreign_signatures() {
    let Some(f) = fixtures() else { return };
    let c = corpus("c-cli").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let unsigned = dir.path().join("unsigned");
    pack_build(&[s(&c), "-t", here(), "-o", s(&unsigned)]);
    let out = f.run(s(&unsigned), &[]);
    refused(&out, "is unsigned");
    // Loudly, it runs when verification is skipped on purpose.
    let out = pack_run(&[s(&unsigned), "--insecure-skip-verify", "--", "2"]);
    assert_exit(&out, 0);
    assert_stderr_has(&out, "warning: --insecure-skip-verify");
    assert!(stdout(&out).contains("primes<=2"));
    // No key at all is a usage error.
    let out = pack_run(&[s(&f.c_cli), "--", "2"]);
    refused(&out, "no trusted key");

    // Signed, but by another key than the one trusted.
    let out = pack_run(&[s(&f.c_cli), "--key", s(&f.other), "--", "2"]);
    refused(&out, "made by another key");
    // Either of several keys may have signed.
    let out = f.run(s(&f.c_cli), &["--key", s(&f.other)]);
    assert_exit(&out, 0);
}

#[test]
fn refuses_a_signature_over_another_digest() {
    let Some(f) = fixtures() else { return };
    let c = corpus("c-cli").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("app");
    // Two bundles in one layout; only `b` is signed.
    let (here, elsewhere) = (here(), elsewhere());
    pack_build(&[s(&c), "-t", here, "-o", s(&layout), "--tag", "a"]);
    let key = f.key("trusted.key");
    build_signed(
        &c,
        &layout,
        &key,
        &["-t", here, "-t", elsewhere, "--tag", "b"],
    );
    // b's signature, filed under a's signature tag.
    let l = Layout::open(&layout).unwrap();
    let a = l.resolve("a").unwrap();
    let b = l.resolve("b").unwrap();
    let b_signature = l.resolve(&signature_tag(b.digest())).unwrap();
    l.set_tag(&signature_tag(a.digest()), &b_signature).unwrap();
    let out = f.run(&format!("{}:a", s(&layout)), &[]);
    refused(&out, "signs another digest");
    let out = f.run(&format!("{}:b", s(&layout)), &[]);
    assert_exit(&out, 0);
}

#[test]
fn refuses_a_bundle_without_an_artifact_for_this_machine() {
    let Some(f) = fixtures() else { return };
    let c = corpus("c-cli").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("c-cli");
    let elsewhere = elsewhere();
    build_signed(&c, &layout, &f.key("trusted.key"), &["-t", elsewhere]);
    let out = f.run(s(&layout), &[]);
    refused(&out, &format!("{elsewhere}: built for another platform"));
    assert_stderr_has(&out, "--allow-jit");

    // With --allow-jit the portable component is compiled, with a warning that says why.
    let out = f.run(s(&layout), &["--allow-jit"]);
    assert_exit(&out, 0);
    assert_stderr_has(
        &out,
        "warning: --allow-jit: compiling the portable component",
    );
    assert!(stderr(&out).contains("built for another platform"));
    assert_stdout_has(&out, "primes<=2: 1");
}

#[test]
fn engine_profiles_are_adopted_or_refused() {
    let Some(f) = fixtures() else { return };
    let c = corpus("c-cli").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let epoch = write(dir.path(), "epoch.toml", "epoch_interruption = true\n");
    let default = write(dir.path(), "default.toml", "");
    let layout = dir.path().join("c-cli");
    let key = f.key("trusted.key");
    build_signed(&c, &layout, &key, &["-t", here(), "--profile", s(&epoch)]);
    // By default the engine is configured for the artifact's profile, and its
    // compatibility hash matches the recorded one.
    let out = f.run(s(&layout), &[]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("primes<=2: 1"));
    // A host that insists on the default profile passes it over.
    let out = f.run(s(&layout), &["--profile", s(&default)]);
    refused(
        &out,
        "compatibility hash differs: profile with epoch interruption",
    );

    // Far from the defaults: the hash still matches (the engine is configured exactly as
    // the compiler's), the store gets fuel and a deadline, and the output is the same.
    let out = f.run(s(&f.c_cli_profiled), &[]);
    assert_exit(&out, 0);
    let plain = f.run(s(&f.c_cli), &[]);
    assert_eq!(
        stdout(&out).split(' ').next(),
        stdout(&plain).split(' ').next()
    );
    let out = pack_run(&[
        s(&f.c_cli_profiled),
        "--key",
        s(&f.trusted),
        "--profile",
        s(&default),
    ]);
    refused(&out, "with consume fuel");
}

#[test]
fn runs_bundles_pulled_from_a_registry() {
    let Some(f) = fixtures() else { return };
    let Some((registry, store)) = registry_and_tempdir() else {
        return;
    };
    let store_arg = ["--store", s(store.path())];
    let reference = |name: &str| format!("{}/team/{name}:v1", registry.addr());
    pack_push(&f.c_cli, &reference("c-cli"));
    pack_push(&f.py_cli, &reference("py-cli"));
    pack_push(&f.js_http, &reference("js-http-proxy-sm"));

    let c_ref = reference("c-cli");
    let key = ["--key", s(&f.trusted)];
    let c = corpus("c-cli").unwrap();
    same_as_wasmtime(
        &[&[c_ref.as_str()], &key[..], &store_arg[..]].concat(),
        "c-cli",
        &c,
        &["2"],
    );
    let py_ref = reference("py-cli");
    same_as_wasmtime(
        &[&[py_ref.as_str()], &key[..], &store_arg[..]].concat(),
        "py-cli",
        &corpus("py-cli").unwrap(),
        &["from", "registry"],
    );
    let js_ref = reference("js-http-proxy-sm");
    serve_and_compare(&[&[js_ref.as_str()], &key[..], &store_arg[..]].concat());

    // The store is one OCI layout shared by every reference: pulling again fetches
    // nothing, and a byte flipped in the stored artifact is refused.
    let out = f.run(&c_ref, &store_arg);
    assert_stderr_has(&out, "0 blobs fetched");
    let platform = best_platform();
    let l = Layout::open(store.path()).unwrap();
    let prefix = format!("{}_team_c-cli", registry.addr().replace(':', "_"));
    let tag = l
        .tags()
        .unwrap()
        .into_iter()
        .find(|t| t.name.starts_with(&prefix))
        .unwrap();
    let blob = cwasm_blob_of(store.path(), Some(&tag.name), &platform);
    owner_writable(&blob);
    flip_text_byte(&blob);
    let out = f.run(&c_ref, &store_arg);
    refused(&out, "does not match its digest");

    // An unsigned bundle is refused before its blobs are fetched.
    let dir = tempfile::tempdir().unwrap();
    let unsigned = dir.path().join("unsigned");
    pack_build(&[s(&c), "-t", here(), "-o", s(&unsigned)]);
    pack_push(&unsigned, &reference("unsigned"));
    let fresh = tempfile::tempdir().unwrap();
    let out = pack_run(&[
        &reference("unsigned"),
        "--key",
        s(&f.trusted),
        "--store",
        s(fresh.path()),
    ]);
    refused(&out, "unsigned");
    let stored = fresh.path().join("blobs/sha256");
    let blobs = std::fs::read_dir(&stored).map(|d| d.count()).unwrap_or(0);
    assert_eq!(blobs, 0, "nothing was stored");
}

/// The runtime-only host: built without the `jit` feature, it has no Cranelift in its
/// dependency tree or its binary, and runs a bundle.
#[test]
fn the_runtime_only_host_has_no_compiler() {
    let Some(f) = fixtures() else { return };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = root().join("Cargo.toml");
    // Cargo unifies features only across the packages being built: pack-host alone.
    let tree = |features: &[&str]| {
        let out = Command::new(&cargo)
            .args(["tree", "--manifest-path", s(&manifest), "-p", "pack-host"])
            .args(["-e", "features,no-dev", "-i", "wasmtime-internal-cranelift"])
            .args(features)
            .output()
            .unwrap();
        stdout(&out)
    };
    let runtime_only = tree(&[]);
    assert!(!runtime_only.contains("cranelift"), "{runtime_only}");
    // The same query finds it once the `jit` feature asks for a compiler.
    assert!(tree(&["--features", "jit"]).contains("wasmtime-internal-cranelift v48"));

    // The tests' own target directory (cargo no longer holds its lock while tests run),
    // so the dependencies built for the tests are reused.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let build = Command::new(&cargo)
        .args([
            "build",
            "--manifest-path",
            s(&manifest),
            "-p",
            "pack-host",
            "--bin",
            "pack-host",
        ])
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", stderr(&build));
    let binary = target.join("debug/pack-host");
    let bytes = std::fs::read(&binary).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"wasmtime"), "not the binary expected");
    for needle in [
        &b"cranelift_codegen"[..],
        b"cranelift-codegen",
        b"wasmtime_internal_cranelift",
    ] {
        assert!(
            !contains(needle),
            "{} is in the runtime-only host",
            String::from_utf8_lossy(needle)
        );
    }

    // `pack-host ARGS`, to its end.
    let host = |args: &[&str]| Command::new(&binary).args(args).output().unwrap();
    let out = host(&[s(&f.c_cli), "--key", s(&f.trusted), "--", "2"]);
    assert_exit(&out, 0);
    let expected = f.run(s(&f.c_cli), &[]);
    assert_eq!(stdout(&out), stdout(&expected));
    // `--verbose` names the artifact chosen and the manifests passed over.
    let out = host(&[s(&f.c_cli), "--verbose", "--key", s(&f.trusted), "--", "2"]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), stdout(&expected));
    let err = stderr(&out);
    let (here, elsewhere) = (here(), elsewhere());
    assert!(
        err.contains(&format!(
            "passed over {elsewhere}: built for another platform"
        )),
        "{err}"
    );
    assert!(err.contains(" artifact sha256:"), "{err}");
    assert!(err.contains(here), "{err}");
    // Artifacts of another profile load too: wasmtime checks their engine metadata.
    let out = host(&[s(&f.c_cli_profiled), "--key", s(&f.trusted), "--", "2"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("primes<=2: 1"), "{}", stdout(&out));
    let out = host(&[s(&f.c_cli), "--key", s(&f.other)]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "made by another key");
}

/// A registry pull behind the fault proxy: transient faults are retried (each a warning,
/// or a `retry` event with --json) and the component runs; with --retries 0 the first
/// fault is the end (exit 4) and nothing runs.
#[test]
fn registry_pulls_retry_transient_faults_and_say_so() {
    use std::sync::{Arc, Mutex};

    use crate::faultproxy::{Fault, FaultProxy, Request};

    let Some(f) = fixtures() else { return };
    let Some(registry) = Registry::start() else {
        return;
    };
    pack_push(&f.c_cli, &format!("{}/team/c-cli:v1", registry.addr()));
    let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
    let state = faults.clone();
    let proxy = FaultProxy::start(registry.addr(), move |r: &Request| {
        if r.method == "GET" && (r.is_blob_get() || r.is_manifest()) {
            state.lock().unwrap().pop().unwrap_or(Fault::Pass)
        } else {
            Fault::Pass
        }
    });
    let reference = format!("{}/team/c-cli:v1", proxy.addr);

    // `pack run` of the bundle into a fresh store, with `flags`, after `planned` faults.
    let run_after = |planned: Vec<Fault>, flags: &[&str]| {
        *faults.lock().unwrap() = planned;
        let store = tempfile::tempdir().unwrap();
        f.run(&reference, &[&["--store", s(store.path())], flags].concat())
    };

    // Two faults, two warnings, then the component's own output.
    let out = run_after(vec![Fault::ResetMidBody, Fault::Status(503, Some(0))], &[]);
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("primes<=2: 1"), "{}", stdout(&out));
    let warnings: Vec<_> = stderr(&out)
        .lines()
        .filter(|l| l.contains(" of 5 failed (") && l.contains("retrying in"))
        .map(str::to_string)
        .collect();
    assert_eq!(warnings.len(), 2, "{}", stderr(&out));
    assert!(warnings[0].contains("503"), "{warnings:#?}");
    assert!(faults.lock().unwrap().is_empty());

    // --json: the same as events, and --retries sets how many attempts there are.
    let out = run_after(
        vec![Fault::Status(500, None)],
        &["--json", "--retries", "1"],
    );
    assert_exit(&out, 0);
    let events: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(json_str)
        .collect();
    let retry = events
        .iter()
        .find(|e| e["event"] == "retry")
        .unwrap_or_else(|| panic!("no retry event in {events:#?}"));
    assert_eq!(retry["attempt"], 1);
    assert_eq!(retry["attempts"], 2);
    assert!(retry["error"].as_str().unwrap().contains("500"), "{retry}");

    // No retries: the first fault fails the pull, as a network error, before anything runs.
    let out = run_after(
        vec![Fault::Status(503, None)],
        &["--retries", "0", "--timeout", "5"],
    );
    assert_exit(&out, 4);
    assert!(!stdout(&out).contains("primes"), "{}", stdout(&out));
    assert_stderr_has(&out, "503");
}
