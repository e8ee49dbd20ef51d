//! The Katalog runtime's control panel in a real browser: `katalog run` started in-process on the
//! testbed with the data-platform example, and headless Chromium opening its `/ui/` pages. Each
//! test checks what a person would see there: seed 004's sections with the running runtime's
//! values, a child deleted by hand and repaired, a CRD turning degraded on the dashboard through
//! the page's own live refresh, and hostile strings staying text. Screenshots go to
//! `target/screenshots/katalog_panel_browser/`.
//!
//! Several DataJob runtimes run at once here, one per test, each fenced to its test's namespace
//! (`allowedNamespaces` and `watch_allowed_only`, as shards of one CRD must be: watching
//! cluster-wide, each would mark the others' DataJobs `NamespaceNotAllowed`); the failing test
//! uses its own kind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Running, eventually_every};

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::apps::v1::ReplicaSet,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use katalog::runtime::{self, config::Config};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
};
use omjob_testbed::{
    browser::{Browser, ConsoleEntry},
    fixture::{self, TestNamespace},
};
use serde_json::{Value, json};

/// [`eventually_every`] 200 ms: a browser poll costs more than an API read.
async fn eventually_200ms<T, F, Fut>(what: &str, limit: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_every(what, limit, Duration::from_millis(200), probe).await
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/katalog");
const LIMIT: Duration = Duration::from_secs(60);
const SCREENSHOTS: &str = "katalog_panel_browser";
/// The panel's live-refresh period (`omjob_panel::layout::DEFAULT_REFRESH_SECONDS`).
const REFRESH: Duration = Duration::from_secs(omjob_panel::layout::DEFAULT_REFRESH_SECONDS as u64);
const SCRIPT_PAYLOAD: &str = "<script>window.__xss=1</script>";
const IMG_PAYLOAD: &str = "\"><img src=x onerror=window.__xss=2>";

/// A runtime serving the panel, with the files it was started from.
struct Panel {
    state: runtime::State,
    _running: Running,
    _dir: tempfile::TempDir,
}

impl Panel {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.state.http_addr().unwrap())
    }
}

/// The data-platform Katalog with `kind` for DataJob (`DataJob` itself keeps the entry
/// `data-job`), fenced to `ns`, in a temporary directory with its motif.
fn katalog(kind: &str, entry: &str, ns: &str) -> (tempfile::TempDir, PathBuf) {
    let lower = kind.to_lowercase();
    let text = std::fs::read_to_string(format!("{EXAMPLES}/data-platform.yaml"))
        .unwrap()
        .replace("DataJob", kind)
        .replace("datajobs", &format!("{lower}s"))
        .replace(
            "    data-job:\n",
            &format!("    {entry}:\n      allowedNamespaces: [{ns}]\n"),
        );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("motifs")).unwrap();
    std::fs::copy(
        format!("{EXAMPLES}/motifs/worker-pool.yaml"),
        dir.path().join("motifs/worker-pool.yaml"),
    )
    .unwrap();
    let path = dir.path().join("katalog.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// The DataJob CRD under `kind`.
fn crd(kind: &str) -> CustomResourceDefinition {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/datajob-crd.yaml"))
        .unwrap()
        .replace("DataJob", kind)
        .replace("datajob", &kind.to_lowercase());
    serde_yaml_ng::from_str(&text).unwrap()
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("data.demo.orkestra.io", "v1alpha1", kind),
        &format!("{}s", kind.to_lowercase()),
    )
}

