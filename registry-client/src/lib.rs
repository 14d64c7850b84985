//! Moving bundles between an OCI image layout and an OCI registry over the distribution
//! API: authentication, retries, blob deduplication and cross-repository mounts.
//!
//! The protocol is spoken by [`oci_client`]; this crate decides what to move and in what
//! order, and adds what a CLI needs around it:
//!
//! - [`auth`]: credentials the docker way (flags, environment, docker config, credential
//!   helpers), and `docker login`-style storing.
//! - [`Registry::connect`]: HTTPS with the platform's roots plus extra CA certificates;
//!   plain HTTP only with `insecure` or for loopback addresses.
//! - [`push`] and [`pull`]: a tag of a layout, its manifests, blobs and signatures, with
//!   the tag written last on both sides; several blobs at once; blobs the other side has
//!   are not moved again.
//! - [`RetryPolicy`]: transient failures (connection errors, 429, 5xx) are retried with
//!   backoff.
//! - [`Reporter`]: progress, for the CLI's bars.
//!
//! Nothing here prints; errors ([`Error`]) name the registry, repository and digest, and
//! never a credential.

pub mod auth;
mod client;
mod error;
mod login;
mod pull;
mod push;
mod reporter;
mod retry;
mod transfer;

pub use auth::{CredentialSource, Credentials, Resolved};
pub use client::{CHUNK_SIZE, ConnectOptions, Registry, Scheme, is_loopback};
pub use error::{Error, ErrorKind, Operation, RegistryMessage, Result};
pub use login::check_credentials;
pub use pull::{PullOptions, pull, verify_remote};
pub use push::{PushOptions, push};
pub use reporter::{Item, NoReporter, Outcome, Reporter};
pub use retry::RetryPolicy;
pub use transfer::{PlatformSpec, TransferSummary};

/// Re-exported: the reference type this crate takes.
pub use oci_client::Reference;

/// Parses a registry reference (`registry/repository[:tag][@digest]`). Returns it and
/// whether a tag was written (a reference without one gets `latest`).
pub fn parse_reference(input: &str) -> Result<(Reference, bool)> {
    let reference: Reference = input.parse().map_err(|e: oci_client::ParseError| {
        Error::InvalidReference {
            input: input.to_string(),
            reason: e.to_string(),
        }
    })?;
    let name = input.split('@').next().unwrap_or(input);
    let last = name.rsplit('/').next().unwrap_or(name);
    let explicit_tag = name.contains('/') && last.contains(':') || !name.contains('/') && name.contains(':');
    Ok((reference, explicit_tag))
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_say_whether_they_have_a_tag() {
        let (r, tagged) = super::parse_reference("127.0.0.1:5000/app").unwrap();
        assert_eq!((r.registry(), r.repository(), tagged), ("127.0.0.1:5000", "app", false));
        let (r, tagged) = super::parse_reference("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!((r.repository(), r.tag(), tagged), ("team/app", Some("v1"), true));
        let (_, tagged) = super::parse_reference("app:v2").unwrap();
        assert!(tagged);
        let digest = format!("localhost:5000/app@sha256:{}", "a".repeat(64));
        let (r, tagged) = super::parse_reference(&digest).unwrap();
        assert!(!tagged && r.digest().is_some());
        let err = super::parse_reference("Not/Valid").unwrap_err();
        assert!(err.to_string().contains("`Not/Valid` is not a registry reference"), "{err}");
    }
}
