//! Signing and verifying without trusting what others can write: `pack build --sign-key`
//! signs the index it wrote (not what a tag points to by then), refuses an output layout
//! others can write and replaces blobs planted in it; the build command does not inherit
//! secrets; a signature is bound to its repository; `pack verify` checks every blob; a
//! private key others can read is warned about. Each test performs the attack through
//! the real binary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pack_packager::Layout;
use pack_packager::signing::signature_tag;
use serde_json::Value;

use crate::common::*;
use crate::registry::Registry;

fn run(cmd: &mut assert_cmd::Command) -> Output {
    cmd.output().unwrap()
}

fn hello() -> PathBuf {
    fixture("components/hello-cli.wasm")
}

/// A fresh home holding a `release` key pair: (the home, `release.key`, `release.pub`).
fn home_with_release_key() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = key_pair(dir.path(), "release");
    (dir, private, public)
}

/// `pack build COMPONENT -t <this machine> -o LAYOUT EXTRA` in `dir`.
fn build(dir: &Path, component: &Path, layout: &str, extra: &[&str]) -> Output {
    run(pack_in(dir)
        .args(["build", s(component), "-t", here(), "-o", layout])
        .args(extra))
}

/// [`build`] of the hello-cli fixture, signed with `key`.
fn build_signed_hello(dir: &Path, layout: &str, key: &Path, extra: &[&str]) -> Output {
    build(
        dir,
        &hello(),
        layout,
        &[&["--sign-key", s(key)], extra].concat(),
    )
}

/// Builds `component` into `layout:tag`, unsigned; returns the index digest.
fn build_unsigned(dir: &Path, component: &Path, layout: &Path, tag: &str) -> String {
    let out = build(dir, component, s(layout), &["--tag", tag, "--json"]);
    assert_exit(&out, 0);
    json_stdout(&out)["digest"].as_str().unwrap().to_string()
}

fn mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn has_tag(layout: &Path, tag: &str) -> bool {
    Layout::open(layout)
        .and_then(|l| l.tags())
        .is_ok_and(|tags| tags.iter().any(|t| t.name == tag))
}

