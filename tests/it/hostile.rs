//! Hostile input: a registry that serves crafted responses (huge or endless manifests,
//! oversized indexes, blobs longer than their descriptors, unknown digest algorithms,
//! `../` titles), and layouts on disk with the same problems. Each case asserts a clear
//! refusal, a distinct exit status, nothing half-written, and, where memory is at stake,
//! that pack stopped reading near the limit (the server counts the bytes it could send).
//!
//! The registry here is a small HTTP/1.1 server on 127.0.0.1:0 that answers `/v2/`,
//! manifests and blobs from a table; anything else is a 404 in the distribution format.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

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

    /// `status` with a body that never ends: `prefix` then spaces, with `Content-Length:
    /// length` when given, else chunked.
    fn endless(status: u16, content_type: &str, prefix: &[u8], length: Option<u64>) -> Self {
        Route {
            status,
            content_type: content_type.to_string(),
            body: Body::Endless {
                prefix: prefix.to_vec(),
                length,
            },
        }
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

    /// Request lines (`GET /v2/...`) received so far that contain `text`.
    pub fn requests_with(&self, text: &str) -> Vec<String> {
        let requests = self.state.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.contains(text))
            .cloned()
            .collect()
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
    let Ok(Some(head)) = read_head(&mut conn) else {
        return;
    };
    let (method, path) = request_line(&head);
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

/// `pack pull` of `app:v1` from `registry` (with `extra` arguments) into `out` of a new
/// directory, with no credentials around: (that directory, pack's output).
fn pull(registry: &HostileRegistry, extra: &[&str]) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/app:v1", registry.addr());
    let out = dir.path().join("out");
    let args = [&["pull", &reference, "-o", s(&out)][..], extra].concat();
    let output = pack_output(dir.path(), &args);
    (dir, output)
}

/// (index bytes, manifest bytes, [(digest, blob)]) of an image.
type Image = (Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

/// An image manifest whose config is `config_digest` (`config_size` bytes) and whose
/// layers are `layers`.
fn manifest_of(config_digest: &str, config_size: usize, layers: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layers,
    }))
    .unwrap()
}

