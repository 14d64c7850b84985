//! Raw bytes as an image manifest: the parser and limit checks every manifest read from
//! a layout goes through.
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = pack_packager::layout::parse_manifest(data, Path::new("fuzz"));
});
