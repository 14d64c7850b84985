//! Progress of work on several items at once (targets being compiled, blobs being
//! pushed): one indicatif bar per item on a terminal, plain status lines otherwise,
//! nothing with `--quiet` or `--json`.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pack_compiler::compile::{Artifact, FunctionStats, Reporter, Stage, Target, TargetError};

use crate::printer::{DIM, GREEN, Printer, RED};

enum Mode {
    /// Bars on stderr.
    Bars {
        multi: MultiProgress,
        bars: Mutex<Vec<ProgressBar>>,
    },
    /// A status line per event on stderr.
    Lines,
    /// Nothing but warnings.
    Silent,
}

/// Shows progress of items identified by their index.
pub struct Progress {
    printer: Printer,
    mode: Mode,
    names: Mutex<Vec<String>>,
    /// Items whose cache hit came from the shared cache in a registry.
    remote: Mutex<Vec<usize>>,
}

impl Progress {
    /// Bars when the printer is interactive, lines when it is not, nothing when `show`
    /// is false (`--json`) or the printer is quiet.
    pub fn new(printer: &Printer, show: bool) -> Progress {
        let mode = if !show || printer.quiet() {
            Mode::Silent
        } else if printer.interactive() {
            Mode::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(Vec::new()),
            }
        } else {
            Mode::Lines
        };
        Progress {
            printer: printer.clone(),
            mode,
            names: Mutex::new(Vec::new()),
            remote: Mutex::new(Vec::new()),
        }
    }

    /// Marks item `index` as fetched from a registry's shared cache.
    pub fn mark_remote(&self, index: usize) {
        if let Ok(mut remote) = self.remote.lock() {
            remote.push(index);
        }
    }

    fn name(&self, index: usize) -> String {
        self.names
            .lock()
            .ok()
            .and_then(|n| n.get(index).cloned())
            .unwrap_or_default()
    }

    /// Adds an item (waiting); returns its index.
    pub fn add(&self, name: &str) -> usize {
        let mut names = self.names.lock().expect("progress names");
        names.push(name.to_string());
        if let Mode::Bars { multi, bars } = &self.mode {
            let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(spinner_style(width));
            bar.set_prefix(name.to_string());
            bar.set_message("waiting");
            let mut bars = bars.lock().expect("progress bars");
            for b in bars.iter() {
                b.set_style(spinner_style(width));
            }
            bars.push(bar);
        }
        names.len() - 1
    }

    /// Item `index` moved on to `what` (e.g. "compiling").
    pub fn update(&self, index: usize, what: &str) {
        match &self.mode {
            Mode::Bars { bars, .. } => {
                if let Some(bar) = bars.lock().ok().and_then(|b| b.get(index).cloned()) {
                    // The clock starts when work does, not when the item was queued.
                    if bar.position() == 0 {
                        bar.reset_elapsed();
                        bar.set_position(1);
                    }
                    bar.set_message(what.to_string());
                    bar.enable_steady_tick(Duration::from_millis(120));
                }
            }
            Mode::Lines => self
                .printer
                .status(&format!("{DIM}{}: {what}{DIM:#}", self.name(index))),
            Mode::Silent => {}
        }
    }

    /// Item `index` is done; `summary` says how it ended.
    pub fn finish(&self, index: usize, ok: bool, summary: &str) {
        let name = self.name(index);
        let mark = if ok {
            format!("{GREEN}✓{GREEN:#}")
        } else {
            format!("{RED}✗{RED:#}")
        };
        match &self.mode {
            Mode::Bars { bars, .. } => {
                if let Some(bar) = bars.lock().ok().and_then(|b| b.get(index).cloned()) {
                    bar.set_style(done_style(bar_prefix_width(&self.names)));
                    bar.finish_with_message(format!("{mark} {summary}"));
                }
            }
            // The command prints the results; a failure's line helps to follow a log.
            Mode::Lines if !ok => self.printer.status(&format!("{mark} {name}: {summary}")),
            Mode::Lines => {}
            Mode::Silent => {}
        }
    }

    /// A warning, printed above the bars.
    pub fn warn(&self, message: &str) {
        match &self.mode {
            Mode::Bars { multi, .. } => multi.suspend(|| self.printer.warn(message)),
            _ => self.printer.warn(message),
        }
    }

    /// Removes the bars (the caller prints the results).
    pub fn clear(&self) {
        if let Mode::Bars { multi, .. } = &self.mode {
            let _ = multi.clear();
        }
    }
}

fn bar_prefix_width(names: &Mutex<Vec<String>>) -> usize {
    names
        .lock()
        .map(|n| n.iter().map(|s| s.len()).max().unwrap_or(0))
        .unwrap_or(0)
}

fn spinner_style(width: usize) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{spinner:.cyan}} {{prefix:<{width}.bold}} {{msg}} {{elapsed:.dim}}"
    ))
    .expect("valid template")
    .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

fn done_style(width: usize) -> ProgressStyle {
    ProgressStyle::with_template(&format!("  {{prefix:<{width}.bold}} {{msg}}"))
        .expect("valid template")
}

/// What the function-level cache did: `12 functions compiled, 40210 from the function
/// cache`.
pub fn functions(stats: &FunctionStats) -> String {
    format!(
        "{} compiled, {} from the function cache",
        crate::format::plural(stats.compiled, "function"),
        stats.cached
    )
}

impl Reporter for Progress {
    fn on_queued(&self, _index: usize, target: &Target) {
        self.add(&target.to_string());
    }

    fn on_start(&self, index: usize, _target: &Target, stage: Stage) {
        // Status lines (no terminal) only mark the long step.
        if matches!(self.mode, Mode::Lines) && stage != Stage::Compiling {
            return;
        }
        self.update(
            index,
            match stage {
                Stage::CheckingCache => "checking the cache",
                Stage::Compiling => "compiling",
                Stage::Writing => "writing",
            },
        );
    }

    fn on_complete(&self, index: usize, result: Result<&Artifact, &TargetError>) {
        match result {
            Ok(artifact) => {
                let remote = self.remote.lock().is_ok_and(|r| r.contains(&index));
                let how = if artifact.cache_hit && remote {
                    "cache hit (registry)".to_string()
                } else if artifact.cache_hit {
                    "cached".to_string()
                } else {
                    let counts = artifact
                        .functions
                        .map(|f| format!(": {}", functions(&f)))
                        .unwrap_or_default();
                    format!(
                        "compiled in {}{counts}",
                        crate::format::duration(Duration::from_millis(artifact.compile_time_ms))
                    )
                };
                // The CI log: how the long step ended, with what the function cache did.
                if matches!(self.mode, Mode::Lines) && artifact.functions.is_some() {
                    self.printer.status(&format!("{}: {how}", self.name(index)));
                }
                self.finish(
                    index,
                    true,
                    &format!(
                        "{} ({}, {how})",
                        artifact.file,
                        crate::format::bytes(artifact.size)
                    ),
                );
            }
            Err(_) => self.finish(index, false, "failed"),
        }
    }

    fn on_warning(&self, message: &str) {
        self.warn(message);
    }
}
