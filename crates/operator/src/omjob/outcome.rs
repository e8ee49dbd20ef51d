//! How a pod ended, read from what the API shows: the termination reasons the exit handler is
//! told, and the signs, on the pod itself, that its node stopped answering.

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};

/// Why the main stage ended. The string is written to `status.reason` and passed to the exit pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What a finished pod's first container reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// How it ended.
    pub termination: Termination,
    /// The container's exit code, when the kubelet reported one.
    pub exit_code: Option<i32>,
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The first container's terminated state (reference §3.2: "the first terminated entry").
fn first_terminated(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStateTerminated> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| c.state.as_ref().and_then(|s| s.terminated.as_ref()))
}

/// How the pod ended, if it did (phase `Succeeded` or `Failed`).
#[must_use]
pub fn finished(pod: &Pod) -> Option<Finished> {
    let phase = phase(pod);
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

/// True while the pod has not been bound to a node and started its container.
#[must_use]
pub fn is_pending(pod: &Pod) -> bool {
    phase(pod) == "Pending"
}

/// A short description of why a pending pod does not start (image pull, unschedulable...).
#[must_use]
pub fn pending_detail(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find_map(|c| c.state.as_ref()?.waiting.as_ref()));
    if let Some(w) = waiting {
        return format!(
            "{}: {}",
            w.reason.as_deref().unwrap_or("Waiting"),
            w.message.as_deref().unwrap_or("")
        );
    }
    let unscheduled = status.and_then(|s| s.conditions.as_ref()).and_then(|c| {
        c.iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    });
    match unscheduled {
        Some(c) => format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or("Unschedulable"),
            c.message.as_deref().unwrap_or("")
        ),
        None => "not started".to_owned(),
    }
}

/// When the pod was created.
#[must_use]
pub fn created_at(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The node the pod is bound to.
#[must_use]
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Ready-condition reasons the kubelet itself writes: a pod not Ready for one of these is
/// starting or stopping, not cut off from its node.
const KUBELET_NOT_READY_REASONS: [&str; 3] = ["ContainersNotReady", "PodCompleted", "ReadinessGatesNotReady"];

/// Since when the pod itself shows that its node stopped answering, for when Nodes cannot be
/// read (OpenMetadata's chart grants no node reads).
///
/// Two signs, both written by the control plane, not the kubelet:
/// - the taint manager deleted the pod for its node's `unreachable`/`not-ready` taint (condition
///   `DisruptionTarget`, reason `DeletionByTaintManager`): lost at once;
/// - the node lifecycle controller marked a running pod `Ready=False` without one of the
///   kubelet's own reasons (it flips the status and keeps the reason): lost since that
///   transition, so the operator's grace period counts from it. The operator's pods have no
///   readiness probes, so a running container is otherwise always Ready.
#[must_use]
pub fn node_down_from_pod(pod: &Pod) -> Option<Timestamp> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    if conditions.iter().any(|c| {
        c.type_ == "DisruptionTarget"
            && c.status == "True"
            && c.reason.as_deref() == Some("DeletionByTaintManager")
    }) {
        return Some(Timestamp::UNIX_EPOCH);
    }
    if phase(pod) != "Running" {
        return None;
    }
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    let kubelet_reason = ready
        .reason
        .as_deref()
        .is_some_and(|r| KUBELET_NOT_READY_REASONS.contains(&r));
    (ready.status == "False" && !kubelet_reason).then(|| {
        ready
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    fn terminated(phase: &str, code: i32, reason: &str) -> Pod {
        pod(
            json!({"phase": phase, "containerStatuses": [{"name": "main", "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason}}}]}),
        )
    }

    #[test]
    fn container_outcomes_map_to_reasons() {
        let f = |p: &Pod| finished(p).map(|f| (f.termination, f.exit_code));
        assert_eq!(
            f(&terminated("Succeeded", 0, "Completed")),
            Some((Termination::Completed, Some(0)))
        );
        assert_eq!(
            f(&terminated("Failed", 2, "Error")),
            Some((Termination::Error, Some(2)))
        );
        assert_eq!(
            f(&terminated("Failed", 137, "OOMKilled")),
            Some((Termination::OomKilled, Some(137)))
        );
        assert_eq!(
            f(&pod(json!({"phase": "Failed", "reason": "Evicted"}))),
            Some((Termination::Evicted, None))
        );
        assert_eq!(f(&pod(json!({"phase": "Running"}))), None);
        assert_eq!(f(&pod(json!({"phase": "Unknown"}))), None);
    }

    #[test]
    fn a_lost_node_shows_on_the_pod() {
        let t = "2026-01-01T00:00:00Z";
        let ready = |status: &str, reason: Option<&str>| {
            pod(json!({"phase": "Running", "conditions": [
                {"type": "Ready", "status": status, "reason": reason, "lastTransitionTime": t}]}))
        };
        assert_eq!(node_down_from_pod(&ready("True", None)), None);
        assert_eq!(
            node_down_from_pod(&ready("False", None)),
            Some(t.parse().unwrap()),
            "marked by the node lifecycle controller"
        );
        assert_eq!(
            node_down_from_pod(&ready("False", Some("ContainersNotReady"))),
            None
        );
        let tainted = pod(json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}]}));
        assert_eq!(node_down_from_pod(&tainted), Some(Timestamp::UNIX_EPOCH));
        let evicted = pod(json!({"phase": "Running", "conditions": [
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]}));
        assert_eq!(node_down_from_pod(&evicted), None);
    }
}
