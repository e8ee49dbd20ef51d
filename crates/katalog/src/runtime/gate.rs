//! The queue depth limit (`queue.maxDepth`, `MAX_QUEUE_DEPTH`) as backpressure on the CR
//! trigger stream.
//!
//! kube-runtime's controller has no bounded queue, so the limit sits in front of it: a key is
//! *pending* from the moment its trigger passes the gate until its reconcile starts. A trigger
//! for a key that is already pending passes at once (the controller coalesces it); a trigger
//! for a new key waits while `maxDepth` keys are pending. Orkestra drops the item instead (log
//! `enqueue: queue depth limit reached — item dropped`); waiting loses nothing, since the watch
//! is simply read later. `0` means unlimited. `controller_queue_depth` reports the pending keys.
//!
//! Only the CR watch is gated: triggers from child changes and the requeues after a pass (the
//! resync, the backoff) concern keys the controller already holds.

use std::{
    collections::BTreeSet,
    sync::{Mutex, PoisonError},
};

use tokio::sync::Notify;

/// What [`Pending::try_admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The key was pending already; nothing changes.
    AlreadyPending,
    /// The key is now pending.
    Added,
    /// The limit is reached; the caller waits.
    Full,
}

/// The pending keys and the limit: the gate's pure logic.
#[derive(Debug, Default)]
pub struct Pending {
    limit: usize,
    keys: BTreeSet<String>,
}

impl Pending {
    /// At most `limit` pending keys; `0` for no limit.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            keys: BTreeSet::new(),
        }
    }

    /// Admits `key` unless the limit is reached.
    pub fn try_admit(&mut self, key: &str) -> Admit {
        if self.keys.contains(key) {
            Admit::AlreadyPending
        } else if self.limit > 0 && self.keys.len() >= self.limit {
            Admit::Full
        } else {
            self.keys.insert(key.to_owned());
            Admit::Added
        }
    }

    /// `key`'s reconcile started; returns whether it was pending.
    pub fn started(&mut self, key: &str) -> bool {
        self.keys.remove(key)
    }

    /// Drops the keys `keep` rejects (CRs deleted before their reconcile started, which the
    /// controller will never run); returns how many were dropped.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) -> usize {
        let before = self.keys.len();
        self.keys.retain(|k| keep(k));
        before - self.keys.len()
    }

    /// Pending keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is pending.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// [`Pending`] shared between the trigger stream and the workers.
#[derive(Debug, Default)]
pub struct Gate {
    pending: Mutex<Pending>,
    freed: Notify,
}

impl Gate {
    /// A gate of `limit` keys; `0` for none.
    pub fn new(limit: u32) -> Self {
        Self {
            pending: Mutex::new(Pending::new(usize::try_from(limit).unwrap_or(usize::MAX))),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `key` may be queued. `exists` tells whether a pending key's CR is still
    /// cached; keys of deleted CRs are dropped when the gate is full, since they never start.
    pub async fn admit(&self, key: &str, exists: impl Fn(&str) -> bool) {
        loop {
            // Register interest before looking, so a slot freed in between is not missed.
            let freed = self.freed.notified();
            {
                let mut p = self.lock();
                match p.try_admit(key) {
                    Admit::AlreadyPending | Admit::Added => return,
                    Admit::Full => {
                        if p.retain(&exists) > 0 {
                            continue;
                        }
                    }
                }
            }
            freed.await;
        }
    }

    /// `key`'s reconcile started: it leaves the queue.
    pub fn started(&self, key: &str) {
        if self.lock().started(key) {
            self.freed.notify_waiters();
        }
    }

    /// Keys pending now.
    pub fn depth(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    #[test]
    fn a_new_key_waits_at_the_limit_and_a_pending_key_passes() {
        let mut p = Pending::new(2);
        assert_eq!(p.try_admit("a"), Admit::Added);
        assert_eq!(p.try_admit("b"), Admit::Added);
        assert_eq!(p.try_admit("a"), Admit::AlreadyPending);
        assert_eq!(p.try_admit("c"), Admit::Full);
        assert!(p.started("a"));
        assert!(!p.started("a"));
        assert_eq!(p.try_admit("c"), Admit::Added);
        assert_eq!(p.len(), 2);
        assert_eq!(p.retain(|k| k != "b"), 1);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn zero_is_unlimited() {
        let mut p = Pending::new(0);
        for i in 0..1000 {
            assert_eq!(p.try_admit(&i.to_string()), Admit::Added);
        }
    }

    #[tokio::test]
    async fn a_waiting_trigger_passes_once_a_reconcile_starts() {
        let gate = Arc::new(Gate::new(1));
        gate.admit("a", |_| true).await;
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.admit("b", |_| true).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(gate.depth(), 1);
        gate.started("a");
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(gate.depth(), 1);
    }

    #[tokio::test]
    async fn a_deleted_cr_does_not_hold_a_slot() {
        let gate = Gate::new(1);
        gate.admit("gone", |_| true).await;
        tokio::time::timeout(Duration::from_secs(5), gate.admit("b", |k| k != "gone"))
            .await
            .unwrap();
        assert_eq!(gate.depth(), 1);
    }
}
