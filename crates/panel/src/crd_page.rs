//! `/ui/crd/{entry}`: the per-CRD page, in seed 004's sections and order: title block (state
//! badge, operator and version, uptime), Overview, Reconcile Mode, Configuration, Dependencies,
//! Child Resources, kubectl Reference, Access Control, Endpoints. A section without data is left
//! out, never shown empty.
//!
//! The model is filled by whoever serves the page: the Katalog runtime from an entry, its health
//! and its RBAC info (spec §10/§11.1), the OMJob operator from its config and its ClusterRole.

use maud::{Markup, html};

use crate::{
    State,
    badge::state_badge,
    instances_href,
    layout::{Crumb, Shell, kv_table, section},
};

/// The page's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdPage {
    /// The entry name (`data-job`, `omjob`).
    pub name: String,
    /// One line under the name (`DataJob CRD, GVK: …`).
    pub description: String,
    /// The state badge.
    pub state: State,
    /// Why the state is not healthy, when it is not.
    pub state_reason: Option<String>,
    /// The operator: the Katalog's name, or the operator binary's.
    pub operator: String,
    /// Its version.
    pub version: String,
    /// Uptime as a Go duration (`52h44m37s`).
    pub uptime: Option<String>,
    /// What runs the operator (`Orkestra`), named in the Overview sentence when set.
    pub platform: Option<String>,
    /// The Overview table.
    pub overview: Overview,
    /// How instances are reconciled.
    pub mode: ReconcileMode,
    /// Workers, queue, resync and other settings.
    pub configuration: Configuration,
    /// Declared dependencies (Katalog `dependsOn`).
    pub dependencies: Vec<Dependency>,
    /// The kinds the operator creates per instance.
    pub children: Vec<ChildKind>,
    /// Commands for this kind.
    pub kubectl: Vec<KubectlCommand>,
    /// The operator's permissions.
    pub access: Option<AccessControl>,
    /// Per-CRD endpoints with their live status.
    pub endpoints: Vec<Endpoint>,
}

/// The Overview table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    /// `group/version`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// `group/version, Resource=plural`.
    pub gvr: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Where the operator runs, when it is worth showing.
    pub operator_namespace: Option<String>,
}

/// How instances are reconciled; each mode has its own explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileMode {
    /// The Katalog runtime's generic reconciler over unstructured objects and templates.
    Dynamic,
    /// A compiled controller for a typed resource.
    TypedController {
        /// What the controller does on each pass, one paragraph each.
        paragraphs: Vec<String>,
    },
}

impl ReconcileMode {
    const fn label(&self) -> &'static str {
        match self {
            Self::Dynamic => "dynamic",
            Self::TypedController { .. } => "typed controller",
        }
    }
}

/// Configuration facts. Empty fields are not mentioned; an all-empty configuration omits the
/// section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configuration {
    /// Concurrent reconcile workers.
    pub workers: Option<u32>,
    /// Where the worker count comes from (`RECONCILIATION_THREADS`, `katalog`, `default`).
    pub workers_source: Option<String>,
    /// The queue's maximum depth.
    pub max_queue_depth: Option<u64>,
    /// The resync period as a Go duration.
    pub resync: Option<String>,
    /// Further settings, shown as a table.
    pub settings: Vec<Setting>,
}

impl Configuration {
    fn is_empty(&self) -> bool {
        self.workers.is_none()
            && self.max_queue_depth.is_none()
            && self.resync.is_none()
            && self.settings.is_empty()
    }
}

/// One setting row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Its name (`MAIN_POD_PENDING_TIMEOUT_SECONDS`).
    pub name: String,
    /// Its effective value.
    pub value: String,
    /// What it does.
    pub meaning: String,
}

/// One dependency row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The entry or resource depended on.
    pub name: String,
    /// The condition it must meet.
    pub required: String,
    /// What it is now.
    pub current: String,
    /// Whether it is met.
    pub satisfied: bool,
}

