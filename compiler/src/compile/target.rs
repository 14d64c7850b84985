//! Compilation targets: an operating system, an architecture and the CPU features the
//! generated code may use.
//!
//! CPU features are always explicit. A target without a preset gets its architecture's
//! baseline, never the features of the machine that compiles; only `native` reads them,
//! and says so in the metadata.

use std::fmt;

use super::Error;

pub use oci_spec::image::Platform;
pub use pack_engine_settings::platform::{Arch, Os};

/// A named set of CPU features for one architecture, as Cranelift ISA settings.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CpuPreset {
    /// The name `--cpu` takes, e.g. `x86-64-v3`.
    pub name: &'static str,
    pub arch: Arch,
    /// The OCI platform variant, e.g. `v3`; `None` for a baseline without one.
    pub variant: Option<&'static str>,
    /// Other names accepted for it.
    pub aliases: &'static [&'static str],
    /// The Cranelift ISA settings it turns on; every other one keeps Cranelift's default.
    pub flags: &'static [&'static str],
    /// The architecture's default: what a target gets without `--cpu`.
    pub default: bool,
    pub description: &'static str,
}

/// `base` followed by `more`: a preset that extends another lists only what it adds.
const fn extend<const N: usize>(base: &[&'static str], more: &[&'static str]) -> [&'static str; N] {
    assert!(base.len() + more.len() == N, "N must be the length of both");
    let mut out = [""; N];
    let mut i = 0;
    while i < base.len() {
        out[i] = base[i];
        i += 1;
    }
    let mut j = 0;
    while j < more.len() {
        out[i + j] = more[j];
        j += 1;
    }
    out
}

const X86_V2: &[&str] = &[
    "has_sse3",
    "has_ssse3",
    "has_sse41",
    "has_sse42",
    "has_popcnt",
    "has_cmpxchg16b",
];
const X86_V3: &[&str] = &extend::<12>(
    X86_V2,
    &[
        "has_avx",
        "has_avx2",
        "has_bmi1",
        "has_bmi2",
        "has_fma",
        "has_lzcnt",
    ],
);
const X86_V4: &[&str] = &extend::<15>(X86_V3, &["has_avx512f", "has_avx512dq", "has_avx512vl"]);
const RVA20: &[&str] = &["has_zca", "has_zcd"];
const RVA22: &[&str] = &extend::<6>(RVA20, &["has_zba", "has_zbb", "has_zbs", "has_zfhmin"]);
const RVA23: &[&str] = &[
    "has_zca",
    "has_zcd",
    "has_zcb",
    "has_zba",
    "has_zbb",
    "has_zbs",
    "has_zicond",
    "has_zfa",
    "has_zfhmin",
    "has_v",
    "has_zvbb",
    "has_zvl32b",
    "has_zvl64b",
    "has_zvl128b",
];

