//! The operator's command line: one subcommand per mode of the binary.
//!
//! `crds` prints the CustomResourceDefinitions; `run` runs the controller manager (configured by
//! the Java operator's environment variables, see [`omjob_operator::config`]).

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Controller manager for OMJob and CronOMJob (`pipelines.openmetadata.org/v1`).
#[derive(Debug, Parser)]
#[command(name = "omjob-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of the binary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the OMJob and CronOMJob CRDs as multi-document YAML on stdout.
    ///
    /// Regenerate the committed copy with
    /// `cargo run -p omjob-operator -- crds > deploy/crds/omjob-crds.yaml`.
    Crds,
    /// Run the controller manager (configuration comes from environment variables).
    Run,
}

/// Runs the parsed command.
///
/// # Errors
///
/// When the CRDs cannot be rendered or stdout cannot be written.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crds => print_crds(),
        Command::Run => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("failed to start the async runtime")?
            .block_on(omjob_operator::run::run()),
    }
}

fn print_crds() -> anyhow::Result<()> {
    let yaml = omjob_api::crds::render_yaml().context("failed to render the CRDs")?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(yaml.as_bytes())
        .context("failed to write the CRDs to stdout")?;
    stdout.flush().context("failed to write the CRDs to stdout")
}
