//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one replica reconciles.
//!
//! kube-runtime 5 ships no leader election, so this is a small implementation of client-go's
//! protocol over a Lease in `OPERATOR_NAMESPACE`:
//!
//! - A replica **acquires** the Lease when it is free (no `holderIdentity`), expired
//!   (`renewTime + leaseDurationSeconds < now`) or already its own. Every write is a `replace`
//!   carrying the `resourceVersion` that was read, so the API server arbitrates races: a 409
//!   Conflict means another replica wrote first, and we go back to waiting.
//! - The leader **renews** every `retry_period`. If it cannot renew for `renew_deadline` since the
//!   last success, or it sees another holder, it reports the loss through [`LeaderGuard::lost`];
//!   the caller must then stop reconciling (normally by exiting, as client-go users do).
//!   `renew_deadline < lease_duration`, so a leader gives up before anyone else may take over.
//! - On graceful shutdown [`LeaderGuard::release`] clears `holderIdentity`, so a successor takes
//!   over at its next retry instead of waiting for the Lease to expire.
//!
//! The decision "may I take this Lease now?" is the pure function [`lease_state`], tested at fixed
//! instants; calendar time comes from a [`Clock`](crate::clock::Clock), timers from tokio.
//!
//! # Caveats
//!
//! Expiry compares the holder's `renewTime` with *our* clock, so clock skew between nodes larger
//! than `lease_duration - renew_deadline` can let two replicas lead briefly. Leadership is an
//! optimisation here, not the safety mechanism: deterministic child names (`<omjob>-main`,
//! `<omjob>-exit`) are the idempotency locks that keep the exit handler exactly-once even with two
//! active replicas.
//!
//! # Why not kube-lease-manager
//!
//! Checked in `tests/leader_interop.rs`, on the testbed, against a peer that locks as fabric8
//! 6.12's `LeaseLock` (what the Java Operator SDK uses) and as client-go do. kube-lease-manager
//! 0.13.1 shares the Lease correctly while either side renews and after a crash, but:
//! - its release writes `leaseDurationSeconds`, `renewTime`, `acquireTime` and `holderIdentity`
//!   as null; fabric8 unboxes `leaseDurationSeconds`, so a Java elector that reads a Lease it
//!   released dies with a NullPointerException and never leads again;
//! - it has no renew deadline: when its requests fail it goes on reporting leadership, so a
//!   peer that takes over the expired Lease leads beside it (this module stops after
//!   `renew_deadline`, as client-go and fabric8 do);
//! - its writes (a server-side apply, then a separate transitions patch; blind renewals and
//!   force-releases) carry no `resourceVersion`, unlike the guarded read-then-update client-go
//!   follows and this module keeps.
//!
//! OpenMetadata's own operator does not elect at all (one replica, no Lease RBAC), so what a
//! Lease shared during a rollout needs is client-go's protocol, which this module implements.
//! The Katalog runtime, whose Leases only its own replicas share, uses kube-lease-manager.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::api::{Api, PostParams};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};

use crate::clock::{SharedClock, SystemClock};

/// How long a Lease is valid, how long a leader keeps trying to renew, and how often it tries.
///
/// The defaults are client-go's (15 s, 10 s, 2 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long non-leaders wait after the last renewal before taking over. Whole seconds (the
    /// Lease field is `leaseDurationSeconds`); sub-second parts are rounded up.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a failed renewal before giving up leadership.
    pub renew_deadline: Duration,
    /// The interval between acquisition attempts and between renewals.
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaseTimings {
    /// Checks `0 < retry_period < renew_deadline < lease_duration`.
    ///
    /// # Errors
    ///
    /// [`LeaderError::InvalidTimings`] naming the violated rule.
    pub fn validate(&self) -> Result<(), LeaderError> {
        if self.retry_period.is_zero() {
            return Err(LeaderError::InvalidTimings("retry_period must be positive"));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(LeaderError::InvalidTimings(
                "retry_period must be shorter than renew_deadline",
            ));
        }
        // A leader must give up before others may consider its Lease expired.
        if self.renew_deadline >= self.lease_duration {
            return Err(LeaderError::InvalidTimings(
                "renew_deadline must be shorter than lease_duration",
            ));
        }
        if lease_seconds(self.lease_duration) == i32::MAX {
            return Err(LeaderError::InvalidTimings("lease_duration is too long"));
        }
        Ok(())
    }
}