/// One child kind: the kind, how many per instance, and in which lifecycle phases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildKind {
    /// The kind (`ConfigMap`).
    pub kind: String,
    /// How many per instance (`1`, `one per slot`).
    pub count: String,
    /// The phases it is made in (`onCreate`), listed once per kind.
    pub phases: Vec<String>,
}

/// A kubectl command with its title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubectlCommand {
    /// `List resources`.
    pub title: String,
    /// The command.
    pub command: String,
}

/// The Access Control section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControl {
    /// Where the rules come from (`ClusterRole omjob-operator`), when worth naming.
    pub source: Option<String>,
    /// The rules.
    pub rules: Vec<RbacRule>,
}

/// One RBAC rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacRule {
    /// API groups; the empty group is shown as `core`.
    pub api_groups: Vec<String>,
    /// Resources.
    pub resources: Vec<String>,
    /// Verbs.
    pub verbs: Vec<String>,
}

impl AccessControl {
    /// `"<count> <resource>"` per resource (how many rules name it), sorted by resource and
    /// joined by `", "`, as the Katalog API's `rbac.summary` (spec §10).
    #[must_use]
    pub fn summary(&self) -> String {
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for rule in &self.rules {
            for r in &rule.resources {
                *counts.entry(r.as_str()).or_default() += 1;
            }
        }
        counts
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One endpoint with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The path.
    pub path: String,
    /// What it answers now (`200 OK`).
    pub status: String,
    /// Whether that is good.
    pub ok: bool,
}

fn word_list(words: &[String]) -> Markup {
    html! { span class="word-list" { @for w in words { span { (w) } } } }
}

impl CrdPage {
    /// The page's shell.
    #[must_use]
    pub fn shell(&self) -> Shell {
        Shell::new(
            &self.operator,
            &self.name,
            vec![Crumb::link("Dashboard", "/ui/"), Crumb::here(&self.name)],
        )
    }

    /// The whole document.
    #[must_use]
    pub fn render(&self) -> Markup {
        self.shell().render(&self.content())
    }

    /// The page's content (inside `<main>`).
    #[must_use]
    pub fn content(&self) -> Markup {
        html! {
            (self.title_block())
            (self.overview())
            (self.reconcile_mode())
            @if !self.configuration.is_empty() { (self.configuration()) }
            @if !self.dependencies.is_empty() { (self.dependencies()) }
            @if !self.children.is_empty() { (self.children()) }
            @if !self.kubectl.is_empty() { (self.kubectl()) }
            @if let Some(access) = self.access.as_ref().filter(|a| !a.rules.is_empty()) { (self.access(access)) }
            @if !self.endpoints.is_empty() { (self.endpoints()) }
        }
    }

    fn title_block(&self) -> Markup {
        html! {
            div class="title-block" id="title" {
                h1 { (self.name) }
                p class="description" { (self.description) }
                div class="meta" {
                    (state_badge(self.state))
                    @if let Some(reason) = &self.state_reason { span class="note" { (reason) } }
                    span class="operator" { strong { (self.operator) } " " span class="version" { (self.version) } }
                    @if let Some(uptime) = &self.uptime { span class="sep" { "·" } span class="uptime" { "uptime " (uptime) } }
                    span class="sep" { "·" }
                    a href=(instances_href(&self.name)) { "instances" }
                }
            }
        }
    }

    fn overview(&self) -> Markup {
        let o = &self.overview;
        let mut rows = vec![
            ("API Version".to_owned(), o.api_version.clone()),
            ("Kind".to_owned(), o.kind.clone()),
            ("GVR (plural)".to_owned(), o.gvr.clone()),
            (
                "Scope".to_owned(),
                if o.namespaced {
                    "Namespaced"
                } else {
                    "Cluster-scoped"
                }
                .to_owned(),
            ),
        ];
        if let Some(ns) = &o.operator_namespace {
            rows.push(("Operator namespace".to_owned(), ns.clone()));
        }
        let body = html! {
            p {
                code { (self.name) } " is a custom resource managed by the " strong { (self.operator) } " operator"
                @if let Some(p) = &self.platform { " running on " (p) }
                ". Resources of this type are "
                @if o.namespaced { "namespace-scoped." } @else { "cluster-scoped." }
            }
            (kv_table(&rows))
        };
        section("overview", "Overview", &body)
    }

