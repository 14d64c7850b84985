//! Signing and verifying bundles in a layout.

mod common;

use std::fs;
use std::path::Path;

use base64::Engine as _;
use common::blob_json;
use pack_packager::annotations::{COSIGN_SIGNATURE, REF_NAME};
use pack_packager::signing::{
    self, PrivateKey, Rejection, SignOptions, SignatureFormat, SignatureKind, sign_digest,
    sign_index, signature_tag, verify,
};
use pack_packager::{Layout, build_bundle};
use serde_json::Value;

/// The reference the signatures of these tests name.
const REFERENCE: &str = "registry.example.com/app";

fn bundle(dir: &Path) -> Layout {
    let root = dir.join("layout");
    build_bundle(&root, "latest", &common::sample_input(dir)).unwrap();
    Layout::open(root).unwrap()
}

#[test]
fn sign_writes_a_cosign_signature_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let layout = bundle(dir.path());
    let key = PrivateKey::generate();
    let options = SignOptions {
        reference: Some(REFERENCE.into()),
        ..Default::default()
    };
    let summary = sign_index(&layout, "latest", &key, &options).unwrap();
    assert_eq!(summary.signed.len(), 1);
    assert!(summary.signed[0].added);
    let index_digest = layout.resolve("latest").unwrap().digest().clone();
    let tag = signature_tag(&index_digest);
    assert_eq!(tag, format!("sha256-{}.sig", index_digest.digest()));
    assert_eq!(
        summary.signed[0].signature_tag.as_deref(),
        Some(tag.as_str())
    );

    let entry = layout.resolve(&tag).unwrap();
    assert_eq!(entry.annotations().as_ref().unwrap()[REF_NAME], tag);
    let (_, manifest) = blob_json(layout.root(), entry.digest().as_ref());
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let (payload, payload_json) = blob_json(layout.root(), layers[0]["digest"].as_str().unwrap());
    assert_eq!(
        payload,
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{REFERENCE}"}},"image":{{"docker-manifest-digest":"{index_digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
    );
    assert_eq!(payload_json["optional"], Value::Null);
    let signature = base64::engine::general_purpose::STANDARD
        .decode(layers[0]["annotations"][COSIGN_SIGNATURE].as_str().unwrap())
        .unwrap();
    assert!(key.public_key().verify(payload.as_bytes(), &signature));
    assert_eq!(
        layers[0]["annotations"]["dev.pack.signature.key"],
        key.public_key().fingerprint().to_string()
    );
    let (_, config) = blob_json(
        layout.root(),
        manifest["config"]["digest"].as_str().unwrap(),
    );
    assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);
    common::check_layout(layout.root());

    let verdict = verify(&layout, "latest", &[key.public_key()]).unwrap();
    assert!(verdict.is_verified(), "{verdict:?}");
    let verified: Vec<_> = verdict.verified().collect();
    assert_eq!(verified[0].reference, REFERENCE);
    assert_eq!(verified[0].key, key.public_key().fingerprint());
}

