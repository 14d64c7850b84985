//! A connection to one registry: TLS and scheme, credentials, and the distribution-API
//! requests push and pull are made of, each mapped to a typed [`Error`].

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{Descriptor, Digest};
use pack_packager::Layout;
use reqwest::header::HeaderValue;
use tokio::io::AsyncReadExt;

use crate::auth::{CredentialSource, Resolved};
use crate::error::{Context, Operation};
use crate::{Error, Reporter, Result, RetryPolicy};

/// The size of each `PATCH` of a chunked blob upload (oci-client's own maximum).
pub const CHUNK_SIZE: usize = 4 * 1024 * 1024;

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
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A connection to one registry.
pub struct Registry {
    client: Client,
    /// As written in references (`docker.io`, `127.0.0.1:5000`).
    registry: String,
    scheme: Scheme,
    credentials: CredentialSource,
    credentials_text: String,
    retry: RetryPolicy,
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
        let Some(len) = rest[start..].find(END) else { break };
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
            probe_scheme(&registry, &host, &certs, options).await?
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
                .into_iter()
                .map(|data| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
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
            action: "set up a client".to_string(),
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
        Ok(Self {
            client,
            registry,
            scheme,
            credentials: credentials.source,
            credentials_text,
            retry: options.retry,
        })
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
        Reference::with_tag(self.registry.clone(), repository.to_string(), tag.to_string())
    }

    fn by_digest(&self, repository: &str, digest: &str) -> Reference {
        Reference::with_digest(self.registry.clone(), repository.to_string(), digest.to_string())
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
    pub(crate) async fn mount_blob(&self, repository: &str, from: &str, digest: &Digest) -> Result<bool> {
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

    /// Uploads the file at `path` as blob `digest` in chunks of [`CHUNK_SIZE`], calling
    /// `progress` with the bytes the registry has accepted so far.
    pub(crate) async fn push_blob_file(
        &self,
        repository: &str,
        path: &Path,
        digest: &Digest,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let ctx = self.context(repository, format!("upload blob {digest}"));
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(io_err)?;
        let local_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
        let slot = local_error.clone();
        // Each item is one PATCH; when the next is asked for, the previous one was
        // accepted.
        let stream = futures_util::stream::unfold((file, 0u64, 0u64), move |(mut file, accepted, pending)| {
            let slot = slot.clone();
            async move {
                let accepted = accepted + pending;
                progress(accepted);
                let mut buf = BytesMut::with_capacity(CHUNK_SIZE);
                while buf.len() < CHUNK_SIZE {
                    match file.read_buf(&mut buf).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            *slot.lock().expect("error slot") = Some(e);
                            return Some((
                                Err(oci_client::errors::OciDistributionError::GenericError(Some(
                                    "reading the blob failed".to_string(),
                                ))),
                                (file, accepted, 0),
                            ));
                        }
                    }
                }
                if buf.is_empty() {
                    return None;
                }
                let len = buf.len() as u64;
                Some((Ok(buf.freeze()), (file, accepted, len)))
            }
        });
        let result = self
            .client
            .push_blob_stream(&self.by_tag(repository, "latest"), stream, digest.as_ref())
            .await;
        if let Some(e) = local_error.lock().expect("error slot").take() {
            return Err(io_err(e));
        }
        result.map(|_| ()).map_err(|e| ctx.oci(e))
    }

    /// The digest of the manifest `reference` (tag or digest) names, `None` when the
    /// registry does not have it (`HEAD /v2/<repo>/manifests/<reference>`).
    pub(crate) async fn manifest_digest(&self, repository: &str, reference: &str) -> Result<Option<Digest>> {
        let ctx = self.context(repository, format!("check manifest {reference}"));
        match self
            .client
            .fetch_manifest_digest(&self.by_ref(repository, reference), &RegistryAuth::Anonymous)
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
        let content_type = HeaderValue::from_str(media_type).map_err(|_| Error::InvalidContent {
            operation: ctx.operation.clone(),
            reason: format!("`{media_type}` is not a valid media type"),
        })?;
        self.client
            .push_manifest_raw(&self.by_ref(repository, reference), bytes, content_type)
            .await
            .map(|_| ())
            .map_err(|e| ctx.oci(e))
    }

