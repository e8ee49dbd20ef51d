//! omjob-operator: controller manager entry point. Parses the command line and dispatches.

mod cli;

// The allocator decides how much of a burst's memory is given back afterwards (glibc keeps
// freed memory in its arenas); `cargo xtask bench omjob` prints the RSS figures to choose by.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    cli::run(<cli::Cli as clap::Parser>::parse())
}
