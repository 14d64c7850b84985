//! Exit statuses, shared by every command and documented in `docs/exit-codes.md`.

use std::process::ExitCode;

/// The "Examples" and "Exit status" sections of `pack --help`.
pub const EXIT_STATUS_HELP: &str = "\
Examples:
  pack init app.wasm && pack build          # a pack.toml, then a signed bundle from it
  pack build app.wasm -t all -o out/app --sign-key pack.key
  pack run out/app --key pack.pub
  pack --json verify out/app --key pack.pub

Exit status:
  0  success
  1  a clean negative answer (the component does not conform, a target failed to compile,
     a signature does not verify)
  2  usage error or bad input (missing file, not wasm, bad WIT, ...)
  3  a registry refused the credentials (push, pull, login)
  4  a registry cannot be reached (network, TLS, retries exhausted)
  5  the component's build command (`[component] build` in pack.toml) failed";

/// The statuses pack exits with; `pack run` also passes the component's own on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// The command did what was asked.
    Success = 0,
    /// The command ran to the end and its answer is "no".
    Negative = 1,
    /// Usage error, bad input, or an unexpected error.
    BadInput = 2,
    /// A registry refused the credentials, or requires some.
    RegistryAuth = 3,
    /// A registry cannot be reached (connection, TLS, timeouts, retries exhausted).
    Network = 4,
    /// The build command of `[component]` in pack.toml failed.
    BuildCommand = 5,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

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

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        match status {
            Status::Success => ExitStatus::Success.into(),
            Status::Negative => ExitStatus::Negative.into(),
            Status::Component(code) => ExitCode::from(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers are part of the interface (docs/exit-codes.md); they never move.
    #[test]
    fn exit_statuses_keep_their_numbers() {
        let documented = [
            (ExitStatus::Success, 0),
            (ExitStatus::Negative, 1),
            (ExitStatus::BadInput, 2),
            (ExitStatus::RegistryAuth, 3),
            (ExitStatus::Network, 4),
            (ExitStatus::BuildCommand, 5),
        ];
        for (status, code) in documented {
            assert_eq!(status as u8, code, "{status:?}");
            assert!(
                EXIT_STATUS_HELP.contains(&format!("\n  {code}  ")),
                "{status:?} undocumented"
            );
        }
    }
}
