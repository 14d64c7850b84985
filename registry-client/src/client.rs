//! A connection to one registry: TLS and scheme, credentials, and the distribution-API
//! requests push and pull are made of, each mapped to a typed [`Error`].

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oci_spec::image::{Descriptor, Digest};
use pack_packager::Layout;
use pack_packager::limits::MAX_DOCUMENT_BYTES;
use reqwest::header::HeaderValue;
use tokio::io::AsyncReadExt;

use crate::auth::{CredentialSource, Credentials, Resolved};
use crate::error::{Context, Operation};
use crate::{Error, Reporter, Result, RetryPolicy};

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

fn load_certificates(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
    let mut certs = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| Error::CaCertificate {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let blocks = pem_certificates(&text);
        if blocks.is_empty() {
            return Err(Error::CaCertificate {
                path: path.clone(),
                reason: "it has no `-----BEGIN CERTIFICATE-----` block".to_string(),
            });
        }
        for block in blocks {
            reqwest::Certificate::from_pem(block.as_bytes()).map_err(|e| Error::CaCertificate {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            certs.push(block.into_bytes());
        }
    }
    Ok(certs)
}

/// The PEM certificate blocks of a file, one per certificate (oci-client reads one
/// certificate per entry).
fn pem_certificates(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        blocks.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    blocks
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

    /// oci-client answers a Bearer challenge with a token request to the realm carrying
    /// the credentials, wherever the realm is. One on plain HTTP on a host that is not
    /// loopback would have them cross the network in clear: asked before anything else
    /// (`GET /v2/` without credentials), such a registry is refused. A failure here is
    /// left to the requests that follow to report.
    async fn refuse_plain_http_realm(&self) -> Result<()> {
        let url = format!("{}://{}/v2/", self.scheme.as_str(), self.host);
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

    /// `HEAD /v2/<repo>/blobs/<digest>`.
    pub(crate) async fn blob_exists(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let ctx = self.context(repository, format!("check blob {digest}"));
        self.client
            .blob_exists(&self.by_tag(repository, "latest"), digest.as_ref())
            .await
            .map_err(|e| ctx.oci(e))
    }

    /// `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from>`: `false` when the
    /// registry did not mount it (it does not have it there, or does not mount).
    pub(crate) async fn mount_blob(
        &self,
        repository: &str,
        from: &str,
        digest: &Digest,
    ) -> Result<bool> {
        let ctx = self.context(repository, format!("mount blob {digest} from {from}"));
        match self
            .client
            .mount_blob(
                &self.by_tag(repository, "latest"),
                &self.by_tag(from, "latest"),
                digest.as_ref(),
            )
            .await
        {
            Ok(()) => Ok(true),
            // 202 Accepted: the registry opened an upload instead of mounting.
            Err(oci_client::errors::OciDistributionError::SpecViolationError(_)) => Ok(false),
            Err(e) => match ctx.oci(e) {
                Error::NotFound { .. } => Ok(false),
                other => Err(other),
            },
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

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}://{}{location}", self.scheme.as_str(), self.host)
        } else {
            location.to_string()
        }
    }

    /// Sends a request of an upload and checks its status; returns the response.
    async fn upload_request(
        &self,
        ctx: &Context<'_>,
        request: reqwest::RequestBuilder,
        authorization: &Option<HeaderValue>,
        expected: u16,
    ) -> Result<reqwest::Response> {
        let request = match authorization {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value.clone()),
            None => request,
        };
        let response = request.send().await.map_err(|e| ctx.reqwest_error(e))?;
        if response.status().as_u16() == expected {
            return Ok(response);
        }
        Err(ctx.response_error(response).await)
    }

    fn location(&self, ctx: &Context<'_>, response: &reqwest::Response) -> Result<String> {
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.absolute(l))
            .ok_or_else(|| Error::InvalidContent {
                operation: Box::new(ctx.operation.clone()),
                reason: "the registry did not say where to upload (no Location header)".to_string(),
            })
    }

    /// Uploads the file at `path` as blob `digest` (`size` bytes), calling `progress` with
    /// the bytes sent so far.
    ///
    /// oci-client's uploads send fixed 4 MiB chunks, each a request, from memory; pack
    /// streams the file instead: `POST` to open the upload, then one `PUT ?digest=` with
    /// the whole blob when it is at most [`CHUNK_SIZE`], else `PATCH`es of [`CHUNK_SIZE`]
    /// and a final `PUT`. The registry checks the digest. The credentials are oci-client's
    /// (its token exchange).
    pub(crate) async fn push_blob_file(
        &self,
        repository: &str,
        path: &Path,
        digest: &Digest,
        size: u64,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let ctx = self.context(repository, format!("upload blob {digest}"));
        let client = self.upload_client()?;
        let mut refreshed = false;
        loop {
            let authorization = self
                .authorization(repository, RegistryOperation::Push, refreshed)
                .await?;
            match self
                .upload_once(
                    &ctx,
                    client,
                    &authorization,
                    repository,
                    path,
                    digest,
                    size,
                    progress,
                )
                .await
            {
                // A token that expired: ask for a new one, once.
                Err(Error::Unauthorized { .. }) if !refreshed && authorization.is_some() => {
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_once(
        &self,
        ctx: &Context<'_>,
        client: &reqwest::Client,
        authorization: &Option<HeaderValue>,
        repository: &str,
        path: &Path,
        digest: &Digest,
        size: u64,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let start = format!(
            "{}://{}/v2/{repository}/blobs/uploads/",
            self.scheme.as_str(),
            self.host
        );
        let response = self
            .upload_request(
                ctx,
                client
                    .post(&start)
                    .header(reqwest::header::CONTENT_LENGTH, 0),
                authorization,
                202,
            )
            .await?;
        let mut location = self.location(ctx, &response)?;
        let chunk = CHUNK_SIZE as u64;
        let mut offset = 0u64;
        if size > chunk {
            while offset < size {
                let len = chunk.min(size - offset);
                let (body, taken) = file_body(path, offset, len).await?;
                let request = self.upload_request(
                    ctx,
                    client
                        .patch(&location)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .header(reqwest::header::CONTENT_LENGTH, len)
                        .header(
                            reqwest::header::CONTENT_RANGE,
                            format!("{}-{}", offset, offset + len - 1),
                        )
                        .body(body),
                    authorization,
                    202,
                );
                let response = with_progress(request, taken, offset, progress).await?;
                location = self.location(ctx, &response)?;
                offset += len;
            }
        }
        let mut url = reqwest::Url::parse(&location).map_err(|e| Error::InvalidContent {
            operation: Box::new(ctx.operation.clone()),
            reason: format!("the registry's upload location `{location}` is not a URL: {e}"),
        })?;
        url.query_pairs_mut().append_pair("digest", digest.as_ref());
        let len = size - offset;
        let request = client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len);
        if len == 0 {
            self.upload_request(ctx, request, authorization, 201)
                .await?;
            return Ok(());
        }
        let (body, taken) = file_body(path, offset, len).await?;
        let request = self.upload_request(ctx, request.body(body), authorization, 201);
        with_progress(request, taken, offset, progress).await?;
        Ok(())
    }

    /// The digest of the manifest `reference` (tag or digest) names, `None` when the
    /// registry does not have it (`HEAD /v2/<repo>/manifests/<reference>`).
    pub(crate) async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Digest>> {
        let ctx = self.context(repository, format!("check manifest {reference}"));
        match self
            .client
            .fetch_manifest_digest(
                &self.by_ref(repository, reference),
                &RegistryAuth::Anonymous,
            )
            .await
        {
            Ok(found) => Ok(found.parse().ok()),
            Err(e) => match ctx.oci(e) {
                Error::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the exact bytes.
    pub(crate) async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<()> {
        let ctx = self.context(repository, format!("push manifest {reference}"));
        let content_type =
            HeaderValue::from_str(media_type).map_err(|_| Error::InvalidContent {
                operation: Box::new(ctx.operation.clone()),
                reason: format!("`{media_type}` is not a valid media type"),
            })?;
        self.client
            .push_manifest_raw(&self.by_ref(repository, reference), bytes, content_type)
            .await
            .map(|_| ())
            .map_err(|e| ctx.oci(e))
    }

    /// `GET /v2/<repo>/manifests/<reference>`: the exact bytes and their sha256 digest
    /// (checked against the reference when it is a digest, and against
    /// `Docker-Content-Digest` when that is a sha256 digest).
    ///
    /// A manifest larger than [`MAX_DOCUMENT_BYTES`] is refused: by its `Content-Length`
    /// before the body is read, and otherwise as soon as more than that has arrived, so a
    /// registry cannot make pack hold more than the limit in memory.
    pub(crate) async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[&str],
    ) -> Result<(Bytes, Digest)> {
        let ctx = self.context(repository, format!("fetch manifest {reference}"));
        let expected = if reference.contains(':') {
            let digest: Digest = reference.parse().map_err(|e| Error::InvalidContent {
                operation: Box::new(ctx.operation.clone()),
                reason: format!("`{reference}` is not a digest: {e}"),
            })?;
            if *digest.algorithm() != oci_spec::image::DigestAlgorithm::Sha256 {
                return Err(Error::InvalidContent {
                    operation: Box::new(ctx.operation.clone()),
                    reason: format!(
                        "the digest algorithm `{}` is not one pack verifies (only sha256)",
                        digest.algorithm()
                    ),
                });
            }
            Some(digest)
        } else {
            None
        };
        let url = format!(
            "{}://{}/v2/{repository}/manifests/{reference}",
            self.scheme.as_str(),
            self.host
        );
        let response = self
            .authorized_get(&ctx, repository, &url, &accept.join(", "))
            .await?;
        if !response.status().is_success() {
            return Err(ctx.response_error(response).await);
        }
        let header = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let bytes = read_limited(&ctx, response, MAX_DOCUMENT_BYTES, "manifest").await?;
        let actual = pack_packager::layout::sha256(&bytes);
        let claimed = expected
            .or(header.filter(|d| *d.algorithm() == oci_spec::image::DigestAlgorithm::Sha256));
        if let Some(claimed) = claimed
            && claimed != actual
        {
            return Err(Error::DigestMismatch {
                operation: Box::new(ctx.operation.clone()),
                expected: claimed.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok((bytes, actual))
    }

    /// `GET url` with pull credentials for `repository` and `Accept: accept`; a 401 (a
    /// token that expired) fetches a new token and asks once more. Any status is
    /// returned.
    async fn authorized_get(
        &self,
        ctx: &Context<'_>,
        repository: &str,
        url: &str,
        accept: &str,
    ) -> Result<reqwest::Response> {
        let client = self.upload_client()?;
        let mut refreshed = false;
        loop {
            let authorization = self
                .authorization(repository, RegistryOperation::Pull, refreshed)
                .await?;
            let mut request = client.get(url).header(reqwest::header::ACCEPT, accept);
            if let Some(value) = authorization {
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(|e| ctx.reqwest_error(e))?;
            if response.status().as_u16() == 401 && !refreshed {
                refreshed = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// `GET /v2/<repo>/referrers/<digest>`: the image index of the referrers of
    /// `digest` when the registry has the referrers API, `None` when it answers 404 (no
    /// such API: distribution-spec 1.1 says clients then use the referrers tag schema).
    /// At most [`MAX_DOCUMENT_BYTES`] are read.
    pub(crate) async fn get_referrers(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<Bytes>> {
        let ctx = self.context(repository, format!("list referrers of {digest}"));
        let url = format!(
            "{}://{}/v2/{repository}/referrers/{digest}",
            self.scheme.as_str(),
            self.host
        );
        let response = self
            .authorized_get(
                &ctx,
                repository,
                &url,
                "application/vnd.oci.image.index.v1+json",
            )
            .await?;
        match response.status().as_u16() {
            404 | 405 => return Ok(None),
            200..=299 => {}
            _ => return Err(ctx.response_error(response).await),
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = read_limited(&ctx, response, MAX_DOCUMENT_BYTES, "referrers index").await?;
        // A registry without the API may route the path elsewhere (an HTML page, a
        // JSON error with 200): only an image index counts as an answer.
        if !content_type.starts_with("application/vnd.oci.image.index.v1+json")
            && crate::transfer::document_media_type(&bytes).as_deref()
                != Some("application/vnd.oci.image.index.v1+json")
        {
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Fetches a small blob (a signature payload) into memory, verified: refused when its
    /// descriptor says more than [`MAX_DOCUMENT_BYTES`], and as soon as the registry
    /// sends more than the descriptor says.
    pub(crate) async fn get_blob(
        &self,
        repository: &str,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>> {
        let digest = descriptor.digest().to_string();
        let ctx = self.context(repository, format!("fetch blob {digest}"));
        let expected = descriptor.size();
        let refuse = |reason: String| Error::InvalidContent {
            operation: Box::new(ctx.operation.clone()),
            reason,
        };
        if expected > MAX_DOCUMENT_BYTES {
            return Err(refuse(format!(
                "its descriptor says {expected} bytes, more than the {MAX_DOCUMENT_BYTES} \
                 bytes pack reads for a signature payload"
            )));
        }
        let mut stream = self
            .client
            .pull_blob_stream(&self.by_digest(repository, &digest), digest.as_str())
            .await
            .map_err(|e| ctx.oci(e))?;
        if let Some(length) = stream.content_length
            && length != expected
        {
            return Err(refuse(format!(
                "the registry sends {length} bytes, the descriptor says {expected}"
            )));
        }
        let mut out = Vec::with_capacity(expected as usize);
        while let Some(item) = stream.next().await {
            let bytes = item.map_err(|e| ctx.io_error(e))?;
            if (out.len() + bytes.len()) as u64 > expected {
                return Err(refuse(format!(
                    "the registry sent more than the {expected} bytes the descriptor says"
                )));
            }
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Streams blob `descriptor` into `layout`, checking its size and digest as it goes;
    /// on any failure nothing is left in the layout. Calls `progress` with the bytes
    /// received so far.
    pub(crate) async fn download_blob(
        &self,
        repository: &str,
        layout: &Layout,
        descriptor: &Descriptor,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let digest = descriptor.digest().clone();
        let ctx = self.context(repository, format!("fetch blob {digest}"));
        let mut stream = self
            .client
            .pull_blob_stream(
                &self.by_digest(repository, digest.as_ref()),
                digest.as_ref(),
            )
            .await
            .map_err(|e| ctx.oci(e))?;
        let expected = descriptor.size();
        if let Some(length) = stream.content_length
            && length != expected
        {
            return Err(Error::InvalidContent {
                operation: Box::new(ctx.operation.clone()),
                reason: format!(
                    "the registry sends {length} bytes, the descriptor says {expected}"
                ),
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
        let writer = {
            let layout = layout.clone();
            let digest = digest.clone();
            tokio::task::spawn_blocking(move || {
                layout.put_blob(
                    ChannelReader {
                        rx,
                        current: Bytes::new(),
                    },
                    Some(&digest),
                )
            })
        };
        let mut received = 0u64;
        let mut failure = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(bytes) => {
                    received += bytes.len() as u64;
                    if received > expected {
                        failure = Some(Error::InvalidContent {
                            operation: Box::new(ctx.operation.clone()),
                            reason: format!(
                                "the registry sent more than the {expected} bytes the descriptor says"
                            ),
                        });
                        break;
                    }
                    progress(received);
                    if tx.send(Ok(bytes)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(ctx.io_error(e));
                    break;
                }
            }
        }
        if failure.is_some() {
            // The writer sees an error and removes its temporary file.
            let _ = tx
                .send(Err(std::io::Error::other("transfer aborted")))
                .await;
        }
        drop(tx);
        let written = writer.await.map_err(|e| Error::InvalidContent {
            operation: Box::new(ctx.operation.clone()),
            reason: format!("the writer task failed: {e}"),
        })?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        written?;
        Ok(())
    }
}

/// Reads the body of `response` into memory, refusing one larger than `limit` bytes: by
/// its `Content-Length` before reading, else once more than `limit` bytes have arrived
/// (a registry may send no length, or a false one).
pub(crate) async fn read_limited(
    ctx: &Context<'_>,
    mut response: reqwest::Response,
    limit: u64,
    what: &str,
) -> Result<Bytes> {
    let refuse = |reason: String| Error::InvalidContent {
        operation: Box::new(ctx.operation.clone()),
        reason,
    };
    if let Some(length) = response.content_length()
        && length > limit
    {
        return Err(refuse(format!(
            "the registry sends a {what} of {length} bytes, more than the {limit} bytes pack \
             reads for one; refused before reading it"
        )));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| ctx.reqwest_error(e))? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(refuse(format!(
                "the registry sent a {what} of more than the {limit} bytes pack reads for one; \
                 stopped reading there"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads what the download task sends, on a blocking thread.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A request body that streams `len` bytes of the file at `path` from `offset`, and a
/// channel that says how many of them the connection has taken so far.
async fn file_body(
    path: &Path,
    offset: u64,
    len: u64,
) -> Result<(reqwest::Body, tokio::sync::mpsc::UnboundedReceiver<u64>)> {
    use tokio::io::AsyncSeekExt;
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(io_err)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    const READ: usize = 1024 * 1024;
    let stream =
        futures_util::stream::unfold((file, 0u64, tx), move |(mut file, sent, tx)| async move {
            if sent >= len {
                return None;
            }
            let want = READ.min((len - sent) as usize);
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                match file.read_buf(&mut buf).await {
                    Ok(0) => {
                        let short = std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the blob file is shorter than its descriptor says",
                        );
                        return Some((Err(short), (file, len, tx)));
                    }
                    Ok(_) => {}
                    Err(e) => return Some((Err(e), (file, len, tx))),
                }
            }
            let sent = sent + buf.len() as u64;
            let _ = tx.send(sent);
            Some((Ok::<Bytes, std::io::Error>(buf.freeze()), (file, sent, tx)))
        });
    Ok((reqwest::Body::wrap_stream(stream), rx))
}

/// Awaits `request` while reporting the body's progress (`offset` + bytes taken).
async fn with_progress<T>(
    request: impl std::future::Future<Output = T>,
    mut taken: tokio::sync::mpsc::UnboundedReceiver<u64>,
    offset: u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> T {
    tokio::pin!(request);
    loop {
        tokio::select! {
            out = &mut request => return out,
            Some(n) = taken.recv() => progress(offset + n),
        }
    }
}

/// Finds out whether a loopback or `--insecure` registry speaks plain HTTP: a bare
/// `GET /v2/` over TCP (no credentials) that a registry answers with 200 or 401. A TLS
/// server answers otherwise (Go's with a 400), and HTTPS is used.
async fn probe_scheme(registry: &str, host: &str, options: &ConnectOptions) -> Result<Scheme> {
    use tokio::io::AsyncWriteExt;
    // A bare IPv6 address (`::1`) has colons but no port.
    let bare_ipv6 = host.matches(':').count() > 1 && !host.starts_with('[');
    let has_port = !bare_ipv6
        && host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    let address = if has_port {
        host.to_string()
    } else if bare_ipv6 {
        format!("[{host}]:80")
    } else {
        format!("{host}:80")
    };
    let network = |source: std::io::Error| Error::Network {
        operation: Box::new(probe_operation(registry)),
        scheme: "http",
        tls: false,
        source: Box::new(source),
    };
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        stream
            .write_all(
                format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut head = [0u8; 12];
        let mut read = 0;
        while read < head.len() {
            let n = stream.read(&mut head[read..]).await?;
            if n == 0 {
                break;
            }
            read += n;
        }
        std::io::Result::Ok(head[..read].to_vec())
    };
    let head = match tokio::time::timeout(options.connect_timeout, attempt).await {
        Ok(Ok(head)) => head,
        // Nothing listens on the registry's port: say so now, without retrying. (Without a
        // port, only port 80 was tried; HTTPS is on 443.)
        Ok(Err(e)) if has_port && e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(network(e));
        }
        Ok(Err(_)) => return Ok(Scheme::Https),
        Err(_) => {
            return Err(network(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            )));
        }
    };
    let text = String::from_utf8_lossy(&head);
    let plain = text.starts_with("HTTP/1.")
        && (text[9..].starts_with("200") || text[9..].starts_with("401"));
    Ok(if plain { Scheme::Http } else { Scheme::Https })
}

fn probe_operation(registry: &str) -> Operation {
    Operation {
        registry: registry.to_string(),
        repository: String::new(),
        action: "connect to".to_string(),
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
