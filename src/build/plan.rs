//! The plan of `pack build`: flags (each holding its `PACK_*` variable, which clap
//! reads) merged with `pack.toml`, the signing key's source, and the component's build
//! command, run without the secrets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Result, bail};
use pack_packager::signing::PrivateKey;
use zeroize::Zeroizing;

use crate::manifest::{CacheTable, CompressionSetting, Manifest, missing};
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

/// The flags of `pack build` that the manifest can fill (each already holds its `PACK_*`
/// variable when the flag was left out: clap reads them).
#[derive(Debug, Default)]
pub struct BuildFlags {
    pub manifest: Option<PathBuf>,
    pub component: Option<PathBuf>,
    pub wit: Option<PathBuf>,
    pub world: Option<String>,
    pub targets: Vec<String>,
    pub cpu: Option<String>,
    pub profile: Option<PathBuf>,
    pub layout: Option<PathBuf>,
    pub tag: Option<String>,
    pub repository: Option<String>,
    pub sign_key: Option<PathBuf>,
    pub reference: Option<String>,
    pub annotations: Vec<(String, String)>,
}

impl BuildPlan {
    pub fn resolve(flags: BuildFlags) -> Result<BuildPlan> {
        let loaded = Manifest::load(flags.manifest.as_deref())?;
        let empty = Manifest::default();
        let m = loaded.as_ref().map_or(&empty, |l| &l.manifest);
        let rel = |p: &PathBuf| loaded.as_ref().map_or(p.clone(), |l| l.path_of(p));

        let from_file = flags.component.is_none();
        let component = flags
            .component
            .or_else(|| m.component.path.as_ref().map(rel))
            .ok_or_else(|| {
                missing(
                    "component",
                    "COMPONENT",
                    "PACK_COMPONENT",
                    "[component] path",
                )
            })?;
        let build_command = match (&m.component.build, &loaded) {
            (Some(cmd), Some(l)) if from_file => Some((cmd.clone(), l.dir.clone())),
            _ => None,
        };
        // A WIT path given by flag or variable comes with its own world (or none).
        let wit_overridden = flags.wit.is_some();
        let wit = flags.wit.or_else(|| m.wit.path.as_ref().map(rel));
        let world = flags
            .world
            .or_else(|| (!wit_overridden).then(|| m.wit.world.clone()).flatten());
        if world.is_some() && wit.is_none() {
            bail!("a world needs a WIT path: pass --wit, set PACK_WIT, or `[wit] path`");
        }
        let targets = if flags.targets.is_empty() {
            m.build.targets.clone()
        } else {
            Some(flags.targets)
        }
        .ok_or_else(|| missing("target", "--target", "PACK_TARGET", "[build] targets"))?;
        let cpu = flags.cpu.or_else(|| m.build.cpu.clone());
        let profile = flags.profile.or_else(|| m.build.profile.as_ref().map(rel));
        let layout = flags
            .layout
            .or_else(|| m.build.output.as_ref().map(rel))
            .ok_or_else(|| missing("output layout", "--output", "PACK_OUTPUT", "[build] output"))?;
        let tag = flags
            .tag
            .or_else(|| m.build.tag.clone())
            .unwrap_or_else(|| pack_packager::reference::DEFAULT_TAG.to_string());
        let password_var = m
            .sign
            .password_env
            .clone()
            .unwrap_or_else(|| crate::keys::PASSWORD_ENV.to_string());
        let mut warnings = Vec::new();
        let deprecated_key = match std::env::var_os(DEPRECATED_SIGN_KEY_ENV) {
            Some(path) if flags.sign_key.is_none() && !path.is_empty() => {
                warnings.push(format!(
                    "{DEPRECATED_SIGN_KEY_ENV} is deprecated: set PACK_SIGN_KEY_FILE instead"
                ));
                Some(PathBuf::from(path))
            }
            _ => None,
        };
        let sign_key = match flags.sign_key.or(deprecated_key) {
            Some(path) => Some(SigningKey::File(path)),
            None => match (&m.sign.key, &m.sign.key_env) {
                (Some(path), _) => Some(SigningKey::File(rel(path))),
                (None, Some(var)) => Some(SigningKey::Env {
                    var: var.clone(),
                    password_var,
                }),
                (None, None) => None,
            },
        };
        let reference = flags
            .reference
            .or_else(|| m.sign.reference.clone())
            .or(flags.repository)
            .or_else(|| m.push.repository.clone());
        let mut annotations = m.annotations.clone();
        annotations.extend(flags.annotations);
        let manifest_secret_vars = [&m.sign.key_env, &m.sign.password_env]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Ok(BuildPlan {
            component,
            build_command,
            wit,
            world,
            targets,
            cpu,
            profile,
            layout,
            tag,
            sign_key,
            reference,
            annotations,
            cache: CacheTable {
                repository: m.cache.repository.clone(),
                key: m.cache.key.as_ref().map(rel),
                trust: m.cache.trust.iter().map(rel).collect(),
                ca_cert: m.cache.ca_cert.iter().map(rel).collect(),
                insecure: m.cache.insecure,
            },
            compression: m.build.compression,
            manifest_secret_vars,
            warnings,
        })
    }

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
