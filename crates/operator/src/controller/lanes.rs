//! Two lanes of reconcile permits, so that a main stage's end is acted on at once however many
//! new OMJobs are waiting for their main pods. A reconcile decides first (from the caches, no
//! API call), then enters the lane its decision belongs to: terminations (a main stage closing,
//! an exit pod to create, a run to finish) have permits of their own, and everything else
//! (finalizers, main pods, status updates, clean-ups) shares `RECONCILIATION_THREADS` permits.
//! The termination lane is ten times as wide (`manager::TERMINATION_PERMITS_PER_THREAD`).
//!
//! A reconcile that finds its lane full does not wait: it is *parked* (its key queued in the
//! lane, first come first served) and returns. A permit given back goes straight to the first
//! parked key, which is triggered again and finds the permit granted to it. Waiting inside the
//! reconcile would keep every waiter in kube-runtime's runner, which polls all of its running
//! reconciles each time it is woken: with thousands of OMJobs waiting during a burst that was
//! three quarters of the operator's CPU (`perf`, filling 10,000 OMJobs on the bench). A parked
//! OMJob whose main pod ends is triggered by the pod's event like any other, decides again, and
//! as a termination takes a permit of that lane.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Which permits a decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// A stage has ended and the run must move on: latency is what matters.
    Termination,
    /// Everything else.
    Routine,
}

impl Lane {
    /// The `lane` label of `omjob_reconciles_parked_total`.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Termination => "termination",
            Self::Routine => "routine",
        }
    }
}

/// What [`Lanes::enter`] gave.
#[derive(Debug)]
pub enum Entry<'a> {
    /// A permit of the lane, held until dropped.
    Permit(Permit<'a>),
    /// The lane is full: the key is queued, and will be triggered again with a permit granted
    /// to it. The reconcile returns without calling [`Lanes::done`].
    Parked,
}

/// A permit of one lane. Dropped, it goes to the lane's first parked key, else back to the lane.
#[derive(Debug)]
pub struct Permit<'a> {
    lanes: &'a Lanes,
    lane: Lane,
    inner: Option<OwnedSemaphorePermit>,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.inner.take() {
            self.lanes.pass_on(self.lane, p);
        }
    }
}

/// Triggers a reconcile of the object with this key again; false when there is no such object
/// any more (its permit then goes to the next key).
pub type Retrigger = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// How long a granted permit waits for its key's reconcile before it goes on. The reconcile
/// normally comes within milliseconds; one that never comes (kube-runtime skips an object that
/// left its cache between the trigger and the run) must not keep a permit for good.
const GRANT_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// A permit granted to a parked key, and when.
#[derive(Debug)]
struct Grant {
    lane: Lane,
    permit: OwnedSemaphorePermit,
    at: tokio::time::Instant,
}

/// The queued keys of both lanes.
#[derive(Debug, Default)]
struct Parked {
    queues: HashMap<Lane, VecDeque<String>>,
    /// The lane each parked key waits in. A key moved to the other lane, or given a permit,
    /// leaves a stale entry in its old queue, which is skipped.
    lane_of: HashMap<String, Lane>,
}

