//! Every way a main stage can end, on the testbed: the exit handler runs exactly once (each run
//! appends one line to a trace file on this machine, so the lines are counted), gets the right
//! `pipelineStatus`, exit code and reason, and the OMJob ends in the right phase. The controller
//! runs under a token bound to deploy/rbac/clusterrole.yaml, not as cluster admin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Harness, node::OwnNode, omjob, poll, until, wait_phase, wait_released};
use k8s_openapi::api::{core::v1::Pod, events::v1::Event};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use omjob_api::{OMJob, Phase, annotations};
use omjob_operator::omjob::decide::Settings;
use omjob_testbed::node;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_successful_run_ends_succeeded_after_one_exit_handler_told_success() {
    let h = Harness::start("ok", Settings::default()).await;
    h.create(omjob(&h, "ok", "echo ingesting", |_| {})).await;
    let done = wait_phase(&h, "ok", LIMIT).await;
    let st = done.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Succeeded));
    assert_eq!(h.exit_runs("ok"), ["success 0 Completed"]);
    assert_eq!(st.main_pod_name.as_deref(), Some("ok-main"));
    assert_eq!(st.exit_handler_pod_name.as_deref(), Some("ok-exit"));
    assert_eq!(
        (st.main_pod_exit_code, st.exit_handler_exit_code),
        (Some(0), Some(0))
    );
    assert_eq!(st.reason.as_deref(), Some("Completed"));
    assert!(st.completion_time.is_some() && st.start_time.is_some());
    assert_eq!(
        st.message.as_deref(),
        Some("Exit handler completed with exit code: 0")
    );
    // Finished runs hold no finalizer (released right after the terminal status is written).
    wait_released(&h, "ok", LIMIT).await;
    assert!(
        h.omjobs().get_opt("ok").await.unwrap().is_some(),
        "the OMJob itself stays"
    );

    // The first run's status writes showed that this CRD keeps the additive status fields, so
    // a later run is recorded in its status alone: no outcome or attempt annotations.
    h.create(omjob(&h, "again", "echo ingesting", |_| {})).await;
    let again = wait_phase(&h, "again", LIMIT).await;
    assert_eq!(again.status.unwrap().reason.as_deref(), Some("Completed"));
    let written: Vec<_> = again
        .metadata
        .annotations
        .unwrap_or_default()
        .into_keys()
        .filter(|k| {
            [
                annotations::MAIN_OUTCOME,
                annotations::MAIN_EXIT_CODE,
                annotations::EXIT_HANDLER_ATTEMPTS,
            ]
            .contains(&k.as_str())
        })
        .collect();
    assert!(written.is_empty(), "{written:?}");
    assert_eq!(h.exit_runs("again"), ["success 0 Completed"]);
}

