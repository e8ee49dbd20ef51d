//! Harness for pipeline-service integration tests: a namespace per test on the shared testbed,
//! the service running under a token bound to `deploy/pipeline-service/role.yaml` (not as
//! cluster admin) and, in operator mode, the OMJob controller running in-process under the
//! operator's ClusterRole.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{future::Future, sync::Arc, time::Duration};

use k8s_openapi::{
    api::{
        core::v1::ServiceAccount,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use omjob_testbed::fixture::{self, ServiceAccountCredentials, TestNamespace, wait_for_service_account};
use pipeline_service::{Config, PipelineClient, PipelineDefinition, pipeline, runs::Run};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// Service accounts: the service's own, and the one pipeline pods run as.
pub const SERVICE_SA: &str = "pipeline-service";
pub const INGESTION_SA: &str = "openmetadata-ingestion";

static CLUSTER_SETUP: OnceCell<()> = OnceCell::const_new();

/// Installs `crds` and the operator ClusterRole once per test binary.
pub async fn cluster_setup(admin: &Client, crds: Vec<CustomResourceDefinition>) {
    CLUSTER_SETUP
        .get_or_init(|| async {
            fixture::install_crds(admin, crds, "pipeline-service-tests").await;
            let ssa = PatchParams::apply("pipeline-service-tests").force();
            let text = std::fs::read_to_string(repo_file("deploy/rbac/clusterrole.yaml")).unwrap();
            let role: ClusterRole = serde_yaml_ng::from_str(text.split("\n---\n").next().unwrap()).unwrap();
            Api::<ClusterRole>::all(admin.clone())
                .patch("omjob-operator", &ssa, &Patch::Apply(&role))
                .await
                .unwrap();
        })
        .await;
}

pub fn repo_file(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A client authenticated as `sa` in `ns`.
pub async fn service_account_client(admin: &Client, ns: &str, sa: &str) -> Client {
    ServiceAccountCredentials::read(admin, ns, sa)
        .await
        .client()
        .await
}

/// A kubeconfig file with `sa`'s token (for running the binary).
pub async fn service_account_kubeconfig(
    admin: &Client,
    ns: &str,
    sa: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    ServiceAccountCredentials::read(admin, ns, sa)
        .await
        .write_kubeconfig(&dir.join("kubeconfig"))
}

/// One test's world.
pub struct World {
    pub ns: TestNamespace,
    pub admin: Client,
    pub client: PipelineClient,
    operator: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(t) = &self.operator {
            t.abort();
        }
    }
}

/// Config for tests: the namespace, `extra` parameters (YAML map) on top.
pub fn config(ns: &str, extra: Value) -> Config {
    let mut params = json!({
        "namespace": ns,
        "ingestionImage": "ingestion",
        "inCluster": false,
        "backoffLimit": 0,
        "ingestionCommand": ["sh", "-c", "echo ingest $pipelineType"],
        "exitHandlerCommand": ["sh", "-c", "echo exit-handler $pipelineStatus"],
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        params[k] = v;
    }
    Config::from_sources(Some(&serde_json::to_string(&params).unwrap()), Vec::new()).unwrap()
}

/// Sets up a namespace with the service's RBAC and returns the service running under it; in
/// operator mode with this project's CRDs and the OMJob controller running.
pub async fn world(prefix: &str, extra: Value) -> World {
    world_with(prefix, extra, omjob_api::crds::all(), true).await
}

/// As [`world`], with `crds` installed in operator mode (once per test binary) and the OMJob
/// controller running only when `operator` says so.
pub async fn world_with(
    prefix: &str,
    extra: Value,
    crds: Vec<CustomResourceDefinition>,
    operator: bool,
) -> World {
    let ns = fixture::shared().namespace(prefix).await;
    let admin = ns.client();
    let operator_mode = extra.get("useOMJobOperator").and_then(Value::as_bool) == Some(true);
    if operator_mode {
        cluster_setup(&admin, crds).await;
    }
    let pp = PostParams::default();
    for sa in [SERVICE_SA, INGESTION_SA, "omjob-operator"] {
        let obj: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": sa}})).unwrap();
        ns.api::<ServiceAccount>().create(&pp, &obj).await.unwrap();
    }
    let role: Role = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_file("deploy/pipeline-service/role.yaml")).unwrap(),
    )
    .unwrap();
    ns.api::<Role>().create(&pp, &role).await.unwrap();
    let binding: RoleBinding = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo_file("deploy/pipeline-service/rolebinding.yaml")).unwrap(),
    )
    .unwrap();
    let mut binding = serde_json::to_value(binding).unwrap();
    binding["subjects"][0]["namespace"] = json!(ns.name());
    ns.api::<RoleBinding>()
        .create(&pp, &serde_json::from_value(binding).unwrap())
        .await
        .unwrap();
    wait_for_service_account(&admin, ns.name(), INGESTION_SA, Duration::from_secs(60))
        .await
        .unwrap();
    let service = service_account_client(&admin, ns.name(), SERVICE_SA).await;
    let operator = if operator_mode && operator {
        Some(start_operator(&admin, ns.name()).await)
    } else {
        None
    };
    let client = PipelineClient::new(service, config(ns.name(), extra))
        .await
        .unwrap();
    World {
        ns,
        admin,
        client,
        operator,
    }
}

