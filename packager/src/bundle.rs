//! Building a bundle into a layout, and reading one back.
//!
//! A bundle is one image index with:
//! - a portable manifest in the CNCF TAG Runtime "Wasm OCI Artifact" layout (config
//!   `application/vnd.wasm.config.v0+json`, one `application/wasm` layer, platform
//!   `wasm`/`wasip2`), and
//! - one native manifest per compiled target (config [`NativeConfig`], the `.cwasm` layer,
//!   then the portable component as a second layer so a host can fall back without
//!   fetching another manifest).
//!
//! The documents are written in canonical JSON ([`crate::json`]) and in a fixed order, so
//! the same inputs give the same index digest on any machine. `docs/bundle-format.md`
//! describes the format.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, Descriptor, ImageIndex, ImageManifest, ImageManifestBuilder, MediaType, Os, Platform,
    PlatformBuilder,
};
use serde::{Deserialize, Serialize};

use crate::annotations::{COMPATIBILITY_HASH, CPU, CREATED, TARGET, WASMTIME_VERSION};
use crate::compression::{Uncompressed, compressed_media_type, is_compressed};
use crate::layout::{Blob, locked_temp_dir, parse_sha256, sync_dir};
use crate::media_types::{
    CWASM_LAYER, IMAGE_INDEX, IMAGE_MANIFEST, NATIVE_CONFIG, WASM_CONFIG, WASM_LAYER,
};
use crate::reference::check_tag;
use crate::{Error, Layout, Result};

/// `architecture` of the portable manifest.
pub const WASM_ARCHITECTURE: &str = "wasm";
/// `os` of the portable manifest (a WASI 0.2 component).
pub const WASM_OS: &str = "wasip2";
/// `created` of the portable config when no creation time is given: the config format
/// requires the field, and pack does not put the wall-clock time in a bundle unasked.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Where a blob's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobSource {
    /// A file, streamed into the layout.
    File(PathBuf),
    /// Bytes in memory.
    Bytes(Vec<u8>),
}

/// What the portable config says about the component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortableConfig {
    /// The component's exports (`ns:pkg/iface@version` or plain names), in a stable order.
    pub exports: Vec<String>,
    /// The component's imports, in a stable order.
    pub imports: Vec<String>,
    /// The world the component was validated against, when it was.
    pub target_world: Option<String>,
}

/// What the compiler reports about one native artifact (also the settings a provenance
/// statement records, [`crate::provenance::CompileSettings`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compilation {
    /// The wasmtime version that compiled it (`48.0.8`).
    pub wasmtime_version: String,
    /// wasmtime's compatibility hash: a host loads the artifact only when its engine
    /// reports the same hash.
    pub compatibility_hash: String,
    /// The Rust target triple (`x86_64-unknown-linux-gnu`).
    pub target_triple: String,
    /// The CPU preset (`x86-64-v3`), when one was used.
    pub cpu_preset: Option<String>,
    /// The CPU features the artifact requires (`+avx2`, ...), in a stable order.
    pub cpu_flags: Vec<String>,
    /// The compile profile, as the compiler describes it (opaque to the packager).
    pub profile: serde_json::Value,
}

/// One native artifact to put in the bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeArtifact {
    /// Its OCI platform (`os`, `architecture`, `variant` for CPU levels such as `v3`).
    pub platform: Platform,
    /// The `.cwasm` bytes.
    pub cwasm: BlobSource,
    /// Their sha256 (hex or `sha256:<hex>`) when already known: the blob is then not
    /// rewritten when the layout has it, and the content is checked against it.
    pub cwasm_sha256: Option<String>,
    /// What the compiler reports about it.
    pub compilation: Compilation,
}

/// Everything [`build_bundle`] needs: plain data, filled in by the caller from the
/// compiler's results.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleInput {
    /// The component (`.wasm`).
    pub component: BlobSource,
    /// Its sha256 (hex or `sha256:<hex>`) when already known.
    pub component_sha256: Option<String>,
    /// What the portable config says about it.
    pub portable: PortableConfig,
    /// The native artifacts, in any order (the bundle orders them).
    pub natives: Vec<NativeArtifact>,
    /// Annotations for the image index.
    pub annotations: BTreeMap<String, String>,
    /// `org.opencontainers.image.created` (RFC 3339), e.g. from [`source_date_epoch`].
    /// Left out of the bundle when `None`.
    pub created: Option<String>,
}

/// The config of the portable manifest (`application/vnd.wasm.config.v0+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// Creation time (RFC 3339); [`EPOCH`] unless a time was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The author, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip2` for a component.
    pub os: String,
    /// The digests of the manifest's layers, in order.
    pub layer_digests: Vec<String>,
    /// The component's interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
}

