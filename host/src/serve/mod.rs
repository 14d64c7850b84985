//! Serving many HTTP handler bundles from one process, the way a serverless platform
//! does: routes ([`route`]) from a configuration ([`config`]), each app resolved,
//! verified, selected, loaded and linked on its first request (its cold start, through
//! the same [`Host`] steps `pack run` takes), one instance per request from the pooling
//! allocator, per-request wall-clock timeouts (epoch interruption, answered 504),
//! per-instance memory caps, per-app concurrency caps (answered 503), least recently
//! used apps unloaded beyond `max_loaded`, registry tags re-resolved every `poll` with
//! new releases verified and swapped in atomically, and [`event::Event`]s and
//! Prometheus [`metrics`] for the operator.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pack_host::serve::{Server, ServerOptions, config::ServeConfig, event::Silent};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ServeConfig::load("serve.toml".as_ref())?;
//! let server = Server::new(config, ServerOptions::default(), Arc::new(Silent))?;
//! server.run_until_signalled()?; // SIGTERM drains, SIGHUP re-reads serve.toml
//! # Ok(()) }
//! ```

pub mod config;
pub mod event;
pub mod metrics;
pub mod route;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::server::conn::http1;
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::engine::EngineSettings;
use crate::wasi::HostState;
use crate::{Artifact, Error, Host, HostOptions, Kind, Resolved, Source, Trust};
use config::{AppConfig, ConfigError, ServeConfig};
use event::{Event, Reporter};
use metrics::{Gauges, Metrics};

/// The request header that names the route a request matched (`/hello`,
/// `api.example.com/`). One sent by the client is replaced.
pub const ROUTE_HEADER: &str = "pack-matched-route";

/// How often engines' epochs advance: the granularity of request timeouts.
const TICK: Duration = Duration::from_millis(5);
/// Fuel between yields to the executor, for artifacts bounded by fuel only.
const FUEL_YIELD: u64 = 100_000;
/// A failed load is not tried again for this long (requests meanwhile get 503).
const RETRY_LOAD_AFTER: Duration = Duration::from_secs(1);

/// Why a server cannot start or reload.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A trusted key cannot be read.
    #[error("cannot read the trusted keys")]
    Keys(#[source] pack_packager::Error),
    /// No trusted key was given.
    #[error("no trusted key: give `keys` in the configuration or --key")]
    NoKeys,
    /// No app was given.
    #[error("nothing to serve: give `[[app]]` tables in the configuration or --app ROUTE=BUNDLE")]
    NoApps,
    /// SIGHUP, without a file to read.
    #[error("the configuration did not come from a file, so it cannot be read again")]
    NoFile,
    /// A socket cannot be bound.
    #[error("cannot serve HTTP on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// How the server loads and bounds apps, besides the configuration.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How bundles are resolved, verified and loaded. Its trusted keys are used besides
    /// the configuration's `keys`.
    pub host: HostOptions,
    /// Apps loaded at once; beyond it the least recently used is unloaded.
    pub max_loaded: Option<usize>,
    /// Load artifacts compiled without epoch interruption or fuel (a request to one of
    /// them cannot be stopped at its timeout, only abandoned).
    pub allow_unbounded: bool,
    /// Serve Prometheus text on this address (`/metrics`).
    pub metrics: Option<SocketAddr>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            host: HostOptions::new(Trust::Keys(Vec::new())),
            max_loaded: None,
            allow_unbounded: false,
            metrics: None,
        }
    }
}

/// A store's data for one request: what `pack run` gives a component, and the app's
/// memory limit.
struct State {
    host: HostState,
    limits: StoreLimits,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.host.ctx()
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.host.http()
    }
}

/// How a request to a release is stopped at its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// Epoch interruption: the instance traps at the deadline.
    Epoch,
    /// Fuel only: the instance yields regularly and is abandoned at the deadline.
    Fuel,
    /// Neither (`--allow-unbounded`): abandoned at the deadline, if it ever yields.
    Unbounded,
}

