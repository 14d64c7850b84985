//! Hostile input: a registry that serves crafted responses (huge or endless manifests,
//! oversized indexes, blobs longer than their descriptors, unknown digest algorithms,
//! `../` titles), and layouts on disk with the same problems. Each case asserts a clear
//! refusal, a distinct exit status, nothing half-written, and, where memory is at stake,
//! that pack stopped reading near the limit (the server counts the bytes it could send).
//!
//! The registry here is a small HTTP/1.1 server on 127.0.0.1:0 that answers `/v2/`,
//! manifests and blobs from a table; anything else is a 404 in the distribution format.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::common::*;

/// pack's limit for one manifest, index, config or signature payload (4 MiB).
const LIMIT: u64 = 4 * 1024 * 1024;
/// What an endless body is cut at, should pack keep reading (it must not get there).
const ENDLESS_CAP: u64 = 1024 * 1024 * 1024;
/// How much more than the limit may have left the server when pack stops reading: what
/// the kernel's socket buffers on both ends hold. Far below `ENDLESS_CAP`.
const SLACK: u64 = 60 * 1024 * 1024;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A response body.
#[derive(Clone)]
pub enum Body {
    /// These bytes, with their `Content-Length`.
    Bytes(Vec<u8>),
    /// `prefix` then spaces without end (up to [`ENDLESS_CAP`]); with `Content-Length:
    /// length` when given, else chunked.
    Endless {
        prefix: Vec<u8>,
        length: Option<u64>,
    },
}

/// One entry of the table.
#[derive(Clone)]
pub struct Route {
    pub status: u16,
    pub content_type: String,
    pub body: Body,
}

impl Route {
    fn json(media_type: &str, bytes: Vec<u8>) -> Self {
        Route {
            status: 200,
            content_type: media_type.to_string(),
            body: Body::Bytes(bytes),
        }
    }

    fn blob(bytes: Vec<u8>) -> Self {
        Self::json("application/octet-stream", bytes)
    }
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    /// Per path: bytes of body the server could hand to the kernel.
    sent: Mutex<HashMap<String, u64>>,
    /// Every request line, in order.
    requests: Mutex<Vec<String>>,
}

