//! Per-entry health (§8, §4.6): counters, the last error and reconcile, and the state the
//! `/katalog` endpoints report. Pure over an injected clock; the reconcile wrapper feeds it.
//!
//! States, in the order they are decided: `not started` (no controller running: a standby
//! replica, or the CRD is not installed), `degraded` (consecutive failures reached the entry's
//! failure threshold), `pending` (running, no pass has succeeded yet), `healthy`. Orkestra
//! checks `pending` before `degraded`, so an entry that fails from its first pass on stays
//! `pending` forever; ours reports it `degraded`.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::clock::rfc3339;
use crate::model::scalar::GoDuration;

/// What `/katalog/{crd}/health` calls `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    #[serde(rename = "not started")]
    NotStarted,
    #[serde(rename = "pending")]
    Pending,
    #[serde(rename = "healthy")]
    Healthy,
    #[serde(rename = "degraded")]
    Degraded,
}

impl State {
    /// Whether the entry's health endpoint answers 200 (§8: not started and degraded are 503).
    pub fn is_ok(self) -> bool {
        matches!(self, Self::Pending | Self::Healthy)
    }
}

#[derive(Debug, Default)]
struct Inner {
    started_at: Option<Timestamp>,
    succeeded: bool,
    total: u64,
    failed: u64,
    consecutive: u32,
    last_error: Option<String>,
    last_reconcile: Option<Timestamp>,
    /// Why the entry's CRs cannot be watched right now (the CRD was removed while it ran).
    unwatchable: Option<String>,
}

/// One entry's health.
#[derive(Debug)]
pub struct Health {
    threshold: u32,
    inner: Mutex<Inner>,
}

/// A copy of one entry's health at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub state: State,
    pub started: bool,
    pub pending: bool,
    pub healthy: bool,
    pub degraded: bool,
    pub total: u64,
    pub failed: u64,
    pub consecutive: u32,
    pub last_error: String,
    /// RFC 3339, `no reconciles yet` or `not started`.
    pub last_reconcile: String,
    /// RFC 3339, or empty when not started.
    pub started_at: String,
    /// Go duration to the second (`52h44m37s`), `0s` when not started.
    pub uptime: String,
    /// Failed / total, 0 without passes.
    pub error_rate: f64,
}

