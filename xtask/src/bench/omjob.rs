//! `bench omjob`: exit-handler latency, lifecycles per minute against batch Jobs, operator RSS and
//! CPU, and API requests per lifecycle, all in one run on a rule-mode testbed with the release
//! operator binary running as its own process.
//!
//! Every time is taken from this process's own watches (pods, OMJobs, Jobs), started before any
//! object is created, so the figures are what a client of the API server observes. The helpers
//! that create OMJobs at a fixed rate and follow their pods are shared with `cargo xtask soak`.

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

use super::operator_process::{self, OperatorOptions, OperatorProcess, Started};
use crate::step;

/// Namespace of the benchmark's OMJobs.
const OMJOB_NAMESPACE: &str = "bench-omjob";
/// Namespace of the batch Jobs it compares against.
const JOB_NAMESPACE: &str = "bench-jobs";
/// Pods a simulated node accepts (`crates/testbed/src/node/mod.rs`). The scheduler
/// counts finished pods against it too, so a long run needs more than one node.
const PODS_PER_NODE: usize = 9_000;

/// Options of `bench omjob`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// OMJobs in the throughput burst, and batch Jobs in the comparison burst.
    #[arg(long, default_value_t = 2000)]
    pub burst: usize,
    /// OMJobs running at once for the high-load latency figure (default: --burst).
    #[arg(long)]
    pub concurrent: Option<usize>,
    /// OMJobs running at once for the low-load latency figure.
    #[arg(long, default_value_t = 10)]
    pub low: usize,
    /// Rounds of --low OMJobs, for more low-load samples.
    #[arg(long, default_value_t = 10)]
    pub low_rounds: usize,
    /// OMJobs stored (in total, counting the earlier phases') for the last memory figure.
    #[arg(long, default_value_t = 10_000)]
    pub stored: usize,
    /// Client-side create rate in objects per second, the same for OMJobs and Jobs.
    #[arg(long, default_value_t = 100.0)]
    pub qps: f64,
    /// Creates in flight at most.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The operator's RECONCILIATION_THREADS (its default when left out).
    #[arg(long)]
    pub threads: Option<u16>,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let concurrent = args.concurrent.unwrap_or(args.burst);
    let low_total = args.low * args.low_rounds;
    let before_fill = low_total + concurrent + args.burst;
    let fill = args.stored.saturating_sub(before_fill);
    let pods = 2 * (before_fill + fill) + args.burst;
    let nodes = pods.div_ceil(PODS_PER_NODE).max(1);

    step(&format!(
        "Starting a rule-mode testbed with {nodes} node(s) (about {pods} pods in this run)"
    ));
    let testbed = crate::bench::rule_testbed("omjob-bench-", nodes).await?;
    let client = testbed.control_plane().client().await?;
    install_crds(&client).await?;
    for ns in [OMJOB_NAMESPACE, JOB_NAMESPACE] {
        create_namespace(&client, ns).await?;
    }

    let seen = Seen::shared();
    let omjobs: Api<OMJob> = Api::namespaced(client.clone(), OMJOB_NAMESPACE);
    let jobs: Api<Job> = Api::namespaced(client.clone(), JOB_NAMESPACE);
    let watches = [
        spawn_pod_watch(Api::namespaced(client.clone(), OMJOB_NAMESPACE), seen.clone()).await?,
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
    let idle = operator.memory()?;

    let pacer = || Pacer::new(args.qps);
    let mut report = Report::default();

    step(&format!(
        "Low load: {} rounds of {} OMJobs at once",
        args.low_rounds, args.low
    ));
    let mut low_names = Vec::new();
    let buckets = operator.exit_latency_buckets().await?;
    for round in 0..args.low_rounds {
        let names: Vec<String> = (0..args.low).map(|i| format!("low-{round}-{i}")).collect();
        create_paced(&omjobs, &names, &pacer(), args.concurrency, |n| {
            omjob_object(n, &BTreeMap::new())
        })
        .await?;
        wait_terminal(&seen, &names).await?;
        low_names.extend(names);
    }
    let own = operator.exit_latency_buckets().await?;
    report.latency.push(Latency {
        label: "low load",
        active: args.low,
        seen: latencies(&seen, &low_names),
        operator: (
            bucket_quantile(&buckets, &own, 0.5),
            bucket_quantile(&buckets, &own, 0.99),
        ),
    });
    let buckets = own;

    // Main pods that run until every OMJob of the wave exists, so all of them are active when
    // the first main pod ends.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let run_seconds = (concurrent as f64 / args.qps * 1.5).ceil() as u64 + 10;
    step(&format!(
        "High load: {concurrent} OMJobs whose main pods run {run_seconds} s, so all are active at once"
    ));
    let names: Vec<String> = (0..concurrent).map(|i| format!("conc-{i}")).collect();
    let ann = BTreeMap::from([(RUN_SECONDS.to_owned(), run_seconds.to_string())]);
    create_paced(&omjobs, &names, &pacer(), args.concurrency, |n| {
        omjob_object(n, &ann)
    })
    .await?;
    wait_terminal(&seen, &names).await?;
    let active = active_at_first_termination(&seen, &names);
    let own = operator.exit_latency_buckets().await?;
    report.latency.push(Latency {
        label: "high load",
        active,
        seen: latencies(&seen, &names),
        operator: (
            bucket_quantile(&buckets, &own, 0.5),
            bucket_quantile(&buckets, &own, 0.99),
        ),
    });
    let buckets = own;

    step(&format!(
        "Burst: {} OMJobs at {} creates/s, {} in flight",
        args.burst, args.qps, args.concurrency
    ));
    let names: Vec<String> = (0..args.burst).map(|i| format!("burst-{i}")).collect();
    let requests_before = operator.api_requests().await?;
    let cpu_before = operator.cpu_seconds()?;
    let start = Instant::now();
    create_paced(&omjobs, &names, &pacer(), args.concurrency, |n| {
        omjob_object(n, &BTreeMap::new())
    })
    .await?;
    let created = start.elapsed();
    wait_terminal(&seen, &names).await?;
    let finished = last_terminal(&seen, &names)?.duration_since(start);
    // Let trailing requests of the last reconciles land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.omjob_burst = Some(Burst { created, finished });
    report.burst_cpu = operator.cpu_seconds()? - cpu_before;
    report.requests = operator_process::diff_counters(&requests_before, &operator.api_requests().await?);
    let own = operator.exit_latency_buckets().await?;
    report.latency.push(Latency {
        label: "during the burst",
        active: 0,
        seen: latencies(&seen, &names),
        operator: (
            bucket_quantile(&buckets, &own, 0.5),
            bucket_quantile(&buckets, &own, 0.99),
        ),
    });

    step(&format!(
        "Burst: {} one-pod batch Jobs (backoffLimit 0) at {} creates/s, {} in flight",
        args.burst, args.qps, args.concurrency
    ));
    let names: Vec<String> = (0..args.burst).map(|i| format!("job-{i}")).collect();
    let start = Instant::now();
    create_paced(&jobs, &names, &pacer(), args.concurrency, job_object).await?;
    let created = start.elapsed();
    let finished = wait_jobs_done(&seen, &names).await?.duration_since(start);
    report.job_burst = Some(Burst { created, finished });
    let after_bursts = operator.memory()?;

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
    let stored = operator.memory()?;

    step("Restarting the operator over the stored OMJobs");
    let restart_begin = Instant::now();
    operator.restart().await?;
    let ready_after = restart_begin.elapsed();
    let settled_after = wait_reconciles_settle(&operator).await?;
    let restarted = operator.memory()?;
    let restart_cpu = operator.cpu_seconds()?;
    drop(operator);
    drop(watches);

    report.memory = vec![
        ("idle (ready + 5 s)", idle),
        ("after the bursts", after_bursts),
        ("with the OMJobs stored", stored),
        ("restarted over them, settled", restarted),
    ];
    report.stored = before_fill + fill;
    report.fill = (fill, fill_cpu);
    report.restart = Some((ready_after, settled_after, restart_cpu));
    report.print(args, run_seconds);
    eprintln!(
        "\nNote: the testbed, the simulated node and this bench share the machine's cores with \
         whatever else runs; figures are noisy."
    );
    drop(testbed);
    Ok(())
}

