//! Checking credentials against a registry, as `docker login` does before storing them:
//! `GET /v2/` with them, or, when the registry answers with a Bearer challenge, a token
//! request to its realm with them.

use std::time::Duration;

use crate::auth::{CredentialSource, Credentials};
use crate::client::{ConnectOptions, Scheme, is_loopback};
use crate::error::{Context, Operation, parse_messages};
use crate::{Error, Result};

/// Checks that `registry` (a host, `ghcr.io` or `127.0.0.1:5000`) accepts `credentials`.
/// Returns the scheme it was reached over.
pub async fn check_credentials(
    registry: &str,
    credentials: &Credentials,
    options: &ConnectOptions,
) -> Result<Scheme> {
    let host = if crate::auth::config_key(registry) == crate::auth::DOCKER_HUB_KEY {
        "index.docker.io"
    } else {
        registry
    };
    let mut roots = Vec::new();
    for path in &options.ca_certificates {
        let text = std::fs::read(path).map_err(|e| Error::CaCertificate {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&text).map_err(|e| Error::CaCertificate {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(Error::CaCertificate {
                path: path.clone(),
                reason: "it has no `-----BEGIN CERTIFICATE-----` block".to_string(),
            });
        }
        roots.extend(certs);
    }
    let client = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(Duration::from_secs(60))
        .danger_accept_invalid_certs(options.insecure)
        .tls_certs_merge(roots)
        .user_agent(concat!("pack/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| network(registry, "https", e))?;
    let source = CredentialSource::CommandLine.to_string();
    let context = |scheme: Scheme| Context {
        operation: Operation {
            registry: registry.to_string(),
            repository: String::new(),
            action: "log in to".to_string(),
        },
        scheme: scheme.as_str(),
        credentials: &source,
    };
    let mut scheme = Scheme::Https;
    let mut response = client
        .get(format!("https://{host}/v2/"))
        .basic_auth(credentials.username(), Some(credentials.password()))
        .send()
        .await;
    if response.is_err() && (options.insecure || is_loopback(host)) {
        let plain = client
            .get(format!("http://{host}/v2/"))
            .basic_auth(credentials.username(), Some(credentials.password()))
            .send()
            .await;
        if let Ok(r) = &plain
            && matches!(r.status().as_u16(), 200 | 401)
        {
            scheme = Scheme::Http;
            response = plain;
        }
    }
    let response = response.map_err(|e| context(scheme).reqwest_error(e))?;
    let status = response.status().as_u16();
    if status == 200 {
        return Ok(scheme);
    }
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.bytes().await.unwrap_or_default();
    if status != 401 {
        return Err(context(scheme).status_error(status, parse_messages(&body)));
    }
    let Some(bearer) = challenge.as_deref().and_then(parse_bearer) else {
        // Basic: the registry refused the credentials.
        return Err(context(scheme).status_error(401, parse_messages(&body)));
    };
    if let Some(reason) = plain_http_realm(&bearer.realm, options.insecure) {
        return Err(Error::InvalidContent {
            operation: Box::new(context(scheme).operation),
            reason,
        });
    }
    let mut request = client
        .get(&bearer.realm)
        .basic_auth(credentials.username(), Some(credentials.password()));
    let mut query = vec![("account", credentials.username().to_string())];
    if let Some(service) = &bearer.service {
        query.push(("service", service.clone()));
    }
    request = request.query(&query);
    let token = request
        .send()
        .await
        .map_err(|e| context(scheme).reqwest_error(e))?;
    let status = token.status().as_u16();
    if status == 200 {
        return Ok(scheme);
    }
    let body = token.bytes().await.unwrap_or_default();
    Err(context(scheme).status_error(if status == 403 { 403 } else { 401 }, parse_messages(&body)))
}

fn network(registry: &str, scheme: &'static str, e: reqwest::Error) -> Error {
    Error::Network {
        operation: Box::new(Operation {
            registry: registry.to_string(),
            repository: String::new(),
            action: "log in to".to_string(),
        }),
        scheme,
        tls: crate::error::is_tls_error(&e),
        source: Box::new(e),
    }
}

/// Why credentials are not sent to the token realm `realm`: it is plain HTTP on a host
/// that is not loopback (the credentials would cross the network in clear), and
/// `insecure` does not allow it. `None` when they may be sent.
pub(crate) fn plain_http_realm(realm: &str, insecure: bool) -> Option<String> {
    let url = reqwest::Url::parse(realm).ok()?;
    let host = url.host_str()?;
    if insecure || url.scheme() != "http" || is_loopback(host) {
        return None;
    }
    Some(format!(
        "the registry's token realm `{realm}` is plain HTTP on another host; the credentials \
         are not sent there in clear (pass --insecure to allow it)"
    ))
}

/// The realm of a `WWW-Authenticate: Bearer` challenge.
pub(crate) fn bearer_realm(header: &str) -> Option<String> {
    parse_bearer(header).map(|b| b.realm)
}

#[derive(Debug, PartialEq, Eq)]
struct Bearer {
    realm: String,
    service: Option<String>,
}

/// `Bearer realm="...",service="..."`.
fn parse_bearer(header: &str) -> Option<Bearer> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut s = params.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            _ => {}
        }
        s = next.trim_start_matches(',').trim();
    }
    Some(Bearer {
        realm: realm?,
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse() {
        assert_eq!(
            parse_bearer(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#
            ),
            Some(Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(parse_bearer(r#"Basic realm="Registry Realm""#), None);
        assert!(plain_http_realm("http://auth.example/token", false).is_some());
        for ok in [
            "https://auth.example/token",
            "http://127.0.0.1:5000/token",
            "http://[::1]:5000/token",
            "http://localhost/token",
        ] {
            assert_eq!(plain_http_realm(ok, false), None, "{ok}");
        }
        assert_eq!(plain_http_realm("http://auth.example/token", true), None);
        assert_eq!(parse_bearer("Bearer service=x"), None);
    }
}
