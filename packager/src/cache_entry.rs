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
//! A *function cache entry* has the same shape for a function cache segment (the
//! compiled functions of one target and engine settings, see docs/cache.md): tag
//! [`functions_tag_for`]`(segment key)` (`pack-functions-v1-<key>`), artifact type and
//! config [`FUNCTIONS_ARTIFACT_TYPE`] (a [`FunctionsConfig`]), one layer
//! [`FUNCTIONS_LAYER`]. Its tag moves: each runner that compiled new functions pushes the
//! segment it now has.
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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::layout::set_tag_in;
use crate::media_types::{CWASM_LAYER, IMAGE_MANIFEST};
use crate::signing::{PrivateKey, PublicKey, sign_digest, verify_digest};
use crate::{Error, Layout, Result};

/// The `artifactType` of a cache entry manifest, and the media type of its config.
pub const ARTIFACT_TYPE: &str = "application/vnd.pack.compile-cache.v1+json";

/// The prefix of every cache entry tag.
pub const TAG_PREFIX: &str = "pack-cache-v1-";

/// The `artifactType` of a function cache entry manifest, and the media type of its
/// config.
pub const FUNCTIONS_ARTIFACT_TYPE: &str = "application/vnd.pack.function-cache.v1+json";

/// The media type of a function cache segment layer.
pub const FUNCTIONS_LAYER: &str = "application/vnd.pack.function-cache.segment.v1";

/// The prefix of every function cache entry tag.
pub const FUNCTIONS_TAG_PREFIX: &str = "pack-functions-v1-";

/// The config of a function cache entry: the segment key and what it was derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunctionsConfig {
    /// The segment key (sha256 hex of the wasmtime version, triple, CPU flags and
    /// profile digest).
    pub segment_key: String,
    pub wasmtime_version: String,
    /// The target as pack names it (`linux/amd64/v3`).
    pub target: String,
    pub triple: String,
    pub cpu_flags: Vec<String>,
    pub profile_sha256: String,
    /// How many functions the segment holds.
    pub functions: u64,
}

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

/// A signed entry that verified: its signature, its shape, its config's key and its layer.
#[derive(Debug, Clone)]
pub struct Verified<C> {
    /// The manifest digest.
    pub digest: Digest,
    /// Its config.
    pub config: C,
    /// The layer (the `.cwasm`, or the function cache segment) in the layout, checked
    /// against its digest and size.
    pub layer: PathBuf,
    /// sha256 (hex) of the layer.
    pub layer_sha256: String,
    /// Its size in bytes.
    pub layer_size: u64,
}

/// A cache entry that verified.
pub type VerifiedEntry = Verified<EntryConfig>;

/// A function cache entry that verified.
pub type VerifiedFunctions = Verified<FunctionsConfig>;

/// What sets the two kinds of entry apart: their config, its key, tag and media types.
trait Kind: Serialize + DeserializeOwned {
    /// The manifest's `artifactType` and the config's media type.
    const ARTIFACT_TYPE: &'static str;
    /// The media type of the one layer.
    const LAYER: &'static str;
    const TAG_PREFIX: &'static str;
    /// What the config is called in errors.
    const CONFIG: &'static str;
    /// What the key is called in errors: in a tag (`cache key`), and in a config
    /// (`key`).
    const KEY: (&'static str, &'static str);
    fn key(&self) -> &str;

    /// The tag of the entry for `key` (sha256 hex).
    fn tag(key: &str) -> Result<String> {
        if !is_sha256_hex(key) {
            return Err(Error::InvalidInput {
                message: format!("`{key}` is not a {} (64 lowercase hex digits)", Self::KEY.0),
            });
        }
        Ok(format!("{}{key}", Self::TAG_PREFIX))
    }
}

impl Kind for EntryConfig {
    const ARTIFACT_TYPE: &'static str = ARTIFACT_TYPE;
    const LAYER: &'static str = CWASM_LAYER;
    const TAG_PREFIX: &'static str = TAG_PREFIX;
    const CONFIG: &'static str = "cache entry config";
    const KEY: (&'static str, &'static str) = ("cache key", "key");
    fn key(&self) -> &str {
        &self.key
    }
}

