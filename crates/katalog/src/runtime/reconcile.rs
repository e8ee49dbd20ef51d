//! One pass over one CR (§4.2) and the delete path (§4.5): the CR's labels, annotations and
//! finalizers, the children (create-if-absent for `onCreate`, server-side apply for
//! `onReconcile`, skipped when the cache already agrees; `once` Secrets kept or rotated), the
//! status layers and the events. The delete path polls by requeue: ordered onDelete groups and
//! onDelete Jobs are read from the cluster on every pass, bounded by the block's `timeout`.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::ObjectReference,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions},
    runtime::controller::Action,
};
use serde_json::{Map, Value, json};

use super::{
    cache::CacheView,
    clock::{Clock, rfc3339},
    controller::key_of,
    diff::covers,
    events::{self, Note},
    kinds,
    live::Live,
    metrics::{Metrics, Outcome},
    status,
};
use crate::{
    cluster::{ClusterView as _, ObjectRef},
    load::Entry,
    render::{self, Child, MANAGED_LABEL, Once},
    template::Engine,
};

/// The field manager of every server-side apply (§13.7).
pub const FIELD_MANAGER: &str = "orkestra-runtime";
/// Write-once annotation: the Katalog's name.
pub const MANAGED_BY: &str = "orkestra.orkspace.io/managed-by";
/// Write-once annotation: when the runtime first took the CR over.
pub const MANAGED_SINCE: &str = "orkestra.orkspace.io/managed-since";

/// How often the delete path looks again while onDelete objects are going or Jobs run
/// (Orkestra polls every 3 s).
const DELETE_POLL: Duration = Duration::from_secs(3);
/// The onDelete `timeout` when the Katalog gives none (§2.4).
const DELETE_TIMEOUT: Duration = Duration::from_secs(300);

/// First retry delay after a failed pass; doubled per consecutive failure.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Counters of what the runtime did, shared by every entry; tests read them to tell an apply
/// from a skip, which the API server cannot show (a no-op apply leaves no trace).
#[derive(Debug, Default)]
pub struct Stats {
    pub reconciles: AtomicU64,
    pub failures: AtomicU64,
    /// Children created (onCreate, or the first apply of an onReconcile child).
    pub created: AtomicU64,
    /// Server-side applies sent.
    pub applied: AtomicU64,
    /// Applies not sent because the cached child already matched.
    pub skipped: AtomicU64,
}

impl Stats {
    /// The current value of one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What one entry's reconciles share.
pub struct Context {
    pub client: Client,
    pub entry: Entry,
    /// The CR's resource, as the API server serves it.
    pub resource: ApiResource,
    pub engine: Engine,
    pub view: Arc<CacheView>,
    pub stats: Arc<Stats>,
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// The last object applied per child: a skip needs both this and the cache to agree, so a
    /// field dropped from the Katalog's output (which the cache still shows) is still applied.
    applied: Mutex<HashMap<String, Value>>,
    /// Consecutive failures per CR, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// CRs (by uid) whose `Deleting` event was sent, so a delete path that waits over several
    /// passes announces itself once. Only the event depends on it: the progress is read from
    /// the cluster every pass.
    deleting: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("entry", &self.entry.name)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for `live`'s entry, whose templates read `view`.
    pub fn new(
        client: Client,
        live: Arc<Live>,
        resource: ApiResource,
        view: Arc<CacheView>,
        stats: Arc<Stats>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            client,
            entry: live.entry.clone(),
            resource,
            engine: Engine::new(view.clone()),
            view,
            stats,
            live,
            metrics,
            clock,
            applied: Mutex::default(),
            failures: Mutex::default(),
            deleting: Mutex::default(),
        }
    }

    fn cr_api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &self.resource),
            None => Api::all_with(self.client.clone(), &self.resource),
        }
    }
}

/// A Kubernetes error as a person reads it: for an answer of the API server its message, reason
/// and code (`ReplicaSet.apps "w" is invalid: spec.replicas: …: must be greater than or equal to
/// 0 (Invalid, HTTP 422)`), not kube's debug dump of the whole Status; these messages reach Ready
/// conditions, events and the control panel.
pub fn api_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({}, HTTP {})", status.message, status.reason, status.code),
        other => other.to_string(),
    }
}

