//! What a current Kubernetes (1.34) does to pods and Jobs, and that the simulated node plays its
//! part: the API server's version and groups, job-tracking finalizers, the `DisruptionTarget`
//! condition the Job controller's pod failure policy reads, graceful deletion of a Job's pod, and
//! `kubectl create token`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::wait_pod;
use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{Pod, ServiceAccount},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
    runtime::wait::await_condition,
};
use omjob_testbed::{controlplane::install, fixture, node};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);
const JOB_TRACKING: &str = "batch.kubernetes.io/job-tracking";

fn kubectl(args: &[&str]) -> String {
    fixture::shared().kubectl(args, std::path::Path::new("."))
}

fn job(name: &str, spec: serde_json::Value) -> Job {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

async fn job_pods(ns: &fixture::TestNamespace, job: &str) -> Vec<Pod> {
    ns.api::<Pod>()
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

/// Polls until one of `job`'s pods satisfies `cond` (the Job controller creates them, so there is
/// no name to watch yet).
async fn wait_job_pod(
    ns: &fixture::TestNamespace,
    job: &str,
    what: &str,
    cond: impl Fn(&Pod) -> bool,
) -> Pod {
    tokio::time::timeout(LIMIT, async {
        loop {
            if let Some(p) = job_pods(ns, job).await.into_iter().find(&cond) {
                break p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("job {job}: no pod {what} after {LIMIT:?}"))
}

async fn wait_job(jobs: &Api<Job>, name: &str, what: &str, cond: impl Fn(&Job) -> bool) -> Job {
    tokio::time::timeout(
        LIMIT,
        await_condition(jobs.clone(), name, move |j: Option<&Job>| j.is_some_and(&cond)),
    )
    .await
    .unwrap_or_else(|_| panic!("job {name}: not {what} after {LIMIT:?}"))
    .unwrap()
    .unwrap()
}

fn has_condition(j: &Job, kind: &str) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

#[tokio::test]
async fn the_api_server_reports_the_built_version_and_serves_batch_v1_only() {
    let version = install::kubernetes_version().unwrap();
    let info = fixture::shared()
        .client()
        .await
        .apiserver_version()
        .await
        .unwrap();
    assert_eq!(info.git_version, format!("v{version}"));
    let minor = version.split('.').nth(1).unwrap();
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", minor));

    let out = kubectl(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], format!("v{version}"));
    assert_eq!(v["clientVersion"]["gitVersion"], format!("v{version}"));

    let groups = kubectl(&["api-versions"]);
    let groups: Vec<&str> = groups.lines().collect();
    assert!(groups.contains(&"batch/v1"), "{groups:?}");
    assert!(!groups.contains(&"batch/v1beta1"), "{groups:?}");
}

#[tokio::test]
async fn kubectl_create_token_issues_a_token_the_api_server_accepts() {
    let ns = fixture::shared().namespace("token").await;
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap();
    ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let token = kubectl(&["-n", ns.name(), "create", "token", "robot", "--duration=10m"]);
    let token = token.trim();
    // The admin kubeconfig's server and CA, with the new token in place of the admin's.
    let out = kubectl(&["--token", token, "auth", "whoami", "-o", "json"]);
    let who: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        format!("system:serviceaccount:{}:robot", ns.name())
    );
}

#[tokio::test]
async fn a_jobs_pod_carries_the_tracking_finalizer_until_the_job_controller_counts_it() {
    let ns = fixture::shared().namespace("tracking").await;
    let jobs: Api<Job> = ns.api();
    let spec = json!({"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
        "name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 2"]}]}}});
    jobs.create(&PostParams::default(), &job("tracked", spec))
        .await
        .unwrap();
    let pods: Api<Pod> = ns.api();
    let name = wait_job_pod(&ns, "tracked", "created", |_| true)
        .await
        .metadata
        .name
        .unwrap();
    let p = wait_pod(&pods, &name, LIMIT, "running", running).await;
    assert!(
        p.metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == JOB_TRACKING),
        "a running Job pod carries {JOB_TRACKING}"
    );

    let done = wait_job(&jobs, "tracked", "complete", |j| has_condition(j, "Complete")).await;
    let status = done.status.unwrap();
    assert_eq!(status.succeeded, Some(1));
    assert!(
        status
            .uncounted_terminated_pods
            .is_none_or(|u| u.succeeded.unwrap_or_default().is_empty()),
        "every terminated pod is counted"
    );
    let finished = wait_pod(&pods, &name, LIMIT, "released", |p| {
        !p.metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .iter()
            .any(|f| f == JOB_TRACKING)
    })
    .await;
    assert_eq!(
        finished.status.and_then(|s| s.phase).as_deref(),
        Some("Succeeded")
    );
}

