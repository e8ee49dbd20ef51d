//! `bench omjob`: exit-handler latency against a physical-limit twin, lifecycles per minute
//! against batch Jobs, operator RSS and CPU, and API requests per lifecycle, all in one run on a
//! rule-mode testbed with the release operator binary running as its own process.
//!
//! Every time is taken from this process's own watches (pods, OMJobs, Jobs), started before any
//! object is created, so the figures are what a client of the API server observes. The latency
//! loads ([`super::omjob_loads`]) run against the operator and against the twin
//! ([`super::twin`]), interleaved; the table ([`super::omjob_report`]) sets them side by side. The
//! helpers that create OMJobs at a fixed rate and follow their pods are shared with
//! `cargo xtask soak`.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{Namespace, Pod},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
    runtime::{
        WatchStreamExt as _,
        wait::{await_condition, conditions},
        watcher,
    },
};
use omjob_api::{OMJob, Phase};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{
    apiserver,
    omjob_loads::{Goal, Load, Runner, Shape, spawn_observer},
    omjob_report::{Burst, MemoryRow, Report},
    operator_process::{self, Heap, Memory, OperatorOptions, OperatorProcess, Started},
    twin::Twin,
};
use crate::step;

/// Namespace of the benchmark's OMJobs.
const OMJOB_NAMESPACE: &str = "bench-omjob";
/// Namespace of the batch Jobs it compares against.
const JOB_NAMESPACE: &str = "bench-jobs";
/// Namespace of the twin's pods.
const TWIN_NAMESPACE: &str = "bench-twin";
/// Pods a simulated node accepts (`crates/testbed/src/node/mod.rs`). The scheduler
/// counts finished pods against it too, so a long run needs more than one node.
const PODS_PER_NODE: usize = 9_000;
/// The RSS goals (MiB): idle, and with the OMJobs stored.
const IDLE_GOAL_MIB: f64 = 25.0;
const STORED_GOAL_MIB: f64 = 100.0;

/// Options of `bench omjob`. Counts left out take their default, or with `--quick` a smaller
/// one (shown as `quick:`); a count of 0 skips that load.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Smaller loads, for a run of a few minutes: every count below not given takes its quick value.
    #[arg(long)]
    pub quick: bool,
    /// OMJobs in the throughput burst, and batch Jobs in the comparison burst [default: 2000; quick: 200].
    #[arg(long)]
    pub burst: Option<usize>,
    /// OMJobs running at once for the second latency load, their ends spread as they were created
    /// [default: 200; quick: 100].
    #[arg(long)]
    pub concurrent: Option<usize>,
    /// OMJobs at once for the low-load latency figure [default: 10].
    #[arg(long)]
    pub low: Option<usize>,
    /// Rounds of --low OMJobs per repetition [default: 10; quick: 3].
    #[arg(long)]
    pub low_rounds: Option<usize>,
    /// Main stages ending within --wave-window [default: 1000; quick: 300].
    #[arg(long)]
    pub wave: Option<usize>,
    /// Seconds over which the --wave main stages end [default: 10; quick: 5].
    #[arg(long)]
    pub wave_window: Option<f64>,
    /// Main stages ending within --mixed-window while --arrivals new OMJobs arrive [default: 2000; quick: 400].
    #[arg(long)]
    pub mixed: Option<usize>,
    /// Seconds over which the --mixed main stages end [default: 20; quick: 8].
    #[arg(long)]
    pub mixed_window: Option<f64>,
    /// New OMJobs created during the mixed window [default: 500; quick: 100].
    #[arg(long)]
    pub arrivals: Option<usize>,
    /// Repetitions of each latency load per side, operator and twin interleaved [default: 2; quick: 1].
    #[arg(long)]
    pub reps: Option<usize>,
    /// OMJobs stored (in total, counting the earlier phases') for the last memory figure
    /// [default: 10000; quick: 1000].
    #[arg(long)]
    pub stored: Option<usize>,
    /// Client-side create rate in objects per second, the same for OMJobs, twin pods and Jobs.
    #[arg(long, default_value_t = 100.0)]
    pub qps: f64,
    /// Creates in flight at most.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The operator's RECONCILIATION_THREADS (its default when left out).
    #[arg(long)]
    pub threads: Option<u16>,
}

