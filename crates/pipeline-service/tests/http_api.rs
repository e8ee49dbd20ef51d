//! The HTTP API on the testbed: auth, validation answers naming the field, size limit, every
//! operation through HTTP, `/health`, `/metrics` and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use common::{eventually, world};
use k8s_openapi::api::core::v1::ConfigMap;
use pipeline_service::{
    config::ApiToken,
    http::{AppState, router},
    metrics::Metrics,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const TOKEN: &str = "test-token-0123456789";
const LIMIT: usize = 64 * 1024;

struct Api {
    router: axum::Router,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some((ct, bytes)) => req.header("content-type", ct).body(Body::from(bytes)).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    async fn json(&self, method: &str, uri: &str, body: Value) -> (u16, Value) {
        self.call(
            method,
            uri,
            Some(TOKEN),
            Some(("application/json", serde_json::to_vec(&body).unwrap())),
        )
        .await
    }
}

#[tokio::test]
async fn every_operation_works_over_http_and_bad_input_gets_a_4xx_naming_the_field() {
    let w = world("ps-http", json!({})).await;
    let ns = w.ns.name().to_owned();
    let client =
        pipeline_service::PipelineClient::new(w.client.kube().clone(), common::config(&ns, json!({})))
            .await
            .unwrap();
    let api = Api {
        router: router(
            AppState {
                client: Arc::new(client),
                tokens: Arc::new(vec![ApiToken::new(TOKEN)]),
                metrics: Arc::new(Metrics::new()),
            },
            LIMIT,
        ),
    };

    // Open endpoints.
    assert_eq!(
        api.call("GET", "/health", None, None).await,
        (200, json!({"status": "ok"}))
    );
    let (code, doc) = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(code, 200);
    assert!(
        doc["paths"]["/api/v1/pipelines/{name}/logs"]["get"].is_object(),
        "{doc}"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Authentication.
    assert_eq!(api.call("GET", "/api/v1/status", None, None).await.0, 401);
    assert_eq!(
        api.call("GET", "/api/v1/status", Some("wrong"), None).await.0,
        401
    );
    let (code, status) = api.call("GET", "/api/v1/status", Some(TOKEN), None).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        status["version"],
        format!(
            "v{}",
            omjob_testbed::controlplane::install::kubernetes_version().unwrap()
        )
    );

    // Bad input: 4xx naming the field, nothing created.
    let good = json!({"pipelineType": "metadata", "workflowConfig": {"source": {"type": "mysql"}},
                      "overrides": {"command": ["sh", "-c", "echo over-http"]}});
    let field_of = |v: &Value| v["fields"][0]["field"].as_str().unwrap_or_default().to_owned();
    let mut bad_type = good.clone();
    bad_type["pipelineType"] = json!("bogus");
    let mut bad_schedule = good.clone();
    bad_schedule["schedule"] = json!("61 * * * *");
    let mut no_config = good.clone();
    no_config.as_object_mut().unwrap().remove("workflowConfig");
    for (uri, body, field) in [
        ("/api/v1/pipelines/p1", bad_type, "pipelineType"),
        ("/api/v1/pipelines/p1", bad_schedule, "schedule"),
        ("/api/v1/pipelines/p1", no_config, "workflowConfig"),
        ("/api/v1/pipelines/Not_A_Label", good.clone(), "name"),
    ] {
        let (code, answer) = api.json("PUT", uri, body).await;
        assert_eq!(code, 400, "{answer}");
        assert_eq!(field_of(&answer), field, "{answer}");
    }
    let (code, answer) = api
        .call(
            "PUT",
            "/api/v1/pipelines/p1",
            Some(TOKEN),
            Some(("application/json", b"{not json".to_vec())),
        )
        .await;
    assert_eq!((code, field_of(&answer).as_str()), (400, "body"), "{answer}");
    let mut huge = good.clone();
    huge["workflowConfig"]["padding"] = json!("x".repeat(LIMIT));
    let (code, answer) = api.json("PUT", "/api/v1/pipelines/p1", huge).await;
    assert_eq!((code, field_of(&answer).as_str()), (413, "body"), "{answer}");
    let cms = w.ns.api::<ConfigMap>().list(&Default::default()).await.unwrap();
    assert!(
        cms.items
            .iter()
            .all(|c| !c.metadata.name.as_deref().unwrap_or_default().starts_with("om-")),
        "nothing may be half-created"
    );
    assert_eq!(
        api.call("POST", "/api/v1/pipelines/p1/runs", Some(TOKEN), None)
            .await
            .0,
        404
    );

    // The operations.
    let (code, deployed) = api.json("PUT", "/api/v1/pipelines/p1", good).await;
    assert_eq!(code, 200, "{deployed}");
    let yaml = b"pipelineType: dbt\nschedule: '@daily'\nworkflowConfig: 'a: 1'\n".to_vec();
    let (code, deployed) = api
        .call(
            "PUT",
            "/api/v1/pipelines/p2",
            Some(TOKEN),
            Some(("application/yaml", yaml)),
        )
        .await;
    assert_eq!(
        (code, deployed["scheduled"].clone()),
        (200, json!(true)),
        "{deployed}"
    );
    let (code, def) = api.call("GET", "/api/v1/pipelines/p2", Some(TOKEN), None).await;
    assert_eq!((code, def["pipelineType"].clone()), (200, json!("dbt")));
    assert_eq!(
        api.call("POST", "/api/v1/pipelines/p2/disable", Some(TOKEN), None)
            .await
            .1["enabled"],
        false
    );
    assert_eq!(
        api.call("POST", "/api/v1/pipelines/p2/enable", Some(TOKEN), None)
            .await
            .1["enabled"],
        true
    );

    let (code, started) = api
        .call("POST", "/api/v1/pipelines/p1/runs", Some(TOKEN), None)
        .await;
    assert_eq!(code, 201, "{started}");
    let run_id = started["runId"].as_str().unwrap().to_owned();
    let run = eventually(Duration::from_secs(60), "the run to succeed", || async {
        let (_, run) = api
            .call(
                "GET",
                &format!("/api/v1/pipelines/p1/runs/{run_id}"),
                Some(TOKEN),
                None,
            )
            .await;
        (run["state"] == "success").then_some(run)
    })
    .await;
    assert_eq!(run["kind"], "Job");
    let (code, runs) = api
        .call("GET", "/api/v1/pipelines/p1/runs", Some(TOKEN), None)
        .await;
    assert_eq!((code, runs.as_array().unwrap().len()), (200, 1));
    let (code, page) = api
        .call("GET", "/api/v1/pipelines/p1/logs", Some(TOKEN), None)
        .await;
    assert_eq!(
        (code, page),
        (200, json!({"ingestion_task": "over-http\n", "total": "1"}))
    );
    for (after, message) in [
        ("5", "Invalid pagination index"),
        ("-1", "Invalid pagination index"),
        ("x", "Invalid pagination parameter: x is not a valid number"),
    ] {
        let (code, page) = api
            .call(
                "GET",
                &format!("/api/v1/pipelines/p1/logs?after={after}"),
                Some(TOKEN),
                None,
            )
            .await;
        assert_eq!((code, page), (400, json!({"ingestion_task": message})));
    }
    let (code, killed) = api
        .call("POST", "/api/v1/pipelines/p1/kill", Some(TOKEN), None)
        .await;
    assert_eq!(
        (code, killed["message"].clone()),
        (200, json!("Killed 0 running job(s) for pipeline p1"))
    );
    for p in ["p1", "p2"] {
        let (code, deleted) = api
            .call("DELETE", &format!("/api/v1/pipelines/{p}"), Some(TOKEN), None)
            .await;
        assert_eq!(code, 200, "{deleted}");
    }
    assert_eq!(
        api.call("GET", "/api/v1/pipelines/p1", Some(TOKEN), None).await.0,
        404
    );

    // Metrics count requests by route template, never by pipeline name.
    let (code, text) = api.call("GET", "/metrics", None, None).await;
    assert_eq!(code, 200);
    let text = text.as_str().unwrap();
    assert!(
        text.contains(
            "pipelines_http_requests_total{route=\"/api/v1/pipelines/{name}\",method=\"PUT\",status=\"400\"}"
        ),
        "{text}"
    );
    // A failed operation is counted by its error category (the GET of a deleted pipeline).
    assert!(
        text.contains(
            "pipelines_http_errors_total{route=\"/api/v1/pipelines/{name}\",category=\"not_found\"}"
        ),
        "{text}"
    );
    assert!(!text.contains("p1"), "{text}");
}
