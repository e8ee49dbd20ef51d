//! The generated CRDs match the Helm CRDs' contract and are structural for Kubernetes 1.20.
//!
//! Kubernetes 1.20 (apiextensions.k8s.io/v1) rejects a CRD whose schema is not structural: no
//! `$ref`, no `anyOf`/`oneOf`/`allOf`/`not` that add types, and a `type` on every node (except
//! where `x-kubernetes-preserve-unknown-fields` or `x-kubernetes-int-or-string` stands in).

// Test helpers outside `#[test]` functions fail loudly too; clippy.toml only covers the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use omjob_api::crds;
use serde_json::{Value, json};

fn crd(name: &str) -> CustomResourceDefinition {
    crds::all()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap()
}

fn schema(name: &str) -> Value {
    let crd = crd(name);
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// Follows `properties` (and `items` for `[]`) down a dotted path.
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, part| {
        if part == "[]" {
            &node["items"]
        } else {
            node.get("properties")
                .and_then(|p| p.get(part))
                .unwrap_or_else(|| panic!("no {part} in {path}"))
        }
    })
}

fn check_structural(node: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{path}: schema is not an object"));
        return;
    };
    for banned in [
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "definitions",
        "$defs",
        "const",
    ] {
        if obj.contains_key(banned) {
            errors.push(format!("{path}: has `{banned}`"));
        }
    }
    let free_form = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    if !obj.contains_key("type") && !free_form {
        errors.push(format!("{path}: no `type`"));
    }
    if let Some(ty) = obj.get("type")
        && !ty.is_string()
    {
        errors.push(format!("{path}: `type` is not a single string: {ty}"));
    }
    if (obj.contains_key("properties") || obj.contains_key("additionalProperties"))
        && obj.get("type") != Some(&json!("object"))
    {
        errors.push(format!("{path}: has properties but is not `type: object`"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_structural(v, &format!("{path}.{k}"), errors);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(items, &format!("{path}[]"), errors);
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        check_structural(extra, &format!("{path}{{}}"), errors);
    }
}

#[test]
fn both_schemas_are_structural() {
    for name in [
        "omjobs.pipelines.openmetadata.org",
        "cronomjobs.pipelines.openmetadata.org",
    ] {
        let mut errors = Vec::new();
        check_structural(&schema(name), name, &mut errors);
        assert!(errors.is_empty(), "non-structural schema:\n{}", errors.join("\n"));
    }
}

#[test]
fn names_scope_and_subresources_match_the_helm_crds() {
    for (name, kind, plural, singular, short) in [
        (
            "omjobs.pipelines.openmetadata.org",
            "OMJob",
            "omjobs",
            "omjob",
            "omj",
        ),
        (
            "cronomjobs.pipelines.openmetadata.org",
            "CronOMJob",
            "cronomjobs",
            "cronomjob",
            "comj",
        ),
    ] {
        let crd = crd(name);
        assert_eq!(crd.spec.group, "pipelines.openmetadata.org");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(crd.spec.names.singular.as_deref(), Some(singular));
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_owned()]));
        assert_eq!(crd.spec.versions.len(), 1);
        let v = &crd.spec.versions[0];
        assert_eq!((v.name.as_str(), v.served, v.storage), ("v1", true, true));
        assert!(
            v.subresources.as_ref().unwrap().status.is_some(),
            "{name} needs the status subresource"
        );
    }
}

