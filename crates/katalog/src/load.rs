//! Loading a Katalog file: YAML, typed decoding with every bad key reported, the later spellings
//! folded into the classic ones, motif expansion, the simple checks, and template parsing.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use omjob_api::grammar::is_dns_label;
use serde_json::Value;

use crate::{
    decode::{check_templates, decode},
    model::{
        API_VERSION, CrdEntry, DEFAULT_FAILURE_THRESHOLD, DEFAULT_MAX_QUEUE_DEPTH, DEFAULT_RESYNC_SECS,
        DEFAULT_WORKERS, Katalog, LEGACY_API_VERSION, StatusField,
        condition::{Condition, Mutation, OPERATORS},
        hooks::{Common, HookTemplates, ResourceEntry},
    },
    motif::{self, Motif},
    problem::{Problem, join},
    template::Engine,
};

/// The system finalizer the runtime always adds.
pub const CLEANUP_FINALIZER: &str = "orkestra.orkspace.io/cleanup";
/// Prefix of the default Katalog name (`CLUSTER_NAME`).
pub const DEFAULT_CLUSTER_NAME: &str = "orkestra-cluster";

/// A setting with where its value came from, as `/katalog` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    /// `true` when the Katalog set it, `false` for the runtime default.
    pub configured: bool,
}

impl<T> Setting<T> {
    fn pick(values: [Option<T>; 2], default: T) -> Self {
        let [first, second] = values;
        match first.or(second) {
            Some(value) => Self {
                value,
                configured: true,
            },
            None => Self {
                value: default,
                configured: false,
            },
        }
    }

    /// `configured` or `default`.
    pub fn source(&self) -> &'static str {
        if self.configured { "configured" } else { "default" }
    }
}

/// A CRD entry with defaults applied, aliases folded and motifs expanded.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry name (map key, lower-cased, spaces removed).
    pub name: String,
    /// The Katalog name written into `managed-by`.
    pub katalog_name: String,
    pub enabled: bool,
    pub description: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub namespace: Option<String>,
    pub allowed_namespaces: Vec<String>,
    pub restricted_namespaces: Vec<String>,
    /// `labelSelector`: only CRs with these labels are watched.
    pub label_selector: BTreeMap<String, String>,
    /// `fieldSelector`: only CRs whose fields match are watched (e.g. `metadata.name`).
    pub field_selector: BTreeMap<String, String>,
    /// `forceConflict` (default true): children's server-side applies take fields over from
    /// other managers; `false` makes a conflict fail the pass instead.
    pub force_conflict: bool,
    /// `ignoreStatusPatch`: the CR's status is never written.
    pub ignore_status_patch: bool,
    /// `ignoreObservedGeneration`: status carries no `observedGeneration`.
    pub ignore_observed_generation: bool,
    /// `removeFinalizers`: our finalizers are removed from the CR instead of added (§4.2 step 5).
    pub remove_finalizers: bool,
    pub workers: Setting<u32>,
    pub resync: Setting<Duration>,
    pub max_queue_depth: Setting<u32>,
    pub failure_threshold: Setting<u32>,
    /// Configured, Katalog-wide and the system finalizer, without duplicates.
    pub finalizers: Vec<String>,
    pub on_create: HookTemplates,
    pub on_reconcile: HookTemplates,
    pub on_delete: HookTemplates,
    pub status_fields: Vec<StatusField>,
    pub validation: Vec<Condition>,
    pub mutation: Mutation,
}

impl Entry {
    /// `group/version`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// Go's GroupVersionKind string, `data.demo.orkestra.io/v1alpha1, Kind=DataJob`.
    pub fn gvk(&self) -> String {
        format!("{}, Kind={}", self.api_version(), self.kind)
    }

    /// Whether a CR in `namespace` is reconciled at all (`allowedNamespaces`,
    /// `restrictedNamespaces`, either with `team-*` prefix patterns).
    pub fn namespace_allowed(&self, namespace: &str) -> bool {
        let matches = |pattern: &String| match pattern.strip_suffix('*') {
            Some(prefix) => namespace.starts_with(prefix),
            None => pattern == namespace,
        };
        let allowed = self.allowed_namespaces.is_empty() || self.allowed_namespaces.iter().any(matches);
        allowed && !self.restricted_namespaces.iter().any(matches)
    }
}

