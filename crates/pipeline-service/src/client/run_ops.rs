//! Runs: start one, list them, one run's detail with diagnostics (kept past the pod's TTL), kill.

use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ConfigMap, Pod, Secret},
};
use kube::{
    Api, Resource, ResourceExt as _,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use omjob_api::OMJob;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use super::{Outcome, PipelineClient, RunStarted, create_once, kind_name};
use crate::{
    build::{Builder, CONFIG_KEY},
    config::Mode,
    diagnostics::{self, Diagnostics},
    error::{Error, Result, is_not_found},
    names::PipelineNames,
    runs::{self, Run, RunState},
};

/// Key of the diagnostics in their ConfigMap.
pub const DIAGNOSTICS_KEY: &str = "diagnostics.json";

/// Name of the ConfigMap that keeps a failed run's diagnostics: `om-diag-<run resource>`.
#[must_use]
pub fn diagnostics_config_map(run_resource: &str) -> String {
    crate::names::resource_name("om-diag-", run_resource, "")
}

/// A non-controller owner reference to `o` (no `blockOwnerDeletion`, which would need the
/// owner's finalizers permission).
fn owner_ref<K: Resource<DynamicType = ()>>(o: &K) -> serde_json::Value {
    json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "name": o.name_any(),
           "uid": o.meta().uid.clone().unwrap_or_default()})
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
        let kind = match self.config.mode {
            Mode::Standard => {
                let job = b.job(&run_id)?;
                self.start_run(&self.api::<Job>(), &job, &secret, &run_id).await?;
                "Job"
            }
            Mode::Operator => {
                let omjob = b.omjob(&run_id)?;
                self.start_run(&self.api::<OMJob>(), &omjob, &secret, &run_id)
                    .await?;
                "OMJob"
            }
        };
        tracing::info!(pipeline, run_id, resource = %name, "run started");
        Ok(RunStarted {
            run_id,
            kind: kind.into(),
            resource: name,
        })
    }

    /// The rendered config in the pipeline's Secret `name`, which every on-demand run starts
    /// from.
    async fn deployed_config(&self, name: &str) -> Result<String> {
        let api = self.api::<Secret>();
        self.retry(|| api.get_opt(name))
            .await
            .map_err(self.kube_err("read Secret", name))?
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(CONFIG_KEY))
            .and_then(|bytes| String::from_utf8(bytes.0).ok())
            .ok_or_else(|| Error::NotFound {
                what: format!(
                    "key '{CONFIG_KEY}' of Secret '{name}' (written by deploy; deploy the pipeline again)"
                ),
            })
    }

    /// Creates `secret`, then `run`, then makes the run the Secret's owner, so the garbage
    /// collector deletes the Secret with the run (TTL, kill, delete). The Secret comes first
    /// because the run's pods read it as soon as they start. A failure deletes what was created.
    async fn start_run<K>(&self, api: &Api<K>, run: &K, secret: &Secret, run_id: &str) -> Result<()>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        let kind = K::kind(&()).into_owned();
        let name = run.name_any();
        let secrets = self.api::<Secret>();
        create_once(&secrets, secret, run_id, &self.retry_policy)
            .await
            .map_err(self.kube_err("create Secret", &name))?;
        let created = match create_once(api, run, run_id, &self.retry_policy).await {
            Ok(created) => created,
            Err(e) => {
                let e = Error::kube(format!("create {kind}"), &name, self.ns(), e);
                return Err(self.roll_back_run(e, None::<(&Api<K>, &str)>, &name).await);
            }
        };
        let patch = Patch::Merge(json!({"metadata": {"ownerReferences": [owner_ref(&created)]}}));
        let pp = PatchParams::default();
        if let Err(e) = self.retry(|| secrets.patch(&name, &pp, &patch)).await {
            let e = Error::kube("patch Secret", &name, self.ns(), e);
            return Err(self.roll_back_run(e, Some((api, &kind)), &name).await);
        }
        Ok(())
    }

    /// Deletes run `name` (when it was created) and its Secret after `error`, and says so.
    async fn roll_back_run<K>(&self, error: Error, run: Option<(&Api<K>, &str)>, name: &str) -> Error
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut rolled_back = Vec::new();
        if let Some((api, kind)) = run
            && self.delete_via(api, name).await.is_ok()
        {
            rolled_back.push(format!("{kind}/{name}"));
        }
        if self.delete_via(&self.api::<Secret>(), name).await.is_ok() {
            rolled_back.push(kind_name::<Secret>(name));
        }
        tracing::warn!(run = name, error = %error, ?rolled_back, "run failed to start");
        Error::RolledBack {
            source: Box::new(error),
            rolled_back,
        }
    }

    pub(super) async fn pods(&self, selector: &str) -> Result<Vec<Pod>> {
        let lp = ListParams::default().labels(selector);
        Ok({
            let api = self.api::<Pod>();
            self.retry(|| api.list(&lp)).await
        }
        .map_err(self.kube_err("list Pods", selector))?
        .items)
    }

    /// Names of the objects of kind `K` matching `lp`.
    pub(super) async fn names_of<K>(&self, lp: &ListParams) -> std::result::Result<Vec<String>, kube::Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api = self.api::<K>();
        Ok(self
            .retry(|| api.list(lp))
            .await?
            .items
            .iter()
            .map(|o| o.name_any())
            .collect())
    }

    /// Every run of the pipeline still in the cluster, newest first.
    ///
    /// # Errors
    /// API errors.
    pub async fn runs(&self, pipeline: &str) -> Result<Vec<Run>> {
        let names = PipelineNames::new(pipeline);
        let selector = names.selector();
        let lp = ListParams::default().labels(&selector);
        let mut out = match self.config.mode {
            Mode::Standard => {
                let jobs = {
                    let api = self.api::<Job>();
                    self.retry(|| api.list(&lp)).await
                }
                .map_err(self.kube_err("list Jobs", &selector))?;
                let pods = self.pods(&selector).await?;
                jobs.items
                    .iter()
                    .map(|j| runs::from_job(j, &pods))
                    .collect::<Vec<_>>()
            }
            Mode::Operator => {
                let api = self.api::<OMJob>();
                self.retry(|| api.list(&lp)).await
            }
            .map_err(self.kube_err("list OMJobs", &selector))?
            .items
            .iter()
            .map(runs::from_omjob)
            .collect(),
        };
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

    pub(super) async fn diagnostics(&self, run: &Run) -> Result<Option<Diagnostics>> {
        let pod = match self.config.mode {
            Mode::Standard => {
                let mut pods = self.pods(&format!("job-name={}", run.resource)).await?;
                pods.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
                pods.pop()
            }
            Mode::Operator => {
                let name = omjob_api::names::main_pod_name(&run.resource);
                {
                    let api = self.api::<Pod>();
                    self.retry(|| api.get_opt(&name)).await
                }
                .map_err(self.kube_err("read Pod", &name))?
            }
        };
        match pod {
            Some(p) => Ok(Some(
                diagnostics::collect(&self.client, self.ns(), &p, &self.retry_policy).await,
            )),
            // The pod is gone (TTL, or deleted): what was preserved while it existed.
            None => self.stored_diagnostics(&run.resource).await,
        }
    }

    pub(super) async fn stored_diagnostics(&self, resource: &str) -> Result<Option<Diagnostics>> {
        let name = diagnostics_config_map(resource);
        let api = self.api::<ConfigMap>();
        let cm = self
            .retry(|| api.get_opt(&name))
            .await
            .map_err(self.kube_err("read ConfigMap", &name))?;
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
        let lp = ListParams::default().labels(&selector);
        // (run, owner reference, labels) of each failed run.
        let failed: Vec<(Run, serde_json::Value, std::collections::BTreeMap<String, String>)> =
            match self.config.mode {
                Mode::Standard => {
                    let api = self.api::<Job>();
                    let jobs = self
                        .retry(|| api.list(&lp))
                        .await
                        .map_err(self.kube_err("list Jobs", &selector))?;
                    let pods = self.pods(&selector).await?;
                    jobs.items
                        .iter()
                        .map(|j| (runs::from_job(j, &pods), owner_ref(j), j.labels().clone()))
                        .filter(|(r, _, _)| r.state == RunState::Failed)
                        .collect()
                }
                Mode::Operator => {
                    let api = self.api::<OMJob>();
                    let list = self
                        .retry(|| api.list(&lp))
                        .await
                        .map_err(self.kube_err("list OMJobs", &selector))?;
                    list.items
                        .iter()
                        .map(|o| (runs::from_omjob(o), owner_ref(o), o.labels().clone()))
                        .filter(|(r, _, _)| r.state == RunState::Failed)
                        .collect()
                }
            };
        let mut created = Vec::new();
        for (run, owner, labels) in failed {
            let name = diagnostics_config_map(&run.resource);
            let api = self.api::<ConfigMap>();
            if self
                .retry(|| api.get_opt(&name))
                .await
                .map_err(self.kube_err("read ConfigMap", &name))?
                .is_some()
            {
                continue;
            }
            let Some(d) = self.diagnostics(&run).await? else {
                continue;
            };
            let text = serde_json::to_string(&d).map_err(|source| Error::Build {
                what: "diagnostics".into(),
                source,
            })?;
            let cm: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
                "data": {DIAGNOSTICS_KEY: text},
            }))
            .map_err(|source| Error::Build {
                what: "the diagnostics ConfigMap".into(),
                source,
            })?;
            let pp = PostParams::default();
            match self.retry(|| api.create(&pp, &cm)).await {
                Ok(_) => created.push(name),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(Error::kube("create ConfigMap", &name, self.ns(), e)),
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
        // Background propagation: the garbage collector deletes the pods (upstream orphans them).
        let mut killed = Vec::new();
        for r in &active {
            let result = match self.config.mode {
                Mode::Standard => self.delete_via(&self.api::<Job>(), &r.resource).await,
                Mode::Operator => self.delete_via(&self.api::<OMJob>(), &r.resource).await,
            };
            match result {
                Ok(()) => killed.push(format!("{}/{}", r.kind, r.resource)),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(Error::kube(
                        format!("delete {}", r.kind),
                        &r.resource,
                        self.ns(),
                        e,
                    ));
                }
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
