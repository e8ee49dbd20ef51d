//! The OMJob state machine as a pure function: from the OMJob, its pods, their nodes and the time,
//! decide the next status and the actions that move the run forward.
//!
//! # Guarantees
//! The exit handler runs exactly once per OMJob that has an `exitHandlerSpec`, whatever ended the
//! main stage, because:
//! - every fact needed to resume lives in the OMJob (the upstream status fields, and the reason,
//!   exit code and attempt number in annotations that every CRD schema keeps, see
//!   [`super::bookkeeping`]), never only in memory, and the decision is recomputed from scratch
//!   on each pass;
//! - pod names are deterministic (`<omjob>-main`, `<omjob>-exit`, `<omjob>-exit-<n>`) so a create
//!   repeated after a crash finds the existing pod instead of starting a second one;
//! - the first exit pod's name is its lock, so it is created before the status naming it is
//!   written (a restart in between finds it by name; a main pod deleted meanwhile ends the main
//!   stage as the exit pod was told); a further attempt is recorded (in annotations where the
//!   CRD prunes the status, then in the status) *before* its pod is created, and is made only
//!   after the previous pod was seen lost (deleted, evicted, or on a lost node) before it
//!   finished, at most `max_exit_attempts` times.

use crate::events::reason;
use std::time::Duration;

use k8s_openapi::{
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use omjob_api::{Condition, ConditionStatus, OMJob, OMJobStatus, Phase, names};

use super::outcome::{self, Termination};

/// Annotation that skips the exit handler when the OMJob is deleted (a hard kill).
pub const SKIP_EXIT_HANDLER_ANNOTATION: &str = "omjob.pipelines.openmetadata.org/skip-exit-handler";
/// Condition type: the main stage has ended.
pub const CONDITION_MAIN_FINISHED: &str = "MainStageFinished";
/// Condition type: the exit handler has ended.
pub const CONDITION_EXIT_FINISHED: &str = "ExitHandlerFinished";

/// Operator-wide settings that the decision depends on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a main pod may stay Pending when the OMJob does not say.
    pub pending_timeout: Duration,
    /// How long a pod's node may be not-Ready before the pod counts as lost.
    pub node_lost_grace: Duration,
    /// At most this many exit-handler pods per OMJob.
    pub max_exit_attempts: i32,
    /// Requeue of a non-terminal OMJob when nothing else is due (pods are watched; this is a safety net).
    pub safety_requeue: Duration,
    /// The longest wait after a failed reconcile (`REQUEUE_DELAY_SECONDS`), the cap of the
    /// exponential backoff ([`crate::controller::backoff`]).
    pub requeue_cap: Duration,
    /// What the cluster permits and keeps (node reads, `blockOwnerDeletion`, additive status
    /// fields); read by the IO shell, not by [`decide`].
    pub capabilities: crate::capabilities::Capabilities,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pending_timeout: Duration::from_secs(600),
            node_lost_grace: Duration::from_secs(60),
            max_exit_attempts: 3,
            safety_requeue: Duration::from_secs(300),
            requeue_cap: Duration::from_secs(30),
            capabilities: crate::capabilities::Capabilities::default(),
        }
    }
}

/// What the reconciler saw.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The OMJob.
    pub omjob: &'a OMJob,
    /// Its main pod, if it exists (found by name, owned by this OMJob).
    pub main: Option<&'a Pod>,
    /// The exit pod of the current attempt, if it exists.
    pub exit: Option<&'a Pod>,
    /// Since when the main pod's node has not been Ready.
    pub main_node_down_since: Option<Timestamp>,
    /// Since when the exit pod's node has not been Ready.
    pub exit_node_down_since: Option<Timestamp>,
    /// Why creating the main pod was refused (a permanent API error), if it was.
    pub main_create_error: Option<String>,
    /// Why creating the exit pod was refused, if it was.
    pub exit_create_error: Option<String>,
    /// The current time.
    pub now: Timestamp,
}

/// A change to make in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Add the exit-handler finalizer to the OMJob.
    AddFinalizer,
    /// Remove it: nothing is left to guarantee.
    RemoveFinalizer,
    /// Create the main pod.
    CreateMain,
    /// Delete the main pod (deadline, start timeout, lost node, OMJob deleted).
    DeleteMain {
        /// Delete with grace period 0 (the node does not answer).
        force: bool,
    },
    /// Create the exit pod of attempt `attempt`.
    CreateExit {
        /// 1-based attempt.
        attempt: i32,
    },
    /// Delete an exit pod that was given up on.
    DeleteExit {
        /// Its name.
        name: String,
    },
    /// Delete the OMJob's pods: `ttlSecondsAfterFinished` passed.
    CleanupPods,
}

