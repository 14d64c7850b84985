//! Running a `wasi:cli/command` component: WASI options, a pre-instantiated command
//! ([`CommandPre`]) that makes each further instance cheap, and the outcome of `run`.

use std::path::PathBuf;

use wasmtime::component::{InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::EngineSettings;
use crate::error::boxed;
use crate::{Error, Result};

/// Where a component's stdout or stderr goes.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// The host process's own.
    #[default]
    Inherit,
    /// Discarded.
    Null,
    /// Kept in memory (read it with [`MemoryOutputPipe::contents`]).
    Memory(MemoryOutputPipe),
}

impl Output {
    /// Sends the guest's stdout or stderr here: `inherit` hands it the host's, `set` a
    /// pipe.
    fn connect(
        &self,
        builder: &mut WasiCtxBuilder,
        inherit: fn(&mut WasiCtxBuilder) -> &mut WasiCtxBuilder,
        set: impl FnOnce(&mut WasiCtxBuilder, MemoryOutputPipe),
    ) {
        match self {
            Output::Inherit => _ = inherit(builder),
            Output::Null => {}
            Output::Memory(pipe) => set(builder, pipe.clone()),
        }
    }
}

/// What a component sees of the world: arguments, environment, preopened directories,
/// stdio. Nothing else is given (no network, no inherited environment).
#[derive(Debug, Clone, Default)]
pub struct WasiOptions {
    /// `argv`, program name first.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Preopened directories: (host path, guest path), read-write.
    pub dirs: Vec<(PathBuf, String)>,
    /// Whether stdin is the host's (otherwise empty).
    pub inherit_stdin: bool,
    pub stdout: Output,
    pub stderr: Output,
}

impl WasiOptions {
    /// Options with stdio inherited and `args`.
    pub fn inherit(args: Vec<String>) -> Self {
        Self {
            args,
            inherit_stdin: true,
            ..Self::default()
        }
    }

    /// Checks what can fail when building a context (directories that do not open), so
    /// the error comes before anything runs.
    pub fn check(&self) -> Result<()> {
        self.build().map(|_| ())
    }

    pub(crate) fn build(&self) -> Result<WasiCtx> {
        let mut builder = WasiCtxBuilder::new();
        // pack's host thread does nothing else while the guest runs (as `wasmtime run`).
        builder.allow_blocking_current_thread(true);
        builder.args(&self.args);
        builder.envs(&self.env);
        if self.inherit_stdin {
            builder.inherit_stdin();
        }
        let stdout = |b: &mut WasiCtxBuilder, pipe| _ = b.stdout(pipe);
        let stderr = |b: &mut WasiCtxBuilder, pipe| _ = b.stderr(pipe);
        self.stdout
            .connect(&mut builder, WasiCtxBuilder::inherit_stdout, stdout);
        self.stderr
            .connect(&mut builder, WasiCtxBuilder::inherit_stderr, stderr);
        for (host, guest) in &self.dirs {
            builder
                .preopened_dir(host, guest, FsPerms::ReadWrite)
                .map_err(|e| Error::Wasi {
                    message: format!("cannot preopen `{}` as `{guest}`", host.display()),
                    source: Some(boxed(e)),
                })?;
        }
        Ok(builder.build())
    }
}

/// A store's data: WASI (with HTTP for handlers) and the resource table.
pub struct HostState {
    ctx: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
}

impl HostState {
    pub(crate) fn new(ctx: WasiCtx) -> Self {
        Self {
            ctx,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// A store for one instance, with fuel or an epoch deadline when the artifact was
/// compiled to need them (without either such code traps at once).
pub(crate) fn new_store(
    engine: &Engine,
    settings: &EngineSettings,
    ctx: WasiCtx,
) -> Result<Store<HostState>> {
    let mut store = Store::new(engine, HostState::new(ctx));
    if settings.consume_fuel {
        store.set_fuel(u64::MAX).map_err(|e| Error::Wasi {
            message: "cannot give the store fuel".to_string(),
            source: Some(boxed(e)),
        })?;
    }
    if settings.epoch_interruption {
        store.set_epoch_deadline(u64::MAX / 2);
    }
    Ok(store)
}

/// How `run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// `run` returned (`Ok` is 0, `Err` is 1) or the guest called `exit(code)`.
    Exit(i32),
    /// The guest trapped.
    Trap(Trap),
}

impl RunOutcome {
    /// The process exit code a CLI reports: the guest's, or 1 for a trap.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunOutcome::Exit(code) => *code,
            RunOutcome::Trap(_) => 1,
        }
    }
}