/// The counts of one run, defaults and `--quick` resolved.
#[derive(Debug)]
struct Plan {
    burst: usize,
    reps: usize,
    stored: usize,
    loads: Vec<Load>,
}

impl Args {
    fn plan(&self) -> Plan {
        let q = self.quick;
        let n = |v: Option<usize>, full: usize, quick: usize| v.unwrap_or(if q { quick } else { full });
        let secs = |v: Option<f64>, full: f64, quick: f64| {
            Duration::from_secs_f64(v.unwrap_or(if q { quick } else { full }).max(0.0))
        };
        let (low, rounds) = (n(self.low, 10, 10), n(self.low_rounds, 10, 3));
        let concurrent = n(self.concurrent, 200, 100);
        let (wave, wave_window) = (n(self.wave, 1000, 300), secs(self.wave_window, 10.0, 5.0));
        let (mixed, mixed_window) = (n(self.mixed, 2000, 400), secs(self.mixed_window, 20.0, 8.0));
        let arrivals = n(self.arrivals, 500, 100);
        #[allow(clippy::cast_precision_loss)]
        let created_over = Duration::from_secs_f64(concurrent as f64 / self.qps.max(0.001));
        let loads = vec![
            Load {
                key: "low",
                label: format!("{low} at once"),
                shape: Shape::Rounds { at_once: low, rounds },
                goal: Goal::LowLoad,
            },
            Load {
                key: "conc",
                label: format!("{concurrent} concurrent"),
                shape: Shape::Wave {
                    ending: concurrent,
                    window: created_over,
                    arrivals: 0,
                },
                goal: Goal::Ratio(1.5),
            },
            Load {
                key: "wave",
                label: format!("{wave} ending within {} s", wave_window.as_secs_f64()),
                shape: Shape::Wave {
                    ending: wave,
                    window: wave_window,
                    arrivals: 0,
                },
                goal: Goal::Ratio(1.5),
            },
            Load {
                key: "mixed",
                label: format!(
                    "{mixed} ending within {} s, {arrivals} new arriving",
                    mixed_window.as_secs_f64()
                ),
                shape: Shape::Wave {
                    ending: mixed,
                    window: mixed_window,
                    arrivals,
                },
                goal: Goal::Ratio(1.5),
            },
        ];
        Plan {
            burst: n(self.burst, 2000, 200),
            reps: n(self.reps, 2, 1).max(1),
            stored: n(self.stored, 10_000, 1000),
            loads: loads
                .into_iter()
                .filter(|l| match l.shape {
                    Shape::Rounds { at_once, rounds } => at_once * rounds > 0,
                    Shape::Wave { ending, .. } => ending > 0,
                })
                .collect(),
        }
    }
}

