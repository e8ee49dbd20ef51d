//! `katalog`: check Orkestra Katalogs, render the children a CR would get without a cluster, and
//! run a Katalog's reconcilers against one.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use katalog::{
    cluster::{Absent, ClusterView, Fixture},
    load::{self, Entry},
    render,
    template::Engine,
};
use serde::Deserialize as _;
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(name = "katalog", version, about = "Orkestra-compatible Katalogs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate Katalog files; prints every problem and exits non-zero if any is an error.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the children a CR would get (onCreate and onReconcile), as YAML documents.
    Render {
        file: PathBuf,
        /// The custom resource, as YAML.
        #[arg(long)]
        cr: PathBuf,
        /// The CRD entry to use; by default the one whose apiTypes match the CR.
        #[arg(long)]
        entry: Option<String>,
        /// YAML documents of cluster objects that templates may look up; none by default.
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// Also print the declared status fields a successful reconcile would write.
        #[arg(long)]
        status: bool,
    },
    /// Reconcile the Katalogs' CRs on the cluster of the current kube context, until Ctrl-C or
    /// SIGTERM. Configured by Orkestra's environment (ORK_PORT, DEFAULT_WORKERS, DEFAULT_RESYNC,
    /// MAX_QUEUE_DEPTH, FAILURE_THRESHOLD, ORKESTRA_NAMESPACE, LEADER_ELECTION, LEASE_DURATION,
    /// RENEW_DEADLINE, RETRY_PERIOD); see docs/katalog.md.
    Run {
        /// A Katalog file; repeat for several. Without it, KATALOG_PATH (comma-separated).
        #[arg(long)]
        katalog: Vec<PathBuf>,
        /// The HTTP API port, over ORK_PORT.
        #[arg(long)]
        port: Option<u16>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { files } => Ok(check(&files)),
        Command::Render {
            file,
            cr,
            entry,
            cluster,
            status,
        } => render_cmd(&file, &cr, entry.as_deref(), cluster.as_deref(), status),
        Command::Run { katalog, port } => run_cmd(katalog, port),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cmd(katalogs: Vec<PathBuf>, port: Option<u16>) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut config = katalog::runtime::config::Config::from_env(katalogs)?;
    if let Some(port) = port {
        config.listen.set_port(port);
    }
    // The Katalogs first: a broken one is reported even where no cluster is reachable.
    katalog::runtime::check(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    rt.block_on(async {
        let client = kube::Client::try_default()
            .await
            .context("failed to build a Kubernetes client from the kube config")?;
        let shutdown = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            tracing::info!("shutting down");
        };
        katalog::runtime::run(client, config, Arc::default(), shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn check(files: &[PathBuf]) -> ExitCode {
    let engine = Engine::default();
    let mut failed = false;
    for file in files {
        let loaded = load::load(file, &engine);
        for p in &loaded.problems {
            println!("{p}");
        }
        let errors = loaded.problems.iter().filter(|p| p.is_error()).count();
        if errors > 0 {
            failed = true;
            println!("{}: {errors} error(s)", file.display());
        } else {
            for e in &loaded.entries {
                println!("{}: ok: {}", file.display(), summary(e));
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn summary(e: &Entry) -> String {
    let blocks = [
        ("onCreate", &e.on_create),
        ("onReconcile", &e.on_reconcile),
        ("onDelete", &e.on_delete),
    ]
    .iter()
    .filter_map(|(name, b)| {
        let counts = b.counts();
        (!counts.is_empty()).then(|| {
            let kinds: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!("{name} {}", kinds.join(", "))
        })
    })
    .collect::<Vec<_>>()
    .join("; ");
    format!(
        "{} ({}, {}): {} workers ({}), resync {} ({}), queue depth {} ({}); {}",
        e.name,
        e.gvk(),
        if e.namespaced {
            "namespaced"
        } else {
            "cluster-scoped"
        },
        e.workers.value,
        e.workers.source(),
        katalog::model::scalar::GoDuration(e.resync.value).go_string(),
        e.resync.source(),
        e.max_queue_depth.value,
        e.max_queue_depth.source(),
        if blocks.is_empty() {
            "no children".to_owned()
        } else {
            blocks
        },
    )
}

fn read_documents(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc).with_context(|| format!("invalid YAML in {}", path.display()))?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn render_cmd(
    file: &Path,
    cr: &Path,
    entry: Option<&str>,
    cluster: Option<&Path>,
    with_status: bool,
) -> anyhow::Result<ExitCode> {
    let cluster: Arc<dyn ClusterView> = match cluster {
        Some(path) => Arc::new(Fixture::new(read_documents(path)?)),
        None => Arc::new(Absent),
    };
    let engine = Engine::new(Arc::clone(&cluster));
    let loaded = load::load(file, &engine);
    for p in &loaded.problems {
        eprintln!("{p}");
    }
    if loaded.has_errors() {
        bail!("{} has errors; run `katalog check` for the list", file.display());
    }
    let mut crs = read_documents(cr)?;
    if crs.len() != 1 {
        bail!(
            "{} must hold exactly one custom resource, found {}",
            cr.display(),
            crs.len()
        );
    }
    let cr = crs.remove(0);
    let chosen = match entry {
        Some(name) => loaded.entries.iter().find(|e| e.name == name),
        None => loaded.entries.iter().find(|e| {
            cr["apiVersion"].as_str() == Some(e.api_version().as_str())
                && cr["kind"].as_str() == Some(e.kind.as_str())
        }),
    };
    let Some(chosen) = chosen else {
        bail!(
            "no CRD entry of {} matches {} {}",
            file.display(),
            cr["apiVersion"].as_str().unwrap_or("?"),
            cr["kind"].as_str().unwrap_or("?")
        );
    };
    let rendered = render::render(chosen, &cr, &engine, cluster.as_ref())?;
    for note in &rendered.notes {
        eprintln!("note: {note}");
    }
    print!("{}", render::to_yaml(&rendered)?);
    if with_status {
        let (status, notes) = render::status(chosen, &cr, &rendered, &engine, cluster.as_ref());
        for note in &notes {
            eprintln!("note: {note}");
        }
        if !rendered.children.is_empty() {
            println!("---");
        }
        println!("# status: the declared fields after a successful reconcile");
        print!(
            "{}",
            serde_yaml_ng::to_string(&serde_json::json!({ "status": status }))?
        );
    }
    Ok(ExitCode::SUCCESS)
}
