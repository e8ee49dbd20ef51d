//! The CronOMJob controller's decision as a pure function: from the CronOMJob, the OMJobs it
//! controls and the time, which slot to run, what to delete, the status, the events and when to
//! look again.
//!
//! The semantics are Kubernetes' CronJob controller (v2), applied to OMJobs:
//! * **Which slot.** The slots after `lastScheduleTime` (or, before the first run, after the
//!   CronOMJob's creation: no run for a slot before it existed) up to now are unmet; only the most
//!   recent one is considered, so at most one run starts per pass however long the operator was
//!   away. More than [`Settings::too_many_missed`] unmet slots (counted from
//!   `now - startingDeadlineSeconds` when that is later) publish a `TooManyMissedTimes` warning.
//! * **Deadline.** A slot more than `startingDeadlineSeconds` old does not run: a `MissSchedule`
//!   warning, and the slot is recorded in `lastScheduleTime` as handled (the Java operator does
//!   the same; Kubernetes leaves it unset and notices the miss again on every pass).
//!   `startingDeadlineSeconds` ≤ 0 is OpenMetadata's "no catch-up" (its server writes 0 by
//!   default, and the chart's CRD admits negatives): an on-time slot always runs, however late
//!   the controller itself is, but a slot older than [`ON_TIME_GRACE`] (one missed while no
//!   controller ran) is recorded as missed instead. See [`StartWindow`]. Unset: no deadline.
//! * **Concurrency.** `Allow` starts the run anyway; `Forbid` skips the slot while a run is
//!   active (`JobAlreadyActive`), and, as in Kubernetes, runs it late if the active run ends while
//!   the slot is still within its deadline; `Replace` deletes the active runs first.
//! * **Idempotency.** A slot's OMJob name is fixed ([`omjob_api::names::spawned_omjob_name`]),
//!   so a create repeated after a crash finds the first one instead of running the slot twice.
//! * **History.** Finished runs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit`
//!   are deleted oldest first, also while suspended or when the schedule is invalid.
//! * **Bad input.** An invalid schedule or unknown zone runs nothing, sets `message` to an error
//!   naming the field, publishes one warning, and waits for the spec to change.

use crate::events::reason;
use std::time::Duration;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use omjob_api::{
    ActiveOMJobRef, ConcurrencyPolicy, CronOMJob, CronOMJobStatus, OMJob, Phase, cronomjob, names,
};

use omjob_api::schedule::Schedule;

use super::spawn;
use crate::omjob::decide::EventNote;

/// `message` while `suspend` is true (the Java operator's text).
pub const MESSAGE_SUSPENDED: &str = "Suspended";

/// How late a slot may start when `startingDeadlineSeconds` is ≤ 0 and still count as on
/// time; shared with the pipeline service, which writes it into batch CronJobs for the same
/// setting (see [`omjob_api::schedule::ON_TIME_GRACE`] for how it was chosen).
pub const ON_TIME_GRACE: Duration = omjob_api::schedule::ON_TIME_GRACE;

/// How late after its time a slot may still start, from `startingDeadlineSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartWindow {
    /// Unset: no limit, the most recent unmet slot runs however old (CronJob v2).
    Unlimited,
    /// A positive `startingDeadlineSeconds`: a slot older than this does not run (CronJob v2).
    Deadline(SignedDuration),
    /// `startingDeadlineSeconds` ≤ 0: OpenMetadata's "no catch-up". The Java operator reads it
    /// as "no deadline" and Kubernetes would miss every slot; here a slot runs when it is
    /// started within [`ON_TIME_GRACE`] of its time, and an older one is recorded as missed.
    OnTimeOnly,
}

impl StartWindow {
    /// The window `startingDeadlineSeconds` asks for.
    #[must_use]
    pub fn from_spec(starting_deadline_seconds: Option<i64>) -> Self {
        match starting_deadline_seconds {
            None => Self::Unlimited,
            Some(s) if s > 0 => Self::Deadline(SignedDuration::from_secs(s)),
            Some(_) => Self::OnTimeOnly,
        }
    }

    /// The latest age at which a slot still starts; `None` when there is no limit.
    #[must_use]
    pub fn limit(self) -> Option<SignedDuration> {
        match self {
            Self::Unlimited => None,
            Self::Deadline(d) => Some(d),
            // 120 s always fits a `SignedDuration`.
            Self::OnTimeOnly => SignedDuration::try_from(ON_TIME_GRACE).ok(),
        }
    }

    /// Why a slot that is too old did not run, for the status message and the event.
    fn missed_text(self, slot: &str) -> String {
        match self {
            Self::OnTimeOnly => format!(
                "Missed schedule: the slot at {slot} was not started within {}s of its time, and startingDeadlineSeconds ≤ 0 means no catch-up",
                ON_TIME_GRACE.as_secs()
            ),
            Self::Deadline(d) => format!(
                "Missed schedule: the slot at {slot} could not start within startingDeadlineSeconds ({}s)",
                d.as_secs()
            ),
            Self::Unlimited => format!("Missed schedule: the slot at {slot}"),
        }
    }
}