#[test]
fn printer_columns_are_exactly_the_reference_ones() {
    let columns = |name: &str| -> Vec<(String, String, String)> {
        crd(name).spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.type_, c.json_path))
            .collect()
    };
    let owned = |v: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        v.iter()
            .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
            .collect()
    };
    assert_eq!(
        columns("omjobs.pipelines.openmetadata.org"),
        owned(&[
            ("Phase", "string", ".status.phase"),
            ("Main Pod", "string", ".status.mainPodName"),
            ("Exit Handler", "string", ".status.exitHandlerPodName"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ])
    );
    assert_eq!(
        columns("cronomjobs.pipelines.openmetadata.org"),
        owned(&[
            ("Schedule", "string", ".spec.schedule"),
            ("Suspended", "boolean", ".spec.suspend"),
            ("Last Schedule", "date", ".status.lastScheduleTime"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ])
    );
}

fn required(node: &Value) -> Vec<&str> {
    let mut r: Vec<&str> = node["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    r.sort_unstable();
    r
}

#[test]
fn required_fields_match_the_helm_crds() {
    let omjob = schema("omjobs.pipelines.openmetadata.org");
    assert_eq!(required(at(&omjob, "spec")), ["mainPodSpec"]);
    assert_eq!(
        required(at(&omjob, "spec.mainPodSpec")),
        ["command", "image", "serviceAccountName"]
    );
    assert_eq!(required(at(&omjob, "spec.exitHandlerSpec")), ["command", "image"]);
    assert_eq!(required(at(&omjob, "spec.mainPodSpec.env.[]")), ["name"]);
    assert_eq!(
        required(at(&omjob, "spec.mainPodSpec.env.[].valueFrom.configMapKeyRef")),
        ["key", "name"]
    );
    assert_eq!(
        required(at(&omjob, "spec.mainPodSpec.env.[].valueFrom.secretKeyRef")),
        ["key", "name"]
    );
    assert_eq!(
        required(at(&omjob, "spec.mainPodSpec.env.[].valueFrom.fieldRef")),
        ["fieldPath"]
    );
    assert_eq!(
        required(at(&omjob, "spec.mainPodSpec.env.[].valueFrom.resourceFieldRef")),
        ["resource"]
    );

    let cron = schema("cronomjobs.pipelines.openmetadata.org");
    assert_eq!(required(at(&cron, "spec")), ["omJobSpec", "schedule"]);
    assert_eq!(required(at(&cron, "spec.omJobSpec")), ["mainPodSpec"]);
    assert_eq!(
        required(at(&cron, "spec.omJobSpec.mainPodSpec")),
        ["command", "image", "serviceAccountName"]
    );
}

#[test]
fn defaults_and_minimums_match_the_helm_crds_and_are_not_nullable() {
    // A defaulted field must not be nullable, or the API server keeps an explicit null instead
    // of applying the default (OpenMetadata's server can send nulls).
    let omjob = schema("omjobs.pipelines.openmetadata.org");
    let cron = schema("cronomjobs.pipelines.openmetadata.org");
    let cases = [
        (
            at(&omjob, "spec.mainPodSpec.imagePullPolicy"),
            json!("IfNotPresent"),
            None,
        ),
        (
            at(&omjob, "spec.exitHandlerSpec.imagePullPolicy"),
            json!("IfNotPresent"),
            None,
        ),
        (
            at(&omjob, "spec.ttlSecondsAfterFinished"),
            json!(86400),
            Some(0.0),
        ),
        (
            at(&cron, "spec.omJobSpec.ttlSecondsAfterFinished"),
            json!(86400),
            Some(0.0),
        ),
        (at(&cron, "spec.timeZone"), json!("UTC"), None),
        (at(&cron, "spec.suspend"), json!(false), None),
        (at(&cron, "spec.successfulJobsHistoryLimit"), json!(3), Some(0.0)),
        (at(&cron, "spec.failedJobsHistoryLimit"), json!(3), Some(0.0)),
    ];
    for (node, default, minimum) in cases {
        assert_eq!(node["default"], default, "{node}");
        assert_eq!(node.get("nullable"), None, "{node}");
        assert_eq!(node.get("minimum").and_then(Value::as_f64), minimum, "{node}");
    }
    assert_eq!(
        at(&omjob, "spec.mainPodSpec.imagePullPolicy")["enum"],
        json!(["Always", "Never", "IfNotPresent"])
    );
    assert_eq!(at(&cron, "spec.startingDeadlineSeconds")["minimum"], json!(0.0));
    assert_eq!(at(&cron, "spec.startingDeadlineSeconds").get("default"), None);
}

#[test]
fn optional_enums_are_not_nullable() {
    // Kubernetes 1.20 rejects `null` for a nullable enum ("Unsupported value: \"null\"") but
    // prunes it for a non-nullable one, so no enum may be nullable.
    fn check(node: &Value, path: &str, errors: &mut Vec<String>) {
        if node.get("enum").is_some() && node.get("nullable") == Some(&json!(true)) {
            errors.push(path.to_owned());
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                check(v, &format!("{path}.{k}"), errors);
            }
        }
        if let Some(items) = node.get("items") {
            check(items, &format!("{path}[]"), errors);
        }
    }
    for name in [
        "omjobs.pipelines.openmetadata.org",
        "cronomjobs.pipelines.openmetadata.org",
    ] {
        let mut errors = Vec::new();
        check(&schema(name), name, &mut errors);
        assert!(errors.is_empty(), "nullable enums: {errors:?}");
    }
}

#[test]
fn additive_fields_are_optional_and_have_no_default() {
    let omjob = schema("omjobs.pipelines.openmetadata.org");
    let cron = schema("cronomjobs.pipelines.openmetadata.org");
    for node in [
        at(&omjob, "spec.activeDeadlineSeconds"),
        at(&omjob, "spec.pendingTimeoutSeconds"),
    ] {
        assert_eq!(node["type"], "integer");
        assert_eq!(node["format"], "int64");
        assert_eq!(node["minimum"], json!(1.0));
        assert_eq!(node.get("default"), None);
    }
    let policy = at(&cron, "spec.concurrencyPolicy");
    assert_eq!(policy["enum"], json!(["Allow", "Forbid", "Replace"]));
    assert_eq!(policy.get("default"), None);
}

#[test]
fn tolerations_and_security_context_match_the_helm_crds() {
    let omjob = schema("omjobs.pipelines.openmetadata.org");
    for pod in ["spec.mainPodSpec", "spec.exitHandlerSpec"] {
        let toleration = at(&omjob, &format!("{pod}.tolerations.[]"));
        assert_eq!(at(toleration, "operator")["enum"], json!(["Exists", "Equal"]));
        assert_eq!(
            at(toleration, "effect")["enum"],
            json!(["NoSchedule", "PreferNoSchedule", "NoExecute"])
        );
        assert_eq!(at(toleration, "tolerationSeconds")["format"], "int64");
        let sc = at(&omjob, &format!("{pod}.securityContext"));
        assert_eq!(sc["type"], "object");
        assert_eq!(sc["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(
            at(&omjob, &format!("{pod}.resources.requests"))["additionalProperties"]["type"],
            "string"
        );
    }
}

#[test]
fn status_fields_match_the_reference() {
    let omjob = schema("omjobs.pipelines.openmetadata.org");
    assert_eq!(
        at(&omjob, "status.phase")["enum"],
        json!(["Pending", "Running", "ExitHandlerRunning", "Succeeded", "Failed"])
    );
    for field in ["startTime", "completionTime"] {
        let node = at(&omjob, &format!("status.{field}"));
        assert_eq!(
            (node["type"].as_str(), node["format"].as_str()),
            (Some("string"), Some("date-time"))
        );
    }
    for field in ["mainPodName", "exitHandlerPodName", "message", "reason"] {
        assert_eq!(at(&omjob, &format!("status.{field}"))["type"], "string");
    }
    for field in [
        "mainPodExitCode",
        "exitHandlerExitCode",
        "exitHandlerAttempts",
        "observedGeneration",
    ] {
        assert_eq!(at(&omjob, &format!("status.{field}"))["type"], "integer");
    }
    let conditions = at(&omjob, "status.conditions");
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(required(&conditions["items"]), ["status", "type"]);

    let cron = schema("cronomjobs.pipelines.openmetadata.org");
    for field in ["lastScheduleTime", "lastSuccessfulTime"] {
        assert_eq!(at(&cron, &format!("status.{field}"))["format"], "date-time");
    }
    assert_eq!(at(&cron, "status.lastOMJobName")["type"], "string");
    assert_eq!(required(at(&cron, "status.active.[]")), ["name"]);
}

#[test]
fn rendered_yaml_holds_both_crds_in_order() {
    let yaml = crds::render_yaml().unwrap();
    assert!(yaml.starts_with(crds::YAML_HEADER));
    let docs: Vec<CustomResourceDefinition> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect();
    let names: Vec<_> = docs.iter().map(|d| d.metadata.name.clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "omjobs.pipelines.openmetadata.org",
            "cronomjobs.pipelines.openmetadata.org"
        ]
    );
    assert_eq!(docs, crds::all());
    assert_eq!(yaml, crds::render_yaml().unwrap(), "rendering is deterministic");
}
