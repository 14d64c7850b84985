//! `pack serve`: several signed HTTP handler bundles behind routes in one process, their
//! answers compared with `wasmtime serve -Scli`; timeouts (504) while other routes
//! answer, concurrency caps (503), memory caps, unbounded artifacts refused, metrics,
//! SIGTERM draining, and releases followed through a real registry.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;

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
    /// loop-http compiled with wasmtime's default profile.
    looping_unbounded: PathBuf,
    js: Option<PathBuf>,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = shared_tempdir();
        for name in ["trusted", "other"] {
            key_pair(dir.path(), name);
        }
        let key = dir.path().join("trusted.key");
        let other = dir.path().join("other.key");
        let p = |n: &str| dir.path().join(n);
        let hello_wasm = fixture("components/hello-http.wasm");
        let signed = |wasm: &Path, out: &Path, key: &Path, extra: &[&str]| {
            let mut args = vec![s(wasm), "-t", here(), "-o", s(out), "--sign-key", s(key)];
            args.extend(extra);
            pack_build(&args);
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
        signed(
            &fixture("components/loop-http.wasm"),
            &p("loop-unbounded"),
            &key,
            &["--profile", s(&default)],
        );
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
            looping_unbounded: p("loop-unbounded"),
            js,
            _dir: dir,
        }
    })
}

/// The Python HTTP handler (fixtures/py-http, built by componentize-py into a cache keyed
/// by its sources) and its bundle signed by the trusted key: built once per test run,
/// apart from [`fixtures`] since the first build takes a while. `None` (skip) when
/// componentize-py is missing outside CI.
fn python() -> Option<&'static (PathBuf, PathBuf)> {
    static PYTHON: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            tool("componentize-py")?;
            let out = Command::new(fixture("py-http/build.sh")).output().unwrap();
            assert!(
                out.status.success(),
                "fixtures/py-http/build.sh: {}",
                stderr(&out)
            );
            let wasm = PathBuf::from(stdout(&out).trim());
            let f = fixtures();
            let bundle = f._dir.path().join("python");
            let key = f._dir.path().join("trusted.key");
            pack_build(&[
                s(&wasm),
                "-t",
                here(),
                "-o",
                s(&bundle),
                "--sign-key",
                s(&key),
            ]);
            Some((wasm, bundle))
        })
        .as_ref()
}

