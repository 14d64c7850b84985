//! Faults between pack and a real registry (`docker-registry` behind the fault-injecting
//! proxy): transient faults are retried and logged, permanent ones fail clearly in bounded
//! time, `kill -9` of push, pull and build leaves nothing corrupt and a re-run finishes,
//! and concurrent pushes to one tag and pulls into one layout do not corrupt anything.
//! docs/reliability.md lists every fault and the test that shows it.

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pack_packager::oci_spec::image::{Arch, Os, PlatformBuilder};
use pack_packager::{BlobSource, BundleInput, Compilation, NativeArtifact, PortableConfig};
use serde_json::Value;

use crate::common::*;
use crate::faultproxy::{Fault, FaultProxy, Request};
use crate::registry::Registry;

const MIB: usize = 1 << 20;

/// `len` bytes that do not compress, different for each `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = 0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A bundle in a new layout at `dir` (tag `v1`): the hello-cli component and one native
/// artifact of `native_mib` MiB per architecture in `arches` (the packager does not
/// interpret `.cwasm` bytes, so they are noise).
fn synthetic_bundle(dir: &Path, arches: &[Arch], native_mib: usize, seed: u64) -> PathBuf {
    let natives = arches
        .iter()
        .enumerate()
        .map(|(i, arch)| NativeArtifact {
            platform: PlatformBuilder::default()
                .os(Os::Linux)
                .architecture(arch.clone())
                .build()
                .unwrap(),
            cwasm: BlobSource::Bytes(noise(native_mib * MIB, seed * 16 + i as u64)),
            cwasm_sha256: None,
            compilation: Compilation {
                wasmtime_version: "48.0.8".into(),
                compatibility_hash: format!("test-{seed}"),
                target_triple: format!("{arch}-unknown-linux-gnu"),
                cpu_preset: None,
                cpu_flags: vec![],
                profile: serde_json::json!({"name": "test"}),
            },
        })
        .collect();
    let input = BundleInput {
        component: BlobSource::File(fixture("components/hello-cli.wasm")),
        component_sha256: None,
        portable: PortableConfig::default(),
        natives,
        annotations: Default::default(),
        created: None,
    };
    pack_packager::build_bundle(dir, "v1", &input).unwrap();
    dir.to_path_buf()
}

/// A small bundle (two 3 MiB natives), built once.
fn small() -> &'static Path {
    static SMALL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = SMALL.get_or_init(|| {
        let dir = shared_tempdir();
        let layout = synthetic_bundle(&dir.path().join("small"), &[Arch::Amd64, Arch::ARM64], 3, 1);
        (dir, layout)
    });
    path
}

/// A 150 MB bundle (four natives of 37 MiB: each goes up in two chunks), built once.
fn big() -> &'static Path {
    static BIG: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = BIG.get_or_init(|| {
        let dir = shared_tempdir();
        let arches = [Arch::Amd64, Arch::ARM64, Arch::RISCV64, Arch::s390x];
        let layout = synthetic_bundle(&dir.path().join("big"), &arches, 37, 2);
        (dir, layout)
    });
    path
}

