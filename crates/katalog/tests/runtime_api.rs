//! `katalog run` on the testbed, beyond the happy path of `runtime.rs`: the HTTP API's JSON
//! against a live runtime, health moving to degraded and back, steady state without writes,
//! drift, bad inputs (namespaces, rejected objects, a missing CRD), the queue depth limit, a
//! restart, and leader election between two in-process runtimes.
//!
//! Runtimes watch cluster-wide, so each test uses its own copy of the DataJob CRD under another
//! kind; only the HTTP test uses DataJob itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Running, eventually};

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        core::v1::{ConfigMap, Event},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use katalog::runtime::{
    self, Stats,
    config::{Config, LeaseTimings},
    metrics::Outcome,
    state::Role,
};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
};
use omjob_testbed::fixture::{self, TestNamespace};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/katalog");
const LIMIT: Duration = Duration::from_secs(45);
/// Verbs that change something on the API server.
const WRITES: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// The example DataJob Katalog and CRD under `kind` (`SteadyJob`, entry `steady-job`).
struct Variant {
    kind: String,
    entry: String,
    resource: ApiResource,
    crd: CustomResourceDefinition,
    dir: tempfile::TempDir,
}

impl Variant {
    /// `kind`'s copy, with `extra` YAML lines (indented for the entry) added to the entry.
    fn new(kind: &str, extra: &str) -> Self {
        let lower = kind.to_lowercase();
        let entry = {
            let mut s = String::new();
            for (i, c) in kind.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    s.push('-');
                }
                s.push(c.to_ascii_lowercase());
            }
            s
        };
        let crd_text = std::fs::read_to_string(format!("{EXAMPLES}/datajob-crd.yaml"))
            .unwrap()
            .replace("DataJob", kind)
            .replace("datajob", &lower);
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&crd_text).unwrap();
        let katalog = std::fs::read_to_string(format!("{EXAMPLES}/data-platform.yaml"))
            .unwrap()
            .replace("DataJob", kind)
            .replace("datajobs", &format!("{lower}s"))
            .replace("    data-job:\n", &format!("    {entry}:\n{extra}"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("motifs")).unwrap();
        std::fs::copy(
            format!("{EXAMPLES}/motifs/worker-pool.yaml"),
            dir.path().join("motifs/worker-pool.yaml"),
        )
        .unwrap();
        std::fs::write(dir.path().join("katalog.yaml"), katalog).unwrap();
        Self {
            resource: ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("data.demo.orkestra.io", "v1alpha1", kind),
                &format!("{lower}s"),
            ),
            kind: kind.to_owned(),
            entry,
            crd,
            dir,
        }
    }

    fn katalog(&self) -> PathBuf {
        self.dir.path().join("katalog.yaml")
    }

    fn gvk(&self) -> String {
        format!("data.demo.orkestra.io/v1alpha1, Kind={}", self.kind)
    }

    async fn install(&self, client: &Client) {
        fixture::install_crds(client, vec![self.crd.clone()], "katalog-tests").await;
    }

    fn config(&self) -> Config {
        local(vec![self.katalog()])
    }

    fn api(&self, client: &Client, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), ns, &self.resource)
    }

    async fn create(&self, client: &Client, ns: &str, name: &str, parallelism: &str) -> DynamicObject {
        let cr: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "data.demo.orkestra.io/v1alpha1", "kind": self.kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": {"image": "python:3.12-slim", "parallelism": parallelism, "timeout": "2h"}
        }))
        .unwrap();
        self.api(client, ns)
            .create(&PostParams::default(), &cr)
            .await
            .unwrap()
    }
}

/// Defaults for `katalogs`, the HTTP API on a free local port.
fn local(katalogs: Vec<PathBuf>) -> Config {
    let mut config = Config::new(katalogs);
    config.listen = ([127, 0, 0, 1], 0).into();
    config.discovery_retry = Duration::from_millis(500);
    config
}

/// Starts a runtime in-process; returns its state handle and the guard that aborts it.
async fn start(client: &Client, config: Config, stats: Arc<Stats>) -> (runtime::State, Running) {
    let started = runtime::start(client.clone(), config, stats).await.unwrap();
    let state = started.state().clone();
    let task = tokio::spawn(started.run(std::future::pending()));
    (state, Running(task))
}

/// `GET path` on the runtime's HTTP API: the status code and the body (JSON when it parses).
async fn get(state: &runtime::State, path: &str) -> (u16, Value) {
    let addr = state.http_addr().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (code, body)
}

fn ready_status(cr: &DynamicObject) -> Value {
    cr.data["status"]["conditions"][0]["status"].clone()
}

async fn wait_ready(api: &Api<DynamicObject>, name: &str, status: &str) -> DynamicObject {
    eventually(&format!("{name} Ready={status}"), LIMIT, || async {
        let o = api.get(name).await.unwrap();
        (ready_status(&o) == status).then_some(o)
    })
    .await
}

