//! The simulated node against the real control plane: Jobs through the real Job controller, logs
//! through the API server, memory limits, preStop hooks, deadlines, eviction, lost nodes, rules.

mod common;

use std::time::Duration;

use common::{finished, pod, terminated, wait_pod};
use futures::{AsyncBufReadExt as _, TryStreamExt as _};
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ConfigMap, Node, Pod, Secret},
};
use kube::{
    Api,
    api::{DeleteParams, LogParams, PostParams},
    runtime::wait::await_condition,
};
use omjob_testbed::{
    fixture,
    node::{self, NodeMode, SimNode},
};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

fn sh(name: &str, script: &str) -> Pod {
    pod(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}
    }))
}

#[tokio::test]
async fn a_job_completes_through_the_job_controller_and_kubectl_logs_shows_its_output() {
    let ns = fixture::shared().namespace("job").await;
    let jobs: Api<Job> = ns.api();
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "hello"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox",
            "command": ["sh", "-c", "echo hello from $(POD_NAME)"],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
        }]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let complete = |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.succeeded == Some(1) && s.completion_time.is_some())
    };
    tokio::time::timeout(LIMIT, await_condition(jobs.clone(), "hello", complete))
        .await
        .expect("job completes")
        .unwrap();

    let pods: Api<Pod> = ns.api();
    let listed = pods
        .list(&kube::api::ListParams::default().labels("job-name=hello"))
        .await
        .unwrap();
    let pod_name = listed.items[0].metadata.name.clone().unwrap();
    assert_eq!(terminated(&listed.items[0]).exit_code, 0);
    assert_eq!(terminated(&listed.items[0]).reason.as_deref(), Some("Completed"));

    let via_api = pods.logs(&pod_name, &LogParams::default()).await.unwrap();
    assert_eq!(via_api, format!("hello from {pod_name}\n"));

    let kubectl = fixture::shared()
        .testbed()
        .control_plane()
        .binaries()
        .kubectl
        .clone();
    let out = std::process::Command::new(kubectl)
        .arg(format!(
            "--kubeconfig={}",
            fixture::shared().kubeconfig().display()
        ))
        .args(["-n", ns.name(), "logs", "job/hello"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl logs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hello from {pod_name}\n")
    );
}

