//! The compiler side of pack: everything that looks at a WebAssembly binary itself.
//!
//! - [`wasm`]: reading an input, telling components from core modules and from things
//!   that are not wasm at all, and validating it completely (function bodies in
//!   parallel) with the wasm features wasmtime 48 enables.
//! - [`wit`]: loading WIT packages and selecting a world.
//! - [`validate`]: checking a component against a world the way wasmtime 48's linker
//!   would link it, reporting every mismatch.
//! - [`skeleton`]: a component's type skeleton, which decodes to the same WIT for a
//!   fraction of the work.
//! - [`compile`]: ahead-of-time compilation for several targets and CPU presets with an
//!   engine profile, through a content-addressed cache (feature `compile`, on by
//!   default).
//!
//! This crate knows nothing of OCI or the network; it reports progress through
//! callbacks and returns typed [`Error`]s. Only the CLI draws.

#[cfg(feature = "compile")]
pub mod compile;
mod error;
mod skeleton;
pub mod validate;
pub mod wasm;
pub mod wit;

pub use error::{Error, Result};
pub use skeleton::skeleton;
