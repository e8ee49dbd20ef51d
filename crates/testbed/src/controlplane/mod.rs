//! One Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler, each a child process with its own log file under the data directory.

pub mod install;
pub mod kubeconfig;
pub mod pki;

use std::{
    fs::File,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use install::Binaries;
use pki::Pki;

use crate::process;

/// Errors while starting or stopping a control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// The binaries are missing and could not be installed.
    #[error(transparent)]
    Install(#[from] install::InstallError),
    /// Key material could not be generated.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// A file in the data directory could not be written.
    #[error("failed to prepare {path}")]
    Prepare {
        /// The file or directory.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A component process could not be started.
    #[error("failed to start {component}")]
    Spawn {
        /// Component name.
        component: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A component exited or never became ready.
    #[error("{component} did not become ready within {waited:?}: {detail}; see {log}")]
    NotReady {
        /// Component name.
        component: &'static str,
        /// How long we waited.
        waited: Duration,
        /// What was observed last.
        detail: String,
        /// Its log file.
        log: PathBuf,
    },
    /// Building a client for the new API server failed.
    #[error("failed to build a client from {0}")]
    Client(PathBuf, #[source] kube::Error),
}

/// Tunables of a control plane. The defaults suit tests: a lost node is noticed within seconds.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// How long the node lifecycle controller waits for a heartbeat before marking a node unknown.
    pub node_monitor_grace: Duration,
    /// Seconds pods tolerate `not-ready` / `unreachable` taints before the taint manager evicts
    /// them (the API server's defaults for the DefaultTolerationSeconds admission plugin).
    pub default_toleration_seconds: u32,
    /// QPS and burst of the controller manager's and scheduler's clients.
    pub controller_qps: u32,
    /// Burst for those clients.
    pub controller_burst: u32,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            node_monitor_grace: Duration::from_secs(8),
            default_toleration_seconds: 10,
            controller_qps: 100,
            controller_burst: 200,
        }
    }
}

struct Component {
    name: &'static str,
    cmd_path: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Component {
    fn start(&mut self) -> Result<(), ControlPlaneError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| ControlPlaneError::Prepare {
                path: self.log.clone(),
                source,
            })?;
        let err_log = log.try_clone().map_err(|source| ControlPlaneError::Prepare {
            path: self.log.clone(),
            source,
        })?;
        let mut cmd: Command = process::guarded_command(&self.cmd_path);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        let child = process::spawn(cmd).map_err(|source| ControlPlaneError::Spawn {
            component: self.name,
            source,
        })?;
        tracing::debug!(component = self.name, pid = child.id(), "started");
        self.child = Some(child);
        Ok(())
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A running control plane. Dropping it stops every component.
pub struct ControlPlane {
    dir: PathBuf,
    api_url: String,
    admin_kubeconfig: PathBuf,
    pki: Pki,
    binaries: Binaries,
    components: Mutex<Vec<Component>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("dir", &self.dir)
            .field("api_url", &self.api_url)
            .finish()
    }
}

/// Reserves a free loopback port. The socket is closed before the component binds it; the
/// window is tiny and ports are picked from the kernel's ephemeral range, so a clash is unlikely
/// and shows up as a clear "address in use" in the component's log.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn prepare<T>(path: &Path, r: std::io::Result<T>) -> Result<T, ControlPlaneError> {
    r.map_err(|source| ControlPlaneError::Prepare {
        path: path.to_owned(),
        source,
    })
}

fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl ControlPlane {
    /// Starts a control plane with its state in `dir` (created if missing; must be empty of a
    /// running control plane). Returns once the API server answers `/readyz` and the default
    /// service account exists.
    ///
    /// # Errors
    /// Fails when a binary is missing, a component fails to start, or the API never gets ready.
    pub async fn start(dir: &Path, opts: &ControlPlaneOptions) -> Result<Self, ControlPlaneError> {
        let binaries = Binaries::ensure_installed()?;
        let dir = prepare(
            dir,
            std::fs::create_dir_all(dir).and_then(|()| std::fs::canonicalize(dir)),
        )?;
        let logs = dir.join("logs");
        prepare(&logs, std::fs::create_dir_all(&logs))?;
        let pki = Pki::create(&dir.join("pki"))?;

        let etcd_port = prepare(&dir, free_port())?;
        let etcd_peer_port = prepare(&dir, free_port())?;
        let api_port = prepare(&dir, free_port())?;
        let api_url = format!("https://127.0.0.1:{api_port}");

        let tokens = [
            ("testbed-admin", random_token()),
            ("testbed-controller-manager", random_token()),
            ("testbed-scheduler", random_token()),
        ];
        // Every testbed identity is in system:masters: the testbed's own components are not
        // under test. Code under test gets its own, least-privilege identities.
        let token_file = dir.join("tokens.csv");
        let token_csv: String = tokens
            .iter()
            .map(|(user, token)| format!("{token},{user},{user},\"system:masters\"\n"))
            .collect();
        prepare(&token_file, std::fs::write(&token_file, token_csv))?;
        let ca_pem = prepare(&pki.ca_cert, std::fs::read_to_string(&pki.ca_cert))?;
        let mut kubeconfigs = Vec::new();
        for (user, token) in &tokens {
            let path = dir.join(format!("{user}.kubeconfig"));
            prepare(
                &path,
                kubeconfig::write(&path, &kubeconfig::render(&api_url, &ca_pem, user, token)),
            )?;
            kubeconfigs.push(path);
        }
        let admin_kubeconfig = dir.join("kubeconfig");
        prepare(
            &admin_kubeconfig,
            std::fs::copy(&kubeconfigs[0], &admin_kubeconfig),
        )?;

        let s = |p: &Path| p.display().to_string();
        let etcd = Component {
            name: "etcd",
            cmd_path: binaries.etcd.clone(),
            args: vec![
                format!("--data-dir={}", s(&dir.join("etcd"))),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}"),
                format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer_port}"),
                // A testbed's data is disposable; fsync only slows every write down.
                "--unsafe-no-fsync".into(),
                "--quota-backend-bytes=4294967296".into(),
                "--log-level=warn".into(),
            ],
            log: logs.join("etcd.log"),
            child: None,
        };
        let tol = opts.default_toleration_seconds.to_string();
        let apiserver = Component {
            name: "kube-apiserver",
            cmd_path: binaries.apiserver.clone(),
            args: vec![
                format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", s(&dir.join("apiserver-certs"))),
                format!("--tls-cert-file={}", s(&pki.apiserver_cert)),
                format!("--tls-private-key-file={}", s(&pki.apiserver_key)),
                format!("--token-auth-file={}", s(&token_file)),
                "--authorization-mode=RBAC".into(),
                format!("--service-account-key-file={}", s(&pki.sa_pub)),
                format!("--service-account-signing-key-file={}", s(&pki.sa_key)),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--allow-privileged=true".into(),
                "--kubelet-preferred-address-types=InternalIP".into(),
                format!("--kubelet-certificate-authority={}", s(&pki.ca_cert)),
                format!("--default-not-ready-toleration-seconds={tol}"),
                format!("--default-unreachable-toleration-seconds={tol}"),
                "--profiling=false".into(),
                "--max-requests-inflight=1000".into(),
                "--max-mutating-requests-inflight=500".into(),
                "--v=1".into(),
            ],
            log: logs.join("kube-apiserver.log"),
            child: None,
        };
        let grace = format!("{}s", opts.node_monitor_grace.as_secs().max(2));
        let controller_manager = Component {
            name: "kube-controller-manager",
            cmd_path: binaries.controller_manager.clone(),
            args: vec![
                format!("--kubeconfig={}", s(&kubeconfigs[1])),
                "--secure-port=0".into(),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=false".into(),
                format!("--service-account-private-key-file={}", s(&pki.sa_key)),
                format!("--root-ca-file={}", s(&pki.ca_cert)),
                "--controllers=*".into(),
                "--node-monitor-period=1s".into(),
                format!("--node-monitor-grace-period={grace}"),
                "--node-startup-grace-period=20s".into(),
                format!("--kube-api-qps={}", opts.controller_qps),
                format!("--kube-api-burst={}", opts.controller_burst),
                "--v=1".into(),
            ],
            log: logs.join("kube-controller-manager.log"),
            child: None,
        };
        let scheduler = Component {
            name: "kube-scheduler",
            cmd_path: binaries.scheduler.clone(),
            args: vec![
                format!("--kubeconfig={}", s(&kubeconfigs[2])),
                "--secure-port=0".into(),
                "--leader-elect=false".into(),
                format!("--kube-api-qps={}", opts.controller_qps),
                format!("--kube-api-burst={}", opts.controller_burst),
                "--v=1".into(),
            ],
            log: logs.join("kube-scheduler.log"),
            child: None,
        };

        let cp = Self {
            dir: dir.clone(),
            api_url,
            admin_kubeconfig,
            pki,
            binaries,
            components: Mutex::new(vec![etcd, apiserver, controller_manager, scheduler]),
        };
        cp.start_component("etcd")?;
        cp.wait_tcp("etcd", etcd_port, Duration::from_secs(30)).await?;
        cp.start_component("kube-apiserver")?;
        cp.wait_api_ready(Duration::from_secs(120)).await?;
        cp.start_component("kube-controller-manager")?;
        cp.start_component("kube-scheduler")?;
        cp.wait_default_service_account(Duration::from_secs(60)).await?;
        Ok(cp)
    }

    fn with_component<T>(&self, name: &str, f: impl FnOnce(&mut Component) -> T) -> Option<T> {
        let mut guard = self.components.lock().ok()?;
        guard.iter_mut().find(|c| c.name == name).map(f)
    }

    fn start_component(&self, name: &'static str) -> Result<(), ControlPlaneError> {
        self.with_component(name, Component::start).unwrap_or(Ok(()))
    }

    fn log_of(&self, name: &'static str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    fn check_alive(&self, name: &'static str, waited: Duration) -> Result<(), ControlPlaneError> {
        match self.with_component(name, Component::exited).flatten() {
            Some(status) => Err(ControlPlaneError::NotReady {
                component: name,
                waited,
                detail: format!("it exited with {status}"),
                log: self.log_of(name),
            }),
            None => Ok(()),
        }
    }

    async fn wait_tcp(
        &self,
        name: &'static str,
        port: u16,
        limit: Duration,
    ) -> Result<(), ControlPlaneError> {
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(());
            }
            self.check_alive(name, start.elapsed())?;
            if start.elapsed() > limit {
                return Err(ControlPlaneError::NotReady {
                    component: name,
                    waited: limit,
                    detail: format!("nothing listens on port {port}"),
                    log: self.log_of(name),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Builds a new admin client. Each tokio runtime (each `#[tokio::test]`) needs its own client:
    /// a client's pooled connections belong to the runtime that opened them.
    ///
    /// # Errors
    /// Fails when the kubeconfig cannot be read.
    pub async fn client(&self) -> Result<kube::Client, ControlPlaneError> {
        client_from_kubeconfig(&self.admin_kubeconfig).await
    }

    async fn wait_api_ready(&self, limit: Duration) -> Result<(), ControlPlaneError> {
        let start = Instant::now();
        let client = self.client().await?;
        let mut last = String::from("no answer yet");
        loop {
            let req = http::Request::get("/readyz").body(Vec::new());
            if let Ok(req) = req {
                match client.request_text(req).await {
                    Ok(body) if body.trim() == "ok" => return Ok(()),
                    Ok(body) => last = body,
                    Err(e) => last = e.to_string(),
                }
            }
            self.check_alive("kube-apiserver", start.elapsed())?;
            if start.elapsed() > limit {
                return Err(ControlPlaneError::NotReady {
                    component: "kube-apiserver",
                    waited: limit,
                    detail: last,
                    log: self.log_of("kube-apiserver"),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_default_service_account(&self, limit: Duration) -> Result<(), ControlPlaneError> {
        let client = self.client().await?;
        crate::fixture::wait_for_service_account(&client, "default", "default", limit)
            .await
            .map_err(|detail| ControlPlaneError::NotReady {
                component: "kube-controller-manager",
                waited: limit,
                detail,
                log: self.log_of("kube-controller-manager"),
            })
    }

    /// Stops and starts the API server again on the same port and data (for fault tests).
    /// Returns once it answers `/readyz` again.
    ///
    /// # Errors
    /// Fails when it does not come back.
    pub async fn restart_apiserver(&self, down_for: Duration) -> Result<(), ControlPlaneError> {
        self.with_component("kube-apiserver", |c| c.stop(Duration::from_secs(10)));
        tokio::time::sleep(down_for).await;
        self.start_component("kube-apiserver")?;
        self.wait_api_ready(Duration::from_secs(120)).await
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `https://127.0.0.1:<port>`.
    #[must_use]
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The admin kubeconfig (`DIR/kubeconfig`).
    #[must_use]
    pub fn kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The CA and key files.
    #[must_use]
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The binaries this control plane runs (kubectl included).
    #[must_use]
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// Stops every component, the API server's clients first and etcd last.
    pub fn stop(&self) {
        if let Ok(mut components) = self.components.lock() {
            for c in components.iter_mut().rev() {
                c.stop(Duration::from_secs(5));
            }
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds a client from a kubeconfig file.
///
/// # Errors
/// Fails when the file cannot be read or parsed.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, ControlPlaneError> {
    let err = |e| ControlPlaneError::Client(path.to_owned(), e);
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(kube::Error::InferKubeconfig(e)))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| err(kube::Error::InferKubeconfig(e)))?;
    kube::Client::try_from(config).map_err(err)
}
