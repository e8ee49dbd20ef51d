//! The operations: deploy, run, runs, logs, kill, enable/disable, delete, status. The HTTP API
//! and the CLI are thin layers over [`PipelineClient`].
//!
//! | Module | Operations |
//! |---|---|
//! | this one | connecting, reading a pipeline, shared helpers |
//! | [`lifecycle`] | deploy (with rollback), enable/disable, delete |
//! | [`run_ops`] | run, runs, a run's detail and diagnostics, kill |
//! | [`log_pages`] | log pages |
//! | [`status`] | connection, version and permissions |
//!
//! Every name comes from [`PipelineNames`], every API call goes through [`retry`], and every
//! error says what failed on which resource (see [`crate::error`]).

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, Resource, ResourceExt as _,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};

pub use self::{
    run_ops::{DIAGNOSTICS_KEY, diagnostics_config_map},
    status::ServiceStatus,
};
use crate::{
    build::DEFINITION_KEY,
    config::{Config, Mode},
    error::{Error, Result},
    logs::{CHUNK_BYTES, LogSpool},
    names::PipelineNames,
    pipeline::PipelineDefinition,
    retry::{RetryPolicy, retry_with},
};

mod lifecycle;
mod log_pages;
mod run_ops;
mod status;

/// What a deploy did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployed {
    /// The pipeline.
    pub pipeline: String,
    /// Objects written, as `Kind/name`.
    pub resources: Vec<String>,
    /// Whether it has a schedule.
    pub scheduled: bool,
}

/// A run just started.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    /// The run id (a UUID).
    pub run_id: String,
    /// `Job` or `OMJob`.
    pub kind: String,
    /// Its name.
    pub resource: String,
}

/// The outcome of kill, enable/disable and delete.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// What happened, in words.
    pub message: String,
    /// Objects affected, as `Kind/name`.
    pub resources: Vec<String>,
    /// For enable/disable: whether the schedule is now enabled (absent for on-demand pipelines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The service's view of the cluster.
pub struct PipelineClient {
    client: Client,
    config: Arc<Config>,
    cron_api: ApiResource,
    cron_time_zones: bool,
    spool: LogSpool,
    retry_policy: RetryPolicy,
}

impl std::fmt::Debug for PipelineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineClient")
            .field("namespace", &self.config.namespace)
            .field("mode", &self.config.mode)
            .field("cron_api", &self.cron_api.api_version)
            .finish_non_exhaustive()
    }
}

/// Spooled finished logs kept at once.
const SPOOLED_LOGS: usize = 16;

fn kind_name<K: Resource<DynamicType = ()>>(name: &str) -> String {
    format!("{}/{name}", K::kind(&()))
}

