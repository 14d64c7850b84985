//! The host side of pack: resolving a bundle (from a layout or a registry), verifying its
//! signature and digests, choosing the precompiled artifact that fits this machine and
//! engine, and instantiating it without JIT compilation.
//!
//! ```no_run
//! use pack_host::{Host, HostOptions, Source, Trust, WasiOptions};
//! use pack_packager::signing::PublicKey;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = PublicKey::load("pack.pub".as_ref())?;
//! let host = Host::new(HostOptions::new(Trust::Keys(vec![key])));
//! let loaded = host.open(&Source::parse("out/app:latest"))?;
//! let command = loaded.command()?;
//! let outcome = command.run(&WasiOptions::inherit(vec!["app".into(), "2".into()]))?;
//! std::process::exit(outcome.exit_code());
//! # }
//! ```
//!
//! The steps, each its own method so an embedder can stop or report between them:
//!
//! 1. [`Host::resolve`]: a layout is used in place; a registry reference is pulled into
//!    the [`store::ContentStore`] (with the `registry` feature).
//! 2. [`Host::verify`]: a signature by a trusted key must cover the index digest
//!    ([`verify`]), unless [`Trust::InsecureSkipVerify`].
//! 3. [`Host::select`]: the native manifests that fit this platform, CPU, wasmtime and
//!    engine ([`select`]); every other one is listed with its reason.
//! 4. [`Host::load`]: each candidate's `.cwasm` is opened once (no symbolic links, a
//!    regular file, nothing on the way writable by others: [`Layout::open_trusted`]), read
//!    into memory through that open file, checked against its digest, and those very
//!    bytes are given to `Component::deserialize`. With `allow_jit` (and the `jit`
//!    feature) the portable component is compiled, from bytes checked the same way, when
//!    nothing fits.
//! 5. [`Loaded::command`] / [`Loaded::http`]: linked with WASI (and wasi-http) and
//!    pre-instantiated, so each instance costs microseconds with the pooling allocator.
//!
//! Without the `jit` feature the crate carries no compiler at all (`src/bin/pack-host.rs`
//! is such a host).

pub mod cpu;
pub mod engine;
mod error;
pub mod http;
pub mod select;
pub mod serve;
pub mod source;
pub mod store;
mod verified;
pub mod verify;
pub mod wasi;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use pack_packager::Layout;
use pack_packager::compression::Uncompressed;
use pack_packager::oci_spec::image::Descriptor;
use wasmtime::Engine;
use wasmtime::component::Component;

pub use engine::{EnginePolicy, EngineSettings, Pooling};
pub use error::{BoxError, Error, Result};
pub use http::{HttpPre, RequestLog, ServeOptions};
pub use select::{Candidate, PassedOver, Reason, Selection};
pub use source::Source;
pub use store::ContentStore;
pub use verify::{References, Trust, Verification, VerifiedBundle};
pub use wasi::{CommandInstance, CommandPre, Output, RunOutcome, Trap, WasiOptions};

use error::boxed;

/// Whether this build can compile components (the `jit` feature).
pub const HAS_COMPILER: bool = cfg!(feature = "jit");

/// How a host loads bundles.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Whose signatures to accept.
    pub trust: Trust,
    /// Which repositories their signatures must name.
    pub references: References,
    /// Compile the portable component when no precompiled artifact fits (needs the
    /// `jit` feature).
    pub allow_jit: bool,
    /// Which engine settings to load with.
    pub engine: EnginePolicy,
    /// The pooling allocator's size; `None` allocates each instance on demand.
    pub pooling: Option<Pooling>,
    /// The content store for registry pulls; `None` is [`store::default_dir`].
    pub store: Option<PathBuf>,
    /// How to reach registries.
    pub registry: store::RegistryOptions,
    /// When a registry reference is pulled, rather than taken from the content store.
    pub pull: PullPolicy,
    /// Rebuilders whose signed rebuild attestations count ([`HostOptions::rebuilds`]);
    /// empty: none are required.
    pub rebuilt_by: Vec<pack_packager::signing::PublicKey>,
    /// How many distinct keys of [`HostOptions::rebuilt_by`] must have attested a native
    /// artifact's `.cwasm` digest before it is loaded (docs/provenance.md).
    pub rebuilds: usize,
}

