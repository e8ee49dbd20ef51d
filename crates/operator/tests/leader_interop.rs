//! Issue 13's interop check: can the operator's leader election share its Lease with a Java peer
//! during a rolling upgrade (old Java pod and new Rust pod running at once, same Lease name and
//! namespace), if the Java side elects the way fabric8 and client-go do?
//!
//! The Java side is [`JavaLock`], a small model of fabric8 6.12's `LeaderElector` + `LeaseLock`
//! (what Java Operator SDK 4.9 uses when its leader election is on), with a client-go flavour:
//! read the Lease, decide, and write it back guarded by the `resourceVersion` that was read, with
//! `holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime` and `leaseTransitions`.
//! The two flavours differ in how they read a Lease:
//!
//! - **fabric8 6.12** (`LeaseLock.toRecord`, `LeaderElector.canBecomeLeader`): unboxes
//!   `leaseDurationSeconds` with `Duration.ofSeconds(spec.getLeaseDurationSeconds())`, so a Lease
//!   without it throws a `NullPointerException`, which ends the elector (the acquire future
//!   completes exceptionally and is never retried); a held Lease is expired when
//!   `renewTime + <its own configured duration>` is not after its clock.
//! - **client-go** (`leaderelection.go`): missing fields read as zero values; a held Lease is
//!   expired when its configured duration has passed since it last *observed* a change
//!   (its own monotonic clock, not `renewTime`).
//!
//! Both treat an empty `holderIdentity` as free and release by writing `holderIdentity: ""`,
//! `leaseDurationSeconds: 1`.
//!
//! The Rust side is either kube-lease-manager 0.13 (configured as `katalog run` configures it:
//! duration = lease duration, grace = lease duration - renew deadline, its own identity) or this
//! crate's `leader::LeaderElector`; every scenario runs against both. Timings are the operator's
//! defaults (15 s / 10 s / 2 s) scaled to 3 s / 2 s / 0.4 s (Java: 3 s / 2 s / 0.3 s), on the
//! testbed's real API server, in real time. Waits are bounded waits for a condition; the only
//! fixed windows are observation windows in which something must *not* happen.
//!
//! Every scenario also records when each side believed it led, and checks that there was never a
//! moment with two leaders.
//!
//! Two scenarios fail with kube-lease-manager 0.13.1 and are `#[ignore]`d with the reason (run
//! them with `--ignored` to see the failure): its release leaves a Lease that fabric8 cannot read,
//! and a partitioned kube-lease-manager leader never steps down.
//!
//! Needs `kube-lease-manager.workspace = true` in this crate's `[dev-dependencies]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use kube_lease_manager::LeaseManagerBuilder;
use omjob_operator::leader::{LeaderElector, LeaseTimings};
use omjob_testbed::fixture::{self, TestNamespace};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::{Instant, timeout},
};

/// The operator's default Lease name (`LEADER_ELECTION_LEASE_NAME`).
const LEASE: &str = "omjob-operator-leader";
const JAVA_ID: &str = "openmetadata-k8s-operator-6d9f7-java";
const RUST_ID: &str = "omjob-operator-5b8c4-rust";

const LEASE_SECONDS: u64 = 3;
const LEASE_DURATION: Duration = Duration::from_secs(LEASE_SECONDS);
const RENEW_DEADLINE: Duration = Duration::from_secs(2);
const JAVA_RETRY: Duration = Duration::from_millis(300);
const RUST_RETRY: Duration = Duration::from_millis(400);
/// How long "X must not happen while Y renews" is watched: four lease durations.
const WINDOW: Duration = Duration::from_secs(4 * LEASE_SECONDS);
/// Upper bound for things that must happen (an acquisition, a takeover).
const LIMIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Who led when

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Java,
    Rust,
}

/// Every change of belief ("I lead" / "I do not") of both sides, in order.
#[derive(Debug, Clone)]
struct Timeline {
    start: Instant,
    events: Arc<Mutex<Vec<(Instant, Side, bool)>>>,
}

