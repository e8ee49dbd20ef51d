//! The generated CRDs on the testbed's real API server: OMJobs and CronOMJobs exactly as
//! OpenMetadata's server writes them survive the round trip with no field pruned, and invalid
//! objects are rejected by schema validation with messages that name the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    core::{ApiResource, DynamicObject, GroupVersionKind},
};
mod common;

use omjob_testbed::fixture::{self, TestNamespace};
use serde_json::{Value, json};

/// Installs the CRDs (and the operator ClusterRole) once per test binary.
async fn install_crds(client: &Client) {
    common::cluster_setup(client).await;
}

fn dynamic(ns: &TestNamespace, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(omjob_api::GROUP, omjob_api::VERSION, kind);
    Api::namespaced_with(
        ns.client(),
        ns.name(),
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../api/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every field of `expected` is in `actual` with the same value (the server may add defaults).
fn assert_subset(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let child = format!("{path}.{k}");
                let got = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{child} was pruned by the API server"));
                assert_subset(v, got, &child);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: list length changed");
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_subset(ev, av, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "{path} changed"),
    }
}

async fn create(api: &Api<DynamicObject>, mut obj: Value, ns: &str) -> Result<DynamicObject, kube::Error> {
    obj["metadata"]["namespace"] = json!(ns);
    api.create(&PostParams::default(), &serde_json::from_value(obj).unwrap())
        .await
}

fn rejection(err: kube::Error) -> String {
    match err {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 422, "expected a validation error, got {e:?}");
            e.message
        }
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn an_omjob_written_by_openmetadata_round_trips_without_losing_a_field() {
    let ns = fixture::shared().namespace("crd-omjob").await;
    install_crds(&ns.client()).await;
    let api = dynamic(&ns, "OMJob", "omjobs");
    for file in ["omjob-openmetadata.yaml", "omjob-openmetadata-minimal.yaml"] {
        let mut expected = fixture(file);
        expected["metadata"]["namespace"] = json!(ns.name());
        let name = expected["metadata"]["name"].as_str().unwrap().to_owned();
        create(&api, expected.clone(), ns.name()).await.unwrap();
        let back = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
        if file.ends_with("minimal.yaml") {
            // Explicit nulls are dropped by the server and defaults applied, as the Helm CRD does.
            assert_eq!(back["spec"]["ttlSecondsAfterFinished"], 86_400);
            assert_eq!(back["spec"]["mainPodSpec"]["imagePullPolicy"], "IfNotPresent");
        } else {
            assert_subset(&expected, &back, "");
            // The typed view reads what the server stored.
            let typed: omjob_api::OMJob = serde_json::from_value(back).unwrap();
            assert!(typed.spec.exit_handler_spec.is_some());
        }
    }
}

#[tokio::test]
async fn a_cronomjob_written_by_openmetadata_round_trips_and_gets_helm_defaults() {
    let ns = fixture::shared().namespace("crd-cron").await;
    install_crds(&ns.client()).await;
    let api = dynamic(&ns, "CronOMJob", "cronomjobs");
    let mut expected = fixture("cronomjob-openmetadata.yaml");
    expected["metadata"]["namespace"] = json!(ns.name());
    // OpenMetadata sends resourceVersion on its replace path; a create must not carry one.
    expected["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let name = expected["metadata"]["name"].as_str().unwrap().to_owned();
    create(&api, expected.clone(), ns.name()).await.unwrap();
    let back = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
    assert_subset(&expected, &back, "");
    let typed: omjob_api::CronOMJob = serde_json::from_value(back).unwrap();
    assert_eq!(
        typed.spec.time_zone_or_default(),
        expected["spec"]["timeZone"].as_str().unwrap_or("UTC")
    );
}

#[tokio::test]
async fn the_status_subresource_accepts_server_side_apply_of_the_status() {
    let ns = fixture::shared().namespace("crd-status").await;
    install_crds(&ns.client()).await;
    let api = dynamic(&ns, "OMJob", "omjobs");
    create(&api, fixture("omjob-openmetadata.yaml"), ns.name())
        .await
        .unwrap();
    let name = fixture("omjob-openmetadata.yaml")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = json!({
        "apiVersion": omjob_api::API_VERSION, "kind": "OMJob",
        "status": {"phase": "Running", "mainPodName": format!("{name}-main"), "reason": "Completed",
                   "conditions": [{"type": "MainStageFinished", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    });
    api.patch_status(
        &name,
        &PatchParams::apply("omjob-operator").force(),
        &Patch::Apply(&status),
    )
    .await
    .unwrap();
    let back = api.get(&name).await.unwrap();
    assert_eq!(back.data["status"]["phase"], "Running");
    assert_eq!(back.data["status"]["reason"], "Completed");
    // A status write must not touch the spec.
    assert_eq!(
        back.data["spec"]["mainPodSpec"]["command"],
        json!(["python", "main.py"])
    );
}

#[tokio::test]
async fn invalid_omjobs_are_rejected_with_messages_that_name_the_field() {
    let ns = fixture::shared().namespace("crd-invalid").await;
    install_crds(&ns.client()).await;
    let api = dynamic(&ns, "OMJob", "omjobs");
    let valid = || {
        json!({
            "apiVersion": omjob_api::API_VERSION, "kind": "OMJob", "metadata": {"name": "bad"},
            "spec": {
                "mainPodSpec": {"image": "ingestion:1", "serviceAccountName": "sa", "command": ["python", "main.py"]},
                "exitHandlerSpec": {"image": "ingestion:1", "command": ["python", "exit_handler.py"]}
            }
        })
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "missing image",
            {
                let mut o = valid();
                o["spec"]["mainPodSpec"].as_object_mut().unwrap().remove("image");
                o
            },
            "spec.mainPodSpec.image",
        ),
        (
            "missing command",
            {
                let mut o = valid();
                o["spec"]["mainPodSpec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("command");
                o
            },
            "spec.mainPodSpec.command",
        ),
        (
            "bad pull policy",
            {
                let mut o = valid();
                o["spec"]["mainPodSpec"]["imagePullPolicy"] = json!("Sometimes");
                o
            },
            "spec.mainPodSpec.imagePullPolicy",
        ),
        (
            "negative ttl",
            {
                let mut o = valid();
                o["spec"]["ttlSecondsAfterFinished"] = json!(-5);
                o
            },
            "spec.ttlSecondsAfterFinished",
        ),
        (
            "bad toleration operator",
            {
                let mut o = valid();
                o["spec"]["mainPodSpec"]["tolerations"] = json!([{"key": "k", "operator": "Maybe"}]);
                o
            },
            "operator",
        ),
        (
            "zero deadline",
            {
                let mut o = valid();
                o["spec"]["activeDeadlineSeconds"] = json!(0);
                o
            },
            "spec.activeDeadlineSeconds",
        ),
        (
            "missing mainPodSpec",
            {
                let mut o = valid();
                o["spec"].as_object_mut().unwrap().remove("mainPodSpec");
                o
            },
            "spec.mainPodSpec",
        ),
    ];
    for (what, obj, field) in cases {
        let msg = rejection(create(&api, obj, ns.name()).await.expect_err(what));
        assert!(
            msg.contains(field),
            "{what}: message does not name {field}: {msg}"
        );
    }
    // Nothing was half-created.
    assert!(api.list(&Default::default()).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn invalid_cronomjobs_are_rejected_with_messages_that_name_the_field() {
    let ns = fixture::shared().namespace("crd-cron-invalid").await;
    install_crds(&ns.client()).await;
    let api = dynamic(&ns, "CronOMJob", "cronomjobs");
    let valid = || {
        json!({
            "apiVersion": omjob_api::API_VERSION, "kind": "CronOMJob", "metadata": {"name": "bad"},
            "spec": {"schedule": "0 * * * *", "omJobSpec": {"mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"]}}}
        })
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "missing schedule",
            {
                let mut o = valid();
                o["spec"].as_object_mut().unwrap().remove("schedule");
                o
            },
            "spec.schedule",
        ),
        (
            "negative success limit",
            {
                let mut o = valid();
                o["spec"]["successfulJobsHistoryLimit"] = json!(-1);
                o
            },
            "spec.successfulJobsHistoryLimit",
        ),
        (
            "negative failed limit",
            {
                let mut o = valid();
                o["spec"]["failedJobsHistoryLimit"] = json!(-2);
                o
            },
            "spec.failedJobsHistoryLimit",
        ),
        (
            "bad concurrency policy",
            {
                let mut o = valid();
                o["spec"]["concurrencyPolicy"] = json!("Sometimes");
                o
            },
            "spec.concurrencyPolicy",
        ),
        (
            "missing omJobSpec",
            {
                let mut o = valid();
                o["spec"].as_object_mut().unwrap().remove("omJobSpec");
                o
            },
            "spec.omJobSpec",
        ),
    ];
    for (what, obj, field) in cases {
        let msg = rejection(create(&api, obj, ns.name()).await.expect_err(what));
        assert!(
            msg.contains(field),
            "{what}: message does not name {field}: {msg}"
        );
    }
}
