//! `bench katalog`: the Katalog runtime (`katalog run`, release build, its own process) with the
//! example data-platform Katalog on a rule-mode testbed, against a bare kube-rs client that
//! server-side applies the same children. Five figures, printed side by side, none asserted:
//! time until every child of N DataJobs exists, API writes over three quiet resyncs, drift-repair
//! latency, RSS, and CPU per 1,000 reconciles.
//!
//! Every time comes from this process's own watches, started before anything is created, with
//! [`Instant`] (a monotonic clock read to the microsecond). The runtime runs first, in its own
//! namespace, and is killed before the baseline runs in another: the runtime watches DataJobs
//! cluster-wide and would otherwise reconcile the baseline's too.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        core::v1::{ConfigMap, Event},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    runtime::{
        WatchStreamExt as _,
        wait::{await_condition, conditions},
        watcher,
    },
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{
    katalog_process::{KatalogOptions, KatalogProcess},
    omjob::{AbortOnDrop, create_namespace},
    operator_process::{self, Memory},
};
use crate::{step, workspace_root};

/// Namespace of the runtime's DataJobs.
const RUNTIME_NAMESPACE: &str = "bench-katalog";
/// Namespace of the bare client's DataJobs.
const BASELINE_NAMESPACE: &str = "bench-baseline";
/// `DEFAULT_RESYNC` of the runtime: short, so that three periods fit in a quick window.
const RESYNC_SECONDS: u64 = 5;
/// DataJob creates in flight, for the runtime's and the baseline's burst alike.
const CREATE_IN_FLIGHT: usize = 32;
/// Field manager of the bare client's applies.
const BASELINE_MANAGER: &str = "katalog-bench-baseline";
/// Field manager of the bench's drift edits.
const DRIFT_MANAGER: &str = "katalog-bench-drift";
/// The image a drift edit puts on a ReplicaSet.
const DRIFT_IMAGE: &str = "drifted.example/worker:edited";
/// The DataJob entry of the example Katalog.
const ENTRY: &str = "data-job";