impl Kind for FunctionsConfig {
    const ARTIFACT_TYPE: &'static str = FUNCTIONS_ARTIFACT_TYPE;
    const LAYER: &'static str = FUNCTIONS_LAYER;
    const TAG_PREFIX: &'static str = FUNCTIONS_TAG_PREFIX;
    const CONFIG: &'static str = "function cache entry config";
    const KEY: (&'static str, &'static str) = ("segment key", "segment");
    fn key(&self) -> &str {
        &self.segment_key
    }
}

/// The tag of the entry for `key` (a sha256 hex string): `pack-cache-v1-<key>`.
pub fn tag_for(key: &str) -> Result<String> {
    EntryConfig::tag(key)
}

fn is_sha256_hex(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The tag of the function cache entry for `segment_key` (sha256 hex):
/// `pack-functions-v1-<key>`.
pub fn functions_tag_for(segment_key: &str) -> Result<String> {
    FunctionsConfig::tag(segment_key)
}

/// Writes a signed single-layer manifest for `config` with the layer at `file` into
/// `layout`, tagged for `config`'s key, and signs it with `key` for `reference`. Returns
/// the manifest digest.
fn write_signed<C: Kind>(
    layout: &Layout,
    config: &C,
    file: &Path,
    key: &PrivateKey,
    reference: &str,
) -> Result<Digest> {
    let tag = C::tag(config.key())?;
    let layer = layout.put_file(file, None)?.descriptor(C::LAYER);
    let (config_descriptor, _) = layout.put_json(C::ARTIFACT_TYPE, config)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(C::ARTIFACT_TYPE))
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

/// Writes the function cache entry for `config` with the segment at `segment` into
/// `layout`, tagged [`functions_tag_for`]`(config.segment_key)`, and signs it with `key`
/// for `reference`. Returns the manifest digest.
pub fn write_functions_entry(
    layout: &Layout,
    config: &FunctionsConfig,
    segment: &Path,
    key: &PrivateKey,
    reference: &str,
) -> Result<Digest> {
    write_signed(layout, config, segment, key, reference)
}

/// Reads the function cache entry for `segment_key` from `layout`, with the same checks
/// as [`read_entry`]: a signature by one of `keys` first, then the shape, the config's
/// key and the layer's digest. Every refusal is [`Error::UntrustedCacheEntry`].
pub fn read_functions_entry(
    layout: &Layout,
    segment_key: &str,
    keys: &[PublicKey],
) -> Result<VerifiedFunctions> {
    read_verified(layout, segment_key, keys)
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
    write_signed(layout, config, cwasm, key, reference)
}

/// Reads the entry for `key` from `layout` and trusts it only when a signature by one
/// of `keys` covers its manifest, the manifest is a cache entry for that key, and the
/// artifact matches its digest. Every refusal is [`Error::UntrustedCacheEntry`].
pub fn read_entry(layout: &Layout, key: &str, keys: &[PublicKey]) -> Result<VerifiedEntry> {
    read_verified(layout, key, keys)
}

/// Reads the entry of kind `C` for `key`: its signature by one of `keys` first (nothing
/// of the entry is parsed before it verifies), then its shape ([`read_signed`]), the
/// config's key and the layer's digest and size.
fn read_verified<C: Kind>(layout: &Layout, key: &str, keys: &[PublicKey]) -> Result<Verified<C>> {
    let tag = C::tag(key)?;
    let (digest, manifest, layer) = read_signed::<C>(layout, &tag, keys)?;
    let untrusted = |reason: String| Error::UntrustedCacheEntry {
        tag: tag.clone(),
        reason,
    };
    let config: C = layout
        .read_json(manifest.config(), C::CONFIG)
        .map_err(|e| untrusted(e.to_string()))?;
    if config.key() != key {
        return Err(untrusted(format!(
            "it is signed for {} {}, not {key}",
            C::KEY.1,
            config.key()
        )));
    }
    let path = layout
        .verify_blob(&layer)
        .map_err(|e| untrusted(e.to_string()))?;
    Ok(Verified {
        digest,
        config,
        layer: path,
        layer_sha256: layer.digest().digest().to_string(),
        layer_size: layer.size(),
    })
}

/// Resolves `tag`, verifies its signature against `keys`, and checks that it is a
/// single-layer manifest of `C`'s artifact type whose layer is a `C::LAYER`. Nothing of
/// the entry is parsed before the signature verified.
fn read_signed<C: Kind>(
    layout: &Layout,
    tag: &str,
    keys: &[PublicKey],
) -> Result<(
    Digest,
    oci_spec::image::ImageManifest,
    oci_spec::image::Descriptor,
)> {
    let (artifact_type, layer_type) = (C::ARTIFACT_TYPE, C::LAYER);
    let untrusted = |reason: String| Error::UntrustedCacheEntry {
        tag: tag.to_string(),
        reason,
    };
    let descriptor = layout.resolve(tag)?;
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
    let found = manifest.artifact_type().as_ref().map(ToString::to_string);
    if found.as_deref() != Some(artifact_type)
        || manifest.config().media_type().to_string() != artifact_type
    {
        return Err(untrusted(format!(
            "its artifactType is {found:?} and its config a `{}`, both should be \
             `{artifact_type}`",
            manifest.config().media_type()
        )));
    }
    let [layer] = manifest.layers().as_slice() else {
        return Err(untrusted(format!(
            "it has {} layers, not one",
            manifest.layers().len()
        )));
    };
    if layer.media_type().to_string() != layer_type {
        return Err(untrusted(format!(
            "its layer is a `{}`, not a `{layer_type}`",
            layer.media_type()
        )));
    }
    let layer = layer.clone();
    Ok((descriptor.digest().clone(), manifest, layer))
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
        assert_eq!(std::fs::read(&entry.layer).unwrap(), b"\x7fELF artifact");
        assert_eq!(entry.layer_size, 13);

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
    fn function_entries_round_trip_and_keep_to_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("segment");
        std::fs::write(&segment, b"PACKFNC1 segment").unwrap();
        let key = PrivateKey::generate();
        let k = "cd".repeat(32);
        let config = FunctionsConfig {
            segment_key: k.clone(),
            wasmtime_version: "48.0.8".into(),
            target: "linux/amd64".into(),
            triple: "x86_64-unknown-linux-gnu".into(),
            cpu_flags: vec![],
            profile_sha256: "p".repeat(64),
            functions: 3,
        };
        let layout = Layout::create(dir.path().join("l")).unwrap();
        write_functions_entry(&layout, &config, &segment, &key, "r/cache").unwrap();
        let entry = read_functions_entry(&layout, &k, &[key.public_key()]).unwrap();
        assert_eq!(entry.config, config);
        assert_eq!(std::fs::read(&entry.layer).unwrap(), b"PACKFNC1 segment");
        assert_eq!(entry.layer_size, 16);
        let other = PrivateKey::generate().public_key();
        assert!(read_functions_entry(&layout, &k, &[other]).is_err());

        // An artifact entry under a function tag is refused, although it is signed.
        let cwasm = dir.path().join("a.cwasm");
        std::fs::write(&cwasm, b"\x7fELF").unwrap();
        write_signed(&layout, &CwasmTyped(config), &cwasm, &key, "r/cache").unwrap();
        let err = read_functions_entry(&layout, &k, &[key.public_key()]).unwrap_err();
        assert!(
            matches!(&err, Error::UntrustedCacheEntry { reason, .. } if reason.contains("artifactType")),
            "{err}"
        );
    }

    /// A function cache config in a manifest typed as an artifact entry, under a
    /// function cache tag.
    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct CwasmTyped(FunctionsConfig);

    impl Kind for CwasmTyped {
        const ARTIFACT_TYPE: &'static str = ARTIFACT_TYPE;
        const LAYER: &'static str = CWASM_LAYER;
        const TAG_PREFIX: &'static str = FUNCTIONS_TAG_PREFIX;
        const CONFIG: &'static str = "config";
        const KEY: (&'static str, &'static str) = ("segment key", "segment");
        fn key(&self) -> &str {
            &self.0.segment_key
        }
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
