//! Starts the controllers over shared caches. Per watched scope there is one OMJob watch,
//! whose cache both controllers read (the CronOMJob controller counts a schedule's runs from
//! it) and whose events trigger both, and one watch of the operator's pods (those carrying the
//! pod-type label), cached as [`CachedPod`]s (what the rules read), that triggers the OMJob
//! controller. The OMJob trigger streams also carry the OMJobs that the lanes park and later
//! grant a permit ([`super::lanes`]).
//!
//! Each watch runs as a task of its own that updates its cache first and then hands the cached
//! object (the cache's own `Arc`, not a second copy) to the controllers through unbounded
//! channels. The objects of a list (at start, and when a watch has to list again) are handed on
//! when the list is complete, all of them from the cache: handed on one by one, each would have
//! waited in its channel as a copy of its own until the controllers start (they start once every
//! cache is filled), so a restart held every object twice, and freeing the copies left the
//! cached objects spread over half-empty pages. Two things of kube-runtime 5 are avoided on
//! purpose, both for lost wake-ups found on the testbed: a store's `wait_until_ready` wakes
//! only the last of several concurrent waiters (so the caches are awaited once, here, before
//! any controller starts), and the shared-store subscription (`ReflectHandle`) returns
//! `Pending` without a waker when an object left the store before it was read.

use std::{future::Future, sync::Arc};

use futures::{FutureExt as _, StreamExt as _, channel::mpsc};
use k8s_openapi::api::core::v1::Node;
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
    omjob::{self, cached_pod::CachedPod, recent::Recent},
};

/// Termination permits per `RECONCILIATION_THREADS`. A termination is two short writes (the
/// exit pod, then the status); with only as many permits as routine work,
/// 100 main stages ending together queued for 1.7 s (p50) on the bench while the API server
/// answered a bare client's creates in 134 ms, so the lane is sized for bursts, not threads.
pub const TERMINATION_PERMITS_PER_THREAD: usize = 10;

/// How long events still queued at shutdown may take to be written.
const EVENT_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How every watch of the operator lists: the most recent state, in pages of 500. Not
/// `any_semantic()`: the API server serves a `resourceVersion=0` list from its watch cache in
/// one response whatever the page size (Kubernetes 1.34 returned all six of six ConfigMaps to
/// `limit=2&resourceVersion=0`), so a restart over 10,000 stored OMJobs and their 20,000 pods
/// read each kind as one body, decoded whole: 251 MiB at the peak on the bench.
fn list_in_pages() -> watcher::Config {
    watcher::Config::default().page_size(500)
}

/// Sends `obj` to the controller, if it runs (each controller can be turned off).
fn hand_on<K>(controller: Option<&mpsc::UnboundedSender<Arc<K>>>, obj: &Arc<K>) {
    if let Some(tx) = controller {
        // A closed channel is a controller that stopped (shutdown): nothing to deliver.
        let _ = tx.unbounded_send(obj.clone());
    }
}

/// The cache's own copy of `obj`, just written by its reflector, so that what is handed on
/// shares the cached allocation; `obj` itself when the cache has no such entry.
fn cached_copy<K>(cache: &Store<K>, obj: K) -> Arc<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    cache
        .get(&reflector::ObjectRef::from_obj(&obj))
        .unwrap_or_else(|| Arc::new(obj))
}