/// Options of `bench katalog`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// DataJobs created at once (for the runtime, and again for the bare client).
    #[arg(long, default_value_t = 1000)]
    pub crs: usize,
    /// `spec.parallelism` of each DataJob, the replicas of its ReplicaSet. 0 by default, so the
    /// figures measure the runtime and not the ReplicaSet controller and the simulated node.
    #[arg(long, default_value_t = 0)]
    pub parallelism: u32,
    /// `DEFAULT_WORKERS` of the runtime, and the bare client's concurrency.
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// `MAX_QUEUE_DEPTH` of the runtime (its default when left out).
    #[arg(long)]
    pub max_queue_depth: Option<usize>,
    /// Drift edits (replicas, image, ConfigMap deleted, in turn).
    #[arg(long, default_value_t = 100)]
    pub edits: usize,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.crs > 0, "--crs must be at least 1");
    let root = workspace_root()?;
    let katalog_file = root.join("examples/katalog/data-platform.yaml");
    let entry = load_entry(&katalog_file)?;

    step("Starting a rule-mode testbed with 1 node");
    let testbed = crate::bench::rule_testbed("katalog-bench-", 1).await?;
    let client = testbed.control_plane().client().await?;
    let datajobs = install_crd(&client, &root.join("examples/katalog/datajob-crd.yaml")).await?;
    for ns in [RUNTIME_NAMESPACE, BASELINE_NAMESPACE] {
        create_namespace(&client, ns).await?;
    }
    let names: Vec<String> = (0..args.crs).map(|i| format!("dj-{i}")).collect();
    let mut report = Report::default();

    // --- The runtime ---
    let tracker = Tracker::start(&client, RUNTIME_NAMESPACE, &datajobs).await?;
    let mut env = vec![
        ("DEFAULT_RESYNC".to_owned(), RESYNC_SECONDS.to_string()),
        ("DEFAULT_WORKERS".to_owned(), args.workers.to_string()),
    ];
    if let Some(depth) = args.max_queue_depth {
        env.push(("MAX_QUEUE_DEPTH".to_owned(), depth.to_string()));
    }
    let opts = KatalogOptions {
        katalog: katalog_file,
        env,
        log_level: "warn".to_owned(),
        log_file: testbed.dir().join("katalog.log"),
        release: true,
    };
    let runtime = KatalogProcess::start(&testbed, &opts).await?;
    step("Runtime ready; letting it settle for 5 s before the idle figure");
    tokio::time::sleep(Duration::from_secs(5)).await;
    report.idle = Some(runtime.memory()?);
    let scrape = Scrape::take(&runtime).await;
    report.metrics_found = scrape.found;
    let cpu = runtime.cpu_seconds()?;

    step(&format!(
        "Runtime: {} DataJobs created at once ({CREATE_IN_FLIGHT} in flight); waiting for every ConfigMap and ReplicaSet",
        args.crs
    ));
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), RUNTIME_NAMESPACE, &datajobs);
    let start = Instant::now();
    create_datajobs(&api, &datajobs, &names, args.parallelism, None).await?;
    let created = start.elapsed();
    let last = tracker.wait_children(&names, limit_for(args.crs)).await?;
    report.runtime_burst = Some(Burst {
        created,
        children: last.saturating_duration_since(start),
    });
    let settled = tracker
        .wait_quiet(Duration::from_secs(3), limit_for(args.crs))
        .await;
    let burst_scrape = Scrape::take(&runtime).await;
    report.burst_cpu = Some(Cpu {
        seconds: runtime.cpu_seconds()? - cpu,
        reconciles: burst_scrape.reconciles - scrape.reconciles,
    });
    if !settled {
        eprintln!("    (the watches did not go quiet within the limit; measuring anyway)");
    }

    step(&format!(
        "Runtime: three resync periods ({} s, DEFAULT_RESYNC={RESYNC_SECONDS}) with nothing drifted",
        3 * RESYNC_SECONDS
    ));
    let cpu = runtime.cpu_seconds()?;
    let before = Scrape::take(&runtime).await;
    let changes_before = tracker.changes();
    tokio::time::sleep(Duration::from_secs(3 * RESYNC_SECONDS)).await;
    let after = Scrape::take(&runtime).await;
    report.quiet = Some(Quiet {
        metric: after
            .found
            .then(|| diff_writes(&before.requests, &after.requests)),
        seen: tracker.changes_since(changes_before),
    });
    report.steady_cpu = Some(Cpu {
        seconds: runtime.cpu_seconds()? - cpu,
        reconciles: after.reconciles - before.reconciles,
    });
    report.loaded = Some(runtime.memory()?);

    step(&format!(
        "Runtime: {} drift edits, one at a time (replicas, image, ConfigMap deleted, in turn)",
        args.edits
    ));
    report.drift = drift(&client, &tracker, &names, args).await?;
    report.after_drift = Some(runtime.memory()?);
    drop(runtime);
    drop(tracker);

    // --- The bare client ---
    step(&format!(
        "Bare client: {} DataJobs created at once in {BASELINE_NAMESPACE}; {} workers server-side apply their children",
        args.crs, args.workers
    ));
    let tracker = Tracker::start(&client, BASELINE_NAMESPACE, &datajobs).await?;
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), BASELINE_NAMESPACE, &datajobs);
    let start = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let creates = async {
        let out = create_datajobs(&api, &datajobs, &names, args.parallelism, Some(tx)).await;
        (out, start.elapsed())
    };
    let applies = apply_children(&client, &entry, &datajobs, rx, args.workers);
    let ((created, created_in), applied) = tokio::join!(creates, applies);
    created?;
    applied?;
    let last = tracker.wait_children(&names, limit_for(args.crs)).await?;
    report.baseline_burst = Some(Burst {
        created: created_in,
        children: last.saturating_duration_since(start),
    });
    drop(tracker);

    report.print(args);
    eprintln!(
        "\nNote: the testbed, the runtime and this bench share the machine's cores with whatever \
         else runs; figures are noisy. Runtime log: {}",
        opts.log_file.display()
    );
    drop(testbed);
    Ok(())
}

/// The example Katalog's `data-job` entry, as the runtime loads it.
fn load_entry(file: &std::path::Path) -> anyhow::Result<katalog::load::Entry> {
    let loaded = katalog::load::load(file, &katalog::template::Engine::default());
    if loaded.has_errors() {
        let problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        bail!("{} has errors:\n{}", file.display(), problems.join("\n"));
    }
    loaded
        .entries
        .into_iter()
        .find(|e| e.name == ENTRY)
        .with_context(|| format!("{} has no entry {ENTRY:?}", file.display()))
}

