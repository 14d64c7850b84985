//! Engine profiles: the wasmtime settings that change generated code, read from a TOML
//! file. A profile with no keys is exactly wasmtime 48's defaults, so what it produces
//! loads in a stock wasmtime (`wasmtime run --allow-precompiled`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Config, WasmFeatures};

use super::Error;

/// `opt_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptLevel {
    None,
    #[default]
    Speed,
    SpeedAndSize,
}

/// `regalloc_algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegallocAlgorithm {
    #[default]
    Backtracking,
    SinglePass,
}

/// `inlining`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inlining {
    #[default]
    No,
    Yes,
    Intrinsics,
    InterModule,
    InterModuleAndIntraGc,
}

/// `collector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collector {
    #[default]
    Auto,
    Drc,
    Null,
    Copying,
}

/// The settings of a profile. Every key is optional in the file; a missing key has
/// wasmtime 48's default. Keys whose default depends on the target (memory reservation
/// and guard sizes, signals-based traps, GC heap sizes) stay unset unless given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The profile's name (not part of its digest). Defaults to the file's stem.
    #[serde(skip_serializing)]
    name: Option<String>,
    pub opt_level: OptLevel,
    pub regalloc_algorithm: RegallocAlgorithm,
    pub nan_canonicalization: bool,
    pub inlining: Inlining,
    pub debug_info: bool,
    pub debug_symbols: bool,
    pub wasm_backtrace_details: bool,
    pub native_unwind_info: bool,
    pub generate_address_map: bool,
    pub consume_fuel: bool,
    pub epoch_interruption: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_guard_size: Option<u64>,
    pub memory_may_move: bool,
    pub guard_before_linear_memory: bool,
    pub memory_init_cow: bool,
    pub table_lazy_init: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals_based_traps: Option<bool>,
    pub relaxed_simd_deterministic: bool,
    pub collector: Collector,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_heap_reservation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_heap_guard_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_heap_may_move: Option<bool>,
    pub gc_heap_initial_size: u64,
    pub concurrency_support: bool,
    /// WebAssembly proposals turned on or off, by wasmparser's feature name in lower
    /// case (`simd`, `threads`, `memory64`, ...). Unlisted ones keep wasmtime's default.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, bool>,
}

