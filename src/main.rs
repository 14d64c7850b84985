//! `pack`: turn WebAssembly components into signed, precompiled, multi-architecture OCI
//! bundles.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod args;
mod build;
mod commands;
mod diagnostics;
mod exit;
mod format;
mod json;
mod keys;
mod manifest;
mod printer;
mod progress;
mod registry;
mod remote_cache;
mod render;

use printer::{ColorArg, Printer};

/// Turn WebAssembly components into signed, precompiled, multi-architecture OCI bundles.
#[derive(Parser, Debug)]
#[command(name = "pack", version, about, long_about = None, propagate_version = true)]
#[command(after_help = exit::EXIT_STATUS_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    #[command(flatten)]
    global: GlobalOptions,
}

/// Options every command takes.
#[derive(clap::Args, Debug, Clone)]
struct GlobalOptions {
    /// When to use color: auto (on a terminal, outside CI), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto, env = "PACK_COLOR")]
    color: ColorArg,

    /// Print only errors and the final result.
    #[arg(long, short, global = true)]
    quiet: bool,

    /// Print JSON for programs (docs/json.md): one document on stdout, or for `run` and
    /// `serve` one event per line on stderr; keys in camelCase; no progress bars or
    /// colors.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    Validate(commands::validate::ValidateCommand),
    Compile(commands::compile::CompileCommand),
    Build(commands::build::BuildCommand),
    Init(commands::init::InitCommand),
    Cache(commands::cache::CacheCommand),
    Inspect(commands::inspect::InspectCommand),
    Key(commands::key::KeyCommand),
    Sign(commands::sign::SignCommand),
    Verify(commands::verify::VerifyCommand),
    Push(commands::push::PushCommand),
    Pull(commands::pull::PullCommand),
    Login(commands::login::LoginCommand),
    Run(commands::run::RunCommand),
    Serve(commands::serve::ServeCommand),
}

fn main() -> ExitCode {
    // clap prints its own usage errors and exits with 2, as documented.
    let cli = Cli::parse();
    let printer = Printer::new(cli.global.color, cli.global.quiet, cli.global.json);
    let result = match cli.command {
        Command::Validate(cmd) => cmd.execute(&printer),
        Command::Compile(cmd) => cmd.execute(&printer),
        Command::Build(cmd) => cmd.execute(&printer),
        Command::Init(cmd) => cmd.execute(&printer),
        Command::Cache(cmd) => cmd.execute(&printer),
        Command::Inspect(cmd) => cmd.execute(&printer),
        Command::Key(cmd) => cmd.execute(&printer),
        Command::Sign(cmd) => cmd.execute(&printer),
        Command::Verify(cmd) => cmd.execute(&printer),
        Command::Push(cmd) => cmd.execute(&printer),
        Command::Pull(cmd) => cmd.execute(&printer),
        Command::Login(cmd) => cmd.execute(&printer),
        Command::Run(cmd) => cmd.execute(&printer),
        Command::Serve(cmd) => cmd.execute(&printer),
    };
    match result {
        Ok(status) => status.into(),
        Err(error) => diagnostics::report(&printer, &error),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        super::Cli::command().debug_assert();
    }

    /// Every variable a flag reads is in docs/environment.md: walks clap's arguments, so a
    /// new `env = "..."` fails here until it is documented.
    #[test]
    fn every_variable_a_flag_reads_is_documented() {
        fn walk(command: &clap::Command, found: &mut Vec<(String, String)>) {
            for arg in command.get_arguments() {
                if let Some(var) = arg.get_env() {
                    found.push((
                        var.to_string_lossy().into_owned(),
                        format!("{} {}", command.get_name(), arg.get_id()),
                    ));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, found);
            }
        }
        let mut found = Vec::new();
        walk(&super::Cli::command(), &mut found);
        assert!(found.len() >= 15, "{found:?}");
        let doc = include_str!("../docs/environment.md");
        for (var, arg) in found {
            assert!(
                doc.contains(&format!("| `{var}` |")),
                "{var} (read by `pack {arg}`) is missing from docs/environment.md"
            );
        }
    }
}
