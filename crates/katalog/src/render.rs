//! The children a CR would get: the `onCreate` and `onReconcile` blocks rendered against the CR,
//! with `when`/`or` and `forEach` applied and the managed labels and owner reference added.
//!
//! This is the desired state only: what exists in the cluster (create-if-absent for `onCreate`,
//! server-side apply for `onReconcile`) is the business of [`crate::runtime`].

use std::{cell::RefCell, collections::HashMap, time::Duration};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use crate::{
    cluster::{ClusterView, ObjectRef},
    load::Entry,
    model::{
        condition::{Condition, ForEach, go_text, lookup},
        hooks::{Common, HookTemplates, ResourceEntry, WorkloadEntry},
    },
    template::{self, Engine},
};

/// Annotation on a `once` Secret: when its values were rendered (RFC 3339 UTC).
pub const GENERATED_AT: &str = "orkestra.orkspace.io/generated-at";
/// Annotation on a `once` Secret with `rotateAfter`: the rotation period as written.
pub const ROTATE_AFTER: &str = "orkestra.orkspace.io/rotate-after";

/// Label on every child (and the CR): `"true"`.
pub const MANAGED_LABEL: &str = "orkestra.orkspace.io/managed";
/// Label on every child: the CR's name; also the workload and Service selector.
pub const OWNER_LABEL: &str = "orkestra-owner";

/// Rendering a CR's children failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A template field failed.
    #[error("{at}: {field}: {source}")]
    Template {
        at: String,
        field: String,
        #[source]
        source: template::Error,
    },
    /// A condition could not be evaluated.
    #[error("{at}: failed to evaluate condition: {message}")]
    Condition { at: String, message: String },
    /// The object a `fromConfigMap` / `fromSecret` copy reads is not in the cluster view.
    #[error("{at}: source {kind} {name:?} in namespace {namespace:?} not found")]
    SourceMissing {
        at: String,
        kind: &'static str,
        name: String,
        namespace: String,
    },
    /// `forEach` did not name a list or a map.
    #[error("{at}: forEach field {field:?} is not a list or a map")]
    ForEach { at: String, field: String },
    /// A `deny` validation rule failed.
    #[error("validation denied: field {field:?}: {message}")]
    Denied { field: String, message: String },
    /// The CR is not an object with a name.
    #[error("the CR has no metadata.name")]
    NoName,
}

/// Which block a child comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    OnCreate,
    OnReconcile,
    /// The deletion block: rendered only by [`render_on_delete`], its objects created when missing.
    OnDelete,
}

impl Phase {
    /// The block's key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnCreate => "onCreate",
            Self::OnReconcile => "onReconcile",
            Self::OnDelete => "onDelete",
        }
    }
}

/// One desired child object.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub phase: Phase,
    /// The entry it came from, e.g. `configMaps[0]`.
    pub source: String,
    /// Whether the runtime would keep it updated (`onReconcile` or `reconcile: true`).
    pub updated: bool,
    pub object: Value,
    /// Set for a `once` Secret in create mode (§2.6): what the runtime does with it.
    pub once: Option<Once>,
}

/// What happens to a `once` Secret (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Once {
    /// Missing: rendered, to be created with its `generated-at` annotation.
    Create,
    /// Exists and is kept: its templates were not rendered, the object holds only metadata.
    /// `rotate_at` is when `rotateAfter` runs out, if it is set.
    Keep { rotate_at: Option<Timestamp> },
    /// Exists but `rotateAfter` has run out: rendered anew, to replace the existing one.
    Rotate,
}

/// Whether a `once` Secret generated at `generated_at` (its annotation) is due for rotation
/// after `rotate_after` at `now`: `Ok(None)` never (no `rotateAfter`), `Ok(Some(t))` at `t`
/// (later than `now`), `Err(())` due now. A Secret whose annotation is missing or unreadable
/// is due: its age is unknown, and rotation is what the Katalog asked for.
#[allow(clippy::result_unit_err)] // a two-way answer, not an error
pub fn rotation(
    generated_at: Option<&str>,
    rotate_after: Option<Duration>,
    now: Timestamp,
) -> Result<Option<Timestamp>, ()> {
    let Some(period) = rotate_after else {
        return Ok(None);
    };
    let Some(at) = generated_at.and_then(|t| t.parse::<Timestamp>().ok()) else {
        return Err(());
    };
    let period = SignedDuration::try_from(period).unwrap_or(SignedDuration::MAX);
    match at.checked_add(period) {
        Ok(due) if due > now => Ok(Some(due)),
        Ok(_) => Err(()),
        // Beyond the representable range: never in practice.
        Err(_) => Ok(None),
    }
}

/// A duration as Go prints one (`2s`, `1m30s`, `720h0m0s`, `250ms`), for the `rotate-after`
/// annotation.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// One rendered group of an ordered `onDelete` (§4.5 step 2).
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteGroup {
    /// The group's `name`, or `group <n>`.
    pub name: String,
    /// The objects; `api_version` is empty when the Katalog left it to the kind.
    pub objects: Vec<ObjectRef>,
}

