//! Credentials, found the way a docker user expects:
//!
//! 1. given explicitly (`--username` with `--password-stdin`);
//! 2. `PACK_REGISTRY_USERNAME` / `PACK_REGISTRY_PASSWORD`, for one registry only (see
//!    below);
//! 3. the docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): a
//!    `credHelpers` entry for the registry, else the `credsStore` helper, else an `auths`
//!    entry (`auth` = base64 `user:password`, or `username` and `password`). Helpers run
//!    as `docker-credential-<name> get` with the server address on stdin;
//! 4. anonymous.
//!
//! [`store`] writes credentials back the same way `docker login` does. Credentials are
//! never printed: [`Credentials`]' `Debug` hides the password, and errors name only where
//! credentials came from ([`CredentialSource`]).
//!
//! # The environment's credentials are for one registry
//!
//! A docker config entry names its registry; two environment variables do not, and a
//! reference can name any host. So `PACK_REGISTRY_USERNAME`/`PACK_REGISTRY_PASSWORD` are
//! sent only to the registry of [`AuthEnv::scope`]: `PACK_REGISTRY=host[:port]` when it is
//! set ([`Scope::Variable`]), else the one registry the caller says the user named
//! ([`AuthEnv::for_command`]: a CLI passes the registry of the reference on its command
//! line, or of the repository in the project's manifest). With no scope they go to no
//! registry. Every other registry gets what the docker config has for it, or nothing;
//! [`AuthEnv::withheld_from`] says when credentials were held back, for a warning. A
//! registry a reference merely leads to (a redirect, the next pull of a host library)
//! never widens the scope: it is fixed before anything is fetched.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The environment variable with the username.
pub const USERNAME_ENV: &str = "PACK_REGISTRY_USERNAME";
/// The environment variable with the password (or token).
pub const PASSWORD_ENV: &str = "PACK_REGISTRY_PASSWORD";
/// The environment variable naming the one registry (`host[:port]`) the username and
/// password of the environment are for.
pub const REGISTRY_ENV: &str = "PACK_REGISTRY";

/// The key Docker Hub's credentials are stored under in a docker config.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A username and a password (or token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: Zeroizing<String>,
}

impl Credentials {
    /// Credentials from a username and a password or token.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password or token.
    pub fn password(&self) -> &str {
        &self.password
    }

    pub(crate) fn registry_auth(&self) -> RegistryAuth {
        RegistryAuth::Basic(self.username.clone(), self.password.to_string())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where credentials came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CredentialSource {
    /// `--username` with `--password-stdin`.
    CommandLine,
    /// `PACK_REGISTRY_USERNAME` / `PACK_REGISTRY_PASSWORD` (for this registry: see
    /// [`AuthEnv::scope`]).
    Environment,
    /// An `auths` entry of a docker config file.
    DockerConfig { path: PathBuf },
    /// A docker credential helper (`docker-credential-<helper>`).
    Helper { helper: String },
    /// No credentials.
    Anonymous,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CommandLine => f.write_str("the credentials from --username"),
            Self::Environment => write!(f, "the credentials from {USERNAME_ENV}/{PASSWORD_ENV}"),
            Self::DockerConfig { path } => {
                write!(f, "the credentials from `{}`", path.display())
            }
            Self::Helper { helper } => {
                write!(f, "the credentials from `docker-credential-{helper}`")
            }
            Self::Anonymous => f.write_str("anonymous access (no credentials found)"),
        }
    }
}

/// Credentials for one registry and where they came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The credentials, `None` for anonymous access.
    pub credentials: Option<Credentials>,
    /// Where they came from.
    pub source: CredentialSource,
}

impl Resolved {
    /// Anonymous access.
    pub fn anonymous() -> Self {
        Self {
            credentials: None,
            source: CredentialSource::Anonymous,
        }
    }

    pub(crate) fn registry_auth(&self) -> RegistryAuth {
        self.credentials
            .as_ref()
            .map_or(RegistryAuth::Anonymous, Credentials::registry_auth)
    }
}

/// The one registry the environment's credentials are sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `PACK_REGISTRY`.
    Variable(String),
    /// The registry the user named to the command (its reference on the command line, or
    /// the repository of the project's manifest), set by [`AuthEnv::for_command`].
    Command(String),
}

