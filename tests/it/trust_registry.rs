//! Trust at the registry boundary, attacked through the real binary:
//!
//! - `PACK_REGISTRY_USERNAME`/`PACK_REGISTRY_PASSWORD` go to one registry only
//!   (`PACK_REGISTRY`, else the one the command names): a fake registry on loopback that
//!   records every request head never sees them, whether it answers with a Basic or a
//!   Bearer challenge, to `pack pull`, `pack run` or `pack login`; a redirect from the
//!   registry they are for to another host does not carry them; the real (htpasswd)
//!   registry still gets them.
//! - Signature manifests (`sha256-<hex>.sig`), which nobody signs, cannot make a pull
//!   fetch without bound: too many layers, or a layer that says it is huge, is refused
//!   before any byte of it is fetched (the fake counts what it serves), and nothing is
//!   written.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::*;
use crate::registry::Registry;

const USER: &str = "alice";
const SECRET: &str = "wonderland";
const KEY_PASSWORD: &str = "pw";

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

// ---------------------------------------------------------------------------------------
// A fake registry: a handler per request, every request head recorded, blob bytes counted.

/// A request as the fake saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// Without the query.
    path: String,
    /// The whole request head (request line and headers), as received.
    head: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

#[derive(Clone)]
enum Body {
    Bytes(Vec<u8>),
    /// This many filler bytes (a blob as large as its descriptor says).
    Filler(u64),
}

#[derive(Clone)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Response {
    fn new(status: u16, body: Vec<u8>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Bytes(body),
        }
    }

    fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn not_found() -> Self {
        Self::new(
            404,
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#.to_vec(),
        )
    }

    fn unauthorized(challenge: &str) -> Self {
        Self::new(
            401,
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
        )
        .with("WWW-Authenticate", challenge)
    }
}

type Handler = dyn Fn(&Request, &str) -> Response + Send + Sync;

struct Fake {
    addr: String,
    requests: Arc<Mutex<Vec<Request>>>,
    /// Per path: body bytes handed to the kernel.
    served: Arc<Mutex<HashMap<String, u64>>>,
    stop: Arc<AtomicBool>,
}