async fn reasons(ns: &TestNamespace, name: &str) -> Vec<(String, String)> {
    ns.api::<Event>()
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

fn writes(state: &runtime::State) -> u64 {
    WRITES.iter().map(|v| state.metrics().api_requests_with(v)).sum()
}

fn assert_keys(value: &Value, keys: &[&str], what: &str) {
    for k in keys {
        assert!(value.get(k).is_some(), "{what}: no {k:?} in {value:#}");
    }
}

#[tokio::test]
async fn the_http_api_answers_with_orkestras_json_for_a_live_data_job() {
    let ns = fixture::shared().namespace("katalog-http").await;
    let client = ns.client();
    let crd: CustomResourceDefinition =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{EXAMPLES}/datajob-crd.yaml")).unwrap())
            .unwrap();
    fixture::install_crds(&client, vec![crd], "katalog-tests").await;
    let (state, _running) = start(
        &client,
        local(vec![Path::new(EXAMPLES).join("data-platform.yaml")]),
        Arc::default(),
    )
    .await;

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("data.demo.orkestra.io", "v1alpha1", "DataJob"),
        "datajobs",
    );
    let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &resource);
    let mut sample: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{EXAMPLES}/datajob-sample.yaml")).unwrap())
            .unwrap();
    sample["metadata"] = json!({"name": "backfill-job", "namespace": ns.name()});
    jobs.create(&PostParams::default(), &serde_json::from_value(sample).unwrap())
        .await
        .unwrap();
    wait_ready(&jobs, "backfill-job", "True").await;
    let rs: Api<ReplicaSet> = ns.api();
    eventually("the ReplicaSet cached", LIMIT, || async {
        let (_, cr) = get(
            &state,
            &format!("/katalog/data-job/cr/{}/backfill-job", ns.name()),
        )
        .await;
        let children = cr["children"].as_array().cloned().unwrap_or_default();
        (children.len() == 2 && children.iter().all(|c| c["present"] == true)).then_some(())
    })
    .await;
    assert!(rs.get_opt("backfill-job-worker").await.unwrap().is_some());

    let (code, summary) = get(&state, "/katalog").await;
    println!(
        "GET /katalog -> {code}\n{}",
        serde_json::to_string_pretty(&summary).unwrap()
    );
    assert_eq!(code, 200);
    assert_keys(
        &summary,
        &[
            "crds",
            "total",
            "totalEnabled",
            "OrkReady",
            "deletionProtection",
            "healthy",
            "status",
            "degradedReason",
            "statusCounts",
            "name",
            "version",
            "author",
            "description",
            "license",
        ],
        "/katalog",
    );
    assert_eq!(summary["name"], "data-platform");
    assert_eq!(summary["version"], "0.1.0");
    assert_eq!(summary["OrkReady"], true);
    assert_eq!(summary["statusCounts"]["healthy"], 1);
    let crd = &summary["crds"][0];
    assert_keys(
        crd,
        &[
            "name",
            "description",
            "mode",
            "gvk",
            "gvr",
            "namespaced",
            "namespace",
            "dependsOn",
            "hasUnhealthyDependencies",
            "workers",
            "workersSource",
            "workersActive",
            "resync",
            "resyncSource",
            "queueDepth",
            "maxQueueDepth",
            "maxQueueDepthSource",
            "resourceCount",
            "reconciler",
            "healthy",
            "state",
            "started",
            "pending",
            "startedAt",
            "uptime",
            "errorRate",
            "endpoints",
            "rbacCount",
            "deletionProtection",
        ],
        "/katalog crds[0]",
    );
    assert_eq!(crd["gvk"], "data.demo.orkestra.io/v1alpha1, Kind=DataJob");
    assert_eq!(crd["gvr"], "data.demo.orkestra.io/v1alpha1, Resource=datajobs");
    assert_eq!(crd["resync"], "15s");
    assert_eq!(crd["workersSource"], "default");
    assert_eq!(crd["state"], "healthy");
    assert_eq!(crd["resourceCount"], 1);
    assert_eq!(crd["endpoints"]["health"], "/katalog/data-job/health");

    let (code, info) = get(&state, "/katalog/data-job").await;
    println!(
        "GET /katalog/data-job -> {code}\n{}",
        serde_json::to_string_pretty(&info).unwrap()
    );
    assert_eq!(code, 200);
    assert_keys(
        &info,
        &[
            "name",
            "description",
            "mode",
            "gvk",
            "gvr",
            "namespaced",
            "namespace",
            "dependsOn",
            "workers",
            "workersActive",
            "workersIdle",
            "workersProcessing",
            "workerDetails",
            "workersSource",
            "resync",
            "resyncSource",
            "queueDepth",
            "maxQueueDepth",
            "maxQueueDepthSource",
            "resourceCount",
            "totalReconciles",
            "reconciler",
            "healthy",
            "started",
            "pending",
            "errorRate",
            "rbac",
        ],
        "/katalog/data-job",
    );
    assert_eq!(info["reconciler"]["type"], "generic");
    assert_eq!(info["reconciler"]["templates"]["onCreate"]["configMaps"], 1);
    assert_eq!(info["reconciler"]["templates"]["onReconcile"]["replicaSets"], 1);
    assert_eq!(
        info["rbac"]["summary"],
        "1 configmaps, 1 datajobs, 1 datajobs/status, 1 replicasets"
    );
    assert_eq!(info["rbac"]["totalRules"], 4);
    assert_eq!(info["workerDetails"].as_array().unwrap().len(), 3);
    assert_eq!(info["maxQueueDepth"], 100);

    let (code, health) = get(&state, "/katalog/data-job/health").await;
    assert_eq!(code, 200);
    assert_keys(
        &health,
        &[
            "name",
            "state",
            "healthy",
            "started",
            "pending",
            "startedAt",
            "uptime",
            "queueDepth",
            "errorRate",
            "consecutiveFails",
            "totalReconciles",
            "resourceCount",
            "lastError",
            "lastReconcile",
            "hasUnhealthyDependencies",
            "dependencies",
            "missing",
        ],
        "/katalog/data-job/health",
    );
    assert_eq!(health["state"], "healthy");

    let (code, list) = get(&state, "/katalog/data-job/cr").await;
    assert_eq!(code, 200);
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["name"], "backfill-job");
    assert_eq!(list["items"][0]["ready"], "True");

    let (code, cr) = get(
        &state,
        &format!("/katalog/data-job/cr/{}/backfill-job", ns.name()),
    )
    .await;
    println!(
        "GET /katalog/data-job/cr/{}/backfill-job -> {code}\n{}",
        ns.name(),
        serde_json::to_string_pretty(&cr).unwrap()
    );
    assert_eq!(code, 200);
    assert_eq!(cr["spec"]["parallelism"], "3");
    assert_eq!(cr["status"]["phase"], "Running");
    let children = cr["children"].as_array().unwrap();
    let cm = children.iter().find(|c| c["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["name"], "backfill-job-job");
    assert_eq!(cm["phase"], "onCreate");
    assert_eq!(cm["present"], true);
    assert!(cm.get("data").is_none());
    let rs = children.iter().find(|c| c["kind"] == "ReplicaSet").unwrap();
    assert_eq!(rs["phase"], "onReconcile");
    assert_eq!(rs["apiVersion"], "apps/v1");
    assert!(
        cr["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "DataJobReconciled"),
        "{:#}",
        cr["events"]
    );

    let (code, raw) = get(&state, "/katalog/raw").await;
    assert_eq!(code, 200);
    assert_eq!(raw["metadata"]["name"], "data-platform");
    let (code, raw) = get(&state, "/katalog/data-job/raw").await;
    assert_eq!(code, 200);
    assert_eq!(raw["apiTypes"]["kind"], "DataJob");

    let (code, text) = get(&state, "/metrics").await;
    assert_eq!(code, 200);
    let text = text.as_str().unwrap();
    for name in [
        "controller_reconcile_total{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\",result=\"success\"}",
        "controller_reconcile_duration_seconds_bucket",
        "controller_queue_depth{crd=",
        "controller_resource_count{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\"} 1",
        "controller_workers_total{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\"} 3",
        "controller_workers_idle{crd=",
        "controller_workers_processing{crd=",
        "controller_crd_activation_total{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\",result=\"success\"} 1",
        "controller_crd_activation_latency_seconds",
        "katalog_api_requests_total{verb=\"patch\",resource=\"datajobs/status\"}",
        "katalog_child_applies_total{crd=",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }

    for probe in ["/health", "/ready", "/startup"] {
        let (code, body) = get(&state, probe).await;
        assert_eq!(code, 200, "{probe}");
        assert_keys(&body, &["status", "service", "uptime", "started"], probe);
    }
    let (code, body) = get(&state, "/katalog/no-such-entry").await;
    assert_eq!(code, 404);
    assert!(
        body["error"].as_str().unwrap().contains("no-such-entry"),
        "{body}"
    );
    let (code, _) = get(&state, "/katalog/no-such-entry/health").await;
    assert_eq!(code, 404);
    let (code, body) = get(&state, &format!("/katalog/data-job/cr/{}/nobody", ns.name())).await;
    assert_eq!(code, 404, "{body}");
}

#[tokio::test]
async fn a_steady_state_sends_no_writes_and_drift_of_each_child_is_handled() {
    let ns = fixture::shared().namespace("katalog-steady").await;
    let client = ns.client();
    let v = Variant::new("SteadyJob", "");
    v.install(&client).await;
    let mut config = v.config();
    config.defaults.resync.value = Duration::from_secs(1);
    let (state, _running) = start(&client, config, Arc::default()).await;
    let jobs = v.api(&client, ns.name());
    v.create(&client, ns.name(), "calm", "2").await;
    wait_ready(&jobs, "calm", "True").await;
    let config_maps: Api<ConfigMap> = ns.api();
    let replica_sets: Api<ReplicaSet> = ns.api();
    eventually("the children", LIMIT, || async {
        (config_maps.get_opt("calm-job").await.unwrap().is_some()
            && replica_sets.get_opt("calm-worker").await.unwrap().is_some())
        .then_some(())
    })
    .await;

    // Let the first passes settle (the status write wakes the CR once more), then count.
    let gvk = v.gvk();
    let passes = |n: u64| {
        let state = state.clone();
        let gvk = gvk.clone();
        async move {
            let start = state.metrics().reconciles(&gvk, Outcome::Success);
            eventually(&format!("{n} more passes"), LIMIT, || async {
                (state.metrics().reconciles(&gvk, Outcome::Success) >= start + n).then_some(())
            })
            .await;
        }
    };
    passes(2).await;
    let before = writes(&state);
    passes(4).await;
    assert_eq!(writes(&state), before, "a steady pass wrote to the API server");

    // The onReconcile ReplicaSet edited by hand is put back.
    replica_sets
        .patch(
            "calm-worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    eventually("the ReplicaSet repaired", LIMIT, || async {
        let rs = replica_sets.get("calm-worker").await.unwrap();
        (rs.spec.and_then(|s| s.replicas) == Some(2)).then_some(())
    })
    .await;
    // The onCreate ConfigMap edited by hand stays edited.
    config_maps
        .patch(
            "calm-job",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"TIMEOUT": "edited"}})),
        )
        .await
        .unwrap();
    passes(3).await;
    let cm = config_maps.get("calm-job").await.unwrap();
    assert_eq!(cm.data.unwrap_or_default()["TIMEOUT"], "edited");
    // Either child deleted comes back.
    for (what, deleted) in [
        (
            "ConfigMap",
            config_maps
                .delete("calm-job", &DeleteParams::default())
                .await
                .is_ok(),
        ),
        (
            "ReplicaSet",
            replica_sets
                .delete("calm-worker", &DeleteParams::background())
                .await
                .is_ok(),
        ),
    ] {
        assert!(deleted, "{what} delete");
    }
    eventually("both children recreated", LIMIT, || async {
        let cm = config_maps.get_opt("calm-job").await.unwrap();
        let rs = replica_sets.get_opt("calm-worker").await.unwrap();
        (cm.is_some_and(|c| c.data.unwrap_or_default()["TIMEOUT"] == "2h")
            && rs.is_some_and(|r| r.metadata.deletion_timestamp.is_none()))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn failures_degrade_the_entry_and_a_fix_makes_it_healthy_while_other_crs_go_on() {
    let ns = fixture::shared().namespace("katalog-degrade").await;
    let client = ns.client();
    let v = Variant::new("RejectJob", "");
    v.install(&client).await;
    let mut config = v.config();
    config.defaults.failure_threshold.value = 2;
    let (state, _running) = start(&client, config, Arc::default()).await;
    let jobs = v.api(&client, ns.name());
    let entry = v.entry.clone();

    // Failures are counted per entry, as Orkestra does: a healthy CR's pass in between resets
    // the count, so the failing CR comes first.
    // Negative replicas: rendered fine, rejected by the API server.
    v.create(&client, ns.name(), "broken", "-1").await;
    let cr = wait_ready(&jobs, "broken", "False").await;
    let ready = &cr.data["status"]["conditions"][0];
    assert_eq!(ready["reason"], "ReconcileError");
    assert!(ready["message"].as_str().unwrap().contains("replicas"), "{ready}");
    let events = eventually("the ReconcileError event", LIMIT, || async {
        let r = reasons(&ns, "broken").await;
        r.iter()
            .any(|(reason, _)| reason == "RejectJobReconcileError")
            .then_some(r)
    })
    .await;
    assert!(events.iter().any(|(_, m)| m.contains("broken")), "{events:?}");

    let (code, h) = eventually("degraded", LIMIT, || async {
        let (code, h) = get(&state, &format!("/katalog/{entry}/health")).await;
        (h["state"] == "degraded").then_some((code, h))
    })
    .await;
    assert_eq!(code, 503);
    assert!(h["consecutiveFails"].as_u64().unwrap() >= 2, "{h}");
    assert!(h["lastError"].as_str().unwrap().contains("replicas"), "{h}");
    let (code, summary) = get(&state, "/katalog").await;
    assert_eq!(code, 503);
    assert_eq!(summary["status"], "degraded");
    assert_eq!(summary["degradedReason"], "1 degraded");

    // Other CRs go on: a new one gets its children while the broken one fails.
    v.create(&client, ns.name(), "also-fine", "1").await;
    let config_maps: Api<ConfigMap> = ns.api();
    eventually("also-fine's ConfigMap", LIMIT, || async {
        config_maps.get_opt("also-fine-job").await.unwrap()
    })
    .await;

    // Fixing the spec brings the entry back.
    jobs.patch(
        "broken",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"parallelism": "1"}})),
    )
    .await
    .unwrap();
    wait_ready(&jobs, "broken", "True").await;
    eventually("healthy again", LIMIT, || async {
        let (code, h) = get(&state, &format!("/katalog/{entry}/health")).await;
        (code == 200 && h["state"] == "healthy").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_cr_in_a_restricted_namespace_gets_a_warning_and_no_children() {
    fenced_out(
        "FenceJob",
        "katalog-ns",
        |_, fenced| format!("      restrictedNamespaces: [{fenced}]\n"),
        "restrictedNamespaces",
    )
    .await;
}

#[tokio::test]
async fn a_cr_outside_the_allowed_namespaces_gets_a_warning_and_no_children() {
    fenced_out(
        "AllowJob",
        "katalog-allow",
        |allowed, _| format!("      allowedNamespaces: [{allowed}]\n"),
        "allowedNamespaces",
    )
    .await;
}

/// A CR in the namespace the entry's `rule` (given the allowed and the fenced namespace) shuts
/// out gets Ready=False and a `NamespaceNotAllowed` event naming the namespace and the rule, and
/// neither children nor finalizers; a CR next door is reconciled.
async fn fenced_out(kind: &str, prefix: &str, rule: impl Fn(&str, &str) -> String, rule_name: &str) {
    let allowed = fixture::shared().namespace(&format!("{prefix}-ok")).await;
    let fenced = fixture::shared().namespace(&format!("{prefix}-no")).await;
    let client = allowed.client();
    let v = Variant::new(kind, &rule(allowed.name(), fenced.name()));
    v.install(&client).await;
    let (_state, _running) = start(&client, v.config(), Arc::default()).await;

    v.create(&client, fenced.name(), "outside", "1").await;
    v.create(&client, allowed.name(), "inside", "1").await;
    wait_ready(&v.api(&client, allowed.name()), "inside", "True").await;
    let cr = wait_ready(&v.api(&client, fenced.name()), "outside", "False").await;
    let ready = &cr.data["status"]["conditions"][0];
    assert_eq!(ready["reason"], "NamespaceNotAllowed");
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains(fenced.name()), "{message}");
    let events = eventually("the NamespaceNotAllowed event", LIMIT, || async {
        let r = reasons(&fenced, "outside").await;
        r.into_iter().find(|(reason, _)| reason == "NamespaceNotAllowed")
    })
    .await;
    assert!(events.1.contains(rule_name), "{events:?}");
    let config_maps: Api<ConfigMap> = fenced.api();
    let replica_sets: Api<ReplicaSet> = fenced.api();
    assert!(config_maps.get_opt("outside-job").await.unwrap().is_none());
    assert!(replica_sets.get_opt("outside-worker").await.unwrap().is_none());
    assert!(
        cr.metadata.finalizers.unwrap_or_default().is_empty(),
        "a refused CR got finalizers"
    );
}

#[tokio::test]
async fn with_watch_allowed_only_an_entry_listing_plain_allowed_namespaces_watches_only_those() {
    let allowed = fixture::shared().namespace("katalog-watch-ok").await;
    let other = fixture::shared().namespace("katalog-watch-no").await;
    let client = allowed.client();
    let v = Variant::new(
        "WatchJob",
        &format!("      allowedNamespaces: [{}]\n", allowed.name()),
    );
    v.install(&client).await;
    let mut config = v.config();
    config.watch_allowed_only = true;
    let (state, _running) = start(&client, config, Arc::default()).await;
    let info = state.crd_info(&v.entry).unwrap();
    assert_eq!(info.watched_namespaces, vec![allowed.name().to_owned()]);

    v.create(&client, other.name(), "unseen", "1").await;
    v.create(&client, allowed.name(), "seen", "1").await;
    wait_ready(&v.api(&client, allowed.name()), "seen", "True").await;
    // The other namespace is not watched: its CR is never touched.
    let list = state.crs(&v.entry).await.unwrap();
    assert_eq!(list.total, 1, "{list:?}");
    let unseen = v.api(&client, other.name()).get("unseen").await.unwrap();
    assert!(unseen.data.get("status").is_none(), "{unseen:?}");
}

#[tokio::test]
async fn an_entry_whose_crd_is_missing_waits_and_starts_when_it_is_installed() {
    let ns = fixture::shared().namespace("katalog-late").await;
    let client = ns.client();
    let present = Variant::new("PresentJob", "");
    let late = Variant::new("LateJob", "");
    present.install(&client).await;
    // One Katalog file per entry: two files, as KATALOG_PATH may list them.
    let (state, _running) = start(
        &client,
        local(vec![present.katalog(), late.katalog()]),
        Arc::default(),
    )
    .await;

    let health = eventually("the late entry reported", LIMIT, || async {
        let (code, h) = get(&state, &format!("/katalog/{}/health", late.entry)).await;
        (h["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("not installed")))
        .then_some((code, h))
    })
    .await;
    assert_eq!(health.0, 503);
    assert_eq!(health.1["state"], "not started");
    assert!(
        health.1["lastError"]
            .as_str()
            .unwrap()
            .contains("latejobs.data.demo.orkestra.io"),
        "{}",
        health.1
    );
    let (_, summary) = get(&state, "/katalog").await;
    assert_eq!(summary["total"], 2);

    // The other entry runs meanwhile.
    present.create(&client, ns.name(), "early", "1").await;
    wait_ready(&present.api(&client, ns.name()), "early", "True").await;

    late.install(&client).await;
    eventually("the late entry started", LIMIT, || async {
        let (_, h) = get(&state, &format!("/katalog/{}/health", late.entry)).await;
        (h["started"] == true).then_some(())
    })
    .await;
    late.create(&client, ns.name(), "tardy", "1").await;
    wait_ready(&late.api(&client, ns.name()), "tardy", "True").await;
    let config_maps: Api<ConfigMap> = ns.api();
    assert!(config_maps.get_opt("tardy-job").await.unwrap().is_some());
}

#[tokio::test]
async fn a_queue_of_depth_two_still_gives_every_cr_its_children() {
    let ns = fixture::shared().namespace("katalog-queue").await;
    let client = ns.client();
    let v = Variant::new("QueueJob", "");
    v.install(&client).await;
    let mut config = v.config();
    config.defaults.max_queue_depth.value = 2;
    config.defaults.workers.value = 1;
    let (state, _running) = start(&client, config, Arc::default()).await;
    let count = 12;
    for i in 0..count {
        v.create(&client, ns.name(), &format!("q{i}"), "0").await;
    }
    let config_maps: Api<ConfigMap> = ns.api();
    let mut deepest = 0;
    eventually("every ConfigMap", Duration::from_secs(90), || {
        let info = state.crd_info(&v.entry).unwrap();
        deepest = deepest.max(info.queue_depth);
        let config_maps = config_maps.clone();
        async move {
            let n = config_maps
                .list(&ListParams::default().labels("orkestra.orkspace.io/managed=true"))
                .await
                .unwrap()
                .items
                .len();
            (n == count).then_some(())
        }
    })
    .await;
    assert!(deepest <= 2, "queue depth {deepest} above the limit");
    let info = state.crd_info(&v.entry).unwrap();
    assert_eq!(info.max_queue_depth, 2);
    assert_eq!(info.max_queue_depth_source, runtime::config::Source::Default);
}

#[tokio::test]
async fn a_restarted_runtime_ends_with_the_same_children_and_no_duplicates() {
    let ns = fixture::shared().namespace("katalog-restart").await;
    let client = ns.client();
    let v = Variant::new("RestartJob", "");
    v.install(&client).await;
    let names: Vec<String> = (0..4).map(|i| format!("r{i}")).collect();
    for n in &names {
        v.create(&client, ns.name(), n, "1").await;
    }
    let config_maps: Api<ConfigMap> = ns.api();
    {
        let (_state, running) = start(&client, v.config(), Arc::default()).await;
        eventually("a first ConfigMap", LIMIT, || async {
            (!config_maps
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty())
            .then_some(())
        })
        .await;
        drop(running);
    }
    let (_state, _running) = start(&client, v.config(), Arc::default()).await;
    let jobs = v.api(&client, ns.name());
    for n in &names {
        wait_ready(&jobs, n, "True").await;
    }
    let replica_sets: Api<ReplicaSet> = ns.api();
    for n in &names {
        let owned = ListParams::default().labels(&format!("orkestra-owner={n}"));
        let cms = config_maps.list(&owned).await.unwrap().items;
        let rss = replica_sets.list(&owned).await.unwrap().items;
        assert_eq!((cms.len(), rss.len()), (1, 1), "{n}");
    }
}

#[tokio::test]
async fn of_two_replicas_only_the_leader_writes_and_the_standby_takes_over() {
    let ns = fixture::shared().namespace("katalog-leader").await;
    let client = ns.client();
    let v = Variant::new("LeaderJob", "");
    v.install(&client).await;
    let leased = || {
        let mut c = v.config();
        c.namespace = ns.name().to_owned();
        c.leader_election = Some(LeaseTimings {
            duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_secs(1),
        });
        c
    };
    let (a, running_a) = start(&client, leased(), Arc::default()).await;
    eventually("a leads", LIMIT, || async {
        (a.role() == Role::Leader).then_some(())
    })
    .await;
    let (b, running_b) = start(&client, leased(), Arc::default()).await;
    let (code, summary) = get(&b, "/katalog").await;
    assert_eq!(code, 200);
    assert_eq!(summary["leader"]["role"], "standby");
    assert_eq!(summary["crds"][0]["state"], "not started");
    let (code, _) = get(&b, "/ready").await;
    assert_eq!(code, 200);

    let jobs = v.api(&client, ns.name());
    v.create(&client, ns.name(), "first", "1").await;
    wait_ready(&jobs, "first", "True").await;
    let gvk = v.gvk();
    // The status is written inside the pass; the counter moves when the pass returns.
    eventually("a counts its pass", LIMIT, || async {
        (a.metrics().reconciles(&gvk, Outcome::Success) > 0).then_some(())
    })
    .await;
    assert_eq!(
        b.metrics().reconciles(&gvk, Outcome::Success),
        0,
        "the standby reconciled"
    );
    let text = b.metrics().encode().unwrap();
    assert!(
        !text.contains("resource=\"leaderjobs/status\"") && !text.contains("resource=\"configmaps\""),
        "the standby talked to the entry's resources:\n{text}"
    );
    assert_eq!(b.role(), Role::Standby);

    drop(running_a);
    eventually("b leads", LIMIT, || async {
        (b.role() == Role::Leader).then_some(())
    })
    .await;
    v.create(&client, ns.name(), "second", "1").await;
    wait_ready(&jobs, "second", "True").await;
    eventually("b counts its passes", LIMIT, || async {
        (b.metrics().reconciles(&gvk, Outcome::Success) > 0).then_some(())
    })
    .await;
    let lease: Api<k8s_openapi::api::coordination::v1::Lease> = ns.api();
    let l = lease.get("orkestra-runtime-data-platform").await.unwrap();
    assert!(
        l.spec
            .and_then(|s| s.holder_identity)
            .is_some_and(|h| h.starts_with("katalog-")),
        "lease holder"
    );
    drop(running_b);
}

#[tokio::test]
async fn a_kept_child_whose_condition_turns_false_is_deleted_and_comes_back_when_it_is_true() {
    let ns = fixture::shared().namespace("katalog-when").await;
    let client = ns.client();
    let v = Variant::new("WhenJob", "");
    // An onReconcile ConfigMap that exists only while `spec.debug` is "true" (§4.3: a kept
    // child whose condition is false is deleted if it is the CR's).
    let file = v.katalog();
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "        onCreate:\n",
        "        onReconcile:\n          configMaps:\n            - name: \"{{ .metadata.name }}-debug\"\n              when:\n                - field: spec.debug\n                  equals: \"true\"\n              data:\n                LEVEL: debug\n        onCreate:\n",
    );
    std::fs::write(&file, text).unwrap();
    v.install(&client).await;
    let (_state, _running) = start(&client, v.config(), Arc::default()).await;

    let jobs = v.api(&client, ns.name());
    let config_maps: Api<ConfigMap> = ns.api();
    let replica_sets: Api<ReplicaSet> = ns.api();
    v.create(&client, ns.name(), "cond", "1").await;
    wait_ready(&jobs, "cond", "True").await;
    assert!(
        config_maps.get_opt("cond-debug").await.unwrap().is_none(),
        "created while false"
    );

    let debug = |value: &'static str| {
        let jobs = jobs.clone();
        async move {
            jobs.patch(
                "cond",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"debug": value}})),
            )
            .await
            .unwrap();
        }
    };
    debug("true").await;
    let first = eventually("the debug ConfigMap created", LIMIT, || async {
        config_maps.get_opt("cond-debug").await.unwrap()
    })
    .await;
    assert_eq!(first.data.unwrap()["LEVEL"], "debug");

    debug("false").await;
    eventually("the debug ConfigMap deleted", LIMIT, || async {
        config_maps
            .get_opt("cond-debug")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // Only that child: the others stay.
    assert!(config_maps.get_opt("cond-job").await.unwrap().is_some());
    assert!(replica_sets.get_opt("cond-worker").await.unwrap().is_some());

    debug("true").await;
    let again = eventually("the debug ConfigMap back", LIMIT, || async {
        config_maps.get_opt("cond-debug").await.unwrap()
    })
    .await;
    assert_ne!(again.metadata.uid, first.metadata.uid);
}

/// `v`'s Katalog with `block` (YAML at the indentation of the `operatorBox` keys) put before
/// its `onCreate` block.
fn with_block(v: &Variant, block: &str) {
    let file = v.katalog();
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("        onCreate:\n", &format!("{block}        onCreate:\n"));
    std::fs::write(&file, text).unwrap();
}

/// Holds `name` of `api` with a finalizer that is not the runtime's, or lets it go again.
async fn hold<K>(api: &Api<K>, name: &str, on: bool)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    const HOLD: &str = "test.orkestra.io/hold";
    // The resourceVersion keeps the other finalizers (the GC's `foregroundDeletion`); a
    // controller writing the object meanwhile makes it conflict, so read again and retry.
    eventually(
        &format!("finalizer {HOLD} on {name} set to {on}"),
        LIMIT,
        || async {
            let o = api.get(name).await.unwrap();
            let mut finalizers: Vec<String> = o.meta().finalizers.clone().unwrap_or_default();
            finalizers.retain(|f| f != HOLD);
            if on {
                finalizers.push(HOLD.to_owned());
            }
            let patch = json!({"metadata": {"finalizers": finalizers,
            "resourceVersion": o.meta().resource_version}});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => Some(()),
                Err(kube::Error::Api(s)) if s.code == 409 => None,
                Err(e) => panic!("finalizer patch on {name}: {e}"),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn an_ordered_on_delete_removes_group_after_group_then_the_finalizer() {
    let ns = fixture::shared().namespace("katalog-ordered").await;
    let client = ns.client();
    let v = Variant::new("OrderedJob", "");
    // Workers first, then the settings they read.
    with_block(
        &v,
        "        onDelete:
          ordered: true
          timeout: 2m
          groups:
            - name: workers
              resources:
                - kind: ReplicaSet
                  name: \"{{ .metadata.name }}-worker\"
            - name: settings
              resources:
                - kind: ConfigMap
                  name: \"{{ .metadata.name }}-job\"
",
    );
    v.install(&client).await;
    let stats = Arc::new(Stats::default());
    let (_state, _running) = start(&client, v.config(), Arc::clone(&stats)).await;
    let jobs = v.api(&client, ns.name());
    let config_maps: Api<ConfigMap> = ns.api();
    let replica_sets: Api<ReplicaSet> = ns.api();
    v.create(&client, ns.name(), "ord", "1").await;
    wait_ready(&jobs, "ord", "True").await;
    assert!(config_maps.get_opt("ord-job").await.unwrap().is_some());

    // The held ReplicaSet keeps group 1 going, so group 2 must not start meanwhile.
    hold(&replica_sets, "ord-worker", true).await;
    jobs.delete("ord", &DeleteParams::default()).await.unwrap();
    eventually("group 1's ReplicaSet being deleted", LIMIT, || async {
        let rs = replica_sets.get("ord-worker").await.unwrap();
        rs.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;
    let passes = Stats::get(&stats.reconciles);
    eventually("two more delete passes (every 3 s)", LIMIT, || async {
        (Stats::get(&stats.reconciles) >= passes + 2).then_some(())
    })
    .await;
    let cm = config_maps.get("ord-job").await.unwrap();
    assert!(
        cm.metadata.deletion_timestamp.is_none(),
        "group 2 started before group 1 was gone"
    );
    assert!(
        jobs.get_opt("ord").await.unwrap().is_some(),
        "finalizer removed too early"
    );

    hold(&replica_sets, "ord-worker", false).await;
    eventually(
        "the ReplicaSet, then the ConfigMap, then the CR gone",
        LIMIT,
        || async {
            let rs = replica_sets.get_opt("ord-worker").await.unwrap();
            let cm = config_maps.get_opt("ord-job").await.unwrap();
            let cr = jobs.get_opt("ord").await.unwrap();
            assert!(
                !(rs.is_some()
                    && cm
                        .as_ref()
                        .is_some_and(|c| c.metadata.deletion_timestamp.is_some())),
                "group 2 deleted while group 1 is there"
            );
            (rs.is_none() && cm.is_none() && cr.is_none()).then_some(())
        },
    )
    .await;
    let seen = reasons(&ns, "ord").await;
    for reason in ["Deleting", "OrderedJobDeleted"] {
        assert!(seen.iter().any(|(r, _)| r == reason), "no {reason} in {seen:?}");
    }
    assert_eq!(
        seen.iter().filter(|(r, _)| r == "Deleting").count(),
        1,
        "Deleting announced once: {seen:?}"
    );
}

#[tokio::test]
async fn an_ordered_group_that_cannot_go_times_out_with_a_warning_and_keeps_the_finalizer() {
    let ns = fixture::shared().namespace("katalog-stuck").await;
    let client = ns.client();
    let v = Variant::new("StuckJob", "");
    with_block(
        &v,
        "        onDelete:
          ordered: true
          timeout: 3s
          groups:
            - resources:
                - kind: ConfigMap
                  name: \"{{ .metadata.name }}-job\"
",
    );
    v.install(&client).await;
    let (_state, _running) = start(&client, v.config(), Arc::default()).await;
    let jobs = v.api(&client, ns.name());
    let config_maps: Api<ConfigMap> = ns.api();
    v.create(&client, ns.name(), "stuck", "1").await;
    wait_ready(&jobs, "stuck", "True").await;
    hold(&config_maps, "stuck-job", true).await;
    jobs.delete("stuck", &DeleteParams::default()).await.unwrap();

    let (_, message) = eventually("a StuckJobDeleteTimeout event", LIMIT, || async {
        reasons(&ns, "stuck")
            .await
            .into_iter()
            .find(|(r, _)| r == "StuckJobDeleteTimeout")
    })
    .await;
    assert!(
        message.contains(&format!("group 1: ConfigMap {}/stuck-job", ns.name())) && message.contains("3s"),
        "{message}"
    );
    let cr = jobs.get("stuck").await.unwrap();
    assert!(
        !cr.metadata.finalizers.clone().unwrap_or_default().is_empty(),
        "the finalizer must stay after the timeout"
    );
    let events = ns
        .api::<Event>()
        .list(&ListParams::default().fields("involvedObject.name=stuck"))
        .await
        .unwrap();
    let timeout = events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("StuckJobDeleteTimeout"))
        .unwrap();
    assert_eq!(timeout.type_.as_deref(), Some("Warning"));

    // Let both go, so the namespace can be cleaned up.
    hold(&config_maps, "stuck-job", false).await;
    jobs.patch(
        "stuck",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_once_secret_keeps_its_random_value_until_rotate_after_has_run_out() {
    use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
    use katalog::runtime::clock::{Clock as _, ManualClock};

    let ns = fixture::shared().namespace("katalog-once").await;
    let client = ns.client();
    let v = Variant::new("OnceJob", "      resync: 1s\n");
    let file = v.katalog();
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "        onCreate:\n",
        "        onCreate:
          secrets:
            - name: \"{{ .metadata.name }}-creds\"
              once: true
              rotateAfter: 1h
              data:
                PASSWORD: \"{{ randomAlphanumeric 24 }}\"
                TIMEOUT: \"{{ .spec.timeout }}\"
",
    );
    std::fs::write(&file, text).unwrap();
    v.install(&client).await;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let mut config = v.config();
    config.clock = clock.clone();
    let stats = Arc::new(Stats::default());
    let (_state, _running) = start(&client, config, Arc::clone(&stats)).await;
    let jobs = v.api(&client, ns.name());
    let secrets: Api<Secret> = ns.api();
    v.create(&client, ns.name(), "sec", "1").await;
    wait_ready(&jobs, "sec", "True").await;
    let first = eventually("the once Secret", LIMIT, || async {
        secrets.get_opt("sec-creds").await.unwrap()
    })
    .await;
    let password = |s: &Secret| s.data.as_ref().unwrap()["PASSWORD"].0.clone();
    assert_eq!(password(&first).len(), 24);
    let annotations = first.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["orkestra.orkspace.io/rotate-after"], "1h0m0s");
    let generated: Timestamp = annotations["orkestra.orkspace.io/generated-at"].parse().unwrap();
    assert_eq!(generated.as_second(), clock.now().as_second());

    // Passes (resync 1 s) and a spec edit render nothing for it.
    jobs.patch(
        "sec",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"timeout": "4h"}})),
    )
    .await
    .unwrap();
    let passes = Stats::get(&stats.reconciles);
    eventually("three more passes", LIMIT, || async {
        (Stats::get(&stats.reconciles) >= passes + 3).then_some(())
    })
    .await;
    let same = secrets.get("sec-creds").await.unwrap();
    assert_eq!(same.metadata.uid, first.metadata.uid);
    assert_eq!(password(&same), password(&first));
    assert_eq!(same.data.as_ref().unwrap()["TIMEOUT"].0, b"2h");

    // Past rotateAfter by the runtime's clock: a new Secret with a new value.
    clock.advance(Duration::from_secs(2 * 3600));
    let rotated = eventually("the rotated Secret", LIMIT, || async {
        secrets
            .get_opt("sec-creds")
            .await
            .unwrap()
            .filter(|s| s.metadata.uid != first.metadata.uid)
    })
    .await;
    assert_ne!(password(&rotated), password(&first));
    assert_eq!(rotated.data.as_ref().unwrap()["TIMEOUT"].0, b"4h");
    let generated: Timestamp = rotated.metadata.annotations.unwrap()["orkestra.orkspace.io/generated-at"]
        .parse()
        .unwrap();
    assert_eq!(generated.as_second(), clock.now().as_second());
}