/// `component` in a [`WasmConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// Exported interfaces and functions.
    pub exports: Vec<String>,
    /// Imported interfaces and functions.
    pub imports: Vec<String>,
    /// The world the component targets, when validated against one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The config of a native manifest (`application/vnd.pack.native.config.v1+json`):
/// everything a host needs to choose the artifact without downloading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeConfig {
    /// OCI platform architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// OCI platform OS (`linux`, `darwin`, `windows`, ...).
    pub os: String,
    /// OCI platform variant (`v3`, `v8`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The wasmtime version that compiled the artifact.
    pub wasmtime_version: String,
    /// wasmtime's compatibility hash.
    pub compatibility_hash: String,
    /// The Rust target triple.
    pub target_triple: String,
    /// The CPU preset, when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_preset: Option<String>,
    /// CPU features the artifact requires.
    #[serde(default)]
    pub cpu_flags: Vec<String>,
    /// The compile profile.
    #[serde(default)]
    pub profile: serde_json::Value,
    /// The digest of the component the artifact was compiled from.
    pub source_digest: String,
    /// The world the component was validated against, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<String>,
    /// For each zstd-compressed layer of the manifest, by its digest: the digest and size
    /// of its content ([`crate::compression`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub uncompressed: BTreeMap<String, Uncompressed>,
}

impl NativeConfig {
    /// What the compressed layer `layer` must decompress to: `Ok(None)` for a plain
    /// layer, an error for a compressed one the config records nothing for.
    pub fn uncompressed_of(&self, layer: &Descriptor) -> Result<Option<&Uncompressed>> {
        if !is_compressed(layer.media_type().as_ref()) {
            return Ok(None);
        }
        self.uncompressed
            .get(&layer.digest().to_string())
            .map(Some)
            .ok_or_else(|| Error::InvalidInput {
                message: format!(
                    "compressed layer {} has no `uncompressed` entry in its manifest's config",
                    layer.digest()
                ),
            })
    }
}

/// How [`build_bundle_with`] writes the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BundleOptions {
    /// Compress the native manifests' layers with zstd at this level
    /// ([`crate::compression`]); `None` writes them plain. The portable manifest's
    /// component is always plain.
    pub compression: Option<i32>,
}

/// What [`build_bundle`] wrote.
#[derive(Debug, Clone)]
pub struct BundleSummary {
    /// The layout directory.
    pub layout: PathBuf,
    /// The tag now pointing at the bundle.
    pub tag: String,
    /// The image index.
    pub index: Descriptor,
    /// The portable manifest (with its platform).
    pub portable: Descriptor,
    /// The native manifests, in index order (with platforms and annotations).
    pub natives: Vec<Descriptor>,
    /// How many blobs were written.
    pub blobs_written: usize,
    /// How many blobs the layout already had.
    pub blobs_reused: usize,
    /// The digests under which the layout had a file that was not that blob (other
    /// content, or writable by group or others): each was replaced by the right content.
    pub blobs_replaced: Vec<String>,
}

/// `org.opencontainers.image.created` from `SOURCE_DATE_EPOCH`, when set (and not empty).
pub fn source_date_epoch() -> Result<Option<String>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => {
            let secs: u64 = value.trim().parse().map_err(|_| Error::SourceDateEpoch {
                value: value.clone(),
            })?;
            rfc3339(secs)
                .map(Some)
                .ok_or(Error::SourceDateEpoch { value })
        }
        _ => Ok(None),
    }
}

