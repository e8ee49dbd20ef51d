//! The physical-limit twin of `bench omjob`: the smallest reactive client that does what an
//! exit-handler controller has to do — see a main pod terminate, create one follow-up pod — and
//! nothing else (no status, no events, no finalizers, no reads of its own objects).
//!
//! Its latency on the same testbed, under the same load, is what any exit-handler controller
//! could reach on that API server, so the operator's figures are judged against it rather than
//! against an absolute number the testbed may not allow.
//!
//! It runs on its own tokio runtime in its own OS thread, with its own client, so that the
//! simulated nodes and the bench's observer watches (which share the bench's runtime) do not
//! delay it in ways the operator, a separate process, is not delayed. Like the operator's client
//! (`crates/operator/src/api_client.rs`: kube's default stack plus a counting layer), it has no
//! client-side rate limit.

use std::{
    collections::{BTreeMap, HashSet},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::json;

/// Label on the twin's pods: [`MAIN`] or [`FOLLOW_UP`]. Not the operator's pod-type label, so
/// the operator's pod watch (which selects on that label) never sees them.
pub(crate) const TWIN_LABEL: &str = "bench.omjob.dev/twin";
/// [`TWIN_LABEL`] value of a main pod (made by the bench).
pub(crate) const MAIN: &str = "main";
/// [`TWIN_LABEL`] value of a follow-up pod (made by the twin).
pub(crate) const FOLLOW_UP: &str = "exit";

/// How long the twin's watch may take to list its namespace at start.
const START_LIMIT: Duration = Duration::from_secs(60);

/// The twin's main pod for run `base`: `<base>-main`, the same container, command, service
/// account and hardening as the operator's main pod of the bench's OMJobs
/// (`crates/operator/src/omjob/pods.rs`), with the rule-mode `annotations` that set how long it
/// runs. No owner reference: there is no OMJob.
pub(crate) fn main_pod(base: &str, annotations: &BTreeMap<String, String>) -> anyhow::Result<Pod> {
    pod(
        &format!("{base}-main"),
        base,
        MAIN,
        annotations,
        &["python", "main.py"],
        &[],
    )
}

/// The follow-up pod for run `base`, told the main container's exit code the way the operator
/// tells its exit handler (`pipelineStatus`, `mainPodExitCode`).
fn follow_up_pod(base: &str, exit_code: i32) -> anyhow::Result<Pod> {
    let status = if exit_code == 0 { "success" } else { "failed" };
    pod(
        &format!("{base}-exit"),
        base,
        FOLLOW_UP,
        &BTreeMap::new(),
        &["python", "exit_handler.py"],
        &[
            ("pipelineStatus", status),
            ("mainPodExitCode", &exit_code.to_string()),
        ],
    )
}

fn pod(
    name: &str,
    base: &str,
    role: &str,
    annotations: &BTreeMap<String, String>,
    command: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<Pod> {
    let env: Vec<_> = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations,
            "labels": {TWIN_LABEL: role, "app.kubernetes.io/run-id": base}},
        "spec": {
            "restartPolicy": "Never", "serviceAccountName": "default",
            "containers": [{"name": "main", "image": "ingestion", "imagePullPolicy": "IfNotPresent",
                "command": command, "env": env,
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": false,
                    "capabilities": {"drop": ["ALL"]}}}]
        }
    }))?)
}

/// The run a twin pod belongs to, and whether it is the main or the follow-up pod.
pub(crate) fn role_of(pod: &Pod) -> Option<(&str, &str)> {
    let role = pod.metadata.labels.as_ref()?.get(TWIN_LABEL)?;
    let name = pod.metadata.name.as_deref()?;
    let base = match role.as_str() {
        MAIN => name.strip_suffix("-main")?,
        FOLLOW_UP => name.strip_suffix("-exit")?,
        _ => return None,
    };
    Some((base, role.as_str()))
}

/// The exit code of a pod's first terminated container, once one has terminated.
pub(crate) fn terminated_exit_code(pod: &Pod) -> Option<i32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
}

/// A running twin; stops (and joins its thread) when dropped.
#[derive(Debug)]
pub(crate) struct Twin {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    creates: Arc<AtomicU64>,
}

