//! What `bench omjob` prints: one side-by-side table (figure | goal | operator | twin | ratio |
//! met), then the per-run details it was computed from. Goals are printed as met or not; nothing
//! here fails the bench.

use std::{collections::BTreeMap, time::Duration};

use super::{
    omjob::percentile,
    omjob_loads::{Goal, LoadResult, RunSample, Side},
    operator_process::{Heap, Memory},
};

/// One measured throughput burst.
#[derive(Debug, Clone)]
pub(crate) struct Burst {
    /// All objects created after.
    pub created: Duration,
    /// The last one terminal after.
    pub finished: Duration,
    /// Pods per lifecycle (an OMJob's main and exit pod; a Job's one).
    pub pods: usize,
    /// The API server's writes over the burst, from every client, by resource.
    pub writes: BTreeMap<String, f64>,
}

impl Burst {
    #[allow(clippy::cast_precision_loss)]
    pub fn per_minute(&self, n: usize) -> f64 {
        n as f64 / self.finished.as_secs_f64() * 60.0
    }

    /// The API server's writes per lifecycle, all clients together.
    #[allow(clippy::cast_precision_loss)]
    pub fn writes_per_lifecycle(&self, n: usize) -> f64 {
        self.writes.values().sum::<f64>() / n.max(1) as f64
    }

    /// The API server's writes per second over the burst.
    pub fn writes_per_second(&self) -> f64 {
        self.writes.values().sum::<f64>() / self.finished.as_secs_f64().max(0.001)
    }
}

/// One memory reading and the goal it is held to (MiB), if any.
#[derive(Debug)]
pub(crate) struct MemoryRow {
    pub label: String,
    pub memory: Memory,
    /// The heap as the operator's allocator counts it, when it tells.
    pub heap: Option<Heap>,
    pub goal_mib: Option<f64>,
}

/// Everything one run of the bench measured.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub qps: f64,
    pub concurrency: usize,
    pub reps: usize,
    pub loads: Vec<LoadResult>,
    /// OMJobs (and batch Jobs) in the throughput burst.
    pub burst: usize,
    pub omjob_burst: Option<Burst>,
    pub job_burst: Option<Burst>,
    /// Exit latency during the throughput burst (operator only; no twin run of it).
    pub burst_latency: Vec<Option<Duration>>,
    pub burst_cpu: f64,
    /// `omjob_api_requests_total` growth over the throughput burst, by (verb, resource).
    pub requests: BTreeMap<(String, String), f64>,
    /// The twin's follow-up creates (its only requests but one watch) per twin lifecycle.
    pub twin_creates_per_lifecycle: Option<f64>,
    pub memory: Vec<MemoryRow>,
    pub stored: usize,
    /// OMJobs made to fill the store, and the CPU seconds that took.
    pub fill: (usize, f64),
    /// Restart: ready after, reconciles settled after, CPU seconds.
    pub restart: Option<(Duration, Duration, f64)>,
}

fn fmt_dur(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn fmt_opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), fmt_dur)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_owned(),
    }
}

fn met(ok: Option<bool>) -> String {
    match ok {
        Some(true) => "goal met",
        Some(false) => "not met",
        None => "n/a",
    }
    .to_owned()
}

fn bound(b: Option<f64>) -> String {
    match b {
        Some(s) if s.is_finite() => format!("{:.0}", s * 1000.0),
        Some(_) => "inf".to_owned(),
        None => "-".to_owned(),
    }
}

/// Prints `rows` (the first is the header) as a Markdown table, columns padded to width.
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = |c: usize| {
        rows.iter()
            .filter_map(|r| r.get(c))
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..cols).map(width).collect();
    let line = |r: &[String]| {
        let cells: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(c, w)| {
                let s = r.get(c).map_or("", String::as_str);
                let pad = w.saturating_sub(s.chars().count());
                format!("{s}{}", " ".repeat(pad))
            })
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    for (i, r) in rows.iter().enumerate() {
        line(r);
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("|-{}-|", rule.join("-|-"));
        }
    }
}

fn row(cells: [&str; 6]) -> Vec<String> {
    cells.iter().map(|s| (*s).to_owned()).collect()
}

impl Report {
    pub fn print(&self) {
        println!("\n== bench omjob: operator (release build, own process) vs physical-limit twin ==");
        println!(
            "rule-mode testbed; create rate {} /s, {} in flight, the same for operator, twin and Jobs; \
             latency loads run {} time(s) per side, interleaved (operator, twin, twin, operator, ...)",
            self.qps, self.concurrency, self.reps
        );
        let mut rows = vec![row(["figure", "goal", "operator", "twin", "ratio", "met"])];
        self.latency_rows(&mut rows);
        self.throughput_rows(&mut rows);
        self.request_rows(&mut rows);
        self.memory_cpu_rows(&mut rows);
        println!();
        print_table(&rows);
        println!(
            "\nlatency: main container seen terminated -> follow-up (exit) pod seen created, both on the \
             bench's one observer pod watch; p50/p99 pooled over every repetition; ratio = operator / twin.\n\
             \"ends seen over\": first to last main-stage end, operator / twin (the widest run); the operator's \
             main pods start when it has created them, so its ends spread wider when it lags.\n\
             twin column of the lifecycles row: the Job controller (one-pod Jobs, backoffLimit 0).\n\
             API requests: omjob_api_requests_total over the throughput burst / OMJobs; the twin's are its \
             follow-up creates per lifecycle (its main pods are created by the bench, the operator's by itself)."
        );
        self.print_details();
    }

