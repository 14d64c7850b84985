//! `pack cache`: inspect and trim the compiled-artifact cache.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pack_compiler::compile::{Cache, PruneOptions, PruneReport, wasmtime_version};

use crate::exit::Status;
use crate::format::{bytes, count};
use crate::printer::{BOLD, DIM, Printer};

/// Inspect and trim the cache of compiled artifacts that `pack compile` keeps.
///
/// The cache is content-addressed and safe to share between concurrent `pack`
/// processes; removing entries only means they are compiled again when next needed.
/// Entries are authenticated with a secret kept outside the cache (PACK_CACHE_SECRET,
/// else ~/.config/pack/cache.key): entries another machine or user wrote are not used.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack cache info
  pack cache prune --older-than 30d
  pack cache clear --cache-dir /tmp/pack-cache

Exit status:
  0  success
  2  usage error, or the cache could not be read or changed")]
pub struct CacheCommand {
    #[command(subcommand)]
    pub action: CacheAction,

    /// Cache directory [default: $PACK_CACHE_DIR, else $XDG_CACHE_HOME/pack, else
    /// ~/.cache/pack].
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum CacheAction {
    /// Show where the cache is, how many entries it holds and their size, per wasmtime
    /// version, and the size of the function-level cache.
    #[command(after_help = "\
Examples:
  pack cache info
  pack cache info --json

Exit status:
  0  success
  2  usage error, or the cache could not be read")]
    Info,
    /// Remove entries of other wasmtime versions (which this pack cannot use) and,
    /// with --older-than, entries and function caches not used for that long.
    #[command(after_help = "\
Examples:
  pack cache prune
  pack cache prune --older-than 30d

Exit status:
  0  success
  2  usage error, or the cache could not be changed")]
    Prune {
        /// Also remove entries not used for this long: a number and a unit, s, m, h, d
        /// or w (e.g. `30d`, `12h`, `1w2d`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: Option<Duration>,
        /// Keep the entries of other wasmtime versions.
        #[arg(long)]
        keep_other_versions: bool,
    },
    /// Remove every entry.
    #[command(after_help = "\
Examples:
  pack cache clear

Exit status:
  0  success
  2  usage error, or the cache could not be changed")]
    Clear,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Removed<'a> {
    path: &'a std::path::Path,
    removed_entries: u64,
    removed_bytes: u64,
    /// Function cache segments removed (their bytes are in `removed_bytes`).
    removed_function_segments: u64,
}

impl CacheCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let Some(dir) = self.cache_dir.clone().or_else(Cache::default_dir) else {
            bail!("no cache directory: pass --cache-dir, or set PACK_CACHE_DIR or HOME");
        };
        // Counting and removing entries needs no secret.
        let cache = Cache::for_maintenance(dir);
        match self.action {
            CacheAction::Info => {
                let info = cache.info()?;
                if printer.json_output() {
                    printer.json(&info)?;
                } else {
                    printer.result(&format!(
                        "{BOLD}{}{BOLD:#}: {}, {}",
                        info.path.display(),
                        count(info.entries, "entry", "entries"),
                        bytes(info.bytes)
                    ));
                    for v in &info.versions {
                        let current = if v.wasmtime_version == wasmtime_version() {
                            " (this pack)"
                        } else {
                            " (unused by this pack; `pack cache prune` removes them)"
                        };
                        let functions = if v.function_segments > 0 {
                            format!(
                                " (function cache: {} target(s), {})",
                                v.function_segments,
                                bytes(v.function_bytes)
                            )
                        } else {
                            String::new()
                        };
                        printer.detail(&format!(
                            "  wasmtime {}: {} entries, {}{functions}{DIM}{current}{DIM:#}",
                            v.wasmtime_version,
                            v.entries,
                            bytes(v.bytes)
                        ));
                    }
                }
            }
            CacheAction::Prune {
                older_than,
                keep_other_versions,
            } => {
                let report = cache
                    .prune(&PruneOptions {
                        older_than,
                        other_versions: !keep_other_versions,
                    })
                    .context("cannot prune the cache")?;
                self.print_removed(printer, &cache, &report, "pruned")?;
            }
            CacheAction::Clear => {
                let report = cache.clear().context("cannot clear the cache")?;
                self.print_removed(printer, &cache, &report, "cleared")?;
            }
        }
        Ok(Status::Success)
    }

    fn print_removed(
        &self,
        printer: &Printer,
        cache: &Cache,
        report: &PruneReport,
        verb: &str,
    ) -> Result<()> {
        if printer.json_output() {
            printer.json(&Removed {
                path: cache.root(),
                removed_entries: report.entries,
                removed_bytes: report.bytes,
                removed_function_segments: report.function_segments,
            })?;
        } else {
            let segments = if report.function_segments > 0 {
                format!(
                    " and the function cache of {} target(s)",
                    report.function_segments
                )
            } else {
                String::new()
            };
            printer.result(&format!(
                "{verb} {}: removed {}{segments} ({})",
                cache.root().display(),
                count(report.entries, "entry", "entries"),
                bytes(report.bytes)
            ));
        }
        Ok(())
    }
}

/// `30d`, `12h`, `90m`, `45s`, `2w`, or several of them (`1d12h`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration `{text}`: use a number and a unit, s, m, h, d or w (e.g. 30d)")
    };
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = rest[digits..].chars().next().ok_or_else(bad)?;
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        total += Duration::from_secs(n.checked_mul(secs).ok_or_else(bad)?);
        rest = &rest[digits + unit.len_utf8()..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "30", "d", "3x", "1d-2h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
