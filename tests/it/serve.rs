//! `pack serve`: several signed HTTP handler bundles behind routes in one process, their
//! answers compared with `wasmtime serve -Scli`; timeouts (504) while other routes
//! answer, concurrency caps (503), memory caps, unbounded artifacts refused, metrics,
//! SIGTERM draining, and releases followed through a real registry.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::registry::Registry;

/// Keys and bundles built once and shared read-only by the tests.
struct Fixtures {
    _dir: tempfile::TempDir,
    trusted: PathBuf,
    hello: PathBuf,
    /// hello-http signed by a key the server does not trust.
    hello_other: PathBuf,
    /// hello-http compiled with wasmtime's default profile (no epoch interruption).
    hello_unbounded: PathBuf,
    looping: PathBuf,
    js: Option<PathBuf>,
}

fn build(args: &[&str]) {
    let out = pack()
        .env(
            "PACK_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pack-run-cache"),
        )
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

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = shared_tempdir();
        for name in ["trusted", "other"] {
            let out = pack()
                .args(["key", "generate", "--no-password", "--output-prefix"])
                .arg(dir.path().join(name))
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let key = dir.path().join("trusted.key");
        let other = dir.path().join("other.key");
        let p = |n: &str| dir.path().join(n);
        let hello_wasm = fixture("components/hello-http.wasm");
        let signed = |wasm: &Path, out: &Path, key: &Path, extra: &[&str]| {
            let mut args = vec![s(wasm), "-t", here(), "-o", s(out), "--sign-key", s(key)];
            args.extend(extra);
            build(&args);
        };
        signed(&hello_wasm, &p("hello"), &key, &[]);
        // Another release (another index digest), signed by the other key.
        signed(
            &hello_wasm,
            &p("hello-other"),
            &other,
            &["-a", "org.opencontainers.image.version=other"],
        );
        let default = write(dir.path(), "default.toml", "");
        signed(
            &hello_wasm,
            &p("hello-unbounded"),
            &key,
            &["--profile", s(&default)],
        );
        signed(&fixture("components/loop-http.wasm"), &p("loop"), &key, &[]);
        let js = corpus("js-http-proxy-sm").map(|js| {
            signed(&js, &p("js"), &key, &[]);
            p("js")
        });
        Fixtures {
            trusted: p("trusted.pub"),
            hello: p("hello"),
            hello_other: p("hello-other"),
            hello_unbounded: p("hello-unbounded"),
            looping: p("loop"),
            js,
            _dir: dir,
        }
    })
}

