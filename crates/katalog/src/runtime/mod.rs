//! `katalog run`: the runtime that reconciles a Katalog's CRs against a cluster.
//!
//! One kube-runtime `Controller` per enabled CRD entry ([`controller`]), over `DynamicObject`s
//! of the entry's GVK, with the entry's `workers` as its concurrency and its `resync` as the
//! requeue after a successful pass. Unlike Orkestra (§4.1: children unwatched, drift found at
//! the next resync), each controller also watches the child kinds its entry renders, filtered
//! by the managed label, through reflectors: a change to a child wakes its owner at once, and
//! the same caches let a pass skip an apply that would change nothing and answer template
//! lookups.
//!
//! Around the controllers: the [`config`] from the environment, per-entry [`health`],
//! [`metrics`], the queue depth [`gate`], the HTTP API ([`http`]) over the read-only
//! [`State`] handle, and [`leader`] election. An entry whose CRD is not installed waits for it
//! (reported `not started`) while the others run; an invalid Katalog stops `run` before
//! anything is written.

pub mod cache;
pub mod clock;
pub mod config;
pub mod controller;
pub mod diff;
pub mod events;
pub mod gate;
pub mod health;
pub mod http;
pub mod kinds;
pub mod leader;
pub mod live;
pub mod metrics;
pub mod reconcile;
pub mod significance;
pub mod state;
pub mod status;
pub mod views;

use std::{future::Future, pin::Pin, sync::Arc};

use futures::{FutureExt as _, future::Shared};
use kube::Client;
pub use reconcile::Stats;
pub use state::State;

use self::{
    config::Config,
    controller::Shared as ControllerShared,
    live::Live,
    metrics::Metrics,
    state::{KatalogDoc, Role, redact_secrets},
};
use crate::{load, template::Engine};

