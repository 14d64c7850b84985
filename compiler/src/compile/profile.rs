//! Engine profiles: the wasmtime settings that change generated code, read from a TOML
//! file. A profile with no keys is exactly wasmtime 48's defaults, so what it produces
//! loads in a stock wasmtime (`wasmtime run --allow-precompiled`).

use std::path::{Path, PathBuf};

pub use pack_engine_settings::{
    Collector, Inlining, OptLevel, ProfileName, RegallocAlgorithm, Settings, feature_names,
};
use sha2::{Digest, Sha256};
use wasmtime::Config;

use super::Error;

/// A named set of engine settings with the digest of its canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    name: String,
    path: Option<PathBuf>,
    settings: Settings,
    canonical: String,
    sha256: String,
}

impl Default for Profile {
    fn default() -> Self {
        Profile::from_settings("default", None, Settings::default())
    }
}

impl Profile {
    /// The profile `pack build` compiles an HTTP handler with when none is given:
    /// wasmtime's defaults with epoch interruption, so that a host serving many apps
    /// (`pack serve`) can stop a request at its timeout. Its artifacts load into a
    /// wasmtime engine with epoch interruption on (`wasmtime serve -Wtimeout=...
    /// --allow-precompiled`), not into a default one.
    pub fn http_handler() -> Profile {
        Profile::from_settings(
            "http-handler",
            None,
            Settings {
                epoch_interruption: true,
                ..Settings::default()
            },
        )
    }

    /// Reads a profile file. Errors name the file, and the key with its line.
    pub fn load(path: &Path) -> Result<Profile, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Profile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Profile::parse(path, &text)
    }

    /// Parses profile text; `path` names it in errors and gives the default name.
    pub fn parse(path: &Path, text: &str) -> Result<Profile, Error> {
        let error = |message: String| Error::Profile {
            path: path.to_path_buf(),
            message,
        };
        let mut settings: Settings = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        let known = feature_names();
        for name in settings.features.keys() {
            if !known.iter().any(|k| k == name) {
                return Err(error(format!(
                    "unknown key `features.{name}`; the WebAssembly features are: {}",
                    known.join(", ")
                )));
            }
        }
        let name = settings.name.0.take().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "profile".into())
        });
        Ok(Profile::from_settings(
            &name,
            Some(path.to_path_buf()),
            settings,
        ))
    }

    /// The profile a native artifact records (`{"name", "sha256", "settings"}`, as
    /// `compile.json` and a native config write it). When it gives a `sha256`, the
    /// rebuilt profile's must be the same: the settings were read back exactly.
    pub fn from_recorded(recorded: &serde_json::Value) -> Result<Profile, Error> {
        let error = |message: String| Error::Profile {
            path: PathBuf::from("(recorded profile)"),
            message,
        };
        let settings = Settings::from_profile(recorded).map_err(|e| error(e.to_string()))?;
        let name = recorded
            .get("name")
            .and_then(|n| n.as_str())
            .or_else(|| recorded.as_str())
            .unwrap_or("default");
        let profile = Profile::from_settings(name, None, settings);
        if let Some(sha256) = recorded.get("sha256").and_then(|s| s.as_str())
            && sha256 != profile.sha256
        {
            return Err(error(format!(
                "the recorded settings give profile digest {}, not the recorded {sha256}",
                profile.sha256
            )));
        }
        Ok(profile)
    }

    fn from_settings(name: &str, path: Option<PathBuf>, mut settings: Settings) -> Profile {
        settings.name = ProfileName::default();
        let canonical = serde_json::to_string(&settings).expect("settings serialize");
        let sha256 = hex::encode(Sha256::digest(canonical.as_bytes()));
        Profile {
            name: name.to_string(),
            path,
            settings,
            canonical,
            sha256,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it was read from; `None` for the built-in default.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The canonical form: compact JSON of every key in documented order, keys with a
    /// target-independent default written out, and `features` sorted.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// sha256 of [`Profile::canonical`], hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The keys that differ from wasmtime's defaults, as a JSON object: what makes an
    /// artifact incompatible with a stock engine.
    pub fn non_defaults(&self) -> serde_json::Map<String, serde_json::Value> {
        self.settings.non_defaults()
    }

    /// Applies the settings to `config` ([`Settings::apply`]: only keys that differ from
    /// wasmtime's defaults call a setter).
    pub(crate) fn apply(&self, config: &mut Config) {
        self.settings.apply(config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile, Error> {
        Profile::parse(Path::new("profiles/fast.toml"), text)
    }

    #[test]
    fn empty_profile_is_the_default() {
        let p = parse("").unwrap();
        assert_eq!(p.name(), "fast");
        assert_eq!(p.settings(), Profile::default().settings());
        assert_eq!(p.sha256(), Profile::default().sha256());
        assert!(p.non_defaults().is_empty());
        // Writing a default out does not change the digest; the name is not part of it.
        let explicit =
            parse("name = \"x\"\nopt_level = \"speed\"\nepoch_interruption = false").unwrap();
        assert_eq!(explicit.name(), "x");
        assert_eq!(explicit.sha256(), p.sha256());
    }

    #[test]
    fn settings_change_the_digest() {
        let p = parse("epoch_interruption = true\n[features]\nmemory64 = true").unwrap();
        assert_ne!(p.sha256(), Profile::default().sha256());
        let nd = p.non_defaults();
        assert_eq!(nd["epoch_interruption"], true);
        assert_eq!(nd["features"]["memory64"], true);
        assert!(
            p.canonical().starts_with("{\"opt_level\":\"speed\""),
            "{}",
            p.canonical()
        );
    }

    #[test]
    fn errors_name_the_key_and_file() {
        let err = parse("opt_level = \"speed\"\nepoch = true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("profiles/fast.toml"), "{err}");
        assert!(err.contains("epoch") && err.contains("line 2"), "{err}");
        let err = parse("consume_fuel = \"yes\"").unwrap_err().to_string();
        assert!(err.contains("consume_fuel"), "{err}");
        let err = parse("opt_level = \"fastest\"").unwrap_err().to_string();
        assert!(err.contains("speed_and_size"), "{err}");
        let err = parse("[features]\nsimd2 = true").unwrap_err().to_string();
        assert!(
            err.contains("features.simd2") && err.contains("relaxed_simd"),
            "{err}"
        );
    }
}
