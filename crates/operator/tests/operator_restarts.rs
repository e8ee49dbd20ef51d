//! The exit-handler guarantee across operator crashes: the real `omjob-operator` binary is
//! SIGKILLed the moment each phase boundary is seen and started again, and two replicas run at
//! once under leader election. Every exit-handler run appends a line to a trace file, so
//! "exactly once" is counted, not inferred.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    Harness, omjob,
    process::{OperatorProcess, Options},
    wait_phase,
};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Pod};
use kube::{Api, api::ListParams, runtime::wait::await_condition};
use omjob_api::{OMJob, Phase};

const LIMIT: Duration = Duration::from_secs(120);

/// Where in an OMJob's life the operator is killed.
#[derive(Debug, Clone, Copy)]
enum Boundary {
    /// The main pod exists (status may not say so yet).
    MainPodCreated,
    /// Status says Running.
    Running,
    /// The main pod has terminated (the exit pod may not exist yet).
    MainPodFinished,
    /// The exit pod exists (status may not say so yet).
    ExitPodCreated,
    /// Status says ExitHandlerRunning.
    ExitHandlerRunning,
    /// The exit pod has terminated (the terminal status may not be written yet).
    ExitPodFinished,
    /// Status is terminal (the finalizer may still be held).
    Terminal,
}

fn pod_finished(p: Option<&Pod>) -> bool {
    p.and_then(|p| p.status.as_ref())
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
}

fn phase_is(want: Phase) -> impl Fn(Option<&OMJob>) -> bool {
    move |o| o.and_then(|o| o.status.as_ref()).and_then(|s| s.phase) == Some(want)
}

async fn until<K, F>(api: Api<K>, name: &str, what: &str, cond: F)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(Option<&K>) -> bool + Send + 'static,
{
    tokio::time::timeout(LIMIT, await_condition(api, name, cond))
        .await
        .unwrap_or_else(|_| panic!("{name}: never saw {what}"))
        .unwrap();
}

/// Runs one OMJob, kills the operator as soon as `at` is seen, starts a new operator process,
/// and checks the OMJob ends Succeeded with exactly one exit-handler run and one exit pod.
async fn kill_at(prefix: &str, at: Boundary) {
    let h = Harness::prepare(prefix).await;
    let name = "job";
    let op = OperatorProcess::start(&h, &Options::single("first"));
    // Short stages, so that boundaries come quickly but not instantly.
    h.create(omjob(&h, name, "sleep 1", |o| {
        let script = o["spec"]["exitHandlerSpec"]["command"][2]
            .as_str()
            .unwrap()
            .to_owned();
        o["spec"]["exitHandlerSpec"]["command"][2] = format!("sleep 1; {script}").into();
    }))
    .await;
    let main = format!("{name}-main");
    let exit = format!("{name}-exit");
    match at {
        Boundary::MainPodCreated => until(h.pods(), &main, "the main pod", |p| p.is_some()).await,
        Boundary::Running => until(h.omjobs(), name, "Running", phase_is(Phase::Running)).await,
        Boundary::MainPodFinished => until(h.pods(), &main, "the main pod finish", pod_finished).await,
        Boundary::ExitPodCreated => until(h.pods(), &exit, "the exit pod", |p| p.is_some()).await,
        Boundary::ExitHandlerRunning => {
            until(
                h.omjobs(),
                name,
                "ExitHandlerRunning",
                phase_is(Phase::ExitHandlerRunning),
            )
            .await;
        }
        Boundary::ExitPodFinished => until(h.pods(), &exit, "the exit pod finish", pod_finished).await,
        Boundary::Terminal => until(h.omjobs(), name, "Succeeded", phase_is(Phase::Succeeded)).await,
    }
    let first_log = op.output();
    op.kill();
    let second = OperatorProcess::start(&h, &Options::single("second"));
    let done = wait_phase(&h, name, LIMIT).await;
    let released =
        |o: Option<&OMJob>| o.is_some_and(|o| o.metadata.finalizers.as_ref().is_none_or(Vec::is_empty));
    until(h.omjobs(), name, "the finalizer released", released).await;

    let context = format!(
        "killed at {at:?}\n--- first operator ---\n{first_log}\n--- second operator ---\n{}",
        second.output()
    );
    assert_eq!(
        done.status.as_ref().unwrap().phase,
        Some(Phase::Succeeded),
        "{context}"
    );
    assert_eq!(h.exit_runs(name), ["success 0 Completed"], "{context}");
    let exit_pods = h
        .pods()
        .list(&ListParams::default().labels("omjob.pipelines.openmetadata.org/pod-type=exit-handler"))
        .await
        .unwrap();
    assert_eq!(exit_pods.items.len(), 1, "{context}");
}

