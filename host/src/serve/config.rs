//! `serve.toml`: what `pack serve` serves, read strictly (an unknown key is an error
//! naming the file, the line and the key).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::route::Route;

/// The address served when neither the file nor the caller names one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How often registry tags are re-resolved when `poll` is not given.
pub const DEFAULT_POLL: Duration = Duration::from_secs(30);
/// The wall-clock limit of a request when `timeout` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Instances of one app at once when `max-concurrency` is not given.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 100;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid: `serve.toml:7: unknown key `tiemout`...`.
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A value given on the command line (`--app ROUTE=BUNDLE`) is not valid.
    #[error("{message}")]
    Argument { message: String },
}

/// What `pack serve` serves, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// The file it was read from, when there is one (SIGHUP re-reads it).
    pub path: Option<PathBuf>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Trusted public keys (relative paths are relative to the file).
    pub keys: Vec<PathBuf>,
    /// How often registry tags (and layout tags) are re-resolved.
    pub poll: Duration,
    /// The apps, in the file's order.
    pub apps: Vec<AppConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            path: None,
            listen: DEFAULT_LISTEN.parse().expect("a valid address"),
            keys: Vec::new(),
            poll: DEFAULT_POLL,
            apps: Vec::new(),
        }
    }
}

/// One app: a route and the bundle behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    pub route: Route,
    /// A registry reference or a layout path (`[:tag]`), as `pack run` takes it.
    pub bundle: String,
    /// Environment variables the handler sees.
    pub env: BTreeMap<String, String>,
    /// Wall-clock limit per request.
    pub timeout: Duration,
    /// Linear memory per instance, in bytes; `None` is the pooling allocator's limit.
    pub max_memory: Option<u64>,
    /// Instances of this app at once; a request beyond it is answered 503.
    pub max_concurrency: u32,
}

impl AppConfig {
    /// An app with the default limits.
    pub fn new(route: Route, bundle: impl Into<String>) -> Self {
        Self {
            route,
            bundle: bundle.into(),
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            max_memory: None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }

    /// Parses `ROUTE=BUNDLE` (`--app /hello=out/hello:v1`).
    pub fn parse_arg(arg: &str) -> Result<Self, ConfigError> {
        let (route, bundle) = arg.split_once('=').ok_or_else(|| ConfigError::Argument {
            message: format!("`{arg}` is not ROUTE=BUNDLE (e.g. `/hello=out/hello:v1`)"),
        })?;
        let route = Route::parse(route).map_err(|message| ConfigError::Argument {
            message: format!("`{arg}`: {message}"),
        })?;
        if bundle.is_empty() {
            return Err(ConfigError::Argument {
                message: format!("`{arg}`: no bundle after `=`"),
            });
        }
        Ok(Self::new(route, bundle))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<toml::Spanned<String>>,
    #[serde(default)]
    keys: Vec<String>,
    poll: Option<toml::Spanned<String>>,
    #[serde(default)]
    app: Vec<FileApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileApp {
    route: toml::Spanned<String>,
    bundle: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    timeout: Option<toml::Spanned<String>>,
    max_memory: Option<toml::Spanned<toml::Value>>,
    max_concurrency: Option<toml::Spanned<i64>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl ServeConfig {
    /// Reads `path`. Relative key and layout paths are taken relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let invalid = |offset: usize, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, offset),
            message,
        };
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let message = e.message().replace("unknown field", "unknown key");
            invalid(offset, message)
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let relative = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() || base.as_os_str().is_empty() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let mut config = ServeConfig {
            path: Some(path.to_path_buf()),
            ..Default::default()
        };
        if let Some(listen) = file.listen {
            config.listen = listen.get_ref().parse().map_err(|_| {
                invalid(
                    listen.span().start,
                    format!(
                        "`listen = \"{}\"` is not an address (e.g. \"127.0.0.1:8080\")",
                        listen.get_ref()
                    ),
                )
            })?;
        }
        config.keys = file.keys.iter().map(|k| relative(k)).collect();
        if let Some(poll) = file.poll {
            config.poll = parse_duration(poll.get_ref())
                .map_err(|m| invalid(poll.span().start, format!("poll: {m}")))?;
        }
        for app in file.app {
            let route = Route::parse(app.route.get_ref())
                .map_err(|m| invalid(app.route.span().start, format!("route: {m}")))?;
            let mut out = AppConfig::new(route, layout_relative(&app.bundle, &relative));
            out.env = app.env;
            if let Some(t) = app.timeout {
                out.timeout = parse_duration(t.get_ref())
                    .map_err(|m| invalid(t.span().start, format!("timeout: {m}")))?;
            }
            if let Some(m) = app.max_memory {
                let bytes = match m.get_ref() {
                    toml::Value::Integer(n) if *n > 0 => Ok(*n as u64),
                    toml::Value::String(s) => parse_size(s),
                    other => Err(format!("{other} is not a size (e.g. \"64MiB\")")),
                };
                out.max_memory =
                    Some(bytes.map_err(|e| invalid(m.span().start, format!("max-memory: {e}")))?);
            }
            if let Some(c) = app.max_concurrency {
                out.max_concurrency = u32::try_from(*c.get_ref())
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        invalid(
                            c.span().start,
                            format!("max-concurrency: {} is not a positive number", c.get_ref()),
                        )
                    })?;
            }
            if let Some(dup) = config.apps.iter().find(|a| a.route == out.route) {
                return Err(invalid(
                    app.route.span().start,
                    format!("route `{}` is given twice", dup.route),
                ));
            }
            config.apps.push(out);
        }
        Ok(config)
    }
}

