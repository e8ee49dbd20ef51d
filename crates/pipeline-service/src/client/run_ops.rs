//! Runs: start one, list them, one run's detail with diagnostics (kept past the pod's TTL), kill.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api,
    api::{DynamicObject, PostParams},
};
use serde_json::json;

use super::{
    Outcome, PipelineClient, RunStarted,
    cluster::create_once,
    workloads::{Kind, owner_ref},
};
use crate::{
    build::{Builder, CONFIG_KEY},
    diagnostics::{self, Diagnostics},
    error::{Error, Op, Result, is_not_found},
    names::PipelineNames,
    runs::{Run, RunState},
};

/// Key of the diagnostics in their ConfigMap.
pub const DIAGNOSTICS_KEY: &str = "diagnostics.json";

/// Name of the ConfigMap that keeps a failed run's diagnostics: `om-diag-<run resource>`.
#[must_use]
pub fn diagnostics_config_map(run_resource: &str) -> String {
    crate::names::resource_name("om-diag-", run_resource, "")
}

impl PipelineClient {
    /// Starts a run now: its Secret (the deployed config with the run's id), then the Job or
    /// OMJob, which then becomes the Secret's owner. A failure on the way deletes what the call
    /// created.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the pipeline is not deployed; [`Error::RolledBack`] or other API
    /// errors.
    pub async fn run(&self, pipeline: &str) -> Result<RunStarted> {
        let def = self.get(pipeline).await?;
        let b = Builder::new(&self.config, &def);
        let deployed = self.deployed_config(&b.names().secret()).await?;
        let run_id = uuid::Uuid::new_v4().to_string();
        let name = b.names().run(&run_id);
        // Everything is built before the first write, so a build error writes nothing.
        let secret = b.run_secret(&run_id, &deployed)?;
        let run = self.workloads.build_run(&b, &run_id)?;
        self.start_run(&run, &name, &secret, &run_id).await?;
        tracing::info!(pipeline, run_id, resource = %name, "run started");
        Ok(RunStarted {
            run_id,
            kind: self.workloads.runs().name.into(),
            resource: name,
        })
    }