/// A `pack serve --json` (or `wasmtime serve`) process, killed on drop.
struct Server {
    child: Spawned,
    addr: String,
    metrics: Option<String>,
    events: mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl Server {
    /// Starts `cmd`, and waits for its address: a `listening` event, or (wasmtime) a
    /// line with `http://ADDR/`.
    fn start(mut cmd: Command) -> Server {
        let (child, rx) = spawn_reading_stderr(&mut cmd, |line| match line.starts_with('{') {
            true => json_str(&line),
            false => serde_json::json!({"event": "text", "line": line}),
        });
        let mut server = Server {
            child: Spawned(child),
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

    /// Waits up to 5 s for an `event` of the app at `route`.
    fn app_event(&mut self, event: &str, route: &str) -> serde_json::Value {
        self.wait_for(Duration::from_secs(5), |e| {
            e["event"] == event && e["app"] == route
        })
    }

    fn signal(&self, name: &str) {
        self.child.signal(name);
    }

    /// The exit status, waiting up to `within`.
    fn wait(&mut self, within: Duration) -> Option<i32> {
        self.child.exit_code_within(within)
    }

    /// `GET /metrics` on the metrics address: the status and the text.
    fn scrape(&self) -> (u16, String) {
        let metrics = self.metrics.as_ref().expect("a metrics address");
        http_get(metrics, "/metrics")
    }
}

impl Fixtures {
    /// Writes `dir/serve.toml`: listening on a free port, trusting the trusted key, with
    /// an `[[app]]` for each (route, bundle, further lines of its table).
    fn serve_toml(&self, dir: &Path, apps: &[(&str, impl AsRef<Path>, &str)]) -> PathBuf {
        let mut text = format!(
            "listen = \"127.0.0.1:0\"\nkeys = [\"{}\"]\n",
            s(&self.trusted)
        );
        for (route, bundle, more) in apps {
            text.push_str(&format!(
                "\n[[app]]\nroute = \"{route}\"\nbundle = \"{}\"\n{more}\n",
                s(bundle.as_ref())
            ));
        }
        write(dir, "serve.toml", text)
    }

    /// `pack serve --app APP --key trusted.pub --listen 127.0.0.1:0 FLAGS --json`, started.
    fn serve_app(&self, app: &str, flags: &[&str]) -> Server {
        let args = [
            "--app",
            app,
            "--key",
            s(&self.trusted),
            "--listen",
            "127.0.0.1:0",
        ];
        Server::start(pack_serve(&[&args[..], flags].concat()))
    }
}

/// `pack serve --config CONFIG --metrics 127.0.0.1:0 --json`, started.
fn serve_with_metrics(config: &Path) -> Server {
    Server::start(pack_serve(&[
        "--config",
        s(config),
        "--metrics",
        "127.0.0.1:0",
    ]))
}

/// `GET path` on `addr`: the status, the body, and how long the answer took.
fn timed_get(addr: &str, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let (status, body) = http_get(addr, path);
    (status, body, started.elapsed())
}

/// [`timed_get`] on a thread of its own, for a request that takes a while.
fn timed_get_in_background(
    addr: &str,
    path: &'static str,
) -> std::thread::JoinHandle<(u16, String, Duration)> {
    let addr = addr.to_string();
    std::thread::spawn(move || timed_get(&addr, path))
}

/// Asserts that the metrics `text` has each of `lines`.
#[track_caller]
fn assert_metrics_have(text: &str, lines: &[impl AsRef<str>]) {
    for line in lines {
        let line = line.as_ref();
        assert!(text.contains(line), "{line} in:\n{text}");
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
    let mut apps = vec![
        ("/hello", &f.hello, ""),
        ("hello.example.com/", &f.hello, "env = { UNUSED = \"1\" }"),
        ("/loop", &f.looping, "timeout = \"1s\""),
        ("/one", &f.looping, "timeout = \"3s\"\nmax-concurrency = 1"),
        ("/tiny", &f.looping, "max-memory = \"1MiB\""),
        ("/unbounded", &f.hello_unbounded, ""),
    ];
    if let Some(js) = &f.js {
        apps.push(("/js", js, ""));
    }
    let mut server = serve_with_metrics(&f.serve_toml(dir.path(), &apps));
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
    let load = server.app_event("load", "/hello");
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
    let looping = timed_get_in_background(&addr, "/loop");
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let (status, _, took) = timed_get(&addr, "/hello/x");
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(500));
    }
    let (status, _, took) = looping.join().unwrap();
    assert_eq!(status, 504);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // One instance at most: the second request at once gets 503.
    let first = timed_get_in_background(&addr, "/one");
    server.app_event("load", "/one");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http_get(&addr, "/one").0, 503);
    assert_eq!(first.join().unwrap().0, 504);

    // 2 MiB of memory do not fit under a 1 MiB cap.
    let (status, _) = http_get(&addr, "/tiny");
    assert_eq!(status, 500);
    let e = server.app_event("request", "/tiny");
    assert!(e["error"].as_str().unwrap().contains("memory"), "{e}");

    // An artifact without epoch interruption or fuel is refused, with the reason.
    assert_eq!(http_get(&addr, "/unbounded").0, 503);
    let refusal = server.app_event("refusal", "/unbounded");
    assert!(
        refusal["reason"]
            .as_str()
            .unwrap()
            .contains("--allow-unbounded"),
        "{refusal}"
    );

    // Metrics.
    let (status, text) = server.scrape();
    assert_eq!(status, 200);
    assert_metrics_have(
        &text,
        &[
            "pack_serve_requests_total{app=\"/hello\",status=\"200\"} 6",
            "pack_serve_requests_total{app=\"/loop\",status=\"504\"} 1",
            "pack_serve_requests_total{app=\"\",status=\"404\"} 2",
            "pack_serve_requests_total{app=\"/one\",status=\"503\"} 1",
            "pack_serve_refusals_total{app=\"/one\",reason=\"concurrency\"} 1",
            "pack_serve_refusals_total{app=\"/unbounded\",reason=\"unbounded\"} 1",
            "pack_serve_cold_starts_total{app=\"/hello\"} 1",
            "pack_serve_request_duration_seconds_count{app=\"/hello\"} 6",
            "pack_serve_instances_in_use{app=\"/hello\"} 0",
        ],
    );

    // SIGTERM: the request in flight is answered, then the server exits 0.
    let in_flight = timed_get_in_background(&addr, "/loop");
    std::thread::sleep(Duration::from_millis(300));
    server.signal("-TERM");
    assert_eq!(in_flight.join().unwrap().0, 504);
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
    let events = server.events().to_vec();
    assert!(
        events.iter().any(|e| e["event"] == "draining"),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap()["event"], "stopped");
}

/// Rust, JavaScript and Python handlers behind three routes answer as `wasmtime serve
/// -Scli` does on the same components; a Python request that loops forever is
/// interrupted at its timeout (504, its instance gone) while every route, the Python one
/// included, keeps answering.
#[test]
fn three_languages_behind_three_routes() {
    let f = fixtures();
    let (Some(js), Some((py_wasm, python))) = (&f.js, python()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = f.serve_toml(
        dir.path(),
        &[
            ("/hello", &f.hello, ""),
            ("/js", js, ""),
            ("/py", python, "timeout = \"2s\""),
        ],
    );
    let mut server = serve_with_metrics(&config);
    let addr = server.addr.clone();

    let cases = [
        (
            fixture("components/hello-http.wasm"),
            "/hello/r?x=1",
            "hello from pack: GET /hello/r?x=1\n",
        ),
        (
            corpus("js-http-proxy-sm").unwrap(),
            "/js/j?y=2",
            "Hello from ComponentizeJS",
        ),
        (
            py_wasm.clone(),
            "/py/p?z=3",
            "hello from python: GET /py/p?z=3\n",
        ),
    ];
    for (wasm, path, expected) in &cases {
        let ours = http_get(&addr, path);
        assert_eq!(ours.0, 200, "{path}: {}", ours.1);
        assert!(ours.1.starts_with(expected), "{path}: {}", ours.1);
        if let Some(theirs) = wasmtime_answer(wasm, path) {
            assert_eq!(ours, theirs, "{path}: pack serve, then wasmtime serve");
        }
    }
    let load = server.app_event("load", "/py");
    assert_eq!(load["interruption"], "epoch", "{load}");

    // The loop is interrupted at 2 s; meanwhile all three routes answer, Python too.
    let looping = timed_get_in_background(&addr, "/py/loop?n=1");
    std::thread::sleep(Duration::from_millis(200));
    let mut answered = 0;
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        for (_, path, expected) in &cases {
            let (status, body, took) = timed_get(&addr, path);
            assert_eq!(status, 200, "{path} while /py/loop runs: {body}");
            assert!(body.starts_with(expected), "{path}: {body}");
            assert!(took < Duration::from_secs(1), "{path}: {took:?}");
            answered += 1;
        }
    }
    let (status, body, took) = looping.join().unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let e = server.wait_for(Duration::from_secs(5), |e| {
        e["event"] == "request" && e["status"] == 504
    });
    assert_eq!(e["app"], "/py", "{e}");
    assert!(e["error"].as_str().unwrap().contains("timed out"), "{e}");

    // The looping instance is gone (interrupted, not left spinning), within moments.
    let gone = "pack_serve_instances_in_use{app=\"/py\"} 0\n";
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut text = server.scrape().1;
    while !text.contains(gone) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        text = server.scrape().1;
    }
    assert_metrics_have(
        &text,
        &[
            "pack_serve_requests_total{app=\"/py\",status=\"504\"} 1\n".to_string(),
            gone.to_string(),
            format!(
                "pack_serve_requests_total{{app=\"/py\",status=\"200\"}} {}\n",
                1 + answered / 3
            ),
        ],
    );
}

