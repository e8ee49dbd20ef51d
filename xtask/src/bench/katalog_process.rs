//! The Katalog runtime (`katalog run`) as a child process, as it runs in a cluster: built once
//! per profile, started against a testbed's API server with Orkestra's environment, scraped over
//! its HTTP port (`ORK_PORT`) and measured from `/proc`. `bench katalog` and the demo share it.
//!
//! Like the operator in [`super::operator_process`], the child is spawned through the testbed's
//! guarded spawner, so it dies with the bench, and [`KatalogProcess`] kills it on drop.

use std::{
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

use super::operator_process::Memory;

/// How long a started runtime may take to answer `/ready`.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long one HTTP request to the runtime may take.
const HTTP_LIMIT: Duration = Duration::from_secs(10);

/// How the runtime is started.
#[derive(Debug, Clone)]
pub struct KatalogOptions {
    /// The Katalog file (`--katalog`).
    pub katalog: PathBuf,
    /// Further environment (`DEFAULT_RESYNC`, `DEFAULT_WORKERS`, `MAX_QUEUE_DEPTH`, ...).
    pub env: Vec<(String, String)>,
    /// `RUST_LOG` of the runtime.
    pub log_level: String,
    /// Where its stdout and stderr are appended.
    pub log_file: PathBuf,
    /// The optimised build (benchmarks) or the debug build (the demo).
    pub release: bool,
}

/// A running `katalog run`.
#[derive(Debug)]
pub struct KatalogProcess {
    child: Option<Child>,
    port: u16,
    log_file: PathBuf,
}

impl KatalogProcess {
    /// Builds the binary if needed, starts `katalog run` against `testbed` with leader election
    /// off, and returns once `/ready` answers 200.
    ///
    /// # Errors
    /// When the build or the spawn fails, or the runtime exits or is not ready within a minute.
    pub async fn start(testbed: &Testbed, opts: &KatalogOptions) -> anyhow::Result<Self> {
        let binary = super::artifact::binary("katalog", "the Katalog runtime", opts.release)?;
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&opts.log_file)
            .with_context(|| format!("opening {}", opts.log_file.display()))?;
        let err_log = log.try_clone().context("duplicating the log file handle")?;
        let mut cmd: Command = omjob_testbed::process::guarded_command(&binary);
        cmd.arg("run")
            .arg("--katalog")
            .arg(&opts.katalog)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", testbed.control_plane().kubeconfig())
            .env("ORK_PORT", port.to_string())
            .env("LEADER_ELECTION", "false")
            .env("RUST_LOG", &opts.log_level)
            .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        let child = omjob_testbed::process::spawn(cmd).context("starting katalog run")?;
        let mut process = Self {
            child: Some(child),
            port,
            log_file: opts.log_file.clone(),
        };
        process.wait_ready().await?;
        Ok(process)
    }

    /// The HTTP port (`ORK_PORT`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Current and peak resident memory.
    ///
    /// # Errors
    /// When the process is not running or `/proc` cannot be read.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        proc_memory(self.pid()?)
    }

    /// CPU time used so far (user + system), in seconds.
    ///
    /// # Errors
    /// When the process is not running or `/proc` cannot be read.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        proc_cpu_seconds(self.pid()?)
    }

    /// `GET path`: the status code and the body.
    ///
    /// # Errors
    /// When the request fails or times out.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(self.port, path).await
    }

    /// `GET /metrics`, which must answer 200.
    ///
    /// # Errors
    /// When the request fails or answers another code.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        let (status, body) = self.get("/metrics").await?;
        if status != 200 {
            bail!("GET /metrics answered {status}: {body}");
        }
        Ok(body)
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
        match kill(pid, Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(e).context("sending SIGKILL to katalog run"),
        }
        child.wait().context("reaping katalog run")?;
        Ok(())
    }

    /// Whether the process has exited on its own (reaps it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .context("katalog run is not running")
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let begin = Instant::now();
        let mut last: String;
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "katalog run exited with {status} while starting; see {}",
                    self.log_file.display()
                );
            }
            match http_get(self.port, "/ready").await {
                Ok((200, _)) => return Ok(()),
                Ok((code, body)) => last = format!("{code} {body}"),
                Err(e) => last = format!("{e:#}"),
            }
            if begin.elapsed() > START_LIMIT {
                bail!(
                    "katalog run did not answer 200 on /ready within {START_LIMIT:?} (last: {last}); see {}",
                    self.log_file.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for KatalogProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn read_proc(pid: u32, file: &str) -> anyhow::Result<String> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))
}

/// `VmRSS` and `VmHWM` of process `pid`.
fn proc_memory(pid: u32) -> anyhow::Result<Memory> {
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
fn proc_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
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
async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
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
