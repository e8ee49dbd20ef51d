//! The operator in the world OpenMetadata's Helm chart builds for it (openmetadata-chart.md):
//! CRDs without the additive fields, a ClusterRole with only the chart's rules (no Leases, no
//! Nodes, no `events.k8s.io`, no `*/finalizers`), and the real `omjob-operator` binary started
//! with the chart's environment (cluster-wide, no `LEADER_ELECTION`) under that role's token.
//! Every way a run can end goes through it, plus a SIGKILL mid-run, a CronOMJob with
//! `startingDeadlineSeconds: 0`, and an OMJob the Java operator left mid-exit-handler. Exit
//! handlers append to trace files, so "exactly once" is counted; `/health` is polled between
//! scenarios and the process must never exit. The operator watches all namespaces, so this
//! binary holds one test and has its testbed to itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{
    Harness,
    cron::poll,
    omjob,
    process::{OperatorProcess, Options, free_port},
    wait_phase,
};
use futures::StreamExt as _;
use k8s_openapi::{
    api::{
        core::v1::{Pod, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, ResourceExt as _,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use omjob_api::{CronOMJob, OMJob, Phase, annotations};
use omjob_testbed::fixture::{self, ServiceAccountCredentials};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const LIMIT: Duration = Duration::from_secs(120);

/// The seven status fields the chart's OMJob schema declares.
const CHART_OMJOB_STATUS: [&str; 7] = [
    "phase",
    "mainPodName",
    "exitHandlerPodName",
    "startTime",
    "completionTime",
    "message",
    "mainPodExitCode",
];
/// The three status fields the chart's CronOMJob schema declares.
const CHART_CRON_STATUS: [&str; 3] = ["lastScheduleTime", "lastOMJobName", "message"];
/// Spec fields this project adds, which the chart's schemas lack.
const ADDITIVE_SPEC: [&str; 3] = [
    "activeDeadlineSeconds",
    "pendingTimeoutSeconds",
    "concurrencyPolicy",
];

/// Drops every validation keyword the chart's schemas do without: integer bounds and formats.
/// A credential value that must never appear outside its Secret.
const CREDENTIAL: &str = "chart-world-jwt-7f3a9c";

fn loosen_integers(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("type") == Some(&json!("integer")) {
                for k in ["minimum", "maximum", "format"] {
                    map.remove(k);
                }
            }
            map.values_mut().for_each(loosen_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(loosen_integers),
        _ => {}
    }
}

/// Removes the additive spec fields wherever a spec schema lists them.
fn drop_additive_spec(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get_mut("properties")
                && props.contains_key("mainPodSpec")
            {
                for f in ADDITIVE_SPEC {
                    props.remove(f);
                }
            }
            if let Some(Value::Object(props)) = map.get_mut("properties")
                && props.contains_key("omJobSpec")
            {
                props.remove("concurrencyPolicy");
            }
            map.values_mut().for_each(drop_additive_spec);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_additive_spec),
        _ => {}
    }
}

/// Our CRDs cut down to what the chart's declare: status with only the upstream fields, no
/// additive spec fields, no root `required`, no integer bounds.
fn chart_crds() -> Vec<CustomResourceDefinition> {
    omjob_api::crds::all()
        .into_iter()
        .map(|crd| {
            let mut v = serde_json::to_value(crd).unwrap();
            let kind = v["spec"]["names"]["kind"].as_str().unwrap().to_owned();
            let keep: &[&str] = if kind == "OMJob" {
                &CHART_OMJOB_STATUS
            } else {
                &CHART_CRON_STATUS
            };
            for version in v["spec"]["versions"].as_array_mut().unwrap() {
                let schema = &mut version["schema"]["openAPIV3Schema"];
                schema.as_object_mut().unwrap().remove("required");
                let status = schema["properties"]["status"]["properties"]
                    .as_object_mut()
                    .unwrap();
                status.retain(|k, _| keep.contains(&k.as_str()));
                assert_eq!(status.len(), keep.len(), "{kind} status: {status:?}");
                drop_additive_spec(&mut schema["properties"]["spec"]);
                loosen_integers(schema);
            }
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

/// The chart's two operator ClusterRoles (cluster-wide watch): the custom resources, and the
/// namespaced resources it grants for `WATCH_NAMESPACES=""`.
fn chart_cluster_roles() -> Vec<ClusterRole> {
    let group = omjob_api::GROUP;
    let all = ["get", "list", "watch", "create", "update", "patch", "delete"];
    [
        json!({"metadata": {"name": "chart-omjob-operator"}, "rules": [
            {"apiGroups": [group], "resources": ["omjobs", "cronomjobs"], "verbs": all},
            {"apiGroups": [group], "resources": ["omjobs/status", "cronomjobs/status"], "verbs": ["get", "update", "patch"]}
        ]}),
        json!({"metadata": {"name": "chart-omjob-operator-resources"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": all},
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get", "watch"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}
        ]}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect()
}

/// The chart's CRDs, its RBAC bound to a service account of its own, and a kubeconfig with that
/// account's token.
async fn chart_world(h: &Harness) -> std::path::PathBuf {
    fixture::install_crds(&h.admin, chart_crds(), "omjob-tests").await;
    let pp = PostParams::default();
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "chart-operator"}})).unwrap();
    Api::<ServiceAccount>::namespaced(h.admin.clone(), h.ns())
        .create(&pp, &sa)
        .await
        .unwrap();
    for role in chart_cluster_roles() {
        let name = role.metadata.name.clone().unwrap();
        Api::<ClusterRole>::all(h.admin.clone())
            .create(&pp, &role)
            .await
            .unwrap();
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "chart-operator", "namespace": h.ns()}]
        }))
        .unwrap();
        Api::<ClusterRoleBinding>::all(h.admin.clone())
            .create(&pp, &binding)
            .await
            .unwrap();
    }
    let creds = ServiceAccountCredentials::read(&h.admin, h.ns(), "chart-operator").await;
    creds.write_kubeconfig(&h.trace_dir.path().join("chart.kubeconfig"))
}

