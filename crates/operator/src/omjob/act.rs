//! The writes of one OMJob reconcile: bookkeeping annotations, the status, the finalizer, and
//! the pods, each made only when it changes something, and each remembered in
//! [`super::recent`] so that the next reconcile decides from it even before the watch delivers it.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{
    Api, Resource as _,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use omjob_api::OMJob;
use serde_json::json;

use super::{
    Error, FIELD_MANAGER, Shared, bookkeeping,
    decide::{self, Decision},
    outcome,
    pods::{self, MainOutcome, PodKind},
};
use crate::{capabilities::StatusKind, events};

/// One OMJob during one reconcile: the freshest copy of it, and what is needed to write it.
#[derive(Debug)]
pub struct Run<'a> {
    pub shared: &'a Shared,
    pub omjob: OMJob,
    pub pods: Api<Pod>,
    pub omjobs: Api<OMJob>,
    pub namespace: String,
    pub name: String,
    /// The status as the API server returned it (before [`bookkeeping::hydrate`]): what a
    /// write is compared with, so that pruned fields do not look changed on every pass.
    pub served: Option<omjob_api::OMJobStatus>,
}

/// An API error the cluster will not change its mind about (admission, quota, invalid spec).
fn is_permanent(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 422))
}

/// Whether `pod` belongs to `omjob`. A pod with our name but another owner belongs to an
/// earlier OMJob of the same name; it is not ours to judge (the garbage collector removes it).
pub fn owned_by(pod: &Pod, omjob: &OMJob) -> bool {
    let uid = omjob.metadata.uid.as_deref();
    pod.metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| Some(r.uid.as_str()) == uid))
}

