//! Faults between pack and a real registry (`docker-registry` behind the fault-injecting
//! proxy): transient faults are retried and logged, permanent ones fail clearly in bounded
//! time, `kill -9` of push, pull and build leaves nothing corrupt and a re-run finishes,
//! and concurrent pushes to one tag and pulls into one layout do not corrupt anything.
//! docs/reliability.md lists every fault and the test that shows it.

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pack_packager::oci_spec::image::{Arch, Os, PlatformBuilder};
use pack_packager::{BlobSource, BundleInput, Compilation, NativeArtifact, PortableConfig};
use serde_json::Value;

use crate::common::*;
use crate::faultproxy::{Fault, FaultProxy, Request};

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

/// A small bundle other than [`small`] (two 3 MiB natives, for amd64 and s390x), in
/// `dir/other`, made of `seed`.
fn other_small(dir: &Path, seed: u64) -> PathBuf {
    synthetic_bundle(&dir.join("other"), &[Arch::Amd64, Arch::s390x], 3, seed)
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

/// Runs `cmd` to its end: its status and output.
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

/// Asserts that no temporary file stays in `dir` after `what` ran.
#[track_caller]
fn assert_no_temp_files(dir: &Path, what: &str) {
    let left = temp_files(dir);
    assert!(
        left.is_empty(),
        "{what}: stale temporary files stay in {}: {left:?}",
        dir.display()
    );
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

/// `pack push <layout>:v1 <target>` as the user `home`; callers add flags.
fn push(home: &Path, layout: &Path, target: &str) -> Command {
    let mut cmd = pack_std_in(home);
    cmd.args(["push", &format!("{}:v1", s(layout)), target]);
    cmd
}

/// `pack pull <reference> -o <dest>` as the user `home` (`dest` is a layout, or
/// `LAYOUT:TAG`); callers add flags.
fn pull(home: &Path, reference: &str, dest: &str) -> Command {
    let mut cmd = pack_std_in(home);
    cmd.args(["pull", reference, "-o", dest]);
    cmd
}

/// [`push`] with nothing in the way; it must succeed.
fn push_ok(home: &Path, layout: &Path, target: &str) {
    assert_exit(&run(&mut push(home, layout, target)), 0);
}

/// [`pull`] into the new layout `dest` with nothing in the way; it must succeed and leave
/// `dest` consistent.
fn pull_ok(home: &Path, reference: &str, dest: &Path) {
    assert_exit(&run(&mut pull(home, reference, s(dest))), 0);
    assert_consistent(dest);
}

/// Starts `cmd` with its output captured.
fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to end; it must succeed.
fn wait_ok(child: Child) {
    assert_exit(&child.wait_with_output().unwrap(), 0);
}

/// Kills `child` with SIGKILL, and checks that the signal is what ended it.
fn kill_9(child: &mut Child) {
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().code(), None, "pack was not killed");
}

/// Each kind of request meets each of its faults once, in turn; the transfer succeeds
/// and every retry is in the log.
#[test]
fn transient_faults_are_retried_and_logged() {
    let Some((registry, home)) = registry_and_tempdir() else {
        return;
    };
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
        let target = format!("{}/app:v1", proxy.addr);
        let mut cmd = if pushing {
            push(home.path(), layout, &target)
        } else {
            pull(home.path(), &target, s(&dest))
        };
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
    assert_no_temp_files(&dest, "the pull with faults");
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
    let Some((registry, home)) = registry_and_tempdir() else {
        return;
    };
    let layout = small();
    push_ok(home.path(), layout, &format!("{}/app:v1", registry.addr()));
    let biggest = blobs(layout).into_iter().max_by_key(|(_, n)| *n).unwrap().0;

    struct Case {
        name: &'static str,
        push: bool,
        /// The requests that meet `fault`, given the hex digest of the biggest blob; the
        /// others pass.
        when: fn(&Request, &str) -> bool,
        fault: Fault,
        status: i32,
        says: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "push: 500 on every upload",
            push: true,
            when: |r, _| r.method == "POST",
            fault: Fault::Status(500, None),
            status: 4,
            says: &["HTTP 500", "still failing after 3 attempts"],
        },
        Case {
            name: "push: 429 on every manifest",
            push: true,
            when: |r, _| r.method == "PUT" && r.is_manifest(),
            fault: Fault::Status(429, Some(0)),
            status: 4,
            says: &["HTTP 429", "still failing after 3 attempts"],
        },
        Case {
            name: "push: the registry stalls",
            push: true,
            when: |r, _| r.path != "/v2/",
            fault: Fault::Stall,
            status: 4,
            says: &["timed out", "still failing after 3 attempts"],
        },
        Case {
            name: "push: blob bytes damaged on the way (the registry refuses the digest)",
            push: true,
            when: |r, _| r.method == "PUT" && r.is_upload(),
            fault: Fault::CorruptUpload,
            status: 2,
            says: &["DIGEST_INVALID"],
        },
        Case {
            name: "pull: blob always cut short",
            push: false,
            when: |r, big| r.is_blob_get() && r.path.contains(big),
            fault: Fault::Truncate,
            status: 4,
            says: &["still failing after 3 attempts"],
        },
        Case {
            name: "pull: blob stalls",
            push: false,
            when: |r, big| r.is_blob_get() && r.path.contains(big),
            fault: Fault::StallAfter(1000),
            status: 4,
            says: &["timed out", "still failing after 3 attempts"],
        },
        Case {
            name: "pull: blob body does not match its digest",
            push: false,
            when: |r, big| r.is_blob_get() && r.path.contains(big),
            fault: Fault::Corrupt,
            status: 2,
            says: &["does not match its digest"],
        },
        Case {
            name: "pull: manifest does not match its digest",
            push: false,
            when: |r, _| r.method == "GET" && r.path.contains("/manifests/sha256:"),
            fault: Fault::Corrupt,
            status: 2,
            says: &["does not match its digest"],
        },
        Case {
            name: "pull: blob answers 404",
            push: false,
            when: |r, big| r.is_blob_get() && r.path.contains(big),
            fault: Fault::Status(404, None),
            status: 2,
            says: &["not found"],
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let name = case.name;
        let (big, when, fault) = (biggest.clone(), case.when, case.fault);
        let proxy = FaultProxy::start(registry.addr(), move |r| {
            if when(r, &big) { fault } else { Fault::Pass }
        });
        let started = Instant::now();
        let dest = home.path().join(format!("pulled-{i}"));
        let repo = format!("case{i}");
        let mut cmd = if case.push {
            push(home.path(), layout, &format!("{}/{repo}:v1", proxy.addr))
        } else {
            pull(home.path(), &format!("{}/app:v1", proxy.addr), s(&dest))
        };
        let out = run(cmd.args(["--timeout", "1", "--retries", "2"]));
        let elapsed = started.elapsed();
        eprintln!(
            "{name}: exit {:?} in {elapsed:?}\n{}",
            out.status.code(),
            stderr(&out)
        );
        assert!(proxy.injected() > 0, "{name}: no fault injected");
        assert_exit(&out, case.status);
        let err = stderr(&out);
        for needle in case.says {
            assert!(err.contains(needle), "{name}: no `{needle}` in {err}");
        }
        assert!(
            err.starts_with("error: ") || err.contains("\nerror: "),
            "{name}: {err}"
        );
        // Bounded: 3 attempts of at most 1 s reads plus backoff.
        assert!(elapsed < Duration::from_secs(30), "{name}: {elapsed:?}");
        drop(proxy);
        if case.push {
            assert_eq!(
                assert_tag_complete(registry.addr(), &repo, "v1"),
                None,
                "{name}"
            );
        } else {
            let tags = assert_consistent(&dest);
            assert!(
                !tags.contains(&"v1".to_string()),
                "{name}: the tag was written"
            );
            assert!(!dest.join("blobs/sha256").join(&biggest).exists(), "{name}");
            assert_no_temp_files(&dest, name);
        }
    }
}

#[test]
fn kill_9_of_push_halfway_then_the_same_push_sends_only_what_is_missing() {
    let Some((registry, home)) = registry_and_tempdir() else {
        return;
    };
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
    let mut child =
        spawn(push(home.path(), layout, &format!("{}/big:v1", proxy.addr)).args(["--jobs", "1"]));
    // Until the push is stuck halfway, the tag never resolves (to incomplete content).
    proxy.wait_for("the push to stall", Duration::from_secs(120), |p| {
        assert_eq!(assert_tag_complete(registry.addr(), "big", "v1"), None);
        p.stalled() > 0
    });
    kill_9(&mut child);
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
    let child = spawn(push(home.path(), layout, &format!("{}/big:v1", proxy.addr)).arg("--json"));
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
    pull_ok(home.path(), &format!("{}/big:v1", registry.addr()), &dest);
    assert_eq!(blobs(&dest), blobs(layout));
}

#[test]
fn kill_9_of_pull_halfway_leaves_a_consistent_layout_and_a_rerun_finishes() {
    let Some((registry, home)) = registry_and_tempdir() else {
        return;
    };
    let layout = big();
    push_ok(home.path(), layout, &format!("{}/big:v1", registry.addr()));
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
    let (source, into) = (
        format!("{}/big:v1", proxy.addr),
        format!("{}:big", s(&dest)),
    );
    let mut child = spawn(&mut pull(home.path(), &source, &into));
    proxy.wait_for("the pull to stall halfway", Duration::from_secs(120), |p| {
        p.stalled() >= 2 && p.downloaded() >= 32 * MIB as u64
    });
    kill_9(&mut child);
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

    let out = run(pull(home.path(), &source, &into).arg("--json"));
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
    assert_no_temp_files(&dest, "the pull run again");
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
    let mut child = spawn(pack_std_in(home.path()).args(args));
    let start = Instant::now();
    while !files_under(&cache)
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
    kill_9(&mut child);
    // No output layout (it is renamed into place when complete), and every cache entry
    // with its record is complete.
    assert!(
        !out_dir.exists(),
        "a layout appeared before the build finished"
    );
    let files = files_under(&cache);
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

    let out = run(pack_std_in(home.path()).args(args).arg("--json"));
    assert_exit(&out, 0);
    let summary = json_stdout(&out);
    assert!(
        summary["cacheHits"].as_u64().unwrap() as usize >= complete,
        "{summary}"
    );
    assert_consistent(&out_dir);
    assert_no_temp_files(home.path(), "the build run again");
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
    let Some((registry, home)) = registry_and_tempdir() else {
        return;
    };
    let other = other_small(home.path(), 3);
    // Both tag writes meet in the proxy.
    let proxy = FaultProxy::start(
        registry.addr(),
        rendezvous(|r| r.method == "PUT" && r.path.ends_with("/manifests/v1")),
    );
    let target = format!("{}/app:v1", proxy.addr);
    let a = spawn(&mut push(home.path(), small(), &target));
    let b = spawn(&mut push(home.path(), &other, &target));
    wait_ok(a);
    wait_ok(b);
    let digest = assert_tag_complete(registry.addr(), "app", "v1").unwrap();
    let candidates = HashSet::from([index_digest(small(), "v1"), index_digest(&other, "v1")]);
    assert!(candidates.contains(&digest), "{digest}");
    let dest = home.path().join("pulled");
    pull_ok(home.path(), &format!("{}/app:v1", registry.addr()), &dest);
    assert_eq!(index_digest(&dest, "v1"), digest);
}

#[test]
fn two_pulls_into_one_new_layout_at_once_lose_nothing() {
    let Some((registry, home)) = registry_and_tempdir() else {
        return;
    };
    let other = other_small(home.path(), 4);
    for (layout, repo) in [(small(), "a"), (other.as_path(), "b")] {
        push_ok(
            home.path(),
            layout,
            &format!("{}/{repo}:v1", registry.addr()),
        );
    }
    // Both fetch their first blob at the same time, into a layout neither has created yet;
    // the bundles share the component's blob.
    let proxy = FaultProxy::start(
        registry.addr(),
        rendezvous(|r| r.method == "GET" && r.path.contains("/manifests/v1")),
    );
    let store = home.path().join("store");
    let start_pull = |repo: &str| {
        let (source, into) = (
            format!("{}/{repo}:v1", proxy.addr),
            format!("{}:{repo}", s(&store)),
        );
        spawn(&mut pull(home.path(), &source, &into))
    };
    let (a, b) = (start_pull("a"), start_pull("b"));
    wait_ok(a);
    wait_ok(b);
    let mut tags = assert_consistent(&store);
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
    assert_eq!(index_digest(&store, "a"), index_digest(small(), "v1"));
    assert_eq!(index_digest(&store, "b"), index_digest(&other, "v1"));
    assert_no_temp_files(&store, "two pulls");
    assert_no_temp_files(home.path(), "two pulls");
}
