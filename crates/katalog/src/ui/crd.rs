//! `/ui/crd/{entry}`: seed 004's page filled from an entry's `/katalog/{crd}` info and health
//! (spec §11.1). Pure: the handler reads the views from [`State`](crate::runtime::State) and
//! this module only maps them, so every value on the page is the running runtime's.

use http::StatusCode;
use omjob_panel::{
    CrdPage,
    crd_page::{
        AccessControl, ChildKind, Configuration, Dependency, Endpoint, KubectlCommand, Overview, RbacRule,
        ReconcileMode, Setting,
    },
};

use super::{Operator, kind_of, panel_state};
use crate::{
    render::MANAGED_LABEL,
    runtime::{
        config::Source,
        views::{CrdHealth, CrdInfo},
    },
};

/// The platform named in the Overview sentence.
const PLATFORM: &str = "the Orkestra-compatible Katalog runtime";

/// The blocks in the order their children are listed (seed 004: onCreate before onReconcile).
const BLOCKS: [&str; 3] = ["onCreate", "onReconcile", "onDelete"];

/// The page for one entry. `cr_list` is what `/katalog/{crd}/cr` answers now.
#[must_use]
pub fn page(op: &Operator, info: &CrdInfo, health: &CrdHealth, cr_list: StatusCode) -> CrdPage {
    let kind = kind_of(&info.gvk).to_owned();
    let (state, state_reason) = panel_state(health.state, &health.last_error);
    CrdPage {
        name: info.name.clone(),
        description: info.description.clone(),
        state,
        state_reason,
        operator: op.name.clone(),
        version: op.version.clone(),
        uptime: health.started.then(|| health.uptime.clone()),
        platform: Some(PLATFORM.to_owned()),
        overview: Overview {
            api_version: api_version(&info.gvk).to_owned(),
            kind: kind.clone(),
            gvr: info.gvr.clone(),
            namespaced: info.namespaced,
            operator_namespace: None,
        },
        mode: ReconcileMode::Dynamic,
        configuration: configuration(info, health),
        dependencies: dependencies(info, health),
        children: children(info),
        kubectl: kubectl(&kind, info.namespaced),
        access: Some(AccessControl {
            source: None,
            rules: info
                .rbac
                .rules
                .iter()
                .map(|r| RbacRule {
                    api_groups: r.api_groups.clone(),
                    resources: r.resources.clone(),
                    verbs: r.verbs.clone(),
                })
                .collect(),
        }),
        endpoints: endpoints(info, health, cr_list),
    }
}

/// `data.demo.orkestra.io/v1alpha1` from `data.demo.orkestra.io/v1alpha1, Kind=DataJob`.
fn api_version(gvk: &str) -> &str {
    gvk.split_once(',').map_or(gvk, |(av, _)| av.trim())
}

/// Where a setting came from, as the note after it says.
fn source_word(source: Source, env: &str) -> String {
    match source {
        Source::Katalog => "the Katalog".to_owned(),
        Source::Env => env.to_owned(),
        Source::Default => "the runtime default".to_owned(),
    }
}

fn setting(name: &str, value: String, meaning: &str) -> Setting {
    Setting {
        name: name.to_owned(),
        value,
        meaning: meaning.to_owned(),
    }
}

fn configuration(info: &CrdInfo, health: &CrdHealth) -> Configuration {
    let mut settings = vec![
        setting(
            "workers",
            format!(
                "{} ({} processing, {} idle)",
                info.workers, info.workers_processing, info.workers_idle
            ),
            "concurrent reconciles, and what they do right now",
        ),
        setting(
            "queueDepth",
            format!(
                "{} of {} (from {})",
                info.queue_depth,
                info.max_queue_depth,
                source_word(info.max_queue_depth_source, "MAX_QUEUE_DEPTH")
            ),
            "CR keys waiting for a worker; past the maximum a key waits for the next resync",
        ),
        setting(
            "resync",
            format!(
                "{} (from {})",
                info.resync,
                source_word(info.resync_source, "DEFAULT_RESYNC")
            ),
            "how often every CR is reconciled again without a change",
        ),
        setting(
            "failureThreshold",
            format!(
                "{} (from {})",
                info.failure_threshold,
                source_word(info.failure_threshold_source, "FAILURE_THRESHOLD")
            ),
            "consecutive failed passes that turn the entry degraded",
        ),
        setting(
            "watchedNamespaces",
            if info.watched_namespaces.is_empty() {
                "all namespaces".to_owned()
            } else {
                info.watched_namespaces.join(", ")
            },
            "where the CR watch looks",
        ),
    ];
    if !info.allowed_namespaces.is_empty() {
        settings.push(setting(
            "allowedNamespaces",
            info.allowed_namespaces.join(", "),
            "the only namespaces whose CRs are reconciled",
        ));
    }
    if !info.restricted_namespaces.is_empty() {
        settings.push(setting(
            "restrictedNamespaces",
            info.restricted_namespaces.join(", "),
            "namespaces whose CRs are refused",
        ));
    }
    if !info.reconciler.finalizers.values.is_empty() {
        settings.push(setting(
            "finalizers",
            info.reconciler.finalizers.values.join(", "),
            "put on every CR so its children are cleaned up before it goes",
        ));
    }
    settings.push(setting(
        "reconciles",
        format!(
            "{} ({} failed, {} in a row now)",
            health.total_reconciles, health.failed_reconciles, health.consecutive_fails
        ),
        "passes since the entry started",
    ));
    settings.push(setting(
        "lastReconcile",
        health.last_reconcile.clone(),
        "when the last pass ended",
    ));
    if !health.last_error.is_empty() {
        settings.push(setting(
            "lastError",
            health.last_error.clone(),
            "the last failure",
        ));
    }
    Configuration {
        workers: Some(info.workers),
        workers_source: Some(source_word(info.workers_source, "DEFAULT_WORKERS")),
        max_queue_depth: Some(u64::from(info.max_queue_depth)),
        resync: Some(info.resync.clone()),
        settings,
    }
}