/// A layout bundle path taken relative to the file; a registry reference as it is.
fn layout_relative(bundle: &str, relative: &dyn Fn(&str) -> PathBuf) -> String {
    match crate::Source::parse(bundle) {
        crate::Source::Registry(_) => bundle.to_string(),
        crate::Source::Layout(_) => {
            let joined = relative(bundle);
            // Source::parse treats paths with `/` in front as layouts; keep them so.
            let text = joined.to_string_lossy().into_owned();
            if joined.is_absolute() || text.starts_with("./") || text.starts_with("../") {
                text
            } else {
                format!("./{text}")
            }
        }
    }
}

/// `30s`, `500ms`, `2m`, `1h`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit (e.g. \"5s\", \"500ms\", \"2m\")"))?;
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. \"5s\")"))?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
            ));
        }
    };
    if !(seconds > 0.0 && seconds < 1e9) {
        return Err(format!("`{text}` must be more than zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `64MiB`, `1GiB`, `512KiB`, `10MB`, `65536`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. \"64MiB\")"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    n.checked_mul(scale)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
listen = "127.0.0.1:0"
keys = ["release.pub"]
poll = "2s"

[[app]]
route = "/hello"
bundle = "registry.example.com/team/hello:v1"
env = { GREETING = "hi" }
timeout = "5s"
max-memory = "64MiB"
max-concurrency = 3

[[app]]
route = "api.example.com/"
bundle = "out/api:v2"
"#;

    #[test]
    fn reads_the_documented_file() {
        let c = ServeConfig::parse(Path::new("/etc/pack/serve.toml"), FILE).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.keys, [PathBuf::from("/etc/pack/release.pub")]);
        assert_eq!(c.poll, Duration::from_secs(2));
        let hello = &c.apps[0];
        assert_eq!(hello.route.to_string(), "/hello");
        assert_eq!(hello.bundle, "registry.example.com/team/hello:v1");
        assert_eq!(hello.env["GREETING"], "hi");
        assert_eq!(hello.timeout, Duration::from_secs(5));
        assert_eq!(hello.max_memory, Some(64 << 20));
        assert_eq!(hello.max_concurrency, 3);
        let api = &c.apps[1];
        assert_eq!(api.bundle, "/etc/pack/out/api:v2");
        assert_eq!(api.timeout, DEFAULT_TIMEOUT);
        assert_eq!(api.route.host.as_deref(), Some("api.example.com"));
    }

    #[test]
    fn unknown_keys_name_the_file_line_and_key() {
        let text = FILE.replace("timeout = \"5s\"", "tiemout = \"5s\"");
        let e = ServeConfig::parse(Path::new("serve.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("serve.toml:10: unknown key `tiemout`"), "{e}");
        let e = ServeConfig::parse(Path::new("s.toml"), "listen = \"x\"\npol = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:2: unknown key `pol`"), "{e}");
        let e = ServeConfig::parse(Path::new("s.toml"), "\n\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:3: `listen"), "{e}");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert!(parse_size("10 bananas").is_err());
    }

    #[test]
    fn app_arguments() {
        let a = AppConfig::parse_arg("/hello=out/hello:v1").unwrap();
        assert_eq!(a.route.to_string(), "/hello");
        assert_eq!(a.bundle, "out/hello:v1");
        assert!(AppConfig::parse_arg("/hello").is_err());
        assert!(AppConfig::parse_arg("hello=out").is_err());
    }
}
