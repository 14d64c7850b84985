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
/// stacks) may be live at once, and how much of a freed slot stays mapped for the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pooling {
    /// Component instances live at once.
    pub total_component_instances: u32,
    /// Core instances, memories and tables live at once (a component holds several).
    pub total_core_instances: u32,
    /// Bytes at the start of a freed linear memory that are reset in place (zeroed, or
    /// restored from the module's image) instead of given back to the kernel.
    ///
    /// Giving pages back (`madvise(MADV_DONTNEED)`) makes the kernel flush every core's
    /// TLB; with one instance per request that flush dominates a small handler's cost.
    /// Resetting in place costs a `memset` of what the instance dirtied. What stays
    /// resident is bounded by the pool's warm slots (wasmtime keeps at most 100 unused
    /// ones) times this size.
    pub linear_memory_keep_resident: usize,
    /// Bytes of a freed table reset in place instead of given back to the kernel, as
    /// [`linear_memory_keep_resident`](Self::linear_memory_keep_resident) for memories.
    pub table_keep_resident: usize,
}

impl Default for Pooling {
    fn default() -> Self {
        Pooling {
            total_component_instances: 100,
            total_core_instances: 1000,
            linear_memory_keep_resident: 2 << 20,
            table_keep_resident: 64 << 10,
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
            .max_memories_per_module(2)
            .linear_memory_keep_resident(self.linear_memory_keep_resident)
            .table_keep_resident(self.table_keep_resident);
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

    /// A pool slot that is reset in place (not given back to the kernel) must still hand
    /// the next instance the module's own initial memory and tables: no state may pass
    /// from one request's instance to the next. Writes land below the kept-resident
    /// size (in the data image and in zeroed pages) and above it.
    #[test]
    fn kept_resident_slots_start_clean() {
        let pooling = Pooling {
            total_component_instances: 2,
            total_core_instances: 2,
            ..Pooling::default()
        };
        assert!(pooling.linear_memory_keep_resident >= 1 << 20);
        let config = config(&EngineSettings::default(), Some(&pooling), None).unwrap();
        let engine = wasmtime::Engine::new(&config).unwrap();
        let high = pooling.linear_memory_keep_resident as i32 + 4096;
        let wasm = wat::parse_str(format!(
            r#"(module
                    (memory (export "memory") 64)
                    (data (i32.const 0) "\2a")
                    (data (i32.const {high}) "\07")
                    (table 4 funcref)
                    (elem (i32.const 0) $f)
                    (func $f)
                    (func (export "bump") (param i32) (result i32)
                      (local $old i32)
                      (local.set $old (i32.load (local.get 0)))
                      (i32.store (local.get 0) (i32.add (local.get $old) (i32.const 1)))
                      (local.get $old))
                    (func (export "take") (result i32)
                      (local $was i32)
                      (local.set $was (ref.is_null (table.get 0 (i32.const 0))))
                      (table.set 0 (i32.const 0) (ref.null func))
                      (local.get $was)))"#
        ))
        .unwrap();
        let module = wasmtime::Module::new(&engine, wasm).unwrap();
        for round in 0..3 {
            let mut store = wasmtime::Store::new(&engine, ());
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
            let bump = instance
                .get_typed_func::<i32, i32>(&mut store, "bump")
                .unwrap();
            let take = instance
                .get_typed_func::<(), i32>(&mut store, "take")
                .unwrap();
            for (addr, initial) in [(0, 42), (1 << 20, 0), (high, 7), (high + 65536, 0)] {
                assert_eq!(
                    bump.call(&mut store, addr).unwrap(),
                    initial,
                    "round {round}: memory at {addr:#x} carried a previous instance's write"
                );
            }
            assert_eq!(
                take.call(&mut store, ()).unwrap(),
                0,
                "round {round}: table element 0 was cleared by a previous instance"
            );
        }
    }
}