/// Formats seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ` (years up to 9999).
pub fn rfc3339(secs: u64) -> Option<String> {
    let days = i64::try_from(secs / 86_400).ok()?;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year > 9999 {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// Builds a bundle from `input` into the layout at `layout_dir` and points `tag` at it.
///
/// An existing layout gets the tag added or replaced, sharing the blobs it already has:
/// a blob already there is reused only when it hashes to its digest (and is a regular
/// file that group and others cannot write); otherwise it is replaced, and
/// [`BundleSummary::blobs_replaced`] names it. An existing layout that group or others
/// can write is refused ([`Error::SharedLayout`]): whoever can write it could change
/// what the tag points to between the build and its signature.
/// A new layout is built in a temporary directory next to `layout_dir` and renamed into
/// place when complete, so a failed build leaves nothing behind; in an existing layout
/// blobs are written first and `index.json` last, atomically.
pub fn build_bundle(layout_dir: &Path, tag: &str, input: &BundleInput) -> Result<BundleSummary> {
    build_bundle_with(layout_dir, tag, input, &BundleOptions::default())
}

/// [`build_bundle`] with `options` (compressed layers).
pub fn build_bundle_with(
    layout_dir: &Path,
    tag: &str,
    input: &BundleInput,
    options: &BundleOptions,
) -> Result<BundleSummary> {
    check_tag(tag)?;
    check_input(input)?;
    if layout_dir.join("oci-layout").exists() {
        check_not_shared(layout_dir)?;
        let layout = Layout::open(layout_dir)?;
        layout.remove_stale_temp_files();
        return write_bundle_with(&layout, tag, input, options);
    }
    match fs::read_dir(layout_dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => {
            return Err(Error::CannotCreate {
                path: layout_dir.to_path_buf(),
                reason: "it is a directory that is neither empty nor an OCI image layout"
                    .to_string(),
            });
        }
        Err(_) if layout_dir.exists() && !layout_dir.is_dir() => {
            return Err(Error::CannotCreate {
                path: layout_dir.to_path_buf(),
                reason: "it is a file".to_string(),
            });
        }
        _ => {}
    }
    let parent = match layout_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    pack_fs::create_dir_all(&parent, pack_fs::DIR_MODE).map_err(|source| Error::Write {
        path: parent.clone(),
        source,
    })?;
    // Builds that were killed left their staging directories here.
    pack_fs::remove_stale_temp_dirs(&parent);
    let staging = locked_temp_dir(&parent)?;
    let built = staging.path().join("layout");
    let layout = Layout::create(&built)?;
    let mut summary = write_bundle_with(&layout, tag, input, options)?;
    if let Err(source) = fs::rename(&built, layout_dir) {
        return Err(Error::Write {
            path: layout_dir.to_path_buf(),
            source,
        });
    }
    drop(staging);
    sync_dir(&parent)?;
    summary.layout = layout_dir.to_path_buf();
    Ok(summary)
}

/// Refuses an existing layout when its directory, `blobs/`, `blobs/sha256/`,
/// `index.json` or `oci-layout` can be written by group or others.
pub fn check_not_shared(layout_dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for path in [
            layout_dir.to_path_buf(),
            layout_dir.join("blobs"),
            layout_dir.join("blobs").join("sha256"),
            layout_dir.join("index.json"),
            layout_dir.join("oci-layout"),
        ] {
            let mode = match fs::metadata(&path) {
                Ok(m) => m.permissions().mode(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::Read { path, source }),
            };
            if mode & 0o022 != 0 {
                return Err(Error::SharedLayout {
                    layout: layout_dir.to_path_buf(),
                    path,
                    mode: mode & 0o7777,
                });
            }
        }
    }
    #[cfg(not(unix))]
    let _ = layout_dir;
    Ok(())
}

fn check_input(input: &BundleInput) -> Result<()> {
    let invalid = |message: String| Err(Error::InvalidInput { message });
    let mut seen = HashSet::new();
    for native in &input.natives {
        let p = &native.platform;
        let c = &native.compilation;
        if p.architecture().to_string() == WASM_ARCHITECTURE {
            return invalid(format!(
                "native artifact for `{}` has the portable platform's architecture `wasm`",
                c.target_triple
            ));
        }
        for (name, value) in [
            ("wasmtime_version", &c.wasmtime_version),
            ("compatibility_hash", &c.compatibility_hash),
            ("target_triple", &c.target_triple),
        ] {
            if value.is_empty() {
                return invalid(format!("a native artifact has an empty {name}"));
            }
        }
        if !seen.insert((platform_key(p), c.compatibility_hash.clone())) {
            return invalid(format!(
                "two native artifacts for platform {} with compatibility hash {}",
                platform_string(p),
                c.compatibility_hash
            ));
        }
    }
    for (key, value) in &input.annotations {
        if key.is_empty() {
            return invalid(format!("an annotation with an empty key (value `{value}`)"));
        }
    }
    Ok(())
}

/// `os/architecture[/variant]`.
pub fn platform_string(platform: &Platform) -> String {
    let mut s = format!("{}/{}", platform.os(), platform.architecture());
    if let Some(variant) = platform.variant() {
        s.push('/');
        s.push_str(variant);
    }
    s
}

fn platform_key(p: &Platform) -> (String, String, String, Vec<String>) {
    (
        p.os().to_string(),
        p.architecture().to_string(),
        p.variant().clone().unwrap_or_default(),
        p.os_features().clone().unwrap_or_default(),
    )
}

struct Counter {
    written: usize,
    reused: usize,
    replaced: Vec<String>,
}

impl Counter {
    fn count(&mut self, blob: &Blob) {
        if blob.replaced {
            self.replaced.push(blob.digest.to_string());
        }
        if blob.written {
            self.written += 1;
        } else {
            self.reused += 1;
        }
    }

    fn put_json<T: Serialize>(
        &mut self,
        layout: &Layout,
        media_type: &str,
        value: &T,
    ) -> Result<Descriptor> {
        let bytes = crate::json::to_vec(value).map_err(|e| Error::InvalidInput {
            message: format!("cannot serialise a `{media_type}` document: {e}"),
        })?;
        let blob = layout.put_bytes(&bytes)?;
        self.count(&blob);
        Ok(blob.descriptor(media_type))
    }

    fn put_source(
        &mut self,
        layout: &Layout,
        source: &BlobSource,
        sha256: Option<&str>,
    ) -> Result<Blob> {
        let expected = sha256.map(parse_sha256).transpose()?;
        let blob = match source {
            BlobSource::File(path) => layout.put_file(path, expected.as_ref())?,
            BlobSource::Bytes(bytes) => layout.put_blob(&bytes[..], expected.as_ref())?,
        };
        self.count(&blob);
        Ok(blob)
    }
}

fn manifest(
    config: Descriptor,
    layers: Vec<Descriptor>,
    annotations: &HashMap<String, String>,
) -> ImageManifest {
    let mut builder = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers);
    if !annotations.is_empty() {
        builder = builder.annotations(annotations.clone());
    }
    builder
        .build()
        .expect("every required manifest field is set")
}