#[tokio::test]
async fn a_non_zero_exit_runs_the_exit_handler_once_with_failed_and_the_code() {
    let h = Harness::start("fail", Settings::default()).await;
    h.create(omjob(&h, "fail", "exit 3", |_| {})).await;
    let st = wait_phase(&h, "fail", LIMIT).await.status.unwrap();
    assert_eq!(
        st.phase,
        Some(Phase::Failed),
        "unlike the Java operator, a failed main stage fails the OMJob"
    );
    assert_eq!(h.exit_runs("fail"), ["failed 3 Error"]);
    assert_eq!(st.exit_handler_exit_code, Some(0));

    // One event per transition, failures as Warning, with the Java operator's reasons. Events are
    // published after each reconcile, so they are awaited (watched), not expected at once.
    let want = [
        ("MainPodCreated", "Normal"),
        ("MainPodCompleted", "Warning"),
        ("ExitHandlerCreated", "Normal"),
        ("OMJobFailed", "Warning"),
    ];
    let events: Api<Event> = Api::namespaced(h.admin.clone(), h.ns());
    let seen = |list: &[Event]| -> Vec<(String, String)> {
        let mut v: Vec<_> = list
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("fail"))
            .map(|e| {
                (
                    e.reason.clone().unwrap_or_default(),
                    e.type_.clone().unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let mut expected: Vec<(String, String)> = want
        .iter()
        .map(|(r, t)| ((*r).to_owned(), (*t).to_owned()))
        .collect();
    expected.sort();
    let stream = watcher(events.clone(), watcher::Config::default()).default_backoff();
    // Bounded: on timeout the list below is what is compared, and the assertion names the gap.
    let got = tokio::time::timeout(Duration::from_secs(30), async {
        let mut store = Vec::new();
        futures::pin_mut!(stream);
        while let Some(ev) = futures::StreamExt::next(&mut stream).await {
            if let Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) = ev {
                store.push(e);
                if seen(&store) == expected {
                    break;
                }
            }
        }
        seen(&store)
    })
    .await;
    let now = seen(&events.list(&Default::default()).await.unwrap().items);
    assert_eq!(got.unwrap_or(now), expected);
}

#[tokio::test]
async fn an_oom_killed_main_pod_is_reported_as_oom_killed() {
    let h = Harness::start("oom", Settings::default()).await;
    let script = "python3 -c \"import time; s = 'x' * (400 * 1024 * 1024); time.sleep(60)\"";
    h.create(omjob(&h, "oom", script, |o| {
        o["spec"]["mainPodSpec"]["resources"] = json!({"limits": {"memory": "64Mi"}});
    }))
    .await;
    let st = wait_phase(&h, "oom", LIMIT).await.status.unwrap();
    assert_eq!(
        (st.phase, st.reason.as_deref()),
        (Some(Phase::Failed), Some("OOMKilled"))
    );
    assert_eq!(h.exit_runs("oom"), ["failed 137 OOMKilled"]);
}

#[tokio::test]
async fn a_main_pod_deleted_by_someone_else_still_gets_its_exit_handler() {
    let h = Harness::start("podgone", Settings::default()).await;
    h.create(omjob(&h, "podgone", "sleep 300", |_| {})).await;
    h.wait_pod_running("podgone-main").await;
    h.delete_pod("podgone-main").await;
    let st = wait_phase(&h, "podgone", LIMIT).await.status.unwrap();
    assert_eq!(
        (st.phase, st.reason.as_deref()),
        (Some(Phase::Failed), Some("PodDeleted"))
    );
    // The exit code is 143 when the pod was seen terminated, "unknown" when it was seen gone.
    let runs = h.exit_runs("podgone");
    assert!(
        runs.len() == 1 && runs[0].starts_with("failed ") && runs[0].ends_with(" PodDeleted"),
        "{runs:?}"
    );
}

#[tokio::test]
async fn an_evicted_main_pod_is_reported_as_evicted() {
    let h = Harness::start("evicted", Settings::default()).await;
    h.create(omjob(&h, "evicted", "sleep 300", |_| {})).await;
    h.wait_pod_running("evicted-main").await;
    node::evict(
        &h.admin,
        h.ns(),
        "evicted-main",
        "The node was low on resource: memory.",
    )
    .await
    .unwrap();
    let st = wait_phase(&h, "evicted", LIMIT).await.status.unwrap();
    assert_eq!(
        (st.phase, st.reason.as_deref()),
        (Some(Phase::Failed), Some("Evicted"))
    );
    let runs = h.exit_runs("evicted");
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0].starts_with("failed ") && runs[0].ends_with(" Evicted"),
        "{runs:?}"
    );
}

#[tokio::test]
async fn a_main_pod_the_api_refuses_still_gets_its_exit_handler() {
    let h = Harness::start("refused", Settings::default()).await;
    h.create(omjob(&h, "refused", "true", |o| {
        // Admission rejects a pod whose service account does not exist.
        o["spec"]["mainPodSpec"]["serviceAccountName"] = json!("no-such-account");
    }))
    .await;
    let st = wait_phase(&h, "refused", LIMIT).await.status.unwrap();
    assert_eq!(st.reason.as_deref(), Some("CreateFailed"));
    assert!(st.message.unwrap_or_default().contains("no-such-account"));
    assert_eq!(h.exit_runs("refused"), ["failed unknown CreateFailed"]);
}

