//! The pod template that an OMJob's main stage, its exit handler and a CronOMJob's runs share.
//!
//! These types mirror the Helm CRD's pod template field for field (reference §1.1), not
//! Kubernetes' full `PodSpec`: one container, no `args`, `volumes` or `affinity`. They are our own
//! small types rather than `k8s-openapi`'s so that the generated schema stays exactly as wide as
//! the Helm one, and structural on Kubernetes 1.20.
//!
//! Maps are `BTreeMap`s so that serialisation, and therefore rendered pods and hashes, are
//! deterministic.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One pod's worth of settings: image, command, env, resources and scheduling hints.
///
/// OpenMetadata's server always sends `image`, `imagePullPolicy`, `command` and `env`; the others
/// only when set (reference §6.3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    /// Container image.
    pub image: String,

    /// Image pull policy. The API server fills in `IfNotPresent` when it is left out or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::image_pull_policy")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets for pulling the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,

    /// Service account the pod runs as. Required in `mainPodSpec`, optional in `exitHandlerSpec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// The container's command (there is no `args`).
    pub command: Vec<String>,

    /// Environment variables of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,

    /// Resource requests and limits of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels the pod must be scheduled on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Tolerations of the pod. OpenMetadata's server does not send them yet (its issue #27852).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Pod-level security context, kept free-form (a Kubernetes `PodSecurityContext` object).
    /// `runAsNonRoot`, `runAsUser` and `runAsGroup` are also copied to the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub security_context: Option<serde_json::Map<String, serde_json::Value>>,

    /// Extra pod labels. They override the operator's own labels on conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Pod annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// When the kubelet pulls the container image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull on every start.
    Always,
    /// Never pull; the image must be present.
    Never,
    /// Pull only when the image is missing. The schema default.
    #[default]
    IfNotPresent,
}

impl ImagePullPolicy {
    /// The policy as Kubernetes spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::Never => "Never",
            Self::IfNotPresent => "IfNotPresent",
        }
    }
}

/// A reference to an object in the same namespace, by name (used for image-pull secrets).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the referenced object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One environment variable: a literal `value` or a `valueFrom` source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Name of the environment variable.
    pub name: String,

    /// Literal value of the environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,

    /// Where the value comes from. OpenMetadata's server may send an empty `{}`; the operator
    /// then gives the pod the variable with its `value`, or an empty one, as the Java operator
    /// does (the API server refuses an empty source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// The source of an environment variable's value. At most one reference should be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// A key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeySelector>,

    /// A key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,

    /// A field of the pod (downward API), such as `metadata.uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,

    /// A resource request or limit of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
}

impl EnvVarSource {
    /// Whether none of the four references is set (the `valueFrom: {}` that OpenMetadata's
    /// server can send). Such a source is not a valid Kubernetes `EnvVarSource`.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.config_map_key_ref.is_none()
            && self.secret_key_ref.is_none()
            && self.field_ref.is_none()
            && self.resource_field_ref.is_none()
    }
}

/// Selects a key of a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigMapKeySelector {
    /// Name of the ConfigMap.
    pub name: String,
    /// Key in the ConfigMap.
    pub key: String,
    /// Whether the ConfigMap or its key may be missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Selects a key of a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeySelector {
    /// Name of the Secret.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
    /// Whether the Secret or its key may be missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Selects a field of the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldSelector {
    /// API version the field path is written in (Kubernetes assumes `v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Path of the field, such as `metadata.uid`.
    pub field_path: String,
}

/// Selects a resource request or limit of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFieldSelector {
    /// Container name; the pod's only container when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// The resource, such as `limits.memory`.
    pub resource: String,
    /// Divisor of the value, as a quantity string such as `1Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divisor: Option<String>,
}

/// Resource requests and limits, as quantity strings (`"500m"`, `"1Gi"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceRequirements {
    /// Minimum resources the container needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, String>>,
    /// Maximum resources the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, String>>,
}

/// Lets the pod run on nodes with a matching taint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// Taint key; empty with operator `Exists` matches every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How key and value are compared (Kubernetes assumes `Equal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::non_nullable::<TolerationOperator>")]
    pub operator: Option<TolerationOperator>,
    /// Taint value, for operator `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Taint effect to match; all effects when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::non_nullable::<TaintEffect>")]
    pub effect: Option<TaintEffect>,
    /// For `NoExecute`: how long the pod stays bound after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// How a toleration compares a taint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TolerationOperator {
    /// Any value of the key matches.
    Exists,
    /// The value must be equal.
    Equal,
}

/// What a taint does to pods that do not tolerate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    /// New pods are not scheduled.
    NoSchedule,
    /// The scheduler tries to avoid the node.
    PreferNoSchedule,
    /// Running pods are evicted.
    NoExecute,
}
