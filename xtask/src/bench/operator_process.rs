//! The operator as a child process, the way it runs in a cluster: built once in release mode,
//! started against a testbed's API server, measured from `/proc`, scraped over its HTTP port,
//! killed with SIGKILL and started again. `bench omjob`, `bench cron` and `soak` share it.
//!
//! The child is spawned through the testbed's guarded spawner (`setpriv --pdeathsig KILL`), so it
//! dies with the bench even when the bench itself is killed; [`OperatorProcess`] also kills it on
//! drop.

use std::{
    collections::BTreeMap,
    fs::File,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use nix::{
    sys::signal::{Signal, kill},
    unistd::{Pid, SysconfVar, sysconf},
};
use omjob_testbed::Testbed;

/// How long a started operator may take to answer its readiness endpoint.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long one HTTP request to the operator may take.
const HTTP_LIMIT: Duration = Duration::from_secs(10);

/// How the operator is configured (its environment variables, see `crates/operator/src/config.rs`).
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// `LEADER_ELECTION`: off by default, so one process acts without a Lease.
    pub leader_election: bool,
    /// `OPERATOR_NAMESPACE`: where the leader-election Lease lives.
    pub operator_namespace: String,
    /// `WATCH_NAMESPACES`; `None` watches every namespace.
    pub watch_namespaces: Option<String>,
    /// `LOG_LEVEL`.
    pub log_level: String,
    /// `POD_NAME`, the leader identity; `None` lets the operator pick a random one.
    pub identity: Option<String>,
    /// Any further variables (`RECONCILIATION_THREADS`, timeouts, ...).
    pub env: Vec<(String, String)>,
    /// Where the operator's stdout and stderr are appended.
    pub log_file: PathBuf,
    /// Run the optimised build (benchmarks) rather than the debug build the tests already made
    /// (the demo, which should not wait for a release build on a fresh machine).
    pub release: bool,
}

impl OperatorOptions {
    /// Defaults for a benchmark: no leader election, namespace `default`, `LOG_LEVEL=warn`.
    #[must_use]
    pub fn new(log_file: PathBuf) -> Self {
        Self {
            leader_election: false,
            operator_namespace: "default".to_owned(),
            watch_namespaces: None,
            log_level: "warn".to_owned(),
            identity: None,
            env: Vec::new(),
            log_file,
            release: true,
        }
    }
}

/// What "started" means for [`OperatorProcess::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// `GET /ready` answers 200: the controllers run (this replica leads, or there is no election).
    Ready,
    /// `GET /health` answers 200: the process serves HTTP (a standby replica waiting for the Lease).
    Serving,
}

/// Resident memory of the process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now, in bytes.
    pub rss_bytes: u64,
    /// `VmHWM`: the peak resident size since the process started, in bytes.
    pub peak_bytes: u64,
}

impl Memory {
    /// `VmRSS` in MiB.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn rss_mib(&self) -> f64 {
        self.rss_bytes as f64 / 1_048_576.0
    }

    /// `VmHWM` in MiB.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn peak_mib(&self) -> f64 {
        self.peak_bytes as f64 / 1_048_576.0
    }
}

/// A running (or killed) operator process.
#[derive(Debug)]
pub struct OperatorProcess {
    binary: PathBuf,
    kubeconfig: PathBuf,
    opts: OperatorOptions,
    started: Started,
    port: u16,
    child: Option<Child>,
    starts: u32,
}

impl OperatorProcess {
    /// Builds the binary if needed (see [`OperatorOptions::release`]), starts the operator against `testbed` with the admin
    /// kubeconfig, and returns once it is [`Started`].
    ///
    /// # Errors
    /// When the build fails, the process cannot be spawned, or it exits or does not get there
    /// within a minute.
    pub async fn start(testbed: &Testbed, opts: OperatorOptions, started: Started) -> anyhow::Result<Self> {
        let mut op = Self {
            binary: super::artifact::binary("omjob-operator", "omjob-operator", opts.release)?,
            kubeconfig: testbed.control_plane().kubeconfig().to_owned(),
            opts,
            started,
            port: 0,
            child: None,
            starts: 0,
        };
        op.spawn().await?;
        Ok(op)
    }

