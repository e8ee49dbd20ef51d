//! Loading Katalogs: the classic schema, every alias, unknown keys with their paths, refusals,
//! template positions and motif imports.
// Test helpers outside #[test] functions unwrap too; the project-wide allowance for test files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, time::Duration};

use katalog::{
    load::{self, CLEANUP_FINALIZER, Loaded},
    problem::Problem,
    template::Engine,
};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn load_text(text: &str) -> (tempfile::TempDir, Loaded) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "katalog.yaml", text);
    let loaded = load::load(&file, &Engine::default());
    (dir, loaded)
}

fn errors(l: &Loaded) -> Vec<String> {
    l.problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
}

fn warnings(l: &Loaded) -> Vec<String> {
    l.problems
        .iter()
        .filter(|p| !p.is_error())
        .map(|p| p.path.clone())
        .collect()
}

const HEAD: &str =
    "apiVersion: orkestra.orkspace.io/v1\nkind: Katalog\nmetadata: {name: demo, version: 0.1.0}\n";

#[test]
fn the_example_katalog_loads_with_runtime_defaults_and_its_motif_expanded() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/katalog/data-platform.yaml");
    let l = load::load(&file, &Engine::default());
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let e = &l.entries[0];
    assert_eq!(e.name, "data-job");
    assert_eq!(e.katalog_name, "data-platform");
    assert_eq!(e.gvk(), "data.demo.orkestra.io/v1alpha1, Kind=DataJob");
    assert_eq!(
        e.description,
        "DataJob CRD, GVK: data.demo.orkestra.io/v1alpha1, Kind=DataJob"
    );
    assert_eq!(e.plural, "datajobs");
    assert!(e.namespaced);
    assert_eq!((e.workers.value, e.workers.configured), (3, false));
    assert_eq!(e.resync.value, Duration::from_secs(15));
    assert_eq!(e.max_queue_depth.value, 100);
    assert_eq!(e.failure_threshold.value, 5);
    assert_eq!(e.finalizers, [CLEANUP_FINALIZER]);
    assert_eq!(e.on_create.counts(), [("ConfigMap", 1)]);
    assert_eq!(e.on_reconcile.counts(), [("ReplicaSet", 1)]);
    let rs = &e.on_reconcile.replica_sets[0];
    assert_eq!(rs.name.as_deref(), Some("{{ .metadata.name }}-worker"));
    assert_eq!(rs.image.as_deref(), Some("{{ .spec.image }}"));
    assert_eq!(
        rs.replicas.as_ref().map(|t| t.as_str()),
        Some("{{ .spec.parallelism }}")
    );
    let status: Vec<(&str, &str)> = e
        .status_fields
        .iter()
        .map(|f| (f.path.as_str(), f.value.as_str()))
        .collect();
    assert_eq!(
        status,
        [
            ("phase", "Running"),
            ("parallelism", "{{ .spec.parallelism }}"),
            ("workers", "{{ .spec.parallelism }}")
        ]
    );
}

#[test]
fn later_spellings_are_accepted_as_aliases() {
    let (_d, l) = load_text(&format!(
        "{HEAD}spec:
  finalizers: [katalog.example/wide]
  crds:
    Web App:
      apiTypes: {{group: g.example, version: v1, kind: WebApp}}
      workers: 7
      queue: {{maxQueueDepth: 10, degradeThreshold: 2}}
      admission:
        validation:
          rules: [{{field: spec.image, operator: exists, message: need an image, action: deny}}]
        mutation:
          rules: [{{field: spec.replicas, default: 2}}]
      operatorBox:
        finalizers: [webapp.example/own]
        reconcile:
          onCreate:
            configmaps:
              - labels: [{{key: tier, value: gold}}]
                data: {{PORT: 8080}}
            serviceaccounts: [{{}}]
          onReconcile:
            replicasets:
              - image: nginx
                anyOf: [{{field: spec.n, gt: 1}}, {{field: spec.n, lt: 0}}]
            cronjobs: [{{schedule: '* * * * *', image: busybox}}]
          onDelete:
            jobs: [{{image: busybox}}]
        emit:
          status:
            fields: [{{path: phase, value: Running}}]
        reconciler: {{resync: 30s, queue: {{maxDepth: 50}}}}
"
    ));
    assert!(errors(&l).is_empty(), "{:?}", l.problems);
    let e = &l.entries[0];
    assert_eq!(e.name, "webapp", "entry name is lower-cased without spaces");
    assert_eq!(e.workers.value, 7);
    assert_eq!(
        e.resync.value,
        Duration::from_secs(30),
        "operatorBox.reconciler.resync"
    );
    assert_eq!(
        e.max_queue_depth.value, 10,
        "entry level wins over operatorBox.reconciler"
    );
    assert_eq!(e.failure_threshold.value, 2);
    assert_eq!(
        e.finalizers,
        ["webapp.example/own", "katalog.example/wide", CLEANUP_FINALIZER]
    );
    assert_eq!(e.on_create.config_maps[0].labels.0["tier"], "gold");
    assert_eq!(e.on_create.config_maps[0].data["PORT"].as_str(), "8080");
    assert_eq!(e.on_create.service_accounts.len(), 1);
    assert_eq!(e.on_reconcile.replica_sets[0].or.len(), 2);
    assert_eq!(e.on_reconcile.cron_jobs.len(), 1);
    assert_eq!(e.on_delete.jobs.len(), 1);
    assert_eq!(e.status_fields[0].path, "phase");
    assert_eq!(e.validation.len(), 1);
    assert_eq!(e.mutation.rules.len(), 1);
}