/// With --allow-unbounded, a request past its timeout is answered 504 but its instance
/// runs on (it cannot be interrupted); SIGTERM still stops the server, exit 0.
#[test]
fn an_unbounded_instance_running_on_does_not_keep_the_server_from_stopping() {
    let f = fixtures();
    let app = format!("/loop={}", s(&f.looping_unbounded));
    let mut server = f.serve_app(&app, &["--request-timeout", "500ms", "--allow-unbounded"]);
    assert_eq!(http_get(&server.addr, "/loop").0, 504);
    let load = server.wait_for(Duration::from_secs(5), |e| e["event"] == "load");
    assert_eq!(load["interruption"], "none", "{load}");
    server.signal("-TERM");
    assert_eq!(
        server.wait(Duration::from_secs(10)),
        Some(0),
        "{:?}",
        server.events()
    );
}

#[test]
fn configuration_errors_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "serve.toml",
        "listen = \"127.0.0.1:0\"\n\n[[app]]\nroute = \"/a\"\nbundle = \"out/a\"\ntiemout = \"1s\"\n",
    );
    // Each a usage error (exit 2) whose message says what is wrong.
    for (args, expected) in [
        (
            &["--config", s(&config)][..],
            "serve.toml:6: unknown key `tiemout`",
        ),
        (&["--app", "nothing", "--key", "x.pub"], "ROUTE=BUNDLE"),
    ] {
        let out = pack().arg("serve").args(args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "pack serve {args:?}: {err}");
        assert!(err.contains(expected), "pack serve {args:?}: {err}");
    }
}

#[test]
fn releases_follow_the_tag_and_a_bad_signature_keeps_the_old_one() {
    let f = fixtures();
    let Some(js) = &f.js else { return };
    let Some((registry, store)) = registry_and_tempdir() else {
        return;
    };
    let reference = format!("{}/team/app:live", registry.addr());
    pack_push(&f.hello, &reference);
    let app = format!("/app={reference}");
    let mut server = f.serve_app(&app, &["--store", s(store.path()), "--poll", "500ms"]);
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
    pack_push(js, &reference);
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
    pack_push(&f.hello_other, &reference);
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
    let file = f.serve_toml(dir.path(), &[("/a", &f.hello, ""), ("/b", &f.hello, "")]);
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
    f.serve_toml(dir.path(), &[("/a", &f.hello, ""), ("/c", &f.hello, "")]);
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
