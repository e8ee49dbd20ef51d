//! `bench node`: how many pods a minute the simulated node completes in rule mode.

use std::{collections::HashSet, time::Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::json;

use crate::step;

/// Options of `bench node`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of pods.
    #[arg(long, default_value_t = 2000)]
    pub pods: usize,
    /// Concurrent creates in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    step("Starting a rule-mode testbed (pods finish without processes)");
    let testbed = crate::bench::rule_testbed("omjob-bench-", 1).await?;
    let client = testbed.control_plane().client().await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");

    // Watch first, so that no completion is missed.
    let done_stream = watcher(pods.clone(), watcher::Config::default()).applied_objects();
    let total = args.pods;
    let waiter = tokio::spawn(async move {
        let mut done = HashSet::new();
        tokio::pin!(done_stream);
        while let Some(p) = done_stream.try_next().await.context("pod watch")? {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                done.insert(p.metadata.name.clone().unwrap_or_default());
                if done.len() == total {
                    return anyhow::Ok(Instant::now());
                }
            }
        }
        anyhow::bail!("pod watch ended early")
    });

    step(&format!(
        "Creating {} pods ({} in flight) through the scheduler",
        args.pods, args.concurrency
    ));
    let start = Instant::now();
    futures::stream::iter(0..args.pods)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let p: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("bench-{i}")},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x", "command": ["true"]}]}
                }))?;
                pods.create(&PostParams::default(), &p).await.context("create pod")?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let created = start.elapsed();
    let finished = waiter.await??.duration_since(start);
    let per_minute = args.pods as f64 / finished.as_secs_f64() * 60.0;
    println!("pods:                       {}", args.pods);
    println!("all created after:          {:.2}s", created.as_secs_f64());
    println!("all completed after:        {:.2}s", finished.as_secs_f64());
    println!("completed pods per minute:  {per_minute:.0}");
    drop(testbed);
    Ok(())
}