/// When [`Host::resolve`] pulls a registry reference (as `docker run --pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Every time: the tag is resolved again and the signatures fetched and verified
    /// again, so a moved tag is followed.
    #[default]
    Always,
    /// Only when the content store has no copy of the reference; a copy it has is
    /// verified as a layout is (its signatures, for the repository it was pulled from,
    /// and each blob), without asking the registry.
    Missing,
    /// Never: the content store's copy, or an error.
    Never,
}

impl HostOptions {
    /// Options with `trust`, no JIT, engines that adopt each artifact's profile, the
    /// pooling allocator, and the default content store.
    pub fn new(trust: Trust) -> Self {
        Self {
            trust,
            references: References::default(),
            allow_jit: false,
            engine: EnginePolicy::Adopt,
            pooling: Some(Pooling::default()),
            store: None,
            registry: store::RegistryOptions::default(),
            pull: PullPolicy::Always,
            rebuilt_by: Vec::new(),
            rebuilds: 0,
        }
    }
}

impl HostOptions {
    /// Requires `rebuilds` (default 1) of the `keys` to have attested a native artifact's
    /// `.cwasm` digest before it is loaded (`--rebuilt-by`, `--rebuilds`). Errors when
    /// `rebuilds` is given without keys, is 0, or is more than there are keys.
    pub fn require_rebuilds(
        &mut self,
        keys: Vec<pack_packager::signing::PublicKey>,
        rebuilds: Option<usize>,
    ) -> std::result::Result<(), String> {
        let required = match (keys.is_empty(), rebuilds) {
            (true, None) => return Ok(()),
            (true, Some(_)) => {
                return Err(
                    "--rebuilds needs the rebuilders' keys: pass --rebuilt-by <PUB>".into(),
                );
            }
            (false, None) => 1,
            (false, Some(0)) => return Err("--rebuilds must be at least 1".into()),
            (false, Some(n)) if n > keys.len() => {
                return Err(format!(
                    "--rebuilds {n} asks for more rebuilders than the {} --rebuilt-by key(s) given",
                    keys.len()
                ));
            }
            (false, Some(n)) => n,
        };
        self.rebuilt_by = keys;
        self.rebuilds = required;
        Ok(())
    }
}

/// A bundle located on disk (a layout, or the content store after a pull).
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What it was called.
    pub name: String,
    /// The layout that holds it.
    pub layout: Layout,
    /// Its tag there.
    pub tag: String,
    /// What a registry pull moved, when there was one.
    pub pulled: Option<Pulled>,
}

/// What a pull moved into the content store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The digest pulled.
    pub digest: String,
    pub blobs_transferred: usize,
    pub blobs_skipped: usize,
    pub bytes_transferred: u64,
}

/// A layer fetched from the registry when it was about to be loaded (bundles from a
/// registry are pulled without their layers: only the one loaded is fetched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedLayer {
    /// The layer's digest.
    pub digest: String,
    /// The bytes fetched.
    pub bytes: u64,
    /// Whether it is a fallback (pulley bytecode, or the portable component for JIT),
    /// fetched because no native artifact for this machine could be used.
    pub fallback: bool,
}

/// What was loaded.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "one per loaded component")]
pub enum Artifact {
    /// A precompiled `.cwasm`, memory-mapped from the layout.
    Precompiled {
        /// `os/arch[/variant]` of its manifest.
        platform: String,
        /// The native manifest.
        manifest: Descriptor,
        /// The `.cwasm` layer.
        cwasm: Descriptor,
        /// Its file.
        path: PathBuf,
        /// Pulley bytecode, run by the interpreter.
        pulley: bool,
    },
    /// The portable component, compiled here.
    Jit {
        /// Why no precompiled artifact was used.
        reason: String,
        /// The component layer.
        component: Descriptor,
    },
}

/// What a component exports that a host can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `wasi:cli/run`.
    Command,
    /// `wasi:http/incoming-handler`.
    HttpHandler,
    /// Both.
    Both,
    /// Neither: what it exports instead.
    Other(Vec<String>),
}

