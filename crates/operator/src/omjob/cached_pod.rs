//! What the controller keeps of a pod in its cache: a type of its own, decoded straight from the
//! watch, holding only what [`super::decide`], [`super::outcome`] and [`super::bookkeeping`] read.
//!
//! A `k8s_openapi` `Pod` is 2 KiB before any of its strings (every optional field of the pod
//! spec is laid out inline), and a finished run keeps two pods for as long as its OMJob is
//! stored, so with thousands of OMJobs stored the pods were most of the operator's memory.
//! Decoding into this type also skips building the spec the controller never reads. Readers get
//! a `Pod` back ([`CachedPod::to_pod`]) when a reconcile asks for one, so the deciding code keeps
//! the API's own types.

use std::borrow::Cow;

use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{Container, ContainerStatus, EnvVar, Pod, PodSpec, PodStatus},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde::Deserialize;

/// The variables of an exit pod that say how the main stage ended, and so are cached (a Java
/// operator's exit pod has `pipelineStatus` only).
const TOLD: [&str; 3] = [
    omjob_api::env::PIPELINE_STATUS,
    omjob_api::env::MAIN_POD_EXIT_CODE,
    omjob_api::env::MAIN_POD_TERMINATION_REASON,
];

/// Pod conditions the controller reads: `PodScheduled` (why a pod is pending), `Ready` and
/// `DisruptionTarget` (signs of a lost node).
const CONDITIONS: [&str; 3] = ["PodScheduled", "Ready", "DisruptionTarget"];

/// A pod as cached: its metadata (without `managedFields`), the node it is bound to, the
/// variables that told an exit pod how the main stage ended, and its status without addresses,
/// images or resources.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CachedPod {
    /// The pod's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<Spec>,
    #[serde(default)]
    status: Option<PodStatus>,
}

/// The part of a pod's spec that is cached.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    containers: Vec<TellingContainer>,
}

/// A container, for its variables only.
#[derive(Clone, Debug, Default, Deserialize)]
struct TellingContainer {
    #[serde(default)]
    env: Option<Vec<EnvVar>>,
}

impl CachedPod {
    /// Drops what the decoding kept but nothing reads: `managedFields`, the first container's
    /// other variables, the other containers, and the status fields no rule looks at. Applied
    /// to every object the pod watch delivers.
    pub fn slim(&mut self) {
        super::strip_for_cache(self);
        if let Some(spec) = self.spec.as_mut() {
            let told: Vec<EnvVar> = spec
                .containers
                .first_mut()
                .and_then(|c| c.env.take())
                .unwrap_or_default()
                .into_iter()
                .filter(|e| TOLD.contains(&e.name.as_str()))
                .collect();
            spec.containers = if told.is_empty() {
                Vec::new()
            } else {
                vec![TellingContainer { env: Some(told) }]
            };
        }
        if let Some(status) = self.status.take() {
            self.status = Some(slim_status(status));
        }
    }

    /// The cached pod as a `Pod` with only the cached fields set.
    #[must_use]
    pub fn to_pod(&self) -> Pod {
        Pod {
            metadata: self.metadata.clone(),
            spec: self.spec.as_ref().map(|s| PodSpec {
                node_name: s.node_name.clone(),
                containers: s
                    .containers
                    .iter()
                    .map(|c| Container {
                        env: c.env.clone(),
                        ..Container::default()
                    })
                    .collect(),
                ..PodSpec::default()
            }),
            status: self.status.clone(),
        }
    }
}

/// Keeps what the rules read: phase, reason and message, the kept conditions, and each
/// container's name, state and restart count.
fn slim_status(status: PodStatus) -> PodStatus {
    PodStatus {
        phase: status.phase,
        reason: status.reason,
        message: status.message,
        conditions: status.conditions.map(|c| {
            c.into_iter()
                .filter(|c| CONDITIONS.contains(&c.type_.as_str()))
                .collect()
        }),
        container_statuses: status.container_statuses.map(|c| {
            c.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    state: c.state,
                    last_state: c.last_state,
                    ready: c.ready,
                    restart_count: c.restart_count,
                    started: c.started,
                    ..ContainerStatus::default()
                })
                .collect()
        }),
        start_time: status.start_time,
        ..PodStatus::default()
    }
}

impl From<Pod> for CachedPod {
    /// What the cache would hold of `pod` (a pod this process just created, say).
    fn from(pod: Pod) -> Self {
        let mut cached = Self {
            metadata: pod.metadata,
            spec: pod.spec.map(|s| Spec {
                node_name: s.node_name,
                containers: s
                    .containers
                    .into_iter()
                    .map(|c| TellingContainer { env: c.env })
                    .collect(),
            }),
            status: pod.status,
        };
        cached.slim();
        cached
    }
}

