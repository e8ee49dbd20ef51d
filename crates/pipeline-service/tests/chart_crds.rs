//! Operator mode against CRDs shaped as OpenMetadata's chart ships them (no additive spec
//! fields): server-side apply of a field a CRD's schema lacks would fail, so the service applies
//! CronOMJobs with upstream's fields only and merge-patches its additive ones, which this schema
//! prunes. In its own test binary, because the CRDs are cluster-wide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{definition, world_with};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

/// Our CRDs without the spec fields the chart's lack (openmetadata-chart.md §2.3), as the
/// operator's `chart_world` tests cut them.
fn chart_crds() -> Vec<CustomResourceDefinition> {
    fn cut(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get_mut("properties") {
                    if props.contains_key("mainPodSpec") {
                        props.remove("activeDeadlineSeconds");
                        props.remove("pendingTimeoutSeconds");
                    }
                    if props.contains_key("omJobSpec") {
                        props.remove("concurrencyPolicy");
                    }
                }
                map.values_mut().for_each(cut);
            }
            Value::Array(items) => items.iter_mut().for_each(cut),
            _ => {}
        }
    }
    omjob_api::crds::all()
        .into_iter()
        .map(|crd| {
            let mut v = serde_json::to_value(crd).unwrap();
            cut(&mut v);
            assert!(!v.to_string().contains("activeDeadlineSeconds"), "cut");
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

fn dynamic(w: &common::World, kind: &str, plural: &str) -> kube::Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(omjob_api::GROUP, "v1", kind), plural);
    kube::Api::namespaced_with(w.admin.clone(), w.ns.name(), &ar)
}

#[tokio::test]
async fn a_scheduled_pipeline_deploys_toggles_runs_and_is_deleted_under_the_charts_crds() {
    let w = world_with("ps-chart", json!({"useOMJobOperator": true}), chart_crds(), false).await;
    let def = json!({"pipelineType": "metadata", "schedule": "@daily", "workflowConfig": "a: 1",
                     "credentials": {"TOKEN": "chart-crd-secret"}});
    let deployed = w
        .client
        .deploy(definition(def.clone()), Some("chart"))
        .await
        .unwrap();
    assert_eq!(deployed.resources.last().unwrap(), "CronOMJob/om-cronomjob-chart");
    let crons = dynamic(&w, "CronOMJob", "cronomjobs");
    let cron = crons.get("om-cronomjob-chart").await.unwrap();
    assert_eq!(cron.data["spec"]["schedule"], "0 0 * * *");
    // The merge patch named it; the chart's schema pruned it.
    assert!(
        cron.data["spec"]["omJobSpec"]
            .get("activeDeadlineSeconds")
            .is_none(),
        "{}",
        cron.data
    );
    // A second deploy applies over the first.
    w.client.deploy(definition(def), Some("chart")).await.unwrap();
    assert_eq!(
        w.client.set_enabled("chart", false).await.unwrap().enabled,
        Some(false)
    );
    assert_eq!(
        crons.get("om-cronomjob-chart").await.unwrap().data["spec"]["suspend"],
        true
    );
    let started = w.client.run("chart").await.unwrap();
    assert_eq!(started.kind, "OMJob");
    let omjob = dynamic(&w, "OMJob", "omjobs")
        .get(&started.resource)
        .await
        .unwrap();
    assert!(omjob.data["spec"].get("activeDeadlineSeconds").is_none());
    let runs = w.client.runs("chart").await.unwrap();
    assert!(runs.iter().any(|r| r.run_id == started.run_id), "{runs:?}");
    let deleted = w.client.delete("chart").await.unwrap();
    assert!(
        deleted.resources.contains(&format!("OMJob/{}", started.resource)),
        "{deleted:?}"
    );
    assert!(
        deleted
            .resources
            .contains(&"CronOMJob/om-cronomjob-chart".to_owned()),
        "{deleted:?}"
    );
}
