//! Fetching: manifests (by tag or digest, with a size limit), the referrers API, and
//! blobs streamed to a layout and checked against their digest as they arrive.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_client::RegistryOperation;
use oci_client::secrets::RegistryAuth;
use oci_spec::image::{Descriptor, Digest};
use pack_packager::Layout;
use pack_packager::limits::MAX_DOCUMENT_BYTES;

use super::Registry;
use crate::error::Context;
use crate::{Error, Result};

impl Registry {
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
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
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
        let url = self.url(&format!("/v2/{repository}/referrers/{digest}"));
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
