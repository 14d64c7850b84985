//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt as _;
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

/// The compile cache the integration tests share across runs, so that a component is
/// compiled once per machine, not once per test (compiling a Python one takes seconds).
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pack-run-cache")
}

/// `pack build ARGS` with the [`shared_cache_dir`]; it must succeed.
#[track_caller]
pub fn pack_build(args: &[&str]) {
    let out = pack()
        .env("PACK_CACHE_DIR", shared_cache_dir())
        .arg("build")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pack build {args:?}: {}",
        stderr(&out)
    );
}

/// The hello-cli fixture built for `target` into `layout`, signed with `key` (through
/// the [`shared_cache_dir`]).
#[track_caller]
pub fn build_hello(target: &str, layout: &Path, key: &Path) {
    let hello = fixture("components/hello-cli.wasm");
    pack_build(&[
        s(&hello),
        "-t",
        target,
        "-o",
        s(layout),
        "--sign-key",
        s(key),
    ]);
}

/// What the hello-cli fixture prints when it runs.
pub const HELLO_RAN: &str = "hello from pack fixture";

/// A key pair and builds of the hello-cli fixture signed with it ([`build_hello`]), in a
/// directory that lasts as long as the test binary: a test file keeps one in a
/// `OnceLock` and shares it between its tests.
pub struct SignedHello {
    _dir: tempfile::TempDir,
    pub public: PathBuf,
    pub private: PathBuf,
    layouts: Vec<(&'static str, PathBuf)>,
}

impl SignedHello {
    /// The key pair `key`, and a layout `name` built for `target` for each of `builds`.
    pub fn build(key: &str, builds: &[(&'static str, &str)]) -> Self {
        let dir = shared_tempdir();
        let (private, public) = key_pair(dir.path(), key);
        let layouts = builds
            .iter()
            .map(|&(name, target)| {
                let layout = dir.path().join(name);
                build_hello(target, &layout, &private);
                (name, layout)
            })
            .collect();
        SignedHello {
            _dir: dir,
            public,
            private,
            layouts,
        }
    }

    /// `pack run BUNDLE --key <the public key> EXTRA...`.
    pub fn run(&self, bundle: impl AsRef<std::ffi::OsStr>, extra: &[&str]) -> std::process::Output {
        pack()
            .arg("run")
            .arg(bundle)
            .arg("--key")
            .arg(&self.public)
            .args(extra)
            .output()
            .unwrap()
    }

    /// The layout built as `name`.
    pub fn layout(&self, name: &str) -> &Path {
        let found = self.layouts.iter().find(|(n, _)| *n == name);
        &found.unwrap_or_else(|| panic!("no build named {name}")).1
    }
}

/// `pack push LAYOUT REFERENCE` (the layout's `latest` tag); it must succeed.
#[track_caller]
pub fn pack_push(layout: &Path, reference: &str) {
    let out = pack()
        .args(["push", s(layout), reference])
        .output()
        .unwrap();
    assert!(out.status.success(), "pack push: {}", stderr(&out));
}

/// An unencrypted key pair from `pack key generate` in `dir`: (`<name>.key`, `<name>.pub`).
#[track_caller]
pub fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    generate_key(dir, name, None)
}

/// A key pair from `pack key generate` in `dir`, its private key encrypted with
/// `password`: (`<name>.key`, `<name>.pub`).
#[track_caller]
pub fn encrypted_key_pair(dir: &Path, name: &str, password: &str) -> (PathBuf, PathBuf) {
    generate_key(dir, name, Some(password))
}

#[track_caller]
fn generate_key(dir: &Path, name: &str, password: Option<&str>) -> (PathBuf, PathBuf) {
    let mut cmd = pack_in(dir);
    cmd.args(["key", "generate", "--output-prefix", name]);
    match password {
        Some(password) => cmd.env("PACK_KEY_PASSWORD", password),
        None => cmd.arg("--no-password"),
    };
    assert_exit(&cmd.output().unwrap(), 0);
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// Asserts that `out`'s stderr contains `text` (the panic shows the stderr).
#[track_caller]
pub fn assert_stderr_has(out: &std::process::Output, text: impl AsRef<str>) {
    let stderr = stderr(out);
    assert!(stderr.contains(text.as_ref()), "{stderr}");
}

/// Asserts that `out`'s stdout contains `text` (the panic shows the stdout).
#[track_caller]
pub fn assert_stdout_has(out: &std::process::Output, text: impl AsRef<str>) {
    let stdout = stdout(out);
    assert!(stdout.contains(text.as_ref()), "{stdout}");
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

/// A copy of the OCI layout `from` at `to` (to damage or to check permissions on):
/// directories 0755 and files 0644 whatever this process's umask, writable by their
/// owner only (pack refuses what others can write).
pub fn copy_layout(from: &Path, to: &Path) {
    for dir in [to.to_path_buf(), to.join("blobs"), to.join("blobs/sha256")] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut files = vec![PathBuf::from("oci-layout"), PathBuf::from("index.json")];
    for entry in std::fs::read_dir(from.join("blobs/sha256")).unwrap() {
        files.push(Path::new("blobs/sha256").join(entry.unwrap().file_name()));
    }
    for file in files {
        std::fs::copy(from.join(&file), to.join(&file)).unwrap();
        std::fs::set_permissions(to.join(&file), std::fs::Permissions::from_mode(0o644)).unwrap();
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

/// What a test does when something it needs is `missing`: outside CI it says so and
/// skips (`None`); in CI, where `.ci/run` installs everything the tests need, it fails.
#[track_caller]
pub fn skip<T>(missing: impl std::fmt::Display) -> Option<T> {
    assert!(!in_ci(), "{missing}; CI must not skip this test");
    eprintln!("skipping: {missing}");
    None
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
    skip(format_args!(
        "the corpus is missing at {} (set PACK_CORPUS)",
        dir.display()
    ))
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
    found.or_else(|| skip(format_args!("`{name}` is not on PATH")))
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

/// The SHA-256 of `bytes` in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The OCI digest of `bytes`: `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// A JSON file, parsed (the panic names the file).
pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An OCI layout's `index.json`.
pub fn layout_index(layout: &Path) -> serde_json::Value {
    read_json(&layout.join("index.json"))
}

/// A blob of an OCI layout (`sha256:<hex>`), parsed as JSON.
pub fn blob_json(layout: &Path, digest: &str) -> serde_json::Value {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    read_json(&layout.join("blobs/sha256").join(hex))
}

/// The entries of an index's (or a `--json` summary's) `manifests`.
pub fn manifests(index: &serde_json::Value) -> &[serde_json::Value] {
    index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("no manifests in {index}"))
}

/// The first entry of `manifests` that `pick` chooses (the panic shows the index).
pub fn entry_where(
    index: &serde_json::Value,
    pick: impl Fn(&serde_json::Value) -> bool,
) -> &serde_json::Value {
    manifests(index)
        .iter()
        .find(|m| pick(m))
        .unwrap_or_else(|| panic!("no such entry in {index}"))
}

/// The tag of an index entry (its `org.opencontainers.image.ref.name`), if it has one.
pub fn tag_of(entry: &serde_json::Value) -> Option<&str> {
    entry["annotations"]["org.opencontainers.image.ref.name"].as_str()
}

/// The entry of an index tagged `tag`, if any.
pub fn tagged<'a>(index: &'a serde_json::Value, tag: &str) -> Option<&'a serde_json::Value> {
    manifests(index).iter().find(|m| tag_of(m) == Some(tag))
}

/// The tags of an index's entries, in order.
pub fn tags(index: &serde_json::Value) -> Vec<&str> {
    manifests(index).iter().filter_map(tag_of).collect()
}

/// The digest a tag of an OCI layout points at (from its `index.json`).
pub fn index_digest(layout: &Path, tag: &str) -> String {
    let index = layout_index(layout);
    tagged(&index, tag).unwrap_or_else(|| panic!("no tag {tag} in {}", layout.display()))["digest"]
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

/// Another Linux platform than [`here`]: its bundles are foreign to this machine.
pub fn elsewhere() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "linux/amd64"
    } else {
        "linux/arm64"
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

/// For the tests' own HTTP servers and proxies: reads an HTTP head (up to the blank line,
/// at most 64 KiB) byte by byte; `None` at the end of the stream.
pub fn read_head(stream: &mut impl Read) -> std::io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Err(std::io::Error::other("an HTTP head of more than 64 KiB"));
        }
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// The method and the path (without its query) of an HTTP request head.
pub fn request_line(head: &str) -> (String, String) {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_string();
    (method, path)
}

/// The `.cwasm` layer of the native manifest for `platform` (`os/arch`) that `tag` of
/// `layout` points to: the layer's digest, and the path of its content (the layer's blob,
/// or the uncompressed copy a content store keeps beside a compressed layer).
pub fn cwasm_layer(layout: &Path, tag: &str, platform: &str) -> (String, PathBuf) {
    let l = pack_packager::Layout::open(layout).unwrap();
    let index = l.read_image_index(&l.resolve(tag).unwrap()).unwrap();
    let entry = index
        .manifests()
        .iter()
        .find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| pack_packager::bundle::platform_string(p) == platform)
        })
        .unwrap_or_else(|| panic!("no {platform} manifest in {}:{tag}", layout.display()));
    let manifest = l.read_manifest(entry).unwrap();
    let cwasm = manifest
        .layers()
        .iter()
        .find(|l| {
            pack_packager::compression::plain_media_type(l.media_type().as_ref())
                == pack_packager::media_types::CWASM_LAYER
        })
        .unwrap();
    // A compressed layer's content, when the layout keeps it (the content store does).
    let config: pack_packager::NativeConfig =
        l.read_json(manifest.config(), "native config").unwrap();
    if let Some(content) = config.uncompressed_of(cwasm).unwrap() {
        let digest = pack_packager::layout::parse_sha256(&content.digest).unwrap();
        if l.has_blob(&digest) {
            return (cwasm.digest().to_string(), l.blob_path(&digest).unwrap());
        }
    }
    (
        cwasm.digest().to_string(),
        l.blob_path(cwasm.digest()).unwrap(),
    )
}

/// Spawns `cmd` with stdin and stdout closed and stderr piped, and a thread that sends
/// each line of its stderr, as `parse` makes of it, to the receiver returned.
pub fn spawn_reading_stderr<T: Send + 'static>(
    cmd: &mut std::process::Command,
    parse: impl Fn(String) -> T + Send + 'static,
) -> (std::process::Child, std::sync::mpsc::Receiver<T>) {
    use std::io::BufRead as _;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(parse(line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// A process the test started (a server), killed and waited for when dropped.
pub struct Spawned(pub std::process::Child);

impl Spawned {
    /// Sends it the signal `name` (`-INT`, `-TERM`, `-HUP`) with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.0.id().to_string();
        std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
    }

    /// Its exit code, waiting up to `within` for it to end; `None` while it runs on (or
    /// when a signal ended it).
    pub fn exit_code_within(&mut self, within: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asserts that a pull into `layout` that failed on the blob `hex` left nothing of it
/// behind: not that blob, no temporary file, and no `v1` tag in `index.json` (blobs that
/// arrived whole may stay, for a later pull to resume from).
#[track_caller]
pub fn assert_failed_pull_left_nothing(layout: &Path, hex: &str) {
    let blob = layout.join("blobs/sha256").join(hex);
    assert!(!blob.exists(), "{} was kept", blob.display());
    let temporary = temp_files(layout);
    assert!(temporary.is_empty(), "{temporary:?}");
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(!index.contains("\"v1\""), "{index}");
}

/// The temporary files (`.pack-tmp-*`) in the directory `dir` (none when it does not exist).
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".pack-tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Flips the bits of the middle byte of the file `path` (its length stays).
pub fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
}

/// Nothing pulled into `out`: no layout, or one without the tag and without blobs.
#[track_caller]
pub fn assert_nothing_pulled(out: &Path) {
    if !out.exists() {
        return;
    }
    let index = std::fs::read_to_string(out.join("index.json")).unwrap_or_default();
    assert!(!index.contains("\"v1\""), "the tag was written: {index}");
    let blobs: Vec<_> = std::fs::read_dir(out.join("blobs/sha256"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(blobs.is_empty(), "blobs were written: {blobs:?}");
}

/// A registry for a test that also runs skopeo; `None` (the caller skips) when either is
/// missing outside CI.
pub fn registry_with_skopeo() -> Option<crate::registry::Registry> {
    crate::registry::require("skopeo")?;
    crate::registry::Registry::start()
}

/// skopeo copies `repo_tag` (every platform) from `registry` into the OCI layout `layout`,
/// tagged `tag`.
pub fn skopeo_pull(registry: &crate::registry::Registry, repo_tag: &str, layout: &Path, tag: &str) {
    crate::registry::skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &registry.docker_ref(repo_tag),
        &crate::registry::oci_ref(layout, tag),
    ]);
}

/// A registry and a temporary directory for the test's files (a home, keys); `None` (the
/// caller skips) when `docker-registry` is missing outside CI.
pub fn registry_and_tempdir() -> Option<(crate::registry::Registry, tempfile::TempDir)> {
    let registry = crate::registry::Registry::start()?;
    Some((registry, tempfile::tempdir().unwrap()))
}

/// The string `key` of each object of the JSON array `items`, in order (the panic shows
/// what is not there).
pub fn strings_of<'a>(items: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|item| {
            item[key]
                .as_str()
                .unwrap_or_else(|| panic!("no string `{key}` in {item}"))
        })
        .collect()
}

/// The names of the entries of the directory `dir`.
pub fn file_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every file under `dir`, at any depth (none when `dir` does not exist, and a directory
/// that vanishes while it is read is passed over: the tree may be written at the time).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