#[tokio::test]
async fn an_eviction_the_pod_failure_policy_ignores_is_replaced_without_counting_a_failure() {
    let ns = fixture::shared().namespace("disrupt").await;
    let marker = tempfile::tempdir().unwrap();
    let marker = marker.path().join("first-run-done");
    // The first pod waits to be evicted; its replacement finds the marker and succeeds.
    let script = format!(
        "if [ -e {m} ]; then echo replacement; exit 0; fi; touch {m}; sleep 120",
        m = marker.display()
    );
    let spec = json!({
        "backoffLimit": 0,
        "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
        ]},
        "template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}}
    });
    let jobs: Api<Job> = ns.api();
    jobs.create(&PostParams::default(), &job("evicted", spec))
        .await
        .unwrap();
    let pods: Api<Pod> = ns.api();
    let first = wait_job_pod(&ns, "evicted", "running its first run", |p| {
        running(p) && marker.exists()
    })
    .await
    .metadata
    .name
    .unwrap();
    node::evict(
        &ns.client(),
        ns.name(),
        &first,
        "The node was low on resource: memory.",
    )
    .await
    .unwrap();
    let evicted = wait_pod(&pods, &first, LIMIT, "failed", common::finished).await;
    let disruption = evicted
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("the evicted pod carries DisruptionTarget");
    assert_eq!(
        (disruption.status.as_str(), disruption.reason.as_deref()),
        ("True", Some("TerminationByKubelet"))
    );

    // With backoffLimit 0 a counted failure would fail the Job; the ignored one is replaced.
    let done = wait_job(&jobs, "evicted", "finished", |j| {
        has_condition(j, "Complete") || has_condition(j, "Failed")
    })
    .await;
    assert!(has_condition(&done, "Complete"), "{:?}", done.status);
    let status = done.status.unwrap();
    assert_eq!(status.succeeded, Some(1));
    assert_eq!(status.failed.unwrap_or_default(), 0);
}

#[tokio::test]
async fn a_deleted_job_pod_ends_terminal_runs_once_and_is_replaced() {
    let ns = fixture::shared().namespace("jobdel").await;
    let trace = tempfile::tempdir().unwrap();
    let trace = trace.path().join("starts");
    let script = format!(
        "echo start >> {t}; if [ $(wc -l < {t}) -gt 1 ]; then exit 0; fi; trap 'exit 143' TERM; sleep 120 & wait",
        t = trace.display()
    );
    let spec = json!({"backoffLimit": 1, "template": {"spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}}});
    let jobs: Api<Job> = ns.api();
    jobs.create(&PostParams::default(), &job("deleted", spec))
        .await
        .unwrap();
    let pods: Api<Pod> = ns.api();
    let first = wait_job_pod(&ns, "deleted", "running", running).await;
    let first_name = first.metadata.name.clone().unwrap();
    let first_uid = first.metadata.uid.clone().unwrap();
    pods.delete(&first_name, &DeleteParams::default()).await.unwrap();

    let done = wait_job(&jobs, "deleted", "complete", |j| has_condition(j, "Complete")).await;
    let status = done.status.unwrap();
    assert_eq!((status.succeeded, status.failed), (Some(1), Some(1)));
    // The deleted pod leaves once the Job controller released it, and it ran exactly once: the
    // node does not start a pod again that it already ended.
    tokio::time::timeout(
        LIMIT,
        await_condition(pods.clone(), &first_name, |p: Option<&Pod>| {
            p.is_none_or(|p| p.metadata.uid.as_deref() != Some(first_uid.as_str()))
        }),
    )
    .await
    .expect("the deleted pod goes")
    .unwrap();
    let starts = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(
        starts.lines().count(),
        2,
        "one run each for the deleted pod and its replacement"
    );
}
