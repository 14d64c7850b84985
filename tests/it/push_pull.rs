//! `pack push`, `pack pull` and `pack login` against a real registry (`docker-registry`,
//! distribution 2.8): round trips, deduplication, basic auth from every credential
//! source, TLS with a test CA, damaged content, and interop with skopeo.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::*;
use crate::faultproxy::{Fault, FaultProxy};
use crate::registry::{Options, Registry, oci_ref, require, skopeo};

const PASSWORD: &str = "pack-key-password";

/// A signed bundle built once (`pack build` of the hello-cli fixture for two targets),
/// shared read-only by the tests: (directory holding it, layout, public key).
fn bundle() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static BUNDLE: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir = shared_tempdir();
        let (private, public) = encrypted_key_pair(dir.path(), "release", PASSWORD);
        let layout = dir.path().join("app");
        let out = pack()
            .env("PACK_KEY_PASSWORD", PASSWORD)
            .arg("build")
            .arg(fixture("components/hello-cli.wasm"))
            .args(["-t", "linux/amd64", "-t", "linux/arm64", "-o", s(&layout)])
            .args(["--tag", "v1", "--sign-key", s(&private)])
            .output()
            .unwrap();
        assert!(out.status.success(), "pack build: {}", stderr(&out));
        (dir, layout, public)
    })
}

/// A registry holding the shared [`bundle`] pushed as `app:v1`, and a home directory
/// for the test: (registry, `ADDR/app:v1`, home). `None` (skip) without
/// `docker-registry` outside CI.
fn registry_with_bundle() -> Option<(Registry, String, tempfile::TempDir)> {
    let registry = Registry::start()?;
    let home = tempfile::tempdir().unwrap();
    let target = format!("{}/app:v1", registry.addr());
    let out = push(home.path(), &target, &[]);
    assert_exit(&out, 0);
    assert_stdout_has(&out, "pushed");
    Some((registry, target, home))
}

/// `pack push` of the shared [`bundle`]'s `v1` to `reference`, with `extra` arguments,
/// as a user whose home is `home`.
fn push(home: &Path, reference: &str, extra: &[&str]) -> std::process::Output {
    let source = bundle_v1();
    let args = [&["push", &source, reference][..], extra].concat();
    pack_output(home, &args)
}

/// The shared [`bundle`]'s `v1`, as `pack push` takes it.
fn bundle_v1() -> String {
    format!("{}:v1", s(&bundle().1))
}

/// `pack pull` of `reference` into `dest`, with `extra` arguments, as a user whose home
/// is `home`.
fn pull(home: &Path, reference: &str, dest: &Path, extra: &[&str]) -> std::process::Output {
    let args = [&["pull", reference, "-o", s(dest)][..], extra].concat();
    pack_output(home, &args)
}

fn blob_names(layout: &Path) -> Vec<String> {
    let mut names = file_names(&layout.join("blobs/sha256"));
    names.sort();
    names
}

/// The name (hex digest) of the largest blob of `layout`.
fn biggest_blob(layout: &Path) -> String {
    let size = |name: &String| {
        std::fs::metadata(layout.join("blobs/sha256").join(name))
            .unwrap()
            .len()
    };
    blob_names(layout).into_iter().max_by_key(size).unwrap()
}

