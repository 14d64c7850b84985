//! JSON objects that several commands print (docs/json.md describes each).

use pack_packager::provenance::{self, AttestationCheck, AttestationRejection, ProvenanceCheck};
use pack_packager::signing::{self, Rejection, SignatureCheck};

/// One signature in JSON output (`inspect` and `verify`).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JsonSignature {
    format: signing::SignatureKind,
    layer: String,
    claimed_key: Option<String>,
    /// `true`, `false`, or `null` when no key was given to check it with.
    verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Rejection>,
}

impl JsonSignature {
    pub(crate) fn new(check: &SignatureCheck, keys_given: bool) -> Self {
        let (verified, key, reference, reason) = match &check.outcome {
            Ok(v) => (
                Some(true),
                Some(v.key.to_string()),
                Some(v.reference.clone()),
                None,
            ),
            Err(Rejection::OtherKey) if !keys_given => (None, None, None, None),
            Err(r) => (Some(false), None, None, Some(r.clone())),
        };
        Self {
            format: check.format,
            layer: check.layer.clone(),
            claimed_key: check.claimed_key.clone(),
            verified,
            key,
            reference,
            reason,
        }
    }
}

/// One line of `pack run --json` on stderr: the kind in `event`, keys in camelCase
/// (docs/json.md lists each).
#[derive(serde::Serialize)]
#[serde(
    tag = "event",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub(crate) enum RunEvent<'a> {
    /// Something worth knowing that does not stop the run.
    Warning { message: &'a str },
    /// A registry request failed transiently and is tried again after `delay_ms`.
    Retry {
        what: &'a str,
        attempt: u32,
        attempts: u32,
        delay_ms: u64,
        error: String,
    },
    /// The bundle was verified, and its artifact for this machine loaded.
    Loaded {
        bundle: String,
        digest: String,
        /// The platform of the precompiled artifact; `None` when compiled here (`jit`).
        platform: Option<String>,
        jit: bool,
        /// The key whose signature was verified; `None` with `--insecure-skip-verify`.
        signed_by: Option<String>,
    },
    /// An HTTP handler listens (with port 0, `address` has the port picked).
    Listening { address: String, url: String },
    /// A request was answered; `status` is `None` when the handler failed (500 sent).
    Request {
        id: u64,
        method: &'a str,
        uri: &'a str,
        status: Option<u16>,
        duration_ms: u64,
        error: Option<&'a str>,
    },
    /// The command component ended with `status`, or the server stopped (0).
    Exit { status: u8 },
}

/// One provenance or rebuild attestation in JSON output (`inspect` and `verify`).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JsonAttestation {
    referrer: String,
    layer: String,
    claimed_key: Option<String>,
    /// `true`, `false`, or `null` when no key was given to check it with.
    verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim: Option<provenance::Claim>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<AttestationRejection>,
}

impl JsonAttestation {
    pub(crate) fn new(check: &AttestationCheck, keys_given: bool) -> Self {
        let (verified, claim, reason) = match &check.outcome {
            Ok(claim) => (Some(true), Some(claim.clone()), None),
            Err(AttestationRejection::OtherKey) if !keys_given => (None, None, None),
            Err(r) => (Some(false), None, Some(r.clone())),
        };
        Self {
            referrer: check.referrer.clone(),
            layer: check.layer.clone(),
            claimed_key: check.claimed_key.clone(),
            verified,
            claim,
            reason,
        }
    }
}

/// One native artifact's provenance in JSON output.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JsonProvenance {
    #[serde(flatten)]
    check: ProvenanceCheck,
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    attestations: Vec<JsonAttestation>,
}

impl JsonProvenance {
    pub(crate) fn new(check: &ProvenanceCheck, keys_given: bool) -> Self {
        Self {
            verified: check.verified().is_some(),
            problem: if keys_given { check.problem() } else { None },
            attestations: check
                .referrers
                .iter()
                .map(|r| JsonAttestation::new(r, keys_given))
                .collect(),
            check: check.clone(),
        }
    }
}
