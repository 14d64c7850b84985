//! Serving a component that exports `wasi:http/incoming-handler`: one instance per
//! request from a pre-instantiated component, like `wasmtime serve` does for WASIp2
//! handlers. The component gets the CLI imports too (`wasmtime serve -Scli`), since
//! handlers built by language toolchains import them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::server::conn::http1;
use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::engine::EngineSettings;
use crate::error::boxed;
use crate::wasi::{HostState, WasiOptions, new_store};
use crate::{Error, Result};

/// One handled request, for logging.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// Sequence number, from 0.
    pub id: u64,
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The response status, or `None` when the handler failed (a 500 was sent).
    pub status: Option<u16>,
    /// From the request's arrival to the response head.
    pub duration: Duration,
    /// Why the handler failed.
    pub error: Option<String>,
}

impl std::fmt::Display for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self
            .status
            .map_or_else(|| "500".to_string(), |s| s.to_string());
        write!(
            f,
            "{} {} -> {status} in {:.2} ms",
            self.method,
            self.uri,
            self.duration.as_secs_f64() * 1000.0
        )?;
        if let Some(e) = &self.error {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// Called once per request.
pub type RequestLogger = Arc<dyn Fn(&RequestLog) + Send + Sync>;

/// An HTTP handler component, linked and pre-instantiated.
#[derive(Clone)]
pub struct HttpPre {
    pre: ProxyPre<HostState>,
    settings: EngineSettings,
    wasi: WasiOptions,
}

impl HttpPre {
    pub(crate) fn new(
        engine: &Engine,
        component: &wasmtime::component::Component,
        settings: &EngineSettings,
        wasi: WasiOptions,
        bundle: &str,
    ) -> Result<Self> {
        let instantiate = |e: wasmtime::Error| Error::Instantiate {
            bundle: bundle.to_string(),
            source: boxed(e),
        };
        wasi.check()?;
        let mut linker: Linker<HostState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(instantiate)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(instantiate)?;
        let pre = linker.instantiate_pre(component).map_err(instantiate)?;
        let pre = ProxyPre::new(pre).map_err(instantiate)?;
        Ok(Self {
            pre,
            settings: settings.clone(),
            wasi,
        })
    }

    /// Handles one request in a new instance.
    pub async fn handle<B>(
        &self,
        req: hyper::Request<B>,
    ) -> Result<hyper::Response<HyperOutgoingBody>, BoxError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let ctx = self.wasi.build().map_err(|e| Box::new(e) as BoxError)?;
        let mut store = new_store(self.pre.engine(), &self.settings, ctx)
            .map_err(|e| Box::new(e) as BoxError)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(boxed)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(boxed)?;
        let pre = self.pre.clone();
        // The handler may keep running (streaming the body) after the response head.
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(format!("the handler answered with an error: {code:?}").into()),
            Err(_) => {
                let why = match task.await {
                    Ok(Ok(())) => "the handler returned without setting a response".to_string(),
                    Ok(Err(e)) => format!("{e:?}"),
                    Err(e) => e.to_string(),
                };
                Err(why.into())
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Called with each handled request.
    pub on_request: Option<RequestLogger>,
    /// Called once the socket listens, with its address (port 0 picks one).
    pub on_listening: Option<Arc<dyn Fn(SocketAddr) + Send + Sync>>,
}

const ERROR_BODY: &str = "500 Internal Server Error\n";

/// A listening socket on `addr`, as servers open one: `SO_REUSEADDR` (but on Windows,
/// where it means something else), so that a restarted server binds at once; a backlog
/// of 1024.
pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }?;
    socket.set_reuseaddr(!cfg!(windows))?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves `pre` on `options.addr` until `shutdown` completes.
pub async fn serve(
    pre: HttpPre,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let addr = options.addr;
    let serve_error = |source| Error::Serve {
        addr: addr.to_string(),
        source,
    };
    let listener = listen(addr).map_err(serve_error)?;
    let local = listener.local_addr().map_err(serve_error)?;
    if let Some(on_listening) = &options.on_listening {
        on_listening(local);
    }
    let pre = Arc::new(pre);
    let next_id = Arc::new(AtomicU64::new(0));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A connection that failed before it was accepted.
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let pre = pre.clone();
        let next_id = next_id.clone();
        let logger = options.on_request.clone();
        tokio::task::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let pre = pre.clone();
                    let logger = logger.clone();
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let started = Instant::now();
                        let method = req.method().to_string();
                        let uri = req
                            .uri()
                            .path_and_query()
                            .map_or_else(|| req.uri().to_string(), |p| p.to_string());
                        let result = pre.handle(req).await;
                        let (response, status, error) = match result {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                (response, Some(status), None)
                            }
                            Err(e) => {
                                let body =
                                    http_body_util::Full::new(bytes::Bytes::from(ERROR_BODY))
                                        .map_err(|never| match never {})
                                        .boxed_unsync();
                                let response = hyper::Response::builder()
                                    .status(500)
                                    .header("content-type", "text/plain; charset=utf-8")
                                    .body(body)
                                    .expect("a valid response");
                                (response, None, Some(e.to_string()))
                            }
                        };
                        if let Some(logger) = &logger {
                            logger(&RequestLog {
                                id,
                                method,
                                uri,
                                status,
                                duration: started.elapsed(),
                                error,
                            });
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    Ok(())
}

/// Serves on a new multi-threaded runtime until Ctrl-C (or SIGTERM).
pub fn serve_until_interrupted(pre: HttpPre, options: ServeOptions) -> Result<()> {
    let addr = options.addr;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Serve {
            addr: addr.to_string(),
            source,
        })?;
    runtime.block_on(serve(pre, options, interrupted()))
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