impl Bound {
    fn name(self) -> &'static str {
        match self {
            Bound::Epoch => "epoch",
            Bound::Fuel => "fuel",
            Bound::Unbounded => "none",
        }
    }
}

/// One loaded release of an app: verified, loaded and linked.
struct Release {
    digest: String,
    pre: ProxyPre<State>,
    settings: EngineSettings,
    bound: Bound,
}

/// A bundle the server would not load, and why.
struct Refused {
    /// `unverified`, `unbounded`, `not_http`, `load`.
    kind: &'static str,
    reason: String,
}

fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Unverified { .. } | Error::NoTrustedKeys { .. } => "unverified",
            _ => "load",
        };
        Refused {
            kind,
            reason: describe(&e),
        }
    }
}

/// An app of the configuration and its state.
struct App {
    config: AppConfig,
    name: String,
    current: RwLock<Option<Arc<Release>>>,
    /// Held while loading; the last failure, to answer quickly while it stands.
    loading: tokio::sync::Mutex<Option<(Instant, String)>>,
    permits: Arc<Semaphore>,
    last_used: AtomicU64,
    /// The last refusal of a new release reported (not repeated at every poll).
    last_refusal: Mutex<Option<String>>,
}

impl App {
    fn new(config: AppConfig) -> Self {
        Self {
            name: config.route.to_string(),
            permits: Arc::new(Semaphore::new(config.max_concurrency as usize)),
            config,
            current: RwLock::new(None),
            loading: tokio::sync::Mutex::new(None),
            last_used: AtomicU64::new(0),
            last_refusal: Mutex::new(None),
        }
    }

    fn current(&self) -> Option<Arc<Release>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_current(&self, release: Option<Arc<Release>>) -> Option<Arc<Release>> {
        std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            release,
        )
    }

    fn in_use(&self) -> usize {
        self.config.max_concurrency as usize - self.permits.available_permits()
    }
}

struct Shared {
    options: ServerOptions,
    config: Mutex<ServeConfig>,
    host: RwLock<Arc<Host>>,
    apps: RwLock<Arc<Vec<Arc<App>>>>,
    reporter: Arc<dyn Reporter>,
    metrics: Metrics,
    /// Every engine apps are loaded into, with its linker (made once per engine).
    engines: Mutex<Vec<(Engine, Arc<Linker<State>>)>>,
    clock: AtomicU64,
    ids: AtomicU64,
    connections: AtomicUsize,
}

/// The trust of `options` with `keys` (files) added.
fn host_for(options: &HostOptions, keys: &[PathBuf]) -> Result<Host, ServeError> {
    let mut options = options.clone();
    let extra = pack_packager::signing::load_public_keys(keys).map_err(ServeError::Keys)?;
    match &mut options.trust {
        Trust::Keys(list) => {
            list.extend(extra);
            if list.is_empty() {
                return Err(ServeError::NoKeys);
            }
        }
        Trust::InsecureSkipVerify => {}
    }
    Ok(Host::new(options))
}

