//! The exit-latency loads of `bench omjob`, each run against the operator and against the
//! physical-limit twin ([`super::twin`]) in turn, on the same testbed.
//!
//! A load is either rounds of a few OMJobs whose main pods end at once (low load), or a wave:
//! `ending` main stages created at the bench's create rate, all running before the first ends,
//! their ends spread evenly over a window, optionally with new OMJobs arriving during that window
//! (the mixed burst: exit handlers must not queue behind new main pods). The twin gets the same
//! main pods (same simulated command and duration, same names, rate and count) in its own
//! namespace. Sides alternate within each load (operator, twin, twin, operator, ...) so that
//! noise on the shared machine, and the slow growth of what the API server stores, hit both.
//!
//! Every time comes from the bench's observer pod watch ([`spawn_observer`]), one stream over all
//! namespaces, so operator and twin are measured on the same clock by the same watch.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use omjob_api::{OMJob, Phase};

use super::{
    omjob::{
        Pacer, RUN_SECONDS, SharedSeen, active_at_first_termination, bucket_quantile, create_paced,
        latencies, omjob_object, record_omjob_pod, spawn_watch, update_seen, wait_terminal, with_seen,
    },
    operator_process::OperatorProcess,
    twin::{self, FOLLOW_UP, MAIN},
};
use crate::step;

/// Time after each run before the next starts: trailing requests of one side's last lifecycles
/// must not land in the other side's run.
const SETTLE: Duration = Duration::from_secs(2);
/// Added to twice the creation time of a wave before its first main stage ends, so every main
/// pod of the wave exists and runs by then (the operator must create them after the OMJobs).
const LEAD_MARGIN: Duration = Duration::from_secs(8);
/// How long after a mixed wave's window the arrivals' own main stages start to end, so they are
/// new main pods during the window and not exits.
const ARRIVAL_EXTRA: Duration = Duration::from_secs(2);

/// Who handles the exits in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Operator,
    Twin,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Twin => "twin",
        }
    }
}

/// How the main stages of a load end.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// `rounds` times: `at_once` OMJobs whose main pods end at once; the next round starts when
    /// every one of them is done.
    Rounds { at_once: usize, rounds: usize },
    /// `ending` main stages, all running, ending evenly spread over `window`; `arrivals` new
    /// OMJobs created evenly over the same window.
    Wave {
        ending: usize,
        window: Duration,
        arrivals: usize,
    },
}

impl Shape {
    /// Lifecycles one run of this load makes.
    pub fn lifecycles(&self) -> usize {
        match self {
            Self::Rounds { at_once, rounds } => at_once * rounds,
            Self::Wave { ending, arrivals, .. } => ending + arrivals,
        }
    }
}

/// The goal an operator p99 is held to, against the twin's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Goal {
    /// `p99 ≤ twin p99 + 50 ms` and `p99 < 100 ms`.
    LowLoad,
    /// `p99 ≤ factor × twin p99`.
    Ratio(f64),
}

impl Goal {
    pub fn text(self) -> String {
        match self {
            Self::LowLoad => "≤ twin + 50 ms and < 100 ms".to_owned(),
            Self::Ratio(f) => format!("≤ {f} × twin"),
        }
    }

    pub fn met(self, operator: Duration, twin: Duration) -> bool {
        match self {
            Self::LowLoad => {
                operator <= twin + Duration::from_millis(50) && operator < Duration::from_millis(100)
            }
            Self::Ratio(f) => operator.as_secs_f64() <= f * twin.as_secs_f64(),
        }
    }
}

/// One load of the latency comparison.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    /// Prefix of the objects' names.
    pub key: &'static str,
    /// What the table calls it.
    pub label: String,
    pub shape: Shape,
    pub goal: Goal,
}

/// What one run (one side, one repetition) of a load measured.
#[derive(Debug, Default)]
pub(crate) struct RunSample {
    /// Main end → follow-up pod created, per measured lifecycle; `None` where the pair was not seen.
    pub latencies: Vec<Option<Duration>>,
    /// Lifecycles not yet done when the first main stage ended (waves only).
    pub active: Option<usize>,
    /// First to last main-stage end, as the observer saw them (waves only).
    pub spread: Option<Duration>,
    /// The operator's own `omjob_exit_handler_latency_seconds` p50/p99 bucket bounds over the run.
    pub own: Option<(Option<f64>, Option<f64>)>,
}

/// A load's runs, both sides, every repetition.
#[derive(Debug)]
pub(crate) struct LoadResult {
    pub load: Load,
    pub operator: Vec<RunSample>,
    pub twin: Vec<RunSample>,
}

impl LoadResult {
    /// The latencies of every run of `side`, pooled and sorted; and how many were not seen.
    pub fn pooled(&self, side: Side) -> (Vec<Duration>, usize) {
        let runs = match side {
            Side::Operator => &self.operator,
            Side::Twin => &self.twin,
        };
        let all: Vec<Option<Duration>> = runs.iter().flat_map(|r| r.latencies.iter().copied()).collect();
        let mut got: Vec<Duration> = all.iter().flatten().copied().collect();
        got.sort();
        let missing = all.len() - got.len();
        (got, missing)
    }
}