    /// The process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The HTTP port of the current process (a new one on each start).
    #[must_use]
    #[allow(dead_code, reason = "part of the API bench cron shares")]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many times the process was started.
    #[must_use]
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Current and peak resident memory.
    ///
    /// # Errors
    /// When the process is not running or `/proc` cannot be read.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        proc_memory(self.running_pid()?)
    }

    /// CPU time the process has used so far (user + system), in seconds.
    ///
    /// # Errors
    /// When the process is not running or `/proc` cannot be read.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        proc_cpu_seconds(self.running_pid()?)
    }

    /// `GET /metrics`: the operator's OpenMetrics text.
    ///
    /// # Errors
    /// When the request fails or does not answer 200.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        let (status, body) = http_get(self.port, "/metrics").await?;
        if status != 200 {
            bail!("GET /metrics answered {status}: {body}");
        }
        Ok(body)
    }

    /// `omjob_api_requests_total` from `/metrics`: requests sent so far by (verb, resource).
    ///
    /// # Errors
    /// When the scrape fails.
    pub async fn api_requests(&self) -> anyhow::Result<BTreeMap<(String, String), f64>> {
        let text = self.metrics_text().await?;
        Ok(samples(&text, "omjob_api_requests_total")
            .into_iter()
            .map(|s| {
                let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                ((get("verb"), get("resource")), s.value)
            })
            .collect())
    }

    /// The operator's heap as its allocator counts it (`omjob_heap_*_bytes` from `/metrics`),
    /// when the allocator can tell (jemalloc, its default).
    ///
    /// # Errors
    /// When the scrape fails.
    #[allow(clippy::cast_precision_loss)]
    pub async fn heap(&self) -> anyhow::Result<Option<Heap>> {
        let text = self.metrics_text().await?;
        let mib = |name: &str| samples(&text, name).first().map(|s| s.value / 1_048_576.0);
        Ok(mib("omjob_heap_allocated_bytes").map(|live| Heap {
            live_mib: live,
            active_mib: mib("omjob_heap_active_bytes"),
            resident_mib: mib("omjob_heap_resident_bytes"),
        }))
    }

    /// The cumulative buckets `(le, count)` of `omjob_exit_handler_latency_seconds`, ascending.
    ///
    /// # Errors
    /// When the scrape fails.
    pub async fn exit_latency_buckets(&self) -> anyhow::Result<Vec<(f64, f64)>> {
        let text = self.metrics_text().await?;
        let mut buckets: Vec<(f64, f64)> = samples(&text, "omjob_exit_handler_latency_seconds_bucket")
            .into_iter()
            .filter_map(|s| Some((s.labels.get("le")?.parse::<f64>().ok()?, s.value)))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(buckets)
    }

    /// SIGKILL, then reap. Does nothing when the process is not running.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        // ESRCH: it already exited on its own; reaping below still applies.
        match kill(pid, Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(e).context("sending SIGKILL to the operator"),
        }
        child.wait().context("reaping the operator")?;
        Ok(())
    }

    /// Kills the process if it runs, then starts a new one with the same options.
    ///
    /// # Errors
    /// As [`OperatorProcess::start`].
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn().await
    }

    /// Whether the process has exited on its own (reaps it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    fn running_pid(&self) -> anyhow::Result<u32> {
        self.pid().context("the operator is not running")
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.opts.log_file)
            .with_context(|| format!("opening {}", self.opts.log_file.display()))?;
        let err_log = log.try_clone().context("duplicating the log file handle")?;
        let mut cmd: Command = omjob_testbed::process::guarded_command(&self.binary);
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HEALTH_CHECK_PORT", port.to_string())
            .env("LEADER_ELECTION", self.opts.leader_election.to_string())
            .env("OPERATOR_NAMESPACE", &self.opts.operator_namespace)
            .env("LOG_LEVEL", &self.opts.log_level)
            .envs(self.opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        if let Some(ns) = &self.opts.watch_namespaces {
            cmd.env("WATCH_NAMESPACES", ns);
        }
        if let Some(id) = &self.opts.identity {
            cmd.env("POD_NAME", id);
        }
        // jemalloc's run-time tuning (the operator's default allocator reads it), passed on so
        // that a bench run can compare settings.
        if let Some(conf) = std::env::var_os("_RJEM_MALLOC_CONF") {
            cmd.env("_RJEM_MALLOC_CONF", conf);
        }
        let child = omjob_testbed::process::spawn(cmd).context("starting omjob-operator")?;
        self.child = Some(child);
        self.port = port;
        self.starts += 1;
        self.wait_started().await
    }

    async fn wait_started(&mut self) -> anyhow::Result<()> {
        let path = match self.started {
            Started::Ready => "/ready",
            Started::Serving => "/health",
        };
        let begin = Instant::now();
        let mut last: String;
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "omjob-operator exited with {status} while starting; see {}",
                    self.opts.log_file.display()
                );
            }
            match http_get(self.port, path).await {
                Ok((200, _)) => return Ok(()),
                Ok((code, body)) => last = format!("{code} {body}"),
                Err(e) => last = format!("{e:#}"),
            }
            if begin.elapsed() > START_LIMIT {
                bail!(
                    "omjob-operator did not answer 200 on {path} within {START_LIMIT:?} (last: {last}); see {}",
                    self.opts.log_file.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// One sample of an OpenMetrics text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// The operator's heap, in MiB, as jemalloc counts it.
#[derive(Debug, Clone, Copy)]
pub struct Heap {
    /// Held by live objects.
    pub live_mib: f64,
    /// In pages holding at least one live object (above `live_mib`: fragmentation).
    pub active_mib: Option<f64>,
    /// Resident in the allocator's pages, its metadata included.
    pub resident_mib: Option<f64>,
}

/// The samples of metric `name` (the full sample name, such as `omjob_api_requests_total`).
#[must_use]
pub fn samples(text: &str, name: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(inner) => {
                    let end = inner.rfind('}')?;
                    (parse_labels(&inner[..end]), &inner[end + 1..])
                }
                // Another metric whose name starts with `name`.
                None if !rest.starts_with(' ') => return None,
                None => (BTreeMap::new(), rest),
            };
            let value = value.split_whitespace().next()?.parse().ok()?;
            Some(Sample { labels, value })
        })
        .collect()
}