#[test]
fn verdicts_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let layout = bundle(dir.path());
    let key = PrivateKey::generate();
    let other = PrivateKey::generate();

    let verdict = verify(&layout, "latest", &[key.public_key()]).unwrap();
    assert!(!verdict.is_verified() && verdict.is_unsigned());
    assert!(
        verdict.reasons()[0].contains("is unsigned"),
        "{:?}",
        verdict.reasons()
    );

    sign_index(&layout, "latest", &other, &legacy()).unwrap();
    let verdict = verify(&layout, "latest", &[key.public_key()]).unwrap();
    assert!(!verdict.is_verified());
    assert_eq!(verdict.signatures[0].outcome, Err(Rejection::OtherKey));
    assert!(
        verdict.reasons()[0].ends_with("made by another key"),
        "{:?}",
        verdict.reasons()
    );
    // Either key verifies when both are given.
    let verdict = verify(&layout, "latest", &[key.public_key(), other.public_key()]).unwrap();
    assert!(verdict.is_verified());

    // Signing again with another key adds a layer; the earlier signature stays.
    sign_index(&layout, "latest", &key, &legacy()).unwrap();
    let verdict = verify(&layout, "latest", &[key.public_key()]).unwrap();
    assert!(verdict.is_verified());
    assert_eq!(verdict.signatures.len(), 2);
    // The same signature again changes nothing (RFC 6979 signatures are deterministic).
    let again = sign_index(&layout, "latest", &key, &legacy()).unwrap();
    assert!(!again.signed[0].added);
    assert_eq!(verify(&layout, "latest", &[]).unwrap().signatures.len(), 2);

    // A valid signature of another digest, stored under this digest's tag.
    let second = build_bundle(layout.root(), "second", &{
        let mut input = common::sample_input(dir.path());
        input.natives.pop();
        input
    })
    .unwrap();
    let third_key = PrivateKey::generate();
    sign_digest(&layout, second.index.digest(), &third_key, "x", None).unwrap();
    let moved = layout
        .resolve(&signature_tag(second.index.digest()))
        .unwrap();
    let index_digest = layout.resolve("latest").unwrap().digest().clone();
    layout
        .set_tag(&signature_tag(&index_digest), &moved)
        .unwrap();
    let verdict = verify(&layout, "latest", &[third_key.public_key()]).unwrap();
    assert!(!verdict.is_verified());
    assert_eq!(
        verdict.signatures[0].outcome,
        Err(Rejection::OtherDigest {
            signed: second.index.digest().to_string()
        })
    );
}

#[test]
fn malformed_payloads_and_signatures_are_rejected() {
    let key = PrivateKey::generate();
    let digest = pack_packager::layout::sha256(b"x");
    let keys = [key.public_key()];
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

    // Signed by the key, but not a cosign payload: not JSON, or of another type.
    let payloads: [&[u8]; 2] = [
        b"not json",
        br#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"d"},"type":"other"},"optional":null}"#,
    ];
    for payload in payloads {
        let err = signing::verify_payload(payload, &b64(&key.sign(payload)), &digest, &keys);
        assert!(
            matches!(err, Err(Rejection::MalformedPayload { .. })),
            "{}: {err:?}",
            String::from_utf8_lossy(payload)
        );
    }

    // Not base64, or not a signature.
    for signature in ["%%%".to_string(), b64(b"raw")] {
        let err = signing::verify_payload(b"{}", &signature, &digest, &keys);
        assert!(
            matches!(err, Err(Rejection::MalformedSignature { .. })),
            "{signature}: {err:?}"
        );
    }
}