    fn latency_rows(&self, rows: &mut Vec<Vec<String>>) {
        for load in &self.loads {
            let (op, _) = load.pooled(Side::Operator);
            let (tw, _) = load.pooled(Side::Twin);
            // Where the plan spreads the ends over a window, say how widely they were seen to
            // spread: a main pod that starts late (created late) also ends late.
            let spread = |runs: &[RunSample]| runs.iter().filter_map(|r| r.spread).max();
            let label = match (spread(&load.operator), spread(&load.twin)) {
                (Some(o), Some(t)) => format!(
                    "{} (ends seen over {:.0} s / {:.0} s)",
                    load.load.label,
                    o.as_secs_f64(),
                    t.as_secs_f64()
                ),
                _ => load.load.label.clone(),
            };
            for (q, goal) in [(0.5, None), (0.99, Some(load.load.goal))] {
                let (o, t) = (percentile(&op, q), percentile(&tw, q));
                let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
                let ok = match (goal, o, t) {
                    (Some(g), Some(o), Some(t)) => Some(g.met(o, t)),
                    _ => None,
                };
                rows.push(vec![
                    format!("exit-pod latency p{:.0}, {label}", q * 100.0),
                    goal.map_or_else(|| "-".to_owned(), Goal::text),
                    fmt_opt(o),
                    fmt_opt(t),
                    ratio(secs(o), secs(t)),
                    if goal.is_some() { met(ok) } else { String::new() },
                ]);
            }
        }
    }

    fn throughput_rows(&self, rows: &mut Vec<Vec<String>>) {
        let per = |b: &Option<Burst>| b.as_ref().map(|b| b.per_minute(self.burst));
        let (o, j) = (per(&self.omjob_burst), per(&self.job_burst));
        let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        rows.push(vec![
            format!(
                "lifecycles per minute, {n} OMJobs vs {n} one-pod Jobs (twin column: Job controller)",
                n = self.burst
            ),
            "ratio ≥ 1.0".to_owned(),
            fmt(o),
            fmt(j),
            ratio(o, j),
            met(o.zip(j).map(|(o, j)| o >= j)),
        ]);
    }

