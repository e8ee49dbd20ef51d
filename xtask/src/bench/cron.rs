//! `bench cron`: many CronOMJobs due in the same minute, on a rule-mode testbed with the release
//! operator binary running as its own process (wall clock, as in a cluster).
//!
//! Every CronOMJob gets the schedule `M H * * *` of one minute far enough ahead that all of them
//! exist before it comes. The figures: how long after that slot the last of their OMJobs exists
//! (seen by this process's own watch, started before the slot) and the newest OMJob
//! `creationTimestamp` (the API server's clock, whole seconds), how long until every run finished,
//! and the operator's resident memory and CPU time around the slot.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, bail};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use omjob_api::{CronOMJob, OMJob, Phase};
use serde_json::json;

use super::{
    omjob::{AbortOnDrop, Pacer, create_namespace, create_paced, install_crds, spawn_watch},
    operator_process::{OperatorOptions, OperatorProcess, Started},
};
use crate::step;

/// Namespace of the benchmark's CronOMJobs and their runs.
const NAMESPACE: &str = "bench-cron";

/// Options of `bench cron`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// CronOMJobs due in the same minute.
    #[arg(long, default_value_t = 1000)]
    pub crons: usize,
    /// Client-side create rate of the CronOMJobs, in objects per second.
    #[arg(long, default_value_t = 100.0)]
    pub qps: f64,
    /// Creates in flight at most.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The operator's RECONCILIATION_THREADS (its default when left out).
    #[arg(long)]
    pub threads: Option<u16>,
}

/// What the watch saw of each OMJob: when it first appeared, and when it was first terminal.
#[derive(Debug, Default)]
struct Runs {
    appeared: HashMap<String, Instant>,
    finished: HashMap<String, (Instant, Phase)>,
    newest_creation: Option<Timestamp>,
}

fn cron_object(name: &str, schedule: &str) -> anyhow::Result<CronOMJob> {
    Ok(serde_json::from_value(json!({
        "apiVersion": omjob_api::API_VERSION, "kind": "CronOMJob",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/pipeline": name}},
        "spec": {
            "schedule": schedule,
            "omJobSpec": {
                "mainPodSpec": {"image": "ingestion", "serviceAccountName": "default",
                    "command": ["python", "main.py"],
                    "env": [{"name": "pipelineRunId", "value": "{{ omjob.uid }}"}]},
                "exitHandlerSpec": {"image": "ingestion", "serviceAccountName": "default",
                    "command": ["python", "exit_handler.py"],
                    "env": [{"name": "jobName", "value": "{{ omjob.name }}"}]}
            }
        }
    }))?)
}

/// Watches the namespace's OMJobs; returns once the initial list is done.
async fn spawn_run_watch(
    api: Api<OMJob>,
    runs: Arc<Mutex<Runs>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    spawn_watch(api, runs, |runs, o, now| {
        let name = o.metadata.name.clone().unwrap_or_default();
        let mut r = runs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        r.appeared.entry(name.clone()).or_insert(now);
        if let Some(t) = o.metadata.creation_timestamp.as_ref() {
            r.newest_creation = r.newest_creation.max(Some(t.0));
        }
        if let Some(p) = o
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .filter(|p| p.is_terminal())
        {
            r.finished.entry(name).or_insert((now, p));
        }
    })
    .await
}