/// `pack` with its own docker config, no registry credentials, and the given timeout.
fn pack_cmd(home: &Path) -> Command {
    pack_std_in(home)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// The blobs of a layout: name -> size.
fn blobs(layout: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(layout.join("blobs/sha256")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u64)> = entries
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    out.sort();
    out
}

fn temp_files(layout: &Path) -> Vec<String> {
    std::fs::read_dir(layout)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".pack-tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Every blob file hashes to its name, `index.json` parses, and everything a tag points
/// to (manifests, their configs and layers) is there. Returns the tags.
fn assert_consistent(layout: &Path) -> Vec<String> {
    for (name, _) in blobs(layout) {
        let bytes = std::fs::read(layout.join("blobs/sha256").join(&name)).unwrap();
        assert_eq!(sha256_hex(&bytes), name, "a blob does not match its name");
    }
    if !layout.join("index.json").exists() {
        return Vec::new();
    }
    let index = layout_index(layout);
    let mut tags = Vec::new();
    for entry in manifests(&index) {
        tags.push(tag_of(entry).unwrap_or("").to_string());
        let mut queue = vec![entry.clone()];
        while let Some(d) = queue.pop() {
            let hex = d["digest"].as_str().unwrap().trim_start_matches("sha256:");
            let path = layout.join("blobs/sha256").join(hex);
            assert!(path.is_file(), "a tag points at missing content {hex}");
            let media = d["mediaType"].as_str().unwrap_or("");
            if media.contains("index") || media.contains("manifest") {
                let doc = read_json(&path);
                for key in ["manifests", "layers"] {
                    if let Some(list) = doc[key].as_array() {
                        queue.extend(list.iter().cloned());
                    }
                }
                if doc["config"].is_object() {
                    queue.push(doc["config"].clone());
                }
            }
        }
    }
    tags
}

/// The configs and layers of every manifest in a layout (what pull counts as blobs).
fn layer_blobs(layout: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for (name, _) in blobs(layout) {
        let bytes = std::fs::read(layout.join("blobs/sha256").join(&name)).unwrap();
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let listed = doc["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&doc["config"]));
        for d in listed {
            if let Some(digest) = d["digest"].as_str() {
                out.insert(digest.trim_start_matches("sha256:").to_string());
            }
        }
    }
    out
}

/// One request straight to the registry: (status, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, Vec<u8>) {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.index.v1+json, \
         application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head[9..12].parse().unwrap();
    (status, response[split + 4..].to_vec())
}

/// When `repo:tag` resolves in the registry, everything it references is there: the tag
/// never points at missing content. Returns the tagged digest, if any.
fn assert_tag_complete(addr: &str, repo: &str, tag: &str) -> Option<String> {
    let (status, body) = http(addr, "GET", &format!("/v2/{repo}/manifests/{tag}"));
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let root = format!("sha256:{}", sha256_hex(&body));
    let mut queue = vec![serde_json::from_slice::<Value>(&body).unwrap()];
    while let Some(doc) = queue.pop() {
        for child in doc["manifests"].as_array().into_iter().flatten() {
            let digest = child["digest"].as_str().unwrap();
            let (status, body) = http(addr, "GET", &format!("/v2/{repo}/manifests/{digest}"));
            assert_eq!(
                status, 200,
                "tag {tag} points at a missing manifest {digest}"
            );
            queue.push(serde_json::from_slice(&body).unwrap());
        }
        let blobs = doc["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&doc["config"]).filter(|c| c.is_object()));
        for blob in blobs {
            let digest = blob["digest"].as_str().unwrap();
            let (status, _) = http(addr, "HEAD", &format!("/v2/{repo}/blobs/{digest}"));
            assert_eq!(status, 200, "tag {tag} points at a missing blob {digest}");
        }
    }
    Some(root)
}

/// Retry warnings in `pack`'s stderr.
fn retries(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("retrying in"))
        .map(str::to_string)
        .collect()
}

/// Each kind of request meets each of its faults once, in turn; the transfer succeeds
/// and every retry is in the log.
#[test]
fn transient_faults_are_retried_and_logged() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let layout = small();
    // (request kind, faults to inject one after the other), for the push then the pull.
    let push_plan: Vec<(&str, Vec<Fault>)> = vec![
        ("HEAD blob", vec![Fault::Status(500, None), Fault::Close]),
        (
            "POST upload",
            vec![Fault::Status(429, Some(1)), Fault::Status(503, Some(0))],
        ),
        ("PUT upload", vec![Fault::Close, Fault::Stall]),
        ("HEAD manifest", vec![Fault::Stall, Fault::Close]),
        ("PUT manifest", vec![Fault::Status(502, None)]),
    ];
    let pull_plan: Vec<(&str, Vec<Fault>)> = vec![
        (
            "GET manifest",
            vec![
                Fault::Status(503, Some(0)),
                Fault::Truncate,
                Fault::ResetMidBody,
                Fault::Stall,
            ],
        ),
        (
            "GET blob",
            vec![
                Fault::ResetMidBody,
                Fault::Truncate,
                Fault::Stall,
                Fault::Status(500, None),
                Fault::Status(429, Some(0)),
            ],
        ),
    ];
    let dest = home.path().join("pulled");
    let target = |proxy: &FaultProxy| format!("{}/app:v1", proxy.addr);
    let started = Instant::now();
    let mut injected = 0;
    let mut all = Vec::new();
    for (pushing, plan) in [(true, push_plan), (false, pull_plan)] {
        let remaining = Arc::new(Mutex::new(plan.clone()));
        let state = remaining.clone();
        let proxy = FaultProxy::start(registry.addr(), move |r: &Request| {
            let kind = match (r.method, r.path) {
                ("HEAD", p) if p.contains("/blobs/") => "HEAD blob",
                ("POST", p) if p.contains("/blobs/uploads/") => "POST upload",
                ("PUT", p) if p.contains("/blobs/uploads/") => "PUT upload",
                ("HEAD", p) if p.contains("/manifests/") => "HEAD manifest",
                ("PUT", p) if p.contains("/manifests/") => "PUT manifest",
                ("GET", p) if p.contains("/manifests/") && !p.contains(".sig") => "GET manifest",
                ("GET", p) if p.contains("/blobs/") => "GET blob",
                _ => return Fault::Pass,
            };
            let mut plan = state.lock().unwrap();
            match plan.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, faults)) if !faults.is_empty() => faults.remove(0),
                _ => Fault::Pass,
            }
        });
        let mut cmd = pack_cmd(home.path());
        if pushing {
            cmd.args(["push", &format!("{}:v1", s(layout)), &target(&proxy)]);
        } else {
            cmd.args(["pull", &target(&proxy), "-o", s(&dest)]);
        }
        let out = run(cmd.args(["--json", "--timeout", "2"]));
        assert_exit(&out, 0);
        let lines = retries(&out);
        eprintln!("{}", lines.join("\n"));
        let left = remaining.lock().unwrap().clone();
        assert!(
            left.iter().all(|(_, f)| f.is_empty()),
            "not every fault was met: {left:?}"
        );
        let planned: usize = plan.iter().map(|(_, f)| f.len()).sum();
        assert_eq!(proxy.injected(), planned);
        injected += planned;
        all.extend(lines);
    }
    // Every fault costs one retry, and each says which attempt of how many failed, and
    // why.
    assert_eq!(all.len(), injected, "{all:#?}");
    for line in &all {
        assert!(line.contains(" of 5 failed ("), "{line}");
    }
    let text = all.join("\n");
    for needle in [
        "HTTP 500",
        "HTTP 429",
        "HTTP 503",
        "HTTP 502",
        "retrying in 1.0 s",
        "timed out",
        "connection closed before message completed",
        "end of file before message length reached",
        "Connection reset by peer",
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
    assert_eq!(index_digest(&dest, "v1"), index_digest(layout, "v1"));
    assert_consistent(&dest);
    assert!(temp_files(&dest).is_empty());
    // Bounded: four stalls of 2 s, a Retry-After of 1 s, backoffs of about 0.5 s.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// A fault that does not go away: pack stops within the retries and the timeout, says
/// what failed, exits with the documented status, writes no tag and leaves no partial file.
#[test]
fn permanent_faults_fail_clearly_and_leave_nothing_behind() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let layout = small();
    let source = format!("{}:v1", s(layout));
    let out =
        run(pack_cmd(home.path()).args(["push", &source, &format!("{}/app:v1", registry.addr())]));
    assert_exit(&out, 0);
    let biggest = blobs(layout).into_iter().max_by_key(|(_, n)| *n).unwrap().0;

    struct Case {
        name: &'static str,
        push: bool,
        fault: fn(&Request, &str) -> Fault,
        status: i32,
        says: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "push: 500 on every upload",
            push: true,
            fault: |r, _| {
                if r.method == "POST" {
                    Fault::Status(500, None)
                } else {
                    Fault::Pass
                }
            },
            status: 4,
            says: &["HTTP 500", "still failing after 3 attempts"],
        },
        Case {
            name: "push: 429 on every manifest",
            push: true,
            fault: |r, _| {
                if r.method == "PUT" && r.is_manifest() {
                    Fault::Status(429, Some(0))
                } else {
                    Fault::Pass
                }
            },
            status: 4,
            says: &["HTTP 429", "still failing after 3 attempts"],
        },
        Case {
            name: "push: the registry stalls",
            push: true,
            fault: |r, _| {
                if r.path != "/v2/" {
                    Fault::Stall
                } else {
                    Fault::Pass
                }
            },
            status: 4,
            says: &["timed out", "still failing after 3 attempts"],
        },
        Case {
            name: "push: blob bytes damaged on the way (the registry refuses the digest)",
            push: true,
            fault: |r, _| {
                if r.method == "PUT" && r.is_upload() {
                    Fault::CorruptUpload
                } else {
                    Fault::Pass
                }
            },
            status: 2,
            says: &["DIGEST_INVALID"],
        },
        Case {
            name: "pull: blob always cut short",
            push: false,
            fault: |r, big| {
                if r.is_blob_get() && r.path.contains(big) {
                    Fault::Truncate
                } else {
                    Fault::Pass
                }
            },
            status: 4,
            says: &["still failing after 3 attempts"],
        },
        Case {
            name: "pull: blob stalls",
            push: false,
            fault: |r, big| {
                if r.is_blob_get() && r.path.contains(big) {
                    Fault::StallAfter(1000)
                } else {
                    Fault::Pass
                }
            },
            status: 4,
            says: &["timed out", "still failing after 3 attempts"],
        },
        Case {
            name: "pull: blob body does not match its digest",
            push: false,
            fault: |r, big| {
                if r.is_blob_get() && r.path.contains(big) {
                    Fault::Corrupt
                } else {
                    Fault::Pass
                }
            },
            status: 2,
            says: &["does not match its digest"],
        },
        Case {
            name: "pull: manifest does not match its digest",
            push: false,
            fault: |r, _| {
                if r.method == "GET" && r.path.contains("/manifests/sha256:") {
                    Fault::Corrupt
                } else {
                    Fault::Pass
                }
            },
            status: 2,
            says: &["does not match its digest"],
        },
        Case {
            name: "pull: blob answers 404",
            push: false,
            fault: |r, big| {
                if r.is_blob_get() && r.path.contains(big) {
                    Fault::Status(404, None)
                } else {
                    Fault::Pass
                }
            },
            status: 2,
            says: &["not found"],
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let big = biggest.clone();
        let fault = case.fault;
        let proxy = FaultProxy::start(registry.addr(), move |r| fault(r, &big));
        let started = Instant::now();
        let dest = home.path().join(format!("pulled-{i}"));
        let repo = format!("case{i}");
        let out = if case.push {
            run(pack_cmd(home.path())
                .args(["push", &source, &format!("{}/{repo}:v1", proxy.addr)])
                .args(["--timeout", "1", "--retries", "2"]))
        } else {
            run(pack_cmd(home.path())
                .args(["pull", &format!("{}/app:v1", proxy.addr), "-o", s(&dest)])
                .args(["--timeout", "1", "--retries", "2"]))
        };
        let elapsed = started.elapsed();
        eprintln!(
            "{}: exit {:?} in {elapsed:?}\n{}",
            case.name,
            out.status.code(),
            stderr(&out)
        );
        assert!(proxy.injected() > 0, "{}: no fault injected", case.name);
        assert_exit(&out, case.status);
        for needle in case.says {
            assert!(
                stderr(&out).contains(needle),
                "{}: no `{needle}` in {}",
                case.name,
                stderr(&out)
            );
        }
        assert!(stderr(&out).starts_with("error: ") || stderr(&out).contains("\nerror: "));
        // Bounded: 3 attempts of at most 1 s reads plus backoff.
        assert!(
            elapsed < Duration::from_secs(30),
            "{}: {elapsed:?}",
            case.name
        );
        drop(proxy);
        if case.push {
            assert_eq!(
                assert_tag_complete(registry.addr(), &repo, "v1"),
                None,
                "{}",
                case.name
            );
        } else {
            let tags = assert_consistent(&dest);
            assert!(
                !tags.contains(&"v1".to_string()),
                "{}: the tag was written",
                case.name
            );
            assert!(
                !dest.join("blobs/sha256").join(&biggest).exists(),
                "{}",
                case.name
            );
            assert!(
                temp_files(&dest).is_empty(),
                "{}: {:?}",
                case.name,
                temp_files(&dest)
            );
        }
    }
}