#[tokio::test]
async fn a_main_pod_that_never_starts_times_out_and_gets_its_exit_handler() {
    let h = Harness::start("stuck", Settings::default()).await;
    h.create(omjob(&h, "stuck", "true", |o| {
        o["spec"]["mainPodSpec"]["image"] = json!("registry.example/unpullable:1");
        o["spec"]["pendingTimeoutSeconds"] = json!(2);
    }))
    .await;
    let st = wait_phase(&h, "stuck", LIMIT).await.status.unwrap();
    assert_eq!(st.reason.as_deref(), Some("StartTimeout"));
    let message = st.message.unwrap_or_default();
    assert!(message.contains("did not start within 2s"), "{message}");
    assert_eq!(h.exit_runs("stuck"), ["failed unknown StartTimeout"]);
}

#[tokio::test]
async fn a_run_past_its_deadline_is_stopped_and_gets_its_exit_handler() {
    let h = Harness::start("deadline", Settings::default()).await;
    h.create(omjob(&h, "deadline", "sleep 300", |o| {
        o["spec"]["activeDeadlineSeconds"] = json!(2)
    }))
    .await;
    let st = wait_phase(&h, "deadline", LIMIT).await.status.unwrap();
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(h.exit_runs("deadline"), ["failed unknown DeadlineExceeded"]);
}

#[tokio::test]
async fn deleting_a_running_omjob_runs_the_exit_handler_before_it_goes() {
    let h = Harness::start("kill", Settings::default()).await;
    h.create(omjob(&h, "kill", "sleep 300", |_| {})).await;
    h.wait_pod_running("kill-main").await;
    h.omjobs()
        .delete("kill", &DeleteParams::background())
        .await
        .unwrap();
    until(
        h.omjobs(),
        "kill",
        "deletion (released after its exit handler)",
        LIMIT,
        |o: Option<&OMJob>| o.is_none(),
    )
    .await;
    assert_eq!(h.exit_runs("kill"), ["failed unknown Deleted"]);
}

#[tokio::test]
async fn the_skip_annotation_deletes_a_running_omjob_without_its_exit_handler() {
    let h = Harness::start("hardkill", Settings::default()).await;
    h.create(omjob(&h, "hardkill", "sleep 300", |_| {})).await;
    h.wait_pod_running("hardkill-main").await;
    let ann = json!({"metadata": {"annotations": {omjob_operator::omjob::decide::SKIP_EXIT_HANDLER_ANNOTATION: "true"}}});
    h.omjobs()
        .patch("hardkill", &PatchParams::default(), &Patch::Merge(&ann))
        .await
        .unwrap();
    h.omjobs()
        .delete("hardkill", &DeleteParams::background())
        .await
        .unwrap();
    until(
        h.omjobs(),
        "hardkill",
        "deletion without an exit handler",
        LIMIT,
        |o: Option<&OMJob>| o.is_none(),
    )
    .await;
    assert!(h.exit_runs("hardkill").is_empty());
}