#[allow(clippy::too_many_lines, reason = "the phases in order, each a few lines")]
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let plan = args.plan();
    let per_side: usize = plan.loads.iter().map(|l| l.shape.lifecycles()).sum::<usize>() * plan.reps;
    let before_fill = per_side + plan.burst;
    let fill = plan.stored.saturating_sub(before_fill);
    // Operator: main + exit pod per OMJob; twin: the same per run; Jobs: one each.
    let pods = 2 * (before_fill + fill) + 2 * per_side + plan.burst;
    let nodes = pods.div_ceil(PODS_PER_NODE).max(1);

    step(&format!(
        "Starting a rule-mode testbed with {nodes} node(s) (about {pods} pods in this run)"
    ));
    let testbed = crate::bench::rule_testbed("omjob-bench-", nodes).await?;
    let client = testbed.control_plane().client().await?;
    install_crds(&client).await?;
    for ns in [OMJOB_NAMESPACE, JOB_NAMESPACE, TWIN_NAMESPACE] {
        create_namespace(&client, ns).await?;
    }

    let seen = Seen::shared();
    let twin_seen = Seen::shared();
    let omjobs: Api<OMJob> = Api::namespaced(client.clone(), OMJOB_NAMESPACE);
    let jobs: Api<Job> = Api::namespaced(client.clone(), JOB_NAMESPACE);
    let watches = [
        spawn_observer(
            client.clone(),
            OMJOB_NAMESPACE,
            TWIN_NAMESPACE,
            seen.clone(),
            twin_seen.clone(),
        )
        .await?,
        spawn_omjob_watch(omjobs.clone(), seen.clone()).await?,
        spawn_job_watch(jobs.clone(), seen.clone()).await?,
    ];
    let watches = AbortOnDrop(watches.into_iter().collect());

    let mut opts = OperatorOptions::new(testbed.dir().join("operator.log"));
    if let Some(t) = args.threads {
        opts.env.push(("RECONCILIATION_THREADS".into(), t.to_string()));
    }
    let mut operator = OperatorProcess::start(&testbed, opts, Started::Ready).await?;
    step("Operator ready; letting it settle for 5 s before the idle figure");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = memory_reading(&operator).await?;

    step(&format!("Starting the twin in namespace {TWIN_NAMESPACE}"));
    let twin = Twin::start(
        testbed.control_plane().kubeconfig().to_owned(),
        TWIN_NAMESPACE.to_owned(),
    )
    .await?;
    let runner = Runner {
        omjobs: omjobs.clone(),
        twin_pods: Api::namespaced(client.clone(), TWIN_NAMESPACE),
        omjob_seen: seen.clone(),
        twin_seen: twin_seen.clone(),
        operator: &operator,
        qps: args.qps,
        concurrency: args.concurrency,
    };
    let loads = runner.run_all(plan.loads, plan.reps).await?;
    #[allow(clippy::cast_precision_loss)]
    let twin_creates_per_lifecycle = (per_side > 0).then(|| twin.creates() as f64 / per_side as f64);
    // Stopped before the throughput phases, which are the operator's alone.
    drop(twin);

    let pacer = || Pacer::new(args.qps);
    let mut report = Report {
        qps: args.qps,
        concurrency: args.concurrency,
        reps: plan.reps,
        loads,
        burst: plan.burst,
        twin_creates_per_lifecycle,
        ..Report::default()
    };

    step(&format!(
        "Burst: {} OMJobs at {} creates/s, {} in flight",
        plan.burst, args.qps, args.concurrency
    ));
    let names: Vec<String> = (0..plan.burst).map(|i| format!("burst-{i}")).collect();
    let requests_before = operator.api_requests().await?;
    let writes_before = apiserver::writes(&client).await?;
    let cpu_before = operator.cpu_seconds()?;
    let start = Instant::now();
    create_paced(&omjobs, &names, &pacer(), args.concurrency, |n| {
        omjob_object(n, &BTreeMap::new())
    })
    .await?;
    let created = start.elapsed();
    wait_terminal(&seen, &names).await?;
    let finished = last_terminal(&seen, &names)?.duration_since(start);
    report.omjob_burst = Some(Burst {
        created,
        finished,
        pods: 2,
        writes: writes_since(&client, &writes_before).await?,
    });
    report.burst_cpu = operator.cpu_seconds()? - cpu_before;
    report.requests = operator_process::diff_counters(&requests_before, &operator.api_requests().await?);
    report.burst_latency = latencies(&seen, &names);

    step(&format!(
        "Burst: {} one-pod batch Jobs (backoffLimit 0) at {} creates/s, {} in flight",
        plan.burst, args.qps, args.concurrency
    ));
    let names: Vec<String> = (0..plan.burst).map(|i| format!("job-{i}")).collect();
    let writes_before = apiserver::writes(&client).await?;
    let start = Instant::now();
    create_paced(&jobs, &names, &pacer(), args.concurrency, job_object).await?;
    let created = start.elapsed();
    let finished = wait_jobs_done(&seen, &names).await?.duration_since(start);
    report.job_burst = Some(Burst {
        created,
        finished,
        pods: 1,
        writes: writes_since(&client, &writes_before).await?,
    });
    let after_bursts = memory_reading(&operator).await?;

    step(&format!(
        "Storing {} OMJobs in all ({fill} more, run to completion)",
        before_fill + fill
    ));
    let names: Vec<String> = (0..fill).map(|i| format!("stored-{i}")).collect();
    let cpu_before = operator.cpu_seconds()?;
    create_paced(&omjobs, &names, &pacer(), args.concurrency, |n| {
        omjob_object(n, &BTreeMap::new())
    })
    .await?;
    wait_terminal(&seen, &names).await?;
    let fill_cpu = operator.cpu_seconds()? - cpu_before;
    let stored = memory_reading(&operator).await?;
    // What is still draining when the last run ends (queued events, freed pages not yet given
    // back) shows as the difference to a reading made later.
    let stored_later = memory_reading_later(&operator, "before reading the memory again").await?;

    step("Restarting the operator over the stored OMJobs");
    let restart_begin = Instant::now();
    operator.restart().await?;
    let ready_after = restart_begin.elapsed();
    let settled_after = wait_reconciles_settle(&operator).await?;
    let restarted = memory_reading(&operator).await?;
    let restart_cpu = operator.cpu_seconds()?;
    // jemalloc gives freed pages back over about ten seconds (its dirty-page decay): the reading
    // just after the restart's lists holds their garbage, this one what stays.
    let restarted_later =
        memory_reading_later(&operator, "for the allocator to give back the restart's garbage").await?;
    drop(operator);
    drop(watches);

    let total = before_fill + fill;
    let mem = |label: String, (memory, heap), goal_mib| MemoryRow {
        label,
        memory,
        heap,
        goal_mib,
    };
    report.memory = vec![
        mem("idle (ready + 5 s)".to_owned(), idle, Some(IDLE_GOAL_MIB)),
        mem("after the bursts".to_owned(), after_bursts, None),
        mem(
            format!("{total} OMJobs stored, still running"),
            stored,
            Some(STORED_GOAL_MIB),
        ),
        mem(
            format!("{total} OMJobs stored, still running, {SETTLE_SECS} s later"),
            stored_later,
            Some(STORED_GOAL_MIB),
        ),
        mem(
            format!("{total} OMJobs stored, restarted and settled"),
            restarted,
            Some(STORED_GOAL_MIB),
        ),
        mem(
            format!("{total} OMJobs stored, restarted, {SETTLE_SECS} s later"),
            restarted_later,
            Some(STORED_GOAL_MIB),
        ),
    ];
    report.stored = total;
    report.fill = (fill, fill_cpu);
    report.restart = Some((ready_after, settled_after, restart_cpu));
    report.print();
    eprintln!(
        "\nNote: the testbed, the simulated node and this bench share the machine's cores with \
         whatever else runs; figures are noisy."
    );
    drop(testbed);
    Ok(())
}