impl Fake {
    /// Serves on 127.0.0.1:0; `handler` gets each request and the fake's own address.
    fn start(handler: impl Fn(&Request, &str) -> Response + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handler: Arc<Handler> = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (requests, served, stop, addr) =
                (requests.clone(), served.clone(), stop.clone(), addr.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (handler, requests, served, addr) = (
                        handler.clone(),
                        requests.clone(),
                        served.clone(),
                        addr.clone(),
                    );
                    std::thread::spawn(move || {
                        serve(conn, &addr, &*handler, &requests, &served);
                    });
                }
            });
        }
        Fake {
            addr,
            requests,
            served,
            stop,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn served(&self, path: &str) -> u64 {
        self.served.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(
    mut conn: TcpStream,
    addr: &str,
    handler: &Handler,
    requests: &Mutex<Vec<Request>>,
    served: &Mutex<HashMap<String, u64>>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(Some(head)) = read_head(&mut conn) else {
        return;
    };
    let (method, path) = request_line(&head);
    let request = Request { method, path, head };
    // A request body (none is expected) is read and dropped.
    if let Some(length) = request
        .header("content-length")
        .and_then(|l| l.parse::<u64>().ok())
    {
        let _ = std::io::copy(&mut (&mut conn).take(length), &mut std::io::sink());
    }
    requests.lock().unwrap().push(request.clone());
    let response = handler(&request, addr);
    let length = match &response.body {
        Body::Bytes(b) => b.len() as u64,
        Body::Filler(n) => *n,
    };
    let mut text = format!(
        "HTTP/1.1 {} Whatever\r\nContent-Length: {length}\r\nConnection: close\r\n",
        response.status
    );
    for (k, v) in &response.headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    if conn.write_all(text.as_bytes()).is_err() || request.method == "HEAD" {
        return;
    }
    let count = |n: u64| {
        *served
            .lock()
            .unwrap()
            .entry(request.path.clone())
            .or_default() += n
    };
    match response.body {
        Body::Bytes(bytes) => {
            if conn.write_all(&bytes).is_ok() {
                count(bytes.len() as u64);
            }
        }
        Body::Filler(n) => {
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = n;
            while left > 0 {
                let part = &chunk[..chunk.len().min(left as usize)];
                if conn.write_all(part).is_err() {
                    return;
                }
                count(part.len() as u64);
                left -= part.len() as u64;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// `pack` with its own home, docker config and store, none of the caller's settings, and
/// no retries.
fn pack_in(home: &Path) -> assert_cmd::Command {
    let mut cmd = crate::common::pack_in(home);
    cmd.env("PACK_RETRIES", "0");
    cmd
}

/// [`pack_in`] `home` with the environment's credentials (alice:wonderland), for `scope`
/// (`PACK_REGISTRY`) when given.
fn pack_with_credentials(home: &Path, scope: Option<&str>) -> assert_cmd::Command {
    let mut cmd = pack_in(home);
    cmd.env("PACK_REGISTRY_USERNAME", USER)
        .env("PACK_REGISTRY_PASSWORD", SECRET);
    if let Some(scope) = scope {
        cmd.env("PACK_REGISTRY", scope);
    }
    cmd
}

/// The credentials as an `Authorization: Basic` header carries them.
fn encoded_credentials() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{SECRET}"))
}

/// No request head the fake received carries the credentials, in clear or base64, or
/// any `Authorization: Basic`.
fn assert_no_credentials(fake: &Fake, what: &str) {
    let encoded = encoded_credentials();
    let requests = fake.requests();
    assert!(!requests.is_empty(), "{what}: the fake saw no request");
    for request in requests {
        let head = &request.head;
        assert!(
            !head.contains(SECRET) && !head.contains(&encoded),
            "{what}: the fake received the credentials:\n{head}"
        );
        if let Some(auth) = request.header("authorization") {
            assert!(
                !auth.to_ascii_lowercase().starts_with("basic"),
                "{what}: the fake received basic credentials:\n{head}"
            );
        }
    }
}

fn no_secret_in_output(out: &Output) {
    let encoded = encoded_credentials();
    for text in [stdout(out), stderr(out)] {
        assert!(
            !text.contains(SECRET) && !text.contains(&encoded),
            "the output shows the password:\n{text}"
        );
    }
}

fn put_blob(layout: &Path, bytes: &[u8]) -> Value {
    let digest = sha256(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
    json!({"digest": digest, "size": bytes.len()})
}

/// A small image as an OCI layout at `dir/name`, tagged `v1` (config, one layer, a
/// manifest, an index), signed by `private` for `reference`. Returns the layout and the
/// manifest's digest.
fn signed_layout(dir: &Path, name: &str, private: &Path, reference: &str) -> (PathBuf, String) {
    let layout = dir.join(name);
    std::fs::create_dir_all(&layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let config = put_blob(&layout, b"{}");
    let layer = put_blob(&layout, b"the component, say");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": "application/octet-stream",
                    "digest": layer["digest"], "size": layer["size"]}],
    }))
    .unwrap();
    let manifest_desc = put_blob(&layout, &manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{"mediaType": MANIFEST, "digest": manifest_desc["digest"],
                       "size": manifest_desc["size"],
                       "platform": {"os": "linux", "architecture": "amd64"}}],
    }))
    .unwrap();
    let index_desc = put_blob(&layout, &index);
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [{"mediaType": INDEX, "digest": index_desc["digest"],
                           "size": index_desc["size"],
                           "annotations": {"org.opencontainers.image.ref.name": "v1"}}],
        }))
        .unwrap(),
    )
    .unwrap();
    let out = pack_in(dir)
        .env("PACK_KEY_PASSWORD", KEY_PASSWORD)
        .args(["sign", &format!("{}:v1", s(&layout)), "--key", s(private)])
        .args(["--reference", reference])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    (
        layout,
        manifest_desc["digest"].as_str().unwrap().to_string(),
    )
}