impl Timeline {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            events: Arc::default(),
        }
    }

    fn record(&self, side: Side, leading: bool) {
        self.events.lock().unwrap().push((Instant::now(), side, leading));
    }

    fn ms(&self, at: Instant) -> u128 {
        at.duration_since(self.start).as_millis()
    }

    /// The first stretch of time in which both sides believed they led, described.
    fn overlap(&self) -> Option<String> {
        let events = self.events.lock().unwrap();
        let (mut java, mut rust) = (false, false);
        let mut since = None;
        for &(at, side, leading) in events.iter() {
            match side {
                Side::Java => java = leading,
                Side::Rust => rust = leading,
            }
            match (java && rust, since) {
                (true, None) => since = Some(at),
                (false, Some(from)) => {
                    return Some(format!(
                        "both led from +{} ms to +{} ms",
                        self.ms(from),
                        self.ms(at)
                    ));
                }
                _ => {}
            }
        }
        since.map(|from| {
            format!(
                "both led from +{} ms until the end of the test (+{} ms)",
                self.ms(from),
                self.ms(Instant::now())
            )
        })
    }

    fn assert_never_two_leaders(&self, scenario: &str) {
        if let Some(overlap) = self.overlap() {
            panic!("{scenario}: expected at most one leader at any moment, but {overlap}; timeline: {self}");
        }
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let events = self.events.lock().unwrap();
        let parts: Vec<String> = events
            .iter()
            .map(|&(at, side, leading)| {
                format!(
                    "+{}ms {side:?} {}",
                    self.ms(at),
                    if leading { "leads" } else { "stops" }
                )
            })
            .collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// The Java side: a fabric8 / client-go style Lease lock

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Fabric8,
    ClientGo,
}

/// A `LeaderElectionRecord`, as the Java side reads it from a Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    duration_seconds: Option<i32>,
    acquire: Option<Timestamp>,
    renew: Option<Timestamp>,
    transitions: i32,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "holder={:?} duration={:?} acquire={} renew={} transitions={}",
            self.holder,
            self.duration_seconds,
            self.acquire.map_or("null".into(), |t| t.to_string()),
            self.renew.map_or("null".into(), |t| t.to_string()),
            self.transitions
        )
    }
}

#[derive(Debug)]
enum Attempt {
    Leading,
    HeldBy(String),
    /// 409: someone wrote the Lease between our read and our write.
    Conflict,
}

#[derive(Debug)]
enum JavaError {
    /// What fabric8 6.12 throws on a Lease it cannot convert; the elector dies of it.
    NullPointer(&'static str),
    Api(kube::Error),
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}

/// What the Java side saw, for assertions and for the report.
#[derive(Debug, Default)]
struct JavaStats {
    attempts: AtomicU32,
    renew_conflicts: AtomicU32,
    api_errors: AtomicU32,
    last_api_error: Mutex<Option<String>>,
    /// Each Lease record it read that differs from the previous one in more than `renewTime`.
    seen: Mutex<Vec<String>>,
    /// How many records differed only in `renewTime`.
    renewals_seen: AtomicU32,
}

#[derive(Debug)]
struct JavaLock {
    api: Api<Lease>,
    identity: String,
    flavor: Flavor,
    /// client-go's `observedRecord` / `observedTime`.
    observed: Option<(Record, Instant)>,
    stats: Arc<JavaStats>,
    /// The holder it last read.
    holder: watch::Sender<Option<String>>,
}

impl JavaStats {
    fn api_error(&self, e: &kube::Error) {
        self.api_errors.fetch_add(1, Ordering::Relaxed);
        *self.last_api_error.lock().unwrap() = Some(e.to_string());
    }
}

impl JavaLock {
    fn record(&self, lease: &Lease) -> Result<Record, JavaError> {
        let spec = lease.spec.clone().unwrap_or_default();
        if self.flavor == Flavor::Fabric8 && spec.lease_duration_seconds.is_none() {
            // `Duration.ofSeconds(spec.getLeaseDurationSeconds())` unboxes a null Integer.
            return Err(JavaError::NullPointer("leaseDurationSeconds is null"));
        }
        Ok(Record {
            holder: spec.holder_identity,
            duration_seconds: spec.lease_duration_seconds,
            acquire: spec.acquire_time.map(|t| t.0),
            renew: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        })
    }

