//! `bench pipelines`: latency of the pipeline service's `run` and `runs` with many pipelines
//! deployed, on a rule-mode testbed (pods finish from annotations, so the cluster stays busy
//! without processes). The service runs in this process, through the library the HTTP API and
//! CLI use, with an admin client.
//!
//! Half the pipelines are scheduled (a yearly schedule that does not fire during the bench), so
//! the namespace holds a CronJob/CronOMJob per scheduled pipeline besides the ConfigMaps and
//! Secrets. `runs` lists by label selector, so its latency shows how the API server filters as
//! the namespace fills: the runs already made stay in the cluster during the `runs` phase.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::{
    api::core::v1::{Namespace, ServiceAccount},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::wait::{await_condition, conditions},
};
use pipeline_service::{Config, PipelineClient, pipeline};
use serde_json::json;

use crate::step;

/// Which mode(s) to measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeArg {
    /// batch Jobs and CronJobs.
    Standard,
    /// OMJobs and CronOMJobs (no operator runs: the figures are the service's API work).
    Operator,
    /// Both, one after the other, each in its own namespace.
    Both,
}

/// Options of `bench pipelines`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pipelines deployed before measuring.
    #[arg(long, default_value_t = 500)]
    pub pipelines: usize,
    /// Timed calls of each operation.
    #[arg(long, default_value_t = 200)]
    pub calls: usize,
    /// Concurrent deploys while filling.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Mode(s).
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    pub mode: ModeArg,
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<28} n={:<4} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        samples.len(),
        percentile(&samples, 50),
        percentile(&samples, 99),
        samples.last().copied().unwrap_or_default()
    );
}

async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let ssa = PatchParams::apply("pipelines-bench").force();
    for crd in omjob_api::crds::all() {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        crds.patch(&name, &ssa, &Patch::Apply(&crd)).await?;
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .context("CRD not established")??;
    }
    Ok(())
}

async fn namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "openmetadata-ingestion"}}))?;
    Api::<ServiceAccount>::namespaced(client.clone(), name)
        .create(&PostParams::default(), &sa)
        .await?;
    omjob_testbed::fixture::wait_for_service_account(
        client,
        name,
        "openmetadata-ingestion",
        Duration::from_secs(60),
    )
    .await
    .map_err(anyhow::Error::msg)
}

async fn measure(client: Client, operator: bool, args: &Args) -> anyhow::Result<()> {
    let mode = if operator { "operator" } else { "standard" };
    let ns = format!("pipelines-bench-{mode}");
    namespace(&client, &ns).await?;
    let config = Config::from_sources(
        Some(&serde_json::to_string(&json!({
            "namespace": ns, "useOMJobOperator": operator, "ingestionImage": "ingestion",
            "podAnnotations": {"testbed.omjob.dev/exit-code": "0", "testbed.omjob.dev/run-seconds": "1"},
        }))?),
        Vec::new(),
    )?;
    let service = PipelineClient::new(client, config).await?;
    step(&format!(
        "{mode} mode: deploying {} pipelines ({} in flight; every other one scheduled)",
        args.pipelines, args.concurrency
    ));
    let started = Instant::now();
    let deploys: Vec<Duration> = futures::stream::iter(0..args.pipelines)
        .map(|i| {
            let service = &service;
            async move {
                let mut body = json!({"pipelineType": "metadata", "fullyQualifiedName": format!("svc.bench-{i}"),
                                      "workflowConfig": {"source": {"type": "mysql", "serviceName": format!("svc-{i}")}},
                                      "credentials": {"OM_JWT": format!("jwt-{i:06}")}});
                if i % 2 == 0 {
                    body["schedule"] = json!("0 0 1 1 *");
                }
                let def = pipeline::from_value(body)?;
                let t = Instant::now();
                service.deploy(def, Some(&format!("bench-{i}"))).await?;
                anyhow::Ok(t.elapsed())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    let fill = started.elapsed();
    println!("deployed {} pipelines in {fill:.1?}", args.pipelines);
    report(&format!("{mode} deploy (concurrent)"), deploys);

    step(&format!("{mode} mode: {} sequential `run` calls", args.calls));
    let mut runs = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let name = format!("bench-{}", (i * 7) % args.pipelines);
        let t = Instant::now();
        service.run(&name).await?;
        runs.push(t.elapsed());
    }
    report(&format!("{mode} run"), runs);

    step(&format!("{mode} mode: {} sequential `runs` calls", args.calls));
    let mut lists = Vec::with_capacity(args.calls);
    let mut seen = 0;
    for i in 0..args.calls {
        let name = format!("bench-{}", (i * 7) % args.pipelines);
        let t = Instant::now();
        seen += service.runs(&name).await?.len();
        lists.push(t.elapsed());
    }
    report(&format!("{mode} runs"), lists);
    println!("({seen} runs listed in all)");
    Ok(())
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    step("Starting a rule-mode testbed (pods finish without processes)");
    let testbed = crate::bench::rule_testbed("pipelines-bench-", 1).await?;
    let client = testbed.control_plane().client().await?;
    if args.mode != ModeArg::Operator {
        measure(client.clone(), false, args).await?;
    }
    if args.mode != ModeArg::Standard {
        install_crds(&client).await?;
        measure(client, true, args).await?;
    }
    Ok(())
}
