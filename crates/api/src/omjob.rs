//! The `OMJob` custom resource: one run of a pipeline as a main pod, then an exit-handler pod.
//!
//! The spec is what OpenMetadata's server writes (reference §1.1, §6.3); the status is what the
//! operator observes and records (§1.2). Fields the Java operator does not know are marked
//! *additive*: all are optional, and leaving them out keeps the Java operator's behaviour.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::{phase::Phase, pod_template::PodTemplate};

/// The `ttlSecondsAfterFinished` the API server fills in when the field is left out: one day.
pub const DEFAULT_TTL_SECONDS_AFTER_FINISHED: i32 = 86_400;

/// The desired state of an OMJob: the two pod templates and the clean-up delay.
// Several printer columns share `type_ = "..."`, which clippy mistakes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "pipelines.openmetadata.org",
    version = "v1",
    kind = "OMJob",
    plural = "omjobs",
    singular = "omjob",
    shortname = "omj",
    namespaced,
    status = "OMJobStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "One run of an OpenMetadata ingestion pipeline: a main pod, then an exit-handler pod \
           whatever ended the main pod.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Main Pod", type_ = "string", json_path = ".status.mainPodName"),
    printcolumn(
        name = "Exit Handler",
        type_ = "string",
        json_path = ".status.exitHandlerPodName"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct OMJobSpec {
    /// Pod template of the main (ingestion) stage. `image`, `serviceAccountName` and `command`
    /// are required.
    #[schemars(transform = require_service_account_name)]
    pub main_pod_spec: PodTemplate,

    /// Pod template of the exit handler, which runs after the main stage ends. Optional in the
    /// schema, but an OMJob without it cannot run its exit handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_handler_spec: Option<PodTemplate>,

    /// Seconds after `status.completionTime` before the operator deletes the OMJob's pods.
    /// The API server fills in 86400 when it is left out; 0 means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::ttl_seconds_after_finished")]
    pub ttl_seconds_after_finished: Option<i32>,

    /// *Additive.* Seconds after the run started after which the operator stops the main pod
    /// and runs the exit handler with reason `DeadlineExceeded`. Left out: no deadline, as in
    /// the Java operator. Also accepted as the annotation
    /// `omjob.pipelines.openmetadata.org/active-deadline-seconds` (for CRDs that prune this
    /// field); this field wins when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,

    /// *Additive.* Seconds the main pod may stay pending (image pull failure, unschedulable)
    /// before the operator gives up on it with reason `StartTimeout`. Left out: the operator's
    /// configured default. Also accepted as the annotation
    /// `omjob.pipelines.openmetadata.org/pending-timeout-seconds`; this field wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pending_timeout_seconds: Option<i64>,
}

impl OMJobSpec {
    /// The clean-up delay in seconds, or `None` when pods are never cleaned up.
    ///
    /// As in the Java operator, a missing value or one ≤ 0 means never. (On the API server a
    /// missing value has already been defaulted to 86400.)
    #[must_use]
    pub fn ttl_after_finished_seconds(&self) -> Option<u32> {
        self.ttl_seconds_after_finished
            .and_then(|s| u32::try_from(s).ok())
            .filter(|s| *s > 0)
    }
}

/// Adds `serviceAccountName` to the required fields of `mainPodSpec` only: the Helm CRD
/// requires it there but not in `exitHandlerSpec`, and both share [`PodTemplate`].
fn require_service_account_name(schema: &mut Schema) {
    if let Some(required) = schema
        .get_mut("required")
        .and_then(serde_json::Value::as_array_mut)
    {
        let field = serde_json::Value::from("serviceAccountName");
        if !required.contains(&field) {
            required.push(field);
        }
    }
}

/// The observed state of an OMJob, rebuilt by the operator on each pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OMJobStatus {
    /// Current phase of the state machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::non_nullable::<Phase>")]
    pub phase: Option<Phase>,

    /// Name of the main pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_pod_name: Option<String>,

    /// Name of the exit-handler pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_handler_pod_name: Option<String>,

    /// When the operator first recorded a status for this OMJob (not the pod's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the OMJob first reached a terminal phase; set once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Human-readable message about the current status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Exit code of the main pod's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_pod_exit_code: Option<i32>,

    /// *Additive.* Why the main stage ended, such as `Completed`, `Error`, `OOMKilled`,
    /// `Evicted`, `PodDeleted`, `NodeLost`, `CreateFailed`, `StartTimeout`, `DeadlineExceeded`
    /// or `Deleted`. Also passed to the exit-handler pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// *Additive.* Exit code of the exit-handler pod's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_handler_exit_code: Option<i32>,

    /// *Additive.* How many exit-handler pods were created (more than one only when an earlier
    /// one was lost before it finished). A readable copy: the operator resumes from the
    /// annotation `omjob.pipelines.openmetadata.org/exit-handler-attempts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_handler_attempts: Option<i32>,

    /// *Additive.* The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// *Additive.* Conditions of the OMJob, one per `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}

/// One condition of an OMJob, in the usual Kubernetes shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition, unique within the list.
    #[serde(rename = "type")]
    pub type_: String,

    /// Whether the condition holds.
    pub status: ConditionStatus,

    /// Machine-readable reason of the last transition, in CamelCase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// Human-readable details of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// The status of a [`Condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It is not known whether the condition holds.
    Unknown,
}
