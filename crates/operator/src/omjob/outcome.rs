//! How a pod ended, read from what the API shows: the termination reasons the exit handler is
//! told, and the signs, on the pod itself, that its node stopped answering.
//!
//! The reasons and the rule that reads a finished pod are the wire contract's
//! ([`omjob_api::termination`], shared with the pipeline service); this module adds what only the
//! operator judges: pending pods and lost nodes.

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use omjob_api::termination::pod_phase as phase;
pub use omjob_api::termination::{Finished, Termination, finished};

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
