//! Wall-clock time as an injected dependency.
//!
//! Anything that compares against "now" (lease expiry, pending timeouts, TTLs, cron next-fire)
//! asks a [`Clock`] instead of reading the system time, so the logic can be tested at fixed
//! instants (Go's CronJob controller and linkerd do the same). Timers and sleeps stay on tokio's
//! clock, which tests pause with `#[tokio::test(start_paused = true)]`; this module is only about
//! the calendar time that ends up in, or is compared with, Kubernetes timestamps.
//!
//! The type is [`k8s_openapi::jiff::Timestamp`] because k8s-openapi 0.29 represents both `Time`
//! and `MicroTime` with it, so values flow into and out of API objects without conversion.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;

/// A source of the current calendar time.
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// A clock shared between the components of one controller manager.
pub type SharedClock = Arc<dyn Clock>;

/// The real system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; for tests.
///
/// Clones share the same instant, so a test can keep one handle and give another to the code
/// under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    #[must_use]
    pub fn new(now: Timestamp) -> Self {
        Self {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Moves the clock to `now` (backwards too, to test clock skew).
    pub fn set(&self, now: Timestamp) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the clock forward by `by`, saturating at the largest representable instant.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        // Adding a `Duration` (not a calendar `Span`) cannot fail, only saturate.
        *now = now.saturating_add(by).unwrap_or(Timestamp::MAX);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        // A poisoned lock only means a test thread panicked while holding it; the instant itself
        // is still a valid value.
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_stays_put_until_moved() {
        let start = Timestamp::from_second(1_700_000_000).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);

        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now().as_millisecond(), 1_700_000_001_500);

        let handle = clock.clone();
        handle.set(start);
        assert_eq!(clock.now(), start, "clones share one instant");
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().as_second() > 1_577_836_800);
    }
}
