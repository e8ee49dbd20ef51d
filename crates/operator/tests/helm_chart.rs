//! The Helm chart in `deploy/helm/omjob-operator`: it lints, renders the CRDs and RBAC that
//! `deploy/crds` and `deploy/rbac` ship (its copies of those files are checked byte for byte), its
//! Deployment's environment is a valid operator configuration with config.rs's defaults, its
//! schema refuses bad values by name, and `helm install`/`helm uninstall` on the testbed create and
//! remove every object. One test runs the locally built operator from the chart's pod and shows it
//! reconciling an OMJob under the chart's RBAC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::HashMap,
    future::Future,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::Output,
    sync::OnceLock,
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        coordination::v1::Lease,
        core::v1::{Pod, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource,
    api::{DeleteParams, ListParams, LogParams, PostParams},
};
use omjob_api::{OMJob, Phase};
use omjob_operator::config::OperatorConfig;
use omjob_testbed::fixture::{self, ServiceAccountCredentials};
use serde_json::{Value, json};

const CRD_NAMES: [&str; 2] = [
    "omjobs.pipelines.openmetadata.org",
    "cronomjobs.pipelines.openmetadata.org",
];

/// Tests that create, keep or delete the (cluster-scoped, single-named) CRDs take turns.
static CRD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/omjob-operator")
}

/// Helm's cache, config and data directories, kept out of the user's home.
fn helm_home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn helm_output(args: &[&str]) -> Output {
    let home = helm_home();
    std::process::Command::new(&fixture::shared().testbed().control_plane().binaries().helm)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", fixture::shared().kubeconfig())
        .current_dir(repo())
        .output()
        .expect("run helm")
}

/// Runs helm and returns its standard output; fails the test when it exits non-zero.
fn helm(args: &[&str]) -> String {
    let out = helm_output(args);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

fn file_docs(relative: &str) -> Vec<Value> {
    yaml_docs(&std::fs::read_to_string(repo().join(relative)).unwrap())
}

/// `helm template rel <chart> --namespace omjob-system` with `--set` arguments.
fn template(sets: &[&str]) -> Vec<Value> {
    let chart = chart().display().to_string();
    let mut args = vec!["template", "rel", &chart, "--namespace", "omjob-system"];
    for set in sets {
        args.extend(["--set", set]);
    }
    yaml_docs(&helm(&args))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in the rendered chart"))
}

fn container(docs: &[Value]) -> k8s_openapi::api::core::v1::Container {
    let deployment: Deployment =
        serde_json::from_value(find(docs, "Deployment", "rel-omjob-operator").clone()).unwrap();
    deployment.spec.unwrap().template.spec.unwrap().containers[0].clone()
}

/// The container's environment as the kubelet would build it (later entries win), with plausible
/// stand-ins for the downward-API values.
fn environment(docs: &[Value]) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for var in container(docs).env.unwrap_or_default() {
        let value = match (var.value, var.value_from) {
            (Some(v), _) => v,
            (None, Some(_)) if var.name == "OPERATOR_NAMESPACE" => "omjob-system".to_owned(),
            (None, Some(_)) if var.name == "POD_NAME" => "rel-omjob-operator-abc12".to_owned(),
            (None, _) => String::new(),
        };
        vars.insert(var.name, value);
    }
    vars
}

fn config(docs: &[Value]) -> OperatorConfig {
    let vars = environment(docs);
    OperatorConfig::from_lookup(|name| vars.get(name).cloned())
        .unwrap_or_else(|e| panic!("the rendered environment is not a valid configuration: {e}"))
}

