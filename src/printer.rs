//! All terminal output goes through [`Printer`]: results on stdout, status and errors on
//! stderr, colors only on a terminal and outside CI.

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};

/// `--color`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

pub const GREEN: Style = AnsiColor::Green.on_default().bold();
pub const RED: Style = AnsiColor::Red.on_default().bold();
pub const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
pub const CYAN: Style = AnsiColor::Cyan.on_default().bold();
pub const BOLD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();

/// True when running in CI (`CI` set to anything but `false`/`0`).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v != "false" && v != "0" && !v.is_empty())
}

/// The one place that writes to the terminal.
#[derive(Debug, Clone)]
pub struct Printer {
    quiet: bool,
    /// `--json`: the command's result is a JSON document (or JSON events).
    json: bool,
    /// Whether stderr is an interactive terminal outside CI (progress bars allowed).
    interactive: bool,
}

impl Printer {
    /// With `json`, no progress bars and no colors, whatever `color` says: what is printed
    /// is for a program.
    pub fn new(color: ColorArg, quiet: bool, json: bool) -> Self {
        let interactive = std::io::stderr().is_terminal() && !in_ci() && !json;
        let color = if json { ColorArg::Never } else { color };
        let choice = match color {
            ColorArg::Always => anstream::ColorChoice::Always,
            ColorArg::Never => anstream::ColorChoice::Never,
            ColorArg::Auto => {
                if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) || in_ci() {
                    anstream::ColorChoice::Never
                } else {
                    anstream::ColorChoice::Auto
                }
            }
        };
        choice.write_global();
        Self {
            quiet,
            json,
            interactive,
        }
    }

    /// Whether progress bars may be drawn.
    #[allow(dead_code)]
    pub fn interactive(&self) -> bool {
        self.interactive && !self.quiet
    }

    /// Whether `--json` was given: print the result as JSON (docs/json.md).
    pub fn json_output(&self) -> bool {
        self.json
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// A line of the command's result on stdout (kept with `--quiet`).
    pub fn result(&self, line: &str) {
        let _ = writeln!(anstream::stdout(), "{line}");
    }

    /// A JSON document on stdout.
    pub fn json<T: serde::Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let mut out = anstream::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
        Ok(())
    }

    /// An event of a long-running command (`pack run --json`, `pack serve --json`): one
    /// JSON line on stderr, kept with `--quiet`.
    pub fn event<T: serde::Serialize>(&self, value: &T) {
        if let Ok(line) = serde_json::to_string(value) {
            let _ = writeln!(anstream::stderr(), "{line}");
        }
    }

    /// A line of detail on stdout, left out with `--quiet`.
    pub fn detail(&self, line: &str) {
        if !self.quiet {
            self.result(line);
        }
    }

    /// A status line on stderr, left out with `--quiet`.
    #[allow(dead_code)]
    pub fn status(&self, line: &str) {
        if !self.quiet {
            let _ = writeln!(anstream::stderr(), "{line}");
        }
    }

    /// Text from another program (a build command's log) on stderr, as it is.
    pub fn log(&self, text: &str) {
        let mut err = anstream::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if !text.is_empty() && !text.ends_with('\n') {
            let _ = writeln!(err);
        }
    }

    pub fn warn(&self, message: &str) {
        let _ = writeln!(anstream::stderr(), "{YELLOW}warning{YELLOW:#}: {message}");
    }

    pub fn error(&self, message: &str) {
        let _ = writeln!(anstream::stderr(), "{RED}error{RED:#}: {message}");
    }

    pub fn hint(&self, message: &str) {
        let _ = writeln!(anstream::stderr(), "{CYAN}hint{CYAN:#}: {message}");
    }
}