    fn can_become_leader(&self, record: &Record, now: Timestamp) -> Result<bool, JavaError> {
        if record.holder.as_deref().unwrap_or("").is_empty() {
            return Ok(true);
        }
        match self.flavor {
            // `renewTime.plus(leaseDuration).isAfter(now())` is false: with its own duration.
            Flavor::Fabric8 => {
                let renew = record.renew.ok_or(JavaError::NullPointer("renewTime is null"))?;
                let expires = renew.as_millisecond() + LEASE_DURATION.as_millis() as i64;
                Ok(expires <= now.as_millisecond())
            }
            // `observedTime + LeaseDuration` is before now, on its monotonic clock.
            Flavor::ClientGo => Ok(self
                .observed
                .as_ref()
                .is_none_or(|(_, at)| *at + LEASE_DURATION <= Instant::now())),
        }
    }

    /// fabric8 `tryAcquireOrRenew` / client-go `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, JavaError> {
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(LEASE).await.map_err(JavaError::Api)? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(LEASE_SECONDS as i32),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
                Err(e) => Err(JavaError::Api(e)),
            };
        };
        let record = self.record(&lease)?;
        self.holder.send_replace(record.holder.clone());
        if self.observed.as_ref().map(|(r, _)| r) != Some(&record) {
            let renewal_only = self.observed.as_ref().is_some_and(|(r, _)| {
                Record {
                    renew: record.renew,
                    ..r.clone()
                } == record
            });
            if renewal_only {
                self.stats.renewals_seen.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.seen.lock().unwrap().push(record.to_string());
            }
            self.observed = Some((record.clone(), Instant::now()));
        }
        let is_leader = record.holder.as_deref() == Some(self.identity.as_str());
        if !is_leader && !self.can_become_leader(&record, now)? {
            return Ok(Attempt::HeldBy(record.holder.unwrap_or_default()));
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(LEASE_SECONDS as i32);
        if !is_leader {
            spec.acquire_time = Some(MicroTime(now));
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_transitions = Some(record.transitions + i32::from(!is_leader));
        // A PUT of what was read: the `resourceVersion` in it makes the API server refuse the
        // write (409) if anyone wrote in between.
        match self.api.replace(LEASE, &PostParams::default(), &lease).await {
            Ok(_) => {
                self.holder.send_replace(Some(self.identity.clone()));
                Ok(Attempt::Leading)
            }
            Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
            Err(e) => Err(JavaError::Api(e)),
        }
    }

    /// The elector's life: acquire, then renew until lost. Returns why it stopped leading.
    async fn run(mut self, leading: watch::Sender<bool>, timeline: Timeline) -> String {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => break,
                Ok(Attempt::HeldBy(_) | Attempt::Conflict) => {}
                // fabric8: only `KubernetesClientException` is caught; the NPE completes the
                // acquire future exceptionally and the elector never tries again.
                Err(JavaError::NullPointer(what)) => {
                    return format!("died while acquiring: NullPointerException ({what})");
                }
                Err(JavaError::Api(e)) => self.stats.api_error(&e),
            }
            tokio::time::sleep(JAVA_RETRY).await;
        }
        timeline.record(Side::Java, true);
        leading.send_replace(true);
        let mut renew_by = Instant::now() + RENEW_DEADLINE;
        let why = loop {
            tokio::time::sleep(JAVA_RETRY).await;
            if Instant::now() > renew_by {
                break "renew deadline passed".to_owned();
            }
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => renew_by = Instant::now() + RENEW_DEADLINE,
                // fabric8 stops at once; client-go keeps trying until the renew deadline.
                Ok(Attempt::HeldBy(holder)) if self.flavor == Flavor::Fabric8 => {
                    break format!("lost to {holder}");
                }
                Ok(Attempt::HeldBy(_)) => {}
                Ok(Attempt::Conflict) => {
                    self.stats.renew_conflicts.fetch_add(1, Ordering::Relaxed);
                }
                Err(JavaError::NullPointer(what)) => {
                    break format!("died while renewing: NullPointerException ({what})");
                }
                Err(JavaError::Api(e)) => self.stats.api_error(&e),
            }
        };
        timeline.record(Side::Java, false);
        leading.send_replace(false);
        why
    }
}

/// A running Java-style elector.
struct JavaPeer {
    leading: watch::Receiver<bool>,
    holder: watch::Receiver<Option<String>>,
    stats: Arc<JavaStats>,
    task: JoinHandle<String>,
    timeline: Timeline,
}

