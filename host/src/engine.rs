//! The engine a host loads artifacts with.
//!
//! A precompiled artifact loads only into an engine whose code-relevant settings are the
//! ones it was compiled with. The compile side records them in each native config's
//! `profile` (`settings`: the keys that differ from wasmtime's defaults, named as in a
//! `pack compile --profile` file). [`EngineSettings`] reads them back and applies them
//! to a [`wasmtime::Config`] the same way the compiler does, so the engine's
//! compatibility hash (with the `jit` feature, where wasmtime can compute it) is the one
//! the artifact records.

use wasmtime::Config;

/// The engine settings that change generated code: the keys of a compile profile, read
/// back from a native config's `profile` ([`EngineSettings::from_profile`]) and applied
/// with the compiler's own mapping ([`EngineSettings::apply`]).
pub use pack_engine_settings::Settings as EngineSettings;
pub use pack_engine_settings::{Collector, Inlining, OptLevel, ProfileError, RegallocAlgorithm};

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
/// `pack compile` records it.
#[cfg(feature = "jit")]
pub use pack_engine_settings::compatibility_hash;

#[cfg(test)]
mod tests {
    use super::*;

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
