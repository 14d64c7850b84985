//! Rendering errors: `error: ...`, a `Caused by:` chain, and `hint:` lines where the fix
//! is known.

use std::process::ExitCode;

use crate::exit::ExitStatus;
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
    ExitCode::from(exit_code(error))
}

/// The exit status of an error: registry auth and network failures have their own.
fn exit_code(error: &anyhow::Error) -> ExitStatus {
    if find::<crate::build::plan::BuildCommandFailed>(error).is_some() {
        return ExitStatus::BuildCommand;
    }
    use pack_registry_client::ErrorKind as K;
    match find::<pack_registry_client::Error>(error).map(pack_registry_client::Error::kind) {
        Some(K::Auth) => ExitStatus::RegistryAuth,
        Some(K::Network) => ExitStatus::Network,
        Some(K::Unverified) => ExitStatus::Negative,
        _ => ExitStatus::BadInput,
    }
}

/// The first error of type `E` in `error`'s chain: the typed errors of the libraries,
/// however many layers of context wrap them.
fn find<E: std::error::Error + Send + Sync + 'static>(error: &anyhow::Error) -> Option<&E> {
    error.chain().find_map(|e| e.downcast_ref::<E>())
}

/// The reasons of a refused bundle say it was signed for another repository.
fn signed_elsewhere(reasons: &[String]) -> bool {
    reasons.iter().any(|r| r.contains("signed for `"))
}

const SIGNED_ELSEWHERE: &str = "the bundle was signed for another repository: pull it from \
    that one, or pass --allow-reference <PATTERN> for the repositories you trust (a mirror)";

/// A known fix for a registry error.
fn registry_hint(error: &anyhow::Error) -> Option<String> {
    use pack_registry_client::{Error as R, ErrorKind as K};
    let registry = find::<R>(error)?;
    let codes = registry.registry_codes();
    Some(match registry {
        _ if registry.is_tls() => {
            "the registry's certificate is not trusted, or it does not speak \
            TLS: pass --ca-cert with the CA that signed it, or --insecure for a plain-HTTP \
            registry"
                .to_string()
        }
        R::Unauthorized { .. } => "check the username and password (or token): pass \
            --username with --password-stdin, set PACK_REGISTRY_USERNAME and \
            PACK_REGISTRY_PASSWORD (sent only to the registry PACK_REGISTRY names, when \
            set), or run `pack login <REGISTRY>`"
            .to_string(),
        R::Denied { .. } => "the credentials are valid but may not do this: check the \
            account's permissions on the repository"
            .to_string(),
        R::NotFound { operation, .. } if operation.action.starts_with("fetch manifest") => {
            format!(
                "check the tag or digest; `{}/{}` has no such manifest",
                operation.registry, operation.repository
            )
        }
        R::Registry { .. } if codes.contains(&"MANIFEST_BLOB_UNKNOWN") => {
            "the registry lacks a blob the manifest references: push the whole layout again"
                .to_string()
        }
        R::Registry { .. } if codes.contains(&"NAME_INVALID") => {
            "repository names are lowercase letters, digits and separators (`.`, `_`, `-`, `/`)"
                .to_string()
        }
        R::Unverified { reasons, .. } if signed_elsewhere(reasons) => SIGNED_ELSEWHERE.to_string(),
        R::Unverified { .. } => {
            "pass the public key that signed it, or sign the bundle and push it again".to_string()
        }
        R::NoMatchingPlatform { .. } => "pass one of the platforms listed".to_string(),
        R::RetriesExhausted { .. } => "the registry kept failing: run the command again \
            later (it moves only what did not arrive), or allow more with --retries and \
            --timeout"
            .to_string(),
        _ if registry.kind() == K::Network => {
            "check the registry address and that it is up; plain-HTTP registries need \
             --insecure unless they are on a loopback address"
                .to_string()
        }
        _ => return None,
    })
}

/// A known fix for an error, when there is one.
fn hint(error: &anyhow::Error) -> Option<String> {
    if let Some(hint) = packager_hint(error) {
        return Some(hint);
    }
    if let Some(hint) = registry_hint(error) {
        return Some(hint);
    }
    if let Some(hint) = host_hint(error) {
        return Some(hint);
    }
    if let Some(secret) = find::<pack_compiler::compile::SecretError>(error) {
        return Some(secret.hint());
    }
    use pack_compiler::Error as C;
    let compiler = find::<C>(error)?;
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
    let packager = find::<P>(error)?;
    Some(match packager {
        P::NotALayout { .. } => {
            "pass the directory that holds `oci-layout` and `index.json`".to_string()
        }
        P::Untrusted(refusal) => return refusal.hint(),
        P::BlobMissing { .. } => "the layout lacks it: pull it again without --platform (or \
             with --all-layers, which keeps the fallback layers), build it again, or copy it \
             again from its source"
            .to_string(),
        P::DigestMismatch { .. } | P::SizeMismatch { .. } | P::BadCompressedLayer { .. } => {
            "the layout is damaged: build it again or copy it again from its source".to_string()
        }
        P::SharedLayout { layout, .. } => format!(
            "make it writable by its owner only (`chmod -R go-w {}`), or build into a new \
             layout",
            layout.display()
        ),
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

/// The warning for a bundle whose verified signatures name no repository (`references`,
/// pack's default for a layout signed without `--reference`) where one was expected.
pub(crate) fn unbound_signature(bundle: &str, references: &[&str]) -> String {
    format!(
        "the signature of `{bundle}` names no repository (reference `{}`, as pack writes for \
         a layout signed without --reference): nothing binds it to the repository expected; \
         sign with `--reference REGISTRY/REPOSITORY`",
        references.join("`, `")
    )
}

/// A known fix for an error of the host (`pack run`, `pack serve`).
fn host_hint(error: &anyhow::Error) -> Option<String> {
    use pack_host::Error as H;
    let host = find::<H>(error)?;
    Some(match host {
        H::NoTrustedKeys { .. } => {
            "pass --key <PUB>, or --insecure-skip-verify to run it unsigned".to_string()
        }
        H::Unverified { reasons, .. } if signed_elsewhere(reasons) => SIGNED_ELSEWHERE.to_string(),
        H::Unverified { .. } => {
            "check --key; `pack verify <LAYOUT> --key <PUB>` lists the signatures".to_string()
        }
        H::NoArtifact {
            jit_possible: true, ..
        } => "build the bundle for this machine (`pack build ... --target native`), or pass \
              --allow-jit to compile the portable component here"
            .to_string(),
        H::NotRunnable { .. } => "`pack inspect` shows what the component exports".to_string(),
        H::NotInStore { .. } => {
            "run it once with --pull missing (or always) to pull it into the store".to_string()
        }
        _ => return None,
    })
}

/// `error: cause: cause` on one line, for warnings.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