#[test]
fn push_then_pull_round_trips_and_a_second_push_sends_nothing() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let (_keep, layout, public) = bundle();
    let home = tempfile::tempdir().unwrap();
    // A target without a tag takes the source's, `v1`.
    let target = format!("{}/team/app", registry.addr());
    let reference = format!("{target}:v1");

    let out = push(home.path(), &target, &["--json"]);
    assert_exit(&out, 0);
    let first = json_stdout(&out);
    assert_eq!(first["reference"], reference);
    assert_eq!(first["digest"], index_digest(layout, "v1"));
    assert_eq!(first["scheme"], "http");
    assert_eq!(first["credentials"]["kind"], "anonymous");
    assert!(first["blobsTransferred"].as_u64().unwrap() >= 5, "{first}");
    assert!(first["bytesTransferred"].as_u64().unwrap() > 0);
    assert_eq!(first["signatures"].as_array().unwrap().len(), 1);

    // Nothing changed: no blob byte is sent again.
    let out = push(home.path(), &reference, &["--json"]);
    assert_exit(&out, 0);
    let second = json_stdout(&out);
    assert_eq!(second["bytesTransferred"], 0, "{second}");
    assert_eq!(second["blobsTransferred"], 0);
    assert_eq!(second["blobsSkipped"], first["blobsTransferred"]);
    assert_eq!(second["manifestsTransferred"], 0);

    // Pull, verifying the signature first.
    let pulled = home.path().join("pulled");
    let out = pull(home.path(), &reference, &pulled, &["--key", s(public)]);
    assert_exit(&out, 0);
    assert_stdout_has(&out, "signature verified");
    assert_eq!(index_digest(&pulled, "v1"), index_digest(layout, "v1"));
    // Every blob, byte for byte (the layout checks digests on read too).
    assert_eq!(blob_names(&pulled), blob_names(layout));
    for name in blob_names(layout) {
        assert_eq!(
            std::fs::read(pulled.join("blobs/sha256").join(&name)).unwrap(),
            std::fs::read(layout.join("blobs/sha256").join(&name)).unwrap(),
            "{name}"
        );
    }
    let out = pack_output(
        home.path(),
        &["verify", &format!("{}:v1", s(&pulled)), "--key", s(public)],
    );
    assert_exit(&out, 0);

    // An interrupted pull (a blob and the tag missing) finishes without fetching again
    // what arrived.
    let biggest = biggest_blob(&pulled);
    std::fs::remove_file(pulled.join("blobs/sha256").join(&biggest)).unwrap();
    let into_again = format!("{}:again", s(&pulled));
    let out = pack_output(
        home.path(),
        &["pull", &reference, "-o", &into_again, "--json"],
    );
    assert_exit(&out, 0);
    let again = json_stdout(&out);
    assert_eq!(again["blobsTransferred"], 1, "{again}");
    assert_eq!(again["tag"], "again");
    assert_eq!(index_digest(&pulled, "again"), index_digest(layout, "v1"));
}

#[test]
fn pull_checks_keys_platforms_and_tags() {
    let Some((registry, target, home)) = registry_with_bundle() else {
        return;
    };
    let (_, layout, _) = bundle();

    // Another key: exit 1, and nothing is written.
    let (_, other_public) = encrypted_key_pair(home.path(), "other", PASSWORD);
    let dest = home.path().join("unverified");
    let out = pull(home.path(), &target, &dest, &["--key", s(&other_public)]);
    assert_exit(&out, 1);
    assert_stderr_has(&out, "no valid signature");
    assert!(!dest.exists());

    // One platform: the index is whole, only that platform's manifest is there.
    let dest = home.path().join("arm");
    let out = pull(
        home.path(),
        &target,
        &dest,
        &["--platform", "linux/arm64", "--json"],
    );
    assert_exit(&out, 0);
    assert_eq!(index_digest(&dest, "v1"), index_digest(layout, "v1"));
    assert!(blob_names(&dest).len() < blob_names(layout).len());
    let out = pull(home.path(), &target, &dest, &["--platform", "linux/s390x"]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "linux/amd64");

    // An unknown tag names the registry's code.
    let nope = format!("{}/app:nope", registry.addr());
    let out = pull(home.path(), &nope, &dest, &[]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "MANIFEST_UNKNOWN");
    assert_stderr_has(&out, "hint: check the tag");

    // Nothing listens there: a network error.
    let out = pull(home.path(), "127.0.0.1:9/app:v1", &dest, &[]);
    assert_exit(&out, 4);
}

#[test]
fn damaged_blobs_are_refused_and_leave_nothing_behind() {
    let Some((registry, target, home)) = registry_with_bundle() else {
        return;
    };
    let (_, layout, _) = bundle();
    // Flip bytes of the largest blob in the registry's storage (same length).
    let biggest = biggest_blob(layout);
    flip_middle_byte(&registry.blob_file(&biggest));

    let dest = home.path().join("pulled");
    let out = pull(home.path(), &target, &dest, &[]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "does not match its digest");
    assert_stderr_has(&out, &biggest);
    assert_failed_pull_left_nothing(&dest, &biggest);
}