/// What loading a file gave: the entries (when the document decoded) and every problem.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub katalog: Option<Katalog>,
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

impl Loaded {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }
}

/// Reads a YAML file into JSON.
///
/// # Errors
/// The problem to report (unreadable file, invalid YAML with its location).
pub fn read_yaml(file: &Path) -> Result<Value, Box<Problem>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Box::new(Problem::error(file, "", format!("failed to read file: {e}"))))?;
    serde_yaml_ng::from_str(&text)
        .map_err(|e| Box::new(Problem::error(file, "", format!("invalid YAML: {e}"))))
}

/// Loads and checks one Katalog file.
pub fn load(file: &Path, engine: &Engine) -> Loaded {
    let mut out = Loaded::default();
    let raw = match read_yaml(file) {
        Ok(raw) => raw,
        Err(p) => {
            out.problems.push(*p);
            return out;
        }
    };
    let problems = &mut out.problems;
    if raw.pointer("/spec/crds").is_some_and(Value::is_array) {
        problems.push(Problem::error(
            file,
            "spec.crds",
            "CRD entries are a map from entry name to entry (`crds: {data-job: {...}}`), not a list with `- name:`",
        ));
        return out;
    }
    let Some(katalog) = decode::<Katalog>(raw.clone(), file, "", problems) else {
        return out;
    };
    check_document(&katalog, file, problems);
    if let Some(crds) = raw.pointer("/spec/crds") {
        check_templates(crds, engine, file, "spec.crds", None, problems);
    }
    let katalog_name = katalog.metadata.name.clone();
    for (key, entry) in &katalog.spec.crds {
        let prefix = join("spec.crds", key);
        let e = resolve(
            key,
            entry,
            &katalog,
            katalog_name.as_deref(),
            file,
            &prefix,
            engine,
            problems,
        );
        out.entries.push(e);
    }
    out.katalog = Some(katalog);
    out
}

fn check_document(k: &Katalog, file: &Path, problems: &mut Vec<Problem>) {
    match k.api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(LEGACY_API_VERSION) => problems.push(Problem::warning(
            file,
            "apiVersion",
            format!("{LEGACY_API_VERSION} is the legacy apiVersion; use {API_VERSION}"),
        )),
        Some(other) => problems.push(Problem::error(
            file,
            "apiVersion",
            format!("unsupported apiVersion {other:?}; expected {API_VERSION}"),
        )),
        None => problems.push(Problem::error(file, "apiVersion", "missing apiVersion")),
    }
    match k.kind.as_deref() {
        Some("Katalog") => {}
        Some(other) => problems.push(Problem::error(
            file,
            "kind",
            format!("expected kind Katalog, got {other:?}"),
        )),
        None => problems.push(Problem::error(file, "kind", "missing kind")),
    }
    match &k.metadata.name {
        Some(name) if !is_dns_label(name) => problems.push(Problem::error(
            file,
            "metadata.name",
            format!("{name:?} is not a DNS-1123 label"),
        )),
        Some(_) => {}
        None => problems.push(Problem::warning(
            file,
            "metadata.name",
            format!("no Katalog name; each entry is named {DEFAULT_CLUSTER_NAME}-<entry>"),
        )),
    }
    if k.spec.crds.is_empty() {
        problems.push(Problem::error(file, "spec.crds", "no CRD entries"));
    }
    for block in k.ignored_blocks() {
        problems.push(Problem::warning(
            file,
            block,
            "not supported by this runtime; ignored",
        ));
    }
}