/// A loaded component, ready to be linked and instantiated.
#[derive(Clone)]
pub struct Loaded {
    /// The bundle's name.
    pub name: String,
    /// The verified index digest.
    pub digest: String,
    /// How it was verified.
    pub verification: Verification,
    /// What was loaded.
    pub artifact: Artifact,
    /// The manifests passed over on the way.
    pub passed_over: Vec<PassedOver>,
    /// The engine settings it runs with.
    pub settings: EngineSettings,
    /// The layers fetched from the registry to load it.
    pub fetched: Vec<FetchedLayer>,
    engine: Engine,
    component: Component,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("artifact", &self.artifact)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// The engine it is loaded into.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The component.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// What it exports that a host can run.
    pub fn kind(&self) -> Kind {
        let exports: Vec<String> = self
            .component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let has = |prefix: &str| exports.iter().any(|e| e.starts_with(prefix));
        match (
            has("wasi:cli/run@0.2"),
            has("wasi:http/incoming-handler@0.2"),
        ) {
            (true, true) => Kind::Both,
            (true, false) => Kind::Command,
            (false, true) => Kind::HttpHandler,
            (false, false) => Kind::Other(exports),
        }
    }

    fn not_runnable(&self) -> Error {
        let found = match self.kind() {
            Kind::Other(exports) if exports.is_empty() => "nothing".to_string(),
            Kind::Other(exports) => exports
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => "something else".to_string(),
        };
        Error::NotRunnable {
            bundle: self.name.clone(),
            found,
        }
    }

    /// Links the command with WASI and pre-instantiates it.
    pub fn command(&self) -> Result<CommandPre> {
        if !matches!(self.kind(), Kind::Command | Kind::Both) {
            return Err(self.not_runnable());
        }
        CommandPre::new(&self.engine, &self.component, &self.settings, &self.name)
    }

    /// Links the HTTP handler with WASI (CLI and HTTP) and pre-instantiates it; each
    /// request's instance gets `wasi`.
    pub fn http(&self, wasi: WasiOptions) -> Result<HttpPre> {
        if !matches!(self.kind(), Kind::HttpHandler | Kind::Both) {
            return Err(self.not_runnable());
        }
        HttpPre::new(
            &self.engine,
            &self.component,
            &self.settings,
            wasi,
            &self.name,
        )
    }
}

type EngineKey = (EngineSettings, Option<(String, Vec<String>)>);

/// What identifies a file's content without hashing it: device, inode, size, and the
/// modification and status-change times (any write changes the latter, and it cannot be
/// set back).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    digest: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

#[cfg(unix)]
fn stamp(file: &std::fs::File, digest: &str) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata().ok()?;
    Some(FileStamp {
        digest: digest.to_string(),
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    })
}

#[cfg(not(unix))]
fn stamp(_file: &std::fs::File, _digest: &str) -> Option<FileStamp> {
    None
}

impl FileStamp {
    fn identity(&self) -> verified::Identity {
        verified::Identity {
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
        }
    }

    /// Whether the file's last change is far enough in the past that a change after this
    /// stamp was taken must show in its times (file times advance in ticks of a few
    /// milliseconds: a write in the same tick as the last one could leave them equal).
    fn settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        now - self.ctime_ns.max(self.mtime_ns) > 100_000_000
    }
}

/// A blob checked against its digest, through the one open file that was checked.
pub struct VerifiedBlob {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    content: Content,
}

enum Content {
    /// Read from the open file and hashed (or found in a record) while it was read.
    Read(Vec<u8>),
    /// Not read: the open file's identity (device, inode, size, times) is one this host
    /// or the content store recorded when it last hashed it. Its bytes are read, or the
    /// file mapped, through this open file; the identity is compared again afterwards.
    Recorded {
        file: std::fs::File,
        stamp: FileStamp,
    },
}

impl std::fmt::Debug for VerifiedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (how, len) = match &self.content {
            Content::Read(bytes) => ("read", bytes.len() as u64),
            Content::Recorded { stamp, .. } => ("recorded", stamp.size),
        };
        f.debug_struct("VerifiedBlob")
            .field("path", &self.path)
            .field("content", &how)
            .field("len", &len)
            .finish()
    }
}

