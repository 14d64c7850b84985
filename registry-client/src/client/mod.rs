//! A connection to one registry: TLS and scheme, credentials, and the distribution-API
//! requests push and pull are made of, each mapped to a typed [`Error`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use reqwest::header::HeaderValue;

use crate::auth::{CredentialSource, Credentials, Resolved};
use crate::error::{Context, Operation};
use crate::{Error, Reporter, Result, RetryPolicy};

mod download;
mod probe;
mod tls;
mod upload;

use probe::probe_scheme;
use tls::load_certificates;
#[cfg(test)]
use tls::pem_certificates;

/// Blobs larger than this are uploaded in `PATCH` chunks of this size; smaller ones in a
/// single `PUT`.
pub const CHUNK_SIZE: usize = 32 * 1024 * 1024;

/// How to reach a registry.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Allow plain HTTP, and do not verify the certificate when HTTPS is used.
    pub insecure: bool,
    /// PEM files with CA certificates to trust besides the platform's roots.
    pub ca_certificates: Vec<PathBuf>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Timeout for each read from a connection (a stalled transfer).
    pub read_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            insecure: false,
            ca_certificates: Vec::new(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// How pack talks to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// HTTPS (the default).
    Https,
    /// Plain HTTP: only with `--insecure`, or for a loopback address that does not speak
    /// TLS.
    Http,
}