#[test]
fn the_very_old_reconciler_block_and_legacy_api_version_load_with_a_warning() {
    let (_d, l) = load_text(
        "apiVersion: orkestra.konductor.io/v1Alpha
kind: Katalog
metadata: {name: old}
spec:
  crds:
    site:
      apiTypes: {group: g.example, version: v1, kind: Site}
      reconciler:
        onReconcile:
          deployments: [{image: nginx, port: 80}]
",
    );
    assert!(errors(&l).is_empty(), "{:?}", l.problems);
    assert_eq!(warnings(&l), ["apiVersion"]);
    assert_eq!(l.entries[0].on_reconcile.deployments.len(), 1);
}

#[test]
fn every_unknown_key_is_an_error_naming_its_path() {
    let (_d, l) = load_text(
        "apiVersion: orkestra.orkspace.io/v1
kind: Katalog
metadata:
  name: demo
  nmae: typo
spec:
  crds:
    data-job:
      apiTypes: {group: g.example, version: v1, knd: DataJob, kind: DataJob}
      operatorBox:
        onCreate:
          configMaps:
            - data: {A: b}
            - dataa: {A: b}
        onReconcile:
          replicaSets: [{image: x, replicas: 2, imagePullPolicy: Always}]
      workers: many
",
    );
    assert_eq!(
        errors(&l),
        [
            "metadata.nmae: unknown field `nmae`",
            "spec.crds.data-job.apiTypes.knd: unknown field `knd`",
            "spec.crds.data-job.operatorBox.onCreate.configMaps[1].dataa: unknown field `dataa`",
            "spec.crds.data-job.operatorBox.onReconcile.replicaSets[0].imagePullPolicy: unknown field `imagePullPolicy`",
            "spec.crds.data-job.workers: invalid type: string \"many\", expected u32",
        ]
    );
    assert_eq!(l.entries.len(), 1, "the rest of the Katalog is still checked");
}

#[test]
fn ignored_blocks_warn_instead_of_failing() {
    let (_d, l) = load_text(&format!(
        "{HEAD}security: {{anything: 1}}
spec:
  notes: [x]
  crds:
    a:
      apiTypes: {{group: g, version: v1, kind: A}}
      webhooks: {{enabled: true}}
      operatorBox: {{}}
"
    ));
    assert!(errors(&l).is_empty(), "{:?}", l.problems);
    assert_eq!(warnings(&l), ["security", "notes", "spec.crds.a.webhooks"]);
}

#[test]
fn a_list_of_crd_entries_is_refused_with_a_hint() {
    let (_d, l) = load_text(&format!("{HEAD}spec:\n  crds:\n    - name: a\n"));
    let e = errors(&l);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("spec.crds: CRD entries are a map"), "{e:?}");
}

#[test]
fn out_of_scope_features_are_refused_clearly() {
    let (_d, l) = load_text(&format!(
        "{HEAD}spec:
  crds:
    a:
      apiTypes: {{group: g, version: v1}}
      operatorBox:
        default: false
        reconciler: {{hooks: {{x: 1}}}}
        onCreate:
          statefulSets: [{{}}]
          deployments: [{{name: d}}]
          configMaps: [{{when: [{{field: spec.x, operator: sortaEquals}}]}}]
          onCreate: {{}}
        onReconcile: {{}}
        reconcile:
          onReconcile: {{}}
"
    ));
    let prefix = "spec.crds.a.";
    let got: Vec<String> = errors(&l)
        .into_iter()
        .map(|e| e.trim_start_matches(prefix).to_owned())
        .collect();
    for expected in [
        "apiTypes.kind: missing apiTypes.kind",
        "operatorBox.default: Go reconcilers (`default: false`) are not supported; only the generic reconciler",
        "operatorBox.reconciler: Go hooks and constructors are not supported",
        "operatorBox.reconcile.onReconcile: set both operatorBox.onReconcile and operatorBox.reconcile.onReconcile; keep one",
        "operatorBox.onCreate.statefulSets: not supported yet by this runtime",
        "operatorBox.onCreate.onCreate: a nested onCreate is only valid in a motif's resources",
        "operatorBox.onCreate.deployments[0].image: missing image",
        "operatorBox.onCreate.configMaps[0].when[0].operator: unknown operator \"sortaEquals\"",
    ] {
        assert!(
            got.iter().any(|g| g == expected),
            "missing {expected:?} in {got:#?}"
        );
    }
}