/// A failed pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the CR has no metadata.name")]
    NoName,
    #[error("failed to render children: {0}")]
    Render(#[source] render::Error),
    #[error("{child}: apiVersion {api_version} kind {kind} is not handled by this runtime yet")]
    UnsupportedKind {
        child: String,
        api_version: String,
        kind: String,
    },
    #[error("{child}: the rendered object is not a Kubernetes object: {source}")]
    DecodeChild {
        child: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to create {child}: {}", api_text(source))]
    CreateChild {
        child: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply {child}: {}", api_text(source))]
    ApplyChild {
        child: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete {child}, whose conditions are false: {}", api_text(source))]
    DeleteChild {
        child: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to add finalizers: {}", api_text(.0))]
    AddFinalizers(#[source] kube::Error),
    #[error("failed to patch the CR's labels and annotations: {}", api_text(.0))]
    PatchMetadata(#[source] kube::Error),
    #[error("onDelete failed: {0}")]
    OnDelete(#[source] Box<Error>),
    #[error("failed to read {child}: {}", api_text(source))]
    GetChild {
        child: String,
        #[source]
        source: kube::Error,
    },
    #[error("onDelete Job {job} failed: {message}")]
    JobFailed { job: String, message: String },
    #[error("failed to rotate {child}: {}", api_text(source))]
    RotateSecret {
        child: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to remove finalizers: {}", api_text(.0))]
    RemoveFinalizers(#[source] kube::Error),
}

/// What a pass wrote, for the log and the decision to emit `<Kind>Reconciled`.
#[derive(Debug, Default)]
struct Changes {
    created: Vec<String>,
    repaired: Vec<String>,
    deleted: Vec<String>,
}

/// The CR named for messages: `<ns>/<name>`, or `<name>` when cluster-scoped.
fn display_key(obj: &DynamicObject) -> String {
    match &obj.metadata.namespace {
        Some(ns) => format!("{ns}/{}", obj.metadata.name.as_deref().unwrap_or_default()),
        None => obj.metadata.name.clone().unwrap_or_default(),
    }
}

fn reference(obj: &DynamicObject, ctx: &Context) -> ObjectReference {
    ObjectReference {
        api_version: Some(ctx.resource.api_version.clone()),
        kind: Some(ctx.resource.kind.clone()),
        name: obj.metadata.name.clone(),
        namespace: obj.metadata.namespace.clone(),
        uid: obj.metadata.uid.clone(),
        resource_version: obj.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// RFC 3339 UTC to the second, as Kubernetes prints times.
fn now() -> String {
    rfc3339(Timestamp::now())
}

/// Reconciles one CR and records the pass in the entry's health and metrics.
///
/// # Errors
/// The first failing step; the Ready condition says so and the controller backs off.
pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let live = Arc::clone(&ctx.live);
    live.gate.started(&key_of(&obj));
    let busy = live.busy();
    live.publish_gauges(&ctx.metrics);
    let began = Instant::now();
    let result = pass(obj, Arc::clone(&ctx)).await;
    let seconds = began.elapsed().as_secs_f64();
    let gvk = ctx.entry.gvk();
    match &result {
        Ok(_) => {
            ctx.metrics.reconciled(&gvk, Outcome::Success, seconds);
            live.health.success(ctx.clock.now());
        }
        Err(e) => {
            ctx.metrics.reconciled(&gvk, Outcome::Error, seconds);
            live.health.failure(e.to_string(), ctx.clock.now());
        }
    }
    drop(busy);
    live.publish_gauges(&ctx.metrics);
    result
}

/// One pass (§4.2).
async fn pass(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    bump(&ctx.stats.reconciles);
    let name = obj.metadata.name.clone().ok_or(Error::NoName)?;
    let api = ctx.cr_api(obj.metadata.namespace.as_deref());
    let cr_ref = reference(&obj, &ctx);
    let kind = &ctx.entry.kind;
    let gvk = ctx.entry.gvk();
    let key = display_key(&obj);

    if obj.metadata.deletion_timestamp.is_some() {
        return delete(&api, &obj, &ctx, &cr_ref).await;
    }
    if ctx.entry.namespaced {
        let namespace = obj.metadata.namespace.as_deref().unwrap_or("default");
        if !ctx.entry.namespace_allowed(namespace) {
            return refuse_namespace(&api, &name, &obj, &ctx, &cr_ref, namespace).await;
        }
    }

    match metadata(&api, &obj, &ctx).await {
        Ok(true) => {
            events::publish(
                &ctx.client,
                &cr_ref,
                &Note::normal(
                    format!("{kind}FinalizerAdded"),
                    format!("Added finalizers to {key}"),
                ),
            )
            .await;
        }
        Ok(false) => {}
        Err(Error::AddFinalizers(source)) => {
            events::publish(
                &ctx.client,
                &cr_ref,
                &Note::warning(
                    format!("{kind}FinalizerError"),
                    format!("Failed to add finalizers: {}", api_text(&source)),
                ),
            )
            .await;
            return Err(Error::AddFinalizers(source));
        }
        Err(e) => return Err(e),
    }

    let mut cr = serde_json::to_value(obj.as_ref()).unwrap_or(Value::Null);
    if let Some(map) = cr.as_object_mut() {
        map.insert("apiVersion".into(), json!(ctx.resource.api_version));
        map.insert("kind".into(), json!(ctx.resource.kind));
    }
    let outcome = children(&ctx, &cr, &cr_ref).await;
    let declared = outcome.as_ref().map(|(rendered, _)| {
        let (fields, notes) = render::status(&ctx.entry, &cr, rendered, &ctx.engine, ctx.view.as_ref());
        for note in notes {
            tracing::info!(cr = %key, "{note}");
        }
        fields
    });
    let message = outcome.as_ref().err().map(ToString::to_string);
    let status_written = !ctx.entry.ignore_status_patch
        && write_status(
            &api,
            &name,
            &obj,
            ctx.entry.ignore_observed_generation,
            match (&declared, &message) {
                (Ok(fields), _) => Ok(fields),
                (Err(_), Some(m)) => Err(m.as_str()),
                (Err(_), None) => Err(""),
            },
        )
        .await;

    match outcome {
        Ok((rendered, changes)) => {
            ctx.failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            if !changes.created.is_empty()
                || !changes.repaired.is_empty()
                || !changes.deleted.is_empty()
                || status_written
            {
                tracing::info!(cr = %key, created = ?changes.created, repaired = ?changes.repaired,
                    deleted = ?changes.deleted, "reconciled");
                // Only a pass that wrote something gets an event: Orkestra emits one per pass
                // and leans on the recorder's aggregation; every resync would be an API write.
                events::publish(
                    &ctx.client,
                    &cr_ref,
                    &Note::normal(
                        format!("{kind}Reconciled"),
                        format!("Successfully reconciled {gvk} {key}"),
                    ),
                )
                .await;
            }
            let next = next_rotation(&rendered.children)
                .map(|at| until(at, ctx.clock.now()))
                .map_or(ctx.entry.resync.value, |d| d.min(ctx.entry.resync.value));
            Ok(Action::requeue(next))
        }
        Err(e) => {
            events::publish(
                &ctx.client,
                &cr_ref,
                &Note::warning(
                    format!("{kind}ReconcileError"),
                    format!("Failed to reconcile {gvk} {key}: {e}"),
                ),
            )
            .await;
            Err(e)
        }
    }
}

/// The earliest time a kept `once` Secret is due for rotation.
fn next_rotation(children: &[Child]) -> Option<Timestamp> {
    children
        .iter()
        .filter_map(|c| match c.once {
            Some(Once::Keep { rotate_at }) => rotate_at,
            _ => None,
        })
        .min()
}

/// The wait from `now` until `at`, at least one second (the clock is read to the second).
fn until(at: Timestamp, now: Timestamp) -> Duration {
    let left = at.duration_since(now);
    Duration::try_from(left)
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_secs(1))
}

/// Reason of the event and of the Ready condition for a CR in a namespace the entry excludes.
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";

/// The message for a CR in `namespace`, which `entry` excludes.
pub fn namespace_message(entry: &Entry, namespace: &str) -> String {
    let mut m = format!("namespace {namespace} is not allowed for {}", entry.gvk());
    if !entry.allowed_namespaces.is_empty() {
        m.push_str(&format!(
            "; allowedNamespaces: [{}]",
            entry.allowed_namespaces.join(", ")
        ));
    }
    if !entry.restricted_namespaces.is_empty() {
        m.push_str(&format!(
            "; restrictedNamespaces: [{}]",
            entry.restricted_namespaces.join(", ")
        ));
    }
    m
}

/// A CR outside the entry's namespaces: Ready=False saying so and a Warning event, no metadata
/// and no children. Orkestra skips such a CR silently, which leaves its author guessing. The
/// event goes out only with the status change, so a resync repeats neither.
async fn refuse_namespace(
    api: &Api<DynamicObject>,
    name: &str,
    obj: &DynamicObject,
    ctx: &Context,
    cr_ref: &ObjectReference,
    namespace: &str,
) -> Result<Action, Error> {
    let message = namespace_message(&ctx.entry, namespace);
    let current = obj.data.get("status");
    let generation = obj
        .metadata
        .generation
        .filter(|_| !ctx.entry.ignore_observed_generation);
    let mut desired = status::desired(current, generation, Err(&message), &now());
    desired["conditions"][0]["reason"] = json!(NAMESPACE_NOT_ALLOWED);
    if current.is_some_and(|c| covers(c, &desired)) {
        return Ok(Action::await_change());
    }
    tracing::warn!(cr = %display_key(obj), "{message}");
    // With `ignoreStatusPatch` only the event tells; it then comes with every change of the CR.
    if !ctx.entry.ignore_status_patch
        && let Err(e) = api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": desired })),
            )
            .await
    {
        tracing::warn!(cr = name, error = %e, "failed to patch status");
    }
    events::publish(
        &ctx.client,
        cr_ref,
        &Note::warning(NAMESPACE_NOT_ALLOWED, message),
    )
    .await;
    Ok(Action::await_change())
}

/// After a failed pass: the CR is retried after a delay that doubles per consecutive failure
/// (1 s up to 5 min), so a broken template costs one pass per delay, not a hot loop.
pub fn error_policy(obj: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    bump(&ctx.stats.failures);
    let key = display_key(&obj);
    let mut failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
    let n = failures.entry(key.clone()).or_insert(0);
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::warn!(cr = %key, failures = *n, retry_in = ?delay, "reconcile failed: {error}");
    Action::requeue(delay)
}

/// The delay after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_START.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// Steps 5–7 of §4.2 in one merge patch (§13.8): missing finalizers, the managed label, the
/// write-once annotations. Returns whether finalizers were added.
async fn metadata(api: &Api<DynamicObject>, obj: &DynamicObject, ctx: &Context) -> Result<bool, Error> {
    let existing = obj.metadata.finalizers.clone().unwrap_or_default();
    let missing: Vec<String> = if ctx.entry.remove_finalizers {
        Vec::new()
    } else {
        ctx.entry
            .finalizers
            .iter()
            .filter(|f| !existing.contains(f))
            .cloned()
            .collect()
    };
    // `removeFinalizers`: ours come off (others stay), so deleting the CR no longer waits for us.
    let removed = ctx.entry.remove_finalizers && existing.iter().any(|f| ctx.entry.finalizers.contains(f));
    let mut meta = Map::new();
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    if labels.get(MANAGED_LABEL).map(String::as_str) != Some("true") {
        meta.insert("labels".into(), json!({ MANAGED_LABEL: "true" }));
    }
    let annotations = obj.metadata.annotations.clone().unwrap_or_default();
    let mut add = Map::new();
    if annotations.get(MANAGED_BY).is_none_or(String::is_empty) {
        add.insert(MANAGED_BY.into(), json!(ctx.entry.katalog_name));
    }
    if annotations.get(MANAGED_SINCE).is_none_or(String::is_empty) {
        add.insert(MANAGED_SINCE.into(), json!(now()));
    }
    if !add.is_empty() {
        meta.insert("annotations".into(), Value::Object(add));
    }
    if !missing.is_empty() || removed {
        // A merge patch replaces the whole list; the resourceVersion makes it fail instead of
        // dropping a finalizer someone else added since we read the CR.
        let all: Vec<String> = existing
            .into_iter()
            .filter(|f| !(removed && ctx.entry.finalizers.contains(f)))
            .chain(missing.iter().cloned())
            .collect();
        meta.insert("finalizers".into(), json!(all));
        meta.insert("resourceVersion".into(), json!(obj.metadata.resource_version));
    }
    if meta.is_empty() {
        return Ok(false);
    }
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let result = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": meta })),
        )
        .await;
    match result {
        Ok(_) => Ok(!missing.is_empty()),
        Err(e) if !missing.is_empty() => Err(Error::AddFinalizers(e)),
        Err(e) => Err(Error::PatchMetadata(e)),
    }
}

/// The template phase: render, then create or apply each child in order. The first failing
/// child stops the pass (§4.3).
async fn children(
    ctx: &Context,
    cr: &Value,
    cr_ref: &ObjectReference,
) -> Result<(render::Rendered, Changes), Error> {
    let rendered = render::render_at(&ctx.entry, cr, &ctx.engine, ctx.view.as_ref(), ctx.clock.now())
        .map_err(Error::Render)?;
    for note in &rendered.notes {
        if let Some(message) = note.strip_prefix("ValidationWarning: ") {
            events::publish(&ctx.client, cr_ref, &Note::warning("ValidationWarning", message)).await;
        } else {
            tracing::debug!(cr = ?cr_ref.name, "{note}");
        }
    }
    let mut changes = Changes::default();
    for child in &rendered.children {
        ensure(ctx, child, &child.object, &mut changes).await?;
    }
    let cr_uid = cr["metadata"]["uid"].as_str().unwrap_or_default();
    let cr_name = cr["metadata"]["name"].as_str().unwrap_or_default();
    for child in &rendered.unwanted {
        remove(ctx, &rendered, child, cr_name, cr_uid, &mut changes).await?;
    }
    Ok((rendered, changes))
}

/// Deletes a kept-in-sync child whose conditions turned false (§4.3), if it exists and is the
/// CR's: labelled `orkestra-owner=<cr>` and not controlled by anything else. Another entry
/// that renders the same object (the usual "this variant or that one" pair) keeps it.
async fn remove(
    ctx: &Context,
    rendered: &render::Rendered,
    child: &Child,
    cr_name: &str,
    cr_uid: &str,
    changes: &mut Changes,
) -> Result<(), Error> {
    let t = target(ctx, &child.object)?;
    let same = |o: &Value| {
        o["apiVersion"] == child.object["apiVersion"]
            && o["kind"] == child.object["kind"]
            && o["metadata"]["name"] == child.object["metadata"]["name"]
            && o["metadata"]["namespace"] == child.object["metadata"]["namespace"]
    };
    if rendered.children.iter().any(|c| same(&c.object)) {
        return Ok(());
    }
    let Some(cached) = ctx.view.get(&t.object_ref) else {
        return Ok(());
    };
    let labelled = cached["metadata"]["labels"][render::OWNER_LABEL].as_str() == Some(cr_name);
    let controlled_elsewhere = cached["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["controller"] == true && r["uid"].as_str() != Some(cr_uid))
        });
    if !labelled || controlled_elsewhere {
        return Ok(());
    }
    match t
        .api
        .delete(&t.object_ref.name, &kube::api::DeleteParams::background())
        .await
    {
        Ok(_) => {
            ctx.applied
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&t.key);
            changes.deleted.push(t.label);
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::DeleteChild {
            child: t.label,
            source,
        }),
    }
}

/// Where a child lives.
struct Target {
    label: String,
    key: String,
    api: Api<DynamicObject>,
    object_ref: ObjectRef,
}

impl Target {
    /// The object as the API server has it now, or `None` when it does not exist.
    async fn read(&self) -> Result<Option<DynamicObject>, Error> {
        self.api
            .get_opt(&self.object_ref.name)
            .await
            .map_err(|source| Error::GetChild {
                child: self.label.clone(),
                source,
            })
    }
}

fn target(ctx: &Context, object: &Value) -> Result<Target, Error> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = object["metadata"]["namespace"].as_str();
    let label = match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    };
    let Some(known) = kinds::by_kind(kind).filter(|k| k.resource.api_version == api_version) else {
        return Err(Error::UnsupportedKind {
            child: label,
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        });
    };
    let api = match namespace.filter(|_| known.namespaced) {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &known.resource),
        None => Api::all_with(ctx.client.clone(), &known.resource),
    };
    Ok(Target {
        key: format!("{api_version}/{kind}/{}/{name}", namespace.unwrap_or_default()),
        label,
        api,
        object_ref: ObjectRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.filter(|_| known.namespaced).map(str::to_owned),
            name: name.to_owned(),
        },
    })
}

/// Brings one child to its rendered state.
async fn ensure(ctx: &Context, child: &Child, object: &Value, changes: &mut Changes) -> Result<(), Error> {
    let t = target(ctx, object)?;
    let cached = ctx.view.get(&t.object_ref);
    if child.once == Some(Once::Rotate)
        && let Some(old) = &cached
    {
        // The uid precondition deletes only the Secret that was judged old: a cache that has
        // not seen the replacement yet must not make us delete the new one.
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: old["metadata"]["uid"].as_str().map(str::to_owned),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match t.api.delete(&t.object_ref.name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(source) => {
                return Err(Error::RotateSecret {
                    child: t.label,
                    source,
                });
            }
        }
        if create(ctx, &t, object).await? {
            changes.repaired.push(format!("{} (rotated)", t.label));
        }
        return Ok(());
    }
    if !child.updated {
        if cached.is_none() && create(ctx, &t, object).await? {
            changes.created.push(t.label);
        }
        return Ok(());
    }
    let same_as_last = ctx
        .applied
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&t.key)
        == Some(object);
    if same_as_last && cached.as_ref().is_some_and(|c| covers(c, object)) {
        bump(&ctx.stats.skipped);
        ctx.metrics.child_apply(&ctx.entry.gvk(), true);
        return Ok(());
    }
    let name = t.object_ref.name.as_str();
    t.api
        .patch(
            name,
            &apply_params(ctx.entry.force_conflict),
            &Patch::Apply(object),
        )
        .await
        .map_err(|source| Error::ApplyChild {
            child: t.label.clone(),
            source,
        })?;
    bump(&ctx.stats.applied);
    ctx.metrics.child_apply(&ctx.entry.gvk(), false);
    ctx.applied
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(t.key, object.clone());
    match cached {
        None => changes.created.push(t.label),
        Some(c) if !covers(&c, object) => changes.repaired.push(t.label),
        Some(_) => {}
    }
    Ok(())
}

