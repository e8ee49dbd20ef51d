//! Child processes that die with the process that started them.
//!
//! Control-plane components and simulated containers are spawned through `setpriv --pdeathsig KILL`
//! so that a test binary that exits (or crashes) never leaves an API server or a container process
//! behind. Linux ties the parent-death signal to the *thread* that forked, and tokio threads come
//! and go, so every spawn is done by one dedicated thread that lives as long as the process.

use std::{
    path::Path,
    process::{Child, Command},
    sync::{Mutex, OnceLock, mpsc},
    thread,
};

type Request = (Command, mpsc::Sender<std::io::Result<Child>>);

static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();

fn spawner() -> std::io::Result<mpsc::Sender<Request>> {
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        // The thread ends only when the process does: the static keeps the sender alive.
        let spawned = thread::Builder::new()
            .name("testbed-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the spawner thread; spawns will fail");
        }
        Mutex::new(tx)
    });
    sender
        .lock()
        .map(|s| s.clone())
        .map_err(|_| std::io::Error::other("spawner lock poisoned"))
}

/// Wraps `program` so that it receives SIGKILL when the spawning thread (the spawner) goes away.
#[must_use]
pub fn guarded_command(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg("--pdeathsig").arg("KILL").arg("--").arg(program);
    cmd
}

/// Spawns `cmd` on the spawner thread.
///
/// # Errors
/// The spawn error, or an error when the spawner thread is gone.
pub fn spawn(cmd: Command) -> std::io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    spawner()?
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("spawner thread is gone"))?
}
