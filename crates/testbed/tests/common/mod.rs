//! Helpers shared by the testbed's integration tests.
// Test helpers: panicking with a reason is how they fail the test.
#![allow(dead_code, clippy::panic, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, runtime::wait::await_condition};

/// Waits (watching, not polling) until `cond` holds for pod `name`, or panics after `limit`.
pub async fn wait_pod(
    api: &Api<Pod>,
    name: &str,
    limit: Duration,
    what: &str,
    cond: impl Fn(&Pod) -> bool,
) -> Pod {
    let found = tokio::time::timeout(
        limit,
        await_condition(api.clone(), name, move |p: Option<&Pod>| p.is_some_and(&cond)),
    )
    .await
    .unwrap_or_else(|_| panic!("pod {name}: not {what} after {limit:?}"))
    .expect("watch");
    found.expect("pod present")
}

/// True once the pod reached `Succeeded` or `Failed`.
pub fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The first container's terminated state.
pub fn terminated(p: &Pod) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
        .expect("terminated container state")
}

/// Builds a pod from JSON (test fixtures read better as JSON).
pub fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("pod json")
}