/// Server-side apply under our field manager; forced unless the entry says `forceConflict: false`
/// (§13.7), in which case a field another manager owns fails the apply with 409.
fn apply_params(force: bool) -> PatchParams {
    let params = PatchParams::apply(FIELD_MANAGER);
    if force { params.force() } else { params }
}

/// Creates `object` unless it exists; `AlreadyExists` means the cache lagged and is fine.
/// Returns whether it was created.
async fn create(ctx: &Context, t: &Target, object: &Value) -> Result<bool, Error> {
    let decoded: DynamicObject =
        serde_json::from_value(object.clone()).map_err(|source| Error::DecodeChild {
            child: t.label.clone(),
            source,
        })?;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match t.api.create(&pp, &decoded).await {
        Ok(_) => {
            bump(&ctx.stats.created);
            Ok(true)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(source) => Err(Error::CreateChild {
            child: t.label.clone(),
            source,
        }),
    }
}

/// The status patch (§4.4), skipped when the CR's status already holds it. Returns whether it
/// was written. A failure is logged, not returned: a CRD without a status subresource must not
/// fail every pass.
async fn write_status(
    api: &Api<DynamicObject>,
    name: &str,
    obj: &DynamicObject,
    ignore_observed_generation: bool,
    outcome: Result<&Map<String, Value>, &str>,
) -> bool {
    let current = obj.data.get("status");
    let generation = obj.metadata.generation.filter(|_| !ignore_observed_generation);
    let desired = status::desired(current, generation, outcome, &now());
    if current.is_some_and(|c| covers(c, &desired)) {
        return false;
    }
    match api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": desired })),
        )
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(cr = name, error = %e, "failed to patch status");
            false
        }
    }
}

