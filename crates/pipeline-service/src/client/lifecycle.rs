//! Deploy (validated first, rolled back on failure), enable/disable and delete.

use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ConfigMap, Secret},
};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use omjob_api::{CronOMJob, OMJob};
use serde_json::json;

use super::{Deployed, Outcome, PipelineClient, kind_name};
use crate::{
    build::{Builder, DEFINITION_KEY},
    config::Mode,
    error::{Error, Result, is_not_found},
    names::PipelineNames,
    pipeline::PipelineDefinition,
};

impl PipelineClient {
    /// Deploys `def`: ConfigMap (the stored definition), Secret (the credentials and the rendered
    /// workflow config) and, when scheduled, the CronJob/CronOMJob (deleted when not). Input is
    /// validated first and every object built before the first write; a failure after that
    /// deletes what this call created.
    ///
    /// # Errors
    /// [`Error::Invalid`] for bad input (nothing written), [`Error::RolledBack`] otherwise.
    pub async fn deploy(&self, mut def: PipelineDefinition, path_name: Option<&str>) -> Result<Deployed> {
        def.validate(path_name, self.utc_only())?;
        let b = Builder::new(&self.config, &def);
        let names = b.names().clone();
        let cron = def.cron();
        // Build everything before the first write, so a build error writes nothing.
        let config_map = b.config_map()?;
        let secret = b.secret()?;
        let cron_job = cron.as_ref().map(|c| b.cron_job(c));
        let cron_omjob = match (&cron, self.config.mode) {
            (Some(c), Mode::Operator) => Some(b.cron_omjob(c)?),
            _ => None,
        };
        let mut created: Vec<(String, String)> = Vec::new();
        let mut written = Vec::new();
        let result: Result<()> = async {
            let cm_name = names.config_map();
            if self
                .upsert(&self.api::<ConfigMap>(), "ConfigMap", config_map)
                .await?
            {
                created.push(("ConfigMap".into(), cm_name.clone()));
            }
            written.push(format!("ConfigMap/{cm_name}"));
            if self.upsert(&self.api::<Secret>(), "Secret", secret).await? {
                created.push(("Secret".into(), names.secret()));
            }
            written.push(format!("Secret/{}", names.secret()));
            match self.config.mode {
                Mode::Standard => match cron_job {
                    Some(v) => {
                        let obj: DynamicObject =
                            serde_json::from_value(v).map_err(|source| Error::Build {
                                what: "CronJob".into(),
                                source,
                            })?;
                        if self.upsert(&self.cron_jobs(), "CronJob", obj).await? {
                            created.push(("CronJob".into(), names.cron_job()));
                        }
                        written.push(format!("CronJob/{}", names.cron_job()));
                    }
                    None => self.delete_cron(&names).await?,
                },
                Mode::Operator => match cron_omjob {
                    Some(obj) => {
                        if self.upsert(&self.api::<CronOMJob>(), "CronOMJob", obj).await? {
                            created.push(("CronOMJob".into(), names.cron_omjob()));
                        }
                        written.push(format!("CronOMJob/{}", names.cron_omjob()));
                    }
                    None => self.delete_cron(&names).await?,
                },
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(pipeline = %def.name, scheduled = cron.is_some(), "deployed");
                Ok(Deployed {
                    pipeline: def.name.clone(),
                    resources: written,
                    scheduled: cron.is_some(),
                })
            }
            Err(e) => {
                let mut rolled_back = Vec::new();
                for (kind, name) in created.iter().rev() {
                    let dp = DeleteParams::default();
                    let done = match kind.as_str() {
                        "ConfigMap" => self.api::<ConfigMap>().delete(name, &dp).await.map(|_| ()),
                        "Secret" => self.api::<Secret>().delete(name, &dp).await.map(|_| ()),
                        "CronJob" => self.cron_jobs().delete(name, &dp).await.map(|_| ()),
                        _ => self.api::<CronOMJob>().delete(name, &dp).await.map(|_| ()),
                    };
                    if done.is_ok() {
                        rolled_back.push(format!("{kind}/{name}"));
                    }
                }
                tracing::warn!(pipeline = %def.name, error = %e, ?rolled_back, "deploy failed");
                Err(Error::RolledBack {
                    source: Box::new(e),
                    rolled_back,
                })
            }
        }
    }