impl JavaPeer {
    fn start(api: &Api<Lease>, flavor: Flavor, timeline: &Timeline) -> Self {
        let (leading_tx, leading) = watch::channel(false);
        let (holder_tx, holder) = watch::channel(None);
        let stats = Arc::new(JavaStats::default());
        let lock = JavaLock {
            api: api.clone(),
            identity: JAVA_ID.into(),
            flavor,
            observed: None,
            stats: Arc::clone(&stats),
            holder: holder_tx,
        };
        let task = tokio::spawn(lock.run(leading_tx, timeline.clone()));
        Self {
            leading,
            holder,
            stats,
            task,
            timeline: timeline.clone(),
        }
    }

    /// The pod is killed: no release, no more renewals.
    fn crash(self) {
        self.task.abort();
        if *self.leading.borrow() {
            self.timeline.record(Side::Java, false);
        }
    }

    /// Whether its elector ended (lost, or died), and why.
    fn ended(&self) -> bool {
        self.task.is_finished()
    }

    async fn exit_reason(self) -> String {
        if self.task.is_finished() {
            self.task.await.unwrap_or_else(|e| format!("task failed: {e}"))
        } else {
            self.task.abort();
            "still running".into()
        }
    }

    fn seen(&self) -> String {
        let mut lines = self.stats.seen.lock().unwrap().clone();
        lines.push(format!(
            "(and {} renewals by the holder)",
            self.stats.renewals_seen.load(Ordering::Relaxed)
        ));
        if let Some(e) = self.stats.last_api_error.lock().unwrap().as_ref() {
            lines.push(format!(
                "({} API errors, the last: {e})",
                self.stats.api_errors.load(Ordering::Relaxed)
            ));
        }
        lines.join("\n    ")
    }
}

// ---------------------------------------------------------------------------------------------
// The Rust side

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rust {
    /// kube-lease-manager 0.13, as `katalog run` uses it.
    KubeLeaseManager,
    /// `omjob_operator::leader`.
    Ours,
}

/// A running Rust elector.
struct RustPeer {
    kind: Rust,
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), String>>,
}

impl RustPeer {
    async fn start(kind: Rust, client: Client, namespace: &str, timeline: &Timeline) -> Self {
        let (tx, leading) = watch::channel(false);
        let (stop, stop_rx) = oneshot::channel();
        let timeline = timeline.clone();
        let task = match kind {
            Rust::KubeLeaseManager => {
                let manager = LeaseManagerBuilder::new(client, LEASE)
                    .with_namespace(namespace)
                    .with_identity(RUST_ID)
                    .with_grace(LEASE_SECONDS - RENEW_DEADLINE.as_secs())
                    .with_duration(LEASE_SECONDS)
                    .build()
                    .await
                    .expect("kube-lease-manager builds its manager on the testbed Lease");
                let (rx, handle) = manager.watch().await;
                tokio::spawn(klm_task(rx, handle, tx, stop_rx, timeline))
            }
            Rust::Ours => {
                let timings = LeaseTimings {
                    lease_duration: LEASE_DURATION,
                    renew_deadline: RENEW_DEADLINE,
                    retry_period: RUST_RETRY,
                };
                let elector = LeaderElector::new(client, namespace, LEASE, RUST_ID, timings);
                tokio::spawn(ours_task(elector, tx, stop_rx, timeline))
            }
        };
        Self {
            kind,
            leading,
            stop: Some(stop),
            task,
        }
    }

    /// Graceful shutdown: stop leading, release the Lease, return when the release is done.
    async fn shutdown(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match timeout(LIMIT, &mut self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("the {:?} task failed: {e}", self.kind)),
            Err(_) => {
                self.task.abort();
                Err(format!("the {:?} side did not shut down in {LIMIT:?}", self.kind))
            }
        }
    }
}