/// Polls `runs` until `count` says `n` are there, or fails after `limit`; returns the count.
async fn wait_for(
    runs: &Arc<Mutex<Runs>>,
    n: usize,
    limit: Duration,
    what: &str,
    count: impl Fn(&Runs) -> usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let have = count(&runs.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if have >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {have} of {n} {what} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let n = args.crons;
    step("Starting a rule-mode testbed with one node");
    let testbed = crate::bench::rule_testbed("omjob-bench-cron-", 1).await?;
    let client = testbed.control_plane().client().await?;
    install_crds(&client).await?;
    create_namespace(&client, NAMESPACE).await?;

    let runs = Arc::new(Mutex::new(Runs::default()));
    let omjobs: Api<OMJob> = Api::namespaced(client.clone(), NAMESPACE);
    let _watch = AbortOnDrop(vec![spawn_run_watch(omjobs, runs.clone()).await?]);

    let mut opts = OperatorOptions::new(testbed.dir().join("operator.log"));
    if let Some(t) = args.threads {
        opts.env.push(("RECONCILIATION_THREADS".into(), t.to_string()));
    }
    let operator = OperatorProcess::start(&testbed, opts, Started::Ready).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = operator.memory()?;

    // The first whole minute that leaves time to create every CronOMJob, plus a margin.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let creating = (n as f64 / args.qps.max(0.001)).ceil() as i64;
    let earliest = Timestamp::now().as_second() + creating + 20;
    let slot_second = (earliest / 60 + 1) * 60;
    let slot = Timestamp::from_second(slot_second)?;
    let minute = (slot_second / 60) % 60;
    let hour = (slot_second / 3600) % 24;
    let schedule = format!("{minute} {hour} * * *");
    step(&format!(
        "Creating {n} CronOMJobs with schedule `{schedule}` (UTC), all due at {slot}"
    ));
    let names: Vec<String> = (0..n).map(|i| format!("cron-{i}")).collect();
    let crons: Api<CronOMJob> = Api::namespaced(client.clone(), NAMESPACE);
    let created = Instant::now();
    create_paced(&crons, &names, &Pacer::new(args.qps), args.concurrency, |name| {
        cron_object(name, &schedule)
    })
    .await?;
    let create_time = created.elapsed();

    // The slot as an Instant of this process, to compare with the watch's times.
    let to_slot = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(slot_second)?);
    let wait = to_slot
        .duration_since(SystemTime::now())
        .context("creating the CronOMJobs took past their slot; lower --crons or raise --qps")?;
    let slot_instant = Instant::now() + wait;
    tokio::time::sleep(wait.saturating_sub(Duration::from_secs(2))).await;
    let before = operator.memory()?;
    let cpu_before = operator.cpu_seconds()?;
    step(&format!("Waiting for the slot and for {n} OMJobs"));

    wait_for(&runs, n, Duration::from_secs(600), "OMJobs", |r| r.appeared.len()).await?;
    let (last_seen, newest_creation) = {
        let r = runs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (r.appeared.values().max().copied(), r.newest_creation)
    };
    let all_exist = last_seen
        .context("no OMJob seen")?
        .saturating_duration_since(slot_instant);
    let at_all_exist = operator.memory()?;
    let cpu_to_exist = operator.cpu_seconds()? - cpu_before;

    step("Waiting for every run to finish");
    wait_for(&runs, n, Duration::from_secs(900), "finished runs", |r| {
        r.finished.len()
    })
    .await?;
    let (last_done, failed) = {
        let r = runs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            r.finished.values().map(|(t, _)| *t).max(),
            r.finished
                .values()
                .filter(|(_, p)| *p != Phase::Succeeded)
                .count(),
        )
    };
    let all_done = last_done
        .context("no run finished")?
        .saturating_duration_since(slot_instant);
    let after = operator.memory()?;

    println!(
        "\n## bench cron: {n} CronOMJobs due at the same minute (release operator, rule-mode testbed)\n"
    );
    println!("| What | Result |");
    println!("|---|---|");
    println!(
        "| Creating the {n} CronOMJobs at {} /s | {} |",
        args.qps,
        secs(create_time)
    );
    println!(
        "| Slot → all {n} OMJobs exist (this process's watch) | {} |",
        secs(all_exist)
    );
    if let Some(c) = newest_creation {
        println!(
            "| Slot → newest OMJob creationTimestamp (API server, whole seconds) | {} s |",
            c.as_second() - slot.as_second()
        );
    }
    println!(
        "| Slot → all {n} runs finished (main + exit pod each; {failed} not Succeeded) | {} |",
        secs(all_done)
    );
    println!("| Operator CPU from 2 s before the slot until all OMJobs existed | {cpu_to_exist:.2} s |");
    println!(
        "| Operator RSS idle (no CronOMJobs) | {:.1} MiB |",
        idle.rss_mib()
    );
    println!(
        "| Operator RSS with {n} CronOMJobs, before the slot | {:.1} MiB |",
        before.rss_mib()
    );
    println!(
        "| Operator RSS when all OMJobs existed | {:.1} MiB |",
        at_all_exist.rss_mib()
    );
    println!(
        "| Operator RSS after all runs finished (peak since start) | {:.1} MiB ({:.1} MiB) |",
        after.rss_mib(),
        after.peak_mib()
    );
    Ok(())
}