/// The hostile registry; stops on drop.
pub struct HostileRegistry {
    addr: String,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

impl HostileRegistry {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State::default());
        let stop = Arc::new(AtomicBool::new(false));
        {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || serve(conn, &state));
                }
            });
        }
        HostileRegistry { addr, state, stop }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Serves `route` at `/v2/app/manifests/<reference>`.
    pub fn manifest(&self, reference: &str, route: Route) {
        self.route(&format!("/v2/app/manifests/{reference}"), route);
    }

    /// Serves `route` at `/v2/app/blobs/<digest>`.
    pub fn blob(&self, digest: &str, route: Route) {
        self.route(&format!("/v2/app/blobs/{digest}"), route);
    }

    fn route(&self, path: &str, route: Route) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), route);
    }

    /// Body bytes sent for `path` so far.
    pub fn sent(&self, path: &str) -> u64 {
        self.state
            .sent
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Request lines (`GET /v2/...`) received so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(mut conn: TcpStream, state: &State) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default().to_string();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    state
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {path}"));
    let route = if path == "/v2/" {
        Some(Route::json("application/json", b"{}".to_vec()))
    } else {
        state.routes.lock().unwrap().get(&path).cloned()
    };
    let route = route.unwrap_or_else(|| Route {
        status: 404,
        content_type: "application/json".to_string(),
        body: Body::Bytes(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#.to_vec(),
        ),
    });
    let reason = match route.status {
        200 => "OK",
        404 => "Not Found",
        _ => "Other",
    };
    let mut response = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nConnection: close\r\n",
        route.status, route.content_type
    );
    match &route.body {
        Body::Bytes(bytes) => response.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
        Body::Endless {
            length: Some(length),
            ..
        } => response.push_str(&format!("Content-Length: {length}\r\n")),
        Body::Endless { length: None, .. } => {
            response.push_str("Transfer-Encoding: chunked\r\n");
        }
    }
    response.push_str("\r\n");
    if conn.write_all(response.as_bytes()).is_err() || method == "HEAD" {
        return;
    }
    let count = |n: usize| {
        *state.sent.lock().unwrap().entry(path.clone()).or_default() += n as u64;
    };
    match route.body {
        Body::Bytes(bytes) => {
            if conn.write_all(&bytes).is_ok() {
                count(bytes.len());
            }
        }
        Body::Endless { prefix, length } => {
            let chunked = length.is_none();
            let filler = vec![b' '; 64 * 1024];
            let mut total = 0u64;
            let mut first = Some(prefix);
            while total < ENDLESS_CAP {
                let chunk = first.take().unwrap_or_else(|| filler.clone());
                let ok = if chunked {
                    conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .and_then(|_| conn.write_all(&chunk))
                        .and_then(|_| conn.write_all(b"\r\n"))
                } else {
                    conn.write_all(&chunk)
                };
                if ok.is_err() {
                    return;
                }
                total += chunk.len() as u64;
                count(chunk.len());
            }
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// `pack pull` of `addr/app:<tag>` into `dir/out`, with no credentials around.
fn pull(dir: &Path, addr: &str, tag: &str) -> Output {
    pack()
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env("HOME", dir)
        .env_remove("PACK_REGISTRY_USERNAME")
        .env_remove("PACK_REGISTRY_PASSWORD")
        .args([
            "pull",
            &format!("{addr}/app:{tag}"),
            "-o",
            s(&dir.join("out")),
        ])
        .output()
        .unwrap()
}

/// Nothing was written: no layout, or one without the tag and without blobs.
fn assert_nothing_pulled(dir: &Path) {
    let out = dir.join("out");
    if !out.exists() {
        return;
    }
    let index = std::fs::read_to_string(out.join("index.json")).unwrap_or_default();
    assert!(!index.contains("\"v1\""), "the tag was written: {index}");
    let blobs: Vec<_> = std::fs::read_dir(out.join("blobs/sha256"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(blobs.is_empty(), "blobs were written: {blobs:?}");
}

/// A small valid image: config, one layer (with `layer_annotations`), manifest, index.
/// Returns (index bytes, manifest bytes, [(digest, blob)]).
fn image(layer: &[u8], layer_annotations: Value) -> (Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>) {
    let config = b"{}".to_vec();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/octet-stream",
            "digest": sha256(layer),
            "size": layer.len(),
            "annotations": layer_annotations,
        }],
    }))
    .unwrap();
    let index = index_of(&[json!({
        "mediaType": MANIFEST,
        "digest": sha256(&manifest),
        "size": manifest.len(),
        "platform": {"os": "linux", "architecture": "amd64"},
    })]);
    let blobs = vec![(sha256(&config), config), (sha256(layer), layer.to_vec())];
    (index, manifest, blobs)
}

fn index_of(entries: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": entries,
    }))
    .unwrap()
}

/// Serves `image(...)` under tag `v1`.
fn serve_image(
    registry: &HostileRegistry,
    index: &[u8],
    manifest: &[u8],
    blobs: &[(String, Vec<u8>)],
) {
    registry.manifest("v1", Route::json(INDEX, index.to_vec()));
    registry.manifest(&sha256(manifest), Route::json(MANIFEST, manifest.to_vec()));
    for (digest, bytes) in blobs {
        registry.blob(digest, Route::blob(bytes.clone()));
    }
}