impl Drop for RustPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn klm_task(
    mut rx: watch::Receiver<bool>,
    handle: JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
    tx: watch::Sender<bool>,
    mut stop: oneshot::Receiver<()>,
    timeline: Timeline,
) -> Result<(), String> {
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let leading = *rx.borrow_and_update();
                if leading != *tx.borrow() {
                    timeline.record(Side::Rust, leading);
                    tx.send_replace(leading);
                }
            }
        }
    }
    // The operator stops reconciling first, then lets go of the Lease: dropping the receiver
    // makes the manager's task release it and return.
    if tx.send_replace(false) {
        timeline.record(Side::Rust, false);
    }
    drop(rx);
    match handle.await {
        Ok(Ok(_manager)) => Ok(()),
        Ok(Err(e)) => Err(format!("kube-lease-manager ended with an error: {e}")),
        Err(e) => Err(format!("kube-lease-manager's task failed: {e}")),
    }
}

async fn ours_task(
    elector: LeaderElector,
    tx: watch::Sender<bool>,
    mut stop: oneshot::Receiver<()>,
    timeline: Timeline,
) -> Result<(), String> {
    let guard = tokio::select! {
        _ = &mut stop => return Ok(()),
        guard = elector.acquire() => guard.map_err(|e| format!("acquire failed: {e}"))?,
    };
    timeline.record(Side::Rust, true);
    tx.send_replace(true);
    tokio::select! {
        () = guard.lost() => {
            timeline.record(Side::Rust, false);
            tx.send_replace(false);
            // Lost: the operator exits; keep the task alive until shutdown so `shutdown` works.
            let _ = stop.await;
            Ok(())
        }
        _ = &mut stop => {
            timeline.record(Side::Rust, false);
            tx.send_replace(false);
            guard.release().await.map_err(|e| format!("release failed: {e}"))
        }
    }
}

/// `client`, except that every request fails while `cut` is set: a pod partitioned from the API
/// server.
fn partitionable(client: Client, cut: Arc<AtomicBool>) -> Client {
    let namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let client = client.clone();
        let cut = Arc::clone(&cut);
        async move {
            if cut.load(Ordering::SeqCst) {
                return Err::<http::Response<kube::client::Body>, tower::BoxError>(
                    "partitioned from the API server".into(),
                );
            }
            client.send(req).await.map_err(tower::BoxError::from)
        }
    });
    Client::new(service, namespace)
}

// ---------------------------------------------------------------------------------------------
// Helpers

async fn setup(prefix: &str) -> (TestNamespace, Api<Lease>, Timeline) {
    let ns = fixture::shared().namespace(prefix).await;
    let api: Api<Lease> = ns.api();
    (ns, api, Timeline::new())
}

/// Waits until `rx` is `want`; panics naming `expected` after `limit`. Returns how long it took.
async fn wait_until(rx: &watch::Receiver<bool>, want: bool, limit: Duration, expected: &str) -> Duration {
    let started = Instant::now();
    let mut rx = rx.clone();
    match timeout(limit, rx.wait_for(|v| *v == want)).await {
        Ok(Ok(_)) => started.elapsed(),
        Ok(Err(_)) => panic!("expected {expected}, but the elector ended first"),
        Err(_) => panic!("expected {expected} within {limit:?}, but it did not happen"),
    }
}

/// Watches both sides for `window`; fails (with `expected`) as soon as either leaves its state.
async fn hold_for(java: &JavaPeer, java_leads: bool, rust: &RustPeer, rust_leads: bool, expected: &str) {
    let (mut j, mut r) = (java.leading.clone(), rust.leading.clone());
    assert_eq!(
        *j.borrow(),
        java_leads,
        "{expected}: Java's state at the start of the window"
    );
    assert_eq!(
        *r.borrow(),
        rust_leads,
        "{expected}: Rust's state at the start of the window"
    );
    let started = Instant::now();
    tokio::select! {
        () = tokio::time::sleep(WINDOW) => {}
        changed = j.wait_for(|v| *v != java_leads) => match changed {
            Ok(_) => panic!(
                "expected {expected}; but after {:?} the Java side {} leading",
                started.elapsed(), if java_leads { "stopped" } else { "started" }
            ),
            Err(_) => panic!(
                "expected {expected}; but after {:?} the Java elector ended",
                started.elapsed()
            ),
        },
        changed = r.wait_for(|v| *v != rust_leads) => match changed {
            Ok(_) => panic!(
                "expected {expected}; but after {:?} the {:?} side {} leading",
                started.elapsed(), rust.kind, if rust_leads { "stopped" } else { "started" }
            ),
            Err(_) => panic!(
                "expected {expected}; but after {:?} the {:?} elector ended",
                started.elapsed(), rust.kind
            ),
        },
    }
}

