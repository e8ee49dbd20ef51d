//! `deploy/operator` renders with `kubectl kustomize` (the testbed kubectl's embedded kustomize
//! v5), the API server accepts every object it renders, the RBAC it
//! ships is the RBAC the integration tests run under, and the Deployment's environment is a valid
//! operator configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::HashMap, path::PathBuf};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Namespace};
use kube::{Api, api::PostParams};
use omjob_operator::config::OperatorConfig;
use omjob_testbed::fixture;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rendered() -> Vec<Value> {
    fixture::shared().kustomize(&repo(), "deploy/operator")
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in the rendered manifests"))
}

#[tokio::test]
async fn the_kustomization_renders_every_piece_into_the_operator_namespace() {
    let docs = rendered();
    assert_eq!(
        fixture::object_names(&docs),
        [
            "ClusterRole/omjob-operator",
            "ClusterRoleBinding/omjob-operator",
            "CustomResourceDefinition/cronomjobs.pipelines.openmetadata.org",
            "CustomResourceDefinition/omjobs.pipelines.openmetadata.org",
            "Deployment/omjob-operator",
            "Namespace/omjob-system",
            "Role/omjob-operator-leader-election",
            "RoleBinding/omjob-operator-leader-election",
            "ServiceAccount/omjob-operator",
        ]
    );
    fixture::assert_bound_in_namespace(&docs, "omjob-system", "omjob-operator");
    let deployment = find(&docs, "Deployment", "omjob-operator");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "omjob-operator"
    );
}

#[tokio::test]
async fn the_shipped_rbac_is_the_rbac_the_tests_run_under() {
    let docs = rendered();
    let file = std::fs::read_to_string(repo().join("deploy/rbac/clusterrole.yaml")).unwrap();
    let tested: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&file)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    assert_eq!(
        find(&docs, "ClusterRole", "omjob-operator")["rules"],
        tested[0]["rules"]
    );
    assert_eq!(
        find(&docs, "Role", "omjob-operator-leader-election")["rules"],
        tested[1]["rules"]
    );
}

#[tokio::test]
async fn the_deployment_environment_is_a_valid_configuration() {
    let docs = rendered();
    let deployment: Deployment =
        serde_json::from_value(find(&docs, "Deployment", "omjob-operator").clone()).unwrap();
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let mut vars = HashMap::new();
    for var in container.env.clone().unwrap() {
        // Downward-API values are filled in by the kubelet; stand in plausible ones.
        let value = match (var.value, var.value_from) {
            (Some(v), _) => v,
            (None, Some(_)) if var.name == "OPERATOR_NAMESPACE" => "omjob-system".to_owned(),
            (None, Some(_)) => "omjob-operator-0".to_owned(),
            (None, None) => String::new(),
        };
        vars.insert(var.name, value);
    }
    let config = OperatorConfig::from_lookup(|name| vars.get(name).cloned()).unwrap();
    assert!(config.leader_election, "two replicas need leader election");
    assert_eq!(config.operator_namespace, "omjob-system");
    let port = container.ports.as_ref().unwrap()[0].container_port;
    assert_eq!(
        i32::from(config.health_check_port),
        port,
        "probes target the health port"
    );
}

#[tokio::test]
async fn the_api_server_accepts_every_rendered_object() {
    let client = fixture::shared().client().await;
    // A server-side dry run needs the namespace to exist; everything else stays a dry run.
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "omjob-system"}})).unwrap();
    let _ = Api::<Namespace>::all(client)
        .create(&PostParams::default(), &ns)
        .await;
    let out = fixture::shared().kubectl(&["apply", "--dry-run=server", "-k", "deploy/operator"], &repo());
    assert_eq!(out.lines().count(), 9, "{out}");
    assert!(out.lines().all(|l| l.ends_with("(server dry run)")), "{out}");
}
