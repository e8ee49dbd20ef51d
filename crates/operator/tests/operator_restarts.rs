//! The exit-handler guarantee across operator crashes and concurrent operators, with the real
//! `omjob-operator` binary. Every exit-handler run appends a line to a trace file, so "exactly
//! once" is counted, not inferred.
//!
//! - Crashes at exact boundaries: the operator reaches the API server through an
//!   [`ApiProxy`] that stops it at one named request (held before the API server sees it, or
//!   stored and its answer held), and is SIGKILLed there. Each test first asserts the state the
//!   cluster was left in (so the boundary is the one its name says, not wherever a kill after a
//!   sleep happened to land), then starts a new operator and checks the run completes once.
//! - Stages that end while no operator runs at all.
//! - Two replicas under leader election, the leader killed mid-run.
//! - Two operators *without* leader election reconciling one namespace at once: the design
//!   relies on deterministic pod names, not on leadership, for exactly-once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::BTreeMap, fmt, path::Path, time::Duration};

use common::{
    Harness, exit_pod_names, omjob, pod_finished,
    process::{OperatorProcess, Options},
    proxy::{ApiProxy, Call, When},
    until, wait_phase, wait_phase_explained, wait_released,
};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Pod};
use kube::Api;
use omjob_api::{OMJob, Phase, annotations};
use omjob_operator::omjob::decide::FINALIZER;

const LIMIT: Duration = Duration::from_secs(120);

/// A main-stage script that runs until `gate` exists, then exits with `code`: the test, not a
/// sleep, decides when the main stage may end.
fn gated(gate: &Path, code: i32) -> String {
    format!(
        "until [ -e {g} ]; do sleep 0.1; done; exit {code}",
        g = gate.display()
    )
}

fn open(gate: &Path) {
    std::fs::write(gate, b"").unwrap();
}

fn phase_is(want: Phase) -> impl Fn(Option<&OMJob>) -> bool {
    move |o| o.and_then(|o| o.status.as_ref()).and_then(|s| s.phase) == Some(want)
}

/// The exact request at which the operator is killed, in the order a successful run makes them.
#[derive(Debug, Clone, Copy)]
enum Boundary {
    /// The finalizer is held; the main pod's create never reached the API server.
    BeforeMainPodCreate,
    /// The main pod was created; the operator never saw the answer (status not yet Running).
    AfterMainPodCreate,
    /// The status write of phase Running was stored; the operator never saw the answer.
    AfterRunningWritten,
    /// The main pod has finished; the exit pod's create, the first write after it, never
    /// reached the API server: nothing records the main stage's end.
    BeforeExitPodCreate,
    /// The exit pod was created (exit pod first); the operator never saw the answer, so the
    /// status still says the main stage is open.
    AfterExitPodCreate,
    /// The status write that records the main stage's end and names the exit pod was stored;
    /// the operator never saw the answer. Its phase is ExitHandlerRunning, or already Succeeded
    /// when the exit pod finished before the write (the simulated node runs it in milliseconds).
    AfterMainEndRecorded,
    /// The exit pod has finished; the terminal status write never reached the API server.
    BeforeTerminalWritten,
    /// The terminal status (Succeeded) was stored; the finalizer is still held.
    AfterTerminalWritten,
}

impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BeforeMainPodCreate => "before the main pod's create reached the API server",
            Self::AfterMainPodCreate => "after the main pod's create was stored, before its answer",
            Self::AfterRunningWritten => "after the Running status was stored, before its answer",
            Self::BeforeExitPodCreate => "before the exit pod's create reached the API server",
            Self::AfterExitPodCreate => "after the exit pod's create was stored, before its answer",
            Self::AfterMainEndRecorded => {
                "after the status recording the main stage's end was stored, before its answer"
            }
            Self::BeforeTerminalWritten => "before the terminal status write reached the API server",
            Self::AfterTerminalWritten => {
                "after the terminal status was stored, before the finalizer was released"
            }
        })
    }
}

/// What the cluster holds when the operator has been killed.
struct Left {
    omjob: OMJob,
    main: Option<Pod>,
    exit: Option<Pod>,
}