async fn lease_spec(api: &Api<Lease>) -> LeaseSpec {
    api.get(LEASE)
        .await
        .expect("the Lease can be read")
        .spec
        .unwrap_or_default()
}

fn describe(spec: &LeaseSpec) -> String {
    format!(
        "holderIdentity={:?} leaseDurationSeconds={:?} acquireTime={} renewTime={} leaseTransitions={:?}",
        spec.holder_identity,
        spec.lease_duration_seconds,
        spec.acquire_time
            .as_ref()
            .map_or("null".into(), |t| t.0.to_string()),
        spec.renew_time
            .as_ref()
            .map_or("null".into(), |t| t.0.to_string()),
        spec.lease_transitions,
    )
}

/// The field managers recorded on the Lease, as `manager:operation`.
async fn managers(api: &Api<Lease>) -> Vec<String> {
    api.get(LEASE)
        .await
        .expect("the Lease can be read")
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            format!(
                "{}:{}",
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default()
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (a) Java holds and renews: the Rust side never becomes leader

async fn java_holder_keeps_the_lease(rust: Rust) {
    let (ns, api, timeline) = setup("lease-a").await;
    let java = JavaPeer::start(&api, Flavor::Fabric8, &timeline);
    wait_until(
        &java.leading,
        true,
        LIMIT,
        "the Java side to acquire the free Lease",
    )
    .await;
    let rust = RustPeer::start(rust, ns.client(), ns.name(), &timeline).await;

    hold_for(
        &java,
        true,
        &rust,
        false,
        &format!(
            "{:?} never to become leader while the Java side renews every {JAVA_RETRY:?} ({WINDOW:?})",
            rust.kind
        ),
    )
    .await;
    let held = lease_spec(&api).await;
    eprintln!(
        "(a) {:?}: Lease after {WINDOW:?}: {}; managers: {:?}",
        rust.kind,
        describe(&held),
        managers(&api).await
    );
    assert_eq!(
        held.holder_identity.as_deref(),
        Some(JAVA_ID),
        "the Java side still holds the Lease"
    );
    assert_eq!(
        java.stats.renew_conflicts.load(Ordering::Relaxed),
        0,
        "no 409 on the Java side's guarded renewals: the {:?} side wrote nothing while the Lease was held",
        rust.kind
    );
    timeline.assert_never_two_leaders("(a)");
    rust.shutdown().await.expect("the Rust side shuts down");
    java.crash();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_holder_keeps_kube_lease_manager_out() {
    java_holder_keeps_the_lease(Rust::KubeLeaseManager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_holder_keeps_ours_out() {
    java_holder_keeps_the_lease(Rust::Ours).await;
}

// ---------------------------------------------------------------------------------------------
// (b) Java crashes: the Rust side takes over after the lease duration, and a restarted Java
// does not take it back

async fn rust_takes_over_from_a_crashed_java(rust: Rust) {
    let (ns, api, timeline) = setup("lease-b").await;
    let java = JavaPeer::start(&api, Flavor::Fabric8, &timeline);
    wait_until(
        &java.leading,
        true,
        LIMIT,
        "the Java side to acquire the free Lease",
    )
    .await;
    let rust = RustPeer::start(rust, ns.client(), ns.name(), &timeline).await;
    assert!(
        !*rust.leading.borrow(),
        "{:?} does not lead while Java renews",
        rust.kind
    );

    java.crash();
    let crashed = lease_spec(&api).await;
    let last_renew = crashed.renew_time.clone().expect("Java wrote renewTime").0;
    let took = wait_until(
        &rust.leading,
        true,
        LEASE_DURATION + LIMIT,
        &format!(
            "{:?} to take over after the Java holder stopped renewing",
            rust.kind
        ),
    )
    .await;
    let taken = lease_spec(&api).await;
    eprintln!(
        "(b) {:?}: took over {took:?} after the crash; before: {}; after: {}",
        rust.kind,
        describe(&crashed),
        describe(&taken)
    );
    assert_eq!(
        taken.holder_identity.as_deref(),
        Some(RUST_ID),
        "the Lease names the Rust side after the takeover"
    );
    let acquired = taken
        .acquire_time
        .clone()
        .expect("the new holder wrote acquireTime")
        .0;
    let waited = acquired.as_millisecond() - last_renew.as_millisecond();
    assert!(
        waited >= LEASE_DURATION.as_millis() as i64,
        "the Rust side takes over only once Java's last renewal is a lease duration old; it waited {waited} ms"
    );

    // The Java pod restarts (same pod name) while the Rust side leads.
    let java = JavaPeer::start(&api, Flavor::Fabric8, &timeline);
    hold_for(
        &java,
        false,
        &rust,
        true,
        &format!(
            "the restarted Java side not to take the Lease back while {:?} renews",
            rust.kind
        ),
    )
    .await;
    if java.ended() {
        panic!(
            "expected the restarted Java elector to keep competing, but it ended: {}",
            java.exit_reason().await
        );
    }
    assert!(
        java.stats.attempts.load(Ordering::Relaxed) > 10,
        "the restarted Java side kept trying"
    );
    assert_eq!(
        java.holder.borrow().as_deref(),
        Some(RUST_ID),
        "the restarted Java side sees the Rust side as holder"
    );
    eprintln!("(b) {:?}: Java saw:\n    {}", rust.kind, java.seen());
    timeline.assert_never_two_leaders("(b)");
    rust.shutdown().await.expect("the Rust side shuts down");
    java.crash();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_kube_lease_manager_takes_over_from_a_crashed_java() {
    rust_takes_over_from_a_crashed_java(Rust::KubeLeaseManager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_ours_takes_over_from_a_crashed_java() {
    rust_takes_over_from_a_crashed_java(Rust::Ours).await;
}

// ---------------------------------------------------------------------------------------------
// (c) The Rust side holds: Java does not acquire while it renews

async fn java_waits_while_rust_renews(rust: Rust) {
    let (ns, api, timeline) = setup("lease-c").await;
    let rust = RustPeer::start(rust, ns.client(), ns.name(), &timeline).await;
    wait_until(
        &rust.leading,
        true,
        LIMIT,
        &format!("{:?} to create and acquire the Lease", rust.kind),
    )
    .await;
    let java = JavaPeer::start(&api, Flavor::Fabric8, &timeline);
    hold_for(
        &java,
        false,
        &rust,
        true,
        &format!("the Java side not to acquire while {:?} renews", rust.kind),
    )
    .await;
    if java.ended() {
        panic!(
            "expected the Java elector to keep competing, but it ended: {}",
            java.exit_reason().await
        );
    }
    assert_eq!(
        java.holder.borrow().as_deref(),
        Some(RUST_ID),
        "the Java side sees the Rust side as holder"
    );
    eprintln!(
        "(c) {:?}: Lease: {}; Java saw:\n    {}",
        rust.kind,
        describe(&lease_spec(&api).await),
        java.seen()
    );
    timeline.assert_never_two_leaders("(c)");
    rust.shutdown().await.expect("the Rust side shuts down");
    java.crash();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_java_waits_while_kube_lease_manager_renews() {
    java_waits_while_rust_renews(Rust::KubeLeaseManager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_java_waits_while_ours_renews() {
    java_waits_while_rust_renews(Rust::Ours).await;
}

// ---------------------------------------------------------------------------------------------
// (d) The Rust side releases on shutdown: Java acquires at once

async fn java_acquires_on_release(rust: Rust, flavor: Flavor) {
    let (ns, api, timeline) = setup("lease-d").await;
    let rust = RustPeer::start(rust, ns.client(), ns.name(), &timeline).await;
    wait_until(
        &rust.leading,
        true,
        LIMIT,
        &format!("{:?} to create and acquire the Lease", rust.kind),
    )
    .await;
    let java = JavaPeer::start(&api, flavor, &timeline);
    {
        let mut holder = java.holder.clone();
        timeout(LIMIT, holder.wait_for(|h| h.as_deref() == Some(RUST_ID)))
            .await
            .expect("the Java side reads the Lease held by the Rust side")
            .expect("the Java elector is running");
    }
    let kind = rust.kind;
    rust.shutdown()
        .await
        .expect("the Rust side releases the Lease on shutdown");
    let released = Instant::now();
    let mut leading = java.leading.clone();
    let outcome = match timeout(LEASE_DURATION, leading.wait_for(|l| *l)).await {
        Ok(Ok(_)) => "acquired",
        Ok(Err(_)) => "ended its elector",
        Err(_) => "did not acquire",
    };
    let took = released.elapsed();
    let seen = java.seen();
    let reason = java.exit_reason().await;
    eprintln!(
        "(d) {kind:?} -> {flavor:?}: after the release, Java {outcome} ({took:?}; elector: {reason}); Lease \
         now: {}; Java saw:\n    {seen}",
        describe(&lease_spec(&api).await),
    );
    assert_eq!(
        outcome, "acquired",
        "after {kind:?} released the Lease on shutdown, the {flavor:?} lock should acquire at its next retry \
         ({JAVA_RETRY:?}), well before the {LEASE_DURATION:?} lease would expire; after {took:?} it had not \
         (its elector: {reason}; it read:\n    {seen})"
    );
    assert!(
        took < LEASE_DURATION,
        "the {flavor:?} lock acquired without waiting for expiry; it took {took:?}"
    );
    timeline.assert_never_two_leaders("(d)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_client_go_acquires_when_kube_lease_manager_releases() {
    java_acquires_on_release(Rust::KubeLeaseManager, Flavor::ClientGo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails with kube-lease-manager 0.13.1: its release writes leaseDurationSeconds: null, which \
            fabric8 6.12's LeaseLock unboxes (NullPointerException), ending the Java elector"]
async fn d_fabric8_acquires_when_kube_lease_manager_releases() {
    java_acquires_on_release(Rust::KubeLeaseManager, Flavor::Fabric8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_client_go_acquires_when_ours_releases() {
    java_acquires_on_release(Rust::Ours, Flavor::ClientGo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_fabric8_acquires_when_ours_releases() {
    java_acquires_on_release(Rust::Ours, Flavor::Fabric8).await;
}

// ---------------------------------------------------------------------------------------------
// (e) The Rust leader is cut off from the API server: it must step down before Java may take
// over (renew deadline 2 s < lease duration 3 s), as client-go and fabric8 leaders do

async fn partitioned_rust_steps_down(rust: Rust) {
    let (ns, api, timeline) = setup("lease-e").await;
    let cut = Arc::new(AtomicBool::new(false));
    let client = partitionable(ns.client(), Arc::clone(&cut));
    let rust = RustPeer::start(rust, client, ns.name(), &timeline).await;
    wait_until(
        &rust.leading,
        true,
        LIMIT,
        &format!("{:?} to create and acquire the Lease", rust.kind),
    )
    .await;
    let java = JavaPeer::start(&api, Flavor::Fabric8, &timeline);
    {
        let mut holder = java.holder.clone();
        timeout(LIMIT, holder.wait_for(|h| h.as_deref() == Some(RUST_ID)))
            .await
            .expect("the Java side reads the Lease held by the Rust side")
            .expect("the Java elector is running");
    }
    cut.store(true, Ordering::SeqCst);
    let took = wait_until(
        &java.leading,
        true,
        LEASE_DURATION + LIMIT,
        "the Java side to take over once the partitioned leader's Lease expires",
    )
    .await;
    // Give a leader that steps down late one more renew deadline to do so, for the report.
    let mut r = rust.leading.clone();
    let stepped_down = timeout(RENEW_DEADLINE, r.wait_for(|l| !*l)).await.is_ok();
    eprintln!(
        "(e) {:?}: Java took over {took:?} after the partition; the Rust side {}; timeline: {timeline}",
        rust.kind,
        if stepped_down {
            "stepped down"
        } else {
            "still claims leadership"
        }
    );
    timeline.assert_never_two_leaders(&format!("(e) {:?} partitioned from the API server", rust.kind));
    cut.store(false, Ordering::SeqCst);
    let _ = rust.shutdown().await;
    java.crash();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails with kube-lease-manager 0.13.1: when its requests fail it keeps reporting `true` \
            (no renew deadline), so it still leads after the Java side has legitimately taken over"]
async fn e_partitioned_kube_lease_manager_steps_down_before_java_takes_over() {
    partitioned_rust_steps_down(Rust::KubeLeaseManager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_partitioned_ours_steps_down_before_java_takes_over() {
    partitioned_rust_steps_down(Rust::Ours).await;
}
