//! OCI packaging for pack: the image layout on disk, the image index with one portable
//! wasm manifest and one native manifest per platform, and cosign-compatible signing and
//! verification. This crate knows nothing of the network; moving bundles to and from
//! registries is `pack-registry-client`'s job. It knows nothing of wasmtime either: what
//! the compiler produced comes in as plain data ([`BundleInput`]), and the `.cwasm`
//! artifacts are opaque bytes.
//!
//! - [`layout`]: an OCI image layout directory ([`Layout`]): blobs written atomically and
//!   verified on read, tags in `index.json` updated atomically under a lock.
//! - [`bundle`]: building a bundle ([`build_bundle`]) and reading one back ([`Bundle`]).
//! - [`signing`]: ECDSA P-256 keys, cosign "simple signing" signatures, verification.
//! - [`cache_entry`]: one precompiled artifact as a signed manifest, the unit of a compile
//!   cache kept in a registry.
//! - [`limits`]: how large a document, and how many entries, pack reads.
//! - [`json`]: the canonical JSON every document is written in, so the same inputs give
//!   the same digests on any machine.
//! - [`media_types`] and [`annotations`]: the names the bundle format uses, documented in
//!   `docs/bundle-format.md`.

pub mod bundle;
pub mod cache_entry;
pub mod compression;
mod error;
pub mod json;
pub mod layout;
pub mod limits;
pub mod provenance;
pub mod reference;
pub mod referrers;
pub mod signing;

pub use bundle::{
    BlobSource, Bundle, BundleInput, BundleSummary, Compilation, DamagedBlob, NativeArtifact,
    NativeConfig, PortableConfig, TreeReport, WasmConfig, build_bundle, verify_tree,
};
pub use error::{Error, Result};
pub use layout::Layout;
pub use reference::LayoutRef;

/// Re-exported so callers name the same types this crate uses.
pub use oci_spec;

/// Media types of the documents and blobs in a bundle.
pub mod media_types {
    /// An OCI image index (the bundle itself).
    pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// An OCI image manifest (the portable manifest, each native manifest, signatures).
    pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// The config of the portable manifest (CNCF TAG Runtime "Wasm OCI Artifact").
    pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
    /// A WebAssembly component (the portable layer).
    pub const WASM_LAYER: &str = "application/wasm";
    /// The config of a native manifest: what a host needs to choose it.
    pub const NATIVE_CONFIG: &str = "application/vnd.pack.native.config.v1+json";
    /// A component precompiled by wasmtime (`.cwasm`).
    pub const CWASM_LAYER: &str = "application/vnd.pack.cwasm.v1";
    /// A `.cwasm` as one zstd frame (native manifests; see [`crate::compression`]).
    pub const CWASM_LAYER_ZSTD: &str = "application/vnd.pack.cwasm.v1+zstd";
    /// The component as one zstd frame (only in native manifests: the portable manifest
    /// keeps [`WASM_LAYER`] for other tools).
    pub const WASM_LAYER_ZSTD: &str = "application/wasm+zstd";
    /// The config of a cosign signature manifest.
    pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// A cosign simple-signing payload.
    pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
    /// The empty config of an OCI 1.1 artifact (`{}`).
    pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
    /// A sigstore bundle v0.3 (JSON): the artifact type and the layer of a bundle
    /// referrer.
    pub const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
}

/// Annotation keys the bundle format uses.
pub mod annotations {
    /// The tag of a manifest in `index.json`.
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// Creation time (RFC 3339), only from `SOURCE_DATE_EPOCH` or when asked.
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// On a native manifest's descriptor in the index: the wasmtime version.
    pub const WASMTIME_VERSION: &str = "dev.pack.wasmtime.version";
    /// On a native manifest's descriptor in the index: wasmtime's compatibility hash.
    pub const COMPATIBILITY_HASH: &str = "dev.pack.wasmtime.compatibility-hash";
    /// On a native manifest's descriptor in the index: the Rust target triple.
    pub const TARGET: &str = "dev.pack.target";
    /// On a native manifest's descriptor in the index: the CPU preset, when there is one.
    pub const CPU: &str = "dev.pack.cpu";
    /// On a signature layer: the signature, base64 DER (cosign's annotation).
    pub const COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
    /// On a signature layer: `sha256:<hex>` of the signing key's SubjectPublicKeyInfo DER.
    /// A claim that lets tools show who signed; it is not trusted for verification.
    pub const SIGNATURE_KEY: &str = "dev.pack.signature.key";
    /// On a bundle referrer manifest: what the bundle holds (`dsse-envelope`), as cosign
    /// writes it.
    pub const BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
    /// On a bundle referrer manifest: the predicate type of its Statement, as cosign
    /// writes it. A hint for filtering, not trusted.
    pub const BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";
}
