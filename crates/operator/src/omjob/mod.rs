//! The OMJob controller: watches OMJobs and the pods they own, and drives each run through
//! main pod → exit-handler pod → terminal phase, as [`decide`] says. OMJobs are decoded one by
//! one ([`crate::decode`]): one that does not decode gets an `InvalidSpec` warning and is left
//! alone, and the others are reconciled as usual.
//!
//! Nothing on the hot path reads from the API server: OMJobs and pods come from the caches the
//! controller shares ([`crate::controller::manager`]), topped up with this process's own
//! latest writes ([`recent`]); a reconcile decides before it takes a permit, and terminations
//! take theirs from a lane of their own ([`crate::controller::lanes`]).

pub mod act;
pub mod bookkeeping;
pub mod cached_pod;
pub mod decide;
pub mod outcome;
pub mod pods;
pub mod recent;
pub mod reconcile;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use omjob_api::OMJob;
#[cfg(test)]
use serde_json::json;

use crate::{
    controller::{self, backoff::Backoff, lanes::Lanes},
    decode::{Lenient, Reported},
    events::Publisher,
};
pub use reconcile::reconcile_watched;

/// Field manager of the status writes (JSON merge patches, see `act::Run::write_status`).
pub const FIELD_MANAGER: &str = "omjob-operator";
/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "omjob";

/// Everything a reconcile needs: client, metrics, clock and the decision settings.
pub type Context = controller::Context<decide::Settings>;

/// What the controller's reconciles share besides the context: the caches, this process's
/// recent writes, the lanes, the backoff, the event queue and the undecodable OMJobs already
/// reported.
#[derive(Debug)]
pub struct Shared {
    /// The context.
    pub ctx: Arc<Context>,
    /// Undecodable OMJobs already reported.
    pub reported: Reported,
    /// Per-object backoff after failures.
    pub backoff: Backoff,
    /// Where events go.
    pub events: Publisher,
    /// The OMJob caches, one per scope.
    pub omjobs: Vec<Store<Lenient<OMJob>>>,
    /// The pod caches (the operator's pods only), one per scope.
    pub pods: Vec<Store<cached_pod::CachedPod>>,
    /// Writes the caches may not show yet.
    pub recent: recent::Recent,
    /// Permits, by lane.
    pub lanes: Lanes,
    /// The cluster's Nodes (name and Ready condition only), when they may be watched.
    pub nodes: Store<k8s_openapi::api::core::v1::Node>,
    /// Whether [`Shared::nodes`] has been filled by its watch (else nodes are read on demand).
    pub nodes_synced: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Pod `name` in `namespace`: the cached copy, or a newer one this process created.
    #[must_use]
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        let r = ObjectRef::new(name).within(namespace);
        let cached = self.pods.iter().find_map(|s| s.get(&r)).map(|p| p.to_pod());
        self.recent.pod(namespace, name, cached)
    }

    /// OMJob `name` in `namespace` as cached now, if it decodes.
    #[must_use]
    pub fn omjob(&self, namespace: &str, name: &str) -> Option<OMJob> {
        let r = ObjectRef::new(name).within(namespace);
        self.omjobs
            .iter()
            .find_map(|s| s.get(&r))
            .and_then(|o| o.valid().cloned())
    }
}

