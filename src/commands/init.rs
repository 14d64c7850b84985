//! `pack init`: write a commented `pack.toml` for a component.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use pack_compiler::validate;
use pack_compiler::wasm::Input;

use crate::exit::Status;
use crate::manifest::{FILE_NAME, Manifest};
use crate::printer::{BOLD, GREEN, Printer};

/// Write a commented `pack.toml` for a component.
///
/// Reads the component to see what it is (a `wasi:cli` command, a `wasi:http` handler,
/// or a library of exports) and writes a manifest that `pack build` and `pack push` read
/// when their arguments are left out. Every key is explained in the file; see
/// docs/pack-toml.md. An existing manifest is kept unless --force is given.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  pack init target/wasm32-wasip2/release/app.wasm
  pack init app.wasm --dir ci/ --force --json

Exit status:
  0  the manifest was written
  2  usage error or bad input (not a component, invalid wasm, a manifest that already
     exists without --force)")]
pub struct InitCommand {
    /// The component (`.wasm`) the manifest is for.
    pub component: PathBuf,

    /// The directory to write `pack.toml` into (the project root).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Replace an existing `pack.toml`.
    #[arg(long)]
    pub force: bool,
}

/// What the component is, from its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Exports `wasi:http/incoming-handler`: served by `pack run`.
    HttpHandler,
    /// Exports `wasi:cli/run`: run as a command.
    Command,
    /// Anything else: exports for another component or host to call.
    Library,
}