/// Writes the bundle into an open layout and tags it. See [`build_bundle`].
pub fn write_bundle(layout: &Layout, tag: &str, input: &BundleInput) -> Result<BundleSummary> {
    write_bundle_with(layout, tag, input, &BundleOptions::default())
}

/// Reads a blob source whole and checks it against `sha256` when given.
fn read_source(source: &BlobSource, sha256: Option<&str>) -> Result<(Vec<u8>, String)> {
    let bytes = match source {
        BlobSource::File(path) => fs::read(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?,
        BlobSource::Bytes(bytes) => bytes.clone(),
    };
    let digest = crate::layout::sha256(&bytes);
    if let Some(expected) = sha256.map(parse_sha256).transpose()?
        && expected != digest
    {
        let path = match source {
            BlobSource::File(path) => path.clone(),
            BlobSource::Bytes(_) => PathBuf::from("<input>"),
        };
        return Err(Error::DigestMismatch {
            path,
            expected: expected.to_string(),
            actual: digest.to_string(),
        });
    }
    Ok((bytes, digest.to_string()))
}

/// Writes `bytes` (whose sha256 is `digest`) as one zstd frame at `level`; returns the
/// layer's descriptor and what it decompresses to.
fn put_compressed(
    counter: &mut Counter,
    layout: &Layout,
    bytes: &[u8],
    digest: String,
    plain_type: &str,
    level: i32,
) -> Result<(Descriptor, Uncompressed)> {
    let frame = crate::compression::compress(bytes, level)?;
    let blob = layout.put_bytes(&frame)?;
    counter.count(&blob);
    let media_type = compressed_media_type(plain_type).unwrap_or(plain_type);
    Ok((
        blob.descriptor(media_type),
        Uncompressed {
            digest,
            size: bytes.len() as u64,
        },
    ))
}

/// [`write_bundle`] with `options`.
pub fn write_bundle_with(
    layout: &Layout,
    tag: &str,
    input: &BundleInput,
    options: &BundleOptions,
) -> Result<BundleSummary> {
    check_tag(tag)?;
    check_input(input)?;
    let mut counter = Counter {
        written: 0,
        reused: 0,
        replaced: Vec::new(),
    };
    let manifest_annotations: HashMap<String, String> = input
        .created
        .iter()
        .map(|c| (CREATED.to_string(), c.clone()))
        .collect();

    // The portable manifest.
    let component =
        counter.put_source(layout, &input.component, input.component_sha256.as_deref())?;
    let component_layer = component.descriptor(WASM_LAYER);
    let wasm_config = WasmConfig {
        created: Some(input.created.clone().unwrap_or_else(|| EPOCH.to_string())),
        author: None,
        architecture: WASM_ARCHITECTURE.to_string(),
        os: WASM_OS.to_string(),
        layer_digests: vec![component.digest.to_string()],
        component: Some(ComponentInfo {
            exports: input.portable.exports.clone(),
            imports: input.portable.imports.clone(),
            target: input.portable.target_world.clone(),
        }),
    };
    let config = counter.put_json(layout, WASM_CONFIG, &wasm_config)?;
    let portable_manifest = manifest(config, vec![component_layer.clone()], &manifest_annotations);
    let mut portable = counter.put_json(layout, IMAGE_MANIFEST, &portable_manifest)?;
    portable.set_platform(Some(
        PlatformBuilder::default()
            .architecture(Arch::Wasm)
            .os(Os::Other(WASM_OS.to_string()))
            .build()
            .expect("architecture and os are set"),
    ));

    // The component as the native manifests carry it: compressed once, when asked.
    let native_component = match options.compression {
        Some(level) if !input.natives.is_empty() => {
            let (bytes, digest) = read_source(&input.component, Some(component.digest.as_ref()))?;
            Some(put_compressed(
                &mut counter,
                layout,
                &bytes,
                digest,
                WASM_LAYER,
                level,
            )?)
        }
        _ => None,
    };

    // One native manifest per artifact.
    let mut natives = Vec::with_capacity(input.natives.len());
    for native in &input.natives {
        let c = &native.compilation;
        let mut uncompressed = BTreeMap::new();
        let (cwasm_layer, component_layer) = match (options.compression, &native_component) {
            (Some(level), Some((component_layer, component_content))) => {
                let (bytes, digest) = read_source(&native.cwasm, native.cwasm_sha256.as_deref())?;
                let (cwasm_layer, cwasm_content) =
                    put_compressed(&mut counter, layout, &bytes, digest, CWASM_LAYER, level)?;
                drop(bytes);
                uncompressed.insert(cwasm_layer.digest().to_string(), cwasm_content);
                uncompressed.insert(
                    component_layer.digest().to_string(),
                    component_content.clone(),
                );
                (cwasm_layer, component_layer.clone())
            }
            _ => {
                let cwasm =
                    counter.put_source(layout, &native.cwasm, native.cwasm_sha256.as_deref())?;
                (cwasm.descriptor(CWASM_LAYER), component_layer.clone())
            }
        };
        let native_config = NativeConfig {
            architecture: native.platform.architecture().to_string(),
            os: native.platform.os().to_string(),
            variant: native.platform.variant().clone(),
            wasmtime_version: c.wasmtime_version.clone(),
            compatibility_hash: c.compatibility_hash.clone(),
            target_triple: c.target_triple.clone(),
            cpu_preset: c.cpu_preset.clone(),
            cpu_flags: c.cpu_flags.clone(),
            profile: c.profile.clone(),
            source_digest: component.digest.to_string(),
            world: input.portable.target_world.clone(),
            uncompressed,
        };
        let config = counter.put_json(layout, NATIVE_CONFIG, &native_config)?;
        let layers = vec![cwasm_layer, component_layer];
        let native_manifest = manifest(config, layers, &manifest_annotations);
        let mut descriptor = counter.put_json(layout, IMAGE_MANIFEST, &native_manifest)?;
        descriptor.set_platform(Some(native.platform.clone()));
        let mut annotations = HashMap::from([
            (WASMTIME_VERSION.to_string(), c.wasmtime_version.clone()),
            (COMPATIBILITY_HASH.to_string(), c.compatibility_hash.clone()),
            (TARGET.to_string(), c.target_triple.clone()),
        ]);
        if let Some(preset) = &c.cpu_preset {
            annotations.insert(CPU.to_string(), preset.clone());
        }
        descriptor.set_annotations(Some(annotations));
        natives.push((platform_key(&native.platform), descriptor));
    }
    natives.sort_by(|a, b| {
        (&a.0, a.1.digest().as_ref() as &str).cmp(&(&b.0, b.1.digest().as_ref() as &str))
    });
    let natives: Vec<Descriptor> = natives.into_iter().map(|(_, d)| d).collect();

    // The index.
    let mut index = ImageIndex::default();
    index.set_schema_version(2);
    index.set_media_type(Some(MediaType::ImageIndex));
    let mut manifests = vec![portable.clone()];
    manifests.extend(natives.iter().cloned());
    index.set_manifests(manifests);
    let mut annotations: HashMap<String, String> = input
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.extend(manifest_annotations);
    if !annotations.is_empty() {
        index.set_annotations(Some(annotations));
    }
    let index = counter.put_json(layout, IMAGE_INDEX, &index)?;
    layout.set_tag(tag, &index)?;
    Ok(BundleSummary {
        layout: layout.root().to_path_buf(),
        tag: tag.to_string(),
        index,
        portable,
        natives,
        blobs_written: counter.written,
        blobs_reused: counter.reused,
        blobs_replaced: counter.replaced,
    })
}

/// The portable manifest of a bundle.
#[derive(Debug, Clone)]
pub struct PortableEntry {
    /// Its descriptor in the index.
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: ImageManifest,
    /// Its config.
    pub config: WasmConfig,
    /// The component layer.
    pub component: Descriptor,
}

/// A native manifest of a bundle.
#[derive(Debug, Clone)]
pub struct NativeEntry {
    /// Its descriptor in the index (platform and selection annotations).
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: ImageManifest,
    /// Its config.
    pub config: NativeConfig,
    /// The `.cwasm` layer.
    pub cwasm: Descriptor,
    /// The portable component layer, when present.
    pub component: Option<Descriptor>,
}

/// A bundle read back from a layout. Every document is checked against its digest and
/// size as it is read; [`Bundle::verify_layers`] checks the layers too.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The tag it was read from.
    pub tag: String,
    /// The index's descriptor (from `index.json`).
    pub descriptor: Descriptor,
    /// The image index.
    pub index: ImageIndex,
    /// The portable manifest, when there is one.
    pub portable: Option<PortableEntry>,
    /// The native manifests, in index order.
    pub natives: Vec<NativeEntry>,
    /// Index entries that are neither (kept, not interpreted).
    pub others: Vec<Descriptor>,
}

