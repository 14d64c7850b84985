//! Integration tests: they drive the real `pack` binary.

mod bundle;
mod build;
mod common;
mod compile;
mod push_pull;
mod registry;
mod run;
mod signing;
mod validate;