#[allow(clippy::too_many_arguments)] // the load context, passed down once
fn resolve(
    key: &str,
    e: &CrdEntry,
    k: &Katalog,
    katalog_name: Option<&str>,
    file: &Path,
    prefix: &str,
    engine: &Engine,
    problems: &mut Vec<Problem>,
) -> Entry {
    let name: String = key
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if !is_dns_label(&name) {
        problems.push(Problem::error(
            file,
            prefix,
            format!("entry name {name:?} is not a DNS-1123 label"),
        ));
    }
    let err = |problems: &mut Vec<Problem>, path: &str, msg: String| {
        problems.push(Problem::error(file, join(prefix, path), msg));
    };
    let warn = |problems: &mut Vec<Problem>, path: &str, msg: String| {
        problems.push(Problem::warning(file, join(prefix, path), msg));
    };
    for block in e.ignored_blocks() {
        warn(
            problems,
            block,
            "not supported by this runtime; ignored".to_owned(),
        );
    }
    if e.crd_file.is_some() {
        warn(
            problems,
            "crdFile",
            "dev-mode CRD files are not read by this runtime; apiTypes is used".to_owned(),
        );
    }
    let types = e.api_types.clone().unwrap_or_default();
    let mut required = |field: &str, v: &Option<String>| -> String {
        match v {
            Some(v) if !v.is_empty() => v.clone(),
            _ => {
                err(
                    problems,
                    &format!("apiTypes.{field}"),
                    format!("missing apiTypes.{field}"),
                );
                String::new()
            }
        }
    };
    let group = required("group", &types.group);
    let version = required("version", &types.version);
    let kind = required("kind", &types.kind);
    let plural = types
        .plural
        .clone()
        .unwrap_or_else(|| format!("{}s", kind.to_lowercase()));
    let namespaced = e.namespaced.unwrap_or(true);
    if !namespaced && e.namespace.is_some() {
        warn(
            problems,
            "namespace",
            "ignored on a cluster-scoped entry".to_owned(),
        );
    }

    let ob = e.operator_box.clone().unwrap_or_default();
    let tuning = ob.reconciler.clone().unwrap_or_default();
    if ob.default == Some(false) || tuning.default == Some(false) {
        err(
            problems,
            "operatorBox.default",
            "Go reconcilers (`default: false`) are not supported; only the generic reconciler".to_owned(),
        );
    }
    if tuning.hooks.is_some() || tuning.constructor.is_some() {
        err(
            problems,
            "operatorBox.reconciler",
            "Go hooks and constructors are not supported".to_owned(),
        );
    }
    if e.operator_box.is_none() {
        warn(
            problems,
            "operatorBox",
            "no operatorBox: only labels, finalizers and status are managed".to_owned(),
        );
    }
    let later = ob.reconcile.clone().unwrap_or_default();
    let mut block =
        |classic: Option<HookTemplates>, nested: Option<HookTemplates>, name: &str| match (classic, nested) {
            (Some(c), Some(_)) => {
                err(
                    problems,
                    &format!("operatorBox.reconcile.{name}"),
                    format!("set both operatorBox.{name} and operatorBox.reconcile.{name}; keep one"),
                );
                c
            }
            (Some(b), None) | (None, Some(b)) => b,
            (None, None) => HookTemplates::default(),
        };
    let mut on_create = block(ob.on_create.clone(), later.on_create.clone(), "onCreate");
    let mut on_reconcile = block(ob.on_reconcile.clone(), later.on_reconcile.clone(), "onReconcile");
    let on_delete = block(ob.on_delete.clone(), later.on_delete.clone(), "onDelete");
    let block_path = |name: &str| {
        if ob.reconcile.as_ref().is_some_and(|r| match name {
            "onCreate" => r.on_create.is_some(),
            "onReconcile" => r.on_reconcile.is_some(),
            _ => r.on_delete.is_some(),
        }) {
            format!("operatorBox.reconcile.{name}")
        } else {
            format!("operatorBox.{name}")
        }
    };
    let status = match (ob.status.clone(), ob.emit.clone().and_then(|e| e.status)) {
        (Some(s), Some(_)) => {
            err(
                problems,
                "operatorBox.emit.status",
                "set both operatorBox.status and operatorBox.emit.status; keep one".to_owned(),
            );
            s
        }
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => Default::default(),
    };
    let admission = e.admission.clone().unwrap_or_default();
    let mut validation = match (e.validation.clone(), admission.validation) {
        (Some(v), Some(_)) => {
            err(
                problems,
                "admission.validation",
                "set both validation and admission.validation; keep one".to_owned(),
            );
            v
        }
        (Some(v), None) | (None, Some(v)) => v,
        (None, None) => Default::default(),
    }
    .rules;
    let mut mutation = match (e.mutation.clone(), admission.mutation) {
        (Some(m), Some(_)) => {
            err(
                problems,
                "admission.mutation",
                "set both mutation and admission.mutation; keep one".to_owned(),
            );
            m
        }
        (Some(m), None) | (None, Some(m)) => m,
        (None, None) => Default::default(),
    };
    let mut status_fields = status.fields;

    let mut sink = Sink::default();
    for (blk, path, update) in [
        (&on_create, block_path("onCreate"), false),
        (&on_reconcile, block_path("onReconcile"), true),
        (&on_delete, block_path("onDelete"), false),
    ] {
        check_block(blk, &path, update, false, &mut sink);
    }
    for (i, rule) in validation.iter().enumerate() {
        let path = format!("validation.rules[{i}]");
        check_condition(rule, &path, &mut sink);
        if let Some(action) = &rule.action
            && action != "deny"
            && action != "warn"
        {
            sink.err(
                &format!("{path}.action"),
                format!("unknown action {action:?}; expected deny or warn"),
            );
        }
    }
    for (i, f) in status_fields.iter().enumerate() {
        for (j, c) in f.when.iter().enumerate() {
            check_condition(c, &format!("operatorBox.status.fields[{i}].when[{j}]"), &mut sink);
        }
        for (j, c) in f.or.iter().enumerate() {
            check_condition(c, &format!("operatorBox.status.fields[{i}].or[{j}]"), &mut sink);
        }
    }
    sink.into_problems(file, prefix, problems);

    // Motif imports, resolved relative to the Katalog file.
    for (i, import) in e.imports.iter().enumerate() {
        let via = join(prefix, &format!("imports[{i}]"));
        let Some(m) = load_motif(file, &import.motif, &import.with, &via, engine, problems) else {
            continue;
        };
        if let Some(mut resources) = m.resources {
            if let Some(nested) = resources.on_create.take() {
                on_create.append(*nested);
            }
            on_reconcile.append(resources);
        }
        status_fields.extend(m.status.map(|s| s.fields).unwrap_or_default());
        if let Some(a) = m.admission {
            validation.extend(a.validation.map(|v| v.rules).unwrap_or_default());
            mutation
                .rules
                .extend(a.mutation.map(|m| m.rules).unwrap_or_default());
        }
    }

    let queue = e.queue.clone().unwrap_or_default();
    let tuning_queue = tuning.queue.clone().unwrap_or_default();
    let mut finalizers: Vec<String> = Vec::new();
    for f in ob
        .finalizers
        .iter()
        .chain(&k.spec.finalizers)
        .map(String::as_str)
        .chain([CLEANUP_FINALIZER])
    {
        if !finalizers.iter().any(|x| x == f) {
            finalizers.push(f.to_owned());
        }
    }
    Entry {
        katalog_name: katalog_name.map_or_else(|| format!("{DEFAULT_CLUSTER_NAME}-{name}"), str::to_owned),
        enabled: e.enabled.unwrap_or(true),
        description: e
            .description
            .clone()
            .unwrap_or_else(|| format!("{kind} CRD, GVK: {group}/{version}, Kind={kind}")),
        namespace: if namespaced { e.namespace.clone() } else { None },
        allowed_namespaces: e.allowed_namespaces.clone(),
        restricted_namespaces: e.restricted_namespaces.clone(),
        label_selector: e.label_selector.clone(),
        field_selector: e.field_selector.clone(),
        force_conflict: e.force_conflict.unwrap_or(true),
        ignore_status_patch: e.ignore_status_patch,
        ignore_observed_generation: e.ignore_observed_generation,
        remove_finalizers: e.remove_finalizers,
        workers: Setting::pick([e.workers, tuning.workers], DEFAULT_WORKERS),
        resync: Setting::pick(
            [e.resync.map(|d| d.0), tuning.resync.map(|d| d.0)],
            Duration::from_secs(DEFAULT_RESYNC_SECS),
        ),
        max_queue_depth: Setting::pick([queue.max_depth, tuning_queue.max_depth], DEFAULT_MAX_QUEUE_DEPTH),
        failure_threshold: Setting::pick(
            [queue.failure_threshold, tuning_queue.failure_threshold],
            DEFAULT_FAILURE_THRESHOLD,
        ),
        finalizers,
        on_create,
        on_reconcile,
        on_delete,
        status_fields,
        validation,
        mutation,
        name,
        group,
        version,
        kind,
        plural,
        namespaced,
    }
}