/// Installs `kind`'s CRD and starts a runtime for it in `ns`, with `tune` applied to its config.
async fn start(ns: &TestNamespace, kind: &str, entry: &str, tune: impl FnOnce(&mut Config)) -> Panel {
    let client = ns.client();
    fixture::install_crds(&client, vec![crd(kind)], "katalog-tests").await;
    let (dir, file) = katalog(kind, entry, ns.name());
    let mut config = Config::new(vec![file]);
    config.listen = ([127, 0, 0, 1], 0).into();
    config.discovery_retry = Duration::from_millis(500);
    config.watch_allowed_only = true;
    tune(&mut config);
    let started = runtime::start(client, config, Arc::default()).await.unwrap();
    let state = started.state().clone();
    let running = Running(tokio::spawn(started.run(std::future::pending())));
    Panel {
        state,
        _running: running,
        _dir: dir,
    }
}

/// Creates a DataJob (of `kind`) named `name` from the sample, with `edit` applied.
async fn create(client: &Client, ns: &str, kind: &str, name: &str, edit: impl FnOnce(&mut Value)) {
    let mut cr: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{EXAMPLES}/datajob-sample.yaml")).unwrap())
            .unwrap();
    cr["kind"] = json!(kind);
    cr["metadata"] = json!({"name": name, "namespace": ns});
    edit(&mut cr);
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource(kind))
        .create(&PostParams::default(), &serde_json::from_value(cr).unwrap())
        .await
        .unwrap();
}