/// The attack on `pack build --sign-key`: while the key is being read (here a FIFO the
/// test holds until the build has written its tag, as a password prompt or a slow
/// secret store would), a writer of the output layout points the tag at another index.
/// The build must sign the index it wrote, not the one the tag names by then. The same
/// layout had a file planted under the name of the component's blob: it must not be
/// reused.
#[cfg(target_os = "linux")]
#[test]
fn build_signs_the_index_it_wrote_even_when_the_tag_is_swapped_meanwhile() {
    use std::os::unix::fs::OpenOptionsExt as _;

    let (dir, private, public) = home_with_release_key();
    let d = dir.path();
    let layout = d.join("out");
    // Another index the attacker wants signed, already in the layout.
    let decoy = build_unsigned(d, &fixture("components/calc.wasm"), &layout, "decoy");
    // A file planted under the digest of the component about to be packaged.
    let component = std::fs::read(hello()).unwrap();
    let planted = layout.join("blobs/sha256").join(sha256_hex(&component));
    std::fs::write(&planted, b"not the component").unwrap();

    let fifo = d.join("release.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_pack"))
        .current_dir(d)
        .env("NO_COLOR", "1")
        .env("PACK_CACHE_DIR", d.join("cache"))
        .env_remove("PACK_KEY_PASSWORD")
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", s(&hello()), "-t", here(), "-o", s(&layout)])
        .args(["--tag", "v1", "--sign-key", s(&fifo), "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait for the build's tag, then swap it to the decoy before the key arrives.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !has_tag(&layout, "v1") {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!("pack build ended ({status}) early: {}", stderr(&out));
        }
        assert!(Instant::now() < deadline, "the build never wrote its tag");
        std::thread::sleep(Duration::from_millis(20));
    }
    let l = Layout::open(&layout).unwrap();
    let decoy_descriptor = l.resolve("decoy").unwrap();
    l.set_tag("v1", &decoy_descriptor).unwrap();
    // Hand over the key: the FIFO opens once pack opens it for reading.
    let pem = std::fs::read(&private).unwrap();
    let mut writer = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(0o4000) // O_NONBLOCK: fails with ENXIO until pack reads
            .open(&fifo)
        {
            Ok(w) => break w,
            Err(_) if Instant::now() < deadline => {
                if child.try_wait().unwrap().is_some() {
                    let out = child.wait_with_output().unwrap();
                    panic!("pack build ended without reading the key: {}", stderr(&out));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("pack never opened the key: {e}"),
        }
    };
    writer.write_all(&pem).unwrap();
    drop(writer);
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 0);
    let json = json_stdout(&out);
    let built = json["digest"].as_str().unwrap().to_string();
    assert_ne!(built, decoy);

    // The signature is over the built index; the decoy is not signed.
    let l = Layout::open(&layout).unwrap();
    let sig = |digest: &str| signature_tag(&pack_packager::layout::parse_sha256(digest).unwrap());
    assert!(
        has_tag(&layout, &sig(&built)),
        "the built index is not signed"
    );
    assert!(
        !has_tag(&layout, &sig(&decoy)),
        "the index the tag was swapped to got signed"
    );
    assert_stderr_has(&out, "no longer points to the index this build wrote");
    let out = run(pack_in(d).args(["verify", "out:v1", "--key", s(&public)]));
    assert_exit(&out, 1);
    assert_stdout_has(&out, "is unsigned");
    // Point a tag at the built index to check its signature and its blobs.
    let blob = pack_packager::layout::parse_sha256(&built).unwrap();
    let size = std::fs::metadata(l.blob_path(&blob).unwrap())
        .unwrap()
        .len();
    l.set_tag(
        "built",
        &pack_packager::oci_spec::image::Descriptor::new(
            pack_packager::oci_spec::image::MediaType::ImageIndex,
            size,
            blob,
        ),
    )
    .unwrap();
    let out = run(pack_in(d).args(["verify", "out:built", "--key", s(&public)]));
    assert_exit(&out, 0);

    // The planted file was replaced by the component, and said so.
    assert_eq!(std::fs::read(&planted).unwrap(), component);
    let replaced = format!("sha256:{}", sha256_hex(&component));
    assert_eq!(
        json["blobsReplaced"],
        serde_json::json!([replaced]),
        "{json}"
    );
}

/// An existing output layout that group or others can write is refused: whoever can
/// write it could swap what gets signed.
#[test]
fn build_refuses_an_output_layout_others_can_write() {
    let (dir, private, _) = home_with_release_key();
    let d = dir.path();
    let layout = d.join("out");
    build_unsigned(d, &hello(), &layout, "v1");
    let signed_build = |tag: &str| build_signed_hello(d, s(&layout), &private, &["--tag", tag]);
    for (path, bits) in [
        (layout.clone(), 0o777),
        (layout.clone(), 0o775),
        (layout.join("blobs/sha256"), 0o757),
    ] {
        mode(&path, bits);
        let out = signed_build("v2");
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains("writable by group or others") && err.contains(s(&path)),
            "{err}"
        );
        assert!(err.contains("chmod -R go-w"), "{err}");
        assert!(!has_tag(&layout, "v2"), "the build wrote into it");
        mode(&path, 0o755);
    }
    assert_exit(&signed_build("v2"), 0);
}