/// A small valid image: config, one layer (with `layer_annotations`), manifest, index.
fn image(layer: &[u8], layer_annotations: Value) -> Image {
    let config = b"{}".to_vec();
    let manifest = manifest_of(
        &sha256(&config),
        config.len(),
        json!([{
            "mediaType": "application/octet-stream",
            "digest": sha256(layer),
            "size": layer.len(),
            "annotations": layer_annotations,
        }]),
    );
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

/// The start of an index that never ends.
const ENDLESS_INDEX: &[u8] = br#"{"schemaVersion":2,"manifests":["#;

/// Pulls `v1` from a registry whose manifest `v1` is `route` (a body without end): pack
/// exits 2 and writes nothing. Returns pack's output and how many bytes of the manifest
/// left the server.
fn pull_endless_manifest(route: Route) -> (Output, u64) {
    let registry = HostileRegistry::start();
    registry.manifest("v1", route);
    let (dir, out) = pull(&registry, &[]);
    assert_exit(&out, 2);
    assert_nothing_pulled(&dir.path().join("out"));
    (out, registry.sent("/v2/app/manifests/v1"))
}

#[test]
fn a_1_gib_manifest_is_refused_by_its_length_before_it_is_read() {
    let route = Route::endless(200, INDEX, ENDLESS_INDEX, Some(ENDLESS_CAP));
    let (out, sent) = pull_endless_manifest(route);
    assert_stderr_has(
        &out,
        "a manifest of 1073741824 bytes, more than the 4194304 bytes",
    );
    assert_stderr_has(&out, "refused before reading it");
    assert!(sent < LIMIT + SLACK, "pack read {sent} bytes of it");
}

#[test]
fn an_endless_chunked_manifest_is_cut_at_the_limit() {
    let (out, sent) = pull_endless_manifest(Route::endless(200, INDEX, ENDLESS_INDEX, None));
    assert_stderr_has(
        &out,
        "more than the 4194304 bytes pack reads for one; stopped reading there",
    );
    assert!(sent < LIMIT + SLACK, "pack read {sent} bytes of it");
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
    let (dir, out) = pull(&registry, &[]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "more than the 4194304 bytes");
    assert_nothing_pulled(&dir.path().join("out"));

    // 2,000 entries fit in the byte limit but not in the entry limit: refused before
    // any of them is fetched.
    let many = index_of(&(0..2_000).map(entry).collect::<Vec<_>>());
    assert!((many.len() as u64) < LIMIT);
    let registry = HostileRegistry::start();
    registry.manifest("v1", Route::json(INDEX, many));
    let (dir, out) = pull(&registry, &[]);
    assert_exit(&out, 2);
    assert_stderr_has(
        &out,
        "it lists 2000 manifests, more than the 1024 pack follows",
    );
    let fetched = registry.requests_with("/manifests/sha256:");
    assert!(fetched.is_empty(), "{fetched:?}");
    assert_nothing_pulled(&dir.path().join("out"));
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
        let route = Route::endless(200, "application/octet-stream", &layer, length);
        registry.blob(&layer_digest, route);
        let (dir, out) = pull(&registry, &[]);
        assert_exit(&out, 2);
        let err = stderr(&out);
        let expected = match length {
            Some(_) => "the registry sends 1073741824 bytes, the descriptor says 9",
            None => "the registry sent more than the 9 bytes the descriptor says",
        };
        assert!(err.contains(expected), "{err}");
        let sent = registry.sent(&layer_path);
        assert!(sent < SLACK, "pack read {sent} bytes of it");
        assert_failed_pull_left_nothing(&dir.path().join("out"), &layer_digest[7..]);
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
    let (dir, out) = pull(&registry, &[]);
    assert_exit(&out, 0);
    // Everything landed under blobs/sha256/<hex>; no file took the title's name.
    let layout = dir.path().join("out");
    for f in &files_under(dir.path()) {
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
        if in_layer {
            let manifest = manifest_of(
                &sha256(b"{}"),
                2,
                json!([{"mediaType": "application/octet-stream", "digest": digest, "size": 1}]),
            );
            registry.manifest("v1", Route::json(MANIFEST, manifest));
        } else {
            let index = index_of(&[json!({"mediaType": MANIFEST, "digest": digest, "size": 10})]);
            registry.manifest("v1", Route::json(INDEX, index));
        }
        let (dir, out) = pull(&registry, &[]);
        assert_exit(&out, 2);
        assert_stderr_has(
            &out,
            format!("descriptor {digest} uses the digest algorithm"),
        );
        assert_stderr_has(&out, "pack reads only sha256");
        let followed = registry.requests_with(&digest);
        assert!(followed.is_empty(), "{followed:?}");
        assert_nothing_pulled(&dir.path().join("out"));
    }
}

#[test]
fn an_endless_error_body_is_not_read_to_its_end() {
    let prefix = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"#;
    let (_, sent) = pull_endless_manifest(Route::endless(404, "application/json", prefix, None));
    assert!(sent < SLACK, "pack read {sent} bytes of the error");
}

// ---------------------------------------------------------------------------------------
// Layouts on disk.

/// Writes `index` as a blob of `layout` and points the tag `v1` of `index.json` at it,
/// with `size` in its descriptor (by default, the index's own).
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

/// A layout holding `image(...)` under tag `v1`, written by hand.
fn layout_with(dir: &Path, index: &[u8], blobs: &[(String, Vec<u8>)]) -> PathBuf {
    let layout = dir.join("layout");
    write(&layout, "oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#);
    for (digest, bytes) in blobs {
        write(&layout, &format!("blobs/sha256/{}", &digest[7..]), bytes);
    }
    retag(&layout, index, None);
    layout
}

/// `pack inspect` of `layout:v1` exits 2 and its stderr has `expected` (`what` names
/// the case).
#[track_caller]
fn assert_inspect_refused(layout: &Path, what: &str, expected: &str) {
    let out = pack()
        .args(["inspect", &format!("{}:v1", s(layout))])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(err.contains(expected), "{what}: no {expected:?} in {err}");
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
    assert_inspect_refused(
        &layout,
        "an index.json of 100 MiB",
        "is 104857600 bytes, more than the 67108864 bytes pack reads for a layout's `index.json`",
    );
    std::fs::write(&index_json, &saved).unwrap();

    // index.json and oci-layout, each in turn a symlink to an endless device: cut at the
    // limit.
    #[cfg(unix)]
    for (name, expected) in [
        ("index.json", "more than the 67108864 bytes pack reads"),
        (
            "oci-layout",
            "more than the 4096 bytes pack reads for an `oci-layout` file",
        ),
    ] {
        let file = layout.join(name);
        let saved = std::fs::read(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
        assert_inspect_refused(&layout, &format!("{name} from /dev/zero"), expected);
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, saved).unwrap();
    }
}

#[test]
fn layout_documents_with_hostile_descriptors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (index, manifest, mut blobs) = image(b"x", json!({}));
    blobs.push((sha256(&manifest), manifest.clone()));
    let layout = layout_with(dir.path(), &index, &blobs);
    let entry = json!({"mediaType": MANIFEST, "digest": sha256(&manifest), "size": manifest.len()});
    let md5_manifest = manifest_of("md5:d41d8cd98f00b204e9800998ecf8427e", 2, json!([]));
    write(
        &layout,
        &format!("blobs/sha256/{}", &sha256(&md5_manifest)[7..]),
        &md5_manifest,
    );
    let sha999 = format!("sha999:{}", "b".repeat(64));

    // (case, the index `v1` points at, the size its descriptor says, what pack says)
    let cases: [(&str, Vec<u8>, Option<u64>, &str); 5] = [
        (
            "a descriptor that says 1 GiB (refused before the blob is opened)",
            index.clone(),
            Some(1 << 30),
            "is 1073741824 bytes, more than the 4194304 bytes pack reads for an image index",
        ),
        (
            "a blob whose size differs from its descriptor",
            index.clone(),
            Some(index.len() as u64 + 1),
            "but its descriptor says",
        ),
        (
            "2,000 entries",
            index_of(&vec![entry; 2000]),
            None,
            "lists 2000 manifests, more than the 1024 pack follows",
        ),
        (
            "an unknown digest algorithm in the index",
            index_of(&[json!({"mediaType": MANIFEST, "digest": sha999, "size": 10})]),
            None,
            "uses the digest algorithm `sha999`; pack reads only sha256",
        ),
        (
            "an unknown digest algorithm in a manifest",
            index_of(&[json!({
                "mediaType": MANIFEST,
                "digest": sha256(&md5_manifest),
                "size": md5_manifest.len(),
            })]),
            None,
            "uses the digest algorithm `md5`; pack reads only sha256",
        ),
    ];
    for (what, index, size, expected) in cases {
        retag(&layout, &index, size);
        assert_inspect_refused(&layout, what, expected);
    }
}

// ---------------------------------------------------------------------------------------
// Signatures.

use base64::Engine as _;
use pack_packager::Layout;
use pack_packager::signing::{PrivateKey, SIGNATURE_TYPE};

/// A layout with tag `v1` on a small index, and its digest.
fn signed_layout(dir: &Path) -> (Layout, String) {
    let layout = Layout::create(dir.join("layout")).unwrap();
    let index = index_of(&[]);
    let blob = layout.put_bytes(&index).unwrap();
    layout.set_tag("v1", &blob.descriptor(INDEX)).unwrap();
    (layout, blob.digest.to_string())
}

/// A new signing key, and its public key written to `dir/key.pub`.
fn signing_key(dir: &Path) -> (PrivateKey, PathBuf) {
    let key = PrivateKey::generate();
    let public = write(dir, "key.pub", key.public_key().to_pem());
    (key, public)
}

/// Replaces the signatures of `digest` with one manifest holding `layers` (payload,
/// signature annotation).
fn put_signatures(layout: &Layout, digest: &str, layers: &[(Vec<u8>, String)]) {
    let config = layout.put_bytes(b"{}").unwrap();
    let layers: Vec<Value> = layers
        .iter()
        .map(|(payload, signature)| {
            let blob = layout.put_bytes(payload).unwrap();
            json!({
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": blob.digest.to_string(),
                "size": blob.size,
                "annotations": {"dev.cosignproject.cosign/signature": signature},
            })
        })
        .collect();
    let manifest = manifest_of(config.digest.as_ref(), config.size as usize, json!(layers));
    let blob = layout.put_bytes(&manifest).unwrap();
    let tag = format!("sha256-{}.sig", &digest[7..]);
    layout.set_tag(&tag, &blob.descriptor(MANIFEST)).unwrap();
}

fn payload(digest: &str, kind: &str) -> Value {
    json!({
        "critical": {
            "identity": {"docker-reference": "registry.example/app"},
            "image": {"docker-manifest-digest": digest},
            "type": kind,
        },
        "optional": null,
    })
}

fn sign(key: &PrivateKey, payload: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.sign(payload))
}

