//! One pod on the simulated node, from acceptance to the final delete: runs its containers as
//! processes (or finishes them by rule), enforces memory limits and deadlines, runs preStop hooks
//! on graceful deletion, and reports every state change as a kubelet would.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt as _, stream::FuturesUnordered};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use tokio::sync::watch;

use super::{
    NodeShared,
    env::{self, ApiObjects},
    logs::ContainerLog,
    procs, quantity,
    status::{self, ContainerReport, ContainerState, PodReport},
};

/// Annotation that makes the node evict the pod (value: the eviction message).
pub const EVICT_ANNOTATION: &str = "testbed.omjob.dev/evict";
/// Rule mode: the exit code every container ends with (default `0`).
pub const RULE_EXIT_CODE: &str = "testbed.omjob.dev/exit-code";
/// Rule mode: how long containers "run", in seconds (default `0`).
pub const RULE_RUN_SECONDS: &str = "testbed.omjob.dev/run-seconds";
/// Rule mode: text written to each container's log.
pub const RULE_LOG: &str = "testbed.omjob.dev/log";
/// Rule mode: `"true"` ends containers as OOM-killed (exit code 137).
pub const RULE_OOM: &str = "testbed.omjob.dev/oom";
/// Images containing this word fail to pull (`ErrImagePull`), to simulate a stuck pending pod.
pub const UNPULLABLE_IMAGE_MARKER: &str = "unpullable";

/// What the watcher knows about the pod right now.
#[derive(Debug, Clone)]
pub enum PodUpdate {
    /// The latest object.
    Present(Arc<Pod>),
    /// Deleted from the API (force-deleted, or our final delete went through).
    Gone,
}

/// How a pod's containers ended when the node (not the process) decided it.
enum Interrupt {
    /// Graceful deletion requested: preStop, SIGTERM, grace period, SIGKILL.
    Delete { grace: Duration },
    /// The object vanished: kill at once, report nothing.
    Gone,
    /// Node-pressure eviction.
    Evict { message: String },
    /// `activeDeadlineSeconds` passed.
    Deadline,
}

struct Running {
    pgid: nix::unistd::Pid,
    oom: Arc<AtomicBool>,
    running_tx: watch::Sender<bool>,
    started_at: String,
}

struct Slot {
    spec: Container,
    report: ContainerReport,
    env: BTreeMap<String, String>,
    running: Option<Running>,
    previous_log: Option<std::path::PathBuf>,
}

pub(super) struct PodRunner {
    node: Arc<NodeShared>,
    updates: watch::Receiver<PodUpdate>,
    ns: String,
    name: String,
    uid: String,
    start_time: String,
    api: kube::Api<Pod>,
}

fn interrupt_of(update: &PodUpdate) -> Option<Interrupt> {
    match update {
        PodUpdate::Gone => Some(Interrupt::Gone),
        PodUpdate::Present(pod) => {
            if pod.metadata.deletion_timestamp.is_some() {
                let secs = pod.metadata.deletion_grace_period_seconds.unwrap_or(30).max(0);
                return Some(Interrupt::Delete {
                    grace: Duration::from_secs(u64::try_from(secs).unwrap_or(0)),
                });
            }
            let evict = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(EVICT_ANNOTATION));
            evict.map(|m| Interrupt::Evict {
                message: if m.is_empty() {
                    "The node was low on resource: memory.".to_owned()
                } else {
                    m.clone()
                },
            })
        }
    }
}

impl PodRunner {
    pub(super) fn new(node: Arc<NodeShared>, pod: &Pod, updates: watch::Receiver<PodUpdate>) -> Option<Self> {
        let ns = pod.metadata.namespace.clone()?;
        let name = pod.metadata.name.clone()?;
        let uid = pod.metadata.uid.clone()?;
        let api = kube::Api::namespaced(node.client.clone(), &ns);
        Some(Self {
            node,
            updates,
            ns,
            name,
            uid,
            start_time: status::now(),
            api,
        })
    }

    fn pod(&self) -> Option<Arc<Pod>> {
        match &*self.updates.borrow() {
            PodUpdate::Present(p) => Some(p.clone()),
            PodUpdate::Gone => None,
        }
    }

    fn pod_dir(&self) -> std::path::PathBuf {
        self.node
            .dir
            .join("pods")
            .join(format!("{}_{}_{}", self.ns, self.name, self.uid))
    }

