//! What a run is and how its state is read from a Job (standard mode) or an OMJob (operator
//! mode) and its pods. Pure: the caller lists the objects, these functions judge them.

use k8s_openapi::{
    api::{batch::v1::Job, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::Time,
};
use kube::ResourceExt as _;
use omjob_api::{
    OMJob, Phase,
    labels::LABEL_APP_RUN_ID,
    termination::{self, Termination},
};
use serde::Serialize;

use crate::diagnostics::Diagnostics;

/// The state of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RunState {
    /// Created; no container has started yet.
    Queued,
    /// Running (for OMJobs: the main stage or the exit handler).
    Running,
    /// Finished successfully.
    Success,
    /// Finished unsuccessfully; `reason` says why.
    Failed,
}

impl RunState {
    /// Whether the run has finished.
    #[must_use]
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Success | Self::Failed)
    }

    /// The lower-case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
        }
    }
}

/// One run of a pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The run id: the `run-id` label of on-demand runs, the resource name of scheduled ones.
    pub run_id: String,
    /// `Job` or `OMJob`.
    pub kind: String,
    /// The Job or OMJob name.
    pub resource: String,
    /// Whether a schedule started it.
    pub scheduled: bool,
    /// Its state.
    pub state: RunState,
    /// When it started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// For failures: OOMKilled, Evicted, DeadlineExceeded, Error, BackoffLimitExceeded, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For a failed run's detail: the pod's description, log tail and events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
    /// When the resource was created, for ordering.
    #[serde(skip)]
    pub created: Option<Time>,
}

fn ts(t: Option<&Time>) -> Option<String> {
    t.map(|t| t.0.to_string())
}

/// Why a finished pod failed, as a run's reason and message, if it failed: the termination
/// reason by the wire contract's rule ([`termination::finished`], the operator's for OMJob pods),
/// so a Job's run and an OMJob's run report one pod ending alike. `None` while the pod has not
/// finished, and when it completed.
///
/// The message keeps what the reason folds away: the exit code, and the kubelet's own reason
/// when it is more specific than `Error` (`StartError`, `ContainerCannotRun`...); for an eviction,
/// the pod's message.
#[must_use]
pub fn pod_failure(pod: &Pod) -> Option<(String, Option<String>)> {
    let finished = termination::finished(pod)?;
    let pod_message = pod.status.as_ref().and_then(|s| s.message.clone());
    let message = match (finished.termination, finished.exit_code) {
        (Termination::Completed, _) => return None,
        (Termination::Evicted, _) | (_, None) => pod_message,
        (t, Some(code)) => {
            let kubelet = termination::first_terminated(pod)
                .and_then(|c| c.reason.as_deref())
                .filter(|r| *r != t.as_str() && *r != Termination::Error.as_str());
            Some(match kubelet {
                Some(r) => format!("main container exited with code {code} ({r})"),
                None => format!("main container exited with code {code}"),
            })
        }
    };
    Some((finished.termination.as_str().to_owned(), message))
}

/// The run a Job stands for; `pods` are all of the pipeline's pods (those of this Job are
/// picked by the `job-name` label).
#[must_use]
pub fn from_job(job: &Job, pods: &[Pod]) -> Run {
    let name = job.name_any();
    let mine: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.labels().get("job-name") == Some(&name))
        .collect();
    let status = job.status.clone().unwrap_or_default();
    let condition = |t: &str| {
        status
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == t && c.status == "True"))
            .cloned()
    };
    let (mut reason, mut message, mut end) = (None, None, None);
    let state = if let Some(c) = condition("Complete") {
        end = status.completion_time.clone().or(c.last_transition_time);
        RunState::Success
    } else if let Some(c) = condition("Failed") {
        end = c.last_transition_time.clone();
        // A deadline is the Job's own verdict; otherwise the pod says best what happened.
        let from_pod = mine.iter().rev().find_map(|p| pod_failure(p));
        match (c.reason.as_deref(), from_pod) {
            (Some("DeadlineExceeded"), _) | (_, None) => {
                reason = c.reason.clone();
                message = c.message.clone();
            }
            (_, Some((r, m))) => {
                reason = Some(r);
                message = m.or(c.message.clone());
            }
        }
        RunState::Failed
    } else if mine
        .iter()
        .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    {
        RunState::Running
    } else {
        RunState::Queued
    };
    let run_id = job.labels().get(LABEL_APP_RUN_ID).cloned();
    Run {
        scheduled: run_id.is_none() || job.owner_references().iter().any(|o| o.kind == "CronJob"),
        run_id: run_id.unwrap_or_else(|| name.clone()),
        kind: "Job".into(),
        resource: name,
        state,
        start_time: ts(status.start_time.as_ref()),
        end_time: ts(end.as_ref()),
        reason,
        message,
        diagnostics: None,
        created: job.metadata.creation_timestamp.clone(),
    }
}

