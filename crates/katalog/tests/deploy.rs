//! `deploy/katalog` renders with the testbed kubectl's kustomize, the API server accepts every
//! object in a server-side dry run, the ConfigMap's Katalog is the example's, and the
//! Deployment's environment is a valid runtime configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::HashMap, path::PathBuf};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Namespace};
use katalog::runtime::config::Config;
use kube::{Api, api::PostParams};
use omjob_testbed::fixture;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rendered() -> Vec<Value> {
    fixture::shared().kustomize(&repo(), "deploy/katalog")
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in the rendered manifests"))
}

#[tokio::test]
async fn the_manifests_render_into_one_namespace_and_the_api_server_accepts_them() {
    let docs = rendered();
    assert_eq!(
        fixture::object_names(&docs),
        [
            "ClusterRole/katalog-runtime",
            "ClusterRoleBinding/katalog-runtime",
            "ConfigMap/katalog",
            "Deployment/katalog-runtime",
            "Namespace/katalog-system",
            "Role/katalog-runtime-leader-election",
            "RoleBinding/katalog-runtime-leader-election",
            "ServiceAccount/katalog-runtime",
        ]
    );
    fixture::assert_bound_in_namespace(&docs, "katalog-system", "katalog-runtime");

    let client = fixture::shared().client().await;
    // A server-side dry run needs the namespace to exist; everything else stays a dry run.
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "katalog-system"}})).unwrap();
    let _ = Api::<Namespace>::all(client)
        .create(&PostParams::default(), &ns)
        .await;
    let out = fixture::shared().kubectl(&["apply", "--dry-run=server", "-k", "deploy/katalog"], &repo());
    assert_eq!(out.lines().count(), 8, "{out}");
    assert!(out.lines().all(|l| l.ends_with("(server dry run)")), "{out}");
}

#[tokio::test]
async fn the_config_map_holds_the_example_katalog_and_the_deployment_a_valid_configuration() {
    let docs = rendered();
    let cm = find(&docs, "ConfigMap", "katalog");
    let example = |p: &str| std::fs::read_to_string(repo().join("examples/katalog").join(p)).unwrap();
    assert_eq!(cm["data"]["data-platform.yaml"], example("data-platform.yaml"));
    assert_eq!(cm["data"]["worker-pool.yaml"], example("motifs/worker-pool.yaml"));

    let deployment: Deployment =
        serde_json::from_value(find(&docs, "Deployment", "katalog-runtime").clone()).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    let mut vars = HashMap::new();
    for var in container.env.clone().unwrap() {
        // Downward-API values are filled in by the kubelet; stand in plausible ones.
        let value = match (var.value, var.value_from) {
            (Some(v), _) => v,
            (None, Some(_)) if var.name == "ORKESTRA_NAMESPACE" => "katalog-system".to_owned(),
            (None, Some(_)) => "katalog-runtime-0".to_owned(),
            (None, None) => String::new(),
        };
        vars.insert(var.name, value);
    }
    let config = Config::from_lookup(Vec::new(), |name| vars.get(name).cloned()).unwrap();
    assert!(
        config.leader_election.is_some(),
        "two replicas need leader election"
    );
    assert_eq!(config.namespace, "katalog-system");
    assert_eq!(
        config.katalogs,
        vec![PathBuf::from("/etc/katalog/data-platform.yaml")]
    );
    let port = container.ports.as_ref().unwrap()[0].container_port;
    assert_eq!(
        i32::from(config.listen.port()),
        port,
        "probes target the API port"
    );
    let mount = &container.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(mount.mount_path, "/etc/katalog");
}
