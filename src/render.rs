//! Human renderings that more than one command prints.

use std::path::Path;

use pack_compiler::validate::Report;

use crate::format::count;
use crate::printer::{BOLD, DIM, GREEN, Printer, RED, YELLOW};

/// The result of validating `component`: a line, then one per mismatch and note.
pub(crate) fn validation_report(printer: &Printer, component: &Path, report: &Report) {
    let name = component.display();
    let mode = if report.strict { " (strict)" } else { "" };
    if report.conforms {
        printer.result(&format!(
            "{GREEN}✓{GREEN:#} {BOLD}{name}{BOLD:#} conforms to {BOLD}{}{BOLD:#}{mode} ({}, {})",
            report.world,
            count(report.imports.len(), "import", "imports"),
            count(report.exports.len(), "export", "exports"),
        ));
    } else {
        printer.result(&format!(
            "{RED}✗{RED:#} {BOLD}{name}{BOLD:#} does not conform to {BOLD}{}{BOLD:#}{mode}: {}",
            report.world,
            count(report.mismatches.len(), "mismatch", "mismatches"),
        ));
        for m in &report.mismatches {
            printer.result(&format!(
                "  {RED}{}{RED:#}: {}",
                m.kind.describe(),
                m.message
            ));
        }
    }
    for note in &report.notes {
        printer.detail(&format!("  {YELLOW}note{YELLOW:#}: {DIM}{note}{DIM:#}"));
    }
}
