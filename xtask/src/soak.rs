//! `cargo xtask soak`: hundreds of OMJobs with random outcomes on a rule-mode testbed while the
//! operator process is SIGKILLed at random and restarted; then counts the exit-handler pods each
//! OMJob got. Exactly one each is the operator's promise; the command fails otherwise.
//!
//! Not run by CI: it takes minutes and is random by design. The seed is printed, and `--seed`
//! replays the same outcomes and kill schedule (the timing of the machine still varies).

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    time::Duration,
};

use anyhow::{Context as _, bail};
use kube::Api;
use omjob_api::{OMJob, Phase};
use omjob_testbed::node::pod::{RULE_EXIT_CODE, RULE_OOM, RULE_RUN_SECONDS};
use rand::{RngExt as _, SeedableRng as _, rngs::StdRng};

use crate::{
    bench::{
        omjob::{
            AbortOnDrop, Pacer, Seen, create_namespace, create_paced, install_crds, omjob_object,
            spawn_omjob_watch, spawn_pod_watch, wait_seen, with_seen,
        },
        operator_process::{OperatorOptions, OperatorProcess, Started},
    },
    step,
};

/// Namespace of the soak's OMJobs.
const NAMESPACE: &str = "soak";

/// Options of `soak`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of OMJobs.
    #[arg(long, default_value_t = 300)]
    pub omjobs: usize,
    /// Seed of the random outcomes and kill schedule (random when left out; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Operator replicas; with 2, both run with LEADER_ELECTION=true and either may be killed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub replicas: u8,
    /// OMJobs created per second.
    #[arg(long, default_value_t = 5.0)]
    pub qps: f64,
    /// Longest main-pod run time in seconds (each OMJob draws 0 to this).
    #[arg(long, default_value_t = 10.0)]
    pub max_run_seconds: f64,
    /// Longest time between two kills in seconds (each interval draws 1 s to this).
    #[arg(long, default_value_t = 6.0)]
    pub max_kill_interval: f64,
}

/// What an OMJob is made to do, through the rule-mode annotations of its two pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Outcome {
    /// Main exits 0, exit handler exits 0.
    Succeeds,
    /// Main exits with 1, 2 or 3.
    MainFails,
    /// Main is OOM-killed (exit 137).
    MainOomKilled,
    /// Main exits 0, the exit handler exits 1.
    ExitHandlerFails,
}

impl Outcome {
    const ALL: [Self; 4] = [
        Self::Succeeds,
        Self::MainFails,
        Self::MainOomKilled,
        Self::ExitHandlerFails,
    ];

    /// The phase the OMJob must end in.
    fn expected(self) -> Phase {
        match self {
            Self::Succeeds => Phase::Succeeded,
            _ => Phase::Failed,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Succeeds => "succeeds",
            Self::MainFails => "main exits non-zero",
            Self::MainOomKilled => "main OOM-killed",
            Self::ExitHandlerFails => "exit handler fails",
        })
    }
}

/// One planned OMJob.
#[derive(Debug, Clone)]
struct Plan {
    name: String,
    outcome: Outcome,
    main: BTreeMap<String, String>,
    exit: BTreeMap<String, String>,
}