/// Starts `pack` with `args`, output captured.
fn spawn(home: &Path, args: &[&str]) -> std::process::Child {
    pack_cmd(home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_of_push_halfway_then_the_same_push_sends_only_what_is_missing() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let layout = big();
    let layers = layer_blobs(layout);
    let pushed: Vec<(String, u64)> = blobs(layout)
        .into_iter()
        .filter(|(name, _)| layers.contains(name))
        .collect();
    let total: u64 = pushed.iter().map(|(_, n)| n).sum();
    assert!(total > 150_000_000, "{total}");
    // One blob at a time; uploads pass until 40% of the bundle went through, then every
    // request stalls: some blobs are complete in the registry, one is half sent.
    let passed = Arc::new(AtomicU64::new(0));
    let seen = passed.clone();
    let proxy = FaultProxy::start(registry.addr(), move |r| {
        if r.path == "/v2/" {
            return Fault::Pass;
        }
        if seen.load(Ordering::SeqCst) >= total * 2 / 5 {
            return Fault::Stall;
        }
        if r.is_upload() {
            seen.fetch_add(r.length, Ordering::SeqCst);
        }
        Fault::Pass
    });
    let source = format!("{}:v1", s(layout));
    let mut child = spawn(
        home.path(),
        &[
            "push",
            &source,
            &format!("{}/big:v1", proxy.addr),
            "--jobs",
            "1",
        ],
    );
    // Until the push is stuck halfway, the tag never resolves (to incomplete content).
    let start = Instant::now();
    while proxy.stalled() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the push did not stall"
        );
        assert_eq!(assert_tag_complete(registry.addr(), "big", "v1"), None);
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "pack was not killed");
    proxy.wait_idle();
    drop(proxy);
    assert_eq!(assert_tag_complete(registry.addr(), "big", "v1"), None);
    // What the registry has now.
    let present: Vec<(String, u64)> = pushed
        .iter()
        .filter(|(name, _)| {
            http(
                registry.addr(),
                "HEAD",
                &format!("/v2/big/blobs/sha256:{name}"),
            )
            .0 == 200
        })
        .cloned()
        .collect();
    let missing: u64 = total - present.iter().map(|(_, n)| n).sum::<u64>();
    assert!(!present.is_empty() && missing > 0, "{present:?}");

    // The same command again, through a proxy that only counts, while the tag is polled.
    let proxy = FaultProxy::start(registry.addr(), |_| Fault::Pass);
    let child = spawn(
        home.path(),
        &["push", &source, &format!("{}/big:v1", proxy.addr), "--json"],
    );
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let (done, addr) = (done.clone(), registry.addr().to_string());
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !done.load(Ordering::SeqCst) {
                if let Some(d) = assert_tag_complete(&addr, "big", "v1") {
                    seen.insert(d);
                }
            }
            seen
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, Ordering::SeqCst);
    poller.join().unwrap();
    assert_exit(&out, 0);
    let summary = json_stdout(&out);
    assert_eq!(summary["blobsSkipped"], present.len(), "{summary}");
    assert_eq!(summary["bytesTransferred"], missing, "{summary}");
    assert_eq!(proxy.uploaded(), missing, "bytes sent again");
    // The registry serves the whole bundle, verified on the way down.
    let digest = assert_tag_complete(registry.addr(), "big", "v1").unwrap();
    assert_eq!(digest, index_digest(layout, "v1"));
    let dest = home.path().join("pulled");
    let out = run(pack_cmd(home.path()).args([
        "pull",
        &format!("{}/big:v1", registry.addr()),
        "-o",
        s(&dest),
    ]));
    assert_exit(&out, 0);
    assert_eq!(blobs(&dest), blobs(layout));
    assert_consistent(&dest);
}