impl PipelineClient {
    /// Builds a Kubernetes client as the configuration says (`inCluster`, `kubeConfigContent`,
    /// `kubeconfigPath`, then the usual lookup), then the service.
    ///
    /// # Errors
    /// [`Error::Connect`] when no client can be built.
    pub async fn connect(config: Config) -> Result<Self> {
        let connect = |what: &str, e: &dyn std::fmt::Display| Error::Connect(format!("{what}: {e}"));
        let options = kube::config::KubeConfigOptions::default();
        let mut kube_config = if config.in_cluster {
            match kube::Config::incluster() {
                Ok(c) => c,
                Err(e) => {
                    // Convenient for the CLI on a workstation: inCluster defaults to true.
                    tracing::warn!(error = %e, "inCluster is true but this is not a pod; using the kubeconfig");
                    kube::Config::infer()
                        .await
                        .map_err(|e| connect("no in-cluster config and no kubeconfig", &e))?
                }
            }
        } else if !config.kube_config_content.trim().is_empty() {
            let kc = kube::config::Kubeconfig::from_yaml(&config.kube_config_content)
                .map_err(|e| connect("kubeConfigContent is not a kubeconfig", &e))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| connect("kubeConfigContent cannot be used", &e))?
        } else if !config.kubeconfig_path.trim().is_empty() {
            let kc = kube::config::Kubeconfig::read_from(&config.kubeconfig_path).map_err(|e| {
                connect(
                    &format!("cannot read kubeconfigPath {}", config.kubeconfig_path),
                    &e,
                )
            })?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| {
                    connect(
                        &format!("kubeconfigPath {} cannot be used", config.kubeconfig_path),
                        &e,
                    )
                })?
        } else {
            kube::Config::infer()
                .await
                .map_err(|e| connect("no kubeconfig found", &e))?
        };
        kube_config.read_timeout = Some(Duration::from_secs(30));
        kube_config.connect_timeout = Some(Duration::from_secs(10));
        let client =
            Client::try_from(kube_config).map_err(|e| connect("cannot build a Kubernetes client", &e))?;
        Self::new(client, config).await
    }

    /// The service on `client`. Asks the API server its version once: CronJob `timeZone` needs
    /// Kubernetes 1.27 or later, and on an older server a schedule in another zone is refused
    /// (it would silently run in the controller manager's zone). A server whose version cannot be
    /// read, or that reports no numeric minor (an unstamped build), is taken to be current.
    ///
    /// # Errors
    /// When the spool directory cannot be created.
    pub async fn new(client: Client, config: Config) -> Result<Self> {
        let policy = config.retry_policy();
        let minor = retry_with(&policy, || client.apiserver_version())
            .await
            .ok()
            .filter(|v| v.major == "1")
            .and_then(|v| v.minor.trim_end_matches('+').parse::<u32>().ok())
            .filter(|m| *m > 0);
        let cron_api =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "CronJob"), "cronjobs");
        let spool = LogSpool::new(SPOOLED_LOGS, CHUNK_BYTES).map_err(Error::Spool)?;
        Ok(Self {
            client,
            config: Arc::new(config),
            cron_api,
            cron_time_zones: minor.is_none_or(|m| m >= 27),
            spool,
            retry_policy: policy,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The Kubernetes client.
    #[must_use]
    pub fn kube(&self) -> &Client {
        &self.client
    }

    /// Runs one API call with the configured retries.
    async fn retry<T, F, Fut>(&self, call: F) -> std::result::Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
    {
        retry_with(&self.retry_policy, call).await
    }

    /// Deletes `name` through `api` with background propagation (owned objects, a run's pods
    /// included, go with it), retrying transient errors. Not-found is left to the caller.
    async fn delete_via<K>(&self, api: &Api<K>, name: &str) -> std::result::Result<(), kube::Error>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let dp = kube::api::DeleteParams::background();
        self.retry(|| api.delete(name, &dp)).await.map(|_| ())
    }

    fn ns(&self) -> &str {
        &self.config.namespace
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), self.ns())
    }

    fn cron_jobs(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), self.ns(), &self.cron_api)
    }

    /// Whether a schedule's time zone must be UTC (standard mode without CronJob `timeZone`).
    #[must_use]
    pub fn utc_only(&self) -> bool {
        self.config.mode == Mode::Standard && !self.cron_time_zones
    }

    fn kube_err(&self, op: &str, resource: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
        let (op, resource) = (op.to_owned(), resource.to_owned());
        move |e| Error::kube(op, resource, self.ns(), e)
    }

    /// Creates or replaces `obj` (optimistic lock on the existing resourceVersion); returns
    /// whether it was created.
    async fn upsert<K>(&self, api: &Api<K>, kind: &str, mut obj: K) -> Result<bool>
    where
        K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        let name = obj.name_any();
        let existing = self
            .retry(|| api.get_opt(&name))
            .await
            .map_err(self.kube_err(&format!("read {kind}"), &name))?;
        match existing {
            Some(old) => {
                obj.meta_mut().resource_version = old.meta().resource_version.clone();
                self.retry(|| {
                    let pp = PostParams::default();
                    let (api, name, obj) = (api.clone(), name.clone(), obj.clone());
                    async move { api.replace(&name, &pp, &obj).await }
                })
                .await
                .map_err(self.kube_err(&format!("replace {kind}"), &name))?;
                Ok(false)
            }
            None => {
                api.create(&PostParams::default(), &obj)
                    .await
                    .map_err(self.kube_err(&format!("create {kind}"), &name))?;
                Ok(true)
            }
        }
    }

    /// The stored definition of a deployed pipeline.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not deployed.
    pub async fn get(&self, pipeline: &str) -> Result<PipelineDefinition> {
        let names = PipelineNames::new(pipeline);
        let cm_name = names.config_map();
        let cm = {
            let api = self.api::<ConfigMap>();
            self.retry(|| api.get_opt(&cm_name)).await
        }
        .map_err(self.kube_err("read ConfigMap", &cm_name))?
        .ok_or_else(|| Error::NotFound {
            what: format!(
                "pipeline '{pipeline}' (not deployed in namespace '{}')",
                self.ns()
            ),
        })?;
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(DEFINITION_KEY))
            .ok_or_else(|| Error::NotFound {
                what: format!("pipeline definition in ConfigMap '{cm_name}'"),
            })?;
        serde_json::from_str(text).map_err(|source| Error::Build {
            what: format!("the pipeline definition stored in ConfigMap '{cm_name}'"),
            source,
        })
    }
}

/// Creates an object of a run (the run or its Secret) and returns it as the API server stored it.
/// A retried create whose first attempt did land answers 409; that is success when the existing
/// object carries the same run id.
async fn create_once<K>(
    api: &Api<K>,
    obj: &K,
    run_id: &str,
    policy: &RetryPolicy,
) -> std::result::Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let pp = PostParams::default();
    match retry_with(policy, || api.create(&pp, obj)).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(&obj.name_any()).await?;
            if existing
                .labels()
                .get(omjob_api::labels::LABEL_APP_RUN_ID)
                .map(String::as_str)
                == Some(run_id)
            {
                Ok(existing)
            } else {
                Err(kube::Error::Api(s))
            }
        }
        Err(e) => Err(e),
    }
}