impl Bundle {
    /// Reads the bundle `tag` points to.
    pub fn read(layout: &Layout, tag: &str) -> Result<Self> {
        let descriptor = layout.resolve(tag)?;
        Self::read_at(layout, tag, descriptor)
    }

    /// Reads the bundle whose index is `descriptor` (what a tag pointed to when it was
    /// resolved, or what a build just wrote); `tag` only names it.
    pub fn read_at(layout: &Layout, tag: &str, descriptor: Descriptor) -> Result<Self> {
        Self::read_with(layout, tag, descriptor, false)
    }

    /// Reads the bundle whose index is `descriptor` as far as the layout has it: a
    /// manifest whose blob is missing (a pull of some platforms only) is left out, and
    /// its layers are not required to be present (a pull of a manifest's first layers
    /// only). Every document that is there is still checked against its digest.
    pub fn read_present(layout: &Layout, tag: &str, descriptor: Descriptor) -> Result<Self> {
        Self::read_with(layout, tag, descriptor, true)
    }

    fn read_with(
        layout: &Layout,
        tag: &str,
        descriptor: Descriptor,
        partial: bool,
    ) -> Result<Self> {
        let check_layer_exists = |layout: &Layout, layer: &Descriptor| {
            if partial {
                Ok(())
            } else {
                check_layer_exists(layout, layer)
            }
        };
        let not_a_bundle = |reason: String| Error::NotABundle {
            layout: layout.root().to_path_buf(),
            tag: tag.to_string(),
            reason,
        };
        if *descriptor.media_type() != MediaType::ImageIndex {
            return Err(not_a_bundle(format!(
                "it points to a `{}`, not an image index",
                descriptor.media_type()
            )));
        }
        let index = layout.read_image_index(&descriptor)?;
        let mut bundle = Bundle {
            tag: tag.to_string(),
            descriptor,
            index: index.clone(),
            portable: None,
            natives: Vec::new(),
            others: Vec::new(),
        };
        for entry in index.manifests() {
            if *entry.media_type() != MediaType::ImageManifest {
                bundle.others.push(entry.clone());
                continue;
            }
            let manifest = match layout.read_manifest(entry) {
                Err(Error::BlobMissing { .. }) if partial => continue,
                other => other?,
            };
            let config_type = manifest.config().media_type().to_string();
            // A native manifest's layers may be compressed (`+zstd`).
            let layer = |media_type: &str| {
                manifest
                    .layers()
                    .iter()
                    .find(|l| {
                        crate::compression::plain_media_type(l.media_type().as_ref()) == media_type
                    })
                    .cloned()
            };
            if config_type == WASM_CONFIG && bundle.portable.is_none() {
                let config: WasmConfig = layout.read_json(manifest.config(), "wasm config")?;
                let component = layer(WASM_LAYER).ok_or_else(|| {
                    not_a_bundle(format!(
                        "portable manifest {} has no `{WASM_LAYER}` layer",
                        entry.digest()
                    ))
                })?;
                check_layer_exists(layout, &component)?;
                bundle.portable = Some(PortableEntry {
                    descriptor: entry.clone(),
                    manifest,
                    config,
                    component,
                });
            } else if config_type == NATIVE_CONFIG {
                let config: NativeConfig = layout.read_json(manifest.config(), "native config")?;
                let cwasm = layer(CWASM_LAYER).ok_or_else(|| {
                    not_a_bundle(format!(
                        "native manifest {} has no `{CWASM_LAYER}` layer",
                        entry.digest()
                    ))
                })?;
                check_layer_exists(layout, &cwasm)?;
                let component = layer(WASM_LAYER);
                if let Some(component) = &component {
                    check_layer_exists(layout, component)?;
                }
                bundle.natives.push(NativeEntry {
                    descriptor: entry.clone(),
                    manifest,
                    config,
                    cwasm,
                    component,
                });
            } else {
                bundle.others.push(entry.clone());
            }
        }
        if bundle.portable.is_none() && bundle.natives.is_empty() {
            return Err(not_a_bundle(
                "its index has neither a portable nor a native manifest".to_string(),
            ));
        }
        Ok(bundle)
    }

