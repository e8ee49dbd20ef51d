//! Why a main stage ended, and how a pod ended as its status shows it: the termination reasons of
//! the wire contract (`status.reason`, the exit pod's `mainPodTerminationReason`) and the one rule
//! that reads a finished pod, used by the operator for OMJob pods and by the pipeline service for
//! Job pods alike.
//!
//! The rule (reference §3.2), for a pod in phase `Succeeded` or `Failed`, in this order:
//!
//! | Pod shows | Termination |
//! |---|---|
//! | `status.reason` `Evicted`, `Preempting` or `Preempted` | [`Termination::Evicted`] |
//! | `status.reason` `DeadlineExceeded` (the pod's `activeDeadlineSeconds`) | [`Termination::DeadlineExceeded`] |
//! | first terminated container's reason `OOMKilled` | [`Termination::OomKilled`] |
//! | phase `Succeeded` and exit code 0 (or none reported) | [`Termination::Completed`] |
//! | anything else | [`Termination::Error`] |
//!
//! A pod in any other phase (`Pending`, `Running`, `Unknown`, or none yet) has not finished,
//! even when one of its containers has terminated: the kubelet has not decided the pod yet.

use std::{fmt, str::FromStr};

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};

use crate::env;

/// Why the main stage ended. The string is written to `status.reason` and passed to the exit pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Termination {
    /// The container exited 0.
    Completed,
    /// The container exited non-zero or crashed.
    Error,
    /// The container was OOM-killed.
    OomKilled,
    /// The pod was evicted or preempted.
    Evicted,
    /// Someone else deleted the main pod.
    PodDeleted,
    /// The main pod's node stopped reporting for longer than the grace period.
    NodeLost,
    /// The main pod could not be created.
    CreateFailed,
    /// The main pod never started within the pending timeout.
    StartTimeout,
    /// `spec.activeDeadlineSeconds` passed.
    DeadlineExceeded,
    /// The OMJob was deleted while it ran.
    Deleted,
}

impl Termination {
    /// Every reason.
    pub const ALL: [Self; 10] = [
        Self::Completed,
        Self::Error,
        Self::OomKilled,
        Self::Evicted,
        Self::PodDeleted,
        Self::NodeLost,
        Self::CreateFailed,
        Self::StartTimeout,
        Self::DeadlineExceeded,
        Self::Deleted,
    ];

    /// The `status.reason` string.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "Completed",
            Self::Error => "Error",
            Self::OomKilled => "OOMKilled",
            Self::Evicted => "Evicted",
            Self::PodDeleted => "PodDeleted",
            Self::NodeLost => "NodeLost",
            Self::CreateFailed => "CreateFailed",
            Self::StartTimeout => "StartTimeout",
            Self::DeadlineExceeded => "DeadlineExceeded",
            Self::Deleted => "Deleted",
        }
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the termination reasons (the match is case-sensitive).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse termination reason: '{0}' is not one of Completed, Error, OOMKilled, ...")]
pub struct ParseTerminationError(pub String);

impl FromStr for Termination {
    type Err = ParseTerminationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ParseTerminationError(s.to_owned()))
    }
}

/// Whether a main stage that ended with `reason` and `exit_code` succeeded: only
/// [`Termination::Completed`] with exit code 0. An unknown exit code is not a success.
#[must_use]
pub fn succeeded(reason: &str, exit_code: Option<i32>) -> bool {
    reason == Termination::Completed.as_str() && exit_code == Some(0)
}

/// The `pipelineStatus` the exit handler is given for that main stage:
/// [`env::PIPELINE_STATUS_SUCCESS`] when it [`succeeded`], else [`env::PIPELINE_STATUS_FAILED`].
#[must_use]
pub fn pipeline_status(reason: &str, exit_code: Option<i32>) -> &'static str {
    if succeeded(reason, exit_code) {
        env::PIPELINE_STATUS_SUCCESS
    } else {
        env::PIPELINE_STATUS_FAILED
    }
}

/// What a finished pod's first terminated container reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// How it ended.
    pub termination: Termination,
    /// The container's exit code, when the kubelet reported one.
    pub exit_code: Option<i32>,
}

/// The pod's phase; `Pending` while it has none yet.
#[must_use]
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The first terminated entry of `containerStatuses` (reference §3.2), whatever the pod's phase.
#[must_use]
pub fn first_terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| c.state.as_ref().and_then(|s| s.terminated.as_ref()))
}

