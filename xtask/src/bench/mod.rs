//! Benchmarks on a rule-mode testbed: `cargo xtask bench <suite>`. They print figures; nothing
//! here asserts a time.

mod apiserver;
mod artifact;
mod cron;
mod katalog;
pub(crate) mod katalog_process;
mod node;
pub(crate) mod omjob;
mod omjob_loads;
mod omjob_report;
pub(crate) mod operator_process;
mod pipelines;
mod twin;

/// A rule-mode testbed (pods finish from annotations, no processes) in a temporary directory
/// that is removed after the testbed stops.
pub(crate) struct RuleTestbed {
    // Declared first so that it drops (stops its processes) before its directory goes.
    pub testbed: omjob_testbed::Testbed,
    dir: tempfile::TempDir,
}

impl RuleTestbed {
    /// The temporary directory (the testbed's data, and room for logs beside it).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl std::ops::Deref for RuleTestbed {
    type Target = omjob_testbed::Testbed;

    fn deref(&self) -> &Self::Target {
        &self.testbed
    }
}

/// Starts a rule-mode testbed with `nodes` simulated nodes, its data under a temporary directory
/// named after `prefix`.
///
/// # Errors
/// When the directory cannot be made or the testbed does not start.
pub(crate) async fn rule_testbed(prefix: &str, nodes: usize) -> anyhow::Result<RuleTestbed> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    let testbed = omjob_testbed::Testbed::start(
        dir.path(),
        &omjob_testbed::TestbedOptions {
            nodes,
            mode: omjob_testbed::node::NodeMode::Rules,
            ..omjob_testbed::TestbedOptions::default()
        },
    )
    .await?;
    Ok(RuleTestbed { testbed, dir })
}

/// What to benchmark.
#[derive(clap::Subcommand, Debug)]
pub enum Suite {
    /// How many pods a minute the simulated node completes in rule mode.
    Node(node::Args),
    /// OMJob operator: exit-handler latency against a physical-limit twin, lifecycles per minute
    /// against batch Jobs, RSS/CPU, API requests per lifecycle.
    Omjob(omjob::Args),
    /// CronOMJob controller: many CronOMJobs due in the same minute.
    Cron(cron::Args),
    /// Pipeline service: latency of `run` and `runs` with many pipelines deployed.
    Pipelines(pipelines::Args),
    /// Katalog runtime against a bare client: time to every child of N DataJobs, writes over
    /// quiet resyncs, drift-repair latency, RSS, CPU per 1,000 reconciles.
    Katalog(katalog::Args),
}

pub fn run(suite: &Suite) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match suite {
        Suite::Node(args) => rt.block_on(node::run(args)),
        Suite::Omjob(args) => rt.block_on(omjob::run(args)),
        Suite::Cron(args) => rt.block_on(cron::run(args)),
        Suite::Pipelines(args) => rt.block_on(pipelines::run(args)),
        Suite::Katalog(args) => rt.block_on(katalog::run(args)),
    }
}