#[tokio::test]
async fn the_log_endpoint_honours_tail_lines_limit_bytes_and_follow() {
    let ns = fixture::shared().namespace("logs").await;
    let pods: Api<Pod> = ns.api();
    // The process waits for a file before it prints its last line, so the follower below is
    // attached while the container still runs, without any sleep deciding the order.
    let gate = tempfile::tempdir().unwrap();
    let gate_file = gate.path().join("go");
    let script = format!(
        "for i in $(seq 1 100); do echo line-$i; done; while [ ! -e {} ]; do sleep 0.05; done; echo end",
        gate_file.display()
    );
    pods.create(&PostParams::default(), &sh("chatty", &script))
        .await
        .unwrap();
    wait_pod(&pods, "chatty", LIMIT, "running", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    // Wait until the first 100 lines are on disk (they are printed before the gate loop).
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let text = pods.logs("chatty", &LogParams::default()).await.unwrap();
        if text.contains("line-100\n") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log never reached line-100: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let tail = pods
        .logs(
            "chatty",
            &LogParams {
                tail_lines: Some(3),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "line-98\nline-99\nline-100\n");
    let limited = pods
        .logs(
            "chatty",
            &LogParams {
                limit_bytes: Some(10),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(limited, "line-1\nlin");

    let stream = pods
        .log_stream(
            "chatty",
            &LogParams {
                follow: true,
                tail_lines: Some(1),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    let mut lines = stream.lines();
    assert_eq!(lines.try_next().await.unwrap().as_deref(), Some("line-100"));
    std::fs::write(&gate_file, "").unwrap();
    // Following ends by itself when the container exits, after its last line.
    let rest: Vec<String> = tokio::time::timeout(LIMIT, lines.try_collect())
        .await
        .expect("follow ends")
        .unwrap();
    assert_eq!(rest, vec!["end".to_owned()]);
}

#[tokio::test]
async fn a_pod_over_its_memory_limit_ends_oom_killed_with_exit_code_137() {
    let ns = fixture::shared().namespace("oom").await;
    let pods: Api<Pod> = ns.api();
    let p = pod(json!({
        "metadata": {"name": "hungry"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "python",
            // Writing the string touches every page, so resident memory really grows.
            "command": ["python3", "-c", "import time; s = 'x' * (400 * 1024 * 1024); time.sleep(60)"],
            "resources": {"limits": {"memory": "64Mi"}}
        }]}
    }));
    pods.create(&PostParams::default(), &p).await.unwrap();
    let done = wait_pod(&pods, "hungry", LIMIT, "finished", finished).await;
    let t = terminated(&done);
    assert_eq!((t.reason.as_deref(), t.exit_code), (Some("OOMKilled"), 137));
    assert_eq!(done.status.unwrap().phase.as_deref(), Some("Failed"));
}

#[tokio::test]
async fn a_non_zero_exit_fails_the_pod_with_that_code() {
    let ns = fixture::shared().namespace("exit").await;
    let pods: Api<Pod> = ns.api();
    pods.create(&PostParams::default(), &sh("fails", "echo oops >&2; exit 3"))
        .await
        .unwrap();
    let done = wait_pod(&pods, "fails", LIMIT, "finished", finished).await;
    let t = terminated(&done);
    assert_eq!((t.reason.as_deref(), t.exit_code), (Some("Error"), 3));
    assert!(t.started_at.is_some() && t.finished_at.is_some());
    assert_eq!(pods.logs("fails", &LogParams::default()).await.unwrap(), "oops\n");
}

#[tokio::test]
async fn deleting_a_pod_runs_its_prestop_hook_then_sends_sigterm() {
    let ns = fixture::shared().namespace("prestop").await;
    let pods: Api<Pod> = ns.api();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace");
    let p = pod(json!({
        "metadata": {"name": "graceful"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 20, "containers": [{
            "name": "main", "image": "busybox",
            "command": ["sh", "-c", "trap 'echo sigterm >> $OUT; exit 0' TERM; echo started >> $OUT; while true; do sleep 0.1; done"],
            "env": [{"name": "OUT", "value": out.display().to_string()}],
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> $OUT"]}}}
        }]}
    }));
    pods.create(&PostParams::default(), &p).await.unwrap();
    wait_pod(&pods, "graceful", LIMIT, "running", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    // "started" is written by the process itself; wait for it so the trap is installed.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains("started")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the container never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pods.delete("graceful", &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(
        LIMIT,
        await_condition(pods.clone(), "graceful", |p: Option<&Pod>| p.is_none()),
    )
    .await
    .expect("pod removed after graceful stop")
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "started\nprestop\nsigterm\n"
    );
}

#[tokio::test]
async fn a_pod_past_its_active_deadline_fails_with_deadline_exceeded() {
    let ns = fixture::shared().namespace("deadline").await;
    let pods: Api<Pod> = ns.api();
    let mut p = sh("slow", "sleep 120");
    p.spec.as_mut().unwrap().active_deadline_seconds = Some(2);
    p.spec.as_mut().unwrap().termination_grace_period_seconds = Some(1);
    pods.create(&PostParams::default(), &p).await.unwrap();
    let done = wait_pod(&pods, "slow", LIMIT, "finished", finished).await;
    let status = done.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(status.phase.as_deref(), Some("Failed"));
}

#[tokio::test]
async fn env_resolves_config_map_secret_and_field_references() {
    let ns = fixture::shared().namespace("env").await;
    let cms: Api<ConfigMap> = ns.api();
    let secrets: Api<Secret> = ns.api();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"config": "a: 1"}})).unwrap(),
    )
    .await
    .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "creds"}, "stringData": {"token": "t0k3n"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let p = pod(json!({
        "metadata": {"name": "envy", "labels": {"team": "data"}},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox",
            "command": ["sh", "-c", "echo \"$CONFIG|$TOKEN|$UID_|$TEAM|$GREETING\""],
            "env": [
                {"name": "CONFIG", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "config"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {"name": "UID_", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
                {"name": "GREETING", "value": "hi $(TEAM)"}
            ]
        }]}
    }));
    let created = Api::<Pod>::namespaced(ns.client(), ns.name())
        .create(&PostParams::default(), &p)
        .await
        .unwrap();
    let pods: Api<Pod> = ns.api();
    wait_pod(&pods, "envy", LIMIT, "finished", finished).await;
    let uid = created.metadata.uid.unwrap();
    assert_eq!(
        pods.logs("envy", &LogParams::default()).await.unwrap(),
        format!("a: 1|t0k3n|{uid}|data|hi data\n")
    );
}

#[tokio::test]
async fn a_missing_config_map_keeps_the_pod_pending_with_create_container_config_error() {
    let ns = fixture::shared().namespace("cfgerr").await;
    let pods: Api<Pod> = ns.api();
    let p = pod(json!({
        "metadata": {"name": "orphan"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox", "command": ["true"],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
        }]}
    }));
    pods.create(&PostParams::default(), &p).await.unwrap();
    let waiting = wait_pod(&pods, "orphan", LIMIT, "reported", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| {
                c[0].state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("CreateContainerConfigError")
            })
    })
    .await;
    assert_eq!(waiting.status.unwrap().phase.as_deref(), Some("Pending"));
}