    /// Runs the pod to its end. Never returns an error: problems are reported on the pod.
    pub(super) async fn run(mut self) {
        let Some(pod) = self.pod() else { return };
        // A pod that already ended (the node restarted) only needs its final delete.
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        if phase == "Succeeded" || phase == "Failed" {
            self.await_delete().await;
            return;
        }
        if self.node.rules {
            self.run_by_rule(&pod).await;
        } else {
            self.run_processes(&pod).await;
        }
        self.node.logs.remove_pod(&self.ns, &self.name);
        let _ = std::fs::remove_dir_all(self.pod_dir());
    }

    async fn report(&self, pod: &PodReport, containers: &[ContainerReport]) {
        // A lost node is partitioned: it keeps running pods but cannot tell anyone.
        self.node.wait_reachable().await;
        let body = serde_json::json!({"status": status::render(pod, containers)});
        // A strategic merge, as the kubelet's status manager sends: conditions merge by type, so
        // the ones other controllers own (DisruptionTarget from the taint manager, pod GC or the
        // eviction API) survive this node's reports.
        // The kubelet re-syncs status until the API server takes it; this node reports each change
        // once, so an API error (the API server restarting in a fault test, for as long as that
        // takes) is retried instead of lost. Only the pod's disappearance, or a report the API
        // server calls invalid, ends the attempts.
        let mut delay = Duration::from_millis(100);
        for attempt in 1u32.. {
            match self
                .api
                .patch_status(&self.name, &PatchParams::default(), &Patch::Strategic(&body))
                .await
            {
                Ok(_) => return,
                // The pod is gone: nothing left to report.
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                // The API server refuses this status as invalid: retrying cannot change that, and
                // it is a bug in this node, so say so loudly.
                Err(kube::Error::Api(e)) if e.code == 400 || e.code == 422 => {
                    tracing::error!(pod = %self.name, error = %e, "the API server refused a pod status report");
                    return;
                }
                Err(e) => {
                    if attempt % 10 == 0 {
                        tracing::warn!(pod = %self.name, attempt, error = %e, "status update still failing");
                    } else {
                        tracing::debug!(pod = %self.name, attempt, error = %e, "status update failed");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Waits for deletion (or disappearance), then removes the object as the kubelet does.
    async fn await_delete(&mut self) {
        loop {
            let interrupt = interrupt_of(&self.updates.borrow_and_update());
            match interrupt {
                Some(Interrupt::Gone) => return,
                Some(Interrupt::Delete { .. }) => break,
                _ => {}
            }
            if self.updates.changed().await.is_err() {
                return;
            }
        }
        self.final_delete().await;
    }

    async fn final_delete(&self) {
        self.node.wait_reachable().await;
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(e) = self.api.delete(&self.name, &dp).await {
            tracing::debug!(pod = %self.name, error = %e, "final delete failed");
        }
    }

    fn pod_report(&self, phase: &str) -> PodReport {
        PodReport {
            phase: phase.to_owned(),
            start_time: self.start_time.clone(),
            ..PodReport::default()
        }
    }

    async fn run_by_rule(&mut self, pod: &Pod) {
        let ann = pod.metadata.annotations.clone().unwrap_or_default();
        let exit_code: i32 = ann.get(RULE_EXIT_CODE).and_then(|v| v.parse().ok()).unwrap_or(0);
        let run_for: f64 = ann
            .get(RULE_RUN_SECONDS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let oom = ann.get(RULE_OOM).is_some_and(|v| v == "true");
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let started_at = status::now();
        if let Some(text) = ann.get(RULE_LOG) {
            let dir = self.pod_dir();
            let _ = std::fs::create_dir_all(&dir);
            for c in &containers {
                let path = dir.join(format!("{}.log", c.name));
                let _ = std::fs::write(&path, text);
                let (_tx, rx) = watch::channel(false);
                self.node.logs.set(
                    &self.ns,
                    &self.name,
                    &c.name,
                    ContainerLog {
                        path,
                        previous: None,
                        running: rx,
                    },
                );
            }
        }
        let report = |state: &ContainerState| -> Vec<ContainerReport> {
            containers
                .iter()
                .map(|c| ContainerReport {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    state: state.clone(),
                    last_state: None,
                    restart_count: 0,
                })
                .collect()
        };
        if run_for > 0.0 {
            self.report(
                &self.pod_report("Running"),
                &report(&ContainerState::Running {
                    started_at: started_at.clone(),
                }),
            )
            .await;
            let sleep = tokio::time::sleep(Duration::from_secs_f64(run_for));
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    changed = self.updates.changed() => {
                        if changed.is_err() { return; }
                        let interrupt = interrupt_of(&self.updates.borrow_and_update());
                        match interrupt {
                            Some(Interrupt::Gone) => return,
                            Some(Interrupt::Delete { .. }) => { self.final_delete().await; return; }
                            _ => {}
                        }
                    }
                }
            }
        }
        let (code, reason) = match (oom, exit_code) {
            (true, _) => (137, "OOMKilled"),
            (false, 0) => (0, "Completed"),
            (false, c) => (c, "Error"),
        };
        let terminated = ContainerState::Terminated {
            exit_code: code,
            reason: reason.to_owned(),
            started_at,
            finished_at: status::now(),
        };
        let reports = report(&terminated);
        self.report(&self.pod_report(status::final_phase(&reports)), &reports)
            .await;
        self.await_delete().await;
    }

    async fn run_processes(&mut self, pod: &Pod) {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut slots: Vec<Slot> = spec
            .containers
            .iter()
            .map(|c| Slot {
                spec: c.clone(),
                report: ContainerReport {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    state: ContainerState::Waiting {
                        reason: "ContainerCreating".into(),
                        message: String::new(),
                    },
                    last_state: None,
                    restart_count: 0,
                },
                env: BTreeMap::new(),
                running: None,
                previous_log: None,
            })
            .collect();

        // Image pull and configuration errors keep the pod Pending, retried like the kubelet does,
        // until the pod is deleted.
        if let Some(bad) = slots
            .iter()
            .find(|s| s.report.image.contains(UNPULLABLE_IMAGE_MARKER))
        {
            let image = bad.report.image.clone();
            for (i, reason) in ["ErrImagePull", "ImagePullBackOff"].iter().enumerate() {
                for s in &mut slots {
                    s.report.state = ContainerState::Waiting {
                        reason: (*reason).to_owned(),
                        message: format!(
                            "Back-off pulling image \"{image}\" (the testbed treats it as unpullable)"
                        ),
                    };
                }
                self.report(&self.pod_report("Pending"), &reports(&slots)).await;
                if i == 0 && self.wait_interrupt(Some(Duration::from_secs(1))).await.is_some() {
                    self.await_delete().await;
                    return;
                }
            }
            self.await_delete().await;
            return;
        }
        let objects = ApiObjects::new(self.node.client.clone(), &self.ns);
        loop {
            let mut failure = None;
            for s in &mut slots {
                match env::resolve(pod, &s.spec, &objects).await {
                    Ok(vars) => s.env = vars,
                    Err(e) => failure = Some(e),
                }
            }
            let Some(e) = failure else { break };
            for s in &mut slots {
                s.report.state = ContainerState::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: e.to_string(),
                };
            }
            self.report(&self.pod_report("Pending"), &reports(&slots)).await;
            if self.wait_interrupt(Some(Duration::from_secs(2))).await.is_some() {
                self.await_delete().await;
                return;
            }
        }

        let dir = self.pod_dir();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(pod = %self.name, error = %e, "cannot create the pod directory");
        }
        let mut exits = FuturesUnordered::new();
        for (i, s) in slots.iter_mut().enumerate() {
            if let Some(fut) = self.start_container(i, s, &dir) {
                exits.push(fut);
            }
        }
        self.report(&self.pod_report("Running"), &reports(&slots)).await;

        let deadline = spec
            .active_deadline_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs);
        let deadline_sleep = tokio::time::sleep(deadline.unwrap_or(Duration::from_secs(u64::from(u32::MAX))));
        tokio::pin!(deadline_sleep);
        let restart_policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());

        let interrupt = loop {
            if slots.iter().all(|s| s.running.is_none()) && exits.is_empty() {
                break None;
            }
            tokio::select! {
                Some((i, code)) = exits.next() => {
                    let s: &mut Slot = &mut slots[i];
                    finish(s, code);
                    let restart = match restart_policy.as_str() {
                        "Always" => true,
                        "OnFailure" => matches!(s.report.state, ContainerState::Terminated { exit_code, .. } if exit_code != 0),
                        _ => false,
                    };
                    if restart {
                        s.report.last_state = Some(s.report.state.clone());
                        s.report.restart_count += 1;
                        s.previous_log = Some(dir.join(format!("{}-{}.log", s.spec.name, s.report.restart_count - 1)));
                        self.report(&self.pod_report("Running"), &reports(&slots)).await;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        if let Some(fut) = self.start_container(i, &mut slots[i], &dir) { exits.push(fut); }
                    }
                    // The last exit is reported once, with the final phase, after the loop.
                    if !slots.iter().all(|s| s.report.state.is_terminated()) {
                        self.report(&self.pod_report("Running"), &reports(&slots)).await;
                    }
                }
                () = &mut deadline_sleep, if deadline.is_some() => break Some(Interrupt::Deadline),
                changed = self.updates.changed() => {
                    if changed.is_err() { break Some(Interrupt::Gone); }
                    let interrupt = interrupt_of(&self.updates.borrow_and_update());
                    if interrupt.is_some() { break interrupt; }
                }
            }
        };

        match interrupt {
            None => {
                self.report(
                    &self.pod_report(status::final_phase(&reports(&slots))),
                    &reports(&slots),
                )
                .await;
                self.await_delete().await;
            }
            Some(Interrupt::Gone) => kill_all(&slots, Signal::SIGKILL),
            Some(Interrupt::Evict { message }) => {
                kill_all(&slots, Signal::SIGKILL);
                drain(&mut slots, &mut exits).await;
                let report = PodReport {
                    reason: Some("Evicted".into()),
                    disruption: Some(status::Disruption {
                        reason: "TerminationByKubelet".into(),
                        message: message.clone(),
                    }),
                    message: Some(message),
                    ..self.pod_report("Failed")
                };
                self.report(&report, &reports(&slots)).await;
                self.await_delete().await;
            }
            Some(Interrupt::Deadline) => {
                let grace = spec
                    .termination_grace_period_seconds
                    .and_then(|g| u64::try_from(g).ok())
                    .unwrap_or(30);
                self.stop_gracefully(&mut slots, &mut exits, Duration::from_secs(grace), false)
                    .await;
                let report = PodReport {
                    reason: Some("DeadlineExceeded".into()),
                    message: Some("Pod was active on the node longer than the specified deadline".into()),
                    ..self.pod_report("Failed")
                };
                self.report(&report, &reports(&slots)).await;
                self.await_delete().await;
            }
            Some(Interrupt::Delete { grace }) => {
                self.stop_gracefully(&mut slots, &mut exits, grace, true).await;
                self.report(
                    &self.pod_report(status::final_phase(&reports(&slots))),
                    &reports(&slots),
                )
                .await;
                self.final_delete().await;
            }
        }
    }