/// Rule-mode annotation: how long the pod's containers "run".
pub(crate) const RUN_SECONDS: &str = omjob_testbed::node::pod::RULE_RUN_SECONDS;

/// One measured burst.
#[derive(Debug, Clone, Copy)]
struct Burst {
    /// All objects created after.
    created: Duration,
    /// The last one terminal after.
    finished: Duration,
}

impl Burst {
    #[allow(clippy::cast_precision_loss)]
    fn per_minute(&self, n: usize) -> f64 {
        n as f64 / self.finished.as_secs_f64() * 60.0
    }
}

/// Exit-handler latency of one phase.
#[derive(Debug)]
struct Latency {
    label: &'static str,
    /// OMJobs not yet terminal when the first main pod ended (0: not measured).
    active: usize,
    /// Per OMJob, from this bench's watch; `None` where the pair was not seen.
    seen: Vec<Option<Duration>>,
    /// p50 and p99 upper bounds (seconds) of the operator's own histogram over the phase.
    operator: (Option<f64>, Option<f64>),
}

#[derive(Debug, Default)]
struct Report {
    latency: Vec<Latency>,
    omjob_burst: Option<Burst>,
    job_burst: Option<Burst>,
    burst_cpu: f64,
    requests: BTreeMap<(String, String), f64>,
    memory: Vec<(&'static str, operator_process::Memory)>,
    stored: usize,
    fill: (usize, f64),
    restart: Option<(Duration, Duration, f64)>,
}

impl Report {
    #[allow(clippy::cast_precision_loss)]
    fn print(&self, args: &Args, run_seconds: u64) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("\n== bench omjob (operator: release build, own process; rule-mode testbed) ==");
        println!(
            "create rate {} /s, {} in flight; main pods of the high-load wave run {run_seconds} s",
            args.qps, args.concurrency
        );