/// The runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {errors} error(s) in the Katalog; run `katalog check {path}` for the list")]
    Katalog { path: String, errors: usize },
    #[error("no enabled CRD entry to run in {paths}")]
    NoEntries { paths: String },
    #[error("CRD entry {name:?} is defined in both {first} and {second}")]
    DuplicateEntry {
        name: String,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Http(#[from] http::Error),
}

type Shutdown = Shared<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// A loaded runtime with its HTTP API bound, not yet reconciling: [`Started::state`] gives the
/// handle (and the bound address) before [`Started::run`] takes over.
pub struct Started {
    state: State,
    config: Config,
    shared: ControllerShared,
    katalog_name: String,
    serve: Pin<Box<dyn Future<Output = Result<(), http::Error>> + Send>>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("state", &self.state)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Loads and checks every Katalog of `config` without a cluster: what [`start`] does first.
/// `katalog run` calls it before it builds a client, so a broken Katalog is reported even
/// where no cluster is reachable.
///
/// # Errors
/// As [`start`], except the HTTP port.
pub fn check(config: &Config) -> Result<(), Error> {
    load_all(config).map(|_| ())
}

type LoadedAll = (Vec<KatalogDoc>, Vec<Arc<Live>>);

fn load_all(config: &Config) -> Result<LoadedAll, Error> {
    let engine = Engine::default();
    let mut docs = Vec::new();
    let mut lives: Vec<Arc<Live>> = Vec::new();
    for (index, file) in config.katalogs.iter().enumerate() {
        let path = file.display().to_string();
        let loaded = load::load(file, &engine);
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
        let meta = loaded
            .katalog
            .as_ref()
            .map(|k| k.metadata.clone())
            .unwrap_or_default();
        let mut raw = load::read_yaml(file).unwrap_or_default();
        redact_secrets(&mut raw);
        docs.push(KatalogDoc {
            name: meta
                .name
                .clone()
                .unwrap_or_else(|| load::DEFAULT_CLUSTER_NAME.to_owned()),
            version: meta.version.map(|v| v.0).unwrap_or_default(),
            author: meta.author.unwrap_or_default(),
            description: meta.description.unwrap_or_default(),
            license: meta.license.unwrap_or_default(),
            raw,
        });
        for entry in loaded.entries.into_iter().filter(|e| e.enabled) {
            if let Some(other) = lives.iter().find(|l| l.entry.name == entry.name) {
                return Err(Error::DuplicateEntry {
                    name: entry.name,
                    first: config.katalogs[other.katalog].display().to_string(),
                    second: path,
                });
            }
            let (entry, sources) = config.apply_defaults(entry);
            let mut live = Live::new(entry, sources, index);
            live.watch_allowed_only = config.watch_allowed_only;
            lives.push(Arc::new(live));
        }
    }
    if lives.is_empty() {
        let paths: Vec<String> = config.katalogs.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::NoEntries {
            paths: paths.join(", "),
        });
    }
    Ok((docs, lives))
}

/// Loads every Katalog of `config`, binds the HTTP API and returns the runtime ready to run.
/// `client`'s requests are counted in `katalog_api_requests_total` from here on.
///
/// # Errors
/// A Katalog with errors (the same messages as `katalog check`, logged), no enabled entry, an
/// entry name used twice, or the HTTP port taken; all before anything is written.
pub async fn start(client: Client, config: Config, stats: Arc<Stats>) -> Result<Started, Error> {
    let (docs, lives) = load_all(&config)?;
    let metrics = Arc::new(Metrics::new());
    let client = leader::counted(client, Arc::clone(&metrics));
    let katalog_name = docs.first().map(|d| d.name.clone()).unwrap_or_default();
    let lease = config
        .leader_election
        .map(|_| format!("{}/{}", config.namespace, leader::lease_name(&katalog_name)));
    let state = State::new(
        client.clone(),
        docs,
        lives,
        Arc::clone(&metrics),
        Arc::clone(&config.clock),
        config.identity.clone(),
        lease,
    );
    metrics.set_leader(config.leader_election.is_none());
    let (addr, serve) = http::bind(config.listen, state.clone()).await?;
    state.set_http_addr(addr);
    tracing::info!(%addr, "HTTP API listening");
    let shared = ControllerShared {
        client,
        metrics,
        stats,
        clock: Arc::clone(&config.clock),
        discovery_retry: config.discovery_retry,
    };
    Ok(Started {
        state,
        config,
        shared,
        katalog_name,
        serve: Box::pin(serve),
    })
}

impl Started {
    /// The read-only handle.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Serves HTTP and reconciles (as the leader, when leader election is on) until `shutdown`.
    ///
    /// # Errors
    /// The HTTP server failing.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let boxed: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(shutdown);
        let shutdown = boxed.shared();
        let Self {
            state,
            config,
            shared,
            katalog_name,
            serve,
        } = self;
        // Aborted with this future too: a runtime task that is aborted must not leave its
        // HTTP API answering.
        let mut http = AbortOnDrop(tokio::spawn(serve));
        let work = async {
            match config.leader_election {
                Some(timings) => {
                    leader::lead(
                        &state,
                        &shared,
                        leader::Lease {
                            namespace: config.namespace.clone(),
                            name: leader::lease_name(&katalog_name),
                            identity: config.identity.clone(),
                            timings,
                        },
                        shutdown.clone(),
                    )
                    .await;
                }
                None => {
                    state.set_role(Role::Disabled);
                    let entries = run_entries(&state, &shared, shutdown.clone());
                    state.set_ready();
                    entries.await;
                }
            }
        };
        tokio::select! {
            () = work => Ok(()),
            r = &mut http.0 => match r {
                Ok(Err(e)) => Err(Error::Http(e)),
                _ => Ok(()),
            },
        }
    }
}

/// A task aborted when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Loads `config`'s Katalogs and runs until `shutdown` completes.
///
/// # Errors
/// See [`start`] and [`Started::run`].
pub async fn run(
    client: Client,
    config: Config,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    start(client, config, stats).await?.run(shutdown).await
}

/// Every entry's controller, each in its own task so a slow or failing entry never holds up
/// another; completes when all stopped.
fn run_entries(
    state: &State,
    shared: &ControllerShared,
    shutdown: Shutdown,
) -> impl Future<Output = ()> + use<> {
    let mut tasks = tokio::task::JoinSet::new();
    for live in state.entries() {
        tasks.spawn(controller::run_entry(
            Arc::clone(live),
            shared.clone(),
            shutdown.clone(),
        ));
    }
    let entries: Vec<Arc<Live>> = state.entries().to_vec();
    async move {
        let _ = tasks.join_all().await;
        for l in entries {
            l.set_caches(None);
            l.health.stop(None);
        }
    }
}