/// Settings the decision depends on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// More unmet slots than this publish `TooManyMissedTimes` (Kubernetes: 100).
    pub too_many_missed: usize,
    /// Longest wait before looking again even when no slot is due, so a jump of the wall clock
    /// (or of an injected test clock) is noticed within this time.
    pub max_requeue: Duration,
    /// The longest wait after a failed reconcile (`REQUEUE_DELAY_SECONDS`), the cap of the
    /// exponential backoff ([`crate::controller::backoff`]).
    pub requeue_cap: Duration,
    /// What the cluster permits and keeps (`blockOwnerDeletion` on runs, additive status
    /// fields); read by the IO shell, not by [`decide`].
    pub capabilities: crate::capabilities::Capabilities,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            too_many_missed: 100,
            max_requeue: Duration::from_secs(300),
            requeue_cap: Duration::from_secs(30),
            capabilities: crate::capabilities::Capabilities::default(),
        }
    }
}

/// What the reconciler saw.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The CronOMJob.
    pub cron: &'a CronOMJob,
    /// The OMJobs it controls (owner reference with its UID).
    pub children: &'a [OMJob],
    /// The current time.
    pub now: Timestamp,
}

/// A change to make in the cluster, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete an OMJob: an active run under `Replace`, or a finished one beyond its history limit.
    Delete {
        /// Its name.
        name: String,
        /// Its UID (a delete precondition, so a later OMJob of the same name is never hit).
        uid: Option<String>,
    },
    /// Create the run of a slot.
    Create(Box<OMJob>),
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The status to record (after the actions succeeded).
    pub status: CronOMJobStatus,
    /// Changes to make, in order.
    pub actions: Vec<Action>,
    /// Events for what happened.
    pub events: Vec<EventNote>,
    /// When to look again if nothing else triggers a reconcile; `None`: only on a change.
    pub requeue: Option<Duration>,
}

fn phase(o: &OMJob) -> Option<Phase> {
    o.status.as_ref().and_then(|s| s.phase)
}

fn is_finished(o: &OMJob) -> bool {
    phase(o).is_some_and(Phase::is_terminal)
}

fn is_deleting(o: &OMJob) -> bool {
    o.metadata.deletion_timestamp.is_some()
}

fn name_of(o: &OMJob) -> String {
    o.metadata.name.clone().unwrap_or_default()
}

/// When a finished run ended (its completion, or its creation when it has none), for ordering.
fn finished_at(o: &OMJob) -> Option<Timestamp> {
    o.status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref())
        .or(o.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

struct Builder<'a> {
    obs: &'a Observation<'a>,
    settings: &'a Settings,
    previous: CronOMJobStatus,
    status: CronOMJobStatus,
    actions: Vec<Action>,
    events: Vec<EventNote>,
}

