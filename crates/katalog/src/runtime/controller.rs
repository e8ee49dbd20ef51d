//! One entry's controller: wait for its CRD to be served, then a kube-runtime `Controller`
//! over `DynamicObject`s fed by our own CR reflector (so the trigger stream passes the queue
//! [`Gate`](super::gate::Gate)) and by a reflector per child kind.
//!
//! The CR watch is cluster-wide, or, with `WATCH_ALLOWED_NAMESPACES_ONLY`, one watch per
//! namespace when `allowedNamespaces` lists only plain names; the per-namespace watches feed one
//! cache, each relist replacing only its own namespace's objects.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::Instant,
};

use futures::{Stream, StreamExt as _, stream};
use kube::{
    Api, Client, ResourceExt as _,
    api::{ApiResource, DynamicObject},
    core::GroupVersionKind,
    runtime::{
        Controller, WatchStreamExt as _,
        controller::Config,
        reflector::{self, ObjectRef as CacheKey, store::Writer},
        watcher::{self, Event, watcher},
    },
};

use super::{
    Shutdown,
    cache::CacheView,
    clock::Clock,
    kinds,
    live::{Caches, Live},
    metrics::{Metrics, Outcome},
    reconcile::{self, Context, Stats},
    significance::{Filter, strip},
};
use crate::render::MANAGED_LABEL;

/// What an entry's controller shares with the rest of the runtime.
#[derive(Clone)]
pub struct Shared {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub stats: Arc<Stats>,
    pub clock: Arc<dyn Clock>,
    pub discovery_retry: std::time::Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("discovery_retry", &self.discovery_retry)
            .finish_non_exhaustive()
    }
}

/// The CR key the gate and the controller agree on: `ns/name` or `name`.
pub fn key_of(obj: &DynamicObject) -> String {
    match obj.namespace() {
        Some(ns) => format!("{ns}/{}", obj.name_any()),
        None => obj.name_any(),
    }
}

/// Why an entry cannot start: its CRD is not installed.
pub fn not_installed_message(live: &Live) -> String {
    let e = &live.entry;
    format!(
        "CRD {}.{} ({}) is not installed; install it (kubectl apply -f <the CRD manifest>) and the entry starts by itself",
        e.plural,
        e.group,
        e.gvk()
    )
}

/// Runs `live`'s controller until `shutdown`: first polls discovery until the CRD is served.
pub async fn run_entry(live: Arc<Live>, shared: Shared, shutdown: Shutdown) {
    let gvk = GroupVersionKind::gvk(&live.entry.group, &live.entry.version, &live.entry.kind);
    let begun = Instant::now();
    let mut logged = false;
    let resource = loop {
        match kube::discovery::pinned_kind(&shared.client, &gvk).await {
            Ok((resource, _)) => break resource,
            Err(e) => {
                let message = not_installed_message(&live);
                if !logged {
                    tracing::error!(entry = %live.entry.name, gvk = %live.entry.gvk(), error = %e, "{message}");
                    logged = true;
                }
                shared.metrics.activated(&live.entry.gvk(), Outcome::Error, None);
                live.health.stop(Some(message));
                tokio::select! {
                    () = tokio::time::sleep(shared.discovery_retry) => {}
                    () = shutdown.clone() => return,
                }
            }
        }
    };
    if logged {
        tracing::info!(entry = %live.entry.name, gvk = %live.entry.gvk(), "the CRD is served now; starting");
    }
    tracing::info!(entry = %live.entry.name, gvk = %live.entry.gvk(), workers = live.workers(),
        resync = ?live.entry.resync.value, max_queue_depth = live.entry.max_queue_depth.value,
        "starting controller");
    controller(live, resource, shared, shutdown, begun).await;
}

