//! Rendering the children of a CR: conditions, forEach, namespaces, defaults and builders.
// Test helpers outside #[test] functions unwrap too; the project-wide allowance for test files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use katalog::{
    cluster::{Absent, Fixture},
    load::{self, Entry},
    render::{self, Phase, Rendered},
    template::Engine,
};
use serde_json::{Value, json};

fn entry(body: &str) -> (tempfile::TempDir, Entry) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("katalog.yaml");
    let text = format!(
        "apiVersion: orkestra.orkspace.io/v1\nkind: Katalog\nmetadata: {{name: demo}}\nspec:\n  crds:\n    web:\n      apiTypes: {{group: g.example, version: v1, kind: Web}}\n{body}"
    );
    std::fs::write(&file, text).unwrap();
    let l = load::load(&file, &Engine::default());
    assert!(!l.has_errors(), "{:?}", l.problems);
    let e = l.entries.into_iter().next().unwrap();
    (dir, e)
}

fn cr(spec: Value) -> Value {
    json!({"apiVersion": "g.example/v1", "kind": "Web",
        "metadata": {"name": "site", "namespace": "team", "uid": "u-1"}, "spec": spec})
}

fn render(e: &Entry, cr: &Value) -> Rendered {
    render::render(e, cr, &Engine::default(), &Absent).unwrap()
}

fn names(r: &Rendered) -> Vec<String> {
    r.children
        .iter()
        .map(|c| {
            format!(
                "{}/{}",
                c.object["kind"].as_str().unwrap(),
                c.object["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn the_data_platform_example_renders_what_the_worked_example_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/katalog");
    let l = load::load(&root.join("data-platform.yaml"), &Engine::default());
    let text = std::fs::read_to_string(root.join("datajob-sample.yaml")).unwrap();
    let cr: Value = serde_yaml_ng::from_str(&text).unwrap();
    let r = render(&l.entries[0], &cr);
    let owner = json!([{"apiVersion": "data.demo.orkestra.io/v1alpha1", "kind": "DataJob", "name": "backfill-job",
        "uid": "7d4f2c1e-0b6a-4e8f-9a51-3c2d8e6f1a90", "controller": true, "blockOwnerDeletion": true}]);
    let labels = json!({"orkestra.orkspace.io/managed": "true", "orkestra-owner": "backfill-job"});
    assert_eq!(r.children.len(), 2);
    assert_eq!(
        (r.children[0].phase, r.children[0].updated),
        (Phase::OnCreate, false)
    );
    assert_eq!(
        r.children[0].object,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"TIMEOUT": "2h"},
            "metadata": {"name": "backfill-job-job", "namespace": "demo-05", "labels": labels, "ownerReferences": owner}})
    );
    assert_eq!(
        (r.children[1].phase, r.children[1].updated),
        (Phase::OnReconcile, true)
    );
    assert_eq!(
        r.children[1].object,
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "backfill-job-worker", "namespace": "demo-05", "labels": labels, "ownerReferences": owner},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"orkestra-owner": "backfill-job"}},
                "template": {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "backfill-job-worker", "image": "python:3.12-slim"}]}}}})
    );
}

#[test]
fn default_names_and_unparsable_replicas_follow_orkestra() {
    let (_d, e) = entry(
        "      operatorBox:
        onReconcile:
          configMaps: [{}]
          secrets: [{data: {pw: x}}]
          deployments: [{image: nginx, replicas: '{{ .spec.n }}', port: '0'}]
          replicaSets: [{image: nginx, replicas: lots}]
          services: [{port: '80', type: Weird, selector: {app: web}}]
",
    );
    let r = render(&e, &cr(json!({})));
    assert_eq!(
        names(&r),
        [
            "Secret/site-secret",
            "ConfigMap/site-config",
            "Deployment/site-deployment",
            "ReplicaSet/site-replicaset",
            "Service/site-svc"
        ]
    );
    assert_eq!(r.children[0].object["type"], "Opaque");
    assert_eq!(r.children[0].object["stringData"], json!({"pw": "x"}));
    assert_eq!(
        r.children[2].object["spec"]["replicas"], 1,
        "empty replicas give 1"
    );
    assert!(
        r.children[2].object["spec"]["template"]["spec"]["containers"][0]
            .get("ports")
            .is_none()
    );
    assert_eq!(
        r.children[3].object["spec"]["replicas"], 1,
        "unparsable replicas give 1"
    );
    let svc = &r.children[4].object["spec"];
    assert_eq!(svc["type"], "ClusterIP", "unknown types fall back to ClusterIP");
    assert_eq!(svc["selector"], json!({"app": "web", "orkestra-owner": "site"}));
    assert_eq!(
        svc["ports"],
        json!([{"port": 80, "targetPort": 80, "protocol": "TCP"}])
    );
}

