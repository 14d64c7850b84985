//! Raw bytes through `pack validate`'s path: classification, full validation with
//! wasmtime 48's features, WIT decoding, and the check against a world.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::validate(data);
});
