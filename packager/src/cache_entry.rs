//! Compile-cache entries: one precompiled artifact as a signed OCI manifest, so a
//! registry can serve as a compile cache shared by several machines (`pack build
//! --cache-repo`).
//!
//! An entry is an image manifest tagged [`tag_for`]`(key)` (`pack-cache-v1-<key>`):
//!
//! - `artifactType` and the config's media type are [`ARTIFACT_TYPE`]; the config is a
//!   [`EntryConfig`] (the cache key and what it was derived from, and wasmtime's
//!   compatibility hash);
//! - exactly one layer, the `.cwasm` ([`CWASM_LAYER`]);
//! - a cosign simple-signing signature under `sha256-<hex>.sig`, made with the cache key
//!   pair.
//!
//! Nothing in an entry records when or where it was made, and the compiler's output is
//! reproducible, so every machine that compiles the same key writes the same manifest,
//! byte for byte, and the same signature (ECDSA signatures are deterministic, RFC 6979).
//!
//! [`read_entry`] trusts an entry only when a signature by one of the given keys covers
//! the manifest digest, the manifest has that shape, and the layer matches its digest
//! and size. The artifact is then still only bytes: checking that it fits the engine is
//! the compiler's job.

use std::path::{Path, PathBuf};

use oci_spec::image::{Digest, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};

use crate::layout::set_tag_in;
use crate::media_types::{CWASM_LAYER, IMAGE_MANIFEST};
use crate::signing::{PrivateKey, PublicKey, sign_digest, verify_digest};
use crate::{Error, Layout, Result};

/// The `artifactType` of a cache entry manifest, and the media type of its config.
pub const ARTIFACT_TYPE: &str = "application/vnd.pack.compile-cache.v1+json";

/// The prefix of every cache entry tag.
pub const TAG_PREFIX: &str = "pack-cache-v1-";

/// The config of a cache entry: the key and everything it was derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryConfig {
    /// The cache key (sha256 hex of the fields below).
    pub key: String,
    /// The wasmtime version that compiled it.
    pub wasmtime_version: String,
    /// sha256 (hex) of wasmtime's `precompile_compatibility_hash` of the compiling engine.
    pub compatibility_hash: String,
    /// `component` or `module`.
    pub kind: String,
    /// sha256 (hex) of the input wasm.
    pub source_sha256: String,
    /// The target as pack names it (`linux/amd64/v3`).
    pub target: String,
    /// The Rust target triple.
    pub triple: String,
    /// The Cranelift ISA settings turned on.
    pub cpu_flags: Vec<String>,
    /// sha256 (hex) of the engine profile's canonical form.
    pub profile_sha256: String,
}

/// A cache entry that verified.
#[derive(Debug, Clone)]
pub struct VerifiedEntry {
    /// The manifest digest.
    pub digest: Digest,
    /// Its config.
    pub config: EntryConfig,
    /// The `.cwasm` in the layout, checked against its digest and size.
    pub artifact: PathBuf,
    /// sha256 (hex) of the `.cwasm`.
    pub artifact_sha256: String,
    /// Its size in bytes.
    pub artifact_size: u64,
}

/// The tag of the entry for `key` (a sha256 hex string): `pack-cache-v1-<key>`.
pub fn tag_for(key: &str) -> Result<String> {
    if key.len() != 64
        || !key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Error::InvalidInput {
            message: format!("`{key}` is not a cache key (64 lowercase hex digits)"),
        });
    }
    Ok(format!("{TAG_PREFIX}{key}"))
}

/// Writes the entry for `config` with the artifact at `cwasm` into `layout`, tagged
/// [`tag_for`]`(config.key)`, and signs it with `key` for `reference` (the repository the
/// entry is meant for). Returns the manifest digest.
pub fn write_entry(
    layout: &Layout,
    config: &EntryConfig,
    cwasm: &Path,
    key: &PrivateKey,
    reference: &str,
) -> Result<Digest> {
    let tag = tag_for(&config.key)?;
    let layer = layout.put_file(cwasm, None)?.descriptor(CWASM_LAYER);
    let (config_descriptor, _) = layout.put_json(ARTIFACT_TYPE, config)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(ARTIFACT_TYPE))
        .config(config_descriptor)
        .layers(vec![layer])
        .build()
        .expect("every required manifest field is set");
    let (descriptor, _) = layout.put_json(IMAGE_MANIFEST, &manifest)?;
    layout.update_index(|index| {
        set_tag_in(index, &tag, &descriptor);
        Ok(())
    })?;
    sign_digest(layout, descriptor.digest(), key, reference, None)?;
    Ok(descriptor.digest().clone())
}

