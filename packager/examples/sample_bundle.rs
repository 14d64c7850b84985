//! Builds a sample bundle with placeholder `.cwasm` bytes (the packager does not interpret
//! them), to look at the format or try `pack inspect`, `pack sign` and `pack verify`.
//!
//! ```text
//! cargo run -p pack-packager --example sample_bundle -- out/sample [TAG]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use pack_packager::oci_spec::image::{Arch, Os, PlatformBuilder};
use pack_packager::{
    BlobSource, BundleInput, Compilation, NativeArtifact, PortableConfig, build_bundle,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let layout = PathBuf::from(args.next().ok_or("usage: sample_bundle <LAYOUT> [TAG]")?);
    let tag = args.next().unwrap_or_else(|| "latest".to_string());
    let native =
        |os: &str, arch: &str, variant: Option<&str>, triple: &str, preset: Option<&str>| {
            let mut platform = PlatformBuilder::default()
                .os(Os::from(os))
                .architecture(Arch::from(arch));
            if let Some(v) = variant {
                platform = platform.variant(v.to_string());
            }
            Ok::<_, Box<dyn std::error::Error>>(NativeArtifact {
                platform: platform.build()?,
                cwasm: BlobSource::Bytes(format!("placeholder cwasm for {triple}").into_bytes()),
                cwasm_sha256: None,
                compilation: Compilation {
                    wasmtime_version: "48.0.8".into(),
                    compatibility_hash: format!("{:016x}", triple.len() * 0x1234_5678),
                    target_triple: triple.into(),
                    cpu_preset: preset.map(Into::into),
                    cpu_flags: match preset {
                        Some(_) => vec![
                            "+avx2".into(),
                            "+bmi1".into(),
                            "+bmi2".into(),
                            "+fma".into(),
                        ],
                        None => vec![],
                    },
                    profile: serde_json::json!({"name": "release", "optLevel": "speed"}),
                },
            })
        };
    let input = BundleInput {
        component: BlobSource::Bytes(b"\0asm\x0d\0\x01\0placeholder component".to_vec()),
        component_sha256: None,
        portable: PortableConfig {
            exports: vec!["wasi:cli/run@0.2.0".into()],
            imports: vec![
                "wasi:cli/stdout@0.2.0".into(),
                "wasi:io/streams@0.2.0".into(),
            ],
            target_world: Some("wasi:cli/command@0.2.0".into()),
        },
        natives: vec![
            native(
                "linux",
                "amd64",
                Some("v3"),
                "x86_64-unknown-linux-gnu",
                Some("x86-64-v3"),
            )?,
            native("linux", "arm64", None, "aarch64-unknown-linux-gnu", None)?,
        ],
        annotations: BTreeMap::from([(
            "org.opencontainers.image.version".to_string(),
            "1.0.0".to_string(),
        )]),
        created: pack_packager::bundle::source_date_epoch()?,
    };
    let summary = build_bundle(&layout, &tag, &input)?;
    let out = format!(
        "{}:{} {} ({} blobs written, {} reused)\n",
        layout.display(),
        summary.tag,
        summary.index.digest(),
        summary.blobs_written,
        summary.blobs_reused
    );
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes())?;
    Ok(())
}
