//! Start-up benchmark of the host library, in process (`bench/start.sh` runs it and
//! prints the table).
//!
//! ```text
//! start --key <PUB> [--runs N] <NAME>=<LAYOUT>[,<ARG>...]...   in-process timings
//! start serve <SECONDS> <CONNECTIONS> -- <CMD> <ARG>...          an HTTP server's start
//! ```
//!
//! For each bundle, after resolving, verifying and selecting it once:
//!
//! - `first`: `Host::load` (digest check, mmap) to the first export call returning, with
//!   a host that has not seen the artifact;
//! - `load-to-call`: the same with the artifact already verified by this host, as a host
//!   that keeps running starts it again: load, link, pre-instantiate, instantiate, call
//!   (`wasi:cli/run`, or `wasi:http/incoming-handler` with one GET);
//! - `instance`: a second instance from the same pre-instance (new store and instance);
//! - `instance+call`: a second instance and its call.
//!
//! Each line: `inproc <name> <metric> <p50 us> <p90 us>`.
//!
//! `serve` starts the command (a server that prints `http://<ADDR>/` on stderr), polls it
//! with GETs until one answers 200, then keeps `CONNECTIONS` keep-alive connections busy
//! for `SECONDS`, and prints `serve <ms to the first response> <requests per second>
//! <errors>`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pack_host::wasi::Output;
use pack_host::{Host, HostOptions, Kind, Loaded, Source, Trust, WasiOptions};
use pack_packager::signing::PublicKey;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn report(name: &str, metric: &str, samples: &mut [f64]) {
    let p50 = percentile(samples, 0.5);
    let p90 = percentile(samples, 0.9);
    println!("inproc {name} {metric} {p50:.1} {p90:.1}");
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn wasi(args: &[String]) -> WasiOptions {
    WasiOptions {
        args: args.to_vec(),
        stdout: Output::Memory(MemoryOutputPipe::new(1 << 20)),
        stderr: Output::Null,
        ..WasiOptions::default()
    }
}

/// Runs the first export call of `loaded`: `run`, or one GET.
fn first_call(loaded: &Loaded, args: &[String], runtime: &tokio::runtime::Runtime) -> Duration {
    let started = Instant::now();
    match loaded.kind() {
        Kind::HttpHandler => {
            let pre = loaded.http(wasi(args)).expect("link the handler");
            let status = runtime.block_on(async {
                let req = hyper::Request::get("http://localhost/bench")
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .unwrap();
                let response = pre.handle(req).await.expect("a response");
                let status = response.status();
                use http_body_util::BodyExt;
                response.into_body().collect().await.expect("a body");
                status
            });
            assert_eq!(status, 200);
        }
        _ => {
            let pre = loaded.command().expect("link the command");
            let outcome = pre.run(&wasi(args)).expect("instantiate");
            assert_eq!(outcome.exit_code(), 0, "{outcome:?}");
        }
    }
    started.elapsed()
}

fn bench(key: &PublicKey, runs: usize, name: &str, layout: &str, args: &[String]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let source = Source::parse(layout);
    let new_host = || Host::new(HostOptions::new(Trust::Keys(vec![key.clone()])));

    // Verified bundle, selected; the engine exists (a host has one before requests come).
    let host = new_host();
    let selection = host
        .select(host.verify(&host.resolve(&source).unwrap()).unwrap())
        .unwrap();
    let started = Instant::now();
    let loaded = host.load(selection.clone()).unwrap();
    let first_load = started.elapsed();
    let first = first_load + first_call(&loaded, args, &runtime);
    println!(
        "inproc {name} first {:.1} {:.1}",
        micros(first),
        micros(first)
    );

    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let loaded = host.load(selection.clone()).unwrap();
        let load = started.elapsed();
        samples.push(micros(load + first_call(&loaded, args, &runtime)));
    }
    report(name, "load-to-call", &mut samples);

    // Second instances from one pre-instance.
    let instances = runs * 20;
    let mut inst = Vec::with_capacity(instances);
    let mut inst_call = Vec::with_capacity(instances);
    match loaded.kind() {
        Kind::HttpHandler => {
            let pre = loaded.http(wasi(args)).unwrap();
            for _ in 0..instances {
                let started = Instant::now();
                runtime.block_on(async {
                    let req = hyper::Request::get("http://localhost/bench")
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .unwrap();
                    let response = pre.handle(req).await.unwrap();
                    use http_body_util::BodyExt;
                    response.into_body().collect().await.unwrap();
                });
                inst_call.push(micros(started.elapsed()));
            }
        }
        _ => {
            let pre = loaded.command().unwrap();
            let options = wasi(args);
            for _ in 0..instances {
                let started = Instant::now();
                let instance = pre.instantiate(&options).unwrap();
                inst.push(micros(started.elapsed()));
                instance.run();
                inst_call.push(micros(started.elapsed()));
            }
        }
    }
    if !inst.is_empty() {
        report(name, "instance", &mut inst);
    }
    report(name, "instance+call", &mut inst_call);
}

