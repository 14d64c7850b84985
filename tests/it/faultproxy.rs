//! A fault-injecting HTTP proxy between pack and a real registry: by a rule called for
//! every request, it forwards the request, or answers an error status (with
//! `Retry-After`), closes or resets the connection, cuts or corrupts the response body,
//! or stalls. It handles one request per connection (forwarded with `Connection: close`)
//! and counts what it passes, so tests can wait for a point of a transfer without sleeps.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::read_head;

/// What the proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it to the registry and its answer back.
    Pass,
    /// Answer this status with a registry error document, and `Retry-After: <seconds>`
    /// when given (500, 503, 429).
    Status(u16, Option<u32>),
    /// Close the connection without answering.
    Close,
    /// Forward it, pass the answer's head and half its body, then reset the connection
    /// (TCP RST).
    ResetMidBody,
    /// Forward it, pass the answer's head (its full `Content-Length`) and half the body,
    /// then close the connection normally.
    Truncate,
    /// Answer nothing and hold the connection until the client gives up on it.
    Stall,
    /// Forward it, pass the answer's head and its first `n` body bytes, then hold the
    /// connection until the client goes away (a transfer stopped at a known point).
    StallAfter(u64),
    /// Forward it, with one byte of the answer's body flipped (same length).
    Corrupt,
    /// Forward it with one byte of the request's body flipped (same length).
    CorruptUpload,
}

/// A request as the rule sees it.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The request's `Content-Length`.
    pub length: u64,
    /// How many requests with this method and path the proxy has seen, this one included.
    pub count: usize,
}

impl Request<'_> {
    /// A blob upload (`POST`/`PATCH`/`PUT` under `/blobs/uploads/`).
    pub fn is_upload(&self) -> bool {
        self.path.contains("/blobs/uploads/")
    }

    /// `GET` of a blob.
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.path.contains("/blobs/sha256:")
    }

    /// A manifest request (any method).
    pub fn is_manifest(&self) -> bool {
        self.path.contains("/manifests/")
    }
}

type Rule = dyn Fn(&Request) -> Fault + Send + Sync;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Request body bytes of blob uploads forwarded to the registry.
    uploaded: AtomicU64,
    /// Response body bytes of blob `GET`s passed to the client.
    downloaded: AtomicU64,
    /// Connections being handled.
    active: AtomicUsize,
    /// Connections held by `Stall` or `StallAfter`.
    stalled: AtomicUsize,
    /// Faults injected (anything but `Pass`).
    injected: AtomicUsize,
    counts: Mutex<std::collections::HashMap<(String, String), usize>>,
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    pub addr: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`127.0.0.1:PORT`) that applies `rule`.
    pub fn start(upstream: &str, rule: impl Fn(&Request) -> Fault + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let rule: Arc<Rule> = Arc::new(rule);
        let upstream = upstream.to_string();
        let state = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (rule, upstream, state) = (rule.clone(), upstream.clone(), state.clone());
                state.active.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = handle(conn, &upstream, &*rule, &state);
                    state.active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FaultProxy { addr, shared }
    }

    /// Blob upload body bytes forwarded to the registry so far.
    pub fn uploaded(&self) -> u64 {
        self.shared.uploaded.load(Ordering::SeqCst)
    }

    /// Blob body bytes passed to the client so far.
    pub fn downloaded(&self) -> u64 {
        self.shared.downloaded.load(Ordering::SeqCst)
    }

    /// Connections held by a stall right now.
    pub fn stalled(&self) -> usize {
        self.shared.stalled.load(Ordering::SeqCst)
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// Waits until `condition` holds (checked every 10 ms, for at most `limit`); panics
    /// with `what` otherwise.
    pub fn wait_for(&self, what: &str, limit: Duration, condition: impl Fn(&Self) -> bool) {
        let start = std::time::Instant::now();
        while !condition(self) {
            assert!(start.elapsed() < limit, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until no connection is being handled (requests already forwarded to the
    /// registry have had their answer).
    pub fn wait_idle(&self) {
        self.wait_for("the proxy to be idle", Duration::from_secs(60), |p| {
            p.shared.active.load(Ordering::SeqCst) == 0
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn content_length(head: &str) -> Option<u64> {
    head.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// Holds `client` until it closes its side (or the proxy's read timeout, a minute).
fn hold(client: &mut TcpStream, shared: &Shared) {
    shared.stalled.fetch_add(1, Ordering::SeqCst);
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let mut sink = [0u8; 64 * 1024];
    while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
    shared.stalled.fetch_sub(1, Ordering::SeqCst);
}

fn handle(
    mut client: TcpStream,
    upstream: &str,
    rule: &Rule,
    shared: &Shared,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let Some(head) = read_head(&mut client)? else {
        return Ok(());
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let length = content_length(&head).unwrap_or(0);
    let count = {
        let mut counts = shared.counts.lock().unwrap();
        let n = counts
            .entry((method.to_string(), path.to_string()))
            .or_default();
        *n += 1;
        *n
    };
    let request = Request {
        method,
        path,
        length,
        count,
    };
    let fault = rule(&request);
    if fault != Fault::Pass {
        shared.injected.fetch_add(1, Ordering::SeqCst);
    }
    if fault == Fault::Stall {
        hold(&mut client, shared);
        return Ok(());
    }
    let mut body = vec![0u8; length as usize];
    client.read_exact(&mut body)?;
    match fault {
        Fault::Close => return Ok(()),
        Fault::Status(code, retry_after) => {
            let doc = format!(
                r#"{{"errors":[{{"code":"UNAVAILABLE","message":"HTTP {code} injected by the test proxy"}}]}}"#
            );
            let retry = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
            write!(
                client,
                "HTTP/1.1 {code} Injected\r\n{retry}Content-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{doc}",
                doc.len()
            )?;
            return Ok(());
        }
        Fault::CorruptUpload if !body.is_empty() => {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
        _ => {}
    }
    let mut server = TcpStream::connect(upstream)?;
    let mut forwarded = format!("{request_line}\r\n");
    for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name != "connection" && name != "keep-alive" {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    server.write_all(forwarded.as_bytes())?;
    server.write_all(&body)?;
    if request.is_upload() {
        shared
            .uploaded
            .fetch_add(body.len() as u64, Ordering::SeqCst);
    }
    let Some(answer) = read_head(&mut server)? else {
        return Ok(());
    };
    client.write_all(answer.as_bytes())?;
    // The answer's body: `Content-Length` bytes, or everything up to the close.
    let mut response = Vec::new();
    match content_length(&answer) {
        Some(n) => {
            server.take(n).read_to_end(&mut response)?;
        }
        None => {
            server.read_to_end(&mut response)?;
        }
    }
    let (cut, then) = match fault {
        Fault::ResetMidBody | Fault::Truncate => (response.len() / 2, Some(fault)),
        Fault::StallAfter(n) => ((n as usize).min(response.len()), Some(fault)),
        _ => (response.len(), None),
    };
    if fault == Fault::Corrupt && !response.is_empty() {
        let mid = response.len() / 2;
        response[mid] ^= 0xff;
    }
    // In slices, so the download counter moves as the client takes the bytes.
    for piece in response[..cut].chunks(256 * 1024) {
        client.write_all(piece)?;
        if request.is_blob_get() {
            shared
                .downloaded
                .fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
    }
    client.flush()?;
    match then {
        Some(Fault::ResetMidBody) => {
            socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO))?;
        }
        Some(Fault::StallAfter(_)) if cut < response.len() => hold(&mut client, shared),
        _ => {}
    }
    Ok(())
}
