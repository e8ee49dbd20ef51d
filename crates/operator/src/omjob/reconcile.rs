//! One reconcile of one OMJob, in one shape: observe (caches only), decide ([`decide`]), take a
//! permit of the decision's lane (or park there, [`crate::controller::lanes`]), and act; then
//! decide again with what acting taught, until a decision needs nothing more.
//!
//! The one reason to decide again inside a reconcile is the **fast path after a create**: a
//! pod just created is fed into the next decision at once instead of waiting for its watch
//! event, so that "main pod ended → create the exit pod → record the end and the pod" and
//! "create the main pod → record it in the status" each finish in the reconcile that started
//! them. A chain is two acting passes (finalizer and main pod, then the status; the first exit
//! pod, then the status; a replacement attempt's status and pod, then the status naming it),
//! and a reconcile that starts as one chain ends can run into the next, so it stops after
//! [`MAX_PASSES`] and looks again at once if the OMJob is still moving.

use std::{sync::Arc, time::Duration};

use kube::{ResourceExt as _, runtime::controller::Action as Requeue};
use omjob_api::{OMJob, Phase, names};

use super::{
    CONTROLLER, Error, Shared,
    act::Run,
    bookkeeping,
    decide::{self, Action, Decision, Observation, exit_pod_name},
    pods::PodKind,
};
use crate::{
    controller::{
        self,
        lanes::{Entry, Lane},
    },
    decode,
    events::reason,
};

/// Acting passes of one reconcile at most (see the module doc).
pub const MAX_PASSES: usize = 4;

/// Reconciles an OMJob that decoded; reports one that did not and waits for it to change.
///
/// # Errors
/// Transient API failures; the error policy retries them with backoff.
pub async fn reconcile_watched(
    obj: Arc<decode::Lenient<OMJob>>,
    shared: Arc<Shared>,
) -> Result<Requeue, Error> {
    match &obj.0 {
        Ok(omjob) => {
            shared.reported.forget(&omjob.metadata);
            let key = controller::key_of(omjob);
            let result = reconcile(omjob, &shared, &key).await;
            shared.ctx.metrics.reconciled(CONTROLLER, result.is_ok());
            if result.is_ok() {
                shared.backoff.succeeded(&key);
            }
            result
        }
        Err(bad) => Ok(controller::undecodable(
            &obj,
            bad,
            &shared.reported,
            &shared.events,
            &shared.ctx,
            CONTROLLER,
        )),
    }
}

/// The error policy: backoff per OMJob ([`controller::backoff`]).
pub fn error_policy(omjob: Arc<decode::Lenient<OMJob>>, error: &Error, shared: Arc<Shared>) -> Requeue {
    controller::retry_after_failure(CONTROLLER, &*omjob, error, &shared.ctx.metrics, &shared.backoff)
}

/// The lane a decision belongs to: a stage that ended and the run moving on is a termination;
/// the rest is routine.
#[must_use]
pub fn lane_of(current: Option<Phase>, d: &Decision) -> Lane {
    let next = d.status.phase;
    let main_closes = matches!(current, None | Some(Phase::Pending | Phase::Running))
        && matches!(
            next,
            Some(Phase::ExitHandlerRunning | Phase::Succeeded | Phase::Failed)
        );
    let run_ends = current == Some(Phase::ExitHandlerRunning) && next.is_some_and(Phase::is_terminal);
    let exit_step = d
        .actions
        .iter()
        .any(|a| matches!(a, Action::CreateExit { .. } | Action::RemoveFinalizer));
    if main_closes || run_ends || exit_step {
        Lane::Termination
    } else {
        Lane::Routine
    }
}

/// Ends a reconcile with its lanes however it ends: a permit granted to its OMJob and not taken
/// goes on, unless the reconcile parked (the grant then is for its next run).
struct Registration<'a> {
    shared: &'a Shared,
    key: &'a str,
    parked: bool,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if !self.parked {
            self.shared.lanes.done(self.key);
        }
    }
}

/// The freshest copy of the OMJob (cache or this process's last write), with the spec's
/// annotation overrides and the bookkeeping filled in; and whether the bookkeeping came from
/// annotations only (an OMJob adopted from another operator, or under a pruning CRD).
fn prepare(cached: &OMJob, shared: &Shared) -> (OMJob, Option<omjob_api::OMJobStatus>, bool) {
    let mut omjob = shared.recent.omjob(cached);
    let served = omjob.status.clone();
    omjob
        .spec
        .fill_from_annotations(omjob.metadata.annotations.as_ref());
    let adopted = bookkeeping::hydrate(&mut omjob);
    (omjob, served, adopted)
}

