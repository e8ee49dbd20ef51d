//! Deploy (validated first, applied, rolled back on failure), enable/disable and delete.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ApiResource, DynamicObject, ListParams};
use serde_json::json;

use super::{Deployed, Outcome, PipelineClient, cluster::KubeResult};
use crate::{
    build::{Builder, DEFINITION_KEY},
    error::{Error, Op, Result, is_not_found},
    names::PipelineNames,
    pipeline::PipelineDefinition,
};

/// An object a deploy writes, and whether this deploy created it (for the rollback).
struct Written {
    kind: &'static str,
    resource: ApiResource,
    name: String,
    created: bool,
}

impl PipelineClient {
    /// Deploys `def`: ConfigMap (the stored definition), Secret (the credentials and the rendered
    /// workflow config) and, when scheduled, the CronJob/CronOMJob (deleted when not), each by
    /// server-side apply. Input is validated first and every object built before the first
    /// write; a failure after that deletes what this call created.
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
        let schedule = cron
            .as_deref()
            .map(|c| self.workloads.build_schedule(&b, c))
            .transpose()?;
        let mut written: Vec<Written> = Vec::new();
        let result: Result<()> = async {
            let cm = (names.config_map(), ApiResource::erase::<ConfigMap>(&()));
            let created = self
                .cluster
                .apply(&(), &config_map)
                .await
                .map_err(self.cluster.err(Op::Apply, "ConfigMap", &cm.0))?;
            written.push(Written {
                kind: "ConfigMap",
                resource: cm.1,
                name: cm.0,
                created,
            });
            let name = names.secret();
            let created = self.cluster.apply(&(), &secret).await.map_err(self.cluster.err(
                Op::Apply,
                "Secret",
                &name,
            ))?;
            written.push(Written {
                kind: "Secret",
                resource: ApiResource::erase::<Secret>(&()),
                name,
                created,
            });
            let kind = self.workloads.schedules();
            let name = self.workloads.schedule_name(&names);
            match &schedule {
                Some(s) => {
                    let created = self
                        .cluster
                        .apply(&kind.resource, &s.object)
                        .await
                        .map_err(self.cluster.err(Op::Apply, kind.name, &name))?;
                    written.push(Written {
                        kind: kind.name,
                        resource: kind.resource.clone(),
                        name: name.clone(),
                        created,
                    });
                    if let Some(additive) = &s.additive {
                        self.cluster
                            .merge(&self.cluster.dynamic(&kind.resource), &name, additive)
                            .await
                            .map_err(self.cluster.err(Op::Patch, kind.name, &name))?;
                    }
                }
                None => self
                    .cluster
                    .delete_if_present(&self.cluster.dynamic(&kind.resource), &name)
                    .await
                    .map_err(self.cluster.err(Op::Delete, kind.name, &name))?,
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(pipeline = %def.name, scheduled = cron.is_some(), "deployed");
                Ok(Deployed {
                    pipeline: def.name.clone(),
                    resources: written.iter().map(|w| format!("{}/{}", w.kind, w.name)).collect(),
                    scheduled: cron.is_some(),
                })
            }
            Err(e) => {
                let mut rolled_back = Vec::new();
                for w in written.iter().rev().filter(|w| w.created) {
                    if self
                        .cluster
                        .delete(&self.cluster.dynamic(&w.resource), &w.name)
                        .await
                        .is_ok()
                    {
                        rolled_back.push(format!("{}/{}", w.kind, w.name));
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

    /// Enables or disables the schedule (`suspend`); an on-demand pipeline is left as it is.
    ///
    /// A merge patch, not an apply: an apply of `suspend` alone under the deploy's field manager
    /// would tell the API server that the service no longer wants the schedule's other fields.
    /// The next deploy's forced apply takes `suspend` back with the definition's `enabled`,
    /// which this keeps in step.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the pipeline is not deployed; API errors.
    pub async fn set_enabled(&self, pipeline: &str, enabled: bool) -> Result<Outcome> {
        let mut def = self.get(pipeline).await?;
        let names = PipelineNames::new(pipeline);
        let kind = self.workloads.schedules();
        let name = self.workloads.schedule_name(&names);
        let patch = json!({"spec": {"suspend": !enabled}});
        match self
            .cluster
            .merge(&self.cluster.dynamic(&kind.resource), &name, &patch)
            .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {
                return Ok(Outcome {
                    message: "Pipeline toggle updated (on-demand pipeline)".into(),
                    resources: Vec::new(),
                    enabled: None,
                });
            }
            Err(e) => return Err(Error::kube(Op::Patch, kind.name, &name, self.ns(), e)),
        }
        // Keep the stored definition in step, so a read shows the state.
        def.enabled = enabled;
        if let Ok(text) = serde_json::to_string(&def) {
            let cm = names.config_map();
            self.cluster
                .merge(
                    &self.cluster.api::<ConfigMap>(),
                    &cm,
                    &json!({"data": {DEFINITION_KEY: text}}),
                )
                .await
                .map_err(self.cluster.err(Op::Patch, "ConfigMap", &cm))?;
        }
        Ok(Outcome {
            message: if enabled {
                "Pipeline enabled"
            } else {
                "Pipeline disabled"
            }
            .into(),
            resources: vec![kind.show(&name)],
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
        let mut errors = Vec::new();
        let mut deleted = Vec::new();
        // Runs first: their pods go with them (background propagation). Listed as dynamic
        // objects: only their names are needed, and one the typed decoder refuses still goes.
        let runs = self.workloads.runs();
        let api = self.cluster.dynamic(&runs.resource);
        let run_names: Vec<String> = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list
                .items
                .iter()
                .filter_map(|o: &DynamicObject| o.metadata.name.clone())
                .collect(),
            Err(e) => {
                errors.push(Error::kube(Op::List, runs.name, &selector, self.ns(), e).to_string());
                Vec::new()
            }
        };
        let mut note = |kind: &'static str, name: &str, r: KubeResult<()>| match r {
            Ok(()) => deleted.push(format!("{kind}/{name}")),
            Err(e) if is_not_found(&e) => {}
            Err(e) => errors.push(Error::kube(Op::Delete, kind, name, self.ns(), e).to_string()),
        };
        for n in &run_names {
            note(runs.name, n, self.cluster.delete(&api, n).await);
        }
        let schedules = self.workloads.schedules();
        let n = self.workloads.schedule_name(&names);
        note(
            schedules.name,
            &n,
            self.cluster
                .delete(&self.cluster.dynamic(&schedules.resource), &n)
                .await,
        );
        let n = names.secret();
        note(
            "Secret",
            &n,
            self.cluster.delete(&self.cluster.api::<Secret>(), &n).await,
        );
        let n = names.config_map();
        note(
            "ConfigMap",
            &n,
            self.cluster.delete(&self.cluster.api::<ConfigMap>(), &n).await,
        );
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