/// The two lanes, their parked keys, and the permits granted to keys not yet reconciled.
pub struct Lanes {
    semaphores: HashMap<Lane, Arc<Semaphore>>,
    parked: Mutex<Parked>,
    granted: Mutex<HashMap<String, Grant>>,
    retrigger: OnceLock<Retrigger>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("parked", &self.parked())
            .field("granted", &lock(&self.granted).len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Lanes {
    /// `routine` permits for routine work and `termination` for terminations.
    #[must_use]
    pub fn new(routine: usize, termination: usize) -> Self {
        Self {
            semaphores: [
                (Lane::Routine, Arc::new(Semaphore::new(routine.max(1)))),
                (Lane::Termination, Arc::new(Semaphore::new(termination.max(1)))),
            ]
            .into(),
            parked: Mutex::new(Parked::default()),
            granted: Mutex::new(HashMap::new()),
            retrigger: OnceLock::new(),
        }
    }

    /// Sets how a parked key is triggered again: the controller's trigger stream. Set once, by
    /// the manager, before any reconcile runs (a permit given back before would go back to its
    /// lane and leave the parked keys waiting for the next one).
    pub fn set_retrigger(&self, retrigger: Retrigger) {
        // Set once, by the manager, before the controller runs; a second call changes nothing.
        let _ = self.retrigger.set(retrigger);
    }

    /// A permit of `lane` for `key`: the one granted to it while it was parked, or a free one;
    /// else `key` is parked.
    pub fn enter(&self, lane: Lane, key: &str) -> Entry<'_> {
        let granted = lock(&self.granted).remove(key);
        if let Some(g) = granted {
            if g.lane == lane {
                return Entry::Permit(self.permit(lane, g.permit));
            }
            // Parked in one lane, it now needs the other: the grant goes on.
            self.pass_on(g.lane, g.permit);
        }
        let free = self.semaphores[&lane].clone().try_acquire_owned();
        match free {
            Ok(permit) => {
                lock(&self.parked).lane_of.remove(key);
                Entry::Permit(self.permit(lane, permit))
            }
            Err(_) => {
                {
                    let mut parked = lock(&self.parked);
                    if parked.lane_of.insert(key.to_owned(), lane) != Some(lane) {
                        parked.queues.entry(lane).or_default().push_back(key.to_owned());
                    }
                }
                // A permit given back between the failed try and the queueing found nobody
                // parked and went back to the semaphore; taken now, it goes to the queue's head
                // (this key or an earlier one) instead of sitting free while keys wait.
                if let Ok(permit) = self.semaphores[&lane].clone().try_acquire_owned() {
                    self.pass_on(lane, permit);
                }
                self.reclaim_stale_grants();
                Entry::Parked
            }
        }
    }

    fn permit(&self, lane: Lane, permit: OwnedSemaphorePermit) -> Permit<'_> {
        Permit {
            lanes: self,
            lane,
            inner: Some(permit),
        }
    }

    /// The first key parked in `lane`, taken off the queue.
    fn pop(&self, lane: Lane) -> Option<String> {
        let mut parked = lock(&self.parked);
        while let Some(key) = parked.queues.get_mut(&lane).and_then(VecDeque::pop_front) {
            if parked.lane_of.get(&key) == Some(&lane) {
                parked.lane_of.remove(&key);
                return Some(key);
            }
        }
        None
    }

    /// Gives `permit` to the first key parked in `lane` and triggers it, else back to the lane.
    fn pass_on(&self, lane: Lane, mut permit: OwnedSemaphorePermit) {
        let Some(retrigger) = self.retrigger.get() else {
            return;
        };
        loop {
            // None parked: the permit is dropped, back to the lane's semaphore.
            let Some(key) = self.pop(lane) else {
                return;
            };
            // `enter` takes a key's grant before it can park again, so a parked key holds none;
            // should one be there, it goes on rather than being lost.
            let grant = Grant {
                lane,
                permit,
                at: tokio::time::Instant::now(),
            };
            let displaced = lock(&self.granted).insert(key.clone(), grant);
            if let Some(d) = displaced {
                self.pass_on(d.lane, d.permit);
            }
            if retrigger(&key) {
                return;
            }
            // Gone: the permit goes on to the next key.
            match lock(&self.granted).remove(&key) {
                Some(g) => permit = g.permit,
                None => return,
            }
        }
    }

    /// Ends a reconcile of `key` that was not parked: a permit granted to it and not taken (it
    /// decided there was nothing to do) goes on.
    pub fn done(&self, key: &str) {
        let granted = lock(&self.granted).remove(key);
        if let Some(g) = granted {
            self.pass_on(g.lane, g.permit);
        }
    }

