//! What a server reports: one [`Event`] per listening socket, request, load, unload,
//! swap, refusal and reload. `pack serve --json` writes each as a JSON line: the kind in
//! `event`, keys in camelCase (docs/json.md).

use std::fmt;

use serde::Serialize;

/// Something the server did. Serialized with an `event` field naming the kind.
#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "event",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// The socket listens (with port 0, `address` is the port picked).
    Listening { address: String, url: String },
    /// The metrics endpoint listens.
    Metrics { address: String, url: String },
    /// A request was answered (`status` is what the client got).
    Request {
        id: u64,
        /// The matched route; `None` when no route matched (404).
        app: Option<String>,
        method: String,
        uri: String,
        status: u16,
        duration_ms: f64,
        /// Why the request failed (timeout, trap, refusal), when it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// An app was resolved, verified, selected, loaded and linked: its cold start.
    Load {
        app: String,
        bundle: String,
        digest: String,
        platform: Option<String>,
        /// How its requests are stopped at their timeout: `epoch`, `fuel` or `none`.
        interruption: String,
        duration_ms: f64,
    },
    /// An idle app was unloaded (`--max-loaded`).
    Unload {
        app: String,
        digest: String,
        reason: String,
    },
    /// A new release replaced the one serving; requests in flight finish on the old one.
    Swap {
        app: String,
        bundle: String,
        from: String,
        to: String,
        duration_ms: f64,
    },
    /// A bundle (or a new release of it) was refused: it stays unloaded, or the release
    /// serving keeps serving.
    Refusal {
        app: String,
        bundle: String,
        reason: String,
        /// The release that keeps serving, when there is one.
        #[serde(skip_serializing_if = "Option::is_none")]
        serving: Option<String>,
    },
    /// The configuration was read again (SIGHUP).
    Reload { apps: usize },
    /// The configuration could not be read again; the old one stays.
    ReloadFailed { reason: String },
    /// Shutting down: no new connections; waiting for requests in flight.
    Draining { in_flight: usize },
    /// Every request in flight has finished.
    Stopped,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Listening { url, .. } => write!(f, "serving on {url} (SIGTERM or Ctrl-C stops)"),
            Event::Metrics { url, .. } => write!(f, "metrics on {url}"),
            Event::Request {
                app,
                method,
                uri,
                status,
                duration_ms,
                error,
                ..
            } => {
                write!(
                    f,
                    "{} {method} {uri} -> {status} in {duration_ms:.2} ms",
                    app.as_deref().unwrap_or("(no route)")
                )?;
                if let Some(e) = error {
                    write!(f, " ({e})")?;
                }
                Ok(())
            }
            Event::Load {
                app,
                bundle,
                digest,
                platform,
                duration_ms,
                ..
            } => write!(
                f,
                "{app}: loaded {bundle} ({digest}, {}) in {duration_ms:.2} ms",
                platform.as_deref().unwrap_or("jit")
            ),
            Event::Unload {
                app,
                digest,
                reason,
            } => {
                write!(f, "{app}: unloaded {digest} ({reason})")
            }
            Event::Swap {
                app,
                bundle,
                from,
                to,
                ..
            } => write!(f, "{app}: {bundle} now serves {to} (was {from})"),
            Event::Refusal {
                app,
                bundle,
                reason,
                serving,
            } => {
                write!(f, "{app}: refused {bundle}: {reason}")?;
                if let Some(s) = serving {
                    write!(f, " (still serving {s})")?;
                }
                Ok(())
            }
            Event::Reload { apps } => write!(f, "configuration reloaded: {apps} apps"),
            Event::ReloadFailed { reason } => {
                write!(f, "configuration not reloaded, the old one stays: {reason}")
            }
            Event::Draining { in_flight } => {
                write!(f, "draining: waiting for {in_flight} connections")
            }
            Event::Stopped => f.write_str("stopped"),
        }
    }
}

/// Told of every [`Event`]; called from the server's threads.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: &Event) {}
}
