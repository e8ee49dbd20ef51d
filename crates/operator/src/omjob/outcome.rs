//! How a pod ended, read from what the API shows: the termination reasons the exit handler is
//! told, and the test for an exit-handler pod that was lost before it finished.

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
}