/// What the loads run against.
#[derive(Debug)]
pub(crate) struct Runner<'a> {
    pub omjobs: Api<OMJob>,
    pub twin_pods: Api<Pod>,
    pub omjob_seen: SharedSeen,
    pub twin_seen: SharedSeen,
    pub operator: &'a OperatorProcess,
    pub qps: f64,
    pub concurrency: usize,
}

impl Runner<'_> {
    /// Runs every load `reps` times on each side, sides alternating, one load after the other.
    ///
    /// # Errors
    /// When a create fails for good or a run does not finish in time.
    pub async fn run_all(&self, loads: Vec<Load>, reps: usize) -> anyhow::Result<Vec<LoadResult>> {
        let mut results = Vec::new();
        for load in loads {
            let mut result = LoadResult {
                load,
                operator: Vec::new(),
                twin: Vec::new(),
            };
            for rep in 0..reps {
                // ABBA: neither side always runs first, right after the other's tail.
                let order = if rep % 2 == 0 {
                    [Side::Operator, Side::Twin]
                } else {
                    [Side::Twin, Side::Operator]
                };
                for side in order {
                    step(&format!(
                        "Latency, {} ({}, repetition {} of {reps})",
                        result.load.label,
                        side.name(),
                        rep + 1
                    ));
                    let sample = self.run_one(&result.load, side, rep).await?;
                    match side {
                        Side::Operator => result.operator.push(sample),
                        Side::Twin => result.twin.push(sample),
                    }
                }
            }
            results.push(result);
        }
        Ok(results)
    }

    async fn run_one(&self, load: &Load, side: Side, rep: usize) -> anyhow::Result<RunSample> {
        let before = match side {
            Side::Operator => Some(self.operator.exit_latency_buckets().await?),
            Side::Twin => None,
        };
        let mut sample = match load.shape {
            Shape::Rounds { at_once, rounds } => self.rounds(side, load.key, rep, at_once, rounds).await?,
            Shape::Wave {
                ending,
                window,
                arrivals,
            } => self.wave(side, load.key, rep, ending, window, arrivals).await?,
        };
        tokio::time::sleep(SETTLE).await;
        if let Some(before) = before {
            let after = self.operator.exit_latency_buckets().await?;
            sample.own = Some((
                bucket_quantile(&before, &after, 0.5),
                bucket_quantile(&before, &after, 0.99),
            ));
        }
        Ok(sample)
    }

    fn seen(&self, side: Side) -> &SharedSeen {
        match side {
            Side::Operator => &self.omjob_seen,
            Side::Twin => &self.twin_seen,
        }
    }

    /// Creates one run per name on `side` (an OMJob, or the twin's main pod), with the rule-mode
    /// annotations `ann` gives its main pod.
    async fn create(
        &self,
        side: Side,
        names: &[String],
        pacer: &Pacer,
        ann: &(dyn Fn(&str) -> BTreeMap<String, String> + Sync),
    ) -> anyhow::Result<()> {
        match side {
            Side::Operator => {
                create_paced(&self.omjobs, names, pacer, self.concurrency, |n| {
                    omjob_object(n, &ann(n))
                })
                .await
            }
            Side::Twin => {
                create_paced(&self.twin_pods, names, pacer, self.concurrency, |n| {
                    twin::main_pod(n, &ann(n))
                })
                .await
            }
        }
    }

    async fn rounds(
        &self,
        side: Side,
        key: &str,
        rep: usize,
        at_once: usize,
        rounds: usize,
    ) -> anyhow::Result<RunSample> {
        let mut all = Vec::new();
        for round in 0..rounds {
            let names: Vec<String> = (0..at_once).map(|i| format!("{key}-{rep}-{round}-{i}")).collect();
            self.create(side, &names, &Pacer::new(self.qps), &|_| BTreeMap::new())
                .await?;
            wait_terminal(self.seen(side), &names).await?;
            all.extend(names);
        }
        Ok(RunSample {
            latencies: latencies(self.seen(side), &all),
            ..RunSample::default()
        })
    }

    async fn wave(
        &self,
        side: Side,
        key: &str,
        rep: usize,
        ending: usize,
        window: Duration,
        arrivals: usize,
    ) -> anyhow::Result<RunSample> {
        let names: Vec<String> = (0..ending).map(|i| format!("{key}-{rep}-{i}")).collect();
        let new_names: Vec<String> = (0..arrivals).map(|j| format!("{key}-{rep}-new-{j}")).collect();
        #[allow(clippy::cast_precision_loss)]
        let create_for = Duration::from_secs_f64(ending as f64 / self.qps.max(0.001));
        let first_end = Instant::now() + create_for * 2 + LEAD_MARGIN;
        let last_end = first_end + window;
        let ends: HashMap<String, Instant> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), first_end + window.mul_f64(fraction(i, ending))))
            .chain(new_names.iter().enumerate().map(|(j, n)| {
                (
                    n.clone(),
                    last_end + ARRIVAL_EXTRA + window.mul_f64(fraction(j, arrivals)),
                )
            }))
            .collect();
        // Run-seconds are relative to the pod's start, so they are taken when the object is made,
        // just before its create: the planned end minus now.
        let ann = |n: &str| {
            let end = ends.get(n).copied().unwrap_or(first_end);
            let run = end.saturating_duration_since(Instant::now());
            BTreeMap::from([(RUN_SECONDS.to_owned(), format!("{:.3}", run.as_secs_f64()))])
        };
        let pacer = Pacer::new(self.qps);
        let wave = self.create(side, &names, &pacer, &ann);
        let arrive = async {
            if new_names.is_empty() {
                return Ok(());
            }
            tokio::time::sleep_until(first_end.into()).await;
            #[allow(clippy::cast_precision_loss)]
            let rate = arrivals as f64 / window.as_secs_f64().max(0.001);
            self.create(side, &new_names, &Pacer::new(rate), &ann).await
        };
        futures::try_join!(wave, arrive)?;
        let every: Vec<String> = names.iter().chain(&new_names).cloned().collect();
        wait_terminal(self.seen(side), &every).await?;
        let spread = with_seen(self.seen(side), |s| {
            let ends: Vec<Instant> = names
                .iter()
                .filter_map(|n| s.main_terminated.get(n).copied())
                .collect();
            Some(ends.iter().max()?.saturating_duration_since(*ends.iter().min()?))
        });
        Ok(RunSample {
            latencies: latencies(self.seen(side), &names),
            // Of the ending ones: the arrivals do not exist yet at the first end.
            active: Some(active_at_first_termination(self.seen(side), &names)),
            spread,
            own: None,
        })
    }
}