impl Left {
    fn phase(&self) -> Option<Phase> {
        self.omjob.status.as_ref().and_then(|s| s.phase)
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.omjob
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    fn holds_finalizer(&self) -> bool {
        self.omjob
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == FINALIZER)
    }

    fn main_stage_open(&self) -> bool {
        matches!(self.phase(), None | Some(Phase::Pending | Phase::Running))
    }
}

impl Boundary {
    fn when(self) -> When {
        match self {
            Self::BeforeMainPodCreate | Self::BeforeExitPodCreate | Self::BeforeTerminalWritten => {
                When::Before
            }
            Self::AfterMainPodCreate
            | Self::AfterRunningWritten
            | Self::AfterExitPodCreate
            | Self::AfterMainEndRecorded
            | Self::AfterTerminalWritten => When::After,
        }
    }

    /// Whether the main stage may end at once; otherwise it waits until after the kill, so that
    /// the operator cannot skip the boundary (a main pod that ends before Running is written
    /// goes straight to ExitHandlerRunning).
    fn main_ends_at_once(self) -> bool {
        !matches!(
            self,
            Self::BeforeMainPodCreate | Self::AfterMainPodCreate | Self::AfterRunningWritten
        )
    }

    /// The request that trips the kill.
    fn is(self, c: &Call, ns: &str, name: &str) -> bool {
        match self {
            Self::BeforeMainPodCreate | Self::AfterMainPodCreate => {
                c.creates_pod(ns, &format!("{name}-main"))
            }
            Self::AfterRunningWritten => c.writes_phase(ns, name, Phase::Running),
            Self::BeforeExitPodCreate | Self::AfterExitPodCreate => {
                c.creates_pod(ns, &format!("{name}-exit"))
            }
            Self::AfterMainEndRecorded => {
                c.writes_omjob(ns, name, Some("status")) && !c.body["status"]["reason"].is_null()
            }
            Self::BeforeTerminalWritten | Self::AfterTerminalWritten => {
                c.writes_phase(ns, name, Phase::Succeeded)
            }
        }
    }

    /// Asserts that the cluster is left exactly at this boundary.
    fn assert_left(self, l: &Left, runs: &[String], context: &str) {
        let status = &l.omjob.status;
        let annotations = &l.omjob.metadata.annotations;
        let state = format!(
            "killed {self}, but: phase {:?}, main pod {:?}, exit pod {:?}, finalizer held {}, annotations {annotations:?}, status {status:?}\n{context}",
            l.phase(),
            l.main
                .as_ref()
                .map(|p| p.status.as_ref().and_then(|s| s.phase.clone())),
            l.exit
                .as_ref()
                .map(|p| p.status.as_ref().and_then(|s| s.phase.clone())),
            l.holds_finalizer(),
        );
        let main_finished = pod_finished(l.main.as_ref());
        let exit_finished = pod_finished(l.exit.as_ref());
        let outcome = l.annotation(annotations::MAIN_OUTCOME);
        let ok = match self {
            // The finalizer is added before any pod exists: a deletion from here on still
            // waits for the exit handler.
            Self::BeforeMainPodCreate => l.holds_finalizer() && l.main.is_none() && l.main_stage_open(),
            Self::AfterMainPodCreate => {
                l.holds_finalizer() && l.main.is_some() && matches!(l.phase(), None | Some(Phase::Pending))
            }
            Self::AfterRunningWritten => {
                l.phase() == Some(Phase::Running) && l.main.is_some() && !main_finished && outcome.is_none()
            }
            Self::BeforeExitPodCreate => {
                main_finished && l.main_stage_open() && outcome.is_none() && l.exit.is_none()
            }
            // The window exit pod first opens: the pod exists, nothing else records the end.
            Self::AfterExitPodCreate => main_finished && l.main_stage_open() && l.exit.is_some(),
            Self::AfterMainEndRecorded => {
                matches!(l.phase(), Some(Phase::ExitHandlerRunning | Phase::Succeeded))
                    && l.exit.is_some()
                    && status.as_ref().and_then(|s| s.exit_handler_pod_name.as_deref()) == Some("job-exit")
            }
            // The write that makes the run Succeeded can also be the one that records the main
            // stage's end (the exit pod is created first and may finish before the next pass),
            // and even the first status write at all, when both pods finish before any pass
            // writes one (seen on a fast machine: no status yet, the bookkeeping annotations
            // written). Whichever, nothing terminal is stored yet.
            Self::BeforeTerminalWritten => {
                !l.phase().is_some_and(Phase::is_terminal) && exit_finished && runs.len() == 1
            }
            Self::AfterTerminalWritten => l.phase() == Some(Phase::Succeeded) && l.holds_finalizer(),
        };
        assert!(ok, "{state}");
        if matches!(
            self,
            Self::BeforeMainPodCreate
                | Self::AfterMainPodCreate
                | Self::AfterRunningWritten
                | Self::BeforeExitPodCreate
        ) {
            assert!(l.exit.is_none(), "{state}");
        }
    }
}

