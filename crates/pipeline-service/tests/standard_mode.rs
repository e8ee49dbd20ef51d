//! Standard mode end to end on the testbed: batch Jobs and CronJobs written by the service under
//! its Role, run by the real Job/CronJob controllers and the simulated node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{definition, eventually, leftovers, wait_finished, world};
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ConfigMap, Pod, Secret},
};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use pipeline_service::{Error, logs::Page, runs::RunState};
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

fn cron_jobs(w: &common::World) -> kube::Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "CronJob"), "cronjobs");
    kube::Api::namespaced_with(w.admin.clone(), w.ns.name(), &ar)
}

#[tokio::test]
async fn a_run_succeeds_with_credentials_from_the_secret_and_its_log_is_paged() {
    let w = world("ps-std-run", json!({})).await;
    let def = definition(json!({
        "pipelineType": "profiler", "fullyQualifiedName": "svc.db.prof",
        "workflowConfig": {"source": {"type": "mysql"}, "auth": "${OM_JWT}"},
        "credentials": {"OM_JWT": "very-secret-jwt"},
        "overrides": {"command": ["sh", "-c",
            "echo \"hello $pipelineType $ingestionPipelineFQN run=$pipelineRunId\"; echo \"jwt-length=${#OM_JWT}\"; \
             echo \"config-has-jwt=$(printf %s \"$config\" | grep -c \"^auth: \\\"$OM_JWT\\\"$\")\"; \
             echo \"config-has-run-id=$(printf %s \"$config\" | grep -c \"^pipelineRunId: \\\"$pipelineRunId\\\"$\")\""]}
    }));
    let deployed = w.client.deploy(def, Some("prof")).await.unwrap();
    assert_eq!(
        deployed.resources,
        ["ConfigMap/om-config-prof", "Secret/om-secret-prof"]
    );
    assert!(!deployed.scheduled);
    // The credential is in the Secret only, as itself and in the rendered config.
    let cm: ConfigMap = w.ns.api::<ConfigMap>().get("om-config-prof").await.unwrap();
    assert!(!serde_json::to_string(&cm).unwrap().contains("very-secret-jwt"));
    let secret: Secret = w.ns.api::<Secret>().get("om-secret-prof").await.unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["OM_JWT"].0, b"very-secret-jwt");
    let config = String::from_utf8(data["config"].0.clone()).unwrap();
    assert!(config.contains("auth: \"very-secret-jwt\""), "{config}");
    assert!(
        config.contains("ingestionPipelineFQN: \"svc.db.prof\""),
        "{config}"
    );

    let started = w.client.run("prof").await.unwrap();
    assert_eq!(started.kind, "Job");
    assert!(started.resource.starts_with("om-job-prof-"));
    let job: Job = w.ns.api::<Job>().get(&started.resource).await.unwrap();
    assert!(!serde_json::to_string(&job).unwrap().contains("very-secret-jwt"));

    let run = wait_finished(&w, "prof", &started.run_id, MINUTE).await;
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert!(!run.scheduled);
    assert!(run.start_time.is_some() && run.end_time.is_some(), "{run:?}");

    let (key, page) = w.client.logs("prof", None).await.unwrap();
    assert_eq!(key, "profiler_task");
    let Page::Chunk { text, index, total } = page else {
        panic!("{page:?}")
    };
    assert_eq!((index, total), (0, 1));
    assert!(
        text.contains(&format!("hello profiler svc.db.prof run={}", started.run_id)),
        "{text}"
    );
    assert!(text.contains("jwt-length=15"), "{text}");
    // The config reaches the pod from the run's Secret with the token in it and the run's id.
    assert!(text.contains("config-has-jwt=1"), "{text}");
    assert!(text.contains("config-has-run-id=1"), "{text}");
    assert!(!text.contains("very-secret-jwt"), "{text}");
    // Pages past the end and bad `after` values are answered as the reference does.
    let (_, past) = w.client.logs("prof", Some("1")).await.unwrap();
    assert_eq!(past, Page::Invalid("Invalid pagination index".into()));
    let (_, bad) = w.client.logs("prof", Some("abc")).await.unwrap();
    assert_eq!(
        bad,
        Page::Invalid("Invalid pagination parameter: abc is not a valid number".into())
    );
    let (_, none) = w.client.logs("nothing-here", None).await.unwrap();
    assert_eq!(none, Page::Message("No pods found for this pipeline".into()));
}