impl Run<'_> {
    /// Pod `name` of this OMJob, from the pod cache (or a create here it has not seen yet).
    pub fn pod(&self, name: &str) -> Option<Pod> {
        self.shared
            .pod(&self.namespace, name)
            .filter(|p| owned_by(p, &self.omjob))
    }

    /// Pod `name`, from the cache; but when the cache has none although the status says the
    /// pod was made (`expected`), read from the API server before deciding from its absence:
    /// "the pod is gone" ends a run, and a cache that lags (a relist, a watch that is catching
    /// up) must not end one. Only a pod that really is gone costs this read.
    pub async fn pod_confirmed(&self, name: &str, expected: bool) -> Result<Option<Pod>, Error> {
        if let Some(p) = self.pod(name) {
            return Ok(Some(p));
        }
        if !expected {
            return Ok(None);
        }
        let found = self.pods.get_opt(name).await.map_err(|source| Error::GetPod {
            name: name.to_owned(),
            source,
        })?;
        Ok(found.filter(|p| owned_by(p, &self.omjob)))
    }

    /// Queues an event about this OMJob.
    pub fn publish(&self, note: &decide::EventNote) {
        let ctx = &self.shared.ctx;
        self.shared.events.publish(
            &self.omjob.object_ref(&()),
            self.omjob.metadata.labels.as_ref(),
            &events::Note {
                warning: note.warning,
                reason: note.reason,
                message: note.note.clone(),
                action: events::action::RECONCILE,
            },
            ctx.clock.now(),
        );
    }

    /// The bookkeeping annotations `d` needs that the OMJob does not carry yet. None where the
    /// status itself is the record: once a status write has shown that the CRD keeps the
    /// additive status fields, or when the served status already says what `d` says (a process
    /// that has not written a status yet cannot know which kind of CRD it runs under, and must
    /// not annotate every stored OMJob to find out). The annotations are for CRDs that prune
    /// the status.
    fn bookkeeping_patch(&self, d: &Decision) -> Option<serde_json::Value> {
        let wanted = bookkeeping::Recorded::from_status(&d.status);
        let in_status = self
            .served
            .as_ref()
            .is_some_and(|s| bookkeeping::Recorded::from_status(s) == wanted);
        if in_status
            || self
                .shared
                .ctx
                .settings
                .capabilities
                .additive_status_shown_kept(StatusKind::OMJob)
        {
            return None;
        }
        let current = bookkeeping::Recorded::from_annotations(self.omjob.metadata.annotations.as_ref());
        wanted.patch_over(&current)
    }

    /// Whether writing `d` changes anything on the server.
    pub fn writes(&self, d: &Decision) -> bool {
        self.bookkeeping_patch(d).is_some() || self.status_change(d).is_some()
    }

    /// The status `d` decided, as the server keeps it, when that differs from the served one.
    /// Compared as kept: under a CRD that prunes the additive fields the served status never
    /// has them, and comparing them would rewrite on every pass.
    fn status_change(&self, d: &Decision) -> Option<omjob_api::OMJobStatus> {
        let additive = self
            .shared
            .ctx
            .settings
            .capabilities
            .additive_status_kept(StatusKind::OMJob);
        let served = bookkeeping::kept(&self.served.clone().unwrap_or_default(), additive);
        let wanted = bookkeeping::kept(&d.status, additive);
        (served != wanted).then_some(wanted)
    }

    /// Records the bookkeeping of `d` in the OMJob's annotations, where every CRD schema keeps
    /// it ([`bookkeeping`]), before the status write of the same decision.
    async fn write_bookkeeping(&mut self, d: &Decision) -> Result<(), Error> {
        let Some(patch) = self.bookkeeping_patch(d) else {
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

    /// Writes the status `d` decided (and its bookkeeping first), when it differs from the
    /// served one.
    pub async fn write_status(&mut self, d: &Decision) -> Result<(), Error> {
        self.write_bookkeeping(d).await?;
        let ctx = &self.shared.ctx;
        let current = self.omjob.status.clone().unwrap_or_default();
        let caps = &ctx.settings.capabilities;
        let Some(wanted) = self.status_change(d) else {
            self.omjob.status = Some(d.status.clone());
            self.shared.recent.wrote(&self.omjob);
            return Ok(());
        };
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
        self.omjob.metadata.resource_version = written.metadata.resource_version;
        if current.phase != d.status.phase
            && let Some(to) = d.status.phase
        {
            self.record_transition(&current, to, d);
        }
        self.omjob.status = Some(d.status.clone());
        self.remember();
        Ok(())
    }

    /// Remembers this copy of the OMJob as what the server now holds, with the status as served.
    fn remember(&self) {
        let mut copy = self.omjob.clone();
        copy.status.clone_from(&self.served);
        self.shared.recent.wrote(&copy);
    }

    fn record_transition(&self, current: &omjob_api::OMJobStatus, to: omjob_api::Phase, d: &Decision) {
        let ctx = &self.shared.ctx;
        ctx.metrics
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
            let secs = ctx.clock.now().duration_since(since).as_secs_f64().max(0.0);
            ctx.metrics.phase_duration(from.as_str(), secs);
        }
    }

    /// Adds or removes the operator's finalizer.
    ///
    /// A JSON patch that tests the finalizer list it replaces: a concurrent change to the list
    /// fails the test (HTTP 422) and the reconcile is retried, so no one else's finalizer is
    /// lost, while a status write in between (which changes the resourceVersion, not the list)
    /// does not fail it, as a resourceVersion guard from a cached copy would. An OMJob without
    /// a list yet gets one with a merge patch guarded by resourceVersion: JSON patch cannot
    /// test for an absent member.
    pub async fn set_finalizer(&mut self, present: bool) -> Result<(), Error> {
        let before: Option<Vec<String>> = self.omjob.metadata.finalizers.clone();
        let mut list: Vec<String> = before.clone().unwrap_or_default();
        list.retain(|f| f != decide::FINALIZER);
        if present {
            list.push(decide::FINALIZER.to_owned());
        }
        let result = match &before {
            Some(old) => {
                let patch: json_patch::Patch = serde_json::from_value(json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": old},
                    {"op": "replace", "path": "/metadata/finalizers", "value": list},
                ]))
                .map_err(|source| Error::RenderStatus {
                    name: self.name.clone(),
                    source,
                })?;
                self.omjobs
                    .patch(&self.name, &PatchParams::default(), &Patch::<()>::Json(patch))
                    .await
            }
            None => {
                let patch = json!({"metadata": {"finalizers": list, "resourceVersion": self.omjob.metadata.resource_version}});
                self.omjobs
                    .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
        };
        match result {
            Ok(updated) => {
                self.omjob.metadata.finalizers = updated.metadata.finalizers;
                self.omjob.metadata.resource_version = updated.metadata.resource_version;
                self.remember();
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

    /// Deletes pod `name` (at once when `force`); a pod already gone is fine.
    pub async fn delete_pod(&self, name: &str, force: bool) -> Result<(), Error> {
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
    /// this call created it (rather than finding it, created by an earlier pass or replica).
    pub async fn create_pod(&self, pod: &Pod, kind: PodKind) -> Result<Result<(Pod, bool), String>, Error> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match self.pods.create(&PostParams::default(), pod).await {
            Ok(created) => {
                self.shared.ctx.metrics.pod_created(kind.label());
                self.shared.recent.created_pod(&created);
                Ok(Ok((created, true)))
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Created by an earlier pass (or another replica): the name is the lock. The
                // cache usually has it; read it only when it does not.
                let existing = match self.pod(&name) {
                    Some(p) => Some(p),
                    None => self
                        .pods
                        .get_opt(&name)
                        .await
                        .map_err(|source| Error::GetPod {
                            name: name.clone(),
                            source,
                        })?
                        .filter(|p| owned_by(p, &self.omjob)),
                };
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

    /// Pod `name` of `kind`, rendered from the OMJob's templates; an exit pod is told the main
    /// outcome and the attempt of `status` (the decided one, which may not be written yet).
    pub fn render(&self, kind: PodKind, name: &str, status: &omjob_api::OMJobStatus) -> Result<Pod, Error> {
        let spec = &self.omjob.spec;
        let (template, outcome) = match kind {
            PodKind::Main => (&spec.main_pod_spec, None),
            PodKind::ExitHandler => {
                let outcome = MainOutcome {
                    exit_code: status.main_pod_exit_code,
                    reason: status.reason.clone().unwrap_or_else(|| "Error".into()),
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
        if self.shared.ctx.settings.capabilities.block_omjob_owner() {
            // As the Java operator does, where `omjobs/finalizers` may be updated (an admission
            // plugin refuses the pod otherwise).
            for r in pod.metadata.owner_references.iter_mut().flatten() {
                r.block_owner_deletion = Some(true);
            }
        }
        if let Some(o) = &outcome {
            let attempt = status.exit_handler_attempts.unwrap_or(1);
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

    /// Node `name`: from the node cache once it is filled, else (or when the cache does not
    /// have it, as for a node that joined a moment ago) from the API server.
    async fn node(&self, name: &str) -> Result<Option<Node>, kube::Error> {
        if self
            .shared
            .nodes_synced
            .load(std::sync::atomic::Ordering::Relaxed)
            && let Some(node) = self
                .shared
                .nodes
                .get(&kube::runtime::reflector::ObjectRef::new(name))
        {
            return Ok(Some((*node).clone()));
        }
        Api::<Node>::all(self.shared.ctx.client.clone())
            .get_opt(name)
            .await
    }

    /// Since when the node of `pod` has not been Ready, or `None` when it is Ready (or the pod
    /// is finished or unscheduled).
    ///
    /// # Errors
    /// The node could not be read (the API server is unreachable, for instance). Not knowing
    /// is not "lost": treating an unreachable API server as a deleted node would end healthy runs.
    pub async fn node_down_since(
        &self,
        pod: Option<&Pod>,
    ) -> Result<Option<k8s_openapi::jiff::Timestamp>, Error> {
        let Some(pod) = pod else { return Ok(None) };
        if outcome::finished(pod).is_some() {
            return Ok(None);
        }
        let Some(node_name) = outcome::node_name(pod) else {
            return Ok(None);
        };
        let ctx = &self.shared.ctx;
        let caps = &ctx.settings.capabilities;
        if !caps.nodes_readable() {
            return Ok(outcome::node_down_from_pod(pod));
        }
        let node = match self.node(node_name).await {
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
}