/// A `pack serve --json` (or `wasmtime serve`) process, killed on drop.
struct Server {
    child: Child,
    addr: String,
    metrics: Option<String>,
    events: mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl Server {
    /// Starts `cmd`, and waits for its address: a `listening` event, or (wasmtime) a
    /// line with `http://ADDR/`.
    fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = match line.starts_with('{') {
                    true => json_str(&line),
                    false => serde_json::json!({"event": "text", "line": line}),
                };
                let _ = tx.send(value);
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
            metrics: None,
            events: rx,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Ok(event) = server.events.recv_timeout(Duration::from_secs(1)) else {
                continue;
            };
            server.seen.push(event.clone());
            if event["event"] == "metrics" {
                server.metrics = Some(event["address"].as_str().unwrap().to_string());
            }
            let url = match event["event"].as_str() {
                Some("listening") => event["url"].as_str().map(str::to_string),
                Some("text") => event["line"]
                    .as_str()
                    .and_then(|l| l.split("http://").nth(1))
                    .map(|rest| format!("http://{rest}")),
                _ => None,
            };
            if let Some(url) = url {
                server.addr = url
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap()
                    .to_string();
                // The metrics event comes right after.
                if event["event"] == "listening"
                    && let Ok(next) = server.events.recv_timeout(Duration::from_millis(200))
                {
                    if next["event"] == "metrics" {
                        server.metrics = Some(next["address"].as_str().unwrap().to_string());
                    }
                    server.seen.push(next);
                }
                return server;
            }
        }
        panic!("the server did not report its address: {:?}", server.seen);
    }

    /// Every event so far.
    fn events(&mut self) -> &[serde_json::Value] {
        self.seen.extend(self.events.try_iter());
        &self.seen
    }

    /// Waits up to `within` for an event for which `f` holds.
    fn wait_for(
        &mut self,
        within: Duration,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        if let Some(e) = self.events().iter().find(|e| f(e)) {
            return e.clone();
        }
        while Instant::now() < deadline {
            if let Ok(e) = self.events.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(e.clone());
                if f(&e) {
                    return e;
                }
            }
        }
        panic!("no such event within {within:?}: {:?}", self.seen);
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        Command::new("kill").args([name, &pid]).status().unwrap();
    }

    /// The exit status, waiting up to `within`.
    fn wait(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pack_serve(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pack"));
    cmd.arg("serve")
        .args(args)
        .arg("--json")
        .env("NO_COLOR", "1");
    cmd
}

/// What `wasmtime serve -Scli` answers for `path` on `wasm`.
fn wasmtime_answer(wasm: &Path, path: &str) -> Option<(u16, String)> {
    let wasmtime = tool("wasmtime")?;
    let mut cmd = Command::new(wasmtime);
    cmd.args(["serve", "-Scli", "--addr", "127.0.0.1:0"])
        .arg(wasm);
    let theirs = Server::start(cmd);
    Some(http_get(&theirs.addr, path))
}

#[test]
fn routes_limits_metrics_and_draining() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!(
        r#"listen = "127.0.0.1:0"
keys = ["{trusted}"]

[[app]]
route = "/hello"
bundle = "{hello}"

[[app]]
route = "hello.example.com/"
bundle = "{hello}"
env = {{ UNUSED = "1" }}

[[app]]
route = "/loop"
bundle = "{looping}"
timeout = "1s"

[[app]]
route = "/one"
bundle = "{looping}"
timeout = "3s"
max-concurrency = 1

[[app]]
route = "/tiny"
bundle = "{looping}"
max-memory = "1MiB"

[[app]]
route = "/unbounded"
bundle = "{unbounded}"
"#,
        trusted = s(&f.trusted),
        hello = s(&f.hello),
        looping = s(&f.looping),
        unbounded = s(&f.hello_unbounded),
    );
    if let Some(js) = &f.js {
        config.push_str(&format!(
            "\n[[app]]\nroute = \"/js\"\nbundle = \"{}\"\n",
            s(js)
        ));
    }
    let config = write(dir.path(), "serve.toml", config);
    let mut server = Server::start(pack_serve(&[
        "--config",
        s(&config),
        "--metrics",
        "127.0.0.1:0",
    ]));
    let addr = server.addr.clone();

    // Longest prefix, the full path seen by the handler, and the answer wasmtime gives.
    let (status, body) = http_get(&addr, "/hello/world?x=1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "hello from pack: GET /hello/world?x=1\n");
    if let Some(theirs) =
        wasmtime_answer(&fixture("components/hello-http.wasm"), "/hello/world?x=1")
    {
        assert_eq!((status, body.clone()), theirs);
    }
    let load = server.wait_for(Duration::from_secs(5), |e| {
        e["event"] == "load" && e["app"] == "/hello"
    });
    assert!(load["durationMs"].as_f64().unwrap() > 0.0, "{load}");
    assert_eq!(load["interruption"], "epoch");
    // A Host route, and no route.
    let (status, body) = http_get_host(&addr, "HELLO.example.com:80", "/anything");
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from pack: GET /anything\n")
    );
    assert_eq!(http_get(&addr, "/nowhere").0, 404);
    assert_eq!(http_get(&addr, "/hellothere").0, 404);
    if let Some(js) = &f.js {
        let (status, body) = http_get(&addr, "/js/hello?y=2");
        assert_eq!(status, 200, "{body}");
        if let Some(theirs) = wasmtime_answer(&corpus("js-http-proxy-sm").unwrap(), "/js/hello?y=2")
        {
            assert_eq!((status, body), theirs);
        }
        let _ = js;
    }

    // A request that never ends is answered 504 at its timeout; meanwhile the other
    // routes answer.
    let looping = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let answer = http_get(&addr, "/loop");
            (answer, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(http_get(&addr, "/hello/x").0, 200);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    let ((status, _), took) = looping.join().unwrap();
    assert_eq!(status, 504);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // One instance at most: the second request at once gets 503.
    let first = {
        let addr = addr.clone();
        std::thread::spawn(move || http_get(&addr, "/one").0)
    };
    server.wait_for(Duration::from_secs(5), |e| {
        e["event"] == "load" && e["app"] == "/one"
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http_get(&addr, "/one").0, 503);
    assert_eq!(first.join().unwrap(), 504);

    // 2 MiB of memory do not fit under a 1 MiB cap.
    let (status, _) = http_get(&addr, "/tiny");
    assert_eq!(status, 500);
    let e = server.wait_for(Duration::from_secs(5), |e| {
        e["event"] == "request" && e["app"] == "/tiny"
    });
    assert!(e["error"].as_str().unwrap().contains("memory"), "{e}");

    // An artifact without epoch interruption or fuel is refused, with the reason.
    assert_eq!(http_get(&addr, "/unbounded").0, 503);
    let refusal = server.wait_for(Duration::from_secs(5), |e| {
        e["event"] == "refusal" && e["app"] == "/unbounded"
    });
    assert!(
        refusal["reason"]
            .as_str()
            .unwrap()
            .contains("--allow-unbounded"),
        "{refusal}"
    );

    // Metrics.
    let metrics = server.metrics.clone().expect("a metrics address");
    let (status, text) = http_get(&metrics, "/metrics");
    assert_eq!(status, 200);
    for needle in [
        "pack_serve_requests_total{app=\"/hello\",status=\"200\"} 6",
        "pack_serve_requests_total{app=\"/loop\",status=\"504\"} 1",
        "pack_serve_requests_total{app=\"\",status=\"404\"} 2",
        "pack_serve_requests_total{app=\"/one\",status=\"503\"} 1",
        "pack_serve_refusals_total{app=\"/one\",reason=\"concurrency\"} 1",
        "pack_serve_refusals_total{app=\"/unbounded\",reason=\"unbounded\"} 1",
        "pack_serve_cold_starts_total{app=\"/hello\"} 1",
        "pack_serve_request_duration_seconds_count{app=\"/hello\"} 6",
        "pack_serve_instances_in_use{app=\"/hello\"} 0",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }

    // SIGTERM: the request in flight is answered, then the server exits 0.
    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || http_get(&addr, "/loop").0)
    };
    std::thread::sleep(Duration::from_millis(300));
    server.signal("-TERM");
    assert_eq!(in_flight.join().unwrap(), 504);
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
    let events = server.events().to_vec();
    assert!(
        events.iter().any(|e| e["event"] == "draining"),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap()["event"], "stopped");
}

