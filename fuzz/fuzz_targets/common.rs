//! What the validate targets share: the path `pack validate` takes for one input.

use std::path::Path;
use std::sync::OnceLock;

use pack_compiler::validate::{self, Options};
use pack_compiler::wasm::{Input, Kind};
use pack_compiler::wit::Wit;

/// The fixture world `calc` of `fixtures/wit/calc` (loaded once).
fn world() -> &'static (Wit, wit_parser::WorldId) {
    static WIT: OnceLock<(Wit, wit_parser::WorldId)> = OnceLock::new();
    WIT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/wit/calc");
        let wit = Wit::load(&dir).expect("the fixture WIT loads");
        let world = wit
            .world(Some("calc"))
            .expect("the fixture has the world `calc`");
        (wit, world)
    })
}

/// Classifies, validates, describes and checks `bytes` against the fixture world, as
/// `pack validate --wit fixtures/wit/calc` does. Errors are answers; only a panic, a
/// hang or an abort is a finding.
pub fn validate(bytes: &[u8]) {
    keep_caught_decoder_panics();
    let Ok(input) = Input::from_bytes(Path::new("fuzz.wasm"), bytes.to_vec()) else {
        return;
    };
    if input.kind != Kind::Component || input.validate().is_err() {
        return;
    }
    let _ = validate::describe(&input);
    let (wit, world) = world();
    let _ = validate::check(&input, wit, *world, Options::default());
    let _ = validate::check(&input, wit, *world, Options { strict: true });
}

/// libfuzzer-sys aborts on every panic from its panic hook, before unwinding, so a panic
/// that pack catches would still count as a crash. pack catches exactly one kind
/// (`wit_parser::decoding::decode` reaching `unreachable!()`, see `decode_guarded` in
/// `compiler/src/validate.rs`): let those unwind to pack; abort on any other.
fn keep_caught_decoder_panics() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_decoder = info.location().is_some_and(|l| {
                l.file().contains("wit-parser-0.254") && l.file().ends_with("decoding.rs")
            });
            if !in_decoder {
                abort_hook(info);
            }
        }));
    });
}