#[test]
fn conditions_gate_entries_and_blocks() {
    let (_d, e) = entry(
        "      operatorBox:
        onCreate:
          when: [{field: spec.enabled, equals: 'true'}]
          configMaps: [{name: gated-block}]
        onReconcile:
          configMaps:
            - {name: premium, when: [{field: spec.tier, equals: premium}]}
            - {name: any, or: [{field: spec.tier, equals: gold}, {field: spec.n, gt: 2}]}
            - {name: templated, when: [{field: '{{ .spec.tier | toUpper }}', equals: BASIC}]}
",
    );
    let r = render(&e, &cr(json!({"tier": "basic", "n": 3})));
    assert_eq!(names(&r), ["ConfigMap/any", "ConfigMap/templated"]);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("onCreate: block conditions are false")),
        "{:?}",
        r.notes
    );
    let r = render(&e, &cr(json!({"tier": "premium", "enabled": true})));
    assert_eq!(names(&r), ["ConfigMap/gated-block", "ConfigMap/premium"]);
}

#[test]
fn for_each_expands_lists_and_sorted_maps() {
    let (_d, e) = entry(
        "      operatorBox:
        onReconcile:
          configMaps:
            - name: '{{ .metadata.name }}-{{ .region }}'
              forEach: {field: spec.regions, as: region}
              data: {INDEX: '{{ .index }}', ITEM: '{{ .item }}'}
            - name: 'db-{{ .item }}'
              forEach: {field: spec.dbs}
              data: {SIZE: '{{ .value.size }}'}
",
    );
    let r = render(
        &e,
        &cr(json!({"regions": ["eu", "us"], "dbs": {"b": {"size": 2}, "a": {"size": 1}}})),
    );
    assert_eq!(
        names(&r),
        [
            "ConfigMap/site-eu",
            "ConfigMap/site-us",
            "ConfigMap/db-a",
            "ConfigMap/db-b"
        ]
    );
    assert_eq!(r.children[1].object["data"], json!({"INDEX": "1", "ITEM": "us"}));
    assert_eq!(r.children[2].object["data"], json!({"SIZE": "1"}));
    assert_eq!(r.children[1].source, "configMaps[0][forEach 1]");
    let err = render::render(&e, &cr(json!({"regions": "eu"})), &Engine::default(), &Absent).unwrap_err();
    assert!(
        err.to_string()
            .contains("forEach field \"spec.regions\" is not a list or a map"),
        "{err}"
    );
}

#[test]
fn namespace_rules_skip_crs_and_children() {
    let (_d, e) = entry(
        "      allowedNamespaces: [team, shared]
      operatorBox:
        onReconcile:
          configMaps:
            - {name: here}
            - {name: there, namespace: elsewhere}
            - {name: copied, toNamespaces: ['{{ .spec.targets }}', shared, '']}
",
    );
    let r = render(&e, &cr(json!({"targets": ["team", "shared"]})));
    let placed: Vec<String> = r
        .children
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c.object["metadata"]["name"].as_str().unwrap(),
                c.object["metadata"]["namespace"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(placed, ["here@team", "copied@team", "copied@shared"]);
    assert!(
        r.children[2].object["metadata"].get("ownerReferences").is_none(),
        "no cross-namespace owner"
    );
    assert!(
        r.notes.iter().any(|n| n.contains("\"elsewhere\" is not allowed")),
        "{:?}",
        r.notes
    );
    let mut other = cr(json!({}));
    other["metadata"]["namespace"] = json!("intruder");
    let r = render(&e, &other);
    assert!(r.children.is_empty());
    assert!(r.notes[0].contains("is not allowed for web"), "{:?}", r.notes);
}

#[test]
fn validation_and_mutation_run_before_the_templates() {
    let (_d, e) = entry(
        "      validation:
        rules:
          - {field: spec.image, operator: exists, message: an image is required}
          - {field: spec.size, lt: 10, message: large, action: warn}
      mutation:
        rules: [{field: spec.replicas, default: 2}]
      operatorBox:
        onReconcile:
          deployments: [{image: '{{ .spec.image }}', replicas: '{{ .spec.replicas }}'}]
",
    );
    let r = render(&e, &cr(json!({"image": "nginx", "size": 12})));
    assert_eq!(
        r.children[0].object["spec"]["replicas"], 2,
        "the mutation default is visible to templates"
    );
    assert_eq!(r.notes, ["ValidationWarning: field \"spec.size\": large"]);
    let err = render::render(&e, &cr(json!({})), &Engine::default(), &Absent).unwrap_err();
    assert_eq!(
        err.to_string(),
        "validation denied: field \"spec.image\": an image is required"
    );
}

#[test]
fn copies_read_their_source_from_the_cluster_view() {
    let (_d, e) = entry(
        "      operatorBox:
        onCreate:
          configMaps: [{name: merged, fromConfigMap: base, data: {B: own}}]
",
    );
    let fixture = Fixture::new(vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "base", "namespace": "team"}, "data": {"A": "1", "B": "2"}})]);
    let r = render::render(&e, &cr(json!({})), &Engine::default(), &fixture).unwrap();
    assert_eq!(r.children[0].object["data"], json!({"A": "1", "B": "own"}));
    let err = render::render(&e, &cr(json!({})), &Engine::default(), &Absent).unwrap_err();
    assert!(err.to_string().contains("source ConfigMap \"base\""), "{err}");
}