/// The tags of a layout's `index.json`: name -> digest.
fn layout_tags(layout: &Path) -> HashMap<String, String> {
    manifests(&layout_index(layout))
        .iter()
        .map(|d| {
            let tag = tag_of(d).unwrap_or_else(|| panic!("an untagged entry {d}"));
            (tag.to_string(), d["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Serves a layout's content as repository `app`: its tags and every blob, as a manifest
/// (by digest) and as a blob.
fn layout_routes(layout: &Path) -> HashMap<String, Response> {
    let mut routes = HashMap::new();
    let mut documents = HashMap::new();
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
        let bytes = std::fs::read(entry.path()).unwrap();
        let media_type = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let response = Response {
            status: 200,
            headers: vec![
                ("Content-Type".into(), media_type),
                ("Docker-Content-Digest".into(), digest.clone()),
            ],
            body: Body::Bytes(bytes),
        };
        routes.insert(format!("/v2/app/blobs/{digest}"), response.clone());
        routes.insert(format!("/v2/app/manifests/{digest}"), response.clone());
        documents.insert(digest, response);
    }
    for (tag, digest) in layout_tags(layout) {
        routes.insert(
            format!("/v2/app/manifests/{tag}"),
            documents[&digest].clone(),
        );
    }
    routes
}

/// A fake registry that serves `routes` (shared, so a test can add some) anonymously.
fn content_fake(routes: Arc<Mutex<HashMap<String, Response>>>) -> Fake {
    Fake::start(move |request, _| {
        if request.path == "/v2/" {
            return Response::new(200, b"{}".to_vec());
        }
        routes
            .lock()
            .unwrap()
            .get(&request.path)
            .cloned()
            .unwrap_or_else(Response::not_found)
    })
}

// ---------------------------------------------------------------------------------------
// Finding: the environment's credentials go to any registry.

#[test]
fn environment_credentials_reach_only_the_registry_they_are_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(real) = Registry::start_with_login(d, "alice", "wonderland") else {
        return;
    };
    let (private, public) = encrypted_key_pair(d, "k", KEY_PASSWORD);
    let (layout, _) = signed_layout(d, "app", &private, &format!("{}/app", real.addr()));

    // Two fakes that want credentials: one with a Basic challenge, one with a Bearer
    // challenge whose token realm is on the fake (it records what the token request
    // carries).
    let basic = Fake::start(|_, _| Response::unauthorized(r#"Basic realm="fake""#));
    let bearer = Fake::start(|request, addr| {
        let challenge = format!(r#"Bearer realm="http://{addr}/token",service="fake""#);
        if request.path == "/token" {
            return Response::new(200, br#"{"token":"anonymous-token"}"#.to_vec());
        }
        Response::unauthorized(&challenge)
    });

    // Honest path: PACK_REGISTRY names the real registry; push and pull authenticate.
    let out = pack_with_credentials(d, Some(real.addr()))
        .args(["push", &format!("{}:v1", s(&layout))])
        .arg(format!("{}/app:v1", real.addr()))
        .arg("--json")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["credentials"]["kind"], "environment");
    no_secret_in_output(&out);
    // Without PACK_REGISTRY, the registry on the command line is the one they are for.
    let out = pack_with_credentials(d, None)
        .args(["pull", &format!("{}/app:v1", real.addr()), "-o"])
        .arg(d.join("pulled"))
        .args(["--key", s(&public), "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["credentials"]["kind"], "environment");

    // The attack: a reference to another registry, with the variables set for the real
    // one. pull, run and login: the fakes get no credentials; the user is told once.
    for fake in [&basic, &bearer] {
        let reference = format!("{}/x:1", fake.addr);
        let attempts: Vec<Vec<String>> = vec![
            vec![
                "pull".into(),
                reference.clone(),
                "-o".into(),
                s(&d.join("stolen")).into(),
            ],
            vec![
                "pull".into(),
                reference.clone(),
                "-o".into(),
                s(&d.join("stolen")).into(),
                "--key".into(),
                s(&public).into(),
            ],
            vec![
                "run".into(),
                reference.clone(),
                "--key".into(),
                s(&public).into(),
            ],
        ];
        for args in attempts {
            let out = pack_with_credentials(d, Some(real.addr()))
                .args(&args)
                .output()
                .unwrap();
            assert_exit(&out, 3);
            no_secret_in_output(&out);
            let err = stderr(&out);
            let warning = format!(
                "warning: PACK_REGISTRY_USERNAME/PACK_REGISTRY_PASSWORD are for {} \
                 (PACK_REGISTRY); not sending them to {}",
                real.addr(),
                fake.addr
            );
            assert_eq!(err.matches(&warning).count(), 1, "{args:?}:\n{err}");
            assert_no_credentials(fake, &format!("{args:?}"));
            assert_nothing_pulled(&d.join("stolen"));
        }
        // `pack login` to the fake with the variables for the real registry: refused
        // before anything is sent.
        let before = fake.requests().len();
        let out = pack_with_credentials(d, Some(real.addr()))
            .args(["login", &fake.addr])
            .output()
            .unwrap();
        assert_exit(&out, 2);
        assert_stderr_has(&out, "PACK_REGISTRY");
        assert_eq!(fake.requests().len(), before, "login contacted the fake");
        assert!(!d.join("docker/config.json").exists());
    }

    // The other way round: PACK_REGISTRY names another registry, so the real one gets
    // nothing from the environment and refuses the anonymous pull.
    let out = pack_with_credentials(d, Some(&basic.addr))
        .args(["pull", &format!("{}/app:v1", real.addr()), "-o"])
        .arg(d.join("refused"))
        .output()
        .unwrap();
    assert_exit(&out, 3);
    assert_stderr_has(&out, "not sending them to");
}

#[test]
fn a_redirect_to_another_host_does_not_carry_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Where the registry redirects to: records what it gets.
    let elsewhere = Fake::start(|_, _| Response::not_found());
    let target = elsewhere.addr.clone();
    // The registry the credentials are for: wants Basic, then redirects every manifest
    // and blob to the other host (as registries do to a CDN).
    let registry = Fake::start(move |request, _| {
        let encoded = encoded_credentials();
        let authorized = request.header("authorization") == Some(format!("Basic {encoded}"));
        if !authorized {
            return Response::unauthorized(r#"Basic realm="registry""#);
        }
        if request.path == "/v2/" {
            return Response::new(200, b"{}".to_vec());
        }
        Response::new(307, Vec::new()).with("Location", &format!("http://{target}{}", request.path))
    });
    let out = pack_with_credentials(d, Some(&registry.addr))
        .args(["pull", &format!("{}/app:v1", registry.addr), "-o"])
        .arg(d.join("out"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    no_secret_in_output(&out);
    // The registry got them (this is the honest half), the redirect target did not.
    let encoded = encoded_credentials();
    assert!(
        registry
            .requests()
            .iter()
            .any(|r| r.head.contains(&encoded)),
        "the registry never got the credentials: {:?}",
        registry.requests()
    );
    assert!(
        elsewhere
            .requests()
            .iter()
            .any(|r| r.path.contains("/manifests/")),
        "the redirect was not followed: {:?}",
        elsewhere.requests()
    );
    assert_no_credentials(&elsewhere, "the redirect target");
}

#[test]
fn credentials_are_not_sent_to_a_plain_http_token_realm_on_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A loopback registry whose token realm is plain HTTP on a host that is not loopback
    // (192.0.2.1, TEST-NET-1: nothing answers there).
    let fake = Fake::start(|_, _| {
        Response::unauthorized(r#"Bearer realm="http://192.0.2.1/token",service="fake""#)
    });
    for args in [
        vec![
            "pull".to_string(),
            format!("{}/app:v1", fake.addr),
            "-o".into(),
            s(&d.join("out")).into(),
        ],
        vec!["login".to_string(), fake.addr.clone()],
    ] {
        let out = pack_with_credentials(d, Some(&fake.addr))
            .env("PACK_TIMEOUT", "3")
            .args(&args)
            .output()
            .unwrap();
        assert_exit(&out, 2);
        no_secret_in_output(&out);
        assert!(
            stderr(&out).contains("`http://192.0.2.1/token` is plain HTTP on another host"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_nothing_pulled(&d.join("out"));
    assert!(!d.join("docker/config.json").exists());
}

// ---------------------------------------------------------------------------------------
// Finding: unsigned signature manifests can fill the disk.

/// A signature manifest with `config` and `layers` simple-signing layers, each declaring
/// `size` bytes of the blob `digest`.
fn hostile_signature(config: &Value, layers: usize, size: u64, digest: &str) -> Vec<u8> {
    let layer = json!({
        "mediaType": SIMPLE_SIGNING,
        "digest": digest,
        "size": size,
        "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQD="},
    });
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config["digest"], "size": config["size"]},
        "layers": vec![layer; layers],
    }))
    .unwrap()
}

fn manifest_route(bytes: &[u8]) -> Response {
    Response {
        status: 200,
        headers: vec![
            ("Content-Type".into(), MANIFEST.into()),
            ("Docker-Content-Digest".into(), sha256(bytes)),
        ],
        body: Body::Bytes(bytes.to_vec()),
    }
}

/// A blob of `size` filler bytes, as large as a hostile descriptor says.
fn filler_route(size: u64) -> Response {
    Response {
        status: 200,
        headers: vec![],
        body: Body::Filler(size),
    }
}

#[test]
fn signature_manifests_cannot_make_a_pull_fetch_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (private, public) = encrypted_key_pair(d, "k", KEY_PASSWORD);
    let routes = Arc::new(Mutex::new(HashMap::new()));
    let fake = content_fake(routes.clone());
    let (layout, manifest_digest) =
        signed_layout(d, "app", &private, &format!("{}/app", fake.addr));
    *routes.lock().unwrap() = layout_routes(&layout);
    let tags = layout_tags(&layout);
    let root_sig = tags
        .keys()
        .find(|t| t.ends_with(".sig"))
        .expect("a signature tag")
        .clone();
    let pull = |out: &str, key: bool| {
        let mut cmd = pack_in(d);
        cmd.args(["pull", &format!("{}/app:v1", fake.addr), "-o"])
            .arg(d.join(out));
        if key {
            cmd.args(["--key", s(&public)]);
        }
        let started = Instant::now();
        let output = cmd.output().unwrap();
        (output, started.elapsed())
    };

    // Honest path: the signed image pulls and verifies.
    let (out, _) = pull("honest", true);
    assert_exit(&out, 0);

    let config = put_blob(&d.join("scratch"), b"{}");
    let huge = format!("sha256:{}", "f".repeat(64));
    let huge_path = format!("/v2/app/blobs/{huge}");
    let root_sig_path = format!("/v2/app/manifests/{root_sig}");
    let honest_root_sig = routes.lock().unwrap()[&root_sig_path].clone();
    // A pull into `name` is refused at once, naming the signature's `tag` and `manifest`
    // and saying each of `why`; nothing of the huge blob is served, nothing is written.
    let assert_refused = |name: &str, key: bool, tag: &str, manifest: &str, why: &[&str]| {
        let (out, took) = pull(name, key);
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains(tag) && err.contains(manifest),
            "the error names neither the tag nor the manifest:\n{err}"
        );
        for text in why {
            assert!(
                err.contains(text),
                "the error does not say {text:?}:\n{err}"
            );
        }
        assert_eq!(
            fake.served(&huge_path),
            0,
            "{name}: the huge blob was fetched"
        );
        assert!(took < Duration::from_secs(30), "took {took:?}");
        assert_nothing_pulled(&d.join(name));
    };

    // 1. The signature of a signed manifest, added by a registry writer: one layer that
    //    says 256 MiB. Today `pull --key` verifies the index, then downloads it all.
    let declared: u64 = 256 * 1024 * 1024;
    let child_sig = format!(
        "sha256-{}.sig",
        manifest_digest.trim_start_matches("sha256:")
    );
    let bytes = hostile_signature(&config, 1, declared, &huge);
    let child_sig_digest = sha256(&bytes);
    {
        let mut routes = routes.lock().unwrap();
        routes.insert(
            format!("/v2/app/manifests/{child_sig}"),
            manifest_route(&bytes),
        );
        routes.insert(huge_path.clone(), filler_route(declared));
    }
    for key in [true, false] {
        let limit_and_size = ["65536 bytes", &declared.to_string()];
        assert_refused("huge", key, &child_sig, &child_sig_digest, &limit_and_size);
    }
    routes
        .lock()
        .unwrap()
        .remove(&format!("/v2/app/manifests/{child_sig}"));

    // 2. The index's own signature manifest with the real signature and 63 more layers
    //    of 4 MiB each (today each one is fetched, 252 MiB, before the real one is found
    //    to verify).
    let real: Value = match &honest_root_sig.body {
        Body::Bytes(b) => serde_json::from_slice(b).unwrap(),
        Body::Filler(_) => unreachable!(),
    };
    let payload_size: u64 = 4 * 1024 * 1024;
    let mut crowded = real.clone();
    let extra: Value =
        serde_json::from_slice(&hostile_signature(&config, 63, payload_size, &huge)).unwrap();
    let mut layers = extra["layers"].as_array().unwrap().clone();
    layers.push(real["layers"][0].clone());
    crowded["layers"] = Value::Array(layers);
    let bytes = serde_json::to_vec(&crowded).unwrap();
    let crowded_digest = sha256(&bytes);
    {
        let mut routes = routes.lock().unwrap();
        routes.insert(root_sig_path.clone(), manifest_route(&bytes));
        routes.insert(huge_path.clone(), filler_route(payload_size));
    }
    let limit = ["64 signature layers, more than the 16"];
    assert_refused("crowded", true, &root_sig, &crowded_digest, &limit);

    // Put back, the honest signature pulls again.
    routes
        .lock()
        .unwrap()
        .insert(root_sig_path, honest_root_sig);
    let (out, _) = pull("honest-again", true);
    assert_exit(&out, 0);
}