/// Every CPU preset pack knows, baselines first.
pub static PRESETS: &[CpuPreset] = &[
    CpuPreset {
        name: "x86-64",
        arch: Arch::Amd64,
        variant: None,
        aliases: &["v1", "baseline"],
        flags: &[],
        default: true,
        description: "x86-64 baseline (SSE2)",
    },
    CpuPreset {
        name: "x86-64-v2",
        arch: Arch::Amd64,
        variant: Some("v2"),
        aliases: &["v2"],
        flags: X86_V2,
        default: false,
        description: "x86-64-v2: SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, CMPXCHG16B",
    },
    CpuPreset {
        name: "x86-64-v3",
        arch: Arch::Amd64,
        variant: Some("v3"),
        aliases: &["v3"],
        flags: X86_V3,
        default: false,
        description: "x86-64-v3: v2 plus AVX, AVX2, BMI1, BMI2, FMA, LZCNT",
    },
    CpuPreset {
        name: "x86-64-v4",
        arch: Arch::Amd64,
        variant: Some("v4"),
        aliases: &["v4"],
        flags: X86_V4,
        default: false,
        description: "x86-64-v4: v3 plus AVX-512 F, DQ, VL",
    },
    CpuPreset {
        name: "armv8-a",
        arch: Arch::Arm64,
        variant: None,
        aliases: &["v8", "v8.0", "baseline"],
        flags: &[],
        default: true,
        description: "Armv8.0-A baseline",
    },
    CpuPreset {
        name: "armv8.1-a",
        arch: Arch::Arm64,
        variant: Some("v8.1"),
        aliases: &["v8.1"],
        flags: &["has_lse"],
        default: false,
        description: "Armv8.1-A: large system extensions (LSE atomics)",
    },
    CpuPreset {
        name: "armv8.3-a",
        arch: Arch::Arm64,
        variant: Some("v8.3"),
        aliases: &["v8.3"],
        flags: &["has_lse", "has_pauth"],
        default: false,
        description: "Armv8.3-A: v8.1 plus pointer authentication",
    },
    CpuPreset {
        name: "armv8.4-a",
        arch: Arch::Arm64,
        variant: Some("v8.4"),
        aliases: &["v8.4"],
        flags: &["has_lse", "has_pauth", "has_dotprod"],
        default: false,
        description: "Armv8.4-A: v8.3 plus dot product",
    },
    CpuPreset {
        name: "armv8.6-a",
        arch: Arch::Arm64,
        variant: Some("v8.6"),
        aliases: &["v8.6"],
        flags: &["has_lse", "has_pauth", "has_dotprod", "has_i8mm"],
        default: false,
        description: "Armv8.6-A: v8.4 plus int8 matrix multiplication",
    },
    CpuPreset {
        name: "rva23u64",
        arch: Arch::Riscv64,
        variant: Some("rva23u64"),
        aliases: &["rva23", "baseline"],
        flags: RVA23,
        default: true,
        description: "RVA23U64: RV64GC, B, Zcb, Zicond, Zfa, Zfhmin and the V extension \
                      (128-bit vectors, Zvbb)",
    },
    CpuPreset {
        name: "rva22u64",
        arch: Arch::Riscv64,
        variant: Some("rva22u64"),
        aliases: &["rva22"],
        flags: RVA22,
        default: false,
        description: "RVA22U64: RV64GC, B and Zfhmin, no vector extension",
    },
    CpuPreset {
        name: "rva20u64",
        arch: Arch::Riscv64,
        variant: Some("rva20u64"),
        aliases: &["rva20", "rv64gc"],
        flags: RVA20,
        default: false,
        description: "RVA20U64: RV64GC, no vector extension",
    },
    CpuPreset {
        name: "z14",
        arch: Arch::S390x,
        variant: None,
        aliases: &["arch12", "baseline"],
        flags: &[],
        default: true,
        description: "IBM z14 (z/Architecture 12), Cranelift's minimum",
    },
    CpuPreset {
        name: "z15",
        arch: Arch::S390x,
        variant: Some("z15"),
        aliases: &["arch13"],
        flags: &["has_mie3", "has_vxrs_ext2"],
        default: false,
        description: "IBM z15 (arch13): miscellaneous-instruction-extensions 3, \
                      vector-enhancements 2",
    },
    CpuPreset {
        name: "z16",
        arch: Arch::S390x,
        variant: Some("z16"),
        aliases: &["arch14"],
        flags: &["has_mie3", "has_vxrs_ext2"],
        default: false,
        description: "IBM z16 (arch14): same code generation as z15",
    },
    CpuPreset {
        name: "z17",
        arch: Arch::S390x,
        variant: Some("z17"),
        aliases: &["arch15"],
        flags: &["has_mie3", "has_mie4", "has_vxrs_ext2", "has_vxrs_ext3"],
        default: false,
        description: "IBM z17 (arch15): z15 plus miscellaneous-instruction-extensions 4, \
                      vector-enhancements 3",
    },
    CpuPreset {
        name: "pulley64",
        arch: Arch::Pulley64,
        variant: None,
        aliases: &["baseline"],
        flags: &[],
        default: true,
        description: "Pulley bytecode, 64-bit",
    },
    CpuPreset {
        name: "pulley32",
        arch: Arch::Pulley32,
        variant: None,
        aliases: &["baseline"],
        flags: &[],
        default: true,
        description: "Pulley bytecode, 32-bit",
    },
];