    /// Waits up to `limit` (forever when `None`) for something that ends the pod early.
    async fn wait_interrupt(&mut self, limit: Option<Duration>) -> Option<Interrupt> {
        let wait = async {
            loop {
                let interrupt = interrupt_of(&self.updates.borrow_and_update());
                if interrupt.is_some() {
                    return interrupt;
                }
                if self.updates.changed().await.is_err() {
                    return Some(Interrupt::Gone);
                }
            }
        };
        match limit {
            Some(l) => tokio::time::timeout(l, wait).await.ok().flatten(),
            None => wait.await,
        }
    }

    fn start_container(
        &self,
        index: usize,
        slot: &mut Slot,
        dir: &std::path::Path,
    ) -> Option<futures::future::BoxFuture<'static, (usize, i32)>> {
        let argv: Vec<String> = slot
            .spec
            .command
            .iter()
            .flatten()
            .chain(slot.spec.args.iter().flatten())
            .map(|a| env::expand(a, &slot.env))
            .collect();
        let log_path = dir.join(format!("{}-{}.log", slot.spec.name, slot.report.restart_count));
        let started_at = status::now();
        let limit = slot
            .spec
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .map(|q| quantity::bytes(&q.0));
        match (limit, procs::spawn(&argv, &slot.env, dir, &log_path)) {
            (Some(Err(e)), Ok(spawned)) => {
                procs::signal_group(spawned.pgid, Signal::SIGKILL);
                slot.report.state = ContainerState::Waiting {
                    reason: "CreateContainerError".into(),
                    message: e.to_string(),
                };
                None
            }
            (_, Err(e)) => {
                slot.report.state = ContainerState::Terminated {
                    exit_code: 128,
                    reason: "StartError".into(),
                    started_at: started_at.clone(),
                    finished_at: started_at,
                };
                tracing::info!(pod = %self.name, container = %slot.spec.name, error = %e, "container failed to start");
                None
            }
            (limit, Ok(spawned)) => {
                let (running_tx, running_rx) = watch::channel(true);
                let oom = Arc::new(AtomicBool::new(false));
                self.node.logs.set(
                    &self.ns,
                    &self.name,
                    &slot.spec.name,
                    ContainerLog {
                        path: log_path,
                        previous: slot.previous_log.clone(),
                        running: running_rx.clone(),
                    },
                );
                if let Some(Ok(limit)) = limit {
                    tokio::spawn(enforce_memory(spawned.pgid, limit, oom.clone(), running_rx));
                }
                slot.report.state = ContainerState::Running {
                    started_at: started_at.clone(),
                };
                slot.running = Some(Running {
                    pgid: spawned.pgid,
                    oom,
                    running_tx,
                    started_at,
                });
                Some(Box::pin(async move {
                    let code = match spawned.exit.await {
                        Ok(Ok(status)) => procs::exit_code(&status),
                        _ => 128,
                    };
                    (index, code)
                }))
            }
        }
    }

    /// preStop hooks (when `hooks`), SIGTERM, wait for `grace`, SIGKILL; waits for every exit.
    async fn stop_gracefully(
        &self,
        slots: &mut [Slot],
        exits: &mut FuturesUnordered<futures::future::BoxFuture<'static, (usize, i32)>>,
        grace: Duration,
        hooks: bool,
    ) {
        let deadline = tokio::time::Instant::now() + grace;
        if hooks {
            let dir = self.pod_dir();
            let runs = slots.iter().filter(|s| s.running.is_some()).filter_map(|s| {
                let cmd = s
                    .spec
                    .lifecycle
                    .as_ref()?
                    .pre_stop
                    .as_ref()?
                    .exec
                    .as_ref()?
                    .command
                    .clone()?;
                let argv: Vec<String> = cmd.iter().map(|a| env::expand(a, &s.env)).collect();
                let log = dir.join(format!("{}-prestop.log", s.spec.name));
                let env = s.env.clone();
                let dir = dir.clone();
                Some(async move {
                    match procs::spawn(&argv, &env, &dir, &log) {
                        Ok(hook) => {
                            if tokio::time::timeout_at(deadline, hook.exit).await.is_err() {
                                procs::signal_group(hook.pgid, Signal::SIGKILL);
                            }
                        }
                        Err(e) => tracing::info!(error = %e, "preStop hook failed to start"),
                    }
                })
            });
            futures::future::join_all(runs).await;
        }
        kill_all(slots, Signal::SIGTERM);
        loop {
            if exits.is_empty() {
                break;
            }
            match tokio::time::timeout_at(deadline, exits.next()).await {
                Ok(Some((i, code))) => finish(&mut slots[i], code),
                Ok(None) => break,
                Err(_) => {
                    kill_all(slots, Signal::SIGKILL);
                    drain(slots, exits).await;
                    break;
                }
            }
        }
    }
}

