//! `pack-host`: a runtime-only host. It runs signed, precompiled pack bundles and carries
//! no compiler (build it without the `jit` feature: `cargo build -p pack-host --release
//! --bin pack-host`).
//!
//! ```text
//! pack-host [--key <PUB>]... [--insecure-skip-verify] [--verbose] [--listen <ADDR>]
//!           [--rebuilt-by <PUB>]... [--rebuilds <N>]
//!           [--dir <HOST::GUEST>]... [--env <K=V>]... <LAYOUT>[:<TAG>] | <REFERENCE> [-- <ARGS>...]
//! ```
//!
//! `--rebuilt-by` (repeatable) loads a native artifact only when `--rebuilds` (default 1)
//! of those keys signed a rebuild attestation of its `.cwasm` (docs/provenance.md).
//!
//! `--verbose` names on stderr the artifact chosen (its platform and digest) and every
//! manifest passed over, before the component runs.
//!
//! Exit status: the component's; 1 when it traps; 2 when the bundle is refused or cannot
//! be loaded.

#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use pack_host::{Host, HostOptions, Kind, ServeOptions, Source, Trust, WasiOptions};
use pack_packager::signing::PublicKey;

const USAGE: &str = "usage: pack-host [--key <PUB>]... [--insecure-skip-verify] [--verbose] \
[--listen <ADDR>] [--rebuilt-by <PUB>]... [--rebuilds <N>] [--dir <HOST::GUEST>]... [--env <K=V>]... <LAYOUT>[:<TAG>] | <REFERENCE> [-- <ARGS>...]";

struct Args {
    keys: Vec<PathBuf>,
    rebuilt_by: Vec<PathBuf>,
    rebuilds: Option<usize>,
    insecure: bool,
    verbose: bool,
    listen: Option<String>,
    dirs: Vec<(PathBuf, String)>,
    env: Vec<(String, String)>,
    bundle: String,
    args: Vec<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        keys: Vec::new(),
        rebuilt_by: Vec::new(),
        rebuilds: None,
        insecure: false,
        verbose: false,
        listen: None,
        dirs: Vec::new(),
        env: Vec::new(),
        bundle: String::new(),
        args: Vec::new(),
    };
    let mut bundle = None;
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--key" => args.keys.push(value("--key")?.into()),
            "--insecure-skip-verify" => args.insecure = true,
            "--rebuilt-by" => args.rebuilt_by.push(value("--rebuilt-by")?.into()),
            "--rebuilds" => {
                let v = value("--rebuilds")?;
                args.rebuilds = Some(
                    v.parse()
                        .map_err(|_| format!("--rebuilds `{v}` is not a number"))?,
                );
            }
            "-v" | "--verbose" => args.verbose = true,
            "--listen" => args.listen = Some(value("--listen")?),
            "--dir" => {
                let v = value("--dir")?;
                let (host, guest) = v.split_once("::").unwrap_or((&v, &v));
                args.dirs.push((host.into(), guest.to_string()));
            }
            "--env" => {
                let v = value("--env")?;
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--env `{v}` is not K=V"))?;
                args.env.push((k.to_string(), val.to_string()));
            }
            "-h" | "--help" => return Err(String::new()),
            "--" => {
                args.args.extend(argv.by_ref());
            }
            s if s.starts_with('-') && bundle.is_none() => {
                return Err(format!("unknown option `{s}`"));
            }
            _ if bundle.is_none() => bundle = Some(arg),
            _ => args.args.push(arg),
        }
    }
    args.bundle = bundle.ok_or_else(|| "no bundle given".to_string())?;
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(cause) = source {
                text.push_str(&format!("\n  caused by: {cause}"));
                source = cause.source();
            }
            eprintln!("error: {text}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<u8, Box<dyn std::error::Error>> {
    let trust = if args.insecure {
        eprintln!(
            "warning: --insecure-skip-verify: running a bundle whose signature is NOT checked"
        );
        Trust::InsecureSkipVerify
    } else {
        let keys: Result<Vec<_>, _> = args.keys.iter().map(|k| PublicKey::load(k)).collect();
        Trust::Keys(keys?)
    };
    let mut options = HostOptions::new(trust);
    let rebuilders: Result<Vec<_>, _> =
        args.rebuilt_by.iter().map(|k| PublicKey::load(k)).collect();
    options.require_rebuilds(rebuilders?, args.rebuilds)?;
    let host = Host::new(options);
    let source = Source::parse(&args.bundle);
    let loaded = host.open(&source)?;
    if args.verbose {
        for p in &loaded.passed_over {
            eprintln!("pack-host: passed over {p}");
        }
        match &loaded.artifact {
            pack_host::Artifact::Precompiled {
                platform,
                cwasm,
                pulley,
                ..
            } => eprintln!(
                "pack-host: {} ({}): {platform} artifact {}{}",
                args.bundle,
                loaded.digest,
                cwasm.digest(),
                if *pulley { ", in the interpreter" } else { "" }
            ),
            pack_host::Artifact::Jit { reason, .. } => {
                eprintln!("pack-host: compiling the portable component: {reason}")
            }
        }
    }
    let mut argv = vec![source.name()];
    argv.extend(args.args);
    let wasi = WasiOptions {
        env: args.env,
        dirs: args.dirs,
        ..WasiOptions::inherit(argv)
    };
    let serve = args.listen.is_some() || loaded.kind() == Kind::HttpHandler;
    if serve {
        let addr = args.listen.as_deref().unwrap_or("127.0.0.1:8080").parse()?;
        let pre = loaded.http(WasiOptions {
            inherit_stdin: false,
            ..wasi
        })?;
        pack_host::http::serve_until_interrupted(
            pre,
            ServeOptions {
                addr,
                on_request: Some(Arc::new(|r| eprintln!("{r}"))),
                on_listening: Some(Arc::new(|a| eprintln!("serving http://{a}/"))),
            },
        )?;
        return Ok(0);
    }
    let outcome = loaded.command()?.run(&wasi)?;
    if let pack_host::RunOutcome::Trap(trap) = &outcome {
        eprintln!("error: {trap}");
    }
    Ok(outcome.exit_code() as u8)
}
