//! OpenMetadata-shaped OMJob and CronOMJob manifests survive a trip through our types.
//!
//! The fixtures are written as OpenMetadata's server serialises these resources. Deserialising
//! them and serialising again must not lose or change any field: the operator reads these
//! objects and must see everything the server wrote.

// Test helpers outside `#[test]` functions fail loudly too; clippy.toml only covers the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use omjob_api::{
    CronOMJob, OMJob,
    env::{OMJOB_NAME_PLACEHOLDER, OMJOB_UID_PLACEHOLDER},
    labels::{LABEL_APP_MANAGED_BY, MANAGED_BY_OPENMETADATA},
    pod_template::{ImagePullPolicy, TaintEffect, TolerationOperator},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

/// Drops `null` members: an explicit null and an absent field mean the same to the API server.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Whether everything in `expected` is in `actual` with the same value (arrays element-wise,
/// same length). Returns the path of the first difference.
fn find_missing(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(k, ev)| match a.get(k) {
            Some(av) => find_missing(ev, av, &format!("{path}.{k}")),
            None => Some(format!("{path}.{k} is missing")),
        }),
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| find_missing(ev, av, &format!("{path}[{i}]"))),
        _ if expected == actual => None,
        _ => Some(format!("{path}: expected {expected}, got {actual}")),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(fixture: &str) -> (T, Value, Value) {
    let original = load(fixture);
    let typed: T = serde_json::from_value(original.clone()).unwrap();
    let again = serde_json::to_value(&typed).unwrap();
    (typed, without_nulls(original), again)
}

fn assert_lossless(fixture: &str, original: &Value, again: &Value) {
    if let Some(diff) = find_missing(original, again, "") {
        panic!("{fixture}: field lost or changed in the round trip: {diff}");
    }
    // Nothing is invented either: serialising adds no field the server did not send.
    if let Some(diff) = find_missing(again, original, "") {
        panic!("{fixture}: field added by the round trip: {diff}");
    }
}

#[test]
fn openmetadata_omjob_round_trips_without_losing_a_field() {
    let (omjob, original, again) = round_trip::<OMJob>("omjob-openmetadata.yaml");
    assert_lossless("omjob-openmetadata.yaml", &original, &again);

    let main = &omjob.spec.main_pod_spec;
    assert_eq!(main.image_pull_policy, Some(ImagePullPolicy::IfNotPresent));
    assert_eq!(
        main.labels.as_ref().unwrap()[LABEL_APP_MANAGED_BY],
        MANAGED_BY_OPENMETADATA
    );
    let env = main.env.as_ref().unwrap();
    let empty = env.iter().find(|e| e.name == "EMPTY_VALUE_FROM").unwrap();
    assert!(empty.value_from.as_ref().unwrap().is_empty());
    let shared = env.iter().find(|e| e.name == "OM_SHARED_SETTINGS").unwrap();
    let cm = shared
        .value_from
        .as_ref()
        .unwrap()
        .config_map_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (cm.name.as_str(), cm.key.as_str(), cm.optional),
        ("om-shared-settings", "settings.yaml", Some(true))
    );
    let tolerations = main.tolerations.as_ref().unwrap();
    assert_eq!(tolerations[0].operator, Some(TolerationOperator::Equal));
    assert_eq!(tolerations[1].effect, Some(TaintEffect::NoExecute));
    assert_eq!(tolerations[1].toleration_seconds, Some(300));
    assert_eq!(main.security_context.as_ref().unwrap()["runAsUser"], 1000);
    assert_eq!(omjob.spec.ttl_after_finished_seconds(), Some(86_400));
    assert!(omjob.status.is_none());
}

#[test]
fn openmetadata_cronomjob_round_trips_and_keeps_placeholders() {
    let (cron, original, again) = round_trip::<CronOMJob>("cronomjob-openmetadata.yaml");
    assert_lossless("cronomjob-openmetadata.yaml", &original, &again);

    assert_eq!(cron.metadata.resource_version.as_deref(), Some("482913"));
    assert_eq!(cron.spec.time_zone_or_default(), "Europe/Paris");
    assert!(!cron.spec.is_suspended());
    let exit = cron.spec.om_job_spec.exit_handler_spec.as_ref().unwrap();
    let env = exit.env.as_ref().unwrap();
    let value_of = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    assert_eq!(value_of("pipelineRunId").as_deref(), Some(OMJOB_UID_PLACEHOLDER));
    assert_eq!(value_of("jobName").as_deref(), Some(OMJOB_NAME_PLACEHOLDER));
    let config = env.iter().find(|e| e.name == "config").unwrap();
    let cm = config
        .value_from
        .as_ref()
        .unwrap()
        .config_map_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(cm.name, "om-config-mysql-prod-metadata");
}

#[test]
fn explicit_nulls_from_the_java_serialiser_are_accepted() {
    let (omjob, original, again) = round_trip::<OMJob>("omjob-openmetadata-minimal.yaml");
    assert_lossless("omjob-openmetadata-minimal.yaml", &original, &again);
    assert_eq!(omjob.spec.main_pod_spec.env, None);
    assert_eq!(omjob.spec.main_pod_spec.image_pull_policy, None);
    assert_eq!(omjob.spec.ttl_seconds_after_finished, None);
    assert_eq!(omjob.spec.ttl_after_finished_seconds(), None);
}

#[test]
fn status_round_trips_with_java_timestamps() {
    // The Java operator writes whole-second UTC timestamps; so does k8s-openapi's `Time`.
    let status = serde_json::json!({
        "phase": "ExitHandlerRunning",
        "mainPodName": "om-job-x-main",
        "startTime": "2025-01-02T03:04:05Z",
        "mainPodExitCode": 137,
        "reason": "OOMKilled",
        "exitHandlerAttempts": 1,
        "observedGeneration": 2,
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2025-01-02T03:04:06Z"}],
    });
    let typed: omjob_api::OMJobStatus = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(typed.phase, Some(omjob_api::Phase::ExitHandlerRunning));
    assert_eq!(serde_json::to_value(&typed).unwrap(), status);

    let cron = serde_json::json!({
        "lastScheduleTime": "2025-01-02T00:00:00Z",
        "lastOMJobName": "om-cronomjob-x-1735776000",
        "message": "Created OMJob",
        "active": [{"name": "om-cronomjob-x-1735776000", "uid": "0b6c1d7e-0000-4000-8000-000000000000"}],
    });
    let typed: omjob_api::CronOMJobStatus = serde_json::from_value(cron.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), cron);
}

#[test]
fn the_examples_parse_and_round_trip() {
    let dir = format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"));
    for (file, kind) in [
        ("omjob-sample.yaml", "OMJob"),
        ("cronomjob-sample.yaml", "CronOMJob"),
    ] {
        let path = format!("{dir}/{file}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let original: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(original["kind"], kind);
        let again = if kind == "OMJob" {
            serde_json::to_value(serde_json::from_value::<OMJob>(original.clone()).unwrap()).unwrap()
        } else {
            serde_json::to_value(serde_json::from_value::<CronOMJob>(original.clone()).unwrap()).unwrap()
        };
        assert_lossless(file, &without_nulls(original), &again);
    }
}
