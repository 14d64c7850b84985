//! Which repository a signature is for: its `critical.identity.docker-reference`.
//!
//! A signature by a trusted key says "this digest, for this repository". A host that
//! pulls `registry/team/app-b` and finds an index signed for `registry/team/app-a` has
//! been pointed at another application's bundle (by whoever can write tags in the
//! registry), so such a signature does not count ([`ReferencePolicy`]), unless the user
//! allows that repository ([`ReferencePattern`], `--allow-reference`, for mirrors).
//!
//! Repositories are compared the way docker and containers/image compare them, after
//! normalization ([`normalize_repository`]): the tag and digest are dropped, a name
//! without a registry host is Docker Hub's (`app` is `docker.io/library/app`,
//! `team/app` is `docker.io/team/app`), and `index.docker.io` is `docker.io`. This is
//! containers-policy.json's `matchRepository`; `--allow-reference` plays the part of its
//! `remapIdentity` / `exactRepository`. (`cosign verify` does not look at the field.)
//!
//! A reference without any `/` does not name a repository: it is what pack writes when
//! a layout was signed without `--reference` (the layout directory's name, see
//! [`super::default_reference`]). Such a signature is [`ReferenceMatch::Unbound`]: it
//! is accepted, and the caller says so, since nothing binds it to a repository.

use std::fmt;
use std::str::FromStr;

/// Registry hosts that are Docker Hub.
const DOCKER_HUB_ALIASES: &[&str] = &["index.docker.io", "registry-1.docker.io"];

/// Whether the first `/`-separated component of a name is a registry host (docker's
/// rule: it contains `.` or `:`, or is `localhost`).
fn is_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

/// Drops `@digest` and a `:tag` after the last `/`.
fn strip_tag_and_digest(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    }
}

/// `reference` as `host/path`, the way docker normalizes a repository name; `None` for
/// an empty one. The host is lowercased (hosts are case-insensitive).
pub fn normalize_repository(reference: &str) -> Option<String> {
    let name = strip_tag_and_digest(reference.trim()).trim_matches('/');
    if name.is_empty() {
        return None;
    }
    let (host, path) = match name.split_once('/') {
        Some((first, rest)) if is_host(first) => (first.to_ascii_lowercase(), rest.to_string()),
        Some(_) => ("docker.io".to_string(), name.to_string()),
        None => ("docker.io".to_string(), name.to_string()),
    };
    let host = if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        "docker.io".to_string()
    } else {
        host
    };
    let path = if host == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if path.is_empty() {
        return None;
    }
    Some(format!("{host}/{path}"))
}

/// Whether a signature's `docker-reference` names no repository: it has no `/` (pack's
/// default for a layout signed without `--reference`, the layout directory's name).
pub fn is_unbound(reference: &str) -> bool {
    !strip_tag_and_digest(reference.trim())
        .trim_matches('/')
        .contains('/')
}

/// A pattern of repositories a signature may name besides the one pulled
/// (`--allow-reference`): a repository, normalized like one, whose `/`-separated
/// components may hold `*` (any characters within that one component), and whose last
/// component may be `**` (any one or more components). `**` alone allows any
/// repository.
///
/// `ghcr.io/team/app` allows exactly that repository; `ghcr.io/team/*` any repository
/// directly under `ghcr.io/team`; `ghcr.io/team/**` any under it, at any depth;
/// `*.example.com/app` `app` on any subdomain of `example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencePattern {
    text: String,
    /// The normalized components; empty for `**`, which allows anything.
    components: Vec<String>,
}

impl ReferencePattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the normalized repository `repository` matches.
    pub fn matches(&self, repository: &str) -> bool {
        if self.components.is_empty() {
            return true;
        }
        let parts: Vec<&str> = repository.split('/').collect();
        let last = self.components.len() - 1;
        for (i, pattern) in self.components.iter().enumerate() {
            if i == last && pattern == "**" {
                return parts.len() > i;
            }
            match parts.get(i) {
                Some(part) if glob(pattern, part) => {}
                _ => return false,
            }
        }
        parts.len() == self.components.len()
    }
}

/// `*` matches any run of characters (within one component).
fn glob(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        // No `*`: the whole text must be the pattern.
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl FromStr for ReferencePattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed == "**" {
            return Ok(Self {
                text: text.to_string(),
                components: Vec::new(),
            });
        }
        if trimmed.contains('@') {
            return Err(format!(
                "`{text}`: a pattern names repositories, without a tag or digest"
            ));
        }
        // A leading `*` or `**` component stands for the host.
        let hosty = trimmed
            .split('/')
            .next()
            .is_some_and(|first| first.contains('*'));
        let normalized = if hosty {
            trimmed.to_ascii_lowercase()
        } else {
            normalize_repository(trimmed).ok_or_else(|| format!("`{text}` is empty"))?
        };
        let components: Vec<String> = normalized.split('/').map(str::to_string).collect();
        for (i, c) in components.iter().enumerate() {
            if c.is_empty() {
                return Err(format!("`{text}` has an empty component"));
            }
            if c.contains("**") && (c != "**" || i + 1 != components.len()) {
                return Err(format!(
                    "`{text}`: `**` may only be the whole last component (any suffix)"
                ));
            }
        }
        Ok(Self {
            text: text.to_string(),
            components,
        })
    }
}

