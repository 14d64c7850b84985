//! What this machine is: its OCI platform and the CPU features it has, named the way a
//! native config lists them (Cranelift's ISA settings, `has_avx2`, or `+avx2`).

use pack_engine_settings::platform::{Arch, Os};

/// This machine's OCI platform: `(os, architecture)`, e.g. `("linux", "amd64")`; Rust's
/// own names for a system or architecture pack does not compile for.
pub fn host_platform() -> (&'static str, &'static str) {
    let os = Os::host().map_or(std::env::consts::OS, Os::oci_name);
    let arch = Arch::host().map_or(std::env::consts::ARCH, Arch::oci_name);
    (os, arch)
}

/// The Cranelift setting name of a CPU flag as a native config may write it: `has_avx2`
/// stays, `+avx2` becomes `has_avx2`; `name=value` keeps its value.
pub fn setting_name(flag: &str) -> String {
    match flag.strip_prefix('+') {
        Some(rest) if rest.starts_with("has_") => rest.to_string(),
        Some(rest) => format!("has_{rest}"),
        None => flag.to_string(),
    }
}

/// The short name of a CPU flag for messages: `has_avx2` and `+avx2` are `avx2`.
pub fn short_name(flag: &str) -> String {
    let name = setting_name(flag);
    let name = name.split('=').next().unwrap_or(&name);
    name.strip_prefix("has_").unwrap_or(name).to_string()
}

/// Whether this CPU has what `flag` requires: `Some(true)` when it does (or the setting
/// does not depend on the CPU), `Some(false)` when it does not, `None` when this host
/// cannot tell (the loader then leaves it to wasmtime's own check).
pub fn supports(flag: &str) -> Option<bool> {
    let name = setting_name(flag);
    let (name, value) = match name.split_once('=') {
        Some((n, v)) => (n.to_string(), v.to_string()),
        None => (name, "true".to_string()),
    };
    match value.as_str() {
        // A feature that is turned off needs nothing.
        "false" => return Some(true),
        "true" => {}
        _ => return None,
    }
    detect(&name)
}

/// The flags of `flags` this CPU lacks, by their short names; flags it cannot tell about
/// are in the second list.
pub fn missing(flags: &[String]) -> (Vec<String>, Vec<String>) {
    let mut lacks = Vec::new();
    let mut unknown = Vec::new();
    for flag in flags {
        match supports(flag) {
            Some(true) => {}
            Some(false) => lacks.push(short_name(flag)),
            None => unknown.push(short_name(flag)),
        }
    }
    (lacks, unknown)
}

#[cfg(target_arch = "x86_64")]
fn detect(name: &str) -> Option<bool> {
    use std::arch::is_x86_feature_detected as has;
    Some(match name {
        "has_sse3" => has!("sse3"),
        "has_ssse3" => has!("ssse3"),
        "has_sse41" => has!("sse4.1"),
        "has_sse42" => has!("sse4.2"),
        "has_popcnt" => has!("popcnt"),
        "has_cmpxchg16b" => has!("cmpxchg16b"),
        "has_avx" => has!("avx"),
        "has_avx2" => has!("avx2"),
        "has_fma" => has!("fma"),
        "has_bmi1" => has!("bmi1"),
        "has_bmi2" => has!("bmi2"),
        "has_lzcnt" => has!("lzcnt"),
        "has_avx512f" => has!("avx512f"),
        "has_avx512dq" => has!("avx512dq"),
        "has_avx512vl" => has!("avx512vl"),
        "has_avx512bitalg" => has!("avx512bitalg"),
        "has_avx512vbmi" => has!("avx512vbmi"),
        "has_avx512vnni" => has!("avx512vnni"),
        "has_avx_vnni" => has!("avxvnni"),
        _ => return None,
    })
}

#[cfg(target_arch = "aarch64")]
fn detect(name: &str) -> Option<bool> {
    use std::arch::is_aarch64_feature_detected as has;
    Some(match name {
        "has_lse" => has!("lse"),
        "has_pauth" => has!("paca"),
        "has_fp16" => has!("fp16"),
        "has_dotprod" => has!("dotprod"),
        "has_i8mm" => has!("i8mm"),
        // Executed as no-ops where unsupported.
        "sign_return_address"
        | "sign_return_address_all"
        | "sign_return_address_with_bkey"
        | "use_bti" => true,
        _ => return None,
    })
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect(_name: &str) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(setting_name("+avx2"), "has_avx2");
        assert_eq!(setting_name("has_avx2"), "has_avx2");
        assert_eq!(setting_name("+has_lse"), "has_lse");
        assert_eq!(short_name("has_sse41"), "sse41");
        assert_eq!(short_name("+fma"), "fma");
        assert_eq!(short_name("has_avx=false"), "avx");
    }

    #[test]
    fn detection_answers_for_this_architecture() {
        assert_eq!(supports("has_avx2=false"), Some(true));
        assert_eq!(supports("not_a_flag"), None);
        if cfg!(target_arch = "x86_64") {
            // x86-64-v2 and later are detected; sse3 is on every x86-64 CPU in use.
            assert_eq!(supports("has_sse3"), Some(true));
            assert!(supports("has_avx512f").is_some());
            let (lacks, unknown) = missing(&["has_sse3".into(), "+foo".into()]);
            assert!(lacks.is_empty());
            assert_eq!(unknown, ["foo"]);
        }
        // The OCI names of the architectures pack builds bundles for.
        let expected = if cfg!(target_arch = "x86_64") {
            "amd64"
        } else if cfg!(target_arch = "aarch64") {
            "arm64"
        } else {
            std::env::consts::ARCH
        };
        assert_eq!(host_platform().1, expected);
        if cfg!(target_os = "linux") {
            assert_eq!(host_platform().0, "linux");
        }
    }
}