/// The `leaseDurationSeconds` for `duration`, rounded up so a Lease never lives shorter than asked.
fn lease_seconds(duration: Duration) -> i32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// What a Lease means for a candidate at a given instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// Nobody holds it (no spec or no `holderIdentity`): take it.
    Free,
    /// Held by us (possibly a previous run with the same identity): renew it.
    Ours,
    /// Held by someone who has not renewed in time: take it over.
    Expired {
        /// The stale holder.
        holder: String,
    },
    /// Held by someone else, validly, until `expires_at`: wait.
    HeldByOther {
        /// The current holder.
        holder: String,
        /// When the holder's claim runs out if it does not renew.
        expires_at: Timestamp,
    },
}

impl LeaseState {
    /// Whether a candidate may write itself into the Lease.
    #[must_use]
    pub fn can_acquire(&self) -> bool {
        !matches!(self, Self::HeldByOther { .. })
    }
}

/// Decides what `spec` means for `identity` at `now`.
///
/// A missing `leaseDurationSeconds` (or a non-positive one) falls back to `default_duration`;
/// a missing `renewTime` falls back to `acquireTime`, and a Lease with neither is expired, since
/// there is no evidence its holder is alive.
#[must_use]
pub fn lease_state(
    spec: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> LeaseState {
    let Some(spec) = spec else {
        return LeaseState::Free;
    };
    let holder = match spec.holder_identity.as_deref() {
        None | Some("") => return LeaseState::Free,
        Some(holder) if holder == identity => return LeaseState::Ours,
        Some(holder) => holder.to_owned(),
    };
    let Some(MicroTime(renewed)) = spec.renew_time.clone().or_else(|| spec.acquire_time.clone()) else {
        return LeaseState::Expired { holder };
    };
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map_or(default_duration, Duration::from_secs);
    let expires_at = renewed.saturating_add(duration).unwrap_or(Timestamp::MAX);
    if expires_at < now {
        LeaseState::Expired { holder }
    } else {
        LeaseState::HeldByOther { holder, expires_at }
    }
}

/// `lease` with `identity` written in as holder at `now`: a renewal if it already held it,
/// otherwise an acquisition (new `acquireTime`, one more transition). Metadata, including the
/// `resourceVersion` that guards the write, is kept.
#[must_use]
pub fn claim(mut lease: Lease, identity: &str, now: Timestamp, duration: Duration) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(identity) {
        spec.holder_identity = Some(identity.to_owned());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(lease_seconds(duration));
    lease
}

/// `lease` given up: no holder, and (as client-go does) a one-second duration so that electors
/// which only look at expiry also move on quickly.
#[must_use]
pub fn released(mut lease: Lease, now: Timestamp) -> Lease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(1);
    lease
}

