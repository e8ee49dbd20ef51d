//! The HTTP API's response bodies (§10) as serde structs, field names exactly as Orkestra's
//! JSON (camelCase, `OrkReady`). [`super::State`] builds them; the HTTP handlers and a
//! control-panel page serialize the same values. Fields marked *ours* are additions.
//!
//! Secret children appear by name only: no view carries a Secret's data.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{config::Source, health::State as HealthState};

/// `GET /katalog`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KatalogSummary {
    pub crds: Vec<CrdSummary>,
    pub total: usize,
    pub total_enabled: usize,
    #[serde(rename = "OrkReady")]
    pub ork_ready: bool,
    pub deletion_protection: bool,
    pub healthy: bool,
    /// `healthy` or `degraded`.
    pub status: String,
    pub degraded_reason: String,
    pub status_counts: StatusCounts,
    pub name: String,
    pub version: String,
    pub author: String,
    pub description: String,
    pub license: String,
    /// Ours: this replica's part in leader election.
    pub leader: LeaderView,
    /// Ours: the names of every Katalog loaded (`name` is the first's).
    pub katalogs: Vec<String>,
}

/// `statusCounts` of `/katalog`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StatusCounts {
    pub healthy: usize,
    pub degraded: usize,
    pub started: usize,
    pub pending: usize,
}

/// Ours: leader election as seen by this replica.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderView {
    pub enabled: bool,
    /// `leader` (reconciling), `standby` (waiting for the lease) or `disabled`.
    pub role: String,
    pub identity: String,
    /// The Lease, `<namespace>/<name>`, or empty when disabled.
    pub lease: String,
}

/// One entry in `/katalog`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrdSummary {
    pub name: String,
    pub description: String,
    pub mode: String,
    pub gvk: String,
    pub gvr: String,
    pub namespaced: bool,
    pub namespace: String,
    pub depends_on: Vec<String>,
    pub has_unhealthy_dependencies: bool,
    pub workers: u32,
    pub workers_source: Source,
    pub workers_active: u32,
    pub resync: String,
    pub resync_source: Source,
    pub queue_depth: usize,
    pub max_queue_depth: u32,
    pub max_queue_depth_source: Source,
    pub resource_count: usize,
    pub reconciler: ReconcilerSummary,
    pub healthy: bool,
    pub state: HealthState,
    pub started: bool,
    pub pending: bool,
    pub started_at: String,
    pub uptime: String,
    pub error_rate: f64,
    pub endpoints: Endpoints,
    pub rbac_count: usize,
    pub deletion_protection: bool,
    /// Ours: why the entry is degraded or not started (e.g. its CRD is not installed).
    pub last_error: String,
}

/// `reconciler` of a [`CrdSummary`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerSummary {
    #[serde(rename = "type")]
    pub kind: String,
    pub has_templates: bool,
    pub has_hooks: bool,
    pub has_constructor: bool,
}

/// `endpoints` of a [`CrdSummary`].
#[derive(Debug, Clone, Serialize)]
pub struct Endpoints {
    pub health: String,
    pub info: String,
}

/// `GET /katalog/{crd}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrdInfo {
    pub name: String,
    pub description: String,
    pub mode: String,
    pub gvk: String,
    pub gvr: String,
    pub namespaced: bool,
    pub namespace: String,
    pub depends_on: Vec<String>,
    pub workers: u32,
    pub workers_active: u32,
    pub workers_idle: u32,
    pub workers_processing: u32,
    pub worker_details: Vec<WorkerDetail>,
    pub workers_source: Source,
    pub resync: String,
    pub resync_source: Source,
    pub queue_depth: usize,
    pub max_queue_depth: u32,
    pub max_queue_depth_source: Source,
    pub resource_count: usize,
    pub total_reconciles: u64,
    pub reconciler: ReconcilerInfo,
    pub healthy: bool,
    pub started: bool,
    pub pending: bool,
    pub error_rate: f64,
    pub rbac: Rbac,
    /// Ours.
    pub state: HealthState,
    /// Ours.
    pub failure_threshold: u32,
    /// Ours.
    pub failure_threshold_source: Source,
    /// Ours.
    pub allowed_namespaces: Vec<String>,
    /// Ours.
    pub restricted_namespaces: Vec<String>,
    /// Ours: the namespaces the CR watch covers; empty for cluster-wide.
    pub watched_namespaces: Vec<String>,
    /// Ours.
    pub last_error: String,
}

/// One worker of `workerDetails`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerDetail {
    pub id: u32,
    /// `idle`, `processing` or `stopped`.
    pub state: String,
}

/// `reconciler` of a [`CrdInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct ReconcilerInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub finalizers: Finalizers,
    pub hooks: Configured,
    pub constructor: Configured,
    /// Block (`onCreate`) → kind list key (`configMaps`) → entries.
    pub templates: BTreeMap<String, BTreeMap<String, usize>>,
}

/// `finalizers` of a [`ReconcilerInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct Finalizers {
    pub source: String,
    pub values: Vec<String>,
}

/// `{configured: bool}`.
#[derive(Debug, Clone, Serialize)]
pub struct Configured {
    pub configured: bool,
}

/// `rbac` of a [`CrdInfo`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rbac {
    pub rules: Vec<RbacRule>,
    pub summary: String,
    pub total_rules: usize,
}

/// One RBAC rule the entry needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RbacRule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

/// `GET /katalog/{crd}/health`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrdHealth {
    pub name: String,
    pub state: HealthState,
    pub healthy: bool,
    pub started: bool,
    pub pending: bool,
    pub started_at: String,
    pub uptime: String,
    pub queue_depth: usize,
    pub error_rate: f64,
    pub consecutive_fails: u32,
    pub total_reconciles: u64,
    /// Ours.
    pub failed_reconciles: u64,
    pub resource_count: usize,
    pub last_error: String,
    pub last_reconcile: String,
    pub has_unhealthy_dependencies: bool,
    pub dependencies: Vec<String>,
    pub missing: Vec<String>,
}

/// `GET /katalog/{crd}/cr`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrList {
    pub crd: String,
    pub gvk: String,
    pub total: usize,
    pub items: Vec<CrSummary>,
}

/// One CR of a [`CrList`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrSummary {
    pub name: String,
    pub namespace: String,
    /// Ready's status: `True`, `False` or `Unknown` before the first pass.
    pub ready: String,
    pub reason: String,
    pub message: String,
    pub generation: i64,
    pub observed_generation: i64,
    pub created_at: String,
    pub deleting: bool,
}

/// `GET /katalog/{crd}/cr/{ns}/{name}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrDetail {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub gvk: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub finalizers: Vec<String>,
    pub spec: Value,
    pub status: Value,
    pub children: Vec<ChildView>,
    /// Why the children could not be listed (a template failed), else empty.
    pub children_error: String,
    pub events: Vec<EventView>,
}

/// One child of a [`CrDetail`]: its identity and presence, never its content.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildView {
    pub kind: String,
    pub api_version: String,
    pub name: String,
    pub namespace: String,
    /// `onCreate` or `onReconcile`.
    pub phase: String,
    /// Whether the runtime keeps it updated (`onReconcile`, or `reconcile: true`).
    pub updated: bool,
    /// Whether the child cache holds it.
    pub present: bool,
}

/// One core Event about a CR.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub first_timestamp: String,
    pub last_timestamp: String,
}

/// `/health`, `/ready`, `/startup`.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub status: String,
    pub service: String,
    pub uptime: String,
    pub started: String,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub error: String,
}