#[test]
fn template_errors_carry_their_path_and_position() {
    let (_d, l) = load_text(&format!(
        "{HEAD}spec:
  crds:
    a:
      apiTypes: {{group: g, version: v1, kind: A}}
      operatorBox:
        onCreate:
          configMaps:
            - data:
                A: \"{{{{ .spec.a \"
                B: \"x{{{{ nosuch .spec }}}}\"
"
    ));
    let p: Vec<&Problem> = l.problems.iter().filter(|p| p.is_error()).collect();
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].path, "spec.crds.a.operatorBox.onCreate.configMaps[0].data.A");
    assert_eq!(p[0].position, Some((1, 12)));
    assert!(
        p[0].to_string()
            .contains("(template line 1, column 12): failed to parse template: unclosed action")
    );
    assert_eq!(p[1].path, "spec.crds.a.operatorBox.onCreate.configMaps[0].data.B");
    assert_eq!(p[1].position, Some((1, 5)));
    assert!(
        p[1].message.contains("\"nosuch\" not defined"),
        "{}",
        p[1].message
    );
}

#[test]
fn motif_imports_bind_with_inputs_relative_to_the_katalog() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "lib/web.yaml",
        "kind: Motif
inputs: [{name: image, required: true}, {name: port, default: 8080}]
resources:
  onCreate:
    configMaps: [{name: '{{ .metadata.name }}-web', data: {PORT: '{{ .inputs.port }}'}}]
  deployments: [{image: '{{ inputs.image }}', port: '{{ index .inputs \"port\" }}'}]
status:
  fields: [{path: port, value: '{{ .inputs.port }}'}]
admission:
  validation:
    rules: [{field: spec.image, operator: exists, message: image required}]
",
    );
    let file = write(
        dir.path(),
        "k/katalog.yaml",
        &format!(
            "{HEAD}spec:
  crds:
    a:
      apiTypes: {{group: g, version: v1, kind: A}}
      imports: [{{motif: ../lib/web.yaml, with: {{image: '{{{{ .spec.image }}}}'}}}}]
      operatorBox:
        onReconcile:
          deployments: [{{name: own, image: busybox}}]
"
        ),
    );
    let l = load::load(&file, &Engine::default());
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let e = &l.entries[0];
    assert_eq!(e.on_create.config_maps[0].data["PORT"].as_str(), "8080");
    let images: Vec<_> = e
        .on_reconcile
        .deployments
        .iter()
        .map(|d| d.image.clone().unwrap())
        .collect();
    assert_eq!(
        images,
        ["busybox", "{{ .spec.image }}"],
        "motif resources are appended"
    );
    assert_eq!(
        e.on_reconcile.deployments[1].port.as_ref().unwrap().as_str(),
        "8080"
    );
    assert_eq!(e.status_fields[0].value.as_str(), "8080");
    assert_eq!(e.validation.len(), 1);
}

#[test]
fn motif_problems_name_the_motif_file_and_the_import() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.yaml",
        "kind: Motif
inputs: [{name: image, required: true}]
resources:
  replicaSets: [{image: '{{ .inputs.image }}', replicaz: 2, name: '{{ .metadata.name'}]
",
    );
    let file = write(
        dir.path(),
        "katalog.yaml",
        &format!(
            "{HEAD}spec:
  crds:
    a:
      apiTypes: {{group: g, version: v1, kind: A}}
      imports:
        - {{motif: m.yaml, with: {{image: x}}}}
        - {{motif: m.yaml, with: {{imagee: x}}}}
        - {{motif: missing.yaml}}
"
        ),
    );
    let l = load::load(&file, &Engine::default());
    let lines: Vec<String> = l.problems.iter().map(ToString::to_string).collect();
    let m = dir.path().join("m.yaml").display().to_string();
    let k = file.display().to_string();
    let expect = [
        format!(
            "{m}: resources.replicaSets[0].replicaz: unknown field `replicaz` (motif imported at spec.crds.a.imports[0])"
        ),
        format!("{k}: spec.crds.a.imports[1].with.imagee: the motif has no input \"imagee\""),
        format!("{k}: spec.crds.a.imports[1].with.image: required input is not bound"),
    ];
    for e in &expect {
        assert!(lines.contains(e), "missing {e:?} in {lines:#?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{m}: resources.replicaSets[0].name (template line 1,"))),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("missing.yaml: failed to read file")),
        "{lines:#?}"
    );
}
