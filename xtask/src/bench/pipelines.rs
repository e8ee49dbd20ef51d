//! `bench pipelines`: latency of `run` and `runs` with many pipelines deployed.

/// Options of `bench pipelines`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("bench pipelines is not built yet")
}
