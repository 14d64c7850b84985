//! JSON objects that several commands print (docs/json.md describes each).

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