#[tokio::test]
async fn an_oom_run_fails_with_reason_oomkilled_and_diagnostics() {
    let w = world("ps-std-oom", json!({})).await;
    let def = definition(json!({
        "pipelineType": "metadata", "workflowConfig": "source: {type: mysql}",
        "overrides": {
            "command": ["python3", "-c", "print('before-oom', flush=True)\nb = b'a' * (400 * 1024 * 1024)\nimport time\ntime.sleep(30)"],
            "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "32Mi"}}
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
    let detail = w.client.run_detail("oom", &started.run_id).await.unwrap();
    let d = detail.diagnostics.expect("a failed run has diagnostics");
    assert!(
        d.description
            .contains("Terminated - Reason: OOMKilled, ExitCode: 137"),
        "{}",
        d.description
    );
    assert!(d.description.contains(&format!("Pod: {}", d.pod)));
    assert!(d.log_tail.contains("before-oom"), "{}", d.log_tail);
    assert!(d.events.iter().any(|e| e.contains("Scheduled")), "{:?}", d.events);
    // The same run by resource name; an unknown run is a NotFound.
    assert_eq!(
        w.client
            .run_detail("oom", &started.resource)
            .await
            .unwrap()
            .run_id,
        started.run_id
    );
    assert!(matches!(
        w.client.run_detail("oom", "nope").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn kill_stops_active_runs_and_their_pods_and_leaves_finished_ones() {
    // The exit handler (the preStop hook) appends to a trace file, to show when it runs.
    let trace_dir = tempfile::tempdir().unwrap();
    let trace = trace_dir.path().join("exit-handler.runs");
    let exit = format!("echo \"$pipelineStatus $jobName\" >> {}", trace.display());
    let w = world("ps-std-kill", json!({"exitHandlerCommand": ["sh", "-c", exit]})).await;
    let quick = json!({"pipelineType": "metadata", "workflowConfig": "a: 1",
                       "overrides": {"command": ["sh", "-c", "echo done"]}});
    w.client.deploy(definition(quick), Some("k")).await.unwrap();
    let first = w.client.run("k").await.unwrap();
    assert_eq!(
        wait_finished(&w, "k", &first.run_id, MINUTE).await.state,
        RunState::Success
    );
    // Redeploy with a long-running command (replace path), then start a second run.
    let slow = json!({"pipelineType": "metadata", "workflowConfig": "a: 2",
                      "overrides": {"command": ["sh", "-c", "echo started; sleep 300"]}});
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
    assert_eq!(killed.resources, [format!("Job/{}", second.resource)]);
    let selector = format!("job-name={}", second.resource);
    eventually(MINUTE, "the killed run's pods to be gone", || async {
        let pods =
            w.ns.api::<Pod>()
                .list(&ListParams::default().labels(&selector))
                .await
                .unwrap();
        pods.items.is_empty().then_some(())
    })
    .await;
    let runs = w.client.runs("k").await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].run_id.as_str(), runs[0].state),
        (first.run_id.as_str(), RunState::Success)
    );
    // The preStop exit handler ran for the killed run only: a container that exits by itself
    // (the first run) never triggers preStop. This is standard mode's documented limit.
    let exit_handler_runs = std::fs::read_to_string(&trace).unwrap_or_default();
    assert_eq!(exit_handler_runs, format!("failed {}\n", second.resource));
    // Nothing left to kill.
    assert!(w.client.kill("k").await.unwrap().resources.is_empty());
}

#[tokio::test]
async fn a_scheduled_pipeline_runs_toggles_and_is_deleted_without_leftovers() {
    // OpenMetadata's documented default, startingDeadlineSeconds 0 ("no catch-up"), which
    // Kubernetes' CronJob controller would read as a zero-length window and never run.
    let w = world(
        "ps-std-cron",
        json!({"tolerations": [{"key": "testbed.omjob.dev/none", "operator": "Exists", "effect": "NoSchedule"}],
               "nodeSelector": "testbed.omjob.dev/simulated=true",
               "startingDeadlineSeconds": 0}),
    )
    .await;
    // A zone other than UTC: on Kubernetes 1.27+ it goes into the batch/v1 CronJob's `timeZone`
    // and the real CronJob controller schedules in it (every minute is due in every zone).
    let def = json!({"pipelineType": "usage", "schedule": "* * * * *", "enabled": false,
                     "timeZone": "Asia/Kolkata",
                     "workflowConfig": "a: 1", "credentials": {"TOKEN": "tok-123456"},
                     "overrides": {"command": ["sh", "-c", "echo scheduled run=$pipelineRunId job=$jobName; sleep 1"]}});
    let deployed = w
        .client
        .deploy(definition(def.clone()), Some("cron"))
        .await
        .unwrap();
    assert!(deployed.scheduled);
    let cj = cron_jobs(&w).get("om-cronjob-cron").await.unwrap();
    assert_eq!(cj.types.as_ref().unwrap().api_version, "batch/v1");
    assert_eq!(cj.data["spec"]["timeZone"], "Asia/Kolkata");
    assert_eq!(cj.data["spec"]["startingDeadlineSeconds"], 120);
    // The job template reads back as the service wrote it: every field it set, with its value.
    let mut written_def = definition(def.clone());
    written_def.validate(Some("cron"), false).unwrap();
    let written =
        pipeline_service::build::Builder::new(w.client.config(), &written_def).cron_job("* * * * *");
    assert_subset(
        &written["spec"]["jobTemplate"],
        &cj.data["spec"]["jobTemplate"],
        "spec.jobTemplate",
    );
    assert_eq!(cj.data["spec"]["suspend"], true);
    assert_eq!(cj.data["spec"]["concurrencyPolicy"], "Forbid");
    let pod_spec = &cj.data["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod_spec["tolerations"][0]["key"], "testbed.omjob.dev/none");

    let enabled = w.client.set_enabled("cron", true).await.unwrap();
    assert_eq!(enabled.enabled, Some(true));
    assert_eq!(
        cron_jobs(&w).get("om-cronjob-cron").await.unwrap().data["spec"]["suspend"],
        false
    );
    assert!(w.client.get("cron").await.unwrap().enabled);

    // The CronJob controller starts a Job at the next minute; it is listed as a scheduled run.
    let scheduled = eventually(Duration::from_secs(100), "a scheduled run to finish", || async {
        w.client
            .runs("cron")
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.scheduled && r.state.is_finished())
    })
    .await;
    assert_eq!(scheduled.state, RunState::Success, "{scheduled:?}");
    let pods =
        w.ns.api::<Pod>()
            .list(&ListParams::default().labels(&format!("job-name={}", scheduled.resource)))
            .await
            .unwrap();
    let pod = &pods.items[0];
    let spec = pod.spec.as_ref().unwrap();
    assert!(
        spec.tolerations
            .as_ref()
            .unwrap()
            .iter()
            .any(|t| t.key.as_deref() == Some("testbed.omjob.dev/none"))
    );
    let (_, page) = w.client.logs("cron", None).await.unwrap();
    let Page::Chunk { text, .. } = page else {
        panic!("{page:?}")
    };
    assert!(text.contains(&format!("job={}", scheduled.resource)), "{text}");
    assert!(
        !text.contains("run= "),
        "the run id comes from the Job's uid: {text}"
    );

    let disabled = w.client.set_enabled("cron", false).await.unwrap();
    assert_eq!(disabled.enabled, Some(false));
    assert_eq!(
        cron_jobs(&w).get("om-cronjob-cron").await.unwrap().data["spec"]["suspend"],
        true
    );

    // Redeploy unscheduled: the CronJob goes.
    let mut unscheduled = def;
    unscheduled.as_object_mut().unwrap().remove("schedule");
    w.client
        .deploy(definition(unscheduled), Some("cron"))
        .await
        .unwrap();
    assert!(cron_jobs(&w).get_opt("om-cronjob-cron").await.unwrap().is_none());
    assert_eq!(w.client.set_enabled("cron", true).await.unwrap().enabled, None);

    let deleted = w.client.delete("cron").await.unwrap();
    assert!(
        deleted.resources.contains(&"ConfigMap/om-config-cron".to_owned()),
        "{deleted:?}"
    );
    eventually(MINUTE, "nothing labelled or owned by the pipeline", || async {
        let left = leftovers(&w, "cron").await;
        left.is_empty().then_some(()).or_else(|| {
            eprintln!("still there: {left:#?}");
            None
        })
    })
    .await;
    assert!(matches!(w.client.run("cron").await, Err(Error::NotFound { .. })));
}

/// Fails unless every field of `written` is in `read` with the same value (the API server adds its
/// defaults, so `read` may hold more, and drops empty ones).
fn assert_subset(written: &serde_json::Value, read: &serde_json::Value, path: &str) {
    match (written, read) {
        (serde_json::Value::Object(w), serde_json::Value::Object(r)) => {
            for (k, v) in w {
                // The API server omits empty maps, lists and nulls, as Go's `omitempty` does.
                let empty = v.is_null()
                    || v.as_object().is_some_and(serde_json::Map::is_empty)
                    || v.as_array().is_some_and(Vec::is_empty);
                match r.get(k) {
                    Some(r) => assert_subset(v, r, &format!("{path}.{k}")),
                    None => assert!(empty, "{path}.{k} was written but not read back"),
                }
            }
        }
        (serde_json::Value::Array(w), serde_json::Value::Array(r)) => {
            assert_eq!(w.len(), r.len(), "{path}: {written} read back as {read}");
            for (i, (w, r)) in w.iter().zip(r).enumerate() {
                assert_subset(w, r, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(written, read, "{path}"),
    }
}

#[tokio::test]
async fn the_api_server_refuses_a_cron_job_in_an_unknown_time_zone() {
    // The service checks zones itself (the case above); this pins that the 1.27+ API server also
    // refuses one, naming the field, for CronJobs written by other tools.
    let w = world("ps-std-tz", json!({})).await;
    let cj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "bad-zone"},
        "spec": {"schedule": "* * * * *", "timeZone": "Mars/Olympus_Mons", "jobTemplate": {"spec": {"template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i", "command": ["true"]}]}}}}}
    }))
    .unwrap();
    let err = cron_jobs(&w).create(&Default::default(), &cj).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(status.message.contains("spec.timeZone"), "{}", status.message);
    assert!(cron_jobs(&w).get_opt("bad-zone").await.unwrap().is_none());
}