#[test]
fn kill_9_of_pull_halfway_leaves_a_consistent_layout_and_a_rerun_finishes() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let layout = big();
    let out = run(pack_cmd(home.path()).args([
        "push",
        &format!("{}:v1", s(layout)),
        &format!("{}/big:v1", registry.addr()),
    ]));
    assert_exit(&out, 0);
    // Small blobs pass; each large one stops halfway, once.
    let proxy = FaultProxy::start(registry.addr(), |r| {
        if r.is_blob_get() && r.count == 1 {
            Fault::StallAfter(16 * MIB as u64)
        } else {
            Fault::Pass
        }
    });
    // Into a layout that holds another bundle already.
    let dest = home.path().join("store");
    synthetic_bundle(&dest, &[Arch::Amd64], 1, 9);
    let mut child = spawn(
        home.path(),
        &[
            "pull",
            &format!("{}/big:v1", proxy.addr),
            "-o",
            &format!("{}:big", s(&dest)),
        ],
    );
    proxy.wait_for("the pull to stall halfway", Duration::from_secs(120), |p| {
        p.stalled() >= 2 && p.downloaded() >= 32 * MIB as u64
    });
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().code(), None, "pack was not killed");
    proxy.wait_idle();
    // Every file present is complete; the tag was not written; what the killed writers
    // had begun are temporary files nobody reads.
    let tags = assert_consistent(&dest);
    assert_eq!(tags, ["v1"]);
    let layers = layer_blobs(layout);
    let had = blobs(&dest)
        .iter()
        .filter(|(n, _)| layers.contains(n))
        .count();
    assert!(!temp_files(&dest).is_empty(), "the kill came too late");

    let out = run(pack_cmd(home.path()).args([
        "pull",
        &format!("{}/big:v1", proxy.addr),
        "-o",
        &format!("{}:big", s(&dest)),
        "--json",
    ]));
    assert_exit(&out, 0);
    let summary = json_stdout(&out);
    assert_eq!(
        summary["blobsSkipped"].as_u64().unwrap() as usize,
        had,
        "{summary}"
    );
    assert!(had < layers.len(), "nothing was left to fetch");
    assert_eq!(assert_consistent(&dest), ["v1", "big"]);
    assert_eq!(index_digest(&dest, "big"), index_digest(layout, "v1"));
    assert!(
        temp_files(&dest).is_empty(),
        "stale temporary files stay: {:?}",
        temp_files(&dest)
    );
}

