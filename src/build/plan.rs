//! The plan of `pack build` (what its flags and `pack.toml` give, as
//! `BuildCommand::resolve_plan` merges them), the signing key's source, and the
//! component's build command, run without the secrets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Result, bail};
use pack_packager::signing::PrivateKey;
use zeroize::Zeroizing;

use crate::manifest::{CacheTable, CompressionSetting};
use crate::printer::Printer;

/// The variable that named the signing key file before `PACK_SIGN_KEY_FILE`; still read
/// (with a warning) for one release.
pub const DEPRECATED_SIGN_KEY_ENV: &str = "PACK_SIGN_KEY";

/// The environment variables pack reads a secret from: the `[component] build` command
/// runs without them (and without the variables `[sign] key-env` and `password-env`
/// name, see [`BuildPlan::secret_vars`]), since what it runs (a build script, its
/// dependencies' build scripts) has no business with them. docs/pack-toml.md lists them.
pub const SECRET_ENV: &[&str] = &[
    // The password of an encrypted signing or cache key.
    crate::keys::PASSWORD_ENV,
    // Registry credentials (`pack push`, `pack pull`, the shared cache).
    pack_registry_client::auth::USERNAME_ENV,
    pack_registry_client::auth::PASSWORD_ENV,
    // The PEM of the signing key, under the name `pack init` suggests for `key-env`, and
    // the name it suggested before.
    "PACK_SIGN_KEY_PEM",
    "PACK_SIGNING_KEY",
    // The key that authenticates local compile-cache entries.
    "PACK_CACHE_SECRET",
];

/// Where the signing key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKey {
    /// A PKCS#8 PEM file.
    File(PathBuf),
    /// The PEM in an environment variable; its password (when encrypted) in another.
    Env { var: String, password_var: String },
}

impl SigningKey {
    pub fn load(&self, printer: &Printer) -> Result<PrivateKey> {
        match self {
            SigningKey::File(path) => crate::keys::load_private_key_checked(path, printer),
            SigningKey::Env { var, password_var } => {
                let pem = match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => Zeroizing::new(v),
                    Ok(_) => bail!("the signing key variable {var} is empty"),
                    Err(std::env::VarError::NotPresent) => bail!(
                        "the signing key variable {var} is not set (`[sign] key-env`); set it \
                         to the PEM of the private key, e.g. from a CI secret"
                    ),
                    Err(std::env::VarError::NotUnicode(_)) => {
                        bail!("the signing key variable {var} is not valid UTF-8")
                    }
                };
                let password = match std::env::var(password_var) {
                    Ok(v) => Some(Zeroizing::new(v)),
                    Err(std::env::VarError::NotPresent) => None,
                    Err(std::env::VarError::NotUnicode(_)) => {
                        bail!("{password_var} is not valid UTF-8")
                    }
                };
                let label = PathBuf::from(format!("${var}"));
                PrivateKey::from_pem(
                    pem.as_str(),
                    password.as_deref().map(String::as_str),
                    &label,
                )
                .map_err(|e| match e {
                    pack_packager::Error::PasswordRequired { .. } => anyhow::anyhow!(
                        "the key in {var} is encrypted and {password_var} is not set"
                    ),
                    other => other.into(),
                })
            }
        }
    }
}

/// What `pack build` runs on, once flags, environment and manifest are merged.
#[derive(Debug)]
pub struct BuildPlan {
    pub component: PathBuf,
    /// The command that writes `component` (from the manifest only), with its directory.
    pub build_command: Option<(String, PathBuf)>,
    pub wit: Option<PathBuf>,
    pub world: Option<String>,
    pub targets: Vec<String>,
    pub cpu: Option<String>,
    pub profile: Option<PathBuf>,
    pub layout: PathBuf,
    pub tag: String,
    pub sign_key: Option<SigningKey>,
    pub reference: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub cache: CacheTable,
    /// `[build] compression`.
    pub compression: Option<CompressionSetting>,
    /// The variables `[sign] key-env` and `password-env` name, beside [`SECRET_ENV`].
    pub manifest_secret_vars: Vec<String>,
    /// What the caller should warn about (a deprecated variable).
    pub warnings: Vec<String>,
}

impl BuildPlan {
    /// Every variable the build command must not see: [`SECRET_ENV`] and the ones the
    /// manifest names for the signing key and its password.
    pub fn secret_vars(&self) -> impl Iterator<Item = &str> {
        SECRET_ENV
            .iter()
            .copied()
            .chain(self.manifest_secret_vars.iter().map(String::as_str))
    }

    /// Runs `[component] build` (when the component comes from the manifest), its output
    /// on stderr (kept back and shown only on failure with `--quiet`/`--json`), with
    /// this process's environment minus [`BuildPlan::secret_vars`].
    pub fn run_build_command(&self, printer: &Printer, quiet: bool) -> Result<()> {
        let Some((command, dir)) = &self.build_command else {
            return Ok(());
        };
        let started = Instant::now();
        printer.status(&format!("running `{command}`"));
        let mut child = std::process::Command::new("sh");
        child.arg("-c").arg(command);
        for var in self.secret_vars() {
            child.env_remove(var);
        }
        if !dir.as_os_str().is_empty() {
            child.current_dir(dir);
        }
        let status = if quiet {
            let output = child
                .stdin(Stdio::null())
                .output()
                .map_err(|e| BuildCommandFailed::spawn(command, e))?;
            if !output.status.success() {
                let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
                log.push_str(&String::from_utf8_lossy(&output.stderr));
                printer.log(&log);
            }
            output.status
        } else {
            child
                .stdin(Stdio::null())
                // The command's output goes to stderr: stdout is pack's result.
                .stdout(Stdio::from(std::io::stderr()))
                .status()
                .map_err(|e| BuildCommandFailed::spawn(command, e))?
        };
        if !status.success() {
            return Err(BuildCommandFailed {
                command: command.clone(),
                status: status.code(),
                detail: None,
            }
            .into());
        }
        if !self.component.is_file() {
            bail!(
                "`{command}` succeeded but did not write `{}` (`[component] path`)",
                self.component.display()
            );
        }
        printer.status(&format!(
            "ran `{command}` in {}",
            crate::format::duration(started.elapsed())
        ));
        Ok(())
    }
}

/// `[component] build` failed: exit status 5.
#[derive(Debug, thiserror::Error)]
#[error("the component's build command `{command}` failed{}{}", match status { Some(c) => format!(" with exit status {c}"), None => " (killed by a signal)".to_string() }, detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct BuildCommandFailed {
    pub command: String,
    pub status: Option<i32>,
    pub detail: Option<String>,
}

impl BuildCommandFailed {
    fn spawn(command: &str, error: std::io::Error) -> BuildCommandFailed {
        BuildCommandFailed {
            command: command.to_string(),
            status: Some(127),
            detail: Some(format!("cannot start `sh`: {error}")),
        }
    }
}