/// Renders the names of the ordered `onDelete` groups of `cr` (empty unless `ordered: true`).
///
/// # Errors
/// A `name` or `namespace` template that fails, naming the group and resource.
pub fn render_delete_groups(entry: &Entry, cr: &Value, engine: &Engine) -> Result<Vec<DeleteGroup>, Error> {
    let block = &entry.on_delete;
    if block.ordered != Some(true) {
        return Ok(Vec::new());
    }
    let cr_namespace = cr.pointer("/metadata/namespace").and_then(Value::as_str);
    let mut out = Vec::new();
    for (g, group) in block.groups.iter().enumerate() {
        let mut objects = Vec::new();
        for (r, res) in group.resources.iter().enumerate() {
            let at = format!("onDelete.groups[{g}].resources[{r}]");
            let text = |field: &str, src: &str| {
                engine
                    .render_value(src, &template::to_value(cr))
                    .map_err(|source| Error::Template {
                        at: at.clone(),
                        field: field.to_owned(),
                        source,
                    })
            };
            let namespace = match &res.namespace {
                Some(src) => Some(text("namespace", src)?).filter(|n| !n.is_empty()),
                None => None,
            }
            .or_else(|| cr_namespace.map(str::to_owned));
            objects.push(ObjectRef {
                api_version: res.api_version.clone().unwrap_or_default(),
                kind: res.kind.clone(),
                namespace,
                name: text("name", &res.name)?,
            });
        }
        out.push(DeleteGroup {
            name: group.name.clone().unwrap_or_else(|| format!("group {}", g + 1)),
            objects,
        });
    }
    Ok(out)
}

/// The children and what the renderer noticed on the way (warnings, skipped entries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    pub children: Vec<Child>,
    /// Children kept in sync (`onReconcile`, or `reconcile: true`) whose conditions are false
    /// now: the runtime deletes each one it finds owned by the CR (§4.3), unless another entry
    /// renders the same object.
    pub unwanted: Vec<Child>,
    pub notes: Vec<String>,
}

/// Renders the children of `cr` for `entry`. The CR is mutated and validated first, as the
/// reconciler would before the template phase.
///
/// # Errors
/// The first failing template, condition or `deny` rule, as the reconcile would fail on it.
pub fn render(
    entry: &Entry,
    cr: &Value,
    engine: &Engine,
    cluster: &dyn ClusterView,
) -> Result<Rendered, Error> {
    render_at(entry, cr, engine, cluster, Timestamp::now())
}

/// [`render`] at time `now`, which decides whether a `once` Secret's `rotateAfter` has run out
/// and stamps its `generated-at` (the runtime passes its injectable clock).
///
/// # Errors
/// As [`render`].
pub fn render_at(
    entry: &Entry,
    cr: &Value,
    engine: &Engine,
    cluster: &dyn ClusterView,
    now: Timestamp,
) -> Result<Rendered, Error> {
    render_blocks(
        entry,
        cr,
        engine,
        cluster,
        now,
        &[
            (Phase::OnCreate, &entry.on_create),
            (Phase::OnReconcile, &entry.on_reconcile),
        ],
    )
}

/// Renders the `onDelete` block of `cr` for `entry`, as the delete path runs it: the same
/// mutation, validation and naming as [`render`], one child per object to create.
///
/// # Errors
/// As [`render`].
pub fn render_on_delete(
    entry: &Entry,
    cr: &Value,
    engine: &Engine,
    cluster: &dyn ClusterView,
) -> Result<Rendered, Error> {
    render_blocks(
        entry,
        cr,
        engine,
        cluster,
        Timestamp::now(),
        &[(Phase::OnDelete, &entry.on_delete)],
    )
}

fn render_blocks(
    entry: &Entry,
    cr: &Value,
    engine: &Engine,
    cluster: &dyn ClusterView,
    now: Timestamp,
    blocks: &[(Phase, &HookTemplates)],
) -> Result<Rendered, Error> {
    let mut cr = cr.clone();
    let cr_name = cr
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or(Error::NoName)?
        .to_owned();
    if let Some(map) = cr.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(entry.api_version()));
        map.entry("kind")
            .or_insert_with(|| Value::String(entry.kind.clone()));
    }
    let cr_namespace = cr
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut out = Rendered::default();
    if entry.namespaced && !entry.namespace_allowed(cr_namespace.as_deref().unwrap_or("default")) {
        out.notes.push(format!(
            "namespace {:?} is not allowed for {}: the CR is skipped",
            cr_namespace.as_deref().unwrap_or("default"),
            entry.name
        ));
        return Ok(out);
    }
    if entry.mutation.mutate_first {
        mutate(entry, &mut cr);
        validate(entry, &cr, engine, &mut out.notes)?;
    } else {
        validate(entry, &cr, engine, &mut out.notes)?;
        mutate(entry, &mut cr);
    }
    let ctx = Ctx {
        entry,
        engine,
        cluster,
        cr_name,
        cr_namespace,
        now,
        once: RefCell::default(),
        owner: json!({
            "apiVersion": cr["apiVersion"],
            "kind": cr["kind"],
            "name": cr["metadata"]["name"],
            "uid": cr.pointer("/metadata/uid").cloned().unwrap_or_else(|| Value::String(String::new())),
            "controller": true,
            "blockOwnerDeletion": true,
        }),
    };
    for (phase, block) in blocks {
        ctx.block(*phase, block, &cr, &mut out)?;
    }
    Ok(out)
}

