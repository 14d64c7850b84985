//! `pack serve`: many HTTP handler bundles behind routes, in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use pack_host::serve::config::{AppConfig, ServeConfig, parse_duration, parse_size};
use pack_host::serve::event::{Event, Reporter};
use pack_host::serve::{Server, ServerOptions};
use pack_host::{HostOptions, Trust};
use pack_packager::signing;

use crate::exit::Status;
use crate::printer::Printer;

/// Serve HTTP handler bundles behind routes: each is verified and loaded on its first
/// request, runs one instance per request within its limits, and follows new releases.
///
/// The apps come from --config (serve.toml, see docs/serve.md) and/or --app ROUTE=BUNDLE.
/// A ROUTE is a path prefix (`/hello`) or a host route (`hello.example.com/`); a request
/// goes to the longest matching prefix, and the handler sees the full path and the
/// header `pack-matched-route`. No match is answered 404.
///
/// An app is resolved, verified (a signature by a --key or `keys` key, digests,
/// ownership and modes, as `pack run` checks), selected, loaded and linked on its
/// first request (its cold start). A request past its timeout is interrupted and
/// answered 504; beyond an app's max-concurrency, 503. Artifacts compiled without
/// epoch interruption or fuel are refused unless --allow-unbounded. Every `poll`, the
/// bundles of loaded apps are resolved again: a new release is verified and swapped in
/// (requests in flight finish on the old one); a release that fails verification is
/// reported and the old one keeps serving. SIGHUP re-reads the configuration; SIGTERM
/// or Ctrl-C stops accepting connections, lets requests in flight finish, and exits 0.
///
/// With --json, one JSON line per event on stderr: `listening` (with `address` and
/// `url`, so port 0 can be used), `metrics`, `request`, `load`, `unload`, `swap`,
/// `refusal`, `reload`, `reload_failed`, `draining`, `stopped` (docs/serve.md).
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack serve --config serve.toml
  pack serve --app /hello=out/hello:v1 --app /api=registry.example.com/team/api:v2 \\
      --key release.pub --listen 127.0.0.1:8080
  pack serve --config serve.toml --listen 127.0.0.1:0 --metrics 127.0.0.1:9090 --json

Exit status:
  0  stopped by SIGTERM or Ctrl-C, after the requests in flight finished
  2  the configuration, a key or the listening address cannot be used, or a usage error")]
pub struct ServeCommand {
    /// The configuration (TOML): listen, keys, poll, and one `[[app]]` per route.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// An app: `ROUTE=BUNDLE` (`/hello=out/hello:v1`,
    /// `api.example.com/=registry.example.com/team/api:v2`); repeatable.
    #[arg(long, value_name = "ROUTE=BUNDLE")]
    pub app: Vec<String>,

    /// Where to listen (port 0 picks one) [default: the configuration's, else
    /// 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// How often to re-resolve the bundles of loaded apps, e.g. `30s` [default: the
    /// configuration's, else 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub poll: Option<std::time::Duration>,

    /// Wall-clock limit per request of the --app apps, e.g. `5s` [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<std::time::Duration>,

    /// Linear memory per instance of the --app apps, e.g. `64MiB`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,

    /// Instances of each --app app at once; beyond it requests get 503 [default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: Option<u32>,

    /// Apps loaded at once; beyond it the least recently used one is unloaded.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_loaded: Option<u64>,

    /// Load artifacts compiled without epoch interruption or fuel: a request to one of
    /// them that does not end cannot be stopped (its thread is lost), only answered 504.
    #[arg(long)]
    pub allow_unbounded: bool,

    /// Serve Prometheus text at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    #[command(flatten)]
    pub host: crate::args::HostArgs,
}

struct Events {
    printer: Printer,
    json: bool,
}

impl Reporter for Events {
    fn event(&self, event: &Event) {
        if self.json {
            self.printer.event(event);
            return;
        }
        match event {
            Event::Refusal { .. } | Event::ReloadFailed { .. } => {
                self.printer.warn(&event.to_string())
            }
            _ => self.printer.status(&event.to_string()),
        }
    }
}

impl ServeCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let mut config = match &self.config {
            Some(path) => ServeConfig::load(path)?,
            None => ServeConfig::default(),
        };
        for arg in &self.app {
            let mut app = AppConfig::parse_arg(arg)?;
            if let Some(t) = self.request_timeout {
                app.timeout = t;
            }
            app.max_memory = self.max_memory;
            if let Some(c) = self.max_concurrency {
                app.max_concurrency = c;
            }
            if config.apps.iter().any(|a| a.route == app.route) {
                anyhow::bail!("--app {arg}: route `{}` is given twice", app.route);
            }
            config.apps.push(app);
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(poll) = self.poll {
            config.poll = poll;
        }
        let keys = signing::load_public_keys(&self.host.key)?;
        let mut host = HostOptions::new(Trust::Keys(keys));
        self.host.apply(&mut host)?;
        let options = ServerOptions {
            host,
            max_loaded: self.max_loaded.map(|n| n as usize),
            allow_unbounded: self.allow_unbounded,
            metrics: self.metrics,
        };
        let reporter = Arc::new(Events {
            printer: printer.clone(),
            json: printer.json_output(),
        });
        let server = Server::new(config, options, reporter).context("cannot serve")?;
        server.run_until_signalled()?;
        Ok(Status::Success)
    }
}