impl CpuPreset {
    /// The default preset of `arch`.
    pub fn default_for(arch: Arch) -> &'static CpuPreset {
        PRESETS
            .iter()
            .find(|p| p.arch == arch && p.default)
            .expect("every architecture has a default preset")
    }

    /// The preset of `arch` called `name` (or one of its aliases).
    pub fn find(arch: Arch, name: &str) -> Option<&'static CpuPreset> {
        PRESETS
            .iter()
            .find(|p| p.arch == arch && (p.name == name || p.aliases.contains(&name)))
    }

    /// Every preset of `arch`.
    pub fn for_arch(arch: Arch) -> impl Iterator<Item = &'static CpuPreset> {
        PRESETS.iter().filter(move |p| p.arch == arch)
    }

    /// The short name used in file names and target suffixes: the OCI variant, else the
    /// preset's name.
    pub fn short_name(&self) -> &'static str {
        self.variant.unwrap_or(self.name)
    }
}

/// The CPU features of a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cpu {
    /// A named preset.
    Preset(&'static CpuPreset),
    /// The features of the machine that compiles, as Cranelift detects them.
    Native { flags: Vec<String> },
}

impl Cpu {
    /// The Cranelift ISA settings turned on, sorted.
    pub fn flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = match self {
            Cpu::Preset(p) => p.flags.iter().map(|f| f.to_string()).collect(),
            Cpu::Native { flags } => flags.clone(),
        };
        flags.sort();
        flags.dedup();
        flags
    }

    /// The preset's name, or `native`.
    pub fn name(&self) -> &str {
        match self {
            Cpu::Preset(p) => p.name,
            Cpu::Native { .. } => "native",
        }
    }

    pub fn is_native(&self) -> bool {
        matches!(self, Cpu::Native { .. })
    }
}

/// Detects the features of the machine pack runs on, the way wasmtime does when it
/// compiles for the host (`cranelift-native`). Settings with a value other than `true`
/// are kept as `name=value`.
pub fn native_flags() -> Result<Vec<String>, Error> {
    struct Recorder(Vec<String>);
    impl cranelift_codegen::settings::Configurable for Recorder {
        fn set(&mut self, name: &str, value: &str) -> cranelift_codegen::settings::SetResult<()> {
            self.0.push(format!("{name}={value}"));
            Ok(())
        }
        fn enable(&mut self, name: &str) -> cranelift_codegen::settings::SetResult<()> {
            self.0.push(name.to_string());
            Ok(())
        }
    }
    if Arch::host().is_none() || Os::host().is_none() {
        return Err(Error::NativeUnsupported {
            reason: format!(
                "pack has no native target on {}-{}",
                std::env::consts::ARCH,
                std::env::consts::OS
            ),
        });
    }
    let mut recorder = Recorder(Vec::new());
    cranelift_native::infer_native_flags(&mut recorder).map_err(|reason| {
        Error::NativeUnsupported {
            reason: reason.to_string(),
        }
    })?;
    let mut flags = recorder.0;
    flags.sort();
    flags.dedup();
    Ok(flags)
}

/// One platform and CPU preset to compile for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    os: Os,
    arch: Arch,
    cpu: Cpu,
    /// Whether the CPU was chosen with the target itself (`linux/amd64/v3`, `native`),
    /// which `--cpu` does not override.
    cpu_given: bool,
}

/// The `(os, arch)` pairs pack compiles for, in the order `--help` lists them.
pub const PLATFORMS: &[(Os, Arch)] = &[
    (Os::Linux, Arch::Amd64),
    (Os::Linux, Arch::Arm64),
    (Os::Linux, Arch::Riscv64),
    (Os::Linux, Arch::S390x),
    (Os::Darwin, Arch::Arm64),
    (Os::Darwin, Arch::Amd64),
    (Os::Windows, Arch::Amd64),
    (Os::Any, Arch::Pulley64),
    (Os::Any, Arch::Pulley32),
];

/// What `--target all` means: the four Linux architectures.
pub const ALL: &[(Os, Arch)] = &[
    (Os::Linux, Arch::Amd64),
    (Os::Linux, Arch::Arm64),
    (Os::Linux, Arch::Riscv64),
    (Os::Linux, Arch::S390x),
];

