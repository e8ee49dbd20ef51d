//! `katalog run` on the testbed's real API server and garbage collector: the data-platform
//! Katalog reconciling the sample DataJob, from first sight to deletion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Running, eventually};

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        core::v1::{ConfigMap, Event},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use katalog::runtime::{self, Stats};
use kube::{
    Api,
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    runtime::wait::{await_condition, conditions::is_deleted},
};
use omjob_testbed::fixture;
use serde_json::{Value, json};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/katalog");
const CR: &str = "backfill-job";

/// The runtime's defaults for `katalog`, its HTTP API on a free local port.
fn local(katalog: std::path::PathBuf) -> runtime::config::Config {
    let mut config = runtime::config::Config::new(vec![katalog]);
    config.listen = ([127, 0, 0, 1], 0).into();
    config
}

fn assert_owned_by_the_cr(meta: &ObjectMeta, uid: &str) {
    let labels = meta.labels.clone().unwrap_or_default();
    assert_eq!(labels["orkestra.orkspace.io/managed"], "true");
    assert_eq!(labels["orkestra-owner"], CR);
    let owners = meta.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].kind, "DataJob");
    assert_eq!(owners[0].name, CR);
    assert_eq!(owners[0].uid, uid);
    assert_eq!(owners[0].controller, Some(true));
}