#[test]
fn kill_9_of_build_halfway_leaves_the_cache_and_output_consistent() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("cache");
    let out_dir = home.path().join("out");
    let component = fixture("components/hello-cli.wasm");
    let args = [
        "build",
        s(&component),
        "-t",
        "linux/amd64,linux/arm64,linux/riscv64,linux/s390x,pulley64",
        "-o",
        s(&out_dir),
        "--jobs",
        "1",
        "--cache-dir",
        s(&cache),
    ];
    let mut child = spawn(home.path(), &args);
    let entries = |dir: &Path| {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    found.push(p);
                }
            }
        }
        found
    };
    let start = Instant::now();
    while !entries(&cache)
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "json"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no cache entry was written"
        );
        assert!(child.try_wait().unwrap().is_none(), "the build ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().code(), None);
    // No output layout (it is renamed into place when complete), and every cache entry
    // with its record is complete.
    assert!(
        !out_dir.exists(),
        "a layout appeared before the build finished"
    );
    let files = entries(&cache);
    let mut complete = 0;
    for record in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let meta = read_json(record);
        let artifact = record.with_extension("cwasm");
        let bytes = std::fs::read(&artifact).unwrap();
        let text = meta.to_string();
        assert!(
            text.contains(&sha256_hex(&bytes)),
            "{} does not match {}",
            artifact.display(),
            record.display()
        );
        complete += 1;
    }
    assert!((1..5).contains(&complete), "{complete}");

    let out = run(pack_cmd(home.path()).args(args).arg("--json"));
    assert_exit(&out, 0);
    let summary = json_stdout(&out);
    assert!(
        summary["cacheHits"].as_u64().unwrap() as usize >= complete,
        "{summary}"
    );
    assert_consistent(&out_dir);
    let parent: Vec<String> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pack-tmp-"))
        .collect();
    assert!(parent.is_empty(), "{parent:?}");
}

