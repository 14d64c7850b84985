//! Raw bytes as signatures: a simple-signing payload and its base64 signature (split at
//! the first NUL) checked against a fixed key, the payload parser on its own, and the
//! bytes as a public or private key file.
#![no_main]

use std::path::Path;

use base64::Engine as _;
use std::sync::OnceLock;

use pack_packager::oci_spec::image::Digest;
use pack_packager::signing::{Payload, PrivateKey, PublicKey, verify_payload};

fn key() -> &'static (PrivateKey, PublicKey) {
    static KEY: OnceLock<(PrivateKey, PublicKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let private = PrivateKey::generate();
        let public = private.public_key();
        (private, public)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let digest: Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        .parse()
        .unwrap();
    let (payload, signature) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let (private, public) = key();
    let signature = String::from_utf8_lossy(signature);
    let _ = verify_payload(payload, &signature, &digest, std::slice::from_ref(public));
    // The same payload with a valid signature: the parser runs on it.
    let valid = base64::engine::general_purpose::STANDARD.encode(private.sign(payload));
    let _ = verify_payload(payload, &valid, &digest, std::slice::from_ref(public));
    let _ = serde_json::from_slice::<Payload>(payload);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PublicKey::from_pem(text, Path::new("fuzz.pub"));
        let _ = PrivateKey::from_pem(text, None, Path::new("fuzz.key"));
    }
});
