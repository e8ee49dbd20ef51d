//! The mapping from the runtime's views to the panel's pages, without a cluster: a [`State`]
//! over the data-platform example entry (loaded with [`load::load`], health fed by hand under a
//! manual clock), and views built here for the instance pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use axum::body::Body;
use http::{Request, StatusCode, header};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use tower::ServiceExt as _;

use super::*;
use crate::{
    load,
    runtime::{
        clock::{Clock as _, ManualClock},
        config::Config,
        live::Live,
        metrics::Metrics,
        state::KatalogDoc,
        views::{ChildView, CrDetail, CrList, CrSummary, EventView},
    },
    template::Engine,
};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/katalog/data-platform.yaml"
);
const SCRIPT: &str = "<script>window.__xss=1</script>";
const IMG: &str = "\"><img src=x onerror=window.__xss=2>";
/// Seed 004's uptime.
const UPTIME: Duration = Duration::from_secs(52 * 3600 + 44 * 60 + 37);

/// A state over the example, with `config`'s defaults applied; `passes` succeeded (or failed
/// when `fail`), then the clock moved on by seed 004's uptime.
fn example_state(config: &Config, fail: Option<u32>) -> State {
    let file = Path::new(EXAMPLE);
    let loaded = load::load(file, &Engine::default());
    assert!(!loaded.has_errors(), "{:?}", loaded.problems);
    let meta = loaded.katalog.as_ref().unwrap().metadata.clone();
    let doc = KatalogDoc {
        name: meta.name.unwrap(),
        version: meta.version.unwrap().0,
        author: String::new(),
        description: String::new(),
        license: String::new(),
        raw: load::read_yaml(file).unwrap(),
    };
    let clock = Arc::new(ManualClock::new(Timestamp::from_second(1_700_000_000).unwrap()));
    let lives: Vec<Arc<Live>> = loaded
        .entries
        .into_iter()
        .map(|e| {
            let (e, sources) = config.apply_defaults(e);
            Arc::new(Live::new(e, sources, 0))
        })
        .collect();
    for l in &lives {
        l.health.start(clock.now());
        match fail {
            None => l.health.success(clock.now()),
            Some(n) => (0..n).for_each(|_| l.health.failure("replicas: must be >= 0".into(), clock.now())),
        }
    }
    clock.advance(UPTIME);
    // Never connected: the pages under test read memory only (a CR list fails, and says so).
    let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    State::new(
        client,
        vec![doc],
        lives,
        Arc::new(Metrics::new()),
        clock,
        "test".into(),
        None,
    )
}

fn data_job_page(state: &State) -> CrdPage {
    let info = state.crd_info("data-job").unwrap();
    let health = state.crd_health("data-job").unwrap();
    crd::page(&operator_of(state, "data-job"), &info, &health, StatusCode::OK)
}

use omjob_panel::CrdPage;

fn position(html: &str, needle: &str) -> usize {
    html.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} missing from {html}"))
}