/// Runs one OMJob under an operator that is killed exactly at `at`, checks the cluster was left
/// there, starts a new operator, and checks the OMJob ends Succeeded with exactly one
/// exit-handler run and one exit pod, and its finalizer released.
async fn kill_at(prefix: &str, at: Boundary) {
    kill_at_then(prefix, at, Meanwhile::Nothing).await;
}

/// What happens to the cluster between the kill and the new operator's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meanwhile {
    Nothing,
    /// The (finished) main pod is deleted, and gone before the new operator starts.
    DeleteMainPod,
}

async fn kill_at_then(prefix: &str, at: Boundary, meanwhile: Meanwhile) {
    let h = Harness::prepare(prefix).await;
    let name = "job";
    let gate = h.trace_dir.path().join("main-may-end");
    if at.main_ends_at_once() {
        open(&gate);
    }
    let proxy = ApiProxy::start(h.operator.clone()).await;
    let ns = h.ns().to_owned();
    let tripped = proxy.trip(at.when(), move |c| at.is(c, &ns, name));
    let kubeconfig = proxy.write_kubeconfig(&h.trace_dir.path().join("proxy.kubeconfig"), h.ns());
    let op = OperatorProcess::start_via(&h, &Options::single("first"), &kubeconfig);
    h.create(omjob(&h, name, &gated(&gate, 0), |_| {})).await;

    let request = match tokio::time::timeout(LIMIT, tripped).await {
        Ok(Ok(request)) => request,
        _ => panic!("the operator never came {at} within {LIMIT:?}:\n{}", op.output()),
    };
    let first_log = op.output();
    op.kill();
    let left = Left {
        omjob: h.omjobs().get(name).await.unwrap(),
        main: h.pods().get_opt(&format!("{name}-main")).await.unwrap(),
        exit: h.pods().get_opt(&format!("{name}-exit")).await.unwrap(),
    };
    at.assert_left(
        &left,
        &h.exit_runs(name),
        &format!(
            "tripped on {} {}\n--- first operator ---\n{first_log}",
            request.method, request.path
        ),
    );

    if meanwhile == Meanwhile::DeleteMainPod {
        h.delete_pod(&format!("{name}-main")).await;
        let main = format!("{name}-main");
        until(h.pods(), &main, "deletion", LIMIT, |p: Option<&Pod>| p.is_none()).await;
    }
    open(&gate);
    let second = OperatorProcess::start(&h, &Options::single("second"));
    let done = wait_phase(&h, name, LIMIT).await;
    wait_released(&h, name, LIMIT).await;
    let context = format!(
        "killed {at}\n--- first operator ---\n{first_log}\n--- second operator ---\n{}",
        second.output()
    );
    assert_eq!(
        done.status.as_ref().unwrap().phase,
        Some(Phase::Succeeded),
        "{context}"
    );
    assert_eq!(h.exit_runs(name), ["success 0 Completed"], "{context}");
    assert_eq!(exit_pod_names(&h).await, ["job-exit"], "{context}");
}

#[tokio::test]
async fn killed_after_the_finalizer_before_the_main_pod_create_reaches_the_api_server() {
    kill_at("k-main-before", Boundary::BeforeMainPodCreate).await;
}

#[tokio::test]
async fn killed_after_the_main_pod_is_created_before_the_operator_hears_of_it() {
    kill_at("k-main-after", Boundary::AfterMainPodCreate).await;
}

#[tokio::test]
async fn killed_right_after_running_is_written() {
    kill_at("k-running", Boundary::AfterRunningWritten).await;
}