/// Errors of one reconcile; every one is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a pod failed.
    #[error("failed to read pod {name}")]
    GetPod {
        /// Pod name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Creating a pod failed with a retryable error.
    #[error("failed to create pod {name}")]
    CreatePod {
        /// Pod name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting a pod failed.
    #[error("failed to delete pod {name}")]
    DeletePod {
        /// Pod name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The status write failed.
    #[error("failed to write the status of OMJob {name}")]
    PatchStatus {
        /// OMJob name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Recording the bookkeeping annotations failed.
    #[error("failed to annotate OMJob {name}")]
    Annotate {
        /// OMJob name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The status patch could not be built.
    #[error("failed to render the status of OMJob {name}")]
    RenderStatus {
        /// OMJob name.
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// Adding or removing the finalizer failed.
    #[error("failed to update the finalizers of OMJob {name}")]
    Finalizer {
        /// OMJob name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// A pod could not be rendered from its template.
    #[error("failed to render pod {name} from its template")]
    RenderPod {
        /// Pod name.
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// Reading the node of a pod failed. Not knowing is not "lost": the pass is retried, because
    /// treating an unreachable API server as a deleted node would end healthy runs.
    #[error("failed to read node {name}")]
    GetNode {
        /// Node name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The OMJob has no namespace or name (never true for objects from a watch).
    #[error("OMJob has no namespace or name")]
    MissingMetadata,
}

impl crate::controller::ReconcileError for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::GetPod { .. } => "get_pod",
            Self::CreatePod { .. } => "create_pod",
            Self::DeletePod { .. } => "delete_pod",
            Self::PatchStatus { .. } => "patch_status",
            Self::Annotate { .. } => "annotate",
            Self::RenderStatus { .. } => "render_status",
            Self::Finalizer { .. } => "finalizer",
            Self::RenderPod { .. } => "render_pod",
            Self::GetNode { .. } => "get_node",
            Self::MissingMetadata => "metadata",
        }
    }
}

/// Drops what a reconcile never reads from an object before it is cached: `managedFields`
/// (every field manager's field set, often larger than the object itself; status and finalizer
/// writes are made without it) and kubectl's last-applied copy of the object. With thousands of
/// finished OMJobs kept for their history, the cache is most of the operator's memory.
pub fn strip_for_cache<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// What the controller caches of an OMJob: [`strip_for_cache`] and only this project's
/// annotations ([`omjob_api::annotations::PREFIX`]: the settings and bookkeeping a reconcile
/// reads; OpenMetadata copies its pod annotations onto every OMJob, and nothing here reads
/// them back from the OMJob), and, once the run is over (`Succeeded` or `Failed`), none of its
/// pod templates but the fact that it has an exit handler. A finished run renders no pod again
/// (its reconcile reads the TTL, the deadline, whether an exit handler is set, its metadata and
/// status), and OpenMetadata's templates carry the workflow config in both stages' env, so
/// finished runs kept for their history would otherwise hold most of it. A status that leaves
/// the terminal phase (an edit by hand) arrives as a new watch event with the templates whole.
/// The labels stay: events about the OMJob copy them.
pub fn strip_omjob_for_cache(obj: &mut Lenient<OMJob>) {
    strip_for_cache(obj);
    let meta = kube::Resource::meta_mut(obj);
    meta.annotations = meta
        .annotations
        .take()
        .map(|a| {
            a.into_iter()
                .filter(|(k, _)| k.starts_with(omjob_api::annotations::PREFIX))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .filter(|a| !a.is_empty());
    if let Ok(omjob) = obj.0.as_mut()
        && omjob
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(omjob_api::Phase::is_terminal)
    {
        omjob.spec.main_pod_spec = omjob_api::PodTemplate::default();
        if let Some(exit) = omjob.spec.exit_handler_spec.as_mut() {
            *exit = omjob_api::PodTemplate::default();
        }
    }
}

/// What the controller caches of a Node: its name and its Ready condition, all that lost-node
/// detection reads; a Node's images, addresses and capacity are most of its size.
pub fn strip_node_for_cache(node: &mut k8s_openapi::api::core::v1::Node) {
    strip_for_cache(node);
    node.metadata.labels = None;
    node.metadata.annotations = None;
    node.spec = None;
    if let Some(status) = node.status.take() {
        node.status = Some(k8s_openapi::api::core::v1::NodeStatus {
            conditions: status
                .conditions
                .map(|c| c.into_iter().filter(|c| c.type_ == "Ready").collect()),
            ..Default::default()
        });
    }
}

/// Runs the OMJob controller alone for `namespaces` (`None`: all) until `shutdown` resolves.
/// The operator runs it beside the CronOMJob controller over shared caches
/// ([`crate::controller::manager::run`]); tests run either alone.
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Option<Vec<String>>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    controller::manager::run(Some(ctx), None, namespaces, concurrency, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_objects_lose_managed_fields_and_the_last_applied_copy_only() {
        let mut o: OMJob = serde_json::from_value(json!({
            "apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
            "metadata": {
                "name": "j", "namespace": "ns",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"},
                "labels": {"app.kubernetes.io/pipeline": "p"},
                "finalizers": [decide::FINALIZER],
                "managedFields": [{"manager": "omjob-operator", "operation": "Apply", "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:status": {"f:phase": {}}}}]
            },
            "spec": {"mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"]}},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let before = o.clone();
        strip_for_cache(&mut o);
        assert_eq!(o.metadata.managed_fields, None);
        assert_eq!(
            o.metadata.annotations,
            Some([("keep".to_owned(), "me".to_owned())].into())
        );
        assert_eq!(o.metadata.labels, before.metadata.labels);
        assert_eq!(o.metadata.finalizers, before.metadata.finalizers);
        assert_eq!(o.status, before.status);
    }

    #[test]
    fn cached_omjobs_keep_only_this_projects_annotations() {
        let mut o: Lenient<OMJob> = serde_json::from_value(json!({
            "apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
            "metadata": {"name": "j", "namespace": "ns", "annotations": {
                "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
                omjob_api::annotations::EXIT_HANDLER_ATTEMPTS: "2",
                omjob_api::annotations::ACTIVE_DEADLINE_SECONDS: "600"}},
            "spec": {"mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"]}},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        strip_omjob_for_cache(&mut o);
        let kept: Vec<_> = kube::Resource::meta(&o)
            .annotations
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(
            kept,
            [
                omjob_api::annotations::ACTIVE_DEADLINE_SECONDS,
                omjob_api::annotations::EXIT_HANDLER_ATTEMPTS
            ]
        );

        let mut none: Lenient<OMJob> = serde_json::from_value(json!({
            "apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
            "metadata": {"name": "j", "namespace": "ns", "annotations": {"other": "x"}},
            "spec": {"mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"]}}
        }))
        .unwrap();
        strip_omjob_for_cache(&mut none);
        assert_eq!(kube::Resource::meta(&none).annotations, None);
    }

    #[test]
    fn finished_omjobs_are_cached_without_their_pod_templates() {
        let omjob = |phase: &str| -> Lenient<OMJob> {
            serde_json::from_value(json!({
                "apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
                "metadata": {"name": "j", "namespace": "ns"},
                "spec": {
                    "mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"],
                                    "env": [{"name": "config", "value": "a large workflow config"}]},
                    "exitHandlerSpec": {"image": "i", "serviceAccountName": "sa", "command": ["y"]},
                    "ttlSecondsAfterFinished": 60, "activeDeadlineSeconds": 600
                },
                "status": {"phase": phase}
            }))
            .unwrap()
        };
        for phase in ["Pending", "Running", "ExitHandlerRunning"] {
            let mut o = omjob(phase);
            let before = o.valid().unwrap().spec.clone();
            strip_omjob_for_cache(&mut o);
            assert_eq!(
                o.valid().unwrap().spec,
                before,
                "{phase}: a live run keeps its templates"
            );
        }
        for phase in ["Succeeded", "Failed"] {
            let mut o = omjob(phase);
            strip_omjob_for_cache(&mut o);
            let spec = &o.valid().unwrap().spec;
            assert_eq!(spec.main_pod_spec, omjob_api::PodTemplate::default(), "{phase}");
            assert_eq!(
                spec.exit_handler_spec,
                Some(omjob_api::PodTemplate::default()),
                "{phase}"
            );
            assert_eq!(spec.ttl_after_finished_seconds(), Some(60));
            assert_eq!(spec.active_deadline_seconds, Some(600));
        }
    }
}