fn mutate(entry: &Entry, cr: &mut Value) {
    for rule in &entry.mutation.rules {
        rule.apply(cr);
    }
}

fn validate(entry: &Entry, cr: &Value, engine: &Engine, notes: &mut Vec<String>) -> Result<(), Error> {
    for rule in &entry.validation {
        let field = rule.field.clone().unwrap_or_default();
        let ok = rule
            .holds(cr, &mut |src| engine.render(src, cr).map_err(|e| e.to_string()))
            .map_err(|message| Error::Condition {
                at: format!("validation field {field:?}"),
                message,
            })?;
        if ok {
            continue;
        }
        let message = rule
            .message
            .clone()
            .unwrap_or_else(|| "validation failed".to_owned());
        if rule.action.as_deref() == Some("warn") {
            notes.push(format!("ValidationWarning: field {field:?}: {message}"));
        } else {
            return Err(Error::Denied { field, message });
        }
    }
    Ok(())
}

struct Ctx<'a> {
    entry: &'a Entry,
    engine: &'a Engine,
    cluster: &'a dyn ClusterView,
    cr_name: String,
    cr_namespace: Option<String>,
    now: Timestamp,
    /// What the `secrets` builder decided for each `once` Secret, by `<namespace>/<name>`,
    /// until [`Ctx::push`] attaches it to the child.
    once: RefCell<HashMap<String, Once>>,
    owner: Value,
}

/// One rendering scope: the context of one (forEach-expanded) resource entry.
struct Scope<'a> {
    ctx: &'a Ctx<'a>,
    data: Value,
    tdata: gotmpl::Value,
    at: String,
}

impl Scope<'_> {
    /// The `data` of the `kind` named by a `fromSecret`/`fromConfigMap` field (in `fromNamespace`,
    /// else the CR's namespace), to copy into the rendered child; empty when no source is named.
    fn copied_data(
        &self,
        kind: &'static str,
        source: Option<String>,
        from_namespace: Option<&str>,
    ) -> Result<Map<String, Value>, Error> {
        let Some(name) = source else {
            return Ok(Map::new());
        };
        let namespace = self
            .opt("fromNamespace", from_namespace)?
            .or_else(|| self.ctx.cr_namespace.clone());
        let found = self.ctx.cluster.get(&ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: namespace.clone(),
            name: name.clone(),
        });
        match found {
            Some(found) => Ok(found
                .get("data")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()),
            None => Err(Error::SourceMissing {
                at: self.at.clone(),
                kind,
                name,
                namespace: namespace.unwrap_or_default(),
            }),
        }
    }

    fn text(&self, field: &str, src: &str) -> Result<String, Error> {
        self.ctx
            .engine
            .render_value(src, &self.tdata)
            .map_err(|source| Error::Template {
                at: self.at.clone(),
                field: field.to_owned(),
                source,
            })
    }

    fn opt(&self, field: &str, src: Option<&str>) -> Result<Option<String>, Error> {
        src.map(|s| self.text(field, s))
            .transpose()
            .map(|o| o.filter(|s| !s.is_empty()))
    }

    /// Renders every string leaf of a pass-through value (env, volumes, probes, ...).
    fn value(&self, field: &str, v: &Value) -> Result<Value, Error> {
        Ok(match v {
            Value::String(s) => Value::String(self.text(field, s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.value(field, i))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.value(&format!("{field}.{k}"), v)?)))
                    .collect::<Result<_, Error>>()?,
            ),
            other => other.clone(),
        })
    }

    fn passes(&self, when: &[Condition], or: &[Condition]) -> Result<bool, Error> {
        let eval = |c: &Condition| {
            c.holds(&self.data, &mut |src| {
                self.ctx
                    .engine
                    .render_value(src, &self.tdata)
                    .map_err(|e| e.to_string())
            })
            .map_err(|message| Error::Condition {
                at: self.at.clone(),
                message,
            })
        };
        for c in when {
            if !eval(c)? {
                return Ok(false);
            }
        }
        if or.is_empty() {
            return Ok(true);
        }
        for c in or {
            if eval(c)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `metadata` with the rendered name, namespace, labels and annotations, the system labels
    /// and, for namespaced children, the controller owner reference.
    fn metadata(
        &self,
        c: &Common<'_>,
        default_name: String,
        namespaced: bool,
    ) -> Result<Map<String, Value>, Error> {
        let mut meta = Map::new();
        meta.insert(
            "name".into(),
            Value::String(self.opt("name", c.name)?.unwrap_or(default_name)),
        );
        if namespaced {
            let ns = self
                .opt("namespace", c.namespace)?
                .or_else(|| self.ctx.cr_namespace.clone())
                .unwrap_or_else(|| "default".to_owned());
            meta.insert("namespace".into(), Value::String(ns));
        }
        let mut labels = Map::new();
        for (k, v) in &c.labels.0 {
            labels.insert(k.clone(), Value::String(self.text(&format!("labels.{k}"), v)?));
        }
        // The system labels win over declared ones: selectors depend on them.
        labels.insert(MANAGED_LABEL.into(), Value::String("true".into()));
        labels.insert(OWNER_LABEL.into(), Value::String(self.ctx.cr_name.clone()));
        meta.insert("labels".into(), Value::Object(labels));
        if !c.annotations.0.is_empty() {
            let mut annotations = Map::new();
            for (k, v) in &c.annotations.0 {
                annotations.insert(
                    k.clone(),
                    Value::String(self.text(&format!("annotations.{k}"), v)?),
                );
            }
            meta.insert("annotations".into(), Value::Object(annotations));
        }
        if namespaced {
            meta.insert(
                "ownerReferences".into(),
                Value::Array(vec![self.ctx.owner.clone()]),
            );
        }
        Ok(meta)
    }

    /// `toNamespaces`: a template that is a bare path to a list expands into one namespace per
    /// item; other elements give one namespace each; empty results are dropped.
    fn namespaces(&self, list: &[String]) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for item in list {
            if let Some(path) = bare_path(item)
                && let Some(Value::Array(items)) = lookup(&self.data, path)
            {
                out.extend(items.iter().map(go_text));
                continue;
            }
            out.push(self.text("toNamespaces", item)?);
        }
        out.retain(|n| !n.is_empty());
        out.dedup();
        Ok(out)
    }
}

