//! Operator mode end to end on the testbed: OMJobs and CronOMJobs written by the service under
//! its Role, run by this project's OMJob controller (in-process, under the operator's
//! ClusterRole) and the simulated node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{definition, eventually, leftovers, wait_finished, world};
use k8s_openapi::api::core::v1::Pod;
use kube::{ResourceExt as _, api::PostParams};
use omjob_api::{CronOMJob, OMJob};
use pipeline_service::{logs::Page, runs::RunState};
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

fn operator() -> serde_json::Value {
    json!({"useOMJobOperator": true,
           "tolerations": [{"key": "testbed.omjob.dev/none", "operator": "Exists"}],
           "imagePullSecrets": "regcred"})
}

#[tokio::test]
async fn an_on_demand_run_is_an_omjob_that_succeeds_and_its_main_log_is_paged() {
    let w = world("ps-op-run", operator()).await;
    let def = definition(json!({
        "pipelineType": "autoClassification", "workflowConfig": "source: {type: pg}",
        "credentials": {"OM_JWT": "op-secret-jwt"},
        "overrides": {"command": ["sh", "-c", "echo main $pipelineType jwt=${#OM_JWT}"]}
    }));
    w.client.deploy(def, Some("opr")).await.unwrap();
    let started = w.client.run("opr").await.unwrap();
    assert_eq!(started.kind, "OMJob");
    let omjob: OMJob = w.ns.api::<OMJob>().get(&started.resource).await.unwrap();
    let text = serde_json::to_string(&omjob).unwrap();
    assert!(!text.contains("op-secret-jwt"), "{text}");
    assert_eq!(omjob.labels()["app.kubernetes.io/run-id"], started.run_id);
    let exit = omjob.spec.exit_handler_spec.as_ref().unwrap();
    assert_eq!(
        exit.image_pull_secrets.as_ref().unwrap()[0].name.as_deref(),
        Some("regcred")
    );
    assert_eq!(exit.tolerations.as_ref().unwrap().len(), 1);

    let run = wait_finished(&w, "opr", &started.run_id, MINUTE).await;
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert!(run.start_time.is_some() && run.end_time.is_some());
    let (key, page) = w.client.logs("opr", None).await.unwrap();
    assert_eq!(key, "auto_classification_task");
    let Page::Chunk { text, total, .. } = page else {
        panic!("{page:?}")
    };
    // The main pod's log, not the exit handler's.
    assert_eq!((text.as_str(), total), ("main autoClassification jwt=13\n", 1));
}

