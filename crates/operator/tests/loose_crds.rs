//! The controllers under CRDs as loose as the ones OpenMetadata's Helm chart installs: the API
//! server then stores OMJobs and CronOMJobs our types cannot decode. Each such object gets one
//! `InvalidSpec` warning naming the field, and every other object keeps being reconciled (before
//! objects were decoded one by one, a single bad object failed the watch's list and stopped all
//! of its kind). This binary installs the loose CRDs for all its tests, so it has its own testbed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{
    Harness,
    cron::{CronHarness, cronomjob, manual_clock, poll},
    omjob, wait_phase,
};
use k8s_openapi::{
    api::core::v1::Event, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, DynamicObject},
};
use omjob_api::{CronOMJob, OMJob, Phase, names, schedule::Schedule};
use omjob_operator::{decode::REASON_INVALID_SPEC, omjob::decide::Settings};
use omjob_testbed::fixture;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(90);

/// Our CRDs with the chart's looser validation (openmetadata-chart.md §2.3): no `required` at
/// the root of the schema (so an object without `spec` is stored) and no `minimum`, `maximum` or
/// `format` on integers (so a TTL or history limit beyond `i32` is stored). Every field and
/// default stays, so that only validation differs from the CRDs the operator ships.
fn loose_crds() -> Vec<CustomResourceDefinition> {
    fn loosen_integers(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.get("type") == Some(&json!("integer")) {
                    for bound in ["minimum", "maximum", "format"] {
                        map.remove(bound);
                    }
                }
                map.values_mut().for_each(loosen_integers);
            }
            Value::Array(items) => items.iter_mut().for_each(loosen_integers),
            _ => {}
        }
    }
    omjob_api::crds::all()
        .into_iter()
        .map(|crd| {
            let mut v = serde_json::to_value(crd).unwrap();
            for version in v["spec"]["versions"].as_array_mut().unwrap() {
                let schema = &mut version["schema"]["openAPIV3Schema"];
                assert!(schema.as_object_mut().unwrap().remove("required").is_some());
                loosen_integers(schema);
            }
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

/// A namespace prepared as usual, with the loose CRDs in place of ours (no controller yet).
async fn prepare(prefix: &str) -> Harness {
    let h = Harness::prepare(prefix).await;
    fixture::install_crds(&h.admin, loose_crds(), "omjob-tests").await;
    h
}

fn dynamic<K: kube::Resource<DynamicType = ()>>(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<K>(&()))
}

/// Creates an object only the loose schema admits. The API server applies a changed CRD schema
/// shortly after the update, so a 422 from the previous (strict) schema is retried.
async fn create_loose(api: &Api<DynamicObject>, ns: &str, mut obj: Value) {
    obj["metadata"]["namespace"] = json!(ns);
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 422 && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the loose schema refused {:?}: {e}", obj.metadata.name),
        }
    }
}

async fn invalid_spec_events(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(REASON_INVALID_SPEC))
        .collect()
}

/// Waits for the `InvalidSpec` warning on `name` and checks that it names `field`.
async fn wait_invalid_spec(client: &Client, ns: &str, name: &str, field: &str) -> Event {
    poll(
        &format!("an {REASON_INVALID_SPEC} event on {name}"),
        Duration::from_secs(30),
        || async { !invalid_spec_events(client, ns, name).await.is_empty() },
    )
    .await;
    let events = invalid_spec_events(client, ns, name).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = events.into_iter().next().unwrap();
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    let note = e.message.clone().unwrap_or_default();
    assert!(note.contains(&format!(": {field}: ")), "{note}");
    e
}

/// How often the event was published: 1, or its series' count.
fn times(e: &Event) -> i32 {
    e.series
        .as_ref()
        .map_or_else(|| e.count.unwrap_or(1), |s| s.count.unwrap_or(1))
}