/// How long after a memory reading the same figure is read again (after the store fills, and
/// after the restart settles).
const SETTLE_SECS: u64 = 30;

/// The operator's resident memory and, when its allocator tells, the heap live objects hold
/// (MiB): what separates data kept from freed memory not yet given back.
async fn memory_reading(operator: &OperatorProcess) -> anyhow::Result<(Memory, Option<Heap>)> {
    Ok((operator.memory()?, operator.heap().await?))
}

/// [`memory_reading`] after waiting [`SETTLE_SECS`], saying what for.
async fn memory_reading_later(
    operator: &OperatorProcess,
    what_for: &str,
) -> anyhow::Result<(Memory, Option<Heap>)> {
    step(&format!("Waiting {SETTLE_SECS} s {what_for}"));
    tokio::time::sleep(Duration::from_secs(SETTLE_SECS)).await;
    memory_reading(operator).await
}

/// Rule-mode annotation: how long the pod's containers "run".
pub(crate) const RUN_SECONDS: &str = omjob_testbed::node::pod::RULE_RUN_SECONDS;

/// The upper bound of the histogram bucket holding quantile `q` of the observations made between
/// two scrapes of the same cumulative buckets (`(le, count)`, ascending).
pub(crate) fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let grown: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(b, _)| b == le).map_or(0.0, |(_, n)| *n);
            (*le, n - was)
        })
        .collect();
    let total = grown.last()?.1;
    if total <= 0.0 {
        return None;
    }
    grown.iter().find(|(_, n)| *n >= q * total).map(|(le, _)| *le)
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
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