#[test]
fn a_1_gib_manifest_is_refused_by_its_length_before_it_is_read() {
    let registry = HostileRegistry::start();
    registry.manifest(
        "v1",
        Route {
            status: 200,
            content_type: INDEX.to_string(),
            body: Body::Endless {
                prefix: br#"{"schemaVersion":2,"manifests":["#.to_vec(),
                length: Some(ENDLESS_CAP),
            },
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let out = pull(dir.path(), registry.addr(), "v1");
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("a manifest of 1073741824 bytes, more than the 4194304 bytes")
            && err.contains("refused before reading it"),
        "{err}"
    );
    let sent = registry.sent("/v2/app/manifests/v1");
    assert!(sent < LIMIT + SLACK, "pack read {sent} bytes of it");
    assert_nothing_pulled(dir.path());
}

#[test]
fn an_endless_chunked_manifest_is_cut_at_the_limit() {
    let registry = HostileRegistry::start();
    registry.manifest(
        "v1",
        Route {
            status: 200,
            content_type: INDEX.to_string(),
            body: Body::Endless {
                prefix: br#"{"schemaVersion":2,"manifests":["#.to_vec(),
                length: None,
            },
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let out = pull(dir.path(), registry.addr(), "v1");
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("more than the 4194304 bytes pack reads for one; stopped reading there"),
        "{err}"
    );
    let sent = registry.sent("/v2/app/manifests/v1");
    assert!(sent < LIMIT + SLACK, "pack read {sent} bytes of it");
    assert_nothing_pulled(dir.path());
}

#[test]
fn an_index_with_100000_entries_is_refused_and_one_with_2000_fetches_nothing() {
    let entry = |i: usize| {
        json!({
            "mediaType": MANIFEST,
            "digest": sha256(i.to_string().as_bytes()),
            "size": 100,
        })
    };
    // 100,000 entries: about 13 MB, over the byte limit.
    let huge = index_of(&(0..100_000).map(entry).collect::<Vec<_>>());
    assert!(huge.len() as u64 > LIMIT);
    let registry = HostileRegistry::start();
    registry.manifest("v1", Route::json(INDEX, huge));
    let dir = tempfile::tempdir().unwrap();
    let out = pull(dir.path(), registry.addr(), "v1");
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("more than the 4194304 bytes"),
        "{}",
        stderr(&out)
    );
    assert_nothing_pulled(dir.path());

    // 2,000 entries fit in the byte limit but not in the entry limit: refused before
    // any of them is fetched.
    let many = index_of(&(0..2_000).map(entry).collect::<Vec<_>>());
    assert!((many.len() as u64) < LIMIT);
    let registry = HostileRegistry::start();
    registry.manifest("v1", Route::json(INDEX, many));
    let dir = tempfile::tempdir().unwrap();
    let out = pull(dir.path(), registry.addr(), "v1");
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("it lists 2000 manifests, more than the 1024 pack follows"),
        "{}",
        stderr(&out)
    );
    let fetched: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.contains("/manifests/sha256:"))
        .collect();
    assert!(fetched.is_empty(), "{fetched:?}");
    assert_nothing_pulled(dir.path());
}