#[test]
fn basic_auth_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let Some(registry) = Registry::start_with_login(dir.path(), "alice", "wonderland") else {
        return;
    };
    let target = format!("{}/app:v1", registry.addr());
    let home = dir.path();
    // `pack ARGS` with `input` on its stdin.
    let with_stdin = |args: &[&str], input: &str| {
        pack_in(home)
            .args(args)
            .write_stdin(format!("{input}\n"))
            .output()
            .unwrap()
    };
    // `pack pull --json` of the target into `home/<dest>`, to run.
    let pull_json = |dest: &str| {
        let mut cmd = pack_in(home);
        cmd.args(["pull", &target, "-o", s(&home.join(dest)), "--json"]);
        cmd
    };

    // Missing credentials: exit 3.
    let out = push(home, &target, &[]);
    assert_exit(&out, 3);
    assert_stderr_has(&out, "anonymous");
    assert_stderr_has(&out, "hint:");

    // Wrong password: exit 3, and the password is nowhere in the output.
    let source = bundle_v1();
    let push_stdin = [
        "push",
        &source,
        &target,
        "-u",
        "alice",
        "--password-stdin",
        "--json",
    ];
    let out = with_stdin(&push_stdin, "not-the-password");
    assert_exit(&out, 3);
    assert_stderr_has(&out, "--username");
    for text in [stdout(&out), stderr(&out)] {
        assert!(!text.contains("not-the-password"), "{text}");
    }

    // Right password on stdin.
    let out = with_stdin(&push_stdin, "wonderland");
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["credentials"]["kind"], "command-line");
    assert!(!stdout(&out).contains("wonderland"));

    // The environment.
    let out = pull_json("from-env")
        .env("PACK_REGISTRY_USERNAME", "alice")
        .env("PACK_REGISTRY_PASSWORD", "wonderland")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["credentials"]["kind"], "environment");

    // A docker config file, written by `pack login`.
    let login = ["login", registry.addr(), "-u", "alice", "--password-stdin"];
    let out = with_stdin(&login, "wrong");
    assert_exit(&out, 3);
    assert!(!home.join("docker/config.json").exists());
    let out = with_stdin(&login, "wonderland");
    assert_exit(&out, 0);
    let config = read_json(&home.join("docker/config.json"));
    assert_eq!(
        config["auths"][registry.addr()]["auth"],
        "YWxpY2U6d29uZGVybGFuZA=="
    );
    let out = pull_json("from-config").output().unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["credentials"]["kind"], "docker-config");

    // A credential helper on PATH.
    let bin = home.join("bin");
    write(
        &bin,
        "docker-credential-test",
        format!(
            "#!/bin/sh\nenv > \"{}\"\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{}\" ] && \
             echo '{{\"ServerURL\":\"'$server'\",\"Username\":\"alice\",\"Secret\":\"wonderland\"}}' \
             && exit 0\necho 'credentials not found in native keychain'\nexit 1\n",
            home.join("helper.env").display(),
            registry.addr()
        ),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            bin.join("docker-credential-test"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    write(
        &home.join("docker"),
        "config.json",
        format!(r#"{{"credHelpers":{{"{}":"test"}}}}"#, registry.addr()),
    );
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let out = pull_json("from-helper")
        .env("PATH", &path)
        // Secrets pack reads from the environment, none of which a helper may see.
        .env("PACK_KEY_PASSWORD", "helper-must-not-see-1")
        .env("PACK_SIGN_KEY_PEM", "helper-must-not-see-2")
        .env("PACK_CACHE_SECRET", "helper-must-not-see-3")
        .env("HELPER_MAY_SEE", "ordinary")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["credentials"]["helper"], "test");
    let seen = std::fs::read_to_string(home.join("helper.env")).unwrap();
    assert!(seen.contains("HELPER_MAY_SEE=ordinary"), "{seen}");
    assert!(!seen.contains("helper-must-not-see"), "{seen}");
    assert!(!seen.contains("PACK_"), "{seen}");
}

/// A CA and a leaf certificate for `127.0.0.1` made with openssl: (ca.pem, leaf.pem,
/// leaf.key).
pub(crate) fn test_ca(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    require("openssl")?;
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=pack test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec[..],
        &[
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    write(
        dir,
        "leaf.ext",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    Some((
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    ))
}

#[test]
fn tls_with_a_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ca, cert, key)) = test_ca(dir.path()) else {
        return;
    };
    let Some(registry) = Registry::start_with(&Options {
        tls: Some((cert, key)),
        ..Options::default()
    }) else {
        return;
    };
    let (_keep, layout, public) = bundle();
    let target = format!("{}/app:v1", registry.addr());
    let home = dir.path();

    // Not trusted without the CA, even on a loopback address.
    let out = push(home, &target, &[]);
    assert_exit(&out, 4);
    assert_stderr_has(&out, "--ca-cert");

    let out = push(home, &target, &["--ca-cert", s(&ca), "--json"]);
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["scheme"], "https");
    let dest = home.join("pulled");
    let out = pull(
        home,
        &target,
        &dest,
        &["--ca-cert", s(&ca), "--key", s(public)],
    );
    assert_exit(&out, 0);
    assert_eq!(index_digest(&dest, "v1"), index_digest(layout, "v1"));
    // --insecure accepts the certificate without the CA.
    let out = pull(home, &target, &home.join("insecure"), &["--insecure"]);
    assert_exit(&out, 0);
}