impl Builder<'_> {
    fn event(&mut self, reason: &'static str, note: String, warning: bool) {
        self.events.push(EventNote {
            reason,
            note,
            warning,
        });
    }

    /// Sets `message`; `Some(event)` is published only when the message changes, so a standing
    /// condition (invalid schedule, a Forbid skip) is announced once, not on every pass.
    fn message(&mut self, text: String, event: Option<(&'static str, bool)>) {
        if let Some((reason, warning)) = event
            && self.previous.message.as_deref() != Some(text.as_str())
        {
            self.event(reason, text.clone(), warning);
        }
        self.status.message = Some(text);
    }

    /// Active runs, `lastSuccessfulTime`, and `SawCompletedJob` for runs that ended since the
    /// last pass.
    fn observe_children(&mut self) {
        let children = self.obs.children;
        let mut active: Vec<ActiveOMJobRef> = children
            .iter()
            .filter(|c| !is_finished(c) && !is_deleting(c))
            .map(|c| ActiveOMJobRef {
                name: name_of(c),
                uid: c.metadata.uid.clone(),
            })
            .collect();
        active.sort_by(|a, b| a.name.cmp(&b.name));
        self.status.active = (!active.is_empty()).then_some(active);

        let previously_active = self.previous.active.clone().unwrap_or_default();
        for was in &previously_active {
            let ended = children
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(was.name.as_str()))
                .filter(|c| is_finished(c));
            if let Some(c) = ended {
                let p = phase(c).map_or("unknown", Phase::as_str);
                self.event(
                    reason::SAW_COMPLETED_JOB,
                    format!("Saw completed OMJob: {}, phase: {p}", was.name),
                    false,
                );
            }
        }

        let latest_success = children
            .iter()
            .filter(|c| phase(c) == Some(Phase::Succeeded))
            .filter_map(|c| c.status.as_ref()?.completion_time.as_ref().map(|t| t.0))
            .max();
        let previous = self.previous.last_successful_time.as_ref().map(|t| t.0);
        self.status.last_successful_time = previous.max(latest_success).map(Time);
    }

    /// Deletes the oldest finished runs beyond the history limits.
    fn enforce_history(&mut self) {
        let spec = &self.obs.cron.spec;
        for (succeeded, limit) in [
            (true, spec.successful_jobs_history_limit),
            (false, spec.failed_jobs_history_limit),
        ] {
            // The CRD defaults both to 3 and rejects negatives; a missing value means the default.
            let limit = usize::try_from(limit.unwrap_or(cronomjob::DEFAULT_HISTORY_LIMIT)).unwrap_or(0);
            let mut finished: Vec<&OMJob> = self
                .obs
                .children
                .iter()
                .filter(|c| !is_deleting(c))
                .filter(|c| match phase(c) {
                    Some(Phase::Succeeded) => succeeded,
                    Some(Phase::Failed) => !succeeded,
                    _ => false,
                })
                .collect();
            if finished.len() <= limit {
                continue;
            }
            finished.sort_by(|a, b| {
                finished_at(a)
                    .cmp(&finished_at(b))
                    .then_with(|| name_of(a).cmp(&name_of(b)))
            });
            let excess = finished.len() - limit;
            let which = if succeeded {
                "successfulJobsHistoryLimit"
            } else {
                "failedJobsHistoryLimit"
            };
            for c in finished.into_iter().take(excess) {
                let name = name_of(c);
                self.actions.push(Action::Delete {
                    name: name.clone(),
                    uid: c.metadata.uid.clone(),
                });
                self.event(
                    reason::SUCCESSFUL_DELETE,
                    format!("Deleted finished OMJob {name} ({which} {limit})"),
                    false,
                );
            }
        }
    }

    fn schedule(&mut self) -> Option<Duration> {
        let cron = self.obs.cron;
        let spec = &cron.spec;
        let now = self.obs.now;
        let schedule = match Schedule::parse(&spec.schedule, spec.time_zone_or_default()) {
            Ok(s) => s,
            Err(e) => {
                let reason = e.reason();
                self.message(
                    format!("Error: {e}; nothing runs until the spec changes"),
                    Some((reason, true)),
                );
                return None;
            }
        };
        if spec.is_suspended() {
            self.message(MESSAGE_SUSPENDED.to_owned(), None);
            return None;
        }

        let earliest = self
            .previous
            .last_schedule_time
            .as_ref()
            .or(cron.metadata.creation_timestamp.as_ref())
            // Objects from the API always have a creation time; without one, nothing is overdue.
            .map_or(now, |t| t.0);
        let window = StartWindow::from_spec(spec.starting_deadline_seconds);
        // Slots older than the window can never run, so they are not counted as unmet either.
        let counted_from = window
            .limit()
            .and_then(|d| now.checked_sub(d).ok())
            .map_or(earliest, |t| t.max(earliest));
        let cap = self.settings.too_many_missed;
        let counted = schedule.missed(counted_from, now, cap).count;
        if counted > cap {
            self.event(
                reason::TOO_MANY_MISSED_TIMES,
                format!(
                    "too many missed start times: more than {cap}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
                ),
                true,
            );
        }

        let next = schedule.next_after(now);
        let slot = schedule.missed(earliest, now, 0).most_recent;
        if let Some(slot) = slot {
            self.run_slot(slot, window);
        } else if self
            .previous
            .message
            .as_deref()
            .is_none_or(|m| m == MESSAGE_SUSPENDED || m.starts_with("Error: "))
        {
            // Leaving a standing condition (or the first pass): say what comes next.
            self.status.message = Some(next.map_or_else(
                || "Waiting: the schedule has no next slot".to_owned(),
                |t| format!("Waiting for the next slot at {}", rfc3339(t)),
            ));
        }

        let wait = next.map_or(self.settings.max_requeue, |t| {
            // A little past the slot, so that the pass that wakes up sees it as due.
            until(now, t) + Duration::from_millis(100)
        });
        Some(wait.min(self.settings.max_requeue))
    }

    fn run_slot(&mut self, slot: Timestamp, window: StartWindow) {
        let cron = self.obs.cron;
        let now = self.obs.now;
        let slot_text = rfc3339(slot);
        if let Some(d) = window.limit()
            && slot.checked_add(d).is_ok_and(|latest| latest < now)
        {
            self.status.last_schedule_time = Some(Time(slot));
            self.message(window.missed_text(&slot_text), Some(("MissSchedule", true)));
            return;
        }

        let cron_name = cron.metadata.name.as_deref().unwrap_or_default();
        let Ok(run_name) = names::spawned_omjob_name(cron_name, slot.as_second()) else {
            self.message(
                format!("Error: no OMJob name fits the slot at {slot_text}"),
                Some(("FailedCreate", true)),
            );
            return;
        };
        if self
            .obs
            .children
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(run_name.as_str()))
        {
            // Created by an earlier pass whose status write was lost: the slot has run.
            self.status.last_schedule_time = Some(Time(slot));
            self.status.last_omjob_name = Some(run_name);
            return;
        }

        let active: Vec<ActiveOMJobRef> = self.status.active.clone().unwrap_or_default();
        match cron.spec.concurrency_policy_or_default() {
            ConcurrencyPolicy::Forbid if !active.is_empty() => {
                let running: Vec<&str> = active.iter().map(|a| a.name.as_str()).collect();
                self.message(
                    format!(
                        "Skipped the slot at {slot_text}: {} still running (concurrencyPolicy Forbid)",
                        running.join(", ")
                    ),
                    Some(("JobAlreadyActive", false)),
                );
                return;
            }
            ConcurrencyPolicy::Replace => {
                for a in &active {
                    self.actions.push(Action::Delete {
                        name: a.name.clone(),
                        uid: a.uid.clone(),
                    });
                    self.event(
                        reason::SUCCESSFUL_DELETE,
                        format!(
                            "Deleted active OMJob {}: replaced by the run for {slot_text} (concurrencyPolicy Replace)",
                            a.name
                        ),
                        false,
                    );
                }
                self.status.active = None;
            }
            _ => {}
        }

        match spawn::build(cron, slot) {
            Ok(omjob) => {
                self.actions.push(Action::Create(Box::new(omjob)));
                let mut active = self.status.active.take().unwrap_or_default();
                active.push(ActiveOMJobRef {
                    name: run_name.clone(),
                    uid: None,
                });
                active.sort_by(|a, b| a.name.cmp(&b.name));
                self.status.active = Some(active);
                self.status.last_schedule_time = Some(Time(slot));
                self.status.last_omjob_name = Some(run_name.clone());
                self.status.message = Some(format!("Created OMJob {run_name} for the slot at {slot_text}"));
                self.event(
                    reason::SUCCESSFUL_CREATE,
                    format!("Created OMJob {run_name}"),
                    false,
                );
            }
            Err(e) => self.message(format!("Error: {e}"), Some(("FailedCreate", true))),
        }
    }
}

