//! Which scheme a registry speaks, asked once at connection: HTTPS, or plain HTTP where
//! that is allowed (loopback, or `--insecure`).

use tokio::io::AsyncReadExt;

use super::{ConnectOptions, Scheme};
use crate::error::Operation;
use crate::{Error, Result};

/// Finds out whether a loopback or `--insecure` registry speaks plain HTTP: a bare
/// `GET /v2/` over TCP (no credentials) that a registry answers with 200 or 401. A TLS
/// server answers otherwise (Go's with a 400), and HTTPS is used.
pub(super) async fn probe_scheme(
    registry: &str,
    host: &str,
    options: &ConnectOptions,
) -> Result<Scheme> {
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
