//! `pack.toml`: the project manifest `pack build` and `pack push` read when their
//! arguments are left out. Flags override it, and `PACK_*` environment variables override
//! the file (see docs/pack-toml.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

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

/// Where a value is missing from: the flag, the variable, and the manifest key.
pub(crate) fn missing(what: &str, flag: &str, var: &str, key: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no {what}: pass {flag}, set {var}, or set `{key}` in {FILE_NAME} (`pack init` writes one)"
    )
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