impl Scope {
    /// The registry (`host[:port]`, as written).
    pub fn registry(&self) -> &str {
        match self {
            Scope::Variable(r) | Scope::Command(r) => r,
        }
    }

    /// Whether `registry` (a host, as in a reference) is this one: the same host and port
    /// (letter case aside; a scheme or path in `PACK_REGISTRY` is ignored, as in docker
    /// config keys), or both Docker Hub.
    pub fn covers(&self, registry: &str) -> bool {
        let host = key_host(self.registry());
        host.eq_ignore_ascii_case(registry) || (is_docker_hub(host) && is_docker_hub(registry))
    }
}

/// Why the environment's credentials were not sent to a registry ([`AuthEnv::withheld_from`]).
/// Its `Display` is the warning a CLI prints; it names no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    /// The registry that did not get them.
    pub registry: String,
    /// The registry they are for, if any.
    pub scope: Option<Scope>,
}

impl fmt::Display for Withheld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = &self.registry;
        match &self.scope {
            Some(Scope::Variable(scope)) => write!(
                f,
                "{USERNAME_ENV}/{PASSWORD_ENV} are for {scope} ({REGISTRY_ENV}); not sending \
                 them to {registry}"
            ),
            Some(Scope::Command(scope)) => write!(
                f,
                "{USERNAME_ENV}/{PASSWORD_ENV} are for {scope} (the registry this command \
                 names); not sending them to {registry} (set {REGISTRY_ENV} to choose)"
            ),
            None => write!(
                f,
                "{USERNAME_ENV}/{PASSWORD_ENV} name no registry; not sending them to \
                 {registry} (set {REGISTRY_ENV}={registry} to use them there)"
            ),
        }
    }
}

/// What credential lookup reads from the process: the environment variables, the docker
/// config directory, and the `PATH` helpers are found on. [`AuthEnv::from_process`] reads
/// the real ones; tests fill it in. Its `Debug` hides the password.
#[derive(Clone, Default)]
pub struct AuthEnv {
    /// `PACK_REGISTRY_USERNAME`.
    pub username: Option<String>,
    /// `PACK_REGISTRY_PASSWORD`.
    pub password: Option<Zeroizing<String>>,
    /// The registry `username` and `password` are sent to, and no other: `PACK_REGISTRY`,
    /// else [`AuthEnv::for_command`]'s. `None`: to no registry.
    pub scope: Option<Scope>,
    /// The docker config directory: `$DOCKER_CONFIG`, else `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// `PATH` for credential helpers; the process's own when `None`.
    pub path: Option<std::ffi::OsString>,
}

impl fmt::Debug for AuthEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthEnv")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("scope", &self.scope)
            .field("docker_config_dir", &self.docker_config_dir)
            .field("path", &self.path)
            .finish()
    }
}

