//! The HTTP API against its own OpenAPI document: Schemathesis (from PyPI, pinned in
//! `omjob_testbed::tools`) generates requests from `/api/v1/openapi.json` and sends them to the
//! service, served on loopback and working on the testbed, and checks every answer: no 5xx, only
//! documented status codes and content types, bodies matching their schemas, invalid input
//! refused, and routes that refuse a missing token.
//!
//! Two of its checks are left out, each for a reason the document cannot remove:
//! - `positive_data_acceptance` expects every schema-valid request to succeed, but some rules
//!   are beyond JSON Schema: cron syntax of `schedule`, IANA zones, `${NAME}` references to
//!   declared credentials. Those answers are 400s naming the field, which the other checks cover.
//! - `use_after_free` expects a deleted pipeline's routes to answer 404, but `/logs` answers 200
//!   `{"logs": "No pods found for this pipeline"}` for any name, as OpenMetadata's client does
//!   (compat §6.5) and its server expects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{process::Stdio, sync::Arc, time::Duration};

use common::world;
use pipeline_service::{
    config::ApiToken,
    http::{AppState, router, serve},
    metrics::Metrics,
};
use serde_json::json;

const TOKEN: &str = "schemathesis-token-0123456789";
/// Examples per operation and phase: enough to reach every documented answer of the 11
/// operations, small enough for about half a minute.
const MAX_EXAMPLES: &str = "25";
/// A fixed seed, so that a failure can be replayed with the same requests.
const SEED: &str = "20261201";

#[tokio::test]
async fn the_api_answers_as_its_openapi_document_says() {
    let schemathesis = tokio::task::spawn_blocking(omjob_testbed::tools::schemathesis)
        .await
        .unwrap()
        .unwrap();
    let w = world("ps-openapi", json!({})).await;
    let ns = w.ns.name().to_owned();
    let client =
        pipeline_service::PipelineClient::new(w.client.kube().clone(), common::config(&ns, json!({})))
            .await
            .unwrap();
    let app = router(
        AppState {
            client: Arc::new(client),
            tokens: Arc::new(vec![ApiToken::new(TOKEN)]),
            metrics: Arc::new(Metrics::new()),
        },
        64 * 1024,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async {
        let _ = stopped.await;
    }));

    // Schemathesis keeps an example database and a crash cache in its working directory; a
    // scratch one keeps them out of the source tree and out of the next run's verdict.
    let scratch = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(&schemathesis)
        .current_dir(scratch.path())
        .args(["run", &format!("{base}/api/v1/openapi.json"), "--url", &base])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance,use_after_free",
        ])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args([
            "--request-timeout",
            "30",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("schemathesis did not finish within 10 minutes")
        .unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed") || l.contains('❌'))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        out.status.success(),
        "schemathesis found answers that differ from the OpenAPI document ({}):\n{report}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // It really talked to the service: a run that generated nothing must not pass unnoticed.
    assert!(
        report.contains("generated") && !report.contains(" 0 generated"),
        "no test cases were generated:\n{report}"
    );
}
