//! Exit statuses, shared by every command and documented in `docs/exit-codes.md`.

use std::process::ExitCode;

/// The "Exit status" section of `--help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  a clean negative answer (the component does not conform, a target failed to compile,
     a signature does not verify)
  2  usage error or bad input (missing file, not wasm, bad WIT, ...)
  3  a registry refused the credentials (push, pull, login)
  4  a registry cannot be reached (network, TLS, retries exhausted)
  5  the component's build command (`[component] build` in pack.toml) failed";

/// How a command ended when it did not fail with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0.
    Success,
    /// Exit 1: the command ran to the end and its answer is "no".
    Negative,
    /// `pack run`: the component's own exit status.
    Component(u8),
}

/// Exit 2: usage error, bad input, or an unexpected error.
pub const BAD_INPUT: u8 = 2;

/// Exit 3: a registry refused the credentials, or requires some.
pub const REGISTRY_AUTH: u8 = 3;

/// Exit 4: a registry cannot be reached (connection, TLS, timeouts, retries exhausted).
pub const NETWORK: u8 = 4;

/// Exit 5: the build command of `[component]` in pack.toml failed.
pub const BUILD_COMMAND: u8 = 5;

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        match status {
            Status::Success => ExitCode::SUCCESS,
            Status::Negative => ExitCode::from(1),
            Status::Component(code) => ExitCode::from(code),
        }
    }
}
