//! [`State`]: the read-only handle on a running runtime. The HTTP API serves its answers, and a
//! control-panel page in the same process can call the same methods and get the same
//! [`views`](super::views) structs.
//!
//! ```no_run
//! # async fn page(state: katalog::runtime::State) {
//! let summary = state.summary();                 // GET /katalog
//! let info = state.crd_info("data-job");         // GET /katalog/data-job (None: unknown entry)
//! let health = state.crd_health("data-job");     // GET /katalog/data-job/health
//! let crs = state.crs("data-job").await;         // GET /katalog/data-job/cr
//! let one = state.cr("data-job", Some("ns"), "backfill-job").await;
//! # }
//! ```
//!
//! Cheap to clone. Everything is read from memory (health, caches) except the CR list when the
//! entry is not running and a CR's events, which are API requests.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
};

use k8s_openapi::{api::core::v1::Event, jiff::Timestamp};
use kube::{
    Api, Client, ResourceExt as _,
    api::{DynamicObject, ListParams},
    core::GroupVersionResource,
};
use serde_json::Value;

use super::{
    clock::{Clock, rfc3339},
    controller::key_of,
    health::State as HealthState,
    kinds,
    live::Live,
    metrics::Metrics,
    views::*,
};
use crate::{
    cluster::ClusterView as _,
    load,
    model::scalar::GoDuration,
    render::{self, Phase},
    template::Engine,
};

/// The seven verbs of a resource the runtime owns.
const ALL_VERBS: [&str; 7] = ["get", "list", "watch", "create", "update", "patch", "delete"];

/// What a [`State`] query can fail on.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no CRD entry named {0:?}")]
    UnknownCrd(String),
    #[error("{crd}: no CR {key}")]
    NoSuchCr { crd: String, key: String },
    #[error("{crd}: the API server does not serve the CRD yet")]
    NotServed { crd: String },
    #[error("{crd}: {source}")]
    Api {
        crd: String,
        #[source]
        source: kube::Error,
    },
}

/// This replica's part in leader election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// No leader election: this replica always reconciles.
    Disabled = 0,
    Standby = 1,
    Leader = 2,
}

/// One loaded Katalog file.
#[derive(Debug, Clone)]
pub struct KatalogDoc {
    pub name: String,
    pub version: String,
    pub author: String,
    pub description: String,
    pub license: String,
    /// The file as JSON, Secret data redacted.
    pub raw: Value,
}

struct Inner {
    client: Client,
    katalogs: Vec<KatalogDoc>,
    entries: Vec<Arc<Live>>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    started: Timestamp,
    identity: String,
    lease: Option<String>,
    role: AtomicU8,
    ready: AtomicBool,
    addr: OnceLock<SocketAddr>,
}

/// The read-only handle on the runtime (see the module docs).
#[derive(Clone)]
pub struct State(Arc<Inner>);

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("entries", &self.0.entries)
            .field("role", &self.role())
            .finish_non_exhaustive()
    }
}

impl State {
    /// A handle over `entries`; `lease` is `<namespace>/<name>` when leader election is on.
    pub(crate) fn new(
        client: Client,
        katalogs: Vec<KatalogDoc>,
        entries: Vec<Arc<Live>>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        identity: String,
        lease: Option<String>,
    ) -> Self {
        let role = if lease.is_some() {
            Role::Standby
        } else {
            Role::Disabled
        };
        Self(Arc::new(Inner {
            started: clock.now(),
            client,
            katalogs,
            entries,
            metrics,
            clock,
            identity,
            lease,
            role: AtomicU8::new(role as u8),
            ready: AtomicBool::new(false),
            addr: OnceLock::new(),
        }))
    }

    pub(crate) fn set_role(&self, role: Role) {
        self.0.role.store(role as u8, Ordering::Relaxed);
        self.0.metrics.set_leader(role != Role::Standby);
    }

