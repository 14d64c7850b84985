//! The wasmtime settings that change generated code, and their one mapping onto a
//! [`wasmtime::Config`].
//!
//! A precompiled artifact loads only into an engine whose code-relevant settings are the
//! ones it was compiled with (wasmtime compares a compatibility hash of them). The
//! compiler configures its engines with [`Settings::apply`], records
//! [`Settings::non_defaults`] in each native artifact's config, and the host reads them
//! back and configures its engine with the same [`Settings::apply`]: one mapping, so the
//! two cannot drift apart.
//!
//! Only keys that differ from wasmtime's defaults call a setter, so the default settings
//! leave a `Config` as `Config::new()` made it (except that backtrace details never come
//! from the environment): what the default profile compiles loads in a stock wasmtime.

pub mod platform;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmtime::{Config, WasmFeatures};

/// The version of the `wasmtime` crate, pinned with `=` in the workspace (a test checks it
/// against `Cargo.lock`). Artifacts are compiled with it, and a host loads only artifacts
/// of the same version: wasmtime itself records only the major version in an artifact.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// A profile file's `name`: carried along, never compared, hashed or serialized.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ProfileName(pub Option<String>);

impl PartialEq for ProfileName {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ProfileName {}

impl std::hash::Hash for ProfileName {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// A setting that takes one of several names (serialized in snake_case), each standing
/// for a value of the wasmtime type of the same setting.
macro_rules! setting_enum {
    ($(#[$meta:meta])* $name:ident => $wasmtime:ident {
        $($(#[$variant_meta:meta])* $variant:ident => $value:ident,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)*
        }

        impl $name {
            /// wasmtime's value for it.
            // Without `cranelift`, the code-generation keys are not applied.
            #[cfg_attr(not(feature = "cranelift"), allow(dead_code))]
            fn to_wasmtime(self) -> wasmtime::$wasmtime {
                match self {
                    $($name::$variant => wasmtime::$wasmtime::$value,)*
                }
            }
        }
    };
}

setting_enum! {
    /// `opt_level`.
    OptLevel => OptLevel {
        None => None,
        #[default]
        Speed => Speed,
        SpeedAndSize => SpeedAndSize,
    }
}

setting_enum! {
    /// `regalloc_algorithm`.
    RegallocAlgorithm => RegallocAlgorithm {
        #[default]
        Backtracking => Backtracking,
        SinglePass => SinglePass,
    }
}

setting_enum! {
    /// `inlining`.
    Inlining => Inlining {
        #[default]
        No => No,
        Yes => Yes,
        Intrinsics => Intrinsics,
        InterModule => InterModule,
        InterModuleAndIntraGc => InterModuleAndIntraGc,
    }
}

setting_enum! {
    /// `collector`.
    Collector => Collector {
        #[default]
        Auto => Auto,
        Drc => DeferredReferenceCounting,
        Null => Null,
        Copying => Copying,
    }
}

/// The settings of a profile (the keys of a `pack compile --profile` file, and what a
/// native config's `profile.settings` records). Every key is optional; a missing key has
/// wasmtime 48's default. Keys whose default depends on the target (memory reservation
/// and guard sizes, signals-based traps, GC heap sizes) stay unset unless given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The profile file's `name`: not a setting. Never serialized, and equal to any
    /// other, so it is part of neither a profile's digest nor a comparison.
    #[serde(skip_serializing)]
    pub name: ProfileName,
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
            name: ProfileName::default(),
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

impl Settings {
    /// Applies the settings to `config`. Only keys that differ from wasmtime's defaults
    /// call a setter, and backtrace details never come from the environment
    /// (`WASMTIME_BACKTRACE_DETAILS`). The code-generation keys (`opt_level`,
    /// `regalloc_algorithm`, `nan_canonicalization`) are applied with the `cranelift`
    /// feature only: an engine without a compiler has no use for them.
    pub fn apply(&self, config: &mut Config) {
        let s = self;
        let d = Settings::default();
        config.wasm_backtrace_details(if s.wasm_backtrace_details {
            wasmtime::WasmBacktraceDetails::Enable
        } else {
            wasmtime::WasmBacktraceDetails::Disable
        });
        #[cfg(feature = "cranelift")]
        {
            if s.opt_level != d.opt_level {
                config.cranelift_opt_level(s.opt_level.to_wasmtime());
            }
            if s.regalloc_algorithm != d.regalloc_algorithm {
                config.cranelift_regalloc_algorithm(s.regalloc_algorithm.to_wasmtime());
            }
            if s.nan_canonicalization != d.nan_canonicalization {
                config.cranelift_nan_canonicalization(s.nan_canonicalization);
            }
        }
        if s.inlining != d.inlining {
            config.compiler_inlining(s.inlining.to_wasmtime());
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
        // Settings left to wasmtime's default unless given.
        macro_rules! options {
            ($($key:ident),*) => {$(
                if let Some(v) = s.$key {
                    config.$key(v);
                }
            )*};
        }
        options!(
            memory_reservation,
            memory_guard_size,
            signals_based_traps,
            gc_heap_reservation,
            gc_heap_guard_size,
            gc_heap_may_move
        );
        if s.gc_heap_initial_size != d.gc_heap_initial_size {
            config.gc_heap_initial_size(s.gc_heap_initial_size);
        }
        if s.collector != d.collector {
            config.collector(s.collector.to_wasmtime());
        }
        for (name, &enable) in &s.features {
            if let Some(flag) = feature_flag(name) {
                config.wasm_features(flag, enable);
            }
        }
    }
}

/// Why a native config's `profile` cannot be read as [`Settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError(pub String);

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `optLevel` to `opt_level`.
fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl Settings {
    /// Reads the settings a native config's `profile` records: its `settings` object
    /// (the keys that differ from the defaults), or else the profile's own keys besides
    /// `name` and `sha256`. A profile that is a plain name, or absent, is the default.
    pub fn from_profile(profile: &serde_json::Value) -> Result<Settings, ProfileError> {
        let object = match profile {
            serde_json::Value::Null | serde_json::Value::String(_) => return Ok(Self::default()),
            serde_json::Value::Object(o) => o,
            other => return Err(ProfileError(format!("profile is {other}, not an object"))),
        };
        let settings = match object.get("settings") {
            Some(serde_json::Value::Object(s)) => s.clone(),
            Some(other) => {
                return Err(ProfileError(format!(
                    "profile settings are {other}, not an object"
                )));
            }
            None => object
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "name" | "sha256"))
                .map(|(k, v)| (snake_case(k), v.clone()))
                .collect(),
        };
        let settings: Settings = serde_json::from_value(serde_json::Value::Object(settings))
            .map_err(|e| ProfileError(format!("profile settings: {e}")))?;
        settings.known_features("profile settings: ")
    }

    /// Reads a profile file (TOML, as `pack compile --profile` takes it). Errors name
    /// the key and its line.
    pub fn from_toml(text: &str) -> Result<Settings, ProfileError> {
        let settings: Settings = toml::from_str(text).map_err(|e| ProfileError(e.to_string()))?;
        settings.known_features("")
    }

    /// `self`, or an error (its message after `context`) naming the first `features` key
    /// that is no WebAssembly feature.
    fn known_features(self, context: &str) -> Result<Settings, ProfileError> {
        match self.unknown_features().first() {
            Some(name) => Err(ProfileError(format!(
                "{context}unknown WebAssembly feature `{name}`"
            ))),
            None => Ok(self),
        }
    }

    /// The settings that differ from `other`, described for a person: `with epoch
    /// interruption`, `without debug symbols`, `opt_level = none`.
    pub fn differences(&self, other: &Settings) -> Vec<String> {
        let ours = self.to_map();
        let theirs = other.to_map();
        let mut keys: Vec<&String> = ours.keys().chain(theirs.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            let (a, b) = (ours.get(key), theirs.get(key));
            if a == b {
                continue;
            }
            let human = key.replace('_', " ");
            out.push(match a {
                Some(serde_json::Value::Bool(true)) => format!("with {human}"),
                Some(serde_json::Value::Bool(false)) => format!("without {human}"),
                Some(v) => format!("{key} = {v}"),
                None => format!("{key} unset"),
            });
        }
        out
    }

    /// Whether the store must be given fuel or an epoch deadline for code compiled with
    /// these settings to run at all.
    pub fn needs_store_setup(&self) -> bool {
        self.consume_fuel || self.epoch_interruption
    }
}

impl Settings {
    /// The settings as a JSON object (`name` left out).
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("settings serialize to an object"),
        }
    }