#[tokio::test]
async fn a_lost_exit_handler_pod_is_replaced_and_the_run_completes() {
    let h = Harness::start("exitlost", Settings::default()).await;
    let marker = h.trace_dir.path().join("first-attempt");
    // The first exit pod marks itself and hangs; the replacement finds the marker and reports.
    let exit_script = format!(
        "if [ ! -e {m} ]; then touch {m}; sleep 300; fi; echo \"$pipelineStatus $mainPodExitCode $mainPodTerminationReason\" >> $TRACE",
        m = marker.display()
    );
    h.create(omjob(&h, "exitlost", "true", |o| {
        o["spec"]["exitHandlerSpec"]["command"] = json!(["sh", "-c", exit_script])
    }))
    .await;
    h.wait_pod_running("exitlost-exit").await;
    let first = marker.as_path();
    poll("the first exit pod to mark itself", LIMIT, || async move {
        first.exists()
    })
    .await;
    h.pods()
        .delete(
            "exitlost-exit",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let st = wait_phase(&h, "exitlost", LIMIT).await.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Succeeded));
    assert_eq!(st.exit_handler_attempts, Some(2));
    assert_eq!(st.exit_handler_pod_name.as_deref(), Some("exitlost-exit-2"));
    assert_eq!(h.exit_runs("exitlost"), ["success 0 Completed"]);
}

#[tokio::test]
async fn a_main_pod_on_a_lost_node_is_given_up_and_the_exit_handler_runs_elsewhere() {
    let settings = Settings {
        node_lost_grace: Duration::from_secs(2),
        ..Settings::default()
    };
    let h = Harness::start("nodelost", settings).await;
    // A node of the test's own: partitioning the shared one would strand the other tests' pods.
    let own = OwnNode::start(&h.admin, &format!("n-{}", h.ns())).await;
    let node_name = own.name().to_owned();
    h.create(omjob(&h, "nodelost", "sleep 300", |o| {
        o["spec"]["mainPodSpec"]["nodeSelector"] = json!({"kubernetes.io/hostname": node_name});
        o["spec"]["mainPodSpec"]["tolerations"] =
            json!([{"key": node::DEDICATED_TAINT, "operator": "Exists", "effect": "NoSchedule"}]);
    }))
    .await;
    h.wait_pod_running("nodelost-main").await;
    node::set_lost(&h.admin, &node_name, true).await.unwrap();
    let st = wait_phase(&h, "nodelost", LIMIT).await.status.unwrap();
    assert_eq!(st.reason.as_deref(), Some("NodeLost"));
    assert_eq!(h.exit_runs("nodelost"), ["failed unknown NodeLost"]);
}

#[tokio::test]
async fn pods_are_deleted_when_the_ttl_after_finished_passes() {
    let h = Harness::start("ttl", Settings::default()).await;
    h.create(omjob(&h, "ttl", "true", |o| {
        o["spec"]["ttlSecondsAfterFinished"] = json!(1)
    }))
    .await;
    wait_phase(&h, "ttl", LIMIT).await;
    for pod in ["ttl-main", "ttl-exit"] {
        until(
            h.pods(),
            pod,
            "deletion after the TTL",
            LIMIT,
            |p: Option<&Pod>| p.is_none(),
        )
        .await;
    }
    assert!(
        h.omjobs().get_opt("ttl").await.unwrap().is_some(),
        "the OMJob itself stays"
    );
}

