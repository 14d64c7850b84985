//! The engine a host loads artifacts with.
//!
//! A precompiled artifact loads only into an engine whose code-relevant settings are the
//! ones it was compiled with. The compile side records them in each native config's
//! `profile` (`settings`: the keys that differ from wasmtime's defaults, named as in a
//! `pack compile --profile` file). [`EngineSettings`] reads them back and applies them
//! to a [`wasmtime::Config`] the same way the compiler does, so the engine's
//! compatibility hash (with the `jit` feature, where wasmtime can compute it) is the one
//! the artifact records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmtime::{Config, WasmFeatures};

/// `opt_level` (code generation only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptLevel {
    None,
    #[default]
    Speed,
    SpeedAndSize,
}

/// `regalloc_algorithm` (code generation only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegallocAlgorithm {
    #[default]
    Backtracking,
    SinglePass,
}

/// `inlining`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collector {
    #[default]
    Auto,
    Drc,
    Null,
    Copying,
}

/// The engine settings that change generated code: the keys of a compile profile. A
/// missing key has wasmtime 48's default; keys whose default depends on the target stay
/// unset unless given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
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
    /// case. Unlisted ones keep wasmtime's default.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, bool>,
}

impl Default for EngineSettings {
    /// wasmtime 48's defaults.
    fn default() -> Self {
        EngineSettings {
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

/// Why a native config's `profile` cannot be read as [`EngineSettings`].
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

impl EngineSettings {
    /// Reads the settings a native config's `profile` records: its `settings` object
    /// (the keys that differ from the defaults), or else the profile's own keys besides
    /// `name` and `sha256`. A profile that is a plain name, or absent, is the default.
    pub fn from_profile(profile: &serde_json::Value) -> Result<EngineSettings, ProfileError> {
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
        let settings: EngineSettings = serde_json::from_value(serde_json::Value::Object(settings))
            .map_err(|e| ProfileError(format!("profile settings: {e}")))?;
        for name in settings.features.keys() {
            if feature_flag(name).is_none() {
                return Err(ProfileError(format!(
                    "profile settings: unknown WebAssembly feature `{name}`"
                )));
            }
        }
        Ok(settings)
    }

    /// Reads a profile file in the format `pack compile --profile` takes (TOML; `name`
    /// is ignored).
    pub fn from_toml(text: &str) -> Result<EngineSettings, ProfileError> {
        let mut value: toml::Table =
            toml::from_str(text).map_err(|e| ProfileError(e.to_string()))?;
        value.remove("name");
        let json = serde_json::to_value(value).map_err(|e| ProfileError(e.to_string()))?;
        let settings: EngineSettings =
            serde_json::from_value(json).map_err(|e| ProfileError(e.to_string()))?;
        for name in settings.features.keys() {
            if feature_flag(name).is_none() {
                return Err(ProfileError(format!(
                    "unknown WebAssembly feature `{name}`"
                )));
            }
        }
        Ok(settings)
    }

    /// The settings that differ from `other`, described for a person: `with epoch
    /// interruption`, `without debug symbols`, `opt_level = none`.
    pub fn differences(&self, other: &EngineSettings) -> Vec<String> {
        let ours = settings_map(self);
        let theirs = settings_map(other);
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

    /// The keys that differ from wasmtime's defaults, as a JSON object: what a native
    /// config's `profile.settings` records.
    pub fn non_defaults(&self) -> serde_json::Map<String, serde_json::Value> {
        let defaults = settings_map(&EngineSettings::default());
        settings_map(self)
            .into_iter()
            .filter(|(k, v)| defaults.get(k) != Some(v))
            .collect()
    }

    /// Whether the store must be given fuel or an epoch deadline for code compiled with
    /// these settings to run at all.
    pub fn needs_store_setup(&self) -> bool {
        self.consume_fuel || self.epoch_interruption
    }

    /// Applies the settings to `config` the way `pack compile` does: only keys that differ
    /// from wasmtime's defaults call a setter, and backtrace details never come from the
    /// environment. Code-generation-only keys are applied only when the engine has a
    /// compiler.
    pub fn apply(&self, config: &mut Config) {
        let s = self;
        let d = EngineSettings::default();
        config.wasm_backtrace_details(if s.wasm_backtrace_details {
            wasmtime::WasmBacktraceDetails::Enable
        } else {
            wasmtime::WasmBacktraceDetails::Disable
        });
        #[cfg(feature = "jit")]
        {
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

fn settings_map(settings: &EngineSettings) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(settings) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

fn feature_flag(name: &str) -> Option<WasmFeatures> {
    WasmFeatures::from_name(&name.to_ascii_uppercase())
}

/// Which engine settings a host loads artifacts with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnginePolicy {
    /// Configure the engine the way each artifact's profile says (one engine per
    /// distinct profile). Suits a host that runs what it is given, like `pack run`.
    #[default]
    Adopt,
    /// One engine with these settings for every bundle; an artifact compiled with other
    /// settings is passed over. Suits a multi-tenant host.
    Fixed(EngineSettings),
}

/// The pooling instance allocator's size: how many instances (and memories, tables,
/// stacks) may be live at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pooling {
    /// Component instances live at once.
    pub total_component_instances: u32,
    /// Core instances, memories and tables live at once (a component holds several).
    pub total_core_instances: u32,
}

impl Default for Pooling {
    fn default() -> Self {
        Pooling {
            total_component_instances: 100,
            total_core_instances: 1000,
        }
    }
}

impl Pooling {
    pub(crate) fn config(&self) -> wasmtime::PoolingAllocationConfig {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(self.total_component_instances)
            .total_core_instances(self.total_core_instances)
            .total_memories(self.total_core_instances)
            .total_tables(self.total_core_instances)
            .total_stacks(self.total_component_instances)
            .total_gc_heaps(self.total_component_instances)
            // Components built by language toolchains are large (py-cli's CPython).
            .max_component_instance_size(8 << 20)
            .max_core_instance_size(4 << 20)
            .max_tables_per_module(8)
            .table_elements(100_000)
            .max_memories_per_module(2);
        pool
    }
}

/// The `Config` for loading artifacts compiled with `settings`: the settings, the
/// allocator, and (with `jit`) the compile target. `target` is `(triple, cpu flags)` of
/// the artifact; `None` compiles for (and loads on) this machine.
pub(crate) fn config(
    settings: &EngineSettings,
    pooling: Option<&Pooling>,
    target: Option<(&str, &[String])>,
) -> wasmtime::Result<Config> {
    let mut config = Config::new();
    if let Some((triple, _flags)) = target {
        config.target(triple)?;
        #[cfg(feature = "jit")]
        for flag in _flags {
            let flag = crate::cpu::setting_name(flag);
            // SAFETY: these settings only describe the machine the code is for; loading
            // an artifact checks them against this machine's CPU.
            unsafe {
                match flag.split_once('=') {
                    Some((name, value)) => config.cranelift_flag_set(name, value),
                    None => config.cranelift_flag_enable(&flag),
                };
            }
        }
    }
    settings.apply(&mut config);
    if let Some(pooling) = pooling {
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
            pooling.config(),
        ));
    }
    Ok(config)
}

/// sha256 (hex) of `Engine::precompile_compatibility_hash`, computed exactly as
/// `pack compile` records it: wasmtime's `Hash` fed to a hasher over sha256.
#[cfg(feature = "jit")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn profiles_are_read_from_settings_or_keys() {
        assert_eq!(
            EngineSettings::from_profile(&json!(null)).unwrap(),
            EngineSettings::default()
        );
        assert_eq!(
            EngineSettings::from_profile(
                &json!({"name": "default", "sha256": "ab", "settings": {}})
            )
            .unwrap(),
            EngineSettings::default()
        );
        let s = EngineSettings::from_profile(&json!({
            "name": "x", "settings": {"epoch_interruption": true, "features": {"memory64": true}}
        }))
        .unwrap();
        assert!(s.epoch_interruption && s.features["memory64"]);
        // camelCase keys beside the name.
        let s = EngineSettings::from_profile(&json!({"name": "r", "optLevel": "none"})).unwrap();
        assert_eq!(s.opt_level, OptLevel::None);
        let err = EngineSettings::from_profile(&json!({"settings": {"epoch": true}})).unwrap_err();
        assert!(err.0.contains("epoch"), "{err}");
        let err = EngineSettings::from_profile(&json!({"settings": {"features": {"simd2": true}}}))
            .unwrap_err();
        assert!(err.0.contains("simd2"), "{err}");
    }

    #[test]
    fn toml_profiles() {
        let s = EngineSettings::from_toml("name = \"x\"\nconsume_fuel = true\n").unwrap();
        assert!(s.consume_fuel);
        assert!(EngineSettings::from_toml("fuel = 1").is_err());
    }

    #[test]
    fn differences_are_described() {
        let epoch = EngineSettings {
            epoch_interruption: true,
            opt_level: OptLevel::None,
            ..Default::default()
        };
        assert_eq!(
            epoch.differences(&EngineSettings::default()),
            ["with epoch interruption", "opt_level = \"none\""]
        );
        assert_eq!(
            EngineSettings::default().differences(&epoch),
            ["without epoch interruption", "opt_level = \"speed\""]
        );
        assert!(epoch.differences(&epoch).is_empty());
    }

    #[test]
    fn configs_build_engines() {
        for settings in [
            EngineSettings::default(),
            EngineSettings {
                epoch_interruption: true,
                consume_fuel: true,
                ..Default::default()
            },
        ] {
            let config = config(&settings, Some(&Pooling::default()), None).unwrap();
            wasmtime::Engine::new(&config).unwrap();
        }
    }
}