/// `pack verify` of `layout:<tag>` with the key `public`.
fn verify(layout: &Layout, tag: &str, public: &Path) -> Output {
    let reference = format!("{}:{tag}", s(layout.root()));
    pack()
        .args(["verify", &reference, "--key", s(public)])
        .output()
        .unwrap()
}

/// `pack sign` of `layout:v1` with the private key `key`, to run.
fn sign_v1(layout: &Layout, key: &Path) -> assert_cmd::Command {
    let mut cmd = pack();
    cmd.args(["sign", &format!("{}:v1", s(layout.root())), "--key", s(key)]);
    cmd
}

#[test]
fn hostile_signature_payloads_do_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, digest) = signed_layout(dir.path());
    let (key, public) = signing_key(dir.path());
    let other_key = PrivateKey::generate();
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();

    // The reference case verifies, so each refusal below is the change it makes.
    let good = bytes(&payload(&digest, SIGNATURE_TYPE));
    put_signatures(&layout, &digest, &[(good.clone(), sign(&key, &good))]);
    assert_exit(&verify(&layout, "v1", &public), 0);

    let mut extra_top = payload(&digest, SIGNATURE_TYPE);
    extra_top["extra"] = json!("x");
    let mut extra_critical = payload(&digest, SIGNATURE_TYPE);
    extra_critical["critical"]["not-before"] = json!("2099-01-01");
    let mut extra_image = payload(&digest, SIGNATURE_TYPE);
    extra_image["critical"]["image"]["docker-manifest-digest-2"] = json!(digest);
    let other_digest = format!("sha256:{}", "e".repeat(64));
    let cases: Vec<(&str, Vec<u8>, Option<String>, &str)> = vec![
        (
            "an unknown top-level field",
            bytes(&extra_top),
            None,
            "unknown field `extra`",
        ),
        (
            "an unknown field in critical",
            bytes(&extra_critical),
            None,
            "unknown field `not-before`",
        ),
        (
            "an unknown field in critical.image",
            bytes(&extra_image),
            None,
            "unknown field `docker-manifest-digest-2`",
        ),
        (
            "another digest",
            bytes(&payload(&other_digest, SIGNATURE_TYPE)),
            None,
            &other_digest,
        ),
        (
            "another type",
            bytes(&payload(&digest, "atomic container signature")),
            None,
            "type is `atomic container signature`",
        ),
        (
            "a signature that is not base64",
            good.clone(),
            Some("%%%not base64%%%".into()),
            "not base64",
        ),
        (
            "base64 that is not DER",
            good.clone(),
            Some(base64::engine::general_purpose::STANDARD.encode(b"not a DER signature")),
            "not a DER ECDSA signature",
        ),
        (
            "another key's signature",
            good.clone(),
            Some(sign(&other_key, &good)),
            "made by another key",
        ),
        (
            "a signature over other bytes",
            good.clone(),
            Some(sign(&key, &bytes(&payload(&digest, "x")))),
            "made by another key",
        ),
    ];
    for (what, payload, signature, reason) in cases {
        let signature = signature.unwrap_or_else(|| sign(&key, &payload));
        put_signatures(&layout, &digest, &[(payload, signature)]);
        let out = verify(&layout, "v1", &public);
        assert_exit(&out, 1);
        assert!(stdout(&out).contains(reason), "{what}: {}", stdout(&out));
    }

    // Unknown fields in `optional` are claims, not conditions: accepted.
    let mut extra_optional = payload(&digest, SIGNATURE_TYPE);
    extra_optional["optional"] = json!({"anything": {"nested": [1, 2]}});
    let extra_optional = bytes(&extra_optional);
    put_signatures(
        &layout,
        &digest,
        &[(extra_optional.clone(), sign(&key, &extra_optional))],
    );
    assert_exit(&verify(&layout, "v1", &public), 0);
}

