//! What the runtime knows about one entry while it runs: the entry with its defaults, its
//! health, its queue gate, its worker counts, and — once its controller started — the CR cache
//! and the child caches. Shared by the controller (which writes it) and [`super::State`] (which
//! reads it).

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicU32, Ordering},
};

use kube::{
    api::{ApiResource, DynamicObject},
    runtime::reflector::Store,
};

use super::{cache::CacheView, config::Sources, gate::Gate, health::Health, metrics::Metrics};
use crate::load::Entry;

/// The caches of a running controller.
#[derive(Clone)]
pub struct Caches {
    pub resource: ApiResource,
    pub crs: Store<DynamicObject>,
    pub children: Arc<CacheView>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("resource", &self.resource)
            .field("crs", &self.crs.state().len())
            .field("children", &self.children)
            .finish()
    }
}

/// One entry at run time.
pub struct Live {
    pub entry: Entry,
    pub sources: Sources,
    /// Index of the Katalog file the entry came from.
    pub katalog: usize,
    pub health: Health,
    pub gate: Gate,
    /// Watch only plain `allowedNamespaces` ([`Config::watch_allowed_only`](super::config::Config::watch_allowed_only)).
    pub watch_allowed_only: bool,
    processing: AtomicU32,
    caches: RwLock<Option<Caches>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("entry", &self.entry.name)
            .field("gvk", &self.entry.gvk())
            .finish_non_exhaustive()
    }
}

impl Live {
    /// A not-started entry.
    pub fn new(entry: Entry, sources: Sources, katalog: usize) -> Self {
        Self {
            health: Health::new(entry.failure_threshold.value),
            gate: Gate::new(entry.max_queue_depth.value),
            watch_allowed_only: false,
            processing: AtomicU32::new(0),
            caches: RwLock::new(None),
            entry,
            sources,
            katalog,
        }
    }

    /// The caches, while the controller runs.
    pub fn caches(&self) -> Option<Caches> {
        self.caches
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets or clears the caches when the controller starts or stops.
    pub fn set_caches(&self, caches: Option<Caches>) {
        *self
            .caches
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = caches;
    }

    /// CRs in the cache (0 when not running).
    pub fn resource_count(&self) -> usize {
        self.caches().map_or(0, |c| c.crs.len())
    }

    /// Workers in a pass now.
    pub fn processing(&self) -> u32 {
        self.processing.load(Ordering::Relaxed)
    }

    /// The entry's worker count.
    pub fn workers(&self) -> u32 {
        self.entry.workers.value.max(1)
    }

    /// Marks one worker busy until the returned guard drops.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.processing.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }

    /// Writes the entry's gauges.
    pub fn publish_gauges(&self, metrics: &Metrics) {
        let running = self.caches().is_some();
        metrics.gauges(
            &self.entry.gvk(),
            self.gate.depth(),
            self.resource_count(),
            if running { self.workers() } else { 0 },
            self.processing(),
        );
    }
}

/// One busy worker; idle again on drop.
#[derive(Debug)]
pub struct Busy(Arc<Live>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.processing.fetch_sub(1, Ordering::Relaxed);
    }
}
