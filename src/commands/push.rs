//! `pack push`: send a bundle and its signatures from a layout to a registry. Also holds
//! what `pull` and `login` share with it: the registry flags, credentials, the runtime
//! and the progress bars.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pack_packager::{Layout, LayoutRef};
use pack_registry_client::auth::{self, AuthEnv, Credentials};
use pack_registry_client::{
    ConnectOptions, Item, Outcome, PushOptions, Registry, Reporter, RetryPolicy, TransferSummary,
};
use zeroize::Zeroizing;

use crate::commands::inspect::short_digest;
use crate::exit::Status;
use crate::printer::{BOLD, DIM, GREEN, Printer};
use crate::progress::{bytes, duration};

/// How to reach and log in to a registry (`push`, `pull`, `login`).
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Allow plain HTTP, and do not verify the registry's TLS certificate. Loopback
    /// registries (127.0.0.0/8, ::1, localhost) may use plain HTTP without it.
    #[arg(long)]
    pub insecure: bool,

    /// A PEM file of CA certificates to trust besides the platform's roots; repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_cert: Vec<PathBuf>,

    /// The username; the password (or token) is read from stdin with --password-stdin.
    /// Otherwise PACK_REGISTRY_USERNAME/PACK_REGISTRY_PASSWORD, sent only to the registry
    /// PACK_REGISTRY (host[:port]) names, else to the registry of this command's
    /// reference; then the docker config (credential helpers and `auths`), then
    /// anonymous.
    #[arg(long, short = 'u', value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the password (or token) from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,

    /// Seconds to wait for a connection and for each read from it; a stalled transfer
    /// fails after this long and is retried [default: 30 to connect, 120 per read].
    #[arg(long, value_name = "SECONDS", env = "PACK_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,

    /// Retries of a request that failed transiently (connection error, timeout, 408,
    /// 429, 5xx), with exponential backoff or the registry's Retry-After (at most 30 s
    /// each); 0 fails at the first error.
    #[arg(long, value_name = "N", env = "PACK_RETRIES", default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: u32,
}

impl RegistryArgs {
    pub(crate) fn connect_options(&self) -> ConnectOptions {
        connect_options(self.insecure, &self.ca_cert, self.timeout, self.retries)
    }

    /// `--username` with the password read from stdin.
    pub(crate) fn explicit_credentials(&self) -> Result<Option<Credentials>> {
        let Some(username) = &self.username else {
            return Ok(None);
        };
        if !self.password_stdin {
            bail!("--username needs --password-stdin");
        }
        Ok(Some(Credentials::new(
            username.clone(),
            read_password_stdin()?.as_str(),
        )))
    }
}

/// The registry client's options for `--insecure`, `--ca-cert`, `--timeout` (seconds, for
/// the connection and for each read) and `--retries`.
pub(crate) fn connect_options(
    insecure: bool,
    ca_cert: &[PathBuf],
    timeout: Option<u64>,
    retries: u32,
) -> ConnectOptions {
    let defaults = ConnectOptions::default();
    let timeout = timeout.map(Duration::from_secs);
    ConnectOptions {
        insecure,
        ca_certificates: ca_cert.to_vec(),
        retry: RetryPolicy {
            attempts: retries + 1,
            ..defaults.retry
        },
        connect_timeout: timeout.unwrap_or(defaults.connect_timeout),
        read_timeout: timeout.unwrap_or(defaults.read_timeout),
    }
}

/// A retry, as a warning says it.
pub(crate) fn retry_message(
    what: &str,
    attempt: u32,
    attempts: u32,
    delay: Duration,
    error: &pack_registry_client::Error,
) -> String {
    format!(
        "{what}: attempt {attempt} of {attempts} failed ({}); retrying in {}",
        crate::diagnostics::chain(error),
        duration(delay)
    )
}

/// The password on stdin, without its trailing newline.
pub(crate) fn read_password_stdin() -> Result<Zeroizing<String>> {
    let mut password = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from stdin")?;
    let trimmed = Zeroizing::new(password.trim_end_matches(['\n', '\r']).to_string());
    if trimmed.is_empty() {
        bail!("--password-stdin: stdin is empty");
    }
    Ok(trimmed)
}

/// `--jobs` and `--json`.
#[derive(clap::Args, Debug, Clone)]
pub struct TransferArgs {
    /// Blobs moved at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Print the summary as JSON (no progress bars).
    #[arg(long)]
    pub json: bool,
}

/// A runtime for the network, built only by the commands that need one.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the network runtime")
}

/// The process's credential environment, its `PACK_REGISTRY_USERNAME`/`PASSWORD` scoped
/// to `registry` (the one the command was given) unless `PACK_REGISTRY` names another;
/// warns once when they are set but not for `registry`.
pub(crate) fn auth_env(printer: &Printer, registry: &str, explicit: bool) -> AuthEnv {
    let env = AuthEnv::from_process().for_command(registry);
    if !explicit && let Some(withheld) = env.withheld_from(registry) {
        printer.warn(&withheld.to_string());
    }
    env
}