#[tokio::test]
async fn killed_as_it_creates_the_exit_pod_before_anything_records_the_main_stage_end() {
    kill_at("k-exit-before", Boundary::BeforeExitPodCreate).await;
}

#[tokio::test]
async fn killed_after_the_exit_pod_is_created_before_the_operator_hears_of_it() {
    kill_at("k-exit-after", Boundary::AfterExitPodCreate).await;
}

#[tokio::test]
async fn killed_after_the_exit_pod_is_created_and_the_main_pod_deleted_while_no_operator_runs() {
    kill_at_then(
        "k-exit-nomain",
        Boundary::AfterExitPodCreate,
        Meanwhile::DeleteMainPod,
    )
    .await;
}

#[tokio::test]
async fn killed_after_the_main_stage_end_and_the_exit_pod_are_recorded() {
    kill_at("k-main-end", Boundary::AfterMainEndRecorded).await;
}

#[tokio::test]
async fn killed_after_the_exit_pod_finished_before_the_terminal_phase_is_written() {
    kill_at("k-terminal-before", Boundary::BeforeTerminalWritten).await;
}

#[tokio::test]
async fn killed_between_the_terminal_phase_and_the_finalizer_release() {
    kill_at("k-terminal-after", Boundary::AfterTerminalWritten).await;
}

#[tokio::test]
async fn a_restarted_operator_writes_nothing_for_finished_runs() {
    let h = Harness::prepare("k-settled").await;
    let names = ["done-0", "done-1", "done-2"];
    let first = OperatorProcess::start(&h, &Options::single("first"));
    for name in names {
        h.create(omjob(&h, name, "true", |_| {})).await;
    }
    for name in names {
        wait_phase(&h, name, LIMIT).await;
        wait_released(&h, name, LIMIT).await;
    }
    first.kill();

    // The new process has written no status yet, so it does not know whether the CRD keeps
    // the additive fields: the finished runs' statuses are their record all the same, and
    // nothing is annotated, patched or created for them.
    let proxy = ApiProxy::start(h.operator.clone()).await;
    let kubeconfig = proxy.write_kubeconfig(&h.trace_dir.path().join("second.kubeconfig"), h.ns());
    let mut second = OperatorProcess::start_via(&h, &Options::single("second"), &kubeconfig);
    second.wait_ready(LIMIT).await;
    let reconciled = r#"controller="omjob",result="success""#;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while second.metric("omjob_reconciliations_total", reconciled).await < names.len() as f64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the finished runs were never reconciled:\n{}",
            second.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let writes: Vec<String> = proxy
        .forwarded()
        .iter()
        .filter(|f| f.call.is_write() && !f.call.path.contains("selfsubjectaccessreviews"))
        .map(|f| format!("{} {}", f.call.method, f.call.path))
        .collect();
    assert!(writes.is_empty(), "{writes:#?}\n{}", second.output());
    for name in names {
        assert_eq!(h.exit_runs(name), ["success 0 Completed"]);
    }
}