#[tokio::test]
async fn an_oom_omjob_fails_with_reason_and_diagnostics_of_its_main_pod() {
    let w = world("ps-op-oom", operator()).await;
    let def = definition(json!({
        "pipelineType": "metadata", "workflowConfig": "a: 1",
        "overrides": {
            "command": ["python3", "-c", "print('op-before-oom', flush=True)\nb = b'a' * (400 * 1024 * 1024)\nimport time\ntime.sleep(30)"],
            "resources": {"limits": {"memory": "64Mi"}}
        }
    }));
    w.client.deploy(def, Some("oom")).await.unwrap();
    let started = w.client.run("oom").await.unwrap();
    let run = wait_finished(&w, "oom", &started.run_id, MINUTE).await;
    assert_eq!(
        (run.state, run.reason.as_deref()),
        (RunState::Failed, Some("OOMKilled")),
        "{run:?}"
    );
    let d = w
        .client
        .run_detail("oom", &started.run_id)
        .await
        .unwrap()
        .diagnostics
        .unwrap();
    assert_eq!(d.pod, format!("{}-main", started.resource));
    assert!(
        d.description.contains("Reason: OOMKilled, ExitCode: 137"),
        "{}",
        d.description
    );
    assert!(d.log_tail.contains("op-before-oom"), "{}", d.log_tail);

    // TTL removes an OMJob's pods but keeps the OMJob: diagnostics preserved before that (as
    // `serve` does periodically) still answer afterwards.
    let kept = w.client.preserve_diagnostics().await.unwrap();
    assert_eq!(
        kept,
        [pipeline_service::client::diagnostics_config_map(
            &started.resource
        )]
    );
    assert!(
        w.client.preserve_diagnostics().await.unwrap().is_empty(),
        "kept once"
    );
    w.ns.api::<Pod>()
        .delete(&d.pod, &Default::default())
        .await
        .unwrap();
    eventually(MINUTE, "the main pod to be gone", || async {
        w.ns.api::<Pod>()
            .get_opt(&d.pod)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let later = w
        .client
        .run_detail("oom", &started.run_id)
        .await
        .unwrap()
        .diagnostics
        .unwrap();
    assert_eq!(later, d);
}

#[tokio::test]
async fn kill_deletes_active_omjobs_after_their_exit_handler_and_their_pods_go() {
    let w = world("ps-op-kill", operator()).await;
    let quick =
        json!({"pipelineType": "metadata", "workflowConfig": "a: 1", "overrides": {"command": ["true"]}});
    w.client.deploy(definition(quick), Some("k")).await.unwrap();
    let first = w.client.run("k").await.unwrap();
    assert_eq!(
        wait_finished(&w, "k", &first.run_id, MINUTE).await.state,
        RunState::Success
    );
    let slow = json!({"pipelineType": "metadata", "workflowConfig": "a: 1",
                      "overrides": {"command": ["sh", "-c", "sleep 300"]}});
    w.client.deploy(definition(slow), Some("k")).await.unwrap();
    let second = w.client.run("k").await.unwrap();
    eventually(MINUTE, "the second run to be running", || async {
        w.client
            .runs("k")
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.run_id == second.run_id && r.state == RunState::Running)
    })
    .await;
    let killed = w.client.kill("k").await.unwrap();
    assert_eq!(killed.resources, [format!("OMJob/{}", second.resource)]);
    let main = format!("{}-main", second.resource);
    eventually(MINUTE, "the killed OMJob and its pods to be gone", || async {
        let omjob = w.ns.api::<OMJob>().get_opt(&second.resource).await.unwrap();
        let pod = w.ns.api::<Pod>().get_opt(&main).await.unwrap();
        (omjob.is_none() && pod.is_none()).then_some(())
    })
    .await;
    let runs = w.client.runs("k").await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].run_id, first.run_id);
}

#[tokio::test]
async fn a_pipeline_scheduled_with_openmetadatas_default_deadline_of_zero_runs_in_its_minute() {
    let mut config = operator();
    config["startingDeadlineSeconds"] = json!(0);
    let w = world("ps-op-zero", config).await;
    let def = json!({"pipelineType": "usage", "schedule": "* * * * *",
                     "fullyQualifiedName": "svc.usage", "workflowConfig": "a: 1"});
    w.client.deploy(definition(def), Some("zero")).await.unwrap();
    let cron: CronOMJob = w.ns.api::<CronOMJob>().get("om-cronomjob-zero").await.unwrap();
    assert_eq!(cron.spec.starting_deadline_seconds, Some(0));
    // The in-process CronOMJob controller starts the next minute's slot; its OMJob runs both pods.
    let run = eventually(Duration::from_secs(100), "a scheduled run to finish", || async {
        w.client
            .runs("zero")
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.scheduled && r.state.is_finished())
    })
    .await;
    assert_eq!(run.state, RunState::Success, "{run:?}");
}