#[test]
fn a_blob_longer_than_its_descriptor_is_refused_and_not_kept() {
    let layer = b"the layer".to_vec();
    let (index, manifest, blobs) = image(&layer, json!({}));
    let layer_digest = sha256(&layer);
    let layer_path = format!("/v2/app/blobs/{layer_digest}");
    for length in [Some(ENDLESS_CAP), None] {
        let registry = HostileRegistry::start();
        serve_image(&registry, &index, &manifest, &blobs);
        registry.blob(
            &layer_digest,
            Route {
                status: 200,
                content_type: "application/octet-stream".to_string(),
                body: Body::Endless {
                    prefix: layer.clone(),
                    length,
                },
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let out = pull(dir.path(), registry.addr(), "v1");
        assert_code(&out, 2);
        let err = stderr(&out);
        let expected = match length {
            Some(_) => "the registry sends 1073741824 bytes, the descriptor says 9",
            None => "the registry sent more than the 9 bytes the descriptor says",
        };
        assert!(err.contains(expected), "{err}");
        let sent = registry.sent(&layer_path);
        assert!(sent < SLACK, "pack read {sent} bytes of it");
        // Blobs that arrived whole may stay (a later pull resumes from them); the bad
        // one, its temporary file and the tag do not.
        let out = dir.path().join("out");
        assert!(!out.join("blobs/sha256").join(&layer_digest[7..]).exists());
        let index = std::fs::read_to_string(out.join("index.json")).unwrap();
        assert!(!index.contains("\"v1\""), "{index}");
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".pack-tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn a_dot_dot_title_is_never_a_path() {
    let layer = b"payload".to_vec();
    let (index, manifest, blobs) = image(
        &layer,
        json!({"org.opencontainers.image.title": "../../escaped"}),
    );
    let registry = HostileRegistry::start();
    serve_image(&registry, &index, &manifest, &blobs);
    let dir = tempfile::tempdir().unwrap();
    let out = pull(dir.path(), registry.addr(), "v1");
    assert_code(&out, 0);
    // Everything landed under blobs/sha256/<hex>; no file took the title's name.
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    let layout = dir.path().join("out");
    for f in &files {
        assert!(!f.to_string_lossy().contains("escaped"), "{}", f.display());
        let rel = f.strip_prefix(&layout).unwrap_or_else(|_| {
            panic!("a file outside the layout: {}", f.display());
        });
        let rel = rel.to_string_lossy();
        assert!(
            rel == "oci-layout" || rel == "index.json" || rel.starts_with("blobs/sha256/"),
            "{rel}"
        );
    }
    assert!(
        layout
            .join("blobs/sha256")
            .join(&sha256(&layer)[7..])
            .is_file()
    );
}

#[test]
fn unknown_digest_algorithms_are_refused_before_they_are_fetched() {
    for (digest, in_layer) in [
        (format!("sha999:{}", "a".repeat(64)), false),
        ("md5:d41d8cd98f00b204e9800998ecf8427e".to_string(), true),
    ] {
        let registry = HostileRegistry::start();
        let dir = tempfile::tempdir().unwrap();
        if in_layer {
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": sha256(b"{}"), "size": 2},
                "layers": [{"mediaType": "application/octet-stream", "digest": digest, "size": 1}],
            }))
            .unwrap();
            registry.manifest("v1", Route::json(MANIFEST, manifest));
        } else {
            let index = index_of(&[json!({"mediaType": MANIFEST, "digest": digest, "size": 10})]);
            registry.manifest("v1", Route::json(INDEX, index));
        }
        let out = pull(dir.path(), registry.addr(), "v1");
        assert_code(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("descriptor {digest} uses the digest algorithm"))
                && err.contains("pack reads only sha256"),
            "{err}"
        );
        let followed: Vec<_> = registry
            .requests()
            .into_iter()
            .filter(|r| r.contains(&digest))
            .collect();
        assert!(followed.is_empty(), "{followed:?}");
        assert_nothing_pulled(dir.path());
    }
}

#[test]
fn an_endless_error_body_is_not_read_to_its_end() {
    let registry = HostileRegistry::start();
    registry.manifest(
        "v1",
        Route {
            status: 404,
            content_type: "application/json".to_string(),
            body: Body::Endless {
                prefix: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"#.to_vec(),
                length: None,
            },
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let out = pull(dir.path(), registry.addr(), "v1");
    assert_code(&out, 2);
    let sent = registry.sent("/v2/app/manifests/v1");
    assert!(sent < SLACK, "pack read {sent} bytes of the error");
    assert_nothing_pulled(dir.path());
}

// ---------------------------------------------------------------------------------------
// Layouts on disk.

/// A layout holding `image(...)` under tag `v1`, written by hand.
fn layout_with(dir: &Path, index: &[u8], blobs: &[(String, Vec<u8>)]) -> PathBuf {
    let layout = dir.join("layout");
    write(&layout, "oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#);
    for (digest, bytes) in blobs {
        write(&layout, &format!("blobs/sha256/{}", &digest[7..]), bytes);
    }
    write(
        &layout,
        &format!("blobs/sha256/{}", &sha256(index)[7..]),
        index,
    );
    let root = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{
            "mediaType": INDEX,
            "digest": sha256(index),
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    }))
    .unwrap();
    write(&layout, "index.json", root);
    layout
}

fn inspect(layout: &Path) -> Output {
    pack()
        .args(["inspect", &format!("{}:v1", s(layout))])
        .output()
        .unwrap()
}

#[test]
fn layouts_with_oversized_or_endless_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (index, manifest, mut blobs) = image(b"x", json!({}));
    blobs.push((sha256(&manifest), manifest));
    let layout = layout_with(dir.path(), &index, &blobs);

    // index.json of 100 MiB (sparse): refused by its size, not read.
    let index_json = layout.join("index.json");
    let saved = std::fs::read(&index_json).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&index_json)
        .unwrap()
        .set_len(100 * 1024 * 1024)
        .unwrap();
    let out = inspect(&layout);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("is 104857600 bytes, more than the 67108864 bytes pack reads for a layout's `index.json`"),
        "{}",
        stderr(&out)
    );

    // index.json and oci-layout as symlinks to an endless device: cut at the limit.
    #[cfg(unix)]
    {
        std::fs::remove_file(&index_json).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &index_json).unwrap();
        let out = inspect(&layout);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains("more than the 67108864 bytes pack reads"),
            "{}",
            stderr(&out)
        );
        std::fs::remove_file(&index_json).unwrap();
        std::fs::write(&index_json, &saved).unwrap();
        let marker = layout.join("oci-layout");
        std::fs::remove_file(&marker).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &marker).unwrap();
        let out = inspect(&layout);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains("more than the 4096 bytes pack reads for an `oci-layout` file"),
            "{}",
            stderr(&out)
        );
    }
}