/// What this process's watches have seen, first sighting of each fact only.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// OMJob name → when its main pod was first seen terminated.
    pub main_terminated: HashMap<String, Instant>,
    /// OMJob name → its exit-handler pods (`-exit`, `-exit-2`, ...) and when each was first seen.
    pub exit_pods: HashMap<String, BTreeMap<String, Instant>>,
    /// OMJob name → when it was first seen terminal, and in which phase.
    pub terminal: HashMap<String, (Instant, Phase)>,
    /// Job name → when it was first seen complete or failed.
    pub jobs_done: HashMap<String, Instant>,
}

pub(crate) type SharedSeen = Arc<Mutex<Seen>>;

impl Seen {
    pub fn shared() -> SharedSeen {
        Arc::new(Mutex::new(Self::default()))
    }
}

/// Reads the shared state; a poisoned lock only means a watch task panicked mid-update, and the
/// maps are still consistent entry by entry.
pub(crate) fn with_seen<T>(seen: &SharedSeen, f: impl FnOnce(&Seen) -> T) -> T {
    match seen.lock() {
        Ok(g) => f(&g),
        Err(p) => f(&p.into_inner()),
    }
}

pub(crate) fn update_seen(seen: &SharedSeen, f: impl FnOnce(&mut Seen)) {
    match seen.lock() {
        Ok(mut g) => f(&mut g),
        Err(p) => f(&mut p.into_inner()),
    }
}

/// Aborts watch tasks when the bench ends, however it ends.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Follows `api` with a watcher, calling `on_object` with `state` for every object it reports;
/// returns once the initial list is done, so nothing created afterwards can be missed.
pub(crate) async fn spawn_watch<K, S>(
    api: Api<K>,
    seen: S,
    on_object: fn(&S, &K, Instant),
) -> anyhow::Result<tokio::task::JoinHandle<()>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    S: Send + 'static,
{
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let now = Instant::now();
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => on_object(&seen, &o, now),
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("watch error (retrying): {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), ready_rx)
        .await
        .context("a watch did not finish its initial list within 60 s")?
        .context("a watch task ended before its initial list")?;
    Ok(task)
}

/// Watches the pods of `api`'s namespace and records main-pod terminations and exit pods, by the
/// owning OMJob's name.
pub(crate) async fn spawn_pod_watch(
    api: Api<Pod>,
    seen: SharedSeen,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    spawn_watch(api, seen, record_omjob_pod).await
}

/// An OMJob's pod, as the bench's watches record it: the main pod's first terminated sighting and
/// each exit pod's first sighting, by the owning OMJob's name.
pub(crate) fn record_omjob_pod(seen: &SharedSeen, pod: &Pod, now: Instant) {
    let Some(owner) = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|refs| refs.iter().find(|r| r.kind == "OMJob"))
        .map(|r| r.name.clone())
    else {
        return;
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    if name == format!("{owner}-main") {
        let terminated = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
            });
        if terminated {
            update_seen(seen, |s| {
                s.main_terminated.entry(owner).or_insert(now);
            });
        }
    } else if name.starts_with(&format!("{owner}-exit")) {
        update_seen(seen, |s| {
            s.exit_pods.entry(owner).or_default().entry(name).or_insert(now);
        });
    }
}

/// Watches OMJobs and records when each is first seen in a terminal phase.
pub(crate) async fn spawn_omjob_watch(
    api: Api<OMJob>,
    seen: SharedSeen,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    spawn_watch(api, seen, |seen, omjob, now| {
        let phase = omjob.status.as_ref().and_then(|s| s.phase);
        if let Some(phase) = phase.filter(|p| p.is_terminal()) {
            let name = omjob.metadata.name.clone().unwrap_or_default();
            update_seen(seen, |s| {
                s.terminal.entry(name).or_insert((now, phase));
            });
        }
    })
    .await
}