fn plan(rng: &mut StdRng, i: usize, max_run: f64) -> Plan {
    let outcome = match rng.random_range(0..10) {
        0..=3 => Outcome::Succeeds,
        4..=5 => Outcome::MainFails,
        6..=7 => Outcome::MainOomKilled,
        _ => Outcome::ExitHandlerFails,
    };
    let secs = |rng: &mut StdRng, max: f64| format!("{:.1}", rng.random_range(0.0..=max.max(0.0)));
    let mut main = BTreeMap::from([(RULE_RUN_SECONDS.to_owned(), secs(rng, max_run))]);
    let mut exit = BTreeMap::from([(RULE_RUN_SECONDS.to_owned(), secs(rng, 2.0))]);
    match outcome {
        Outcome::Succeeds => {}
        Outcome::MainFails => {
            main.insert(RULE_EXIT_CODE.to_owned(), rng.random_range(1..=3).to_string());
        }
        Outcome::MainOomKilled => {
            main.insert(RULE_OOM.to_owned(), "true".to_owned());
        }
        Outcome::ExitHandlerFails => {
            exit.insert(RULE_EXIT_CODE.to_owned(), "1".to_owned());
        }
    }
    Plan {
        name: format!("soak-{i}"),
        outcome,
        main,
        exit,
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(soak(args))
}

async fn soak(args: &Args) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(rand::random);
    println!("soak seed: {seed} (replay with --seed {seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let plans: Vec<Plan> = (0..args.omjobs)
        .map(|i| plan(&mut rng, i, args.max_run_seconds))
        .collect();

    step("Starting a rule-mode testbed");
    let testbed = crate::bench::rule_testbed("omjob-soak-", 1).await?;
    let client = testbed.control_plane().client().await?;
    install_crds(&client).await?;
    create_namespace(&client, NAMESPACE).await?;
    let omjobs: Api<OMJob> = Api::namespaced(client.clone(), NAMESPACE);
    let seen = Seen::shared();
    let watches = AbortOnDrop(vec![
        spawn_pod_watch(Api::namespaced(client.clone(), NAMESPACE), seen.clone()).await?,
        spawn_omjob_watch(omjobs.clone(), seen.clone()).await?,
    ]);

    let election = args.replicas > 1;
    step(&format!(
        "Starting {} operator replica(s){}",
        args.replicas,
        if election { " with leader election" } else { "" }
    ));
    let mut operators = Vec::new();
    for i in 0..args.replicas {
        let mut opts = OperatorOptions::new(testbed.dir().join(format!("operator-{i}.log")));
        opts.leader_election = election;
        let started = if election {
            Started::Serving
        } else {
            Started::Ready
        };
        operators.push(OperatorProcess::start(&testbed, opts, started).await?);
    }

    // The killer runs until told to stop and hands the processes back.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let max_interval = args.max_kill_interval.max(1.0);
    let mut kill_rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    let killer = tokio::spawn(async move {
        let mut kills = 0_u32;
        loop {
            let wait = Duration::from_secs_f64(kill_rng.random_range(1.0..=max_interval));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop_rx.wait_for(|s| *s) => break,
            }
            let i = kill_rng.random_range(0..operators.len());
            let Some(op) = operators.get_mut(i) else { break };
            op.kill()?;
            kills += 1;
            let down = Duration::from_secs_f64(kill_rng.random_range(0.0..=1.5));
            tokio::time::sleep(down).await;
            op.restart().await?;
        }
        anyhow::Ok((operators, kills))
    });

    step(&format!(
        "Creating {} OMJobs at {}/s while SIGKILLing the operator every 1-{max_interval} s",
        plans.len(),
        args.qps
    ));
    let by_name: HashMap<&str, &Plan> = plans.iter().map(|p| (p.name.as_str(), p)).collect();
    let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    create_paced(&omjobs, &names, &Pacer::new(args.qps), 8, |name| {
        let p = by_name.get(name).context("unplanned name")?;
        let mut o = omjob_object(name, &p.main)?;
        if let Some(t) = o.spec.exit_handler_spec.as_mut() {
            t.annotations = Some(p.exit.clone());
        }
        Ok(o)
    })
    .await?;

    step("Waiting until every OMJob is terminal (the killing goes on meanwhile)");
    let limit =
        Duration::from_secs(600) + Duration::from_secs(1) * u32::try_from(plans.len()).unwrap_or(u32::MAX);
    let waited = wait_seen(&seen, limit, "OMJobs terminal", |s| {
        (
            names.iter().filter(|n| s.terminal.contains_key(*n)).count(),
            names.len(),
        )
    })
    .await;
    let _ = stop_tx.send(true);
    let (mut operators, kills) = killer.await.context("the killer task panicked")??;
    // A late duplicate would come from a restarted operator acting on a stale view: give the
    // survivors a moment to show one.
    step("Killing stopped; watching 10 s more for late exit pods");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let starts: Vec<u32> = operators.iter().map(OperatorProcess::starts).collect();
    for op in &mut operators {
        op.kill()?;
    }

    drop(watches);
    let failed = report(&plans, &seen, kills, &starts);
    drop(testbed);
    waited?;
    if failed > 0 {
        bail!("{failed} OMJob(s) did not get exactly one exit-handler pod (seed {seed})");
    }
    Ok(())
}

/// Prints the histogram and tables; returns how many OMJobs had other than one exit pod.
fn report(plans: &[Plan], seen: &crate::bench::omjob::SharedSeen, kills: u32, starts: &[u32]) -> usize {
    with_seen(seen, |s| {
        println!(
            "\n== soak: {} OMJobs, {kills} SIGKILLs, operator starts per replica {starts:?} ==",
            plans.len()
        );
        let exit_pods = |p: &Plan| s.exit_pods.get(&p.name).map_or(0, BTreeMap::len);

        let mut histogram: BTreeMap<usize, usize> = BTreeMap::new();
        for p in plans {
            *histogram.entry(exit_pods(p)).or_default() += 1;
        }
        println!("\nExit-handler pods per OMJob (distinct names seen on the pod watch):");
        for (pods, n) in &histogram {
            println!("   {pods} exit pod(s): {n} OMJob(s)");
        }

        let wrong: Vec<&Plan> = plans.iter().filter(|p| exit_pods(p) != 1).collect();
        if !wrong.is_empty() {
            println!("\nOMJobs without exactly one exit pod:");
            for p in &wrong {
                let pods: Vec<&String> = s
                    .exit_pods
                    .get(&p.name)
                    .map(|m| m.keys().collect())
                    .unwrap_or_default();
                let phase = s.terminal.get(&p.name).map(|t| t.1.to_string());
                println!(
                    "   {:<12} intended: {:<22} phase: {:<10} exit pods: {pods:?}",
                    p.name,
                    p.outcome.to_string(),
                    phase.as_deref().unwrap_or("(not terminal)")
                );
            }
        }

        println!("\nPhase by intended outcome:");
        println!(
            "   {:<22} {:>8} {:>10} {:>8} {:>14}",
            "intended", "count", "Succeeded", "Failed", "not terminal"
        );
        let mut mismatched = Vec::new();
        for outcome in Outcome::ALL {
            let of: Vec<&Plan> = plans.iter().filter(|p| p.outcome == outcome).collect();
            let phase = |p: &&Plan| s.terminal.get(&p.name).map(|t| t.1);
            let count = |want: Option<Phase>| of.iter().filter(|p| phase(p) == want).count();
            println!(
                "   {:<22} {:>8} {:>10} {:>8} {:>14}",
                outcome.to_string(),
                of.len(),
                count(Some(Phase::Succeeded)),
                count(Some(Phase::Failed)),
                count(None)
            );
            mismatched.extend(
                of.iter()
                    .filter(|p| phase(p).is_some_and(|ph| ph != outcome.expected()))
                    .map(|p| p.name.clone()),
            );
        }
        if mismatched.is_empty() {
            println!("   every terminal OMJob ended in the phase its outcome implies");
        } else {
            println!("   ended in another phase than intended: {mismatched:?}");
        }
        wrong.len()
    })
}