impl VerifiedBlob {
    /// Its bytes: those read and hashed, or (a recorded blob) read now from the open
    /// file, and hashed when its identity changed meanwhile.
    pub fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        match &self.content {
            Content::Read(bytes) => Ok(std::borrow::Cow::Borrowed(bytes)),
            Content::Recorded {
                file,
                stamp: recorded,
            } => {
                use std::io::{Read, Seek};
                let read = |e| {
                    Error::Layout(pack_packager::Error::Read {
                        path: self.path.clone(),
                        source: e,
                    })
                };
                let mut file = file.try_clone().map_err(read)?;
                file.seek(std::io::SeekFrom::Start(0)).map_err(read)?;
                let mut bytes = Vec::with_capacity(recorded.size as usize);
                (&mut file)
                    .take(recorded.size + 1)
                    .read_to_end(&mut bytes)
                    .map_err(read)?;
                if stamp(&file, &recorded.digest).as_ref() != Some(recorded) {
                    let digest = pack_packager::layout::parse_sha256(&recorded.digest)?;
                    pack_packager::layout::check_digest(&self.path, &digest, &bytes)?;
                }
                Ok(std::borrow::Cow::Owned(bytes))
            }
        }
    }

    /// Loads it as a precompiled component into `engine`. A recorded blob is mapped
    /// (as `wasmtime run` maps a `.cwasm`) from the open file that was checked, through
    /// `/proc/self/fd`, which names that file whatever happens to its path; when its
    /// identity changed meanwhile, or it cannot be mapped, it is read and hashed instead.
    ///
    /// # Safety
    /// As [`Component::deserialize`]: the blob must be an artifact this engine's
    /// wasmtime produced, which its verified digest (and the signature over it) vouch
    /// for; a recorded file can change only by its owner or root (the store refuses
    /// files others can write), see docs/host.md.
    unsafe fn deserialize(&self, engine: &Engine) -> Result<wasmtime::Result<Component>> {
        if let Content::Recorded {
            file,
            stamp: recorded,
        } = &self.content
        {
            #[cfg(target_os = "linux")]
            {
                use std::os::fd::AsRawFd;
                let by_fd = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
                // SAFETY: the caller's contract; the file is the one whose identity the
                // record holds, checked again once it is mapped.
                if let Ok(component) = unsafe { Component::deserialize_file(engine, &by_fd) }
                    && stamp(file, &recorded.digest).as_ref() == Some(recorded)
                {
                    return Ok(Ok(component));
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = (file, recorded);
        }
        let bytes = self.bytes()?;
        // SAFETY: the caller's contract; the bytes hash to the verified digest.
        Ok(unsafe { Component::deserialize(engine, &bytes[..]) })
    }
}

/// A host: options, the engines it has made (one per distinct configuration, shared by
/// every bundle that needs it), and the artifacts it has verified.
pub struct Host {
    options: HostOptions,
    engines: Mutex<HashMap<EngineKey, Engine>>,
    verified: Mutex<HashMap<PathBuf, FileStamp>>,
    /// The content store's record of verified blobs, once read.
    store_record: Mutex<Option<verified::Verified>>,
    /// The registry reference of each store tag this host pulled (without layers).
    pulled: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Host {
    pub fn new(options: HostOptions) -> Self {
        Self {
            options,
            engines: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            store_record: Mutex::new(None),
            pulled: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches `layer` from the registry the bundle was pulled from, when the store has
    /// neither it nor its decompressed content (`content`). Nothing for a layout.
    fn fetch_missing(
        &self,
        bundle: &VerifiedBundle,
        layer: &Descriptor,
        content: Option<&Uncompressed>,
        fallback: bool,
        fetched: &mut Vec<FetchedLayer>,
    ) -> Result<()> {
        let have = |digest: &str| {
            pack_packager::layout::parse_sha256(digest).is_ok_and(|d| bundle.layout.has_blob(&d))
        };
        if have(layer.digest().as_ref()) || content.is_some_and(|c| have(&c.digest)) {
            return Ok(());
        }
        let reference = {
            let pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
            pulled.get(&bundle.tag).cloned()
        };
        let Some(reference) = reference else {
            return Ok(());
        };
        #[cfg(feature = "registry")]
        {
            let store = ContentStore::new(bundle.layout.root());
            let bytes = store::fetch_layers(
                &store,
                &reference,
                std::slice::from_ref(layer),
                &self.options.registry,
            )?;
            fetched.push(FetchedLayer {
                digest: layer.digest().to_string(),
                bytes,
                fallback,
            });
        }
        #[cfg(not(feature = "registry"))]
        let _ = (reference, fallback, fetched);
        Ok(())
    }

    /// Runs `f` on the record of verified blobs when `layout` is the content store.
    fn with_store_record<R>(
        &self,
        layout: &Layout,
        f: impl FnOnce(&mut verified::Verified) -> R,
    ) -> Option<R> {
        if !self.is_store(layout) {
            return None;
        }
        let mut record = self.store_record.lock().unwrap_or_else(|e| e.into_inner());
        if record.as_ref().is_none_or(|r| r.root() != layout.root()) {
            *record = Some(verified::Verified::load(layout.root()));
        }
        record.as_mut().map(f)
    }

    pub fn options(&self) -> &HostOptions {
        &self.options
    }

    /// The content store registry references are pulled into.
    pub fn content_store(&self) -> Result<ContentStore> {
        self.options
            .store
            .clone()
            .or_else(store::default_dir)
            .map(ContentStore::new)
            .ok_or(Error::NoStore)
    }

    /// Finds the bundle on disk, pulling a registry reference into the content store.
    pub fn resolve(&self, source: &Source) -> Result<Resolved> {
        match source {
            Source::Layout(l) => Ok(Resolved {
                name: source.to_string(),
                layout: Layout::open_trusted(&l.path)?,
                tag: l.tag.clone(),
                pulled: None,
            }),
            #[cfg(feature = "registry")]
            Source::Registry(reference) => {
                let keys = match &self.options.trust {
                    Trust::Keys(keys) if keys.is_empty() => {
                        return Err(Error::NoTrustedKeys {
                            bundle: reference.clone(),
                        });
                    }
                    Trust::Keys(keys) => keys.clone(),
                    Trust::InsecureSkipVerify => Vec::new(),
                };
                let store = self.content_store()?;
                if self.options.pull != PullPolicy::Always {
                    let tag = store::tag_for(reference);
                    let layout = store.layout()?;
                    if let Ok(descriptor) = layout.resolve(&tag) {
                        self.pulled
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(tag.clone(), reference.clone());
                        return Ok(Resolved {
                            name: reference.clone(),
                            layout,
                            tag,
                            pulled: Some(Pulled {
                                digest: descriptor.digest().to_string(),
                                blobs_transferred: 0,
                                blobs_skipped: 0,
                                bytes_transferred: 0,
                            }),
                        });
                    }
                    if self.options.pull == PullPolicy::Never {
                        return Err(Error::NotInStore {
                            reference: reference.clone(),
                            store: store.root().to_path_buf(),
                        });
                    }
                }
                let (layout, tag, summary) = store::pull(
                    &store,
                    reference,
                    &keys,
                    &self.options.references.allow,
                    &self.options.registry,
                )?;
                self.pulled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(tag.clone(), reference.clone());
                Ok(Resolved {
                    name: reference.clone(),
                    layout,
                    tag,
                    pulled: Some(Pulled {
                        digest: summary.digest.clone(),
                        blobs_transferred: summary.blobs_transferred,
                        blobs_skipped: summary.blobs_skipped,
                        bytes_transferred: summary.bytes_transferred,
                    }),
                })
            }
            #[cfg(not(feature = "registry"))]
            Source::Registry(reference) => Err(Error::RegistryUnsupported {
                reference: reference.clone(),
            }),
        }
    }

    /// Verifies the signature over the index digest (unless skipped), for the repository
    /// the bundle was pulled from ([`References`]), and reads the index.
    pub fn verify(&self, resolved: &Resolved) -> Result<VerifiedBundle> {
        let pulled_from = resolved.pulled.as_ref().map(|_| resolved.name.as_str());
        verify::verify(
            &resolved.layout,
            &resolved.tag,
            &resolved.name,
            &self.options.trust,
            self.options.references.policy(pulled_from).as_ref(),
        )
    }

    /// The native manifests that fit this host, in the order to try them.
    pub fn select(&self, bundle: VerifiedBundle) -> Result<Selection> {
        select::select(
            bundle,
            &select::HostFacts {
                policy: &self.options.engine,
            },
        )
    }

    /// Resolves, verifies, selects and loads.
    pub fn open(&self, source: &Source) -> Result<Loaded> {
        let resolved = self.resolve(source)?;
        let bundle = self.verify(&resolved)?;
        let selection = self.select(bundle)?;
        self.load(selection)
    }

    /// Reads the blob `descriptor` points to and checks it against its size and digest:
    /// the file is opened once ([`Layout::open_blob`]; in a layout opened with
    /// [`Layout::open_trusted`], without following links and only when nobody but its
    /// owner or root can write it or a directory on the way), and the bytes returned are
    /// those read from that open file and hashed. A blob this host has already checked is
    /// not hashed again while its open file is unchanged (same device, inode, size,
    /// modification and status-change times): a long-running host pays for hashing a
    /// large artifact once, not at every load.
    pub fn verify_blob(&self, layout: &Layout, descriptor: &Descriptor) -> Result<VerifiedBlob> {
        let digest = descriptor.digest().to_string();
        let blob = layout.open_blob(descriptor)?;
        let path = blob.path.clone();
        let before = stamp(&blob.file, &digest);
        let known = {
            let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            before.is_some() && verified.get(&path) == before.as_ref()
        } || before.as_ref().is_some_and(|b| {
            self.with_store_record(layout, |r| r.knows(&digest, &b.identity()))
                .unwrap_or(false)
        });
        if known && let Some(stamp) = before.clone() {
            return Ok(VerifiedBlob {
                path,
                content: Content::Recorded {
                    file: blob.file,
                    stamp,
                },
            });
        }
        let file = blob.file.try_clone().map_err(|source| {
            Error::Layout(pack_packager::Error::Read {
                path: path.clone(),
                source,
            })
        })?;
        let bytes = blob.read_all()?;
        pack_packager::layout::check_digest(&path, descriptor.digest(), &bytes)?;
        // Remembered only when the file did not change while it was read.
        if let Some(before) = before
            && stamp(&file, &digest).as_ref() == Some(&before)
        {
            // In the content store, remembered across processes too.
            if before.settled() {
                self.with_store_record(layout, |r| r.remember(&digest, before.identity()));
            }
            let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            verified.insert(path.clone(), before);
        }
        Ok(VerifiedBlob {
            path,
            content: Content::Read(bytes),
        })
    }

    /// [`Host::verify_blob`] for a layer that may be zstd-compressed (`content` is then
    /// what its signed config records it decompresses to). The decompressed bytes are
    /// what is returned: read from the decompressed blob when the layout has it (checked
    /// like any blob), else decompressed from the verified layer, at most `content.size`
    /// bytes, and checked against `content.digest`. In the content store the result is
    /// kept as a read-only blob under that digest, so later starts read a plain file.
    pub fn verify_layer(
        &self,
        layout: &Layout,
        layer: &Descriptor,
        content: Option<&Uncompressed>,
    ) -> Result<VerifiedBlob> {
        let Some(content) = content else {
            return self.verify_blob(layout, layer);
        };
        let digest = pack_packager::layout::parse_sha256(&content.digest)?;
        let plain = Descriptor::new(
            pack_packager::oci_spec::image::MediaType::Other(
                pack_packager::compression::plain_media_type(layer.media_type().as_ref())
                    .to_string(),
            ),
            content.size,
            digest.clone(),
        );
        if layout.has_blob(&digest) {
            return self.verify_blob(layout, &plain);
        }
        let compressed = self.verify_blob(layout, layer)?;
        let bytes = pack_packager::compression::decompress_to_vec(
            &compressed.bytes()?[..],
            content,
            &compressed.path,
        )?;
        drop(compressed);
        let path = if self.is_store(layout) {
            let blob = layout.put_blob(&bytes[..], Some(&digest))?;
            layout.blob_path(&blob.digest)?
        } else {
            layout.blob_path(layer.digest())?
        };
        Ok(VerifiedBlob {
            path,
            content: Content::Read(bytes),
        })
    }

    /// Whether `layout` is this host's content store.
    fn is_store(&self, layout: &Layout) -> bool {
        self.content_store().is_ok_and(|store| {
            let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
            canonical(store.root()).is_some() && canonical(store.root()) == canonical(layout.root())
        })
    }

    /// The engine for `settings` (and, with a compiler, `target`), made once.
    fn engine(
        &self,
        settings: &EngineSettings,
        target: Option<(&str, &[String])>,
    ) -> Result<Engine> {
        let key: EngineKey = (
            settings.clone(),
            target.map(|(t, f)| (t.to_string(), f.to_vec())),
        );
        let mut engines = self.engines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = engines.get(&key) {
            return Ok(engine.clone());
        }
        let what = match target {
            Some((triple, _)) => format!("{triple} with the artifact's settings"),
            None => "this machine".to_string(),
        };
        let build = |pooling: Option<&Pooling>| {
            engine::config(settings, pooling, target).and_then(|c| Engine::new(&c))
        };
        // The pool reserves its address space up front; where there is not that much of
        // it (39-bit address spaces), instances are allocated on demand instead.
        let engine = build(self.options.pooling.as_ref())
            .or_else(|e| match self.options.pooling {
                Some(_) => build(None).map_err(|_| e),
                None => Err(e),
            })
            .map_err(|e| Error::Engine {
                what,
                source: boxed(e),
            })?;
        engines.insert(key, engine.clone());
        Ok(engine)
    }

    /// The engine a candidate loads into. With a compiler, it is configured for the
    /// artifact's target and CPU flags, so its compatibility hash can be compared with the
    /// recorded one; without one, for this machine.
    fn candidate_engine(
        &self,
        candidate: &Candidate,
    ) -> Result<std::result::Result<Engine, Reason>> {
        let config = &candidate.config;
        if cfg!(feature = "jit") || candidate.pulley {
            let target = (config.target_triple.as_str(), config.cpu_flags.as_slice());
            let engine = match self.engine(&candidate.settings, Some(target)) {
                Ok(e) => e,
                Err(Error::Engine { source, .. }) => {
                    return Ok(Err(Reason::EngineRefused {
                        detail: source.to_string(),
                    }));
                }
                Err(e) => return Err(e),
            };
            #[cfg(feature = "jit")]
            {
                let ours = engine::compatibility_hash(&engine);
                if ours != config.compatibility_hash {
                    return Ok(Err(Reason::CompatibilityHash {
                        recorded: config.compatibility_hash.clone(),
                        host: ours,
                    }));
                }
            }
            return Ok(Ok(engine));
        }
        self.engine(&candidate.settings, None).map(Ok)
    }

    /// Why `candidate` may not be loaded for want of rebuild attestations: fewer than
    /// [`HostOptions::rebuilds`] of the [`HostOptions::rebuilt_by`] keys signed a rebuild
    /// attestation (a referrer of its native manifest) naming its `.cwasm` digest. `None`
    /// when enough did, or none are required. Checked before the artifact is fetched.
    fn missing_rebuilds(&self, layout: &Layout, candidate: &Candidate) -> Result<Option<Reason>> {
        let keys = &self.options.rebuilt_by;
        let required = self.options.rebuilds;
        if keys.is_empty() && required == 0 {
            return Ok(None);
        }
        let cwasm = match &candidate.cwasm_uncompressed {
            Some(u) => pack_packager::layout::parse_sha256(&u.digest)?,
            None => candidate.cwasm.digest().clone(),
        };
        let checks = pack_packager::provenance::verify_rebuilds(
            layout,
            candidate.manifest.digest(),
            &cwasm,
            keys,
        )?;
        let attested = pack_packager::provenance::attesters(&checks);
        if attested.len() >= required {
            return Ok(None);
        }
        let missing = keys
            .iter()
            .map(|k| k.fingerprint())
            .filter(|f| !attested.contains(f))
            .map(|f| f.short().to_string())
            .collect();
        let rejected = checks
            .iter()
            .filter_map(pack_packager::provenance::AttestationCheck::rejection)
            .collect();
        Ok(Some(Reason::NotRebuilt {
            cwasm: cwasm.to_string(),
            required,
            attested: attested.iter().map(|f| f.short().to_string()).collect(),
            missing,
            rejected,
        }))
    }

    /// Loads the first candidate that fits: (with a compiler) its engine's compatibility
    /// hash must be the recorded one; its `.cwasm` must match its digest (a mismatch
    /// stops everything: the layout was tampered with); then wasmtime checks the
    /// artifact's engine metadata and maps it. When nothing fits, the portable component
    /// is compiled if JIT is allowed; otherwise the error lists every manifest and why it
    /// was passed over.
    pub fn load(&self, selection: Selection) -> Result<Loaded> {
        let Selection {
            bundle,
            candidates,
            mut passed_over,
            portable,
            portable_uncompressed,
        } = selection;
        let layout = &bundle.layout;
        let mut fetched = Vec::new();
        for candidate in candidates {
            let pass = |reason: Reason| PassedOver {
                platform: candidate.platform.clone(),
                digest: candidate.manifest.digest().to_string(),
                reason,
            };
            if let Some(reason) = self.missing_rebuilds(layout, &candidate)? {
                passed_over.push(pass(reason));
                continue;
            }
            let engine = match self.candidate_engine(&candidate)? {
                Ok(engine) => engine,
                Err(reason) => {
                    passed_over.push(pass(reason));
                    continue;
                }
            };
            self.fetch_missing(
                &bundle,
                &candidate.cwasm,
                candidate.cwasm_uncompressed.as_ref(),
                candidate.pulley,
                &mut fetched,
            )?;
            let blob = self.verify_layer(
                layout,
                &candidate.cwasm,
                candidate.cwasm_uncompressed.as_ref(),
            )?;
            // SAFETY: the blob is the one open file that was checked (a regular file that
            // only its owner or root can write), and its bytes hash to the digest in a
            // manifest the verified index lists: read and hashed now (wasmtime copies
            // them, so nothing can change them after the check), or, in the content
            // store, hashed when it entered and unchanged since (same device, inode,
            // size and times, compared again once mapped; docs/host.md). wasmtime checks
            // the engine metadata before using anything else.
            let mut loaded = unsafe { blob.deserialize(&engine)? }.map(|c| (engine, c));
            // An engine configured for the artifact's exact triple loads only on a host
            // with that triple; one for this machine checks just the architecture and
            // OS (a linux-gnu artifact on a musl host).
            if loaded.is_err() && cfg!(feature = "jit") && !candidate.pulley {
                let host_engine = self.engine(&candidate.settings, None)?;
                // SAFETY: as above.
                if let Ok(c) = unsafe { blob.deserialize(&host_engine)? } {
                    loaded = Ok((host_engine, c));
                }
            }
            match loaded {
                Ok((engine, component)) => {
                    return Ok(Loaded {
                        name: bundle.name,
                        digest: bundle.digest.to_string(),
                        verification: bundle.verification,
                        artifact: Artifact::Precompiled {
                            platform: candidate.platform.clone(),
                            manifest: candidate.manifest.clone(),
                            cwasm: candidate.cwasm.clone(),
                            path: blob.path.clone(),
                            pulley: candidate.pulley,
                        },
                        passed_over,
                        settings: candidate.settings,
                        fetched,
                        engine,
                        component,
                    });
                }
                Err(e) => passed_over.push(pass(Reason::EngineRefused {
                    detail: format!("{e:#}"),
                })),
            }
        }
        if !self.options.allow_jit {
            return Err(Error::NoArtifact {
                bundle: bundle.name,
                passed_over,
                jit_possible: portable.is_some(),
            });
        }
        let Some(component_layer) = portable else {
            return Err(Error::NoArtifact {
                bundle: bundle.name,
                passed_over,
                jit_possible: false,
            });
        };
        self.fetch_missing(
            &bundle,
            &component_layer,
            portable_uncompressed.as_ref(),
            true,
            &mut fetched,
        )?;
        self.jit(
            bundle,
            passed_over,
            component_layer,
            portable_uncompressed.as_ref(),
            fetched,
        )
    }

    #[cfg(feature = "jit")]
    fn jit(
        &self,
        bundle: VerifiedBundle,
        passed_over: Vec<PassedOver>,
        layer: Descriptor,
        content: Option<&Uncompressed>,
        fetched: Vec<FetchedLayer>,
    ) -> Result<Loaded> {
        // Compiled from the bytes that were hashed, read through the one open file.
        let blob = self.verify_layer(&bundle.layout, &layer, content)?;
        let (path, bytes) = (blob.path.clone(), blob.bytes()?);
        let settings = match &self.options.engine {
            EnginePolicy::Fixed(s) => s.clone(),
            EnginePolicy::Adopt => EngineSettings::default(),
        };
        let engine = self.engine(&settings, None)?;
        let component = Component::new(&engine, &bytes).map_err(|e| Error::Load {
            what: "the portable component".to_string(),
            path: path.clone(),
            source: boxed(e),
        })?;
        let reason = if passed_over.is_empty() {
            "the bundle has no native artifact".to_string()
        } else {
            let list: Vec<String> = passed_over.iter().map(|p| p.to_string()).collect();
            format!(
                "no precompiled artifact fits this host ({})",
                list.join("; ")
            )
        };
        Ok(Loaded {
            name: bundle.name,
            digest: bundle.digest.to_string(),
            verification: bundle.verification,
            artifact: Artifact::Jit {
                reason,
                component: layer,
            },
            passed_over,
            settings,
            fetched,
            engine,
            component,
        })
    }

    #[cfg(not(feature = "jit"))]
    fn jit(
        &self,
        bundle: VerifiedBundle,
        passed_over: Vec<PassedOver>,
        _layer: Descriptor,
        _content: Option<&Uncompressed>,
        _fetched: Vec<FetchedLayer>,
    ) -> Result<Loaded> {
        Err(Error::JitUnavailable {
            bundle: bundle.name,
            passed_over,
        })
    }
}