impl Scheme {
    /// `https` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// Whether `host` (`name[:port]`, `[v6]:port`) is a loopback address, where docker allows
/// plain HTTP.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() > 1 {
        host
    } else {
        host.split(':').next().unwrap_or(host)
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A connection to one registry.
pub struct Registry {
    client: Client,
    /// As written in references (`docker.io`, `127.0.0.1:5000`).
    registry: String,
    /// What requests go to (`index.docker.io` for Docker Hub).
    host: String,
    scheme: Scheme,
    credentials: CredentialSource,
    credentials_text: String,
    /// Kept for blob uploads, which pack sends itself (see [`Registry::push_blob_file`]).
    basic: Option<Credentials>,
    auth: RegistryAuth,
    retry: RetryPolicy,
    /// The HTTP client for uploads, built on first use with the same TLS settings.
    uploads: tokio::sync::OnceCell<reqwest::Client>,
    certs: Vec<Vec<u8>>,
    insecure: bool,
    timeouts: (Duration, Duration),
    /// The `Authorization` header for pushes and pulls, per repository.
    auth_headers: tokio::sync::Mutex<
        std::collections::BTreeMap<(String, RegistryOperation), Option<HeaderValue>>,
    >,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("registry", &self.registry)
            .field("scheme", &self.scheme)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Connects to the registry `reference` names, with `credentials`.
    ///
    /// HTTPS is used, trusting the platform's roots and `ca_certificates`. For a loopback
    /// address, or with `insecure`, a registry that does not answer over HTTPS is tried
    /// over plain HTTP, as docker does; `insecure` also accepts any certificate.
    pub async fn connect(
        reference: &Reference,
        credentials: Resolved,
        options: &ConnectOptions,
    ) -> Result<Self> {
        let registry = reference.registry().to_string();
        let host = reference.resolve_registry().to_string();
        let certs = load_certificates(&options.ca_certificates)?;
        let credentials_text = credentials.source.to_string();
        let scheme = if options.insecure || is_loopback(&host) {
            probe_scheme(&registry, &host, options).await?
        } else {
            Scheme::Https
        };
        let config = ClientConfig {
            protocol: match scheme {
                Scheme::Https => ClientProtocol::Https,
                Scheme::Http => ClientProtocol::HttpsExcept(vec![host.clone()]),
            },
            accept_invalid_certificates: options.insecure,
            extra_root_certificates: certs
                .iter()
                .map(|data| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: data.clone(),
                })
                .collect(),
            platform_resolver: None,
            connect_timeout: Some(options.connect_timeout),
            read_timeout: Some(options.read_timeout),
            user_agent: concat!("pack/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let operation = Operation {
            registry: registry.clone(),
            repository: String::new(),
            action: "set up a client for".to_string(),
        };
        let client = Client::try_from(config).map_err(|e| {
            Context {
                operation,
                scheme: scheme.as_str(),
                credentials: &credentials_text,
            }
            .oci(e)
        })?;
        let auth = credentials.registry_auth();
        client.store_auth_if_needed(&host, &auth).await;
        let connected = Self {
            client,
            registry,
            host,
            scheme,
            basic: credentials.credentials,
            credentials: credentials.source,
            credentials_text,
            auth,
            retry: options.retry,
            uploads: tokio::sync::OnceCell::new(),
            certs,
            insecure: options.insecure,
            timeouts: (options.connect_timeout, options.read_timeout),
            auth_headers: Default::default(),
        };
        if connected.basic.is_some() && !connected.insecure {
            connected.refuse_plain_http_realm().await?;
        }
        Ok(connected)
    }

    /// The registry's URL for `path`, which starts with `/` (`/v2/...`).
    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme.as_str(), self.host)
    }

    /// oci-client answers a Bearer challenge with a token request to the realm carrying
    /// the credentials, wherever the realm is. One on plain HTTP on a host that is not
    /// loopback would have them cross the network in clear: asked before anything else
    /// (`GET /v2/` without credentials), such a registry is refused. A failure here is
    /// left to the requests that follow to report.
    async fn refuse_plain_http_realm(&self) -> Result<()> {
        let url = self.url("/v2/");
        let Ok(response) = self.upload_client()?.get(&url).send().await else {
            return Ok(());
        };
        let realm = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::login::bearer_realm);
        match realm.and_then(|r| crate::login::plain_http_realm(&r, self.insecure)) {
            Some(reason) => Err(Error::InvalidContent {
                operation: Box::new(self.context("", "authenticate with".to_string()).operation),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// The registry as written in references.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// HTTPS or plain HTTP.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Where the credentials came from.
    pub fn credential_source(&self) -> &CredentialSource {
        &self.credentials
    }

    pub(crate) fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    fn by_tag(&self, repository: &str, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            repository.to_string(),
            tag.to_string(),
        )
    }

    fn by_digest(&self, repository: &str, digest: &str) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            repository.to_string(),
            digest.to_string(),
        )
    }

    /// A reference by tag or by digest (`sha256:...`).
    fn by_ref(&self, repository: &str, reference: &str) -> Reference {
        if reference.contains(':') {
            self.by_digest(repository, reference)
        } else {
            self.by_tag(repository, reference)
        }
    }

    pub(crate) fn context(&self, repository: &str, action: String) -> Context<'_> {
        Context {
            operation: Operation {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                action,
            },
            scheme: self.scheme.as_str(),
            credentials: &self.credentials_text,
        }
    }

    fn upload_client(&self) -> Result<&reqwest::Client> {
        if let Some(client) = self.uploads.get() {
            return Ok(client);
        }
        let mut roots = Vec::new();
        for pem in &self.certs {
            roots.push(reqwest::Certificate::from_pem(pem).expect("checked when loaded"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(self.timeouts.0)
            .read_timeout(self.timeouts.1)
            .danger_accept_invalid_certs(self.insecure)
            .tls_certs_merge(roots)
            .user_agent(concat!("pack/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                self.context("", "set up a client for".to_string())
                    .reqwest_error(e)
            })?;
        let _ = self.uploads.set(client);
        Ok(self.uploads.get().expect("just set"))
    }

    /// The `Authorization` header for `operation` on `repository`: a Bearer token from
    /// oci-client's token exchange when the registry asks for one, else the basic
    /// credentials (if any). Cached per repository and operation; `refresh` asks again.
    async fn authorization(
        &self,
        repository: &str,
        operation: RegistryOperation,
        refresh: bool,
    ) -> Result<Option<HeaderValue>> {
        let mut cache = self.auth_headers.lock().await;
        let key = (repository.to_string(), operation);
        if !refresh && let Some(found) = cache.get(&key) {
            return Ok(found.clone());
        }
        let action = match operation {
            RegistryOperation::Push => "authenticate for push",
            RegistryOperation::Pull => "authenticate for pull",
        };
        let ctx = self.context(repository, action.to_string());
        let token = self
            .client
            .auth(&self.by_tag(repository, "latest"), &self.auth, operation)
            .await
            .map_err(|e| ctx.oci(e))?;
        let header = match (token, &self.basic) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, Some(basic)) => {
                use base64::Engine as _;
                let pair =
                    zeroize::Zeroizing::new(format!("{}:{}", basic.username(), basic.password()));
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
                ))
            }
            (None, None) => None,
        };
        let header = header
            .map(|h| {
                let mut value = HeaderValue::from_str(&h).map_err(|_| Error::InvalidContent {
                    operation: Box::new(ctx.operation.clone()),
                    reason: "the credentials cannot be sent in an HTTP header".to_string(),
                })?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        cache.insert(key, header.clone());
        Ok(header)
    }
}

/// Runs `f` with retries, reporting them.
pub(crate) async fn with_retry<T, F, Fut>(
    registry: &Registry,
    what: &str,
    reporter: &dyn Reporter,
    f: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    registry.retry().run(what, reporter, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "ghcr.io",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn pem_bundles_are_split() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        let text = format!("junk\n{one}\n\n{one}\n");
        assert_eq!(pem_certificates(&text).len(), 2);
        assert!(pem_certificates("nothing").is_empty());
    }
}
