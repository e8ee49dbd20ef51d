//! Where an OMJob's resumable state lives, whatever CRD schema is installed.
//!
//! OpenMetadata's chart declares only the seven upstream status fields (`phase`, `mainPodName`,
//! `exitHandlerPodName`, `startTime`, `completionTime`, `message`, `mainPodExitCode`); the API
//! server prunes the rest. So what the state machine resumes from beyond those fields is kept in
//! annotations on the OMJob, which every schema keeps: the main stage's outcome, its exit code,
//! and the exit-handler attempt count. They are written before the status write of the same
//! decision (so before the pod of a replacement attempt is created), whenever a status write's
//! answer has not shown that the CRD keeps the additive status fields (`reason`,
//! `exitHandlerAttempts`, ...); where it keeps them, the status is the record and the
//! annotations are not written. The first exit pod needs neither: its name is its lock, and it
//! carries the outcome it was told ([`told_outcome`]).
//!
//! [`hydrate`] folds the annotations back into the status before deciding, and adopts an OMJob
//! the Java operator left in `ExitHandlerRunning` (upstream fields only, no annotations): its
//! exit pod is attempt 1, and the outcome follows `mainPodExitCode` as Java's `pipelineStatus`
//! did.

use omjob_api::Termination;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use omjob_api::{OMJob, OMJobStatus, Phase, annotations};
use serde_json::{Map, Value, json};

/// The bookkeeping the state machine needs beyond the upstream status fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Why the main stage ended (`status.reason`).
    pub outcome: Option<String>,
    /// The main container's exit code.
    pub exit_code: Option<i32>,
    /// How many exit pods were started (`status.exitHandlerAttempts`).
    pub attempts: Option<i32>,
}

impl Recorded {
    /// What the OMJob's annotations hold.
    #[must_use]
    pub fn from_annotations(a: Option<&BTreeMap<String, String>>) -> Self {
        let get = |k: &str| a.and_then(|a| a.get(k)).map(|v| v.trim().to_owned());
        Self {
            outcome: get(annotations::MAIN_OUTCOME).filter(|v| !v.is_empty()),
            exit_code: get(annotations::MAIN_EXIT_CODE).and_then(|v| v.parse().ok()),
            attempts: get(annotations::EXIT_HANDLER_ATTEMPTS)
                .and_then(|v| v.parse().ok())
                .filter(|n: &i32| *n >= 1),
        }
    }

    /// What a decided status says.
    #[must_use]
    pub fn from_status(s: &OMJobStatus) -> Self {
        Self {
            outcome: s.reason.clone(),
            exit_code: if s.reason.is_some() {
                s.main_pod_exit_code
            } else {
                None
            },
            attempts: s.exit_handler_attempts,
        }
    }

    /// The metadata merge patch that records `self` over `current`, or `None` when the
    /// annotations already say so. Keys are only ever set, never removed: a decision never
    /// forgets an outcome or lowers an attempt count.
    #[must_use]
    pub fn patch_over(&self, current: &Self) -> Option<Value> {
        let mut set = Map::new();
        if self.outcome.is_some() && self.outcome != current.outcome {
            set.insert(annotations::MAIN_OUTCOME.into(), json!(self.outcome));
        }
        if let Some(code) = self.exit_code
            && Some(code) != current.exit_code
        {
            set.insert(annotations::MAIN_EXIT_CODE.into(), json!(code.to_string()));
        }
        if let Some(n) = self.attempts
            && current.attempts.is_none_or(|c| n > c)
        {
            set.insert(annotations::EXIT_HANDLER_ATTEMPTS.into(), json!(n.to_string()));
        }
        (!set.is_empty()).then(|| json!({"metadata": {"annotations": set}}))
    }
}

/// The status the state machine decides from: the served status with the annotations folded
/// in (they win: they are written first), and a Java-left exit stage adopted. Returns true
/// when it adopted one, so that the caller can refine the outcome from the exit pod
/// ([`adopt_from_exit_pod`]).
pub fn hydrate(omjob: &mut OMJob) -> bool {
    let rec = Recorded::from_annotations(omjob.metadata.annotations.as_ref());
    if rec == Recorded::default()
        && omjob.status.as_ref().and_then(|s| s.phase) != Some(Phase::ExitHandlerRunning)
    {
        return false;
    }
    let status = omjob.status.get_or_insert_with(OMJobStatus::default);
    if rec.outcome.is_some() {
        status.reason.clone_from(&rec.outcome);
    }
    if rec.exit_code.is_some() {
        status.main_pod_exit_code = rec.exit_code;
    }
    if let Some(n) = rec.attempts {
        status.exit_handler_attempts = Some(status.exit_handler_attempts.unwrap_or(0).max(n));
        // An attempt is recorded only once the main stage is over; a status still saying
        // Pending or Running is one whose write did not happen (a crash between the two).
        if matches!(status.phase, None | Some(Phase::Pending | Phase::Running)) {
            status.phase = Some(Phase::ExitHandlerRunning);
        }
    }
    let adopt = status.phase == Some(Phase::ExitHandlerRunning) && status.exit_handler_attempts.is_none();
    if adopt {
        // The Java operator's exit stage: its exit pod (if created) is `<omjob>-exit`, which is
        // attempt 1 here, so it is watched to its end and never counted lost for want of a
        // count. Java told that pod `success` exactly when the main exit code was 0.
        status.exit_handler_attempts = Some(1);
        if status.reason.is_none() {
            status.reason = Some(
                if status.main_pod_exit_code == Some(0) {
                    Termination::Completed.as_str()
                } else {
                    Termination::Error.as_str()
                }
                .to_owned(),
            );
        }
    }
    adopt
}