/// `{{ .spec.targetNamespaces }}` → `spec.targetNamespaces`.
fn bare_path(src: &str) -> Option<&str> {
    let body = src.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let body = body.trim_start_matches('-').trim_end_matches('-').trim();
    let path = body.strip_prefix('.')?;
    (!path.is_empty()
        && path
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '_' || c == '-'))
    .then_some(path)
}

fn parse_int(s: &str) -> Option<i64> {
    s.trim().parse::<i32>().ok().map(i64::from)
}

impl<'a> Ctx<'a> {
    fn block(
        &self,
        phase: Phase,
        block: &HookTemplates,
        cr: &Value,
        out: &mut Rendered,
    ) -> Result<(), Error> {
        let root = self.scope(cr.clone(), phase.as_str().to_owned());
        if !root.passes(&block.when, &block.or)? {
            out.notes.push(format!(
                "{}: block conditions are false; nothing rendered",
                phase.as_str()
            ));
            return Ok(());
        }
        let update = phase == Phase::OnReconcile;
        macro_rules! kind {
            ($list:literal, $items:expr, $build:expr) => {
                for (i, item) in $items.iter().enumerate() {
                    let common = item.common();
                    for scope in self.expand(cr, &common, &format!("{}.{}[{i}]", phase.as_str(), $list))? {
                        if !scope.passes(common.when, common.or)? {
                            let kept = update || common.reconcile;
                            out.notes.push(format!(
                                "{}: conditions are false; skipped{}",
                                scope.at,
                                if kept {
                                    " (and deleted if it exists)"
                                } else {
                                    ""
                                }
                            ));
                            // Rendered only to know which object to delete; a template that
                            // cannot render without its conditions names nothing to delete.
                            #[allow(clippy::redundant_closure_call)]
                            let objects: Result<Vec<Value>, Error> = ($build)(&scope, item);
                            if let (true, Ok(objects)) = (kept, objects) {
                                for object in objects {
                                    out.unwanted.push(Child {
                                        phase,
                                        source: scope.at.clone(),
                                        updated: true,
                                        object,
                                        once: None,
                                    });
                                }
                            }
                            continue;
                        }
                        #[allow(clippy::redundant_closure_call)]
                        let objects: Vec<Value> = ($build)(&scope, item)?;
                        for object in objects {
                            self.push(
                                out,
                                phase,
                                &scope,
                                $list,
                                i,
                                update || common.reconcile,
                                object,
                            );
                        }
                    }
                }
            };
        }
        kind!(
            "namespaces",
            block.namespaces,
            |s: &Scope<'_>, e: &crate::model::hooks::PlainEntry| {
                let mut meta = s.metadata(&e.common(), self.cr_name.clone(), false)?;
                meta.remove("namespace");
                Ok::<_, Error>(vec![
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}),
                ])
            }
        );
        kind!(
            "serviceAccounts",
            block.service_accounts,
            |s: &Scope<'_>, e: &crate::model::hooks::PlainEntry| {
                let meta = s.metadata(&e.common(), format!("{}-sa", self.cr_name), true)?;
                Ok::<_, Error>(vec![
                    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}),
                ])
            }
        );
        kind!(
            "secrets",
            block.secrets,
            |s: &Scope<'_>, e: &crate::model::hooks::SecretEntry| {
                let mut meta = s.metadata(&e.common(), format!("{}-secret", self.cr_name), true)?;
                // `once` in create mode, for a Secret without copies in other namespaces.
                let once = (e.once && !update && !e.reconcile && e.to_namespaces.is_empty())
                    .then(|| self.once_state(&meta, e.rotate_after.map(|d| d.0)));
                if let Some(state) = once {
                    let key = format!(
                        "{}/{}",
                        meta["namespace"].as_str().unwrap_or_default(),
                        meta["name"].as_str().unwrap_or_default()
                    );
                    self.once.borrow_mut().insert(key, state);
                    if let Once::Keep { .. } = state {
                        // Templates not even rendered (§4.3): the random values stay.
                        return Ok(vec![
                            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta}),
                        ]);
                    }
                    let annotations = meta
                        .entry("annotations")
                        .or_insert_with(|| Value::Object(Map::new()));
                    annotations[GENERATED_AT] = Value::String(crate::runtime::clock::rfc3339(self.now));
                    if let Some(period) = &e.rotate_after {
                        annotations[ROTATE_AFTER] = Value::String(go_duration(period.0));
                    }
                }
                let mut data = s.copied_data(
                    "Secret",
                    s.opt("fromSecret", e.from_secret.as_deref())?,
                    e.from_namespace.as_deref(),
                )?;
                let mut string_data = Map::new();
                for (k, v) in &e.data {
                    string_data.insert(
                        k.clone(),
                        Value::String(s.text(&format!("data.{k}"), v.as_str())?),
                    );
                    data.remove(k);
                }
                let mut obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                "type": s.opt("type", e.secret_type.as_deref())?.unwrap_or_else(|| "Opaque".into())});
                if !data.is_empty() {
                    obj["data"] = Value::Object(data);
                }
                if !string_data.is_empty() {
                    obj["stringData"] = Value::Object(string_data);
                }
                copies(obj, &s.namespaces(&e.to_namespaces)?)
            }
        );
        kind!(
            "configMaps",
            block.config_maps,
            |s: &Scope<'_>, e: &crate::model::hooks::ConfigMapEntry| {
                let meta = s.metadata(&e.common(), format!("{}-config", self.cr_name), true)?;
                let mut data = s.copied_data(
                    "ConfigMap",
                    s.opt("fromConfigMap", e.from_config_map.as_deref())?,
                    e.from_namespace.as_deref(),
                )?;
                // Declared keys win over copied ones.
                for (k, v) in &e.data {
                    data.insert(
                        k.clone(),
                        Value::String(s.text(&format!("data.{k}"), v.as_str())?),
                    );
                }
                let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data});
                copies(obj, &s.namespaces(&e.to_namespaces)?)
            }
        );
        kind!(
            "deployments",
            block.deployments,
            |s: &Scope<'_>, e: &WorkloadEntry| {
                workload(s, e, "Deployment", format!("{}-deployment", self.cr_name)).map(|o| vec![o])
            }
        );
        kind!(
            "replicaSets",
            block.replica_sets,
            |s: &Scope<'_>, e: &WorkloadEntry| {
                workload(s, e, "ReplicaSet", format!("{}-replicaset", self.cr_name)).map(|o| vec![o])
            }
        );
        kind!(
            "services",
            block.services,
            |s: &Scope<'_>, e: &crate::model::hooks::ServiceEntry| {
                let meta = s.metadata(&e.common(), format!("{}-svc", self.cr_name), true)?;
                let port = s
                    .opt("port", e.port.as_ref().map(|t| t.as_str()))?
                    .as_deref()
                    .and_then(parse_int)
                    .unwrap_or(0);
                let target = s
                    .opt("targetPort", e.target_port.as_ref().map(|t| t.as_str()))?
                    .as_deref()
                    .and_then(parse_int)
                    .unwrap_or(port);
                let kind = s.opt("type", e.service_type.as_deref())?.unwrap_or_default();
                let kind = if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
                    kind
                } else {
                    "ClusterIP".to_owned()
                };
                let mut selector = Map::new();
                for (k, v) in &e.selector {
                    selector.insert(k.clone(), Value::String(s.text(&format!("selector.{k}"), v)?));
                }
                selector.insert(OWNER_LABEL.into(), Value::String(self.cr_name.clone()));
                let protocol = s
                    .opt("protocol", e.protocol.as_deref())?
                    .unwrap_or_else(|| "TCP".into());
                let mut spec = json!({"type": kind, "selector": selector,
                "ports": [{"port": port, "targetPort": target, "protocol": protocol}]});
                if e.headless == Some(true) {
                    spec["clusterIP"] = Value::String("None".into());
                }
                Ok::<_, Error>(vec![
                    json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}),
                ])
            }
        );
        kind!(
            "jobs",
            block.jobs,
            |s: &Scope<'_>, e: &crate::model::hooks::JobEntry| {
                let meta = s.metadata(&e.common(), format!("{}-job", self.cr_name), true)?;
                let name = meta["name"].clone();
                let mut spec = json!({"template": run_once_pod(s, &meta, &name, e.image.as_deref(), &e.command, &e.args)?});
                if let Some(n) = s
                    .opt("backoffLimit", e.backoff_limit.as_ref().map(|t| t.as_str()))?
                    .as_deref()
                    .and_then(parse_int)
                {
                    spec["backoffLimit"] = json!(n);
                }
                Ok::<_, Error>(vec![
                    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}),
                ])
            }
        );
        kind!(
            "cronJobs",
            block.cron_jobs,
            |s: &Scope<'_>, e: &crate::model::hooks::CronJobEntry| {
                let meta = s.metadata(&e.common(), format!("{}-cronjob", self.cr_name), true)?;
                let name = meta["name"].clone();
                let spec = json!({"schedule": s.opt("schedule", e.schedule.as_deref())?.unwrap_or_default(),
                "jobTemplate": {"spec": {"template": run_once_pod(s, &meta, &name, e.image.as_deref(), &e.command, &e.args)?}}});
                Ok::<_, Error>(vec![
                    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta, "spec": spec}),
                ])
            }
        );
        kind!(
            "custom",
            block.custom,
            |s: &Scope<'_>, e: &crate::model::hooks::CustomEntry| {
                let kind = s.opt("kind", e.kind.as_deref())?.unwrap_or_default();
                let mut meta = s.metadata(
                    &e.common(),
                    format!("{}-{}", self.cr_name, kind.to_lowercase()),
                    true,
                )?;
                if let Some(Value::Object(extra)) =
                    e.metadata.as_ref().map(|m| s.value("metadata", m)).transpose()?
                {
                    for (k, v) in extra {
                        meta.entry(k).or_insert(v);
                    }
                }
                let mut obj = json!({"apiVersion": s.opt("apiVersion", e.api_version.as_deref())?.unwrap_or_default(),
                "kind": kind, "metadata": meta});
                if let Some(spec) = &e.spec {
                    obj["spec"] = s.value("spec", spec)?;
                }
                if let Some(data) = &e.data {
                    obj["data"] = s.value("data", data)?;
                }
                Ok::<_, Error>(vec![obj])
            }
        );
        Ok(())
    }

    fn scope(&self, data: Value, at: String) -> Scope<'_> {
        let tdata = template::to_value(&data);
        Scope {
            ctx: self,
            data,
            tdata,
            at,
        }
    }

    /// One scope per `forEach` item (list: `.item`, `.<as>`, `.index`; map: sorted keys as
    /// `.item`/`.<as>`, `.value`), or the CR itself.
    fn expand(&self, cr: &Value, c: &Common<'_>, at: &str) -> Result<Vec<Scope<'_>>, Error> {
        let Some(ForEach { field, alias }) = c.for_each else {
            return Ok(vec![self.scope(cr.clone(), at.to_owned())]);
        };
        let with = |item: Value, index: usize, value: Option<Value>| {
            let mut data = cr.clone();
            if let Some(map) = data.as_object_mut() {
                map.insert("item".into(), item.clone());
                map.insert("index".into(), json!(index));
                if let Some(alias) = alias {
                    map.insert(alias.clone(), item);
                }
                if let Some(value) = value {
                    map.insert("value".into(), value);
                }
            }
            self.scope(data, format!("{at}[forEach {index}]"))
        };
        match lookup(cr, field) {
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| with(v.clone(), i, None))
                .collect()),
            Some(Value::Object(map)) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Ok(keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| with(Value::String((*k).clone()), i, Some(map[k.as_str()].clone())))
                    .collect())
            }
            _ => Err(Error::ForEach {
                at: at.to_owned(),
                field: field.clone(),
            }),
        }
    }

    /// What to do with a `once` Secret whose rendered metadata is `meta`: create it when the
    /// cluster view lacks it, keep it, or rotate it when `rotate_after` has run out.
    fn once_state(&self, meta: &Map<String, Value>, rotate_after: Option<Duration>) -> Once {
        let existing = self.cluster.get(&ObjectRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: meta.get("namespace").and_then(Value::as_str).map(str::to_owned),
            name: meta
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
        let Some(existing) = existing else {
            return Once::Create;
        };
        let generated_at = existing
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(GENERATED_AT))
            .and_then(Value::as_str);
        match rotation(generated_at, rotate_after, self.now) {
            Ok(rotate_at) => Once::Keep { rotate_at },
            Err(()) => Once::Rotate,
        }
    }

    #[allow(clippy::too_many_arguments)] // the pieces of one child record
    fn push(
        &self,
        out: &mut Rendered,
        phase: Phase,
        scope: &Scope<'_>,
        list: &str,
        i: usize,
        updated: bool,
        object: Value,
    ) {
        if let Some(ns) = object.pointer("/metadata/namespace").and_then(Value::as_str)
            && !self.entry.namespace_allowed(ns)
        {
            out.notes.push(format!(
                "{}: target namespace {ns:?} is not allowed; skipped",
                scope.at
            ));
            return;
        }
        let suffix = scope
            .at
            .strip_prefix(&format!("{}.{list}[{i}]", phase.as_str()))
            .unwrap_or("");
        let once = (object["kind"] == "Secret")
            .then(|| {
                let key = format!(
                    "{}/{}",
                    object["metadata"]["namespace"].as_str().unwrap_or_default(),
                    object["metadata"]["name"].as_str().unwrap_or_default()
                );
                self.once.borrow_mut().remove(&key)
            })
            .flatten();
        out.children.push(Child {
            phase,
            source: format!("{list}[{i}]{suffix}"),
            updated,
            object,
            once,
        });
    }
}

