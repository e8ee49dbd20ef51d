//! Where the control-plane binaries live, and how they get there: the embedded installer script
//! builds Kubernetes 1.20.2 from Debian's source package once and caches the binaries.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

/// The Kubernetes version the testbed builds and runs.
pub const KUBERNETES_VERSION: &str = "1.20.2";

/// The installer, embedded so that the `testbed` binary and the test fixtures carry it with them.
const INSTALL_SCRIPT: &str = include_str!("../../scripts/install-control-plane.sh");

/// Errors while locating or installing the control-plane binaries.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The installer script could not be started.
    #[error("failed to start the installer (bash)")]
    Spawn(#[source] std::io::Error),
    /// The installer ran and failed; its output went to the terminal.
    #[error("the control-plane installer failed with {0}; its output above says which step")]
    Failed(std::process::ExitStatus),
    /// A binary is still missing after the installer succeeded.
    #[error("{0} is missing after install; remove {1} and run `testbed install` again")]
    Missing(&'static str, PathBuf),
}

/// Absolute paths of every binary a control plane runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `etcd` (Debian's etcd-server 3.4).
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub controller_manager: PathBuf,
    /// `kube-scheduler`.
    pub scheduler: PathBuf,
    /// `kubectl`, built from the same tree so that its version matches the server.
    pub kubectl: PathBuf,
}

/// The cache directory: `$OMJOB_TESTBED_CACHE`, else `$XDG_CACHE_HOME/omjob-testbed`, else
/// `~/.cache/omjob-testbed` (the same rule as the installer script).
#[must_use]
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OMJOB_TESTBED_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("/tmp"), |h| PathBuf::from(h).join(".cache"))
        });
    base.join("omjob-testbed")
}

fn bin_dir() -> PathBuf {
    cache_dir()
        .join(format!("kubernetes-{KUBERNETES_VERSION}"))
        .join("bin")
}

fn find_etcd() -> Option<PathBuf> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

impl Binaries {
    /// The binaries if all of them are present, without installing anything.
    #[must_use]
    pub fn find() -> Option<Self> {
        let dir = bin_dir();
        let bins = Self {
            etcd: find_etcd()?,
            apiserver: dir.join("kube-apiserver"),
            controller_manager: dir.join("kube-controller-manager"),
            scheduler: dir.join("kube-scheduler"),
            kubectl: dir.join("kubectl"),
        };
        [
            &bins.apiserver,
            &bins.controller_manager,
            &bins.scheduler,
            &bins.kubectl,
        ]
        .iter()
        .all(|p| p.is_file())
        .then_some(bins)
    }

    /// Returns the binaries, running the installer first when any is missing. The installer
    /// prints its progress on stderr; it takes about 7-10 minutes the first time on 2 cores.
    ///
    /// # Errors
    /// Fails when the installer fails or leaves a binary missing.
    pub fn ensure_installed() -> Result<Self, InstallError> {
        if let Some(bins) = Self::find() {
            return Ok(bins);
        }
        run_installer()?;
        Self::find().ok_or_else(|| InstallError::Missing("a control-plane binary or etcd", bin_dir()))
    }
}

fn run_installer() -> Result<(), InstallError> {
    let mut child = Command::new("bash")
        .arg("-s")
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(InstallError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(INSTALL_SCRIPT.as_bytes())
            .map_err(InstallError::Spawn)?;
    }
    let status = child.wait().map_err(InstallError::Spawn)?;
    if status.success() {
        Ok(())
    } else {
        Err(InstallError::Failed(status))
    }
}