/// A server: its configuration, apps and counters. [`Server::run`] serves.
pub struct Server {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `config`; nothing is loaded until its first request.
    pub fn new(
        config: ServeConfig,
        options: ServerOptions,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Self, ServeError> {
        if config.apps.is_empty() {
            return Err(ServeError::NoApps);
        }
        let host = host_for(&options.host, &config.keys)?;
        let apps = config
            .apps
            .iter()
            .map(|a| Arc::new(App::new(a.clone())))
            .collect();
        Ok(Server {
            shared: Arc::new(Shared {
                options,
                config: Mutex::new(config),
                host: RwLock::new(Arc::new(host)),
                apps: RwLock::new(Arc::new(apps)),
                reporter,
                metrics: Metrics::default(),
                engines: Mutex::new(Vec::new()),
                clock: AtomicU64::new(0),
                ids: AtomicU64::new(0),
                connections: AtomicUsize::new(0),
            }),
        })
    }

    /// The Prometheus text exposition of the server's metrics.
    pub fn metrics(&self) -> String {
        self.shared.render_metrics()
    }

    /// Reads the configuration file again: apps whose settings did not change keep
    /// their loaded release; changed and new ones load on their next request; removed
    /// ones are dropped once their requests in flight finish. The listening address
    /// stays. Returns the number of apps.
    pub fn reload(&self) -> Result<usize, ServeError> {
        let shared = &self.shared;
        let path = shared
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .path
            .clone()
            .ok_or(ServeError::NoFile)?;
        let new = ServeConfig::load(&path)?;
        if new.apps.is_empty() {
            return Err(ServeError::NoApps);
        }
        let mut config = shared.config.lock().unwrap_or_else(|e| e.into_inner());
        if new.keys != config.keys {
            let host = host_for(&shared.options.host, &new.keys)?;
            *shared.host.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(host);
        }
        let old = shared.apps();
        let apps: Vec<Arc<App>> = new
            .apps
            .iter()
            .map(|a| {
                old.iter()
                    .find(|o| o.config == *a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(App::new(a.clone())))
            })
            .collect();
        let count = apps.len();
        *shared.apps.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(apps);
        *config = new;
        Ok(count)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish, and returns. `reload` completing (repeatedly: it is called again after
    /// each reload) re-reads the configuration.
    pub async fn run<S, R, RF>(&self, shutdown: S, mut reload: R) -> Result<(), ServeError>
    where
        S: Future<Output = ()>,
        R: FnMut() -> RF,
        RF: Future<Output = ()>,
    {
        let shared = self.shared.clone();
        let addr = shared
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .listen;
        let (listener, local) = bind(addr)?;
        shared.reporter.event(&Event::Listening {
            address: local.to_string(),
            url: format!("http://{local}/"),
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(metrics_addr) = shared.options.metrics {
            let (metrics, local) = bind(metrics_addr)?;
            shared.reporter.event(&Event::Metrics {
                address: local.to_string(),
                url: format!("http://{local}/metrics"),
            });
            tokio::spawn(serve_metrics(shared.clone(), metrics, stop_rx.clone()));
        }
        // Epochs advance for every engine an app is loaded into.
        let ticking = Arc::new(AtomicBool::new(true));
        let ticker = {
            let shared = Arc::downgrade(&shared);
            let ticking = ticking.clone();
            std::thread::Builder::new()
                .name("pack-serve-epoch".into())
                .spawn(move || {
                    while ticking.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        let Some(shared) = shared.upgrade() else {
                            break;
                        };
                        for (engine, _) in shared
                            .engines
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .iter()
                        {
                            engine.increment_epoch();
                        }
                    }
                })
                .expect("a thread")
        };
        let poller = tokio::spawn(poll_releases(shared.clone(), stop_rx.clone()));

        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let reload_signal = reload();
            let (stream, _) = tokio::select! {
                _ = &mut shutdown => break,
                _ = reload_signal => {
                    match self.reload() {
                        Ok(apps) => shared.reporter.event(&Event::Reload { apps }),
                        Err(e) => shared.reporter.event(&Event::ReloadFailed { reason: describe(&e) }),
                    }
                    continue;
                }
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let mut stop = stop_rx.clone();
            let done = done_tx.clone();
            shared.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = {
                    let shared = shared.clone();
                    hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(shared, req).await) }
                    })
                };
                let conn = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = stopped(&mut stop) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
                shared.connections.fetch_sub(1, Ordering::SeqCst);
                drop(done);
            });
        }
        drop(listener);
        shared.reporter.event(&Event::Draining {
            in_flight: shared.connections.load(Ordering::SeqCst),
        });
        let _ = stop_tx.send(true);
        drop(done_tx);
        let _ = done_rx.recv().await;
        poller.abort();
        ticking.store(false, Ordering::Relaxed);
        let _ = ticker.join();
        shared.reporter.event(&Event::Stopped);
        Ok(())
    }

    /// Serves on a new multi-threaded runtime until SIGTERM or Ctrl-C (then drains);
    /// SIGHUP re-reads the configuration.
    pub fn run_until_signalled(&self) -> Result<(), ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|source| ServeError::Listen {
                addr: "(runtime)".into(),
                source,
            })?;
        let served = runtime.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let hangup = signal(SignalKind::hangup())
                    .ok()
                    .map(|s| Arc::new(tokio::sync::Mutex::new(s)));
                let reload = move || {
                    let hangup = hangup.clone();
                    async move {
                        match hangup {
                            Some(h) => {
                                h.lock().await.recv().await;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    }
                };
                self.run(crate::http::interrupted(), reload).await
            }
            #[cfg(not(unix))]
            {
                self.run(crate::http::interrupted(), std::future::pending::<()>)
                    .await
            }
        });
        // Every request has been answered, but an instance of an unbounded artifact
        // (`allow_unbounded`) that ran past its timeout may still hold a worker thread,
        // for ever: do not wait for the workers (dropping the runtime would).
        runtime.shutdown_background();
        served
    }
}

