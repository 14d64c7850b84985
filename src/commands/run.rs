//! `pack run`: verify a bundle, load its precompiled artifact and run it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use pack_host::engine::EngineSettings;
use pack_host::{
    Artifact, EnginePolicy, Host, HostOptions, Kind, RunOutcome, ServeOptions, Source, Trust,
    Verification, WasiOptions,
};
use pack_packager::signing;
use pack_registry_client::auth::AuthEnv;

use crate::exit::Status;
use crate::json::RunEvent;
use crate::printer::Printer;

/// Run a bundle: verify its signature, load the precompiled artifact that fits this
/// machine, and run it without compiling anything.
///
/// BUNDLE is an OCI layout (`out/app`, `out/app:v1`) or a registry reference
/// (`registry.example.com/team/app:v1`), which is pulled into the content store
/// ($PACK_STORE, else $XDG_DATA_HOME/pack/store). A signature by one of the --key
/// public keys must cover the bundle's index digest, and every blob is checked against
/// its digest before it is used. A bundle pulled from a registry must be signed for the
/// repository it is pulled from (the signature's `docker-reference`), or for one that
/// --allow-reference allows; for a layout, that check is made with --reference.
///
/// A component that exports `wasi:cli/run` runs as a command with the arguments after
/// `--`, the --env variables, the --dir directories and this process's stdio; pack exits
/// with its exit status. One that exports `wasi:http/incoming-handler` is served on
/// --listen, one instance per request, until Ctrl-C or SIGTERM.
///
/// Registry credentials: PACK_REGISTRY_USERNAME/PACK_REGISTRY_PASSWORD go only to the
/// registry PACK_REGISTRY (host[:port]) names, or to BUNDLE's registry when it is unset;
/// any other registry gets only what the docker config has for it. Set PACK_REGISTRY
/// where BUNDLE comes from a variable or a file someone else writes.
///
/// With --json, pack's own messages are JSON lines on stderr (stdout is the
/// component's), one per event: `warning` (a message that does not stop the run), `retry`
/// (a registry request failed transiently and is tried again), `loaded` (digest,
/// platform, signing key), `listening` (the address, also when --listen asked for port 0),
/// `request` (one per request) and `exit` (the status). docs/json.md lists their keys.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack run out/app --key pack.pub -- 42
  pack run registry.example.com/team/app:v1 --key release.pub --env LOG=debug --dir data::/data
  pack run registry.example.com/team/app:v1 --key release.pub --pull missing
  pack run out/proxy --key pack.pub --listen 127.0.0.1:8080
  pack run out/app --key pack.pub --rebuilt-by ci.pub --rebuilt-by farm.pub --rebuilds 2
  pack run out/proxy --key pack.pub --listen 127.0.0.1:0 --json
  pack run mirror.example.com/team/app:v1 --key release.pub \
      --allow-reference ghcr.io/team/app

Exit status:
  the component's own (0 when `run` returns ok, 1 when it returns an error)
  1  the component trapped (the wasm backtrace is printed)
  2  the bundle was refused (unsigned, signed by another key or for another
     repository, damaged, no artifact for this machine) or cannot be loaded, or a
     usage error
  3  a registry refused the credentials
  4  a registry cannot be reached")]
pub struct RunCommand {
    /// The bundle: `<LAYOUT>[:<TAG>]` or `<REGISTRY>/<REPOSITORY>[:<TAG>|@<DIGEST>]`.
    #[arg(value_name = "BUNDLE")]
    pub bundle: String,

    #[command(flatten)]
    pub host: crate::args::HostArgs,

    /// Run the bundle without checking its signature. Digests are still checked, but
    /// nothing says who made what runs.
    #[arg(long, conflicts_with_all = ["key", "allow_reference"])]
    pub insecure_skip_verify: bool,

    /// For a layout: the repository its signature must name (`docker-reference`), e.g.
    /// `ghcr.io/team/app`. A bundle pulled from a registry is checked against the
    /// repository it comes from instead.
    #[arg(long, value_name = "REPO", conflicts_with = "insecure_skip_verify")]
    pub reference: Option<String>,