    /// `GET /v2/<repo>/manifests/<reference>`: the exact bytes and their digest (checked
    /// against the reference when it is a digest, and against `Docker-Content-Digest`).
    pub(crate) async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
        accept: &[&str],
    ) -> Result<(Bytes, Digest)> {
        let ctx = self.context(repository, format!("fetch manifest {reference}"));
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&self.by_ref(repository, reference), &RegistryAuth::Anonymous, accept)
            .await
            .map_err(|e| ctx.oci(e))?;
        let digest: Digest = digest.parse().map_err(|_| Error::InvalidContent {
            operation: ctx.operation.clone(),
            reason: format!("the registry named it `{digest}`, which is not a digest"),
        })?;
        if digest.algorithm().as_ref() != "sha256" {
            let actual = pack_packager::layout::sha256(&bytes);
            return Ok((bytes, actual));
        }
        Ok((bytes, digest))
    }

    /// Fetches a small blob into memory, verified.
    pub(crate) async fn get_blob(&self, repository: &str, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let digest = descriptor.digest().to_string();
        let ctx = self.context(repository, format!("fetch blob {digest}"));
        let mut out = Vec::with_capacity(descriptor.size() as usize);
        self.client
            .pull_blob(&self.by_digest(repository, &digest), digest.as_str(), &mut out)
            .await
            .map_err(|e| ctx.oci(e))?;
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
            .pull_blob_stream(&self.by_digest(repository, digest.as_ref()), digest.as_ref())
            .await
            .map_err(|e| ctx.oci(e))?;
        let expected = descriptor.size();
        if let Some(length) = stream.content_length
            && length != expected
        {
            return Err(Error::InvalidContent {
                operation: ctx.operation.clone(),
                reason: format!("the registry sends {length} bytes, the descriptor says {expected}"),
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
        let writer = {
            let layout = layout.clone();
            let digest = digest.clone();
            tokio::task::spawn_blocking(move || {
                layout.put_blob(ChannelReader { rx, current: Bytes::new() }, Some(&digest))
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
                            operation: ctx.operation.clone(),
                            reason: format!("the registry sent more than the {expected} bytes the descriptor says"),
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
            let _ = tx.send(Err(std::io::Error::other("transfer aborted"))).await;
        }
        drop(tx);
        let written = writer.await.map_err(|e| Error::InvalidContent {
            operation: ctx.operation.clone(),
            reason: format!("the writer task failed: {e}"),
        })?;
        if let Some(failure) = failure {
            return Err(failure);
        }
        written?;
        Ok(())
    }
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

/// Finds out whether a loopback or `--insecure` registry speaks HTTPS or plain HTTP:
/// HTTPS first (as docker does); plain HTTP only when HTTPS fails and `/v2/` answers
/// like a registry over HTTP (200 or 401).
async fn probe_scheme(
    registry: &str,
    host: &str,
    certs: &[Vec<u8>],
    options: &ConnectOptions,
) -> Result<Scheme> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(Duration::from_secs(30))
        .danger_accept_invalid_certs(options.insecure);
    let mut roots = Vec::new();
    for pem in certs {
        roots.push(reqwest::Certificate::from_pem(pem).expect("checked when loaded"));
    }
    builder = builder.tls_certs_merge(roots);
    let client = builder.build().map_err(|e| Error::Network {
        operation: probe_operation(registry),
        scheme: "https",
        tls: true,
        source: Box::new(e),
    })?;
    let https_error = match client.get(format!("https://{host}/v2/")).send().await {
        Ok(_) => return Ok(Scheme::Https),
        Err(e) => e,
    };
    if let Ok(response) = client.get(format!("http://{host}/v2/")).send().await
        && matches!(response.status().as_u16(), 200 | 401)
    {
        return Ok(Scheme::Http);
    }
    let tls = crate::error::is_tls_error(&https_error);
    Err(Error::Network {
        operation: probe_operation(registry),
        scheme: "https",
        tls,
        source: Box::new(https_error),
    })
}

fn probe_operation(registry: &str) -> Operation {
    Operation {
        registry: registry.to_string(),
        repository: String::new(),
        action: "connect".to_string(),
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
        for host in ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000", "::1"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["ghcr.io", "10.0.0.1:5000", "[fe80::1]:5000", "localhost.example.com"] {
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
