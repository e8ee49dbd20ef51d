//! Starts the controllers over shared caches. Per watched scope there is one OMJob watch,
//! whose cache both controllers read (the CronOMJob controller counts a schedule's runs from
//! it) and whose events trigger both, and one watch of the operator's pods (those carrying the
//! pod-type label), cached without their container specs, that triggers the OMJob controller
//! and wakes a waiting reconcile the moment a stage ends.

use std::{future::Future, sync::Arc};

use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    ResourceExt as _,
    runtime::{
        Controller, WatchStreamExt as _,
        controller::Config as ControllerConfig,
        reflector::{self, Store},
        watcher,
    },
};
use omjob_api::{CronOMJob, OMJob, labels};

use super::{Scope, backoff::Backoff, lanes::Lanes, report_controller_result, report_watch_error};
use crate::{
    cronomjob,
    decode::{Lenient, Reported},
    events::Publisher,
    omjob::{self, outcome, recent::Recent},
};

/// Changes buffered per subscriber of a shared OMJob cache before its watch waits.
const SUBSCRIBER_BUFFER: usize = 1024;
/// How long events still queued at shutdown may take to be written.
const EVENT_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The OMJob that owns `pod`, as `namespace/name`.
fn owner_key(pod: &Pod) -> Option<String> {
    let ns = pod.metadata.namespace.as_deref()?;
    pod.owner_references()
        .iter()
        .find(|r| r.kind == "OMJob")
        .map(|r| format!("{ns}/{}", r.name))
}