/// `i / (n - 1)`: where the `i`-th of `n` ends falls in a window (0 for a single one).
#[allow(clippy::cast_precision_loss)]
fn fraction(i: usize, n: usize) -> f64 {
    if n <= 1 { 0.0 } else { i as f64 / (n - 1) as f64 }
}

/// The observer: one pod watch over every namespace, recording the operator's pods (by owning
/// OMJob) into `omjob_seen` and the twin's (by run) into `twin_seen`, with the same clock.
///
/// # Errors
/// When its first list does not finish.
pub(crate) async fn spawn_observer(
    client: Client,
    omjob_namespace: &'static str,
    twin_namespace: &'static str,
    omjob_seen: SharedSeen,
    twin_seen: SharedSeen,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    struct Observed {
        omjob_namespace: &'static str,
        twin_namespace: &'static str,
        omjob: SharedSeen,
        twin: SharedSeen,
    }
    let observed = Observed {
        omjob_namespace,
        twin_namespace,
        omjob: omjob_seen,
        twin: twin_seen,
    };
    spawn_watch(Api::<Pod>::all(client), observed, |o, pod, now| {
        let ns = pod.metadata.namespace.as_deref();
        if ns == Some(o.omjob_namespace) {
            record_omjob_pod(&o.omjob, pod, now);
        } else if ns == Some(o.twin_namespace) {
            record_twin_pod(&o.twin, pod, now);
        }
    })
    .await
}

/// A twin pod, as the observer records it: the main pod's first terminated sighting, the
/// follow-up pod's first sighting, and the run done when the follow-up pod has finished (the
/// twin's counterpart of an OMJob turning terminal).
fn record_twin_pod(seen: &SharedSeen, pod: &Pod, now: Instant) {
    let Some((base, role)) = twin::role_of(pod) else {
        return;
    };
    match role {
        MAIN if twin::terminated_exit_code(pod).is_some() => update_seen(seen, |s| {
            s.main_terminated.entry(base.to_owned()).or_insert(now);
        }),
        FOLLOW_UP => {
            let phase = match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
                Some("Succeeded") => Some(Phase::Succeeded),
                Some("Failed") => Some(Phase::Failed),
                _ => None,
            };
            update_seen(seen, |s| {
                s.exit_pods
                    .entry(base.to_owned())
                    .or_default()
                    .entry(format!("{base}-exit"))
                    .or_insert(now);
                if let Some(phase) = phase {
                    s.terminal.entry(base.to_owned()).or_insert((now, phase));
                }
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_compare_the_operator_with_the_twin() {
        let ms = Duration::from_millis;
        assert!(Goal::LowLoad.met(ms(60), ms(20)));
        assert!(!Goal::LowLoad.met(ms(80), ms(20)));
        assert!(!Goal::LowLoad.met(ms(120), ms(90)));
        assert!(Goal::Ratio(1.5).met(ms(150), ms(100)));
        assert!(!Goal::Ratio(1.5).met(ms(151), ms(100)));
    }

    #[test]
    fn ends_spread_over_the_whole_window() {
        assert!((fraction(0, 5) - 0.0).abs() < f64::EPSILON);
        assert!((fraction(4, 5) - 1.0).abs() < f64::EPSILON);
        assert!((fraction(0, 1) - 0.0).abs() < f64::EPSILON);
    }
}