/// Rewrites the `v1` entry of `index.json` to point at `index` (stored as a blob).
fn retag(layout: &Path, index: &[u8], size: Option<u64>) {
    write(
        layout,
        &format!("blobs/sha256/{}", &sha256(index)[7..]),
        index,
    );
    let root = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{
            "mediaType": INDEX,
            "digest": sha256(index),
            "size": size.unwrap_or(index.len() as u64),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    }))
    .unwrap();
    write(layout, "index.json", root);
}

#[test]
fn layout_documents_with_hostile_descriptors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (index, manifest, mut blobs) = image(b"x", json!({}));
    blobs.push((sha256(&manifest), manifest.clone()));
    let layout = layout_with(dir.path(), &index, &blobs);

    // A descriptor that says 1 GiB: refused before the blob is opened.
    retag(&layout, &index, Some(1 << 30));
    let out = inspect(&layout);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains(
            "is 1073741824 bytes, more than the 4194304 bytes pack reads for an image index"
        ),
        "{}",
        stderr(&out)
    );

    // A blob whose size differs from its descriptor.
    retag(&layout, &index, Some(index.len() as u64 + 1));
    let out = inspect(&layout);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("but its descriptor says"),
        "{}",
        stderr(&out)
    );

    // 2,000 entries.
    let entry = json!({"mediaType": MANIFEST, "digest": sha256(&manifest), "size": manifest.len()});
    let many = index_of(&vec![entry; 2000]);
    retag(&layout, &many, None);
    let out = inspect(&layout);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("lists 2000 manifests, more than the 1024 pack follows"),
        "{}",
        stderr(&out)
    );

    // Unknown digest algorithms, in the index and in a manifest.
    let odd = index_of(&[
        json!({"mediaType": MANIFEST, "digest": format!("sha999:{}", "b".repeat(64)), "size": 10}),
    ]);
    retag(&layout, &odd, None);
    let out = inspect(&layout);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("uses the digest algorithm `sha999`; pack reads only sha256"),
        "{}",
        stderr(&out)
    );
    let md5_manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "md5:d41d8cd98f00b204e9800998ecf8427e", "size": 2},
        "layers": [],
    }))
    .unwrap();
    write(
        &layout,
        &format!("blobs/sha256/{}", &sha256(&md5_manifest)[7..]),
        &md5_manifest,
    );
    let with_md5 = index_of(&[
        json!({"mediaType": MANIFEST, "digest": sha256(&md5_manifest), "size": md5_manifest.len()}),
    ]);
    retag(&layout, &with_md5, None);
    let out = inspect(&layout);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("uses the digest algorithm `md5`; pack reads only sha256"),
        "{}",
        stderr(&out)
    );
}