/// Listens on `addr`; returns the listener and the address it got (the port the system
/// chose, for port 0).
fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), ServeError> {
    let error = |source| ServeError::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = crate::http::listen(addr).map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}

impl Shared {
    fn apps(&self) -> Arc<Vec<Arc<App>>> {
        self.apps.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn host(&self) -> Arc<Host> {
        self.host.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn render_metrics(&self) -> String {
        let apps = self.apps();
        let gauges = Gauges {
            loaded_apps: apps.iter().filter(|a| a.current().is_some()).count(),
            instances: apps.iter().map(|a| (a.name.clone(), a.in_use())).collect(),
        };
        self.metrics.render(&gauges)
    }

    /// The linker for `engine`, made once; the engine's epoch advances from then on.
    fn linker(&self, engine: &Engine) -> Result<Arc<Linker<State>>, Refused> {
        let mut engines = self.engines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, linker)) = engines.iter().find(|(e, _)| Engine::same(e, engine)) {
            return Ok(linker.clone());
        }
        let refused = |e: wasmtime::Error| Refused {
            kind: "load",
            reason: format!("cannot link with WASI: {e:#}"),
        };
        let mut linker: Linker<State> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(refused)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(refused)?;
        let linker = Arc::new(linker);
        engines.push((engine.clone(), linker.clone()));
        Ok(linker)
    }

    /// Verifies, selects, loads and links what `resolved` names (blocking).
    fn load(&self, host: &Host, resolved: &Resolved) -> Result<(Release, Option<String>), Refused> {
        let bundle = host.verify(resolved)?;
        let selection = host.select(bundle)?;
        let loaded = host.load(selection)?;
        if !matches!(loaded.kind(), Kind::HttpHandler | Kind::Both) {
            return Err(Refused {
                kind: "not_http",
                reason: format!(
                    "`{}` does not export `wasi:http/incoming-handler`",
                    resolved.name
                ),
            });
        }
        let settings = loaded.settings.clone();
        let bound = if settings.epoch_interruption {
            Bound::Epoch
        } else if settings.consume_fuel {
            Bound::Fuel
        } else if self.options.allow_unbounded {
            Bound::Unbounded
        } else {
            return Err(Refused {
                kind: "unbounded",
                reason: format!(
                    "`{}` was compiled without epoch interruption or fuel, so a request could \
                     not be stopped at its timeout; rebuild it with `epoch_interruption = true` \
                     in its engine profile (`pack build` does so for HTTP handlers), or serve it \
                     anyway with --allow-unbounded",
                    resolved.name
                ),
            });
        };
        let linker = self.linker(loaded.engine())?;
        let link = |e: wasmtime::Error| Refused {
            kind: "load",
            reason: format!("cannot link `{}`: {e:#}", resolved.name),
        };
        let pre = linker.instantiate_pre(loaded.component()).map_err(link)?;
        let pre = ProxyPre::new(pre).map_err(link)?;
        let platform = match &loaded.artifact {
            Artifact::Precompiled { platform, .. } => Some(platform.clone()),
            Artifact::Jit { .. } => None,
        };
        Ok((
            Release {
                digest: loaded.digest.clone(),
                pre,
                settings,
                bound,
            },
            platform,
        ))
    }

