//! One module per subcommand; each holds a documented clap struct with `execute`.

pub mod build;
pub mod cache;
pub mod compile;
pub mod init;
pub mod inspect;
pub mod key;
pub mod login;
pub mod pull;
pub mod push;
pub mod run;
pub mod serve;
pub mod sign;
pub mod validate;
pub mod verify;