#[test]
fn configuration_errors_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "serve.toml",
        "listen = \"127.0.0.1:0\"\n\n[[app]]\nroute = \"/a\"\nbundle = \"out/a\"\ntiemout = \"1s\"\n",
    );
    let out = pack()
        .args(["serve", "--config", s(&config)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("serve.toml:6: unknown key `tiemout`"), "{err}");
    let out = pack()
        .args(["serve", "--app", "nothing", "--key", "x.pub"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ROUTE=BUNDLE"), "{}", stderr(&out));
}

/// Pushes `layout` (tag `latest`) to `reference`.
fn push(layout: &Path, reference: &str) {
    let out = pack()
        .args(["push", s(layout), reference])
        .output()
        .unwrap();
    assert!(out.status.success(), "pack push: {}", stderr(&out));
}

#[test]
fn releases_follow_the_tag_and_a_bad_signature_keeps_the_old_one() {
    let f = fixtures();
    let Some(js) = &f.js else { return };
    let Some(registry) = Registry::start() else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let reference = format!("{}/team/app:live", registry.addr());
    push(&f.hello, &reference);
    let app = format!("/app={reference}");
    let mut server = Server::start(pack_serve(&[
        "--app",
        &app,
        "--key",
        s(&f.trusted),
        "--store",
        s(store.path()),
        "--listen",
        "127.0.0.1:0",
        "--poll",
        "500ms",
    ]));
    let addr = server.addr.clone();
    assert_eq!(http_get(&addr, "/app").1, "hello from pack: GET /app\n");

    // A client loops meanwhile: no request fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                answers.push(http_get(&addr, "/app/loop"));
            }
            answers
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    push(js, &reference);
    // Within a poll (500 ms) and the pull of the new release.
    let swap = server.wait_for(Duration::from_secs(10), |e| e["event"] == "swap");
    let new_digest = swap["to"].as_str().unwrap().to_string();
    assert_eq!(new_digest, index_digest(js, "latest"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        http_get(&addr, "/app")
            .1
            .contains("Hello from ComponentizeJS")
    );

    // A release signed by an untrusted key is refused; the old one keeps serving.
    push(&f.hello_other, &reference);
    let refusal = server.wait_for(Duration::from_secs(10), |e| e["event"] == "refusal");
    assert_eq!(refusal["serving"], new_digest.as_str());
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = client.join().unwrap();
    assert!(answers.len() > 5);
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        answers
            .iter()
            .any(|(_, b)| b.starts_with("hello from pack"))
    );
    assert!(
        answers
            .last()
            .unwrap()
            .1
            .contains("Hello from ComponentizeJS")
    );
    assert!(
        server
            .events()
            .iter()
            .all(|e| e["event"] != "swap" || e["to"] == new_digest.as_str())
    );
}

/// `--max-loaded 1`: a request to another app unloads the least recently used one, which
/// loads again on its next request. SIGHUP re-reads serve.toml (a new route answers, a
/// removed one is 404); a configuration that no longer parses keeps the old one serving.
#[test]
fn idle_apps_are_unloaded_and_sighup_rereads_the_configuration() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let config = |routes: &[&str]| {
        let mut text = format!("listen = \"127.0.0.1:0\"\nkeys = [\"{}\"]\n", s(&f.trusted));
        for route in routes {
            text.push_str(&format!(
                "\n[[app]]\nroute = \"{route}\"\nbundle = \"{}\"\n",
                s(&f.hello)
            ));
        }
        write(dir.path(), "serve.toml", text)
    };
    let file = config(&["/a", "/b"]);
    let mut server = Server::start(pack_serve(&["--config", s(&file), "--max-loaded", "1"]));
    let addr = server.addr.clone();
    let loads = |server: &mut Server, app: &str| {
        server
            .events()
            .iter()
            .filter(|e| e["event"] == "load" && e["app"] == app)
            .count()
    };

    assert_eq!(http_get(&addr, "/a/1").0, 200);
    assert_eq!(http_get(&addr, "/a/2").0, 200);
    assert_eq!(http_get(&addr, "/b/1").0, 200);
    let unload = server.wait_for(Duration::from_secs(5), |e| e["event"] == "unload");
    assert_eq!(unload["app"], "/a", "{unload}");
    assert_eq!(http_get(&addr, "/a/3").0, 200);
    server.wait_for(Duration::from_secs(5), |e| {
        e["event"] == "unload" && e["app"] == "/b"
    });
    assert_eq!(loads(&mut server, "/a"), 2);
    assert_eq!(loads(&mut server, "/b"), 1);

    // SIGHUP: /b goes, /c comes.
    config(&["/a", "/c"]);
    server.signal("-HUP");
    let reload = server.wait_for(Duration::from_secs(10), |e| e["event"] == "reload");
    assert_eq!(reload["apps"], 2, "{reload}");
    assert_eq!(http_get(&addr, "/c/1").0, 200);
    assert_eq!(http_get(&addr, "/b/1").0, 404);

    // A configuration with an unknown key is reported; the one before keeps serving.
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nkeyz = []\n").unwrap();
    server.signal("-HUP");
    let failed = server.wait_for(Duration::from_secs(10), |e| e["event"] == "reloadFailed");
    assert!(
        failed["reason"].as_str().unwrap().contains("keyz"),
        "{failed}"
    );
    assert_eq!(http_get(&addr, "/c/2").0, 200);
    assert_eq!(http_get(&addr, "/a/4").0, 200);
}
