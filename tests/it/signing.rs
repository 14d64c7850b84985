//! `pack key generate`, `pack sign`, `pack verify`, and signatures checked by OpenSSL.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::bundle::sample_layout;
use crate::common::*;
use crate::registry::require;

const PASSWORD: &str = "correct horse battery staple";

fn s(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `pack` with PACK_KEY_PASSWORD set.
fn pack_pw() -> assert_cmd::Command {
    let mut cmd = pack();
    cmd.env("PACK_KEY_PASSWORD", PASSWORD);
    cmd
}

/// Asserts that the file at `path` is a PEM `label` (`-----BEGIN <label>-----`); returns
/// its text.
#[track_caller]
fn assert_pem(path: &Path, label: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.starts_with(&format!("-----BEGIN {label}-----")),
        "{}: {text}",
        path.display()
    );
    text
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl")
}

/// The public key (PEM) OpenSSL derives from the private key `key`, encrypted with
/// [`PASSWORD`].
fn openssl_public_key(key: &Path) -> String {
    let out = openssl(&[
        "pkey",
        "-in",
        &s(key),
        "-passin",
        &format!("pass:{PASSWORD}"),
        "-pubout",
    ]);
    assert_exit(&out, 0);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn key_generate_writes_a_protected_key_pair() {
    let dir = tempfile::tempdir().unwrap();
    // Default prefix `pack`, in the current directory.
    let (code, out, err) = run(pack_pw().current_dir(dir.path()).args(["key", "generate"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote pack.key and pack.pub"), "{out}");
    let key = dir.path().join("pack.key");
    let public = dir.path().join("pack.pub");
    let key_text = assert_pem(&key, "ENCRYPTED PRIVATE KEY");
    assert_pem(&public, "PUBLIC KEY");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&public), 0o644);
    }

    // Never overwritten without --force.
    let (code, _, err) = run(pack_pw().current_dir(dir.path()).args(["key", "generate"]));
    assert_eq!(code, 2);
    assert!(err.contains("`pack.key` already exists"), "{err}");
    assert!(err.contains("hint: pass --force"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), key_text);

    // --no-password: unencrypted, with a warning; --force replaces.
    let (code, _, err) =
        run(pack()
            .current_dir(dir.path())
            .args(["key", "generate", "--no-password", "--force"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: `pack.key` is not encrypted"),
        "{err}"
    );
    assert_pem(&key, "PRIVATE KEY");

    // No password and stdin is not a terminal: a clear error, nothing written.
    let (code, _, err) = run(pack()
        .current_dir(dir.path())
        .env_remove("PACK_KEY_PASSWORD")
        .args(["key", "generate", "--output-prefix", "other"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("set PACK_KEY_PASSWORD, or pass --no-password"),
        "{err}"
    );
    assert!(!dir.path().join("other.key").exists());

    // JSON.
    let (code, out, _) = run(pack_pw().current_dir(dir.path()).args([
        "key",
        "generate",
        "--output-prefix",
        "keys",
        "--json",
    ]));
    assert_eq!(code, 0);
    let v = json_str(&out);
    assert_eq!(v["encrypted"], true);
    assert!(v["fingerprint"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn openssl_reads_the_keys() {
    if require("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = encrypted_key_pair(dir.path(), "k", PASSWORD);
    // The encrypted PKCS#8 (PBES2, scrypt) key decrypts with OpenSSL and has the public
    // key of the `.pub` file.
    assert_eq!(
        openssl_public_key(&key),
        std::fs::read_to_string(&public).unwrap()
    );
    let out = openssl(&["pkey", "-pubin", "-in", &s(&public), "-text", "-noout"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("NIST CURVE: P-256"));
}

#[test]
fn sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, summary) = sample_layout(dir.path(), "app", "v1");
    let target = format!("{}:v1", s(&layout));
    let (key_priv, key_pub) = encrypted_key_pair(dir.path(), "k", PASSWORD);
    let (other_priv, other_pub) = encrypted_key_pair(dir.path(), "other", PASSWORD);
    // As the command lines take them.
    let (key_priv, key_pub, other_pub) = (s(&key_priv), s(&key_pub), s(&other_pub));

    // Unsigned: exit 1, and why.
    let (code, out, _) = run(pack().args(["verify", &target, "--key", &key_pub]));
    assert_eq!(code, 1);
    assert!(out.contains("is unsigned"), "{out}");

    let (code, out, err) = run(pack_pw().args([
        "sign",
        &target,
        "--key",
        &key_priv,
        "--reference",
        "registry.example.com/app",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("signed") && out.contains("registry.example.com/app"),
        "{out}"
    );
    let sig_tag = format!("sha256-{}.sig", summary.index.digest().digest());
    assert!(out.contains(&sig_tag), "{out}");

    let (code, out, err) = run(pack().args(["verify", &target, "--key", &key_pub]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("is signed by key") && out.contains("registry.example.com/app"),
        "{out}"
    );

    // Another key: exit 1, and why.
    let (code, out, _) = run(pack().args(["verify", &target, "--key", &other_pub]));
    assert_eq!(code, 1);
    assert!(out.contains("made by another key"), "{out}");
    // Any of several keys.
    let (code, _, _) =
        run(pack().args(["verify", &target, "--key", &other_pub, "--key", &key_pub]));
    assert_eq!(code, 0);

    // JSON verdict.
    let (code, out, _) = run(pack().args(["verify", &target, "--key", &other_pub, "--json"]));
    assert_eq!(code, 1);
    let v = json_str(&out);
    assert_eq!(v["verified"], false);
    assert_eq!(v["digest"], summary.index.digest().to_string());
    assert_eq!(v["signatureTag"], sig_tag);
    assert_eq!(v["signatures"][0]["verified"], false);
    assert_eq!(v["signatures"][0]["reason"]["reason"], "other-key");

    // inspect lists the signature by its claimed key, verified with --key.
    let (_, out, _) = run(pack().args(["inspect", &target]));
    assert!(out.contains("not verified (pass --key)"), "{out}");
    let (_, out, _) = run(pack().args(["inspect", &target, "--key", &key_pub]));
    assert!(
        out.contains("reference registry.example.com/app  verified"),
        "{out}"
    );

    // A second signature by another key is added, not replacing the first.
    pack_pw()
        .args(["sign", &target, "--key", &s(&other_priv)])
        .assert()
        .success();
    let (code, out, _) = run(pack().args(["verify", &target, "--key", &key_pub, "--json"]));
    assert_eq!(code, 0);
    let v = json_str(&out);
    // Two keys, each a legacy signature and a sigstore bundle (`--signature-format both`).
    assert_eq!(v["signatures"].as_array().unwrap().len(), 4);

    // Bad input: exit 2.
    let (code, _, err) = run(pack().args(["verify", &target, "--key", "missing.pub"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.pub"), "{err}");
    let (code, _, err) =
        run(pack().args(["verify", &format!("{}:nope", s(&layout)), "--key", &key_pub]));
    assert_eq!(code, 2);
    assert!(err.contains("no tag `nope`"), "{err}");
    let (code, _, err) = run(pack().args(["verify", &target, "--key", &key_priv]));
    assert_eq!(code, 2);
    assert!(err.contains("it is a private key"), "{err}");
}

#[test]
fn sign_needs_the_right_password() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = sample_layout(dir.path(), "app", "latest");
    let (key, _) = encrypted_key_pair(dir.path(), "k", PASSWORD);
    let key_priv = s(&key);

    let (code, _, err) = run(pack().env("PACK_KEY_PASSWORD", "wrong").args([
        "sign",
        &s(&layout),
        "--key",
        &key_priv,
    ]));
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("cannot decrypt `{key_priv}`: wrong password")),
        "{err}"
    );

    let (code, _, err) =
        run(pack()
            .env_remove("PACK_KEY_PASSWORD")
            .args(["sign", &s(&layout), "--key", &key_priv]));
    assert_eq!(code, 2);
    assert!(
        err.contains("is encrypted and no password was given"),
        "{err}"
    );
    assert!(err.contains("hint: set PACK_KEY_PASSWORD"), "{err}");
}

/// An implementation pack did not write checks pack's signature: OpenSSL verifies the
/// payload stored in the layout against the base64 DER signature in the annotation.
#[test]
fn openssl_verifies_the_signature() {
    if require("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (layout, summary) = sample_layout(dir.path(), "app", "latest");
    let (key, public) = encrypted_key_pair(dir.path(), "k", PASSWORD);
    pack_pw()
        .args(["sign", &s(&layout), "--key", &s(&key)])
        .assert()
        .success();

    let blob = |digest: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap()
    };
    let sig_tag = format!("sha256-{}.sig", summary.index.digest().digest());
    let manifest = blob_json(&layout, &index_digest(&layout, &sig_tag));
    let layer = &manifest["layers"][0];
    let payload = blob(layer["digest"].as_str().unwrap());
    let payload_json: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        payload_json["critical"]["image"]["docker-manifest-digest"],
        summary.index.digest().to_string()
    );
    assert_eq!(
        payload_json["critical"]["identity"]["docker-reference"],
        "app"
    );
    let signature = base64::engine::general_purpose::STANDARD
        .decode(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let payload_path = dir.path().join("payload.json");
    let signature_path = dir.path().join("signature.der");
    std::fs::write(&payload_path, &payload).unwrap();
    std::fs::write(&signature_path, &signature).unwrap();

    let openssl_verify = || {
        openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            &s(&public),
            "-signature",
            &s(&signature_path),
            &s(&payload_path),
        ])
    };
    let out = openssl_verify();
    assert_exit(&out, 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");

    // And a tampered payload does not verify.
    std::fs::write(&payload_path, [&payload[..], b" "].concat()).unwrap();
    assert!(!openssl_verify().status.success());
}

/// Keys made by OpenSSL work: an encrypted PKCS#8 key (PBES2 with PBKDF2) signs, and its
/// public key verifies. A key of another kind is refused by name.
#[test]
fn openssl_keys_sign_and_verify() {
    if require("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = sample_layout(dir.path(), "app", "latest");
    let key = dir.path().join("ossl.key");
    let public = dir.path().join("ossl.pub");
    let out = openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-aes-256-cbc",
        "-pass",
        &format!("pass:{PASSWORD}"),
        "-out",
        &s(&key),
    ]);
    assert_exit(&out, 0);
    std::fs::write(&public, openssl_public_key(&key)).unwrap();

    let (code, _, err) =
        run(pack_pw().args(["sign", &s(&layout), "--key", &s(&key), "--recursive"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(pack().args(["verify", &s(&layout), "--key", &s(&public)]));
    assert_eq!(code, 0, "{out}{err}");
    // --recursive signed the three manifests too.
    let index = layout_index(&layout);
    let sig_tags = tags(&index).iter().filter(|t| t.ends_with(".sig")).count();
    assert_eq!(sig_tags, 4);

    let ed = dir.path().join("ed.key");
    assert!(
        openssl(&["genpkey", "-algorithm", "ed25519", "-out", &s(&ed)])
            .status
            .success()
    );
    let (code, _, err) = run(pack().args(["sign", &s(&layout), "--key", &s(&ed)]));
    assert_eq!(code, 2);
    assert!(
        err.contains("holds an Ed25519 key; pack signs with ECDSA P-256 keys"),
        "{err}"
    );
}