impl Health {
    /// Health for an entry that degrades after `threshold` consecutive failures (at least 1).
    pub fn new(threshold: u32) -> Self {
        Self {
            threshold: threshold.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The controller started at `now`; the counters carry over a restart (leadership moves).
    pub fn start(&self, now: Timestamp) {
        let mut h = self.lock();
        h.started_at = Some(now);
        h.succeeded = false;
    }

    /// The controller stopped (leadership lost) or never could start; `error` says why.
    pub fn stop(&self, error: Option<String>) {
        let mut h = self.lock();
        h.started_at = None;
        if error.is_some() {
            h.last_error = error;
        }
    }

    /// The CR watch fails because the API server no longer serves the CRD (§8: degraded "also
    /// when the CRD disappears from the cluster"); `why` names it.
    pub fn watch_lost(&self, why: String) {
        let mut h = self.lock();
        h.last_error = Some(why.clone());
        h.unwatchable = Some(why);
    }

    /// The CR watch delivers again; returns whether it had been lost.
    pub fn watch_back(&self) -> bool {
        self.lock().unwatchable.take().is_some()
    }

    /// A pass succeeded at `now`.
    pub fn success(&self, now: Timestamp) {
        let mut h = self.lock();
        h.total = h.total.saturating_add(1);
        h.consecutive = 0;
        h.succeeded = true;
        h.last_reconcile = Some(now);
    }

    /// A pass failed at `now` with `error`.
    pub fn failure(&self, error: String, now: Timestamp) {
        let mut h = self.lock();
        h.total = h.total.saturating_add(1);
        h.failed = h.failed.saturating_add(1);
        h.consecutive = h.consecutive.saturating_add(1);
        h.last_error = Some(error);
        h.last_reconcile = Some(now);
    }

    /// The health as of `now`.
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        let h = self.lock();
        let started = h.started_at.is_some();
        let degraded = started && (h.consecutive >= self.threshold || h.unwatchable.is_some());
        let state = if !started {
            State::NotStarted
        } else if degraded {
            State::Degraded
        } else if !h.succeeded {
            State::Pending
        } else {
            State::Healthy
        };
        let uptime = h
            .started_at
            .map(|s| Duration::try_from(now.duration_since(s)).unwrap_or_default())
            .unwrap_or_default();
        Snapshot {
            state,
            started,
            pending: state == State::Pending,
            healthy: state == State::Healthy,
            degraded,
            total: h.total,
            failed: h.failed,
            consecutive: h.consecutive,
            last_error: h.last_error.clone().unwrap_or_default(),
            last_reconcile: match (h.last_reconcile, started) {
                (Some(t), _) => rfc3339(t),
                (None, true) => "no reconciles yet".to_owned(),
                (None, false) => "not started".to_owned(),
            },
            started_at: h.started_at.map(rfc3339).unwrap_or_default(),
            uptime: GoDuration(Duration::from_secs(uptime.as_secs())).go_string(),
            // Counts stay far below 2^52, where f64 is exact.
            error_rate: if h.total == 0 {
                0.0
            } else {
                h.failed as f64 / h.total as f64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_watch_degrades_a_healthy_entry_until_it_is_back() {
        let h = Health::new(5);
        let now = Timestamp::UNIX_EPOCH;
        h.start(now);
        h.success(now);
        assert_eq!(h.snapshot(now).state, State::Healthy);
        h.watch_lost("CRD gone".into());
        let s = h.snapshot(now);
        assert_eq!((s.state, s.last_error.as_str()), (State::Degraded, "CRD gone"));
        assert!(h.watch_back());
        assert!(!h.watch_back());
        assert_eq!(h.snapshot(now).state, State::Healthy);
    }
    use crate::runtime::clock::{Clock as _, ManualClock};

    #[test]
    fn an_entry_moves_from_not_started_to_pending_healthy_degraded_and_back() {
        let clock = ManualClock::new(Timestamp::from_second(1_700_000_000).unwrap());
        let h = Health::new(2);
        let s = h.snapshot(clock.now());
        assert_eq!(s.state, State::NotStarted);
        assert_eq!(s.last_reconcile, "not started");
        h.start(clock.now());
        assert_eq!(h.snapshot(clock.now()).state, State::Pending);
        assert_eq!(h.snapshot(clock.now()).last_reconcile, "no reconciles yet");
        clock.advance(Duration::from_secs(3725));
        h.success(clock.now());
        let s = h.snapshot(clock.now());
        assert_eq!(s.state, State::Healthy);
        assert_eq!(s.uptime, "1h2m5s");
        assert_eq!(s.last_reconcile, "2023-11-14T23:15:25Z");
        h.failure("boom".into(), clock.now());
        assert_eq!(
            h.snapshot(clock.now()).state,
            State::Healthy,
            "below the threshold"
        );
        h.failure("boom again".into(), clock.now());
        let s = h.snapshot(clock.now());
        assert_eq!(s.state, State::Degraded);
        assert!(!s.state.is_ok());
        assert_eq!(s.last_error, "boom again");
        assert_eq!((s.total, s.failed, s.consecutive), (3, 2, 2));
        assert!((s.error_rate - 2.0 / 3.0).abs() < 1e-9);
        h.success(clock.now());
        assert_eq!(h.snapshot(clock.now()).state, State::Healthy);
        h.stop(Some("lost the lease".into()));
        let s = h.snapshot(clock.now());
        assert_eq!(s.state, State::NotStarted);
        assert_eq!(s.uptime, "0s");
    }

    #[test]
    fn failing_from_the_first_pass_on_is_degraded_not_pending() {
        let h = Health::new(1);
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        h.start(now);
        h.failure("template".into(), now);
        assert_eq!(h.snapshot(now).state, State::Degraded);
    }
}