#[tokio::test]
async fn a_data_job_gets_its_children_status_and_repairs_and_is_cleaned_up_on_deletion() {
    let ns = fixture::shared().namespace("katalog-run").await;
    let client = ns.client();
    let crd: CustomResourceDefinition =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{EXAMPLES}/datajob-crd.yaml")).unwrap())
            .unwrap();
    fixture::install_crds(&client, vec![crd], "katalog-tests").await;

    let stats = Arc::new(Stats::default());
    let katalog = Path::new(EXAMPLES).join("data-platform.yaml");
    let _running = Running(tokio::spawn({
        let (client, stats) = (client.clone(), Arc::clone(&stats));
        async move { runtime::run(client, local(katalog), stats, std::future::pending()).await }
    }));

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("data.demo.orkestra.io", "v1alpha1", "DataJob"),
        "datajobs",
    );
    let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &resource);
    let mut sample: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(format!("{EXAMPLES}/datajob-sample.yaml")).unwrap())
            .unwrap();
    sample["metadata"] = json!({"name": CR, "namespace": ns.name()});
    let created = jobs
        .create(&PostParams::default(), &serde_json::from_value(sample).unwrap())
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();

    // The children of §12: the onCreate ConfigMap and the onReconcile ReplicaSet.
    let config_maps: Api<ConfigMap> = ns.api();
    let replica_sets: Api<ReplicaSet> = ns.api();
    let limit = Duration::from_secs(30);
    let cm = eventually("the ConfigMap", limit, || async {
        config_maps.get_opt("backfill-job-job").await.unwrap()
    })
    .await;
    assert_eq!(cm.data.clone().unwrap_or_default()["TIMEOUT"], "2h");
    assert_owned_by_the_cr(&cm.metadata, &uid);
    let rs = eventually("the ReplicaSet", limit, || async {
        replica_sets.get_opt("backfill-job-worker").await.unwrap()
    })
    .await;
    assert_owned_by_the_cr(&rs.metadata, &uid);
    let spec = rs.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let containers = spec.template.unwrap().spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].name, "backfill-job-worker");
    assert_eq!(containers[0].image.as_deref(), Some("python:3.12-slim"));

    // The CR: finalizer, managed label and annotations, the status layers.
    let cr = eventually("the DataJob Ready", limit, || async {
        let o = jobs.get(CR).await.unwrap();
        (o.data["status"]["conditions"][0]["status"] == "True").then_some(o)
    })
    .await;
    assert!(
        cr.metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .contains(&"orkestra.orkspace.io/cleanup".to_owned()),
        "{:?}",
        cr.metadata.finalizers
    );
    assert_eq!(
        cr.metadata.labels.clone().unwrap_or_default()["orkestra.orkspace.io/managed"],
        "true"
    );
    let annotations = cr.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations["orkestra.orkspace.io/managed-by"], "data-platform");
    assert!(annotations.contains_key("orkestra.orkspace.io/managed-since"));
    let status = &cr.data["status"];
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["parallelism"], "3");
    assert_eq!(status["workers"], "3");
    assert_eq!(status["observedGeneration"], json!(cr.metadata.generation));
    assert_eq!(status["conditions"][0]["reason"], "ReconcileSucceeded");

    let events: Api<Event> = ns.api();
    let reasons = || async {
        events
            .list(&ListParams::default().fields(&format!("involvedObject.name={CR}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect::<Vec<_>>()
    };
    eventually("the first events", limit, || async {
        let r = reasons().await;
        (r.iter().any(|r| r == "DataJobFinalizerAdded") && r.iter().any(|r| r == "DataJobReconciled"))
            .then_some(())
    })
    .await;

    // A pass that changes nothing sends no apply: touch the CR's metadata only.
    let applied = Stats::get(&stats.applied);
    let skipped = Stats::get(&stats.skipped);
    jobs.patch(
        CR,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"test.katalog/touched": "yes"}}})),
    )
    .await
    .unwrap();
    eventually("a skipped apply", limit, || async {
        (Stats::get(&stats.skipped) > skipped).then_some(())
    })
    .await;
    assert_eq!(
        Stats::get(&stats.applied),
        applied,
        "an unchanged pass applied a child"
    );

    // A ReplicaSet deleted by hand comes back through the child watch, not the 15 s resync.
    let old_uid = rs.metadata.uid.clone().unwrap();
    let started = Instant::now();
    replica_sets
        .delete("backfill-job-worker", &DeleteParams::background())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(
            replica_sets.clone(),
            "backfill-job-worker",
            |o: Option<&ReplicaSet>| o.is_some_and(|r| r.metadata.uid.as_deref() != Some(old_uid.as_str())),
        ),
    )
    .await
    .expect("the deleted ReplicaSet was not recreated within 10 s")
    .unwrap();
    eprintln!(
        "ReplicaSet recreated {:?} after it was deleted",
        started.elapsed()
    );

    // A spec edit reaches the onReconcile ReplicaSet but not the onCreate ConfigMap.
    jobs.patch(
        CR,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"parallelism": "5", "timeout": "4h"}})),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        limit,
        await_condition(
            replica_sets.clone(),
            "backfill-job-worker",
            |o: Option<&ReplicaSet>| o.and_then(|r| r.spec.as_ref()).and_then(|s| s.replicas) == Some(5),
        ),
    )
    .await
    .expect("the ReplicaSet did not follow the spec")
    .unwrap();
    eventually("status workers 5", limit, || async {
        (jobs.get(CR).await.unwrap().data["status"]["workers"] == "5").then_some(())
    })
    .await;
    let cm = config_maps.get("backfill-job-job").await.unwrap();
    assert_eq!(
        cm.data.unwrap_or_default()["TIMEOUT"],
        "2h",
        "an onCreate child followed the spec"
    );

    // Deletion: the finalizer comes off, then the garbage collector takes the children.
    let rs_uid = replica_sets
        .get("backfill-job-worker")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let cm_uid = cm.metadata.uid.unwrap();
    jobs.delete(CR, &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(limit, await_condition(jobs.clone(), CR, is_deleted(&uid)))
        .await
        .expect("the DataJob kept its finalizer")
        .unwrap();
    let gc = Duration::from_secs(60);
    tokio::time::timeout(
        gc,
        await_condition(replica_sets.clone(), "backfill-job-worker", is_deleted(&rs_uid)),
    )
    .await
    .expect("the ReplicaSet outlived its DataJob")
    .unwrap();
    tokio::time::timeout(
        gc,
        await_condition(config_maps.clone(), "backfill-job-job", is_deleted(&cm_uid)),
    )
    .await
    .expect("the ConfigMap outlived its DataJob")
    .unwrap();
    let r = reasons().await;
    assert!(
        r.iter().any(|r| r == "Deleting") && r.iter().any(|r| r == "DataJobDeleted"),
        "{r:?}"
    );
}

