//! One pass over one CR (§4.2) and the delete path (§4.5): the CR's labels, annotations and
//! finalizers, the children (create-if-absent for `onCreate`, server-side apply for
//! `onReconcile`, skipped when the cache already agrees), the status layers and the events.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::{api::core::v1::ObjectReference, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
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
    render::{self, Child, MANAGED_LABEL},
    template::Engine,
};

/// The field manager of every server-side apply (§13.7).
pub const FIELD_MANAGER: &str = "orkestra-runtime";
/// Write-once annotation: the Katalog's name.
pub const MANAGED_BY: &str = "orkestra.orkspace.io/managed-by";
/// Write-once annotation: when the runtime first took the CR over.
pub const MANAGED_SINCE: &str = "orkestra.orkspace.io/managed-since";

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
        }
    }

    fn cr_api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &self.resource),
            None => Api::all_with(self.client.clone(), &self.resource),
        }
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
    #[error("failed to create {child}: {source}")]
    CreateChild {
        child: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply {child}: {source}")]
    ApplyChild {
        child: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete {child}, whose conditions are false: {source}")]
    DeleteChild {
        child: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to add finalizers: {0}")]
    AddFinalizers(#[source] kube::Error),
    #[error("failed to patch the CR's labels and annotations: {0}")]
    PatchMetadata(#[source] kube::Error),
    #[error("onDelete failed: {0}")]
    OnDelete(#[source] Box<Error>),
    #[error("failed to remove finalizers: {0}")]
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
        Err(e @ Error::AddFinalizers(_)) => {
            let source = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_default();
            events::publish(
                &ctx.client,
                &cr_ref,
                &Note::warning(
                    format!("{kind}FinalizerError"),
                    format!("Failed to add finalizers: {source}"),
                ),
            )
            .await;
            return Err(e);
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
    let status_written = write_status(
        &api,
        &name,
        &obj,
        match (&declared, &message) {
            (Ok(fields), _) => Ok(fields),
            (Err(_), Some(m)) => Err(m.as_str()),
            (Err(_), None) => Err(""),
        },
    )
    .await;

    match outcome {
        Ok((_, changes)) => {
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
            Ok(Action::requeue(ctx.entry.resync.value))
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
    let mut desired = status::desired(current, obj.metadata.generation, Err(&message), &now());
    desired["conditions"][0]["reason"] = json!(NAMESPACE_NOT_ALLOWED);
    if current.is_some_and(|c| covers(c, &desired)) {
        return Ok(Action::await_change());
    }
    tracing::warn!(cr = %display_key(obj), "{message}");
    if let Err(e) = api
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
    let missing: Vec<String> = ctx
        .entry
        .finalizers
        .iter()
        .filter(|f| !existing.contains(f))
        .cloned()
        .collect();
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
    if !missing.is_empty() {
        // A merge patch replaces the whole list; the resourceVersion makes it fail instead of
        // dropping a finalizer someone else added since we read the CR.
        let all: Vec<String> = existing.into_iter().chain(missing.iter().cloned()).collect();
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
    let rendered = render::render(&ctx.entry, cr, &ctx.engine, ctx.view.as_ref()).map_err(Error::Render)?;
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
            &PatchParams::apply(FIELD_MANAGER).force(),
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
    outcome: Result<&Map<String, Value>, &str>,
) -> bool {
    let current = obj.data.get("status");
    let desired = status::desired(current, obj.metadata.generation, outcome, &now());
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
/// are left to the garbage collector through their owner references.
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
    events::publish(
        &ctx.client,
        cr_ref,
        &Note::normal("Deleting", format!("Deleting {gvk} {key}")),
    )
    .await;
    if let Err(e) = on_delete(ctx, obj).await {
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
                format!("Failed to remove finalizers: {e}"),
            ),
        )
        .await;
        return Err(Error::RemoveFinalizers(e));
    }
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

/// Creates the onDelete objects that are missing, without owner references: the CR is going
/// away, and an owned object would be collected with it (§4.5: Orkestra's onDelete Jobs carry
/// none either).
async fn on_delete(ctx: &Context, obj: &DynamicObject) -> Result<(), Error> {
    if ctx.entry.on_delete.counts().is_empty() {
        return Ok(());
    }
    let cr = serde_json::to_value(obj).unwrap_or(Value::Null);
    let rendered =
        render::render_on_delete(&ctx.entry, &cr, &ctx.engine, ctx.view.as_ref()).map_err(Error::Render)?;
    for child in &rendered.children {
        let mut object = child.object.clone();
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("ownerReferences");
        }
        let t = target(ctx, &object)?;
        create(ctx, &t, &object).await?;
    }
    Ok(())
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
}