#[tokio::test]
async fn killed_after_the_main_pod_is_created() {
    kill_at("k-main-created", Boundary::MainPodCreated).await;
}

#[tokio::test]
async fn killed_when_running_is_written() {
    kill_at("k-running", Boundary::Running).await;
}

#[tokio::test]
async fn killed_when_the_main_pod_finishes() {
    kill_at("k-main-done", Boundary::MainPodFinished).await;
}

#[tokio::test]
async fn killed_after_the_exit_pod_is_created() {
    kill_at("k-exit-created", Boundary::ExitPodCreated).await;
}

#[tokio::test]
async fn killed_when_exit_handler_running_is_written() {
    kill_at("k-exit-running", Boundary::ExitHandlerRunning).await;
}

#[tokio::test]
async fn killed_when_the_exit_pod_finishes() {
    kill_at("k-exit-done", Boundary::ExitPodFinished).await;
}

#[tokio::test]
async fn killed_when_the_terminal_phase_is_written() {
    kill_at("k-terminal", Boundary::Terminal).await;
}

#[tokio::test]
async fn stages_that_end_while_no_operator_runs_are_caught_up_once() {
    let h = Harness::prepare("k-down").await;
    let op = OperatorProcess::start(&h, &Options::single("first"));
    h.create(omjob(&h, "job", "sleep 2; exit 5", |_| {})).await;
    until(h.omjobs(), "job", "Running", phase_is(Phase::Running)).await;
    op.kill();
    // The main pod finishes while nothing watches it.
    until(h.pods(), "job-main", "the main pod finish", pod_finished).await;
    let _second = OperatorProcess::start(&h, &Options::single("second"));
    let st = wait_phase(&h, "job", LIMIT).await.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Failed));
    assert_eq!(h.exit_runs("job"), ["failed 5 Error"]);
}

async fn lease_holder(h: &Harness) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(h.admin.clone(), h.ns());
    leases
        .get_opt("omjob-operator-leader")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|s| !s.is_empty())
}

#[tokio::test]
async fn two_replicas_run_each_exit_handler_once_and_the_standby_takes_over_from_a_killed_leader() {
    let h = Harness::prepare("replicas").await;
    let a = OperatorProcess::start(&h, &Options::replica("replica-a"));
    let b = OperatorProcess::start(&h, &Options::replica("replica-b"));
    for i in 0..4 {
        h.create(omjob(&h, &format!("first-{i}"), "sleep 1", |_| {}))
            .await;
    }
    for i in 0..4 {
        wait_phase(&h, &format!("first-{i}"), LIMIT).await;
    }
    let leader = lease_holder(&h).await.expect("a replica holds the Lease");
    let (leader_proc, standby) = if leader == a.identity { (a, b) } else { (b, a) };
    assert_eq!(leader_proc.identity, leader);

    // Kill the leader mid-run: these OMJobs are created while it leads and finish under the standby.
    for i in 0..4 {
        h.create(omjob(&h, &format!("second-{i}"), "sleep 2", |_| {}))
            .await;
    }
    until(h.omjobs(), "second-0", "Running", phase_is(Phase::Running)).await;
    leader_proc.kill();
    for i in 0..4 {
        wait_phase(&h, &format!("second-{i}"), LIMIT).await;
    }
    assert_eq!(
        lease_holder(&h).await.as_deref(),
        Some(standby.identity.as_str()),
        "the standby leads after the leader was killed:\n{}",
        standby.output()
    );
    for name in (0..4)
        .map(|i| format!("first-{i}"))
        .chain((0..4).map(|i| format!("second-{i}")))
    {
        assert_eq!(h.exit_runs(&name), ["success 0 Completed"], "{name}");
    }
}