        println!("\n1. Main pod terminated -> exit pod created (both seen on this bench's pod watch)");
        println!(
            "   {:<18} {:>7} {:>8} {:>9} {:>9} {:>9} {:>8} {:>22}",
            "load", "active", "samples", "p50 ms", "p99 ms", "max ms", "missing", "operator p50/p99 ms <="
        );
        let bound = |b: Option<f64>| match b {
            Some(s) if s.is_finite() => format!("{:.0}", s * 1000.0),
            Some(_) => "inf".to_owned(),
            None => "-".to_owned(),
        };
        for lat in &self.latency {
            let mut got: Vec<Duration> = lat.seen.iter().flatten().copied().collect();
            got.sort();
            let missing = lat.seen.len() - got.len();
            let label = lat.label;
            let active = if lat.active == 0 {
                "-".to_owned()
            } else {
                lat.active.to_string()
            };
            let own = format!("{}/{}", bound(lat.operator.0), bound(lat.operator.1));
            match (percentile(&got, 0.5), percentile(&got, 0.99), got.last()) {
                (Some(p50), Some(p99), Some(max)) => println!(
                    "   {label:<18} {active:>7} {:>8} {:>9.1} {:>9.1} {:>9.1} {missing:>8} {own:>22}",
                    got.len(),
                    ms(p50),
                    ms(p99),
                    ms(*max)
                ),
                _ => println!(
                    "   {label:<18} {active:>7} {:>8} (no samples) {missing:>8} {own:>22}",
                    0
                ),
            }
        }
        println!(
            "   (operator column: its own omjob_exit_handler_latency_seconds histogram over the phase, \
             from seeing the termination to creating the pod; bucket upper bounds)"
        );

        println!(
            "\n2. Lifecycles per minute, burst of {} (created -> terminal)",
            args.burst
        );
        println!(
            "   {:<28} {:>12} {:>14} {:>12}",
            "", "created in s", "all done in s", "per minute"
        );
        let line = |label: &str, b: &Burst| {
            println!(
                "   {label:<28} {:>12.1} {:>14.1} {:>12.0}",
                b.created.as_secs_f64(),
                b.finished.as_secs_f64(),
                b.per_minute(args.burst)
            );
        };
        if let Some(b) = &self.omjob_burst {
            line("OMJobs (main + exit pod)", b);
        }
        if let Some(b) = &self.job_burst {
            line("batch Jobs (one pod)", b);
        }
        if let (Some(o), Some(j)) = (&self.omjob_burst, &self.job_burst) {
            println!(
                "   ratio OMJob / Job: {:.2}",
                o.per_minute(args.burst) / j.per_minute(args.burst)
            );
        }

        println!("\n3. Operator memory (from /proc/<pid>/status) and CPU");
        println!("   {:<32} {:>10} {:>12}", "", "RSS MiB", "peak MiB");
        for (label, m) in &self.memory {
            println!("   {label:<32} {:>10.1} {:>12.1}", m.rss_mib(), m.peak_mib());
        }
        println!("   (OMJobs stored at the end: {})", self.stored);
        let per_k = |cpu: f64, n: usize| {
            if n == 0 { 0.0 } else { cpu / n as f64 * 1000.0 }
        };
        println!(
            "   CPU s per 1,000 OMJobs: burst {:.2} ({:.2} s for {}), filling the store {:.2} ({:.2} s for {})",
            per_k(self.burst_cpu, args.burst),
            self.burst_cpu,
            args.burst,
            per_k(self.fill.1, self.fill.0),
            self.fill.1,
            self.fill.0
        );
        if let Some((ready, settled, cpu)) = self.restart {
            println!(
                "   restart over {} stored OMJobs: ready after {:.1} s, reconciles settled after {:.1} s, {cpu:.2} CPU s",
                self.stored,
                ready.as_secs_f64(),
                settled.as_secs_f64()
            );
        }

        println!(
            "\n4. API requests per OMJob lifecycle (omjob_api_requests_total over the burst / {})",
            args.burst
        );
        println!(
            "   {:<8} {:<24} {:>10} {:>12}",
            "verb", "resource", "total", "per OMJob"
        );
        let mut sum = 0.0;
        for ((verb, resource), n) in &self.requests {
            sum += n;
            println!(
                "   {verb:<8} {resource:<24} {n:>10.0} {:>12.2}",
                n / args.burst.max(1) as f64
            );
        }
        println!(
            "   {:<8} {:<24} {sum:>10.0} {:>12.2}",
            "all",
            "",
            sum / args.burst.max(1) as f64
        );
    }
}

/// The upper bound of the histogram bucket holding quantile `q` of the observations made between
/// two scrapes of the same cumulative buckets (`(le, count)`, ascending).
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
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

fn update_seen(seen: &SharedSeen, f: impl FnOnce(&mut Seen)) {
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
    spawn_watch(api, seen, |seen, pod, now| {
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
    })
    .await
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
fn latencies(seen: &SharedSeen, names: &[String]) -> Vec<Option<Duration>> {
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
fn active_at_first_termination(seen: &SharedSeen, names: &[String]) -> usize {
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