impl kube::Resource for CachedPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(&(): &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }

    fn group(&(): &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(&(): &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(&(): &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::omjob::{bookkeeping, outcome};

    fn exit_pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "j-exit", "namespace": "ns", "uid": "u1", "annotations": {"a": "b"},
                         "labels": {"app.kubernetes.io/pod-type": "exit"},
                         "ownerReferences": [{"apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
                                              "name": "j", "uid": "o1"}],
                         "managedFields": [{"manager": "omjob-operator", "operation": "Update"}]},
            "spec": {
                "nodeName": "n1",
                "serviceAccountName": "sa",
                "volumes": [{"name": "v", "emptyDir": {}}],
                "containers": [{"name": "exit", "image": "i", "command": ["sh"], "env": [
                    {"name": "config", "value": "a large workflow config"},
                    {"name": "pipelineStatus", "value": "success"},
                    {"name": "mainPodExitCode", "value": "0"},
                    {"name": "mainPodTerminationReason", "value": "Completed"}
                ]}]
            },
            "status": {
                "phase": "Failed", "reason": "Evicted", "message": "The node was low on memory.",
                "podIP": "10.0.0.1", "hostIP": "10.0.0.2", "qosClass": "BestEffort",
                "startTime": "2026-01-01T00:00:00Z",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "PodFailed"},
                    {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}
                ],
                "containerStatuses": [{"name": "exit", "image": "i", "imageID": "sha256:x",
                    "containerID": "containerd://c", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                             "finishedAt": "2026-01-01T00:01:00Z"}}}]
            }
        })
    }

    #[test]
    fn a_cached_pod_reads_as_the_pod_did() {
        let full: Pod = serde_json::from_value(exit_pod_json()).unwrap();
        let mut cached: CachedPod = serde_json::from_value(exit_pod_json()).unwrap();
        cached.slim();
        let pod = cached.to_pod();

        assert_eq!(outcome::finished(&pod), outcome::finished(&full));
        assert_eq!(outcome::node_name(&pod), Some("n1"));
        assert_eq!(
            outcome::node_down_from_pod(&pod),
            outcome::node_down_from_pod(&full)
        );
        assert_eq!(bookkeeping::told_outcome(&pod), bookkeeping::told_outcome(&full));
        assert_eq!(
            bookkeeping::given_pipeline_status(&pod).as_deref(),
            Some("success")
        );
        assert_eq!(pod.metadata.owner_references, full.metadata.owner_references);
        assert_eq!(pod.metadata.labels, full.metadata.labels);
        assert_eq!(pod.metadata.managed_fields, None);
    }

    #[test]
    fn a_cached_pod_keeps_only_what_is_read() {
        let mut cached: CachedPod = serde_json::from_value(exit_pod_json()).unwrap();
        cached.slim();
        let pod = cached.to_pod();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.service_account_name, None);
        assert_eq!(spec.volumes, None);
        let env = spec.containers[0].env.as_ref().unwrap();
        assert_eq!(env.len(), 3, "only what the exit pod was told is kept: {env:?}");
        let status = pod.status.unwrap();
        assert_eq!(status.pod_ip, None);
        assert_eq!(status.qos_class, None);
        let kept: Vec<_> = status.conditions.unwrap().into_iter().map(|c| c.type_).collect();
        assert_eq!(kept, ["Ready", "DisruptionTarget"]);
        let c = &status.container_statuses.unwrap()[0];
        assert_eq!(
            (c.image.as_str(), c.image_id.as_str(), c.container_id.as_deref()),
            ("", "", None)
        );
        assert_eq!(
            c.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code,
            137
        );
    }

    #[test]
    fn a_created_pod_is_kept_as_the_watch_would_keep_it() {
        let full: Pod = serde_json::from_value(exit_pod_json()).unwrap();
        let from_watch = {
            let mut c: CachedPod = serde_json::from_value(exit_pod_json()).unwrap();
            c.slim();
            c.to_pod()
        };
        assert_eq!(CachedPod::from(full).to_pod(), from_watch);
    }

    #[test]
    fn a_pod_without_env_caches_no_container() {
        let mut cached: CachedPod = serde_json::from_value(json!({
            "metadata": {"name": "j-main", "namespace": "ns"},
            "spec": {"containers": [{"name": "main", "image": "i"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        cached.slim();
        let pod = cached.to_pod();
        assert!(pod.spec.unwrap().containers.is_empty());
    }
}