#[tokio::test]
async fn an_omjob_exactly_as_openmetadata_writes_it_runs_to_completion() {
    let h = Harness::start("om", Settings::default()).await;
    let path = format!(
        "{}/../api/tests/fixtures/omjob-openmetadata.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut o: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let name = o["metadata"]["name"].as_str().unwrap().to_owned();
    o["metadata"]["namespace"] = json!(h.ns());
    // The simulated node runs commands, not images: swap `python main.py` for a shell script and
    // keep everything else as the server wrote it (labels, env refs, tolerations, security context).
    // The script fails unless `EMPTY_VALUE_FROM` (written as `valueFrom: {}`) is set, to "".
    o["spec"]["mainPodSpec"]["command"] = json!([
        "sh",
        "-c",
        "test \"${EMPTY_VALUE_FROM-unset}\" = \"\" && echo \"run $pipelineRunId of $ingestionPipelineFQN\""
    ]);
    let trace = h.trace_file(&name);
    o["spec"]["exitHandlerSpec"]["command"] = json!([
        "sh",
        "-c",
        format!(
            "echo \"$pipelineStatus $mainPodExitCode $mainPodTerminationReason\" >> {}",
            trace.display()
        )
    ]);
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "om-config-mysql-prod-metadata"}, "data": {"config": "workflow: yaml"}}),
    )
    .unwrap();
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(h.admin.clone(), h.ns())
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    // The server's env refers to the source's credentials Secret.
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
        json!({"metadata": {"name": "mysql-prod-credentials"}, "stringData": {"password": "s3cret"}}),
    )
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.admin.clone(), h.ns())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    // The server's nodeSelector and tolerations reach the pods (upstream #27852): run them on a
    // node of the test's own, labelled and tainted as the ingestion pool they name (the shared
    // node is left alone; no other pod tolerates the taint).
    let own = OwnNode::start(&h.admin, &format!("n-{}", h.ns())).await;
    let selector = o["spec"]["mainPodSpec"]["nodeSelector"].clone();
    let taints: Vec<Value> = o["spec"]["mainPodSpec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["operator"] == "Equal" && t["effect"] == "NoSchedule")
        .map(|t| json!({"key": t["key"], "value": t["value"], "effect": "NoSchedule"}))
        .collect();
    assert!(
        !taints.is_empty(),
        "the fixture tolerates an ingestion-pool taint"
    );
    own.set_labels_and_taints(&h.admin, selector, json!(taints)).await;
    h.create(o).await;
    let st = wait_phase(&h, &name, LIMIT).await.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Succeeded), "{st:?}");
    assert_eq!(h.exit_runs(&name), ["success 0 Completed"]);
    // The server's labels win on the pods (managed-by=openmetadata); the operator finds them anyway.
    let main = h.pods().get(&format!("{name}-main")).await.unwrap();
    for pod in [&format!("{name}-main"), &format!("{name}-exit")] {
        let on = h.pods().get(pod).await.unwrap().spec.unwrap().node_name;
        assert_eq!(on.as_deref(), Some(own.name()), "{pod} ran on the ingestion node");
    }
    assert_eq!(
        main.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "openmetadata"
    );
    // `valueFrom: {}` became a variable with an empty value, not a dropped one.
    let env = main.spec.unwrap().containers[0].env.clone().unwrap();
    let empty = env.iter().find(|e| e.name == "EMPTY_VALUE_FROM").expect("kept");
    assert_eq!(
        (empty.value.as_deref().unwrap_or(""), &empty.value_from),
        ("", &None)
    );
}

#[tokio::test]
async fn with_one_routine_permit_a_burst_is_parked_and_every_run_gets_one_exit_handler() {
    let mut h = Harness::prepare("park").await;
    h.run_controller_with(Settings::default(), 1);
    let names: Vec<String> = (0..40).map(|i| format!("park-{i}")).collect();
    let mut creates = tokio::task::JoinSet::new();
    for n in &names {
        let mut obj = omjob(&h, n, "echo ingesting", |_| {});
        obj["metadata"]["namespace"] = json!(h.ns());
        let o: OMJob = serde_json::from_value(obj).unwrap();
        let api = h.omjobs();
        creates.spawn(async move { api.create(&PostParams::default(), &o).await.unwrap() });
    }
    creates.join_all().await;
    for n in &names {
        let done = wait_phase(&h, n, LIMIT).await;
        assert_eq!(done.status.unwrap().phase, Some(Phase::Succeeded), "{n}");
        assert_eq!(h.exit_runs(n), ["success 0 Completed"], "{n}");
        wait_released(&h, n, LIMIT).await;
    }
    // The burst did queue for the one routine permit: the runs above went through parking.
    let text = h.metrics.as_ref().unwrap().encode().unwrap();
    let parked: f64 = text
        .lines()
        .filter(|l| l.starts_with("omjob_reconciles_parked_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(parked > 0.0, "no reconcile was parked:\n{text}");
}
