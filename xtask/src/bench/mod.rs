//! Benchmarks on a rule-mode testbed: `cargo xtask bench <suite>`. They print figures; nothing
//! here asserts a time.

mod cron;
mod node;
pub(crate) mod omjob;
pub(crate) mod operator_process;
mod pipelines;

/// What to benchmark.
#[derive(clap::Subcommand, Debug)]
pub enum Suite {
    /// How many pods a minute the simulated node completes in rule mode.
    Node(node::Args),
    /// OMJob operator: exit-handler latency, lifecycles per minute against batch Jobs, RSS/CPU,
    /// API requests per lifecycle.
    Omjob(omjob::Args),
    /// CronOMJob controller: many CronOMJobs due in the same minute.
    Cron(cron::Args),
    /// Pipeline service: latency of `run` and `runs` with many pipelines deployed.
    Pipelines(pipelines::Args),
}

pub fn run(suite: &Suite) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match suite {
        Suite::Node(args) => rt.block_on(node::run(args)),
        Suite::Omjob(args) => rt.block_on(omjob::run(args)),
        Suite::Cron(args) => rt.block_on(cron::run(args)),
        Suite::Pipelines(args) => rt.block_on(pipelines::run(args)),
    }
}