/// The run an OMJob stands for.
#[must_use]
pub fn from_omjob(o: &OMJob) -> Run {
    let status = o.status.clone().unwrap_or_default();
    let state = match status.phase {
        None | Some(Phase::Pending) => RunState::Queued,
        Some(Phase::Running | Phase::ExitHandlerRunning) => RunState::Running,
        Some(Phase::Succeeded) => RunState::Success,
        Some(Phase::Failed) => RunState::Failed,
    };
    let name = o.name_any();
    let run_id = o.labels().get(LABEL_APP_RUN_ID).cloned();
    let failed = state == RunState::Failed;
    Run {
        scheduled: run_id.is_none() || o.owner_references().iter().any(|r| r.kind == "CronOMJob"),
        run_id: run_id.unwrap_or_else(|| name.clone()),
        kind: "OMJob".into(),
        resource: name,
        state,
        start_time: ts(status.start_time.as_ref()),
        end_time: ts(status.completion_time.as_ref()),
        reason: if failed { status.reason.clone() } else { None },
        message: status.message.clone(),
        diagnostics: None,
        created: o.metadata.creation_timestamp.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(
            json!({"metadata": {"name": "j1", "labels": {"app.kubernetes.io/run-id": "r1"}},
            "status": status}),
        )
        .unwrap()
    }

    fn pod(phase: &str, term: Option<(i32, &str)>) -> Pod {
        let mut status = json!({"phase": phase});
        if let Some((code, reason)) = term {
            status["containerStatuses"] = json!([{"name": "main", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason}}}]);
        }
        serde_json::from_value(
            json!({"metadata": {"name": "j1-x", "labels": {"job-name": "j1"}}, "status": status}),
        )
        .unwrap()
    }

    #[test]
    fn job_states() {
        assert_eq!(from_job(&job(json!({})), &[]).state, RunState::Queued);
        assert_eq!(
            from_job(&job(json!({"active": 1})), &[pod("Pending", None)]).state,
            RunState::Queued
        );
        assert_eq!(
            from_job(&job(json!({"active": 1})), &[pod("Running", None)]).state,
            RunState::Running
        );
        let done = from_job(
            &job(
                json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1,
                        "completionTime": "2026-01-01T00:00:00Z", "startTime": "2025-12-31T23:59:00Z"}),
            ),
            &[],
        );
        assert_eq!(
            (done.state, done.run_id.as_str(), done.scheduled),
            (RunState::Success, "r1", false)
        );
        assert_eq!(done.end_time.as_deref(), Some("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn failure_reasons_prefer_the_pod_except_for_deadlines() {
        let failed = |reason: &str| {
            job(json!({"conditions": [{"type": "Failed", "status": "True", "reason": reason}]}))
        };
        let oom = from_job(
            &failed("BackoffLimitExceeded"),
            &[pod("Failed", Some((137, "OOMKilled")))],
        );
        assert_eq!(
            (oom.state, oom.reason.as_deref()),
            (RunState::Failed, Some("OOMKilled"))
        );
        let deadline = from_job(
            &failed("DeadlineExceeded"),
            &[pod("Failed", Some((137, "Error")))],
        );
        assert_eq!(deadline.reason.as_deref(), Some("DeadlineExceeded"));
        let gone = from_job(&failed("BackoffLimitExceeded"), &[]);
        assert_eq!(gone.reason.as_deref(), Some("BackoffLimitExceeded"));
    }

    #[test]
    fn a_failed_pod_is_judged_by_the_operators_rule() {
        let with_reason = |mut p: Pod, reason: &str, message: &str| {
            let status = p.status.as_mut().unwrap();
            status.reason = Some(reason.into());
            status.message = Some(message.into());
            p
        };
        assert_eq!(
            pod_failure(&pod("Failed", Some((137, "OOMKilled")))),
            Some((
                "OOMKilled".into(),
                Some("main container exited with code 137".into())
            ))
        );
        assert_eq!(
            pod_failure(&pod("Failed", Some((128, "StartError")))),
            Some((
                "Error".into(),
                Some("main container exited with code 128 (StartError)".into())
            )),
            "the reason is the contract's, the kubelet's detail stays in the message"
        );
        assert_eq!(
            pod_failure(&with_reason(
                pod("Failed", Some((137, "Error"))),
                "Preempted",
                "preempted by p"
            )),
            Some(("Evicted".into(), Some("preempted by p".into())))
        );
        assert_eq!(
            pod_failure(&with_reason(pod("Failed", None), "Evicted", "low on memory")),
            Some(("Evicted".into(), Some("low on memory".into())))
        );
        assert_eq!(
            pod_failure(&pod("Failed", Some((0, "Completed")))).map(|f| f.0),
            Some("Error".into()),
            "a failed pod failed, whatever its container's exit code"
        );
        assert_eq!(pod_failure(&pod("Succeeded", Some((0, "Completed")))), None);
        assert_eq!(
            pod_failure(&pod("Running", Some((1, "Error")))),
            None,
            "not finished yet"
        );
    }

    #[test]
    fn omjob_phases_map_to_states() {
        let o = |phase: &str| -> OMJob {
            serde_json::from_value(json!({"apiVersion": omjob_api::API_VERSION, "kind": "OMJob",
                "metadata": {"name": "o"}, "spec": {"mainPodSpec": {"image": "i", "command": ["x"]}},
                "status": {"phase": phase, "reason": "OOMKilled"}}))
            .unwrap()
        };
        assert_eq!(from_omjob(&o("Pending")).state, RunState::Queued);
        assert_eq!(from_omjob(&o("ExitHandlerRunning")).state, RunState::Running);
        let f = from_omjob(&o("Failed"));
        assert_eq!(
            (f.state, f.reason.as_deref(), f.scheduled),
            (RunState::Failed, Some("OOMKilled"), true)
        );
        assert_eq!(from_omjob(&o("Succeeded")).reason, None);
    }
}
