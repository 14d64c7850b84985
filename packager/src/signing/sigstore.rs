//! Sigstore bundles (v0.3, JSON): a DSSE envelope over an in-toto v1 Statement, signed
//! with a key, as `cosign sign --key` writes them with the bundle format.
//!
//! ```json
//! {"dsseEnvelope":{"payload":"<base64 Statement>","payloadType":"application/vnd.in-toto+json",
//!                  "signatures":[{"sig":"<base64 DER ECDSA P-256>"}]},
//!  "mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",
//!  "verificationMaterial":{"publicKey":{"hint":"<base64 SHA-256 of the key's SPKI DER>"},
//!                          "tlogEntries":[]}}
//! ```
//!
//! The signature is over DSSE's pre-authentication encoding of the payload
//! ([`pae`]), not over the payload itself. There is no transparency log entry and no
//! timestamp (what cosign writes with `--tlog-upload=false`): the bundle proves who
//! signed, not when.
//!
//! Verification checks the signature over the envelope's bytes before the Statement is
//! parsed; the bundle JSON around it is parsed first (it has to be, to find the
//! signature) but nothing in it is trusted.

use std::collections::BTreeMap;

use base64::Engine as _;
use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Fingerprint, PrivateKey, PublicKey, Rejection};

/// The media type of a sigstore bundle v0.3 (JSON).
pub const BUNDLE_MEDIA_TYPE: &str = crate::media_types::SIGSTORE_BUNDLE;
/// DSSE `payloadType` of an in-toto Statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of an in-toto v1 Statement.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of a cosign image signature.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// DSSE's pre-authentication encoding, the bytes that are signed:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The key hint written in `verificationMaterial.publicKey.hint`: the standard base64 of
/// the SHA-256 of the key's SubjectPublicKeyInfo DER (cosign's hint for a key).
pub fn key_hint(key: &PublicKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(key.spki_der()))
}

/// An in-toto v1 Statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub kind: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// What kind of claim the predicate is.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim.
    #[serde(default)]
    pub predicate: serde_json::Value,
}

/// One subject of a [`Statement`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// A name (for an image signature: the repository, as `docker-reference`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Algorithm → lowercase hex.
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// A subject for `digest` named `name`.
    pub fn new(name: &str, digest: &Digest) -> Self {
        Self {
            name: name.to_string(),
            digest: [(digest.algorithm().to_string(), digest.digest().to_string())].into(),
        }
    }

    /// Whether it names `digest`.
    pub fn matches(&self, digest: &Digest) -> bool {
        self.digest
            .get(digest.algorithm().as_ref())
            .is_some_and(|hex| hex.eq_ignore_ascii_case(digest.digest()))
    }
}

