//! What the commands that talk to a registry share: the runtime, connecting with the
//! right credentials, the password from stdin, retry warnings, transfer progress bars and
//! the transfer summary.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pack_registry_client::auth::{self, AuthEnv, Credentials};
use pack_registry_client::{
    ConnectOptions, Item, Outcome, Registry, Reporter, RetryPolicy, TransferSummary,
};
use zeroize::Zeroizing;

use crate::args::RegistryArgs;
use crate::format::{bytes, duration, plural, short_digest};
use crate::printer::{BOLD, DIM, GREEN, Printer};

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

/// Connects to `reference`'s registry (with [`RegistryArgs`]' credentials, else those
/// found for it) and runs `run`, a push or a pull, with progress bars that say `verb`;
/// the bars are gone when it returns.
pub(crate) fn transfer<T>(
    printer: &Printer,
    reference: &pack_registry_client::Reference,
    args: &RegistryArgs,
    verb: &'static str,
    run: impl AsyncFnOnce(&Registry, &TransferProgress) -> pack_registry_client::Result<T>,
) -> Result<T> {
    let credentials = args.explicit_credentials()?;
    let progress = TransferProgress::new(printer, !printer.json_output(), verb);
    let result = runtime()?.block_on(async {
        let registry = connect(printer, reference, args, credentials).await?;
        run(&registry, &progress).await.map_err(into_anyhow)
    });
    progress.clear();
    result
}

/// The summary line of a push or pull; with `--quiet`, only `REFERENCE@DIGEST`.
pub(crate) fn print_summary(printer: &Printer, verb: &str, summary: &TransferSummary, moved: &str) {
    if printer.quiet() {
        printer.result(&format!("{}@{}", summary.reference, summary.digest));
        return;
    }
    let mut line = format!(
        "{GREEN}✓{GREEN:#} {verb} {BOLD}{}{BOLD:#} ({}): {} {moved} ({}), {} skipped",
        summary.reference,
        short_digest(&summary.digest, true),
        plural(summary.blobs_transferred, "blob"),
        bytes(summary.bytes_transferred),
        summary.blobs_skipped,
    );
    if summary.blobs_mounted > 0 {
        line.push_str(&format!(", {} mounted", summary.blobs_mounted));
    }
    line.push_str(&format!(
        ", {} written, in {}",
        plural(summary.manifests_transferred, "manifest"),
        duration(summary.duration)
    ));
    printer.result(&line);
    if !summary.signatures.is_empty() {
        printer.detail(&format!(
            "  {DIM}signatures: {}{DIM:#}",
            summary.signatures.join(", ")
        ));
    }
    if !summary.referrers.is_empty() {
        let referrers: Vec<String> = summary
            .referrers
            .iter()
            .map(|d| short_digest(d, true))
            .collect();
        printer.detail(&format!(
            "  {DIM}referrers: {}{DIM:#}",
            referrers.join(", ")
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