#[tokio::test]
async fn bad_input_is_rejected_with_the_field_and_nothing_is_created() {
    let w = world("ps-std-bad", json!({})).await;
    let cases = [
        (
            json!({"pipelineType": "metadata", "workflowConfig": "a: 1", "schedule": "every minute"}),
            "ok",
            "schedule",
        ),
        (
            json!({"pipelineType": "metadata", "workflowConfig": "a: 1"}),
            "Not_A_Label",
            "name",
        ),
        (json!({"pipelineType": "metadata"}), "ok", "workflowConfig"),
        (
            json!({"pipelineType": "metadata", "workflowConfig": "a: 1", "schedule": "@daily", "timeZone": "Mars/Olympus_Mons"}),
            "ok",
            "timeZone",
        ),
    ];
    for (body, name, field) in cases {
        let err = w.client.deploy(definition(body), Some(name)).await.unwrap_err();
        let Error::Invalid(list) = &err else {
            panic!("{err}")
        };
        assert_eq!(list[0].field, field, "{err}");
    }
    let unknown =
        pipeline_service::pipeline::from_value(json!({"pipelineType": "bogus", "workflowConfig": "a: 1"}))
            .unwrap_err();
    assert!(unknown.to_string().contains("pipelineType"), "{unknown}");
    assert!(
        w.ns.api::<ConfigMap>()
            .get_opt("om-config-ok")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.ns.api::<Secret>()
            .get_opt("om-secret-ok")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_deploy_the_api_server_rejects_is_rolled_back() {
    // An annotation key Kubernetes refuses: the CronJob (the last object) is rejected with 422.
    let w = world(
        "ps-std-rollback",
        json!({"podAnnotations": {"not a valid key!": "x"}}),
    )
    .await;
    let def = json!({"pipelineType": "metadata", "workflowConfig": "a: 1", "schedule": "@hourly",
                     "credentials": {"PASSWORD": "hunter2-hunter2"}});
    let err = w.client.deploy(definition(def), Some("rb")).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.api_code(), Some(422), "{text}");
    // Written by server-side apply, which created it here (HTTP 201): the rollback deletes it all.
    assert!(text.contains("failed to apply CronJob 'om-cronjob-rb'"), "{text}");
    assert!(
        text.contains("rolled back: Secret/om-secret-rb, ConfigMap/om-config-rb"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(leftovers(&w, "rb").await.is_empty());
}

#[tokio::test]
async fn status_finds_every_permission_under_the_documented_role() {
    let w = world("ps-std-status", json!({})).await;
    let s = w.client.status().await;
    assert!(s.reachable);
    let expected = format!(
        "v{}",
        omjob_testbed::controlplane::install::kubernetes_version().unwrap()
    );
    assert_eq!(s.version.as_deref(), Some(expected.as_str()));
    assert!(s.missing_permissions.is_empty(), "{s:?}");
    // A service account without the Role lacks them all, and status says which.
    let bare = common::service_account_client(&w.admin, w.ns.name(), common::INGESTION_SA).await;
    let other = pipeline_service::PipelineClient::new(bare, common::config(w.ns.name(), json!({})))
        .await
        .unwrap();
    let s = other.status().await;
    assert!(
        s.missing_permissions.contains(&"create batch/jobs".to_owned()),
        "{s:?}"
    );
    assert!(s.message.contains("Role/RoleBinding"));
    // Operator mode on a cluster without the OMJob CRDs (this test binary never installs them).
    let op = common::service_account_client(&w.admin, w.ns.name(), common::SERVICE_SA).await;
    let op = pipeline_service::PipelineClient::new(
        op,
        common::config(w.ns.name(), json!({"useOMJobOperator": true})),
    )
    .await
    .unwrap();
    let s = op.status().await;
    assert!(s.missing_permissions.is_empty(), "{s:?}");
    assert_eq!(s.problems.len(), 1, "{s:?}");
    assert!(
        s.problems[0].contains("CRDs (omjobs.pipelines.openmetadata.org"),
        "{s:?}"
    );
    // And its operations fail with the reference's 403 hint.
    let err = other.run("x").await.unwrap_err();
    assert_eq!(err.api_code(), Some(403), "{err}");
    assert!(err.to_string().contains("lacks permissions"), "{err}");
}

/// Whether `meta` records a server-side apply by the service.
fn applied_by_the_service(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(pipeline_service::client::FIELD_MANAGER)
            && m.operation.as_deref() == Some("Apply")
    })
}

#[tokio::test]
async fn a_redeploy_is_applied_and_drops_what_the_new_definition_leaves_out() {
    let w = world("ps-std-apply", json!({})).await;
    let first = json!({"pipelineType": "metadata", "schedule": "@daily", "timeZone": "Asia/Kolkata",
                       "enabled": true, "workflowConfig": "a: 1", "credentials": {"A": "a-1", "B": "b-1"},
                       "overrides": {"nodeSelector": {"pool": "ingest"}}});
    w.client.deploy(definition(first), Some("ssa")).await.unwrap();
    let secret = w.ns.api::<Secret>().get("om-secret-ssa").await.unwrap();
    let cm = w.ns.api::<ConfigMap>().get("om-config-ssa").await.unwrap();
    let cj = cron_jobs(&w).get("om-cronjob-ssa").await.unwrap();
    for (what, meta) in [
        ("Secret", &secret.metadata),
        ("ConfigMap", &cm.metadata),
        ("CronJob", &cj.metadata),
    ] {
        assert!(applied_by_the_service(meta), "{what}: {:?}", meta.managed_fields);
    }
    // Toggled by merge patch; the next deploy's forced apply takes `suspend` back.
    w.client.set_enabled("ssa", false).await.unwrap();
    let second = json!({"pipelineType": "metadata", "schedule": "@hourly", "enabled": true,
                        "workflowConfig": "a: 2", "credentials": {"A": "a-2"}});
    let deployed = w.client.deploy(definition(second), Some("ssa")).await.unwrap();
    assert_eq!(
        deployed.resources,
        [
            "ConfigMap/om-config-ssa",
            "Secret/om-secret-ssa",
            "CronJob/om-cronjob-ssa"
        ]
    );
    let secret = w.ns.api::<Secret>().get("om-secret-ssa").await.unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["A", "config"], "B is gone");
    assert_eq!(data["A"].0, b"a-2");
    let cj = cron_jobs(&w).get("om-cronjob-ssa").await.unwrap();
    let spec = &cj.data["spec"];
    assert_eq!(spec["schedule"], "0 * * * *");
    assert!(spec.get("timeZone").is_none(), "{spec}");
    assert_eq!(spec["suspend"], false);
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert!(pod["nodeSelector"].get("pool").is_none(), "{pod}");
    assert!(w.client.get("ssa").await.unwrap().enabled);
    w.client.delete("ssa").await.unwrap();
}
