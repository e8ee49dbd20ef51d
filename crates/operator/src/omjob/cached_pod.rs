//! What the controller keeps of a pod in its cache: a type of its own, decoded straight from the
//! watch, holding only what [`super::decide`], [`super::outcome`] and [`super::bookkeeping`] read.
//!
//! A `k8s_openapi` `Pod` is 2 KiB before any of its strings (every optional field of the pod
//! spec is laid out inline), and a finished run keeps two pods for as long as its OMJob is
//! stored, so with thousands of OMJobs stored the pods were most of the operator's memory.
//! Decoding into this type also skips building the spec the controller never reads, and
//! [`CachedPod::slim`] drops the labels, annotations and conditions no rule reads: 1.6 KB a
//! main pod and 1.8 KB an exit pod as cached, against 4.6 and 5.7 KB with the metadata and status
//! kept whole (`examples/cache_footprint.rs`). Readers get
//! a `Pod` back ([`CachedPod::to_pod`]) when a reconcile asks for one, so the deciding code keeps
//! the API's own types.

use std::{borrow::Cow, collections::BTreeMap};

use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{
        Container, ContainerState, ContainerStatus, EnvVar, Pod, PodCondition, PodSpec, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
};
use serde::Deserialize;

/// The variables of an exit pod that say how the main stage ended, and so are cached (a Java
/// operator's exit pod has `pipelineStatus` only).
const TOLD: [&str; 3] = [
    omjob_api::env::PIPELINE_STATUS,
    omjob_api::env::MAIN_POD_EXIT_CODE,
    omjob_api::env::MAIN_POD_TERMINATION_REASON,
];

/// A pod as cached: the metadata the rules and the owner trigger read, the node it is bound to,
/// the variables that told an exit pod how the main stage ended, and the status fields the
/// rules read.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CachedPod {
    /// The pod's metadata: name, namespace, uid, `resourceVersion`, creation and deletion
    /// timestamps and owners (after [`Self::slim`]).
    #[serde(default, deserialize_with = "read_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<Spec>,
    #[serde(default)]
    status: Option<Status>,
    /// The exit pod's pipeline-status annotation, out of `metadata.annotations` (after
    /// [`Self::slim`]): a map of one entry is a 500-byte node.
    #[serde(skip)]
    pipeline_status: Option<String>,
}

/// The metadata fields a cached pod keeps, decoded as such: `managedFields` and the labels, most
/// of a pod's metadata, are skipped by the decoder instead of built and dropped, so a list page
/// of 500 pods, decoded whole before any is cached, holds no more than the cache will.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeptMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<i64>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

fn read_meta<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let m = KeptMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        owner_references: m.owner_references,
        annotations: m.annotations,
        ..ObjectMeta::default()
    })
}

/// The fields of [`KeptMeta`] out of `m`, the others dropped: what a pod created here keeps, so
/// that it is cached as the watch would cache it.
fn kept_meta(m: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        owner_references: m.owner_references,
        annotations: m.annotations,
        ..ObjectMeta::default()
    }
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
    env: Option<Vec<Var>>,
}

/// A variable with a literal value: the told ones always have one (`valueFrom` is not read, so
/// it is not decoded either).
#[derive(Clone, Debug, Default, Deserialize)]
struct Var {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

/// The part of a pod's status that is cached. A `k8s_openapi` `PodStatus` with one
/// `ContainerStatus` is about 1.4 KiB before its strings, nearly all of it fields no rule reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    conditions: Option<Vec<PodCondition>>,
    #[serde(default)]
    container_statuses: Option<Vec<StateOf>>,
}

/// A container's status, for its state only.
#[derive(Clone, Debug, Default, Deserialize)]
struct StateOf {
    #[serde(default)]
    state: Option<ContainerState>,
}

/// Whether a pod condition can change what a rule answers for a pod in `phase`, and so is
/// cached: `DisruptionTarget` when `True` (a pod deleted for its node's taint), `Ready` when
/// `False` on a running pod (a node that stopped answering), `PodScheduled` when `False` on a
/// pending one (why it does not start; [`super::outcome::pending_detail`] is asked of pending
/// pods only). Any other condition reads the same as a missing one to every rule in
/// [`super::outcome`]. A pod that changes phase arrives whole in a new watch event, so the
/// choice is made again.
fn condition_is_read(phase: &str, c: &PodCondition) -> bool {
    matches!(
        (c.type_.as_str(), c.status.as_str(), phase),
        ("DisruptionTarget", "True", _)
            | ("Ready", "False", "Running")
            | ("PodScheduled", "False", "Pending")
    )
}