/// The delete path (§4.5): `Deleting`, the onDelete block, then our finalizers off. Children
/// are left to the garbage collector through their owner references. While onDelete waits
/// (ordered groups going, onDelete Jobs running) the pass returns a requeue of
/// [`DELETE_POLL`] instead of holding a worker; the next pass reads the progress from the
/// cluster again, so a restarted runtime goes on where the last one was.
async fn delete(
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
    ctx: &Context,
    cr_ref: &ObjectReference,
) -> Result<Action, Error> {
    let existing = obj.metadata.finalizers.clone().unwrap_or_default();
    if !existing.iter().any(|f| ctx.entry.finalizers.contains(f)) {
        return Ok(Action::await_change());
    }
    let (kind, gvk, key) = (&ctx.entry.kind, ctx.entry.gvk(), display_key(obj));
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let first = ctx
        .deleting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(uid.clone());
    if first {
        events::publish(
            &ctx.client,
            cr_ref,
            &Note::normal("Deleting", format!("Deleting {gvk} {key}")),
        )
        .await;
    }
    match on_delete(ctx, obj).await {
        Ok(Progress::Done) => {}
        Ok(Progress::Waiting(what)) => {
            let timeout = ctx.entry.on_delete.timeout.map_or(DELETE_TIMEOUT, |t| t.0);
            let since = obj
                .metadata
                .deletion_timestamp
                .as_ref()
                .map_or_else(|| ctx.clock.now(), |t| t.0);
            if !timed_out(since, timeout, ctx.clock.now()) {
                tracing::debug!(cr = %key, "onDelete waiting for {what}");
                return Ok(Action::requeue(DELETE_POLL));
            }
            let message = format!(
                "onDelete of {gvk} {key} did not finish within {}; still there: {what}; the finalizer stays",
                render::go_duration(timeout)
            );
            tracing::warn!(cr = %key, "{message}");
            events::publish(
                &ctx.client,
                cr_ref,
                &Note::warning(format!("{kind}DeleteTimeout"), message),
            )
            .await;
            return Ok(Action::await_change());
        }
        Err(e) => {
            events::publish(
                &ctx.client,
                cr_ref,
                &Note::warning(
                    format!("{kind}DeleteError"),
                    format!("Template deletion failed: {e}"),
                ),
            )
            .await;
            return Err(Error::OnDelete(Box::new(e)));
        }
    }
    let kept: Vec<String> = existing
        .into_iter()
        .filter(|f| !ctx.entry.finalizers.contains(f))
        .collect();
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": obj.metadata.resource_version}});
    if let Err(e) = api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        events::publish(
            &ctx.client,
            cr_ref,
            &Note::warning(
                format!("{kind}FinalizerRemovalError"),
                format!("Failed to remove finalizers: {}", api_text(&e)),
            ),
        )
        .await;
        return Err(Error::RemoveFinalizers(e));
    }
    ctx.deleting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&uid);
    events::publish(
        &ctx.client,
        cr_ref,
        &Note::normal(
            format!("{kind}Deleted"),
            format!("Successfully deleted {gvk} {key}"),
        ),
    )
    .await;
    Ok(Action::await_change())
}