/// Runs the given controllers for `namespaces` (`None`: all) until `shutdown` resolves: the
/// OMJob controller with `concurrency` routine permits and as many for terminations, the
/// CronOMJob controller with `concurrency` reconciles at once.
pub async fn run(
    omjob_ctx: Option<Arc<omjob::Context>>,
    cron_ctx: Option<cronomjob::Context>,
    namespaces: Option<Vec<String>>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let Some((client, metrics)) = omjob_ctx
        .as_ref()
        .map(|c| (c.client.clone(), c.metrics.clone()))
        .or_else(|| cron_ctx.as_ref().map(|c| (c.client.clone(), c.metrics.clone())))
    else {
        return;
    };
    let scopes = Scope::all(namespaces.as_deref());
    let (events, events_task) = Publisher::start(client.clone(), metrics);

    // One shared OMJob cache per scope (a shared writer would let one scope's relist wipe the
    // other's objects), with a subscription for each controller that runs.
    let mut omjob_stores: Vec<Store<Lenient<OMJob>>> = Vec::new();
    let mut writers = Vec::new();
    let mut omjob_triggers = Vec::new();
    let mut cron_triggers = Vec::new();
    for _ in &scopes {
        let (reader, writer) = reflector::store_shared::<Lenient<OMJob>>(SUBSCRIBER_BUFFER);
        if omjob_ctx.is_some() {
            omjob_triggers.push(writer.subscribe());
        }
        if cron_ctx.is_some() {
            cron_triggers.push(writer.subscribe());
        }
        omjob_stores.push(reader);
        writers.push(writer);
    }
    let mut pod_stores = Vec::new();
    let mut pod_writers = Vec::new();
    if omjob_ctx.is_some() {
        for _ in &scopes {
            let (reader, writer) = reflector::store::<Pod>();
            pod_stores.push(reader);
            pod_writers.push(writer);
        }
    }

    let omjob_shared = omjob_ctx.map(|ctx| {
        let threads = usize::from(concurrency);
        Arc::new(omjob::Shared {
            backoff: Backoff::new(ctx.settings.requeue_cap),
            ctx,
            reported: Reported::default(),
            events: events.clone(),
            omjobs: omjob_stores.clone(),
            pods: pod_stores.clone(),
            recent: Recent::default(),
            lanes: Lanes::new(threads, threads),
        })
    });
    let cron_shared = cron_ctx.map(|ctx| {
        Arc::new(cronomjob::Shared {
            backoff: Backoff::new(ctx.settings.requeue_cap),
            ctx,
            omjobs: omjob_stores.clone(),
            reported: Reported::default(),
            events: events.clone(),
        })
    });
    drop(events);

    let mut tasks = Vec::new();
    for (scope, writer) in scopes.iter().zip(writers) {
        let forget = omjob_shared.clone();
        tasks.push(
            watcher(
                scope.api::<Lenient<OMJob>>(&client),
                watcher::Config::default().any_semantic(),
            )
            .default_backoff()
            .modify(omjob::strip_for_cache)
            .reflect_shared(writer)
            .for_each(move |event| {
                match &event {
                    Err(e) => report_watch_error("omjobs", e),
                    // A deleted OMJob's last write here is no longer anyone's to prefer.
                    Ok(watcher::Event::Delete(o)) => {
                        if let Some(s) = &forget {
                            s.recent.forget_omjob(
                                o.namespace().as_deref().unwrap_or_default(),
                                &o.name_any(),
                                &[],
                            );
                        }
                    }
                    Ok(_) => {}
                }
                std::future::ready(())
            })
            .boxed(),
        );
    }

    if let Some(shared) = &omjob_shared {
        for ((scope, trigger), (reader, pod_writer)) in scopes
            .iter()
            .zip(omjob_triggers)
            .zip(omjob_stores.iter().cloned().zip(pod_writers))
        {
            let Some(trigger) = trigger else { continue };
            let tap = shared.clone();
            let pods = watcher(
                scope.api::<Pod>(&client),
                // Only pods the operator made carry the pod-type label; other pods are not watched.
                watcher::Config::default()
                    .labels(labels::LABEL_POD_TYPE)
                    .any_semantic(),
            )
            .default_backoff()
            .modify(omjob::strip_pod_for_cache)
            .reflect(pod_writer)
            .touched_objects()
            .inspect_ok(move |pod| {
                tap.recent.seen_pod(pod);
                if outcome::finished(pod).is_some()
                    && let Some(key) = owner_key(pod)
                {
                    tap.lanes.wake(&key);
                }
            });
            tasks.push(
                Controller::for_shared_stream(trigger, reader)
                    .owns_stream(pods)
                    // Unbounded here: the lanes bound the work, after each reconcile has
                    // decided which lane it needs.
                    .with_config(ControllerConfig::default().concurrency(0))
                    .graceful_shutdown_on(shutdown.clone())
                    .run(
                        omjob::reconcile_watched,
                        omjob::reconcile::error_policy,
                        shared.clone(),
                    )
                    .for_each(|r| {
                        report_controller_result(omjob::CONTROLLER, r);
                        std::future::ready(())
                    })
                    .boxed(),
            );
        }
    }

    if let Some(shared) = &cron_shared {
        let stores = omjob_stores.clone();
        let shutdown = shutdown.clone();
        let client = client.clone();
        let scopes = scopes.clone();
        let shared = shared.clone();
        tasks.push(
            async move {
                // Reconciling before the cache is filled would see no runs (and, under Forbid,
                // start one).
                let ready = async {
                    for store in &stores {
                        if store.wait_until_ready().await.is_err() {
                            return false;
                        }
                    }
                    true
                };
                let go = tokio::select! {
                    ok = ready => ok,
                    () = shutdown.clone() => false,
                };
                if !go {
                    return;
                }
                let controllers = scopes.iter().zip(cron_triggers).filter_map(|(scope, trigger)| {
                    let trigger = trigger?;
                    Some(
                        Controller::new(
                            scope.api::<Lenient<CronOMJob>>(&client),
                            watcher::Config::default().any_semantic(),
                        )
                        .owns_shared_stream(trigger)
                        .with_config(ControllerConfig::default().concurrency(concurrency))
                        .graceful_shutdown_on(shutdown.clone())
                        .run(cronomjob::reconcile, cronomjob::error_policy, shared.clone())
                        .boxed(),
                    )
                });
                futures::stream::select_all(controllers)
                    .for_each(|r| {
                        report_controller_result(cronomjob::CONTROLLER, r);
                        std::future::ready(())
                    })
                    .await;
            }
            .boxed(),
        );
    }

    // The caches' watches run for as long as the controllers; the controllers end on shutdown.
    let (controllers, watches): (Vec<_>, Vec<_>) = {
        let n = scopes.len();
        let mut all = tasks.into_iter();
        let watches: Vec<_> = all.by_ref().take(n).collect();
        (all.collect(), watches)
    };
    tokio::select! {
        _ = futures::future::join_all(controllers) => {}
        _ = futures::future::join_all(watches) => {}
    }
    drop(omjob_shared);
    drop(cron_shared);
    if tokio::time::timeout(EVENT_DRAIN, events_task).await.is_err() {
        tracing::warn!("events still queued at shutdown were not all written");
    }
}