/// Reads the entry for `key` from `layout` and trusts it only when a signature by one
/// of `keys` covers its manifest, the manifest is a cache entry for that key, and the
/// artifact matches its digest. Every refusal is [`Error::UntrustedCacheEntry`].
pub fn read_entry(layout: &Layout, key: &str, keys: &[PublicKey]) -> Result<VerifiedEntry> {
    let tag = tag_for(key)?;
    let untrusted = |reason: String| Error::UntrustedCacheEntry {
        tag: tag.clone(),
        reason,
    };
    let descriptor = layout.resolve(&tag)?;
    // The signature first: nothing of the entry is parsed before it verifies.
    let verdict = verify_digest(layout, descriptor.digest(), keys)?;
    if !verdict.is_verified() {
        return Err(untrusted(verdict.reasons().join("; ")));
    }
    if *descriptor.media_type() != MediaType::ImageManifest {
        return Err(untrusted(format!(
            "it is a `{}`, not an image manifest",
            descriptor.media_type()
        )));
    }
    let manifest = layout.read_manifest(&descriptor)?;
    let artifact_type = manifest.artifact_type().as_ref().map(ToString::to_string);
    if artifact_type.as_deref() != Some(ARTIFACT_TYPE)
        || manifest.config().media_type().to_string() != ARTIFACT_TYPE
    {
        return Err(untrusted(format!(
            "its artifactType is {artifact_type:?} and its config a `{}`, both should be \
             `{ARTIFACT_TYPE}`",
            manifest.config().media_type()
        )));
    }
    let [layer] = manifest.layers().as_slice() else {
        return Err(untrusted(format!(
            "it has {} layers, not one",
            manifest.layers().len()
        )));
    };
    if layer.media_type().to_string() != CWASM_LAYER {
        return Err(untrusted(format!(
            "its layer is a `{}`, not a `{CWASM_LAYER}`",
            layer.media_type()
        )));
    }
    let config: EntryConfig = layout
        .read_json(manifest.config(), "cache entry config")
        .map_err(|e| untrusted(e.to_string()))?;
    if config.key != key {
        return Err(untrusted(format!(
            "it is signed for key {}, not {key}",
            config.key
        )));
    }
    let artifact = layout
        .verify_blob(layer)
        .map_err(|e| untrusted(e.to_string()))?;
    Ok(VerifiedEntry {
        digest: descriptor.digest().clone(),
        config,
        artifact,
        artifact_sha256: layer.digest().digest().to_string(),
        artifact_size: layer.size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(key: &str) -> EntryConfig {
        EntryConfig {
            key: key.to_string(),
            wasmtime_version: "48.0.8".into(),
            compatibility_hash: "c".repeat(64),
            kind: "component".into(),
            source_sha256: "s".repeat(64),
            target: "linux/amd64".into(),
            triple: "x86_64-unknown-linux-gnu".into(),
            cpu_flags: vec!["has_sse3".into()],
            profile_sha256: "p".repeat(64),
        }
    }

    #[test]
    fn entries_round_trip_and_are_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let cwasm = dir.path().join("a.cwasm");
        std::fs::write(&cwasm, b"\x7fELF artifact").unwrap();
        let key = PrivateKey::generate();
        let k = "ab".repeat(32);
        let one = Layout::create(dir.path().join("one")).unwrap();
        let two = Layout::create(dir.path().join("two")).unwrap();
        let d1 = write_entry(&one, &config(&k), &cwasm, &key, "r/cache").unwrap();
        let d2 = write_entry(&two, &config(&k), &cwasm, &key, "r/cache").unwrap();
        assert_eq!(d1, d2, "the same entry has the same digest everywhere");

        let entry = read_entry(&one, &k, &[key.public_key()]).unwrap();
        assert_eq!(entry.digest, d1);
        assert_eq!(entry.config, config(&k));
        assert_eq!(std::fs::read(&entry.artifact).unwrap(), b"\x7fELF artifact");
        assert_eq!(entry.artifact_size, 13);

        // Another key does not verify it.
        let other = PrivateKey::generate().public_key();
        let err = read_entry(&one, &k, &[other]).unwrap_err();
        assert!(
            matches!(&err, Error::UntrustedCacheEntry { reason, .. } if reason.contains("another key")),
            "{err}"
        );

        // A changed layer is refused even though the signature verifies.
        let layer = std::fs::read_dir(one.root().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::read(p).unwrap() == b"\x7fELF artifact")
            .unwrap();
        std::fs::write(&layer, b"\x7fELF artifacT").unwrap();
        let err = read_entry(&one, &k, &[key.public_key()]).unwrap_err();
        assert!(
            matches!(&err, Error::UntrustedCacheEntry { reason, .. } if reason.contains("does not match its digest")),
            "{err}"
        );
    }

    #[test]
    fn keys_must_be_sha256_hex() {
        assert_eq!(
            tag_for(&"0f".repeat(32)).unwrap(),
            format!("pack-cache-v1-{}", "0f".repeat(32))
        );
        assert!(crate::reference::is_valid_tag(
            &tag_for(&"0f".repeat(32)).unwrap()
        ));
        for bad in ["", "ab", &"AB".repeat(32), &"g0".repeat(32)] {
            assert!(tag_for(bad).is_err(), "{bad}");
        }
    }
}
