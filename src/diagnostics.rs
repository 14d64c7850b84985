//! Rendering errors: `error: ...`, a `Caused by:` chain, and `hint:` lines where the fix
//! is known.

use std::process::ExitCode;

use crate::exit;
use crate::printer::Printer;

/// Prints `error` and returns the exit code it maps to.
pub fn report(printer: &Printer, error: &anyhow::Error) -> ExitCode {
    // A closed pipe (`pack ... | head`) is not an error worth reporting.
    if let Some(io) = error.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return ExitCode::SUCCESS;
    }
    let mut chain = error.chain();
    let mut text = String::new();
    if let Some(top) = chain.next() {
        text.push_str(&top.to_string());
    }
    let causes: Vec<String> = chain.map(|c| c.to_string()).collect();
    if !causes.is_empty() {
        text.push_str("\n\nCaused by:");
        for cause in causes {
            text.push_str("\n  ");
            text.push_str(&cause.replace('\n', "\n  "));
        }
    }
    printer.error(&text);
    if let Some(hint) = hint(error) {
        printer.hint(&hint);
    }
    ExitCode::from(exit::BAD_INPUT)
}

/// A known fix for an error, when there is one.
fn hint(error: &anyhow::Error) -> Option<String> {
    if let Some(hint) = packager_hint(error) {
        return Some(hint);
    }
    use pack_compiler::Error as C;
    let compiler = error.chain().find_map(|e| e.downcast_ref::<C>())?;
    Some(match compiler {
        C::CoreModule { path } => format!(
            "wrap the module into a component first, e.g. `wasm-tools component new {}`",
            path.display()
        ),
        C::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "check the path; it is resolved against the current directory".to_string()
        }
        C::WorldNotFound { .. } => "pass one of the worlds listed with --world".to_string(),
        _ => return None,
    })
}

/// A known fix for an error of the packager (layouts, bundles, keys).
fn packager_hint(error: &anyhow::Error) -> Option<String> {
    use pack_packager::Error as P;
    let packager = error.chain().find_map(|e| e.downcast_ref::<P>())?;
    Some(match packager {
        P::NotALayout { .. } => {
            "pass the directory that holds `oci-layout` and `index.json`".to_string()
        }
        P::DigestMismatch { .. } | P::SizeMismatch { .. } | P::BlobMissing { .. } => {
            "the layout is damaged: build it again or copy it again from its source".to_string()
        }
        P::PasswordRequired { .. } => {
            "set PACK_KEY_PASSWORD, or run from a terminal to be asked for it".to_string()
        }
        P::WrongPassword { .. } => "check PACK_KEY_PASSWORD".to_string(),
        P::KeyExists { .. } => {
            "pass --force to replace it, or choose another --output-prefix".to_string()
        }
        P::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "check the path; it is resolved against the current directory".to_string()
        }
        _ => return None,
    })
}