/// Whether an onDelete that began at `since` (the CR's deletion) is out of `timeout` at `now`.
fn timed_out(since: Timestamp, timeout: Duration, now: Timestamp) -> bool {
    let timeout = SignedDuration::try_from(timeout).unwrap_or(SignedDuration::MAX);
    now.duration_since(since) >= timeout
}

/// How far the onDelete block is.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Done,
    /// Waiting for these objects (`group 1: ConfigMap ns/a, …`, `Job ns/j`).
    Waiting(String),
}

/// An object of a deletion group, as read from the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Absent,
    Present,
    /// Its deletion has begun (deletionTimestamp set): nothing to send, only to wait.
    Terminating,
}

/// What to do for one group: `None` when every object is gone (the next group may start),
/// otherwise the indexes of the objects to delete now (possibly none: all are terminating).
fn group_step(objects: &[Presence]) -> Option<Vec<usize>> {
    if objects.iter().all(|p| *p == Presence::Absent) {
        return None;
    }
    Some(
        objects
            .iter()
            .enumerate()
            .filter_map(|(i, p)| (*p == Presence::Present).then_some(i))
            .collect(),
    )
}

/// What a Job's conditions say: finished, failed (with the condition's message) or running.
fn job_outcome(job: &Value) -> Option<Result<(), String>> {
    let conditions = job.pointer("/status/conditions").and_then(Value::as_array)?;
    let is = |kind: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == kind && c["status"] == "True")
    };
    if is("Complete").is_some() {
        return Some(Ok(()));
    }
    is("Failed").map(|c| {
        Err(c["message"]
            .as_str()
            .or(c["reason"].as_str())
            .unwrap_or("Failed")
            .to_owned())
    })
}

