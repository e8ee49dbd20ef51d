//! The pod status the simulated node reports: container states, conditions and phase, built as
//! the kubelet would from what it observed.

use serde_json::{Value, json};

/// Current time as the RFC 3339 string (whole seconds, UTC) that `metav1.Time` uses.
#[must_use]
pub fn now() -> String {
    timestamp(k8s_openapi::jiff::Timestamp::now())
}

/// Formats a timestamp the way the API server does.
#[must_use]
pub fn timestamp(t: k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A container's state, as observed by the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Not started: `ContainerCreating`, `CreateContainerConfigError`, `ImagePullBackOff`...
    Waiting {
        /// Machine-readable reason.
        reason: String,
        /// Human-readable detail.
        message: String,
    },
    /// Its process runs.
    Running {
        /// When it started.
        started_at: String,
    },
    /// Its process ended.
    Terminated {
        /// Exit code (128 + signal for killed processes).
        exit_code: i32,
        /// `Completed`, `Error`, `OOMKilled`...
        reason: String,
        /// When it started.
        started_at: String,
        /// When it ended.
        finished_at: String,
    },
}

impl ContainerState {
    fn to_json(&self) -> Value {
        match self {
            Self::Waiting { reason, message } => json!({"waiting": {"reason": reason, "message": message}}),
            Self::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            Self::Terminated {
                exit_code,
                reason,
                started_at,
                finished_at,
            } => json!({"terminated": {
                "exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at
            }}),
        }
    }

    /// True when the process ended.
    #[must_use]
    pub fn is_terminated(&self) -> bool {
        matches!(self, Self::Terminated { .. })
    }
}

/// One container's reported status.
#[derive(Debug, Clone)]
pub struct ContainerReport {
    /// Container name.
    pub name: String,
    /// Image, echoed back.
    pub image: String,
    /// Current state.
    pub state: ContainerState,
    /// The previous instance's state after a restart.
    pub last_state: Option<ContainerState>,
    /// Restarts so far.
    pub restart_count: i32,
}

/// Pod-level outcome.
#[derive(Debug, Clone, Default)]
pub struct PodReport {
    /// `Pending`, `Running`, `Succeeded`, `Failed`.
    pub phase: String,
    /// `Evicted`, `DeadlineExceeded`... for a pod the node ended itself.
    pub reason: Option<String>,
    /// Detail for `reason`.
    pub message: Option<String>,
    /// When the node accepted the pod.
    pub start_time: String,
    /// Set when the node itself ended the pod for a reason outside it (node-pressure eviction):
    /// reported as the `DisruptionTarget` condition, as the kubelet does since 1.26.
    pub disruption: Option<Disruption>,
}

/// The `DisruptionTarget` condition's reason and message.
#[derive(Debug, Clone)]
pub struct Disruption {
    /// `TerminationByKubelet` for node-pressure eviction.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

fn condition(kind: &str, ok: bool, now: &str, reason: Option<&str>) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

/// The `status` object to merge-patch onto the pod.
#[must_use]
pub fn render(pod: &PodReport, containers: &[ContainerReport]) -> Value {
    let now = now();
    let all_running = !containers.is_empty()
        && containers
            .iter()
            .all(|c| matches!(c.state, ContainerState::Running { .. }));
    let not_ready_reason = if pod.phase == "Succeeded" || pod.phase == "Failed" {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let ready_reason = (!all_running).then_some(not_ready_reason);
    let terminal = pod.phase == "Succeeded" || pod.phase == "Failed";
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let mut s = json!({
                "name": c.name,
                "image": c.image,
                "imageID": format!("sim://{}", c.image),
                "ready": matches!(c.state, ContainerState::Running { .. }),
                "started": matches!(c.state, ContainerState::Running { .. }),
                "restartCount": c.restart_count,
                "state": c.state.to_json(),
                "lastState": c.last_state.as_ref().map_or_else(|| json!({}), ContainerState::to_json),
            });
            if let ContainerState::Running { .. } | ContainerState::Terminated { .. } = c.state {
                s["containerID"] = json!(format!("sim://{}", uuid::Uuid::new_v4().simple()));
            }
            s
        })
        .collect();
    // No `qosClass`: the API server computes it at creation and refuses a change (1.28+).
    let mut status = json!({
        "phase": pod.phase,
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": pod.start_time,
        "conditions": [
            // The sandbox exists from the node's acceptance until the pod is terminal (1.29+).
            condition("PodReadyToStartContainers", !terminal, &now, None),
            condition("Initialized", true, &now, None),
            condition("Ready", all_running, &now, ready_reason),
            condition("ContainersReady", all_running, &now, ready_reason),
            condition("PodScheduled", true, &now, None),
        ],
        "containerStatuses": statuses,
    });
    if let (Some(d), Some(conditions)) = (&pod.disruption, status["conditions"].as_array_mut()) {
        let mut c = condition("DisruptionTarget", true, &now, Some(&d.reason));
        c["message"] = json!(d.message);
        conditions.push(c);
    }
    status["reason"] = pod.reason.as_ref().map_or(Value::Null, |r| json!(r));
    status["message"] = pod.message.as_ref().map_or(Value::Null, |m| json!(m));
    status
}

/// Phase of a pod whose containers all ended, under restart policy `Never`.
#[must_use]
pub fn final_phase(containers: &[ContainerReport]) -> &'static str {
    let failed = containers
        .iter()
        .any(|c| matches!(c.state, ContainerState::Terminated { exit_code, .. } if exit_code != 0));
    if failed { "Failed" } else { "Succeeded" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(code: i32) -> ContainerReport {
        ContainerReport {
            name: "main".into(),
            image: "busybox".into(),
            state: ContainerState::Terminated {
                exit_code: code,
                reason: if code == 0 {
                    "Completed".into()
                } else {
                    "Error".into()
                },
                started_at: "2026-01-01T00:00:00Z".into(),
                finished_at: "2026-01-01T00:00:01Z".into(),
            },
            last_state: None,
            restart_count: 0,
        }
    }

    #[test]
    fn any_non_zero_exit_fails_the_pod() {
        assert_eq!(final_phase(&[term(0)]), "Succeeded");
        assert_eq!(final_phase(&[term(0), term(3)]), "Failed");
    }

    #[test]
    fn terminated_status_carries_exit_code_reason_and_times() {
        let s = render(
            &PodReport {
                phase: "Failed".into(),
                start_time: "2026-01-01T00:00:00Z".into(),
                ..Default::default()
            },
            &[term(137)],
        );
        let t = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 137);
        assert_eq!(t["reason"], "Error");
        assert_eq!(t["finishedAt"], "2026-01-01T00:00:01Z");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["reason"], "PodCompleted");
    }
}