/// Runs the given controllers for `namespaces` (`None`: all) until `shutdown` resolves: the
/// OMJob controller with `concurrency` routine permits and [`TERMINATION_PERMITS_PER_THREAD`]
/// times as many for terminations, the
/// CronOMJob controller with `concurrency` reconciles at once.
#[allow(clippy::too_many_lines)]
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

    // One OMJob cache per scope (a shared writer would let one scope's relist wipe the other's
    // objects), and one pod cache per scope when the OMJob controller runs.
    let mut omjob_stores: Vec<Store<Lenient<OMJob>>> = Vec::new();
    let mut omjob_writers = Vec::new();
    let mut pod_stores: Vec<Store<CachedPod>> = Vec::new();
    let mut pod_writers = Vec::new();
    for _ in &scopes {
        let (reader, writer) = reflector::store::<Lenient<OMJob>>();
        omjob_stores.push(reader);
        omjob_writers.push(writer);
        if omjob_ctx.is_some() {
            let (reader, writer) = reflector::store::<CachedPod>();
            pod_stores.push(reader);
            pod_writers.push(writer);
        }
    }

    let (node_store, node_writer) = reflector::store::<Node>();
    let watch_nodes = omjob_ctx
        .as_ref()
        .is_some_and(|c| c.settings.capabilities.nodes_watchable());
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
            lanes: Lanes::new(threads, threads.saturating_mul(TERMINATION_PERMITS_PER_THREAD)),
            nodes: node_store,
            nodes_synced: std::sync::atomic::AtomicBool::new(false),
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

    // The watches: each updates its cache, then hands the object on.
    let mut watches = Vec::new();
    let mut omjob_triggers = Vec::new();
    let mut cron_triggers = Vec::new();
    let mut pod_triggers = Vec::new();
    let mut retriggers = Vec::new();
    for (i, (scope, writer)) in scopes.iter().zip(omjob_writers).enumerate() {
        let to_omjob = omjob_shared.as_ref().map(|_| {
            let (tx, rx) = mpsc::unbounded();
            omjob_triggers.push(rx);
            retriggers.push((omjob_stores[i].clone(), tx.clone()));
            tx
        });
        let to_cron = cron_shared.as_ref().map(|_| {
            let (tx, rx) = mpsc::unbounded();
            cron_triggers.push(rx);
            tx
        });
        let forget = omjob_shared.clone();
        let cached = omjob_stores[i].clone();
        watches.push(
            watcher(scope.api::<Lenient<OMJob>>(&client), list_in_pages())
                .default_backoff()
                .modify(omjob::strip_omjob_for_cache)
                .reflect(writer)
                .for_each(move |event| {
                    match event {
                        Err(e) => report_watch_error("omjobs", &e),
                        Ok(watcher::Event::Apply(o)) => {
                            let o = cached_copy(&cached, o);
                            hand_on(to_omjob.as_ref(), &o);
                            hand_on(to_cron.as_ref(), &o);
                        }
                        // Handed on from the cache once the list is complete (see the module doc).
                        Ok(watcher::Event::InitApply(_)) => {}
                        Ok(watcher::Event::InitDone) => {
                            for o in cached.state() {
                                hand_on(to_omjob.as_ref(), &o);
                                hand_on(to_cron.as_ref(), &o);
                            }
                        }
                        Ok(watcher::Event::Delete(o)) => {
                            // A deleted OMJob's last write here is no longer anyone's to prefer,
                            // its place in a lane is given up, and its CronOMJob counts its runs
                            // again.
                            if let Some(s) = &forget {
                                s.recent.forget_omjob(
                                    o.namespace().as_deref().unwrap_or_default(),
                                    &o.name_any(),
                                    &[],
                                );
                                // A permit granted to it would wait for a reconcile that
                                // never comes (kube-runtime skips objects gone from the cache).
                                s.lanes.forget(&super::key_of(&o));
                            }
                            hand_on(to_cron.as_ref(), &Arc::new(o));
                        }
                        Ok(watcher::Event::Init) => {}
                    }
                    std::future::ready(())
                })
                .boxed(),
        );
        if let (Some(shared), Some(pod_writer)) = (&omjob_shared, pod_writers.get_mut(i).map(std::mem::take))
        {
            let (tx, rx) = mpsc::unbounded();
            pod_triggers.push(rx);
            let tap = shared.clone();
            let cached = pod_stores[i].clone();
            watches.push(
                watcher(
                    scope.api::<CachedPod>(&client),
                    // Only pods the operator made carry the pod-type label; other pods are not watched.
                    list_in_pages().labels(labels::LABEL_POD_TYPE),
                )
                .default_backoff()
                .modify(CachedPod::slim)
                .reflect(pod_writer)
                .for_each(move |event| {
                    match event {
                        Err(e) => report_watch_error("pods", &e),
                        Ok(watcher::Event::Apply(pod)) => {
                            tap.recent.seen_pod(&pod.metadata);
                            let _ = tx.unbounded_send(cached_copy(&cached, pod));
                        }
                        Ok(watcher::Event::Delete(pod)) => {
                            tap.recent.seen_pod(&pod.metadata);
                            let _ = tx.unbounded_send(Arc::new(pod));
                        }
                        // Handed on from the cache once the list is complete (see the module doc).
                        Ok(watcher::Event::InitApply(pod)) => tap.recent.seen_pod(&pod.metadata),
                        Ok(watcher::Event::InitDone) => {
                            for pod in cached.state() {
                                let _ = tx.unbounded_send(pod);
                            }
                        }
                        Ok(watcher::Event::Init) => {}
                    }
                    std::future::ready(())
                })
                .boxed(),
            );
        }
    }

    // A parked OMJob is triggered again through its scope's trigger stream, as its cached copy.
    if let Some(shared) = &omjob_shared {
        shared.lanes.set_retrigger(Box::new(move |key| {
            let Some((ns, name)) = key.split_once('/') else {
                return false;
            };
            let r = reflector::ObjectRef::new(name).within(ns);
            retriggers
                .iter()
                .any(|(store, tx)| store.get(&r).is_some_and(|o| tx.unbounded_send(o).is_ok()))
        }));
    }

    // Nodes, for lost-node detection without a GET per reconcile of a running pod. Not awaited:
    // under a role without node reads the watch keeps failing (and says so) and reconciles
    // read nodes on demand, or judge from the pod, as before.
    if let (true, Some(shared)) = (watch_nodes, &omjob_shared) {
        let synced = shared.clone();
        watches.push(
            watcher(kube::Api::<Node>::all(client.clone()), list_in_pages())
                .default_backoff()
                .modify(omjob::strip_node_for_cache)
                .reflect(node_writer)
                .for_each(move |event| {
                    match event {
                        Err(e) => report_watch_error("nodes", &e),
                        Ok(watcher::Event::InitDone) => {
                            synced
                                .nodes_synced
                                .store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(_) => {}
                    }
                    std::future::ready(())
                })
                .boxed(),
        );
    }

    let controllers = {
        let shutdown = shutdown.clone();
        let omjob_stores = omjob_stores.clone();
        async move {
            // Every cache is filled before the first reconcile: a run's pods missing from a cache
            // still being listed would read as deleted, and a schedule's runs as never made. One
            // waiter per store, in turn (see the module doc).
            let ready = async {
                for store in &omjob_stores {
                    store.wait_until_ready().await.map_err(|_| ())?;
                }
                for store in &pod_stores {
                    store.wait_until_ready().await.map_err(|_| ())?;
                }
                Ok::<(), ()>(())
            };
            let go = tokio::select! {
                r = ready => r.is_ok(),
                () = shutdown.clone() => false,
            };
            if !go {
                return;
            }
            let mut running = Vec::new();
            if let Some(shared) = &omjob_shared {
                for ((reader, trigger), pods) in
                    omjob_stores.iter().cloned().zip(omjob_triggers).zip(pod_triggers)
                {
                    running.push(
                        Controller::for_shared_stream(trigger, reader)
                            .owns_shared_stream(pods)
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
                for (scope, trigger) in scopes.iter().zip(cron_triggers) {
                    running.push(
                        Controller::new(scope.api::<Lenient<CronOMJob>>(&client), list_in_pages())
                            .owns_shared_stream(trigger)
                            .with_config(ControllerConfig::default().concurrency(concurrency))
                            .graceful_shutdown_on(shutdown.clone())
                            .run(cronomjob::reconcile, cronomjob::error_policy, shared.clone())
                            .for_each(|r| {
                                report_controller_result(cronomjob::CONTROLLER, r);
                                std::future::ready(())
                            })
                            .boxed(),
                    );
                }
            }
            futures::future::join_all(running).await;
        }
    };

    // The watches run for as long as the controllers; the controllers end on shutdown.
    tokio::select! {
        () = controllers => {}
        _ = futures::future::join_all(watches) => {}
    }
    if tokio::time::timeout(EVENT_DRAIN, events_task).await.is_err() {
        tracing::warn!("events still queued at shutdown were not all written");
    }
}
