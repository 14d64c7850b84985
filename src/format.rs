//! How the human output writes numbers, sizes, durations and digests.

use std::time::Duration;

/// A byte count in binary units: `512 B`, `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration: milliseconds below a second, else seconds with one decimal.
pub fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `sha256:` and the first 12 hex digits when `short`, the full digest otherwise.
pub fn short_digest(digest: &str, short: bool) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) if short && hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => digest.to_string(),
    }
}

/// `n` and the word for that many: `1 entry`, `2 entries`.
pub fn count<N: Copy + PartialEq + From<u8> + std::fmt::Display>(
    n: N,
    one: &str,
    many: &str,
) -> String {
    format!("{n} {}", if n == N::from(1) { one } else { many })
}

/// `n` and `word`, with an `s` unless there is one: `1 blob`, `3 blobs`.
pub fn plural<N: Copy + PartialEq + From<u8> + std::fmt::Display>(n: N, word: &str) -> String {
    format!("{n} {word}{}", if n == N::from(1) { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_digests_and_counts() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(duration(Duration::from_millis(42)), "42 ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5 s");
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_digest(&digest, true), "sha256:abababababab");
        assert_eq!(short_digest(&digest, false), digest);
        assert_eq!(count(1, "entry", "entries"), "1 entry");
        assert_eq!(count(0u64, "entry", "entries"), "0 entries");
        assert_eq!(plural(1, "blob"), "1 blob");
        assert_eq!(plural(3, "blob"), "3 blobs");
    }
}