/// A rule that holds the first request matching `pick` of each of two processes until
/// both arrived, so the two really run that step at the same time.
fn rendezvous(pick: fn(&Request) -> bool) -> impl Fn(&Request) -> Fault + Send + Sync {
    let state = Arc::new((Mutex::new(0usize), Condvar::new()));
    move |r| {
        if pick(r) {
            let (count, cv) = &*state;
            let mut n = count.lock().unwrap();
            *n += 1;
            cv.notify_all();
            let _ = cv
                .wait_timeout_while(n, Duration::from_secs(30), |n| *n < 2)
                .unwrap();
        }
        Fault::Pass
    }
}

#[test]
fn two_pushes_to_one_tag_end_on_one_complete_bundle() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let other = synthetic_bundle(
        &home.path().join("other"),
        &[Arch::Amd64, Arch::s390x],
        3,
        3,
    );
    // Both tag writes meet in the proxy.
    let proxy = FaultProxy::start(
        registry.addr(),
        rendezvous(|r| r.method == "PUT" && r.path.ends_with("/manifests/v1")),
    );
    let target = format!("{}/app:v1", proxy.addr);
    let a = spawn(
        home.path(),
        &["push", &format!("{}:v1", s(small())), &target],
    );
    let b = spawn(
        home.path(),
        &["push", &format!("{}:v1", s(&other)), &target],
    );
    assert_exit(&a.wait_with_output().unwrap(), 0);
    assert_exit(&b.wait_with_output().unwrap(), 0);
    let digest = assert_tag_complete(registry.addr(), "app", "v1").unwrap();
    let candidates = HashSet::from([index_digest(small(), "v1"), index_digest(&other, "v1")]);
    assert!(candidates.contains(&digest), "{digest}");
    let dest = home.path().join("pulled");
    let out = run(pack_cmd(home.path()).args([
        "pull",
        &format!("{}/app:v1", registry.addr()),
        "-o",
        s(&dest),
    ]));
    assert_exit(&out, 0);
    assert_eq!(index_digest(&dest, "v1"), digest);
    assert_consistent(&dest);
}

