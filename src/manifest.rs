//! `pack.toml`: the project manifest `pack build` and `pack push` read when their
//! arguments are left out. Flags override it, and `PACK_*` environment variables override
//! the file (see docs/pack-toml.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pack_packager::signing::PrivateKey;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::printer::Printer;

/// The manifest's file name, looked for in the current directory.
pub const FILE_NAME: &str = "pack.toml";

/// The whole file. Every table rejects keys it does not know.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub component: ComponentTable,
    #[serde(default)]
    pub wit: WitTable,
    #[serde(default)]
    pub build: BuildTable,
    #[serde(default)]
    pub push: PushTable,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub sign: SignTable,
    #[serde(default)]
    pub cache: CacheTable,
}

/// `[component]`: the component, and how to build it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentTable {
    /// The `.wasm` file, relative to the manifest's directory.
    pub path: Option<PathBuf>,
    /// A shell command that writes `path`, run in the manifest's directory first.
    pub build: Option<String>,
}

/// `[wit]`: validate against this world first.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitTable {
    pub path: Option<PathBuf>,
    pub world: Option<String>,
}

/// `[build]`: targets, engine profile, and the layout written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildTable {
    pub targets: Option<Vec<String>>,
    pub cpu: Option<String>,
    pub profile: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub tag: Option<String>,
    /// `compression = 9` (a zstd level) or `compression = false`.
    pub compression: Option<CompressionSetting>,
}

/// `[build] compression`: a zstd level, or `false` for plain layers (`true`: the default
/// level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum CompressionSetting {
    Enabled(bool),
    Level(i32),
}

/// `[push]`: where `pack push` sends the bundle.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTable {
    /// `REGISTRY/REPOSITORY`, without a tag (the tag is `[build] tag`).
    pub repository: Option<String>,
}

/// `[sign]`: the private key, from a file or from an environment variable.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignTable {
    pub key: Option<PathBuf>,
    /// The environment variable that holds the PEM (a CI secret).
    pub key_env: Option<String>,
    /// The environment variable that holds the key's password [default:
    /// PACK_KEY_PASSWORD].
    pub password_env: Option<String>,
    /// The `docker-reference` recorded in the signature [default: `[push] repository`].
    pub reference: Option<String>,
}

/// `[cache]`: a shared compile cache in a registry repository.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheTable {
    pub repository: Option<String>,
    /// The key that signs and verifies the entries (relative to the manifest).
    pub key: Option<PathBuf>,
    /// Public keys whose entries are trusted too (relative to the manifest).
    #[serde(default)]
    pub trust: Vec<PathBuf>,
    /// PEM files of CA certificates to trust for the cache registry (relative to the
    /// manifest).
    #[serde(default)]
    pub ca_cert: Vec<PathBuf>,
    /// Plain HTTP, or HTTPS without checking the certificate, for the cache registry.
    #[serde(default)]
    pub insecure: bool,
}

impl CacheTable {
    /// The mapping onto the compile options `cache_repo` and `cache_key`: fills the ones
    /// that flags and environment left unset. Returns whether the table sets anything.
    pub fn apply_to(
        &self,
        cache_repo: &mut Option<String>,
        cache_key: &mut Option<PathBuf>,
    ) -> bool {
        if cache_repo.is_none() {
            cache_repo.clone_from(&self.repository);
        }
        if cache_key.is_none() {
            cache_key.clone_from(&self.key);
        }
        self.repository.is_some() || self.key.is_some()
    }

    /// The same for `--cache-trust` (used when no flag gives one).
    pub fn apply_trust_to(&self, trust: &mut Vec<PathBuf>) {
        if trust.is_empty() {
            trust.clone_from(&self.trust);
        }
    }

    /// The same for `--cache-ca-cert` (used when no flag gives one) and
    /// `--cache-insecure` (either turns it on).
    pub fn apply_connection_to(&self, ca_cert: &mut Vec<PathBuf>, insecure: &mut bool) {
        if ca_cert.is_empty() {
            ca_cert.clone_from(&self.ca_cert);
        }
        *insecure |= self.insecure;
    }
}

