//! omjob-operator: controller manager entry point. Parses the command line and dispatches.

mod cli;

fn main() -> anyhow::Result<()> {
    cli::run(<cli::Cli as clap::Parser>::parse())
}
