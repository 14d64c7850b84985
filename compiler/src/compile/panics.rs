//! Cranelift panics are captured per target (a target that panics fails alone): the
//! default hook is kept quiet on compile threads and the location is kept for the error.

use super::*;

/// Threads of the compile pool; their panics are captured, not printed.
pub(super) const POOL_THREAD_PREFIX: &str = "pack-compile-";

/// Where the last panics on pool threads happened, by message.
static PANIC_LOCATIONS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Installs (once) a panic hook that keeps panics on compile-pool threads off stderr:
/// they are reported as that target's error instead. Panics elsewhere go to the hook
/// that was installed before.
pub(super) fn silence_compiler_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(POOL_THREAD_PREFIX));
            if !ours {
                return previous(info);
            }
            let message = info.payload_as_str().unwrap_or("(no message)").to_string();
            let location = info
                .location()
                .map(|l| format!("{}:{}", crate_relative(l.file()), l.line()))
                .unwrap_or_default();
            if let Ok(mut locations) = PANIC_LOCATIONS.lock() {
                if locations.len() > 64 {
                    locations.remove(0);
                }
                locations.push((message, location));
            }
        }));
    });
}

/// `cranelift-codegen-0.135.8/src/...` for a file in cargo's registry.
fn crate_relative(file: &str) -> &str {
    match file.find("/registry/src/") {
        Some(at) => {
            let rest = &file[at + "/registry/src/".len()..];
            rest.split_once('/').map_or(rest, |(_, path)| path)
        }
        None => file,
    }
}

/// The text of a panic payload, with where it happened when the hook saw it.
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    };
    let location = PANIC_LOCATIONS.lock().ok().and_then(|locations| {
        locations
            .iter()
            .rev()
            .find(|(m, _)| *m == text)
            .map(|(_, l)| l.clone())
    });
    match location {
        Some(l) if !l.is_empty() && !text.contains(&l) => format!("{text} (at {l})"),
        _ => text,
    }
}