/// Problems found by the structural checks, as (is error, path, message).
#[derive(Debug, Default)]
struct Sink(Vec<(bool, String, String)>);

impl Sink {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.0.push((true, path.to_owned(), msg.into()));
    }
    fn warn(&mut self, path: &str, msg: impl Into<String>) {
        self.0.push((false, path.to_owned(), msg.into()));
    }
    fn into_problems(self, file: &Path, prefix: &str, problems: &mut Vec<Problem>) {
        for (is_error, path, msg) in self.0 {
            let path = join(prefix, &path);
            problems.push(if is_error {
                Problem::error(file, path, msg)
            } else {
                Problem::warning(file, path, msg)
            });
        }
    }
}

fn check_condition(c: &Condition, path: &str, sink: &mut Sink) {
    if let Some(op) = &c.operator
        && !OPERATORS.contains(&op.as_str())
    {
        sink.err(&format!("{path}.operator"), format!("unknown operator {op:?}"));
    }
}

fn check_entries(
    sink: &mut Sink,
    at_list: &str,
    update: bool,
    entries: Vec<(Common<'_>, Vec<&'static str>, bool)>,
) {
    for (i, (common, missing, is_secret)) in entries.into_iter().enumerate() {
        let at = format!("{at_list}[{i}]");
        for field in missing {
            sink.err(&format!("{at}.{field}"), format!("missing {field}"));
        }
        for (j, c) in common.when.iter().enumerate() {
            check_condition(c, &format!("{at}.when[{j}]"), sink);
        }
        for (j, c) in common.or.iter().enumerate() {
            check_condition(c, &format!("{at}.or[{j}]"), sink);
        }
        if let Some(f) = common.for_each
            && f.field.trim().is_empty()
        {
            sink.err(&format!("{at}.forEach.field"), "empty forEach field");
        }
        if common.once && !is_secret {
            sink.warn(&format!("{at}.once"), "only Secrets honour once; ignored");
        } else if common.once && (update || common.reconcile) {
            sink.warn(
                &format!("{at}.once"),
                "ignored on an entry that is updated every reconcile",
            );
        }
    }
}