/// Connects to `reference`'s registry with the credentials found for it: `explicit`, else
/// the environment's when they are for this registry (see [`auth_env`]), else the docker
/// config's.
pub(crate) async fn connect(
    printer: &Printer,
    reference: &pack_registry_client::Reference,
    args: &RegistryArgs,
    explicit: Option<Credentials>,
) -> Result<Registry> {
    let env = auth_env(printer, reference.registry(), explicit.is_some());
    let resolved = auth::resolve(reference.registry(), explicit, &env).map_err(into_anyhow)?;
    Registry::connect(reference, resolved, &args.connect_options())
        .await
        .map_err(into_anyhow)
}

/// A registry-client error for the CLI; a layout error becomes the packager's own, so it
/// gets the packager's hints.
pub(crate) fn into_anyhow(error: pack_registry_client::Error) -> anyhow::Error {
    match error {
        pack_registry_client::Error::Layout(e) => e.into(),
        other => other.into(),
    }
}

/// Send a bundle from a layout to a registry, with its signatures.
///
/// Sends every blob (those the repository already has are skipped; with --mount-from,
/// those another repository of the registry has are mounted), every manifest, the
/// signature manifests under their `sha256-<hex>.sig` tags, and the index under the tag
/// last, so nobody sees the tag before its content. Pushing again after an interruption
/// sends only what is missing.
///
/// The tag is REFERENCE's, or the layout's when REFERENCE has none.
///
/// Left out, LAYOUT is `[build] output` and `[build] tag` of `pack.toml` (PACK_OUTPUT,
/// PACK_TAG override them), and REFERENCE is `[push] repository` (PACK_REPOSITORY) with
/// that tag; see docs/pack-toml.md.
///
/// Credentials: --username with --password-stdin; else PACK_REGISTRY_USERNAME and
/// PACK_REGISTRY_PASSWORD, sent only to the registry PACK_REGISTRY (host[:port]) names,
/// or to REFERENCE's registry when PACK_REGISTRY is unset; else the docker config; else
/// anonymous.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack push                     # the bundle and repository of ./pack.toml
  pack push out/app ghcr.io/team/app:v1.2.0
  pack push out/app:v1.2.0 registry.example.com/team/app --mount-from team/base
  echo \"$TOKEN\" | pack push out/app ghcr.io/team/app -u team --password-stdin
  pack push out/app 127.0.0.1:5000/app --json

Exit status:
  0  pushed
  2  usage error or bad input (not a layout, no such tag, a registry that rejects it,
     an invalid pack.toml)
  3  the registry refused the credentials (or needs some)
  4  the registry cannot be reached (network, TLS, or retries ran out)")]
pub struct PushCommand {
    /// The bundle: a layout directory and a tag (default `latest`).
    #[arg(value_name = "LAYOUT[:TAG]")]
    pub source: Option<String>,

    /// Where to push: REGISTRY/REPOSITORY[:TAG].
    #[arg(value_name = "REFERENCE")]
    pub reference: Option<String>,

    /// The manifest to read when arguments are left out [default: ./pack.toml].
    #[arg(long, value_name = "FILE", env = "PACK_MANIFEST")]
    pub manifest: Option<PathBuf>,

    /// Mount blobs from this repository of the same registry when it has them.
    #[arg(long, value_name = "REPO")]
    pub mount_from: Option<String>,

    #[command(flatten)]
    pub transfer: TransferArgs,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl PushCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let plan = crate::manifest::PushPlan::resolve(
            self.manifest.as_deref(),
            self.source.clone(),
            self.reference.clone(),
        )?;
        let source = LayoutRef::parse(&plan.source);
        let (mut reference, explicit_tag) = pack_registry_client::parse_reference(&plan.reference)?;
        if !explicit_tag && reference.digest().is_none() {
            reference = pack_registry_client::Reference::with_tag(
                reference.registry().to_string(),
                reference.repository().to_string(),
                source.tag.clone(),
            );
        }
        let layout = Layout::open(&source.path)?;
        layout.resolve(&source.tag)?;
        let credentials = self.registry.explicit_credentials()?;
        let progress = TransferProgress::new(printer, !self.transfer.json, "sending");
        let options = PushOptions {
            jobs: usize::from(self.transfer.jobs),
            mount_from: self.mount_from.clone(),
        };
        let summary = runtime()?.block_on(async {
            let registry = connect(printer, &reference, &self.registry, credentials).await?;
            let summary = pack_registry_client::push(
                &registry,
                &layout,
                &source.tag,
                &reference,
                &options,
                &progress,
            )
            .await;
            summary.map_err(into_anyhow)
        });
        progress.clear();
        let summary = summary?;
        if self.transfer.json {
            printer.json(&summary)?;
        } else {
            print_summary(printer, "pushed", &summary, "sent");
        }
        Ok(Status::Success)
    }
}