impl Twin {
    /// Starts the twin on the pods of `namespace`, connecting with `kubeconfig` (the same admin
    /// kubeconfig the operator gets); returns once its watch has listed the namespace, so no main
    /// pod created afterwards can be missed.
    ///
    /// # Errors
    /// When its thread or runtime cannot start, or its client or first list fails.
    pub async fn start(kubeconfig: PathBuf, namespace: String) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let creates = Arc::new(AtomicU64::new(0));
        let counter = creates.clone();
        let thread = std::thread::Builder::new()
            .name("bench-twin".to_owned())
            .spawn(move || {
                // The operator's runtime: multi-threaded, one worker per core.
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("bench-twin")
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("twin runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    tokio::select! {
                        () = react(kubeconfig, namespace, counter, ready_tx) => {}
                        _ = stop_rx => {}
                    }
                });
                // Follow-up creates still in flight are abandoned with the runtime.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .context("starting the twin's thread")?;
        let twin = Self {
            stop: Some(stop_tx),
            thread: Some(thread),
            creates,
        };
        tokio::time::timeout(START_LIMIT, ready_rx)
            .await
            .context("the twin's watch did not list its namespace within 60 s")?
            .context("the twin stopped before its watch was ready")?
            .map_err(anyhow::Error::msg)?;
        Ok(twin)
    }

    /// Follow-up pods the twin has created so far (its only requests besides its one watch).
    pub fn creates(&self) -> u64 {
        self.creates.load(Ordering::Relaxed)
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The twin itself: one watch on main pods, one create per termination, spawned at once so a
/// slow create never holds up the next termination.
async fn react(
    kubeconfig: PathBuf,
    namespace: String,
    creates: Arc<AtomicU64>,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let client = match omjob_testbed::controlplane::client_from_kubeconfig(&kubeconfig).await {
        Ok(c) => c,
        Err(e) => {
            if let Some(tx) = ready.take() {
                let _ = tx.send(Err(format!("twin client: {e}")));
            }
            return;
        }
    };
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    // Selected on the server, as the operator selects its pods; served from the watch cache,
    // as the operator's watches are (`any_semantic`).
    let config = watcher::Config::default()
        .labels(&format!("{TWIN_LABEL}={MAIN}"))
        .any_semantic();
    let stream = watcher(pods.clone(), config).default_backoff();
    futures::pin_mut!(stream);
    // Runs already followed up: a terminated pod is reported again on every later change.
    let mut handled: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                let Some(code) = terminated_exit_code(&p) else {
                    continue;
                };
                let Some((base, MAIN)) = role_of(&p) else {
                    continue;
                };
                if handled.insert(base.to_owned()) {
                    tokio::spawn(follow_up(pods.clone(), base.to_owned(), code, creates.clone()));
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("twin watch error (retrying): {e}"),
        }
    }
}

/// Creates the follow-up pod of `base`, retrying what a controller would requeue (the API server
/// sheds load with 429s); one that already exists counts as done.
async fn follow_up(pods: Api<Pod>, base: String, exit_code: i32, creates: Arc<AtomicU64>) {
    let pod = match follow_up_pod(&base, exit_code) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("twin: follow-up pod of {base}: {e:#}");
            return;
        }
    };
    for attempt in 1..=10u32 {
        creates.fetch_add(1, Ordering::Relaxed);
        match pods.create(&PostParams::default(), &pod).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => return,
            Err(e) => {
                eprintln!("twin: creating {base}-exit failed (attempt {attempt}): {e}");
                tokio::time::sleep(Duration::from_millis(50) * attempt).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn twin_pods_name_their_run_and_role() {
        let main = main_pod("w-0-3", &BTreeMap::new()).unwrap();
        assert_eq!(role_of(&main), Some(("w-0-3", MAIN)));
        let exit = follow_up_pod("w-0-3", 3).unwrap();
        assert_eq!(role_of(&exit), Some(("w-0-3", FOLLOW_UP)));
        assert_eq!(terminated_exit_code(&exit), None);
        let env = &exit.spec.unwrap().containers[0].env.clone().unwrap();
        assert_eq!(env[0].value.as_deref(), Some("failed"));
    }
}