#[test]
fn a_valid_signature_moved_to_another_tag_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, digest) = signed_layout(dir.path());
    let (key, public) = signing_key(dir.path());
    // `v2` points at another index; the signature of `v1` is copied under its tag.
    let other = layout
        .put_bytes(&index_of(&[
            json!({"mediaType": MANIFEST, "digest": digest, "size": 1}),
        ]))
        .unwrap();
    layout.set_tag("v2", &other.descriptor(INDEX)).unwrap();
    let good = serde_json::to_vec(&payload(&digest, SIGNATURE_TYPE)).unwrap();
    let signature = sign(&key, &good);
    put_signatures(&layout, &digest, &[(good.clone(), signature.clone())]);
    put_signatures(&layout, other.digest.as_ref(), &[(good, signature)]);
    assert_exit(&verify(&layout, "v1", &public), 0);
    let out = verify(&layout, "v2", &public);
    assert_exit(&out, 1);
    assert_stdout_has(&out, format!("signs another digest, {digest}"));
}

#[test]
fn key_files_with_the_wrong_password_or_curve_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = signed_layout(dir.path());
    let (private, _) = encrypted_key_pair(dir.path(), "k", "Right-Pw-7731");
    let out = sign_v1(&layout, &private)
        .env("PACK_KEY_PASSWORD", "Wrong-Pw-4410")
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert_stderr_has(&out, "wrong password");
    assert!(!stderr(&out).contains("Wrong-Pw-4410"), "{}", stderr(&out));
    assert!(
        pack_packager::signing::signature_tags(&layout)
            .unwrap()
            .is_empty()
    );

    if tool("openssl").is_none() {
        return;
    }
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    let curve = "ec_paramgen_curve:P-384";
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        curve,
        "-out",
        "p384.key",
    ]);
    openssl(&["pkey", "-in", "p384.key", "-pubout", "-out", "p384.pub"]);
    let out = sign_v1(&layout, &dir.path().join("p384.key"))
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert_stderr_has(&out, "P-256");
    let out = verify(&layout, "v1", &dir.path().join("p384.pub"));
    assert_exit(&out, 2);
    assert_stderr_has(&out, "P-256");
}