/// Decides one pass for `obs.cron`.
#[must_use]
pub fn decide(obs: &Observation<'_>, settings: &Settings) -> Decision {
    let previous = obs.cron.status.clone().unwrap_or_default();
    let mut b = Builder {
        obs,
        settings,
        status: CronOMJobStatus {
            last_schedule_time: previous.last_schedule_time.clone(),
            last_omjob_name: previous.last_omjob_name.clone(),
            message: previous.message.clone(),
            active: None,
            last_successful_time: None,
        },
        previous,
        actions: Vec::new(),
        events: Vec::new(),
    };
    b.observe_children();
    b.enforce_history();
    let requeue = b.schedule();
    Decision {
        status: b.status,
        actions: b.actions,
        events: b.events,
        requeue,
    }
}

#[cfg(test)]
mod tests {
    //! Decisions at fixed instants. Slots are worked out by hand; the CronOMJob below was created
    //! at 2026-01-01T00:00:30Z.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use omjob_api::{CronOMJobSpec, OMJobSpec, OMJobStatus, PodTemplate};

    use super::*;

    const CREATED: &str = "2026-01-01T00:00:30Z";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cron(schedule: &str, edit: impl FnOnce(&mut CronOMJobSpec)) -> CronOMJob {
        let mut spec = CronOMJobSpec {
            schedule: schedule.into(),
            om_job_spec: OMJobSpec {
                main_pod_spec: PodTemplate {
                    image: "ingestion".into(),
                    command: vec!["true".into()],
                    ..PodTemplate::default()
                },
                ..OMJobSpec::default()
            },
            ..CronOMJobSpec::default()
        };
        edit(&mut spec);
        let mut c = CronOMJob::new("nightly", spec);
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("cron-uid".into());
        c.metadata.creation_timestamp = Some(Time(ts(CREATED)));
        c
    }

    fn with_status(mut c: CronOMJob, edit: impl FnOnce(&mut CronOMJobStatus)) -> CronOMJob {
        let mut s = c.status.take().unwrap_or_default();
        edit(&mut s);
        c.status = Some(s);
        c
    }