/// The onDelete block for one pass: with `ordered: true`, the first group that is not gone yet
/// is deleted (foreground propagation) and waited for; once every group is gone, the block's
/// own objects are created when missing, without owner references (the CR is going away and an
/// owned object would be collected with it; Orkestra's onDelete Jobs carry none either), and
/// its Jobs are waited for (§13.6).
async fn on_delete(ctx: &Context, obj: &DynamicObject) -> Result<Progress, Error> {
    let mut cr = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(map) = cr.as_object_mut() {
        map.insert("apiVersion".into(), json!(ctx.resource.api_version));
        map.insert("kind".into(), json!(ctx.resource.kind));
    }
    let groups = render::render_delete_groups(&ctx.entry, &cr, &ctx.engine).map_err(Error::Render)?;
    for group in &groups {
        let mut targets = Vec::with_capacity(group.objects.len());
        let mut presence = Vec::with_capacity(group.objects.len());
        for r in &group.objects {
            let t = ref_target(ctx, r)?;
            let found = t.read().await?;
            presence.push(match found {
                None => Presence::Absent,
                Some(o) if o.metadata.deletion_timestamp.is_some() => Presence::Terminating,
                Some(_) => Presence::Present,
            });
            targets.push(t);
        }
        let Some(to_delete) = group_step(&presence) else {
            continue;
        };
        for i in to_delete {
            let t = &targets[i];
            match t
                .api
                .delete(&t.object_ref.name, &DeleteParams::foreground())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(Error::DeleteChild {
                        child: t.label.clone(),
                        source,
                    });
                }
            }
        }
        let still: Vec<&str> = targets
            .iter()
            .zip(&presence)
            .filter(|(_, p)| **p != Presence::Absent)
            .map(|(t, _)| t.label.as_str())
            .collect();
        return Ok(Progress::Waiting(format!("{}: {}", group.name, still.join(", "))));
    }
    if ctx.entry.on_delete.counts().is_empty() {
        return Ok(Progress::Done);
    }
    let rendered =
        render::render_on_delete(&ctx.entry, &cr, &ctx.engine, ctx.view.as_ref()).map_err(Error::Render)?;
    let mut running = Vec::new();
    for child in &rendered.children {
        let mut object = child.object.clone();
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("ownerReferences");
        }
        let t = target(ctx, &object)?;
        create(ctx, &t, &object).await?;
        if object["kind"] != "Job" {
            continue;
        }
        // Read from the API server, not the cache: the delete path must not depend on the
        // entry watching Jobs.
        let job = t.read().await?;
        let outcome = job
            .as_ref()
            .and_then(|j| job_outcome(&serde_json::to_value(j).unwrap_or(Value::Null)));
        match outcome {
            Some(Ok(())) => {}
            Some(Err(message)) => {
                return Err(Error::JobFailed {
                    job: t.label.clone(),
                    message,
                });
            }
            None => running.push(t.label),
        }
    }
    if running.is_empty() {
        Ok(Progress::Done)
    } else {
        Ok(Progress::Waiting(format!("running {}", running.join(", "))))
    }
}

