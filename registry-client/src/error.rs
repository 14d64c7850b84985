//! The crate's error type. Every variant names the registry, and the repository, digest,
//! tag or file it is about; none carries a credential.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use oci_client::errors::{OciDistributionError, OciEnvelope};

/// A boxed error from the HTTP stack, kept as the `source` of network errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One entry of a registry's error document (`{"errors":[{"code":..,"message":..}]}`,
/// distribution-spec "Error Codes").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegistryMessage {
    /// The registry's code, e.g. `MANIFEST_BLOB_UNKNOWN`, `DENIED`, `UNAUTHORIZED`.
    pub code: String,
    /// The registry's message.
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for RegistryMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{} ({})", self.code, self.message)
        }
    }
}

/// What a failed request was doing, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The registry host (`ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The repository (`team/app`), empty for registry-wide requests.
    pub repository: String,
    /// What was being done, e.g. `push manifest sha256:...` or `check blob sha256:...`.
    pub action: String,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.repository.is_empty() {
            write!(f, "{} {}", self.action, self.registry)
        } else {
            write!(
                f,
                "{} in {}/{}",
                self.action, self.registry, self.repository
            )
        }
    }
}

/// How much of an error response's body is read for its messages.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The broad class of an error: what the CLI maps exit codes and hints from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The registry refused the credentials, or none were given where some are needed.
    Auth,
    /// The registry could not be reached (DNS, connection, TLS, timeouts), or kept failing
    /// with transient errors (429, 5xx) until the retries ran out.
    Network,
    /// A tag, manifest, blob or repository does not exist.
    NotFound,
    /// Content does not match its digest.
    Integrity,
    /// `--key` was given and no signature by those keys covers the pulled digest.
    Unverified,
    /// Anything else (bad input, a layout problem, a registry that rejects the content).
    Other,
}

/// Errors of the registry client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The string is not a registry reference.
    #[error(
        "`{input}` is not a registry reference ({reason}); expected REGISTRY/REPOSITORY[:TAG][@DIGEST]"
    )]
    InvalidReference { input: String, reason: String },

    /// The reference does not fit the command (e.g. a digest where a tag is pushed).
    #[error("`{reference}`: {reason}")]
    UnsupportedReference { reference: String, reason: String },

    /// The registry answered 401, or refused the credentials during the token exchange.
    #[error("{operation}: the registry refused {credentials}{}", status_or_messages(401, .messages))]
    Unauthorized {
        operation: Box<Operation>,
        /// Where the credentials came from (never the credentials themselves).
        credentials: String,
        messages: Vec<RegistryMessage>,
    },

    /// The registry answered 403 / `DENIED`: the credentials are valid but not allowed.
    #[error("{operation}: access denied to {credentials}{}", status_or_messages(403, .messages))]
    Denied {
        operation: Box<Operation>,
        credentials: String,
        messages: Vec<RegistryMessage>,
    },

    /// The registry could not be reached.
    #[error("{operation}: cannot reach the registry over {scheme}")]
    Network {
        operation: Box<Operation>,
        scheme: &'static str,
        /// Whether the failure is in the TLS handshake (certificate not trusted, a server
        /// that does not speak TLS).
        tls: bool,
        #[source]
        source: BoxError,
    },

    /// A transient failure (429, 5xx, reset connection) that did not clear up within the
    /// retries.
    #[error("{operation}: still failing after {attempts} attempts")]
    RetriesExhausted {
        operation: Box<Operation>,
        attempts: u32,
        #[source]
        source: Box<Error>,
    },

    /// The registry answered with an error status.
    #[error("{operation}: the registry answered HTTP {}{}", status_text(*.status), messages_suffix(.messages))]
    Registry {
        operation: Box<Operation>,
        /// The HTTP status, when known.
        status: Option<u16>,
        messages: Vec<RegistryMessage>,
        /// The `Retry-After` delay the registry asked for, when it said one.
        retry_after: Option<Duration>,
    },

    /// A tag, manifest, blob or repository does not exist in the registry.
    #[error("{operation}: not found{}", messages_suffix(.messages))]
    NotFound {
        operation: Box<Operation>,
        messages: Vec<RegistryMessage>,
    },

    /// Downloaded content does not hash to the digest it was asked for by.
    #[error(
        "{operation}: the content does not match its digest: expected {expected}, got {actual}"
    )]
    DigestMismatch {
        operation: Box<Operation>,
        expected: String,
        actual: String,
    },

    /// The registry sent something pack cannot use (not a manifest, a bad digest, ...).
    #[error("{operation}: {reason}")]
    InvalidContent {
        operation: Box<Operation>,
        reason: String,
    },

    /// `--platform` matched nothing in the index.
    #[error(
        "{reference} has no manifest for {}; it has: {}",
        .requested.join(", "),
        if .available.is_empty() { "none".to_string() } else { .available.join(", ") }
    )]
    NoMatchingPlatform {
        reference: String,
        requested: Vec<String>,
        available: Vec<String>,
    },

    /// `--platform` is not `os/arch[/variant]`.
    #[error(
        "`{value}` is not a platform: expected OS/ARCH[/VARIANT], e.g. linux/amd64 or wasip2/wasm"
    )]
    InvalidPlatform { value: String },

    /// No signature by the given keys covers the digest.
    #[error("{reference} ({digest}) has no valid signature by the given keys: {}", .reasons.join("; "))]
    Unverified {
        reference: String,
        digest: String,
        reasons: Vec<String>,
    },

    /// A layout error (reading the bundle to push, writing the pulled one).
    #[error(transparent)]
    Layout(#[from] pack_packager::Error),

    /// A CA certificate file could not be used.
    #[error("cannot use the CA certificate `{path}`: {reason}")]
    CaCertificate { path: PathBuf, reason: String },

    /// The docker config file could not be read or written.
    #[error("cannot use the docker config `{path}`: {reason}")]
    DockerConfig { path: PathBuf, reason: String },

    /// A docker credential helper failed.
    #[error(
        "credential helper `docker-credential-{helper}` failed to {action} credentials for {registry}: {reason}"
    )]
    CredentialHelper {
        helper: String,
        action: &'static str,
        registry: String,
        reason: String,
    },

    /// A local file could not be read.
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The async runtime could not be started.
    #[error("cannot start the network runtime")]
    Runtime(#[source] std::io::Error),
}

