//! The `omjob-operator` binary run as a separate process against the testbed, under the
//! operator service account's token, so that tests can SIGKILL it and start it again.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Stdio},
};

use omjob_testbed::process;

use super::Harness;

/// A running operator process; SIGKILLed when dropped.
pub struct OperatorProcess {
    child: Child,
    pub identity: String,
    pub log: PathBuf,
    /// Where `/health`, `/ready`, `/metrics` and `/info` answer.
    pub health_port: u16,
}

/// How to run the process.
#[derive(Clone, Debug)]
pub struct Options {
    pub identity: String,
    pub leader_election: bool,
    /// Start the binary again whenever it exits, as the kubelet does for a Deployment's pod
    /// (`restartPolicy: Always`); a replica that loses its Lease exits and comes back a standby.
    pub restart_on_exit: bool,
}

impl Options {
    pub fn single(identity: &str) -> Self {
        Self {
            identity: identity.to_owned(),
            leader_election: false,
            restart_on_exit: false,
        }
    }

    pub fn replica(identity: &str) -> Self {
        Self {
            identity: identity.to_owned(),
            leader_election: true,
            restart_on_exit: true,
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `GET /ready` on `port` answers 200.
/// The whole HTTP/1.0 answer to `GET path` on the health port, or `None` when nothing answers.
async fn get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer).await;
    Some(answer)
}

async fn ready(port: u16) -> bool {
    get(port, "/ready")
        .await
        .is_some_and(|a| a.split_whitespace().nth(1) == Some("200"))
}

/// A kubeconfig for the testbed that authenticates with the operator's service-account token.
fn operator_kubeconfig(h: &Harness) -> PathBuf {
    h.operator_credentials
        .write_kubeconfig(&h.trace_dir.path().join("operator.kubeconfig"))
}

impl OperatorProcess {
    /// Starts `omjob-operator run` watching the harness namespace, with its Lease there too.
    pub fn start(h: &Harness, opts: &Options) -> Self {
        Self::start_via(h, opts, &operator_kubeconfig(h))
    }

    /// Like [`OperatorProcess::start`], reaching the API server through `kubeconfig` (a
    /// [`super::proxy::ApiProxy`]'s, for instance).
    pub fn start_via(h: &Harness, opts: &Options, kubeconfig: &std::path::Path) -> Self {
        let port = free_port();
        let env = [
            ("WATCH_NAMESPACES", h.ns().to_owned()),
            ("OPERATOR_NAMESPACE", h.ns().to_owned()),
            ("POD_NAME", opts.identity.clone()),
            ("HEALTH_CHECK_PORT", port.to_string()),
            ("LEADER_ELECTION", opts.leader_election.to_string()),
            ("LOG_FORMAT", "text".to_owned()),
            // OMJOB_TEST_LOG_LEVEL raises the operator's log level when a test needs debugging.
            (
                "LOG_LEVEL",
                std::env::var("OMJOB_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".to_owned()),
            ),
        ];
        Self::start_with(h, opts, kubeconfig, &env, port)
    }

    /// Starts `omjob-operator run` with exactly `env` (plus `PATH` and `KUBECONFIG`), as a
    /// Deployment would; `health_port` must be the `HEALTH_CHECK_PORT` in it.
    pub fn start_with(
        h: &Harness,
        opts: &Options,
        kubeconfig: &std::path::Path,
        env: &[(&str, String)],
        health_port: u16,
    ) -> Self {
        let log = h.trace_dir.path().join(format!("{}.log", opts.identity));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_omjob-operator"));
        let mut cmd = if opts.restart_on_exit {
            // The loop's shell dies with the test; each operator it starts dies with the shell.
            let mut cmd = process::guarded_command(std::path::Path::new("sh"));
            cmd.args([
                "-c",
                "while :; do setpriv --pdeathsig KILL -- \"$0\" run; echo \"supervisor: operator exited with $?, restarting\"; sleep 1; done",
            ])
            .arg(&binary);
            cmd
        } else {
            let mut cmd = process::guarded_command(&binary);
            cmd.arg("run");
            cmd
        };
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = process::spawn(cmd).unwrap();
        Self {
            child,
            identity: opts.identity.clone(),
            log,
            health_port,
        }
    }

    /// Whether the process is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reap the process: nothing of it runs after this returns.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        // `setpriv` execs the operator (or the supervising shell, whose operator then gets its
        // parent-death SIGKILL), so killing the child kills the operator.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until `/ready` answers 200 (the controllers run), failing when the process exits
    /// or `limit` passes first.
    pub async fn wait_ready(&mut self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !ready(self.health_port).await {
            assert!(
                self.is_running(),
                "operator {} exited before it was ready:\n{}",
                self.identity,
                self.output()
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "operator {} not ready within {limit:?}:\n{}",
                self.identity,
                self.output()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The value of the counter or gauge `name{labels}` on `/metrics` (`labels` as printed,
    /// e.g. `controller="omjob",result="success"`), 0 when it is not there yet.
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = get(self.health_port, "/metrics").await.unwrap_or_default();
        let series = if labels.is_empty() {
            format!("{name} ")
        } else {
            format!("{name}{{{labels}}} ")
        };
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The process's output so far, for failure messages.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill_now();
    }
}