/// The list of supported `--target` values, for messages and `--help`.
pub fn supported_targets() -> String {
    let mut names: Vec<String> = PLATFORMS
        .iter()
        .map(|&(os, arch)| Target::new(os, arch).platform_name())
        .collect();
    names.push("native".into());
    names.push("all (the four linux architectures)".into());
    names.join(", ")
}

impl Target {
    /// `arch` on `os` with the architecture's default CPU preset.
    pub fn new(os: Os, arch: Arch) -> Target {
        Target {
            os,
            arch,
            cpu: Cpu::Preset(CpuPreset::default_for(arch)),
            cpu_given: false,
        }
    }

    /// The machine pack runs on, with its CPU features.
    pub fn native() -> Result<Target, Error> {
        let (Some(os), Some(arch)) = (Os::host(), Arch::host()) else {
            return Err(Error::NativeUnsupported {
                reason: format!(
                    "pack has no native target on {}-{}",
                    std::env::consts::ARCH,
                    std::env::consts::OS
                ),
            });
        };
        Ok(Target {
            os,
            arch,
            cpu: Cpu::Native {
                flags: native_flags()?,
            },
            cpu_given: true,
        })
    }

    /// Parses one `--target` value: an OCI platform (`linux/amd64`, optionally with a
    /// preset: `linux/amd64/v3`), a Rust target triple (`aarch64-unknown-linux-gnu`),
    /// `pulley64`/`pulley32`, `native`, or `all`. Returns several targets for `all`.
    pub fn parse(value: &str) -> Result<Vec<Target>, Error> {
        let unknown = || Error::UnknownTarget {
            target: value.to_string(),
            supported: supported_targets(),
        };
        let value = value.trim();
        match value {
            "all" => {
                return Ok(ALL
                    .iter()
                    .map(|&(os, arch)| Target::new(os, arch))
                    .collect());
            }
            "native" => return Ok(vec![Target::native()?]),
            "pulley64" => return Ok(vec![Target::new(Os::Any, Arch::Pulley64)]),
            "pulley32" => return Ok(vec![Target::new(Os::Any, Arch::Pulley32)]),
            _ => {}
        }
        if value.contains('/') {
            let mut parts = value.split('/');
            let (os, arch) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let preset = parts.next();
            if parts.next().is_some() {
                return Err(unknown());
            }
            let (os, arch) = PLATFORMS
                .iter()
                .copied()
                .find(|(o, a)| o.oci_name() == os && a.oci_name() == arch)
                .ok_or_else(unknown)?;
            let target = Target::new(os, arch);
            return Ok(vec![match preset {
                None => target,
                Some(name) => target.with_cpu_named(name, true)?,
            }]);
        }
        let (os, arch) = parse_triple(value).ok_or_else(unknown)?;
        Ok(vec![Target::new(os, arch)])
    }

    /// The target a native artifact records: its triple, CPU preset (`native` or a
    /// preset's name) and flags. A `native` CPU takes the recorded flags, not this
    /// machine's; a preset must turn on exactly the recorded flags.
    pub fn from_recorded(
        triple: &str,
        cpu_preset: Option<&str>,
        cpu_flags: &[String],
    ) -> Result<Target, Error> {
        let (os, arch) = parse_triple(triple).ok_or_else(|| Error::UnknownTarget {
            target: triple.to_string(),
            supported: supported_targets(),
        })?;
        let target = Target::new(os, arch);
        let mut recorded: Vec<String> = cpu_flags.to_vec();
        recorded.sort();
        recorded.dedup();
        let target = match cpu_preset {
            Some("native") => Target {
                cpu: Cpu::Native { flags: recorded },
                cpu_given: true,
                ..target
            },
            Some(name) => {
                let preset = CpuPreset::find(arch, name).ok_or_else(|| Error::UnknownPreset {
                    preset: name.to_string(),
                    target: target.platform_name(),
                    available: preset_names(arch),
                })?;
                let target = Target {
                    cpu: Cpu::Preset(preset),
                    cpu_given: true,
                    ..target
                };
                if target.cpu.flags() != recorded {
                    return Err(Error::UnknownPreset {
                        preset: name.to_string(),
                        target: target.platform_name(),
                        available: format!(
                            "this pack's `{name}` turns on {}, the artifact records {}",
                            target.cpu.flags().join(","),
                            recorded.join(",")
                        ),
                    });
                }
                target
            }
            None if recorded.is_empty() => target,
            None => Target {
                cpu: Cpu::Native { flags: recorded },
                cpu_given: true,
                ..target
            },
        };
        Ok(target)
    }