/// `[component] build` is someone else's code (a build script and its dependencies'):
/// it must not see the signing key, its password, registry credentials or the cache
/// secret, while ordinary variables still reach it.
#[test]
fn the_build_command_does_not_inherit_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prefix = d.join("signing");
    assert_exit(
        &run(pack_in(d)
            .env("PACK_KEY_PASSWORD", "pw-of-the-key-6d1f")
            .args(["key", "generate", "--output-prefix", s(&prefix)])),
        0,
    );
    let pem = std::fs::read_to_string(prefix.with_extension("key")).unwrap();
    write(
        d,
        "pack.toml",
        format!(
            "[component]\npath = \"app.wasm\"\nbuild = \"env > env.txt && cp '{}' app.wasm\"\n\
             [build]\ntargets = [\"pulley64\"]\noutput = \"out\"\n\
             [sign]\nkey-env = \"MY_SIGNING_PEM\"\npassword-env = \"MY_KEY_PASSWORD\"\n",
            s(&hello())
        ),
    );
    let secrets = [
        ("PACK_KEY_PASSWORD", "key-password-3a9c"),
        ("PACK_REGISTRY_USERNAME", "registry-user-77b2"),
        ("PACK_REGISTRY_PASSWORD", "registry-password-5e01"),
        ("PACK_SIGN_KEY_PEM", "pem-in-the-usual-variable-91aa"),
        (
            "PACK_CACHE_SECRET",
            "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
        ),
        ("MY_SIGNING_PEM", pem.as_str()),
        ("MY_KEY_PASSWORD", "pw-of-the-key-6d1f"),
    ];
    let mut cmd = pack_in(d);
    for (name, value) in secrets {
        cmd.env(name, value);
    }
    let out = run(cmd
        .env("ORDINARY_VARIABLE", "still-here")
        .args(["build", "--json"]));
    assert_exit(&out, 0);
    assert_eq!(
        json_stdout(&out)["signed"],
        true,
        "the build signed with MY_SIGNING_PEM"
    );
    let dump = std::fs::read_to_string(d.join("env.txt")).unwrap();
    for (name, value) in secrets {
        assert!(
            !dump.contains(&format!("{name}=")),
            "the build command saw {name}:\n{dump}"
        );
        let first_line = value.lines().nth(1).unwrap_or(value);
        assert!(
            !dump.contains(first_line),
            "the build command saw {name}'s value"
        );
    }
    for ordinary in ["PATH=", "HOME=", "ORDINARY_VARIABLE=still-here"] {
        assert!(
            dump.contains(ordinary),
            "{ordinary} did not reach it:\n{dump}"
        );
    }
}

/// A bundle signed for `team/app-a`, served (signature and all) as `team/app-b` by
/// whoever can write tags in the registry, is refused, naming both repositories; a
/// mirror is accepted with `--allow-reference`; app-a still runs.
#[test]
fn a_signature_is_bound_to_its_repository() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let (dir, private, public) = home_with_release_key();
    let d = dir.path();
    let app_a = format!("{}/team/app-a", registry.addr());
    let app_b = format!("{}/team/app-b", registry.addr());
    let out = build_signed_hello(d, "out", &private, &["--tag", "v1", "--reference", &app_a]);
    assert_exit(&out, 0);
    for repo in [&app_a, &app_b] {
        assert_exit(
            &run(pack_in(d).args(["push", "out:v1", &format!("{repo}:v1")])),
            0,
        );
    }
    let (a_v1, b_v1) = (format!("{app_a}:v1"), format!("{app_b}:v1"));
    // `pack ARGS --key release.pub`.
    let with_key = |args: &[&str]| run(pack_in(d).args(args).args(["--key", s(&public)]));

    // Served as app-b: refused, before anything but the signature is fetched.
    let out = with_key(&["run", &b_v1]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("signed for `{app_a}`, not for `{app_b}`")),
        "{err}"
    );
    assert!(err.contains("--allow-reference"), "{err}");
    let out = with_key(&["pull", &b_v1, "-o", "pulled"]);
    assert_exit(&out, 1);
    assert_stderr_has(&out, format!("signed for `{app_a}`"));
    assert!(!d.join("pulled").exists());

    // Allowed explicitly (a mirror), exactly or by pattern.
    for pattern in [app_a.clone(), format!("{}/team/*", registry.addr())] {
        let out = with_key(&["run", &b_v1, "--allow-reference", &pattern]);
        assert_exit(&out, 0);
    }
    let out = with_key(&["pull", &b_v1, "-o", "pulled", "--allow-reference", &app_a]);
    assert_exit(&out, 0);
    // A pattern for other repositories does not help.
    let out = with_key(&["run", &b_v1, "--allow-reference", "ghcr.io/**"]);
    assert_exit(&out, 2);

    // Where it was signed for, it runs.
    assert_exit(&with_key(&["run", &a_v1]), 0);
    // Docker's normalization: `index.docker.io/...` and `docker.io/...` are one.
    let out = with_key(&[
        "run",
        &a_v1,
        "--allow-reference",
        "index.docker.io/team/other",
    ]);
    assert_exit(&out, 0);

    // A layout is checked against --reference when one is given.
    let verify = |reference: &str| with_key(&["verify", "out:v1", "--reference", reference]);
    assert_exit(&verify(&app_a), 0);
    let out = verify(&app_b);
    assert_exit(&out, 1);
    assert_stdout_has(&out, format!("signed for `{app_a}`"));
    assert_exit(&with_key(&["run", "./out:v1", "--reference", &app_b]), 2);
    assert_exit(&with_key(&["run", "./out:v1", "--reference", &app_a]), 0);
}

