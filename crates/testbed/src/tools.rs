//! Test tools that come from a package registry rather than from this workspace, installed once
//! into the testbed's cache: Schemathesis (PyPI), which fuzzes the pipeline service's HTTP API
//! against its own OpenAPI document.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use crate::controlplane::install::cache_dir;

/// The Schemathesis release the suite runs: pinned, so that a new release's checks do not
/// change the verdict of an unchanged API.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Setting this to a `schemathesis` executable skips the install.
pub const SCHEMATHESIS_ENV: &str = "OMJOB_SCHEMATHESIS";

/// A tool could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "failed to run `{command}` (is python3 with the venv module installed? Debian: python3-venv): {source}"
    )]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}); its output is above")]
    Failed { command: String, status: String },
    #[error("failed to write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn run(mut cmd: Command) -> Result<(), ToolError> {
    let command = format!("{cmd:?}");
    let status = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|source| ToolError::Spawn {
            command: command.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(ToolError::Failed {
            command,
            status: status.to_string(),
        })
    }
}

/// The `schemathesis` executable: `$OMJOB_SCHEMATHESIS`, else the pinned release in a virtual
/// environment under the testbed cache, created from PyPI on first use (about a minute).
///
/// # Errors
/// python3 or pip cannot create the environment.
pub fn schemathesis() -> Result<PathBuf, ToolError> {
    if let Some(path) = std::env::var_os(SCHEMATHESIS_ENV) {
        return Ok(PathBuf::from(path));
    }
    let venv = cache_dir().join(format!("schemathesis-{SCHEMATHESIS_VERSION}"));
    let exe = venv.join("bin/schemathesis");
    // Written last, so an interrupted install is never mistaken for a finished one. (A venv's
    // scripts name its interpreter by absolute path, so it is built in place, not moved there.)
    let done = venv.join(".installed");
    if done.is_file() && exe.is_file() {
        return Ok(exe);
    }
    eprintln!(
        "[tools] installing Schemathesis {SCHEMATHESIS_VERSION} from PyPI into {} (once, about a minute)",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    let mut create = Command::new("python3");
    create.args(["-m", "venv"]).arg(&venv);
    run(create)?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
    ]);
    run(pip)?;
    std::fs::write(&done, SCHEMATHESIS_VERSION).map_err(|source| ToolError::Write {
        path: done.display().to_string(),
        source,
    })?;
    Ok(exe)
}
