//! Transient API errors are retried: operations started while the API server is down succeed
//! once it is back. In its own test binary, because it restarts the binary's shared API server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{definition, eventually, world};
use omjob_testbed::fixture;
use serde_json::json;

#[tokio::test]
async fn operations_started_while_the_api_server_is_down_succeed_when_it_returns() {
    // Patient enough for a restart: 500 ms doubling to 5 s, 12 tries (about 45 s in all).
    let w = world(
        "ps-retry",
        json!({"retryAttempts": 12, "retryInitialBackoffMillis": 500}),
    )
    .await;
    let def = json!({"pipelineType": "metadata", "workflowConfig": "a: 1"});
    w.client.deploy(definition(def), Some("r")).await.unwrap();

    let restart = tokio::spawn(async {
        fixture::shared()
            .testbed()
            .control_plane()
            .restart_apiserver(Duration::from_secs(3))
            .await
            .unwrap();
    });
    // Start the operations only once the API server is seen to be down.
    let admin = w.admin.clone();
    eventually(Duration::from_secs(15), "the API server to go down", || {
        let admin = admin.clone();
        async move { admin.apiserver_version().await.is_err().then_some(()) }
    })
    .await;
    let started = w
        .client
        .run("r")
        .await
        .expect("run is retried until the API server is back");
    let runs = w.client.runs("r").await.unwrap();
    assert!(runs.iter().any(|r| r.run_id == started.run_id), "{runs:?}");
    restart.await.unwrap();
}