    pub(crate) fn set_ready(&self) {
        self.0.ready.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_http_addr(&self, addr: SocketAddr) {
        let _ = self.0.addr.set(addr);
    }

    /// Where the HTTP API listens, once bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.0.addr.get().copied()
    }

    /// This replica's part in leader election.
    pub fn role(&self) -> Role {
        match self.0.role.load(Ordering::Relaxed) {
            2 => Role::Leader,
            1 => Role::Standby,
            _ => Role::Disabled,
        }
    }

    /// Whether startup finished (the HTTP API is up and the controllers were started or this
    /// replica is standing by).
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Relaxed)
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// The entries, in Katalog order.
    pub fn entries(&self) -> &[Arc<Live>] {
        &self.0.entries
    }

    fn live(&self, crd: &str) -> Result<&Arc<Live>, QueryError> {
        self.0
            .entries
            .iter()
            .find(|l| l.entry.name == crd)
            .ok_or_else(|| QueryError::UnknownCrd(crd.to_owned()))
    }

    /// A probe body with `status`.
    pub fn probe(&self, status: &str) -> Probe {
        let now = self.0.clock.now();
        let up = std::time::Duration::try_from(now.duration_since(self.0.started)).unwrap_or_default();
        Probe {
            status: status.to_owned(),
            service: "katalog-runtime".to_owned(),
            uptime: GoDuration(std::time::Duration::from_secs(up.as_secs())).go_string(),
            started: rfc3339(self.0.started),
        }
    }

    /// `GET /katalog`; the HTTP code is 503 when `healthy` is false.
    pub fn summary(&self) -> KatalogSummary {
        let crds: Vec<CrdSummary> = self.0.entries.iter().map(|l| self.crd_summary(l)).collect();
        let mut counts = StatusCounts::default();
        for c in &crds {
            match c.state {
                HealthState::Healthy => counts.healthy += 1,
                HealthState::Degraded => counts.degraded += 1,
                HealthState::Pending => counts.pending += 1,
                HealthState::NotStarted => {}
            }
            if c.started {
                counts.started += 1;
            }
        }
        let healthy = counts.degraded == 0;
        let mut reasons = Vec::new();
        if counts.degraded > 0 {
            reasons.push(format!("{} degraded", counts.degraded));
        }
        if counts.pending > 0 && !healthy {
            reasons.push(format!("{} pending", counts.pending));
        }
        let first = self.0.katalogs.first();
        let field = |f: fn(&KatalogDoc) -> &String| first.map(f).cloned().unwrap_or_default();
        KatalogSummary {
            total: crds.len(),
            total_enabled: crds.len(),
            ork_ready: self.is_ready(),
            deletion_protection: false,
            healthy,
            status: if healthy { "healthy" } else { "degraded" }.to_owned(),
            degraded_reason: reasons.join(", "),
            status_counts: counts,
            name: field(|k| &k.name),
            version: field(|k| &k.version),
            author: field(|k| &k.author),
            description: field(|k| &k.description),
            license: field(|k| &k.license),
            leader: LeaderView {
                enabled: self.0.lease.is_some(),
                role: match self.role() {
                    Role::Disabled => "disabled",
                    Role::Standby => "standby",
                    Role::Leader => "leader",
                }
                .to_owned(),
                identity: self.0.identity.clone(),
                lease: self.0.lease.clone().unwrap_or_default(),
            },
            katalogs: self.0.katalogs.iter().map(|k| k.name.clone()).collect(),
            crds,
        }
    }

    fn crd_summary(&self, l: &Live) -> CrdSummary {
        let e = &l.entry;
        let h = l.health.snapshot(self.0.clock.now());
        let rbac = rbac(l);
        let templates = [&e.on_create, &e.on_reconcile, &e.on_delete]
            .iter()
            .any(|b| !b.counts().is_empty());
        CrdSummary {
            name: e.name.clone(),
            description: e.description.clone(),
            mode: "dynamic".to_owned(),
            gvk: e.gvk(),
            gvr: gvr(l),
            namespaced: e.namespaced,
            namespace: e.namespace.clone().unwrap_or_default(),
            depends_on: Vec::new(),
            has_unhealthy_dependencies: false,
            workers: l.workers(),
            workers_source: l.sources.workers,
            workers_active: if h.started { l.workers() } else { 0 },
            resync: GoDuration(e.resync.value).go_string(),
            resync_source: l.sources.resync,
            queue_depth: l.gate.depth(),
            max_queue_depth: e.max_queue_depth.value,
            max_queue_depth_source: l.sources.max_queue_depth,
            resource_count: l.resource_count(),
            reconciler: ReconcilerSummary {
                kind: "generic".to_owned(),
                has_templates: templates,
                has_hooks: false,
                has_constructor: false,
            },
            healthy: h.healthy,
            state: h.state,
            started: h.started,
            pending: h.pending,
            started_at: h.started_at,
            uptime: h.uptime,
            error_rate: h.error_rate,
            endpoints: Endpoints {
                health: format!("/katalog/{}/health", e.name),
                info: format!("/katalog/{}", e.name),
            },
            rbac_count: rbac.total_rules,
            deletion_protection: false,
            last_error: h.last_error,
        }
    }

    /// `GET /katalog/{crd}`; `None` for an unknown entry.
    pub fn crd_info(&self, crd: &str) -> Option<CrdInfo> {
        let l = self.live(crd).ok()?;
        let e = &l.entry;
        let h = l.health.snapshot(self.0.clock.now());
        let workers = l.workers();
        let processing = l.processing().min(workers);
        let worker_details = (0..workers)
            .map(|id| WorkerDetail {
                id,
                state: if !h.started {
                    "stopped"
                } else if id < processing {
                    "processing"
                } else {
                    "idle"
                }
                .to_owned(),
            })
            .collect();
        let mut templates = BTreeMap::new();
        for (block, hooks) in [
            ("onCreate", &e.on_create),
            ("onReconcile", &e.on_reconcile),
            ("onDelete", &e.on_delete),
        ] {
            let counts: BTreeMap<String, usize> = hooks
                .counts()
                .into_iter()
                .map(|(k, n)| (list_key(k), n))
                .collect();
            if !counts.is_empty() {
                templates.insert(block.to_owned(), counts);
            }
        }
        let running = h.started;
        Some(CrdInfo {
            name: e.name.clone(),
            description: e.description.clone(),
            mode: "dynamic".to_owned(),
            gvk: e.gvk(),
            gvr: gvr(l),
            namespaced: e.namespaced,
            namespace: e.namespace.clone().unwrap_or_default(),
            depends_on: Vec::new(),
            workers,
            workers_active: if running { workers } else { 0 },
            workers_idle: if running { workers - processing } else { 0 },
            workers_processing: processing,
            worker_details,
            workers_source: l.sources.workers,
            resync: GoDuration(e.resync.value).go_string(),
            resync_source: l.sources.resync,
            queue_depth: l.gate.depth(),
            max_queue_depth: e.max_queue_depth.value,
            max_queue_depth_source: l.sources.max_queue_depth,
            resource_count: l.resource_count(),
            total_reconciles: h.total,
            reconciler: ReconcilerInfo {
                kind: "generic".to_owned(),
                finalizers: Finalizers {
                    // `default` when only the system finalizer is there.
                    source: if e.finalizers.iter().any(|f| f != load::CLEANUP_FINALIZER) {
                        "katalog"
                    } else {
                        "default"
                    }
                    .to_owned(),
                    values: e.finalizers.clone(),
                },
                hooks: Configured { configured: false },
                constructor: Configured { configured: false },
                templates,
            },
            healthy: h.healthy,
            started: h.started,
            pending: h.pending,
            error_rate: h.error_rate,
            rbac: rbac(l),
            state: h.state,
            failure_threshold: e.failure_threshold.value,
            failure_threshold_source: l.sources.failure_threshold,
            allowed_namespaces: e.allowed_namespaces.clone(),
            restricted_namespaces: e.restricted_namespaces.clone(),
            watched_namespaces: super::controller::watched_namespaces(l)
                .into_iter()
                .flatten()
                .collect(),
            last_error: h.last_error,
        })
    }

    /// `GET /katalog/{crd}/health`; `None` for an unknown entry. The HTTP code is 503 unless
    /// `state` is pending or healthy.
    pub fn crd_health(&self, crd: &str) -> Option<CrdHealth> {
        let l = self.live(crd).ok()?;
        let h = l.health.snapshot(self.0.clock.now());
        Some(CrdHealth {
            name: l.entry.name.clone(),
            state: h.state,
            healthy: h.healthy,
            started: h.started,
            pending: h.pending,
            started_at: h.started_at,
            uptime: h.uptime,
            queue_depth: l.gate.depth(),
            error_rate: h.error_rate,
            consecutive_fails: h.consecutive,
            total_reconciles: h.total,
            failed_reconciles: h.failed,
            resource_count: l.resource_count(),
            last_error: h.last_error,
            last_reconcile: h.last_reconcile,
            has_unhealthy_dependencies: false,
            dependencies: Vec::new(),
            missing: Vec::new(),
        })
    }

    /// The CRs of `crd`: from the cache while the entry runs, else listed from the API server.
    async fn objects(&self, l: &Live) -> Result<Vec<DynamicObject>, QueryError> {
        if let Some(c) = l.caches() {
            return Ok(c.crs.state().iter().map(|o| o.as_ref().clone()).collect());
        }
        let gvk = kube::core::GroupVersionKind::gvk(&l.entry.group, &l.entry.version, &l.entry.kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.0.client, &gvk)
            .await
            .map_err(|_| QueryError::NotServed {
                crd: l.entry.name.clone(),
            })?;
        Api::<DynamicObject>::all_with(self.0.client.clone(), &resource)
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|source| QueryError::Api {
                crd: l.entry.name.clone(),
                source,
            })
    }

    /// `GET /katalog/{crd}/cr`, sorted by namespace and name.
    ///
    /// # Errors
    /// An unknown entry, a CRD not served, or the list failing.
    pub async fn crs(&self, crd: &str) -> Result<CrList, QueryError> {
        let l = self.live(crd)?;
        let mut items: Vec<CrSummary> = self.objects(l).await?.iter().map(cr_summary).collect();
        items.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(CrList {
            crd: crd.to_owned(),
            gvk: l.entry.gvk(),
            total: items.len(),
            items,
        })
    }

    /// `GET /katalog/{crd}/cr/{ns}/{name}` (`namespace` `None` for a cluster-scoped CR): its
    /// spec, status, children (rendered for the CR, looked up in the child caches) and events.
    ///
    /// # Errors
    /// An unknown entry or CR, or the API server failing.
    pub async fn cr(&self, crd: &str, namespace: Option<&str>, name: &str) -> Result<CrDetail, QueryError> {
        let l = self.live(crd)?;
        let key = match namespace {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        };
        let obj = self
            .objects(l)
            .await?
            .into_iter()
            .find(|o| key_of(o) == key)
            .ok_or_else(|| QueryError::NoSuchCr {
                crd: crd.to_owned(),
                key: key.clone(),
            })?;
        let (children, children_error) = children(l, &obj);
        let events = match (&obj.metadata.uid, obj.namespace()) {
            (Some(uid), ns) => {
                let api: Api<Event> =
                    Api::namespaced(self.0.client.clone(), ns.as_deref().unwrap_or("default"));
                let mut list = api
                    .list(&ListParams::default().fields(&format!("involvedObject.uid={uid}")))
                    .await
                    .map_err(|source| QueryError::Api {
                        crd: crd.to_owned(),
                        source,
                    })?
                    .items;
                list.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
                list.iter().rev().take(50).map(event_view).collect()
            }
            (None, _) => Vec::new(),
        };
        Ok(CrDetail {
            name: obj.name_any(),
            namespace: obj.namespace().unwrap_or_default(),
            uid: obj.metadata.uid.clone().unwrap_or_default(),
            gvk: l.entry.gvk(),
            labels: obj.labels().clone(),
            annotations: obj.annotations().clone(),
            finalizers: obj.finalizers().to_vec(),
            spec: obj.data.get("spec").cloned().unwrap_or(Value::Null),
            status: obj.data.get("status").cloned().unwrap_or(Value::Null),
            children,
            children_error,
            events,
        })
    }

    /// `GET /katalog/raw`: the Katalog file as JSON (an array when several were loaded),
    /// Secret data redacted.
    pub fn raw(&self) -> Value {
        match self.0.katalogs.as_slice() {
            [one] => one.raw.clone(),
            many => Value::Array(many.iter().map(|k| k.raw.clone()).collect()),
        }
    }

    /// `GET /katalog/{crd}/raw`: the entry as written in its file, Secret data redacted.
    pub fn entry_raw(&self, crd: &str) -> Option<Value> {
        let l = self.live(crd).ok()?;
        let doc = self.0.katalogs.get(l.katalog)?;
        let crds = doc.raw.pointer("/spec/crds")?.as_object()?;
        crds.iter()
            .find(|(k, _)| k.to_lowercase().replace(' ', "") == crd)
            .map(|(_, v)| v.clone())
    }
}