/// The `pipelineStatus` an exit pod was given: this operator's annotation, else the env var
/// (all a Java operator's exit pod carries).
#[must_use]
pub fn given_pipeline_status(pod: &Pod) -> Option<String> {
    if let Some(v) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::PIPELINE_STATUS))
    {
        return Some(v.clone());
    }
    pod.spec
        .as_ref()?
        .containers
        .first()?
        .env
        .as_ref()?
        .iter()
        .rev()
        .find(|e| e.name == omjob_api::env::PIPELINE_STATUS)?
        .value
        .clone()
}

/// How the main stage ended, as an exit pod was told it: the reason and exit code in its
/// environment (this operator's, and the Java operator's), else `pipelineStatus` alone
/// (`success` is exit code 0).
#[must_use]
pub fn told_outcome(pod: &Pod) -> Option<(Termination, Option<i32>)> {
    let env = pod.spec.as_ref()?.containers.first()?.env.as_ref();
    let var = |name: &str| {
        env?.iter()
            .rev()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    let code = var(omjob_api::env::MAIN_POD_EXIT_CODE).and_then(|v| v.trim().parse().ok());
    if let Some(reason) = var(omjob_api::env::MAIN_POD_TERMINATION_REASON).and_then(|v| v.parse().ok()) {
        return Some((reason, code));
    }
    let given = given_pipeline_status(pod)?;
    Some(if given == omjob_api::env::PIPELINE_STATUS_SUCCESS {
        (Termination::Completed, Some(0))
    } else {
        (Termination::Error, code)
    })
}

/// Refines an adopted exit stage's outcome from what its exit pod was told: a Java operator
/// that gave it `success` had seen the main stage exit 0, whatever `mainPodExitCode` says
/// (Java writes the status after creating the pod, so the code may be missing).
pub fn adopt_from_exit_pod(omjob: &mut OMJob, exit: &Pod) {
    let Some(given) = given_pipeline_status(exit) else {
        return;
    };
    let Some(status) = omjob.status.as_mut() else {
        return;
    };
    if given == omjob_api::env::PIPELINE_STATUS_SUCCESS {
        status.reason = Some(Termination::Completed.as_str().to_owned());
        status.main_pod_exit_code.get_or_insert(0);
    } else if status.reason.as_deref() == Some(Termination::Completed.as_str()) {
        status.reason = Some(Termination::Error.as_str().to_owned());
    }
}

/// `status` without the fields the installed CRD prunes, when it prunes them.
#[must_use]
pub fn kept(status: &OMJobStatus, additive_kept: bool) -> OMJobStatus {
    if additive_kept {
        return status.clone();
    }
    OMJobStatus {
        reason: None,
        exit_handler_exit_code: None,
        exit_handler_attempts: None,
        observed_generation: None,
        conditions: None,
        ..status.clone()
    }
}

/// A JSON merge patch of the status subresource that makes `served` into `new`: every field of
/// `new`, and an explicit `null` for each field `served` has and `new` does not (a merge patch
/// leaves out-of-patch fields alone, where a server-side apply by the sole manager drops them).
///
/// # Errors
/// When a status does not serialise (never, for these types).
pub fn status_merge_patch(
    served: Option<&OMJobStatus>,
    new: &OMJobStatus,
) -> Result<Value, serde_json::Error> {
    let mut body = serde_json::to_value(new)?;
    if let (Some(old), Value::Object(map)) = (served.map(serde_json::to_value).transpose()?, &mut body)
        && let Value::Object(old) = old
    {
        for key in old.keys() {
            map.entry(key.clone()).or_insert(Value::Null);
        }
    }
    Ok(json!({ "status": body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn omjob(status: Value, annotations: Value) -> OMJob {
        serde_json::from_value(json!({
            "apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
            "metadata": {"name": "j", "namespace": "ns", "annotations": annotations},
            "spec": {"mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"]},
                     "exitHandlerSpec": {"image": "i", "command": ["y"]}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn pruned_state_is_restored_from_annotations() {
        let mut o = omjob(
            json!({"phase": "ExitHandlerRunning", "exitHandlerPodName": "j-exit-2", "mainPodExitCode": 137}),
            json!({annotations::MAIN_OUTCOME: "OOMKilled", annotations::MAIN_EXIT_CODE: "137",
                   annotations::EXIT_HANDLER_ATTEMPTS: "2"}),
        );
        hydrate(&mut o);
        let s = o.status.unwrap();
        assert_eq!(s.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(s.exit_handler_attempts, Some(2));
        assert_eq!(s.main_pod_exit_code, Some(137));
    }

    #[test]
    fn an_attempt_recorded_before_a_lost_status_write_moves_the_phase_on() {
        let mut o = omjob(
            json!({"phase": "Running", "mainPodName": "j-main"}),
            json!({annotations::MAIN_OUTCOME: "Completed", annotations::MAIN_EXIT_CODE: "0",
                   annotations::EXIT_HANDLER_ATTEMPTS: "1"}),
        );
        hydrate(&mut o);
        let s = o.status.unwrap();
        assert_eq!(s.phase, Some(Phase::ExitHandlerRunning));
        assert_eq!(s.main_pod_exit_code, Some(0));
    }

    #[test]
    fn a_java_exit_stage_is_adopted_as_attempt_one() {
        for (code, reason) in [
            (json!(0), "Completed"),
            (json!(2), "Error"),
            (json!(null), "Error"),
        ] {
            let mut o = omjob(
                json!({"phase": "ExitHandlerRunning", "mainPodName": "j-main", "exitHandlerPodName": "j-exit",
                       "mainPodExitCode": code}),
                json!(null),
            );
            hydrate(&mut o);
            let s = o.status.unwrap();
            assert_eq!(s.exit_handler_attempts, Some(1));
            assert_eq!(s.reason.as_deref(), Some(reason));
        }
        // Other phases without annotations are left as served.
        let mut o = omjob(json!({"phase": "Running"}), json!(null));
        let before = o.clone();
        assert!(!hydrate(&mut o));
        assert_eq!(o, before);
    }

    #[test]
    fn an_adopted_exit_stage_follows_what_its_pod_was_told() {
        let pod = |status: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "j-exit"}, "spec": {"containers": [
                {"name": "main", "env": [{"name": "pipelineStatus", "value": status}]}]}}))
            .unwrap()
        };
        let mut o = omjob(
            json!({"phase": "ExitHandlerRunning", "exitHandlerPodName": "j-exit"}),
            json!(null),
        );
        assert!(hydrate(&mut o));
        adopt_from_exit_pod(&mut o, &pod("success"));
        let s = o.status.clone().unwrap();
        assert_eq!(
            (s.reason.as_deref(), s.main_pod_exit_code),
            (Some("Completed"), Some(0))
        );
        adopt_from_exit_pod(&mut o, &pod("failed"));
        assert_eq!(o.status.unwrap().reason.as_deref(), Some("Error"));
    }

    #[test]
    fn annotations_are_patched_only_with_news() {
        let current = Recorded {
            outcome: Some("Completed".into()),
            exit_code: Some(0),
            attempts: Some(1),
        };
        assert_eq!(current.patch_over(&current), None);
        assert_eq!(Recorded::default().patch_over(&current), None);
        let next = Recorded {
            attempts: Some(2),
            ..current.clone()
        };
        assert_eq!(
            next.patch_over(&current),
            Some(json!({"metadata": {"annotations": {annotations::EXIT_HANDLER_ATTEMPTS: "2"}}}))
        );
        assert_eq!(
            current.patch_over(&next),
            None,
            "an attempt count never goes down"
        );
    }

    #[test]
    fn the_merge_patch_clears_what_the_new_status_drops() {
        let served = OMJobStatus {
            message: Some("old".into()),
            main_pod_name: Some("j-main".into()),
            ..OMJobStatus::default()
        };
        let new = OMJobStatus {
            main_pod_name: Some("j-main".into()),
            phase: Some(Phase::Running),
            ..OMJobStatus::default()
        };
        let p = status_merge_patch(Some(&served), &new).unwrap();
        assert_eq!(
            p,
            json!({"status": {"phase": "Running", "mainPodName": "j-main", "message": null}})
        );
        let pruned = kept(
            &OMJobStatus {
                reason: Some("Error".into()),
                exit_handler_attempts: Some(1),
                ..new.clone()
            },
            false,
        );
        assert_eq!(pruned, new);
    }
}