#[test]
fn recursive_signs_every_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let layout = bundle(dir.path());
    let key = PrivateKey::generate();
    let summary = sign_index(
        &layout,
        "latest",
        &key,
        &SignOptions {
            recursive: true,
            annotations: [("build".to_string(), "42".to_string())].into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(summary.signed.len(), 4);
    assert_eq!(summary.reference, "layout");
    for signed in &summary.signed {
        let verdict = signing::verify_digest(&layout, &signed.digest, &[key.public_key()]).unwrap();
        assert!(verdict.is_verified(), "{}", signed.digest);
        let verified = verdict.verified().next().unwrap();
        assert_eq!(verified.optional.as_ref().unwrap()["build"], "42");
    }
    assert_eq!(signing::signature_tags(&layout).unwrap().len(), 4);
    common::check_layout(layout.root());
}

#[test]
fn verification_does_not_read_the_signed_content() {
    let dir = tempfile::tempdir().unwrap();
    let layout = bundle(dir.path());
    let key = PrivateKey::generate();
    sign_index(&layout, "latest", &key, &SignOptions::default()).unwrap();
    let index = layout.resolve("latest").unwrap();
    fs::write(layout.blob_path(index.digest()).unwrap(), b"garbage").unwrap();
    assert!(
        verify(&layout, "latest", &[key.public_key()])
            .unwrap()
            .is_verified()
    );
}

/// Signs `layout:latest` with a key made for the purpose.
fn sign_by_a_new_key(
    layout: &Layout,
    options: &SignOptions,
) -> pack_packager::Result<pack_packager::signing::SignSummary> {
    sign_index(layout, "latest", &PrivateKey::generate(), options)
}

/// A new layout in `dir` whose `latest` is signed as many times as a host follows, with
/// `options`, each time by a new key.
fn signed_to_the_limit(dir: &Path, options: &SignOptions) -> Layout {
    let layout = bundle(dir);
    for _ in 0..pack_packager::limits::MAX_SIGNATURE_LAYERS {
        sign_by_a_new_key(&layout, options).unwrap();
    }
    layout
}

/// Signs `layout:latest` once more, by a new key: refused, with `index.json` left as it
/// was.
fn one_more_signature_is_refused(layout: &Layout) -> pack_packager::Error {
    let before = fs::read(layout.root().join("index.json")).unwrap();
    let err = sign_by_a_new_key(layout, &SignOptions::default()).unwrap_err();
    assert_eq!(
        fs::read(layout.root().join("index.json")).unwrap(),
        before,
        "index.json changed"
    );
    err
}

#[test]
fn signing_stops_at_the_number_of_signatures_a_host_follows() {
    let limit = pack_packager::limits::MAX_SIGNATURE_LAYERS;
    let dir = tempfile::tempdir().unwrap();
    let layout = signed_to_the_limit(dir.path(), &SignOptions::default());
    let err = one_more_signature_is_refused(&layout);
    assert!(
        matches!(err, pack_packager::Error::TooMany { count, limit: l, .. } if count == limit + 1 && l == limit),
        "{err:?}"
    );
    // The signatures there still verify. Both formats: `limit` legacy layers and `limit`
    // bundle referrers.
    assert_eq!(
        verify(&layout, "latest", &[]).unwrap().signatures.len(),
        2 * limit
    );

    // Bundles alone stop at the same number, before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let bundles = SignOptions {
        format: SignatureFormat::Bundle,
        ..Default::default()
    };
    let layout = signed_to_the_limit(dir.path(), &bundles);
    let err = one_more_signature_is_refused(&layout);
    assert!(
        matches!(err, pack_packager::Error::TooMany { limit: l, .. } if l == limit),
        "{err:?}"
    );
}

fn legacy() -> SignOptions {
    SignOptions {
        format: SignatureFormat::Legacy,
        ..Default::default()
    }
}

#[test]
fn a_bundle_signature_is_a_referrer_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let layout = bundle(dir.path());
    let key = PrivateKey::generate();
    let options = SignOptions {
        reference: Some(REFERENCE.into()),
        format: SignatureFormat::Bundle,
        annotations: [("build".to_string(), "7".to_string())].into(),
        ..Default::default()
    };
    let summary = sign_index(&layout, "latest", &key, &options).unwrap();
    let index = layout.resolve("latest").unwrap();
    assert_eq!(summary.signed[0].signature_tag, None);
    let referrer = summary.signed[0].referrer.clone().unwrap();
    assert!(layout.resolve(&signature_tag(index.digest())).is_err());
    let listed = pack_packager::referrers::referrers(&layout, index.digest()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(*listed[0].digest(), referrer);
    common::check_layout(layout.root());

    let verdict = verify(&layout, "latest", &[key.public_key()]).unwrap();
    assert!(verdict.is_verified(), "{verdict:?}");
    assert_eq!(verdict.signatures[0].format, SignatureKind::SigstoreBundle);
    let verified: Vec<_> = verdict.verified().collect();
    assert_eq!(verified[0].reference, REFERENCE);
    assert_eq!(
        verified[0].optional.as_ref().unwrap()["build"],
        Value::String("7".into())
    );
    let verdict = verify(&layout, "latest", &[PrivateKey::generate().public_key()]).unwrap();
    assert_eq!(verdict.signatures[0].outcome, Err(Rejection::OtherKey));
    // The same again: nothing added.
    let again = sign_index(&layout, "latest", &key, &options).unwrap();
    assert!(!again.signed[0].added);
    assert_eq!(
        pack_packager::referrers::referrers(&layout, index.digest())
            .unwrap()
            .len(),
        1
    );
}