async fn spawn_job_watch(api: Api<Job>, seen: SharedSeen) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    spawn_watch(api, seen, |seen, job, now| {
        let done = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            });
        if done {
            let name = job.metadata.name.clone().unwrap_or_default();
            update_seen(seen, |s| {
                s.jobs_done.entry(name).or_insert(now);
            });
        }
    })
    .await
}

/// Installs the OMJob and CronOMJob CRDs with server-side apply and waits until both are
/// established.
pub(crate) async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let ssa = PatchParams::apply("omjob-bench").force();
    for crd in omjob_api::crds::all() {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        crds.patch(&name, &ssa, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} not established within 60 s"))?
        .with_context(|| format!("watching CRD {name}"))?;
    }
    Ok(())
}

/// Creates namespace `name` and waits until its `default` service account can be used by pods.
pub(crate) async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    omjob_testbed::fixture::wait_for_service_account(client, name, "default", Duration::from_secs(60))
        .await
        .map_err(anyhow::Error::msg)
}

/// The API server's writes since `before`, counted after 2 s of settling: a burst's last status,
/// finalizer and event writes (the operator's, or the Job controller's) trail its last object's
/// completion.
async fn writes_since(
    client: &kube::Client,
    before: &BTreeMap<String, f64>,
) -> anyhow::Result<BTreeMap<String, f64>> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(operator_process::diff_counters(
        before,
        &apiserver::writes(client).await?,
    ))
}

/// An OMJob whose pods run under the namespace's `default` service account and finish at once,
/// unless `main_annotations` (rule-mode annotations) say otherwise. The exit handler exits 0.
pub(crate) fn omjob_object(name: &str, main_annotations: &BTreeMap<String, String>) -> anyhow::Result<OMJob> {
    Ok(serde_json::from_value(json!({
        "apiVersion": omjob_api::API_VERSION, "kind": "OMJob",
        "metadata": {"name": name, "labels": {
            "app.kubernetes.io/pipeline": "bench", "app.kubernetes.io/run-id": name}},
        "spec": {
            "mainPodSpec": {"image": "ingestion", "serviceAccountName": "default",
                "command": ["python", "main.py"], "annotations": main_annotations},
            "exitHandlerSpec": {"image": "ingestion", "serviceAccountName": "default",
                "command": ["python", "exit_handler.py"]}
        }
    }))?)
}

/// A one-pod batch Job that finishes at once, with no retries.
fn job_object(name: &str) -> anyhow::Result<Job> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "serviceAccountName": "default",
            "containers": [{"name": "main", "image": "ingestion", "command": ["python", "main.py"]}]}}}
    }))?)
}

/// A client-side rate limiter: hands out start times `1/qps` apart, without bursts.
#[derive(Debug)]
pub(crate) struct Pacer {
    next: tokio::sync::Mutex<tokio::time::Instant>,
    interval: Duration,
}

impl Pacer {
    pub fn new(qps: f64) -> Self {
        Self {
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            interval: Duration::from_secs_f64(1.0 / qps.max(0.001)),
        }
    }