    /// The keys that differ from wasmtime's defaults, as a JSON object: what makes an
    /// artifact incompatible with a stock engine, and what a native config records.
    pub fn non_defaults(&self) -> serde_json::Map<String, serde_json::Value> {
        let defaults = Settings::default().to_map();
        self.to_map()
            .into_iter()
            .filter(|(k, v)| defaults.get(k) != Some(v))
            .collect()
    }

    /// The `features` keys that name no WebAssembly feature.
    pub fn unknown_features(&self) -> Vec<&str> {
        self.features
            .keys()
            .filter(|name| feature_flag(name).is_none())
            .map(String::as_str)
            .collect()
    }
}

/// sha256 (hex) of `Engine::precompile_compatibility_hash`: wasmtime's `Hash` fed to a
/// hasher over sha256, so the value is the same in every build and process (unlike
/// `DefaultHasher`, whose algorithm may change). wasmtime computes it only for engines
/// with a compiler.
#[cfg(feature = "cranelift")]
pub fn compatibility_hash(engine: &wasmtime::Engine) -> String {
    use sha2::{Digest, Sha256};
    use std::hash::Hash;

    #[derive(Default)]
    struct Sha256Hasher(Sha256);
    impl std::hash::Hasher for Sha256Hasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            let digest = self.0.clone().finalize();
            u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
        }
    }
    let mut hasher = Sha256Hasher::default();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(hasher.0.finalize())
}