impl AuthEnv {
    /// The process's environment.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let docker_config_dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| home_dir().map(|h| h.join(".docker")));
        Self {
            username: var(USERNAME_ENV),
            password: var(PASSWORD_ENV).map(Zeroizing::new),
            scope: var(REGISTRY_ENV).map(Scope::Variable),
            docker_config_dir,
            path: None,
        }
    }

    /// Scopes the environment's credentials to `registry`, the one the user named to the
    /// command, unless `PACK_REGISTRY` (or an earlier call) already chose one.
    pub fn for_command(mut self, registry: &str) -> Self {
        if self.scope.is_none() {
            self.scope = Some(Scope::Command(registry.to_string()));
        }
        self
    }

    /// Whether the environment has both a username and a password.
    pub fn has_credentials(&self) -> bool {
        self.username.is_some() && self.password.is_some()
    }

    /// Whether the environment's credentials may be sent to `registry`.
    pub fn applies_to(&self, registry: &str) -> bool {
        self.scope.as_ref().is_some_and(|s| s.covers(registry))
    }

    /// `Some` when the environment has credentials that are not for `registry`: they are
    /// not sent there ([`resolve`] goes on to the docker config).
    pub fn withheld_from(&self, registry: &str) -> Option<Withheld> {
        (self.has_credentials() && !self.applies_to(registry)).then(|| Withheld {
            registry: registry.to_string(),
            scope: self.scope.clone(),
        })
    }

    /// `<docker config dir>/config.json`.
    pub fn docker_config_path(&self) -> Option<PathBuf> {
        self.docker_config_dir
            .as_ref()
            .map(|d| d.join("config.json"))
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The key a registry's credentials are stored under in a docker config and passed to
/// credential helpers: the host (`ghcr.io`, `127.0.0.1:5000`), or
/// `https://index.docker.io/v1/` for Docker Hub.
pub fn config_key(registry: &str) -> String {
    if is_docker_hub(registry) {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

fn is_docker_hub(registry: &str) -> bool {
    matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// The host an `auths` key names: `https://host/v1/` -> `host`.
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

fn same_registry(key: &str, registry: &str) -> bool {
    let host = key_host(key);
    host == registry || (is_docker_hub(host) && is_docker_hub(registry))
}

/// Finds credentials for `registry` (a host, as in a reference), in the order described
/// in the module documentation. `explicit` are the command line's. The environment's are
/// used only when [`AuthEnv::scope`] is `registry`.
pub fn resolve(registry: &str, explicit: Option<Credentials>, env: &AuthEnv) -> Result<Resolved> {
    if let Some(credentials) = explicit {
        return Ok(Resolved {
            credentials: Some(credentials),
            source: CredentialSource::CommandLine,
        });
    }
    if let (Some(username), Some(password)) = (&env.username, &env.password)
        && env.applies_to(registry)
    {
        return Ok(Resolved {
            credentials: Some(Credentials::new(username.clone(), password.to_string())),
            source: CredentialSource::Environment,
        });
    }
    let Some(path) = env.docker_config_path() else {
        return Ok(Resolved::anonymous());
    };
    let Some(config) = DockerConfig::load(&path)? else {
        return Ok(Resolved::anonymous());
    };
    if let Some(helper) = config.helper_for(registry) {
        return Ok(match helper_get(&helper, registry, env)? {
            Some(credentials) => Resolved {
                credentials: Some(credentials),
                source: CredentialSource::Helper { helper },
            },
            None => Resolved::anonymous(),
        });
    }
    Ok(match config.auths_entry(registry)? {
        Some(credentials) => Resolved {
            credentials: Some(credentials),
            source: CredentialSource::DockerConfig { path },
        },
        None => Resolved::anonymous(),
    })
}

/// A docker `config.json`, kept as JSON so rewriting it keeps what pack does not know.
#[derive(Debug, Clone)]
struct DockerConfig {
    path: PathBuf,
    value: Value,
}

impl DockerConfig {
    /// `None` when the file does not exist.
    fn load(path: &Path) -> Result<Option<Self>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::DockerConfig {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| Error::DockerConfig {
            path: path.to_path_buf(),
            reason: format!("not valid JSON: {e}"),
        })?;
        if !value.is_object() {
            return Err(Error::DockerConfig {
                path: path.to_path_buf(),
                reason: "not a JSON object".to_string(),
            });
        }
        Ok(Some(Self {
            path: path.to_path_buf(),
            value,
        }))
    }

    fn helper_for(&self, registry: &str) -> Option<String> {
        let specific = self
            .value
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|helpers| {
                helpers
                    .iter()
                    .find(|(key, _)| same_registry(key, registry))
                    .and_then(|(_, v)| v.as_str())
            });
        specific
            .or_else(|| self.value.get("credsStore").and_then(Value::as_str))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    fn auths_entry(&self, registry: &str) -> Result<Option<Credentials>> {
        let Some(auths) = self.value.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let Some((_, entry)) = auths.iter().find(|(key, _)| same_registry(key, registry)) else {
            return Ok(None);
        };
        let invalid = |reason: &str| Error::DockerConfig {
            path: self.path.clone(),
            reason: format!("the `auths` entry for {registry} {reason}"),
        };
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| invalid("has an `auth` that is not base64"))?,
            );
            let text = std::str::from_utf8(&decoded)
                .map_err(|_| invalid("has an `auth` that is not UTF-8"))?;
            let (user, password) = text
                .split_once(':')
                .ok_or_else(|| invalid("has an `auth` that is not `user:password`"))?;
            return Ok(Some(Credentials::new(user, password)));
        }
        match (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials::new(u, p))),
            _ => Ok(None),
        }
    }

    /// Writes the config atomically with mode 0600.
    fn save(&self) -> Result<()> {
        let err = |e: std::io::Error| Error::DockerConfig {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        pack_fs::create_dir_all(dir, pack_fs::PRIVATE_DIR_MODE).map_err(err)?;
        let mut bytes = serde_json::to_vec_pretty(&self.value).expect("JSON serialises");
        bytes.push(b'\n');
        pack_fs::write_atomic(&self.path, &bytes, pack_fs::PRIVATE_FILE_MODE).map_err(err)
    }
}