/// Leader election failed in a way that waiting will not fix, or a release failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The timings break `0 < retry_period < renew_deadline < lease_duration`.
    #[error("invalid lease timings: {0}")]
    InvalidTimings(&'static str),
    /// Reading the Lease failed.
    #[error("failed to get Lease {namespace}/{name}")]
    GetLease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// Creating the Lease failed.
    #[error("failed to create Lease {namespace}/{name}")]
    CreateLease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// Writing the Lease failed.
    #[error("failed to update Lease {namespace}/{name}")]
    UpdateLease {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
}

impl LeaderError {
    /// A static label for metrics and logs.
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidTimings(_) => "invalid_timings",
            Self::GetLease { .. } => "get_lease",
            Self::CreateLease { .. } => "create_lease",
            Self::UpdateLease { .. } => "update_lease",
        }
    }

    /// The Lease may not be read or created (403): the identity has no `coordination.k8s.io`
    /// permission, as under OpenMetadata's chart. The caller may run without leader election.
    #[must_use]
    pub fn is_forbidden(&self) -> bool {
        match self {
            Self::GetLease { source, .. }
            | Self::CreateLease { source, .. }
            | Self::UpdateLease { source, .. } => {
                matches!(&**source, kube::Error::Api(s) if s.is_forbidden())
            }
            Self::InvalidTimings(_) => false,
        }
    }

    /// Errors that retrying cannot fix: bad timings, missing RBAC, a missing namespace.
    fn is_permanent(&self) -> bool {
        let source = match self {
            Self::InvalidTimings(_) => return true,
            Self::GetLease { source, .. } | Self::UpdateLease { source, .. } => source,
            Self::CreateLease { source, .. } => {
                // Creating in a namespace that does not exist.
                if matches!(&**source, kube::Error::Api(s) if s.is_not_found()) {
                    return true;
                }
                source
            }
        };
        matches!(&**source, kube::Error::Api(s) if s.is_forbidden() || s.code == 401)
    }
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}

/// The outcome of one acquisition attempt.
#[derive(Debug)]
enum Attempt {
    Acquired,
    /// Someone else holds the Lease or won the race.
    Busy(Option<String>),
}

/// Why a renewal attempt did not succeed.
#[derive(Debug)]
enum RenewFailure {
    /// Another holder (or none: the Lease was deleted or released) is recorded.
    Lost(Option<String>),
    /// The API call failed; retry until the deadline.
    Api(LeaderError),
}

/// What the elector and its renewal task share.
struct Inner {
    api: Api<Lease>,
    namespace: String,
    lease_name: String,
    identity: String,
    timings: LeaseTimings,
    clock: SharedClock,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderElector")
            .field("namespace", &self.namespace)
            .field("lease_name", &self.lease_name)
            .field("identity", &self.identity)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn get_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::GetLease {
            namespace: self.namespace.clone(),
            name: self.lease_name.clone(),
            source: Box::new(source),
        }
    }

    fn update_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::UpdateLease {
            namespace: self.namespace.clone(),
            name: self.lease_name.clone(),
            source: Box::new(source),
        }
    }

    async fn try_acquire(&self) -> Result<Attempt, LeaderError> {
        let now = self.clock.now();
        let Some(lease) = self
            .api
            .get_opt(&self.lease_name)
            .await
            .map_err(|e| self.get_error(e))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.lease_name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: None,
            };
            let lease = claim(lease, &self.identity, now, self.timings.lease_duration);
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Acquired),
                Err(e) if is_conflict(&e) => Ok(Attempt::Busy(None)),
                Err(source) => Err(LeaderError::CreateLease {
                    namespace: self.namespace.clone(),
                    name: self.lease_name.clone(),
                    source: Box::new(source),
                }),
            };
        };
        match lease_state(
            lease.spec.as_ref(),
            &self.identity,
            now,
            self.timings.lease_duration,
        ) {
            LeaseState::HeldByOther { holder, .. } => Ok(Attempt::Busy(Some(holder))),
            state => {
                if let LeaseState::Expired { holder } = &state {
                    tracing::info!(%holder, "taking over an expired leader Lease");
                }
                let lease = claim(lease, &self.identity, now, self.timings.lease_duration);
                match self
                    .api
                    .replace(&self.lease_name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(Attempt::Acquired),
                    // Optimistic concurrency: someone wrote the Lease since we read it.
                    Err(e) if is_conflict(&e) => Ok(Attempt::Busy(None)),
                    Err(e) => Err(self.update_error(e)),
                }
            }
        }
    }

    async fn try_renew(&self) -> Result<(), RenewFailure> {
        let lease = match self.api.get_opt(&self.lease_name).await {
            Ok(Some(lease)) => lease,
            // Deleted: someone else may already be creating it, so we are no longer the leader.
            Ok(None) => return Err(RenewFailure::Lost(None)),
            Err(e) => return Err(RenewFailure::Api(self.get_error(e))),
        };
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
        if holder.as_deref() != Some(self.identity.as_str()) {
            return Err(RenewFailure::Lost(holder));
        }
        let lease = claim(
            lease,
            &self.identity,
            self.clock.now(),
            self.timings.lease_duration,
        );
        self.api
            .replace(&self.lease_name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
            .map_err(|e| RenewFailure::Api(self.update_error(e)))
    }

    /// Renews until success, loss, or (enforced by the caller) the renew deadline.
    async fn renew_until_done(&self) -> Result<(), Option<String>> {
        loop {
            match self.try_renew().await {
                Ok(()) => return Ok(()),
                Err(RenewFailure::Lost(holder)) => return Err(holder),
                Err(RenewFailure::Api(e)) => {
                    tracing::warn!(error = %e, "failed to renew the leader Lease; retrying");
                    tokio::time::sleep(self.timings.retry_period).await;
                }
            }
        }
    }

    async fn renew_loop(self: Arc<Self>, lost: watch::Sender<bool>, mut stop: oneshot::Receiver<()>) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(self.timings.retry_period) => {}
            }
            let deadline = last_renewed + self.timings.renew_deadline;
            let outcome = tokio::select! {
                _ = &mut stop => return,
                outcome = tokio::time::timeout_at(deadline, self.renew_until_done()) => outcome,
            };
            match outcome {
                Ok(Ok(())) => last_renewed = Instant::now(),
                Ok(Err(holder)) => {
                    tracing::warn!(
                        holder = holder.as_deref().unwrap_or(""),
                        "leadership lost to another holder"
                    );
                    break;
                }
                Err(_) => {
                    tracing::warn!(
                        renew_deadline = ?self.timings.renew_deadline,
                        "leadership lost: the Lease could not be renewed in time"
                    );
                    break;
                }
            }
        }
        // Receivers may all be gone already; the loss is still final.
        let _ = lost.send(true);
    }
}