#[tokio::test]
async fn undecodable_omjobs_are_reported_and_the_others_run_to_completion() {
    let mut h = prepare("loose-omj").await;
    let ns = h.ns().to_owned();
    let raw = dynamic::<OMJob>(&h.admin, &ns);

    // Before the controller starts, so that its first list holds an undecodable object.
    create_loose(
        &raw,
        &ns,
        json!({"apiVersion": omjob_api::API_VERSION, "kind": "OMJob", "metadata": {"name": "no-spec"}}),
    )
    .await;
    h.create(omjob(&h, "good-1", "true", |_| {})).await;
    // What a watch of the typed resource meets: the list fails as a whole.
    let typed = h.omjobs().list(&ListParams::default()).await;
    assert!(typed.is_err(), "a typed list decodes every object: {typed:?}");
    h.run_controller(Settings::default());

    // After it started, so that a watch event carries one too.
    let huge_ttl = omjob(&h, "huge-ttl", "true", |o| {
        o["spec"]["ttlSecondsAfterFinished"] = json!(99_999_999_999_i64);
    });
    create_loose(&raw, &ns, huge_ttl).await;
    h.create(omjob(&h, "good-2", "true", |_| {})).await;

    for good in ["good-1", "good-2"] {
        let st = wait_phase(&h, good, LIMIT).await.status.unwrap();
        assert_eq!(st.phase, Some(Phase::Succeeded), "{good}: {st:?}");
        assert_eq!(h.exit_runs(good), ["success 0 Completed"]);
    }
    wait_invalid_spec(&h.admin, &ns, "no-spec", "spec").await;
    let e = wait_invalid_spec(&h.admin, &ns, "huge-ttl", "spec.ttlSecondsAfterFinished").await;
    let note = e.message.clone().unwrap_or_default();
    assert!(note.contains("99999999999"), "{note}");
    assert_eq!(times(&e), 1, "reported once: {e:?}");

    // Nothing was done to the undecodable objects: no status, no pods.
    for bad in ["no-spec", "huge-ttl"] {
        let obj = raw.get(bad).await.unwrap();
        assert_eq!(obj.data.get("status"), None, "{bad}");
        let main = names::main_pod_name(bad);
        assert!(h.pods().get_opt(&main).await.unwrap().is_none(), "{bad}");
    }

    // A new version that still does not decode is reported again.
    let touch = json!({"metadata": {"annotations": {"test.omjob.dev/touch": "1"}}});
    raw.patch("huge-ttl", &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    poll(
        "the second report of huge-ttl",
        Duration::from_secs(30),
        || async {
            invalid_spec_events(&h.admin, &ns, "huge-ttl")
                .await
                .iter()
                .map(times)
                .sum::<i32>()
                >= 2
        },
    )
    .await;

    // Fixed, it decodes and runs like any other.
    let fix = json!({"spec": {"ttlSecondsAfterFinished": 60}});
    raw.patch("huge-ttl", &PatchParams::default(), &Patch::Merge(&fix))
        .await
        .unwrap();
    let st = wait_phase(&h, "huge-ttl", LIMIT).await.status.unwrap();
    assert_eq!(st.phase, Some(Phase::Succeeded), "{st:?}");
    assert_eq!(h.exit_runs("huge-ttl"), ["success 0 Completed"]);
}

#[tokio::test]
async fn an_undecodable_cronomjob_is_reported_and_the_others_keep_their_schedule() {
    let h = prepare("loose-comj").await;
    let ns = h.ns().to_owned();
    let clock = manual_clock();
    // Before the controllers start: an undecodable OMJob (the CronOMJob controller caches
    // OMJobs too, and waits for that cache before it schedules anything) and CronOMJob.
    create_loose(
        &dynamic::<OMJob>(&h.admin, &ns),
        &ns,
        json!({"apiVersion": omjob_api::API_VERSION, "kind": "OMJob", "metadata": {"name": "no-spec"}}),
    )
    .await;
    let ch = CronHarness::start_in(h, Arc::new(clock.clone()));
    let mut bad = cronomjob(&ch, "huge-limit", "* * * * *", "true", |_| {});
    bad["spec"]["successfulJobsHistoryLimit"] = json!(3_000_000_000_u64);
    create_loose(&dynamic::<CronOMJob>(&ch.h.admin, &ns), &ns, bad).await;
    let cron = ch
        .create(cronomjob(&ch, "good", "*/5 * * * *", "true", |_| {}))
        .await;

    let slot = Schedule::parse("*/5 * * * *", "UTC")
        .unwrap()
        .next_after(cron.metadata.creation_timestamp.clone().unwrap().0)
        .unwrap();
    clock.set(k8s_openapi::jiff::Timestamp::from_second(slot.as_second() + 1).unwrap());
    let runs = ch
        .wait_runs(&cron, "finished run", |r| {
            r.first()
                .and_then(|o| o.status.as_ref())
                .and_then(|s| s.phase)
                .is_some_and(Phase::is_terminal)
        })
        .await;
    assert_eq!(
        runs[0].metadata.name.as_deref(),
        Some(
            names::spawned_omjob_name("good", slot.as_second())
                .unwrap()
                .as_str()
        )
    );
    let e = wait_invalid_spec(&ch.h.admin, &ns, "huge-limit", "spec.successfulJobsHistoryLimit").await;
    assert_eq!(times(&e), 1, "reported once: {e:?}");
    // The OMJob controller reports the undecodable OMJob; the CronOMJob controller only skips it.
    wait_invalid_spec(&ch.h.admin, &ns, "no-spec", "spec").await;
    let bad: DynamicObject = dynamic::<CronOMJob>(&ch.h.admin, &ns)
        .get("huge-limit")
        .await
        .unwrap();
    assert_eq!(
        bad.data.get("status"),
        None,
        "the undecodable CronOMJob was left alone"
    );
}
