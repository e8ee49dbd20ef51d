//! `deploy/pipeline-service` renders with the testbed kubectl's embedded kustomize, the API server
//! accepts every object (server-side dry run), the Role it ships is the Role the integration tests
//! run under, and the Deployment's environment is a valid configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, api::PostParams};
use omjob_testbed::fixture;
use pipeline_service::Config;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rendered() -> Vec<Value> {
    fixture::shared().kustomize(&repo(), "deploy/pipeline-service")
}

#[tokio::test]
async fn the_kustomization_renders_the_tested_role_and_a_valid_deployment() {
    let docs = rendered();
    assert_eq!(
        fixture::object_names(&docs),
        [
            "Deployment/pipeline-service",
            "Role/pipeline-service",
            "RoleBinding/pipeline-service",
            "ServiceAccount/pipeline-service"
        ]
    );
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "openmetadata-pipelines", "{d}");
    }
    // The rendered Role is the file the integration tests bind the service to.
    let tested: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("deploy/pipeline-service/role.yaml")).unwrap(),
    )
    .unwrap();
    let role = docs.iter().find(|d| d["kind"] == "Role").unwrap();
    assert_eq!(role["rules"], tested["rules"]);
    let binding = docs.iter().find(|d| d["kind"] == "RoleBinding").unwrap();
    assert_eq!(binding["subjects"][0]["namespace"], "openmetadata-pipelines");

    // The Deployment's environment (with placeholders for values from the cluster) is valid.
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let value = e["value"].as_str().unwrap_or("from-the-cluster").to_owned();
            (e["name"].as_str().unwrap().to_owned(), value)
        })
        .collect();
    let config = Config::from_sources(None, env).unwrap();
    assert_eq!(config.api_tokens.len(), 1);
    assert_eq!(container["args"], json!(["serve"]));

    // The API server accepts every object.
    let admin = fixture::shared().client().await;
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "openmetadata-pipelines"}})).unwrap();
    Api::<Namespace>::all(admin)
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let out = fixture::shared().kubectl(
        &["apply", "-k", "deploy/pipeline-service", "--dry-run=server"],
        &repo(),
    );
    assert_eq!(out.lines().count(), 4, "{out}");
}