/// Runs the operator's OMJob and CronOMJob controllers in-process on `ns`, under the operator's
/// ClusterRole. Returns the OMJob controller's task; the CronOMJob controller's ends with the
/// test's runtime.
async fn start_operator(admin: &Client, ns: &str) -> tokio::task::JoinHandle<()> {
    use omjob_operator::{clock::SystemClock, cronomjob, metrics::Metrics, omjob};
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("omjob-operator-{ns}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "omjob-operator"},
        "subjects": [{"kind": "ServiceAccount", "name": "omjob-operator", "namespace": ns}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let operator = service_account_client(admin, ns, "omjob-operator").await;
    let ctx = Arc::new(omjob::Context {
        client: operator.clone(),
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(SystemClock),
        settings: omjob::decide::Settings::default(),
    });
    let cron = cronomjob::Context {
        client: operator.clone(),
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(SystemClock),
        settings: cronomjob::decide::Settings::default(),
    };
    tokio::spawn(cronomjob::run(
        cron,
        Some(vec![ns.to_owned()]),
        2,
        std::future::pending::<()>(),
    ));
    tokio::spawn(omjob::run(
        ctx,
        Some(vec![ns.to_owned()]),
        4,
        std::future::pending::<()>(),
    ))
}

/// A definition from JSON (name filled in by deploy's path name).
pub fn definition(v: Value) -> PipelineDefinition {
    pipeline::from_value(v).unwrap()
}

/// Polls `check` every 250 ms until it returns `Some`, or fails after `limit` with `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until run `run_id` of `pipeline` has finished, and returns it.
pub async fn wait_finished(w: &World, pipeline: &str, run_id: &str, limit: Duration) -> Run {
    eventually(limit, &format!("run {run_id} to finish"), || async {
        w.client
            .runs(pipeline)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.run_id == run_id && r.state.is_finished())
    })
    .await
}

/// Everything in the namespace that carries `app.kubernetes.io/pipeline=<label>` or an owner
/// reference, as `Kind/name labels owners` lines (admin view).
pub async fn leftovers(w: &World, label: &str) -> Vec<String> {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let mut out = Vec::new();
    let kinds = [
        ("", "v1", "ConfigMap", "configmaps"),
        ("", "v1", "Secret", "secrets"),
        ("", "v1", "Pod", "pods"),
        ("batch", "v1", "Job", "jobs"),
        ("batch", "v1", "CronJob", "cronjobs"),
        ("pipelines.openmetadata.org", "v1", "OMJob", "omjobs"),
        ("pipelines.openmetadata.org", "v1", "CronOMJob", "cronomjobs"),
    ];
    for (g, v, k, plural) in kinds {
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(w.admin.clone(), w.ns.name(), &ar);
        let Ok(list) = api.list(&Default::default()).await else {
            continue; // CRDs not installed in standard-mode binaries
        };
        for o in list.items {
            let labels = o.metadata.labels.clone().unwrap_or_default();
            let owners: Vec<String> = o
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|r| format!("{}/{}", r.kind, r.name))
                .collect();
            let ours = labels.get("app.kubernetes.io/pipeline").map(String::as_str) == Some(label);
            if ours || owners.iter().any(|o| o.contains(label)) {
                out.push(format!(
                    "{k}/{} labels={labels:?} owners={owners:?}",
                    o.metadata.name.unwrap_or_default()
                ));
            }
        }
    }
    out
}