#[tokio::test]
async fn the_data_job_page_has_every_seed_section_with_the_examples_values() {
    let state = example_state(&Config::new(vec![]), None);
    let page = data_job_page(&state);
    assert_eq!(page.name, "data-job");
    assert_eq!(
        page.description,
        "DataJob CRD, GVK: data.demo.orkestra.io/v1alpha1, Kind=DataJob"
    );
    assert_eq!(page.state, omjob_panel::State::Healthy);
    assert_eq!(
        (page.operator.as_str(), page.version.as_str()),
        ("data-platform", "0.1.0")
    );
    assert_eq!(page.uptime.as_deref(), Some("52h44m37s"));
    let access = page.access.clone().unwrap();
    assert_eq!(
        access.summary(),
        state.crd_info("data-job").unwrap().rbac.summary,
        "the panel's summary is the API's"
    );
    assert_eq!(
        access.summary(),
        "1 configmaps, 1 datajobs, 1 datajobs/status, 1 replicasets"
    );

    let html = page.render().into_string();
    let order = [
        r#"id="title""#,
        r#"id="overview""#,
        r#"id="reconcile-mode""#,
        r#"id="configuration""#,
        r#"id="child-resources""#,
        r#"id="kubectl-reference""#,
        r#"id="access-control""#,
        r#"id="endpoints""#,
    ];
    let at: Vec<usize> = order.iter().map(|n| position(&html, n)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    assert!(!html.contains(r#"id="dependencies""#), "no dependsOn: no section");
    for value in [
        "<h1>data-job</h1>",
        "DataJob CRD, GVK: data.demo.orkestra.io/v1alpha1, Kind=DataJob",
        r#"data-state="healthy""#,
        "<strong>data-platform</strong> <span class=\"version\">0.1.0</span>",
        "uptime 52h44m37s",
        "<code>data-job</code> is a custom resource managed by the <strong>data-platform</strong> operator",
        "namespace-scoped.",
        "<td>data.demo.orkestra.io/v1alpha1</td>",
        "<td>DataJob</td>",
        "<td>data.demo.orkestra.io/v1alpha1, Resource=datajobs</td>",
        "<td>Namespaced</td>",
        r#"data-mode="dynamic""#,
        "{{ .spec.field }}",
        r#"<strong class="workers">3</strong>"#,
        "(from the runtime default)",
        r#"<strong class="queue-depth">100</strong>"#,
        r#"<strong class="resync">15s</strong>"#,
        "<td>ConfigMap</td><td class=\"num\">1</td><td>onCreate</td>",
        "<td>ReplicaSet</td><td class=\"num\">1</td><td>onReconcile</td>",
        "kubectl get datajob -n &lt;namespace&gt;",
        "kubectl describe datajob &lt;name&gt; -n &lt;namespace&gt;",
        "kubectl get datajob &lt;name&gt; -n &lt;namespace&gt; -o yaml",
        "kubectl get datajob -n &lt;namespace&gt; -w",
        "kubectl delete datajob &lt;name&gt; -n &lt;namespace&gt;",
        "kubectl get datajob -l orkestra.orkspace.io/managed=true -n &lt;namespace&gt;",
        "1 configmaps, 1 datajobs, 1 datajobs/status, 1 replicasets",
        r#"<span class="group">core</span>"#,
        r#"<span class="group">apps</span>"#,
        "<span>datajobs/status</span>",
        "/katalog/data-job/health",
    ] {
        assert!(html.contains(value), "{value:?} missing from the page");
    }
}

#[tokio::test]
async fn the_configuration_is_the_effective_one_not_a_constant() {
    let mut config = Config::new(vec![]);
    config.defaults.workers.value = 4;
    config.defaults.workers.from_env = true;
    let page = data_job_page(&example_state(&config, None));
    assert_eq!(page.configuration.workers, Some(4));
    assert_eq!(
        page.configuration.workers_source.as_deref(),
        Some("DEFAULT_WORKERS")
    );
    let html = page.render().into_string();
    assert!(html.contains(r#"<strong class="workers">4</strong>"#));
    assert!(html.contains("4 (0 processing, 4 idle)"), "the live worker state");
}

#[tokio::test]
async fn sections_without_data_are_left_out_and_cluster_scope_drops_the_namespace() {
    let state = example_state(&Config::new(vec![]), None);
    let mut info = state.crd_info("data-job").unwrap();
    let health = state.crd_health("data-job").unwrap();
    info.reconciler.templates.clear();
    info.rbac.rules.clear();
    info.namespaced = false;
    let page = crd::page(&operator_of(&state, "data-job"), &info, &health, StatusCode::OK);
    let html = page.render().into_string();
    for id in ["child-resources", "access-control", "dependencies"] {
        assert!(!html.contains(&format!(r#"id="{id}""#)), "{id} shown empty");
    }
    assert!(html.contains("cluster-scoped."));
    assert!(html.contains("<code>kubectl get datajob</code>"), "{html}");
    assert!(!html.contains("&lt;namespace&gt;"));
}

#[tokio::test]
async fn a_kind_in_two_blocks_is_listed_once_with_both_phases() {
    let state = example_state(&Config::new(vec![]), None);
    let mut info = state.crd_info("data-job").unwrap();
    let health = state.crd_health("data-job").unwrap();
    info.reconciler
        .templates
        .get_mut("onReconcile")
        .unwrap()
        .insert("configMaps".into(), 2);
    let page = crd::page(&operator_of(&state, "data-job"), &info, &health, StatusCode::OK);
    let rows: Vec<(String, String, Vec<String>)> = page
        .children
        .iter()
        .map(|c| (c.kind.clone(), c.count.clone(), c.phases.clone()))
        .collect();
    assert_eq!(
        rows,
        [
            (
                "ConfigMap".into(),
                "2".into(),
                vec!["onCreate".into(), "onReconcile".into()]
            ),
            ("ReplicaSet".into(), "1".into(), vec!["onReconcile".into()]),
        ]
    );
}

#[tokio::test]
async fn a_degraded_entry_stands_out_on_the_dashboard_with_its_reason() {
    let state = example_state(&Config::new(vec![]), Some(5));
    let d = dashboard::page(&state.summary(), "1m5s");
    assert_eq!(d.degraded(), 1);
    let html = d.render().into_string();
    assert!(html.contains("1 of 1 CRDs degraded"), "{html}");
    assert!(html.contains(r#"<tr class="degraded" data-crd="data-job">"#));
    assert!(html.contains(r#"data-state="degraded""#));
    assert!(html.contains("replicas: must be &gt;= 0"));
    assert!(html.contains("<td class=\"num\">0/100</td>"), "queue column");
    let page = data_job_page(&state);
    assert_eq!(page.state, omjob_panel::State::Degraded);
    let health = page
        .endpoints
        .iter()
        .find(|e| e.path.ends_with("/health"))
        .unwrap();
    assert_eq!(
        (health.status.as_str(), health.ok),
        ("503 Service Unavailable", false)
    );
}

fn detail() -> CrDetail {
    let x = format!("{SCRIPT}{IMG}");
    CrDetail {
        name: "backfill-job".into(),
        namespace: "demo".into(),
        uid: "u".into(),
        gvk: "data.demo.orkestra.io/v1alpha1, Kind=DataJob".into(),
        labels: BTreeMap::from([("orkestra.orkspace.io/managed".into(), "true".into())]),
        annotations: BTreeMap::from([
            ("note".into(), x.clone()),
            (instances_last_applied(), "{\"spec\":{}}".into()),
        ]),
        finalizers: vec!["orkestra.orkspace.io/cleanup".into()],
        spec: json!({"image": "python:3.12-slim", "note": x}),
        status: json!({
            "phase": "Running",
            "parallelism": "3",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
                            "message": "all children applied", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }),
        children: vec![
            child("ConfigMap", "backfill-job-job", "onCreate", true),
            child("ReplicaSet", "backfill-job-worker", "onReconcile", false),
            child("Secret", "backfill-job-creds", "onCreate", true),
        ],
        children_error: String::new(),
        events: vec![EventView {
            kind: "Warning".into(),
            reason: "DataJobReconcileError".into(),
            message: "boom".into(),
            count: 3,
            first_timestamp: "2026-01-01T00:00:00Z".into(),
            last_timestamp: "2026-01-01T00:01:00Z".into(),
        }],
    }
}

fn instances_last_applied() -> String {
    "kubectl.kubernetes.io/last-applied-configuration".into()
}

fn child(kind: &str, name: &str, phase: &str, present: bool) -> ChildView {
    ChildView {
        kind: kind.into(),
        api_version: "v1".into(),
        name: name.into(),
        namespace: "demo".into(),
        phase: phase.into(),
        updated: phase == "onReconcile",
        present,
    }
}

fn op() -> Operator {
    Operator {
        name: "data-platform".into(),
        version: "0.1.0".into(),
    }
}

#[test]
fn an_instance_page_shows_children_with_presence_status_conditions_and_events() {
    let page = instances::page(&op(), "data-job", &detail());
    assert_eq!(page.kind, "DataJob");
    assert_eq!(page.status.as_ref().unwrap().label, "Ready");
    let children: Vec<(&str, &str, &str, bool)> = page
        .children
        .iter()
        .map(|c| (c.kind.as_str(), c.name.as_str(), c.phase.as_str(), c.present))
        .collect();
    assert_eq!(
        children,
        [
            ("ConfigMap", "backfill-job-job", "onCreate", true),
            ("ReplicaSet", "backfill-job-worker", "onReconcile", false),
            ("Secret", "backfill-job-creds", "onCreate", true),
        ]
    );
    assert_eq!(
        page.status_fields,
        [
            ("parallelism".to_owned(), "3".to_owned()),
            ("phase".to_owned(), "Running".to_owned())
        ]
    );
    assert_eq!(page.conditions[0].reason, "Reconciled");
    assert_eq!(page.events[0].message, "boom (×3)");
    assert!(
        page.metadata.iter().all(|(k, _)| !k.contains("last-applied")),
        "{:?}",
        page.metadata
    );
    let html = page.render().into_string();
    assert!(html.contains(r#"<span class="missing">missing</span>"#));
    assert!(html.contains("image: python:3.12-slim"), "the spec as YAML");
    assert!(!html.contains(SCRIPT) && !html.contains("<img"), "escaped");
    assert!(html.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"));
}

#[test]
fn a_child_list_that_could_not_be_rendered_is_said_plainly() {
    let mut cr = detail();
    cr.children.clear();
    cr.children_error = "template: no such key".into();
    let html = instances::page(&op(), "data-job", &cr).render().into_string();
    assert!(html.contains("The children could not be worked out: template: no such key"));
    assert!(!html.contains(r#"id="children""#));
}

#[test]
fn the_instance_list_shows_each_crs_ready_status() {
    let item = |name: &str, ready: &str, deleting: bool| CrSummary {
        name: name.into(),
        namespace: "demo".into(),
        ready: ready.into(),
        reason: if ready == "False" {
            "ReconcileError".into()
        } else {
            String::new()
        },
        message: if ready == "False" {
            "replicas".into()
        } else {
            String::new()
        },
        generation: 1,
        observed_generation: 1,
        created_at: "2026-01-01T00:00:00Z".into(),
        deleting,
    };
    let list = CrList {
        crd: "data-job".into(),
        gvk: "data.demo.orkestra.io/v1alpha1, Kind=DataJob".into(),
        total: 4,
        items: vec![
            item("a", "True", false),
            item("b", "False", false),
            item("c", "Unknown", false),
            item("d", "True", true),
        ],
    };
    let page = instances::list(&op(), "data-job", &list, &[]);
    let labels: Vec<&str> = page.instances.iter().map(|r| r.status.label.as_str()).collect();
    assert_eq!(labels, ["Ready", "Not ready", "Unknown", "Deleting"]);
    assert_eq!(page.instances[1].summary, "ReconcileError: replicas");
    assert_eq!(page.scope, "all namespaces");
    let html = page.render().into_string();
    assert!(html.contains(r#"href="/ui/crd/data-job/cr/demo/a""#));
}

async fn get(app: &axum::Router, method: &str, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn the_routes_are_read_only_carry_the_policy_and_answer_404_in_the_panel() {
    let app = router(example_state(&Config::new(vec![]), None));
    let (code, headers, body) = get(&app, "GET", "/ui/").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        security::CONTENT_SECURITY_POLICY
    );
    assert!(body.contains(r#"data-crd="data-job""#));
    let (code, _, body) = get(&app, "GET", "/ui/crd/data-job").await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.contains("<h1>data-job</h1>"));
    for path in [
        "/ui/crd/nope",
        "/ui/crd/nope/cr",
        "/ui/crd/data-job/cr/ns/missing",
        "/ui/elsewhere",
    ] {
        let (code, headers, body) = get(&app, "GET", path).await;
        // An unknown CR of a not-running entry: the list cannot be read here, so 503 is fine too.
        assert!(
            code == StatusCode::NOT_FOUND
                || (path.contains("/cr/") && code == StatusCode::SERVICE_UNAVAILABLE),
            "{path}: {code}"
        );
        assert!(body.contains(r#"id="error""#), "{path}: the panel's error page");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY), "{path}");
    }
    let (code, _, _) = get(&app, "POST", "/ui/crd/data-job").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, headers, _) = get(&app, "GET", assets::CSS_PATH).await;
    assert_eq!(code, StatusCode::OK);
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
}

#[test]
fn a_long_error_is_cut_in_the_badge_note_and_kept_whole_elsewhere() {
    let long = format!("failed to apply ReplicaSet: {}", "é".repeat(400));
    let (state, reason) = panel_state(HealthState::Degraded, &long);
    assert_eq!(state, omjob_panel::State::Degraded);
    let reason = reason.unwrap();
    assert_eq!(reason.chars().count(), REASON_CHARS + 1);
    assert!(reason.ends_with('…'));
    let (_, reason) = panel_state(HealthState::NotStarted, "");
    assert_eq!(reason.as_deref(), Some("not started"));
}
