//! `katalog run`: the runtime that reconciles a Katalog's CRs against a cluster.
//!
//! One kube-runtime `Controller` per enabled CRD entry, over `DynamicObject`s of the entry's
//! GVK, with the entry's `workers` as its concurrency and its `resync` as the requeue after a
//! successful pass. Unlike Orkestra (§4.1: children unwatched, drift found at the next
//! resync), each controller also watches the child kinds its entry renders, filtered by the
//! managed label, through reflectors: a change to a child wakes its owner at once, and the
//! same caches let a pass skip an apply that would change nothing and answer template lookups.
//!
//! Not here yet: `ORKESTRA_NAMESPACE` and watching only `allowedNamespaces` (the watches are
//! cluster-wide; a CR outside them is skipped in the pass), queue depth limits, leader
//! election, metrics, health and the HTTP API.

pub mod cache;
pub mod diff;
pub mod events;
pub mod kinds;
pub mod reconcile;
pub mod status;

use std::{future::Future, path::Path, pin::Pin, sync::Arc};

use futures::{FutureExt as _, StreamExt as _, future::Shared};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
    core::GroupVersionKind,
    runtime::{
        Controller, WatchStreamExt as _,
        controller::Config,
        reflector::{self, store::Writer},
        watcher,
    },
};
pub use reconcile::Stats;

use self::{cache::CacheView, reconcile::Context};
use crate::{
    load::{self, Entry},
    render::MANAGED_LABEL,
    template::Engine,
};

/// The runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {errors} error(s) in the Katalog; run `katalog check {path}` for the list")]
    Katalog { path: String, errors: usize },
    #[error("{path}: no enabled CRD entry to run")]
    NoEntries { path: String },
    #[error("{gvk} is not served by the API server (is its CRD installed?): {source}")]
    NotServed {
        gvk: String,
        #[source]
        source: kube::Error,
    },
}

type Shutdown = Shared<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// Loads `katalog` and runs a controller per enabled entry until `shutdown` completes.
///
/// # Errors
/// A Katalog with errors, or an entry whose GVK the API server does not serve; both before any
/// controller starts, so a half-started runtime never runs.
pub async fn run(
    client: Client,
    katalog: &Path,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let path = katalog.display().to_string();
    let loaded = load::load(katalog, &Engine::default());
    for p in &loaded.problems {
        if p.is_error() {
            tracing::error!("{p}");
        } else {
            tracing::warn!("{p}");
        }
    }
    if loaded.has_errors() {
        let errors = loaded.problems.iter().filter(|p| p.is_error()).count();
        return Err(Error::Katalog { path, errors });
    }
    let entries: Vec<Entry> = loaded.entries.into_iter().filter(|e| e.enabled).collect();
    if entries.is_empty() {
        return Err(Error::NoEntries { path });
    }
    let mut served = Vec::new();
    for entry in entries {
        let gvk = GroupVersionKind::gvk(&entry.group, &entry.version, &entry.kind);
        let (resource, _) = kube::discovery::pinned_kind(&client, &gvk)
            .await
            .map_err(|source| Error::NotServed {
                gvk: entry.gvk(),
                source,
            })?;
        served.push((entry, resource));
    }
    let boxed: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shutdown);
    let shutdown = boxed.shared();
    let controllers = served.into_iter().map(|(entry, resource)| {
        tracing::info!(entry = %entry.name, gvk = %entry.gvk(), workers = entry.workers.value,
            resync = ?entry.resync.value, "starting controller");
        controller(
            client.clone(),
            entry,
            resource,
            Arc::clone(&stats),
            shutdown.clone(),
        )
    });
    futures::future::join_all(controllers).await;
    Ok(())
}

/// One entry's controller, with a reflector per child kind feeding both its triggers and the
/// cache its templates and skip checks read.
async fn controller(
    client: Client,
    entry: Entry,
    resource: ApiResource,
    stats: Arc<Stats>,
    shutdown: Shutdown,
) {
    let mut view = CacheView::default();
    let mut children = Vec::new();
    for kind in kinds::used_by(&entry) {
        let writer = Writer::<DynamicObject>::new(kind.resource.clone());
        view.insert(kind.resource.clone(), writer.as_reader());
        let api = Api::<DynamicObject>::all_with(client.clone(), &kind.resource);
        let config = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
        let stream = reflector::reflector(writer, watcher(api, config).default_backoff()).touched_objects();
        children.push((kind.resource, stream));
    }
    // u16 is the controller's limit; Katalogs ask for a handful.
    let workers = u16::try_from(entry.workers.value.max(1)).unwrap_or(u16::MAX);
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    let ctx = Arc::new(Context::new(
        client,
        entry,
        resource.clone(),
        Arc::new(view),
        stats,
    ));
    let mut controller = Controller::new_with(api, watcher::Config::default(), resource)
        .with_config(Config::default().concurrency(workers));
    for (child, stream) in children {
        controller = controller.owns_stream_with(stream, child);
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("controller: {e}");
            }
        })
        .await;
}