#[tokio::test]
async fn a_scheduled_pipeline_is_a_cronomjob_that_toggles_and_delete_removes_its_omjobs() {
    let w = world("ps-op-cron", operator()).await;
    let def = json!({"pipelineType": "lineage", "schedule": "@hourly", "timeZone": "Europe/Paris",
                     "fullyQualifiedName": "svc.lineage", "workflowConfig": "a: 1",
                     "credentials": {"TOKEN": "cron-secret-1"}});
    let deployed = w.client.deploy(definition(def), Some("sched")).await.unwrap();
    assert_eq!(deployed.resources.last().unwrap(), "CronOMJob/om-cronomjob-sched");
    let cron: CronOMJob = w.ns.api::<CronOMJob>().get("om-cronomjob-sched").await.unwrap();
    assert_eq!(cron.spec.schedule, "0 * * * *");
    assert_eq!(cron.spec.time_zone.as_deref(), Some("Europe/Paris"));
    assert_eq!(cron.spec.suspend, Some(false));
    // Applied with upstream's fields, then the additive deadline merge-patched: our CRD keeps it.
    assert_eq!(cron.spec.om_job_spec.active_deadline_seconds, Some(7200));
    assert!(
        cron.managed_fields().iter().any(|m| m.manager.as_deref()
            == Some(pipeline_service::client::FIELD_MANAGER)
            && m.operation.as_deref() == Some("Apply")),
        "{:?}",
        cron.managed_fields()
    );
    assert!(!cron.labels().contains_key("app.kubernetes.io/run-id"));
    assert!(!serde_json::to_string(&cron).unwrap().contains("cron-secret-1"));
    let value = serde_json::to_value(&cron.spec.om_job_spec).unwrap();
    for pod in ["mainPodSpec", "exitHandlerSpec"] {
        assert_eq!(
            value[pod]["tolerations"][0]["key"], "testbed.omjob.dev/none",
            "{pod}"
        );
        let env = value[pod]["env"].as_array().unwrap();
        assert!(
            env.contains(&json!({"name": "pipelineRunId", "value": "{{ omjob.uid }}"})),
            "{pod}"
        );
        assert!(env.contains(&json!({"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "om-secret-sched", "key": "TOKEN"}}})));
        // Scheduled runs read the pipeline's rendered config; it holds the token, so it is a Secret.
        assert!(env.contains(&json!({"name": "config", "valueFrom": {"secretKeyRef": {"name": "om-secret-sched", "key": "config"}}})));
    }

    assert_eq!(
        w.client.set_enabled("sched", false).await.unwrap().enabled,
        Some(false)
    );
    assert_eq!(
        w.ns.api::<CronOMJob>()
            .get("om-cronomjob-sched")
            .await
            .unwrap()
            .spec
            .suspend,
        Some(true)
    );
    assert_eq!(
        w.client.set_enabled("sched", true).await.unwrap().enabled,
        Some(true)
    );
    assert_eq!(
        w.ns.api::<CronOMJob>()
            .get("om-cronomjob-sched")
            .await
            .unwrap()
            .spec
            .suspend,
        Some(false)
    );

    // What the CronOMJob controller would spawn for a slot: an OMJob owned by the CronOMJob with
    // the template's labels and spec. It counts as a scheduled run, and delete removes it.
    let spawned: OMJob = serde_json::from_value(json!({
        "apiVersion": omjob_api::API_VERSION, "kind": "OMJob",
        "metadata": {"name": omjob_api::names::spawned_omjob_name("om-cronomjob-sched", 1_700_000_000).unwrap(),
                     "labels": cron.labels(),
                     "ownerReferences": [{"apiVersion": omjob_api::API_VERSION, "kind": "CronOMJob",
                                          "name": "om-cronomjob-sched", "uid": cron.uid().unwrap()}]},
        "spec": {"mainPodSpec": {"image": "i", "serviceAccountName": common::INGESTION_SA, "command": ["true"]},
                 "exitHandlerSpec": {"image": "i", "command": ["true"]}}
    }))
    .unwrap();
    w.ns.api::<OMJob>()
        .create(&PostParams::default(), &spawned)
        .await
        .unwrap();
    let scheduled = wait_finished(&w, "sched", &spawned.name_any(), MINUTE).await;
    assert!(scheduled.scheduled);
    assert_eq!(scheduled.state, RunState::Success);

    let deleted = w.client.delete("sched").await.unwrap();
    assert!(
        deleted
            .resources
            .contains(&format!("OMJob/{}", spawned.name_any())),
        "{deleted:?}"
    );
    eventually(MINUTE, "nothing labelled or owned by the pipeline", || async {
        let left = leftovers(&w, "sched").await;
        left.is_empty().then_some(()).or_else(|| {
            eprintln!("still there: {left:#?}");
            None
        })
    })
    .await;
}

#[tokio::test]
async fn status_finds_every_operator_mode_permission_under_the_documented_role() {
    let w = world("ps-op-status", operator()).await;
    let s = w.client.status().await;
    assert!(s.reachable && s.missing_permissions.is_empty(), "{s:?}");
}