/// The operator as the chart's Deployment starts it: the chart's environment, nothing more.
fn start_chart_operator(h: &Harness, kubeconfig: &std::path::Path, identity: &str) -> OperatorProcess {
    let port = free_port();
    let env = [
        ("OPERATOR_NAMESPACE", h.ns().to_owned()),
        ("LOG_LEVEL", "INFO".to_owned()),
        ("RECONCILIATION_THREADS", "5".to_owned()),
        ("HEALTH_CHECK_PORT", port.to_string()),
        ("METRICS_PORT", free_port().to_string()),
        ("WATCH_NAMESPACES", String::new()),
        ("POLLING_INTERVAL_SECONDS", "10".to_owned()),
        ("REQUEUE_DELAY_SECONDS", "30".to_owned()),
        // The chart's pod has a hostname; the identity falls back to it.
        ("HOSTNAME", identity.to_owned()),
    ];
    OperatorProcess::start_with(h, &Options::single(identity), kubeconfig, &env, port)
}

/// `GET path` on the operator's health port: (status code, body).
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((code, body))
}

/// The operator is alive and `/health` answers 200 UP.
async fn assert_healthy(op: &mut OperatorProcess, when: &str) {
    assert!(op.is_running(), "the operator exited ({when}):\n{}", op.output());
    let (code, body) = http_get(op.health_port, "/health")
        .await
        .unwrap_or_else(|| panic!("/health did not answer ({when}):\n{}", op.output()));
    assert_eq!(code, 200, "{when}: {body}");
    assert!(body.contains("\"UP\""), "{when}: {body}");
}

/// Waits for `/health` to answer after a start.
async fn wait_healthy(op: &mut OperatorProcess) {
    let port = op.health_port;
    poll("/health to answer", Duration::from_secs(30), || async move {
        http_get(port, "/health").await.is_some_and(|(c, _)| c == 200)
    })
    .await;
    assert_healthy(op, "after start").await;
}

