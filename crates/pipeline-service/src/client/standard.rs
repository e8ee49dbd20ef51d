//! Standard mode: an on-demand run is a batch Job, a schedule a CronJob, and the exit handler
//! the main container's `preStop` hook (which Kubernetes runs only when it stops the container;
//! see the docs page).

use futures::future::BoxFuture;
use k8s_openapi::api::{
    batch::v1::{CronJob, Job},
    core::v1::Pod,
};
use kube::{
    ResourceExt as _,
    api::{DynamicObject, ListParams},
};

use super::{
    cluster::Cluster,
    workloads::{Kind, Listed, Schedule, Workloads, dynamic, owner_ref},
};
use crate::{
    build::Builder,
    error::{Error, Op, Result},
    names::PipelineNames,
    runs::{self, Run},
};

/// Jobs and CronJobs.
pub(crate) struct Standard {
    cluster: Cluster,
    runs: Kind,
    schedules: Kind,
    cron_time_zones: bool,
}

impl Standard {
    /// `cron_time_zones`: whether the API server serves CronJob `timeZone` (1.27+).
    pub(crate) fn new(cluster: Cluster, cron_time_zones: bool) -> Self {
        Self {
            cluster,
            runs: Kind::of::<Job>("Job"),
            schedules: Kind::of::<CronJob>("CronJob"),
            cron_time_zones,
        }
    }
}

impl Workloads for Standard {
    fn runs(&self) -> &Kind {
        &self.runs
    }

    fn schedules(&self) -> &Kind {
        &self.schedules
    }

    fn schedule_name(&self, names: &PipelineNames) -> String {
        names.cron_job()
    }

    fn utc_only(&self) -> bool {
        // Without CronJob `timeZone` a schedule would silently run in the controller manager's zone.
        !self.cron_time_zones
    }

    fn build_run(&self, b: &Builder<'_>, run_id: &str) -> Result<DynamicObject> {
        dynamic("Job", &b.job(run_id)?)
    }

    fn build_schedule(&self, b: &Builder<'_>, cron: &str) -> Result<Schedule> {
        let object = serde_json::from_value(b.cron_job(cron)).map_err(|source| Error::Build {
            what: "CronJob".into(),
            source,
        })?;
        Ok(Schedule {
            object,
            additive: None,
        })
    }

    fn list<'a>(&'a self, selector: &'a str) -> BoxFuture<'a, Result<Vec<Listed>>> {
        Box::pin(async move {
            let lp = ListParams::default().labels(selector);
            let jobs = self
                .cluster
                .api::<Job>()
                .list(&lp)
                .await
                .map_err(self.cluster.err(Op::List, "Job", selector))?;
            // A Job's state needs its pods: a pending or OOM-killed container is seen only there.
            let pods = self.cluster.pods(selector).await?;
            Ok(jobs
                .items
                .iter()
                .map(|j| Listed {
                    run: runs::from_job(j, &pods),
                    owner: owner_ref(&self.runs.resource, &j.metadata),
                    labels: j.labels().clone(),
                })
                .collect())
        })
    }

    fn run_pod<'a>(&'a self, run: &'a Run) -> BoxFuture<'a, Result<Option<Pod>>> {
        Box::pin(async move {
            // The Job controller labels its pods with the Job's name; a retried pod is newer.
            let mut pods = self.cluster.pods(&format!("job-name={}", run.resource)).await?;
            pods.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
            Ok(pods.pop())
        })
    }

    fn problems(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
}