/// The summary line of a push or pull; with `--quiet`, only `REFERENCE@DIGEST`.
pub(crate) fn print_summary(printer: &Printer, verb: &str, summary: &TransferSummary, moved: &str) {
    if printer.quiet() {
        printer.result(&format!("{}@{}", summary.reference, summary.digest));
        return;
    }
    let mut line = format!(
        "{GREEN}✓{GREEN:#} {verb} {BOLD}{}{BOLD:#} ({}): {} blob{} {moved} ({}), {} skipped",
        summary.reference,
        short_digest(&summary.digest, true),
        summary.blobs_transferred,
        if summary.blobs_transferred == 1 {
            ""
        } else {
            "s"
        },
        bytes(summary.bytes_transferred),
        summary.blobs_skipped,
    );
    if summary.blobs_mounted > 0 {
        line.push_str(&format!(", {} mounted", summary.blobs_mounted));
    }
    line.push_str(&format!(
        ", {} manifest{} written, in {}",
        summary.manifests_transferred,
        if summary.manifests_transferred == 1 {
            ""
        } else {
            "s"
        },
        duration(summary.duration)
    ));
    printer.result(&line);
    if !summary.signatures.is_empty() {
        printer.detail(&format!(
            "  {DIM}signatures: {}{DIM:#}",
            summary.signatures.join(", ")
        ));
    }
}

/// The CLI's [`Reporter`]: a byte-counting bar per blob and a total on a terminal (not
/// with `--quiet` or `--json`), and a warning for each retry (not with `--quiet`).
pub(crate) struct TransferProgress {
    printer: Printer,
    verb: &'static str,
    bars: Option<Bars>,
    /// Retries are warned about (on stderr) unless `--quiet`, `--json` included.
    warn: bool,
}

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    /// The bars of items in progress, with the bytes counted into the total.
    items: Mutex<HashMap<usize, (ProgressBar, u64)>>,
    /// Every bar, to remove them at the end.
    all: Mutex<Vec<ProgressBar>>,
}

impl TransferProgress {
    pub(crate) fn new(printer: &Printer, show: bool, verb: &'static str) -> Self {
        let warn = !printer.quiet();
        let show = show && warn;
        let bars = (show && printer.interactive() && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = multi.add(ProgressBar::new(0));
            total.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30.cyan/dim}] {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed:.dim}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            total.set_prefix("total");
            Bars {
                multi,
                total,
                items: Mutex::new(HashMap::new()),
                all: Mutex::new(Vec::new()),
            }
        });
        Self {
            printer: printer.clone(),
            verb,
            bars,
            warn,
        }
    }

    /// Removes the bars (the caller prints the summary).
    pub(crate) fn clear(&self) {
        if let Some(bars) = &self.bars {
            for bar in bars.all.lock().expect("progress bars").drain(..) {
                bar.finish_and_clear();
            }
            bars.total.finish_and_clear();
            let _ = bars.multi.clear();
        }
    }
}

fn blob_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix:.dim} [{bar:24}] {bytes}/{total_bytes} {msg}")
        .expect("valid template")
        .progress_chars("=> ")
}

impl Reporter for TransferProgress {
    fn on_plan(&self, _count: usize, total: u64) {
        if let Some(bars) = &self.bars {
            bars.total.set_length(total);
        }
    }

    fn on_start(&self, item: &Item) {
        let Some(bars) = &self.bars else { return };
        if item.manifest {
            return;
        }
        let bar = bars.multi.add(ProgressBar::new(item.size));
        bar.set_style(blob_style());
        bar.set_prefix(short_digest(item.digest.as_ref(), true));
        bar.set_message(self.verb);
        bars.all.lock().expect("progress bars").push(bar.clone());
        bars.items
            .lock()
            .expect("progress bars")
            .insert(item.id, (bar, 0));
    }

    fn on_progress(&self, id: usize, transferred: u64) {
        let Some(bars) = &self.bars else { return };
        let mut items = bars.items.lock().expect("progress bars");
        if let Some((bar, last)) = items.get_mut(&id) {
            if transferred >= *last {
                bars.total.inc(transferred - *last);
            } else {
                bars.total
                    .set_position(bars.total.position().saturating_sub(*last - transferred));
            }
            *last = transferred;
            bar.set_position(transferred);
        }
    }

    fn on_complete(&self, id: usize, outcome: Outcome) {
        let Some(bars) = &self.bars else { return };
        let mut items = bars.items.lock().expect("progress bars");
        if let Some((bar, last)) = items.remove(&id) {
            let size = bar.length().unwrap_or(0);
            bars.total.inc(size.saturating_sub(last));
            match outcome {
                Outcome::Transferred => bar.finish_with_message(format!("{GREEN}✓{GREEN:#}")),
                Outcome::Skipped => bar.finish_with_message("exists"),
                Outcome::Mounted => bar.finish_with_message("mounted"),
            }
        }
    }

    fn on_retry(
        &self,
        what: &str,
        attempt: u32,
        attempts: u32,
        delay: Duration,
        error: &pack_registry_client::Error,
    ) {
        if !self.warn {
            return;
        }
        let message = retry_message(what, attempt, attempts, delay, error);
        match &self.bars {
            Some(bars) => bars.multi.suspend(|| self.printer.warn(&message)),
            None => self.printer.warn(&message),
        }
    }
}
