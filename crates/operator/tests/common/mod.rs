//! Harness for operator integration tests: CRDs installed once, a namespace per test, the
//! controller running in-process under the operator's ClusterRole, and a trace directory where
//! exit handlers record each run.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use k8s_openapi::api::{
    core::v1::{Pod, ServiceAccount},
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::wait::await_condition,
};
use omjob_api::OMJob;
use omjob_operator::{
    clock::SystemClock,
    metrics::Metrics,
    omjob::{self, Context, decide::Settings},
};
use omjob_testbed::fixture::{self, ServiceAccountCredentials, TestNamespace, wait_for_service_account};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

pub mod cron;
pub mod node;
pub mod process;
pub mod proxy;

static CLUSTER_SETUP: OnceCell<()> = OnceCell::const_new();

/// Installs the CRDs and the operator ClusterRole once per test binary.
pub async fn cluster_setup(admin: &Client) {
    CLUSTER_SETUP
        .get_or_init(|| async {
            fixture::install_crds(admin, omjob_api::crds::all(), "omjob-tests").await;
            let ssa = PatchParams::apply("omjob-tests").force();
            let path = format!(
                "{}/../../deploy/rbac/clusterrole.yaml",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(path).unwrap();
            let first = text.split("\n---\n").next().unwrap();
            let role: ClusterRole = serde_yaml_ng::from_str(first).unwrap();
            Api::<ClusterRole>::all(admin.clone())
                .patch("omjob-operator", &ssa, &Patch::Apply(&role))
                .await
                .unwrap();
        })
        .await;
}

/// A namespace with a running controller.
pub struct Harness {
    pub ns: TestNamespace,
    pub admin: Client,
    pub operator: Client,
    pub trace_dir: tempfile::TempDir,
    /// The operator service account's token, for operators run as separate processes.
    pub operator_credentials: ServiceAccountCredentials,
    /// The in-process controller's metrics, once it runs.
    pub metrics: Option<Arc<Metrics>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Harness {
    /// A namespace with the controller running in-process.
    pub async fn start(prefix: &str, settings: Settings) -> Self {
        let mut h = Self::prepare(prefix).await;
        h.run_controller(settings);
        h
    }

    /// Starts the controller in-process on a namespace from [`Harness::prepare`].
    pub fn run_controller(&mut self, settings: Settings) {
        self.run_controller_with(settings, 4);
    }

    /// [`Harness::run_controller`] with `threads` as `RECONCILIATION_THREADS`.
    pub fn run_controller_with(&mut self, settings: Settings, threads: u16) {
        let metrics = Arc::new(Metrics::new());
        self.metrics = Some(metrics.clone());
        let ctx = Arc::new(Context {
            client: self.operator.clone(),
            metrics,
            clock: Arc::new(SystemClock),
            settings,
        });
        self.task = Some(tokio::spawn(omjob::run(
            ctx,
            Some(vec![self.ns().to_owned()]),
            threads,
            std::future::pending::<()>(),
        )));
    }

    /// A namespace with the operator's service accounts and bindings (the ClusterRole, and the
    /// leader-election Role in this namespace), but no controller running.
    pub async fn prepare(prefix: &str) -> Self {
        let ns = fixture::shared().namespace(prefix).await;
        let admin = ns.client();
        cluster_setup(&admin).await;
        let pp = PostParams::default();
        let sas: Api<ServiceAccount> = ns.api();
        for sa in ["omjob-operator", "openmetadata-ingestion"] {
            let obj: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": sa}})).unwrap();
            sas.create(&pp, &obj).await.unwrap();
        }
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("omjob-operator-{}", ns.name())},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "omjob-operator"},
            "subjects": [{"kind": "ServiceAccount", "name": "omjob-operator", "namespace": ns.name()}]
        }))
        .unwrap();
        Api::<ClusterRoleBinding>::all(admin.clone())
            .create(&pp, &binding)
            .await
            .unwrap();
        wait_for_service_account(
            &admin,
            ns.name(),
            "openmetadata-ingestion",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let role_file = format!(
            "{}/../../deploy/rbac/clusterrole.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(role_file).unwrap();
        let mut lease_role: Role = serde_yaml_ng::from_str(text.split("\n---\n").nth(1).unwrap()).unwrap();
        lease_role.metadata.namespace = Some(ns.name().to_owned());
        Api::<Role>::namespaced(admin.clone(), ns.name())
            .create(&pp, &lease_role)
            .await
            .unwrap();
        let lease_binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "omjob-operator-leader-election"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "omjob-operator-leader-election"},
            "subjects": [{"kind": "ServiceAccount", "name": "omjob-operator", "namespace": ns.name()}]
        }))
        .unwrap();
        Api::<RoleBinding>::namespaced(admin.clone(), ns.name())
            .create(&pp, &lease_binding)
            .await
            .unwrap();
        let operator_credentials = ServiceAccountCredentials::read(&admin, ns.name(), "omjob-operator").await;
        let operator = operator_credentials.client().await;
        Self {
            ns,
            admin,
            operator,
            trace_dir: tempfile::tempdir().unwrap(),
            operator_credentials,
            metrics: None,
            task: None,
        }
    }

    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    pub fn omjobs(&self) -> Api<OMJob> {
        Api::namespaced(self.admin.clone(), self.ns())
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), self.ns())
    }

    pub fn trace_file(&self, omjob: &str) -> PathBuf {
        self.trace_dir.path().join(format!("{omjob}.runs"))
    }

    /// One line per exit-handler run: "<pipelineStatus> <mainPodExitCode> <reason>".
    pub fn exit_runs(&self, omjob: &str) -> Vec<String> {
        std::fs::read_to_string(self.trace_file(omjob))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub async fn create(&self, mut obj: Value) {
        obj["metadata"]["namespace"] = json!(self.ns());
        let o: OMJob = serde_json::from_value(obj).unwrap();
        self.omjobs().create(&PostParams::default(), &o).await.unwrap();
    }

    /// Deletes pod `name` with a 1 s grace period, as someone other than the operator would.
    pub async fn delete_pod(&self, name: &str) {
        let dp = DeleteParams {
            grace_period_seconds: Some(1),
            ..Default::default()
        };
        self.pods().delete(name, &dp).await.unwrap();
    }

    pub async fn wait_pod_running(&self, name: &str) {
        let running = |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Running")
        };
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(self.pods(), name, running),
        )
        .await
        .unwrap_or_else(|_| panic!("pod {name} never ran"))
        .unwrap();
    }
}