#[test]
fn two_pulls_into_one_new_layout_at_once_lose_nothing() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let other = synthetic_bundle(
        &home.path().join("other"),
        &[Arch::Amd64, Arch::s390x],
        3,
        4,
    );
    for (layout, repo) in [(small(), "a"), (other.as_path(), "b")] {
        let out = run(pack_cmd(home.path()).args([
            "push",
            &format!("{}:v1", s(layout)),
            &format!("{}/{repo}:v1", registry.addr()),
        ]));
        assert_exit(&out, 0);
    }
    // Both fetch their first blob at the same time, into a layout neither has created yet;
    // the bundles share the component's blob.
    let proxy = FaultProxy::start(
        registry.addr(),
        rendezvous(|r| r.method == "GET" && r.path.contains("/manifests/v1")),
    );
    let store = home.path().join("store");
    let a = spawn(
        home.path(),
        &[
            "pull",
            &format!("{}/a:v1", proxy.addr),
            "-o",
            &format!("{}:a", s(&store)),
        ],
    );
    let b = spawn(
        home.path(),
        &[
            "pull",
            &format!("{}/b:v1", proxy.addr),
            "-o",
            &format!("{}:b", s(&store)),
        ],
    );
    assert_exit(&a.wait_with_output().unwrap(), 0);
    assert_exit(&b.wait_with_output().unwrap(), 0);
    let mut tags = assert_consistent(&store);
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
    assert_eq!(index_digest(&store, "a"), index_digest(small(), "v1"));
    assert_eq!(index_digest(&store, "b"), index_digest(&other, "v1"));
    assert!(temp_files(&store).is_empty());
    let siblings: Vec<String> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pack-tmp-"))
        .collect();
    assert!(siblings.is_empty(), "{siblings:?}");
}