/// The object in its own namespace plus one copy per `toNamespaces` entry. Copies in another
/// namespace carry no owner reference: Kubernetes refuses cross-namespace owners.
fn copies(obj: Value, namespaces: &[String]) -> Result<Vec<Value>, Error> {
    let own = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut out = vec![obj.clone()];
    for ns in namespaces.iter().filter(|n| **n != own) {
        let mut copy = obj.clone();
        if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(ns.clone()));
            meta.remove("ownerReferences");
        }
        out.push(copy);
    }
    Ok(out)
}

/// The pod template of a Job (and of a CronJob's jobs): the child's labels, one container, run
/// once.
fn run_once_pod(
    s: &Scope<'_>,
    meta: &Map<String, Value>,
    name: &Value,
    image: Option<&str>,
    command: &[String],
    args: &[String],
) -> Result<Value, Error> {
    Ok(json!({
        "metadata": {"labels": meta["labels"]},
        "spec": {"restartPolicy": "Never", "containers": [container(s, name, image, command, args)?]},
    }))
}

fn container(
    s: &Scope<'_>,
    name: &Value,
    image: Option<&str>,
    command: &[String],
    args: &[String],
) -> Result<Value, Error> {
    let mut c = json!({"name": name, "image": s.opt("image", image)?.unwrap_or_default()});
    let list = |field: &str, items: &[String]| -> Result<Vec<String>, Error> {
        items.iter().map(|i| s.text(field, i)).collect()
    };
    if !command.is_empty() {
        c["command"] = json!(list("command", command)?);
    }
    if !args.is_empty() {
        c["args"] = json!(list("args", args)?);
    }
    Ok(c)
}