/// The variables config.rs reads, taken from its source so that a new one fails this test until
/// the chart renders it. `HOSTNAME` is the kubelet's, not the chart's.
fn variables_config_reads() -> Vec<String> {
    let source = std::fs::read_to_string(repo().join("crates/operator/src/config.rs")).unwrap();
    let mut names = Vec::new();
    for call in [".parse(\"", ".seconds(\"", ".value(\""] {
        for (start, _) in source.match_indices(call) {
            let rest = &source[start + call.len()..];
            let name = &rest[..rest.find('"').unwrap()];
            let variable = name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
            if variable && name != "HOSTNAME" && !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    assert!(
        names.len() >= 15,
        "config.rs reads fewer variables than expected: {names:?}"
    );
    names
}

/// Polls `check` until it returns `Some`; `None` when `limit` passes first.
async fn wait_for<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `check` until it returns `Some`, failing with `what` after `limit`.
async fn poll<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match wait_for(limit, check).await {
        Some(found) => found,
        None => panic!("{what}: not within {limit:?}"),
    }
}

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap().is_some()
}

/// The objects one release creates, by API.
struct ReleaseObjects {
    client: Client,
    ns: String,
    fullname: String,
}

impl ReleaseObjects {
    fn new(client: &Client, ns: &str, release: &str) -> Self {
        Self {
            client: client.clone(),
            ns: ns.to_owned(),
            fullname: format!("{release}-omjob-operator"),
        }
    }

    /// Which of the release's objects exist, as `Kind/name`.
    async fn present(&self) -> Vec<String> {
        let c = &self.client;
        let name = &self.fullname;
        let lease_rbac = format!("{name}-leader-election");
        let checks = [
            (
                "ServiceAccount",
                exists(&Api::<ServiceAccount>::namespaced(c.clone(), &self.ns), name).await,
            ),
            (
                "Deployment",
                exists(&Api::<Deployment>::namespaced(c.clone(), &self.ns), name).await,
            ),
            (
                "ClusterRole",
                exists(&Api::<ClusterRole>::all(c.clone()), name).await,
            ),
            (
                "ClusterRoleBinding",
                exists(&Api::<ClusterRoleBinding>::all(c.clone()), name).await,
            ),
            (
                "Role",
                exists(&Api::<Role>::namespaced(c.clone(), &self.ns), &lease_rbac).await,
            ),
            (
                "RoleBinding",
                exists(&Api::<RoleBinding>::namespaced(c.clone(), &self.ns), &lease_rbac).await,
            ),
        ];
        checks
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(kind, _)| kind.to_owned())
            .collect()
    }
}

async fn crds_present(client: &Client) -> Vec<&'static str> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut present = Vec::new();
    for name in CRD_NAMES {
        if exists(&api, name).await {
            present.push(name);
        }
    }
    present
}

/// Deletes both CRDs (if present) and waits until they are gone, so a release can own them.
async fn remove_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in CRD_NAMES {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("delete CRD {name}: {e}"),
        }
    }
    poll("the CRDs are deleted", Duration::from_secs(60), || async {
        crds_present(client).await.is_empty().then_some(())
    })
    .await;
}

fn install(release: &str, ns: &str, extra: &[&str]) -> String {
    let chart = chart().display().to_string();
    let mut args = vec!["install", release, &chart, "--namespace", ns];
    args.extend(extra);
    helm(&args)
}

fn uninstall(release: &str, ns: &str) {
    helm(&["uninstall", release, "--namespace", ns]);
}

// ---------------------------------------------------------------------------------------------
// Offline checks: lint, render, schema.