#[test]
fn template_failures_name_the_entry_and_field() {
    let (_d, e) = entry(
        "      operatorBox:
        onReconcile:
          jobs: [{image: busybox, command: ['{{ div 1 0 }}']}]
",
    );
    let err = render::render(&e, &cr(json!({})), &Engine::default(), &Absent).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("onReconcile.jobs[0]: command: failed to execute template"),
        "{err}"
    );
}

#[test]
fn status_fields_are_strings_and_the_last_passing_entry_wins() {
    let (_d, e) = entry(
        "      operatorBox:
        onReconcile:
          deployments: [{name: app, image: nginx}]
        status:
          fields:
            - {path: phase, value: Pending}
            - {path: phase, value: Ready, when: [{field: spec.go, equals: 'true'}]}
            - {path: ready, value: '{{ allReplicasReady .children.deployment }}'}
            - {path: nested.replicas, value: '{{ .spec.n }}'}
            - {path: broken, value: '{{ div 1 0 }}'}
",
    );
    let cr = cr(json!({"go": true, "n": 2}));
    let r = render(&e, &cr);
    let (status, notes) = render::status(&e, &cr, &r, &Engine::default(), &Absent);
    assert_eq!(
        Value::Object(status),
        json!({"phase": "Ready", "ready": "false", "nested": {"replicas": "2"}})
    );
    assert!(notes[0].starts_with("status.fields[4] (broken)"), "{notes:?}");
    let fixture = Fixture::new(vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "team"}, "spec": {"replicas": 1}, "status": {"readyReplicas": 1}})]);
    let (status, _) = render::status(&e, &cr, &r, &Engine::default(), &fixture);
    assert_eq!(
        status["ready"], "true",
        "children are read back through the cluster view"
    );
}

