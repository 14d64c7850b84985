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
mod referrers;
mod reporter;
mod retry;
mod transfer;

pub use auth::{CredentialSource, Credentials, Resolved};
pub use client::{CHUNK_SIZE, ConnectOptions, Registry, Scheme, is_loopback};
pub use error::{Error, ErrorKind, Operation, RegistryMessage, Result};
pub use login::check_credentials;
pub use pull::{Layers, PullOptions, fetch_blobs, pull, verify_remote};
pub use push::{PushOptions, push};
pub use referrers::{Referrers, ReferrersSource};
pub use reporter::{Item, NoReporter, Outcome, Reporter};
pub use retry::RetryPolicy;
pub use transfer::{PlatformSpec, TransferSummary};

/// Re-exported: the reference type this crate takes.
pub use oci_client::Reference;

/// Parses a registry reference (`registry/repository[:tag][@digest]`, docker's grammar;
/// a name without a registry is Docker Hub's, `app` being `docker.io/library/app`).
/// Returns it and whether a tag was written (a reference without one gets `latest`).
pub fn parse_reference(input: &str) -> Result<(Reference, bool)> {
    // oci-spec's parser compiles a large regex (tens of milliseconds); this one is the
    // same grammar, checked by hand.
    let invalid = |reason: &str| Error::InvalidReference {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let (name_tag, digest) = match input.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (input, None),
    };
    if let Some(d) = digest {
        let (algorithm, hex) = d.split_once(':').ok_or_else(|| invalid("invalid digest"))?;
        let ok_alg = !algorithm.is_empty()
            && algorithm
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        if !ok_alg || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid("invalid digest"));
        }
    }
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(t) = tag
        && !pack_packager::reference::is_valid_tag(t)
    {
        return Err(invalid("invalid tag"));
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ if !name.contains('/') => ("docker.io".to_string(), format!("library/{name}")),
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if registry.is_empty()
        || !registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return Err(invalid("invalid registry host"));
    }
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(&x))
    };
    if path.split('/').any(|c| !component_ok(c)) {
        return Err(invalid(if path.chars().any(|c| c.is_ascii_uppercase()) {
            "repository name must be lowercase"
        } else {
            "invalid repository name"
        }));
    }
    if registry.len() + 1 + path.len() > 255 {
        return Err(invalid("repository name is longer than 255 characters"));
    }
    let reference = match (tag, digest) {
        (Some(t), Some(d)) => {
            Reference::with_tag_and_digest(registry, path, t.to_string(), d.to_string())
        }
        (None, Some(d)) => Reference::with_digest(registry, path, d.to_string()),
        (Some(t), None) => Reference::with_tag(registry, path, t.to_string()),
        (None, None) => Reference::with_tag(registry, path, "latest".to_string()),
    };
    Ok((reference, tag.is_some()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_say_whether_they_have_a_tag() {
        let (r, tagged) = super::parse_reference("127.0.0.1:5000/app").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), tagged),
            ("127.0.0.1:5000", "app", false)
        );
        let (r, tagged) = super::parse_reference("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(
            (r.repository(), r.tag(), tagged),
            ("team/app", Some("v1"), true)
        );
        let (_, tagged) = super::parse_reference("app:v2").unwrap();
        assert!(tagged);
        let digest = format!("localhost:5000/app@sha256:{}", "a".repeat(64));
        let (r, tagged) = super::parse_reference(&digest).unwrap();
        assert!(!tagged && r.digest().is_some());
        let err = super::parse_reference("Not/Valid").unwrap_err();
        assert!(
            err.to_string()
                .contains("`Not/Valid` is not a registry reference"),
            "{err}"
        );
        let (r, _) = super::parse_reference("app").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("docker.io", "library/app", Some("latest"))
        );
        let (r, _) = super::parse_reference("localhost/a/b:c").unwrap();
        assert_eq!((r.registry(), r.repository()), ("localhost", "a/b"));
        let (r, _) = super::parse_reference("ghcr.io/org/app").unwrap();
        assert_eq!((r.registry(), r.repository()), ("ghcr.io", "org/app"));
        for bad in [
            "",
            "a//b",
            "r.io/-a",
            "r.io/a:",
            "r.io/a:.x",
            "r.io/a@sha256:xyz",
            "r.io/a@md5",
        ] {
            assert!(super::parse_reference(bad).is_err(), "{bad}");
        }
        // Same answers as oci-spec's parser.
        for ok in [
            "127.0.0.1:5000/team/app:v1",
            "app:v2",
            "docker.io/library/x",
            "a.b/c_d/e.f-g:1.0",
        ] {
            let ours = super::parse_reference(ok).unwrap().0;
            let theirs: super::Reference = ok.parse().unwrap();
            assert_eq!(ours, theirs, "{ok}");
        }
    }
}
