//! The platforms artifacts are compiled for and loaded on: one table of operating
//! systems and architectures, with their OCI, Rust-triple and host names, for the
//! compiler and the host alike.

/// The operating system an artifact runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Os {
    Linux,
    Darwin,
    Windows,
    /// Pulley bytecode runs on any OS.
    Any,
}

impl Os {
    /// The OCI (`GOOS`) name; `unknown` for Pulley, whose bytecode does not depend on it.
    pub fn oci_name(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Darwin => "darwin",
            Os::Windows => "windows",
            Os::Any => "unknown",
        }
    }

    /// The operating system pack runs on, when it is one pack compiles for.
    pub fn host() -> Option<Os> {
        if cfg!(target_os = "linux") {
            Some(Os::Linux)
        } else if cfg!(target_os = "macos") {
            Some(Os::Darwin)
        } else if cfg!(target_os = "windows") {
            Some(Os::Windows)
        } else {
            None
        }
    }
}

/// The architecture an artifact runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    Amd64,
    Arm64,
    Riscv64,
    S390x,
    /// wasmtime's portable interpreter, 64-bit pointers, little endian.
    Pulley64,
    /// wasmtime's portable interpreter, 32-bit pointers, little endian.
    Pulley32,
}

impl Arch {
    /// The OCI (`GOARCH`) name.
    pub fn oci_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
            Arch::Riscv64 => "riscv64",
            Arch::S390x => "s390x",
            Arch::Pulley64 => "pulley64",
            Arch::Pulley32 => "pulley32",
        }
    }

    /// The architecture part of the Rust target triple.
    pub fn triple_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
            Arch::Riscv64 => "riscv64gc",
            Arch::S390x => "s390x",
            Arch::Pulley64 => "pulley64",
            Arch::Pulley32 => "pulley32",
        }
    }

    pub fn is_pulley(self) -> bool {
        matches!(self, Arch::Pulley64 | Arch::Pulley32)
    }

    /// The architecture of the machine pack runs on, when Cranelift has a backend for it.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::Amd64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Arm64)
        } else if cfg!(target_arch = "riscv64") {
            Some(Arch::Riscv64)
        } else if cfg!(target_arch = "s390x") {
            Some(Arch::S390x)
        } else {
            None
        }
    }
}