async fn reconcile(cached: &OMJob, shared: &Shared, key: &str) -> Result<Requeue, Error> {
    let ctx = &shared.ctx;
    let ns = cached.namespace().ok_or(Error::MissingMetadata)?;
    let name = cached.metadata.name.clone().ok_or(Error::MissingMetadata)?;
    let mut registration = Registration {
        shared,
        key,
        parked: false,
    };
    let (omjob, served, adopted) = prepare(cached, shared);
    let mut run = Run {
        shared,
        omjob,
        pods: kube::Api::namespaced(ctx.client.clone(), &ns),
        omjobs: kube::Api::namespaced(ctx.client.clone(), &ns),
        namespace: ns.clone(),
        name: name.clone(),
        served,
    };
    let main_name = names::main_pod_name(&name);
    if adopted {
        adopt(&mut run);
    }
    let mut main_create_error = None;
    let mut exit_create_error = None;
    let mut permit = None;
    let mut passes = 0;

    loop {
        let attempt = attempt_of(&run.omjob);
        let (read_main, read_exit) = decide::pods_to_read(&run.omjob, ctx.clock.now());
        let status = run.omjob.status.clone().unwrap_or_default();
        // Absence is confirmed only while it would end a stage; for a finished run (TTL
        // clean-up) a missing pod only means there is nothing left to delete.
        let open_stage = !status.phase.is_some_and(Phase::is_terminal);
        let main = if read_main {
            let made = open_stage && status.main_pod_name.is_some();
            run.pod_confirmed(&main_name, made).await?
        } else {
            None
        };
        let exit = if read_exit {
            let made = status.phase == Some(Phase::ExitHandlerRunning) && attempt >= 1;
            run.pod_confirmed(&exit_pod_name(&name, attempt), made).await?
        } else {
            None
        };
        let obs = Observation {
            omjob: &run.omjob,
            main: main.as_ref(),
            exit: exit.as_ref(),
            main_node_down_since: run.node_down_since(main.as_ref()).await?,
            exit_node_down_since: run.node_down_since(exit.as_ref()).await?,
            main_create_error: main_create_error.clone(),
            exit_create_error: exit_create_error.clone(),
            now: ctx.clock.now(),
        };
        let d = decide::decide(&obs, &ctx.settings);
        tracing::debug!(actions = ?d.actions, phase = ?d.status.phase, "decided");
        if d.actions.is_empty() && !run.writes(&d) {
            return Ok(requeue_of(&d));
        }
        if permit.is_none() {
            let lane = lane_of(run.omjob.status.as_ref().and_then(|s| s.phase), &d);
            match shared.lanes.enter(lane, key) {
                Entry::Permit(p) => permit = Some(p),
                // Its lane is full: it is triggered again with a permit granted to it (or
                // sooner, by its pods' events). The safety-net requeue stays, in case.
                Entry::Parked => {
                    ctx.metrics.parked(lane.label());
                    registration.parked = true;
                    return Ok(requeue_of(&d));
                }
            }
        }
        if passes == MAX_PASSES {
            // Still moving after the longest chain: look again at once.
            return Ok(Requeue::requeue(Duration::from_millis(10)));
        }
        passes += 1;

        if d.actions.contains(&Action::AddFinalizer) {
            run.set_finalizer(true).await?;
        }
        if d.actions.contains(&Action::CreateMain) {
            // No intent to record: the main pod's name is the lock.
            main_create_error = create_stage_pod(&run, PodKind::Main, &main_name, &d).await?.err();
            continue;
        }
        if d.actions == [Action::CreateExit { attempt: 1 }] {
            // Exit pod first: the first attempt's name is the lock, as the main pod's is, so it
            // is created before the decision that names it is written, and the next pass writes
            // the main stage's end and the pod in one status write. Later attempts are recorded
            // first (below): their number is what a restart must not forget.
            exit_create_error = create_exit(&run, &d, 1, main.as_ref()).await?;
            continue;
        }
        // Record the decision (and with it any later exit-handler attempt) before acting on it.
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
            exit_create_error = create_exit(&run, &d, *attempt, main.as_ref()).await?;
            continue;
        }
        return Ok(requeue_of(&d));
    }
}