/// A trap, with the wasm backtrace when there is one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trap {
    /// What trapped (`wasm trap: out of bounds memory access`), with its causes.
    pub message: String,
    /// `error while executing at wasm backtrace:` and the frames.
    pub backtrace: Option<String>,
}

impl std::fmt::Display for Trap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(bt) = &self.backtrace {
            write!(f, "\n{bt}")?;
        }
        Ok(())
    }
}

/// Turns the error `run` failed with into its outcome: an exit, or a trap.
fn outcome_of(error: wasmtime::Error) -> RunOutcome {
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return RunOutcome::Exit(exit.0);
    }
    let backtrace = error
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.to_string());
    let mut causes: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.starts_with("error while executing at wasm backtrace") {
            continue;
        }
        causes.push(text);
    }
    let message = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => causes.join(": "),
    };
    RunOutcome::Trap(Trap { message, backtrace })
}

/// A command component, linked against WASI and pre-instantiated: each
/// [`CommandPre::run`] makes a new store and instance (microseconds with the pooling
/// allocator) and calls `wasi:cli/run`.
#[derive(Clone)]
pub struct CommandPre {
    pre: wasmtime_wasi::p2::bindings::sync::CommandPre<HostState>,
    settings: EngineSettings,
    bundle: String,
}

impl CommandPre {
    pub(crate) fn new(
        engine: &Engine,
        component: &wasmtime::component::Component,
        settings: &EngineSettings,
        bundle: &str,
    ) -> Result<Self> {
        let instantiate = |e: wasmtime::Error| Error::Instantiate {
            bundle: bundle.to_string(),
            source: boxed(e),
        };
        let mut linker: Linker<HostState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(instantiate)?;
        let pre: InstancePre<HostState> = linker.instantiate_pre(component).map_err(instantiate)?;
        let pre = wasmtime_wasi::p2::bindings::sync::CommandPre::new(pre).map_err(instantiate)?;
        Ok(Self {
            pre,
            settings: settings.clone(),
            bundle: bundle.to_string(),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    /// A new instance, ready to [`CommandInstance::run`]. A trap while instantiating
    /// (in a start function) is the component's doing: `run` reports it.
    pub fn instantiate(&self, wasi: &WasiOptions) -> Result<CommandInstance> {
        let ctx = wasi.build()?;
        let mut store = new_store(self.engine(), &self.settings, ctx)?;
        match self.pre.instantiate(&mut store) {
            Ok(command) => Ok(CommandInstance {
                inner: Ok((store, command)),
            }),
            Err(e) if e.downcast_ref::<wasmtime::Trap>().is_some() => Ok(CommandInstance {
                inner: Err(outcome_of(e)),
            }),
            Err(e) => Err(Error::Instantiate {
                bundle: self.bundle.clone(),
                source: boxed(e),
            }),
        }
    }

    /// Instantiates the command and runs it to the end.
    pub fn run(&self, wasi: &WasiOptions) -> Result<RunOutcome> {
        Ok(self.instantiate(wasi)?.run())
    }
}

/// One instance of a command.
pub struct CommandInstance {
    inner: std::result::Result<
        (Store<HostState>, wasmtime_wasi::p2::bindings::sync::Command),
        RunOutcome,
    >,
}

impl CommandInstance {
    /// Calls `wasi:cli/run`.
    pub fn run(self) -> RunOutcome {
        let (mut store, command) = match self.inner {
            Ok(live) => live,
            Err(outcome) => return outcome,
        };
        match command.wasi_cli_run().call_run(&mut store) {
            Ok(Ok(())) => RunOutcome::Exit(0),
            Ok(Err(())) => RunOutcome::Exit(1),
            Err(e) => outcome_of(e),
        }
    }
}