/// Applies the DataJob CRD from `file`, waits until it is established, and returns its resource.
async fn install_crd(client: &Client, file: &std::path::Path) -> anyhow::Result<ApiResource> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let crd: CustomResourceDefinition =
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let name = crd.metadata.name.clone().context("the DataJob CRD has no name")?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        &name,
        &PatchParams::apply("katalog-bench").force(),
        &Patch::Apply(&crd),
    )
    .await
    .with_context(|| format!("applying CRD {name}"))?;
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .with_context(|| format!("CRD {name} not established within 60 s"))?
    .with_context(|| format!("watching CRD {name}"))?;
    let version = crd
        .spec
        .versions
        .first()
        .map(|v| v.name.clone())
        .context("the DataJob CRD has no version")?;
    let gvk = GroupVersionKind::gvk(&crd.spec.group, &version, &crd.spec.names.kind);
    Ok(ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural))
}

/// A DataJob like `examples/katalog/datajob-sample.yaml`, with `parallelism` workers.
fn datajob(resource: &ApiResource, name: &str, parallelism: u32) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": resource.api_version, "kind": resource.kind,
        "metadata": {"name": name},
        "spec": {"image": "python:3.12-slim", "parallelism": parallelism.to_string(), "timeout": "2h"}
    }))?)
}