/// Where an object named by a deletion group lives; an empty apiVersion is the kind's own.
fn ref_target(ctx: &Context, r: &ObjectRef) -> Result<Target, Error> {
    let api_version = if r.api_version.is_empty() {
        kinds::by_kind(&r.kind).map_or_else(String::new, |k| k.resource.api_version)
    } else {
        r.api_version.clone()
    };
    let mut object = json!({"apiVersion": api_version, "kind": r.kind, "metadata": {"name": r.name}});
    if let Some(ns) = &r.namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    target(ctx, &object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_and_stops_at_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }

    #[test]
    fn a_group_is_done_only_when_every_object_is_absent() {
        use Presence::{Absent, Present, Terminating};
        assert_eq!(group_step(&[]), None);
        assert_eq!(group_step(&[Absent, Absent]), None);
        // Present objects are deleted; terminating ones only waited for.
        assert_eq!(
            group_step(&[Present, Absent, Terminating, Present]),
            Some(vec![0, 3])
        );
        assert_eq!(group_step(&[Terminating]), Some(vec![]));
    }

    #[test]
    fn the_delete_timeout_counts_from_the_deletion() {
        let since: Timestamp = "2026-03-25T10:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let five = Duration::from_secs(300);
        assert!(!timed_out(since, five, at("2026-03-25T10:04:59Z")));
        assert!(timed_out(since, five, at("2026-03-25T10:05:00Z")));
    }

    #[test]
    fn a_job_is_done_when_complete_and_failed_with_its_message() {
        assert_eq!(job_outcome(&json!({})), None);
        assert_eq!(
            job_outcome(&json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})),
            Some(Ok(()))
        );
        assert_eq!(
            job_outcome(&json!({"status": {"conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}]}})),
            Some(Err("Job has reached the specified backoff limit".to_owned()))
        );
        assert_eq!(
            job_outcome(&json!({"status": {"conditions": [{"type": "Complete", "status": "False"}]}})),
            None
        );
    }

    #[test]
    fn the_rotation_requeue_is_the_earliest_kept_secret_and_at_least_a_second() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let child = |once| Child {
            phase: render::Phase::OnCreate,
            source: "secrets[0]".into(),
            updated: false,
            object: json!({}),
            once,
        };
        let children = [
            child(None),
            child(Some(Once::Keep {
                rotate_at: Some(at("2026-03-25T11:00:00Z")),
            })),
            child(Some(Once::Keep {
                rotate_at: Some(at("2026-03-25T10:30:00Z")),
            })),
            child(Some(Once::Keep { rotate_at: None })),
        ];
        assert_eq!(next_rotation(&children), Some(at("2026-03-25T10:30:00Z")));
        let now = at("2026-03-25T10:00:00Z");
        assert_eq!(until(at("2026-03-25T10:30:00Z"), now), Duration::from_secs(1800));
        assert_eq!(until(now, now), Duration::from_secs(1));
    }
}
