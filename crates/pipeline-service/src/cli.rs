//! The command line: `pipelines serve` runs the HTTP service; the other subcommands run one
//! operation through the library (same configuration, same Kubernetes client) and print a table
//! a person can read, or JSON with `-o json`.

use std::{io::Write as _, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::{
    Config, PipelineClient,
    http::{self, ApiDoc, AppState},
    logs::Page,
    metrics::Metrics,
    pipeline,
    runs::{Run, RunState},
};

/// Deploy, run, watch and debug OpenMetadata ingestion pipelines on Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "pipelines", version)]
pub struct Cli {
    /// Configuration file (YAML); `PIPELINES_*` environment variables override it.
    #[arg(long, short = 'c', global = true, env = "PIPELINES_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// JSON.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve,
    /// Create or update a pipeline from a JSON or YAML file.
    Deploy {
        /// The definition file (`-` for standard input).
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// Pipeline name (else the file's `name`).
        name: Option<String>,
    },
    /// Show a deployed pipeline's definition.
    Get {
        /// Pipeline name.
        name: String,
    },
    /// Start a run now.
    Run {
        /// Pipeline name.
        name: String,
        /// Follow the run to its end, printing its state changes.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 7200)]
        timeout: u64,
    },
    /// List runs, or show one (with diagnostics when it failed).
    Runs {
        /// Pipeline name.
        name: String,
        /// Run id or resource name.
        run: Option<String>,
    },
    /// Print the newest run's log: one page, or every page with `--all`.
    Logs {
        /// Pipeline name.
        name: String,
        /// Page index.
        #[arg(long)]
        after: Option<String>,
        /// Print every page in order.
        #[arg(long)]
        all: bool,
    },
    /// Stop the pipeline's active runs and their pods.
    Kill {
        /// Pipeline name.
        name: String,
    },
    /// Resume the schedule.
    Enable {
        /// Pipeline name.
        name: String,
    },
    /// Suspend the schedule.
    Disable {
        /// Pipeline name.
        name: String,
    },
    /// Remove everything the pipeline owns.
    Delete {
        /// Pipeline name.
        name: String,
    },
    /// Check the connection to Kubernetes and the service's permissions.
    Status,
    /// Print the HTTP API's OpenAPI document.
    Openapi,
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Formats rows as a table with aligned columns.
#[must_use]
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn run_rows(runs: &[Run]) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.state.as_str().to_owned(),
                r.resource.clone(),
                if r.scheduled { "scheduled" } else { "on demand" }.to_owned(),
                r.start_time.clone().unwrap_or_else(|| "-".into()),
                r.end_time.clone().unwrap_or_else(|| "-".into()),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "RUN ID", "STATE", "RESOURCE", "TRIGGER", "STARTED", "ENDED", "REASON",
        ],
        &rows,
    )
}