fn reports(slots: &[Slot]) -> Vec<ContainerReport> {
    slots.iter().map(|s| s.report.clone()).collect()
}

fn finish(slot: &mut Slot, code: i32) {
    let Some(run) = slot.running.take() else { return };
    let _ = run.running_tx.send(false);
    let oom = run.oom.load(Ordering::SeqCst);
    let (exit_code, reason) = match (oom, code) {
        (true, _) => (137, "OOMKilled"),
        (false, 0) => (0, "Completed"),
        (false, c) => (c, "Error"),
    };
    slot.report.state = ContainerState::Terminated {
        exit_code,
        reason: reason.to_owned(),
        started_at: run.started_at,
        finished_at: status::now(),
    };
}

fn kill_all(slots: &[Slot], signal: Signal) {
    for s in slots {
        if let Some(r) = &s.running {
            procs::signal_group(r.pgid, signal);
        }
    }
}

async fn drain(
    slots: &mut [Slot],
    exits: &mut FuturesUnordered<futures::future::BoxFuture<'static, (usize, i32)>>,
) {
    while let Some((i, code)) = exits.next().await {
        finish(&mut slots[i], code);
    }
}

/// Kills the container's process group when its resident memory exceeds `limit`, as the kernel's
/// cgroup OOM killer would. Sampling every 50 ms misses only allocations that come and go faster.
async fn enforce_memory(
    pgid: nix::unistd::Pid,
    limit: u64,
    oom: Arc<AtomicBool>,
    mut running: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = running.changed() => if r.is_err() || !*running.borrow() { return },
        }
        let rss = tokio::task::spawn_blocking(move || procs::group_rss(pgid))
            .await
            .unwrap_or(0);
        if rss > limit {
            oom.store(true, Ordering::SeqCst);
            procs::signal_group(pgid, Signal::SIGKILL);
            return;
        }
    }
}