async fn controller(
    live: Arc<Live>,
    resource: ApiResource,
    shared: Shared,
    shutdown: Shutdown,
    begun: Instant,
) {
    let mut view = CacheView::default();
    let mut children = Vec::new();
    for kind in kinds::used_by(&live.entry) {
        let writer = Writer::<DynamicObject>::new(kind.resource.clone());
        view.insert(kind.resource.clone(), writer.as_reader());
        let api = Api::<DynamicObject>::all_with(shared.client.clone(), &kind.resource);
        let config = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
        let mut significant = Filter::children(&live.entry);
        let stream = reflector::reflector(writer, watcher(api, config).default_backoff().modify(strip))
            .filter(move |event| futures::future::ready(event.as_ref().map_or(true, |e| significant.keep(e))))
            .touched_objects();
        children.push((kind.resource, stream));
    }
    let view = Arc::new(view);
    let (store, triggers) = cr_triggers(&shared.client, &resource, &live);
    live.set_caches(Some(Caches {
        resource: resource.clone(),
        crs: store.clone(),
        children: Arc::clone(&view),
    }));
    live.health.start(shared.clock.now());
    shared.metrics.activated(
        &live.entry.gvk(),
        Outcome::Success,
        Some(begun.elapsed().as_secs_f64()),
    );
    live.publish_gauges(&shared.metrics);

    // u16 is the controller's limit; Katalogs ask for a handful.
    let workers = u16::try_from(live.workers()).unwrap_or(u16::MAX);
    let ctx = Arc::new(Context::new(
        shared.client.clone(),
        Arc::clone(&live),
        resource.clone(),
        view,
        shared.stats,
        shared.metrics,
        shared.clock,
    ));
    let mut controller = Controller::for_stream_with(triggers, store, resource)
        .with_config(Config::default().concurrency(workers));
    for (child, stream) in children {
        controller = controller.owns_stream_with(stream, child);
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                // Watch failures, the CR watch's and the children's alike.
                Err(kube::runtime::controller::Error::QueueError(e)) => {
                    tracing::warn!(error = %e, "a watch failed; retrying");
                }
                // Failed passes are logged by the error policy; a vanished object is routine.
                Err(e) => tracing::debug!("controller: {e}"),
                Ok(_) => {}
            }
        })
        .await;
}

/// The namespaces to watch: `None` for all. Only plain names can be watched one by one, and only
/// when the runtime was told to (`WATCH_ALLOWED_NAMESPACES_ONLY`): otherwise a CR outside them
/// must still be seen, to get its `NamespaceNotAllowed` warning.
pub fn watched_namespaces(live: &Live) -> Vec<Option<String>> {
    let e = &live.entry;
    // `namespace` restricts a namespaced entry to that one namespace (§2.2): CRs elsewhere are
    // not this entry's at all, so there is nothing to tell them.
    if let (true, Some(ns)) = (e.namespaced, &e.namespace) {
        return vec![Some(ns.clone())];
    }
    let plain = !e.allowed_namespaces.is_empty() && e.allowed_namespaces.iter().all(|n| !n.contains('*'));
    if live.watch_allowed_only && e.namespaced && plain {
        let unique: BTreeSet<&String> = e.allowed_namespaces.iter().collect();
        unique.into_iter().map(|n| Some(n.clone())).collect()
    } else {
        vec![None]
    }
}

/// The CR watch's selectors: the entry's `labelSelector` and `fieldSelector` (§2.2), each a
/// map of equalities.
pub fn cr_watch_config(entry: &crate::load::Entry) -> watcher::Config {
    let join = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut config = watcher::Config::default();
    if !entry.label_selector.is_empty() {
        config = config.labels(&join(&entry.label_selector));
    }
    if !entry.field_selector.is_empty() {
        config = config.fields(&join(&entry.field_selector));
    }
    config
}

/// Keeps the entry's health in step with its CR watch: a watch the API server answers with 404
/// means the CRD was removed while the entry ran, which degrades it (and is said at WARN, with
/// the CRD's name); the next event delivered (a relist's start included) clears that.
fn watch_health(live: &Live, item: &Result<Event<DynamicObject>, watcher::Error>) {
    match item {
        Ok(_) => {
            if live.health.watch_back() {
                tracing::info!(entry = %live.entry.name, gvk = %live.entry.gvk(), "the CR watch delivers again");
            }
        }
        Err(
            watcher::Error::InitialListFailed(kube::Error::Api(s))
            | watcher::Error::WatchFailed(kube::Error::Api(s))
            | watcher::Error::WatchStartFailed(kube::Error::Api(s)),
        ) if s.code == 404 => {
            let why = not_installed_message(live);
            tracing::warn!(entry = %live.entry.name, gvk = %live.entry.gvk(), "the CR watch fails: {why}");
            live.health.watch_lost(why);
        }
        Err(e) => {
            tracing::warn!(entry = %live.entry.name, gvk = %live.entry.gvk(), error = %e, "the CR watch failed; retrying")
        }
    }
}