// ---------------------------------------------------------------------------------------
// Secrets.

const USER: &str = "secret-user";
const REGISTRY_PASSWORD: &str = "S3cr3t-Reg-Pw-91zq";
const WRONG_REGISTRY_PASSWORD: &str = "Wr0ng-Reg-Pw-33kd";
const KEY_PASSWORD: &str = "K3y-Pw-55xy-private";
const WRONG_KEY_PASSWORD: &str = "Wr0ng-K3y-Pw-71mn";

/// Every secret of the test, plain and in the base64 forms a basic-auth header or a
/// docker config carries.
fn secrets() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut all = Vec::new();
    for secret in [
        REGISTRY_PASSWORD,
        WRONG_REGISTRY_PASSWORD,
        KEY_PASSWORD,
        WRONG_KEY_PASSWORD,
    ] {
        all.push(secret.to_string());
        all.push(b64(secret));
        all.push(b64(&format!("{USER}:{secret}")));
    }
    all
}

fn assert_no_secret(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for secret in secrets() {
        assert!(
            !text.contains(&secret),
            "{what} shows the secret `{secret}`:\n{text}"
        );
    }
}

/// Every file under `dir` but the docker config, whose job is to hold the credentials
/// `pack login` stores.
fn assert_no_secret_in_files(dir: &Path) {
    let mut seen = 0;
    for p in files_under(dir) {
        if p.file_name().is_some_and(|n| n != "config.json") {
            assert_no_secret(&p.display().to_string(), &std::fs::read(&p).unwrap());
            seen += 1;
        }
    }
    assert!(seen > 10, "only {seen} files were looked at");
}