fn gvr(l: &Live) -> String {
    let e = &l.entry;
    let r = GroupVersionResource::gvr(&e.group, &e.version, &e.plural);
    format!("{}/{}, Resource={}", r.group, r.version, r.resource)
}

/// `ConfigMap` → `configMaps`, as the Katalog's block keys spell kinds.
fn list_key(kind: &str) -> String {
    if kind == "Custom" {
        return "custom".to_owned();
    }
    let mut chars = kind.chars();
    let first = chars.next().map(|c| c.to_ascii_lowercase()).unwrap_or_default();
    format!("{first}{}s", chars.as_str())
}

/// §10's RBAC info, for every child kind (§13.5).
pub fn rbac(l: &Live) -> Rbac {
    let e = &l.entry;
    let verbs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut rules = vec![
        RbacRule {
            api_groups: vec![e.group.clone()],
            resources: vec![e.plural.clone()],
            verbs: verbs(&ALL_VERBS),
        },
        RbacRule {
            api_groups: vec![e.group.clone()],
            resources: vec![format!("{}/status", e.plural)],
            verbs: verbs(&["get", "update", "patch"]),
        },
    ];
    for (kind, _) in [&e.on_create, &e.on_reconcile, &e.on_delete]
        .iter()
        .flat_map(|b| b.counts())
    {
        let Some(k) = kinds::by_kind(kind) else {
            continue;
        };
        let rule = RbacRule {
            api_groups: vec![k.resource.group.clone()],
            resources: vec![k.resource.plural.clone()],
            verbs: verbs(&ALL_VERBS),
        };
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    let mut per_resource: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rules {
        for res in &r.resources {
            *per_resource.entry(res.as_str()).or_default() += 1;
        }
    }
    let summary = per_resource
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ");
    Rbac {
        total_rules: rules.len(),
        summary,
        rules,
    }
}

fn cr_summary(o: &DynamicObject) -> CrSummary {
    let ready = o.data["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    CrSummary {
        name: o.name_any(),
        namespace: o.namespace().unwrap_or_default(),
        ready: ready["status"].as_str().unwrap_or("Unknown").to_owned(),
        reason: text(&ready["reason"]),
        message: text(&ready["message"]),
        generation: o.metadata.generation.unwrap_or_default(),
        observed_generation: o.data["status"]["observedGeneration"]
            .as_i64()
            .unwrap_or_default(),
        created_at: o
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| rfc3339(t.0))
            .unwrap_or_default(),
        deleting: o.metadata.deletion_timestamp.is_some(),
    }
}