    fn reconcile_mode(&self) -> Markup {
        let body = match &self.mode {
            ReconcileMode::Dynamic => html! {
                p { "This CRD runs in " strong { "dynamic" } " mode. The runtime works directly with the raw \
                     unstructured Kubernetes object — no compiled code is required. Reconcile logic is expressed \
                     declaratively in the Katalog YAML using template expressions like " code { "{{ .spec.field }}" } "." }
                p { "The Generic Reconciler manages the full CR lifecycle: it ensures managed labels are set on every \
                     reconcile, adds and removes finalizers, runs onCreate and onReconcile template blocks, emits \
                     events, increments metrics, and reports health status." }
            },
            ReconcileMode::TypedController { paragraphs } => html! {
                p { "This CRD is reconciled by a " strong { "typed controller" } " compiled into "
                    strong { (self.operator) } ": each object is decoded into its typed form, checked, and driven \
                    through its state machine; the status is rebuilt from what the controller observes on every pass." }
                @for p in paragraphs { p { (p) } }
            },
        };
        html! {
            section class="card" id="reconcile-mode" data-mode=(self.mode.label()) {
                h2 { "Reconcile Mode" }
                (body)
            }
        }
    }

    fn configuration(&self) -> Markup {
        let c = &self.configuration;
        let body = html! {
            @if let Some(workers) = c.workers {
                p {
                    "The operator maintains " strong class="workers" { (workers) } " workers to process reconcile \
                     events concurrently. Each worker takes one CR key at a time, reconciles it, and returns."
                    @if let Some(depth) = c.max_queue_depth {
                        " The queue has a maximum depth of " strong class="queue-depth" { (depth) } " events."
                    }
                    @if let Some(source) = &c.workers_source { " " span class="note" { "(from " (source) ")" } }
                }
            } @else if let Some(depth) = c.max_queue_depth {
                p { "The queue has a maximum depth of " strong class="queue-depth" { (depth) } " events." }
            }
            @if let Some(resync) = &c.resync {
                p { "The operator resyncs all managed resources every " strong class="resync" { (resync) }
                    " by re-enqueueing every CR key. This corrects drift caused by external changes even without a \
                     Kubernetes watch event." }
            }
            @if !c.settings.is_empty() {
                table class="settings" {
                    thead { tr { th { "Setting" } th { "Value" } th { "Meaning" } } }
                    tbody {
                        @for s in &c.settings {
                            tr data-setting=(s.name) { td { code { (s.name) } } td class="value" { (s.value) } td { (s.meaning) } }
                        }
                    }
                }
            }
        };
        section("configuration", "Configuration", &body)
    }

    fn dependencies(&self) -> Markup {
        let body = html! {
            table {
                thead { tr { th { "Name" } th { "Required condition" } th { "Current state" } th { "Satisfied" } } }
                tbody {
                    @for d in &self.dependencies {
                        tr {
                            td { (d.name) } td { (d.required) } td { (d.current) }
                            td { @if d.satisfied { span class="present" { "yes" } } @else { span class="missing" { "no" } } }
                        }
                    }
                }
            }
        };
        section("dependencies", "Dependencies", &body)
    }