#[tokio::test]
async fn an_evicted_pod_fails_with_reason_evicted() {
    let ns = fixture::shared().namespace("evict").await;
    let pods: Api<Pod> = ns.api();
    pods.create(&PostParams::default(), &sh("victim", "sleep 120"))
        .await
        .unwrap();
    wait_pod(&pods, "victim", LIMIT, "running", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await;
    node::evict(
        &ns.client(),
        ns.name(),
        "victim",
        "The node was low on resource: memory.",
    )
    .await
    .unwrap();
    let done = wait_pod(&pods, "victim", LIMIT, "finished", finished).await;
    let status = done.status.unwrap();
    assert_eq!(
        (status.phase.as_deref(), status.reason.as_deref()),
        (Some("Failed"), Some("Evicted"))
    );
}

#[tokio::test]
async fn a_lost_nodes_pods_are_marked_not_ready_by_the_node_lifecycle_controller() {
    let shared = fixture::shared();
    let ns = shared.namespace("lost").await;
    let name = format!("lost-{}", ns.name());
    let dir = tempfile::tempdir().unwrap();
    let pki = shared.testbed().control_plane().pki().clone();
    let node = SimNode::start_with(
        ns.client(),
        &name,
        dir.path().to_owned(),
        &pki,
        NodeMode::Process,
        true,
    )
    .await
    .unwrap();
    let pods: Api<Pod> = ns.api();
    let mut p = sh("stranded", "sleep 300");
    p.spec.as_mut().unwrap().node_name = Some(name.clone());
    pods.create(&PostParams::default(), &p).await.unwrap();
    let ready = |p: &Pod, want: &str| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == want))
    };
    wait_pod(&pods, "stranded", LIMIT, "ready", |p| ready(p, "True")).await;

    node::set_lost(&ns.client(), &name, true).await.unwrap();
    let marked = wait_pod(&pods, "stranded", LIMIT, "marked not ready", |p| {
        ready(p, "False")
    })
    .await;
    assert!(
        marked
            .status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False")
    );
    let nodes: Api<Node> = Api::all(ns.client());
    let n = nodes.get(&name).await.unwrap();
    let cond = n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        cond.status, "Unknown",
        "the node lifecycle controller marks a silent node Unknown"
    );

    drop(node);
    let _ = pods
        .delete(
            "stranded",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await;
    nodes.delete(&name, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn rule_mode_finishes_pods_as_their_annotations_say_without_processes() {
    let shared = fixture::shared();
    let ns = shared.namespace("rules").await;
    let name = format!("rules-{}", ns.name());
    let dir = tempfile::tempdir().unwrap();
    let pki = shared.testbed().control_plane().pki().clone();
    let _node = SimNode::start_with(
        ns.client(),
        &name,
        dir.path().to_owned(),
        &pki,
        NodeMode::Rules,
        true,
    )
    .await
    .unwrap();
    let pods: Api<Pod> = ns.api();
    let ruled = |pod_name: &str, annotations: serde_json::Value| {
        pod(json!({
            "metadata": {"name": pod_name, "annotations": annotations},
            // The command would fail if it ran: rule mode must not run it.
            "spec": {"nodeName": name, "restartPolicy": "Never", "containers": [{"name": "main", "image": "x", "command": ["/nonexistent"]}]}
        }))
    };
    pods.create(
        &PostParams::default(),
        &ruled("ok", json!({node::pod::RULE_LOG: "ruled\n"})),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &ruled("three", json!({node::pod::RULE_EXIT_CODE: "3"})),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &ruled("oom", json!({node::pod::RULE_OOM: "true"})),
    )
    .await
    .unwrap();
    let ok = wait_pod(&pods, "ok", LIMIT, "finished", finished).await;
    assert_eq!(ok.status.unwrap().phase.as_deref(), Some("Succeeded"));
    assert_eq!(pods.logs("ok", &LogParams::default()).await.unwrap(), "ruled\n");
    assert_eq!(
        terminated(&wait_pod(&pods, "three", LIMIT, "finished", finished).await).exit_code,
        3
    );
    let t = terminated(&wait_pod(&pods, "oom", LIMIT, "finished", finished).await);
    assert_eq!((t.reason.as_deref(), t.exit_code), (Some("OOMKilled"), 137));
    Api::<Node>::all(ns.client())
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_custom_resource_can_be_created_on_this_api_server() {
    // Regression guard for the vendored reflect2 v1.0.1 crash (SIGSEGV on the first custom
    // resource create under Go >= 1.18): the installer must have replaced it.
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let ns = fixture::shared().namespace("crd").await;
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client());
    let group = format!("{}.testbed.omjob.dev", ns.name());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = |c: Option<&CustomResourceDefinition>| {
        c.and_then(|c| c.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"))
    };
    tokio::time::timeout(
        LIMIT,
        await_condition(crds.clone(), &format!("widgets.{group}"), established),
    )
    .await
    .unwrap()
    .unwrap();
    let gvk = kube::core::GroupVersionKind::gvk(&group, "v1", "Widget");
    let ar = kube::core::ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<kube::core::DynamicObject> = Api::namespaced_with(ns.client(), ns.name(), &ar);
    let obj: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}
    }))
    .unwrap();
    widgets.create(&PostParams::default(), &obj).await.unwrap();
    let back = widgets.get("w1").await.unwrap();
    assert_eq!(back.data["spec"]["size"], 3);
    crds.delete(&format!("widgets.{group}"), &DeleteParams::default())
        .await
        .unwrap();
}