/// The CR's children as the entry renders them now, each looked up in the child caches. Only
/// identities leave this function: a Secret's data never does.
fn children(l: &Live, obj: &DynamicObject) -> (Vec<ChildView>, String) {
    let Some(caches) = l.caches() else {
        return (Vec::new(), "the entry is not running".to_owned());
    };
    let mut cr = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(map) = cr.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            Value::String(caches.resource.api_version.clone()),
        );
        map.insert("kind".into(), Value::String(caches.resource.kind.clone()));
    }
    let engine = Engine::new(caches.children.clone());
    let rendered = match render::render(&l.entry, &cr, &engine, caches.children.as_ref()) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), e.to_string()),
    };
    let views = rendered
        .children
        .iter()
        .map(|c| {
            let o = &c.object;
            let s = |p: &str| {
                o.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let (api_version, kind, name, namespace) = (
                s("/apiVersion"),
                s("/kind"),
                s("/metadata/name"),
                s("/metadata/namespace"),
            );
            let namespaced = kinds::by_kind(&kind).is_none_or(|k| k.namespaced);
            let present = caches
                .children
                .get(&crate::cluster::ObjectRef {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    namespace: (namespaced && !namespace.is_empty()).then(|| namespace.clone()),
                    name: name.clone(),
                })
                .is_some();
            ChildView {
                kind,
                api_version,
                name,
                namespace,
                phase: match c.phase {
                    Phase::OnCreate => "onCreate",
                    Phase::OnReconcile => "onReconcile",
                    Phase::OnDelete => "onDelete",
                }
                .to_owned(),
                updated: c.updated,
                present,
            }
        })
        .collect();
    (views, String::new())
}

