//! Where the control-plane binaries live, and how they get there: the embedded installer script
//! builds Kubernetes (and etcd and helm) from the committed wrapper Go modules once and caches the
//! binaries per version.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The Kubernetes version the testbed builds and runs unless `OMJOB_TESTBED_K8S_VERSION` names
/// another. It is the version the committed wrapper module (`crates/testbed/go/kubernetes`)
/// requires; a test checks the two agree.
pub const KUBERNETES_VERSION: &str = "1.34.4";

/// The environment variable that picks another Kubernetes version (for a compatibility run).
pub const VERSION_ENV: &str = "OMJOB_TESTBED_K8S_VERSION";

/// The installer, embedded so that the `testbed` binary and the test fixtures carry it with them.
const INSTALL_SCRIPT: &str = include_str!("../../scripts/install-control-plane.sh");

/// The wrapper modules and their generator, embedded for the same reason. Written to the cache
/// before each install so the build resolves exactly the committed sources.
const MODULE_FILES: [(&str, &str); 5] = [
    ("generate.sh", include_str!("../../go/generate.sh")),
    ("kubernetes/go.mod", include_str!("../../go/kubernetes/go.mod")),
    ("kubernetes/go.sum", include_str!("../../go/kubernetes/go.sum")),
    ("helm/go.mod", include_str!("../../go/helm/go.mod")),
    ("helm/go.sum", include_str!("../../go/helm/go.sum")),
];

/// Errors while locating or installing the control-plane binaries.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The installer script could not be started.
    #[error("failed to start the installer (bash)")]
    Spawn(#[source] std::io::Error),
    /// The wrapper modules could not be written to the cache.
    #[error("failed to write the wrapper Go modules to {0}")]
    Modules(PathBuf, #[source] std::io::Error),
    /// The installer ran and failed; its output went to the terminal.
    #[error("the control-plane installer failed with {0}; its output above says which step")]
    Failed(std::process::ExitStatus),
    /// A binary is still missing after the installer succeeded.
    #[error("{0} is missing after install; remove {1} and run `testbed install` again")]
    Missing(&'static str, PathBuf),
    /// `OMJOB_TESTBED_K8S_VERSION` is not a version.
    #[error("{VERSION_ENV}={0:?} is not a Kubernetes version such as 1.34.4")]
    BadVersion(String),
}

/// Absolute paths of every binary a control plane runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The Kubernetes version they were built from, e.g. `1.34.4`.
    pub version: String,
    /// `etcd`, the version Kubernetes pins.
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub controller_manager: PathBuf,
    /// `kube-scheduler`.
    pub scheduler: PathBuf,
    /// `kubectl`, built from the same sources so that its version matches the server.
    pub kubectl: PathBuf,
    /// `helm` (v3), to lint, template and install charts on the testbed.
    pub helm: PathBuf,
}

/// The cache directory: `$OMJOB_TESTBED_CACHE`, else `$XDG_CACHE_HOME/omjob-testbed`, else
/// `~/.cache/omjob-testbed`.
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

/// The Kubernetes version to run: `OMJOB_TESTBED_K8S_VERSION` when set, else
/// [`KUBERNETES_VERSION`].
///
/// # Errors
/// Fails when the variable is set to something that is not `MAJOR.MINOR.PATCH`.
pub fn kubernetes_version() -> Result<String, InstallError> {
    match std::env::var(VERSION_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            let v = v.trim().trim_start_matches('v').to_owned();
            let parts: Vec<&str> = v.split('.').collect();
            let numeric = parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if numeric {
                Ok(v)
            } else {
                Err(InstallError::BadVersion(v))
            }
        }
        _ => Ok(KUBERNETES_VERSION.to_owned()),
    }
}

fn version_dir(version: &str) -> PathBuf {
    cache_dir().join(format!("kubernetes-{version}"))
}

impl Binaries {
    fn in_dir(version: &str, dir: &Path) -> Self {
        Self {
            version: version.to_owned(),
            etcd: dir.join("etcd"),
            apiserver: dir.join("kube-apiserver"),
            controller_manager: dir.join("kube-controller-manager"),
            scheduler: dir.join("kube-scheduler"),
            kubectl: dir.join("kubectl"),
            helm: dir.join("helm"),
        }
    }

    fn all(&self) -> [&PathBuf; 6] {
        [
            &self.etcd,
            &self.apiserver,
            &self.controller_manager,
            &self.scheduler,
            &self.kubectl,
            &self.helm,
        ]
    }

    /// The binaries of `version` if all of them are cached, without installing anything.
    #[must_use]
    pub fn find(version: &str) -> Option<Self> {
        let bins = Self::in_dir(version, &version_dir(version).join("bin"));
        bins.all().iter().all(|p| p.is_file()).then_some(bins)
    }

    /// Returns the binaries of [`kubernetes_version`], running the installer first when any is
    /// missing. The installer prints its progress on stderr; the first build takes about 15-25
    /// minutes on 2 cores.
    ///
    /// # Errors
    /// Fails when the version is malformed, or the installer fails or leaves a binary missing.
    pub fn ensure_installed() -> Result<Self, InstallError> {
        let version = kubernetes_version()?;
        if let Some(bins) = Self::find(&version) {
            return Ok(bins);
        }
        run_installer(&version)?;
        Self::find(&version)
            .ok_or_else(|| InstallError::Missing("a control-plane binary", version_dir(&version).join("bin")))
    }
}

/// Writes the committed wrapper modules under `dir`, replacing whatever an earlier install left.
fn write_modules(dir: &Path) -> Result<(), InstallError> {
    let err = |e| InstallError::Modules(dir.to_owned(), e);
    for (name, text) in MODULE_FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        std::fs::write(&path, text).map_err(err)?;
    }
    Ok(())
}

fn run_installer(version: &str) -> Result<(), InstallError> {
    let root = version_dir(version);
    let modules = root.join("modules");
    write_modules(&modules)?;
    let status = Command::new("bash")
        .arg("-c")
        .arg(INSTALL_SCRIPT)
        .arg("install-control-plane")
        .env("K8S_VERSION", version)
        .env("MODULE_DIR", &modules)
        .env("BIN_DIR", root.join("bin"))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(InstallError::Spawn)?;
    if status.success() {
        Ok(())
    } else {
        Err(InstallError::Failed(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_constant_is_the_one_the_committed_module_requires() {
        let go_mod = MODULE_FILES
            .iter()
            .find(|(n, _)| *n == "kubernetes/go.mod")
            .map(|(_, t)| *t)
            .unwrap_or_default();
        let wanted = format!("k8s.io/kubernetes v{KUBERNETES_VERSION}");
        assert!(
            // `go mod tidy` marks it `// indirect`: only the module's tools import it.
            go_mod
                .lines()
                .any(|l| l.trim().starts_with(&format!("{wanted} ")) || l.trim() == wanted),
            "crates/testbed/go/kubernetes/go.mod does not require {wanted}: run crates/testbed/go/generate.sh"
        );
    }

    #[test]
    fn every_staging_module_is_replaced_by_its_published_version() {
        let go_mod = MODULE_FILES[1].1;
        let minor_patch = KUBERNETES_VERSION
            .split_once('.')
            .map(|(_, r)| r)
            .unwrap_or_default();
        let replaces: Vec<&str> = go_mod.lines().filter(|l| l.contains(" => ")).collect();
        assert!(
            replaces.len() > 20,
            "expected the staging replaces, found {replaces:?}"
        );
        for line in replaces {
            assert!(
                line.trim().ends_with(&format!("v0.{minor_patch}")),
                "{line} is not pinned to v0.{minor_patch}"
            );
        }
    }
}