impl CachedPod {
    /// Drops what nothing reads: every metadata field [`KeptMeta`] does not decode (a pod
    /// created here arrives with `managedFields`, labels, finalizers), every annotation but the
    /// exit pod's pipeline status (kept aside), the first container's other variables, the
    /// other containers, and the conditions no rule tells apart from a missing one. Applied to
    /// every object the pod watch delivers.
    pub fn slim(&mut self) {
        self.metadata = kept_meta(std::mem::take(&mut self.metadata));
        if let Some(mut a) = self.metadata.annotations.take() {
            self.pipeline_status = a.remove(omjob_api::annotations::PIPELINE_STATUS);
        }
        if let Some(spec) = self.spec.as_mut() {
            let told: Vec<Var> = spec
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
        if let Some(status) = self.status.as_mut() {
            let phase = status.phase.clone().unwrap_or_else(|| "Pending".to_owned());
            if let Some(conditions) = status.conditions.as_mut() {
                conditions.retain(|c| condition_is_read(&phase, c));
            }
        }
    }

    /// The cached pod as a `Pod` with only the cached fields set.
    #[must_use]
    pub fn to_pod(&self) -> Pod {
        let mut metadata = self.metadata.clone();
        if let Some(status) = &self.pipeline_status {
            metadata.annotations =
                Some([(omjob_api::annotations::PIPELINE_STATUS.to_owned(), status.clone())].into());
        }
        Pod {
            metadata,
            spec: self.spec.as_ref().map(|s| PodSpec {
                node_name: s.node_name.clone(),
                containers: s
                    .containers
                    .iter()
                    .map(|c| Container {
                        env: c.env.as_ref().map(|env| {
                            env.iter()
                                .map(|v| EnvVar {
                                    name: v.name.clone(),
                                    value: v.value.clone(),
                                    value_from: None,
                                })
                                .collect()
                        }),
                        ..Container::default()
                    })
                    .collect(),
                ..PodSpec::default()
            }),
            status: self.status.as_ref().map(|s| PodStatus {
                phase: s.phase.clone(),
                reason: s.reason.clone(),
                message: s.message.clone(),
                conditions: s.conditions.clone(),
                container_statuses: s.container_statuses.as_ref().map(|c| {
                    c.iter()
                        .map(|c| ContainerStatus {
                            state: c.state.clone(),
                            ..ContainerStatus::default()
                        })
                        .collect()
                }),
                ..PodStatus::default()
            }),
        }
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
                    .map(|c| TellingContainer {
                        env: c.env.map(|env| {
                            env.into_iter()
                                .map(|e| Var {
                                    name: e.name,
                                    value: e.value,
                                })
                                .collect()
                        }),
                    })
                    .collect(),
            }),
            status: pod.status.map(|s| Status {
                phase: s.phase,
                reason: s.reason,
                message: s.message,
                conditions: s.conditions,
                container_statuses: s
                    .container_statuses
                    .map(|c| c.into_iter().map(|c| StateOf { state: c.state }).collect()),
            }),
            pipeline_status: None,
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
                         "generation": 1, "finalizers": ["example.com/hold"],
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
        assert_eq!(pod.metadata.managed_fields, None);
    }

    #[test]
    fn a_cached_pod_keeps_the_pipeline_status_annotation_and_drops_labels() {
        let mut json = exit_pod_json();
        json["metadata"]["annotations"][omjob_api::annotations::PIPELINE_STATUS] = json!("failed");
        let mut cached: CachedPod = serde_json::from_value(json).unwrap();
        cached.slim();
        let pod = cached.to_pod();
        assert_eq!(
            pod.metadata.annotations,
            Some(
                [(
                    omjob_api::annotations::PIPELINE_STATUS.to_owned(),
                    "failed".to_owned()
                )]
                .into()
            )
        );
        assert_eq!(
            bookkeeping::given_pipeline_status(&pod).as_deref(),
            Some("failed")
        );
        assert_eq!(pod.metadata.labels, None);

        let mut plain: CachedPod = serde_json::from_value(exit_pod_json()).unwrap();
        plain.slim();
        assert_eq!(plain.metadata.annotations, None, "no annotation the rules read");
    }

    #[test]
    fn every_condition_reads_the_same_cached_as_whole() {
        let phases = [
            Some("Pending"),
            Some("Running"),
            Some("Succeeded"),
            Some("Failed"),
            None,
        ];
        let conditions = [
            ("PodScheduled", "True", None),
            ("PodScheduled", "False", Some("Unschedulable")),
            ("Ready", "True", None),
            ("Ready", "False", Some("ContainersNotReady")),
            ("Ready", "False", Some("PodCompleted")),
            ("Ready", "False", None),
            ("Ready", "Unknown", None),
            ("DisruptionTarget", "True", Some("DeletionByTaintManager")),
            ("DisruptionTarget", "True", Some("TerminationByKubelet")),
            ("DisruptionTarget", "False", Some("DeletionByTaintManager")),
            ("Initialized", "True", None),
        ];
        for phase in phases {
            for (i, a) in conditions.iter().enumerate() {
                // Alone, or with one of another type: the API server keeps one condition per type.
                for b in std::iter::once(None).chain(conditions[i..].iter().map(Some)) {
                    if b.is_some_and(|b| b.0 == a.0) {
                        continue;
                    }
                    let conditions: Vec<_> = std::iter::once(a)
                        .chain(b)
                        .map(|(t, s, r)| {
                            json!({"type": t, "status": s, "reason": r, "message": "m",
                               "lastTransitionTime": "2026-01-01T00:00:00Z"})
                        })
                        .collect();
                    let json = json!({
                        "metadata": {"name": "j-main", "namespace": "ns"},
                        "status": {"phase": phase, "conditions": conditions}
                    });
                    let full: Pod = serde_json::from_value(json.clone()).unwrap();
                    let mut cached: CachedPod = serde_json::from_value(json).unwrap();
                    cached.slim();
                    let pod = cached.to_pod();
                    let case = format!("{phase:?} {a:?} {b:?}");
                    assert_eq!(
                        outcome::node_down_from_pod(&pod),
                        outcome::node_down_from_pod(&full),
                        "{case}"
                    );
                    assert_eq!(outcome::is_pending(&pod), outcome::is_pending(&full), "{case}");
                    if outcome::is_pending(&full) {
                        assert_eq!(
                            outcome::pending_detail(&pod),
                            outcome::pending_detail(&full),
                            "{case}"
                        );
                    }
                    assert_eq!(outcome::finished(&pod), outcome::finished(&full), "{case}");
                }
            }
        }
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
        assert_eq!(
            kept,
            ["DisruptionTarget"],
            "Initialized is never read, and Ready only while the pod runs"
        );
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
