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
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use omjob_testbed::Testbed;

use super::operator_process::{Memory, http_get, proc_cpu_seconds, proc_memory};

/// How long a started runtime may take to answer `/ready`.
const START_LIMIT: Duration = Duration::from_secs(60);

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
