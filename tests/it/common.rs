//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `pack` binary under test, with a clean environment for color and CI detection.
pub fn pack() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_pack"));
    cmd.env_remove("PACK_COLOR").env("NO_COLOR", "1");
    cmd
}

/// `pack` as a user whose home is `home`, working in `home`, with nothing of the test
/// process's configuration: every `PACK_*` variable, `DOCKER_CONFIG`, `CI`,
/// `SOURCE_DATE_EPOCH` and the `XDG_*` directories are cleared; the docker config is
/// `home/docker`, the compile cache `home/cache`, the content store `home/store`. Tests
/// add what they are about.
pub fn pack_in(home: &Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(pack_std_in(home))
}

/// Runs [`pack_in`] `home` with `args` to its end: its status and output.
pub fn pack_output(home: &Path, args: &[&str]) -> std::process::Output {
    pack_in(home).args(args).output().unwrap()
}

/// [`pack_in`] as a `std::process::Command` (for tests that spawn and signal it), with
/// stdin closed.
pub fn pack_std_in(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pack"));
    clear_configuration(&mut cmd);
    cmd.current_dir(home)
        .env("NO_COLOR", "1")
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("PACK_CACHE_DIR", home.join("cache"))
        .env("PACK_STORE", home.join("store"))
        .stdin(std::process::Stdio::null());
    cmd
}

/// Removes from `cmd`'s environment everything that configures pack: every `PACK_*`
/// variable, the `XDG_*` directories, `DOCKER_CONFIG`, `CI` and `SOURCE_DATE_EPOCH`.
pub fn clear_configuration(cmd: &mut std::process::Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("PACK_") || name.starts_with("XDG_") {
            cmd.env_remove(&*name);
        }
    }
    for name in ["DOCKER_CONFIG", "CI", "SOURCE_DATE_EPOCH"] {
        cmd.env_remove(name);
    }
}

/// Asserts that `out` exited with `code`, showing its stdout and stderr when not.
#[track_caller]
pub fn assert_exit(out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Copies the directory `from` to `to`, recursively (files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A temporary directory for outputs that tests share for the whole test process, put in a
/// static. Statics are never dropped, so a `tempfile::tempdir()` there would be left behind
/// in `/tmp` by every run; these live under `$CARGO_TARGET_TMPDIR/shared-<pid>` instead, and
/// the first call of a process removes the directories of test processes that have ended.
pub fn shared_tempdir() -> tempfile::TempDir {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_ended_processes_dirs(base);
        let dir = base.join(format!("shared-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    tempfile::tempdir_in(dir).unwrap()
}

/// Removes `shared-<pid>` directories under `base` whose process no longer runs.
fn remove_ended_processes_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("shared-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    let path = root().join("fixtures").join(rel);
    assert!(path.exists(), "missing fixture {}", path.display());
    path
}

/// Whether this is a CI run, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The shared corpus of third-party components, from `PACK_CORPUS` (or `../shared/corpus`
/// beside the checkout). Returns `None` (the caller skips) when it is missing outside
/// CI; in CI a missing corpus fails the test.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PACK_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/corpus"));
    if dir.join("components").is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "the corpus is missing at {} (set PACK_CORPUS); CI must not skip corpus tests",
        dir.display()
    );
    eprintln!(
        "skipping: corpus not found at {} (set PACK_CORPUS)",
        dir.display()
    );
    None
}

/// A component of the corpus, e.g. `corpus("c-cli")`.
pub fn corpus(name: &str) -> Option<PathBuf> {
    let path = corpus_dir()?
        .join("components")
        .join(format!("{name}.component.wasm"));
    assert!(path.exists(), "missing corpus component {}", path.display());
    Some(path)
}

/// A WIT path of the corpus, e.g. `corpus_wit("wasi-wit-0.2.12")`.
pub fn corpus_wit(name: &str) -> Option<PathBuf> {
    Some(corpus_dir()?.join("wit").join(name))
}

/// Finds an external tool on PATH. Outside CI a missing tool skips the test (with a
/// message); in CI it fails, since `.ci/run` installs every tool the tests need.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(!in_ci(), "`{name}` is not on PATH; .ci/run must install it");
        eprintln!("skipping: `{name}` is not on PATH");
    }
    found
}

/// stdout of a finished command as a string.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of a finished command as a string.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, contents).unwrap();
    path
}

/// The digest a tag of an OCI layout points at (from its `index.json`).
pub fn index_digest(layout: &Path, tag: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", layout.display()))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// stdout of a finished command parsed as JSON; the panic shows both streams.
pub fn json_stdout(out: &std::process::Output) -> serde_json::Value {
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)));
    assert_json_contract(&value);
    value
}

/// `text` as JSON (a `--json` document or event), checked against the contract.
pub fn json_str(text: &str) -> serde_json::Value {
    let value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_json_contract(&value);
    value
}

/// Keys whose values are maps of names pack does not choose (wasmtime settings, OCI
/// annotations, environment variables, layers by digest): their keys are left as they
/// are.
const DATA_MAPS: &[&str] = &["settings", "annotations", "env", "uncompressed"];

/// docs/json.md: every key pack chooses is camelCase (`^[a-z][a-zA-Z0-9]*$`), in every
/// command's `--json` document and event.
pub fn assert_json_contract(value: &serde_json::Value) {
    fn walk(value: &serde_json::Value, path: &str) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    let camel = key.starts_with(|c: char| c.is_ascii_lowercase())
                        && key.chars().all(|c| c.is_ascii_alphanumeric());
                    assert!(
                        camel,
                        "key `{key}` at `{path}` is not camelCase (docs/json.md)"
                    );
                    if !DATA_MAPS.contains(&key.as_str()) {
                        walk(v, &format!("{path}.{key}"));
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }
    walk(value, "$");
}

/// A path as the `&str` command arguments take.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// This machine's platform, as `pack build --target` takes it.
pub fn here() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    }
}

/// `GET path` over HTTP/1.1 to `addr`: (status, body; a chunked body joined).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_get_host(addr, addr, path)
}

/// [`http_get`] with another `Host` header. A response without a head gives status 0
/// and the whole text.
pub fn http_get_host(addr: &str, host: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, text);
    };
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}
