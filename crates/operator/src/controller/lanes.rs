//! Two lanes of reconcile permits, so that a main stage's end is acted on at once however many
//! new OMJobs are waiting for their main pods. A reconcile decides first (from the caches, no
//! API call), then enters the lane its decision belongs to: terminations (a main stage closing,
//! an exit pod to create, a run to finish) have permits of their own, and everything else
//! (finalizers, main pods, status updates, clean-ups) shares `RECONCILIATION_THREADS` permits.
//! The termination lane is ten times as wide (`manager::TERMINATION_PERMITS_PER_THREAD`).
//! A routine reconcile waiting for a permit is woken when its OMJob's main pod ends, so that it
//! decides again and, now a termination, overtakes the queue.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

/// Which permits a decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A stage has ended and the run must move on: latency is what matters.
    Termination,
    /// Everything else.
    Routine,
}

/// What [`Lanes::enter`] gave.
#[derive(Debug)]
pub enum Entry<'a> {
    /// A permit of the lane, held until dropped.
    Permit(SemaphorePermit<'a>),
    /// The object was woken while waiting for a routine permit: decide again.
    Woken,
}

/// The two lanes, and the routine reconciles waiting in them by object key.
#[derive(Debug)]
pub struct Lanes {
    routine: Semaphore,
    termination: Semaphore,
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Lanes {
    /// `routine` permits for routine work and `termination` for terminations.
    #[must_use]
    pub fn new(routine: usize, termination: usize) -> Self {
        Self {
            routine: Semaphore::new(routine.max(1)),
            termination: Semaphore::new(termination.max(1)),
            waiting: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `key` as deciding until [`Lanes::done`]: a [`Lanes::wake`] from now on ends
    /// its next routine wait early, even one that starts after the wake (the wake is
    /// remembered). The caller calls `done` however its reconcile ends.
    pub fn watch(&self, key: &str) -> Arc<Notify> {
        self.lock()
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Waits for a permit of `lane`. A routine wait also ends when the [`Notify`] that
    /// [`Lanes::watch`] gave fires.
    pub async fn enter<'a>(&'a self, lane: Lane, woken: &Notify) -> Entry<'a> {
        let permit = match lane {
            Lane::Termination => self.termination.acquire().await,
            Lane::Routine => tokio::select! {
                biased;
                () = woken.notified() => return Entry::Woken,
                p = self.routine.acquire() => p,
            },
        };
        // The semaphores are never closed.
        permit.map_or(Entry::Woken, Entry::Permit)
    }

    /// Ends `key`'s registration.
    pub fn done(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Wakes `key` if it is deciding or waiting for a routine permit.
    pub fn wake(&self, key: &str) {
        if let Some(n) = self.lock().get(key) {
            n.notify_one();
        }
    }

    /// Objects deciding or waiting.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_termination_does_not_wait_for_busy_routine_permits() {
        let lanes = Lanes::new(1, 1);
        let n = lanes.watch("ns/a");
        let held = lanes.enter(Lane::Routine, &n).await;
        assert!(matches!(held, Entry::Permit(_)));
        let n2 = lanes.watch("ns/b");
        let t = tokio::time::timeout(Duration::from_secs(1), lanes.enter(Lane::Termination, &n2)).await;
        assert!(
            matches!(t, Ok(Entry::Permit(_))),
            "the termination lane has its own permit"
        );
        let n3 = lanes.watch("ns/c");
        let r = tokio::time::timeout(Duration::from_secs(1), lanes.enter(Lane::Routine, &n3)).await;
        assert!(r.is_err(), "a second routine reconcile waits for the first");
    }

    #[tokio::test(start_paused = true)]
    async fn a_woken_routine_wait_ends_early_and_a_wake_before_the_wait_is_kept() {
        let lanes = Arc::new(Lanes::new(1, 1));
        let n = lanes.watch("ns/a");
        let _held = lanes.enter(Lane::Routine, &n).await;
        let nb = lanes.watch("ns/b");
        let waiter = {
            let lanes = lanes.clone();
            let nb = nb.clone();
            tokio::spawn(async move { matches!(lanes.enter(Lane::Routine, &nb).await, Entry::Woken) })
        };
        tokio::task::yield_now().await;
        lanes.wake("ns/b");
        assert!(waiter.await.unwrap(), "woken while waiting");
        assert_eq!(lanes.waiting(), 2, "a and b are registered until done");
        lanes.done("ns/b");
        let nc = lanes.watch("ns/c");
        lanes.wake("ns/c");
        assert!(
            matches!(lanes.enter(Lane::Routine, &nc).await, Entry::Woken),
            "woken before waiting"
        );
        lanes.wake("ns/unknown");
        lanes.done("ns/a");
        lanes.done("ns/c");
        assert_eq!(lanes.waiting(), 0);
    }
}