impl Default for Settings {
    /// wasmtime 48's defaults (with the crate features pack is built with).
    fn default() -> Self {
        Settings {
            name: None,
            opt_level: OptLevel::Speed,
            regalloc_algorithm: RegallocAlgorithm::Backtracking,
            nan_canonicalization: false,
            inlining: Inlining::No,
            debug_info: false,
            debug_symbols: true,
            wasm_backtrace_details: false,
            native_unwind_info: true,
            generate_address_map: true,
            consume_fuel: false,
            epoch_interruption: false,
            memory_reservation: None,
            memory_guard_size: None,
            memory_may_move: true,
            guard_before_linear_memory: true,
            memory_init_cow: true,
            table_lazy_init: true,
            signals_based_traps: None,
            relaxed_simd_deterministic: false,
            collector: Collector::Auto,
            gc_heap_reservation: None,
            gc_heap_guard_size: None,
            gc_heap_may_move: None,
            gc_heap_initial_size: 0,
            concurrency_support: true,
            features: BTreeMap::new(),
        }
    }
}

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
        let name = settings.name.take().unwrap_or_else(|| {
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

    fn from_settings(name: &str, path: Option<PathBuf>, mut settings: Settings) -> Profile {
        settings.name = None;
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
        let ours = serde_json::to_value(&self.settings).expect("settings serialize");
        let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
        let (serde_json::Value::Object(ours), serde_json::Value::Object(defaults)) =
            (ours, defaults)
        else {
            unreachable!("settings serialize to objects")
        };
        ours.into_iter()
            .filter(|(k, v)| defaults.get(k) != Some(v))
            .collect()
    }

    /// Applies the settings to `config`. Only keys that differ from wasmtime's defaults
    /// call a setter, so the default profile leaves `config` as `Config::new()` made it,
    /// except that backtrace details never come from the environment
    /// (`WASMTIME_BACKTRACE_DETAILS`).
    pub(crate) fn apply(&self, config: &mut Config) {
        let s = &self.settings;
        let d = Settings::default();
        config.wasm_backtrace_details(if s.wasm_backtrace_details {
            wasmtime::WasmBacktraceDetails::Enable
        } else {
            wasmtime::WasmBacktraceDetails::Disable
        });
        if s.opt_level != d.opt_level {
            config.cranelift_opt_level(match s.opt_level {
                OptLevel::None => wasmtime::OptLevel::None,
                OptLevel::Speed => wasmtime::OptLevel::Speed,
                OptLevel::SpeedAndSize => wasmtime::OptLevel::SpeedAndSize,
            });
        }
        if s.regalloc_algorithm != d.regalloc_algorithm {
            config.cranelift_regalloc_algorithm(match s.regalloc_algorithm {
                RegallocAlgorithm::Backtracking => wasmtime::RegallocAlgorithm::Backtracking,
                RegallocAlgorithm::SinglePass => wasmtime::RegallocAlgorithm::SinglePass,
            });
        }
        if s.nan_canonicalization != d.nan_canonicalization {
            config.cranelift_nan_canonicalization(s.nan_canonicalization);
        }
        if s.inlining != d.inlining {
            config.compiler_inlining(match s.inlining {
                Inlining::No => wasmtime::Inlining::No,
                Inlining::Yes => wasmtime::Inlining::Yes,
                Inlining::Intrinsics => wasmtime::Inlining::Intrinsics,
                Inlining::InterModule => wasmtime::Inlining::InterModule,
                Inlining::InterModuleAndIntraGc => wasmtime::Inlining::InterModuleAndIntraGc,
            });
        }
        macro_rules! bools {
            ($($key:ident),*) => {$(
                if s.$key != d.$key {
                    config.$key(s.$key);
                }
            )*};
        }
        bools!(
            debug_info,
            debug_symbols,
            native_unwind_info,
            generate_address_map,
            consume_fuel,
            epoch_interruption,
            memory_may_move,
            guard_before_linear_memory,
            memory_init_cow,
            table_lazy_init,
            relaxed_simd_deterministic,
            concurrency_support
        );
        if let Some(v) = s.memory_reservation {
            config.memory_reservation(v);
        }
        if let Some(v) = s.memory_guard_size {
            config.memory_guard_size(v);
        }
        if let Some(v) = s.signals_based_traps {
            config.signals_based_traps(v);
        }
        if let Some(v) = s.gc_heap_reservation {
            config.gc_heap_reservation(v);
        }
        if let Some(v) = s.gc_heap_guard_size {
            config.gc_heap_guard_size(v);
        }
        if let Some(v) = s.gc_heap_may_move {
            config.gc_heap_may_move(v);
        }
        if s.gc_heap_initial_size != d.gc_heap_initial_size {
            config.gc_heap_initial_size(s.gc_heap_initial_size);
        }
        if s.collector != d.collector {
            config.collector(match s.collector {
                Collector::Auto => wasmtime::Collector::Auto,
                Collector::Drc => wasmtime::Collector::DeferredReferenceCounting,
                Collector::Null => wasmtime::Collector::Null,
                Collector::Copying => wasmtime::Collector::Copying,
            });
        }
        for (name, &enable) in &s.features {
            if let Some(flag) = feature_flag(name) {
                config.wasm_features(flag, enable);
            }
        }
    }
}

/// The `features` keys: wasmparser's feature names in lower case.
pub fn feature_names() -> Vec<String> {
    WasmFeatures::all()
        .iter_names()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect()
}

fn feature_flag(name: &str) -> Option<WasmFeatures> {
    WasmFeatures::from_name(&name.to_ascii_uppercase())
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