    /// Every blob of the bundle, once each: the index, manifests, configs and layers.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut add = |d: &Descriptor| {
            if seen.insert(d.digest().to_string()) {
                out.push(d.clone());
            }
        };
        add(&self.descriptor);
        if let Some(p) = &self.portable {
            add(&p.descriptor);
            add(p.manifest.config());
            p.manifest.layers().iter().for_each(&mut add);
        }
        for n in &self.natives {
            add(&n.descriptor);
            add(n.manifest.config());
            n.manifest.layers().iter().for_each(&mut add);
        }
        out
    }

    /// The bundle's size on disk: every blob counted once.
    pub fn total_size(&self) -> u64 {
        self.blobs().iter().map(|d| d.size()).sum()
    }

    /// Checks the size and digest of every layer (streamed).
    pub fn verify_layers(&self, layout: &Layout) -> Result<()> {
        let mut layers = Vec::new();
        if let Some(p) = &self.portable {
            layers.extend(p.manifest.layers().iter().cloned());
        }
        for n in &self.natives {
            layers.extend(n.manifest.layers().iter().cloned());
        }
        let mut seen = HashSet::new();
        for layer in layers {
            if seen.insert(layer.digest().to_string()) {
                layout.verify_blob(&layer)?;
            }
        }
        Ok(())
    }
}