/// A manifest read from disk, with the directory its relative paths start from.
#[derive(Debug)]
pub struct Loaded {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Loaded {
    /// A path from the manifest, relative to its directory.
    pub fn path_of(&self, rel: &Path) -> PathBuf {
        // An absolute `rel` replaces the directory; an empty directory adds nothing.
        self.dir.join(rel)
    }
}

impl Manifest {
    /// Parses the text of `path`; an unknown key is an error that names it, the file,
    /// and the line.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    anyhow::anyhow!("invalid manifest `{}:{line}`: {message}", path.display())
                }
                None => anyhow::anyhow!("invalid manifest `{}`: {message}", path.display()),
            }
        })?;
        manifest.check(path)?;
        Ok(manifest)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let file = path.display();
        if self.component.build.is_some() && self.component.path.is_none() {
            bail!("`{file}`: `[component] build` needs `path`, the file the command writes");
        }
        if self.sign.key.is_some() && self.sign.key_env.is_some() {
            bail!("`{file}`: `[sign]` takes `key` or `key-env`, not both");
        }
        if self.wit.world.is_some() && self.wit.path.is_none() {
            bail!("`{file}`: `[wit] world` needs `path`");
        }
        if let Some(tag) = &self.build.tag {
            pack_packager::reference::check_tag(tag)
                .with_context(|| format!("`{file}`: `[build] tag`"))?;
        }
        for (key, value) in [
            (
                "[build] targets",
                self.build.targets.as_ref().map(|t| t.is_empty()),
            ),
            (
                "[component] build",
                self.component.build.as_ref().map(|b| b.trim().is_empty()),
            ),
        ] {
            if value == Some(true) {
                bail!("`{file}`: `{key}` is empty");
            }
        }
        Ok(())
    }

    /// Reads `explicit`, or `./pack.toml` when it exists; `None` when there is none.
    pub fn load(explicit: Option<&Path>) -> Result<Option<Loaded>> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => {
                let path = PathBuf::from(FILE_NAME);
                if !path.is_file() {
                    return Ok(None);
                }
                path
            }
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the manifest `{}`", path.display()))?;
        let manifest = Manifest::parse(&text, &path)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Some(Loaded { dir, manifest }))
    }
}

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

/// Where a value is missing from: the flag, the variable, and the manifest key.
fn missing(what: &str, flag: &str, var: &str, key: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no {what}: pass {flag}, set {var}, or set `{key}` in {FILE_NAME} (`pack init` writes one)"
    )
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

/// What `pack push` reads from the manifest when its arguments are left out.
#[derive(Debug)]
pub struct PushPlan {
    /// `LAYOUT[:TAG]`.
    pub source: String,
    /// `REGISTRY/REPOSITORY[:TAG]`.
    pub reference: String,
}

