//! Progress of a transfer, reported to whoever shows it (the CLI's bars, or nothing).

use std::time::Duration;

use oci_spec::image::{Descriptor, Digest};

/// A blob or manifest being moved.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its number in this transfer, stable from start to completion.
    pub id: usize,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Whether it is a manifest or index (small documents) rather than a blob.
    pub manifest: bool,
}

impl Item {
    /// Blob number `id` of a transfer, as its descriptor describes it.
    pub fn blob(id: usize, blob: &Descriptor) -> Self {
        Item {
            id,
            digest: blob.digest().clone(),
            size: blob.size(),
            media_type: blob.media_type().to_string(),
            manifest: false,
        }
    }
}

/// How a blob transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Its bytes were sent (push) or fetched (pull).
    Transferred,
    /// The other side had it already; nothing was sent.
    Skipped,
    /// The registry mounted it from another repository; nothing was sent.
    Mounted,
}

/// Reports blob `id` done with `outcome`; returns the outcome with the blob's size, as the
/// push and pull of one blob do.
pub(crate) fn blob_done(
    reporter: &dyn Reporter,
    id: usize,
    outcome: Outcome,
    blob: &Descriptor,
) -> (Outcome, u64) {
    reporter.on_complete(id, outcome);
    (outcome, blob.size())
}

/// Receives progress from a push or pull. Called from several tasks at once; every method
/// has a default that does nothing.
pub trait Reporter: Send + Sync {
    /// The transfer knows what it will move: `count` items of `bytes` bytes in all
    /// (before skipping what the other side has).
    fn on_plan(&self, _count: usize, _bytes: u64) {}

    /// Work on an item starts.
    fn on_start(&self, _item: &Item) {}

    /// `transferred` bytes of the item have gone through so far. Starts again from zero
    /// when a transfer is retried.
    fn on_progress(&self, _id: usize, _transferred: u64) {}

    /// The item is done.
    fn on_complete(&self, _id: usize, _outcome: Outcome) {}

    /// Attempt number `attempt` (of at most `attempts`) failed transiently with `error`;
    /// the next one starts after `delay`.
    fn on_retry(
        &self,
        _what: &str,
        _attempt: u32,
        _attempts: u32,
        _delay: Duration,
        _error: &crate::Error,
    ) {
    }
}

/// A reporter that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {}
