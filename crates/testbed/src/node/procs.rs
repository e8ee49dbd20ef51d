//! Container processes on the simulated node: spawning a container's command in its own process
//! group with its log file as stdout/stderr, measuring the group's memory, and signalling it.

use std::{
    collections::BTreeMap,
    fs::File,
    os::unix::process::{CommandExt as _, ExitStatusExt as _},
    path::Path,
    process::{ExitStatus, Stdio},
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};

use crate::process;

/// A started container process; `pgid` addresses the whole tree it spawns.
#[derive(Debug)]
pub struct Spawned {
    /// Process group id (the leader's pid).
    pub pgid: Pid,
    /// Resolves to the exit status when the leader exits.
    pub exit: tokio::task::JoinHandle<std::io::Result<ExitStatus>>,
}

/// Starts `argv` with exactly `env` (plus PATH and HOME so that commands are found), output
/// appended to `log`, in a new process group, dying with the test process.
///
/// # Errors
/// When the log cannot be opened or the program cannot be started.
pub fn spawn(
    argv: &[String],
    env: &BTreeMap<String, String>,
    workdir: &Path,
    log: &Path,
) -> std::io::Result<Spawned> {
    let Some((program, args)) = argv.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the container has no command: the simulated node ignores images, so a command is required",
        ));
    };
    let out = File::options().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let mut cmd = process::guarded_command(Path::new(program));
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", workdir)
        .env("LANG", "C.UTF-8")
        .envs(env)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let mut child = process::spawn(cmd)?;
    let pgid = Pid::from_raw(i32::try_from(child.id()).map_err(std::io::Error::other)?);
    // A blocking wait per running container: simple and exact; the blocking pool grows on demand.
    let exit = tokio::task::spawn_blocking(move || child.wait());
    Ok(Spawned { pgid, exit })
}

/// The exit code Kubernetes reports: the code, or 128 + signal for a killed process.
#[must_use]
pub fn exit_code(status: &ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(128)
}

/// Sends `signal` to every process in the group; a group that is already gone is not an error.
pub fn signal_group(pgid: Pid, signal: Signal) {
    let _ = killpg(pgid, signal);
}

/// Resident memory of every process in group `pgid`, in bytes (from `/proc`).
#[must_use]
pub fn group_rss(pgid: Pid) -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096);
    let page = u64::try_from(page).unwrap_or(4096);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces and parentheses): state ppid pgrp.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let pgrp = rest.split_whitespace().nth(2).and_then(|p| p.parse::<i32>().ok());
        if pgrp != Some(pgid.as_raw()) {
            continue;
        }
        let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else {
            continue;
        };
        let resident: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        total += resident * page;
    }
    total
}