impl fmt::Display for ReferencePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How a signature's reference relates to the repository expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceMatch {
    /// It names the expected repository.
    Expected,
    /// It names another repository, which this pattern allows.
    Allowed(String),
    /// It names no repository ([`is_unbound`]).
    Unbound,
}

/// The repository signatures must name: the one a bundle was pulled from (or the one
/// the user gave for a layout), or one of the allowed patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencePolicy {
    expected: String,
    allowed: Vec<ReferencePattern>,
}

impl ReferencePolicy {
    /// Signatures must name `expected` (normalized; a tag or digest is ignored) or match
    /// one of `allowed`. `None` when `expected` is empty.
    pub fn new(expected: &str, allowed: &[ReferencePattern]) -> Option<Self> {
        Some(Self {
            expected: normalize_repository(expected)?,
            allowed: allowed.to_vec(),
        })
    }

    /// The expected repository, normalized.
    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// Checks one signature's `docker-reference`.
    pub fn check(&self, signed: &str) -> Result<ReferenceMatch, super::Rejection> {
        if is_unbound(signed) {
            return Ok(ReferenceMatch::Unbound);
        }
        let other = || super::Rejection::OtherReference {
            signed: signed.to_string(),
            expected: self.expected.clone(),
        };
        let normalized = normalize_repository(signed).ok_or_else(other)?;
        if normalized == self.expected {
            return Ok(ReferenceMatch::Expected);
        }
        match self.allowed.iter().find(|p| p.matches(&normalized)) {
            Some(pattern) => Ok(ReferenceMatch::Allowed(pattern.to_string())),
            None => Err(other()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_normalized_like_docker_does() {
        for (input, expected) in [
            ("app", "docker.io/library/app"),
            ("app:v1", "docker.io/library/app"),
            ("team/app", "docker.io/team/app"),
            ("docker.io/app", "docker.io/library/app"),
            ("index.docker.io/team/app:v1", "docker.io/team/app"),
            (
                "Registry.Example.com/team/app",
                "registry.example.com/team/app",
            ),
            ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app"),
            ("localhost/app@sha256:abcd", "localhost/app"),
            ("localhost:5000/app", "localhost:5000/app"),
        ] {
            assert_eq!(
                normalize_repository(input).as_deref(),
                Some(expected),
                "{input}"
            );
        }
        assert_eq!(normalize_repository(""), None);
        assert!(is_unbound("app"));
        assert!(is_unbound("app:v1"));
        assert!(!is_unbound("team/app"));
        assert!(!is_unbound("127.0.0.1:5000/app"));
    }

    #[test]
    fn patterns_match_components() {
        let p = |s: &str| s.parse::<ReferencePattern>().unwrap();
        assert!(p("ghcr.io/team/app").matches("ghcr.io/team/app"));
        assert!(!p("ghcr.io/team/app").matches("ghcr.io/team/app-b"));
        assert!(p("ghcr.io/team/*").matches("ghcr.io/team/app-b"));
        assert!(!p("ghcr.io/team/*").matches("ghcr.io/team/a/b"));
        assert!(!p("ghcr.io/team/*").matches("ghcr.io/team"));
        assert!(p("ghcr.io/team/**").matches("ghcr.io/team/a/b"));
        assert!(!p("ghcr.io/team/**").matches("ghcr.io/team"));
        assert!(!p("ghcr.io/team/**").matches("ghcr.io/other/a"));
        assert!(p("ghcr.io/team/app-*").matches("ghcr.io/team/app-a"));
        assert!(!p("ghcr.io/team/app-*").matches("ghcr.io/team/web-a"));
        assert!(p("*.example.com/app").matches("eu.example.com/app"));
        assert!(!p("*.example.com/app").matches("example.org/app"));
        assert!(p("app").matches("docker.io/library/app"));
        assert!(p("**").matches("anything/at/all"));
        assert!("ghcr.io/**/app".parse::<ReferencePattern>().is_err());
        assert!(
            "ghcr.io/team/app@sha256:ab"
                .parse::<ReferencePattern>()
                .is_err()
        );
        assert!("ghcr.io//app".parse::<ReferencePattern>().is_err());
    }

    #[test]
    fn the_policy_accepts_the_expected_repository_and_the_allowed_ones() {
        let allowed = ["mirror.example.com/team/*".parse().unwrap()];
        let policy = ReferencePolicy::new("127.0.0.1:5000/team/app-b:v1", &allowed).unwrap();
        assert_eq!(policy.expected(), "127.0.0.1:5000/team/app-b");
        assert_eq!(
            policy.check("127.0.0.1:5000/team/app-b"),
            Ok(ReferenceMatch::Expected)
        );
        assert_eq!(policy.check("app-a"), Ok(ReferenceMatch::Unbound));
        assert!(matches!(
            policy.check("mirror.example.com/team/app-a"),
            Ok(ReferenceMatch::Allowed(_))
        ));
        let err = policy.check("127.0.0.1:5000/team/app-a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "signed for `127.0.0.1:5000/team/app-a`, not for `127.0.0.1:5000/team/app-b`"
        );
    }
}