fn helper_command(helper: &str, action: &str, env: &AuthEnv) -> Command {
    let mut cmd = Command::new(format!("docker-credential-{helper}"));
    cmd.arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = &env.path {
        cmd.env("PATH", path);
    }
    // A helper answers for the registry it is asked about and needs none of pack's own
    // variables, some of which hold secrets (registry and key passwords, the signing key,
    // the cache secret): it runs without every `PACK_*` variable.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("PACK_")) {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn run_helper(
    helper: &str,
    action: &'static str,
    registry: &str,
    input: &[u8],
    env: &AuthEnv,
) -> Result<std::process::Output> {
    let fail = |reason: String| Error::CredentialHelper {
        helper: helper.to_string(),
        action,
        registry: registry.to_string(),
        reason,
    };
    let mut child = helper_command(helper, action, env)
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is not an error here.
        let _ = stdin.write_all(input);
    }
    child
        .wait_with_output()
        .map_err(|e| fail(format!("cannot run it: {e}")))
}

/// `docker-credential-<helper> get`: `None` when it has no credentials for the registry.
fn helper_get(helper: &str, registry: &str, env: &AuthEnv) -> Result<Option<Credentials>> {
    let key = config_key(registry);
    let output = run_helper(helper, "get", registry, key.as_bytes(), env)?;
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        let text = String::from_utf8_lossy(&stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::CredentialHelper {
            helper: helper.to_string(),
            action: "get",
            registry: registry.to_string(),
            reason: format!("it exited with {}: {}", output.status, first_line(&text)),
        });
    }
    #[derive(serde::Deserialize)]
    struct HelperCredentials {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: Zeroizing<String>,
    }
    let parsed: HelperCredentials =
        serde_json::from_slice(&stdout).map_err(|_| Error::CredentialHelper {
            helper: helper.to_string(),
            action: "get",
            registry: registry.to_string(),
            reason: "its output is not {\"Username\":...,\"Secret\":...} JSON".to_string(),
        })?;
    if parsed.username.is_empty() && parsed.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::new(
        parsed.username,
        parsed.secret.to_string(),
    )))
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string()
}

/// Where [`store`] put credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Stored {
    /// In the docker config file (base64 `auth` entry).
    DockerConfig { path: PathBuf },
    /// In a credential helper.
    Helper { helper: String },
}

impl fmt::Display for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stored::DockerConfig { path } => write!(f, "`{}`", path.display()),
            Stored::Helper { helper } => write!(f, "`docker-credential-{helper}`"),
        }
    }
}