    /// Waits for the next slot.
    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Creates one object per name through `api`, paced by `pacer`, at most `in_flight` at once. A
/// create that fails is retried a few times (the API server sheds load with 429s); one that
/// already exists counts as done.
pub(crate) async fn create_paced<K>(
    api: &Api<K>,
    names: &[String],
    pacer: &Pacer,
    in_flight: usize,
    make: impl Fn(&str) -> anyhow::Result<K>,
) -> anyhow::Result<()>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    futures::stream::iter(names)
        .map(|name| {
            let obj = make(name);
            async move {
                let obj = obj?;
                pacer.wait().await;
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match api.create(&PostParams::default(), &obj).await {
                        Ok(_) => return anyhow::Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
                        Err(e) if attempt < 5 => {
                            eprintln!("create {name} failed (attempt {attempt}, retrying): {e}");
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                        Err(e) => return Err(e).with_context(|| format!("creating {name}")),
                    }
                }
            }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// How long to wait for `n` objects to finish: generous, as this measures and does not judge.
fn limit_for(n: usize) -> Duration {
    Duration::from_secs(300) + Duration::from_millis(200) * u32::try_from(n).unwrap_or(u32::MAX)
}

/// Waits until `done` holds, polling the watch state (the times themselves come from the watch).
pub(crate) async fn wait_seen(
    seen: &SharedSeen,
    limit: Duration,
    what: &str,
    done: impl Fn(&Seen) -> (usize, usize),
) -> anyhow::Result<()> {
    let begin = Instant::now();
    loop {
        let (have, want) = with_seen(seen, &done);
        if have >= want {
            return Ok(());
        }
        if begin.elapsed() > limit {
            bail!("only {have} of {want} {what} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every OMJob in `names` was seen terminal.
pub(crate) async fn wait_terminal(seen: &SharedSeen, names: &[String]) -> anyhow::Result<()> {
    wait_seen(seen, limit_for(names.len()), "OMJobs terminal", |s| {
        (
            names.iter().filter(|n| s.terminal.contains_key(*n)).count(),
            names.len(),
        )
    })
    .await
}

async fn wait_jobs_done(seen: &SharedSeen, names: &[String]) -> anyhow::Result<Instant> {
    wait_seen(seen, limit_for(names.len()), "Jobs finished", |s| {
        (
            names.iter().filter(|n| s.jobs_done.contains_key(*n)).count(),
            names.len(),
        )
    })
    .await?;
    with_seen(seen, |s| {
        names.iter().filter_map(|n| s.jobs_done.get(n)).max().copied()
    })
    .context("no Job finished")
}

fn last_terminal(seen: &SharedSeen, names: &[String]) -> anyhow::Result<Instant> {
    with_seen(seen, |s| {
        names.iter().filter_map(|n| s.terminal.get(n).map(|t| t.0)).max()
    })
    .context("no OMJob finished")
}

/// Main termination → first exit pod, per OMJob of `names`.
pub(crate) fn latencies(seen: &SharedSeen, names: &[String]) -> Vec<Option<Duration>> {
    with_seen(seen, |s| {
        names
            .iter()
            .map(|n| {
                let term = s.main_terminated.get(n)?;
                let exit = s.exit_pods.get(n)?.get(&format!("{n}-exit"))?;
                Some(exit.saturating_duration_since(*term))
            })
            .collect()
    })
}

/// How many OMJobs of `names` were not yet terminal when the first of their main pods ended.
pub(crate) fn active_at_first_termination(seen: &SharedSeen, names: &[String]) -> usize {
    with_seen(seen, |s| {
        let Some(first) = names.iter().filter_map(|n| s.main_terminated.get(n)).min() else {
            return 0;
        };
        names
            .iter()
            .filter(|n| s.terminal.get(*n).is_none_or(|(t, _)| t > first))
            .count()
    })
}

/// After a restart, waits until `omjob_reconciliations_total` stops growing for 3 s (the
/// operator has worked through its initial list); returns how long that took.
async fn wait_reconciles_settle(operator: &OperatorProcess) -> anyhow::Result<Duration> {
    let begin = Instant::now();
    let total = || async {
        let text = operator.metrics_text().await?;
        anyhow::Ok(
            operator_process::samples(&text, "omjob_reconciliations_total")
                .iter()
                .map(|s| s.value)
                .sum::<f64>(),
        )
    };
    let mut last = total().await?;
    let mut still = 0;
    while still < 3 && begin.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = total().await?;
        if (now - last).abs() < f64::EPSILON && now > 0.0 {
            still += 1;
        } else {
            still = 0;
        }
        last = now;
    }
    Ok(begin.elapsed().saturating_sub(Duration::from_secs(3)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantiles_come_from_the_growth_between_scrapes() {
        let before = [(0.01, 5.0), (0.1, 5.0), (f64::INFINITY, 5.0)];
        let after = [(0.01, 95.0), (0.1, 104.0), (f64::INFINITY, 105.0)];
        assert_eq!(bucket_quantile(&before, &after, 0.5), Some(0.01));
        assert_eq!(bucket_quantile(&before, &after, 0.99), Some(0.1));
        assert_eq!(bucket_quantile(&after, &after, 0.5), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v[..1], 0.99), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