/// How the pod ended, if it did (phase `Succeeded` or `Failed`), by the rule in the module docs.
///
/// # Caveats
/// Only what the pod shows: a deletion, a lost node or a create that never happened are judged
/// by the operator from the OMJob and the API, not here. A pod with several containers is judged
/// by its first terminated one; OMJob and pipeline pods have one container.
#[must_use]
pub fn finished(pod: &Pod) -> Option<Finished> {
    let phase = pod_phase(pod);
    if phase != "Succeeded" && phase != "Failed" {
        return None;
    }
    let terminated = first_terminated(pod);
    let exit_code = terminated.map(|t| t.exit_code);
    let pod_reason = pod.status.as_ref().and_then(|s| s.reason.as_deref());
    let termination = if matches!(pod_reason, Some("Evicted" | "Preempting" | "Preempted")) {
        Termination::Evicted
    } else if pod_reason == Some("DeadlineExceeded") {
        Termination::DeadlineExceeded
    } else if terminated.and_then(|t| t.reason.as_deref()) == Some("OOMKilled") {
        Termination::OomKilled
    } else if phase == "Succeeded" && exit_code.unwrap_or(0) == 0 {
        Termination::Completed
    } else {
        Termination::Error
    };
    Some(Finished {
        termination,
        exit_code,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    fn container(state: Value) -> Value {
        json!({"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state})
    }

    fn terminated(phase: &str, code: i32, reason: &str) -> Pod {
        pod(json!({"phase": phase, "containerStatuses": [
            container(json!({"terminated": {"exitCode": code, "reason": reason}}))]}))
    }

    fn judged(p: &Pod) -> Option<(Termination, Option<i32>)> {
        finished(p).map(|f| (f.termination, f.exit_code))
    }

    #[test]
    fn reasons_round_trip_through_their_strings() {
        for t in Termination::ALL {
            assert_eq!(t.as_str().parse::<Termination>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(
            "oomkilled".parse::<Termination>(),
            Err(ParseTerminationError("oomkilled".into()))
        );
    }

    #[test]
    fn container_outcomes_map_to_reasons() {
        assert_eq!(
            judged(&terminated("Succeeded", 0, "Completed")),
            Some((Termination::Completed, Some(0)))
        );
        assert_eq!(
            judged(&terminated("Failed", 2, "Error")),
            Some((Termination::Error, Some(2)))
        );
        assert_eq!(
            judged(&terminated("Failed", 137, "OOMKilled")),
            Some((Termination::OomKilled, Some(137)))
        );
        assert_eq!(
            judged(&terminated("Failed", 128, "StartError")),
            Some((Termination::Error, Some(128))),
            "kubelet reasons other than OOMKilled are errors"
        );
    }

    #[test]
    fn the_pods_own_reason_wins_over_the_container() {
        for reason in ["Evicted", "Preempting", "Preempted"] {
            let mut p = terminated("Failed", 137, "OOMKilled");
            p.status.as_mut().unwrap().reason = Some(reason.into());
            assert_eq!(judged(&p), Some((Termination::Evicted, Some(137))), "{reason}");
        }
        assert_eq!(
            judged(&pod(json!({"phase": "Failed", "reason": "Evicted"}))),
            Some((Termination::Evicted, None))
        );
        assert_eq!(
            judged(&pod(json!({"phase": "Failed", "reason": "DeadlineExceeded"}))),
            Some((Termination::DeadlineExceeded, None))
        );
    }

    #[test]
    fn a_failed_pod_is_an_error_even_when_its_container_exited_zero() {
        assert_eq!(
            judged(&terminated("Failed", 0, "Completed")),
            Some((Termination::Error, Some(0)))
        );
        assert_eq!(
            judged(&pod(json!({"phase": "Succeeded"}))),
            Some((Termination::Completed, None)),
            "a succeeded pod without container statuses"
        );
    }

    #[test]
    fn a_pod_not_in_a_final_phase_has_not_finished() {
        for phase in ["Pending", "Running", "Unknown"] {
            assert_eq!(judged(&pod(json!({"phase": phase}))), None, "{phase}");
            assert_eq!(judged(&terminated(phase, 1, "Error")), None, "{phase}");
        }
        assert_eq!(judged(&pod(json!({}))), None);
        assert_eq!(pod_phase(&pod(json!({}))), "Pending");
    }

    #[test]
    fn the_first_terminated_container_is_the_one_judged() {
        let p = pod(json!({"phase": "Failed", "containerStatuses": [
            container(json!({"running": {}})),
            container(json!({"terminated": {"exitCode": 3, "reason": "Error"}})),
            container(json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}))]}));
        assert_eq!(first_terminated(&p).map(|t| t.exit_code), Some(3));
        assert_eq!(judged(&p), Some((Termination::Error, Some(3))));
    }

    #[test]
    fn only_completed_with_exit_zero_is_a_success() {
        assert!(succeeded("Completed", Some(0)));
        assert_eq!(
            pipeline_status("Completed", Some(0)),
            env::PIPELINE_STATUS_SUCCESS
        );
        for (reason, code) in [
            ("Completed", None),
            ("Completed", Some(1)),
            ("Error", Some(0)),
            ("OOMKilled", Some(137)),
            ("PodDeleted", None),
        ] {
            assert!(!succeeded(reason, code), "{reason} {code:?}");
            assert_eq!(pipeline_status(reason, code), env::PIPELINE_STATUS_FAILED);
        }
    }
}