    fn with_cpu_named(self, name: &str, given: bool) -> Result<Target, Error> {
        let cpu = if name == "native" {
            if Some(self.arch) != Arch::host() {
                return Err(Error::UnknownPreset {
                    preset: name.to_string(),
                    target: self.platform_name(),
                    available: "native is only available for the architecture pack runs on"
                        .to_string(),
                });
            }
            Cpu::Native {
                flags: native_flags()?,
            }
        } else {
            let preset = CpuPreset::find(self.arch, name).ok_or_else(|| Error::UnknownPreset {
                preset: name.to_string(),
                target: self.platform_name(),
                available: preset_names(self.arch),
            })?;
            Cpu::Preset(preset)
        };
        Ok(Target {
            cpu,
            cpu_given: given,
            ..self
        })
    }

    pub fn os(&self) -> Os {
        self.os
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn cpu(&self) -> &Cpu {
        &self.cpu
    }

    /// The target triple wasmtime compiles for.
    pub fn triple(&self) -> String {
        let arch = self.arch.triple_name();
        match self.os {
            Os::Linux => format!("{arch}-unknown-linux-gnu"),
            Os::Darwin => format!("{arch}-apple-darwin"),
            Os::Windows => format!("{arch}-pc-windows-msvc"),
            Os::Any => arch.to_string(),
        }
    }

    /// The OCI platform of the artifact: `variant` is the CPU preset's (`v3`,
    /// `rva23u64`), none for a baseline or for `native`.
    pub fn oci_platform(&self) -> Platform {
        let mut platform = Platform::default();
        platform
            .set_os(self.os.oci_name().into())
            .set_architecture(self.arch.oci_name().into())
            .set_variant(match &self.cpu {
                Cpu::Preset(p) => p.variant.map(str::to_string),
                Cpu::Native { .. } => None,
            });
        platform
    }

    /// `linux/amd64` or `pulley64`, without the CPU preset.
    pub fn platform_name(&self) -> String {
        if self.arch.is_pulley() {
            self.arch.oci_name().to_string()
        } else {
            format!("{}/{}", self.os.oci_name(), self.arch.oci_name())
        }
    }

    /// The CPU suffix in names, when the CPU is not the architecture's default.
    fn cpu_suffix(&self) -> Option<&str> {
        match &self.cpu {
            Cpu::Preset(p) if p.default => None,
            Cpu::Preset(p) => Some(p.short_name()),
            Cpu::Native { .. } => Some("native"),
        }
    }

    /// The part of an artifact's file name that names the target:
    /// `<os>-<arch>[-<preset>]`, or `pulley64`.
    pub fn file_suffix(&self) -> String {
        let base = if self.arch.is_pulley() {
            self.arch.oci_name().to_string()
        } else {
            format!("{}-{}", self.os.oci_name(), self.arch.oci_name())
        };
        match self.cpu_suffix() {
            Some(cpu) => format!("{base}-{cpu}"),
            None => base,
        }
    }

    /// A note on the CPU features for the metadata, when there is something to say.
    pub fn cpu_note(&self) -> Option<String> {
        match (&self.cpu, self.arch) {
            (Cpu::Native { .. }, _) => Some(
                "native: the CPU features of the machine that compiled this artifact; it \
                 may not load on other machines"
                    .into(),
            ),
            (Cpu::Preset(p), Arch::Riscv64) if p.flags.contains(&"has_v") => Some(
                "includes the V vector extension (mandatory in RVA23); Cranelift 0.135 \
                 cannot compile most components for riscv64 without it"
                    .into(),
            ),
            (Cpu::Preset(_), Arch::Riscv64) => Some(
                "no V vector extension: Cranelift 0.135 may fail to compile components \
                 for riscv64 without it"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    /// `linux/amd64`, `linux/amd64/v3`, `linux/amd64/native`, `pulley64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.platform_name())?;
        if let Some(cpu) = self.cpu_suffix() {
            write!(f, "/{cpu}")?;
        }
        Ok(())
    }
}

/// `x86-64, x86-64-v2, ...` for one architecture.
fn preset_names(arch: Arch) -> String {
    let names: Vec<&str> = CpuPreset::for_arch(arch).map(|p| p.name).collect();
    let mut list = names.join(", ");
    if Some(arch) == Arch::host() {
        list.push_str(", native");
    }
    list
}

/// Maps a Rust-style triple to a supported platform.
fn parse_triple(triple: &str) -> Option<(Os, Arch)> {
    let mut parts = triple.split('-');
    let arch = match parts.next()? {
        "x86_64" | "amd64" => Arch::Amd64,
        "aarch64" | "arm64" => Arch::Arm64,
        "riscv64gc" | "riscv64" => Arch::Riscv64,
        "s390x" => Arch::S390x,
        "pulley64" => return Some((Os::Any, Arch::Pulley64)),
        "pulley32" => return Some((Os::Any, Arch::Pulley32)),
        _ => return None,
    };
    let rest: Vec<&str> = parts.collect();
    let os = if rest.contains(&"linux") {
        Os::Linux
    } else if rest.iter().any(|p| matches!(*p, "darwin" | "macos")) {
        Os::Darwin
    } else if rest.contains(&"windows") {
        Os::Windows
    } else {
        return None;
    };
    PLATFORMS.contains(&(os, arch)).then_some((os, arch))
}

/// Turns `--target` values and an optional `--cpu` into the list of targets to compile:
/// `all` is expanded, duplicates are dropped (first one wins), and `--cpu` is applied to
/// every target of its architecture that does not name its own preset. A `--cpu` that
/// fits none of the targets is an error.
pub fn resolve_targets<S: AsRef<str>>(
    values: &[S],
    cpu: Option<&str>,
) -> Result<Vec<Target>, Error> {
    let mut targets = Vec::new();
    for value in values {
        for part in value.as_ref().split(',').filter(|p| !p.trim().is_empty()) {
            targets.extend(Target::parse(part)?);
        }
    }
    if let Some(cpu) = cpu {
        let mut applied = false;
        for target in &mut targets {
            if target.cpu_given {
                continue;
            }
            let fits = if cpu == "native" {
                Some(target.arch) == Arch::host()
            } else {
                CpuPreset::find(target.arch, cpu).is_some()
            };
            if fits {
                *target = target.clone().with_cpu_named(cpu, false)?;
                applied = true;
            }
        }
        if !applied {
            let mut available = Vec::new();
            let mut arches: Vec<Arch> = targets.iter().map(|t| t.arch).collect();
            arches.sort();
            arches.dedup();
            for arch in arches {
                available.push(format!("{}: {}", arch.oci_name(), preset_names(arch)));
            }
            return Err(Error::UnknownPreset {
                preset: cpu.to_string(),
                target: targets
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                available: available.join("; "),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert((t.triple(), t.cpu.flags())));
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Target {
        let mut targets = Target::parse(value).unwrap();
        assert_eq!(targets.len(), 1);
        targets.pop().unwrap()
    }

    #[test]
    fn parses_platforms_and_triples() {
        let t = one("linux/amd64");
        assert_eq!(t.triple(), "x86_64-unknown-linux-gnu");
        assert_eq!(t.file_suffix(), "linux-amd64");
        assert_eq!(*t.oci_platform().variant(), None);
        assert_eq!(one("x86_64-unknown-linux-gnu"), t);
        assert_eq!(one("x86_64-unknown-linux-musl"), t);
        assert_eq!(one("aarch64-apple-darwin").to_string(), "darwin/arm64");
        assert_eq!(
            one("x86_64-pc-windows-msvc").triple(),
            "x86_64-pc-windows-msvc"
        );
        assert_eq!(
            one("riscv64gc-unknown-linux-gnu")
                .oci_platform()
                .variant()
                .as_deref(),
            Some("rva23u64")
        );
        let p = one("pulley64");
        assert_eq!(p.triple(), "pulley64");
        assert_eq!(p.oci_platform().os().to_string(), "unknown");
        assert_eq!(p.file_suffix(), "pulley64");

        let v3 = one("linux/amd64/v3");
        assert_eq!(v3.file_suffix(), "linux-amd64-v3");
        assert_eq!(v3.to_string(), "linux/amd64/v3");
        assert_eq!(v3.oci_platform().variant().as_deref(), Some("v3"));
        assert!(v3.cpu().flags().contains(&"has_avx2".to_string()));
        assert_eq!(one("linux/amd64/x86-64-v3"), v3);

        assert_eq!(Target::parse("all").unwrap().len(), 4);
    }

    #[test]
    fn rejects_unknown_targets_listing_supported_ones() {
        for bad in [
            "linux/mips",
            "freebsd/amd64",
            "wasm32-wasip2",
            "x",
            "linux/amd64/x/y",
        ] {
            let err = Target::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
            assert!(err.contains("linux/riscv64, linux/s390x"), "{err}");
        }
        let err = Target::parse("linux/amd64/v9").unwrap_err().to_string();
        assert!(err.contains("`v9`") && err.contains("x86-64-v4"), "{err}");
        // A Windows arm64 triple is well formed but not a supported platform.
        assert!(Target::parse("aarch64-pc-windows-msvc").is_err());
    }

    #[test]
    fn cpu_applies_to_its_architecture_only() {
        let targets = resolve_targets(&["all"], Some("x86-64-v3")).unwrap();
        assert_eq!(targets[0].to_string(), "linux/amd64/v3");
        assert_eq!(targets[1].to_string(), "linux/arm64");
        // A target's own preset wins over --cpu.
        let targets = resolve_targets(&["linux/amd64/v2", "darwin/amd64"], Some("v4")).unwrap();
        assert_eq!(targets[0].to_string(), "linux/amd64/v2");
        assert_eq!(targets[1].to_string(), "darwin/amd64/v4");
        // A preset of no target's architecture is an error naming the available ones.
        let err = resolve_targets(&["linux/arm64"], Some("x86-64-v3"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("armv8.1-a"), "{err}");
        // Duplicates collapse.
        let targets = resolve_targets(
            &["linux/amd64", "x86_64-unknown-linux-gnu,linux/amd64"],
            None,
        )
        .unwrap();
        assert_eq!(targets.len(), 1);
    }

    #[test]
    fn preset_flags_are_cranelift_settings() {
        use cranelift_codegen::settings::SettingKind;
        for arch in [
            Arch::Amd64,
            Arch::Arm64,
            Arch::Riscv64,
            Arch::S390x,
            Arch::Pulley64,
        ] {
            let target = Target::new(Os::Linux, arch);
            let isa = cranelift_codegen::isa::lookup_by_name(&target.triple()).unwrap();
            let known: Vec<_> = isa
                .iter()
                .filter(|s| s.kind == SettingKind::Bool)
                .map(|s| s.name)
                .collect();
            for preset in CpuPreset::for_arch(arch) {
                for flag in preset.flags {
                    assert!(known.contains(flag), "{} sets unknown {flag}", preset.name);
                }
            }
        }
        // Every architecture has exactly one default preset.
        for &(_, arch) in PLATFORMS {
            assert_eq!(CpuPreset::for_arch(arch).filter(|p| p.default).count(), 1);
        }
    }

    #[test]
    fn native_flags_are_cranelift_settings() {
        let Ok(native) = Target::native() else { return };
        let isa = cranelift_codegen::isa::lookup_by_name(&native.triple()).unwrap();
        let known: Vec<_> = isa.iter().map(|s| s.name).collect();
        for flag in native.cpu().flags() {
            let name = flag.split('=').next().unwrap();
            assert!(known.contains(&name), "{flag}");
        }
        assert_eq!(*native.oci_platform().variant(), None);
        assert!(native.file_suffix().ends_with("-native"));
    }
}