/// `pack verify` on a bundle whose signature holds but one of whose layers was damaged
/// (one byte flipped, file name kept): exit 1, naming the blob; `--signature-only` keeps
/// the quick check of the signature alone.
#[test]
fn verify_names_a_damaged_blob() {
    let (dir, private, public) = home_with_release_key();
    let d = dir.path();
    assert_exit(&build_signed_hello(d, "out", &private, &[]), 0);
    let verify = |extra: &[&str]| {
        run(pack_in(d)
            .args(["verify", "out", "--key", s(&public)])
            .args(extra))
    };
    let out = verify(&[]);
    assert_exit(&out, 0);
    let json = json_stdout(&verify(&["--json"]));
    assert_eq!(json["verified"], true, "{json}");
    assert!(json["tree"]["intact"].as_u64().unwrap() >= 6, "{json}");

    let (digest, path) = cwasm_layer(&d.join("out"), "latest", here());
    mode(&path, 0o644);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let out = verify(&[]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    let file = format!("out/blobs/sha256/{}", &digest["sha256:".len()..]);
    assert!(text.contains(&digest) && text.contains(&file), "{text}");
    assert!(text.contains("its content hashes to sha256:"), "{text}");
    let out = verify(&["--json"]);
    assert_exit(&out, 1);
    let json = json_stdout(&out);
    assert_eq!(json["verified"], false, "{json}");
    let damaged: &Vec<Value> = json["tree"]["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{json}");
    assert_eq!(damaged[0]["digest"], digest.as_str());
    // The quick check of the signature only still passes.
    assert_exit(&verify(&["--signature-only"]), 0);

    // A missing layer is damage too.
    std::fs::remove_file(&path).unwrap();
    let out = verify(&[]);
    assert_exit(&out, 1);
    assert_stdout_has(&out, "missing");
}

/// A private key that group or others can read is warned about, once, as ssh would
/// (ssh refuses it); one only its owner can read is not.
#[test]
fn a_private_key_others_can_read_is_warned_about() {
    let (dir, private, _) = home_with_release_key();
    let d = dir.path();
    build_unsigned(d, &hello(), &d.join("out"), "v1");
    let sign = || run(pack_in(d).args(["sign", "out:v1", "--key", s(&private)]));
    let out = sign();
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("chmod"), "{}", stderr(&out));
    mode(&private, 0o644);
    let out = sign();
    assert_exit(&out, 0);
    let warnings: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", stderr(&out));
    assert!(
        warnings[0].contains(s(&private))
            && warnings[0].contains("0644")
            && warnings[0].contains("chmod 600"),
        "{}",
        warnings[0]
    );
    // The same through `pack build --sign-key`.
    let out = build_signed_hello(d, "out", &private, &["--tag", "v2"]);
    assert_exit(&out, 0);
    assert_stderr_has(&out, "chmod 600");
}