/// Competes for a Lease.
#[derive(Debug)]
pub struct LeaderElector {
    inner: Arc<Inner>,
}

impl LeaderElector {
    /// An elector for the Lease `namespace/lease_name`, competing as `identity` (unique per
    /// replica: the pod name), using the system clock.
    #[must_use]
    pub fn new(
        client: kube::Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        timings: LeaseTimings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                api: Api::namespaced(client, namespace),
                namespace: namespace.to_owned(),
                lease_name: lease_name.to_owned(),
                identity: identity.to_owned(),
                timings,
                clock: Arc::new(SystemClock),
            }),
        }
    }

    /// The same elector reading calendar time from `clock`.
    #[must_use]
    pub fn with_clock(self, clock: SharedClock) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                api: inner.api.clone(),
                namespace: inner.namespace.clone(),
                lease_name: inner.lease_name.clone(),
                identity: inner.identity.clone(),
                timings: inner.timings,
                clock,
            }),
        }
    }

    /// Waits until this replica holds the Lease, then keeps renewing it in a background task.
    ///
    /// Transient API errors are logged and retried every `retry_period`.
    ///
    /// # Errors
    ///
    /// Only for problems that retrying cannot fix: invalid timings, 401/403 on the Lease (missing
    /// RBAC for `coordination.k8s.io` leases), or a missing namespace.
    ///
    /// # Caveats
    ///
    /// Must run inside a tokio runtime (it spawns the renewal task). Cancel-safe: dropping the
    /// future before it returns leaves at most a Lease that expires on its own.
    pub async fn acquire(&self) -> Result<LeaderGuard, LeaderError> {
        let inner = &self.inner;
        inner.timings.validate()?;
        let mut last_holder: Option<String> = None;
        loop {
            match inner.try_acquire().await {
                Ok(Attempt::Acquired) => break,
                Ok(Attempt::Busy(holder)) => {
                    if holder.is_some() && holder != last_holder {
                        tracing::info!(
                            holder = holder.as_deref().unwrap_or(""),
                            lease = %inner.lease_name,
                            "another replica leads; waiting"
                        );
                        last_holder = holder;
                    }
                }
                Err(e) if e.is_permanent() => return Err(e),
                Err(e) => tracing::warn!(error = %e, "failed to acquire the leader Lease; retrying"),
            }
            tokio::time::sleep(inner.timings.retry_period).await;
        }
        tracing::info!(identity = %inner.identity, lease = %inner.lease_name, "became the leader");

        let (lost_tx, lost_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(Arc::clone(inner).renew_loop(lost_tx, stop_rx));
        Ok(LeaderGuard {
            inner: Arc::clone(inner),
            lost: lost_rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// Proof of leadership; renews the Lease in the background while it lives.
///
/// Dropping it stops renewing (the Lease then expires on its own); [`LeaderGuard::release`] hands
/// it over at once.
#[derive(Debug)]
pub struct LeaderGuard {
    inner: Arc<Inner>,
    lost: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl LeaderGuard {
    /// The identity written into the Lease.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.inner.identity
    }

    /// Whether leadership is still held, as far as the renewal task knows.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        !*self.lost.borrow()
    }

    /// Completes when leadership is lost: renewal failed for `renew_deadline`, or another holder
    /// appeared. It also completes if the renewal task has ended for any other reason, because
    /// then nobody is renewing and the Lease will expire.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            // An error means the sender is gone, which also means nobody renews any more.
            let _ = lost.wait_for(|lost| *lost).await;
        }
    }

    /// Stops renewing and clears `holderIdentity`, so a successor takes over at its next retry.
    ///
    /// Does nothing if leadership was already lost or the Lease names another holder.
    ///
    /// # Errors
    ///
    /// If the Lease cannot be read or written; it then simply expires after `lease_duration`.
    pub async fn release(mut self) -> Result<(), LeaderError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // The task only ends by returning; a join error would mean it was aborted.
            let _ = task.await;
        }
        if *self.lost.borrow() {
            return Ok(());
        }
        let inner = &self.inner;
        let Some(lease) = inner
            .api
            .get_opt(&inner.lease_name)
            .await
            .map_err(|e| inner.get_error(e))?
        else {
            return Ok(());
        };
        if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(inner.identity.as_str()) {
            return Ok(());
        }
        let lease = released(lease, inner.clock.now());
        inner
            .api
            .replace(&inner.lease_name, &PostParams::default(), &lease)
            .await
            .map_err(|e| inner.update_error(e))?;
        tracing::info!(lease = %inner.lease_name, "released leadership");
        Ok(())
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "op-0";
    const DEFAULT: Duration = Duration::from_secs(15);

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn spec(holder: Option<&str>, renewed: Option<i64>, duration: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: renewed.map(|s| MicroTime(at(s))),
            lease_duration_seconds: duration,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn lease_state_table() {
        let other = |s: &str| s.to_owned();
        let cases: Vec<(&str, Option<LeaseSpec>, i64, LeaseState)> = vec![
            ("no spec is free", None, 0, LeaseState::Free),
            (
                "no holder is free",
                Some(spec(None, Some(0), Some(15))),
                0,
                LeaseState::Free,
            ),
            (
                "empty holder is free",
                Some(spec(Some(""), Some(0), Some(15))),
                0,
                LeaseState::Free,
            ),
            (
                "our own lease is ours",
                Some(spec(Some(ME), Some(0), Some(15))),
                0,
                LeaseState::Ours,
            ),
            (
                "our own expired lease is still ours",
                Some(spec(Some(ME), Some(0), Some(15))),
                100,
                LeaseState::Ours,
            ),
            (
                "a fresh lease is held",
                Some(spec(Some("op-1"), Some(0), Some(15))),
                10,
                LeaseState::HeldByOther {
                    holder: other("op-1"),
                    expires_at: at(15),
                },
            ),
            (
                "exactly at expiry it is still held",
                Some(spec(Some("op-1"), Some(0), Some(15))),
                15,
                LeaseState::HeldByOther {
                    holder: other("op-1"),
                    expires_at: at(15),
                },
            ),
            (
                "one second past expiry it is expired",
                Some(spec(Some("op-1"), Some(0), Some(15))),
                16,
                LeaseState::Expired {
                    holder: other("op-1"),
                },
            ),
            (
                "the lease's own duration wins over ours",
                Some(spec(Some("op-1"), Some(0), Some(60))),
                30,
                LeaseState::HeldByOther {
                    holder: other("op-1"),
                    expires_at: at(60),
                },
            ),
            (
                "a missing duration uses the default",
                Some(spec(Some("op-1"), Some(0), None)),
                16,
                LeaseState::Expired {
                    holder: other("op-1"),
                },
            ),
            (
                "a zero duration uses the default",
                Some(spec(Some("op-1"), Some(0), Some(0))),
                10,
                LeaseState::HeldByOther {
                    holder: other("op-1"),
                    expires_at: at(15),
                },
            ),
            (
                "no renew or acquire time is expired",
                Some(spec(Some("op-1"), None, Some(15))),
                0,
                LeaseState::Expired {
                    holder: other("op-1"),
                },
            ),
        ];
        for (name, spec, now, expected) in cases {
            assert_eq!(
                lease_state(spec.as_ref(), ME, at(now), DEFAULT),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn acquire_time_stands_in_for_a_missing_renew_time() {
        let spec = LeaseSpec {
            holder_identity: Some("op-1".into()),
            acquire_time: Some(MicroTime(at(0))),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        assert!(!lease_state(Some(&spec), ME, at(5), DEFAULT).can_acquire());
        assert!(lease_state(Some(&spec), ME, at(16), DEFAULT).can_acquire());
    }

    fn lease(spec: Option<LeaseSpec>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("omjob-operator-leader".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            spec,
        }
    }

    #[test]
    fn claiming_from_another_holder_counts_a_transition_and_keeps_the_resource_version() {
        let taken = claim(
            lease(Some(LeaseSpec {
                lease_transitions: Some(3),
                ..spec(Some("op-1"), Some(0), Some(15))
            })),
            ME,
            at(20),
            Duration::from_secs(15),
        );
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("42"));
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(20))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(20))));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }

    #[test]
    fn renewing_our_own_lease_keeps_acquire_time_and_transitions() {
        let original = LeaseSpec {
            acquire_time: Some(MicroTime(at(0))),
            lease_transitions: Some(2),
            ..spec(Some(ME), Some(10), Some(15))
        };
        let spec = claim(lease(Some(original)), ME, at(12), Duration::from_secs(15))
            .spec
            .unwrap();
        assert_eq!(spec.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(12))));
        assert_eq!(spec.lease_transitions, Some(2));
    }

    #[test]
    fn claiming_a_new_lease_starts_at_one_transition() {
        let spec = claim(lease(None), ME, at(0), Duration::from_millis(1500))
            .spec
            .unwrap();
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(
            spec.lease_duration_seconds,
            Some(2),
            "sub-second durations round up"
        );
    }

    #[test]
    fn a_released_lease_is_free_for_everyone() {
        let released = released(claim(lease(None), ME, at(0), Duration::from_secs(15)), at(5));
        assert_eq!(released.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(
            lease_state(released.spec.as_ref(), "op-1", at(5), DEFAULT),
            LeaseState::Free
        );
    }

    #[test]
    fn timings_table() {
        let t = |lease, renew, retry| LeaseTimings {
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        };
        assert!(LeaseTimings::default().validate().is_ok());
        assert!(t(15, 10, 2).validate().is_ok());
        assert!(t(15, 10, 0).validate().is_err());
        assert!(t(15, 10, 10).validate().is_err());
        assert!(t(15, 15, 2).validate().is_err());
        assert!(t(10, 15, 2).validate().is_err());
    }

    #[test]
    fn forbidden_and_missing_namespace_are_permanent_but_conflicts_are_not() {
        let api = |code: u16, reason: &str| {
            Box::new(kube::Error::Api(
                kube::core::Status::failure("x", reason).with_code(code).boxed(),
            ))
        };
        let get = |source| LeaderError::GetLease {
            namespace: "ns".into(),
            name: "l".into(),
            source,
        };
        let create = |source| LeaderError::CreateLease {
            namespace: "ns".into(),
            name: "l".into(),
            source,
        };
        assert!(get(api(403, "Forbidden")).is_permanent());
        assert!(get(api(401, "Unauthorized")).is_permanent());
        assert!(!get(api(500, "InternalError")).is_permanent());
        assert!(create(api(404, "NotFound")).is_permanent());
        assert!(!create(api(409, "AlreadyExists")).is_permanent());
        assert!(is_conflict(&api(409, "Conflict")));
        assert_eq!(get(api(500, "InternalError")).category(), "get_lease");
    }

    /// An in-memory Lease API with the API server's optimistic concurrency: enough to drive the
    /// elector through acquire, renew, loss and release without a cluster.
    mod fake_api {
        use std::{
            convert::Infallible,
            sync::{
                Arc, Mutex,
                atomic::{AtomicBool, Ordering},
            },
        };

        use k8s_openapi::api::coordination::v1::Lease;

        #[derive(Clone, Default)]
        pub struct FakeLeases {
            pub lease: Arc<Mutex<Option<Lease>>>,
            /// When set, every request fails with 500 (an API outage).
            pub down: Arc<AtomicBool>,
            version: Arc<Mutex<u64>>,
        }

        fn status(code: u16, reason: &str) -> (u16, String) {
            let body = serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": reason, "reason": reason, "code": code,
            });
            (code, body.to_string())
        }

        impl FakeLeases {
            pub fn holder(&self) -> Option<String> {
                let lease = self.lease.lock().unwrap();
                lease.as_ref()?.spec.as_ref()?.holder_identity.clone()
            }

            /// Writes `lease` as another client would, bumping the resourceVersion.
            pub fn store(&self, mut lease: Lease) {
                let mut version = self.version.lock().unwrap();
                *version += 1;
                lease.metadata.resource_version = Some(version.to_string());
                *self.lease.lock().unwrap() = Some(lease);
            }

            fn handle(&self, method: &http::Method, path: &str, body: &[u8]) -> (u16, String) {
                if self.down.load(Ordering::SeqCst) {
                    return status(500, "InternalError");
                }
                assert!(
                    path.starts_with("/apis/coordination.k8s.io/v1/namespaces/ops/leases"),
                    "{path}"
                );
                let current = self.lease.lock().unwrap().clone();
                match (method.as_str(), current) {
                    ("GET", None) => status(404, "NotFound"),
                    ("GET", Some(lease)) => (200, serde_json::to_string(&lease).unwrap()),
                    ("POST", Some(_)) => status(409, "AlreadyExists"),
                    ("PUT", None) => status(404, "NotFound"),
                    ("POST", None) | ("PUT", Some(_)) => {
                        let lease: Lease = serde_json::from_slice(body).unwrap();
                        let stored = self.lease.lock().unwrap().clone();
                        if let Some(stored) = stored
                            && stored.metadata.resource_version != lease.metadata.resource_version
                        {
                            return status(409, "Conflict");
                        }
                        self.store(lease);
                        (
                            200,
                            serde_json::to_string(&self.lease.lock().unwrap().clone()).unwrap(),
                        )
                    }
                    (other, _) => panic!("unexpected {other} {path}"),
                }
            }

            pub fn client(&self) -> kube::Client {
                let fake = self.clone();
                let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
                    let fake = fake.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
                            .await
                            .unwrap();
                        let (code, text) = fake.handle(&parts.method, parts.uri.path(), &body);
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(code)
                                .header("content-type", "application/json")
                                .body(kube::client::Body::from(text.into_bytes()))
                                .unwrap(),
                        )
                    }
                });
                kube::Client::new(service, "ops")
            }
        }
    }

    use std::sync::atomic::Ordering;

    use fake_api::FakeLeases;

    use crate::clock::ManualClock;

    fn elector(fake: &FakeLeases, identity: &str, clock: &ManualClock) -> LeaderElector {
        LeaderElector::new(
            fake.client(),
            "ops",
            "omjob-operator-leader",
            identity,
            LeaseTimings::default(),
        )
        .with_clock(Arc::new(clock.clone()))
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_candidate_creates_the_lease_and_release_frees_it() {
        let fake = FakeLeases::default();
        let clock = ManualClock::new(at(0));
        let guard = elector(&fake, ME, &clock).acquire().await.unwrap();
        assert!(guard.is_leader());
        assert_eq!(fake.holder().as_deref(), Some(ME));

        // Renewals keep it ours while time passes.
        clock.advance(Duration::from_secs(30));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(guard.is_leader());
        let renewed = fake
            .lease
            .lock()
            .unwrap()
            .clone()
            .unwrap()
            .spec
            .unwrap()
            .renew_time;
        assert_eq!(renewed, Some(MicroTime(at(30))));

        guard.release().await.unwrap();
        assert_eq!(fake.holder(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_candidate_waits_until_the_leader_releases() {
        let fake = FakeLeases::default();
        let clock = ManualClock::new(at(0));
        let first = elector(&fake, ME, &clock).acquire().await.unwrap();

        let second = elector(&fake, "op-1", &clock);
        let waiting = tokio::spawn(async move { second.acquire().await.map(|g| g.identity().to_owned()) });
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!waiting.is_finished(), "a valid Lease must not be taken");

        first.release().await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), "op-1");
        assert_eq!(fake.holder().as_deref(), Some("op-1"));
        let transitions = fake
            .lease
            .lock()
            .unwrap()
            .clone()
            .unwrap()
            .spec
            .unwrap()
            .lease_transitions;
        assert_eq!(transitions, Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_is_taken_over_at_once() {
        let fake = FakeLeases::default();
        let clock = ManualClock::new(at(100));
        fake.store(claim(lease(None), "crashed", at(0), Duration::from_secs(15)));

        let guard = elector(&fake, ME, &clock).acquire().await.unwrap();
        assert_eq!(guard.identity(), ME);
        assert_eq!(fake.holder().as_deref(), Some(ME));
    }

    #[tokio::test(start_paused = true)]
    async fn another_holder_appearing_reports_loss() {
        let fake = FakeLeases::default();
        let clock = ManualClock::new(at(0));
        let guard = elector(&fake, ME, &clock).acquire().await.unwrap();

        let current = fake.lease.lock().unwrap().clone().unwrap();
        fake.store(claim(current, "usurper", at(1), Duration::from_secs(15)));

        tokio::time::timeout(Duration::from_secs(5), guard.lost())
            .await
            .unwrap();
        assert!(!guard.is_leader());
        // Releasing after a loss must not clear the new holder.
        guard.release().await.unwrap();
        assert_eq!(fake.holder().as_deref(), Some("usurper"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_api_outage_longer_than_the_renew_deadline_reports_loss() {
        let fake = FakeLeases::default();
        let clock = ManualClock::new(at(0));
        let guard = elector(&fake, ME, &clock).acquire().await.unwrap();
        let started = Instant::now();
        fake.down.store(true, Ordering::SeqCst);

        guard.lost().await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(15),
            "leadership must be given up after renew_deadline and before lease_duration: {elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_outage_is_survived() {
        let fake = FakeLeases::default();
        let clock = ManualClock::new(at(0));
        let guard = elector(&fake, ME, &clock).acquire().await.unwrap();
        fake.down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(6)).await;
        fake.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(guard.is_leader());
    }
}