fn dependencies(info: &CrdInfo, health: &CrdHealth) -> Vec<Dependency> {
    info.depends_on
        .iter()
        .map(|d| {
            let missing = health.missing.contains(d);
            Dependency {
                name: d.clone(),
                required: "healthy".to_owned(),
                current: if missing { "missing" } else { "healthy" }.to_owned(),
                satisfied: !missing,
            }
        })
        .collect()
}

/// `configMaps` → `ConfigMap`: the Katalog block key back to its kind.
fn kind_of_list_key(key: &str) -> String {
    if key == "custom" {
        return "Custom".to_owned();
    }
    let singular = key.strip_suffix('s').unwrap_or(key);
    let mut chars = singular.chars();
    chars.next().map_or_else(String::new, |first| {
        format!("{}{}", first.to_ascii_uppercase(), chars.as_str())
    })
}

/// One row per kind, in block order; a kind in several blocks is listed once with each phase
/// (its count is the largest, since the same objects are kept in sync).
fn children(info: &CrdInfo) -> Vec<ChildKind> {
    let mut rows: Vec<ChildKind> = Vec::new();
    for block in BLOCKS {
        let Some(counts) = info.reconciler.templates.get(block) else {
            continue;
        };
        for (key, &n) in counts {
            let kind = kind_of_list_key(key);
            match rows.iter_mut().find(|r| r.kind == kind) {
                Some(row) => {
                    row.phases.push(block.to_owned());
                    if row.count.parse::<usize>().is_ok_and(|c| c < n) {
                        row.count = n.to_string();
                    }
                }
                None => rows.push(ChildKind {
                    kind,
                    count: n.to_string(),
                    phases: vec![block.to_owned()],
                }),
            }
        }
    }
    rows
}

/// Seed 004's commands, with the lower-case singular kind; no `-n` for a cluster-scoped kind.
fn kubectl(kind: &str, namespaced: bool) -> Vec<KubectlCommand> {
    let s = kind.to_lowercase();
    let ns = if namespaced { " -n <namespace>" } else { "" };
    [
        ("List resources", format!("kubectl get {s}{ns}")),
        ("Describe a resource", format!("kubectl describe {s} <name>{ns}")),
        ("Get YAML", format!("kubectl get {s} <name>{ns} -o yaml")),
        ("Watch for changes", format!("kubectl get {s}{ns} -w")),
        ("Delete a resource", format!("kubectl delete {s} <name>{ns}")),
        (
            "Filter by Orkestra managed label",
            format!("kubectl get {s} -l {MANAGED_LABEL}=true{ns}"),
        ),
    ]
    .into_iter()
    .map(|(title, command)| KubectlCommand {
        title: title.to_owned(),
        command,
    })
    .collect()
}

fn status_line(code: StatusCode) -> String {
    format!("{} {}", code.as_u16(), code.canonical_reason().unwrap_or(""))
        .trim_end()
        .to_owned()
}

fn endpoints(info: &CrdInfo, health: &CrdHealth, cr_list: StatusCode) -> Vec<Endpoint> {
    let health_code = if health.state.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    [
        (format!("/katalog/{}", info.name), StatusCode::OK),
        (format!("/katalog/{}/health", info.name), health_code),
        (format!("/katalog/{}/cr", info.name), cr_list),
    ]
    .into_iter()
    .map(|(path, code)| Endpoint {
        path,
        status: status_line(code),
        ok: code.is_success(),
    })
    .collect()
}
