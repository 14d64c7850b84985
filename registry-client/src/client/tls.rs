//! The CA certificates `--ca-cert` adds to the platform's roots.

use std::path::PathBuf;

use crate::{Error, Result};

pub(super) fn load_certificates(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>> {
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
pub(super) fn pem_certificates(text: &str) -> Vec<String> {
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
