//! Operator mode: an on-demand run is an OMJob, a schedule a CronOMJob, both run by the OMJob
//! operator, which runs the exit handler for every ending.
//!
//! CronOMJobs are applied with only the fields OpenMetadata's chart CRD declares: server-side
//! apply of a field a CRD's schema lacks fails (HTTP 500 "field not declared in schema"), and the
//! chart may own the CRDs. This project's additive fields ([`ADDITIVE_OMJOB_SPEC`]) follow as a
//! merge patch, which our CRD keeps and the chart's prunes.

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    ResourceExt as _,
    api::{DynamicObject, ListParams},
};
use omjob_api::{CronOMJob, OMJob};
use serde_json::{Map, Value, json};

use super::{
    cluster::Cluster,
    workloads::{Kind, Listed, Schedule, Workloads, dynamic, owner_ref},
};
use crate::{
    build::Builder,
    error::{Error, Op, Result, is_not_found},
    names::PipelineNames,
    runs::{self, Run},
};

/// Fields of an OMJob spec that this project's CRD declares and OpenMetadata's chart CRD does not
/// (`/work/shared/spec/openmetadata-chart.md` §2.3; the operator's `chart_world` tests use the
/// same cut).
pub const ADDITIVE_OMJOB_SPEC: [&str; 2] = ["activeDeadlineSeconds", "pendingTimeoutSeconds"];
/// Fields of a CronOMJob spec that only this project's CRD declares.
pub const ADDITIVE_CRON_SPEC: [&str; 1] = ["concurrencyPolicy"];

/// OMJobs and CronOMJobs.
pub(crate) struct Operator {
    cluster: Cluster,
    runs: Kind,
    schedules: Kind,
}

impl Operator {
    pub(crate) fn new(cluster: Cluster) -> Self {
        Self {
            cluster,
            runs: Kind::of::<OMJob>("OMJob"),
            schedules: Kind::of::<CronOMJob>("CronOMJob"),
        }
    }
}

/// Moves `fields` out of `from` into a new map (empty when none is set).
fn take(from: Option<&mut Map<String, Value>>, fields: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(from) = from {
        for f in fields {
            if let Some(v) = from.remove(*f) {
                out.insert((*f).to_owned(), v);
            }
        }
    }
    out
}

/// Splits a CronOMJob into the object to apply (upstream's fields) and the merge patch of the
/// additive ones, if any is set.
pub(crate) fn split_additive(mut cron: Value) -> (Value, Option<Value>) {
    if let Some(o) = cron.as_object_mut() {
        o.remove("status");
    }
    let job = take(
        cron.get_mut("spec")
            .and_then(|s| s.get_mut("omJobSpec"))
            .and_then(Value::as_object_mut),
        &ADDITIVE_OMJOB_SPEC,
    );
    let mut top = take(
        cron.get_mut("spec").and_then(Value::as_object_mut),
        &ADDITIVE_CRON_SPEC,
    );
    if !job.is_empty() {
        top.insert("omJobSpec".into(), Value::Object(job));
    }
    let additive = (!top.is_empty()).then(|| json!({"spec": top}));
    (cron, additive)
}

impl Workloads for Operator {
    fn runs(&self) -> &Kind {
        &self.runs
    }

    fn schedules(&self) -> &Kind {
        &self.schedules
    }

    fn schedule_name(&self, names: &PipelineNames) -> String {
        names.cron_omjob()
    }

    fn utc_only(&self) -> bool {
        // CronOMJobs always carry their zone.
        false
    }

    fn build_run(&self, b: &Builder<'_>, run_id: &str) -> Result<DynamicObject> {
        // Created, not applied: upstream's CRD prunes the additive fields silently on a create.
        dynamic("OMJob", &b.omjob(run_id)?)
    }

    fn build_schedule(&self, b: &Builder<'_>, cron: &str) -> Result<Schedule> {
        let build = |source| Error::Build {
            what: "CronOMJob".into(),
            source,
        };
        let full = serde_json::to_value(b.cron_omjob(cron)?).map_err(build)?;
        let (object, additive) = split_additive(full);
        Ok(Schedule {
            object: serde_json::from_value(object).map_err(build)?,
            additive,
        })
    }

    fn list<'a>(&'a self, selector: &'a str) -> BoxFuture<'a, Result<Vec<Listed>>> {
        Box::pin(async move {
            let lp = ListParams::default().labels(selector);
            let list = self
                .cluster
                .api::<OMJob>()
                .list(&lp)
                .await
                .map_err(self.cluster.err(Op::List, "OMJob", selector))?;
            Ok(list
                .items
                .iter()
                .map(|o| Listed {
                    run: runs::from_omjob(o),
                    owner: owner_ref(&self.runs.resource, &o.metadata),
                    labels: o.labels().clone(),
                })
                .collect())
        })
    }

    fn run_pod<'a>(&'a self, run: &'a Run) -> BoxFuture<'a, Result<Option<Pod>>> {
        Box::pin(async move {
            let name = omjob_api::names::main_pod_name(&run.resource);
            self.cluster
                .api::<Pod>()
                .get_opt(&name)
                .await
                .map_err(self.cluster.err(Op::Read, "Pod", &name))
        })
    }

    fn problems(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            // Both CRDs ship together; the service may list OMJobs (not CronOMJobs), so ask that one.
            let lp = ListParams::default().limit(1);
            match self.cluster.api::<OMJob>().list(&lp).await {
                Err(e) if is_not_found(&e) => vec![format!(
                    "the OMJob CRDs (omjobs.{0}, cronomjobs.{0}) are not installed: apply deploy/crds/omjob-crds.yaml",
                    omjob_api::GROUP
                )],
                _ => Vec::new(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cron_omjob_is_applied_with_upstreams_fields_and_patched_with_ours() {
        let cron = json!({"apiVersion": "pipelines.openmetadata.org/v1", "kind": "CronOMJob", "status": null,
            "metadata": {"name": "c"},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                     "omJobSpec": {"mainPodSpec": {"image": "i"}, "activeDeadlineSeconds": 7200}}});
        let (applied, additive) = split_additive(cron);
        assert_eq!(
            applied,
            json!({"apiVersion": "pipelines.openmetadata.org/v1", "kind": "CronOMJob", "metadata": {"name": "c"},
                   "spec": {"schedule": "* * * * *", "omJobSpec": {"mainPodSpec": {"image": "i"}}}})
        );
        assert_eq!(
            additive,
            Some(
                json!({"spec": {"concurrencyPolicy": "Forbid", "omJobSpec": {"activeDeadlineSeconds": 7200}}})
            )
        );
        let (_, none) = split_additive(json!({"spec": {"omJobSpec": {}}}));
        assert_eq!(none, None);
    }
}