#[test]
fn secrets_appear_in_no_output_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let Some(registry) =
        crate::registry::Registry::start_with_login(dir.path(), USER, REGISTRY_PASSWORD)
    else {
        return;
    };
    let addr = registry.addr().to_string();
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    // Every command: its own docker config and store under `home`, tracing turned up in
    // case anything logs, and the given environment and stdin.
    let mut runs = 0;
    let mut run = |args: &[&str], env: &[(&str, &str)], stdin: Option<&str>, code: i32| {
        let mut cmd = pack();
        cmd.current_dir(&work)
            .env("HOME", &home)
            .env("DOCKER_CONFIG", home.join("docker"))
            .env("PACK_STORE", home.join("store"))
            .env("PACK_CACHE_DIR", home.join("cache"))
            .env("XDG_CACHE_HOME", home.join("xdg-cache"))
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "1")
            .env_remove("PACK_REGISTRY_USERNAME")
            .env_remove("PACK_REGISTRY_PASSWORD")
            .env_remove("PACK_KEY_PASSWORD")
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(input) = stdin {
            cmd.write_stdin(format!("{input}\n"));
        }
        let out = cmd.output().unwrap();
        assert_exit(&out, code);
        assert_no_secret(&format!("stdout of {args:?}"), &out.stdout);
        assert_no_secret(&format!("stderr of {args:?}"), &out.stderr);
        runs += 1;
        out
    };
    let key_pw = [("PACK_KEY_PASSWORD", KEY_PASSWORD)];
    let wrong_key_pw = [("PACK_KEY_PASSWORD", WRONG_KEY_PASSWORD)];
    let creds = [
        ("PACK_REGISTRY_USERNAME", USER),
        ("PACK_REGISTRY_PASSWORD", REGISTRY_PASSWORD),
    ];
    let wrong_creds = [
        ("PACK_REGISTRY_USERNAME", USER),
        ("PACK_REGISTRY_PASSWORD", WRONG_REGISTRY_PASSWORD),
    ];
    let target = here();
    let hello = fixture("components/hello-cli.wasm");
    let reference = format!("{addr}/app:v1");

    // Keys and signing, plain and with --json; with a wrong key password, building
    // and signing fail.
    for (prefix, flag) in [("k", &[][..]), ("j", &["--json"])] {
        let generate = [&["key", "generate", "--output-prefix", prefix][..], flag].concat();
        run(&generate, &key_pw, None, 0);
    }
    let build = ["build", s(&hello), "-t", target, "--sign-key", "k.key"];
    let build_app = [&build[..], &["-o", "app", "--tag", "v1"]].concat();
    run(&build_app, &key_pw, None, 0);
    let build_app2 = [&build[..], &["-o", "app2", "--json"]].concat();
    run(&build_app2, &wrong_key_pw, None, 2);
    for flag in [&[][..], &["--json"]] {
        let sign = [&["sign", "app:v1", "--key", "j.key"][..], flag].concat();
        run(&sign, &key_pw, None, 0);
        run(&sign, &wrong_key_pw, None, 2);
    }

    // Registry credentials: wrong ones, then right ones, from stdin and the environment.
    for json in [false, true] {
        let flag: &[&str] = if json { &["--json"] } else { &[] };
        let login = [
            &["login", addr.as_str(), "-u", USER, "--password-stdin"][..],
            flag,
        ]
        .concat();
        run(&login, &[], Some(WRONG_REGISTRY_PASSWORD), 3);
        let push = [&["push", "app:v1", reference.as_str()][..], flag].concat();
        run(&push, &wrong_creds, None, 3);
        let push_stdin = [&push[..], &["-u", USER, "--password-stdin"]].concat();
        run(&push_stdin, &[], Some(WRONG_REGISTRY_PASSWORD), 3);
        run(&push_stdin, &[], Some(REGISTRY_PASSWORD), 0);
        run(&push, &creds, None, 0);
        let out_dir = if json { "pulled-json" } else { "pulled" };
        let pull = [&["pull", reference.as_str(), "-o", out_dir][..], flag].concat();
        run(&pull, &wrong_creds, None, 3);
        run(&pull, &creds, None, 0);
        run(&login, &[], Some(REGISTRY_PASSWORD), 0);
        // With the login `pack login` stored.
        run(&pull, &[], None, 0);
    }
    // Running from the registry: wrong credentials, then the environment's.
    let run_args = ["run", reference.as_str(), "--key", "k.pub"];
    run(&run_args, &wrong_creds, None, 3);
    // The one file meant to hold a secret holds it in the form searched for.
    let config = std::fs::read_to_string(home.join("docker/config.json")).unwrap();
    let stored =
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{REGISTRY_PASSWORD}"));
    assert!(
        secrets().contains(&stored) && config.contains(&stored),
        "{config}"
    );
    std::fs::remove_file(home.join("docker/config.json")).unwrap();
    run(&run_args, &creds, None, 0);
    assert!(runs >= 24, "{runs} commands ran");
    assert_no_secret_in_files(&home);
}