/// Deployment / ReplicaSet: selector `orkestra-owner: <cr>`, pod labels = the object's labels,
/// one container named after the object.
fn workload(s: &Scope<'_>, e: &WorkloadEntry, kind: &str, default_name: String) -> Result<Value, Error> {
    let meta = s.metadata(&e.common(), default_name, true)?;
    let name = meta["name"].clone();
    // Orkestra parses replicas as a 32-bit integer; empty or unparsable gives 1.
    let replicas = s
        .opt("replicas", e.replicas.as_ref().map(|t| t.as_str()))?
        .as_deref()
        .and_then(parse_int)
        .unwrap_or(1);
    let mut c = container(s, &name, e.image.as_deref(), &[], &[])?;
    if let Some(port) = s
        .opt("port", e.port.as_ref().map(|t| t.as_str()))?
        .as_deref()
        .and_then(parse_int)
        .filter(|p| *p != 0)
    {
        let protocol = s
            .opt("protocol", e.protocol.as_deref())?
            .unwrap_or_else(|| "TCP".into());
        c["ports"] = json!([{"containerPort": port, "protocol": protocol}]);
    }
    for (key, field, value) in [
        ("env", "env", &e.env),
        ("envFrom", "envFrom", &e.env_from),
        ("resources", "resources", &e.resources),
        ("volumeMounts", "volumeMounts", &e.volume_mounts),
        ("securityContext", "securityContext", &e.security_context),
    ] {
        if let Some(v) = value {
            c[key] = s.value(field, v)?;
        }
    }
    if let Some(Value::Object(probes)) = &e.probes {
        for (k, v) in probes {
            let key = match k.as_str() {
                "liveness" => "livenessProbe".to_owned(),
                "readiness" => "readinessProbe".to_owned(),
                "startup" => "startupProbe".to_owned(),
                other => other.to_owned(),
            };
            c[key] = s.value(&format!("probes.{k}"), v)?;
        }
    }
    if let Some(dir) = s.opt("workingDirectory", e.working_directory.as_deref())? {
        c["workingDir"] = Value::String(dir);
    }
    let mut pod = json!({"containers": [c]});
    if let Some(sa) = s.opt("serviceAccountName", e.service_account_name.as_deref())? {
        pod["serviceAccountName"] = Value::String(sa);
    }
    for (key, value) in [
        ("imagePullSecrets", &e.image_pull_secrets),
        ("nodeSelector", &e.node_selector),
        ("volumes", &e.volumes),
        ("securityContext", &e.pod_security),
    ] {
        if let Some(v) = value {
            pod[key] = s.value(key, v)?;
        }
    }
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {OWNER_LABEL: s.ctx.cr_name}},
        "template": {"metadata": {"labels": meta["labels"]}, "spec": pod},
    });
    if kind == "Deployment"
        && let Some(ru) = &e.rolling_update
    {
        spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": s.value("rollingUpdate", ru)?});
    }
    Ok(json!({"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}))
}

/// The declared status fields (Layers 2 and 3) a successful reconcile would write: entries in
/// order, the last one whose conditions pass wins a path, every value a string, a failing
/// template skips its field (with a note). Conditions and templates see the CR as read and
/// `.children`: each rendered child found in `cluster` under `.children.<kinds>` by name, the
/// first found in declaration order as `.children.<kind>`, and a placeholder
/// `{_placeholder: true, status: {}}` for kinds with none.
pub fn status(
    entry: &Entry,
    cr: &Value,
    rendered: &Rendered,
    engine: &Engine,
    cluster: &dyn ClusterView,
) -> (Map<String, Value>, Vec<String>) {
    let mut children = Map::new();
    for child in &rendered.children {
        let kind = child.object["kind"].as_str().unwrap_or_default().to_lowercase();
        let name = child.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let found = cluster.get(&ObjectRef {
            api_version: child.object["apiVersion"].as_str().unwrap_or_default().to_owned(),
            kind: child.object["kind"].as_str().unwrap_or_default().to_owned(),
            namespace: child.object["metadata"]["namespace"].as_str().map(str::to_owned),
            name: name.clone(),
        });
        let plural = children.entry(format!("{kind}s")).or_insert_with(|| json!({}));
        if let (Some(mut found), Some(map)) = (found, plural.as_object_mut()) {
            if found.get("status").is_none() {
                found["status"] = json!({});
            }
            map.insert(name, found.clone());
            // The first child found in declaration order is the singular one.
            if children
                .get(&kind)
                .is_none_or(|v| v.get("_placeholder").is_some())
            {
                children.insert(kind, found);
            }
        } else {
            children
                .entry(kind)
                .or_insert_with(|| json!({"_placeholder": true, "status": {}}));
        }
    }
    let mut data = cr.clone();
    if let Some(map) = data.as_object_mut() {
        map.insert("children".into(), Value::Object(children));
    }
    let tdata = template::to_value(&data);
    let mut out = Value::Object(Map::new());
    let mut notes = Vec::new();
    for (i, field) in entry.status_fields.iter().enumerate() {
        let mut eval = |c: &Condition| {
            c.holds(&data, &mut |src| {
                engine.render_value(src, &tdata).map_err(|e| e.to_string())
            })
        };
        let when = field.when.iter().map(&mut eval).collect::<Result<Vec<_>, _>>();
        let or = field.or.iter().map(&mut eval).collect::<Result<Vec<_>, _>>();
        let passes = match (when, or) {
            (Ok(w), Ok(o)) => w.iter().all(|b| *b) && (o.is_empty() || o.iter().any(|b| *b)),
            (Err(e), _) | (_, Err(e)) => {
                notes.push(format!(
                    "status.fields[{i}] ({}): condition failed: {e}; skipped",
                    field.path
                ));
                continue;
            }
        };
        if !passes {
            continue;
        }
        match engine.render_value(field.value.as_str(), &tdata) {
            Ok(v) => {
                crate::model::condition::set(&mut out, &field.path, Value::String(v));
            }
            Err(e) => notes.push(format!("status.fields[{i}] ({}): {e}; skipped", field.path)),
        }
    }
    let Value::Object(map) = out else {
        return (Map::new(), notes);
    };
    (map, notes)
}

/// The children as YAML documents, each preceded by a comment naming its block and entry.
///
/// # Errors
/// YAML serialisation failures (not expected for JSON values).
pub fn to_yaml(rendered: &Rendered) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for (i, child) in rendered.children.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let mode = if child.updated {
            "kept in sync"
        } else {
            "created if absent"
        };
        out.push_str(&format!("# {} {} ({mode})\n", child.phase.as_str(), child.source));
        out.push_str(&serde_yaml_ng::to_string(&child.object)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_once_secret_rotates_when_its_period_has_run_out_since_generated_at() {
        let hour = Some(Duration::from_secs(3600));
        let now = at("2026-03-25T10:30:00Z");
        assert_eq!(rotation(Some("2026-03-25T10:00:00Z"), None, now), Ok(None));
        assert_eq!(
            rotation(Some("2026-03-25T10:00:00Z"), hour, now),
            Ok(Some(at("2026-03-25T11:00:00Z")))
        );
        assert_eq!(rotation(Some("2026-03-25T09:30:00Z"), hour, now), Err(()));
        assert_eq!(rotation(Some("2026-03-25T09:00:00Z"), hour, now), Err(()));
        // Unknown age: due.
        assert_eq!(rotation(None, hour, now), Err(()));
        assert_eq!(rotation(Some("yesterday"), hour, now), Err(()));
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(720 * 3600)), "720h0m0s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
    }
}