impl PushPlan {
    pub fn resolve(
        bundle: &crate::args::BundleArgs,
        source: Option<String>,
        reference: Option<String>,
    ) -> Result<PushPlan> {
        let loaded = Manifest::load(bundle.manifest.as_deref())?;
        let empty = Manifest::default();
        let m = loaded.as_ref().map_or(&empty, |l| &l.manifest);
        let tag = bundle.tag.clone().or_else(|| m.build.tag.clone());
        let source = match source {
            Some(s) => s,
            None => {
                let layout = bundle
                    .layout
                    .clone()
                    .or_else(|| {
                        m.build
                            .output
                            .as_ref()
                            .map(|p| loaded.as_ref().map_or(p.clone(), |l| l.path_of(p)))
                    })
                    .ok_or_else(|| missing("layout", "LAYOUT", "PACK_OUTPUT", "[build] output"))?;
                match &tag {
                    Some(tag) => format!("{}:{tag}", layout.display()),
                    None => layout.display().to_string(),
                }
            }
        };
        let reference = match reference {
            Some(r) => r,
            None => {
                let repo = bundle
                    .repository
                    .clone()
                    .or_else(|| m.push.repository.clone())
                    .ok_or_else(|| {
                        missing(
                            "repository",
                            "REFERENCE",
                            "PACK_REPOSITORY",
                            "[push] repository",
                        )
                    })?;
                match &tag {
                    Some(tag) => format!("{repo}:{tag}"),
                    None => repo,
                }
            }
        };
        Ok(PushPlan { source, reference })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_table() {
        let m = Manifest::parse(
            r#"
[component]
path = "target/app.wasm"
build = "make"
[wit]
path = "wit"
world = "proxy"
[build]
targets = ["linux/amd64", "linux/arm64"]
cpu = "x86-64-v3"
profile = "engine.toml"
output = "out/app"
tag = "v1"
[push]
repository = "ghcr.io/team/app"
[annotations]
"org.opencontainers.image.version" = "1.0.0"
[sign]
key-env = "SIGNING_KEY"
password-env = "SIGNING_PASSWORD"
[cache]
repository = "ghcr.io/team/cache"
key = "main"
trust = ["builder.pub"]
ca-cert = ["certs/ca.pem"]
insecure = true
"#,
            Path::new("pack.toml"),
        )
        .unwrap();
        assert_eq!(m.build.targets.as_deref().unwrap().len(), 2);
        assert_eq!(m.sign.key_env.as_deref(), Some("SIGNING_KEY"));
        assert_eq!(m.annotations["org.opencontainers.image.version"], "1.0.0");
        assert_eq!(m.cache.repository.as_deref(), Some("ghcr.io/team/cache"));
        assert_eq!(m.cache.trust, [PathBuf::from("builder.pub")]);
    }

    #[test]
    fn unknown_keys_name_the_key_the_file_and_the_line() {
        let err = Manifest::parse(
            "[component]\npath = \"a.wasm\"\n\n[build]\ntargest = [\"all\"]\n",
            Path::new("dir/pack.toml"),
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("dir/pack.toml:5"), "{text}");
        assert!(text.contains("unknown field `targest`"), "{text}");
        let err = Manifest::parse("[singing]\nkey = \"k\"\n", Path::new("pack.toml")).unwrap_err();
        assert!(format!("{err:#}").contains("`singing`"), "{err:#}");
    }

    #[test]
    fn inconsistent_tables_are_refused() {
        for (text, needle) in [
            ("[component]\nbuild = \"make\"\n", "needs `path`"),
            ("[sign]\nkey = \"a\"\nkey-env = \"B\"\n", "not both"),
            ("[build]\ntag = \"not a tag!\"\n", "[build] tag"),
            ("[build]\ntargets = []\n", "is empty"),
        ] {
            let err = Manifest::parse(text, Path::new("pack.toml")).unwrap_err();
            assert!(format!("{err:#}").contains(needle), "{text}: {err:#}");
        }
    }

    #[test]
    fn the_cache_table_maps_onto_cache_repo_and_cache_key_under_the_flags() {
        let table = CacheTable {
            repository: Some("ghcr.io/team/cache".into()),
            key: Some("main".into()),
            trust: vec!["builder.pub".into()],
            ca_cert: vec!["ca.pem".into()],
            insecure: true,
        };
        let (mut cache_repo, mut cache_key) = (None, Some(PathBuf::from("from-flag")));
        assert!(table.apply_to(&mut cache_repo, &mut cache_key));
        assert_eq!(cache_repo.as_deref(), Some("ghcr.io/team/cache"));
        assert_eq!(cache_key, Some(PathBuf::from("from-flag")));
        let (mut r, mut k) = (None, None);
        assert!(!CacheTable::default().apply_to(&mut r, &mut k));
        assert_eq!((r, k), (None, None));
        let mut trust = vec![];
        table.apply_trust_to(&mut trust);
        assert_eq!(trust, [PathBuf::from("builder.pub")]);
        let mut trust = vec![PathBuf::from("flag.pub")];
        table.apply_trust_to(&mut trust);
        assert_eq!(trust, [PathBuf::from("flag.pub")]);

        // CA files from the table unless a flag gives some; either side turns on insecure.
        let (mut ca, mut insecure) = (vec![], false);
        table.apply_connection_to(&mut ca, &mut insecure);
        assert_eq!((ca, insecure), (vec![PathBuf::from("ca.pem")], true));
        let (mut ca, mut insecure) = (vec![PathBuf::from("flag.pem")], true);
        CacheTable::default().apply_connection_to(&mut ca, &mut insecure);
        assert_eq!((ca, insecure), (vec![PathBuf::from("flag.pem")], true));
    }
}
