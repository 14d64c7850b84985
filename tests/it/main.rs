//! Integration tests: they drive the real `pack` binary.

mod bundle;
mod build;
mod common;
mod compile;
mod registry;
mod signing;
mod validate;