/// Keeps `connections` keep-alive connections busy with GETs for `seconds`; returns
/// (requests per second, errors).
fn load(addr: &str, seconds: f64, connections: usize, path: &str) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (stop, done, errors, request, addr) = (
                stop.clone(),
                done.clone(),
                errors.clone(),
                request.clone(),
                addr.to_string(),
            );
            std::thread::spawn(move || {
                let mut stream: Option<TcpStream> = None;
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    let s = match &mut stream {
                        Some(s) => s,
                        None => match TcpStream::connect(&addr) {
                            Ok(s) => {
                                let _ = s.set_nodelay(true);
                                stream.insert(s)
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    if one_request(s, request.as_bytes(), &mut buf) {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        stream = None;
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for t in threads {
        let _ = t.join();
    }
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        errors.load(Ordering::Relaxed),
    )
}

/// Starts `command`, waits for the address it prints, and measures the first response
/// and the request rate.
fn serve(seconds: f64, connections: usize, command: &[String]) {
    use std::io::BufRead;
    let started = Instant::now();
    let mut child = std::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the server");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("http://").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the server prints its address");
    let mut buf = vec![0u8; 64 * 1024];
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let first = loop {
        if let Ok(mut s) = TcpStream::connect(&addr)
            && one_request(&mut s, request.as_bytes(), &mut buf)
        {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no response");
        std::thread::sleep(Duration::from_micros(200));
    };
    let (rps, errors) = load(&addr, seconds, connections, "/");
    // Ctrl-C, as a person would stop it.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    println!(
        "serve {:.1} {rps:.0} {errors}",
        first.as_secs_f64() * 1000.0
    );
}

/// Sends one request on a keep-alive connection and reads the response (content-length
/// or chunked). Returns whether a 200 came back.
fn one_request(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> bool {
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut data: Vec<u8> = Vec::new();
    loop {
        let n = match stream.read(buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        data.extend_from_slice(&buf[..n]);
        let Some(head_end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
        let body = &data[head_end + 4..];
        let ok = head.starts_with("http/1.1 200");
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            if body.len() >= len {
                return ok;
            }
        } else if head.contains("transfer-encoding: chunked") {
            if body.ends_with(b"0\r\n\r\n") {
                return ok;
            }
        } else {
            return ok;
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs it with nothing.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        eprintln!(
            "start: nothing to measure (bench/start.sh runs it with bundles):\n  \
             start --key <PUB> [--runs N] <NAME>=<LAYOUT>[,<ARG>...]...\n  \
             start serve <SECONDS> <CONNECTIONS> -- <CMD> <ARG>..."
        );
        return;
    }
    if args.first().map(String::as_str) == Some("serve") {
        let command: Vec<String> = args
            .iter()
            .skip_while(|a| *a != "--")
            .skip(1)
            .cloned()
            .collect();
        serve(args[1].parse().unwrap(), args[2].parse().unwrap(), &command);
        return;
    }
    let mut key = None;
    let mut runs = 30;
    let mut bundles = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--key" => key = Some(PathBuf::from(it.next().expect("--key PUB"))),
            "--runs" => runs = it.next().expect("--runs N").parse().unwrap(),
            _ => bundles.push(arg),
        }
    }
    let key = PublicKey::load(&key.expect("--key PUB")).unwrap();
    for spec in bundles {
        let (name, rest) = spec.split_once('=').expect("NAME=LAYOUT[,ARG...]");
        let mut parts = rest.split(',');
        let layout = parts.next().unwrap();
        let mut argv = vec![name.to_string()];
        argv.extend(parts.map(str::to_string));
        bench(&key, runs, name, layout, &argv);
    }
}