#[tokio::test]
async fn stages_that_end_while_no_operator_runs_are_caught_up_once() {
    let h = Harness::prepare("k-down").await;
    let main_gate = h.trace_dir.path().join("main-may-end");
    let exit_gate = h.trace_dir.path().join("exit-may-end");
    let ns = h.ns().to_owned();
    h.create(omjob(&h, "job", &gated(&main_gate, 5), |o| {
        let script = o["spec"]["exitHandlerSpec"]["command"][2]
            .as_str()
            .unwrap()
            .to_owned();
        o["spec"]["exitHandlerSpec"]["command"][2] = format!(
            "until [ -e {} ]; do sleep 0.1; done; {script}",
            exit_gate.display()
        )
        .into();
    }))
    .await;

    // First operator: killed once Running is stored; then the main pod ends with no operator.
    let proxy = ApiProxy::start(h.operator.clone()).await;
    let tripped = {
        let ns = ns.clone();
        proxy.trip(When::After, move |c| c.writes_phase(&ns, "job", Phase::Running))
    };
    let kubeconfig = proxy.write_kubeconfig(&h.trace_dir.path().join("first.kubeconfig"), h.ns());
    let first = OperatorProcess::start_via(&h, &Options::single("first"), &kubeconfig);
    tokio::time::timeout(LIMIT, tripped)
        .await
        .unwrap_or_else(|_| panic!("Running was never written:\n{}", first.output()))
        .unwrap();
    first.kill();
    open(&main_gate);
    until(h.pods(), "job-main", "main pod finish", LIMIT, pod_finished).await;

    // Second operator: catches the main stage's end up, and is killed once the exit pod is
    // created (first, before the status records the end); then the exit pod ends with no
    // operator.
    let proxy = ApiProxy::start(h.operator.clone()).await;
    let tripped = proxy.trip(When::After, move |c| c.creates_pod(&ns, "job-exit"));
    let kubeconfig = proxy.write_kubeconfig(&h.trace_dir.path().join("second.kubeconfig"), h.ns());
    let second = OperatorProcess::start_via(&h, &Options::single("second"), &kubeconfig);
    tokio::time::timeout(LIMIT, tripped)
        .await
        .unwrap_or_else(|_| panic!("the exit pod was never created:\n{}", second.output()))
        .unwrap();
    second.kill();
    assert_eq!(
        h.omjobs().get("job").await.unwrap().status.and_then(|s| s.phase),
        Some(Phase::Running),
        "the exit pod is created before the status records the main stage's end"
    );
    open(&exit_gate);
    until(h.pods(), "job-exit", "exit pod finish", LIMIT, pod_finished).await;

    let third = OperatorProcess::start(&h, &Options::single("third"));
    let st = wait_phase(&h, "job", LIMIT).await.status.unwrap();
    wait_released(&h, "job", LIMIT).await;
    assert_eq!(st.phase, Some(Phase::Failed), "{}", third.output());
    assert_eq!(h.exit_runs("job"), ["failed 5 Error"]);
    assert_eq!(exit_pod_names(&h).await, ["job-exit"]);
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
        h.create(omjob(&h, &format!("first-{i}"), "true", |_| {})).await;
    }
    let logs = |procs: &[&OperatorProcess]| {
        procs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.identity, p.output()))
            .collect::<String>()
    };
    for i in 0..4 {
        wait_phase_explained(&h, &format!("first-{i}"), LIMIT, || logs(&[&a, &b])).await;
    }
    let leader = lease_holder(&h).await.expect("a replica holds the Lease");
    assert!(
        leader == a.identity || leader == b.identity,
        "the Lease is held by {leader}, neither replica"
    );
    let (leader_proc, standby) = if leader == a.identity { (a, b) } else { (b, a) };

    // Kill the leader mid-run: these main stages start under the leader and cannot end before
    // it is killed (they wait for the gate), so they finish under the standby.
    let gate = h.trace_dir.path().join("second-may-end");
    for i in 0..4 {
        h.create(omjob(&h, &format!("second-{i}"), &gated(&gate, 0), |_| {}))
            .await;
    }
    for i in 0..4 {
        let name = format!("second-{i}");
        until(h.omjobs(), &name, "Running", LIMIT, phase_is(Phase::Running)).await;
    }
    leader_proc.kill();
    open(&gate);
    for i in 0..4 {
        wait_phase_explained(&h, &format!("second-{i}"), LIMIT, || logs(&[&standby])).await;
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
        assert_eq!(
            h.exit_runs(&name),
            ["success 0 Completed"],
            "{name}\n--- standby {} ---\n{}",
            standby.identity,
            standby.output()
        );
    }
    let want: Vec<String> = (0..4)
        .map(|i| format!("first-{i}-exit"))
        .chain((0..4).map(|i| format!("second-{i}-exit")))
        .collect();
    assert_eq!(exit_pod_names(&h).await, want);
}

/// How a run of the two-operator batch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Success,
    ExitThree,
    MainPodDeleted,
}