#[test]
fn skopeo_reads_what_pack_pushes_and_pack_reads_what_skopeo_pushes() {
    let Some(registry) = registry_with_skopeo() else {
        return;
    };
    let (_keep, layout, public) = bundle();
    let home = tempfile::tempdir().unwrap();
    let digest = index_digest(layout, "v1");

    // pack -> registry -> skopeo.
    let out = push(home.path(), &format!("{}/by-pack:v1", registry.addr()), &[]);
    assert_exit(&out, 0);
    let copied = home.path().join("skopeo-copy");
    skopeo_pull(&registry, "by-pack:v1", &copied, "v1");
    assert_eq!(index_digest(&copied, "v1"), digest);

    // skopeo -> registry -> pack (signature included, as a plain tag).
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &oci_ref(layout, "v1"),
        &registry.docker_ref("by-skopeo:v1"),
    ]);
    let sig_tag = format!("{}.sig", digest.replace(':', "-"));
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci_ref(layout, &sig_tag),
        &registry.docker_ref(&format!("by-skopeo:{sig_tag}")),
    ]);
    let dest = home.path().join("pulled");
    let by_skopeo = format!("{}/by-skopeo:v1", registry.addr());
    let out = pull(home.path(), &by_skopeo, &dest, &["--key", s(public)]);
    assert_exit(&out, 0);
    assert_eq!(index_digest(&dest, "v1"), digest);
}

#[test]
fn mount_from_another_repository_sends_nothing() {
    let Some((registry, home)) = registry_and_tempdir() else {
        return;
    };
    let out = push(
        home.path(),
        &format!("{}/base:v1", registry.addr()),
        &["--json"],
    );
    assert_exit(&out, 0);
    let sent = json_stdout(&out)["blobsTransferred"].clone();
    let other = format!("{}/other:v1", registry.addr());
    let out = push(home.path(), &other, &["--mount-from", "base", "--json"]);
    assert_exit(&out, 0);
    let summary = json_stdout(&out);
    assert_eq!(summary["blobsMounted"], sent, "{summary}");
    assert_eq!(summary["bytesTransferred"], 0, "{summary}");
}

#[test]
fn transient_failures_are_retried() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let (_keep, layout, public) = bundle();
    let home = tempfile::tempdir().unwrap();
    // The first request of each kind fails once: a 503 (with Retry-After) or a connection
    // closed without an answer, in the middle of uploads and downloads too.
    let failed = std::sync::Mutex::new(std::collections::HashSet::new());
    let proxy = FaultProxy::start(registry.addr(), move |seen| {
        let kind = match (seen.method, seen.path) {
            (_, "/v2/") => return Fault::Pass,
            ("HEAD", p) if p.contains("/blobs/") => ("check blob", Fault::Close),
            ("POST", _) => ("start upload", Fault::Status(503, Some(0))),
            ("PUT", p) if p.contains("/blobs/uploads/") => ("finish upload", Fault::Close),
            ("PUT", _) => ("push manifest", Fault::Status(503, Some(0))),
            ("GET", p) if p.contains("/manifests/") => {
                ("fetch manifest", Fault::Status(503, Some(0)))
            }
            ("GET", p) if p.contains("/blobs/") => ("fetch blob", Fault::Close),
            _ => return Fault::Pass,
        };
        if failed.lock().unwrap().insert(kind.0) {
            kind.1
        } else {
            Fault::Pass
        }
    });
    let target = format!("{}/app:v1", proxy.addr);
    let out = push(home.path(), &target, &[]);
    assert_exit(&out, 0);
    assert_stderr_has(&out, "retrying");
    let dest = home.path().join("pulled");
    let out = pull(home.path(), &target, &dest, &["--key", s(public)]);
    assert_exit(&out, 0);
    assert_stderr_has(&out, "retrying");
    assert_eq!(index_digest(&dest, "v1"), index_digest(layout, "v1"));
}

