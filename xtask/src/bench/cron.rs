//! `bench cron`: 1,000 CronOMJobs due in the same minute.

/// Options of `bench cron`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("bench cron is not built yet")
}