    /// Compile the portable component when no precompiled artifact fits this machine
    /// (slow: that is what the bundle is there to avoid).
    #[arg(long)]
    pub allow_jit: bool,

    /// Serve an HTTP handler on this address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// A directory to give the component: `HOST::GUEST`, or `DIR` for the same path in
    /// both. Repeatable.
    #[arg(long, value_name = "HOST::GUEST")]
    pub dir: Vec<String>,

    /// An environment variable for the component: `K=V`, or `K` for this process's
    /// value. Repeatable.
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,

    /// The program name the component sees as `argv[0]` [default: the layout's or
    /// repository's name].
    #[arg(long, value_name = "NAME")]
    pub argv0: Option<String>,

    /// Load only artifacts compiled with this engine profile (TOML, as `pack compile
    /// --profile` takes) instead of configuring the engine for each artifact's own.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,

    /// When to pull a registry bundle: `always` (the tag is resolved and its signatures
    /// fetched again each run, so a moved tag is followed), `missing` (only when the
    /// content store has no copy of REFERENCE; a copy is verified as a layout is, without
    /// asking the registry: the fast start), `never` (the store's copy, or exit 2).
    #[arg(long, value_name = "WHEN", default_value = "always")]
    pub pull: PullWhen,

    /// Arguments for the component (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

impl RunCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let trust = if self.insecure_skip_verify {
            Trust::InsecureSkipVerify
        } else {
            if self.host.key.is_empty() {
                anyhow::bail!(
                    "no trusted key: pass --key <PUB> (or --insecure-skip-verify to run an \
                     unsigned bundle)"
                );
            }
            Trust::Keys(signing::load_public_keys(&self.host.key)?)
        };
        let engine = match &self.profile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?;
                let settings = EngineSettings::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("invalid profile `{}`: {e}", path.display()))?;
                EnginePolicy::Fixed(settings)
            }
            None => EnginePolicy::Adopt,
        };
        let wasi = self.wasi_options()?;
        let source = Source::parse(&self.bundle);
        if self.reference.is_some() && matches!(source, Source::Registry(_)) {
            anyhow::bail!(
                "--reference is for layouts: `{source}` is pulled from a registry, and its \
                 signature must name that repository (or one --allow-reference allows)"
            );
        }
        let mut options = HostOptions::new(trust);
        self.host.apply(&mut options)?;
        options.references.layout = self.reference.clone();
        options.allow_jit = self.allow_jit;
        options.engine = engine;
        options.pull = match self.pull {
            PullWhen::Always => pack_host::PullPolicy::Always,
            PullWhen::Missing => pack_host::PullPolicy::Missing,
            PullWhen::Never => pack_host::PullPolicy::Never,
        };
        options.registry.reporter = Some(std::sync::Arc::new(RetryWarnings {
            printer: printer.clone(),
            json: printer.json_output(),
        }));
        options.registry.credentials = self.credentials(printer, &source);
        let host = Host::new(options);

        if self.insecure_skip_verify {
            let message = format!(
                "--insecure-skip-verify: NOT checking the signature of `{source}`; whoever can \
                 write to it decides what runs here"
            );
            if printer.json_output() {
                printer.event(&RunEvent::Warning { message: &message });
            } else {
                printer.warn(&message);
            }
        }
        let resolved = host.resolve(&source).map_err(into_anyhow)?;
        if let Some(pulled) = &resolved.pulled
            && !printer.json_output()
        {
            printer.status(&format!(
                "pulled {source} ({}): {} blobs fetched ({}), {} already stored",
                pulled.digest,
                pulled.blobs_transferred,
                crate::format::bytes(pulled.bytes_transferred),
                pulled.blobs_skipped
            ));
        }
        let bundle = host.verify(&resolved).map_err(into_anyhow)?;
        if let Verification::Signed(by) = &bundle.verification
            && (resolved.pulled.is_some() || self.reference.is_some())
            && by.iter().all(|v| signing::is_unbound(&v.reference))
        {
            let references: Vec<&str> = by.iter().map(|v| v.reference.as_str()).collect();
            let message = crate::diagnostics::unbound_signature(&source.to_string(), &references);
            if printer.json_output() {
                printer.event(&RunEvent::Warning { message: &message });
            } else {
                printer.warn(&message);
            }
        }
        let selection = host.select(bundle).map_err(into_anyhow)?;
        let loaded = host.load(selection).map_err(into_anyhow)?;
        for layer in loaded.fetched.iter().filter(|l| l.fallback) {
            let message = format!(
                "no native artifact for this machine could be used: fetched the fallback \
                 layer {} ({})",
                layer.digest,
                crate::format::bytes(layer.bytes)
            );
            if printer.json_output() {
                printer.event(&RunEvent::Warning { message: &message });
            } else {
                printer.warn(&message);
            }
        }
        let signed = match &loaded.verification {
            Verification::Signed(by) => by
                .first()
                .map(|v| format!(", signed by key {}", v.key.short()))
                .unwrap_or_default(),
            Verification::Skipped => ", signature NOT checked".to_string(),
        };
        if printer.json_output() {
            let (platform, jit) = match &loaded.artifact {
                Artifact::Jit { .. } => (None, true),
                Artifact::Precompiled { platform, .. } => (Some(platform.to_string()), false),
            };
            let key = match &loaded.verification {
                Verification::Signed(by) => by.first().map(|v| v.key.to_string()),
                Verification::Skipped => None,
            };
            printer.event(&RunEvent::Loaded {
                bundle: source.to_string(),
                digest: loaded.digest.to_string(),
                platform,
                jit,
                signed_by: key,
            });
        }
        let digest = crate::format::short_digest(&loaded.digest, true);
        match &loaded.artifact {
            _ if printer.json_output() => {}
            Artifact::Jit { reason, .. } => printer.warn(&format!(
                "--allow-jit: compiling the portable component on this machine: {reason}"
            )),
            Artifact::Precompiled {
                platform, pulley, ..
            } => printer.status(&format!(
                "{source} ({digest}{signed}): {platform} artifact{}",
                if *pulley { ", in the interpreter" } else { "" }
            )),
        }

        let kind = loaded.kind();
        let serve = self.listen.is_some() || kind == Kind::HttpHandler;
        if !serve {
            let command = loaded.command()?;
            let status = match command.run(&wasi)? {
                RunOutcome::Exit(code) => code as u8,
                RunOutcome::Trap(trap) => {
                    printer.error(&trap.to_string());
                    1
                }
            };
            if printer.json_output() {
                printer.event(&RunEvent::Exit { status });
            }
            return Ok(Status::Component(status));
        }
        let addr = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let pre = loaded.http(WasiOptions {
            inherit_stdin: false,
            ..wasi
        })?;
        let name = source.to_string();
        let json = printer.json_output();
        let on_listening = {
            let printer = printer.clone();
            Arc::new(move |local: SocketAddr| {
                if json {
                    printer.event(&RunEvent::Listening {
                        address: local.to_string(),
                        url: format!("http://{local}/"),
                    });
                } else {
                    printer.status(&format!("serving {name} on http://{local}/ (Ctrl-C stops)"));
                }
            })
        };
        let on_request = {
            let printer = printer.clone();
            Arc::new(move |log: &pack_host::RequestLog| {
                if json {
                    printer.event(&RunEvent::Request {
                        id: log.id,
                        method: &log.method,
                        uri: &log.uri,
                        status: log.status,
                        duration_ms: log.duration.as_millis() as u64,
                        error: log.error.as_deref(),
                    });
                } else {
                    printer.status(&log.to_string());
                }
            })
        };
        pack_host::http::serve_until_interrupted(
            pre,
            ServeOptions {
                addr,
                on_request: Some(on_request),
                on_listening: Some(on_listening),
            },
        )?;
        if printer.json_output() {
            printer.event(&RunEvent::Exit { status: 0 });
        }
        Ok(Status::Success)
    }

    /// PACK_REGISTRY_USERNAME/PASSWORD for BUNDLE's registry only (unless PACK_REGISTRY
    /// names another): a warning when they are set but not for it.
    fn credentials(&self, printer: &Printer, source: &Source) -> Option<AuthEnv> {
        let Source::Registry(reference) = source else {
            return None;
        };
        let (reference, _) = pack_registry_client::parse_reference(reference).ok()?;
        let env = AuthEnv::from_process().for_command(reference.registry());
        if let Some(withheld) = env.withheld_from(reference.registry()) {
            let message = withheld.to_string();
            if printer.json_output() {
                printer.event(&RunEvent::Warning { message: &message });
            } else {
                printer.warn(&message);
            }
        }
        Some(env)
    }

    fn wasi_options(&self) -> Result<WasiOptions> {
        let argv0 = self
            .argv0
            .clone()
            .unwrap_or_else(|| Source::parse(&self.bundle).name());
        let mut args = vec![argv0];
        args.extend(self.args.iter().cloned());
        let mut env = Vec::new();
        for var in &self.env {
            match var.split_once('=') {
                Some((k, v)) => env.push((k.to_string(), v.to_string())),
                None => {
                    if let Ok(v) = std::env::var(var) {
                        env.push((var.clone(), v));
                    }
                }
            }
        }
        let dirs = self
            .dir
            .iter()
            .map(|d| match d.split_once("::") {
                Some((host, guest)) => (PathBuf::from(host), guest.to_string()),
                None => (PathBuf::from(d), d.clone()),
            })
            .collect();
        let wasi = WasiOptions {
            env,
            dirs,
            ..WasiOptions::inherit(args)
        };
        wasi.check()?;
        Ok(wasi)
    }
}