#[test]
fn a_kept_child_whose_conditions_are_false_is_rendered_as_unwanted_and_an_oncreate_one_is_not() {
    let (_d, e) = entry(
        "      operatorBox:\n        onReconcile:\n          configMaps:\n            - name: \"{{ .metadata.name }}-debug\"\n              when: [{field: spec.debug, equals: \"true\"}]\n        onCreate:\n          configMaps:\n            - name: \"{{ .metadata.name }}-seed\"\n              when: [{field: spec.debug, equals: \"true\"}]\n",
    );
    let on = render(&e, &cr(json!({"debug": "true"})));
    assert_eq!(names(&on), ["ConfigMap/site-seed", "ConfigMap/site-debug"]);
    assert!(on.unwanted.is_empty());
    let off = render(&e, &cr(json!({"debug": "false"})));
    assert!(names(&off).is_empty());
    // Only the kept (onReconcile) one is to be deleted; an onCreate child is left as it is.
    let unwanted: Vec<&str> = off
        .unwanted
        .iter()
        .map(|c| c.object["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(unwanted, ["site-debug"]);
}

#[test]
fn a_once_secret_is_rendered_when_missing_kept_unrendered_when_present_and_rotated_when_due() {
    // `{{ div 1 0 }}` fails if rendered: a kept Secret must not even render its templates.
    let (_d, e) = entry(
        "      operatorBox:
        onCreate:
          secrets:
            - name: creds
              once: true
              rotateAfter: 1h
              data:
                PASSWORD: '{{ if .spec.broken }}{{ div 1 0 }}{{ end }}{{ randomAlphanumeric 16 }}'
",
    );
    let now: k8s_openapi::jiff::Timestamp = "2026-03-25T10:30:00Z".parse().unwrap();
    let engine = Engine::default();
    let fresh = render::render_at(&e, &cr(json!({})), &engine, &Absent, now).unwrap();
    let secret = &fresh.children[0];
    assert_eq!(secret.once, Some(render::Once::Create));
    assert_eq!(
        secret.object["stringData"]["PASSWORD"].as_str().unwrap().len(),
        16
    );
    assert_eq!(
        secret.object["metadata"]["annotations"],
        json!({render::GENERATED_AT: "2026-03-25T10:30:00Z", render::ROTATE_AFTER: "1h0m0s"})
    );

    let existing = |generated_at: &str| {
        Fixture::new(vec![json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "team",
                "annotations": {render::GENERATED_AT: generated_at}},
            "data": {"PASSWORD": "b2xk"}})])
    };
    let broken = cr(json!({"broken": true}));
    let kept = render::render_at(&e, &broken, &engine, &existing("2026-03-25T10:00:00Z"), now).unwrap();
    assert_eq!(
        kept.children[0].once,
        Some(render::Once::Keep {
            rotate_at: Some("2026-03-25T11:00:00Z".parse().unwrap())
        })
    );
    assert!(kept.children[0].object.get("stringData").is_none());

    let due = render::render_at(
        &e,
        &cr(json!({})),
        &engine,
        &existing("2026-03-25T09:00:00Z"),
        now,
    )
    .unwrap();
    assert_eq!(due.children[0].once, Some(render::Once::Rotate));
    assert_eq!(
        due.children[0].object["stringData"]["PASSWORD"]
            .as_str()
            .unwrap()
            .len(),
        16
    );
}

#[test]
fn ordered_delete_groups_render_their_names_and_namespaces() {
    let (_d, e) = entry(
        "      operatorBox:
        onDelete:
          ordered: true
          timeout: 30s
          groups:
            - name: workers
              resources:
                - {kind: ReplicaSet, name: '{{ .metadata.name }}-worker'}
            - resources:
                - {kind: ConfigMap, name: '{{ .metadata.name }}-job', namespace: other}
",
    );
    let groups = render::render_delete_groups(&e, &cr(json!({})), &Engine::default()).unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].name, "workers");
    assert_eq!(groups[0].objects[0].name, "site-worker");
    assert_eq!(groups[0].objects[0].namespace.as_deref(), Some("team"));
    assert_eq!(groups[1].name, "group 2");
    assert_eq!(groups[1].objects[0].namespace.as_deref(), Some("other"));
    assert_eq!(e.on_delete.timeout.unwrap().0, std::time::Duration::from_secs(30));
}

#[test]
fn jobs_and_cron_jobs_get_the_same_run_once_pod_with_the_childs_labels() {
    let (_d, e) = entry(
        "      operatorBox:\n        onCreate:\n          jobs:\n            - name: \"{{ .metadata.name }}-once\"\n              image: busybox\n              command: [sh, -c]\n              args: [\"echo {{ .spec.word }}\"]\n          cronJobs:\n            - name: \"{{ .metadata.name }}-nightly\"\n              schedule: \"0 2 * * *\"\n              image: busybox\n              command: [sh, -c, \"echo night\"]\n",
    );
    let r = render(&e, &cr(json!({"word": "hi"})));
    let labels = json!({"orkestra.orkspace.io/managed": "true", "orkestra-owner": "site"});
    let job = &r.children[0].object;
    assert_eq!(job["kind"], "Job");
    assert_eq!(
        job["spec"]["template"],
        json!({"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never", "containers": [
            {"name": "site-once", "image": "busybox", "command": ["sh", "-c"], "args": ["echo hi"]}]}})
    );
    let cron = &r.children[1].object;
    assert_eq!(cron["kind"], "CronJob");
    assert_eq!(cron["spec"]["schedule"], "0 2 * * *");
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"],
        json!({"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never", "containers": [
            {"name": "site-nightly", "image": "busybox", "command": ["sh", "-c", "echo night"]}]}})
    );
}
