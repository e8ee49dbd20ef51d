//! Retries of transient Kubernetes API errors (429, 5xx, connection failures) with exponential
//! backoff. Upstream retries three times at a fixed 500 ms and only for some calls; here every
//! call the service makes goes through [`retry`], so a blip of the API server is invisible to
//! callers while a permanent error (403, 404, 409, 422) returns at once. One exception: a 401 or
//! 403 right after the API server could not be reached is retried too, because an API server that
//! has just started serves requests before its authentication and RBAC caches are filled, and
//! refuses them meanwhile (seen on Kubernetes 1.34 when its process restarts).

use std::{future::Future, time::Duration};

/// How many times a call is tried in all, by default.
pub const ATTEMPTS: u32 = 4;
/// Wait before the first retry by default; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest single wait.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often and how patiently to retry (configuration `retryAttempts`,
/// `retryInitialBackoffMillis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one, up to 5 s.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: ATTEMPTS,
            first_backoff: FIRST_BACKOFF,
        }
    }
}

/// Whether an error is worth retrying.
#[must_use]
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => s.code == 429 || (500..=599).contains(&s.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs `call` until it succeeds, fails permanently, or the default [`ATTEMPTS`] are used up.
///
/// # Errors
/// The last error.
pub async fn retry<T, F, Fut>(call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    retry_with(&RetryPolicy::default(), call).await
}

/// Whether the API server could not be reached at all (as opposed to answering with an error).
fn is_unreachable(err: &kube::Error) -> bool {
    matches!(err, kube::Error::HyperError(_) | kube::Error::Service(_))
}

/// Whether the API server refused the caller's identity or permission.
fn is_auth_refusal(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 401 || s.code == 403)
}

/// Runs `call` until it succeeds, fails permanently, or `policy.attempts` are used up.
///
/// # Errors
/// The last error.
pub async fn retry_with<T, F, Fut>(policy: &RetryPolicy, mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut wait = policy.first_backoff;
    let mut attempt = 1;
    let mut was_unreachable = false;
    loop {
        match call().await {
            Err(e)
                if attempt < policy.attempts
                    && (is_transient(&e) || (was_unreachable && is_auth_refusal(&e))) =>
            {
                was_unreachable |= is_unreachable(&e);
                tracing::debug!(attempt, error = %e, "transient Kubernetes API error; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("x", "X").with_code(code)))
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let out = retry(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(api(503)),
                1 => Err(api(429)),
                _ => Ok(7),
            }
        })
        .await
        .unwrap();
        assert_eq!((out, calls.load(Ordering::SeqCst)), (7, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_return_at_once_and_transient_ones_give_up() {
        let calls = AtomicU32::new(0);
        let e = retry(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(api(403))
        })
        .await
        .unwrap_err();
        assert!(matches!(e, kube::Error::Api(s) if s.code == 403));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = AtomicU32::new(0);
        retry(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(api(500))
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }

    fn unreachable() -> kube::Error {
        kube::Error::Service(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
    }

    #[tokio::test(start_paused = true)]
    async fn a_403_right_after_the_api_server_was_unreachable_is_retried() {
        let calls = AtomicU32::new(0);
        let out = retry(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(unreachable()),
                1 => Err(api(403)),
                _ => Ok(7),
            }
        })
        .await
        .unwrap();
        assert_eq!((out, calls.load(Ordering::SeqCst)), (7, 3));
        // A server that keeps refusing is believed once the attempts are used up.
        let calls = AtomicU32::new(0);
        let e = retry(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err::<(), _>(unreachable())
            } else {
                Err(api(403))
            }
        })
        .await
        .unwrap_err();
        assert!(matches!(e, kube::Error::Api(s) if s.code == 403));
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }
}