#[test]
fn oversized_signature_payloads_are_not_read() {
    let (index, manifest, blobs) = image(b"layer", json!({}));
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = signing_key(dir.path());
    let payload_digest = sha256(b"payload");
    let sig_manifest = |size: u64| {
        manifest_of(
            &sha256(b"{}"),
            2,
            json!([{
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": payload_digest,
                "size": size,
                "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="},
            }]),
        )
    };
    let sig_tag = format!("sha256-{}.sig", &sha256(&index)[7..]);
    for (size, expected) in [
        (
            1u64 << 30,
            "says 1073741824 bytes, more than the 65536 bytes pack reads for a signature",
        ),
        (
            7,
            "the registry sent more than the 7 bytes the descriptor says",
        ),
    ] {
        let registry = HostileRegistry::start();
        serve_image(&registry, &index, &manifest, &blobs);
        registry.manifest(&sig_tag, Route::json(MANIFEST, sig_manifest(size)));
        let route = Route::endless(200, "application/octet-stream", b"payload", None);
        registry.blob(&payload_digest, route);
        let (work, out) = pull(&registry, &["--key", s(&public)]);
        assert_exit(&out, 2);
        assert_stderr_has(&out, expected);
        let sent = registry.sent(&format!("/v2/app/blobs/{payload_digest}"));
        assert!(sent < SLACK, "pack read {sent} bytes of the payload");
        assert_nothing_pulled(&work.path().join("out"));
    }
}

// ---------------------------------------------------------------------------------------
// Found by fuzzing.

/// A valid component (generated by wasm-smith, found by the `validate_smith` fuzz target)
/// on which wit-parser 0.254's decoder reaches `unreachable!()`: pack reports it instead
/// of crashing.
#[test]
fn a_component_that_crashes_the_wit_decoder_is_an_error() {
    let input = crate::common::root().join("tests/data/wit-parser-unreachable.component.wasm");
    let out = pack()
        .arg("validate")
        .arg(&input)
        .arg("--wit")
        .arg(fixture("wit/calc"))
        .args(["--world", "calc"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert_stderr_has(&out, "cannot read the WIT interface of");
    assert_stderr_has(&out, "wit-parser failed on this valid component");
}