/// Reports each retried registry request of a pull: a warning, or a `retry` event.
struct RetryWarnings {
    printer: Printer,
    json: bool,
}

impl pack_registry_client::Reporter for RetryWarnings {
    fn on_retry(
        &self,
        what: &str,
        attempt: u32,
        attempts: u32,
        delay: std::time::Duration,
        error: &pack_registry_client::Error,
    ) {
        if self.json {
            self.printer.event(&RunEvent::Retry {
                what,
                attempt,
                attempts,
                delay_ms: delay.as_millis() as u64,
                error: crate::diagnostics::chain(error),
            });
        } else {
            self.printer.warn(&crate::registry::retry_message(
                what, attempt, attempts, delay, error,
            ));
        }
    }
}

/// The host's error, unwrapped where it wraps a packager or registry error, so those
/// keep their hints and exit statuses.
fn into_anyhow(error: pack_host::Error) -> anyhow::Error {
    match error {
        pack_host::Error::Layout(e) => e.into(),
        pack_host::Error::Registry(e) => e.into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        cmd: super::RunCommand,
    }

    #[test]
    fn parses_flags_and_trailing_args() {
        let cli = Cli::try_parse_from([
            "x",
            "out/app:v1",
            "--key",
            "a.pub",
            "--key",
            "b.pub",
            "--env",
            "A=1",
            "--dir",
            "data::/data",
            "--",
            "2",
            "--flag",
        ])
        .unwrap();
        assert_eq!(cli.cmd.host.key.len(), 2);
        assert_eq!(cli.cmd.args, ["2", "--flag"]);
        let wasi = cli.cmd.wasi_options();
        // `data` does not exist here: the directory is checked before anything runs.
        assert!(wasi.is_err());
        assert!(
            Cli::try_parse_from(["x", "out/app", "--key", "a.pub", "--insecure-skip-verify"])
                .is_err()
        );
        let cli = Cli::try_parse_from(["x", "out/app", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(cli.cmd.listen.is_some());
        assert!(Cli::try_parse_from(["x", "out/app", "--listen", "nope"]).is_err());
    }
}

/// `--pull`: when a registry bundle is pulled.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullWhen {
    Always,
    Missing,
    Never,
}