/// Renders and creates the pod `name` of `kind` from decision `d`, and publishes its "created"
/// event when this call made it (not when it was already there). Returns whether this call made
/// it, or why the API server refused it for good.
async fn create_stage_pod(
    run: &Run<'_>,
    kind: PodKind,
    name: &str,
    d: &Decision,
) -> Result<Result<bool, String>, Error> {
    let pod = run.render(kind, name, &d.status)?;
    let made = run.create_pod(&pod, kind).await?.map(|(_, fresh)| fresh);
    if made == Ok(true) {
        let (reason, what) = match kind {
            PodKind::Main => (reason::MAIN_POD_CREATED, "main ingestion"),
            PodKind::ExitHandler => (reason::EXIT_HANDLER_CREATED, "exit handler"),
        };
        run.publish(&decide::EventNote {
            reason,
            note: format!("Created {what} pod: {name}"),
            warning: false,
        });
    }
    Ok(made)
}

/// Creates the exit pod of `attempt`, told the outcome `d` decided, and records how long after
/// the main container's end this call made it; returns why the API server refused it for good,
/// if it did.
async fn create_exit(
    run: &Run<'_>,
    d: &Decision,
    attempt: i32,
    main: Option<&k8s_openapi::api::core::v1::Pod>,
) -> Result<Option<String>, Error> {
    let made = create_stage_pod(run, PodKind::ExitHandler, &exit_pod_name(&run.name, attempt), d).await?;
    if made == Ok(true)
        && let Some(finished) = main.and_then(main_finished_at)
    {
        let ctx = &run.shared.ctx;
        let secs = ctx.clock.now().duration_since(finished).as_secs_f64().max(0.0);
        ctx.metrics.exit_handler_latency(secs);
    }
    Ok(made.err())
}

/// Takes the main outcome of an OMJob whose bookkeeping is not recorded (left by the Java
/// operator mid-exit-handler) from the exit pod it already has.
fn adopt(run: &mut Run<'_>) {
    let attempt = attempt_of(&run.omjob);
    if let Some(pod) = run.pod(&exit_pod_name(&run.name, attempt)) {
        bookkeeping::adopt_from_exit_pod(&mut run.omjob, &pod);
    }
}

fn attempt_of(omjob: &OMJob) -> i32 {
    omjob
        .status
        .as_ref()
        .and_then(|s| s.exit_handler_attempts)
        .unwrap_or(0)
}

fn requeue_of(d: &Decision) -> Requeue {
    d.requeue.map_or_else(Requeue::await_change, Requeue::requeue)
}

fn main_finished_at(pod: &k8s_openapi::api::core::v1::Pod) -> Option<k8s_openapi::jiff::Timestamp> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(phase: Phase, actions: Vec<Action>) -> Decision {
        Decision {
            status: omjob_api::OMJobStatus {
                phase: Some(phase),
                ..Default::default()
            },
            actions,
            requeue: None,
            events: Vec::new(),
        }
    }

    #[test]
    fn stage_ends_take_the_termination_lane_and_the_rest_is_routine() {
        let cases = [
            (
                None,
                decision(Phase::Pending, vec![Action::AddFinalizer, Action::CreateMain]),
                Lane::Routine,
            ),
            (
                Some(Phase::Pending),
                decision(Phase::Running, vec![]),
                Lane::Routine,
            ),
            (
                Some(Phase::Running),
                decision(Phase::ExitHandlerRunning, vec![Action::CreateExit { attempt: 1 }]),
                Lane::Termination,
            ),
            (
                Some(Phase::Running),
                decision(Phase::Failed, vec![]),
                Lane::Termination,
            ),
            (
                Some(Phase::ExitHandlerRunning),
                decision(Phase::Succeeded, vec![]),
                Lane::Termination,
            ),
            (
                Some(Phase::Succeeded),
                decision(Phase::Succeeded, vec![Action::RemoveFinalizer]),
                Lane::Termination,
            ),
            (
                Some(Phase::Succeeded),
                decision(Phase::Succeeded, vec![Action::CleanupPods]),
                Lane::Routine,
            ),
            (
                Some(Phase::ExitHandlerRunning),
                decision(Phase::ExitHandlerRunning, vec![Action::CreateExit { attempt: 2 }]),
                Lane::Termination,
            ),
        ];
        for (from, d, want) in cases {
            assert_eq!(
                lane_of(from, &d),
                want,
                "{from:?} → {:?} {:?}",
                d.status.phase,
                d.actions
            );
        }
    }
}
