//! `testbed`: install, start, stop and poke a local Kubernetes control plane with simulated nodes.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use omjob_testbed::{
    Testbed, TestbedOptions,
    controlplane::{client_from_kubeconfig, install::Binaries},
    node::{self, NodeMode},
};

#[derive(Parser, Debug)]
#[command(
    name = "testbed",
    version,
    about = "A real Kubernetes control plane on this machine, with simulated nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build and cache the control-plane binaries (once; about 20-30 minutes on 2 cores).
    Install,
    /// Start a testbed in the background; returns once the API answers.
    Up(RunArgs),
    /// Run a testbed in the foreground until interrupted (what `up` starts).
    Run(RunArgs),
    /// Stop the testbed started in DIR.
    Down {
        /// Data directory given to `up`.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Partition a node: it stops heartbeats and status reports (its processes keep running).
    LoseNode {
        /// Data directory given to `up`.
        #[arg(long)]
        dir: PathBuf,
        /// Node name, e.g. sim-node-0.
        node: String,
        /// Reconnect it instead.
        #[arg(long)]
        restore: bool,
    },
    /// Evict a pod as node-pressure eviction would (phase Failed, reason Evicted).
    Evict {
        /// Data directory given to `up`.
        #[arg(long)]
        dir: PathBuf,
        /// NAMESPACE/POD.
        pod: String,
        /// Eviction message.
        #[arg(long, default_value = "The node was low on resource: memory.")]
        message: String,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// Data directory (state, logs, kubeconfig).
    #[arg(long)]
    dir: PathBuf,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Finish pods by rule (annotations) instead of running processes.
    #[arg(long)]
    rules: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // The readiness probe's expected 500s while the API server boots are not news.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn,kube_client=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Install => {
            let bins = Binaries::ensure_installed()?;
            eprintln!(
                "control plane ready: {}",
                bins.apiserver
                    .parent()
                    .map_or_else(String::new, |p| p.display().to_string())
            );
            Ok(())
        }
        Cmd::Up(args) => up(&args),
        Cmd::Run(args) => run(&args),
        Cmd::Down { dir } => down(&dir),
        Cmd::LoseNode { dir, node, restore } => runtime()?.block_on(async {
            let client = client_from_kubeconfig(&dir.join("kubeconfig")).await?;
            node::set_lost(&client, &node, !restore)
                .await
                .with_context(|| format!("patching node {node}"))?;
            eprintln!(
                "node {node} {}",
                if restore { "reconnected" } else { "partitioned" }
            );
            Ok(())
        }),
        Cmd::Evict { dir, pod, message } => runtime()?.block_on(async {
            let (ns, name) = pod.split_once('/').context("POD must be NAMESPACE/NAME")?;
            let client = client_from_kubeconfig(&dir.join("kubeconfig")).await?;
            node::evict(&client, ns, name, &message)
                .await
                .with_context(|| format!("evicting {pod}"))?;
            eprintln!("pod {pod} marked for eviction");
            Ok(())
        }),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("testbed.pid")
}

fn up(args: &RunArgs) -> anyhow::Result<()> {
    // Install in the foreground so that its progress shows on this terminal.
    Binaries::ensure_installed()?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    if let Some(pid) = read_pid(&dir)
        && Path::new(&format!("/proc/{pid}")).exists()
    {
        bail!(
            "a testbed already runs in {} (pid {pid}); run `testbed down --dir {}` first",
            dir.display(),
            dir.display()
        );
    }
    let ready = dir.join("ready");
    let failed = dir.join("failed");
    let _ = std::fs::remove_file(&ready);
    let _ = std::fs::remove_file(&failed);
    let log = std::fs::File::create(dir.join("testbed.log"))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("run")
        .arg("--dir")
        .arg(&dir)
        .arg("--nodes")
        .arg(args.nodes.to_string());
    if args.rules {
        cmd.arg("--rules");
    }
    // Its own process group, so that a Ctrl-C in this terminal does not reach the daemon.
    use std::os::unix::process::CommandExt as _;
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = cmd.spawn().context("starting the testbed daemon")?;
    eprintln!(
        "[testbed] starting control plane and {} simulated node(s) in {} (pid {})",
        args.nodes,
        dir.display(),
        child.id()
    );
    let start = Instant::now();
    loop {
        if ready.exists() {
            break;
        }
        if failed.exists() {
            let why = std::fs::read_to_string(&failed).unwrap_or_default();
            bail!(
                "the testbed failed to start: {why}(log: {})",
                dir.join("testbed.log").display()
            );
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!(
                "the testbed did not start within 5 minutes; see {}",
                dir.join("testbed.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("[testbed] up in {:.1}s", start.elapsed().as_secs_f64());
    println!("export KUBECONFIG={}", dir.join("kubeconfig").display());
    Ok(())
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    std::fs::write(pid_file(&dir), std::process::id().to_string())?;
    let opts = TestbedOptions {
        nodes: args.nodes,
        mode: if args.rules {
            NodeMode::Rules
        } else {
            NodeMode::Process
        },
        ..TestbedOptions::default()
    };
    runtime()?.block_on(async {
        let testbed = match Testbed::start(&dir, &opts).await {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("{e:#}\n");
                let _ = std::fs::write(dir.join("failed"), &msg);
                bail!(msg);
            }
        };
        std::fs::write(dir.join("ready"), testbed.control_plane().api_url())?;
        tracing::info!(api = testbed.control_plane().api_url(), "testbed ready");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping");
        drop(testbed);
        let _ = std::fs::remove_file(dir.join("ready"));
        let _ = std::fs::remove_file(pid_file(&dir));
        Ok(())
    })
}

fn read_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file(dir)).ok()?.trim().parse().ok()
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(pid) = read_pid(dir) else {
        eprintln!("[testbed] nothing runs in {}", dir.display());
        return Ok(());
    };
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    let target = nix::unistd::Pid::from_raw(pid);
    if alive() {
        let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while alive() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive() {
            let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let _ = std::fs::remove_file(pid_file(dir));
    eprintln!("[testbed] stopped");
    Ok(())
}
