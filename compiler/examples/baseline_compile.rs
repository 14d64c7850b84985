// Temporary: what `wasmtime compile --target <triple> -C cache=n` does.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (input, triple, out) = (&args[1], &args[2], &args[3]);
    let bytes = std::fs::read(input).unwrap();
    let mut config = wasmtime::Config::new();
    config.target(triple).unwrap();
    for f in args.iter().skip(4) {
        unsafe { config.cranelift_flag_enable(f); }
    }
    let engine = wasmtime::Engine::new(&config).unwrap();
    let art = engine.precompile_component(&bytes).unwrap();
    std::fs::write(out, art).unwrap();
}