/// Watches OMJob `name` until it is deleted; returns the last phase it had.
async fn last_phase_before_gone(h: &Harness, name: &str) -> Option<Phase> {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(h.omjobs(), cfg).default_backoff();
    futures::pin_mut!(stream);
    let mut last = None;
    let run = async {
        while let Some(ev) = stream.next().await {
            let listed = match ev {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    if let Some(p) = o.status.and_then(|s| s.phase) {
                        last = Some(p);
                    }
                    false
                }
                Ok(watcher::Event::Delete(_)) => return,
                Ok(watcher::Event::InitDone) => true,
                _ => false,
            };
            // Already gone before the watch started: nothing will be deleted any more.
            if listed && h.omjobs().get_opt(name).await.unwrap().is_none() {
                return;
            }
        }
    };
    tokio::time::timeout(LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("OMJob {name} was never released"));
    last
}

/// Reasons of the core Events about each OMJob, as `kubectl get events --field-selector
/// involvedObject.kind=OMJob` lists them.
fn omjob_events(ns: &str) -> BTreeMap<String, Vec<String>> {
    let dir = std::env::temp_dir();
    let out = fixture::shared().kubectl(
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            "involvedObject.kind=OMJob",
            "-o",
            "json",
        ],
        &dir,
    );
    let list: Value = serde_json::from_str(&out).unwrap();
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in list["items"].as_array().unwrap() {
        assert_eq!(e["source"]["component"], "omjob-operator", "{e}");
        by.entry(e["involvedObject"]["name"].as_str().unwrap().to_owned())
            .or_default()
            .push(e["reason"].as_str().unwrap().to_owned());
    }
    for reasons in by.values_mut() {
        reasons.sort();
    }
    by
}

/// An exit pod as the Java operator builds it (reference §2.1, §3.4): `<omjob>-exit`, its
/// labels, controlled by the OMJob with `blockOwnerDeletion`, `pipelineStatus` in the env and
/// nothing this operator adds. It sleeps, then records its run in the trace file.
fn java_exit_pod(h: &Harness, omjob: &OMJob) -> Pod {
    let name = omjob.metadata.name.clone().unwrap();
    let trace = h.trace_file(&name).display().to_string();
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("{name}-exit"),
            "labels": {
                "app.kubernetes.io/name": "openmetadata",
                "app.kubernetes.io/component": "ingestion",
                "app.kubernetes.io/managed-by": "omjob-operator",
                "omjob.pipelines.openmetadata.org/name": name,
                "omjob.pipelines.openmetadata.org/pod-type": "exit-handler"
            },
            "ownerReferences": [{"apiVersion": omjob_api::API_VERSION, "kind": "OMJob", "name": name,
                "uid": omjob.metadata.uid, "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "openmetadata-ingestion",
            "containers": [{"name": "main", "image": "ingestion",
                "command": ["sh", "-c", format!("sleep 6; echo \"$pipelineStatus java\" >> {trace}")],
                "env": [{"name": "pipelineStatus", "value": "success"}]}]
        }
    }))
    .unwrap()
}

/// What one scenario ended with.
struct Seen {
    scenario: &'static str,
    omjob: String,
    runs: Vec<String>,
    phase: Option<Phase>,
}

fn exit_pods(pods: &[Pod], omjob: &str) -> Vec<String> {
    pods.iter()
        .filter_map(|p| p.metadata.name.clone())
        .filter(|n| n.starts_with(&format!("{omjob}-exit")))
        .collect()
}

