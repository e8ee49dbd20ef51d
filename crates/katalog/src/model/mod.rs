//! The Katalog format (classic schema) with the later spellings accepted as aliases.
//!
//! Every struct denies unknown keys so that a typo is reported with its path instead of being
//! silently ignored; blocks that Orkestra has but this runtime does not run are named fields read
//! as [`IgnoredAny`] and reported as warnings or unsupported by `check`.

pub mod condition;
pub mod hooks;
pub mod scalar;

use std::collections::BTreeMap;

use serde::{Deserialize, de::IgnoredAny};
use serde_json::Value;

use self::{
    condition::{Condition, Mutation, Validation},
    hooks::HookTemplates,
    scalar::{GoDuration, Text},
};

/// The current Katalog apiVersion.
pub const API_VERSION: &str = "orkestra.orkspace.io/v1";
/// The legacy apiVersion some shipped examples still use; accepted with a warning.
pub const LEGACY_API_VERSION: &str = "orkestra.konductor.io/v1Alpha";
/// Runtime defaults (`DEFAULT_WORKERS`, `DEFAULT_RESYNC`, `MAX_QUEUE_DEPTH`, `FAILURE_THRESHOLD`).
pub const DEFAULT_WORKERS: u32 = 3;
pub const DEFAULT_RESYNC_SECS: u64 = 15;
pub const DEFAULT_MAX_QUEUE_DEPTH: u32 = 100;
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;

/// A Katalog document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Katalog {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: Spec,
    /// Top-level blocks Orkestra has and this runtime ignores (with a warning).
    pub security: Option<IgnoredAny>,
    pub gateway: Option<IgnoredAny>,
    pub notification: Option<IgnoredAny>,
    pub profiles: Option<IgnoredAny>,
    pub notes: Option<IgnoredAny>,
    pub lifecycle: Option<IgnoredAny>,
    pub publish: Option<IgnoredAny>,
}

impl Katalog {
    /// Names of the ignored top-level blocks present.
    pub fn ignored_blocks(&self) -> Vec<&'static str> {
        [
            (
                "security",
                self.security.is_some() || self.spec.security.is_some(),
            ),
            ("gateway", self.gateway.is_some() || self.spec.gateway.is_some()),
            (
                "notification",
                self.notification.is_some() || self.spec.notification.is_some(),
            ),
            (
                "profiles",
                self.profiles.is_some() || self.spec.profiles.is_some(),
            ),
            ("notes", self.notes.is_some() || self.spec.notes.is_some()),
            (
                "lifecycle",
                self.lifecycle.is_some() || self.spec.lifecycle.is_some(),
            ),
            ("publish", self.publish.is_some() || self.spec.publish.is_some()),
            ("spec.imports", self.spec.imports.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.then_some(k))
        .collect()
    }
}

/// `metadata`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: Option<String>,
    pub author: Option<String>,
    pub version: Option<Text>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub namespace: Option<String>,
    pub license: Option<String>,
}

/// `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// CRD entries by name.
    #[serde(default)]
    pub crds: BTreeMap<String, CrdEntry>,
    /// Appended to every entry's finalizers.
    #[serde(default)]
    pub finalizers: Vec<String>,
    /// Katalog-wide imports (notes and profiles only); ignored with a warning.
    pub imports: Option<IgnoredAny>,
    pub security: Option<IgnoredAny>,
    pub gateway: Option<IgnoredAny>,
    pub notification: Option<IgnoredAny>,
    pub profiles: Option<IgnoredAny>,
    pub notes: Option<IgnoredAny>,
    pub lifecycle: Option<IgnoredAny>,
    pub publish: Option<IgnoredAny>,
}