    /// A child run of `nightly` for `slot`, in `phase` (None: not started), finished at `done`.
    fn child(slot: &str, phase: Option<Phase>, done: Option<&str>) -> OMJob {
        let name = names::spawned_omjob_name("nightly", ts(slot).as_second()).unwrap();
        let mut o = OMJob::new(&name, OMJobSpec::default());
        o.metadata.uid = Some(format!("uid-{name}"));
        o.metadata.creation_timestamp = Some(Time(ts(slot)));
        o.metadata.owner_references = Some(vec![OwnerReference {
            api_version: omjob_api::API_VERSION.into(),
            kind: "CronOMJob".into(),
            name: "nightly".into(),
            uid: "cron-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        o.status = Some(OMJobStatus {
            phase,
            completion_time: done.map(|d| Time(ts(d))),
            ..OMJobStatus::default()
        });
        o
    }

    fn run(c: &CronOMJob, children: &[OMJob], now: &str) -> Decision {
        decide(
            &Observation {
                cron: c,
                children,
                now: ts(now),
            },
            &Settings::default(),
        )
    }

    fn created(d: &Decision) -> Vec<String> {
        d.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create(o) => o.metadata.name.clone(),
                Action::Delete { .. } => None,
            })
            .collect()
    }

    fn deleted(d: &Decision) -> Vec<String> {
        d.actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.clone()),
                Action::Create(_) => None,
            })
            .collect()
    }

    fn reasons(d: &Decision) -> Vec<&'static str> {
        d.events.iter().map(|e| e.reason).collect()
    }

    fn run_name(slot: &str) -> String {
        names::spawned_omjob_name("nightly", ts(slot).as_second()).unwrap()
    }

    #[test]
    fn a_due_slot_creates_its_run_and_records_it() {
        let c = cron("*/5 * * * *", |_| {});
        let d = run(&c, &[], "2026-01-01T00:05:02Z");
        assert_eq!(created(&d), [run_name("2026-01-01T00:05:00Z")]);
        assert_eq!(
            d.status.last_schedule_time,
            Some(Time(ts("2026-01-01T00:05:00Z")))
        );
        assert_eq!(d.status.last_omjob_name, Some(run_name("2026-01-01T00:05:00Z")));
        assert_eq!(
            d.status.active.as_ref().unwrap()[0].name,
            run_name("2026-01-01T00:05:00Z")
        );
        assert_eq!(reasons(&d), ["SuccessfulCreate"]);
        // Next slot 00:10:00 is 4 min 58 s away, plus the 100 ms margin.
        assert_eq!(d.requeue, Some(Duration::from_millis(298_100)));
    }

    #[test]
    fn nothing_runs_before_the_first_slot_after_creation() {
        // Created 00:00:30; the 00:00:00 slot is before creation and never runs.
        let c = cron("*/5 * * * *", |_| {});
        let d = run(&c, &[], "2026-01-01T00:04:59Z");
        assert!(d.actions.is_empty());
        assert_eq!(d.status.last_schedule_time, None);
        assert_eq!(
            d.status.message.as_deref(),
            Some("Waiting for the next slot at 2026-01-01T00:05:00Z")
        );
        assert_eq!(d.requeue, Some(Duration::from_millis(1_100)));
    }

    #[test]
    fn after_downtime_only_the_most_recent_missed_slot_runs() {
        let c = with_status(cron("*/5 * * * *", |_| {}), |s| {
            s.last_schedule_time = Some(Time(ts("2026-01-01T00:05:00Z")));
        });
        // 00:10 .. 00:45 were missed; only 00:45 runs.
        let d = run(&c, &[], "2026-01-01T00:47:00Z");
        assert_eq!(created(&d), [run_name("2026-01-01T00:45:00Z")]);
        assert!(!reasons(&d).contains(&"TooManyMissedTimes"));
    }

    #[test]
    fn a_recorded_slot_does_not_run_again() {
        let c = with_status(cron("*/5 * * * *", |_| {}), |s| {
            s.last_schedule_time = Some(Time(ts("2026-01-01T00:05:00Z")));
            s.message = Some("Created OMJob x".into());
        });
        let d = run(&c, &[], "2026-01-01T00:07:00Z");
        assert!(d.actions.is_empty());
        assert!(d.events.is_empty());
        assert_eq!(d.status.message.as_deref(), Some("Created OMJob x"));
    }

    #[test]
    fn a_run_that_exists_but_is_not_recorded_is_adopted_not_recreated() {
        // The status write after the create was lost (operator restarted in between).
        let c = cron("*/5 * * * *", |_| {});
        let existing = child("2026-01-01T00:05:00Z", Some(Phase::Running), None);
        let d = run(&c, std::slice::from_ref(&existing), "2026-01-01T00:05:30Z");
        assert!(d.actions.is_empty(), "{:?}", d.actions);
        assert_eq!(
            d.status.last_schedule_time,
            Some(Time(ts("2026-01-01T00:05:00Z")))
        );
        assert_eq!(d.status.active.as_ref().unwrap()[0].uid, existing.metadata.uid);
    }

    #[test]
    fn a_slot_past_its_starting_deadline_is_recorded_as_missed() {
        let c = with_status(
            cron("0 * * * *", |s| s.starting_deadline_seconds = Some(60)),
            |s| s.last_schedule_time = Some(Time(ts("2026-01-01T01:00:00Z"))),
        );
        // The 02:00 slot is 61 s old.
        let d = run(&c, &[], "2026-01-01T02:01:01Z");
        assert!(d.actions.is_empty());
        assert_eq!(
            d.status.last_schedule_time,
            Some(Time(ts("2026-01-01T02:00:00Z")))
        );
        assert_eq!(reasons(&d), ["MissSchedule"]);
        assert!(d.events[0].warning);
        assert!(
            d.status
                .message
                .as_deref()
                .unwrap()
                .starts_with("Missed schedule"),
            "{:?}",
            d.status.message
        );
        // Within the deadline it runs.
        let d = run(&c, &[], "2026-01-01T02:00:59Z");
        assert_eq!(created(&d), [run_name("2026-01-01T02:00:00Z")]);
    }

    #[test]
    fn the_start_window_follows_starting_deadline_seconds() {
        let table = [
            (None, StartWindow::Unlimited),
            (Some(1), StartWindow::Deadline(SignedDuration::from_secs(1))),
            (Some(60), StartWindow::Deadline(SignedDuration::from_secs(60))),
            (Some(0), StartWindow::OnTimeOnly),
            (Some(-1), StartWindow::OnTimeOnly),
            (Some(i64::MIN), StartWindow::OnTimeOnly),
        ];
        for (seconds, want) in table {
            assert_eq!(StartWindow::from_spec(seconds), want, "{seconds:?}");
        }
        assert_eq!(
            StartWindow::OnTimeOnly.limit(),
            Some(SignedDuration::from_secs(120))
        );
        assert_eq!(StartWindow::Unlimited.limit(), None);
    }

    #[test]
    fn a_deadline_of_zero_or_less_runs_on_time_slots_and_misses_older_ones() {
        // Hourly, last run at 01:00; the 02:00 slot is observed at `now`. `true`: it runs.
        let table = [
            ("2026-01-01T02:00:00Z", true),  // at its instant
            ("2026-01-01T02:00:01Z", true),  // on time
            ("2026-01-01T02:00:20Z", true),  // late, as in a burst of 1,000 due slots
            ("2026-01-01T02:02:00Z", true),  // late by exactly the grace
            ("2026-01-01T02:02:01Z", false), // one second past the grace
            ("2026-01-01T02:30:00Z", false), // the operator was down across the slot
            ("2026-01-01T03:59:59Z", false), // down for hours: the 03:00 slot is missed too
        ];
        for deadline in [0, -1, -3600, i64::MIN] {
            let c = with_status(
                cron("0 * * * *", |s| s.starting_deadline_seconds = Some(deadline)),
                |s| s.last_schedule_time = Some(Time(ts("2026-01-01T01:00:00Z"))),
            );
            for (now, runs) in table {
                let d = run(&c, &[], now);
                let slot = if now < "2026-01-01T03:00:00Z" {
                    "2026-01-01T02:00:00Z"
                } else {
                    "2026-01-01T03:00:00Z"
                };
                let case = format!("deadline {deadline}, now {now}");
                assert_eq!(
                    d.status.last_schedule_time,
                    Some(Time(ts(slot))),
                    "{case}: the slot is handled either way"
                );
                if runs {
                    assert_eq!(created(&d), [run_name(slot)], "{case}");
                    assert_eq!(reasons(&d), ["SuccessfulCreate"], "{case}");
                } else {
                    assert!(created(&d).is_empty(), "{case}: {:?}", d.actions);
                    assert_eq!(reasons(&d), ["MissSchedule"], "{case}");
                    assert!(d.events[0].warning, "{case}");
                    let msg = d.status.message.clone().unwrap();
                    assert!(
                        msg.starts_with("Missed schedule") && msg.contains("no catch-up"),
                        "{case}: {msg}"
                    );
                }
            }
        }
    }

    #[test]
    fn after_a_missed_slot_with_no_catch_up_the_next_slot_runs_on_time() {
        let c = with_status(
            cron("0 * * * *", |s| s.starting_deadline_seconds = Some(0)),
            |s| {
                s.last_schedule_time = Some(Time(ts("2026-01-01T02:00:00Z")));
                s.message = Some("Missed schedule: the slot at 2026-01-01T02:00:00Z ...".into());
            },
        );
        let d = run(&c, &[], "2026-01-01T02:40:00Z");
        assert!(d.actions.is_empty() && d.events.is_empty(), "nothing new is due");
        let d = run(&c, &[], "2026-01-01T03:00:02Z");
        assert_eq!(created(&d), [run_name("2026-01-01T03:00:00Z")]);
    }

    #[test]
    fn no_catch_up_counts_only_the_slots_within_the_grace() {
        // Every minute, created two hours before: 120 unmet slots, but only those within the
        // last 120 s could run, so there is no TooManyMissedTimes warning.
        let c = cron("* * * * *", |s| s.starting_deadline_seconds = Some(0));
        let d = run(&c, &[], "2026-01-01T02:00:10Z");
        assert_eq!(reasons(&d), ["SuccessfulCreate"]);
        assert_eq!(created(&d), [run_name("2026-01-01T02:00:00Z")]);
    }

    #[test]
    fn forbid_with_no_catch_up_runs_a_skipped_slot_only_within_the_grace() {
        let c = with_status(
            cron("*/5 * * * *", |s| {
                s.concurrency_policy = Some(ConcurrencyPolicy::Forbid);
                s.starting_deadline_seconds = Some(0);
            }),
            |s| s.last_schedule_time = Some(Time(ts("2026-01-01T00:05:00Z"))),
        );
        let done = child(
            "2026-01-01T00:05:00Z",
            Some(Phase::Succeeded),
            Some("2026-01-01T00:11:00Z"),
        );
        // The active run ended 60 s after the 00:10 slot: still on time.
        let d = run(&c, std::slice::from_ref(&done), "2026-01-01T00:11:01Z");
        assert_eq!(created(&d), [run_name("2026-01-01T00:10:00Z")]);
        // It ended 3 minutes after: the slot is missed.
        let d = run(&c, &[done], "2026-01-01T00:13:01Z");
        assert!(created(&d).is_empty());
        assert_eq!(reasons(&d), ["MissSchedule"]);
    }

    #[test]
    fn too_many_missed_slots_warn_and_the_latest_still_runs() {
        let c = cron("* * * * *", |_| {});
        // Created 00:00:30; by 02:00:10, 120 minutes were missed.
        let d = run(&c, &[], "2026-01-01T02:00:10Z");
        assert_eq!(reasons(&d), ["TooManyMissedTimes", "SuccessfulCreate"]);
        assert_eq!(created(&d), [run_name("2026-01-01T02:00:00Z")]);
        // A deadline bounds the count: 5 minutes hold 5 slots, no warning.
        let c = cron("* * * * *", |s| s.starting_deadline_seconds = Some(300));
        let d = run(&c, &[], "2026-01-01T02:00:10Z");
        assert_eq!(reasons(&d), ["SuccessfulCreate"]);
    }

    #[test]
    fn forbid_skips_while_a_run_is_active_and_runs_late_when_it_ends() {
        let c = with_status(
            cron("*/5 * * * *", |s| {
                s.concurrency_policy = Some(ConcurrencyPolicy::Forbid)
            }),
            |s| s.last_schedule_time = Some(Time(ts("2026-01-01T00:05:00Z"))),
        );
        let running = child("2026-01-01T00:05:00Z", Some(Phase::Running), None);
        let d = run(&c, std::slice::from_ref(&running), "2026-01-01T00:10:01Z");
        assert!(d.actions.is_empty());
        assert_eq!(reasons(&d), ["JobAlreadyActive"]);
        assert_eq!(
            d.status.last_schedule_time,
            Some(Time(ts("2026-01-01T00:05:00Z")))
        );
        let msg = d.status.message.clone().unwrap();
        assert!(
            msg.contains("Forbid") && msg.contains(&run_name("2026-01-01T00:05:00Z")),
            "{msg}"
        );

        // The same pass again: no second event.
        let again = with_status(c.clone(), |s| s.message = Some(msg.clone()));
        let d = run(&again, std::slice::from_ref(&running), "2026-01-01T00:10:02Z");
        assert!(d.events.is_empty());

        // The active run ends at 00:11: the 00:10 slot runs late (no deadline).
        let done = child(
            "2026-01-01T00:05:00Z",
            Some(Phase::Succeeded),
            Some("2026-01-01T00:11:00Z"),
        );
        let again = with_status(again, |s| {
            s.active = Some(vec![ActiveOMJobRef {
                name: run_name("2026-01-01T00:05:00Z"),
                uid: running.metadata.uid.clone(),
            }]);
        });
        let d = run(&again, &[done], "2026-01-01T00:11:01Z");
        assert_eq!(created(&d), [run_name("2026-01-01T00:10:00Z")]);
        assert_eq!(reasons(&d), ["SawCompletedJob", "SuccessfulCreate"]);
        assert_eq!(
            d.status.last_successful_time,
            Some(Time(ts("2026-01-01T00:11:00Z")))
        );
    }

    #[test]
    fn forbid_with_a_deadline_misses_the_slot_instead_of_running_late() {
        let c = with_status(
            cron("*/5 * * * *", |s| {
                s.concurrency_policy = Some(ConcurrencyPolicy::Forbid);
                s.starting_deadline_seconds = Some(30);
            }),
            |s| s.last_schedule_time = Some(Time(ts("2026-01-01T00:05:00Z"))),
        );
        let done = child(
            "2026-01-01T00:05:00Z",
            Some(Phase::Failed),
            Some("2026-01-01T00:11:00Z"),
        );
        let d = run(&c, &[done], "2026-01-01T00:11:01Z");
        assert!(created(&d).is_empty());
        assert_eq!(reasons(&d), ["MissSchedule"]);
    }

    #[test]
    fn allow_starts_alongside_an_active_run() {
        let c = with_status(cron("*/5 * * * *", |_| {}), |s| {
            s.last_schedule_time = Some(Time(ts("2026-01-01T00:05:00Z")));
        });
        let running = child("2026-01-01T00:05:00Z", Some(Phase::Running), None);
        let d = run(&c, &[running], "2026-01-01T00:10:01Z");
        assert_eq!(created(&d), [run_name("2026-01-01T00:10:00Z")]);
        assert_eq!(d.status.active.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn replace_deletes_the_active_run_then_creates() {
        let c = with_status(
            cron("*/5 * * * *", |s| {
                s.concurrency_policy = Some(ConcurrencyPolicy::Replace)
            }),
            |s| s.last_schedule_time = Some(Time(ts("2026-01-01T00:05:00Z"))),
        );
        let running = child("2026-01-01T00:05:00Z", Some(Phase::Pending), None);
        let d = run(&c, std::slice::from_ref(&running), "2026-01-01T00:10:01Z");
        assert_eq!(
            d.actions[0],
            Action::Delete {
                name: run_name("2026-01-01T00:05:00Z"),
                uid: running.metadata.uid.clone()
            }
        );
        assert_eq!(created(&d), [run_name("2026-01-01T00:10:00Z")]);
        assert_eq!(reasons(&d), ["SuccessfulDelete", "SuccessfulCreate"]);
        let active: Vec<_> = d.status.active.unwrap().into_iter().map(|a| a.name).collect();
        assert_eq!(active, [run_name("2026-01-01T00:10:00Z")]);
    }

    #[test]
    fn a_run_being_deleted_is_not_active() {
        let c = with_status(
            cron("*/5 * * * *", |s| {
                s.concurrency_policy = Some(ConcurrencyPolicy::Forbid)
            }),
            |s| s.last_schedule_time = Some(Time(ts("2026-01-01T00:05:00Z"))),
        );
        let mut dying = child("2026-01-01T00:05:00Z", Some(Phase::ExitHandlerRunning), None);
        dying.metadata.deletion_timestamp = Some(Time(ts("2026-01-01T00:09:00Z")));
        let d = run(&c, &[dying], "2026-01-01T00:10:01Z");
        assert_eq!(created(&d), [run_name("2026-01-01T00:10:00Z")]);
    }

    #[test]
    fn suspend_stops_new_runs_and_resume_runs_only_the_latest_slot() {
        let base = with_status(cron("*/5 * * * *", |s| s.suspend = Some(true)), |s| {
            s.last_schedule_time = Some(Time(ts("2026-01-01T00:05:00Z")));
        });
        let d = run(&base, &[], "2026-01-01T01:00:01Z");
        assert!(d.actions.is_empty());
        assert_eq!(d.status.message.as_deref(), Some(MESSAGE_SUSPENDED));
        assert_eq!(d.requeue, None);
        assert!(d.events.is_empty());

        let mut resumed = with_status(base, |s| s.message = Some(MESSAGE_SUSPENDED.into()));
        resumed.spec.suspend = Some(false);
        let d = run(&resumed, &[], "2026-01-01T01:02:00Z");
        assert_eq!(created(&d), [run_name("2026-01-01T01:00:00Z")]);
    }

    #[test]
    fn history_limits_delete_the_oldest_finished_runs_of_each_kind() {
        let c = with_status(
            cron("*/5 * * * *", |s| {
                s.successful_jobs_history_limit = Some(2);
                s.failed_jobs_history_limit = Some(0);
            }),
            |s| s.last_schedule_time = Some(Time(ts("2026-01-01T00:30:00Z"))),
        );
        let kids = [
            child(
                "2026-01-01T00:05:00Z",
                Some(Phase::Succeeded),
                Some("2026-01-01T00:06:00Z"),
            ),
            child(
                "2026-01-01T00:10:00Z",
                Some(Phase::Succeeded),
                Some("2026-01-01T00:11:00Z"),
            ),
            child(
                "2026-01-01T00:15:00Z",
                Some(Phase::Failed),
                Some("2026-01-01T00:16:00Z"),
            ),
            child(
                "2026-01-01T00:20:00Z",
                Some(Phase::Succeeded),
                Some("2026-01-01T00:21:00Z"),
            ),
            child(
                "2026-01-01T00:25:00Z",
                Some(Phase::Succeeded),
                Some("2026-01-01T00:26:00Z"),
            ),
            child("2026-01-01T00:30:00Z", Some(Phase::Running), None),
        ];
        let d = run(&c, &kids, "2026-01-01T00:31:00Z");
        assert_eq!(
            deleted(&d),
            [
                run_name("2026-01-01T00:05:00Z"),
                run_name("2026-01-01T00:10:00Z"),
                run_name("2026-01-01T00:15:00Z"),
            ]
        );
        assert_eq!(reasons(&d), ["SuccessfulDelete"; 3]);
        assert!(
            d.events[2].note.contains("failedJobsHistoryLimit 0"),
            "{:?}",
            d.events
        );
        assert_eq!(
            d.status.last_successful_time,
            Some(Time(ts("2026-01-01T00:26:00Z")))
        );
    }

    #[test]
    fn default_history_limits_keep_three() {
        let c = cron("*/5 * * * *", |_| {});
        let kids: Vec<OMJob> = ["00:05", "00:10", "00:15", "00:20"]
            .iter()
            .map(|m| child(&format!("2026-01-01T{m}:00Z"), Some(Phase::Succeeded), None))
            .collect();
        let d = run(&c, &kids, "2026-01-01T00:21:00Z");
        assert_eq!(deleted(&d), [run_name("2026-01-01T00:05:00Z")]);
    }

    #[test]
    fn history_limits_apply_while_suspended_or_invalid() {
        let kids = [
            child("2026-01-01T00:05:00Z", Some(Phase::Failed), None),
            child("2026-01-01T00:10:00Z", Some(Phase::Failed), None),
        ];
        let c = cron("*/5 * * * *", |s| {
            s.suspend = Some(true);
            s.failed_jobs_history_limit = Some(1);
        });
        assert_eq!(
            deleted(&run(&c, &kids, "2026-01-01T00:11:00Z")),
            [run_name("2026-01-01T00:05:00Z")]
        );
        let c = cron("not a schedule", |s| s.failed_jobs_history_limit = Some(1));
        assert_eq!(
            deleted(&run(&c, &kids, "2026-01-01T00:11:00Z")),
            [run_name("2026-01-01T00:05:00Z")]
        );
    }

    #[test]
    fn an_invalid_schedule_warns_once_and_runs_nothing() {
        let c = cron("61 * * * *", |_| {});
        let d = run(&c, &[], "2026-01-01T02:00:00Z");
        assert!(d.actions.is_empty());
        assert_eq!(d.requeue, None);
        assert_eq!(reasons(&d), ["InvalidSchedule"]);
        assert!(d.events[0].warning);
        let msg = d.status.message.clone().unwrap();
        assert!(
            msg.contains("spec.schedule") && msg.contains("\"61 * * * *\""),
            "{msg}"
        );

        let again = with_status(c, |s| s.message = Some(msg.clone()));
        let d = run(&again, &[], "2026-01-01T02:05:00Z");
        assert!(d.events.is_empty(), "published once, not on every pass");

        // Fixed: the message moves on and the next slot runs (none before the fix is owed,
        // since nothing was recorded and only the latest slot counts).
        let mut fixed = again;
        fixed.spec.schedule = "0 * * * *".into();
        let d = run(&fixed, &[], "2026-01-01T02:00:10Z");
        assert_eq!(created(&d), [run_name("2026-01-01T02:00:00Z")]);
    }

    #[test]
    fn an_unknown_time_zone_warns_and_runs_nothing() {
        let c = cron("* * * * *", |s| s.time_zone = Some("Mars/Olympus_Mons".into()));
        let d = run(&c, &[], "2026-01-01T02:00:00Z");
        assert!(d.actions.is_empty());
        assert_eq!(reasons(&d), ["UnknownTimeZone"]);
        assert!(
            d.status
                .message
                .unwrap()
                .contains("spec.timeZone \"Mars/Olympus_Mons\"")
        );
    }

    #[test]
    fn the_schedule_is_read_in_its_time_zone() {
        // 09:00 in Sydney (UTC+11 in January) is 22:00Z the day before.
        let c = cron("0 9 * * *", |s| s.time_zone = Some("Australia/Sydney".into()));
        let c = with_status(c, |s| {
            s.last_schedule_time = Some(Time(ts("2026-01-01T00:00:30Z")))
        });
        assert!(created(&run(&c, &[], "2026-01-01T21:59:59Z")).is_empty());
        assert_eq!(
            created(&run(&c, &[], "2026-01-01T22:00:01Z")),
            [run_name("2026-01-01T22:00:00Z")]
        );
    }

    #[test]
    fn a_clock_behind_the_creation_time_runs_nothing() {
        let c = cron("* * * * *", |_| {});
        let d = run(&c, &[], "2025-12-31T23:00:00Z");
        assert!(d.actions.is_empty());
        assert!(d.events.is_empty());
    }

    #[test]
    fn the_requeue_is_capped() {
        let c = cron("0 0 1 1 *", |_| {});
        let d = run(&c, &[], "2026-01-02T00:00:00Z");
        assert_eq!(d.requeue, Some(Settings::default().max_requeue));
    }
}