/// The `features` keys: wasmparser's feature names in lower case.
pub fn feature_names() -> Vec<String> {
    WasmFeatures::all()
        .iter_names()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect()
}

/// The feature a `features` key names.
pub fn feature_flag(name: &str) -> Option<WasmFeatures> {
    WasmFeatures::from_name(&name.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wasmtime_version_matches_the_lock_file() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .map(|v| v.trim_end_matches('"'))
            .unwrap();
        assert_eq!(version, WASMTIME_VERSION);
        assert!(WASMTIME_VERSION.starts_with(wasmtime::ModuleVersionStrategy::default().as_str()));
    }

    #[test]
    fn the_name_is_neither_compared_nor_serialized() {
        let named = Settings {
            name: ProfileName(Some("fast".into())),
            ..Settings::default()
        };
        assert_eq!(named, Settings::default());
        assert!(!named.to_map().contains_key("name"));
        assert!(named.non_defaults().is_empty());
    }

    #[test]
    fn non_defaults_and_unknown_features() {
        let mut s = Settings {
            epoch_interruption: true,
            ..Settings::default()
        };
        s.features.insert("simd".into(), false);
        s.features.insert("simd2".into(), true);
        let keys: Vec<_> = s.non_defaults().keys().cloned().collect();
        assert_eq!(keys, ["epoch_interruption", "features"]);
        assert_eq!(s.unknown_features(), ["simd2"]);
        assert!(feature_names().iter().any(|n| n == "relaxed_simd"));
    }

    #[test]
    fn profiles_are_read_from_settings_or_keys() {
        assert_eq!(
            Settings::from_profile(&json!(null)).unwrap(),
            Settings::default()
        );
        assert_eq!(
            Settings::from_profile(&json!({"name": "default", "sha256": "ab", "settings": {}}))
                .unwrap(),
            Settings::default()
        );
        let s = Settings::from_profile(&json!({
            "name": "x", "settings": {"epoch_interruption": true, "features": {"memory64": true}}
        }))
        .unwrap();
        assert!(s.epoch_interruption && s.features["memory64"]);
        // camelCase keys beside the name.
        let s = Settings::from_profile(&json!({"name": "r", "optLevel": "none"})).unwrap();
        assert_eq!(s.opt_level, OptLevel::None);
        let err = Settings::from_profile(&json!({"settings": {"epoch": true}})).unwrap_err();
        assert!(err.0.contains("epoch"), "{err}");
        let err = Settings::from_profile(&json!({"settings": {"features": {"simd2": true}}}))
            .unwrap_err();
        assert!(err.0.contains("simd2"), "{err}");
    }

    #[test]
    fn toml_profiles() {
        let s = Settings::from_toml("name = \"x\"\nconsume_fuel = true\n").unwrap();
        assert!(s.consume_fuel);
        assert!(Settings::from_toml("fuel = 1").is_err());
    }

    #[test]
    fn differences_are_described() {
        let epoch = Settings {
            epoch_interruption: true,
            opt_level: OptLevel::None,
            ..Default::default()
        };
        assert_eq!(
            epoch.differences(&Settings::default()),
            ["with epoch interruption", "opt_level = \"none\""]
        );
        assert_eq!(
            Settings::default().differences(&epoch),
            ["without epoch interruption", "opt_level = \"speed\""]
        );
        assert!(epoch.differences(&epoch).is_empty());
    }

    #[test]
    #[cfg(feature = "cranelift")]
    fn the_defaults_leave_the_config_as_wasmtime_made_it() {
        // Both engines precompile the same bytes the same way only if the settings
        // changed nothing: compare what each reports as its compatibility-relevant state.
        let mut config = Config::new();
        Settings::default().apply(&mut config);
        let ours = wasmtime::Engine::new(&config).unwrap();
        let mut stock = Config::new();
        stock.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
        let stock = wasmtime::Engine::new(&stock).unwrap();
        assert_eq!(compatibility_hash(&ours), compatibility_hash(&stock));
        let epoch = Settings {
            epoch_interruption: true,
            ..Settings::default()
        };
        let mut config = Config::new();
        epoch.apply(&mut config);
        let other = wasmtime::Engine::new(&config).unwrap();
        assert_ne!(compatibility_hash(&other), compatibility_hash(&stock));
    }
}