    /// The rendered config in the pipeline's Secret `name`, which every on-demand run starts
    /// from.
    async fn deployed_config(&self, name: &str) -> Result<String> {
        self.cluster
            .api::<Secret>()
            .get_opt(name)
            .await
            .map_err(self.cluster.err(Op::Read, "Secret", name))?
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(CONFIG_KEY))
            .and_then(|bytes| String::from_utf8(bytes.0).ok())
            .ok_or_else(|| Error::NotFound {
                what: format!(
                    "key '{CONFIG_KEY}' of Secret '{name}' (written by deploy; deploy the pipeline again)"
                ),
            })
    }

    /// Creates `secret`, then `run` (named `name`), then makes the run the Secret's owner, so the
    /// garbage collector deletes the Secret with the run (TTL, kill, delete). The Secret comes
    /// first because the run's pods read it as soon as they start. A failure deletes what was
    /// created.
    async fn start_run(&self, run: &DynamicObject, name: &str, secret: &Secret, run_id: &str) -> Result<()> {
        let kind = self.workloads.runs();
        let secrets = self.cluster.api::<Secret>();
        create_once(&secrets, secret, run_id)
            .await
            .map_err(self.cluster.err(Op::Create, "Secret", name))?;
        let runs = self.cluster.dynamic(&kind.resource);
        let created = match create_once(&runs, run, run_id).await {
            Ok(created) => created,
            Err(e) => {
                let e = Error::kube(Op::Create, kind.name, name, self.ns(), e);
                return Err(self.roll_back_run(e, None, name).await);
            }
        };
        let patch = json!({"metadata": {"ownerReferences": [owner_ref(&kind.resource, &created.metadata)]}});
        if let Err(e) = self.cluster.merge(&secrets, name, &patch).await {
            let e = Error::kube(Op::Patch, "Secret", name, self.ns(), e);
            return Err(self.roll_back_run(e, Some((&runs, kind)), name).await);
        }
        Ok(())
    }

    /// Deletes run `name` (when it was created) and its Secret after `error`, and says so.
    async fn roll_back_run(
        &self,
        error: Error,
        run: Option<(&Api<DynamicObject>, &Kind)>,
        name: &str,
    ) -> Error {
        let mut rolled_back = Vec::new();
        if let Some((api, kind)) = run
            && self.cluster.delete(api, name).await.is_ok()
        {
            rolled_back.push(kind.show(name));
        }
        if self
            .cluster
            .delete(&self.cluster.api::<Secret>(), name)
            .await
            .is_ok()
        {
            rolled_back.push(format!("Secret/{name}"));
        }
        tracing::warn!(run = name, error = %error, ?rolled_back, "run failed to start");
        Error::RolledBack {
            source: Box::new(error),
            rolled_back,
        }
    }

    /// Every run of the pipeline still in the cluster, newest first.
    ///
    /// # Errors
    /// API errors.
    pub async fn runs(&self, pipeline: &str) -> Result<Vec<Run>> {
        let selector = PipelineNames::new(pipeline).selector();
        let mut out: Vec<Run> = self
            .workloads
            .list(&selector)
            .await?
            .into_iter()
            .map(|l| l.run)
            .collect();
        out.sort_by(|a, b| {
            b.created
                .as_ref()
                .map(|t| t.0)
                .cmp(&a.created.as_ref().map(|t| t.0))
        });
        Ok(out)
    }

    /// One run, by run id or resource name, with diagnostics when it failed.
    ///
    /// # Errors
    /// [`Error::NotFound`]; API errors.
    pub async fn run_detail(&self, pipeline: &str, run: &str) -> Result<Run> {
        let mut found = self
            .runs(pipeline)
            .await?
            .into_iter()
            .find(|r| r.run_id == run || r.resource == run)
            .ok_or_else(|| Error::NotFound {
                what: format!("run '{run}' of pipeline '{pipeline}'"),
            })?;
        if found.state == RunState::Failed {
            found.diagnostics = self.diagnostics(&found).await?;
        }
        Ok(found)
    }

    async fn diagnostics(&self, run: &Run) -> Result<Option<Diagnostics>> {
        match self.workloads.run_pod(run).await? {
            Some(p) => Ok(Some(
                diagnostics::collect(self.cluster.client(), self.ns(), &p).await,
            )),
            // The pod is gone (TTL, or deleted): what was preserved while it existed.
            None => self.stored_diagnostics(&run.resource).await,
        }
    }

    async fn stored_diagnostics(&self, resource: &str) -> Result<Option<Diagnostics>> {
        let name = diagnostics_config_map(resource);
        let cm = self
            .cluster
            .api::<ConfigMap>()
            .get_opt(&name)
            .await
            .map_err(self.cluster.err(Op::Read, "ConfigMap", &name))?;
        Ok(cm
            .and_then(|c| c.data)
            .and_then(|d| d.get(DIAGNOSTICS_KEY).cloned())
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// Preserves the diagnostics of every failed run whose pod still exists and whose
    /// diagnostics are not kept yet, in a ConfigMap `om-diag-<run>` owned by the run (so it goes
    /// when the run goes). `pipelines serve` calls this periodically, so a failed run's detail
    /// keeps its diagnostics after the pod's TTL (in operator mode the OMJob outlives its pods).
    /// Returns the ConfigMaps created.
    ///
    /// # Errors
    /// API errors while listing runs.
    pub async fn preserve_diagnostics(&self) -> Result<Vec<String>> {
        let selector = format!(
            "{}={},{}={}",
            omjob_api::labels::LABEL_APP_MANAGED_BY,
            omjob_api::labels::MANAGED_BY_OPENMETADATA,
            omjob_api::labels::LABEL_APP_COMPONENT,
            omjob_api::labels::COMPONENT_INGESTION
        );
        let failed = self
            .workloads
            .list(&selector)
            .await?
            .into_iter()
            .filter(|l| l.run.state == RunState::Failed);
        let api = self.cluster.api::<ConfigMap>();
        let mut created = Vec::new();
        for listed in failed {
            let name = diagnostics_config_map(&listed.run.resource);
            if api
                .get_opt(&name)
                .await
                .map_err(self.cluster.err(Op::Read, "ConfigMap", &name))?
                .is_some()
            {
                continue;
            }
            let Some(d) = self.diagnostics(&listed.run).await? else {
                continue;
            };
            let text = serde_json::to_string(&d).map_err(|source| Error::Build {
                what: "diagnostics".into(),
                source,
            })?;
            let cm: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": listed.labels, "ownerReferences": [listed.owner]},
                "data": {DIAGNOSTICS_KEY: text},
            }))
            .map_err(|source| Error::Build {
                what: "the diagnostics ConfigMap".into(),
                source,
            })?;
            // Created once and never changed: a 409 means an earlier pass (or replica) kept them.
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => created.push(name),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(Error::kube(Op::Create, "ConfigMap", &name, self.ns(), e)),
            }
        }
        Ok(created)
    }

    /// Stops the pipeline's active runs and their pods; finished runs are left alone.
    ///
    /// # Errors
    /// API errors.
    pub async fn kill(&self, pipeline: &str) -> Result<Outcome> {
        let active: Vec<Run> = self
            .runs(pipeline)
            .await?
            .into_iter()
            .filter(|r| !r.state.is_finished())
            .collect();
        let kind = self.workloads.runs();
        let api = self.cluster.dynamic(&kind.resource);
        // Background propagation: the garbage collector deletes the pods (upstream orphans them).
        let mut killed = Vec::new();
        for r in &active {
            match self.cluster.delete(&api, &r.resource).await {
                Ok(()) => killed.push(kind.show(&r.resource)),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(Error::kube(Op::Delete, kind.name, &r.resource, self.ns(), e)),
            }
        }
        tracing::info!(pipeline, killed = killed.len(), "killed");
        Ok(Outcome {
            message: format!("Killed {} running job(s) for pipeline {pipeline}", killed.len()),
            resources: killed,
            enabled: None,
        })
    }
}