/// Runs the command line.
///
/// # Errors
/// Configuration, connection and operation errors (printed by `main`).
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Openapi = cli.command {
        use utoipa::OpenApi as _;
        println!("{}", ApiDoc::openapi().to_pretty_json()?);
        return Ok(0);
    }
    let config = Config::load(cli.config.as_deref())?;
    let json = cli.output == Output::Json;
    let client = PipelineClient::connect(config.clone()).await?;
    match cli.command {
        Command::Openapi => {}
        Command::Serve => {
            if config.api_tokens.is_empty() {
                tracing::warn!("no apiTokens configured: every /api/v1 request will be refused");
            }
            let client = Arc::new(client);
            if config.diagnostics_interval_seconds > 0 {
                let keeper = Arc::clone(&client);
                let every = Duration::from_secs(config.diagnostics_interval_seconds);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        match keeper.preserve_diagnostics().await {
                            Ok(kept) if !kept.is_empty() => {
                                tracing::info!(?kept, "preserved diagnostics of failed runs")
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "could not preserve diagnostics"),
                        }
                    }
                });
            }
            let state = AppState {
                client,
                tokens: Arc::new(config.api_tokens.clone()),
                metrics: Arc::new(Metrics::new()),
            };
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            tracing::info!(address = %listener.local_addr()?, namespace = %config.namespace, mode = ?config.mode, "serving");
            // Kubernetes stops pods with SIGTERM; a terminal with Ctrl-C.
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let shutdown = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            };
            http::serve(listener, http::router(state, config.max_body_bytes), shutdown).await?;
        }
        Command::Deploy { file, name } => {
            let (body, yaml) = if file.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
                (buf, true)
            } else {
                let ext = file
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or_default()
                    .to_owned();
                (
                    std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?,
                    ext != "json",
                )
            };
            // YAML is a superset of JSON, so YAML parsing also reads JSON from stdin.
            let def = pipeline::parse_definition(&body, yaml.then_some("application/yaml"))?;
            let done = client.deploy(def, name.as_deref()).await?;
            if json {
                print_json(&done)?;
            } else {
                println!(
                    "deployed {} ({}): {}",
                    done.pipeline,
                    if done.scheduled { "scheduled" } else { "on demand" },
                    done.resources.join(", ")
                );
            }
        }
        Command::Get { name } => {
            let def = client.get(&name).await?;
            if json {
                print_json(&def)?;
            } else {
                print!("{}", serde_yaml_ng::to_string(&def)?);
            }
        }
        Command::Run { name, wait, timeout } => {
            let started = client.run(&name).await?;
            if !wait {
                if json {
                    print_json(&started)?;
                } else {
                    println!(
                        "started run {} ({} {})",
                        started.run_id, started.kind, started.resource
                    );
                }
                return Ok(0);
            }
            if !json {
                println!(
                    "started run {} ({} {})",
                    started.run_id, started.kind, started.resource
                );
            }
            let run = follow(
                &client,
                &name,
                &started.run_id,
                Duration::from_secs(timeout),
                json,
            )
            .await?;
            if json {
                print_json(&run)?;
            }
            return Ok(if run.state == RunState::Success { 0 } else { 2 });
        }
        Command::Runs { name, run } => match run {
            None => {
                let runs = client.runs(&name).await?;
                if json {
                    print_json(&runs)?;
                } else {
                    println!("{}", run_rows(&runs));
                }
            }
            Some(id) => {
                let r = client.run_detail(&name, &id).await?;
                if json {
                    print_json(&r)?;
                } else {
                    println!("{}", run_rows(std::slice::from_ref(&r)));
                    if let Some(m) = &r.message {
                        println!("\nMessage: {m}");
                    }
                    if let Some(d) = &r.diagnostics {
                        println!(
                            "\n{}\nEvents:\n{}\n\nLast log lines:\n{}",
                            d.description,
                            d.events.join("\n"),
                            d.log_tail
                        );
                    }
                }
            }
        },
        Command::Logs { name, after, all } => {
            let mut after = after;
            loop {
                let (key, page) = client.logs(&name, after.as_deref()).await?;
                if json {
                    print_json(&page.to_json(&key))?;
                } else {
                    match &page {
                        Page::Chunk { text, .. } => {
                            let mut out = std::io::stdout().lock();
                            out.write_all(text.as_bytes())?;
                            out.flush()?;
                        }
                        Page::Invalid(m) | Page::Message(m) => eprintln!("{m}"),
                    }
                }
                match page {
                    Page::Chunk { index, total, .. } if all && index + 1 < total => {
                        after = Some((index + 1).to_string())
                    }
                    Page::Invalid(_) => return Ok(1),
                    _ => break,
                }
            }
        }
        Command::Kill { name } => outcome(json, &client.kill(&name).await?)?,
        Command::Enable { name } => outcome(json, &client.set_enabled(&name, true).await?)?,
        Command::Disable { name } => outcome(json, &client.set_enabled(&name, false).await?)?,
        Command::Delete { name } => outcome(json, &client.delete(&name).await?)?,
        Command::Status => {
            let s = client.status().await;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "{}",
                    table(
                        &["REACHABLE", "VERSION", "NAMESPACE", "MODE", "MISSING PERMISSIONS"],
                        &[vec![
                            s.reachable.to_string(),
                            s.version.clone().unwrap_or_else(|| "-".into()),
                            s.namespace.clone(),
                            format!("{:?}", s.mode).to_lowercase(),
                            if s.missing_permissions.is_empty() {
                                "none".into()
                            } else {
                                s.missing_permissions.join(", ")
                            },
                        ]]
                    )
                );
                println!("{}", s.message);
            }
            return Ok(
                if s.reachable && s.missing_permissions.is_empty() && s.problems.is_empty() {
                    0
                } else {
                    1
                },
            );
        }
    }
    Ok(0)
}

fn outcome(json: bool, o: &crate::client::Outcome) -> anyhow::Result<()> {
    if json {
        print_json(o)
    } else {
        println!("{}", o.message);
        for r in &o.resources {
            println!("  {r}");
        }
        Ok(())
    }
}

/// Polls the run every second until it finishes, printing each state change (to stderr in JSON
/// mode, so standard output stays one JSON document).
async fn follow(
    client: &PipelineClient,
    name: &str,
    run_id: &str,
    limit: Duration,
    json: bool,
) -> anyhow::Result<Run> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last: Option<RunState> = None;
    loop {
        if let Some(run) = client.runs(name).await?.into_iter().find(|r| r.run_id == run_id) {
            if last != Some(run.state) {
                let now = jiff::Timestamp::now().strftime("%H:%M:%S").to_string();
                let reason = run
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                let line = format!("{now}  {run_id}  {}{reason}", run.state.as_str());
                if json {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
                last = Some(run.state);
            }
            if run.state.is_finished() {
                return Ok(if run.state == RunState::Failed {
                    client.run_detail(name, run_id).await.unwrap_or(run)
                } else {
                    run
                });
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "run {run_id} did not finish within {limit:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["A", "LONGER"],
            &[vec!["value".into(), "x".into()], vec!["v".into(), "yy".into()]],
        );
        assert_eq!(t, "A      LONGER\nvalue  x\nv      yy");
    }

    #[test]
    fn the_cli_parses() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["pipelines", "-o", "json", "run", "p1", "--wait"]).unwrap_or_else(|e| {
                unreachable!("{e}");
            });
        assert!(matches!(cli.command, Command::Run { wait: true, .. }));
    }
}
