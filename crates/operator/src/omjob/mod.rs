//! The OMJob controller: watches OMJobs and the pods they own, and drives each run through
//! main pod → exit-handler pod → terminal phase, as [`decide`] says. OMJobs are decoded one by
//! one ([`crate::decode`]): one that does not decode gets an `InvalidSpec` warning and is left
//! alone, and the others are reconciled as usual.

pub mod bookkeeping;
pub mod decide;
pub mod outcome;
pub mod pods;

use std::{sync::Arc, time::Duration};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{
    Api, Client, Resource as _, ResourceExt as _,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{
        Controller, WatchStreamExt as _,
        controller::{self, Action as Requeue},
        reflector, watcher,
    },
};
use omjob_api::{OMJob, labels, names};
use serde_json::json;

use crate::{
    capabilities::StatusKind,
    clock::Clock,
    decode::{self, Lenient, Reported},
    events,
    metrics::Metrics,
};
use decide::{Action, Decision, Observation, Settings, exit_pod_name};
use pods::{MainOutcome, PodKind};

/// Field manager of the status writes (JSON merge patches, see `Run::write_status`).
pub const FIELD_MANAGER: &str = "omjob-operator";
/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "omjob";

/// Everything a reconcile needs.
pub struct Context {
    /// API client. Events are written through it as core/v1 Events ([`events`]).
    pub client: Client,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Decision settings.
    pub settings: Settings,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What the controller's reconciles share: the context, and the undecodable OMJobs already
/// reported.
struct Shared {
    ctx: Arc<Context>,
    reported: Reported,
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

impl Error {
    /// A bounded label for metrics.
    #[must_use]
    pub const fn category(&self) -> &'static str {
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

/// An API error the cluster will not change its mind about (admission, quota, invalid spec).
fn is_permanent(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 422))
}

fn owned_by(pod: &Pod, omjob: &OMJob) -> bool {
    let uid = omjob.metadata.uid.as_deref();
    pod.metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| Some(r.uid.as_str()) == uid))
}

async fn get_owned(api: &Api<Pod>, name: &str, omjob: &OMJob) -> Result<Option<Pod>, Error> {
    let pod = api.get_opt(name).await.map_err(|source| Error::GetPod {
        name: name.to_owned(),
        source,
    })?;
    // A pod with our name but another owner belongs to an earlier OMJob of the same name; it is
    // not ours to judge (the garbage collector removes it).
    Ok(pod.filter(|p| owned_by(p, omjob)))
}

/// Since when the node of `pod` has not been Ready, or `None` when it is Ready (or the pod is
/// finished or unscheduled).
///
/// # Errors
/// The node could not be read (the API server is unreachable, for instance).
async fn node_down_since(
    ctx: &Context,
    pod: Option<&Pod>,
) -> Result<Option<k8s_openapi::jiff::Timestamp>, Error> {
    let Some(pod) = pod else { return Ok(None) };
    if outcome::finished(pod).is_some() {
        return Ok(None);
    }
    let Some(node_name) = outcome::node_name(pod) else {
        return Ok(None);
    };
    let caps = &ctx.settings.capabilities;
    if !caps.nodes_readable() {
        return Ok(outcome::node_down_from_pod(pod));
    }
    // Read on demand: only reconciles of a pod that has not finished get here, and keeping a
    // cache of every Node would cost memory in proportion to the cluster, not to the OMJobs.
    let node = match Api::<Node>::all(ctx.client.clone()).get_opt(node_name).await {
        Ok(node) => node,
        // Not permitted (OpenMetadata's chart grants no node reads): judge from the pod from
        // now on, instead of failing every reconcile of a running pod.
        Err(kube::Error::Api(s)) if s.code == 403 => {
            if caps.node_read_forbidden() {
                tracing::warn!(
                    node = node_name,
                    "reading nodes is forbidden; lost nodes are judged from pod conditions from now on (grant `get` on `nodes` to use node readiness)"
                );
            }
            return Ok(outcome::node_down_from_pod(pod));
        }
        Err(source) => {
            return Err(Error::GetNode {
                name: node_name.to_owned(),
                source,
            });
        }
    };
    let Some(node) = node else {
        // A pod bound to a node that no longer exists is as lost as it gets.
        return Ok(Some(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    };
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"));
    Ok(match ready {
        Some(r) if r.status != "True" => Some(
            r.last_transition_time
                .map_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH, |t| t.0),
        ),
        _ => None,
    })
}

struct Run<'a> {
    ctx: &'a Context,
    omjob: OMJob,
    pods: Api<Pod>,
    omjobs: Api<OMJob>,
    name: String,
    /// The status as the API server returned it (before [`bookkeeping::hydrate`]): what a
    /// write is compared with, so that pruned fields do not look changed on every pass.
    served: Option<omjob_api::OMJobStatus>,
    /// Events of this reconcile, published when it ends (see the `Drop` impl).
    events: Vec<events::Note>,
}