impl Kind {
    pub fn of(exports: &[String]) -> Kind {
        let has = |prefix: &str| exports.iter().any(|e| e.starts_with(prefix));
        if has("wasi:http/incoming-handler") {
            Kind::HttpHandler
        } else if has("wasi:cli/run") {
            Kind::Command
        } else {
            Kind::Library
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::HttpHandler => "a wasi:http/proxy handler (`pack run` serves it)",
            Kind::Command => "a wasi:cli command (`pack run` runs it)",
            Kind::Library => "a component of exports for a host or another component",
        }
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Written<'a> {
    manifest: &'a Path,
    component: &'a Path,
    kind: Kind,
    exports: &'a [String],
}

impl InitCommand {
    pub fn execute(self, printer: &Printer) -> Result<Status> {
        let input = Input::read(&self.component)?;
        input.expect_component()?;
        let iface = validate::describe(&input)?;
        let kind = Kind::of(&iface.exports);
        let manifest_path = if self.dir == Path::new(".") {
            PathBuf::from(FILE_NAME)
        } else {
            self.dir.join(FILE_NAME)
        };
        if manifest_path.exists() && !self.force {
            bail!(
                "`{}` already exists; pass --force to replace it",
                manifest_path.display()
            );
        }
        let component = relative_to(&self.component, &self.dir)?;
        let stem = self
            .component
            .file_stem()
            .and_then(|s| s.to_str())
            .map(|s| s.replace('_', "-"))
            .unwrap_or_else(|| "app".to_string());
        let text = template(&component, &stem, kind, &iface.exports);
        // What is written must read back.
        Manifest::parse(&text, &manifest_path)
            .context("the written manifest does not parse (a bug in pack init)")?;
        write_atomically(&manifest_path, &text)?;

        if printer.json_output() {
            printer.json(&Written {
                manifest: &manifest_path,
                component: &component,
                kind,
                exports: &iface.exports,
            })?;
        } else {
            printer.result(&format!(
                "{GREEN}✓{GREEN:#} wrote {BOLD}{}{BOLD:#} for {}: {}",
                manifest_path.display(),
                self.component.display(),
                kind.describe()
            ));
            printer.detail("  next: edit it, then `pack build` (and `pack push`)");
        }
        Ok(Status::Success)
    }
}

/// `path` as seen from `dir` (both taken from the current directory).
fn relative_to(path: &Path, dir: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let abs = |p: &Path| normalize(&cwd.join(p));
    let (path, dir) = (abs(path), abs(dir));
    let common = path
        .components()
        .zip(dir.components())
        .take_while(|(a, b)| a == b)
        .count();
    // Nothing in common but the root: an absolute path reads better than `../../..`.
    if common <= 1 {
        return Ok(path);
    }
    let mut rel = PathBuf::new();
    for _ in dir.components().skip(common) {
        rel.push("..");
    }
    for part in path.components().skip(common) {
        rel.push(part);
    }
    Ok(rel)
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A TOML string (basic, escaped).
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn template(component: &Path, name: &str, kind: Kind, exports: &[String]) -> String {
    let exports = if exports.is_empty() {
        "# It exports nothing.".to_string()
    } else {
        exports
            .iter()
            .map(|e| format!("#   {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let world_hint = match kind {
        Kind::HttpHandler => "e.g. wasi:http/proxy, with its WIT in wit/deps",
        Kind::Command => "e.g. wasi:cli/command, with its WIT in wit/deps",
        Kind::Library => "the world the component implements",
    };
    let component = quote(&component.to_string_lossy());
    let output = quote(&format!("target/pack/{name}"));
    format!(
        r#"# pack.toml: how `pack build` and `pack push` package this component when their
# arguments are left out. Flags override these values, and PACK_* environment
# variables override the file (docs/pack-toml.md lists them all).
#
# The component is {describe}. It exports:
{exports}

[component]
# The component, relative to this file.
path = {component}
# A command that writes `path`, run in this directory before every `pack build`
# (pack stops with exit status 5 when it fails):
# build = "cargo build --release --target wasm32-wasip2"

[wit]
# Check the component against a world before building ({world_hint}):
# path = "wit"
# world = "name"

[build]
# OCI platforms, optionally with a CPU preset (`linux/amd64/v3`); "all" is the four
# Linux architectures, "native" this machine.
targets = ["all"]
# A CPU preset for the targets that do not name one, e.g. "x86-64-v3":
# cpu = "x86-64-v3"
# An engine profile (the wasmtime settings that change generated code); without one,
# an HTTP handler is compiled with epoch interruption, so `pack serve` can stop a
# request at its timeout:
# profile = "engine.toml"
# The OCI image layout written, and its tag (also the registry tag of `pack push`).
output = {output}
tag = "latest"

[push]
# Where `pack push` sends the bundle (REGISTRY/REPOSITORY, no tag):
# repository = "ghcr.io/you/{name}"

[annotations]
# Recorded on the image index, e.g.:
# "org.opencontainers.image.source" = "https://github.com/you/{name}"
# "org.opencontainers.image.revision" = "..."
# "org.opencontainers.image.version" = "0.1.0"

[sign]
# The private key (`pack key generate`): a file, or an environment variable that holds
# the PEM (a CI secret). An encrypted key reads its password from PACK_KEY_PASSWORD,
# or from the variable named by `password-env`.
# key = "pack.key"
# key-env = "PACK_SIGN_KEY_PEM"

[cache]
# A compile cache shared through a registry repository:
# repository = "ghcr.io/you/pack-cache"
# key = "cache.key"
# ca-cert = ["ca.pem"]     # CA certificates to trust for it, besides the system's
"#,
        describe = kind.describe(),
    )
}

/// Writes `text` to `path` through a temporary file in the same directory.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    pack_fs::create_dir_all(dir, pack_fs::DIR_MODE)
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut file = tempfile::Builder::new()
        .prefix(".pack.toml-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in `{}`", dir.display()))?;
    // tempfile makes its files 0600; pack.toml is readable like any file of the project.
    file.write_all(text.as_bytes())
        .and_then(|()| pack_fs::persist(file, path, pack_fs::FILE_MODE))
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_exports() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Kind::of(&v(&["wasi:http/incoming-handler@0.2.6"])),
            Kind::HttpHandler
        );
        assert_eq!(Kind::of(&v(&["wasi:cli/run@0.2.0"])), Kind::Command);
        assert_eq!(Kind::of(&v(&["example:calc/calculator"])), Kind::Library);
    }

    #[test]
    fn the_template_parses_with_odd_paths() {
        for path in ["a.wasm", "dir with space/a \"q\".wasm", "..\\win\\a.wasm"] {
            let text = template(Path::new(path), "a", Kind::Command, &[]);
            let m = Manifest::parse(&text, Path::new("pack.toml")).unwrap();
            assert_eq!(m.component.path.as_deref(), Some(Path::new(path)));
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_to(Path::new("a/b/c.wasm"), Path::new("a")).unwrap(),
            PathBuf::from("b/c.wasm")
        );
        assert_eq!(
            relative_to(Path::new("x/c.wasm"), Path::new("a/b")).unwrap(),
            PathBuf::from("../../x/c.wasm")
        );
        assert_eq!(
            relative_to(Path::new("c.wasm"), Path::new(".")).unwrap(),
            PathBuf::from("c.wasm")
        );
    }
}
