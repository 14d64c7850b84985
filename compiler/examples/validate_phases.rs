//! Where `pack validate`'s time goes, phase by phase, on one thread:
//! `cargo run --release -p pack-compiler --example validate_phases -- FILE.wasm`.
//! bench/validate.sh prints it for py-cli next to the whole-process table.

// A measuring tool: its table is its output.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use wasmparser::{FuncValidatorAllocations, Parser, ValidPayload, Validator};

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: validate_phases FILE.wasm");
    let (bytes, read) = time(|| std::fs::read(&path).expect("readable file"));
    let (bodies, structure) = time(|| {
        let mut validator = Validator::new_with_features(pack_compiler::wasm::wasmtime_features());
        let mut bodies = Vec::new();
        for payload in Parser::new(0).parse_all(&bytes) {
            if let ValidPayload::Func(f, body) = validator.payload(&payload.unwrap()).unwrap() {
                bodies.push((f, body));
            }
        }
        bodies
    });
    let count = bodies.len();
    let ((), body_time) = time(|| {
        let mut allocs = FuncValidatorAllocations::default();
        for (f, body) in bodies {
            let mut v = f.into_validator(allocs);
            v.validate(&body).unwrap();
            allocs = v.into_allocations();
        }
    });
    let (_, decode_full) = time(|| wit_parser::decoding::decode(&bytes).unwrap());
    let (skeleton, skeleton_time) = time(|| pack_compiler::skeleton(&bytes).unwrap());
    let (_, decode_skeleton) = time(|| wit_parser::decoding::decode(&skeleton).unwrap());
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    println!("phase                         ms (one thread)");
    println!(
        "read ({} MB)                {:>6}",
        bytes.len() >> 20,
        ms(read)
    );
    println!("structure                     {:>6}", ms(structure));
    println!("function bodies ({count:>6})    {:>6}", ms(body_time));
    println!("decode WIT, whole component   {:>6}", ms(decode_full));
    println!(
        "skeleton ({} KB)            {:>6}",
        skeleton.len() >> 10,
        ms(skeleton_time)
    );
    println!("decode WIT, skeleton          {:>6}", ms(decode_skeleton));
}
