//! The `katalog` binary: `check` exit codes and messages, `render` output.
// Test helpers outside #[test] functions unwrap too; the project-wide allowance for test files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, process::Command};

use serde::Deserialize as _;
use serde_json::{Value, json};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/katalog")
}

fn katalog(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_katalog"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn check_accepts_the_example_and_reports_its_effective_settings() {
    let file = examples().join("data-platform.yaml");
    let (code, stdout, _) = katalog(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(
            "ok: data-job (data.demo.orkestra.io/v1alpha1, Kind=DataJob, namespaced): 3 workers (default), \
             resync 15s (default), queue depth 100 (default); onCreate ConfigMap 1; onReconcile ReplicaSet 1"
        ),
        "{stdout}"
    );
}

#[test]
fn check_prints_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: orkestra.orkspace.io/v1
kind: Katalog
metadata: {name: demo}
spec:
  crds:
    data-job:
      apiTypes: {group: g, version: v1, kind: DataJob}
      operatorBox:
        onCreate:
          configMaps:
            - data: {A: '{{ .spec.a }}'}
            - dataa: {A: b}
              data: {B: '{{ if .spec.b }}'}
",
    )
    .unwrap();
    let good = examples().join("data-platform.yaml");
    let (code, stdout, _) = katalog(&["check", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let b = bad.display();
    assert!(
        stdout.contains(&format!(
            "{b}: spec.crds.data-job.operatorBox.onCreate.configMaps[1].dataa: unknown field `dataa`"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{b}: spec.crds.data-job.operatorBox.onCreate.configMaps[1].data.B (template line 1, column "
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{b}: 2 error(s)")), "{stdout}");
    assert!(
        stdout.contains("data-platform.yaml: ok: data-job"),
        "the good file is still reported: {stdout}"
    );
}

#[test]
fn check_reports_unreadable_files_and_needs_arguments() {
    let (code, stdout, _) = katalog(&["check", "/nonexistent/k.yaml"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("/nonexistent/k.yaml: failed to read file"),
        "{stdout}"
    );
    let (code, _, stderr) = katalog(&["check"]);
    assert_eq!(code, 2, "usage error: {stderr}");
}

#[test]
fn render_prints_the_configmap_and_replicaset_of_the_worked_example() {
    let ex = examples();
    let (k, cr) = (ex.join("data-platform.yaml"), ex.join("datajob-sample.yaml"));
    let (code, stdout, stderr) = katalog(&["render", k.to_str().unwrap(), "--cr", cr.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("# onCreate configMaps[0] (created if absent)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("---\n# onReconcile replicaSets[0] (kept in sync)\n"),
        "{stdout}"
    );
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    let (cm, rs) = (&docs[0], &docs[1]);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "backfill-job-job");
    assert_eq!(cm["metadata"]["namespace"], "demo-05");
    assert_eq!(cm["data"], json!({"TIMEOUT": "2h"}));
    let labels = json!({"orkestra.orkspace.io/managed": "true", "orkestra-owner": "backfill-job"});
    assert_eq!(cm["metadata"]["labels"], labels);
    assert_eq!(cm["metadata"]["ownerReferences"][0]["kind"], "DataJob");
    assert_eq!(cm["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(rs["kind"], "ReplicaSet");
    assert_eq!(rs["metadata"]["name"], "backfill-job-worker");
    assert_eq!(rs["metadata"]["labels"], labels);
    assert_eq!(rs["spec"]["replicas"], 3);
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"],
        json!({"orkestra-owner": "backfill-job"})
    );
    assert_eq!(
        rs["spec"]["template"]["spec"]["containers"],
        json!([{"name": "backfill-job-worker", "image": "python:3.12-slim"}])
    );
}

#[test]
fn render_fails_on_a_cr_no_entry_matches() {
    let dir = tempfile::tempdir().unwrap();
    let cr = dir.path().join("cr.yaml");
    std::fs::write(&cr, "apiVersion: other/v1\nkind: Thing\nmetadata: {name: x}\n").unwrap();
    let k = examples().join("data-platform.yaml");
    let (code, _, stderr) = katalog(&["render", k.to_str().unwrap(), "--cr", cr.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no CRD entry of") && stderr.contains("matches other/v1 Thing"),
        "{stderr}"
    );
}

#[test]
fn render_with_status_prints_the_declared_status_fields() {
    let ex = examples();
    let (k, cr) = (ex.join("data-platform.yaml"), ex.join("datajob-sample.yaml"));
    let (code, stdout, stderr) = katalog(&[
        "render",
        k.to_str().unwrap(),
        "--cr",
        cr.to_str().unwrap(),
        "--status",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 3);
    assert_eq!(
        docs[2],
        json!({"status": {"phase": "Running", "parallelism": "3", "workers": "3"}})
    );
}

#[test]
fn run_refuses_a_broken_katalog_before_it_looks_for_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: orkestra.orkspace.io/v1\nkind: Katalog\nspec: {crds: {}}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_katalog"))
        .args(["run", "--katalog", bad.to_str().unwrap()])
        // No cluster: the run must fail on the Katalog, not on the kube config.
        .env("KUBECONFIG", dir.path().join("none"))
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("error(s) in the Katalog"), "{stderr}");
    let (_, check, _) = katalog(&["check", bad.to_str().unwrap()]);
    let problem = check.lines().find(|l| l.contains("spec.crds")).unwrap();
    assert!(
        stdout.contains(problem),
        "the run's log lacks check's {problem:?}:\n{stdout}"
    );
}

#[test]
fn run_names_a_bad_environment_variable_and_its_value() {
    let file = examples().join("data-platform.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_katalog"))
        .args(["run", "--katalog", file.to_str().unwrap()])
        .env("DEFAULT_WORKERS", "many")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("DEFAULT_WORKERS=\"many\""), "{stderr}");
}