#[tokio::test]
async fn the_termination_matrix_runs_under_the_charts_crds_rbac_and_environment() {
    let h = Harness::prepare("chart").await;
    let kubeconfig = chart_world(&h).await;
    let ns = h.ns().to_owned();

    // An OMJob the Java operator left mid-exit-handler: only upstream status, no annotations,
    // its exit pod running. Created before this operator starts, as at a cut-over.
    let java = "java";
    let mut java_obj = omjob(&h, java, "exit 0", |_| {});
    java_obj["metadata"]["namespace"] = json!(ns);
    let java_obj: OMJob = serde_json::from_value(java_obj).unwrap();
    let created = h
        .omjobs()
        .create(&PostParams::default(), &java_obj)
        .await
        .unwrap();
    let java_pod = h
        .pods()
        .create(&PostParams::default(), &java_exit_pod(&h, &created))
        .await
        .unwrap();
    h.omjobs()
        .patch_status(
            java,
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"status": {"phase": "ExitHandlerRunning", "mainPodName": "java-main",
                                             "exitHandlerPodName": "java-exit"}}),
            ),
        )
        .await
        .unwrap();
    h.wait_pod_running("java-exit").await;

    let mut op = start_chart_operator(&h, &kubeconfig, "chart-0");
    wait_healthy(&mut op).await;
    // HTTP serves before the first Lease request is answered; /info then says "enabled".
    let port = op.health_port;
    poll(
        "/info to report the forbidden Lease",
        Duration::from_secs(30),
        || async move {
            http_get(port, "/info")
                .await
                .is_some_and(|(_, info)| info.contains("\"leaderElection\":\"forbidden\""))
        },
    )
    .await;
    let (_, metrics) = http_get(op.health_port, "/metrics").await.unwrap();
    assert!(metrics.contains("omjob_leader_election_enabled 0"), "{metrics}");

    let mut seen: Vec<Seen> = Vec::new();

    // The Java-left exit pod runs to its end under this operator: not deleted, not repeated.
    let done = wait_phase(&h, java, LIMIT).await;
    let pods = h.pods().list(&ListParams::default()).await.unwrap().items;
    assert_eq!(exit_pods(&pods, java), ["java-exit"], "no second exit pod");
    let still = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("java-exit"))
        .unwrap();
    assert_eq!(
        still.metadata.uid, java_pod.metadata.uid,
        "the Java exit pod was kept"
    );
    assert_eq!(h.exit_runs(java), ["success java"], "{}", op.output());
    assert_eq!(
        done.status.as_ref().unwrap().phase,
        Some(Phase::Succeeded),
        "{:?}\n{}",
        done.status,
        op.output()
    );
    seen.push(Seen {
        scenario: "Java-left, adopted mid-exit-handler",
        omjob: java.into(),
        runs: h.exit_runs(java),
        phase: done.status.and_then(|s| s.phase),
    });
    assert_healthy(&mut op, "after the adoption").await;

    // Runs that end by themselves, all at once.
    let oom_script = "python3 -c \"import time; s = 'x' * (400 * 1024 * 1024); time.sleep(60)\"";
    // The successful run reads a credential the way OpenMetadata's pods do (a secretKeyRef); it
    // must reach the pod and appear nowhere the operator writes.
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "om-secret-ok"},
        "stringData": {"OM_JWT": CREDENTIAL}
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.admin.clone(), h.ns())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    // The script checks the value's length: the value itself would put it in the spec.
    let check = format!("test \"${{#OM_JWT}}\" -eq {}", CREDENTIAL.len());
    h.create(omjob(&h, "ok", &check, |o| {
        o["spec"]["mainPodSpec"]["env"] = json!([{"name": "OM_JWT", "valueFrom": {"secretKeyRef": {"name": "om-secret-ok", "key": "OM_JWT"}}}]);
    }))
    .await;
    h.create(omjob(&h, "fail", "exit 3", |_| {})).await;
    h.create(omjob(&h, "oom", oom_script, |o| {
        o["spec"]["mainPodSpec"]["resources"] = json!({"limits": {"memory": "64Mi"}});
    }))
    .await;
    h.create(omjob(&h, "podgone", "sleep 300", |_| {})).await;
    h.create(omjob(&h, "kill", "sleep 300", |_| {})).await;
    // The additive deadline, given as the annotation the chart's schema cannot prune.
    h.create(omjob(&h, "deadline", "sleep 300", |o| {
        o["metadata"]["annotations"] = json!({annotations::ACTIVE_DEADLINE_SECONDS: "3"});
    }))
    .await;

    h.wait_pod_running("podgone-main").await;
    h.delete_pod("podgone-main").await;
    h.wait_pod_running("kill-main").await;
    h.omjobs()
        .delete("kill", &DeleteParams::background())
        .await
        .unwrap();
    let kill_phase = last_phase_before_gone(&h, "kill").await;
    seen.push(Seen {
        scenario: "OMJob deleted while running",
        omjob: "kill".into(),
        runs: h.exit_runs("kill"),
        phase: kill_phase,
    });
    assert_eq!(h.exit_runs("kill"), ["failed unknown Deleted"]);
    assert_healthy(&mut op, "after the kill").await;

    for (scenario, name) in [
        ("main exits 0", "ok"),
        ("main exits 3", "fail"),
        ("main OOM-killed", "oom"),
        ("main pod deleted", "podgone"),
        ("deadline annotation (3 s)", "deadline"),
    ] {
        let o = wait_phase(&h, name, LIMIT).await;
        let status = o.status.unwrap();
        // The chart's schema pruned the additive fields: the state came from annotations.
        assert_eq!(status.reason, None, "{name}: additive status fields are pruned");
        let ann = o.metadata.annotations.unwrap_or_default();
        assert_eq!(
            ann.get(annotations::EXIT_HANDLER_ATTEMPTS).map(String::as_str),
            Some("1"),
            "{name}"
        );
        seen.push(Seen {
            scenario,
            omjob: name.into(),
            runs: h.exit_runs(name),
            phase: status.phase,
        });
        assert_healthy(&mut op, name).await;
    }

    // SIGKILL mid-run: the main pod runs while no operator does; the new process resumes.
    h.create(omjob(&h, "restart", "sleep 4", |_| {})).await;
    h.wait_pod_running("restart-main").await;
    let first_log = op.output();
    op.kill();
    let mut op = start_chart_operator(&h, &kubeconfig, "chart-1");
    wait_healthy(&mut op).await;
    let o = wait_phase(&h, "restart", LIMIT).await;
    seen.push(Seen {
        scenario: "operator SIGKILLed mid-run, restarted",
        omjob: "restart".into(),
        runs: h.exit_runs("restart"),
        phase: o.status.and_then(|s| s.phase),
    });
    assert_healthy(&mut op, "after the restart").await;

    // A CronOMJob as OpenMetadata writes it (startingDeadlineSeconds: 0): its slot runs in its
    // minute. Suspended once its run exists, so that exactly one run is judged.
    let cron_trace = h.trace_file("cron").display().to_string();
    let template = omjob(&h, "cron", "exit 0", |_| {});
    let mut spec = template["spec"].clone();
    spec["exitHandlerSpec"]["env"][0]["value"] = json!(cron_trace);
    let cron: CronOMJob = serde_json::from_value(json!({
        "apiVersion": omjob_api::API_VERSION, "kind": "CronOMJob",
        "metadata": {"name": "cron", "namespace": ns},
        "spec": {"schedule": "* * * * *", "startingDeadlineSeconds": 0, "omJobSpec": spec}
    }))
    .unwrap();
    let crons: Api<CronOMJob> = Api::namespaced(h.admin.clone(), &ns);
    let cron = crons.create(&PostParams::default(), &cron).await.unwrap();
    let cron_uid = cron.metadata.uid.clone().unwrap();
    let owned = |o: &OMJob| o.owner_references().iter().any(|r| r.uid == cron_uid);
    let run = {
        let omjobs = h.omjobs();
        let owned = &owned;
        let mut found = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
        while found.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the CronOMJob never ran:\n{}",
                op.output()
            );
            found = omjobs
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .find(|o| owned(o));
            if found.is_none() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        found.unwrap()
    };
    crons
        .patch(
            "cron",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    let run_name = run.metadata.name.clone().unwrap();
    let slot: k8s_openapi::jiff::Timestamp = run.annotations()
        [omjob_operator::cronomjob::spawn::SCHEDULED_AT_ANNOTATION]
        .parse()
        .unwrap();
    let created = run.metadata.creation_timestamp.clone().unwrap().0;
    let late = created.duration_since(slot).as_secs_f64();
    assert!(
        (0.0..60.0).contains(&late),
        "run {run_name} started {late} s after its slot"
    );
    let o = wait_phase(&h, &run_name, LIMIT).await;
    seen.push(Seen {
        scenario: "CronOMJob, startingDeadlineSeconds: 0",
        omjob: run_name.clone(),
        runs: std::fs::read_to_string(&cron_trace)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect(),
        phase: o.status.and_then(|s| s.phase),
    });
    assert_healthy(&mut op, "after the CronOMJob").await;

    // Events: written as core/v1 Events (the chart grants nothing else), listed by kind.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = omjob_events(&ns);
        let all_final = seen.iter().all(|s| {
            events
                .get(&s.omjob)
                .is_some_and(|r| r.iter().any(|r| r == "OMJobCompleted" || r == "OMJobFailed"))
        });
        if all_final {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every OMJob got its final event: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let context = format!(
        "--- first operator ---\n{first_log}\n--- second operator ---\n{}",
        op.output()
    );
    eprintln!("\n| scenario | OMJob | exit-handler runs | pipelineStatus | final phase | events |");
    eprintln!("|---|---|---|---|---|---|");
    for s in &seen {
        let status: Vec<&str> = s.runs.iter().filter_map(|r| r.split(' ').next()).collect();
        eprintln!(
            "| {} | {} | {} | {} | {} | {} |",
            s.scenario,
            s.omjob,
            s.runs.len(),
            status.join(","),
            s.phase.map_or("-", |p| p.as_str()),
            events.get(&s.omjob).map(|r| r.join(",")).unwrap_or_default()
        );
    }

    let expect = [
        ("java", "success", Phase::Succeeded),
        ("kill", "failed", Phase::Failed),
        ("ok", "success", Phase::Succeeded),
        ("fail", "failed", Phase::Failed),
        ("oom", "failed", Phase::Failed),
        ("podgone", "failed", Phase::Failed),
        ("deadline", "failed", Phase::Failed),
        ("restart", "success", Phase::Succeeded),
        (run_name.as_str(), "success", Phase::Succeeded),
    ];
    let pods = h.pods().list(&ListParams::default()).await.unwrap().items;
    for (name, status, phase) in expect {
        let s = seen.iter().find(|s| s.omjob == name).unwrap();
        assert_eq!(
            s.runs.len(),
            1,
            "{name}: exit-handler runs {:?}\n{context}",
            s.runs
        );
        assert!(
            s.runs[0].starts_with(&format!("{status} ")),
            "{name}: {:?}",
            s.runs
        );
        assert_eq!(s.phase, Some(phase), "{name}\n{context}");
        if name != "kill" {
            assert_eq!(exit_pods(&pods, name).len(), 1, "{name}: one exit pod");
        }
    }
    let reasons = |n: &str| events.get(n).cloned().unwrap_or_default();
    for s in &seen {
        let created = reasons(&s.omjob)
            .iter()
            .filter(|r| *r == "ExitHandlerCreated")
            .count();
        let want = usize::from(s.omjob != "java");
        assert_eq!(
            created, want,
            "{}: one ExitHandlerCreated per exit pod created: {events:?}",
            s.omjob
        );
    }
    assert!(
        reasons("fail").contains(&"MainPodCompleted".to_owned()),
        "{events:?}"
    );
    assert!(
        reasons("ok").contains(&"ExitHandlerCreated".to_owned()),
        "{events:?}"
    );
    for (name, detail) in [
        ("oom", "OOMKilled"),
        ("podgone", "PodDeleted"),
        ("deadline", "DeadlineExceeded"),
        ("kill", "Deleted"),
    ] {
        let runs = &seen.iter().find(|s| s.omjob == name).unwrap().runs;
        assert!(runs[0].ends_with(detail), "{name}: {runs:?}");
    }
    assert!(
        context.contains("running WITHOUT leader election"),
        "the Lease gap is logged\n{context}"
    );
    // Under pruning, a finished OMJob is not rewritten on every reconcile: a write loop would
    // change its resourceVersion many times a second, so a quiet window of a few seconds is a
    // real test (the next safety requeue is minutes away).
    let before = h.omjobs().get("ok").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = h.omjobs().get("ok").await.unwrap().metadata.resource_version;
    assert_eq!(before, after, "a finished OMJob's status is rewritten\n{context}");
    // No credential in anything the operator wrote or logged.
    assert!(
        !context.contains(CREDENTIAL),
        "the operator logged the credential"
    );
    let written = [
        serde_json::to_string(&h.omjobs().list(&ListParams::default()).await.unwrap()).unwrap(),
        serde_json::to_string(&h.pods().list(&ListParams::default()).await.unwrap()).unwrap(),
        fixture::shared().kubectl(
            &["get", "events", "-n", h.ns(), "-o", "json"],
            &std::env::temp_dir(),
        ),
    ];
    for text in written {
        assert!(
            !text.contains(CREDENTIAL),
            "a credential in the namespace's objects"
        );
    }
    assert_healthy(&mut op, "at the end").await;
}