/// The CR cache and the gated trigger stream over it.
fn cr_triggers(
    client: &Client,
    resource: &ApiResource,
    live: &Arc<Live>,
) -> (
    reflector::Store<DynamicObject>,
    impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static,
) {
    let namespaces = watched_namespaces(live);
    if namespaces.iter().any(Option::is_some) {
        tracing::info!(entry = %live.entry.name, namespaces = ?namespaces.iter().flatten().collect::<Vec<_>>(),
            "watching only the allowed namespaces");
    }
    let watches = namespaces.into_iter().map(|ns| {
        let api = match &ns {
            Some(n) => Api::<DynamicObject>::namespaced_with(client.clone(), n, resource),
            None => Api::<DynamicObject>::all_with(client.clone(), resource),
        };
        watcher(api, cr_watch_config(&live.entry))
            .default_backoff()
            .modify(strip)
            .map(move |ev| (ns.clone(), ev))
            .boxed()
    });
    let mut writer = Writer::<DynamicObject>::new(resource.clone());
    // The merged cache never sees one watch's InitDone as a whole list; mark it ready once.
    writer.apply_watcher_event(&Event::Init);
    writer.apply_watcher_event(&Event::InitDone);
    let store = writer.as_reader();
    let mut merger = Merger {
        writer,
        listing: HashMap::new(),
        significant: Filter::crs(),
    };
    let reader = store.clone();
    let gate_live = Arc::clone(live);
    let dyntype = resource.clone();
    let health_live = Arc::clone(live);
    let triggers = stream::select_all(watches)
        .inspect(move |(_, ev)| watch_health(&health_live, ev))
        .flat_map(move |(ns, ev)| stream::iter(merger.apply(ns, ev)))
        .then(move |item| {
            let (live, reader, dyntype) = (Arc::clone(&gate_live), reader.clone(), dyntype.clone());
            async move {
                if let Ok(obj) = &item {
                    let key = key_of(obj);
                    let cached = |k: &str| {
                        let r = match k.split_once('/') {
                            Some((ns, name)) => CacheKey::new_with(name, dyntype.clone()).within(ns),
                            None => CacheKey::new_with(k, dyntype.clone()),
                        };
                        reader.get(&r).is_some()
                    };
                    live.gate.admit(&key, cached).await;
                }
                item
            }
        });
    (store, triggers)
}

/// Applies several watches' events to one cache: a relist (Init … InitDone) of one namespace
/// removes only that namespace's objects that the list no longer holds. Every event updates the
/// cache; only the [significant](super::significance) ones go on to trigger a pass.
struct Merger {
    writer: Writer<DynamicObject>,
    /// Keys seen during each namespace's relist in progress.
    listing: HashMap<Option<String>, BTreeSet<String>>,
    significant: Filter,
}

impl Merger {
    fn apply(
        &mut self,
        ns: Option<String>,
        event: Result<Event<DynamicObject>, watcher::Error>,
    ) -> Vec<Result<DynamicObject, watcher::Error>> {
        let event = match event {
            Ok(e) => e,
            Err(e) => return vec![Err(e)],
        };
        match event {
            Event::Init => {
                self.listing.insert(ns, BTreeSet::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                self.listing.entry(ns).or_default().insert(key_of(&obj));
                self.writer.apply_watcher_event(&Event::Apply(obj.clone()));
                self.trigger(obj)
            }
            Event::InitDone => {
                let seen = self.listing.remove(&ns).unwrap_or_default();
                let stale: Vec<DynamicObject> = self
                    .writer
                    .as_reader()
                    .state()
                    .into_iter()
                    .filter(|o| ns.is_none() || o.namespace() == ns)
                    .filter(|o| !seen.contains(&key_of(o)))
                    .map(|o| o.as_ref().clone())
                    .collect();
                for obj in stale {
                    self.significant.deleted(&obj);
                    self.writer.apply_watcher_event(&Event::Delete(obj));
                }
                Vec::new()
            }
            Event::Apply(obj) => {
                self.writer.apply_watcher_event(&Event::Apply(obj.clone()));
                self.trigger(obj)
            }
            Event::Delete(obj) => {
                self.significant.deleted(&obj);
                self.writer.apply_watcher_event(&Event::Delete(obj));
                Vec::new()
            }
        }
    }

    /// `obj` as a trigger, if it changed in a way worth a pass.
    fn trigger(&mut self, obj: DynamicObject) -> Vec<Result<DynamicObject, watcher::Error>> {
        if self.significant.applied(&obj) {
            vec![Ok(obj)]
        } else {
            Vec::new()
        }
    }
}
