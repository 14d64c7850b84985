//! Integration tests: they drive the real `pack` binary.

// Tests say why they skip (outside CI) on stderr.
#![allow(clippy::print_stderr, clippy::print_stdout)]

mod build;
mod bundle;
mod bundle_signatures;
mod ci;
mod common;
mod compile;
mod compressed;
mod faultproxy;
mod faults;
mod function_cache;
mod help;
mod hostile;
mod provenance;
mod push_pull;
mod readme;
mod registry;
mod run;
mod serve;
mod shared_cache;
mod signing;
mod trust_cache;
mod trust_files;
mod trust_registry;
mod trust_sign;
mod validate;
