//! What differs between the two modes, behind one trait: [`Workloads`], implemented by
//! [`super::standard`] (batch Jobs and CronJobs) and [`super::operator`] (OMJobs and CronOMJobs).
//! [`for_mode`] picks one when the client is built; the flows (deploy, run, runs, kill, toggle,
//! delete, status) use it and never ask which mode they are in.
//!
//! A mode builds its objects (pure, before the first write), lists its runs, finds a run's pod
//! and reports what it lacks. Writing is shared: every object is written through its
//! [`ApiResource`], so the flows apply, create, patch and delete a Job and an OMJob alike.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Resource,
    api::{ApiResource, DynamicObject},
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{cluster::Cluster, operator::Operator, standard::Standard};
use crate::{
    build::Builder,
    config::Mode,
    error::{Error, Result},
    names::PipelineNames,
    runs::Run,
};

/// A kind the service writes: its name (for messages and `Kind/name`) and its API resource.
#[derive(Clone, Debug)]
pub(crate) struct Kind {
    pub(crate) name: &'static str,
    pub(crate) resource: ApiResource,
}

impl Kind {
    pub(crate) fn of<K: Resource<DynamicType = ()>>(name: &'static str) -> Self {
        Self {
            name,
            resource: ApiResource::erase::<K>(&()),
        }
    }

    /// `Kind/name`, as outcomes list objects.
    pub(crate) fn show(&self, name: &str) -> String {
        format!("{}/{name}", self.name)
    }
}

/// A schedule object, built before the first write of a deploy.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    /// What is server-side applied: only fields upstream's CRD declares (an apply that names a
    /// field a CRD's schema lacks fails with HTTP 500 "field not declared in schema").
    pub(crate) object: DynamicObject,
    /// This project's additive fields, merge-patched after the apply: a CRD that declares them
    /// keeps them, upstream's prunes them.
    pub(crate) additive: Option<Value>,
}

/// A run as listed, with what keeping its diagnostics needs.
#[derive(Clone, Debug)]
pub(crate) struct Listed {
    pub(crate) run: Run,
    /// A non-controller owner reference to the run.
    pub(crate) owner: Value,
    pub(crate) labels: BTreeMap<String, String>,
}

/// One mode's objects.
pub(crate) trait Workloads: Send + Sync {
    /// What a run is: `Job` or `OMJob`.
    fn runs(&self) -> &Kind;
    /// What a schedule is: `CronJob` or `CronOMJob`.
    fn schedules(&self) -> &Kind;
    /// The schedule object's name.
    fn schedule_name(&self, names: &PipelineNames) -> String;
    /// Whether a schedule's time zone must be UTC.
    fn utc_only(&self) -> bool;
    /// The run object of on-demand run `run_id`.
    fn build_run(&self, b: &Builder<'_>, run_id: &str) -> Result<DynamicObject>;
    /// The schedule object for `cron`.
    fn build_schedule(&self, b: &Builder<'_>, cron: &str) -> Result<Schedule>;
    /// Every run matching `selector`, with its state.
    fn list<'a>(&'a self, selector: &'a str) -> BoxFuture<'a, Result<Vec<Listed>>>;
    /// The pod whose log and description explain `run`, if it still exists.
    fn run_pod<'a>(&'a self, run: &'a Run) -> BoxFuture<'a, Result<Option<Pod>>>;
    /// What keeps the mode from working beyond permissions (operator mode: missing CRDs).
    fn problems(&self) -> BoxFuture<'_, Vec<String>>;
}

/// The workloads of `mode` in `cluster`; `cron_time_zones` when the API server serves CronJob
/// `timeZone` (Kubernetes 1.27+).
pub(crate) fn for_mode(mode: Mode, cluster: Cluster, cron_time_zones: bool) -> Box<dyn Workloads> {
    match mode {
        Mode::Standard => Box::new(Standard::new(cluster, cron_time_zones)),
        Mode::Operator => Box::new(Operator::new(cluster)),
    }
}

/// A non-controller owner reference to an object of `kind` (no `blockOwnerDeletion`, which would
/// need the owner's finalizers permission).
pub(crate) fn owner_ref(
    kind: &ApiResource,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Value {
    json!({"apiVersion": kind.api_version, "kind": kind.kind, "name": meta.name.clone().unwrap_or_default(),
           "uid": meta.uid.clone().unwrap_or_default()})
}

/// `obj` as a dynamic object, for writing through its [`ApiResource`].
pub(crate) fn dynamic<K: Serialize>(what: &str, obj: &K) -> Result<DynamicObject> {
    serde_json::to_value(obj)
        .and_then(serde_json::from_value)
        .map_err(|source| Error::Build {
            what: what.to_owned(),
            source,
        })
}
