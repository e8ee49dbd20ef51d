//! The CronOMJob controller: watches CronOMJobs and the OMJobs they own, and creates one OMJob
//! per due slot as [`decide`] says, with Kubernetes CronJob semantics (missed slots, deadline,
//! concurrency policy, suspend, history limits).
//!
//! The IO shell: it reads the OMJobs a CronOMJob controls from a reflector cache (re-reading
//! from the API any run the status lists that the cache has not seen yet, so a stale cache never
//! makes a Forbid check miss a run just created), asks [`decide::decide`] what to do, deletes and
//! creates OMJobs, then writes the status with server-side apply and publishes the events.
//! CronOMJobs and OMJobs are decoded one by one ([`crate::decode`]): a CronOMJob that does not
//! decode gets an `InvalidSpec` warning and runs nothing; an OMJob that does not decode is not
//! counted as a run (the OMJob controller reports it).

pub mod decide;
pub mod spawn;

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Api, Resource as _, ResourceExt as _,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions},
    runtime::{controller::Action as Requeue, reflector::Store},
};
use omjob_api::{CronOMJob, OMJob};
use serde_json::json;

use crate::{
    capabilities::StatusKind,
    decode::{Lenient, Reported},
    events,
    omjob::decide::EventNote,
};
use decide::{Action, Decision, Observation, Settings};

/// Field manager of the CronOMJob status writes (JSON merge patches).
pub const FIELD_MANAGER: &str = "omjob-operator-cronomjob";
/// Controller name in metrics and logs.
pub const CONTROLLER: &str = "cronomjob";

/// Everything a reconcile needs besides the OMJob cache.
pub type Context = crate::controller::Context<Settings>;

/// The context plus the OMJob caches the controller reads (one per watched scope, shared with
/// the OMJob controller), the backoff, the event queue, and the undecodable CronOMJobs already
/// reported.
#[derive(Debug)]
pub struct Shared {
    /// The context.
    pub ctx: Context,
    /// The OMJob caches.
    pub omjobs: Vec<Store<Lenient<OMJob>>>,
    /// Undecodable CronOMJobs already reported.
    pub reported: Reported,
    /// Per-object backoff after failures.
    pub backoff: crate::controller::backoff::Backoff,
    /// Where events go.
    pub events: events::Publisher,
}