/// One CRD entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrdEntry {
    pub enabled: Option<bool>,
    pub description: Option<String>,
    pub api_types: Option<ApiTypes>,
    pub crd_file: Option<String>,
    #[serde(default)]
    pub cr_files: Vec<String>,
    #[serde(default)]
    pub setup: Vec<String>,
    pub namespaced: Option<bool>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub allowed_namespaces: Vec<String>,
    #[serde(default)]
    pub restricted_namespaces: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub label_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub field_selector: BTreeMap<String, String>,
    pub workers: Option<u32>,
    pub resync: Option<GoDuration>,
    pub queue: Option<Queue>,
    pub depends_on: Option<IgnoredAny>,
    #[serde(default)]
    pub imports: Vec<Import>,
    pub validation: Option<Validation>,
    pub mutation: Option<Mutation>,
    /// Later spelling of `validation` / `mutation`.
    pub admission: Option<Admission>,
    pub endpoints: Option<Endpoints>,
    pub force_conflict: Option<bool>,
    #[serde(default)]
    pub ignore_status_patch: bool,
    #[serde(default)]
    pub ignore_observed_generation: bool,
    #[serde(default)]
    pub remove_finalizers: bool,
    /// `reconciler:` is the very old name of the block.
    #[serde(alias = "reconciler")]
    pub operator_box: Option<OperatorBox>,
    pub webhooks: Option<IgnoredAny>,
    pub conversion: Option<IgnoredAny>,
    pub serve: Option<IgnoredAny>,
    pub enrich: Option<IgnoredAny>,
    pub pre_reconcile: Option<IgnoredAny>,
    pub observe: Option<IgnoredAny>,
    pub cross: Option<IgnoredAny>,
    pub autoscale: Option<IgnoredAny>,
    pub roll_back_on_error: Option<IgnoredAny>,
    pub notification: Option<IgnoredAny>,
}

impl CrdEntry {
    /// Names of the out-of-scope blocks present (ignored with a warning).
    pub fn ignored_blocks(&self) -> Vec<&'static str> {
        [
            ("dependsOn", self.depends_on.is_some()),
            ("webhooks", self.webhooks.is_some()),
            ("conversion", self.conversion.is_some()),
            ("serve", self.serve.is_some()),
            ("enrich", self.enrich.is_some()),
            ("preReconcile", self.pre_reconcile.is_some()),
            ("observe", self.observe.is_some()),
            ("cross", self.cross.is_some()),
            ("autoscale", self.autoscale.is_some()),
            ("rollBackOnError", self.roll_back_on_error.is_some()),
            ("notification", self.notification.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.then_some(k))
        .collect()
    }
}

/// `apiTypes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTypes {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub plural: Option<String>,
    pub api_path: Option<String>,
}

/// `queue`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Queue {
    #[serde(alias = "maxQueueDepth")]
    pub max_depth: Option<u32>,
    #[serde(alias = "degradeThreshold")]
    pub failure_threshold: Option<u32>,
    pub shared: Option<bool>,
}

/// `imports[]`: a motif file (relative to the Katalog file) and its input bindings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Import {
    pub motif: String,
    #[serde(default)]
    pub with: BTreeMap<String, Value>,
}

/// `admission` (later spelling): `validation` and `mutation`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    pub validation: Option<Validation>,
    pub mutation: Option<Mutation>,
}

/// `endpoints`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    pub enabled: Option<bool>,
    pub health: Option<bool>,
    pub info: Option<bool>,
}

/// `operatorBox`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorBox {
    /// `false` means a Go constructor: refused.
    pub default: Option<bool>,
    #[serde(default)]
    pub finalizers: Vec<String>,
    pub on_create: Option<HookTemplates>,
    pub on_reconcile: Option<HookTemplates>,
    pub on_delete: Option<HookTemplates>,
    /// Later spelling: `reconcile.{onCreate,onReconcile,onDelete}`.
    pub reconcile: Option<Lifecycle>,
    pub status: Option<StatusBlock>,
    /// Later spelling: `emit.status`.
    pub emit: Option<Emit>,
    pub reconciler: Option<Tuning>,
}

/// `operatorBox.reconcile` (later spelling of the lifecycle blocks).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lifecycle {
    pub on_create: Option<HookTemplates>,
    pub on_reconcile: Option<HookTemplates>,
    pub on_delete: Option<HookTemplates>,
}

/// `operatorBox.emit`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Emit {
    pub status: Option<StatusBlock>,
}

/// `operatorBox.reconciler`: the v0.6 place of the worker/queue knobs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    pub default: Option<bool>,
    pub workers: Option<u32>,
    pub resync: Option<GoDuration>,
    pub queue: Option<Queue>,
    pub hooks: Option<IgnoredAny>,
    pub constructor: Option<IgnoredAny>,
}

/// `status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBlock {
    #[serde(default)]
    pub fields: Vec<StatusField>,
}

/// One declarative status field; the value is always written as a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusField {
    pub path: String,
    pub value: Text,
    #[serde(default)]
    pub when: Vec<Condition>,
    #[serde(default, alias = "anyOf")]
    pub or: Vec<Condition>,
}