#[tokio::test]
async fn two_operators_without_leader_election_run_each_exit_handler_exactly_once() {
    let h = Harness::prepare("unelected").await;
    // Both active at once, as OpenMetadata's chart would run two replicas: no Lease (here
    // LEADER_ELECTION=false; under the chart the Lease is forbidden, with the same effect). Each
    // reaches the API server through a proxy of its own, to show that both really wrote.
    let mut operators = Vec::new();
    for id in ["unelected-a", "unelected-b"] {
        let proxy = ApiProxy::start(h.operator.clone()).await;
        let kubeconfig = proxy.write_kubeconfig(&h.trace_dir.path().join(format!("{id}.kubeconfig")), h.ns());
        let mut op = OperatorProcess::start_via(&h, &Options::single(id), &kubeconfig);
        op.wait_ready(LIMIT).await;
        operators.push((op, proxy));
    }
    let mut batch = BTreeMap::new();
    for i in 0..4 {
        batch.insert(format!("ok-{i}"), Ending::Success);
        batch.insert(format!("fail-{i}"), Ending::ExitThree);
        batch.insert(format!("gone-{i}"), Ending::MainPodDeleted);
    }
    for (name, ending) in &batch {
        let script = match ending {
            Ending::Success => "true",
            Ending::ExitThree => "exit 3",
            Ending::MainPodDeleted => "sleep 300",
        };
        h.create(omjob(&h, name, script, |_| {})).await;
    }
    for (name, _) in batch.iter().filter(|(_, e)| **e == Ending::MainPodDeleted) {
        let main = format!("{name}-main");
        h.wait_pod_running(&main).await;
        h.delete_pod(&main).await;
    }
    let mut finished = BTreeMap::new();
    for name in batch.keys() {
        finished.insert(name.clone(), wait_phase(&h, name, LIMIT).await);
        wait_released(&h, name, LIMIT).await;
    }
    // A controller whose cache lags could still act on an old view: wait until neither writes.
    for (op, proxy) in &operators {
        proxy
            .wait_quiet(&op.identity, Duration::from_secs(2), Duration::from_secs(60))
            .await;
    }

    let logs: String = operators
        .iter()
        .map(|(op, _)| format!("--- {} ---\n{}", op.identity, op.output()))
        .collect();
    for (name, ending) in &batch {
        let st = finished[name].status.clone().unwrap();
        let runs = h.exit_runs(name);
        let context = format!("{name} ({ending:?}): status {st:?}, runs {runs:?}\n{logs}");
        assert_eq!(runs.len(), 1, "{context}");
        match ending {
            Ending::Success => {
                assert_eq!(st.phase, Some(Phase::Succeeded), "{context}");
                assert_eq!(runs[0], "success 0 Completed", "{context}");
            }
            Ending::ExitThree => {
                assert_eq!(st.phase, Some(Phase::Failed), "{context}");
                assert_eq!(runs[0], "failed 3 Error", "{context}");
            }
            Ending::MainPodDeleted => {
                assert_eq!(st.phase, Some(Phase::Failed), "{context}");
                assert_eq!(st.reason.as_deref(), Some("PodDeleted"), "{context}");
                assert!(
                    runs[0].starts_with("failed ") && runs[0].ends_with(" PodDeleted"),
                    "{context}"
                );
            }
        }
        assert_eq!(st.exit_handler_attempts, Some(1), "{context}");
        let now = h.omjobs().get(name).await.unwrap();
        assert!(common::released(Some(&now)), "{context}");
        assert_eq!(now.status.and_then(|s| s.phase), st.phase, "{context}");
    }
    let want: Vec<String> = batch.keys().map(|n| format!("{n}-exit")).collect();
    assert_eq!(exit_pod_names(&h).await, want, "one exit pod per OMJob\n{logs}");

    // Both operators took part: each sent writes about the batch's OMJobs and pods.
    for (op, proxy) in &operators {
        let writes: Vec<_> = proxy
            .forwarded()
            .into_iter()
            .filter(|f| {
                f.call.is_write() && (f.call.path.contains("/omjobs/") || f.call.path.ends_with("/pods"))
            })
            .collect();
        let creates = writes.iter().filter(|f| f.call.path.ends_with("/pods")).count();
        let conflicts = writes
            .iter()
            .filter(|f| f.call.path.ends_with("/pods") && f.status == Some(409))
            .count();
        eprintln!(
            "{}: {} writes, {creates} pod creates ({conflicts} found the pod already created)",
            op.identity,
            writes.len()
        );
        assert!(!writes.is_empty(), "{} never wrote:\n{logs}", op.identity);
    }
}