/// Errors of one reconcile; every one is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating the run of a slot failed.
    #[error("failed to create OMJob {name}")]
    CreateOMJob {
        /// OMJob name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting a run failed.
    #[error("failed to delete OMJob {name}")]
    DeleteOMJob {
        /// OMJob name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Reading a run failed.
    #[error("failed to read OMJob {name}")]
    GetOMJob {
        /// OMJob name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The status write failed.
    #[error("failed to write the status of CronOMJob {name}")]
    PatchStatus {
        /// CronOMJob name.
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The status patch could not be built.
    #[error("failed to render the status of CronOMJob {name}")]
    RenderStatus {
        /// CronOMJob name.
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// The CronOMJob has no namespace, name or UID (never true for objects from a watch).
    #[error("CronOMJob has no namespace, name or uid")]
    MissingMetadata,
}

impl crate::controller::ReconcileError for Error {
    fn category(&self) -> &'static str {
        match self {
            Self::CreateOMJob { .. } => "create_omjob",
            Self::DeleteOMJob { .. } => "delete_omjob",
            Self::GetOMJob { .. } => "get_omjob",
            Self::PatchStatus { .. } => "patch_status",
            Self::RenderStatus { .. } => "render_status",
            Self::MissingMetadata => "metadata",
        }
    }
}

fn publish(
    shared: &Shared,
    reference: &ObjectReference,
    labels: Option<&BTreeMap<String, String>>,
    note: &EventNote,
) {
    let note = events::Note {
        warning: note.warning,
        reason: note.reason,
        message: note.note.clone(),
        action: events::action::SCHEDULE,
    };
    shared
        .events
        .publish(reference, labels, &note, shared.ctx.clock.now());
}

fn controlled_by(o: &OMJob, uid: &str) -> bool {
    o.owner_references()
        .iter()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

struct Pass<'a> {
    shared: &'a Shared,
    ctx: &'a Context,
    cron: &'a CronOMJob,
    crons: Api<CronOMJob>,
    omjobs: Api<OMJob>,
    /// The same OMJobs, for reads: an undecodable one reads as absent instead of failing the pass.
    read_omjobs: Api<Lenient<OMJob>>,
    name: String,
}

impl Pass<'_> {
    /// The OMJob `name`, if it exists and decodes.
    async fn get(&self, name: &str) -> Result<Option<OMJob>, Error> {
        let found = self
            .read_omjobs
            .get_opt(name)
            .await
            .map_err(|source| Error::GetOMJob {
                name: name.to_owned(),
                source,
            })?;
        Ok(found.and_then(|o| o.0.ok()))
    }

    fn publish(&self, note: &EventNote) {
        publish(
            self.shared,
            &self.cron.object_ref(&()),
            self.cron.metadata.labels.as_ref(),
            note,
        );
    }

    async fn delete(&self, name: &str, uid: Option<&str>) -> Result<(), Error> {
        let dp = DeleteParams {
            preconditions: uid.map(|u| Preconditions {
                uid: Some(u.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match self.omjobs.delete(name, &dp).await {
            // 404: already gone; 409: the precondition failed, so the name now holds another
            // object that is not ours to delete.
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(source) => Err(Error::DeleteOMJob {
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// Creates the run; `Ok(None)` when the name is taken by an OMJob this CronOMJob does not
    /// control.
    async fn create(&self, omjob: &OMJob, uid: &str) -> Result<Option<OMJob>, Error> {
        let name = omjob.metadata.name.clone().unwrap_or_default();
        match self.omjobs.create(&PostParams::default(), omjob).await {
            Ok(created) => Ok(Some(created)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Created by an earlier pass (or another replica): the name is the lock.
                let existing = self.get(&name).await?;
                Ok(existing.filter(|o| controlled_by(o, uid)))
            }
            Err(source) => {
                let text = match &source {
                    kube::Error::Api(s) => s.message.clone(),
                    other => other.to_string(),
                };
                self.publish(&EventNote {
                    reason: events::reason::FAILED_CREATE,
                    note: format!("Error creating OMJob {name}: {text}"),
                    warning: true,
                });
                Err(Error::CreateOMJob { name, source })
            }
        }
    }

    /// Writes the status as a JSON merge patch, for the reason given at the OMJob's status
    /// write (`crate::omjob`): the chart's CRD lacks `active` and `lastSuccessfulTime`, and
    /// the server prunes them from a merge patch where it refuses an apply naming them. Nothing
    /// is resumed from those two fields (the runs are found by owner reference each pass), so
    /// losing them costs only their display.
    async fn write_status(&self, d: &Decision) -> Result<(), Error> {
        let caps = &self.ctx.settings.capabilities;
        let additive = caps.additive_status_kept(StatusKind::CronOMJob);
        let served = self.cron.status.clone();
        let wanted = kept_cron(&d.status, additive);
        if kept_cron(&served.clone().unwrap_or_default(), additive) == wanted {
            return Ok(());
        }
        let mut body = serde_json::to_value(&wanted).map_err(|source| Error::RenderStatus {
            name: self.name.clone(),
            source,
        })?;
        if let (Some(old), Some(map)) = (served.as_ref(), body.as_object_mut()) {
            // Fields the new status drops are cleared explicitly (a merge patch keeps the rest).
            let old = serde_json::to_value(old).map_err(|source| Error::RenderStatus {
                name: self.name.clone(),
                source,
            })?;
            for key in old.as_object().into_iter().flat_map(|o| o.keys()) {
                map.entry(key.clone()).or_insert(serde_json::Value::Null);
            }
        }
        let written = self
            .crons
            .patch_status(
                &self.name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&json!({ "status": body })),
            )
            .await
            .map_err(|source| Error::PatchStatus {
                name: self.name.clone(),
                source,
            })?;
        if wanted.active.is_some() {
            let kept = written.status.as_ref().is_some_and(|s| s.active.is_some());
            if caps.learn_additive_status(StatusKind::CronOMJob, kept) {
                tracing::warn!(
                    "the installed CronOMJob CRD prunes status.active and status.lastSuccessfulTime; they are rebuilt from the runs each pass and not written"
                );
            }
        }
        Ok(())
    }
}

/// The OMJobs `cron` controls: from the cache, plus any run the status lists as active that the
/// cache has not caught up with yet (read from the API).
async fn children(shared: &Shared, pass: &Pass<'_>, ns: &str, uid: &str) -> Result<Vec<OMJob>, Error> {
    let mut found: Vec<OMJob> = shared
        .omjobs
        .iter()
        .flat_map(Store::state)
        .filter_map(|o| o.valid().cloned())
        .filter(|o| o.metadata.namespace.as_deref() == Some(ns) && controlled_by(o, uid))
        .collect();
    let listed = pass
        .cron
        .status
        .as_ref()
        .and_then(|s| s.active.clone())
        .unwrap_or_default();
    for a in listed {
        if found
            .iter()
            .any(|o| o.metadata.name.as_deref() == Some(a.name.as_str()))
        {
            continue;
        }
        if let Some(o) = pass.get(&a.name).await?.filter(|o| controlled_by(o, uid)) {
            found.push(o);
        }
    }
    Ok(found)
}

/// One reconcile of one CronOMJob.
///
/// # Errors
/// Transient API failures; the controller retries them with backoff.
#[tracing::instrument(skip(cron, shared), fields(cronomjob = %cron.name_any(), ns = cron.namespace().unwrap_or_default()))]
pub async fn reconcile(cron: Arc<Lenient<CronOMJob>>, shared: Arc<Shared>) -> Result<Requeue, Error> {
    let ctx = &shared.ctx;
    let valid = match &cron.0 {
        Ok(valid) => valid,
        Err(bad) => {
            return Ok(crate::controller::undecodable(
                &cron,
                bad,
                &shared.reported,
                &shared.events,
                ctx,
                CONTROLLER,
            ));
        }
    };
    shared.reported.forget(&valid.metadata);
    let result = reconcile_inner(valid, &shared).await;
    ctx.metrics.reconciled(CONTROLLER, result.is_ok());
    if result.is_ok() {
        shared.backoff.succeeded(&crate::controller::key_of(valid));
    }
    result
}

async fn reconcile_inner(cron: &CronOMJob, shared: &Arc<Shared>) -> Result<Requeue, Error> {
    let ctx = &shared.ctx;
    let mut cron = cron.clone();
    cron.spec
        .fill_from_annotations(cron.metadata.annotations.as_ref());
    let cron = &cron;
    let ns = cron.namespace().ok_or(Error::MissingMetadata)?;
    let name = cron.metadata.name.clone().ok_or(Error::MissingMetadata)?;
    let uid = cron.metadata.uid.clone().ok_or(Error::MissingMetadata)?;
    if cron.metadata.deletion_timestamp.is_some() {
        // The garbage collector deletes its runs; nothing to schedule.
        return Ok(Requeue::await_change());
    }
    let pass = Pass {
        shared,
        ctx,
        cron,
        crons: Api::namespaced(ctx.client.clone(), &ns),
        omjobs: Api::namespaced(ctx.client.clone(), &ns),
        read_omjobs: Api::namespaced(ctx.client.clone(), &ns),
        name,
    };
    let children = children(shared, &pass, &ns, &uid).await?;
    let obs = Observation {
        cron,
        children: &children,
        now: ctx.clock.now(),
    };
    let mut d = decide::decide(&obs, &ctx.settings);
    tracing::debug!(actions = d.actions.len(), status = ?d.status, "decided");

    let mut notes = std::mem::take(&mut d.events);
    for action in &d.actions {
        match action {
            Action::Delete { name, uid } => pass.delete(name, uid.as_deref()).await?,
            Action::Create(omjob) => {
                let run = omjob.metadata.name.clone().unwrap_or_default();
                let mut omjob = omjob.clone();
                if ctx.settings.capabilities.block_cron_owner() {
                    // Foreground deletion of the CronOMJob then waits for its runs; it needs
                    // `cronomjobs/finalizers` where owner-reference permissions are enforced.
                    for r in omjob.metadata.owner_references.iter_mut().flatten() {
                        r.block_owner_deletion = Some(true);
                    }
                }
                match pass.create(&omjob, &uid).await? {
                    Some(created) => {
                        let slot = d.status.last_schedule_time.as_ref().map(|t| t.0);
                        let skew = slot.map(|s| ctx.clock.now().duration_since(s).as_secs_f64());
                        tracing::info!(omjob = %run, slot = ?slot, skew_seconds = ?skew, "created the run of a slot");
                        // Record the UID, so a later OMJob of the same name is told apart.
                        for a in d.status.active.iter_mut().flatten() {
                            if a.name == run {
                                a.uid.clone_from(&created.metadata.uid);
                            }
                        }
                    }
                    None => {
                        let text = format!(
                            "OMJob {run} already exists and is not controlled by this CronOMJob; its slot did not run"
                        );
                        if let Some(active) = d.status.active.as_mut() {
                            active.retain(|a| a.name != run);
                        }
                        d.status.active = d.status.active.take().filter(|a| !a.is_empty());
                        d.status.message = Some(text.clone());
                        notes.retain(|e| e.reason != events::reason::SUCCESSFUL_CREATE);
                        notes.push(EventNote {
                            reason: events::reason::FAILED_CREATE,
                            note: text,
                            warning: true,
                        });
                    }
                }
            }
        }
    }
    pass.write_status(&d).await?;
    if !notes.is_empty() {
        let reference = cron.object_ref(&());
        for note in &notes {
            publish(shared, &reference, cron.metadata.labels.as_ref(), note);
        }
    }
    Ok(d.requeue.map_or_else(Requeue::await_change, Requeue::requeue))
}

/// `status` without the fields the installed CRD prunes, when it prunes them.
fn kept_cron(status: &omjob_api::CronOMJobStatus, additive_kept: bool) -> omjob_api::CronOMJobStatus {
    if additive_kept {
        return status.clone();
    }
    omjob_api::CronOMJobStatus {
        active: None,
        last_successful_time: None,
        ..status.clone()
    }
}

/// The error policy: backoff per CronOMJob ([`crate::controller::backoff`]).
pub fn error_policy(cron: Arc<Lenient<CronOMJob>>, error: &Error, shared: Arc<Shared>) -> Requeue {
    crate::controller::retry_after_failure(CONTROLLER, &*cron, error, &shared.ctx.metrics, &shared.backoff)
}

/// Runs the CronOMJob controller alone for `namespaces` (`None`: all) until `shutdown`
/// resolves, with an OMJob cache of its own. The operator runs it beside the OMJob controller
/// over shared caches ([`crate::controller::manager::run`]).
pub async fn run(
    ctx: Context,
    namespaces: Option<Vec<String>>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    crate::controller::manager::run(None, Some(ctx), namespaces, concurrency, shutdown).await;
}
