//! `pack compile`: precompile a component for several targets.

use std::path::PathBuf;

use anyhow::Result;
use pack_compiler::compile::{self, Report, TargetError};
use pack_compiler::wasm::Input;

use crate::args::CompileArgs;
use crate::exit::Status;
use crate::printer::{BOLD, GREEN, Printer, RED};
use crate::progress::Progress;

/// Precompile a component for several platforms and CPU feature levels.
///
/// Writes one `.cwasm` per target, named `<stem>.<os>-<arch>[-<preset>].cwasm`, and
/// `compile.json`, which describes each artifact: target triple, OCI platform, CPU
/// flags, engine profile, wasmtime version and compatibility hash, digests and sizes.
/// A core module is precompiled as a module.
///
/// CPU features are explicit: without `--cpu` an artifact uses its architecture's
/// baseline (riscv64's includes the V extension), never the features of the machine
/// that compiles; only the `native` target or preset uses those.
///
/// Targets compile in parallel. A target that fails does not stop the others. Results
/// are cached by content (input, wasmtime version, target, CPU flags, profile), so
/// compiling the same input again only hashes it and copies the cached artifacts. Cache
/// entries are authenticated with PACK_CACHE_SECRET, else with the key file
/// ~/.config/pack/cache.key (made on first use): an entry another user or machine wrote
/// is compiled again, with a warning.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct CompileCommand {
    /// The component (or core module) to compile.
    pub input: PathBuf,

    #[command(flatten)]
    pub compile: CompileArgs,

    /// Output directory.
    #[arg(
        long = "out-dir",
        short = 'o',
        value_name = "DIR",
        default_value = "target/pack"
    )]
    pub out_dir: PathBuf,
}

const AFTER_HELP: &str = "\
Examples:
  pack compile app.wasm --target all
  pack compile app.wasm --target linux/amd64/v3 --target linux/arm64 --target pulley64
  pack compile app.wasm -t x86_64-unknown-linux-gnu --cpu x86-64-v2 --profile fuel.toml -o out/

Exit status:
  0  every target compiled
  1  at least one target failed (the others are still written and listed)
  2  usage error or bad input (unknown target or preset, file not found, not wasm,
     invalid wasm, a profile that does not parse, a PACK_CACHE_SECRET shorter than 16
     bytes)";

impl CompileCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let input = Input::read(&self.input)?;
        let options = self.compile.options(printer, self.out_dir.clone())?;
        let progress = Progress::new(printer, !printer.json_output());
        let outcome = compile::compile(&input, &options, &progress).map_err(|e| match e {
            // Bad input is reported exactly as `pack validate` reports it.
            compile::Error::Input(e) => anyhow::Error::from(e),
            other => other.into(),
        });
        progress.clear();
        let outcome = outcome?;
        let report = Report::new(
            &input,
            &outcome.source_sha256,
            &options.profile,
            &outcome.results,
        );
        let written = report.write(&options.out_dir)?;
        let ok = outcome.all_ok();
        if printer.json_output() {
            printer.json(&report)?;
        } else {
            print_results(printer, &report, &written);
        }
        for error in outcome.results.into_iter().filter_map(|r| r.err()) {
            let hint = hint(&error);
            crate::diagnostics::report(printer, &anyhow::Error::from(error));
            if let Some(hint) = hint {
                printer.hint(&hint);
            }
        }
        Ok(if ok {
            Status::Success
        } else {
            Status::Negative
        })
    }
}

fn print_results(printer: &Printer, report: &Report, written: &std::path::Path) {
    let width = report
        .artifacts
        .iter()
        .map(|a| a.target.to_string().len())
        .chain(report.failures.iter().map(|f| f.target.len()))
        .max()
        .unwrap_or(0);
    let path_width = report
        .artifacts
        .iter()
        .map(|a| a.path.display().to_string().chars().count())
        .max()
        .unwrap_or(0);
    for a in &report.artifacts {
        let how = if a.cache_hit {
            "cached".to_string()
        } else if let Some(functions) = &a.functions {
            format!(
                "{} ({})",
                crate::format::duration(std::time::Duration::from_millis(a.compile_time_ms)),
                crate::progress::functions(functions)
            )
        } else {
            crate::format::duration(std::time::Duration::from_millis(a.compile_time_ms))
        };
        printer.result(&format!(
            "{GREEN}✓{GREEN:#} {BOLD}{:<width$}{BOLD:#}  {:<path_width$}  {}, {how}",
            a.target.to_string(),
            a.path.display().to_string(),
            crate::format::bytes(a.size),
        ));
    }
    for f in &report.failures {
        printer.result(&format!(
            "{RED}✗{RED:#} {BOLD}{:<width$}{BOLD:#}  failed",
            f.target
        ));
    }
    printer.detail(&format!("wrote {}", written.display()));
}

/// A known fix for a target's failure.
fn hint(error: &TargetError) -> Option<String> {
    use pack_compiler::compile::{Arch, Cpu};
    let target = error.target();
    match (error, target.arch(), target.cpu()) {
        (TargetError::Panic { .. }, Arch::Riscv64, Cpu::Preset(p))
            if !p.flags.contains(&"has_v") =>
        {
            Some(
                "Cranelift cannot compile most components for riscv64 without the V extension; \
             use the default preset (rva23u64), e.g. `--target linux/riscv64`"
                    .to_string(),
            )
        }
        (TargetError::Panic { .. }, _, _) => Some(
            "this is a bug in the compiler; other CPU presets or profiles may avoid it".to_string(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        cmd: super::CompileCommand,
    }

    #[test]
    fn parses_targets_and_rejects_unknown_ones() {
        let cli = Cli::try_parse_from([
            "x",
            "a.wasm",
            "-t",
            "all",
            "--target",
            "pulley64,linux/amd64/v3",
        ])
        .unwrap();
        assert_eq!(cli.cmd.compile.targets, ["all", "pulley64,linux/amd64/v3"]);
        let err = Cli::try_parse_from(["x", "a.wasm", "--target", "linux/mips"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("unknown target `linux/mips`") && text.contains("linux/s390x"),
            "{text}"
        );
        assert!(
            Cli::try_parse_from(["x", "a.wasm", "-t", "all", "--no-cache", "--cache-dir", "d"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["x", "a.wasm", "-t", "all", "--jobs", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "a.wasm"]).is_err());
    }
}