#[test]
fn an_interrupted_push_finishes_without_sending_again_what_arrived() {
    let Some((registry, home)) = registry_and_tempdir() else {
        return;
    };
    // The connection dies for good once the first blob upload has completed.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen_done = done.clone();
    let proxy = FaultProxy::start(registry.addr(), move |seen| {
        use std::sync::atomic::Ordering;
        if seen_done.load(Ordering::SeqCst) && seen.path != "/v2/" {
            return Fault::Close;
        }
        if seen.method == "PUT" && seen.path.contains("/blobs/uploads/") {
            seen_done.store(true, Ordering::SeqCst);
        }
        Fault::Pass
    });
    let out = push(
        home.path(),
        &format!("{}/app:v1", proxy.addr),
        &["--jobs", "1"],
    );
    assert_exit(&out, 4);
    assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    drop(proxy);
    // The tag was not written: the index goes last.
    let target = format!("{}/app:v1", registry.addr());
    let out = pull(home.path(), &target, &home.path().join("x"), &[]);
    assert_exit(&out, 2);
    // Run again: the blob that arrived is not sent again.
    let out = push(home.path(), &target, &["--json"]);
    assert_exit(&out, 0);
    let summary = json_stdout(&out);
    assert_eq!(summary["blobsSkipped"], 1, "{summary}");
    assert!(
        summary["blobsTransferred"].as_u64().unwrap() >= 4,
        "{summary}"
    );
}

#[test]
fn large_blobs_go_up_in_chunks_and_survive_a_failed_chunk() {
    use pack_packager::oci_spec::image::{Arch, Os, PlatformBuilder};
    use pack_packager::{BlobSource, BundleInput, Compilation, NativeArtifact, PortableConfig};
    let Some((registry, home)) = registry_and_tempdir() else {
        return;
    };
    // 40 MiB of fake `.cwasm` (the packager does not interpret it): more than one chunk.
    let mut cwasm = Vec::with_capacity(40 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while cwasm.len() < 40 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cwasm.extend_from_slice(&x.to_le_bytes());
    }
    let input = BundleInput {
        component: BlobSource::File(fixture("components/hello-cli.wasm")),
        component_sha256: None,
        portable: PortableConfig::default(),
        natives: vec![NativeArtifact {
            platform: PlatformBuilder::default()
                .os(Os::Linux)
                .architecture(Arch::Amd64)
                .build()
                .unwrap(),
            cwasm: BlobSource::Bytes(cwasm),
            cwasm_sha256: None,
            compilation: Compilation {
                wasmtime_version: "48.0.8".into(),
                compatibility_hash: "test".into(),
                target_triple: "x86_64-unknown-linux-gnu".into(),
                cpu_preset: None,
                cpu_flags: vec![],
                profile: serde_json::json!({"name": "test"}),
            },
        }],
        annotations: Default::default(),
        created: None,
    };
    let layout = home.path().join("big");
    pack_packager::build_bundle(&layout, "v1", &input).unwrap();

    // The first chunk of the upload gets a 503: the blob is sent again, whole.
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed_once = failed.clone();
    let proxy = FaultProxy::start(registry.addr(), move |seen| {
        if seen.method == "PATCH" && !failed_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Fault::Status(503, Some(0))
        } else {
            Fault::Pass
        }
    });
    let target = format!("{}/big:v1", proxy.addr);
    let out = pack_output(
        home.path(),
        &["push", &format!("{}:v1", s(&layout)), &target, "--json"],
    );
    assert_exit(&out, 0);
    assert!(json_stdout(&out)["bytesTransferred"].as_u64().unwrap() > 40 << 20);
    assert!(
        failed.load(std::sync::atomic::Ordering::SeqCst),
        "no PATCH was sent"
    );
    let dest = home.path().join("pulled");
    let out = pull(home.path(), &target, &dest, &[]);
    assert_exit(&out, 0);
    assert_eq!(index_digest(&dest, "v1"), index_digest(&layout, "v1"));
    assert_eq!(blob_names(&dest), blob_names(&layout));
}
