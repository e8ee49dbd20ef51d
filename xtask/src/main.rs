//! Project tasks: `cargo xtask demo`, `cargo xtask test`, `cargo xtask crdgen`, `cargo xtask bench`,
//! `cargo xtask soak`.

mod bench;
mod demo;
mod soak;

use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "xtask", about = "Tasks the README and CI call")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Build the control plane if needed, start a testbed, run the demo, tear it down.
    Demo {
        /// Leave the testbed, operator and Katalog runtime running until Ctrl-C.
        #[arg(long)]
        keep: bool,
    },
    /// The whole test suite: formatting, lints, CRD drift, unit and testbed integration tests.
    Test,
    /// Regenerate deploy/crds/omjob-crds.yaml from the Rust types.
    Crdgen,
    /// Benchmarks on a rule-mode testbed; prints figures, asserts nothing.
    #[command(subcommand)]
    Bench(bench::Suite),
    /// Hundreds of OMJobs with random outcomes while the operator is SIGKILLed at random; counts
    /// exit-handler pods per OMJob (not run by CI).
    Soak(soak::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Task::Demo { keep } => {
            install()?;
            install_browser()?;
            demo::run(keep)
        }
        Task::Test => test(),
        Task::Crdgen => crdgen(),
        Task::Bench(args) => {
            install()?;
            bench::run(&args)
        }
        Task::Soak(args) => {
            install()?;
            soak::run(&args)
        }
    }
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn install() -> anyhow::Result<()> {
    let version = omjob_testbed::controlplane::install::kubernetes_version()?;
    step(&format!(
        "Control plane: checking the cached Kubernetes {version} build (first run: Go module download + build, about 20-30 minutes on 2 cores)"
    ));
    omjob_testbed::controlplane::install::Binaries::ensure_installed()?;
    Ok(())
}

/// Debian's Chromium and its WebDriver, which the control panel's browser tests drive.
const BROWSER_BINARIES: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];

/// Installs Debian's `chromium` and `chromium-driver` when either binary is missing, through
/// apt-get (with sudo when not root), so a fresh machine can run the browser tests.
fn install_browser() -> anyhow::Result<()> {
    let missing: Vec<&str> = BROWSER_BINARIES
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        step("Browser: chromium and chromedriver are installed");
        return Ok(());
    }
    step(&format!(
        "Browser: {} missing; installing Debian's chromium and chromium-driver with apt-get",
        missing.join(" and ")
    ));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        eprintln!("{}apt-get {}", if root { "" } else { "sudo " }, args.join(" "));
        cmd
    };
    run(apt(&["update"]), "apt-get update")?;
    run(
        apt(&[
            "install",
            "-y",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
        ]),
        "apt-get install chromium chromium-driver",
    )?;
    for path in BROWSER_BINARIES {
        if !std::path::Path::new(path).exists() {
            bail!("{path} is still missing after installing chromium and chromium-driver");
        }
    }
    Ok(())
}

/// Schemathesis, which the pipeline service's OpenAPI conformance test runs; installed here so
/// that the minute it takes on a fresh machine is announced rather than spent inside a test.
fn install_schemathesis() -> anyhow::Result<()> {
    step(&format!(
        "Schemathesis {} (PyPI, cached in the testbed cache): checking",
        omjob_testbed::tools::SCHEMATHESIS_VERSION
    ));
    let exe = omjob_testbed::tools::schemathesis()?;
    eprintln!("    {}", exe.display());
    Ok(())
}

fn test() -> anyhow::Result<()> {
    install()?;
    install_browser()?;
    install_schemathesis()?;
    step("Formatting (cargo fmt --check)");
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt, "cargo fmt --check")?;
    step("Lints (cargo clippy --workspace --all-targets -D warnings)");
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy, "cargo clippy")?;
    step("Tests: unit, CRD drift, and integration tests on the testbed (one control plane per test binary)");
    let mut test = cargo();
    test.args(["test", "--workspace", "--locked"]);
    run(test, "cargo test")?;
    step("All checks passed");
    Ok(())
}

fn crdgen() -> anyhow::Result<()> {
    let root = workspace_root()?;
    let out = cargo()
        .args(["run", "--quiet", "--package", "omjob-operator", "--", "crds"])
        .current_dir(&root)
        .output()
        .context("running omjob-operator crds")?;
    if !out.status.success() {
        bail!(
            "omjob-operator crds failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = root.join("deploy/crds/omjob-crds.yaml");
    std::fs::write(&path, &out.stdout).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn workspace_root() -> anyhow::Result<std::path::PathBuf> {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(std::path::Path::to_path_buf)
        .context("xtask has no parent directory")
}