fn status_text(status: Option<u16>) -> String {
    status.map_or_else(|| "an error".to_string(), |s| s.to_string())
}

fn status_or_messages(status: u16, messages: &[RegistryMessage]) -> String {
    if messages.is_empty() {
        format!(" (HTTP {status})")
    } else {
        messages_suffix(messages)
    }
}

fn messages_suffix(messages: &[RegistryMessage]) -> String {
    if messages.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = messages.iter().map(ToString::to_string).collect();
        format!(": {}", list.join("; "))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The broad class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unauthorized { .. } | Error::Denied { .. } => ErrorKind::Auth,
            Error::Network { .. } => ErrorKind::Network,
            Error::RetriesExhausted { source, .. } => match source.kind() {
                ErrorKind::Other => ErrorKind::Network,
                kind => kind,
            },
            Error::Registry { status, .. } if status.is_some_and(is_transient_status) => {
                ErrorKind::Network
            }
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::DigestMismatch { .. } => ErrorKind::Integrity,
            Error::Unverified { .. } => ErrorKind::Unverified,
            Error::Layout(
                pack_packager::Error::DigestMismatch { .. }
                | pack_packager::Error::SizeMismatch { .. },
            ) => ErrorKind::Integrity,
            _ => ErrorKind::Other,
        }
    }

    /// Whether trying again may succeed: connection failures, timeouts, 429 and 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            // TLS failures do not fix themselves.
            Error::Network { tls, .. } => !tls,
            Error::Registry {
                status, messages, ..
            } => {
                status.is_some_and(is_transient_status)
                    || messages.iter().any(|m| m.code == "TOOMANYREQUESTS")
            }
            _ => false,
        }
    }

    /// The delay the registry asked for (`Retry-After`), when it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Registry { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The registry's own error codes carried by this error (e.g. `DENIED`).
    pub fn registry_codes(&self) -> Vec<&str> {
        match self {
            Error::Unauthorized { messages, .. }
            | Error::Denied { messages, .. }
            | Error::Registry { messages, .. }
            | Error::NotFound { messages, .. } => {
                messages.iter().map(|m| m.code.as_str()).collect()
            }
            Error::RetriesExhausted { source, .. } => source.registry_codes(),
            _ => Vec::new(),
        }
    }

    /// Whether this is a network error in the TLS handshake.
    pub fn is_tls(&self) -> bool {
        match self {
            Error::Network { tls, .. } => *tls,
            Error::RetriesExhausted { source, .. } => source.is_tls(),
            _ => false,
        }
    }
}

