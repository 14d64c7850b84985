//! How a compilation reports its progress: a [`Reporter`] called from worker threads.

use super::*;

/// What the compiler is doing for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Looking the artifact up in the cache (hashing the entry).
    CheckingCache,
    /// Running Cranelift.
    Compiling,
    /// Writing the artifact (and the cache entry).
    Writing,
}

/// Progress of a compilation. Called from worker threads; `index` is the target's
/// position in [`CompileOptions::targets`]. Every method has an empty default.
pub trait Reporter: Send + Sync {
    /// Once per target, in order, before any work starts.
    fn on_queued(&self, _index: usize, _target: &Target) {}
    /// Work on a target moved to `stage`.
    fn on_start(&self, _index: usize, _target: &Target, _stage: Stage) {}
    /// A target is done.
    fn on_complete(&self, _index: usize, _result: Result<&Artifact, &TargetError>) {}
    /// Something worth telling that does not fail the target (e.g. a corrupt cache
    /// entry that was discarded).
    fn on_warning(&self, _message: &str) {}
}

/// A [`Reporter`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReporter;

impl Reporter for NoReporter {}