    /// Forgets `key` (its object was deleted): it leaves its queue, and a permit granted to it
    /// goes on.
    pub fn forget(&self, key: &str) {
        lock(&self.parked).lane_of.remove(key);
        self.done(key);
    }

    /// Passes on the permits granted longer than [`GRANT_TTL`] ago and never taken. Grants are
    /// at most as many as permits, so the scan is short.
    fn reclaim_stale_grants(&self) {
        let stale: Vec<Grant> = {
            let mut granted = lock(&self.granted);
            let keys: Vec<String> = granted
                .iter()
                .filter(|(_, g)| g.at.elapsed() >= GRANT_TTL)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| granted.remove(k)).collect()
        };
        for g in stale {
            tracing::warn!(
                lane = g.lane.label(),
                "a permit granted to a parked OMJob was not taken; passing it on"
            );
            self.pass_on(g.lane, g.permit);
        }
    }

    /// Keys parked, in both lanes.
    #[must_use]
    pub fn parked(&self) -> usize {
        lock(&self.parked).lane_of.len()
    }

    /// Free permits of `lane` (not held, not granted).
    #[must_use]
    pub fn available(&self, lane: Lane) -> usize {
        self.semaphores[&lane].available_permits()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Lanes whose retriggers are recorded.
    fn lanes(routine: usize, termination: usize) -> (Arc<Lanes>, Arc<Mutex<Vec<String>>>) {
        let lanes = Arc::new(Lanes::new(routine, termination));
        let triggered = Arc::new(Mutex::new(Vec::new()));
        let t = triggered.clone();
        lanes.set_retrigger(Box::new(move |k| {
            t.lock().unwrap().push(k.to_owned());
            k != "ns/gone"
        }));
        (lanes, triggered)
    }

    #[test]
    fn a_termination_does_not_wait_for_busy_routine_permits() {
        let (lanes, _) = lanes(1, 1);
        let held = lanes.enter(Lane::Routine, "ns/a");
        assert!(matches!(held, Entry::Permit(_)));
        assert!(
            matches!(lanes.enter(Lane::Termination, "ns/b"), Entry::Permit(_)),
            "the termination lane has its own permit"
        );
        assert!(matches!(lanes.enter(Lane::Routine, "ns/c"), Entry::Parked));
        assert_eq!(lanes.parked(), 1);
    }

    #[test]
    fn a_permit_given_back_goes_to_the_first_parked_key_and_triggers_it() {
        let (lanes, triggered) = lanes(1, 1);
        let held = lanes.enter(Lane::Routine, "ns/a");
        assert!(matches!(lanes.enter(Lane::Routine, "ns/b"), Entry::Parked));
        assert!(matches!(lanes.enter(Lane::Routine, "ns/c"), Entry::Parked));
        assert!(
            matches!(lanes.enter(Lane::Routine, "ns/b"), Entry::Parked),
            "parked once"
        );
        drop(held);
        assert_eq!(*triggered.lock().unwrap(), ["ns/b"]);
        assert_eq!(lanes.available(Lane::Routine), 0, "granted, not free");
        // Someone else cannot take it; b, triggered, does.
        assert!(matches!(lanes.enter(Lane::Routine, "ns/d"), Entry::Parked));
        let b = lanes.enter(Lane::Routine, "ns/b");
        assert!(matches!(b, Entry::Permit(_)));
        drop(b);
        assert_eq!(*triggered.lock().unwrap(), ["ns/b", "ns/c"]);
        lanes.done("ns/c"); // c decided it had nothing to do: its grant goes to d
        assert_eq!(*triggered.lock().unwrap(), ["ns/b", "ns/c", "ns/d"]);
        lanes.done("ns/d");
        assert_eq!(
            lanes.available(Lane::Routine),
            1,
            "nobody parked: back to the lane"
        );
        assert_eq!(lanes.parked(), 0);
    }

    #[test]
    fn a_parked_key_that_turns_into_a_termination_leaves_the_routine_queue() {
        let (lanes, triggered) = lanes(1, 1);
        let held = lanes.enter(Lane::Routine, "ns/a");
        assert!(matches!(lanes.enter(Lane::Routine, "ns/b"), Entry::Parked));
        assert!(matches!(lanes.enter(Lane::Routine, "ns/c"), Entry::Parked));
        // b's main pod ended: triggered by the pod's event, it decides again.
        let b = lanes.enter(Lane::Termination, "ns/b");
        assert!(matches!(b, Entry::Permit(_)));
        drop(held);
        assert_eq!(*triggered.lock().unwrap(), ["ns/c"], "b's stale entry is skipped");
        drop(b);
        assert_eq!(lanes.available(Lane::Termination), 1);
    }

    #[test]
    fn a_grant_of_the_other_lane_goes_on_and_a_gone_key_passes_its_permit() {
        let (lanes, triggered) = lanes(1, 1);
        let held = lanes.enter(Lane::Routine, "ns/a");
        assert!(matches!(lanes.enter(Lane::Routine, "ns/gone"), Entry::Parked));
        assert!(matches!(lanes.enter(Lane::Routine, "ns/b"), Entry::Parked));
        assert!(matches!(lanes.enter(Lane::Routine, "ns/c"), Entry::Parked));
        drop(held);
        assert_eq!(*triggered.lock().unwrap(), ["ns/gone", "ns/b"]);
        // b was granted a routine permit but now needs a termination one.
        let b = lanes.enter(Lane::Termination, "ns/b");
        assert!(matches!(b, Entry::Permit(_)));
        assert_eq!(*triggered.lock().unwrap(), ["ns/gone", "ns/b", "ns/c"]);
        drop(b);
        lanes.done("ns/c");
        assert_eq!(
            (lanes.available(Lane::Routine), lanes.available(Lane::Termination)),
            (1, 1)
        );
    }

    #[test]
    fn a_deleted_key_leaves_its_queue_and_passes_on_its_grant() {
        let (lanes, triggered) = lanes(1, 1);
        let held = lanes.enter(Lane::Routine, "ns/a");
        assert!(matches!(lanes.enter(Lane::Routine, "ns/b"), Entry::Parked));
        assert!(matches!(lanes.enter(Lane::Routine, "ns/c"), Entry::Parked));
        assert!(matches!(lanes.enter(Lane::Routine, "ns/d"), Entry::Parked));
        lanes.forget("ns/b");
        drop(held);
        assert_eq!(*triggered.lock().unwrap(), ["ns/c"], "b left the queue");
        lanes.forget("ns/c");
        assert_eq!(
            *triggered.lock().unwrap(),
            ["ns/c", "ns/d"],
            "c's grant went to d"
        );
        lanes.done("ns/d");
        assert_eq!(lanes.available(Lane::Routine), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_grant_never_taken_goes_on_after_its_ttl() {
        let (lanes, triggered) = lanes(1, 1);
        let held = lanes.enter(Lane::Routine, "ns/a");
        assert!(matches!(lanes.enter(Lane::Routine, "ns/b"), Entry::Parked));
        drop(held);
        assert_eq!(*triggered.lock().unwrap(), ["ns/b"]);
        // b's reconcile never comes. Within the TTL, c parks and the grant stays b's.
        assert!(matches!(lanes.enter(Lane::Routine, "ns/c"), Entry::Parked));
        assert_eq!(*triggered.lock().unwrap(), ["ns/b"]);
        tokio::time::advance(GRANT_TTL).await;
        assert!(matches!(lanes.enter(Lane::Routine, "ns/d"), Entry::Parked));
        assert_eq!(
            *triggered.lock().unwrap(),
            ["ns/b", "ns/c"],
            "reclaimed, and c was first"
        );
    }
}
