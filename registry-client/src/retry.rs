//! Retrying transient failures: connection errors, timeouts, 408, 429 and 5xx, with
//! exponential backoff (plus jitter) or the registry's `Retry-After`.

use std::future::Future;
use std::time::Duration;

use crate::{Error, Reporter, Result};

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: no retries).
    pub attempts: u32,
    /// The delay before the first retry; doubled for each further one.
    pub initial_delay: Duration,
    /// The longest delay, also the cap on `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based) after `error`.
    pub fn delay(&self, retry: u32, error: &Error) -> Duration {
        if let Some(after) = error.retry_after() {
            return after.min(self.max_delay);
        }
        let exp = self
            .initial_delay
            .saturating_mul(1u32 << (retry.saturating_sub(1)).min(16));
        let base = exp.min(self.max_delay);
        // Up to 25% jitter so parallel transfers do not retry in lockstep.
        let jitter = base.mul_f64(0.25 * pseudo_random());
        (base + jitter).min(self.max_delay)
    }

    /// Runs `f` until it succeeds, fails with an error that is not transient, or the
    /// attempts run out (then the last error is wrapped in
    /// [`Error::RetriesExhausted`]).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        what: &str,
        reporter: &dyn Reporter,
        mut f: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && attempt < self.attempts.max(1) => {
                    let delay = self.delay(attempt, &error);
                    reporter.on_retry(what, attempt, self.attempts.max(1), delay, &error);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) if error.is_transient() && attempt > 1 => {
                    let operation = match &error {
                        Error::Network { operation, .. } | Error::Registry { operation, .. } => {
                            operation.clone()
                        }
                        _ => unreachable!("only these are transient"),
                    };
                    return Err(Error::RetriesExhausted {
                        operation,
                        attempts: attempt,
                        source: Box::new(error),
                    });
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// A number in [0, 1) that differs between calls; good enough for jitter.
fn pseudo_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::Operation;
    use crate::reporter::NoReporter;

    fn transient(retry_after: Option<Duration>) -> Error {
        Error::Registry {
            operation: Box::new(Operation {
                registry: "r".into(),
                repository: "a".into(),
                action: "check blob".into(),
            }),
            status: Some(503),
            messages: vec![],
            retry_after,
        }
    }

    #[test]
    fn delays_grow_and_honour_retry_after() {
        let p = RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let d1 = p.delay(1, &transient(None));
        let d3 = p.delay(3, &transient(None));
        assert!(
            d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(125),
            "{d1:?}"
        );
        assert!(
            d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(500),
            "{d3:?}"
        );
        assert_eq!(p.delay(10, &transient(None)), Duration::from_secs(1));
        assert_eq!(
            p.delay(1, &transient(Some(Duration::from_millis(7)))),
            Duration::from_millis(7)
        );
        assert_eq!(
            p.delay(1, &transient(Some(Duration::from_secs(99)))),
            Duration::from_secs(1)
        );
    }

    #[tokio::test]
    async fn retries_transient_errors_only() {
        let p = RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let value = p
            .run("x", &NoReporter, || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(transient(None))
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!((value, calls.load(Ordering::SeqCst)), (7, 3));

        calls.store(0, Ordering::SeqCst);
        let err = p
            .run("x", &NoReporter, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(transient(None))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::RetriesExhausted { attempts: 3, .. }),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let err = p
            .run("x", &NoReporter, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::InvalidPlatform { value: "x".into() })
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidPlatform { .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