#[tokio::test]
async fn an_on_delete_job_is_waited_for_before_the_finalizer_goes_and_a_failed_one_keeps_it() {
    use k8s_openapi::api::batch::v1::Job;

    let ns = fixture::shared().namespace("katalog-deljob").await;
    let client = ns.client();
    let v = Variant::new("DelJob", "");
    with_block(
        &v,
        "        onDelete:
          timeout: 1m
          jobs:
            - name: \"{{ .metadata.name }}-cleanup\"
              image: busybox
              command: [\"{{ .spec.cleanup }}\"]
              backoffLimit: \"0\"
",
    );
    v.install(&client).await;
    let (_state, _running) = start(&client, v.config(), Arc::default()).await;
    let jobs = v.api(&client, ns.name());
    let batch: Api<Job> = ns.api();
    let complete = |j: &Job, kind: &str| {
        j.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
    };
    for (name, command) in [("ok", "true"), ("bad", "false")] {
        v.create(&client, ns.name(), name, "1").await;
        jobs.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cleanup": command}})),
        )
        .await
        .unwrap();
    }
    wait_ready(&jobs, "ok", "True").await;
    wait_ready(&jobs, "bad", "True").await;
    jobs.delete("ok", &DeleteParams::default()).await.unwrap();
    // The CR may go only once its Job is Complete.
    eventually("the ok CR gone after its Job completed", LIMIT, || async {
        let cr = jobs.get_opt("ok").await.unwrap();
        let job = batch.get_opt("ok-cleanup").await.unwrap();
        if cr.is_none() {
            let job = job.expect("the onDelete Job");
            assert!(
                complete(&job, "Complete"),
                "finalizer removed before the Job completed"
            );
            assert!(
                job.metadata.owner_references.unwrap_or_default().is_empty(),
                "an onDelete Job has no owner"
            );
            return Some(());
        }
        None
    })
    .await;

    jobs.delete("bad", &DeleteParams::default()).await.unwrap();
    eventually("the bad Job failed", LIMIT, || async {
        batch
            .get_opt("bad-cleanup")
            .await
            .unwrap()
            .filter(|j| complete(j, "Failed"))
    })
    .await;
    let (_, message) = eventually("a DelJobDeleteError event", LIMIT, || async {
        reasons(&ns, "bad")
            .await
            .into_iter()
            .find(|(r, _)| r == "DelJobDeleteError")
    })
    .await;
    assert!(
        message.starts_with("Template deletion failed: onDelete Job ") && message.contains("bad-cleanup"),
        "{message}"
    );
    assert!(
        jobs.get_opt("bad").await.unwrap().is_some(),
        "a failed Job keeps the finalizer"
    );
    jobs.patch(
        "bad",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .ok();
    for job in ["ok-cleanup", "bad-cleanup"] {
        batch.delete(job, &DeleteParams::background()).await.ok();
    }
}

#[tokio::test]
async fn an_entry_whose_crd_is_removed_while_it_runs_is_degraded_until_the_crd_is_back() {
    let ns = fixture::shared().namespace("katalog-gone").await;
    let client = ns.client();
    let v = Variant::new("GoneJob", "");
    v.install(&client).await;
    let (state, _running) = start(&client, v.config(), Arc::default()).await;
    v.create(&client, ns.name(), "a", "1").await;
    wait_ready(&v.api(&client, ns.name()), "a", "True").await;
    let health = format!("/katalog/{}/health", v.entry);
    // The pass that wrote Ready is counted as a success once it has returned, a moment later.
    eventually("the entry healthy after its first pass", LIMIT, || async {
        (get(&state, &health).await.1["state"] == "healthy").then_some(())
    })
    .await;

    // The API server deletes the CRs first; the runtime's delete path lets them go.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd_name = v.crd.metadata.name.clone().unwrap();
    crds.delete(&crd_name, &DeleteParams::default()).await.unwrap();
    let degraded = eventually("the entry degraded", LIMIT, || async {
        let (code, h) = get(&state, &health).await;
        (code == 503 && h["state"] == "degraded").then_some(h)
    })
    .await;
    let why = degraded["lastError"].as_str().unwrap();
    assert!(why.contains(&crd_name), "{why}");
    assert_eq!(get(&state, "/katalog").await.0, 503);

    v.install(&client).await;
    eventually("the entry healthy again", LIMIT, || async {
        let (code, h) = get(&state, &health).await;
        (code == 200 && h["state"] == "healthy").then_some(())
    })
    .await;
    v.create(&client, ns.name(), "b", "1").await;
    wait_ready(&v.api(&client, ns.name()), "b", "True").await;
}

#[tokio::test]
async fn label_and_field_selectors_and_namespace_narrow_the_cr_watch() {
    let ns = fixture::shared().namespace("katalog-select").await;
    let client = ns.client();
    let v = Variant::new(
        "PickJob",
        &format!(
            "      namespace: {}\n      labelSelector:\n        team: data\n      fieldSelector:\n        metadata.name: picked\n",
            ns.name()
        ),
    );
    v.install(&client).await;
    let (state, _running) = start(&client, v.config(), Arc::default()).await;
    assert_eq!(state.crd_info(&v.entry).unwrap().watched_namespaces, [ns.name()]);
    let jobs = v.api(&client, ns.name());
    let label = |name: &'static str| {
        let jobs = jobs.clone();
        async move {
            jobs.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"team": "data"}}})),
            )
            .await
            .unwrap();
        }
    };
    v.create(&client, ns.name(), "unlabelled", "1").await;
    v.create(&client, ns.name(), "other", "1").await;
    label("other").await;
    v.create(&client, ns.name(), "picked", "1").await;
    label("picked").await;
    // Only the CR that matches both selectors is reconciled.
    wait_ready(&jobs, "picked", "True").await;
    assert_eq!(state.crs(&v.entry).await.unwrap().total, 1);
    for name in ["unlabelled", "other"] {
        let cr = jobs.get(name).await.unwrap();
        assert!(cr.data.get("status").is_none(), "{name} was reconciled: {cr:?}");
        assert!(cr.metadata.finalizers.unwrap_or_default().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn status_and_finalizer_switches_are_honoured() {
    let ns = fixture::shared().namespace("katalog-switches").await;
    let client = ns.client();
    // ignoreStatusPatch + removeFinalizers: children only, our finalizer taken off.
    let quiet = Variant::new(
        "QuietJob",
        "      ignoreStatusPatch: true\n      removeFinalizers: true\n",
    );
    // ignoreObservedGeneration: a status without observedGeneration.
    let plain = Variant::new("PlainJob", "      ignoreObservedGeneration: true\n");
    quiet.install(&client).await;
    plain.install(&client).await;
    let (_state, _running) = start(
        &client,
        local(vec![quiet.katalog(), plain.katalog()]),
        Arc::default(),
    )
    .await;

    let mut cr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "data.demo.orkestra.io/v1alpha1", "kind": "QuietJob",
        "metadata": {"name": "q", "namespace": ns.name(),
            "finalizers": ["orkestra.orkspace.io/cleanup", "example.com/keep"]},
        "spec": {"image": "python:3.12-slim", "parallelism": "1", "timeout": "2h"}
    }))
    .unwrap();
    cr = quiet
        .api(&client, ns.name())
        .create(&PostParams::default(), &cr)
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = ns.api();
    eventually("the quiet CR's ConfigMap", LIMIT, || async {
        config_maps.get_opt("q-job").await.unwrap()
    })
    .await;
    let finalizers = eventually("our finalizer removed", LIMIT, || async {
        let f = quiet
            .api(&client, ns.name())
            .get("q")
            .await
            .unwrap()
            .metadata
            .finalizers
            .unwrap_or_default();
        (!f.contains(&"orkestra.orkspace.io/cleanup".to_owned())).then_some(f)
    })
    .await;
    assert_eq!(finalizers, ["example.com/keep"], "only ours go");
    let now = quiet.api(&client, ns.name()).get("q").await.unwrap();
    assert!(now.data.get("status").is_none(), "status written: {:?}", now.data);
    assert_eq!(cr.metadata.name, now.metadata.name);

    plain.create(&client, ns.name(), "p", "1").await;
    let p = wait_ready(&plain.api(&client, ns.name()), "p", "True").await;
    assert!(
        p.data["status"].get("observedGeneration").is_none(),
        "{:?}",
        p.data
    );
    assert_eq!(p.data["status"]["phase"], "Running");
}

#[tokio::test]
async fn without_force_conflict_a_field_owned_by_another_manager_fails_the_pass() {
    let ns = fixture::shared().namespace("katalog-conflict").await;
    let client = ns.client();
    let v = Variant::new("MildJob", "      forceConflict: false\n");
    v.install(&client).await;
    let (_state, _running) = start(&client, v.config(), Arc::default()).await;
    let jobs = v.api(&client, ns.name());
    v.create(&client, ns.name(), "m", "1").await;
    wait_ready(&jobs, "m", "True").await;

    // Someone else takes `spec.replicas` over, forcing.
    let replica_sets: Api<ReplicaSet> = ns.api();
    replica_sets
        .patch(
            "m-worker",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "m-worker"}, "spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    // The runtime's next apply of a changed ReplicaSet may not take it back.
    jobs.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"parallelism": "2"}})),
    )
    .await
    .unwrap();
    let failed = wait_ready(&jobs, "m", "False").await;
    let message = failed.data["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("conflict") || message.contains("Conflict"),
        "{message}"
    );
    assert!(message.contains("someone-else"), "{message}");
    assert_eq!(
        replica_sets.get("m-worker").await.unwrap().spec.unwrap().replicas,
        Some(4)
    );
}
