//! Exponential backoff after failed reconciles, per object: the first retry comes soon (most
//! failures are a conflict or a blip), each further consecutive failure of the same object
//! doubles the wait up to `REQUEUE_DELAY_SECONDS`, and a success starts the object over.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher as _},
    sync::Mutex,
    time::Duration,
};

/// The first retry's delay, unless the cap is smaller.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);

/// Consecutive failures per object, and the delay they earn.
#[derive(Debug)]
pub struct Backoff {
    cap: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Backoff capped at `cap` (the operator passes `REQUEUE_DELAY_SECONDS`).
    #[must_use]
    pub fn new(cap: Duration) -> Self {
        Self {
            cap,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failure of `key` and returns how long to wait before retrying it.
    pub fn failed(&self, key: &str) -> Duration {
        let attempt = {
            let mut failures = self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = failures.entry(key.to_owned()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        delay(key, attempt, self.cap)
    }

    /// Forgets the failures of `key` after a reconcile that succeeded.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Checked first so that the common case (no failures) does not allocate a key.
        if failures.contains_key(key) {
            failures.remove(key);
        }
    }

    /// Objects with at least one failure not yet followed by a success.
    #[must_use]
    pub fn failing(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// The wait after the `attempt`-th consecutive failure of `key`: [`FIRST_RETRY`] doubled per
/// earlier failure, capped at `cap`, less up to a tenth. The jitter is taken from a hash of the
/// key and attempt rather than a random source, so many objects failing together (an API
/// server restart) spread their retries while a test still sees the same delays every run.
#[must_use]
pub fn delay(key: &str, attempt: u32, cap: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(20);
    let base = FIRST_RETRY.saturating_mul(1 << doublings).min(cap);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (key, attempt).hash(&mut h);
    let tenth = base / 10;
    let nanos = u64::try_from(tenth.as_nanos()).unwrap_or(u64::MAX);
    let jitter = if nanos == 0 { 0 } else { h.finish() % nanos };
    base.saturating_sub(Duration::from_nanos(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(30);

    #[test]
    fn delays_double_from_the_first_retry_up_to_the_cap_with_at_most_a_tenth_off() {
        let expected = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0];
        for (i, want) in expected.iter().enumerate() {
            let attempt = u32::try_from(i + 1).unwrap();
            let got = delay("ns/a", attempt, CAP).as_secs_f64();
            assert!(
                got <= *want && got >= want * 0.9,
                "attempt {attempt}: {got} s, want {want} s less at most 10 %"
            );
        }
        assert!(delay("ns/a", u32::MAX, CAP) <= CAP);
    }

    #[test]
    fn a_cap_below_the_first_retry_wins() {
        assert!(delay("ns/a", 1, Duration::from_millis(100)) <= Duration::from_millis(100));
    }

    #[test]
    fn objects_failing_together_do_not_all_retry_at_the_same_instant() {
        let delays: std::collections::BTreeSet<Duration> =
            (0..20).map(|i| delay(&format!("ns/o{i}"), 4, CAP)).collect();
        assert!(delays.len() > 10, "jitter spreads retries: {delays:?}");
    }

    #[test]
    fn failures_count_per_object_and_a_success_starts_over() {
        let b = Backoff::new(CAP);
        let first = b.failed("ns/a");
        let second = b.failed("ns/a");
        assert!(second > first, "{second:?} after {first:?}");
        assert!(
            b.failed("ns/b") <= FIRST_RETRY,
            "another object starts at the first retry"
        );
        assert_eq!(b.failing(), 2);
        b.succeeded("ns/a");
        assert_eq!(b.failing(), 1);
        assert!(b.failed("ns/a") <= FIRST_RETRY, "a success resets the object");
    }
}