/// A Katalog whose template fails at run time (division by zero), not at `check`.
const FAULTY: &str = r#"
apiVersion: orkestra.orkspace.io/v1
kind: Katalog
metadata:
  name: faulty
spec:
  crds:
    faulty-job:
      apiTypes:
        group: data.demo.orkestra.io
        version: v1alpha1
        kind: FaultyJob
        plural: faultyjobs
      operatorBox:
        onReconcile:
          configMaps:
            - name: "{{ .metadata.name }}-share"
              data:
                SHARE: "{{ div 100 .spec.workers }}"
"#;

#[tokio::test]
async fn a_failing_template_is_reported_backs_off_and_recovers_when_the_spec_is_fixed() {
    let ns = fixture::shared().namespace("katalog-fault").await;
    let client = ns.client();
    // The DataJob CRD under another kind, so this test's runtime and the other's never meet.
    let text = std::fs::read_to_string(format!("{EXAMPLES}/datajob-crd.yaml"))
        .unwrap()
        .replace("DataJob", "FaultyJob")
        .replace("datajob", "faultyjob");
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&text).unwrap();
    fixture::install_crds(&client, vec![crd], "katalog-tests").await;
    let dir = tempfile::tempdir().unwrap();
    let katalog = dir.path().join("faulty.yaml");
    std::fs::write(&katalog, FAULTY).unwrap();
    let stats = Arc::new(Stats::default());
    let _running = Running(tokio::spawn({
        let (client, stats) = (client.clone(), Arc::clone(&stats));
        async move { runtime::run(client, local(katalog), stats, std::future::pending()).await }
    }));

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("data.demo.orkestra.io", "v1alpha1", "FaultyJob"),
        "faultyjobs",
    );
    let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns.name(), &resource);
    let cr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "data.demo.orkestra.io/v1alpha1", "kind": "FaultyJob",
        "metadata": {"name": "split", "namespace": ns.name()},
        "spec": {"workers": 0}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &cr).await.unwrap();
    let limit = Duration::from_secs(30);

    let status = eventually("Ready False", limit, || async {
        let o = jobs.get("split").await.unwrap();
        (o.data["status"]["conditions"][0]["status"] == "False").then(|| o.data["status"].clone())
    })
    .await;
    let ready = &status["conditions"][0];
    assert_eq!(ready["reason"], "ReconcileError");
    assert!(
        ready["message"].as_str().unwrap().contains("data.SHARE"),
        "{ready}"
    );
    let first_failure = Instant::now();

    let events: Api<Event> = ns.api();
    let warning = eventually("the ReconcileError event", limit, || async {
        events
            .list(&ListParams::default().fields("involvedObject.name=split"))
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FaultyJobReconcileError"))
    })
    .await;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(warning.message.unwrap_or_default().contains("data.SHARE"));

    // Backoff, not a hot loop. The status write of the first failure wakes the CR once more at
    // once; after that the delays are 2 s and 4 s, so a fourth failure comes about 6 s after the
    // first. A hot loop would reach it within milliseconds.
    eventually("four failed passes", limit, || async {
        (Stats::get(&stats.failures) >= 4).then_some(())
    })
    .await;
    assert!(
        first_failure.elapsed() >= Duration::from_secs(3),
        "four failures within {:?}",
        first_failure.elapsed()
    );

    // Fixing the spec wakes the CR at once (a watch event), whatever the backoff.
    jobs.patch(
        "split",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"workers": 4}})),
    )
    .await
    .unwrap();
    let config_maps: Api<ConfigMap> = ns.api();
    let cm = eventually("the ConfigMap", limit, || async {
        config_maps.get_opt("split-share").await.unwrap()
    })
    .await;
    assert_eq!(cm.data.unwrap_or_default()["SHARE"], "25");
    eventually("Ready True", limit, || async {
        (jobs.get("split").await.unwrap().data["status"]["conditions"][0]["status"] == "True").then_some(())
    })
    .await;
}