#[test]
fn helm_lint_passes_in_strict_mode() {
    let out = helm(&["lint", "--strict", &chart().display().to_string()]);
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn the_charts_crd_file_is_a_byte_for_byte_copy_of_deploy_crds() {
    let shipped = std::fs::read_to_string(repo().join("deploy/crds/omjob-crds.yaml")).unwrap();
    let copy = std::fs::read_to_string(chart().join("files/omjob-crds.yaml")).unwrap();
    assert!(
        shipped == copy,
        "deploy/helm/omjob-operator/files/omjob-crds.yaml differs from deploy/crds/omjob-crds.yaml; \
         run `cp deploy/crds/omjob-crds.yaml deploy/helm/omjob-operator/files/omjob-crds.yaml`"
    );
}

#[test]
fn the_charts_rbac_file_is_a_byte_for_byte_copy_of_deploy_rbac() {
    let shipped = std::fs::read_to_string(repo().join("deploy/rbac/clusterrole.yaml")).unwrap();
    let copy = std::fs::read_to_string(chart().join("files/rbac.yaml")).unwrap();
    assert!(
        shipped == copy,
        "deploy/helm/omjob-operator/files/rbac.yaml differs from deploy/rbac/clusterrole.yaml; \
         run `cp deploy/rbac/clusterrole.yaml deploy/helm/omjob-operator/files/rbac.yaml`"
    );
}

#[test]
fn the_default_render_holds_every_object_in_the_release_namespace() {
    let docs = template(&[]);
    assert_eq!(
        fixture::object_names(&docs),
        [
            "ClusterRole/rel-omjob-operator",
            "ClusterRoleBinding/rel-omjob-operator",
            "CustomResourceDefinition/cronomjobs.pipelines.openmetadata.org",
            "CustomResourceDefinition/omjobs.pipelines.openmetadata.org",
            "Deployment/rel-omjob-operator",
            "Role/rel-omjob-operator-leader-election",
            "RoleBinding/rel-omjob-operator-leader-election",
            "ServiceAccount/rel-omjob-operator",
        ]
    );
    fixture::assert_bound_in_namespace(&docs, "omjob-system", "rel-omjob-operator");
    let deployment = find(&docs, "Deployment", "rel-omjob-operator");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "rel-omjob-operator");
    assert_eq!(deployment["spec"]["replicas"], 2);
    // The same hardening as deploy/operator/deployment.yaml.
    let kustomize = file_docs("deploy/operator/deployment.yaml");
    let shipped = &kustomize[0]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"], shipped["securityContext"]);
    assert_eq!(
        pod["containers"][0]["securityContext"],
        shipped["containers"][0]["securityContext"]
    );
    assert_eq!(
        pod["containers"][0]["resources"],
        shipped["containers"][0]["resources"]
    );
    assert_eq!(pod["containers"][0]["image"], "omjob-operator:0.1.0");
    assert_eq!(pod["containers"][0]["args"], json!(["run"]));
}