/// An OMJob whose main stage runs `main_script` and whose exit handler appends
/// "$pipelineStatus $mainPodExitCode $mainPodTerminationReason" to the trace file.
pub fn omjob(h: &Harness, name: &str, main_script: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut o = json!({
        "apiVersion": omjob_api::API_VERSION, "kind": "OMJob",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/pipeline": name, "app.kubernetes.io/run-id": format!("run-{name}")}},
        "spec": {
            "mainPodSpec": {"image": "ingestion", "serviceAccountName": "openmetadata-ingestion", "command": ["sh", "-c", main_script]},
            "exitHandlerSpec": {"image": "ingestion", "serviceAccountName": "openmetadata-ingestion",
                "command": ["sh", "-c", "echo \"$pipelineStatus $mainPodExitCode $mainPodTerminationReason\" >> $TRACE"],
                "env": [{"name": "TRACE", "value": h.trace_file(name).display().to_string()}]}
        }
    });
    edit(&mut o);
    o
}

/// Waits until the OMJob reaches a terminal phase.
pub async fn wait_phase(h: &Harness, name: &str, limit: Duration) -> OMJob {
    wait_phase_explained(h, name, limit, String::new).await
}

/// [`wait_phase`], adding `explain()` (operator logs, say) to the failure message.
pub async fn wait_phase_explained(
    h: &Harness,
    name: &str,
    limit: Duration,
    explain: impl Fn() -> String,
) -> OMJob {
    let terminal = |o: Option<&OMJob>| {
        o.and_then(|o| o.status.as_ref())
            .and_then(|s| s.phase)
            .is_some_and(|p| p.is_terminal())
    };
    match tokio::time::timeout(limit, await_condition(h.omjobs(), name, terminal)).await {
        Ok(found) => found.unwrap().unwrap(),
        Err(_) => {
            // Say what was going on: the OMJob's status and its pods' states.
            let status = h.omjobs().get_opt(name).await.ok().flatten().map(|o| o.status);
            let pods: Vec<String> = h
                .pods()
                .list(&Default::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .map(|p| format!("{} {:?}", p.metadata.name.clone().unwrap_or_default(), p.status))
                        .collect()
                })
                .unwrap_or_default();
            panic!(
                "OMJob {name} did not finish within {limit:?}; status {status:?}; pods {pods:#?}\n{}",
                explain()
            )
        }
    }
}

/// Waits until `cond` holds for object `name` (watched), failing after `limit` with `what`.
pub async fn until<K, F>(api: Api<K>, name: &str, what: &str, limit: Duration, cond: F) -> Option<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(Option<&K>) -> bool + Send + 'static,
{
    tokio::time::timeout(limit, await_condition(api, name, cond))
        .await
        .unwrap_or_else(|_| panic!("{name}: no {what} within {limit:?}"))
        .unwrap_or_else(|e| panic!("{name}: watch failed while waiting for {what}: {e}"))
}

/// The OMJob holds none of the operator's finalizers (or is gone).
pub fn released(o: Option<&OMJob>) -> bool {
    o.is_none_or(|o| o.metadata.finalizers.as_ref().is_none_or(Vec::is_empty))
}

/// Waits until OMJob `name` holds no finalizer.
pub async fn wait_released(h: &Harness, name: &str, limit: Duration) {
    until(h.omjobs(), name, "finalizer release", limit, released).await;
}

/// The pod has finished (Succeeded or Failed).
pub fn pod_finished(p: Option<&Pod>) -> bool {
    p.and_then(|p| p.status.as_ref())
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
}

/// The harness namespace's exit-handler pods, by name.
pub async fn exit_pod_names(h: &Harness) -> Vec<String> {
    let selector = format!(
        "{}={}",
        omjob_api::labels::LABEL_POD_TYPE,
        omjob_api::labels::POD_TYPE_EXIT_HANDLER
    );
    let mut names: Vec<String> = h
        .pods()
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

/// Polls `check` every 100 ms until it holds, or panics naming `what` after `limit`. For what
/// cannot be watched (files, HTTP endpoints, lists); objects are awaited with [`until`].
pub async fn poll<F, Fut>(what: &str, limit: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