impl Statement {
    /// A Statement about `subject` with `predicate`.
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: serde_json::Value) -> Self {
        Self {
            kind: STATEMENT_TYPE.to_string(),
            subject,
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }

    /// The canonical JSON bytes that go into the envelope.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::json::to_vec(self).expect("a statement serialises")
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson {
    media_type: String,
    verification_material: VerificationMaterial,
    dsse_envelope: Option<Envelope>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKeyIdentifier>,
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PublicKeyIdentifier {
    #[serde(default)]
    hint: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EnvelopeSignature {
    sig: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    keyid: String,
}

/// Signs `statement` with `key`: the bundle JSON bytes.
pub fn sign_statement(statement: &Statement, key: &PrivateKey) -> Vec<u8> {
    let payload = statement.to_bytes();
    let signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    let b64 = base64::engine::general_purpose::STANDARD;
    let bundle = BundleJson {
        media_type: BUNDLE_MEDIA_TYPE.to_string(),
        verification_material: VerificationMaterial {
            public_key: Some(PublicKeyIdentifier {
                hint: key_hint(&key.public_key()),
            }),
            tlog_entries: Vec::new(),
        },
        dsse_envelope: Some(Envelope {
            payload: b64.encode(&payload),
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_string(),
            signatures: vec![EnvelopeSignature {
                sig: b64.encode(signature),
                keyid: String::new(),
            }],
        }),
    };
    crate::json::to_vec(&bundle).expect("a bundle serialises")
}

/// A bundle whose envelope one of the keys signed.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedBundle {
    /// The key that signed it.
    pub key: Fingerprint,
    /// The Statement (parsed after the signature verified).
    pub statement: Statement,
    /// The hint the bundle gives for its key (not trusted).
    pub hint: Option<String>,
}

/// Checks the bundle `bytes`: a v0.3 bundle with a DSSE envelope of an in-toto
/// Statement, signed (over [`pae`]) by one of `keys`. The Statement is parsed only once
/// a signature verified. Its subject and predicate are the caller's to check.
pub fn open_bundle(bytes: &[u8], keys: &[PublicKey]) -> Result<OpenedBundle, Rejection> {
    let malformed = |detail: String| Rejection::MalformedSignature { detail };
    let bundle: BundleJson = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("not a sigstore bundle: {e}")))?;
    if bundle.media_type != BUNDLE_MEDIA_TYPE {
        return Err(malformed(format!(
            "bundle media type `{}`, not `{BUNDLE_MEDIA_TYPE}`",
            bundle.media_type
        )));
    }
    let envelope = bundle
        .dsse_envelope
        .ok_or_else(|| malformed("the bundle holds no DSSE envelope".to_string()))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(malformed(format!(
            "payload type `{}`, not `{IN_TOTO_PAYLOAD_TYPE}`",
            envelope.payload_type
        )));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(envelope.payload.trim())
        .map_err(|e| malformed(format!("the envelope's payload is not base64: {e}")))?;
    if envelope.signatures.is_empty() {
        return Err(malformed("the envelope has no signature".to_string()));
    }
    let signed = pae(&envelope.payload_type, &payload);
    let mut key = None;
    for signature in &envelope.signatures {
        let der = b64
            .decode(signature.sig.trim())
            .map_err(|e| malformed(format!("a signature is not base64: {e}")))?;
        if p256::ecdsa::Signature::from_der(&der).is_err() {
            return Err(malformed("not a DER ECDSA signature".to_string()));
        }
        if let Some(found) = keys.iter().find(|k| k.verify(&signed, &der)) {
            key = Some(found);
            break;
        }
    }
    let key = key.ok_or(Rejection::OtherKey)?;
    let statement: Statement =
        serde_json::from_slice(&payload).map_err(|e| Rejection::MalformedPayload {
            detail: format!("not an in-toto Statement: {e}"),
        })?;
    if statement.kind != STATEMENT_TYPE {
        return Err(Rejection::MalformedPayload {
            detail: format!("_type is `{}`, not `{STATEMENT_TYPE}`", statement.kind),
        });
    }
    Ok(OpenedBundle {
        key: key.fingerprint(),
        statement,
        hint: bundle
            .verification_material
            .public_key
            .map(|k| k.hint)
            .filter(|h| !h.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// A cosign signing statement for `name` at [`digest`]`(c)`.
    fn signing_statement(name: &str, c: char) -> Statement {
        Statement::new(
            vec![Subject::new(name, &digest(c))],
            COSIGN_SIGN_PREDICATE,
            serde_json::json!({}),
        )
    }

    fn digest(c: char) -> Digest {
        Digest::from_str(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn pae_is_dsse_v1() {
        // The example of the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn a_signed_statement_opens_with_its_key_only() {
        let key = PrivateKey::generate();
        let other = PrivateKey::generate();
        let statement = signing_statement("registry.example.com/app", 'a');
        let bundle = sign_statement(&statement, &key);
        let text = String::from_utf8(bundle.clone()).unwrap();
        assert!(text.contains("\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\""));
        assert!(text.contains("\"tlogEntries\":[]"));
        let opened = open_bundle(&bundle, &[other.public_key(), key.public_key()]).unwrap();
        assert_eq!(opened.key, key.public_key().fingerprint());
        assert_eq!(opened.statement, statement);
        assert_eq!(opened.hint, Some(key_hint(&key.public_key())));
        assert!(opened.statement.subject[0].matches(&digest('a')));
        assert!(!opened.statement.subject[0].matches(&digest('b')));
        assert_eq!(
            open_bundle(&bundle, &[other.public_key()]),
            Err(Rejection::OtherKey)
        );
    }

    #[test]
    fn a_changed_payload_or_type_does_not_verify() {
        let key = PrivateKey::generate();
        let statement = signing_statement("app", 'a');
        let bundle = sign_statement(&statement, &key);
        let mut value: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        let forged = signing_statement("app", 'b');
        value["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
            .encode(forged.to_bytes())
            .into();
        let forged = serde_json::to_vec(&value).unwrap();
        assert_eq!(
            open_bundle(&forged, &[key.public_key()]),
            Err(Rejection::OtherKey)
        );
        let mut value: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        value["dsseEnvelope"]["payloadType"] = "text/plain".into();
        let retyped = serde_json::to_vec(&value).unwrap();
        assert!(matches!(
            open_bundle(&retyped, &[key.public_key()]),
            Err(Rejection::MalformedSignature { .. })
        ));
        assert!(matches!(
            open_bundle(b"{}", &[key.public_key()]),
            Err(Rejection::MalformedSignature { .. })
        ));
    }
}