#[test]
fn the_rendered_crds_are_deploy_crds_plus_labels_and_the_keep_policy() {
    let docs = template(&[]);
    let shipped = file_docs("deploy/crds/omjob-crds.yaml");
    assert_eq!(shipped.len(), 2);
    for crd in &shipped {
        let name = crd["metadata"]["name"].as_str().unwrap();
        let rendered = find(&docs, "CustomResourceDefinition", name);
        assert_eq!(rendered["spec"], crd["spec"], "{name}: spec");
        assert_eq!(rendered["apiVersion"], crd["apiVersion"], "{name}");
        assert_eq!(
            rendered["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
        assert_eq!(
            rendered["metadata"]["labels"]["app.kubernetes.io/instance"],
            "rel"
        );
    }
    let not_kept = template(&["crds.keep=false"]);
    let crd = find(&not_kept, "CustomResourceDefinition", CRD_NAMES[0]);
    assert!(
        crd["metadata"]["annotations"]
            .get("helm.sh/resource-policy")
            .is_none()
    );
    let without = template(&["crds.install=false"]);
    assert!(
        without.iter().all(|d| d["kind"] != "CustomResourceDefinition"),
        "crds.install=false still renders CRDs"
    );
}

#[test]
fn the_rendered_rbac_rules_are_deploy_rbac_rules() {
    let docs = template(&[]);
    let shipped = file_docs("deploy/rbac/clusterrole.yaml");
    let of_kind = |kind: &str| shipped.iter().find(|d| d["kind"] == kind).unwrap();
    assert_eq!(
        find(&docs, "ClusterRole", "rel-omjob-operator")["rules"],
        of_kind("ClusterRole")["rules"]
    );
    assert_eq!(
        find(&docs, "Role", "rel-omjob-operator-leader-election")["rules"],
        of_kind("Role")["rules"]
    );

    let no_lease = template(&["leaderElection.enabled=false", "replicaCount=1"]);
    assert!(
        no_lease
            .iter()
            .all(|d| d["kind"] != "Role" && d["kind"] != "RoleBinding"),
        "without leader election no Lease permission is rendered"
    );
    assert_eq!(
        find(&no_lease, "ClusterRole", "rel-omjob-operator")["rules"],
        of_kind("ClusterRole")["rules"]
    );
    let no_rbac = template(&["rbac.create=false"]);
    assert!(
        no_rbac
            .iter()
            .all(|d| !d["kind"].as_str().unwrap().contains("Role"))
    );
}

#[test]
fn the_default_environment_is_the_operators_default_configuration() {
    let docs = template(&[]);
    let vars = environment(&docs);
    for name in variables_config_reads() {
        assert!(vars.contains_key(&name), "the chart does not render {name}");
    }
    let rendered = config(&docs);
    // The same reading with nothing but the downward-API values: config.rs's own defaults.
    let defaults = OperatorConfig::from_lookup(|name| match name {
        "OPERATOR_NAMESPACE" => Some("omjob-system".to_owned()),
        "POD_NAME" => Some("rel-omjob-operator-abc12".to_owned()),
        _ => None,
    })
    .unwrap();
    assert_eq!(rendered, defaults);

    let c = container(&docs);
    let port = c.ports.as_ref().unwrap()[0].clone();
    assert_eq!(i32::from(rendered.health_check_port), port.container_port);
    let liveness = c.liveness_probe.unwrap().http_get.unwrap();
    let readiness = c.readiness_probe.unwrap().http_get.unwrap();
    assert_eq!(liveness.path.as_deref(), Some("/health"));
    assert_eq!(readiness.path.as_deref(), Some("/ready"));
    for probe in [liveness.port, readiness.port] {
        assert_eq!(
            probe,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into())
        );
    }
}

#[test]
fn every_operator_value_reaches_its_environment_variable() {
    let docs = template(&[
        "operator.watchNamespaces={team-a,team-b}",
        "operator.reconciliationThreads=12",
        "operator.healthCheckPort=9090",
        "operator.metricsPort=9091",
        "operator.logLevel=info\\,kube=debug",
        "operator.logFormat=text",
        "operator.pollingIntervalSeconds=15",
        "operator.requeueDelaySeconds=45",
        "operator.mainPodPendingTimeoutSeconds=1000000",
        "operator.nodeLostGraceSeconds=0",
        "operator.exitHandlerMaxAttempts=7",
        "leaderElection.leaseName=my.lease",
    ]);
    let c = config(&docs);
    assert_eq!(
        c.watch_namespaces,
        omjob_operator::config::WatchNamespaces::Only(vec!["team-a".into(), "team-b".into()])
    );
    assert_eq!(c.reconciliation_threads, 12);
    assert_eq!(c.health_check_port, 9090);
    assert_eq!(c.metrics_port, 9091);
    assert_eq!(c.log_filter, "info,kube=debug");
    assert_eq!(c.log_format, omjob_operator::config::LogFormat::Text);
    assert_eq!(c.polling_interval, Duration::from_secs(15));
    assert_eq!(c.requeue_delay, Duration::from_secs(45));
    // Large numbers are rendered as integers, not Go's 1e+06.
    assert_eq!(c.main_pod_pending_timeout, Duration::from_secs(1_000_000));
    assert_eq!(c.node_lost_grace, Duration::ZERO);
    assert_eq!(c.exit_handler_max_attempts, 7);
    assert!(c.leader_election);
    assert_eq!(c.lease_name, "my.lease");
    assert_eq!(c.identity, "rel-omjob-operator-abc12");
    assert_eq!(container(&docs).ports.unwrap()[0].container_port, 9090);

    let single = config(&template(&["leaderElection.enabled=false", "replicaCount=1"]));
    assert!(!single.leader_election);
}

#[test]
fn extra_env_command_args_and_scheduling_values_are_passed_through() {
    let docs = template(&[
        "command={/opt/omjob-operator}",
        "args={run,--flag}",
        "extraEnv[0].name=RUST_BACKTRACE",
        "extraEnv[0].value=full",
        "extraEnv[1].name=LOG_FORMAT",
        "extraEnv[1].value=text",
        "image.repository=registry.example/omjob-operator",
        "image.tag=1.2.3",
        "image.pullPolicy=Always",
        "podAnnotations.team=data",
        "nodeSelector.pool=ops",
        "tolerations[0].key=dedicated",
        "tolerations[0].operator=Exists",
    ]);
    let c = container(&docs);
    assert_eq!(c.command, Some(vec!["/opt/omjob-operator".to_owned()]));
    assert_eq!(c.args, Some(vec!["run".to_owned(), "--flag".to_owned()]));
    assert_eq!(c.image.as_deref(), Some("registry.example/omjob-operator:1.2.3"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    let vars = environment(&docs);
    assert_eq!(vars["RUST_BACKTRACE"], "full");
    // extraEnv comes last, so it overrides the chart's own entry, as the kubelet resolves it.
    assert_eq!(vars["LOG_FORMAT"], "text");
    assert_eq!(config(&docs).log_format, omjob_operator::config::LogFormat::Text);
    let pod = &find(&docs, "Deployment", "rel-omjob-operator")["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"], json!({"team": "data"}));
    assert_eq!(pod["spec"]["nodeSelector"], json!({"pool": "ops"}));
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([{"key": "dedicated", "operator": "Exists"}])
    );
}

#[test]
fn bad_values_are_refused_with_an_error_naming_the_value() {
    let chart = chart().display().to_string();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["operator.reconciliationThreads=0"],
            &["/operator/reconciliationThreads", "minimum"],
        ),
        (&["operator.logLevel=LOUD"], &["/operator/logLevel", "'LOUD'"]),
        (
            &["operator.logFormat=xml"],
            &["/operator/logFormat", "'json', 'text'"],
        ),
        (
            &["operator.healthCheckPort=70000"],
            &["/operator/healthCheckPort", "maximum"],
        ),
        (&["operator.metricsPort=0"], &["/operator/metricsPort", "minimum"]),
        (
            &["operator.watchNamespaces={Team_A}"],
            &["/operator/watchNamespaces/0", "'Team_A'"],
        ),
        (
            &["operator.pollingIntervalSeconds=0"],
            &["/operator/pollingIntervalSeconds", "minimum"],
        ),
        (
            &["operator.requeueDelaySeconds=-1"],
            &["/operator/requeueDelaySeconds", "minimum"],
        ),
        (
            &["operator.mainPodPendingTimeoutSeconds=0"],
            &["/operator/mainPodPendingTimeoutSeconds"],
        ),
        (
            &["operator.nodeLostGraceSeconds=-5"],
            &["/operator/nodeLostGraceSeconds", "minimum"],
        ),
        (
            &["operator.exitHandlerMaxAttempts=0"],
            &["/operator/exitHandlerMaxAttempts", "minimum"],
        ),
        (
            &["operator.reconciliationThreads=five"],
            &["/operator/reconciliationThreads"],
        ),
        (
            &["leaderElection.leaseName=Not_A_Name"],
            &["/leaderElection/leaseName", "'Not_A_Name'"],
        ),
        (&["leaderElection.enabled=maybe"], &["/leaderElection/enabled"]),
        (&["image.pullPolicy=Sometimes"], &["/image/pullPolicy"]),
        (&["crds.instal=false"], &["'instal' not allowed"]),
        (
            &["operator.reconcilationThreads=3"],
            &["'reconcilationThreads' not allowed"],
        ),
        (
            &["leaderElection.enabled=false"],
            &["replicaCount 2 needs leaderElection.enabled"],
        ),
        (
            &["serviceAccount.create=false"],
            &["serviceAccount.name must name an existing ServiceAccount"],
        ),
    ];
    for (sets, expected) in cases {
        let mut args = vec!["template", "rel", chart.as_str()];
        for set in *sets {
            args.extend(["--set", set]);
        }
        let out = helm_output(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sets:?} was accepted");
        for needle in *expected {
            assert!(
                stderr.contains(needle),
                "{sets:?}: the error does not say {needle:?}:\n{stderr}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// On the testbed.

#[tokio::test]
async fn helm_install_creates_every_object_and_helm_uninstall_removes_them() {
    let ns = fixture::shared().namespace("helm-install").await;
    let client = ns.client();
    let _crds = CRD_LOCK.lock().await;
    remove_crds(&client).await;

    // A pod command the simulated node can run (it ignores images); everything else is default.
    install(
        "lifecycle",
        ns.name(),
        &[
            "--set",
            "crds.keep=false",
            "--set",
            "command={sleep,infinity}",
            "--set",
            "args=null",
        ],
    );
    let objects = ReleaseObjects::new(&client, ns.name(), "lifecycle");
    assert_eq!(
        objects.present().await,
        [
            "ServiceAccount",
            "Deployment",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding"
        ]
    );
    assert_eq!(crds_present(&client).await, CRD_NAMES);
    // The API server serves the kinds the chart's CRDs define.
    let omjobs: Api<OMJob> = ns.api();
    poll("the OMJob kind is served", Duration::from_secs(30), || async {
        omjobs.list(&ListParams::default()).await.ok().map(|_| ())
    })
    .await;
    // The Deployment's pods are admitted and run under the chart's service account.
    let pods: Api<Pod> = ns.api();
    let selector = ListParams::default().labels("app.kubernetes.io/instance=lifecycle");
    let running = poll("two operator pods run", Duration::from_secs(60), || async {
        let list = pods.list(&selector).await.unwrap();
        let running: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect();
        (running.len() == 2).then_some(running)
    })
    .await;
    for pod in running {
        let spec = pod.spec.unwrap();
        assert_eq!(
            spec.service_account_name.as_deref(),
            Some("lifecycle-omjob-operator")
        );
    }

    uninstall("lifecycle", ns.name());
    poll(
        "every object of the release is gone",
        Duration::from_secs(60),
        || async {
            (objects.present().await.is_empty() && crds_present(&client).await.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_crds_outlive_an_uninstall_by_default_and_a_release_without_crds_leaves_them_alone() {
    let kept_ns = fixture::shared().namespace("helm-keep").await;
    let plain_ns = fixture::shared().namespace("helm-nocrd").await;
    let client = kept_ns.client();
    let _crds = CRD_LOCK.lock().await;
    remove_crds(&client).await;

    let quiet = ["--set", "replicaCount=0"];
    install("kept", kept_ns.name(), &quiet);
    assert_eq!(crds_present(&client).await, CRD_NAMES);
    uninstall("kept", kept_ns.name());
    let kept = ReleaseObjects::new(&client, kept_ns.name(), "kept");
    poll(
        "the release's objects are gone",
        Duration::from_secs(60),
        || async { kept.present().await.is_empty().then_some(()) },
    )
    .await;
    assert_eq!(
        crds_present(&client).await,
        CRD_NAMES,
        "helm.sh/resource-policy: keep"
    );

    // A second release that does not own the CRDs installs next to them and leaves them on uninstall.
    install(
        "plain",
        plain_ns.name(),
        &["--set", "replicaCount=0", "--set", "crds.install=false"],
    );
    let manifest = helm(&["get", "manifest", "plain", "--namespace", plain_ns.name()]);
    assert!(!manifest.contains("CustomResourceDefinition"), "{manifest}");
    let plain = ReleaseObjects::new(&client, plain_ns.name(), "plain");
    assert_eq!(plain.present().await.len(), 6);
    uninstall("plain", plain_ns.name());
    poll(
        "the second release's objects are gone",
        Duration::from_secs(60),
        || async { plain.present().await.is_empty().then_some(()) },
    )
    .await;
    assert_eq!(crds_present(&client).await, CRD_NAMES);
    remove_crds(&client).await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status code of `GET path` on the local port, if something answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

async fn operator_log(pods: &Api<Pod>, release: &str) -> String {
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
    let mut text = String::new();
    for pod in pods.list(&selector).await.map(|l| l.items).unwrap_or_default() {
        let name = pod.metadata.name.unwrap_or_default();
        let log = pods
            .logs(&name, &LogParams::default())
            .await
            .unwrap_or_else(|e| e.to_string());
        text.push_str(&format!("--- {name}\n{log}\n"));
    }
    text
}

#[tokio::test]
async fn the_operator_run_from_the_charts_pod_reconciles_an_omjob_under_the_charts_rbac() {
    let ns = fixture::shared().namespace("helm-run").await;
    let client = ns.client();
    let _crds = CRD_LOCK.lock().await;
    fixture::install_crds(&client, omjob_api::crds::all(), "helm-chart-tests").await;

    // The simulated node runs the pod's command as a local process and mounts no service-account
    // token, so the chart's pod runs the locally built binary with a kubeconfig holding a token of
    // the chart's service account: the operator then acts with exactly the chart's RBAC.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("operator.kubeconfig");
    let port = free_port();
    let values = |replicas: u32| {
        json!({
            "replicaCount": replicas,
            "crds": {"install": false},
            "command": [env!("CARGO_BIN_EXE_omjob-operator")],
            "operator": {"watchNamespaces": [ns.name()], "healthCheckPort": port, "logFormat": "text"},
            "extraEnv": [{"name": "KUBECONFIG", "value": kubeconfig.display().to_string()}],
        })
    };
    let values_file = dir.path().join("values.json");
    std::fs::write(&values_file, values(0).to_string()).unwrap();
    let values_arg = values_file.display().to_string();
    install("run", ns.name(), &["-f", &values_arg]);
    ServiceAccountCredentials::read(&client, ns.name(), "run-omjob-operator")
        .await
        .write_kubeconfig(&kubeconfig);
    std::fs::write(&values_file, values(1).to_string()).unwrap();
    let chart = chart().display().to_string();
    helm(&[
        "upgrade",
        "run",
        &chart,
        "--namespace",
        ns.name(),
        "-f",
        &values_arg,
    ]);

    let pods: Api<Pod> = ns.api();
    let ready = wait_for(Duration::from_secs(90), || async {
        (http_status(port, "/ready") == Some(200)).then_some(())
    })
    .await;
    if ready.is_none() {
        panic!(
            "the operator never answered /ready; log:\n{}",
            operator_log(&pods, "run").await
        );
    }

    let omjob: OMJob = serde_json::from_value(json!({
        "apiVersion": omjob_api::API_VERSION, "kind": "OMJob",
        "metadata": {"name": "from-chart", "namespace": ns.name()},
        "spec": {
            "mainPodSpec": {"image": "ingestion", "serviceAccountName": "run-omjob-operator", "command": ["sh", "-c", "exit 0"]},
            "exitHandlerSpec": {"image": "ingestion", "serviceAccountName": "run-omjob-operator", "command": ["sh", "-c", "exit 0"]}
        }
    }))
    .unwrap();
    let omjobs: Api<OMJob> = ns.api();
    omjobs.create(&PostParams::default(), &omjob).await.unwrap();
    let finished = wait_for(Duration::from_secs(120), || async {
        let o = omjobs.get("from-chart").await.unwrap();
        let phase = o.status.as_ref().and_then(|s| s.phase);
        phase.filter(|p| p.is_terminal()).map(|p| (p, o))
    })
    .await;
    let Some((phase, done)) = finished else {
        panic!(
            "the OMJob did not finish; operator log:\n{}",
            operator_log(&pods, "run").await
        )
    };
    assert_eq!(
        phase,
        Phase::Succeeded,
        "{done:?}\n{}",
        operator_log(&pods, "run").await
    );

    // It led through the chart's leader-election Role: the Lease in the release namespace names
    // the chart's pod.
    let lease = Api::<Lease>::namespaced(client.clone(), ns.name())
        .get("omjob-operator-leader")
        .await
        .unwrap();
    let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    assert!(
        holder.starts_with("run-omjob-operator-"),
        "lease holder {holder:?}"
    );

    uninstall("run", ns.name());
    poll("the operator pod is gone", Duration::from_secs(60), || async {
        pods.list(&ListParams::default().labels("app.kubernetes.io/instance=run"))
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    poll(
        "the operator process stopped",
        Duration::from_secs(30),
        || async { http_status(port, "/health").is_none().then_some(()) },
    )
    .await;
}