    fn children(&self) -> Markup {
        let body = html! {
            @match &self.mode {
                ReconcileMode::Dynamic => {
                    p { "When the operator reconciles a " (self.name) " instance it creates and manages the following \
                         Kubernetes resources on its behalf. These are owned by the CR via owner references and are \
                         deleted automatically when the CR is deleted (unless deletion protection is active)." }
                    p { "Resources listed under onCreate are created on the first reconcile. Resources listed under \
                         onReconcile are re-applied on every reconcile cycle. A resource appearing in both phases is \
                         created once and kept in sync thereafter." }
                }
                ReconcileMode::TypedController { .. } => {
                    p { "When the controller reconciles a " (self.name) " instance it creates the following Kubernetes \
                         resources on its behalf. They are owned by the CR via owner references, so deleting the CR \
                         deletes them." }
                }
            }
            table class="children" {
                thead { tr { th { "Kind" } th class="num" { "Count" } th { "Lifecycle phases" } } }
                tbody {
                    @for c in &self.children {
                        tr { td { (c.kind) } td class="num" { (c.count) } td { (c.phases.join(", ")) } }
                    }
                }
            }
            p class="note" { "To see the actual child resources of a running instance, open the instance's page from "
                a href=(instances_href(&self.name)) { "the instance list" } "." }
        };
        section("child-resources", "Child Resources", &body)
    }

    fn kubectl(&self) -> Markup {
        let body = html! {
            p { "Use the commands below to interact with " (self.name) " resources from the command line." }
            div class="kubectl" {
                @for k in &self.kubectl {
                    h3 { (k.title) }
                    pre class="cmd" { code { (k.command) } }
                }
            }
        };
        section("kubectl-reference", "kubectl Reference", &body)
    }

    fn access(&self, access: &AccessControl) -> Markup {
        let body = html! {
            p {
                "The operator holds the following RBAC permissions to manage " (self.name) " resources"
                @if let Some(source) = &access.source { " (" (source) ")" }
                ". " span class="summary" { (access.summary()) }
            }
            table class="rbac" {
                thead { tr { th { "API Groups" } th { "Resources" } th { "Verbs" } } }
                tbody {
                    @for r in &access.rules {
                        tr {
                            td { @for g in &r.api_groups { span class="group" { @if g.is_empty() { "core" } @else { (g) } } " " } }
                            td { (word_list(&r.resources)) }
                            td { (word_list(&r.verbs)) }
                        }
                    }
                }
            }
        };
        section("access-control", "Access Control", &body)
    }