/// A blob of a bundle that is missing, or does not match its descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DamagedBlob {
    /// Its digest (`sha256:<hex>`).
    pub digest: String,
    /// The media type its descriptor gives (what it should be).
    pub media_type: String,
    /// Its file in the layout.
    pub path: PathBuf,
    /// What is wrong: missing, another size, another digest, not a valid document.
    pub problem: String,
}

/// What [`verify_tree`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeReport {
    /// Blobs that were checked and match their descriptors (each counted once).
    pub intact: usize,
    /// Their total size.
    pub bytes: u64,
    /// Blobs that are missing or do not match.
    pub damaged: Vec<DamagedBlob>,
    /// Manifests the index lists that the layout does not have at all (a pull of some
    /// platforms only): not damage, since nothing of them is there to be used.
    pub absent: Vec<String>,
    /// Layers after a manifest's first (the fallbacks: the portable component a native
    /// manifest carries) that the layout lacks entirely, as `pack pull --platform`
    /// leaves them: not damage either. A manifest's config and first layer (what a host
    /// loads) must be there.
    pub unfetched: Vec<String>,
}

impl TreeReport {
    /// Whether every blob present matches its descriptor.
    pub fn is_intact(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// How deep image indexes may nest inside a bundle's index.
const MAX_NESTING: usize = 4;

/// Checks the whole tree under `root` (an image index or manifest): the document itself,
/// every manifest it lists (nested indexes too), every config and every layer, each
/// against the size and sha256 of its descriptor (layers are streamed). Problems are
/// collected, not returned as errors, so every damaged blob is named; a damaged document
/// is not parsed, so what it lists is not followed. A manifest the index lists but the
/// layout lacks entirely is [`TreeReport::absent`] (a partial pull), not damage.
pub fn verify_tree(layout: &Layout, root: &Descriptor) -> Result<TreeReport> {
    let mut report = TreeReport::default();
    let mut seen = HashSet::new();
    walk(layout, root, 0, true, &mut seen, &mut report)?;
    Ok(report)
}

fn walk(
    layout: &Layout,
    descriptor: &Descriptor,
    depth: usize,
    is_root: bool,
    seen: &mut HashSet<String>,
    report: &mut TreeReport,
) -> Result<()> {
    if !seen.insert(descriptor.digest().to_string()) {
        return Ok(());
    }
    let path = layout.blob_path(descriptor.digest())?;
    let damaged = |report: &mut TreeReport, problem: String| {
        report.damaged.push(DamagedBlob {
            digest: descriptor.digest().to_string(),
            media_type: descriptor.media_type().to_string(),
            path: path.clone(),
            problem,
        });
    };
    let is_index = *descriptor.media_type() == MediaType::ImageIndex;
    let is_manifest = *descriptor.media_type() == MediaType::ImageManifest;
    if !is_root && (is_index || is_manifest) && fs::symlink_metadata(&path).is_err() {
        report.absent.push(descriptor.digest().to_string());
        return Ok(());
    }
    if is_index && depth <= MAX_NESTING {
        match layout.read_image_index(descriptor) {
            Ok(index) => {
                report.intact += 1;
                report.bytes += descriptor.size();
                for entry in index.manifests() {
                    walk(layout, entry, depth + 1, false, seen, report)?;
                }
            }
            Err(e) => damaged(report, problem_of(e)),
        }
    } else if is_manifest {
        match layout.read_manifest(descriptor) {
            Ok(manifest) => {
                report.intact += 1;
                report.bytes += descriptor.size();
                let blobs = std::iter::once(manifest.config()).chain(manifest.layers());
                for (position, blob) in blobs.enumerate() {
                    // Past the config and the first layer: a fallback, which a partial
                    // pull leaves out.
                    if position >= 2
                        && fs::symlink_metadata(layout.blob_path(blob.digest())?).is_err()
                    {
                        if seen.insert(blob.digest().to_string()) {
                            report.unfetched.push(blob.digest().to_string());
                        }
                        continue;
                    }
                    walk_blob(layout, blob, seen, report)?;
                }
            }
            Err(e) => damaged(report, problem_of(e)),
        }
    } else if is_index {
        damaged(
            report,
            format!("image indexes nest more than {MAX_NESTING} deep"),
        );
    } else {
        seen.remove(&descriptor.digest().to_string());
        walk_blob(layout, descriptor, seen, report)?;
    }
    Ok(())
}

fn walk_blob(
    layout: &Layout,
    descriptor: &Descriptor,
    seen: &mut HashSet<String>,
    report: &mut TreeReport,
) -> Result<()> {
    if !seen.insert(descriptor.digest().to_string()) {
        return Ok(());
    }
    let path = layout.blob_path(descriptor.digest())?;
    let problem = match layout.verify_blob(descriptor) {
        Ok(_) => {
            report.intact += 1;
            report.bytes += descriptor.size();
            return Ok(());
        }
        Err(e) => problem_of(e),
    };
    report.damaged.push(DamagedBlob {
        digest: descriptor.digest().to_string(),
        media_type: descriptor.media_type().to_string(),
        path,
        problem,
    });
    Ok(())
}

/// What is wrong with a blob, in a few words.
fn problem_of(error: Error) -> String {
    match error {
        Error::BlobMissing { .. } => "missing".to_string(),
        Error::SizeMismatch {
            expected, actual, ..
        } => format!("{actual} bytes, but its descriptor says {expected}"),
        Error::DigestMismatch { actual, .. } => format!("its content hashes to {actual}"),
        other => other.to_string(),
    }
}

fn check_layer_exists(layout: &Layout, layer: &Descriptor) -> Result<()> {
    let path = layout.blob_path(layer.digest())?;
    match fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(()),
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Read { path, source: e }),
        _ => Err(Error::BlobMissing {
            layout: layout.root().to_path_buf(),
            digest: layer.digest().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_blob_is_replaced_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path().join("l")).unwrap();
        let digest = crate::layout::sha256(b"the content");
        let path = layout.blob_path(&digest).unwrap();
        fs::write(&path, b"something else").unwrap();
        let blob = layout.put_bytes(b"the content").unwrap();
        assert!(blob.written && blob.replaced);
        assert_eq!(blob.size, 11);
        assert_eq!(fs::read(&path).unwrap(), b"the content");
        let again = layout.put_bytes(b"the content").unwrap();
        assert!(!again.written && !again.replaced);
    }

    #[test]
    fn the_tree_walk_names_every_damaged_blob() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path().join("l")).unwrap();
        let layer = layout.put_bytes(b"layer").unwrap().descriptor(CWASM_LAYER);
        let config = layout.put_bytes(b"{}").unwrap().descriptor(NATIVE_CONFIG);
        let m = manifest(config, vec![layer.clone()], &HashMap::new());
        let (m, _) = layout.put_json(IMAGE_MANIFEST, &m).unwrap();
        let absent = Descriptor::new(MediaType::ImageManifest, 3, crate::layout::sha256(b"abc"));
        let mut index = ImageIndex::default();
        index.set_manifests(vec![m.clone(), absent.clone()]);
        let (index, _) = layout.put_json(IMAGE_INDEX, &index).unwrap();
        let report = verify_tree(&layout, &index).unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.intact, 4);
        assert_eq!(report.absent, [absent.digest().to_string()]);

        let path = layout.blob_path(layer.digest()).unwrap();
        fs::write(&path, b"lay3r").unwrap();
        let report = verify_tree(&layout, &index).unwrap();
        assert_eq!(report.damaged.len(), 1, "{report:?}");
        assert_eq!(report.damaged[0].digest, layer.digest().to_string());
        assert_eq!(report.damaged[0].path, path);
        assert!(
            report.damaged[0].problem.contains("hashes to"),
            "{report:?}"
        );
        fs::remove_file(&path).unwrap();
        let report = verify_tree(&layout, &index).unwrap();
        assert_eq!(report.damaged[0].problem, "missing");
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000).unwrap(), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(253_402_300_799).unwrap(), "9999-12-31T23:59:59Z");
        assert!(rfc3339(253_402_300_800).is_none());
    }
}