fn check_block(b: &HookTemplates, path: &str, update: bool, in_motif: bool, sink: &mut Sink) {
    for kind in b.unsupported_kinds() {
        sink.err(&format!("{path}.{kind}"), "not supported yet by this runtime");
    }
    if b.on_create.is_some() && !in_motif {
        sink.err(
            &format!("{path}.onCreate"),
            "a nested onCreate is only valid in a motif's resources",
        );
    }
    if let Some(nested) = &b.on_create {
        check_block(nested, &format!("{path}.onCreate"), false, false, sink);
    }
    for (i, c) in b.when.iter().enumerate() {
        check_condition(c, &format!("{path}.when[{i}]"), sink);
    }
    for (i, c) in b.or.iter().enumerate() {
        check_condition(c, &format!("{path}.or[{i}]"), sink);
    }
    let missing =
        |pairs: &[(&'static str, bool)]| pairs.iter().filter(|(_, ok)| !ok).map(|(f, _)| *f).collect();
    let at = |list: &str| format!("{path}.{list}");
    check_entries(
        sink,
        &at("namespaces"),
        update,
        b.namespaces.iter().map(|e| (e.common(), vec![], false)).collect(),
    );
    check_entries(
        sink,
        &at("serviceAccounts"),
        update,
        b.service_accounts
            .iter()
            .map(|e| (e.common(), vec![], false))
            .collect(),
    );
    check_entries(
        sink,
        &at("secrets"),
        update,
        b.secrets.iter().map(|e| (e.common(), vec![], true)).collect(),
    );
    check_entries(
        sink,
        &at("configMaps"),
        update,
        b.config_maps
            .iter()
            .map(|e| (e.common(), vec![], false))
            .collect(),
    );
    for (list, items) in [("deployments", &b.deployments), ("replicaSets", &b.replica_sets)] {
        let entries = items
            .iter()
            .map(|e| (e.common(), missing(&[("image", e.image.is_some())]), false))
            .collect();
        check_entries(sink, &at(list), update, entries);
        for (i, w) in items.iter().enumerate() {
            if w.autoscale.is_some() {
                sink.warn(
                    &format!("{path}.{list}[{i}].autoscale"),
                    "not supported by this runtime; ignored",
                );
            }
            if w.resources.as_ref().is_some_and(|r| r.get("profile").is_some()) {
                sink.err(
                    &format!("{path}.{list}[{i}].resources.profile"),
                    "resource profiles are not supported yet",
                );
            }
        }
    }
    let services = b
        .services
        .iter()
        .map(|e| (e.common(), missing(&[("port", e.port.is_some())]), false))
        .collect();
    check_entries(sink, &at("services"), update, services);
    let jobs = b
        .jobs
        .iter()
        .map(|e| (e.common(), missing(&[("image", e.image.is_some())]), false))
        .collect();
    check_entries(sink, &at("jobs"), update, jobs);
    let cron_jobs = b
        .cron_jobs
        .iter()
        .map(|e| {
            (
                e.common(),
                missing(&[("schedule", e.schedule.is_some()), ("image", e.image.is_some())]),
                false,
            )
        })
        .collect();
    check_entries(sink, &at("cronJobs"), update, cron_jobs);
    let custom = b
        .custom
        .iter()
        .map(|e| {
            (
                e.common(),
                missing(&[
                    ("apiVersion", e.api_version.is_some()),
                    ("kind", e.kind.is_some()),
                ]),
                false,
            )
        })
        .collect();
    check_entries(sink, &at("custom"), update, custom);
}

fn load_motif(
    katalog_file: &Path,
    reference: &str,
    with: &std::collections::BTreeMap<String, Value>,
    via: &str,
    engine: &Engine,
    problems: &mut Vec<Problem>,
) -> Option<Motif> {
    let file: PathBuf = katalog_file.parent().unwrap_or(Path::new(".")).join(reference);
    let mut raw = match read_yaml(&file) {
        Ok(raw) => raw,
        Err(mut p) => {
            p.via = Some(via.to_owned());
            problems.push(*p);
            return None;
        }
    };
    let start = problems.len();
    let inputs = raw.get("inputs").cloned().unwrap_or(Value::Array(Vec::new()));
    let inputs: Vec<motif::Input> = decode(inputs, &file, "inputs", problems).unwrap_or_default();
    let values = match motif::bind(&inputs, with) {
        Ok(v) => Some(v),
        Err(errors) => {
            for e in errors {
                let (path, msg) = e.split_once(": ").unwrap_or(("", &e));
                problems.push(Problem::error(katalog_file, join(via, path), msg.to_owned()));
            }
            None
        }
    };
    if let (Some(values), Value::Object(map)) = (&values, &mut raw) {
        let mut errors = Vec::new();
        for (k, v) in map.iter_mut().filter(|(k, _)| k.as_str() != "inputs") {
            motif::substitute_all(v, values, k, &mut errors);
        }
        for (path, msg) in errors {
            problems.push(Problem::error(&file, path, msg));
        }
    }
    let m: Option<Motif> = decode(raw.clone(), &file, "", problems);
    if let Some(m) = &m {
        if m.kind.as_deref() != Some("Motif") {
            problems.push(Problem::error(
                &file,
                "kind",
                format!("expected kind Motif, got {:?}", m.kind),
            ));
        }
        if let Some(resources) = &m.resources {
            let mut sink = Sink::default();
            check_block(resources, "resources", true, true, &mut sink);
            sink.into_problems(&file, "", problems);
        }
    }
    // Templates are checked after substitution: that is what the runtime will parse.
    for key in ["resources", "status", "admission"] {
        if let Some(v) = raw.get(key) {
            check_templates(v, engine, &file, key, Some(via), problems);
        }
    }
    for p in &mut problems[start..] {
        if p.via.is_none() && p.file == file {
            p.via = Some(via.to_owned());
        }
    }
    if values.is_none() { None } else { m }
}