    /// The release serving `app`, loading it on the first request (the cold start).
    async fn release(self: &Arc<Self>, app: &Arc<App>) -> Result<Arc<Release>, String> {
        if let Some(r) = app.current() {
            return Ok(r);
        }
        let mut failure = app.loading.lock().await;
        if let Some(r) = app.current() {
            return Ok(r);
        }
        if let Some((at, why)) = &*failure
            && at.elapsed() < RETRY_LOAD_AFTER
        {
            return Err(why.clone());
        }
        let started = Instant::now();
        let host = self.host();
        let shared = self.clone();
        let bundle = app.config.bundle.clone();
        let result = tokio::task::spawn_blocking(move || {
            let resolved = host.resolve(&Source::parse(&bundle))?;
            shared.load(&host, &resolved)
        })
        .await
        .unwrap_or_else(|e| {
            Err(Refused {
                kind: "load",
                reason: e.to_string(),
            })
        });
        match result {
            Ok((release, platform)) => {
                let duration = started.elapsed();
                let release = Arc::new(release);
                app.set_current(Some(release.clone()));
                *failure = None;
                self.metrics.cold_start(&app.name, duration);
                self.reporter.event(&Event::Load {
                    app: app.name.clone(),
                    bundle: app.config.bundle.clone(),
                    digest: release.digest.clone(),
                    platform,
                    interruption: release.bound.name().to_string(),
                    duration_ms: ms(duration),
                });
                drop(failure);
                self.evict(app);
                Ok(release)
            }
            Err(refused) => {
                self.metrics.refusal(&app.name, refused.kind);
                self.reporter.event(&Event::Refusal {
                    app: app.name.clone(),
                    bundle: app.config.bundle.clone(),
                    reason: refused.reason.clone(),
                    serving: None,
                });
                *failure = Some((Instant::now(), refused.reason.clone()));
                Err(refused.reason)
            }
        }
    }

    /// Unloads the least recently used apps beyond `max_loaded` (never `keep`).
    fn evict(&self, keep: &Arc<App>) {
        let Some(max) = self.options.max_loaded else {
            return;
        };
        let apps = self.apps();
        loop {
            let loaded: Vec<&Arc<App>> = apps.iter().filter(|a| a.current().is_some()).collect();
            if loaded.len() <= max {
                return;
            }
            let Some(victim) = loaded
                .into_iter()
                .filter(|a| !Arc::ptr_eq(a, keep))
                .min_by_key(|a| a.last_used.load(Ordering::Relaxed))
            else {
                return;
            };
            if let Some(old) = victim.set_current(None) {
                self.reporter.event(&Event::Unload {
                    app: victim.name.clone(),
                    digest: old.digest.clone(),
                    reason: format!("least recently used of more than {max} loaded apps"),
                });
            }
        }
    }