/// A Kubernetes Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    /// Reason (the Java operator's, where one exists).
    pub reason: &'static str,
    /// Message.
    pub note: String,
    /// Warning rather than Normal.
    pub warning: bool,
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The status to record.
    pub status: OMJobStatus,
    /// Changes to make, in order.
    pub actions: Vec<Action>,
    /// When to look again, if nothing else triggers a reconcile.
    pub requeue: Option<Duration>,
    /// Events for the transitions made.
    pub events: Vec<EventNote>,
}

/// The deterministic name of exit-handler attempt `attempt` (1-based): the wire contract's
/// [`names::exit_attempt_pod_name`], kept here for the operator's call sites.
#[must_use]
pub fn exit_pod_name(omjob: &str, attempt: i32) -> String {
    names::exit_attempt_pod_name(omjob, attempt)
}

/// The OMJob's finalizer.
pub const FINALIZER: &str = "pipelines.openmetadata.org/exit-handler";

fn has_finalizer(omjob: &OMJob) -> bool {
    omjob
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

fn code_text(code: Option<i32>) -> String {
    code.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// Time left until `at` (zero if past).
fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

struct Builder<'a> {
    obs: &'a Observation<'a>,
    settings: &'a Settings,
    status: OMJobStatus,
    actions: Vec<Action>,
    events: Vec<EventNote>,
    wake: Vec<Timestamp>,
}

impl Builder<'_> {
    fn phase(&self) -> Phase {
        self.status.phase.unwrap_or(Phase::Pending)
    }

    fn event(&mut self, reason: &'static str, note: String, warning: bool) {
        self.events.push(EventNote {
            reason,
            note,
            warning,
        });
    }

    fn deleting(&self) -> bool {
        self.obs.omjob.metadata.deletion_timestamp.is_some()
    }

    fn skip_exit_handler(&self) -> bool {
        self.deleting()
            && self
                .obs
                .omjob
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SKIP_EXIT_HANDLER_ANNOTATION))
                .is_some_and(|v| v == "true")
    }

    fn finish(&mut self, phase: Phase, message: String) {
        self.status.phase = Some(phase);
        self.status.message = Some(message);
        if self.status.completion_time.is_none() {
            self.status.completion_time = Some(Time(self.obs.now));
        }
    }

    fn node_lost(&mut self, down_since: Option<Timestamp>) -> bool {
        let Some(since) = down_since else { return false };
        let at = since + signed(self.settings.node_lost_grace);
        if at <= self.obs.now {
            return true;
        }
        self.wake.push(at);
        false
    }

    fn pending_too_long(&mut self, pod: &Pod, timeout: Duration) -> bool {
        if !outcome::is_pending(pod) {
            return false;
        }
        let Some(created) = outcome::created_at(pod) else {
            return false;
        };
        let at = created + signed(timeout);
        if at <= self.obs.now {
            return true;
        }
        self.wake.push(at);
        false
    }

    /// The main stage is over: record why and move on to the exit handler.
    fn main_ended(&mut self, termination: Termination, exit_code: Option<i32>, message: Option<String>) {
        let obs = self.obs;
        self.status.reason = Some(termination.as_str().to_owned());
        self.status.main_pod_exit_code = exit_code;
        let text = message.unwrap_or_else(|| match termination {
            Termination::Completed | Termination::Error | Termination::OomKilled => {
                format!("Main pod completed with exit code: {}", code_text(exit_code))
            }
            other => format!(
                "Main stage ended: {} (exit code: {})",
                other.as_str(),
                code_text(exit_code)
            ),
        });
        let ok = termination == Termination::Completed && exit_code == Some(0);
        self.event(reason::MAIN_POD_COMPLETED, text.clone(), !ok);
        if obs.omjob.spec.exit_handler_spec.is_none() {
            let phase = if ok { Phase::Succeeded } else { Phase::Failed };
            self.finish(phase, format!("{text}; no exit handler configured"));
            return;
        }
        if self.skip_exit_handler() {
            self.finish(
                Phase::Failed,
                format!("{text}; exit handler skipped ({SKIP_EXIT_HANDLER_ANNOTATION})"),
            );
            return;
        }
        self.status.phase = Some(Phase::ExitHandlerRunning);
        self.status.message = Some(text);
        self.status.exit_handler_attempts = Some(1);
        self.exit_stage();
    }

    /// No main pod to judge from, while the first exit pod exists: that pod was created before
    /// the decision naming it was written (exit pod first, as the Java operator also does), and
    /// its main pod was deleted since or never made. The exit pod was told how the main stage
    /// ended; the run records the same, with the message that outcome has.
    fn ended_as_told(&mut self, exit: &Pod) {
        let (termination, code) =
            super::bookkeeping::told_outcome(exit).unwrap_or((Termination::Error, None));
        self.main_ended(termination, code, None);
    }

    fn pending(&mut self) {
        let obs = self.obs;
        if let Some(main) = obs.main {
            self.status.phase = Some(Phase::Running);
            self.status.main_pod_name = main.metadata.name.clone();
            self.status.message = Some("Main pod found".to_owned());
            self.running();
            return;
        }
        if self.deleting() {
            self.main_ended(
                Termination::Deleted,
                None,
                Some("OMJob deleted before its main pod started".into()),
            );
            return;
        }
        if let Some(err) = &obs.main_create_error {
            self.main_ended(
                Termination::CreateFailed,
                None,
                Some(format!("Failed to create main pod: {err}")),
            );
            return;
        }
        if let Some(exit) = obs.exit {
            self.ended_as_told(exit);
            return;
        }
        self.actions.push(Action::CreateMain);
    }

    fn running(&mut self) {
        let obs = self.obs;
        let Some(main) = obs.main else {
            if let Some(exit) = obs.exit {
                self.ended_as_told(exit);
                return;
            }
            self.main_ended(
                Termination::PodDeleted,
                None,
                Some("Main pod was deleted before it finished".into()),
            );
            return;
        };
        if self.status.main_pod_name.is_none() {
            self.status.main_pod_name = main.metadata.name.clone();
        }
        let being_deleted = main.metadata.deletion_timestamp.is_some();
        if let Some(f) = outcome::finished(main) {
            // A pod someone else deleted also ends Failed (SIGTERM); the deletion is the reason.
            let termination = if being_deleted && f.termination == Termination::Error {
                Termination::PodDeleted
            } else {
                f.termination
            };
            self.main_ended(termination, f.exit_code, None);
            return;
        }
        if self.deleting() {
            self.actions.push(Action::DeleteMain { force: false });
            self.main_ended(
                Termination::Deleted,
                None,
                Some("OMJob deleted while its main pod was running".into()),
            );
            return;
        }
        if self.node_lost(obs.main_node_down_since) {
            let node = outcome::node_name(main).unwrap_or("?").to_owned();
            self.actions.push(Action::DeleteMain { force: true });
            self.main_ended(
                Termination::NodeLost,
                None,
                Some(format!("Node {node} of the main pod stopped responding")),
            );
            return;
        }
        if being_deleted {
            // Someone else is deleting it: it ends (PodDeleted) or vanishes; a lost node is
            // covered above.
            return;
        }
        if let (Some(limit), Some(start)) = (
            obs.omjob.spec.active_deadline_seconds,
            self.status.start_time.as_ref(),
        ) {
            let at = start.0 + SignedDuration::from_secs(limit);
            if at <= obs.now {
                self.actions.push(Action::DeleteMain { force: false });
                self.main_ended(
                    Termination::DeadlineExceeded,
                    None,
                    Some(format!(
                        "Run exceeded activeDeadlineSeconds ({limit}s); main pod stopped"
                    )),
                );
                return;
            }
            self.wake.push(at);
        }
        let timeout = obs
            .omjob
            .spec
            .pending_timeout_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.settings.pending_timeout, Duration::from_secs);
        if self.pending_too_long(main, timeout) {
            let detail = outcome::pending_detail(main);
            self.actions.push(Action::DeleteMain { force: false });
            self.main_ended(
                Termination::StartTimeout,
                None,
                Some(format!(
                    "Main pod did not start within {}s ({detail})",
                    timeout.as_secs()
                )),
            );
        }
    }

    fn exit_stage(&mut self) {
        let obs = self.obs;
        let omjob_name = obs.omjob.metadata.name.clone().unwrap_or_default();
        let attempt = self.status.exit_handler_attempts.unwrap_or(1).max(1);
        self.status.exit_handler_attempts = Some(attempt);
        let name = exit_pod_name(&omjob_name, attempt);
        let confirmed = self.status.exit_handler_pod_name.as_deref() == Some(name.as_str());
        let Some(exit) = obs
            .exit
            .filter(|p| p.metadata.name.as_deref() == Some(name.as_str()))
        else {
            if confirmed {
                self.exit_lost(attempt, &name, "it was deleted before it finished");
            } else if let Some(err) = &obs.exit_create_error {
                self.finish(Phase::Failed, format!("Failed to create exit handler: {err}"));
                self.event(
                    reason::RECONCILIATION_ERROR,
                    format!("Failed to create exit handler pod {name}: {err}"),
                    true,
                );
            } else {
                self.actions.push(Action::CreateExit { attempt });
            }
            return;
        };
        if !confirmed {
            // The `ExitHandlerCreated` event is written where the pod is created, once: a
            // reconcile from a cache that has not seen this write yet confirms it again.
            self.status.exit_handler_pod_name = Some(name.clone());
        }
        if let Some(f) = outcome::finished(exit) {
            if f.termination == Termination::Evicted {
                self.exit_lost(attempt, &name, "it was evicted");
            } else {
                self.exit_completed(f.exit_code);
            }
            return;
        }
        if self.node_lost(obs.exit_node_down_since) {
            self.exit_lost(attempt, &name, "its node stopped responding");
            return;
        }
        if exit.metadata.deletion_timestamp.is_some() {
            return;
        }
        if self.pending_too_long(exit, self.settings.pending_timeout) {
            let detail = outcome::pending_detail(exit);
            self.actions.push(Action::DeleteExit { name: name.clone() });
            self.finish(
                Phase::Failed,
                format!("Exit handler pod {name} did not start ({detail})"),
            );
            self.event(
                reason::OMJOB_FAILED,
                format!("Exit handler pod {name} did not start ({detail})"),
                true,
            );
        }
    }

    fn exit_lost(&mut self, attempt: i32, name: &str, why: &str) {
        let max = self.settings.max_exit_attempts.max(1);
        self.actions.push(Action::DeleteExit {
            name: name.to_owned(),
        });
        if attempt >= max {
            let text = format!("Exit handler lost {attempt} time(s), last because {why}; giving up");
            self.event(reason::OMJOB_FAILED, text.clone(), true);
            self.finish(Phase::Failed, text);
            return;
        }
        let next = attempt + 1;
        self.event(
            reason::EXIT_HANDLER_LOST,
            format!("Exit handler pod {name} lost because {why}; starting attempt {next} of {max}"),
            true,
        );
        self.status.exit_handler_attempts = Some(next);
        self.status.message = Some(format!("Exit handler pod {name} lost because {why}; retrying"));
        self.actions.push(Action::CreateExit { attempt: next });
    }

    fn exit_completed(&mut self, code: Option<i32>) {
        self.status.exit_handler_exit_code = code;
        let main_ok = self.status.reason.as_deref() == Some(Termination::Completed.as_str())
            && self.status.main_pod_exit_code == Some(0);
        let mut text = format!("Exit handler completed with exit code: {}", code_text(code));
        // A failed main stage keeps its cause in the final message (the Java operator's message
        // alone would hide why the run failed).
        if !main_ok
            && let Some(cause) = self
                .status
                .message
                .as_deref()
                .filter(|m| !m.starts_with("Exit handler"))
        {
            text = format!(
                "{cause}; exit handler completed with exit code: {}",
                code_text(code)
            );
        }
        if main_ok && code == Some(0) {
            self.event(reason::OMJOB_COMPLETED, text.clone(), false);
            self.finish(Phase::Succeeded, text);
        } else {
            self.event(reason::OMJOB_FAILED, text.clone(), true);
            self.finish(Phase::Failed, text);
        }
    }

    fn terminal(&mut self) {
        let obs = self.obs;
        let Some(ttl) = obs.omjob.spec.ttl_after_finished_seconds() else {
            return;
        };
        let Some(done) = self.status.completion_time.as_ref() else {
            return;
        };
        let at = done.0 + SignedDuration::from_secs(i64::from(ttl));
        if at <= obs.now {
            if obs.main.is_some() || obs.exit.is_some() {
                self.actions.push(Action::CleanupPods);
                self.event(
                    reason::RESOURCES_CLEANED_UP,
                    "Cleaned up pods due to TTL expiration".into(),
                    false,
                );
            }
        } else {
            self.wake.push(at);
        }
    }
}

