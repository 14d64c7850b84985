//! Integration tests: they drive the real `pack` binary.

mod bundle;
mod common;
mod compile;
mod registry;
mod signing;
mod validate;
