//! Workspace binaries the benches and the demo run as their own processes, built once per xtask
//! process and profile.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Mutex, PoisonError},
};

use anyhow::{Context as _, bail};

use crate::{cargo, workspace_root};

/// Paths already built, by (package, release).
static BUILT: Mutex<Vec<((String, bool), PathBuf)>> = Mutex::new(Vec::new());

/// Builds the binary `package` (whose binary has the package's name) in release mode when
/// `release`, and returns its path; `label` names it in the progress line.
///
/// # Errors
/// When cargo fails or reports no executable.
pub fn binary(package: &str, label: &str, release: bool) -> anyhow::Result<PathBuf> {
    let key = (package.to_owned(), release);
    if let Some((_, path)) = BUILT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(k, _)| *k == key)
    {
        return Ok(path.clone());
    }
    let mode = if release { "release" } else { "debug" };
    let mut args = vec!["build"];
    if release {
        args.push("--release");
    }
    // `OMJOB_BENCH_OPERATOR_FEATURES=mimalloc` builds the operator with that allocator, and
    // `system` with the system allocator (no default features, so not jemalloc), to compare the
    // RSS figures of one bench run with another's.
    let features = (package == "omjob-operator")
        .then(|| std::env::var("OMJOB_BENCH_OPERATOR_FEATURES").ok())
        .flatten()
        .filter(|f| !f.is_empty());
    match features.as_deref() {
        Some("system") => args.push("--no-default-features"),
        Some(f) => args.extend(["--features", f]),
        None => {}
    }
    args.extend(["--package", package, "--bin", package, "--message-format=json"]);
    let what = format!("cargo {}", args[..args.len() - 1].join(" "));
    crate::step(&format!("Building {label} in {mode} mode ({what})"));
    // cargo prints the artifact paths as JSON, so a CARGO_TARGET_DIR elsewhere is found too.
    let out = cargo()
        .args(&args)
        .current_dir(workspace_root()?)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == package)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo build reported no {package} executable"))?;
    BUILT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((key, path.clone()));
    Ok(path)
}