pub(crate) fn is_transient_status(status: u16) -> bool {
    status == 408
        || status == 429
        || (500..=599).contains(&status) && status != 501 && status != 505
}

/// Parses a registry error document; anything else gives no messages.
pub(crate) fn parse_messages(body: &[u8]) -> Vec<RegistryMessage> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<RegistryMessage>,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| e.errors)
        .unwrap_or_default()
}

fn envelope_messages(envelope: &OciEnvelope) -> Vec<RegistryMessage> {
    envelope
        .errors
        .iter()
        .map(|e| RegistryMessage {
            code: serde_json::to_value(&e.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{:?}", e.code)),
            message: e.message.clone(),
        })
        .collect()
}

/// Whether an error (or anything in its source chain) is a TLS failure: an untrusted or
/// invalid certificate, or a server that does not speak TLS. reqwest does not expose
/// rustls' error type, so this reads the messages.
pub(crate) fn is_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string().to_ascii_lowercase();
        if [
            "certificate",
            "tls",
            "handshake",
            "corrupt message",
            "invalidcontenttype",
        ]
        .iter()
        .any(|needle| text.contains(needle))
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Context to turn an oci-client error into an [`Error`].
pub(crate) struct Context<'a> {
    pub operation: Operation,
    pub scheme: &'static str,
    pub credentials: &'a str,
}

