//! Sending: blob existence checks, cross-repository mounts, monolithic and chunked
//! uploads (streamed from the file, with progress), and manifests.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use oci_client::RegistryOperation;
use oci_spec::image::Digest;
use reqwest::header::HeaderValue;
use tokio::io::AsyncReadExt;

use super::{CHUNK_SIZE, Registry};
use crate::error::Context;
use crate::{Error, Result};

impl Registry {
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

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            self.url(location)
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
        let blob = BlobUpload {
            repository,
            path,
            digest,
            size,
            progress,
        };
        let mut refreshed = false;
        loop {
            let authorization = self
                .authorization(repository, RegistryOperation::Push, refreshed)
                .await?;
            match self.upload_once(&ctx, client, &authorization, &blob).await {
                // A token that expired: ask for a new one, once.
                Err(Error::Unauthorized { .. }) if !refreshed && authorization.is_some() => {
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    async fn upload_once(
        &self,
        ctx: &Context<'_>,
        client: &reqwest::Client,
        authorization: &Option<HeaderValue>,
        blob: &BlobUpload<'_>,
    ) -> Result<()> {
        let BlobUpload {
            repository,
            path,
            digest,
            size,
            progress,
        } = *blob;
        let start = self.url(&format!("/v2/{repository}/blobs/uploads/"));
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
}

/// One blob upload: the file at `path`, sent as blob `digest` of `size` bytes to
/// `repository`, with `progress` told the bytes sent so far.
#[derive(Clone, Copy)]
struct BlobUpload<'a> {
    repository: &'a str,
    path: &'a Path,
    digest: &'a Digest,
    size: u64,
    progress: &'a (dyn Fn(u64) + Send + Sync),
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