/// `a="x",b="y"` into a map. Label values here are verbs, resources and phases, which hold no
/// quotes or commas, so escapes are not handled.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

/// `/proc/<pid>/<file>`.
fn read_proc(pid: u32, file: &str) -> anyhow::Result<String> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))
}

/// `VmRSS` and `VmHWM` of process `pid`.
pub(crate) fn proc_memory(pid: u32) -> anyhow::Result<Memory> {
    let status = read_proc(pid, "status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib: u64 = line
            .trim_start_matches(':')
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("{name} is not a number: {line:?}"))?;
        Ok(kib * 1024)
    };
    Ok(Memory {
        rss_bytes: field("VmRSS")?,
        peak_bytes: field("VmHWM")?,
    })
}

/// utime + stime of process `pid`, in seconds.
pub(crate) fn proc_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = read_proc(pid, "stat")?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name, state is field 3, so utime (14) and stime (15) sit at 11 and 12.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("short /proc/<pid>/stat")?
            .parse::<u64>()
            .context("malformed /proc/<pid>/stat")
    };
    let per_second = sysconf(SysconfVar::CLK_TCK)
        .context("sysconf(CLK_TCK)")?
        .context("CLK_TCK is not defined")?;
    #[allow(clippy::cast_precision_loss)]
    Ok((ticks(11)? + ticks(12)?) as f64 / per_second as f64)
}

/// `GET path` on `127.0.0.1:port`: the status code and the body.
pub(crate) async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let request = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        let conn = tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, format!("127.0.0.1:{port}"))
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        let resp = sender.send_request(req).await.context("sending the request")?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("reading the response")?
            .to_bytes();
        conn.abort();
        anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(HTTP_LIMIT, request)
        .await
        .with_context(|| format!("GET {path} took longer than {HTTP_LIMIT:?}"))?
}

/// `after - before` per key, dropping keys that did not change.
#[must_use]
pub fn diff_counters<K: Ord + Clone>(
    before: &BTreeMap<K, f64>,
    after: &BTreeMap<K, f64>,
) -> BTreeMap<K, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn samples_are_parsed_by_name_and_label() {
        let text = "# HELP omjob_api_requests Requests\n\
                    # TYPE omjob_api_requests counter\n\
                    omjob_api_requests_total{verb=\"create\",resource=\"pods\"} 4\n\
                    omjob_api_requests_total{verb=\"patch\",resource=\"omjobs/status\"} 12\n\
                    omjob_api_requests_totally_else 1\n\
                    omjob_operator_ready 1\n";
        let s = samples(text, "omjob_api_requests_total");
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].labels["resource"], "omjobs/status");
        assert!((s[1].value - 12.0).abs() < f64::EPSILON);
        assert_eq!(samples(text, "omjob_operator_ready")[0].value, 1.0);
    }

    #[test]
    fn counter_diffs_keep_only_what_grew() {
        let key = |v: &str| (v.to_owned(), "pods".to_owned());
        let before = BTreeMap::from([(key("create"), 2.0), (key("get"), 5.0)]);
        let after = BTreeMap::from([(key("create"), 6.0), (key("get"), 5.0), (key("list"), 1.0)]);
        let d = diff_counters(&before, &after);
        assert_eq!(d, BTreeMap::from([(key("create"), 4.0), (key("list"), 1.0)]));
    }
}