/// Stores credentials for `registry` the way `docker login` does: in the registry's
/// `credHelpers` helper or the `credsStore` helper when the docker config names one,
/// else as a base64 `auth` entry under `auths` in the config file (created with mode
/// 0600 when missing).
pub fn store(registry: &str, credentials: &Credentials, env: &AuthEnv) -> Result<Stored> {
    let path = env
        .docker_config_path()
        .ok_or_else(|| Error::DockerConfig {
            path: PathBuf::from("~/.docker/config.json"),
            reason: "neither DOCKER_CONFIG nor HOME is set".to_string(),
        })?;
    let mut config = DockerConfig::load(&path)?.unwrap_or_else(|| DockerConfig {
        path: path.clone(),
        value: Value::Object(Default::default()),
    });
    let key = config_key(registry);
    if let Some(helper) = config.helper_for(registry) {
        let input = Zeroizing::new(
            serde_json::to_vec(&BTreeMap::from([
                ("ServerURL", key.as_str()),
                ("Username", credentials.username()),
                ("Secret", credentials.password()),
            ]))
            .expect("JSON serialises"),
        );
        let output = run_helper(&helper, "store", registry, &input, env)?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            return Err(Error::CredentialHelper {
                helper,
                action: "store",
                registry: registry.to_string(),
                reason: format!("it exited with {}: {}", output.status, first_line(&text)),
            });
        }
        return Ok(Stored::Helper { helper });
    }
    let auth = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        credentials.username(),
        credentials.password()
    )));
    let root = config.value.as_object_mut().expect("checked on load");
    let auths = root
        .entry("auths")
        .or_insert_with(|| Value::Object(Default::default()));
    if !auths.is_object() {
        *auths = Value::Object(Default::default());
    }
    let auths = auths.as_object_mut().expect("just made an object");
    // Replace any entry for the same registry under another spelling of its key.
    auths.retain(|k, _| !same_registry(k, registry));
    auths.insert(key, serde_json::json!({ "auth": auth.as_str() }));
    config.save()?;
    Ok(Stored::DockerConfig { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with_config(dir: &Path, config: &str) -> AuthEnv {
        std::fs::write(dir.join("config.json"), config).unwrap();
        AuthEnv {
            docker_config_dir: Some(dir.to_path_buf()),
            ..Default::default()
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::new("alice", "s3cret");
        let text = format!("{c:?}");
        assert!(text.contains("alice") && !text.contains("s3cret"), "{text}");
        let resolved = Resolved {
            credentials: Some(c),
            source: CredentialSource::Environment,
        };
        assert!(!format!("{resolved:?}").contains("s3cret"));
        let env = AuthEnv {
            password: Some(Zeroizing::new("s3cret".into())),
            ..Default::default()
        };
        assert!(!format!("{env:?}").contains("s3cret"));
    }

    #[test]
    fn explicit_then_environment_then_config() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("carol:from-file");
        let mut env = env_with_config(
            dir.path(),
            &format!(r#"{{"auths":{{"https://r.example:5000/v1/":{{"auth":"{auth}"}}}}}}"#),
        );
        let r = resolve("r.example:5000", None, &env).unwrap();
        assert_eq!(r.credentials.unwrap().password(), "from-file");
        assert!(matches!(r.source, CredentialSource::DockerConfig { .. }));
        // Other registries get nothing.
        let r = resolve("other.example", None, &env).unwrap();
        assert_eq!(r.source, CredentialSource::Anonymous);

        env.username = Some("bob".into());
        env.password = Some(Zeroizing::new("from-env".into()));
        // Without a scope, the environment's credentials go nowhere.
        let r = resolve("r.example:5000", None, &env).unwrap();
        assert!(matches!(r.source, CredentialSource::DockerConfig { .. }));
        let env = env.for_command("r.example:5000");
        let r = resolve("r.example:5000", None, &env).unwrap();
        assert_eq!(r.source, CredentialSource::Environment);
        assert_eq!(r.credentials.unwrap().username(), "bob");

        let r = resolve("r.example:5000", Some(Credentials::new("alice", "x")), &env).unwrap();
        assert_eq!(r.source, CredentialSource::CommandLine);
    }

    #[test]
    fn environment_credentials_are_for_one_registry() {
        let dir = tempfile::tempdir().unwrap();
        let env = AuthEnv {
            username: Some("bob".into()),
            password: Some(Zeroizing::new("from-env".into())),
            scope: Some(Scope::Variable("https://Registry.Example:5000/".into())),
            docker_config_dir: Some(dir.path().to_path_buf()),
            path: None,
        };
        // PACK_REGISTRY wins over the command's registry.
        let env = env.for_command("attacker.example");
        assert_eq!(
            resolve("registry.example:5000", None, &env).unwrap().source,
            CredentialSource::Environment
        );
        for other in [
            "attacker.example",
            "registry.example",
            "registry.example:5001",
            "127.0.0.1:5000",
        ] {
            let r = resolve(other, None, &env).unwrap();
            assert_eq!(r.source, CredentialSource::Anonymous, "{other}");
            let withheld = env.withheld_from(other).unwrap().to_string();
            assert!(
                withheld.contains(REGISTRY_ENV) && withheld.contains(other),
                "{withheld}"
            );
            assert!(!withheld.contains("from-env"), "{withheld}");
        }
        assert_eq!(env.withheld_from("registry.example:5000"), None);
        // Docker Hub's names are one registry.
        let hub = AuthEnv {
            scope: Some(Scope::Variable("docker.io".into())),
            ..env.clone()
        };
        assert!(hub.applies_to("index.docker.io") && !hub.applies_to("ghcr.io"));
        // Nothing to withhold without credentials.
        let none = AuthEnv {
            password: None,
            ..env.clone()
        };
        assert_eq!(none.withheld_from("attacker.example"), None);
        // No scope: withheld everywhere, with a hint to set one.
        let unscoped = AuthEnv { scope: None, ..env };
        let text = unscoped.withheld_from("ghcr.io").unwrap().to_string();
        assert!(text.contains("PACK_REGISTRY=ghcr.io"), "{text}");
    }

    #[test]
    fn docker_hub_keys_match() {
        assert_eq!(config_key("index.docker.io"), DOCKER_HUB_KEY);
        assert!(same_registry(DOCKER_HUB_KEY, "docker.io"));
        assert!(same_registry("https://ghcr.io", "ghcr.io"));
        assert!(!same_registry("ghcr.io", "ghcr.io:443"));
    }

    #[test]
    fn broken_configs_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with_config(dir.path(), "{");
        let err = resolve("r", None, &env).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let env = env_with_config(dir.path(), r#"{"auths":{"r":{"auth":"%%%"}}}"#);
        let err = resolve("r", None, &env).unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
        // A missing file means anonymous.
        let env = AuthEnv {
            docker_config_dir: Some(dir.path().join("nope")),
            ..Default::default()
        };
        assert_eq!(
            resolve("r", None, &env).unwrap().source,
            CredentialSource::Anonymous
        );
    }

    #[cfg(unix)]
    fn helper_script(dir: &Path, body: &str) -> std::ffi::OsString {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let path = bin.join("docker-credential-test");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let system = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin];
        paths.extend(std::env::split_paths(&system));
        std::env::join_paths(paths).unwrap()
    }

    #[cfg(unix)]
    #[test]
    fn helpers_are_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = env_with_config(dir.path(), r#"{"credHelpers":{"r.example":"test"}}"#);
        env.path = Some(helper_script(
            dir.path(),
            r#"read server; [ "$1" = get ] && [ "$server" = r.example ] && echo '{"ServerURL":"r.example","Username":"helped","Secret":"hs"}' || { echo "credentials not found in native keychain"; exit 1; }"#,
        ));
        let r = resolve("r.example", None, &env).unwrap();
        assert_eq!(
            r.source,
            CredentialSource::Helper {
                helper: "test".into()
            }
        );
        assert_eq!(r.credentials.unwrap().password(), "hs");

        // credsStore covers every registry; "not found" means anonymous.
        std::fs::write(dir.path().join("config.json"), r#"{"credsStore":"test"}"#).unwrap();
        assert_eq!(
            resolve("other", None, &env).unwrap().source,
            CredentialSource::Anonymous
        );

        // A failing helper is an error that names it.
        env.path = Some(helper_script(dir.path(), "echo boom >&2; exit 3"));
        let err = resolve("r.example", None, &env).unwrap_err();
        assert!(err.to_string().contains("docker-credential-test"), "{err}");
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn store_writes_a_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with_config(
            dir.path(),
            r#"{"auths":{"https://r.example":{}},"other":1}"#,
        );
        let stored = store("r.example", &Credentials::new("alice", "pw"), &env).unwrap();
        assert!(matches!(stored, Stored::DockerConfig { .. }));
        let value: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(value["other"], 1);
        assert_eq!(value["auths"].as_object().unwrap().len(), 1);
        assert_eq!(value["auths"]["r.example"]["auth"], "YWxpY2U6cHc=");
        let r = resolve("r.example", None, &env).unwrap();
        assert_eq!(r.credentials.unwrap().password(), "pw");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("config.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