/// Creates one DataJob per name, [`CREATE_IN_FLIGHT`] at once, retrying what the API server
/// sheds; sends each created object to `created` when given.
async fn create_datajobs(
    api: &Api<DynamicObject>,
    resource: &ApiResource,
    names: &[String],
    parallelism: u32,
    created: Option<tokio::sync::mpsc::UnboundedSender<DynamicObject>>,
) -> anyhow::Result<()> {
    let created = &created;
    futures::stream::iter(names)
        .map(|name| async move {
            let obj = datajob(resource, name, parallelism)?;
            let mut attempt = 0;
            let made = loop {
                attempt += 1;
                match api.create(&PostParams::default(), &obj).await {
                    Ok(made) => break made,
                    Err(e) if attempt < 5 => {
                        eprintln!("create {name} failed (attempt {attempt}, retrying): {e}");
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                    Err(e) => return Err(e).with_context(|| format!("creating DataJob {name}")),
                }
            };
            if let Some(tx) = created {
                // The receiver only goes away when the appliers failed; that error is reported.
                let _ = tx.send(made);
            }
            anyhow::Ok(())
        })
        .buffer_unordered(CREATE_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The bare client: `workers` tasks take created DataJobs off `created`, render their children
/// with the runtime's own renderer, and server-side apply each one, as the runtime's workers do,
/// without its labels, finalizers, status or events.
async fn apply_children(
    client: &Client,
    entry: &katalog::load::Entry,
    datajobs: &ApiResource,
    created: tokio::sync::mpsc::UnboundedReceiver<DynamicObject>,
    workers: usize,
) -> anyhow::Result<()> {
    let engine = katalog::template::Engine::default();
    let configmaps = ApiResource::erase::<ConfigMap>(&());
    let replicasets = ApiResource::erase::<ReplicaSet>(&());
    let stream = futures::stream::unfold(created, |mut rx| async move { rx.recv().await.map(|o| (o, rx)) });
    stream
        .map(|obj| {
            let (engine, configmaps, replicasets) = (&engine, &configmaps, &replicasets);
            async move {
                let mut cr = serde_json::to_value(&obj)?;
                if let Some(map) = cr.as_object_mut() {
                    map.insert("apiVersion".into(), json!(datajobs.api_version));
                    map.insert("kind".into(), json!(datajobs.kind));
                }
                let rendered = katalog::render::render(entry, &cr, engine, &katalog::cluster::Absent)
                    .context("rendering a DataJob's children")?;
                for child in &rendered.children {
                    let object = &child.object;
                    let resource = match object["kind"].as_str() {
                        Some("ConfigMap") => configmaps,
                        Some("ReplicaSet") => replicasets,
                        other => bail!("the bare client does not handle child kind {other:?}"),
                    };
                    let name = object["metadata"]["name"].as_str().unwrap_or_default();
                    let ns = object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or(BASELINE_NAMESPACE);
                    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, resource);
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        match api
                            .patch(
                                name,
                                &PatchParams::apply(BASELINE_MANAGER).force(),
                                &Patch::Apply(object),
                            )
                            .await
                        {
                            Ok(_) => break,
                            Err(e) if attempt < 5 => {
                                eprintln!("apply {name} failed (attempt {attempt}, retrying): {e}");
                                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                            }
                            Err(e) => return Err(e).with_context(|| format!("applying {name}")),
                        }
                    }
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(workers.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// How long to wait for `n` DataJobs' children: generous, as this measures and does not judge.
fn limit_for(n: usize) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(200) * u32::try_from(n).unwrap_or(u32::MAX)
}

/// The kinds the bench watches in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    DataJob,
    ConfigMap,
    ReplicaSet,
    Event,
}

/// One watch event, as the drift loop reads it.
#[derive(Debug, Clone)]
struct Sighting {
    at: Instant,
    kind: Kind,
    name: String,
    uid: String,
    resource_version: String,
    deleted: bool,
    /// A ReplicaSet's `spec.replicas`.
    replicas: Option<i64>,
    /// A ReplicaSet's first container image.
    image: Option<String>,
}

/// What the watches have seen so far.
#[derive(Debug, Default)]
struct Seen {
    /// First sighting per object.
    first: HashMap<(Kind, String), Instant>,
    /// Last resourceVersion per object, to tell a write from a re-list.
    versions: HashMap<(Kind, String), String>,
    /// Writes seen after the initial lists: a new resourceVersion, a new object or a delete.
    changes: BTreeMap<Kind, u64>,
    /// When the last of them was seen.
    last_change: Option<Instant>,
}

/// Watches of one namespace's DataJobs, managed ConfigMaps and ReplicaSets, and Events.
struct Tracker {
    seen: Arc<Mutex<Seen>>,
    sightings: broadcast::Sender<Sighting>,
    _tasks: AbortOnDrop,
}

impl Tracker {
    async fn start(client: &Client, namespace: &str, datajobs: &ApiResource) -> anyhow::Result<Self> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (sightings, _) = broadcast::channel(16_384);
        let managed = format!("{}=true", katalog::render::MANAGED_LABEL);
        let watches = [
            (Kind::DataJob, datajobs.clone(), None),
            (
                Kind::ConfigMap,
                ApiResource::erase::<ConfigMap>(&()),
                Some(managed.clone()),
            ),
            (
                Kind::ReplicaSet,
                ApiResource::erase::<ReplicaSet>(&()),
                Some(managed),
            ),
            (Kind::Event, ApiResource::erase::<Event>(&()), None),
        ];
        let mut tasks = Vec::new();
        for (kind, resource, labels) in watches {
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
            let mut config = watcher::Config::default();
            if let Some(l) = &labels {
                config = config.labels(l);
            }
            tasks.push(spawn_watch(api, config, kind, seen.clone(), sightings.clone()).await?);
        }
        Ok(Self {
            seen,
            sightings,
            _tasks: AbortOnDrop(tasks),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until every DataJob of `names` has its ConfigMap and ReplicaSet; returns when the
    /// last of them was first seen.
    async fn wait_children(&self, names: &[String], limit: Duration) -> anyhow::Result<Instant> {
        let begin = Instant::now();
        loop {
            let (have, last) = self.with(|s| {
                let times: Vec<Instant> = names
                    .iter()
                    .flat_map(|n| {
                        [
                            s.first.get(&(Kind::ConfigMap, format!("{n}-job"))),
                            s.first.get(&(Kind::ReplicaSet, format!("{n}-worker"))),
                        ]
                    })
                    .flatten()
                    .copied()
                    .collect();
                (times.len(), times.into_iter().max())
            });
            if have == 2 * names.len() {
                return last.context("no children seen");
            }
            if begin.elapsed() > limit {
                bail!("only {have} of {} children seen after {limit:?}", 2 * names.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until nothing changed for `quiet`; false when that did not happen within `limit`.
    async fn wait_quiet(&self, quiet: Duration, limit: Duration) -> bool {
        let begin = Instant::now();
        while begin.elapsed() < limit {
            let last = self.with(|s| s.last_change);
            if last.is_none_or(|t| t.elapsed() >= quiet) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    fn changes(&self) -> BTreeMap<Kind, u64> {
        self.with(|s| s.changes.clone())
    }

    fn changes_since(&self, before: BTreeMap<Kind, u64>) -> BTreeMap<Kind, u64> {
        self.changes()
            .into_iter()
            .map(|(k, n)| (k, n - before.get(&k).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Follows `api`, recording into `seen` and broadcasting every event; returns once the initial
/// list is done.
async fn spawn_watch(
    api: Api<DynamicObject>,
    config: watcher::Config,
    kind: Kind,
    seen: Arc<Mutex<Seen>>,
    sightings: broadcast::Sender<Sighting>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut listed = false;
        let stream = watcher(api, config).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let at = Instant::now();
            let (obj, deleted) = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                Ok(watcher::Event::Delete(o)) => (o, true),
                Ok(watcher::Event::InitDone) => {
                    listed = true;
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                Ok(watcher::Event::Init) => continue,
                Err(e) => {
                    eprintln!("watch error (retrying): {e}");
                    continue;
                }
            };
            let sighting = Sighting {
                at,
                kind,
                name: obj.metadata.name.clone().unwrap_or_default(),
                uid: obj.metadata.uid.clone().unwrap_or_default(),
                resource_version: obj.metadata.resource_version.clone().unwrap_or_default(),
                deleted,
                replicas: obj.data.pointer("/spec/replicas").and_then(Value::as_i64),
                image: obj
                    .data
                    .pointer("/spec/template/spec/containers/0/image")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            {
                let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
                let key = (kind, sighting.name.clone());
                s.first.entry(key.clone()).or_insert(at);
                let previous = if deleted {
                    s.versions.remove(&key)
                } else {
                    s.versions.insert(key, sighting.resource_version.clone())
                };
                let changed = deleted || previous.as_deref() != Some(sighting.resource_version.as_str());
                if listed && changed {
                    *s.changes.entry(kind).or_insert(0) += 1;
                    s.last_change = Some(at);
                }
            }
            // No receiver (no drift edit under way) is fine.
            let _ = sightings.send(sighting);
        }
    });
    tokio::time::timeout(Duration::from_secs(60), ready_rx)
        .await
        .context("a watch did not finish its initial list within 60 s")?
        .context("a watch task ended before its initial list")?;
    Ok(task)
}

/// The drift edits, one at a time, each on its own DataJob's children: the latency from the
/// edit's response to the watch event that shows the child as the Katalog renders it again.
async fn drift(
    client: &Client,
    tracker: &Tracker,
    names: &[String],
    args: &Args,
) -> anyhow::Result<Vec<(Edit, Option<Duration>)>> {
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), RUNTIME_NAMESPACE);
    let replicasets = Api::<ReplicaSet>::namespaced(client.clone(), RUNTIME_NAMESPACE);
    let desired = i64::from(args.parallelism);
    let mut out = Vec::new();
    for i in 0..args.edits {
        let owner = &names[i % names.len()];
        let edit = [Edit::Replicas, Edit::Image, Edit::DeleteConfigMap][i % 3];
        let mut rx = tracker.sightings.subscribe();
        let pp = PatchParams {
            field_manager: Some(DRIFT_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        // What identifies the edit's own watch event, and what the repair must look like.
        let (kind, name, edited_rv, old_uid, edited_at) = match edit {
            Edit::Replicas | Edit::Image => {
                let name = format!("{owner}-worker");
                let patch = if edit == Edit::Replicas {
                    json!({"spec": {"replicas": desired + 2}})
                } else {
                    json!({"spec": {"template": {"spec": {"containers": [{"name": name, "image": DRIFT_IMAGE}]}}}})
                };
                let rs = replicasets
                    .patch(&name, &pp, &Patch::Strategic(patch))
                    .await
                    .with_context(|| format!("editing ReplicaSet {name}"))?;
                let at = Instant::now();
                (
                    Kind::ReplicaSet,
                    name,
                    rs.metadata.resource_version.unwrap_or_default(),
                    String::new(),
                    at,
                )
            }
            Edit::DeleteConfigMap => {
                let name = format!("{owner}-job");
                let cm = configmaps
                    .get(&name)
                    .await
                    .with_context(|| format!("reading ConfigMap {name}"))?;
                configmaps
                    .delete(&name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("deleting ConfigMap {name}"))?;
                let at = Instant::now();
                (
                    Kind::ConfigMap,
                    name,
                    String::new(),
                    cm.metadata.uid.unwrap_or_default(),
                    at,
                )
            }
        };
        let repaired = |s: &Sighting| match edit {
            Edit::Replicas => !s.deleted && s.replicas == Some(desired),
            Edit::Image => !s.deleted && s.image.as_deref().is_some_and(|i| i != DRIFT_IMAGE),
            Edit::DeleteConfigMap => !s.deleted && s.uid != old_uid,
        };
        // The edit's own event comes first on the ordered watch; only what follows it counts.
        let mut edit_seen = false;
        let limit = tokio::time::Instant::now() + Duration::from_secs(3 * RESYNC_SECONDS + 30);
        let latency = loop {
            let s = match tokio::time::timeout_at(limit, rx.recv()).await {
                Err(_) => break None,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => break None,
                Ok(Ok(s)) => s,
            };
            if s.kind != kind || s.name != name {
                continue;
            }
            let is_edit = match edit {
                Edit::Replicas | Edit::Image => s.resource_version == edited_rv,
                Edit::DeleteConfigMap => s.deleted && s.uid == old_uid,
            };
            if is_edit {
                edit_seen = true;
            } else if edit_seen && repaired(&s) {
                break Some(s.at.saturating_duration_since(edited_at));
            }
        };
        if latency.is_none() {
            eprintln!("    {edit:?} of {name}: no repair seen");
        }
        out.push((edit, latency));
    }
    Ok(out)
}

/// One kind of drift edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    /// The ReplicaSet's `spec.replicas` changed.
    Replicas,
    /// The ReplicaSet's container image changed.
    Image,
    /// The onCreate ConfigMap deleted.
    DeleteConfigMap,
}

/// What one scrape of the runtime's `/metrics` says.
#[derive(Debug, Default)]
struct Scrape {
    /// Whether the metrics this bench reads are there at all.
    found: bool,
    /// `controller_reconcile_total`, summed over CRDs and results.
    reconciles: f64,
    /// `katalog_api_requests_total` by (verb, resource).
    requests: BTreeMap<(String, String), f64>,
}

impl Scrape {
    /// Scrapes once; a failed scrape counts as "not found" (the figures then say n/a).
    async fn take(runtime: &KatalogProcess) -> Self {
        let text = match runtime.metrics_text().await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("    scraping /metrics failed: {e:#}");
                return Self::default();
            }
        };
        let reconciles = operator_process::samples(&text, "controller_reconcile_total");
        let requests = operator_process::samples(&text, "katalog_api_requests_total");
        Self {
            found: !reconciles.is_empty() || !requests.is_empty(),
            reconciles: reconciles.iter().map(|s| s.value).sum(),
            requests: requests
                .into_iter()
                .map(|s| {
                    let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                    ((get("verb"), get("resource")), s.value)
                })
                .collect(),
        }
    }
}

/// The write requests (every verb but get, list and watch) that grew between two scrapes.
fn diff_writes(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
) -> BTreeMap<(String, String), f64> {
    operator_process::diff_counters(before, after)
        .into_iter()
        .filter(|((verb, _), _)| !matches!(verb.to_ascii_lowercase().as_str(), "get" | "list" | "watch"))
        .collect()
}

/// One burst: all DataJobs created after `created`, every child seen after `children`.
#[derive(Debug, Clone, Copy)]
struct Burst {
    created: Duration,
    children: Duration,
}

/// Writes over the quiet window: by the runtime's own counter (None: no metric) and as seen
/// from outside (new resourceVersions of CRs and children, new Events).
#[derive(Debug)]
struct Quiet {
    metric: Option<BTreeMap<(String, String), f64>>,
    seen: BTreeMap<Kind, u64>,
}

/// CPU over a phase and the reconciles it did.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    seconds: f64,
    reconciles: f64,
}

impl Cpu {
    fn per_thousand(self) -> Option<f64> {
        (self.reconciles > 0.0).then(|| self.seconds / self.reconciles * 1000.0)
    }
}

#[derive(Debug, Default)]
struct Report {
    metrics_found: bool,
    runtime_burst: Option<Burst>,
    baseline_burst: Option<Burst>,
    quiet: Option<Quiet>,
    drift: Vec<(Edit, Option<Duration>)>,
    idle: Option<Memory>,
    loaded: Option<Memory>,
    after_drift: Option<Memory>,
    burst_cpu: Option<Cpu>,
    steady_cpu: Option<Cpu>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

impl Report {
    #[allow(clippy::too_many_lines)]
    fn print(&self, args: &Args) {
        let n = args.crs;
        let mut rows: Vec<[String; 4]> = Vec::new();
        println!(
            "\n== bench katalog (katalog run: release build, own process; data-platform Katalog; rule-mode testbed) =="
        );
        println!(
            "{n} DataJobs, spec.parallelism {}; DEFAULT_WORKERS={}, DEFAULT_RESYNC={RESYNC_SECONDS}, MAX_QUEUE_DEPTH={}; \
             creates {CREATE_IN_FLIGHT} in flight",
            args.parallelism,
            args.workers,
            args.max_queue_depth
                .map_or_else(|| "(runtime default)".to_owned(), |d| d.to_string()),
        );
        if !self.metrics_found {
            println!(
                "(the runtime's /metrics has neither controller_reconcile_total nor katalog_api_requests_total)"
            );
        }

        println!(
            "\n1. {n} DataJobs created at once -> every ConfigMap and ReplicaSet seen on this bench's watch"
        );
        println!("   {:<34} {:>14} {:>16}", "", "created in s", "children in s");
        for (label, b) in [
            ("runtime (katalog run)", &self.runtime_burst),
            ("bare client (SSA, same workers)", &self.baseline_burst),
        ] {
            if let Some(b) = b {
                println!(
                    "   {label:<34} {:>14.2} {:>16.2}",
                    b.created.as_secs_f64(),
                    b.children.as_secs_f64()
                );
            }
        }
        if let (Some(r), Some(b)) = (&self.runtime_burst, &self.baseline_burst) {
            let ratio = r.children.as_secs_f64() / b.children.as_secs_f64().max(f64::EPSILON);
            println!("   ratio runtime / bare client: {ratio:.2}");
            rows.push([
                format!("{n} DataJobs: every child exists"),
                format!("{:.2} s", r.children.as_secs_f64()),
                format!("{:.2} s (bare client)", b.children.as_secs_f64()),
                format!("{ratio:.2}x"),
            ]);
        }

        println!(
            "\n2. API writes in three resync periods ({} s) with nothing drifted",
            3 * RESYNC_SECONDS
        );
        if let Some(q) = &self.quiet {
            match &q.metric {
                Some(writes) => {
                    // fold from +0.0: an empty float sum is -0.0.
                    let total = writes.values().fold(0.0, |a, b| a + b);
                    println!("   katalog_api_requests_total, non-GET/LIST/WATCH verbs: {total:.0}");
                    for ((verb, resource), v) in writes {
                        println!("     {verb:<8} {resource:<24} {v:>8.0}");
                    }
                    rows.push([
                        "API writes, 3 resyncs, no drift (runtime's counter)".to_owned(),
                        format!("{total:.0}"),
                        "goal 0".to_owned(),
                        met(total == 0.0).to_owned(),
                    ]);
                }
                None => println!("   katalog_api_requests_total: not exposed by this runtime (n/a)"),
            }
            let seen: u64 = q.seen.values().sum();
            println!(
                "   seen from outside (new resourceVersions of DataJobs, ConfigMaps, ReplicaSets; new or deleted Events): {seen} {:?}",
                q.seen
            );
            rows.push([
                "writes seen from outside, same window".to_owned(),
                seen.to_string(),
                "goal 0".to_owned(),
                met(seen == 0).to_owned(),
            ]);
        }

        println!(
            "\n3. Drift repair: edit's response -> watch event showing the child repaired ({} edits)",
            self.drift.len()
        );
        println!(
            "   {:<22} {:>8} {:>9} {:>9} {:>9} {:>8}",
            "edit", "samples", "p50 ms", "p99 ms", "max ms", "missing"
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut all: Vec<Duration> = Vec::new();
        for edit in [Edit::Replicas, Edit::Image, Edit::DeleteConfigMap] {
            let of: Vec<&Option<Duration>> = self
                .drift
                .iter()
                .filter(|(e, _)| *e == edit)
                .map(|(_, l)| l)
                .collect();
            let mut got: Vec<Duration> = of.iter().copied().flatten().copied().collect();
            got.sort();
            all.extend(&got);
            let label = match edit {
                Edit::Replicas => "ReplicaSet replicas",
                Edit::Image => "ReplicaSet image",
                Edit::DeleteConfigMap => "ConfigMap deleted",
            };
            if let (Some(p50), Some(p99), Some(max)) =
                (percentile(&got, 0.5), percentile(&got, 0.99), got.last())
            {
                println!(
                    "   {label:<22} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>8}",
                    got.len(),
                    ms(p50),
                    ms(p99),
                    ms(*max),
                    of.len() - got.len()
                );
            }
        }
        all.sort();
        let missing = self.drift.len() - all.len();
        if let (Some(p50), Some(p99)) = (percentile(&all, 0.5), percentile(&all, 0.99)) {
            println!(
                "   {:<22} {:>8} {:>9.1} {:>9.1} {:>9.1} {missing:>8}",
                "all",
                all.len(),
                ms(p50),
                ms(p99),
                all.last().map_or(0.0, |d| ms(*d))
            );
            rows.push([
                "drift repair p50".to_owned(),
                format!("{:.0} ms", ms(p50)),
                "-".to_owned(),
                String::new(),
            ]);
            rows.push([
                format!(
                    "drift repair p99 ({} edits, {missing} unrepaired)",
                    self.drift.len()
                ),
                format!("{:.0} ms", ms(p99)),
                "goal < 1 s (Orkestra: up to the 15 s resync)".to_owned(),
                met(p99 < Duration::from_secs(1) && missing == 0).to_owned(),
            ]);
        }

        println!("\n4. Runtime memory (/proc/<pid>/status)");
        println!("   {:<38} {:>10} {:>12}", "", "RSS MiB", "peak MiB");
        for (label, m) in [
            ("idle (ready + 5 s)", &self.idle),
            ("with the DataJobs and their children", &self.loaded),
            ("after the drift edits", &self.after_drift),
        ] {
            if let Some(m) = m {
                println!("   {label:<38} {:>10.1} {:>12.1}", m.rss_mib(), m.peak_mib());
            }
        }
        if let Some(m) = &self.idle {
            rows.push([
                "RSS idle".to_owned(),
                format!("{:.1} MiB", m.rss_mib()),
                "-".to_owned(),
                String::new(),
            ]);
        }
        if let Some(m) = &self.loaded {
            rows.push([
                format!("RSS with {n} DataJobs + children (peak)"),
                format!("{:.1} MiB ({:.1})", m.rss_mib(), m.peak_mib()),
                "goal < 60 MiB".to_owned(),
                met(m.peak_mib() < 60.0).to_owned(),
            ]);
        }

        println!(
            "\n5. CPU (utime + stime from /proc/<pid>/stat) per 1,000 reconciles (controller_reconcile_total)"
        );
        for (label, cpu) in [
            ("burst (creates until quiet)", &self.burst_cpu),
            ("steady (three quiet resyncs)", &self.steady_cpu),
        ] {
            if let Some(c) = cpu {
                let per = c
                    .per_thousand()
                    .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
                println!(
                    "   {label:<30} {:>8.2} CPU s, {:>8.0} reconciles, {per} CPU s per 1,000",
                    c.seconds, c.reconciles
                );
                rows.push([
                    format!("CPU s per 1,000 reconciles, {label}"),
                    per,
                    "-".to_owned(),
                    String::new(),
                ]);
            }
        }

        println!("\nSummary");
        let widths = [58, 18, 44, 10];
        let header = ["figure", "runtime", "baseline / goal", "ratio / met"];
        let line = |cells: &[&str; 4]| {
            println!(
                "| {:<w0$} | {:<w1$} | {:<w2$} | {:<w3$} |",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            );
        };
        line(&header);
        println!(
            "|{}|{}|{}|{}|",
            "-".repeat(widths[0] + 2),
            "-".repeat(widths[1] + 2),
            "-".repeat(widths[2] + 2),
            "-".repeat(widths[3] + 2)
        );
        for r in &rows {
            line(&[&r[0], &r[1], &r[2], &r[3]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_write_verbs_count() {
        let key = |v: &str, r: &str| (v.to_owned(), r.to_owned());
        let before = BTreeMap::from([
            (key("get", "configmaps"), 1.0),
            (key("patch", "replicasets"), 2.0),
        ]);
        let after = BTreeMap::from([
            (key("get", "configmaps"), 9.0),
            (key("LIST", "datajobs"), 3.0),
            (key("patch", "replicasets"), 5.0),
            (key("create", "events"), 1.0),
        ]);
        let w = diff_writes(&before, &after);
        assert_eq!(
            w,
            BTreeMap::from([(key("create", "events"), 1.0), (key("patch", "replicasets"), 3.0)])
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