fn set_condition(
    conds: &mut Vec<Condition>,
    previous: &[Condition],
    kind: &str,
    ok: bool,
    reason: &str,
    now: Timestamp,
) {
    let status = if ok {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let prev = previous.iter().find(|c| c.type_ == kind);
    let since = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    conds.push(Condition {
        type_: kind.to_owned(),
        status,
        reason: Some(reason.to_owned()),
        message: None,
        last_transition_time: since,
    });
}

/// Which pods a reconcile reads before deciding, as `(main, exit)`: the main pod while the main
/// stage is open, the current exit pod while the main stage is open (the first exit pod is
/// created before its attempt is written) and once an attempt is recorded, and both once a
/// finished run's TTL is due (to know whether anything is left to clean up). What else a run needs
/// is settled in its status, so the reconciles a run gets after each stage (its own status and
/// finalizer writes, its pods' last events) cost no API reads. [`decide`] looks at no other pod.
#[must_use]
pub fn pods_to_read(omjob: &OMJob, now: Timestamp) -> (bool, bool) {
    let status = omjob.status.as_ref();
    let attempted = status
        .and_then(|s| s.exit_handler_attempts)
        .is_some_and(|a| a >= 1);
    match status.and_then(|s| s.phase) {
        None | Some(Phase::Pending | Phase::Running) => (true, true),
        Some(Phase::ExitHandlerRunning) => (false, attempted),
        Some(Phase::Succeeded | Phase::Failed) => {
            let due = match (
                omjob.spec.ttl_after_finished_seconds(),
                status.and_then(|s| s.completion_time.as_ref()),
            ) {
                (Some(ttl), Some(done)) => done.0 + SignedDuration::from_secs(i64::from(ttl)) <= now,
                _ => false,
            };
            (due, due && attempted)
        }
    }
}

/// Decides the next status and actions.
#[must_use]
pub fn decide(obs: &Observation<'_>, settings: &Settings) -> Decision {
    let current = obs.omjob.status.clone().unwrap_or_default();
    let mut b = Builder {
        obs,
        settings,
        status: current.clone(),
        actions: Vec::new(),
        events: Vec::new(),
        wake: Vec::new(),
    };
    if b.status.phase.is_none() {
        b.status.phase = Some(Phase::Pending);
    }
    if b.status.start_time.is_none() {
        b.status.start_time = Some(Time(obs.now));
    }
    b.status.observed_generation = obs.omjob.metadata.generation;

    let needs_guarantee = obs.omjob.spec.exit_handler_spec.is_some();
    match b.phase() {
        Phase::Pending => b.pending(),
        Phase::Running => b.running(),
        Phase::ExitHandlerRunning => b.exit_stage(),
        Phase::Succeeded | Phase::Failed => {}
    }
    let terminal = b.phase().is_terminal();
    if terminal {
        b.terminal();
    }
    // The finalizer holds a deleted OMJob until its exit handler finished; once the run is
    // terminal (or the user asked to skip it) there is nothing left to hold it for.
    let holding = needs_guarantee && !terminal && !b.skip_exit_handler();
    if holding && !b.deleting() && !has_finalizer(obs.omjob) {
        b.actions.insert(0, Action::AddFinalizer);
    }
    if !holding && has_finalizer(obs.omjob) {
        b.actions.push(Action::RemoveFinalizer);
    }

    let previous = current.conditions.clone().unwrap_or_default();
    let mut conds = Vec::new();
    let main_reason = b
        .status
        .reason
        .clone()
        .unwrap_or_else(|| b.phase().as_str().to_owned());
    set_condition(
        &mut conds,
        &previous,
        CONDITION_MAIN_FINISHED,
        b.status.reason.is_some(),
        &main_reason,
        obs.now,
    );
    let exit_done = b.status.exit_handler_exit_code.is_some() || terminal;
    let exit_reason = if exit_done {
        b.phase().as_str()
    } else {
        "NotFinished"
    };
    set_condition(
        &mut conds,
        &previous,
        CONDITION_EXIT_FINISHED,
        exit_done,
        exit_reason,
        obs.now,
    );
    b.status.conditions = Some(conds);

    let requeue = if terminal {
        b.wake
            .iter()
            .min()
            .map(|at| until(obs.now, *at) + Duration::from_secs(1))
    } else {
        let safety = settings.safety_requeue;
        Some(
            b.wake
                .iter()
                .min()
                .map_or(safety, |at| until(obs.now, *at).min(safety)),
        )
    };
    Decision {
        status: b.status,
        actions: b.actions,
        requeue,
        events: b.events,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T0: &str = "2026-01-01T00:00:00Z";

    fn at(secs: i64) -> Timestamp {
        T0.parse::<Timestamp>().unwrap() + SignedDuration::from_secs(secs)
    }

    fn omjob(status: serde_json::Value, extra_spec: serde_json::Value) -> OMJob {
        let mut spec = json!({
            "mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"]},
            "exitHandlerSpec": {"image": "i", "command": ["y"]}
        });
        for (k, v) in extra_spec.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(json!({
            "apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
            "metadata": {"name": "j", "namespace": "ns", "uid": "u", "generation": 1,
                         "finalizers": [FINALIZER]},
            "spec": spec, "status": status
        }))
        .unwrap()
    }

    #[test]
    fn pods_are_read_only_while_a_stage_can_still_change_or_the_ttl_is_due() {
        // The first exit pod may exist before its attempt is written (exit pod first).
        let fresh = omjob(json!(null), json!({}));
        assert_eq!(pods_to_read(&fresh, at(0)), (true, true));
        let running = omjob(json!({"phase": "Running"}), json!({}));
        assert_eq!(pods_to_read(&running, at(0)), (true, true));
        // Attempt recorded but Running still in status (a crash between the two writes).
        let recorded = omjob(json!({"phase": "Running", "exitHandlerAttempts": 1}), json!({}));
        assert_eq!(pods_to_read(&recorded, at(0)), (true, true));
        let exiting = omjob(
            json!({"phase": "ExitHandlerRunning", "exitHandlerAttempts": 2}),
            json!({}),
        );
        assert_eq!(pods_to_read(&exiting, at(0)), (false, true));
        let done =
            json!({"phase": "Succeeded", "exitHandlerAttempts": 1, "completionTime": at(0).to_string()});
        assert_eq!(
            pods_to_read(&omjob(done.clone(), json!({})), at(10_000_000)),
            (false, false),
            "no TTL"
        );
        let with_ttl = omjob(done, json!({"ttlSecondsAfterFinished": 60}));
        assert_eq!(pods_to_read(&with_ttl, at(59)), (false, false));
        assert_eq!(pods_to_read(&with_ttl, at(60)), (true, true));
        // Whatever decide() needs at those points it is given: a finished run before its TTL
        // decides nothing from pods.
        let d = decide(&obs(&with_ttl, None, None, 59), &Settings::default());
        assert!(
            d.actions.iter().all(|a| *a != Action::CleanupPods),
            "{:?}",
            d.actions
        );
    }

    fn pod(name: &str, created: i64, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": at(created).to_string()},
            "spec": {"nodeName": "n1", "containers": []},
            "status": status
        }))
        .unwrap()
    }

    fn terminated(code: i32, reason: &str) -> serde_json::Value {
        json!({"phase": if code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [{"name": "main", "image": "i",
            "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason}}}]})
    }

    fn obs<'a>(o: &'a OMJob, main: Option<&'a Pod>, exit: Option<&'a Pod>, now: i64) -> Observation<'a> {
        Observation {
            omjob: o,
            main,
            exit,
            main_node_down_since: None,
            exit_node_down_since: None,
            main_create_error: None,
            exit_create_error: None,
            now: at(now),
        }
    }

    fn running_status() -> serde_json::Value {
        json!({"phase": "Running", "mainPodName": "j-main", "startTime": T0})
    }

    #[test]
    fn a_new_omjob_creates_its_main_pod_and_records_the_start() {
        let o = omjob(json!(null), json!({}));
        let d = decide(&obs(&o, None, None, 5), &Settings::default());
        assert_eq!(d.actions, [Action::CreateMain]);
        assert_eq!(d.status.start_time, Some(Time(at(5))));
    }

    #[test]
    fn a_finished_main_pod_decides_the_outcome_and_the_first_exit_pod() {
        let o = omjob(running_status(), json!({}));
        let main = pod("j-main", 0, terminated(137, "OOMKilled"));
        let d = decide(&obs(&o, Some(&main), None, 10), &Settings::default());
        assert_eq!(d.status.phase, Some(Phase::ExitHandlerRunning));
        assert_eq!(d.status.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(d.status.main_pod_exit_code, Some(137));
        assert_eq!(d.status.exit_handler_attempts, Some(1));
        assert_eq!(d.actions, [Action::CreateExit { attempt: 1 }]);
        // The pod name is only recorded once the pod is seen, so a lost pod can be told apart.
        assert_eq!(d.status.exit_handler_pod_name, None);

        // Created first, it is seen by the next decision, which writes the end and the pod at once.
        let exit = pod("j-exit", 10, json!({"phase": "Pending"}));
        let d = decide(&obs(&o, Some(&main), Some(&exit), 10), &Settings::default());
        assert_eq!(d.status.phase, Some(Phase::ExitHandlerRunning));
        assert_eq!(d.status.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(d.status.exit_handler_pod_name.as_deref(), Some("j-exit"));
        assert!(d.actions.is_empty(), "{:?}", d.actions);
    }

    #[test]
    fn a_main_pod_deleted_after_its_exit_pod_was_created_ends_as_the_exit_pod_was_told() {
        let env = |vars: &[(&str, &str)]| {
            json!(
                vars.iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect::<Vec<_>>()
            )
        };
        let cases = [
            // As this operator tells it: the reason and the code.
            (
                env(&[
                    ("pipelineStatus", "failed"),
                    ("mainPodExitCode", "143"),
                    ("mainPodTerminationReason", "PodDeleted"),
                ]),
                "PodDeleted",
                Some(143),
            ),
            (
                env(&[
                    ("pipelineStatus", "success"),
                    ("mainPodExitCode", "0"),
                    ("mainPodTerminationReason", "Completed"),
                ]),
                "Completed",
                Some(0),
            ),
            // As the Java operator tells it: pipelineStatus only.
            (env(&[("pipelineStatus", "success")]), "Completed", Some(0)),
            (env(&[("pipelineStatus", "failed")]), "Error", None),
        ];
        for (vars, reason, code) in cases {
            let told = vars.to_string();
            for status in [running_status(), json!({"phase": "Pending", "startTime": T0})] {
                let o = omjob(status, json!({}));
                let mut exit = pod("j-exit", 10, json!({"phase": "Running"}));
                exit.spec = Some(
                    serde_json::from_value(json!({"containers": [{"name": "exit", "env": vars}]})).unwrap(),
                );
                let d = decide(&obs(&o, None, Some(&exit), 11), &Settings::default());
                assert_eq!(d.status.phase, Some(Phase::ExitHandlerRunning), "{told}");
                assert_eq!(d.status.reason.as_deref(), Some(reason), "{told}");
                assert_eq!(d.status.main_pod_exit_code, code, "{told}");
                assert_eq!(d.status.exit_handler_pod_name.as_deref(), Some("j-exit"));
                // Neither a second main stage nor a second exit pod.
                assert!(d.actions.is_empty(), "{told}: {:?}", d.actions);
            }
        }
    }

    #[test]
    fn the_deadline_is_measured_from_the_start_time_and_requeued_exactly() {
        let o = omjob(running_status(), json!({"activeDeadlineSeconds": 60}));
        let main = pod("j-main", 0, json!({"phase": "Running"}));
        let before = decide(&obs(&o, Some(&main), None, 59), &Settings::default());
        assert!(before.actions.is_empty());
        assert_eq!(before.requeue, Some(Duration::from_secs(1)));
        let after = decide(&obs(&o, Some(&main), None, 60), &Settings::default());
        assert_eq!(after.status.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(
            after.actions,
            [
                Action::DeleteMain { force: false },
                Action::CreateExit { attempt: 1 }
            ]
        );
    }

    #[test]
    fn a_pending_main_pod_times_out_with_its_waiting_reason() {
        let o = omjob(running_status(), json!({"pendingTimeoutSeconds": 30}));
        let main = pod(
            "j-main",
            0,
            json!({"phase": "Pending", "containerStatuses": [{"name": "main", "image": "i", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no"}}}]}),
        );
        assert!(
            decide(&obs(&o, Some(&main), None, 29), &Settings::default())
                .status
                .reason
                .is_none()
        );
        let d = decide(&obs(&o, Some(&main), None, 30), &Settings::default());
        assert_eq!(d.status.reason.as_deref(), Some("StartTimeout"));
        assert!(d.status.message.unwrap().contains("ImagePullBackOff"));
    }

    #[test]
    fn a_node_down_for_less_than_the_grace_period_is_waited_for() {
        let o = omjob(running_status(), json!({}));
        let main = pod("j-main", 0, json!({"phase": "Running"}));
        let settings = Settings {
            node_lost_grace: Duration::from_secs(60),
            ..Settings::default()
        };
        let mut ob = obs(&o, Some(&main), None, 100);
        ob.main_node_down_since = Some(at(50));
        let d = decide(&ob, &settings);
        assert!(d.status.reason.is_none());
        assert_eq!(d.requeue, Some(Duration::from_secs(10)));
        ob.now = at(110);
        let d = decide(&ob, &settings);
        assert_eq!(d.status.reason.as_deref(), Some("NodeLost"));
        assert_eq!(d.actions[0], Action::DeleteMain { force: true });
    }

    #[test]
    fn a_confirmed_exit_pod_that_vanished_is_replaced_up_to_the_limit() {
        let status = |attempt: i32| {
            json!({"phase": "ExitHandlerRunning", "mainPodName": "j-main", "startTime": T0, "reason": "Completed",
                   "mainPodExitCode": 0, "exitHandlerAttempts": attempt, "exitHandlerPodName": exit_pod_name("j", attempt)})
        };
        let settings = Settings {
            max_exit_attempts: 2,
            ..Settings::default()
        };
        let o = omjob(status(1), json!({}));
        let d = decide(&obs(&o, None, None, 10), &settings);
        assert_eq!(d.status.exit_handler_attempts, Some(2));
        assert_eq!(
            d.actions,
            [
                Action::DeleteExit {
                    name: "j-exit".into()
                },
                Action::CreateExit { attempt: 2 }
            ]
        );
        let o = omjob(status(2), json!({}));
        let d = decide(&obs(&o, None, None, 10), &settings);
        assert_eq!(d.status.phase, Some(Phase::Failed));
        assert!(!d.actions.iter().any(|a| matches!(a, Action::CreateExit { .. })));
    }

    #[test]
    fn an_unconfirmed_exit_pod_is_created_again_under_the_same_name_not_replaced() {
        // A crash between recording attempt 1 and creating its pod: create it, do not count a loss.
        let o = omjob(
            json!({"phase": "ExitHandlerRunning", "startTime": T0, "reason": "Error", "mainPodExitCode": 1, "exitHandlerAttempts": 1}),
            json!({}),
        );
        let d = decide(&obs(&o, None, None, 10), &Settings::default());
        assert_eq!(d.actions, [Action::CreateExit { attempt: 1 }]);
        assert_eq!(d.status.exit_handler_attempts, Some(1));
    }

    #[test]
    fn the_final_phase_needs_both_stages_to_succeed() {
        let base = |code: i32| {
            json!({"phase": "ExitHandlerRunning", "startTime": T0, "reason": if code == 0 { "Completed" } else { "Error" },
                   "mainPodExitCode": code, "exitHandlerAttempts": 1, "exitHandlerPodName": "j-exit"})
        };
        let exit_ok = pod("j-exit", 0, terminated(0, "Completed"));
        let ok = omjob(base(0), json!({}));
        let d = decide(&obs(&ok, None, Some(&exit_ok), 10), &Settings::default());
        assert_eq!(d.status.phase, Some(Phase::Succeeded));
        assert_eq!(d.status.completion_time, Some(Time(at(10))));
        assert!(d.actions.contains(&Action::RemoveFinalizer));
        let failed_main = omjob(base(2), json!({}));
        assert_eq!(
            decide(&obs(&failed_main, None, Some(&exit_ok), 10), &Settings::default())
                .status
                .phase,
            Some(Phase::Failed)
        );
        let exit_bad = pod("j-exit", 0, terminated(1, "Error"));
        assert_eq!(
            decide(&obs(&ok, None, Some(&exit_bad), 10), &Settings::default())
                .status
                .phase,
            Some(Phase::Failed)
        );
    }

    #[test]
    fn pods_are_cleaned_up_when_the_ttl_passes_and_not_before() {
        let o = omjob(
            json!({"phase": "Succeeded", "startTime": T0, "completionTime": at(100).to_string(), "reason": "Completed",
                   "exitHandlerAttempts": 1, "exitHandlerPodName": "j-exit"}),
            json!({"ttlSecondsAfterFinished": 60}),
        );
        let main = pod("j-main", 0, terminated(0, "Completed"));
        let early = decide(&obs(&o, Some(&main), None, 159), &Settings::default());
        assert!(!early.actions.contains(&Action::CleanupPods));
        assert_eq!(early.requeue, Some(Duration::from_secs(2)));
        let due = decide(&obs(&o, Some(&main), None, 160), &Settings::default());
        assert!(due.actions.contains(&Action::CleanupPods));
    }
}