impl Context<'_> {
    pub(crate) fn status_error(&self, status: u16, messages: Vec<RegistryMessage>) -> Error {
        let operation = Box::new(self.operation.clone());
        let codes: Vec<&str> = messages.iter().map(|m| m.code.as_str()).collect();
        let not_found_code = codes.iter().any(|c| {
            matches!(
                *c,
                "BLOB_UNKNOWN" | "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "NOT_FOUND"
            )
        });
        match status {
            401 => Error::Unauthorized {
                operation,
                credentials: self.credentials.to_string(),
                messages,
            },
            403 => Error::Denied {
                operation,
                credentials: self.credentials.to_string(),
                messages,
            },
            404 if messages.is_empty() || not_found_code => Error::NotFound {
                operation,
                messages,
            },
            _ => Error::Registry {
                operation,
                status: Some(status),
                messages,
                retry_after: None,
            },
        }
    }

    fn codes_error(&self, messages: Vec<RegistryMessage>) -> Error {
        let has = |code: &str| messages.iter().any(|m| m.code == code);
        if has("UNAUTHORIZED") {
            self.status_error(401, messages)
        } else if has("DENIED") {
            self.status_error(403, messages)
        } else if has("TOOMANYREQUESTS") {
            self.status_error(429, messages)
        } else if [
            "BLOB_UNKNOWN",
            "MANIFEST_UNKNOWN",
            "NAME_UNKNOWN",
            "NOT_FOUND",
        ]
        .iter()
        .any(|c| has(c))
        {
            Error::NotFound {
                operation: Box::new(self.operation.clone()),
                messages,
            }
        } else {
            Error::Registry {
                operation: Box::new(self.operation.clone()),
                status: None,
                messages,
                retry_after: None,
            }
        }
    }

    /// An error for a response with an unexpected status: the registry's codes from the
    /// body, and `Retry-After` (seconds) when it says one.
    pub(crate) async fn response_error(&self, response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Only the start of an error body is read: a registry cannot make pack hold more.
        let mut response = response;
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(ERROR_BODY_LIMIT);
        match self.status_error(status, parse_messages(&body)) {
            Error::Registry {
                operation,
                status,
                messages,
                ..
            } => Error::Registry {
                operation,
                status,
                messages,
                retry_after,
            },
            other => other,
        }
    }

    pub(crate) fn reqwest_error(&self, error: reqwest::Error) -> Error {
        if let Some(status) = error.status() {
            return self.status_error(status.as_u16(), Vec::new());
        }
        self.network_error(error)
    }

    /// `error` as this operation's failure to reach the registry (in the TLS handshake or
    /// not, as its chain of causes tells).
    fn network_error(&self, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Network {
            operation: Box::new(self.operation.clone()),
            scheme: self.scheme,
            tls: is_tls_error(&error),
            source: Box::new(error),
        }
    }

    pub(crate) fn io_error(&self, error: std::io::Error) -> Error {
        // Streams from oci-client wrap both network failures and digest mismatches.
        if error
            .get_ref()
            .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>())
        {
            let inner = error.into_inner().expect("checked above");
            let digest_error = inner
                .downcast::<oci_client::errors::DigestError>()
                .expect("checked above");
            return self.digest_error(*digest_error);
        }
        self.network_error(error)
    }

    fn digest_error(&self, error: oci_client::errors::DigestError) -> Error {
        match error {
            oci_client::errors::DigestError::VerificationError { expected, actual } => {
                Error::DigestMismatch {
                    operation: Box::new(self.operation.clone()),
                    expected,
                    actual,
                }
            }
            other => Error::InvalidContent {
                operation: Box::new(self.operation.clone()),
                reason: other.to_string(),
            },
        }
    }

    /// Maps an oci-client error.
    pub(crate) fn oci(&self, error: OciDistributionError) -> Error {
        use OciDistributionError as E;
        match error {
            E::RequestError(e) => self.reqwest_error(e),
            E::ServerError { code, message, .. } => {
                self.status_error(code, parse_messages(message.as_bytes()))
            }
            E::RegistryError { envelope, .. } => self.codes_error(envelope_messages(&envelope)),
            E::UnauthorizedError { .. } => self.status_error(401, Vec::new()),
            E::AuthenticationFailure(body) => Error::Unauthorized {
                operation: Box::new(self.operation.clone()),
                credentials: self.credentials.to_string(),
                messages: parse_messages(body.as_bytes()),
            },
            E::DigestError(e) => self.digest_error(e),
            E::IoError(e) => self.io_error(e),
            other => Error::InvalidContent {
                operation: Box::new(self.operation.clone()),
                reason: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            operation: Operation {
                registry: "r.example".into(),
                repository: "app".into(),
                action: "push manifest sha256:abc".into(),
            },
            scheme: "https",
            credentials: "credentials from --username",
        }
    }

    #[test]
    fn registry_codes_are_named() {
        let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:1"}]}"#;
        let err = ctx().oci(OciDistributionError::ServerError {
            code: 400,
            url: "https://r.example/v2/app/manifests/v1".into(),
            message: String::from_utf8_lossy(body).into_owned(),
        });
        assert_eq!(
            err.to_string(),
            "push manifest sha256:abc in r.example/app: the registry answered HTTP 400: \
             MANIFEST_BLOB_UNKNOWN (blob unknown to registry)"
        );
        assert_eq!(err.kind(), ErrorKind::Other);
        assert_eq!(err.registry_codes(), ["MANIFEST_BLOB_UNKNOWN"]);
        assert!(!err.is_transient());
    }

    #[test]
    fn auth_statuses_are_auth_errors() {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        let err = ctx().oci(OciDistributionError::ServerError {
            code: 401,
            url: String::new(),
            message: body.into(),
        });
        assert_eq!(err.kind(), ErrorKind::Auth);
        assert!(
            err.to_string()
                .contains("refused credentials from --username"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("UNAUTHORIZED (authentication required)"),
            "{err}"
        );
        let err = ctx().status_error(403, vec![]);
        assert_eq!(err.kind(), ErrorKind::Auth);
    }

    #[test]
    fn transient_statuses_are_retried() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                ctx().status_error(status, vec![]).is_transient(),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 501] {
            assert!(
                !ctx().status_error(status, vec![]).is_transient(),
                "{status}"
            );
        }
        let err = ctx().codes_error(vec![RegistryMessage {
            code: "TOOMANYREQUESTS".into(),
            message: String::new(),
        }]);
        assert!(err.is_transient());
    }

    #[test]
    fn not_found_needs_a_not_found_code_or_no_body() {
        assert_eq!(ctx().status_error(404, vec![]).kind(), ErrorKind::NotFound);
        let messages = parse_messages(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        );
        assert_eq!(
            ctx().status_error(404, messages).kind(),
            ErrorKind::NotFound
        );
        assert!(parse_messages(b"not json").is_empty());
    }
}
