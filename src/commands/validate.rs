//! `pack validate`: check a component against a WIT world.

use std::path::PathBuf;

use anyhow::Result;
use pack_compiler::validate::{self, Options, Report};
use pack_compiler::wasm::Input;
use pack_compiler::wit::Wit;

use crate::exit::Status;
use crate::printer::Printer;

/// Check that a component will link on a host that provides a WIT world.
///
/// Every export the world requires must be exported with a compatible type, and every
/// import the component makes must be provided by the world. Versioned names match the
/// way wasmtime's linker matches them (semver-compatible: `wasi:io/poll@0.2.9` is served
/// by the world's `wasi:io/poll@0.2.12`), then types are compared item by item. Every
/// mismatch is reported, not only the first.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack validate app.wasm --wit wit/ --world cli
  pack validate app.wasm --wit wit/world.wit --strict --json

Exit status:
  0  the component conforms to the world
  1  it does not; every mismatch is listed
  2  usage error or bad input (file not found, not a component, invalid wasm, WIT that
     does not parse, a world that does not exist)")]
pub struct ValidateCommand {
    /// The component (`.wasm`) to check.
    pub component: PathBuf,

    /// A WIT file, or a directory with `.wit` files and an optional `deps/` folder.
    #[arg(long, value_name = "PATH")]
    pub wit: PathBuf,

    /// The world: `name` in the main package or `ns:pkg/name[@version]`. May be left out
    /// when the package defines exactly one world.
    #[arg(long, value_name = "WORLD")]
    pub world: Option<String>,

    /// Match names exactly, versions included (the verdict of
    /// `wasm-tools component targets`).
    #[arg(long)]
    pub strict: bool,
}

/// The JSON document `--json` prints.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    verdict: &'static str,
    component: &'a std::path::Path,
    wit: &'a std::path::Path,
    #[serde(flatten)]
    report: &'a Report,
}

impl ValidateCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let wit = Wit::load(&self.wit)?;
        let world = wit.world(self.world.as_deref())?;
        let input = Input::map(&self.component)?;
        let report = validate::check(
            &input,
            &wit,
            world,
            Options {
                strict: self.strict,
            },
        )?;
        if printer.json_output() {
            printer.json(&JsonReport {
                verdict: if report.conforms {
                    "conforms"
                } else {
                    "does-not-conform"
                },
                component: &self.component,
                wit: &self.wit,
                report: &report,
            })?;
        } else {
            crate::render::validation_report(printer, &self.component, &report);
        }
        Ok(if report.conforms {
            Status::Success
        } else {
            Status::Negative
        })
    }
}