fn event_view(e: &Event) -> EventView {
    let t = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().map(|t| rfc3339(t.0)).unwrap_or_default()
    };
    EventView {
        kind: e.type_.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
        count: e.count.unwrap_or(1),
        first_timestamp: t(&e.first_timestamp),
        last_timestamp: t(&e.last_timestamp),
    }
}

/// `raw` with every Secret entry's `data` and `stringData` values replaced, at any depth: the
/// API shows Secret children by name only.
pub fn redact_secrets(raw: &mut Value) {
    match raw {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "secrets"
                    && let Value::Array(items) = v
                {
                    for item in items.iter_mut() {
                        for field in ["data", "stringData"] {
                            if let Some(Value::Object(data)) = item.get_mut(field) {
                                for value in data.values_mut() {
                                    *value = Value::String("<redacted>".to_owned());
                                }
                            }
                        }
                    }
                }
                redact_secrets(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_data_is_redacted_at_any_depth_and_names_stay() {
        let mut raw = json!({"spec": {"crds": {"app": {"operatorBox": {"onCreate": {"secrets": [
            {"name": "creds", "data": {"password": "hunter2"}, "stringData": {"token": "t"}}
        ]}}}}}});
        redact_secrets(&mut raw);
        let s = &raw["spec"]["crds"]["app"]["operatorBox"]["onCreate"]["secrets"][0];
        assert_eq!(s["name"], "creds");
        assert_eq!(s["data"]["password"], "<redacted>");
        assert_eq!(s["stringData"]["token"], "<redacted>");
        assert!(!raw.to_string().contains("hunter2"));
    }

    #[test]
    fn kinds_are_spelled_as_the_katalog_blocks_spell_them() {
        assert_eq!(list_key("ConfigMap"), "configMaps");
        assert_eq!(list_key("ReplicaSet"), "replicaSets");
        assert_eq!(list_key("Custom"), "custom");
    }
}
