//! `bench omjob`: exit-handler latency, lifecycles per minute, operator RSS/CPU, API requests.

/// Options of `bench omjob`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("bench omjob is not built yet")
}