    /// Re-resolves a loaded app's bundle; a new release is verified, loaded and swapped
    /// in (blocking).
    fn check_release(&self, app: &Arc<App>) {
        let Some(current) = app.current() else {
            return;
        };
        let started = Instant::now();
        let host = self.host();
        let result = host
            .resolve(&Source::parse(&app.config.bundle))
            .map_err(Refused::from)
            .and_then(|resolved| {
                // The digest the tag names now: a pull's, or (a layout) the verified one.
                let digest = match &resolved.pulled {
                    Some(p) => p.digest.clone(),
                    None => host.verify(&resolved)?.digest.to_string(),
                };
                if digest == current.digest {
                    return Ok(None);
                }
                self.load(&host, &resolved).map(Some)
            });
        match result {
            Ok(None) => {}
            Ok(Some((release, _))) if release.digest == current.digest => {}
            Ok(Some((release, _))) => {
                let to = release.digest.clone();
                let release = Arc::new(release);
                {
                    let mut slot = app.current.write().unwrap_or_else(|e| e.into_inner());
                    // Unloaded meanwhile: it loads afresh on its next request.
                    if slot.is_none() {
                        return;
                    }
                    *slot = Some(release);
                }
                *app.last_refusal.lock().unwrap_or_else(|e| e.into_inner()) = None;
                self.metrics.swap(&app.name);
                self.reporter.event(&Event::Swap {
                    app: app.name.clone(),
                    bundle: app.config.bundle.clone(),
                    from: current.digest.clone(),
                    to,
                    duration_ms: ms(started.elapsed()),
                });
            }
            Err(refused) => {
                let mut last = app.last_refusal.lock().unwrap_or_else(|e| e.into_inner());
                if last.as_deref() == Some(refused.reason.as_str()) {
                    return;
                }
                *last = Some(refused.reason.clone());
                self.metrics.refusal(&app.name, refused.kind);
                self.reporter.event(&Event::Refusal {
                    app: app.name.clone(),
                    bundle: app.config.bundle.clone(),
                    reason: refused.reason,
                    serving: Some(current.digest.clone()),
                });
            }
        }
    }
}

/// Every `poll`, re-resolves the bundles of loaded apps.
async fn poll_releases(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let poll = shared.config.lock().unwrap_or_else(|e| e.into_inner()).poll;
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stopped(&mut stop) => return,
        }
        for app in shared.apps().iter() {
            if app.current().is_none() {
                continue;
            }
            let shared = shared.clone();
            let app = app.clone();
            let _ = tokio::task::spawn_blocking(move || shared.check_release(&app)).await;
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn text_response(status: u16, text: String) -> hyper::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(bytes::Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body)
        .expect("a valid response")
}

/// Answers one request: routes it, loads the app if needed, and runs it in a new
/// instance within the app's limits.
async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<HyperOutgoingBody> {
    let started = Instant::now();
    let id = shared.ids.fetch_add(1, Ordering::Relaxed);
    let method = req.method().to_string();
    let uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().to_string(), |p| p.to_string());
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let apps = shared.apps();
    let app = route::best(
        apps.iter().map(|a| &a.config.route),
        host.as_deref(),
        req.uri().path(),
    )
    .map(|i| apps[i].clone());
    let (response, error) = match &app {
        None => (
            text_response(404, format!("404 Not Found: no route for {uri}\n")),
            None,
        ),
        Some(app) => serve_app(&shared, app, req, started).await,
    };
    let status = response.status().as_u16();
    let duration = started.elapsed();
    let name = app.as_ref().map(|a| a.name.clone());
    shared
        .metrics
        .request(name.as_deref().unwrap_or(""), status, duration);
    shared.reporter.event(&Event::Request {
        id,
        app: name,
        method,
        uri,
        status,
        duration_ms: ms(duration),
        error,
    });
    response
}

fn is_interrupt(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
}

