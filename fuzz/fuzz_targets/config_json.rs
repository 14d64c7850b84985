//! Raw bytes as the configs of a bundle's manifests (portable and native).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<pack_packager::WasmConfig>(data);
    let _ = serde_json::from_slice::<pack_packager::NativeConfig>(data);
});