impl Drop for Run<'_> {
    /// Publishes the reconcile's events, in order, off the reconcile: they are best effort and
    /// nothing decides from them, so the event round trips stay out of the path between a main
    /// pod's end and its exit pod's creation. Publishing from `drop` covers every way out of a
    /// reconcile, errors included (their status was written before the events were noted).
    fn drop(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let notes = std::mem::take(&mut self.events);
        let client = self.ctx.client.clone();
        let clock = self.ctx.clock.clone();
        let reference = self.omjob.object_ref(&());
        let labels = self.omjob.metadata.labels.clone();
        runtime.spawn(async move {
            for note in &notes {
                events::publish(&client, &reference, labels.as_ref(), note, clock.now()).await;
            }
        });
    }
}

impl Run<'_> {
    fn publish(&mut self, note: &decide::EventNote) {
        self.events.push(events::Note {
            warning: note.warning,
            reason: note.reason.to_owned(),
            message: note.note.clone(),
            action: "Reconcile",
        });
    }

    /// Records the bookkeeping of `d` in the OMJob's annotations, where every CRD schema keeps
    /// it ([`bookkeeping`]), before the status write and so before any exit pod it names.
    async fn write_bookkeeping(&mut self, d: &Decision) -> Result<(), Error> {
        let current = bookkeeping::Recorded::from_annotations(self.omjob.metadata.annotations.as_ref());
        let Some(patch) = bookkeeping::Recorded::from_status(&d.status).patch_over(&current) else {
            return Ok(());
        };
        let written = self
            .omjobs
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| Error::Annotate {
                name: self.name.clone(),
                source,
            })?;
        self.omjob.metadata.annotations = written.metadata.annotations;
        self.omjob.metadata.resource_version = written.metadata.resource_version;
        Ok(())
    }

    async fn write_status(&mut self, d: &Decision) -> Result<(), Error> {
        self.write_bookkeeping(d).await?;
        let current = self.omjob.status.clone().unwrap_or_default();
        let caps = &self.ctx.settings.capabilities;
        let additive = caps.additive_status_kept(StatusKind::OMJob);
        // Compared as the server keeps them: under a CRD that prunes the additive fields the
        // served status never has them, and comparing them would rewrite on every pass.
        let served = bookkeeping::kept(&self.served.clone().unwrap_or_default(), additive);
        let wanted = bookkeeping::kept(&d.status, additive);
        if served == wanted {
            self.omjob.status = Some(d.status.clone());
            return Ok(());
        }
        // A JSON merge patch, not server-side apply: under a CRD without the additive fields
        // (OpenMetadata's chart) the API server refuses an apply that names them (HTTP 500
        // "field not declared in schema") but prunes them from a merge patch. Reading the CRD
        // to tell the two apart needs a permission the chart does not grant, so the first
        // write's answer tells instead, and later writes leave the pruned fields out.
        let patch = bookkeeping::status_merge_patch(self.served.as_ref(), &wanted).map_err(|source| {
            Error::RenderStatus {
                name: self.name.clone(),
                source,
            }
        })?;
        let written = self
            .omjobs
            .patch_status(
                &self.name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|source| Error::PatchStatus {
                name: self.name.clone(),
                source,
            })?;
        if wanted.conditions.is_some() {
            let kept = written.status.as_ref().is_some_and(|s| s.conditions.is_some());
            if caps.learn_additive_status(StatusKind::OMJob, kept) {
                tracing::warn!(
                    "the installed OMJob CRD prunes the additive status fields (reason, exitHandlerAttempts, conditions...); \
                     the operator keeps its state in annotations and writes only the upstream status fields"
                );
            }
        }
        self.served.clone_from(&written.status);
        // The finalizer patch that may follow is guarded by resourceVersion, which this write bumped.
        self.omjob.metadata.resource_version = written.metadata.resource_version;
        if current.phase != d.status.phase
            && let Some(to) = d.status.phase
        {
            self.ctx
                .metrics
                .transition(current.phase.map(|p| p.as_str()), to.as_str());
            tracing::info!(omjob = %self.name, from = ?current.phase, to = %to, reason = ?d.status.reason, "phase changed");
            if let (Some(from), Some(start)) = (current.phase, current.start_time.as_ref()) {
                let since = if from == omjob_api::Phase::ExitHandlerRunning {
                    current
                        .conditions
                        .iter()
                        .flatten()
                        .find(|c| c.type_ == decide::CONDITION_MAIN_FINISHED)
                        .and_then(|c| c.last_transition_time.as_ref())
                        .map_or(start.0, |t| t.0)
                } else {
                    start.0
                };
                let secs = self.ctx.clock.now().duration_since(since).as_secs_f64().max(0.0);
                self.ctx.metrics.phase_duration(from.as_str(), secs);
            }
        }
        self.omjob.status = Some(d.status.clone());
        Ok(())
    }

    async fn set_finalizer(&mut self, present: bool) -> Result<(), Error> {
        let mut list: Vec<String> = self.omjob.finalizers().to_vec();
        list.retain(|f| f != decide::FINALIZER);
        if present {
            list.push(decide::FINALIZER.to_owned());
        }
        // resourceVersion makes this a compare-and-swap: a concurrent change to the list fails
        // with 409 and the reconcile is retried, so no one else's finalizer is lost.
        let patch =
            json!({"metadata": {"finalizers": list, "resourceVersion": self.omjob.resource_version()}});
        match self
            .omjobs
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) => {
                self.omjob.metadata.finalizers = updated.metadata.finalizers;
                self.omjob.metadata.resource_version = updated.metadata.resource_version;
                Ok(())
            }
            // Already gone: nothing to hold or release.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(Error::Finalizer {
                name: self.name.clone(),
                source,
            }),
        }
    }

    async fn delete_pod(&self, name: &str, force: bool) -> Result<(), Error> {
        let dp = DeleteParams {
            grace_period_seconds: force.then_some(0),
            preconditions: None,
            ..DeleteParams::background()
        };
        match self.pods.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(Error::DeletePod {
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// Creates a pod; `Ok(Err(msg))` when the API refuses it for good. The flag says whether
    /// this call created it (rather than finding it, created by an earlier pass).
    async fn create_pod(&self, pod: &Pod, kind: PodKind) -> Result<Result<(Pod, bool), String>, Error> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match self.pods.create(&PostParams::default(), pod).await {
            Ok(created) => {
                self.ctx.metrics.pod_created(kind.label());
                Ok(Ok((created, true)))
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Created by an earlier pass (or another replica): the name is the lock.
                let existing = get_owned(&self.pods, &name, &self.omjob).await?;
                existing.map_or_else(
                    || {
                        Err(Error::CreatePod {
                            name: name.clone(),
                            source: kube::Error::Api(s),
                        })
                    },
                    |p| Ok(Ok((p, false))),
                )
            }
            Err(e) if is_permanent(&e) => Ok(Err(match e {
                kube::Error::Api(s) => s.message,
                other => other.to_string(),
            })),
            Err(source) => Err(Error::CreatePod { name, source }),
        }
    }

    fn render(&self, kind: PodKind, name: &str) -> Result<Pod, Error> {
        let spec = &self.omjob.spec;
        let (template, outcome) = match kind {
            PodKind::Main => (&spec.main_pod_spec, None),
            PodKind::ExitHandler => {
                let status = self.omjob.status.clone().unwrap_or_default();
                let outcome = MainOutcome {
                    exit_code: status.main_pod_exit_code,
                    reason: status.reason.unwrap_or_else(|| "Error".into()),
                };
                (
                    spec.exit_handler_spec.as_ref().unwrap_or(&spec.main_pod_spec),
                    Some(outcome),
                )
            }
        };
        let mut pod = pods::build(&self.omjob, template, kind, name, outcome.as_ref()).map_err(|source| {
            Error::RenderPod {
                name: name.to_owned(),
                source,
            }
        })?;
        if self.ctx.settings.capabilities.block_omjob_owner() {
            // As the Java operator does, where `omjobs/finalizers` may be updated (an admission
            // plugin refuses the pod otherwise).
            for r in pod.metadata.owner_references.iter_mut().flatten() {
                r.block_owner_deletion = Some(true);
            }
        }
        if let Some(o) = &outcome {
            let status = self.omjob.status.as_ref();
            let attempt = status.and_then(|s| s.exit_handler_attempts).unwrap_or(1);
            let a = pod.metadata.annotations.get_or_insert_with(Default::default);
            a.insert(
                omjob_api::annotations::EXIT_HANDLER_ATTEMPT.to_owned(),
                attempt.to_string(),
            );
            a.insert(
                omjob_api::annotations::PIPELINE_STATUS.to_owned(),
                pods::pipeline_status(o).to_owned(),
            );
        }
        Ok(pod)
    }
}

/// One reconcile of one OMJob.
///
/// # Errors
/// Transient API failures; the controller retries them with backoff.
#[tracing::instrument(skip(omjob, ctx), fields(omjob = %omjob.name_any(), ns = omjob.namespace().unwrap_or_default()))]
pub async fn reconcile(omjob: &OMJob, ctx: &Context) -> Result<Requeue, Error> {
    let result = reconcile_inner(omjob, ctx).await;
    ctx.metrics.reconciled(CONTROLLER, result.is_ok());
    result
}

/// Reconciles an OMJob that decoded; reports one that did not and waits for it to change.
async fn reconcile_watched(obj: Arc<Lenient<OMJob>>, shared: Arc<Shared>) -> Result<Requeue, Error> {
    match &obj.0 {
        Ok(omjob) => {
            shared.reported.forget(&omjob.metadata);
            reconcile(omjob, &shared.ctx).await
        }
        Err(bad) => {
            let ctx = &shared.ctx;
            decode::report(
                &obj,
                bad,
                &shared.reported,
                &ctx.client,
                ctx.clock.now(),
                &ctx.metrics,
                CONTROLLER,
            )
            .await;
            Ok(Requeue::await_change())
        }
    }
}

async fn reconcile_inner(omjob: &OMJob, ctx: &Context) -> Result<Requeue, Error> {
    let ns = omjob.namespace().ok_or(Error::MissingMetadata)?;
    let name = omjob.metadata.name.clone().ok_or(Error::MissingMetadata)?;
    let served = omjob.status.clone();
    let mut omjob = omjob.clone();
    omjob
        .spec
        .fill_from_annotations(omjob.metadata.annotations.as_ref());
    let adopted = bookkeeping::hydrate(&mut omjob);
    let mut run = Run {
        ctx,
        omjob,
        pods: Api::namespaced(ctx.client.clone(), &ns),
        omjobs: Api::namespaced(ctx.client.clone(), &ns),
        name: name.clone(),
        served,
        events: Vec::new(),
    };
    let main_name = names::main_pod_name(&name);
    let attempt = run
        .omjob
        .status
        .as_ref()
        .and_then(|s| s.exit_handler_attempts)
        .unwrap_or(0);
    let (read_main, read_exit) = decide::pods_to_read(&run.omjob, ctx.clock.now());
    let mut main = if read_main {
        get_owned(&run.pods, &main_name, &run.omjob).await?
    } else {
        None
    };
    let mut exit = if read_exit {
        get_owned(&run.pods, &exit_pod_name(&name, attempt), &run.omjob).await?
    } else {
        None
    };
    if adopted && let Some(pod) = exit.as_ref() {
        bookkeeping::adopt_from_exit_pod(&mut run.omjob, pod);
    }
    let mut main_create_error = None;
    let mut exit_create_error = None;
    let mut finalizer_done = false;

    // Each pass decides from scratch; a create feeds what it learned into the next pass. Three
    // passes cover the longest chain (create main → find it → main ended → create exit → confirm).
    for _ in 0..6 {
        let now = ctx.clock.now();
        let main_node_down_since = node_down_since(ctx, main.as_ref()).await?;
        let exit_node_down_since = node_down_since(ctx, exit.as_ref()).await?;
        let obs = Observation {
            omjob: &run.omjob,
            main: main.as_ref(),
            exit: exit.as_ref(),
            main_node_down_since,
            exit_node_down_since,
            main_create_error: main_create_error.clone(),
            exit_create_error: exit_create_error.clone(),
            now,
        };
        let d = decide::decide(&obs, &ctx.settings);
        tracing::debug!(actions = ?d.actions, phase = ?d.status.phase, "decided");

        if d.actions.contains(&Action::AddFinalizer) && !finalizer_done {
            run.set_finalizer(true).await?;
            finalizer_done = true;
        }
        if d.actions.contains(&Action::CreateMain) {
            // No intent to record: the main pod's name is the lock.
            let pod = run.render(PodKind::Main, &main_name)?;
            match run.create_pod(&pod, PodKind::Main).await? {
                Ok((p, fresh)) => {
                    if fresh {
                        run.publish(&decide::EventNote {
                            reason: "MainPodCreated",
                            note: format!("Created main ingestion pod: {main_name}"),
                            warning: false,
                        });
                    }
                    main = Some(p);
                }
                Err(msg) => main_create_error = Some(msg),
            }
            continue;
        }
        // Record the decision (and with it any new exit-handler attempt) before acting on it.
        run.write_status(&d).await?;
        for note in &d.events {
            run.publish(note);
        }
        for action in &d.actions {
            match action {
                Action::DeleteMain { force } => run.delete_pod(&main_name, *force).await?,
                Action::DeleteExit { name } => run.delete_pod(name, true).await?,
                Action::RemoveFinalizer => run.set_finalizer(false).await?,
                Action::CleanupPods => {
                    for a in 1..=attempt.max(1) {
                        run.delete_pod(&exit_pod_name(&name, a), false).await?;
                    }
                    run.delete_pod(&main_name, false).await?;
                }
                Action::AddFinalizer | Action::CreateMain | Action::CreateExit { .. } => {}
            }
        }
        if let Some(Action::CreateExit { attempt }) =
            d.actions.iter().find(|a| matches!(a, Action::CreateExit { .. }))
        {
            let exit_name = exit_pod_name(&name, *attempt);
            let pod = run.render(PodKind::ExitHandler, &exit_name)?;
            match run.create_pod(&pod, PodKind::ExitHandler).await? {
                Ok((p, fresh)) => {
                    if fresh {
                        run.publish(&decide::EventNote {
                            reason: "ExitHandlerCreated",
                            note: format!("Created exit handler pod: {exit_name}"),
                            warning: false,
                        });
                    }
                    if let Some(finished) = main.as_ref().and_then(main_finished_at) {
                        let secs = ctx.clock.now().duration_since(finished).as_secs_f64().max(0.0);
                        ctx.metrics.exit_handler_latency(secs);
                    }
                    exit = Some(p);
                }
                Err(msg) => exit_create_error = Some(msg),
            }
            continue;
        }
        return Ok(d.requeue.map_or_else(Requeue::await_change, Requeue::requeue));
    }
    // Still moving after the last pass: look again at once.
    Ok(Requeue::requeue(Duration::from_millis(10)))
}

fn main_finished_at(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| {
            c.state
                .as_ref()?
                .terminated
                .as_ref()?
                .finished_at
                .as_ref()
                .map(|t| t.0)
        })
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

/// Backoff after a failed reconcile.
fn error_policy(omjob: Arc<Lenient<OMJob>>, error: &Error, shared: Arc<Shared>) -> Requeue {
    shared.ctx.metrics.reconcile_error(CONTROLLER, error.category());
    tracing::warn!(omjob = %omjob.name_any(), error = %error, source = ?std::error::Error::source(error).map(ToString::to_string), "reconcile failed");
    Requeue::requeue(Duration::from_secs(2))
}

/// Runs the controller for `namespaces` (`None`: all) until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Option<Vec<String>>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let client = ctx.client.clone();
    let scopes: Vec<(Api<Lenient<OMJob>>, Api<Pod>)> = match namespaces {
        None => vec![(Api::all(client.clone()), Api::all(client))],
        Some(list) => list
            .iter()
            .map(|ns| {
                (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                )
            })
            .collect(),
    };
    let shared = Arc::new(Shared {
        ctx,
        reported: Reported::default(),
    });
    let streams = scopes.into_iter().map(|(omjobs, pods)| {
        let (reader, writer) = reflector::store();
        let cached = watcher(omjobs, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(strip_for_cache)
            .reflect(writer)
            .touched_objects();
        Controller::for_stream(cached, reader)
            // Only pods the operator made carry the pod-type label; other pods are not watched.
            .owns(
                pods,
                watcher::Config::default()
                    .labels(labels::LABEL_POD_TYPE)
                    .any_semantic(),
            )
            .with_config(controller::Config::default().concurrency(concurrency))
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile_watched, error_policy, shared.clone())
            .boxed()
    });
    futures::stream::select_all(streams)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
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
}