async fn serve_app(
    shared: &Arc<Shared>,
    app: &Arc<App>,
    mut req: hyper::Request<hyper::body::Incoming>,
    started: Instant,
) -> (hyper::Response<HyperOutgoingBody>, Option<String>) {
    let Ok(permit) = app.permits.clone().try_acquire_owned() else {
        shared.metrics.refusal(&app.name, "concurrency");
        return (
            text_response(503, "503 Service Unavailable: too many requests\n".into()),
            Some(format!(
                "{} instances already running (max-concurrency)",
                app.config.max_concurrency
            )),
        );
    };
    app.last_used.store(
        shared.clock.fetch_add(1, Ordering::Relaxed) + 1,
        Ordering::Relaxed,
    );
    let release = match shared.release(app).await {
        Ok(r) => r,
        Err(why) => {
            return (
                text_response(
                    503,
                    "503 Service Unavailable: the app cannot be loaded\n".into(),
                ),
                Some(why),
            );
        }
    };
    let timeout = app.config.timeout;
    let deadline = started + timeout;
    let timed_out = || {
        (
            text_response(504, "504 Gateway Timeout\n".into()),
            Some(format!("timed out after {timeout:?}")),
        )
    };
    let failed = |why: String| {
        (
            text_response(500, "500 Internal Server Error\n".into()),
            Some(why),
        )
    };
    let headers = req.headers_mut();
    headers.remove(ROUTE_HEADER);
    if let Ok(value) = hyper::header::HeaderValue::from_str(&app.name) {
        headers.insert(ROUTE_HEADER, value);
    }
    let ctx = WasiCtxBuilder::new()
        .envs(&app.config.env.iter().collect::<Vec<_>>())
        .inherit_stdout()
        .inherit_stderr()
        .build();
    let mut limits = StoreLimitsBuilder::new();
    if let Some(max) = app.config.max_memory {
        limits = limits.memory_size(usize::try_from(max).unwrap_or(usize::MAX));
    }
    let mut store = Store::new(
        release.pre.engine(),
        State {
            host: HostState::new(ctx),
            limits: limits.build(),
        },
    );
    store.limiter(|s| &mut s.limits);
    if release.settings.consume_fuel {
        if let Err(e) = store.set_fuel(u64::MAX) {
            return failed(format!("{e:#}"));
        }
        if let Err(e) = store.fuel_async_yield_interval(Some(FUEL_YIELD)) {
            return failed(format!("{e:#}"));
        }
    }
    if release.settings.epoch_interruption {
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
    }
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let incoming = match store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
    {
        Ok(r) => r,
        Err(e) => return failed(format!("{e:#}")),
    };
    let out = match store.data_mut().http().new_response_outparam(sender) {
        Ok(o) => o,
        Err(e) => return failed(format!("{e:#}")),
    };
    let held = release.clone();
    // The instance lives (and holds its permit and its release) until the handler
    // returns, which may be after the response head (streaming the body).
    let mut task = tokio::task::spawn(async move {
        let _permit = permit;
        let release = held;
        let proxy = release.pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, out)
            .await
    });
    match tokio::time::timeout_at(deadline.into(), receiver).await {
        Ok(Ok(Ok(response))) => (response, None),
        Ok(Ok(Err(code))) => failed(format!("the handler answered with an error: {code:?}")),
        Ok(Err(_)) => match tokio::time::timeout_at(deadline.into(), &mut task).await {
            Ok(Ok(Ok(()))) => failed("the handler returned without setting a response".into()),
            Ok(Ok(Err(e))) if is_interrupt(&e) => timed_out(),
            Ok(Ok(Err(e)))
                if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some() =>
            {
                shared.metrics.refusal(&app.name, "capacity");
                (
                    text_response(503, "503 Service Unavailable: no free instance\n".into()),
                    Some(format!("{e:#}")),
                )
            }
            Ok(Ok(Err(e))) => failed(format!("{e:?}")),
            Ok(Err(e)) => failed(e.to_string()),
            Err(_) => {
                task.abort();
                timed_out()
            }
        },
        Err(_) => {
            task.abort();
            timed_out()
        }
    }
}

/// Serves `/metrics` until `stop`.
async fn serve_metrics(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let shared = shared.clone();
                    async move {
                        let response = if req.uri().path() == "/metrics" {
                            let body = http_body_util::Full::new(bytes::Bytes::from(
                                shared.render_metrics(),
                            ));
                            hyper::Response::builder()
                                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                                .body(body)
                        } else {
                            hyper::Response::builder()
                                .status(404)
                                .body(http_body_util::Full::new(bytes::Bytes::from(
                                    "404 Not Found: try /metrics\n",
                                )))
                        };
                        Ok::<_, std::convert::Infallible>(response.expect("a valid response"))
                    }
                });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Completes once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