/// Waits until the runtime reports `name` Ready=True with both children cached.
async fn wait_settled(p: &Panel, ns: &str, name: &str) {
    eventually_200ms(&format!("{name} ready with its children"), LIMIT, || async {
        let cr = p.state.cr("data-job", Some(ns), name).await.ok()?;
        let ready = cr.status["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && cr.children.len() == 2 && cr.children.iter().all(|c| c.present)).then_some(())
    })
    .await;
}

/// Runs `script` with `args`; the page's live refresh may swap `<main>` at any moment, so each
/// read is one script (never a found element read later, which could be stale).
async fn find_text(b: &Browser, css: &str) -> Option<String> {
    b.text(css).await.unwrap()
}

async fn text(b: &Browser, css: &str) -> String {
    find_text(b, css)
        .await
        .unwrap_or_else(|| panic!("no element {css}"))
}

async fn count(b: &Browser, css: &str) -> usize {
    b.count(css).await.unwrap()
}

async fn attr(b: &Browser, css: &str, name: &str) -> Option<String> {
    b.attr(css, name).await.unwrap()
}

async fn eval_str(b: &Browser, script: &str) -> String {
    b.eval_string(script).await.unwrap()
}

fn errors(log: &[ConsoleEntry]) -> Vec<&ConsoleEntry> {
    ConsoleEntry::errors(log)
}

/// The rows of the table under `css` as cell texts.
async fn rows(b: &Browser, css: &str) -> Vec<Vec<String>> {
    let script = format!(
        "return [...document.querySelectorAll('{css} tbody tr')].map(r => [...r.cells].map(c => \
         c.querySelector('.word-list') \
           ? [...c.querySelectorAll('.word-list > span')].map(s => s.textContent).join(' ') \
           : c.innerText.replace(/\\s+/g, ' ').trim()));"
    );
    serde_json::from_value(b.eval(&script).await.unwrap()).unwrap()
}

/// Waits until the refresh script has swapped `<main>` at least once more (its status changes).
async fn next_refresh(b: &Browser) {
    let before = text(b, "#refresh-status").await;
    let deadline = Instant::now() + REFRESH * 3;
    loop {
        let now = text(b, "#refresh-status").await;
        if now != before && now.starts_with("live ·") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no live refresh within {:?}",
            REFRESH * 3
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_data_job_page_shows_seed_004_with_the_running_runtimes_values() {
    let ns = fixture::shared().namespace("katalog-panel").await;
    let client = ns.client();
    // Four workers from the environment: the page must say 4, not the built-in 3.
    let p = start(&ns, "DataJob", "data-job", |c| {
        c.defaults.workers.value = 4;
        c.defaults.workers.from_env = true;
    })
    .await;
    create(&client, ns.name(), "DataJob", "backfill-job", |_| {}).await;
    wait_settled(&p, ns.name(), "backfill-job").await;

    let b = Browser::start(SCREENSHOTS).await.unwrap();
    b.goto(&p.url("/ui/")).await.unwrap();
    assert_eq!(count(&b, "tr[data-crd]").await, 1);
    let row = r#"tr[data-crd="data-job"]"#;
    assert_eq!(
        attr(&b, &format!("{row} .state"), "data-state").await.as_deref(),
        Some("healthy")
    );
    let cells = rows(&b, "table.crds").await;
    assert_eq!(
        cells[0][..6],
        ["data-job", "DataJob", "healthy", "4", "0/100", "1"],
        "name, kind, state, workers, queue, resources"
    );
    assert_eq!(count(&b, "#degraded-alert").await, 0);
    b.screenshot("katalog-dashboard").await.unwrap();

    b.goto(&p.url("/ui/crd/data-job")).await.unwrap();
    let ids: Vec<String> = serde_json::from_value(
        b.eval(
            "return [...document.querySelectorAll('main > section, main > div.title-block')].map(e => e.id);",
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        ids,
        [
            "title",
            "overview",
            "reconcile-mode",
            "configuration",
            "child-resources",
            "kubectl-reference",
            "access-control",
            "endpoints"
        ],
        "seed 004's sections in order (no dependsOn: no Dependencies)"
    );
    // Title block.
    assert_eq!(text(&b, "#title h1").await, "data-job");
    assert_eq!(
        text(&b, "#title .description").await,
        "DataJob CRD, GVK: data.demo.orkestra.io/v1alpha1, Kind=DataJob"
    );
    assert_eq!(
        attr(&b, "#title .state", "data-state").await.as_deref(),
        Some("healthy")
    );
    assert_eq!(text(&b, "#title .state").await, "healthy");
    assert_eq!(text(&b, "#title .operator").await, "data-platform 0.1.0");
    let uptime = text(&b, "#title .uptime").await;
    let live_uptime = p.state.crd_health("data-job").unwrap().uptime;
    assert!(
        uptime.starts_with("uptime ") && uptime.ends_with('s'),
        "{uptime} (the runtime says {live_uptime})"
    );
    // Overview.
    let overview = text(&b, "#overview p").await;
    assert!(
        overview
            .starts_with("data-job is a custom resource managed by the data-platform operator running on")
            && overview.ends_with("Resources of this type are namespace-scoped."),
        "{overview}"
    );
    assert_eq!(
        rows(&b, "#overview table").await,
        [
            ["API Version", "data.demo.orkestra.io/v1alpha1"],
            ["Kind", "DataJob"],
            [
                "GVR (plural)",
                "data.demo.orkestra.io/v1alpha1, Resource=datajobs"
            ],
            ["Scope", "Namespaced"],
        ]
    );
    // Reconcile Mode.
    assert_eq!(
        attr(&b, "#reconcile-mode", "data-mode").await.as_deref(),
        Some("dynamic")
    );
    let mode = text(&b, "#reconcile-mode").await;
    assert!(
        mode.contains("{{ .spec.field }}") && mode.contains("Generic Reconciler"),
        "{mode}"
    );
    // Configuration: the effective values of this runtime.
    assert_eq!(text(&b, "#configuration strong.workers").await, "4");
    assert_eq!(text(&b, "#configuration strong.queue-depth").await, "100");
    assert_eq!(text(&b, "#configuration strong.resync").await, "15s");
    let configuration = text(&b, "#configuration").await;
    assert!(
        configuration.contains("maintains 4 workers")
            && configuration.contains("maximum depth of 100 events")
            && configuration.contains("every 15s")
            && configuration.contains("(from DEFAULT_WORKERS)"),
        "{configuration}"
    );
    assert_eq!(
        text(&b, r#"tr[data-setting="watchedNamespaces"] td.value"#).await,
        ns.name()
    );
    // Child Resources.
    assert_eq!(
        rows(&b, "#child-resources table.children").await,
        [["ConfigMap", "1", "onCreate"], ["ReplicaSet", "1", "onReconcile"]]
    );
    // kubectl Reference.
    let commands: Vec<String> = serde_json::from_value(
        b.eval("return [...document.querySelectorAll('#kubectl-reference pre.cmd')].map(e => e.innerText);")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        commands,
        [
            "kubectl get datajob -n <namespace>",
            "kubectl describe datajob <name> -n <namespace>",
            "kubectl get datajob <name> -n <namespace> -o yaml",
            "kubectl get datajob -n <namespace> -w",
            "kubectl delete datajob <name> -n <namespace>",
            "kubectl get datajob -l orkestra.orkspace.io/managed=true -n <namespace>",
        ]
    );
    // Access Control: the summary string and the rules (ours lists replicasets, §13.5).
    assert_eq!(
        text(&b, "#access-control .summary").await,
        "1 configmaps, 1 datajobs, 1 datajobs/status, 1 replicasets"
    );
    let all = "get list watch create update patch delete";
    assert_eq!(
        rows(&b, "#access-control table.rbac").await,
        [
            ["data.demo.orkestra.io", "datajobs", all],
            ["data.demo.orkestra.io", "datajobs/status", "get update patch"],
            ["core", "configmaps", all],
            ["apps", "replicasets", all],
        ]
    );
    // Endpoints, with what they answer now.
    assert_eq!(
        rows(&b, "#endpoints table").await,
        [
            ["/katalog/data-job", "200 OK"],
            ["/katalog/data-job/health", "200 OK"],
            ["/katalog/data-job/cr", "200 OK"],
        ]
    );
    b.screenshot("katalog-crd").await.unwrap();

    b.goto(&p.url("/ui/crd/data-job/cr")).await.unwrap();
    assert_eq!(count(&b, "table.instances tbody tr").await, 1);
    assert_eq!(text(&b, r#"tr[data-name="backfill-job"] .badge"#).await, "Ready");
    b.screenshot("katalog-instances").await.unwrap();

    b.goto(&p.url("/ui/crd/nope")).await.unwrap();
    assert!(text(&b, "#error").await.contains("nope"));
    // The 404 above is the only console error chromium logs (a failed navigation).
    let log = b.console_log().await.unwrap();
    let unexpected: Vec<_> = errors(&log)
        .into_iter()
        .filter(|e| !e.message.contains("/ui/crd/nope"))
        .collect();
    assert_eq!(unexpected, Vec::<&ConsoleEntry>::new(), "{log:?}");
    b.close().await;
}

#[tokio::test]
async fn an_instance_page_shows_a_replicaset_deleted_by_hand_as_missing_then_present_after_the_repair() {
    let ns = fixture::shared().namespace("katalog-panel-repair").await;
    let client = ns.client();
    let p = start(&ns, "DataJob", "data-job", |_| {}).await;
    create(&client, ns.name(), "DataJob", "backfill-job", |_| {}).await;
    wait_settled(&p, ns.name(), "backfill-job").await;

    let b = Browser::start(SCREENSHOTS).await.unwrap();
    b.goto(&p.url(&format!("/ui/crd/data-job/cr/{}/backfill-job", ns.name())))
        .await
        .unwrap();
    assert_eq!(
        rows(&b, "#children table").await,
        [
            ["ConfigMap", "backfill-job-job", "onCreate", "present"],
            ["ReplicaSet", "backfill-job-worker", "onReconcile", "present"],
        ]
    );
    assert_eq!(text(&b, "#phase").await, "Ready");
    let status = text(&b, "#status").await;
    assert!(
        status.contains("Running") && status.contains("ReconcileSucceeded"),
        "{status}"
    );
    let spec = text(&b, "#spec").await;
    assert!(spec.contains("image: python:3.12-slim"), "{spec}");
    b.screenshot("katalog-instance").await.unwrap();

    // The runtime repairs a deleted child within milliseconds, faster than any page refresh.
    // So that the page can be seen showing it missing, the DataJob is first broken: with
    // `parallelism: "-1"` the API server refuses the ReplicaSet, so the deleted one stays gone
    // until the spec is fixed.
    let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &resource("DataJob"));
    let set_parallelism = |value: &'static str| {
        let jobs = jobs.clone();
        async move {
            jobs.patch(
                "backfill-job",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"parallelism": value}})),
            )
            .await
            .unwrap();
        }
    };
    let ready_is = |want: &'static str| {
        let jobs = jobs.clone();
        async move {
            let cr = jobs.get("backfill-job").await.unwrap();
            (cr.data["status"]["conditions"][0]["status"] == want).then_some(())
        }
    };
    set_parallelism("-1").await;
    eventually_200ms("the broken DataJob Ready=False", LIMIT, || ready_is("False")).await;
    let replica_sets: Api<ReplicaSet> = ns.api();
    let old = replica_sets
        .get("backfill-job-worker")
        .await
        .unwrap()
        .metadata
        .uid;
    replica_sets
        .delete("backfill-job-worker", &DeleteParams::default())
        .await
        .unwrap();
    let replica_set = r#"tr[data-child="backfill-job-worker"] td:last-child"#;
    // The page's own live refresh shows it missing.
    eventually_200ms("the page showing the ReplicaSet missing", LIMIT, || async {
        (find_text(&b, replica_set).await.as_deref() == Some("missing")).then_some(())
    })
    .await;
    b.screenshot("katalog-instance-missing").await.unwrap();

    set_parallelism("3").await;
    eventually_200ms("the ReplicaSet recreated", LIMIT, || async {
        replica_sets
            .get_opt("backfill-job-worker")
            .await
            .unwrap()
            .filter(|rs| rs.metadata.uid != old && rs.metadata.deletion_timestamp.is_none())
    })
    .await;
    eventually_200ms("the page showing the ReplicaSet present again", LIMIT, || async {
        (find_text(&b, replica_set).await.as_deref() == Some("present")).then_some(())
    })
    .await;
    eventually_200ms("the repaired DataJob Ready=True", LIMIT, || ready_is("True")).await;
    assert_eq!(
        text(&b, r#"tr[data-child="backfill-job-job"] td:last-child"#).await,
        "present"
    );
    assert_eq!(
        errors(&b.console_log().await.unwrap()),
        Vec::<&ConsoleEntry>::new()
    );
    b.close().await;
}

#[tokio::test]
async fn a_failing_crd_turns_the_dashboard_badge_degraded_within_one_live_refresh() {
    let ns = fixture::shared().namespace("katalog-panel-degrade").await;
    let client = ns.client();
    // Its own kind, so no other runtime ever sees the broken CR.
    let p = start(&ns, "PanelFailJob", "panel-fail-job", |c| {
        c.defaults.failure_threshold.value = 2;
    })
    .await;
    let b = Browser::start(SCREENSHOTS).await.unwrap();
    b.goto(&p.url("/ui/")).await.unwrap();
    let badge = r#"tr[data-crd="panel-fail-job"] .state"#;
    assert_ne!(attr(&b, badge, "data-state").await.as_deref(), Some("degraded"));
    assert_eq!(count(&b, "#degraded-alert").await, 0);

    // Negative replicas: the template renders, the API server rejects the ReplicaSet.
    create(&client, ns.name(), "PanelFailJob", "broken", |cr| {
        cr["spec"]["parallelism"] = json!("-1");
    })
    .await;
    eventually_200ms("the runtime reports degraded", LIMIT, || async {
        let h = p.state.crd_health("panel-fail-job")?;
        (h.state == runtime::health::State::Degraded).then_some(())
    })
    .await;
    // The page is not reloaded: its own refresh must bring the badge within one period (plus
    // the fetch, and a second period in case the first fetch had just left).
    let within = REFRESH * 2 + Duration::from_secs(2);
    let deadline = Instant::now() + within;
    while attr(&b, badge, "data-state").await.as_deref() != Some("degraded") {
        assert!(
            Instant::now() < deadline,
            "the badge did not turn degraded within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(text(&b, badge).await, "degraded");
    assert!(
        text(&b, "#degraded-alert").await.contains("1 of 1 CRDs degraded"),
        "the banner"
    );
    assert_eq!(
        attr(&b, r#"tr[data-crd="panel-fail-job"]"#, "class")
            .await
            .as_deref(),
        Some("degraded")
    );
    let row = text(&b, r#"tr[data-crd="panel-fail-job"]"#).await;
    assert!(row.contains("replicas"), "the reason is shown: {row}");
    b.screenshot("katalog-dashboard-degraded").await.unwrap();
    // The refresh accepts the dashboard's 503 and keeps going; nothing else is logged.
    let log = b.console_log().await.unwrap();
    let unexpected: Vec<_> = errors(&log)
        .into_iter()
        .filter(|e| !e.message.contains("503"))
        .collect();
    assert_eq!(unexpected, Vec::<&ConsoleEntry>::new(), "{log:?}");
    b.close().await;
}

#[tokio::test]
async fn hostile_strings_in_a_data_job_render_as_text_and_run_no_script() {
    let ns = fixture::shared().namespace("katalog-panel-xss").await;
    let client = ns.client();
    let p = start(&ns, "DataJob", "data-job", |_| {}).await;
    create(&client, ns.name(), "DataJob", "xss-job", |cr| {
        cr["metadata"]["annotations"] = json!({"note": SCRIPT_PAYLOAD, "owner": IMG_PAYLOAD});
        cr["spec"]["note"] = json!(SCRIPT_PAYLOAD);
        cr["spec"]["timeout"] = json!(IMG_PAYLOAD);
    })
    .await;
    wait_settled(&p, ns.name(), "xss-job").await;

    let b = Browser::start(SCREENSHOTS).await.unwrap();
    for path in [
        format!("/ui/crd/data-job/cr/{}/xss-job", ns.name()),
        "/ui/crd/data-job/cr".to_owned(),
    ] {
        b.goto(&p.url(&path)).await.unwrap();
        assert_eq!(
            eval_str(&b, "return typeof window.__xss;").await,
            "undefined",
            "{path}"
        );
        assert_eq!(count(&b, "img").await, 0, "{path}: no element from the payload");
        assert_eq!(
            count(&b, "script").await,
            1,
            "{path}: only the panel's own script"
        );
    }
    b.goto(&p.url(&format!("/ui/crd/data-job/cr/{}/xss-job", ns.name())))
        .await
        .unwrap();
    let title = b.client().title().await.unwrap();
    assert_eq!(title, "xss-job · data-platform");
    assert_eq!(
        attr(&b, "script", "src").await.as_deref(),
        Some("/ui/static/panel.js")
    );
    let metadata = text(&b, "#metadata").await;
    assert!(
        metadata.contains(SCRIPT_PAYLOAD) && metadata.contains(IMG_PAYLOAD),
        "the strings are visible as text: {metadata}"
    );
    let spec = text(&b, "#spec").await;
    assert!(
        spec.contains("window.__xss=1") && spec.contains("onerror=window.__xss=2"),
        "{spec}"
    );
    // The panel's own script runs under the policy, and a refreshed <main> runs nothing either.
    next_refresh(&b).await;
    assert_eq!(b.client().title().await.unwrap(), title);
    assert_eq!(eval_str(&b, "return typeof window.__xss;").await, "undefined");
    assert_eq!(count(&b, "img").await, 0);
    b.screenshot("katalog-xss").await.unwrap();
    let log = b.console_log().await.unwrap();
    assert_eq!(errors(&log), Vec::<&ConsoleEntry>::new(), "{log:?}");
    b.close().await;
}
