//! Raw bytes as an image index (a bundle), then as a layout's `index.json`.
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(index) = pack_packager::layout::parse_index(data, Path::new("fuzz")) {
        // What `pack inspect` shows of each entry.
        for entry in index.manifests() {
            if let Some(platform) = entry.platform() {
                let _ = pack_packager::bundle::platform_string(platform);
            }
        }
    }
});