    fn endpoints(&self) -> Markup {
        let body = html! {
            table {
                thead { tr { th { "Endpoint" } th { "Status" } } }
                tbody {
                    @for e in &self.endpoints {
                        tr { td { code { (e.path) } } td { span class={ "badge " @if e.ok { "tone-good" } @else { "tone-bad" } } { (e.status) } } }
                    }
                }
            }
        };
        section("endpoints", "Endpoints", &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seed 004's data-job page as the Katalog runtime would fill it.
    pub(crate) fn data_job() -> CrdPage {
        CrdPage {
            name: "data-job".into(),
            description: "DataJob CRD, GVK: data.demo.orkestra.io/v1alpha1, Kind=DataJob".into(),
            state: State::Healthy,
            state_reason: None,
            operator: "data-platform".into(),
            version: "0.1.0".into(),
            uptime: Some("52h44m37s".into()),
            platform: Some("Orkestra".into()),
            overview: Overview {
                api_version: "data.demo.orkestra.io/v1alpha1".into(),
                kind: "DataJob".into(),
                gvr: "data.demo.orkestra.io/v1alpha1, Resource=datajobs".into(),
                namespaced: true,
                operator_namespace: None,
            },
            mode: ReconcileMode::Dynamic,
            configuration: Configuration {
                workers: Some(3),
                workers_source: None,
                max_queue_depth: Some(100),
                resync: Some("15s".into()),
                settings: vec![],
            },
            dependencies: vec![],
            children: vec![
                ChildKind {
                    kind: "ConfigMap".into(),
                    count: "1".into(),
                    phases: vec!["onCreate".into()],
                },
                ChildKind {
                    kind: "ReplicaSet".into(),
                    count: "1".into(),
                    phases: vec!["onReconcile".into()],
                },
            ],
            kubectl: vec![KubectlCommand {
                title: "List resources".into(),
                command: "kubectl get datajob -n <namespace>".into(),
            }],
            access: Some(AccessControl {
                source: None,
                rules: vec![
                    RbacRule {
                        api_groups: vec!["data.demo.orkestra.io".into()],
                        resources: vec!["datajobs".into()],
                        verbs: vec!["get".into(), "list".into()],
                    },
                    RbacRule {
                        api_groups: vec![String::new()],
                        resources: vec!["configmaps".into()],
                        verbs: vec!["get".into()],
                    },
                ],
            }),
            endpoints: vec![],
        }
    }

    fn position(html: &str, needle: &str) -> usize {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing from {html}"))
    }

    #[test]
    fn every_section_is_present_in_seed_order_with_its_values() {
        let html = data_job().render().into_string();
        let order = [
            r#"id="title""#,
            r#"id="overview""#,
            r#"id="reconcile-mode""#,
            r#"id="configuration""#,
            r#"id="child-resources""#,
            r#"id="kubectl-reference""#,
            r#"id="access-control""#,
        ];
        let positions: Vec<usize> = order.iter().map(|n| position(&html, n)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        for value in [
            r#"data-state="healthy""#,
            "data-platform",
            "0.1.0",
            "uptime 52h44m37s",
            "data.demo.orkestra.io/v1alpha1, Resource=datajobs",
            "Namespaced",
            "running on Orkestra",
            r#"<strong class="workers">3</strong>"#,
            r#"<strong class="queue-depth">100</strong>"#,
            r#"<strong class="resync">15s</strong>"#,
            "<td>ConfigMap</td><td class=\"num\">1</td><td>onCreate</td>",
            "<td>ReplicaSet</td><td class=\"num\">1</td><td>onReconcile</td>",
            "kubectl get datajob -n &lt;namespace&gt;",
            "1 configmaps, 1 datajobs",
            r#"<span class="group">core</span>"#,
            "{{ .spec.field }}",
        ] {
            assert!(html.contains(value), "{value} missing");
        }
    }

    #[test]
    fn sections_without_data_are_omitted() {
        let mut page = data_job();
        page.configuration = Configuration::default();
        page.children.clear();
        page.kubectl.clear();
        page.access = None;
        let html = page.render().into_string();
        for id in [
            "configuration",
            "dependencies",
            "child-resources",
            "kubectl-reference",
            "access-control",
            "endpoints",
        ] {
            assert!(!html.contains(&format!(r#"id="{id}""#)), "{id} rendered empty");
        }
        assert!(html.contains(r#"id="overview""#));
    }

    #[test]
    fn dependencies_and_endpoints_show_when_declared() {
        let mut page = data_job();
        page.dependencies = vec![Dependency {
            name: "db".into(),
            required: "healthy".into(),
            current: "degraded".into(),
            satisfied: false,
        }];
        page.endpoints = vec![Endpoint {
            path: "/katalog/data-job/health".into(),
            status: "503".into(),
            ok: false,
        }];
        let html = page.render().into_string();
        assert!(position(&html, r#"id="configuration""#) < position(&html, r#"id="dependencies""#));
        assert!(position(&html, r#"id="dependencies""#) < position(&html, r#"id="child-resources""#));
        assert!(html.contains(r#"<span class="missing">no</span>"#));
        assert!(html.contains("/katalog/data-job/health"));
    }

    #[test]
    fn a_typed_controller_explains_itself_and_lists_its_settings() {
        let mut page = data_job();
        page.mode = ReconcileMode::TypedController {
            paragraphs: vec!["Pods are watched.".into()],
        };
        page.configuration.settings = vec![Setting {
            name: "RECONCILIATION_THREADS".into(),
            value: "7".into(),
            meaning: "workers".into(),
        }];
        let html = page.render().into_string();
        assert!(html.contains(r#"data-mode="typed controller""#));
        assert!(html.contains("Pods are watched."));
        assert!(html.contains(r#"<tr data-setting="RECONCILIATION_THREADS"><td><code>RECONCILIATION_THREADS</code></td><td class="value">7</td>"#));
        assert!(!html.contains("onCreate are created"));
    }
}
