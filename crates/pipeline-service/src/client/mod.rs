//! The operations: deploy, run, runs, logs, kill, enable/disable, delete, status. The HTTP API
//! and the CLI are thin layers over [`PipelineClient`].
//!
//! | Module | Concept |
//! |---|---|
//! | this one | connecting, reading a pipeline |
//! | `cluster` | the namespace: server-side apply, creates, patches, deletes, errors |
//! | `workloads` | what differs between the modes, behind one trait |
//! | `standard` / `operator` | Jobs and CronJobs / OMJobs and CronOMJobs |
//! | `lifecycle` | deploy (with rollback), enable/disable, delete |
//! | `run_ops` | run, runs, a run's detail and diagnostics, kill |
//! | `log_pages` | log pages |
//! | `status` | connection, version and permissions |
//!
//! The mode is chosen once, in [`PipelineClient::new`]; no operation matches on it. Every name
//! comes from [`PipelineNames`], every request goes through the client's retry layer
//! ([`crate::retry`]), and every error says what failed on which resource (see
//! [`crate::error`]).

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use serde::Serialize;

use self::{
    cluster::Cluster,
    workloads::{Workloads, for_mode},
};
pub use self::{
    cluster::FIELD_MANAGER,
    run_ops::{DIAGNOSTICS_KEY, diagnostics_config_map},
    status::ServiceStatus,
};
use crate::{
    build::DEFINITION_KEY,
    config::Config,
    error::{Error, Op, Result},
    logs::{CHUNK_BYTES, LogSpool},
    names::PipelineNames,
    pipeline::PipelineDefinition,
    retry::with_retries,
};

mod cluster;
mod lifecycle;
mod log_pages;
mod operator;
mod run_ops;
mod standard;
mod status;
mod workloads;

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
    /// The client as given, without the retry layer.
    given: Client,
    cluster: Cluster,
    config: Arc<Config>,
    workloads: Box<dyn Workloads>,
    spool: LogSpool,
}

impl std::fmt::Debug for PipelineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineClient")
            .field("namespace", &self.config.namespace)
            .field("mode", &self.config.mode)
            .field("runs", &self.workloads.runs().name)
            .finish_non_exhaustive()
    }
}

/// Spooled finished logs kept at once.
const SPOOLED_LOGS: usize = 16;

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
        // kube's own retry layer replays creates on 503/504; the service's layer is the one policy.
        kube_config.default_retry = false;
        let client =
            Client::try_from(kube_config).map_err(|e| connect("cannot build a Kubernetes client", &e))?;
        Self::new(client, config).await
    }

    /// The service on `client`, with the retry layer ([`crate::retry`]) on top of it. Asks the
    /// API server its version once: CronJob `timeZone` needs Kubernetes 1.27 or later, and on an
    /// older server a standard-mode schedule in another zone is refused (it would silently run in
    /// the controller manager's zone). A server whose version cannot be read, or that reports no
    /// numeric minor (an unstamped build), is taken to be current.
    ///
    /// # Errors
    /// When the spool directory cannot be created.
    pub async fn new(client: Client, config: Config) -> Result<Self> {
        let retrying = with_retries(client.clone(), config.retry_policy());
        let minor = retrying
            .apiserver_version()
            .await
            .ok()
            .filter(|v| v.major == "1")
            .and_then(|v| v.minor.trim_end_matches('+').parse::<u32>().ok())
            .filter(|m| *m > 0);
        let cluster = Cluster::new(retrying, &config.namespace);
        let workloads = for_mode(config.mode, cluster.clone(), minor.is_none_or(|m| m >= 27));
        let spool = LogSpool::new(SPOOLED_LOGS, CHUNK_BYTES).map_err(Error::Spool)?;
        Ok(Self {
            given: client,
            cluster,
            config: Arc::new(config),
            workloads,
            spool,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The Kubernetes client as given to [`Self::new`], without the service's retry layer (so a
    /// second service built on it does not retry twice).
    #[must_use]
    pub fn kube(&self) -> &Client {
        &self.given
    }

    fn ns(&self) -> &str {
        self.cluster.ns()
    }

    /// Whether a schedule's time zone must be UTC (standard mode without CronJob `timeZone`).
    #[must_use]
    pub fn utc_only(&self) -> bool {
        self.workloads.utc_only()
    }

    /// The stored definition of a deployed pipeline.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not deployed.
    pub async fn get(&self, pipeline: &str) -> Result<PipelineDefinition> {
        let cm_name = PipelineNames::new(pipeline).config_map();
        let cm = self
            .cluster
            .api::<ConfigMap>()
            .get_opt(&cm_name)
            .await
            .map_err(self.cluster.err(Op::Read, "ConfigMap", &cm_name))?
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
