//! The API server goes away while OMJobs run and comes back: the operator's watches resume, and
//! every OMJob still gets exactly one exit-handler run. A test binary of its own, because it
//! restarts the control plane that every test in the binary shares.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    Harness, omjob,
    process::{OperatorProcess, Options},
    wait_phase,
};
use kube::runtime::wait::await_condition;
use omjob_api::{OMJob, Phase};
use omjob_testbed::fixture;

#[tokio::test]
async fn omjobs_running_across_an_api_server_restart_each_run_the_exit_handler_once() {
    let h = Harness::prepare("apiserver").await;
    let op = OperatorProcess::start(&h, &Options::replica("only"));
    // Main stages end while the API server is down (3 s in, down 2-8 s), so their terminations
    // are seen only through the resumed watches.
    let names: Vec<String> = (0..4).map(|i| format!("run-{i}")).collect();
    for name in &names {
        h.create(omjob(&h, name, "sleep 3; exit 2", |_| {})).await;
    }
    for name in &names {
        let running = |o: Option<&OMJob>| {
            o.and_then(|o| o.status.as_ref()).and_then(|s| s.phase) == Some(Phase::Running)
        };
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(h.omjobs(), name, running),
        )
        .await
        .unwrap()
        .unwrap();
    }
    fixture::shared()
        .testbed()
        .control_plane()
        .restart_apiserver(Duration::from_secs(6))
        .await
        .unwrap();
    for name in &names {
        let st = wait_phase(&h, name, Duration::from_secs(120))
            .await
            .status
            .unwrap();
        assert_eq!(st.phase, Some(Phase::Failed), "{name}");
        assert_eq!(h.exit_runs(name), ["failed 2 Error"], "{name}:\n{}", op.output());
    }
    // After the outage the operator still leads and still works: a new OMJob completes.
    h.create(omjob(&h, "after", "true", |_| {})).await;
    assert_eq!(
        wait_phase(&h, "after", Duration::from_secs(60))
            .await
            .status
            .unwrap()
            .phase,
        Some(Phase::Succeeded)
    );
    assert_eq!(h.exit_runs("after"), ["success 0 Completed"]);
}