    /// Deletes the pipeline's schedule object of the current mode (absent is fine).
    pub(super) async fn delete_cron(&self, names: &PipelineNames) -> Result<()> {
        let (kind, name, result) = self.delete_schedule_object(names).await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::kube(format!("delete {kind}"), name, self.ns(), e)),
        }
    }

    /// Deletes the schedule object of the current mode; returns its kind, name and the outcome.
    async fn delete_schedule_object(
        &self,
        names: &PipelineNames,
    ) -> (&'static str, String, std::result::Result<(), kube::Error>) {
        match self.config.mode {
            Mode::Standard => {
                let n = names.cron_job();
                let r = self.delete_via(&self.cron_jobs(), &n).await;
                ("CronJob", n, r)
            }
            Mode::Operator => {
                let n = names.cron_omjob();
                let r = self.delete_via(&self.api::<CronOMJob>(), &n).await;
                ("CronOMJob", n, r)
            }
        }
    }

    /// Enables or disables the schedule (`suspend`); an on-demand pipeline is left as it is.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the pipeline is not deployed; API errors.
    pub async fn set_enabled(&self, pipeline: &str, enabled: bool) -> Result<Outcome> {
        let mut def = self.get(pipeline).await?;
        let names = PipelineNames::new(pipeline);
        let patch = Patch::Merge(json!({"spec": {"suspend": !enabled}}));
        let pp = PatchParams::default();
        let (kind, name, result) = match self.config.mode {
            Mode::Standard => {
                let n = names.cron_job();
                let r = {
                    let api = self.cron_jobs();
                    self.retry(|| api.patch(&n, &pp, &patch)).await
                }
                .map(|_| ());
                ("CronJob", n, r)
            }
            Mode::Operator => {
                let n = names.cron_omjob();
                let r = {
                    let api = self.api::<CronOMJob>();
                    self.retry(|| api.patch(&n, &pp, &patch)).await
                }
                .map(|_| ());
                ("CronOMJob", n, r)
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {
                return Ok(Outcome {
                    message: "Pipeline toggle updated (on-demand pipeline)".into(),
                    resources: Vec::new(),
                    enabled: None,
                });
            }
            Err(e) => return Err(Error::kube(format!("update {kind}"), &name, self.ns(), e)),
        }
        // Keep the stored definition in step, so a read shows the state.
        def.enabled = enabled;
        if let Ok(text) = serde_json::to_string(&def) {
            let cm = names.config_map();
            let patch = Patch::Merge(json!({"data": {DEFINITION_KEY: text}}));
            {
                let api = self.api::<ConfigMap>();
                self.retry(|| api.patch(&cm, &pp, &patch)).await
            }
            .map_err(self.kube_err("update ConfigMap", &cm))?;
        }
        Ok(Outcome {
            message: if enabled {
                "Pipeline enabled"
            } else {
                "Pipeline disabled"
            }
            .into(),
            resources: vec![format!("{kind}/{name}")],
            enabled: Some(enabled),
        })
    }

    /// Removes everything the pipeline owns: runs (Jobs or OMJobs, with their pods and their
    /// Secrets, which they own), the schedule, the Secret and the ConfigMap. Parts that fail are
    /// reported; the rest is done.
    ///
    /// # Errors
    /// [`Error::Partial`] listing what could not be deleted.
    pub async fn delete(&self, pipeline: &str) -> Result<Outcome> {
        let names = PipelineNames::new(pipeline);
        let selector = names.selector();
        let lp = ListParams::default().labels(&selector);
        let mut errors = Vec::new();
        let mut deleted = Vec::new();
        let mut note = |what: String,
                        r: std::result::Result<(), kube::Error>,
                        op: &str,
                        errors: &mut Vec<String>| match r {
            Ok(()) => deleted.push(what),
            Err(e) if is_not_found(&e) => {}
            Err(e) => errors.push(Error::kube(op, &what, self.ns(), e).to_string()),
        };
        // Runs first: their pods go with them (background propagation).
        let listed = match self.config.mode {
            Mode::Standard => self.names_of::<Job>(&lp).await,
            Mode::Operator => self.names_of::<OMJob>(&lp).await,
        };
        match listed {
            Ok(list) => {
                for n in list {
                    let (what, r) = match self.config.mode {
                        Mode::Standard => (
                            kind_name::<Job>(&n),
                            self.delete_via(&self.api::<Job>(), &n).await,
                        ),
                        Mode::Operator => (
                            kind_name::<OMJob>(&n),
                            self.delete_via(&self.api::<OMJob>(), &n).await,
                        ),
                    };
                    note(what, r, "delete", &mut errors);
                }
            }
            Err(e) => errors.push(Error::kube("list runs", &selector, self.ns(), e).to_string()),
        }
        let (kind, n, r) = self.delete_schedule_object(&names).await;
        note(format!("{kind}/{n}"), r, "delete", &mut errors);
        let n = names.secret();
        let r = self.delete_via(&self.api::<Secret>(), &n).await;
        note(kind_name::<Secret>(&n), r, "delete", &mut errors);
        let n = names.config_map();
        let r = self.delete_via(&self.api::<ConfigMap>(), &n).await;
        note(kind_name::<ConfigMap>(&n), r, "delete", &mut errors);
        if !errors.is_empty() {
            return Err(Error::Partial(errors));
        }
        tracing::info!(pipeline, deleted = deleted.len(), "deleted");
        Ok(Outcome {
            message: "Pipeline deleted successfully".into(),
            resources: deleted,
            enabled: None,
        })
    }
}