    #[allow(clippy::cast_precision_loss)]
    fn request_rows(&self, rows: &mut Vec<Vec<String>>) {
        let n = self.burst.max(1) as f64;
        let total: f64 = self.requests.values().sum();
        let have = !self.requests.is_empty();
        rows.push(vec![
            format!("API requests per lifecycle, all (burst of {})", self.burst),
            "≤ 12".to_owned(),
            if have {
                format!("{:.2}", total / n)
            } else {
                "no omjob_api_requests_total".to_owned()
            },
            self.twin_creates_per_lifecycle
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
            // No ratio: the twin's main pods are the bench's creates, the operator's its own.
            "-".to_owned(),
            met(have.then_some(total / n <= 12.0)),
        ]);
        for ((verb, resource), count) in &self.requests {
            rows.push(vec![
                format!("  {verb} {resource}"),
                String::new(),
                format!("{:.2}", count / n),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn memory_cpu_rows(&self, rows: &mut Vec<Vec<String>>) {
        for m in &self.memory {
            let rss = m.memory.rss_mib();
            rows.push(vec![
                match m.heap {
                    Some(heap) => format!(
                        "RSS {} (peak {:.1} MiB; heap: live {:.1}, in active pages {}, resident {} MiB)",
                        m.label,
                        m.memory.peak_mib(),
                        heap.live_mib,
                        heap.active_mib
                            .map_or_else(|| "?".to_owned(), |v| format!("{v:.1}")),
                        heap.resident_mib
                            .map_or_else(|| "?".to_owned(), |v| format!("{v:.1}")),
                    ),
                    None => format!("RSS {} (peak {:.1} MiB)", m.label, m.memory.peak_mib()),
                },
                m.goal_mib
                    .map_or_else(|| "-".to_owned(), |g| format!("< {g:.0} MiB")),
                format!("{rss:.1} MiB"),
                "-".to_owned(),
                "-".to_owned(),
                m.goal_mib.map_or_else(String::new, |g| met(Some(rss < g))),
            ]);
        }
        let per_k = |cpu: f64, n: usize| {
            if n == 0 {
                "-".to_owned()
            } else {
                format!("{:.2} s", cpu / n as f64 * 1000.0)
            }
        };
        rows.push(vec![
            format!(
                "CPU per 1,000 lifecycles, burst ({:.2} s for {})",
                self.burst_cpu, self.burst
            ),
            "-".to_owned(),
            per_k(self.burst_cpu, self.burst),
            "-".to_owned(),
            "-".to_owned(),
            String::new(),
        ]);
        rows.push(vec![
            format!(
                "CPU per 1,000 lifecycles, filling the store ({:.2} s for {})",
                self.fill.1, self.fill.0
            ),
            "-".to_owned(),
            per_k(self.fill.1, self.fill.0),
            "-".to_owned(),
            "-".to_owned(),
            String::new(),
        ]);
        if let Some((ready, settled, cpu)) = self.restart {
            rows.push(vec![
                format!(
                    "restart over {} stored OMJobs: ready / settled / CPU",
                    self.stored
                ),
                "-".to_owned(),
                format!(
                    "{:.1} s / {:.1} s / {cpu:.2} s",
                    ready.as_secs_f64(),
                    settled.as_secs_f64()
                ),
                "-".to_owned(),
                "-".to_owned(),
                String::new(),
            ]);
        }
    }

    fn print_details(&self) {
        println!("\nPer run (latency in ms; active: lifecycles not done when the first main stage ended;");
        println!(
            "spread: first to last main-stage end seen; own: the operator's own histogram, bucket bounds):"
        );
        let mut rows = vec![
            [
                "load",
                "side",
                "rep",
                "samples",
                "missing",
                "p50",
                "p99",
                "max",
                "active",
                "spread",
                "own p50/p99",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
        ];
        for load in &self.loads {
            for (side, runs) in [("operator", &load.operator), ("twin", &load.twin)] {
                for (rep, run) in runs.iter().enumerate() {
                    rows.push(run_row(&load.load.label, side, rep + 1, run));
                }
            }
        }
        if !self.burst_latency.is_empty() {
            let run = RunSample {
                latencies: self.burst_latency.clone(),
                ..RunSample::default()
            };
            rows.push(run_row(
                &format!("throughput burst of {}", self.burst),
                "operator",
                1,
                &run,
            ));
        }
        print_table(&rows);

        println!(
            "\nThroughput bursts (created -> terminal, bench's watches; API server writes from its own \
             apiserver_request_total, every client counted):"
        );
        let mut rows = vec![
            [
                "",
                "created in s",
                "all done in s",
                "per minute",
                "pods per minute",
                "API server writes per lifecycle",
                "API server writes/s",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
        ];
        for (label, b) in [
            ("OMJobs (main + exit pod)", &self.omjob_burst),
            ("batch Jobs (one pod)", &self.job_burst),
        ] {
            if let Some(b) = b {
                rows.push(vec![
                    label.to_owned(),
                    format!("{:.1}", b.created.as_secs_f64()),
                    format!("{:.1}", b.finished.as_secs_f64()),
                    format!("{:.0}", b.per_minute(self.burst)),
                    format!("{:.0}", b.per_minute(self.burst * b.pods)),
                    format!("{:.1}", b.writes_per_lifecycle(self.burst)),
                    format!("{:.0}", b.writes_per_second()),
                ]);
            }
        }
        print_table(&rows);
        for (label, b) in [("OMJobs", &self.omjob_burst), ("batch Jobs", &self.job_burst)] {
            if let Some(b) = b {
                let n = self.burst.max(1);
                #[allow(clippy::cast_precision_loss)]
                let by: Vec<String> = b
                    .writes
                    .iter()
                    .filter(|(_, v)| **v / n as f64 >= 0.05)
                    .map(|(r, v)| format!("{r} {:.2}", v / n as f64))
                    .collect();
                println!("  API server writes per lifecycle, {label}: {}", by.join(", "));
            }
        }
    }
}

fn run_row(label: &str, side: &str, rep: usize, run: &RunSample) -> Vec<String> {
    let mut got: Vec<Duration> = run.latencies.iter().flatten().copied().collect();
    got.sort();
    let ms = |d: Option<Duration>| {
        d.map_or_else(|| "-".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
    };
    vec![
        label.to_owned(),
        side.to_owned(),
        rep.to_string(),
        got.len().to_string(),
        (run.latencies.len() - got.len()).to_string(),
        ms(percentile(&got, 0.5)),
        ms(percentile(&got, 0.99)),
        ms(got.last().copied()),
        run.active.map_or_else(|| "-".to_owned(), |a| a.to_string()),
        run.spread
            .map_or_else(|| "-".to_owned(), |s| format!("{:.1} s", s.as_secs_f64())),
        run.own
            .map_or_else(|| "-".to_owned(), |(a, b)| format!("{}/{}", bound(a), bound(b))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_their_scale() {
        assert_eq!(fmt_dur(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(fmt_dur(Duration::from_millis(4_321)), "4321 ms");
        assert_eq!(fmt_dur(Duration::from_millis(74_321)), "74.3 s");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50");
        assert_eq!(ratio(Some(3.0), Some(0.0)), "-");
    }
}
