//! omjob-operator: controller manager entry point. Parses the command line and dispatches.

mod cli;

// The allocator decides how much of a burst's memory is given back afterwards (glibc keeps
// freed memory in its arenas). jemalloc is the default feature, chosen by the RSS figures of
// `cargo xtask bench omjob`; without it (`--no-default-features`) the system allocator is used.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    #[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
    omjob_operator::heap::use_jemalloc_stats();
    cli::run(<cli::Cli as clap::Parser>::parse())
}
