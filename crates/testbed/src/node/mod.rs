//! A simulated node: registers a Node, keeps its Lease and Ready condition fresh, and runs the pods
//! the scheduler binds to it as local processes (or finishes them by rule, for benchmarks).
//!
//! Fault injection goes through the API so that tests, the CLI and `kubectl` share one path: the
//! Node annotation [`LOST_ANNOTATION`] partitions the node (no heartbeats, no status reports; its
//! processes keep running), and the pod annotation [`pod::EVICT_ANNOTATION`] evicts a pod.

pub mod env;
pub mod logs;
pub mod pod;
pub mod procs;
pub mod quantity;
pub mod status;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Node, Pod},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::json;
use tokio::sync::watch;

use crate::controlplane::pki::Pki;
use pod::{PodRunner, PodUpdate};

/// Node annotation: when `"true"`, the node stops heartbeats and status reports (a partition).
pub const LOST_ANNOTATION: &str = "testbed.omjob.dev/lost";
/// Taint key of dedicated nodes (see [`SimNode::start_with`]).
pub const DEDICATED_TAINT: &str = "testbed.omjob.dev/dedicated";
/// Label on every simulated node.
pub const NODE_LABEL: &str = "testbed.omjob.dev/simulated";

/// How the node runs containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeMode {
    /// Each container's command runs as a local process.
    #[default]
    Process,
    /// No process: containers end as the pod's `testbed.omjob.dev/*` annotations say.
    Rules,
}

/// Errors while starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Its serving certificate could not be issued.
    #[error("failed to issue the kubelet certificate")]
    Pki(#[from] crate::controlplane::pki::PkiError),
    /// The log endpoint could not listen.
    #[error("failed to start the kubelet log endpoint")]
    Serve(#[source] std::io::Error),
    /// Registering the Node or its Lease failed.
    #[error("failed to register node {0}")]
    Register(String, #[source] kube::Error),
}

pub(crate) struct NodeShared {
    pub(crate) client: Client,
    pub(crate) dir: PathBuf,
    pub(crate) rules: bool,
    pub(crate) logs: logs::LogStore,
    reachable: watch::Receiver<bool>,
}

impl NodeShared {
    /// Returns at once while the node is reachable; waits while it is "lost".
    pub(crate) async fn wait_reachable(&self) {
        let mut r = self.reachable.clone();
        let _ = r.wait_for(|ok| *ok).await;
    }
}

/// A running simulated node. Dropping it stops its tasks (its processes are killed by their pods'
/// deletion or when the test process exits).
#[derive(Debug)]
pub struct SimNode {
    name: String,
    kubelet_port: u16,
    shutdown: watch::Sender<bool>,
}

impl SimNode {
    /// Registers node `name` and starts running the pods bound to it.
    ///
    /// # Errors
    /// When the certificate, the log endpoint or the registration fails.
    pub async fn start(
        client: Client,
        name: &str,
        dir: PathBuf,
        pki: &Pki,
        mode: NodeMode,
    ) -> Result<Self, NodeError> {
        Self::start_with(client, name, dir, pki, mode, false).await
    }

    /// Like [`SimNode::start`]; a `dedicated` node carries the `NoSchedule` taint
    /// [`DEDICATED_TAINT`], so only pods that name it in `spec.nodeName` run there. Fault tests use
    /// one so that losing it cannot disturb other tests' pods.
    ///
    /// # Errors
    /// When the certificate, the log endpoint or the registration fails.
    pub async fn start_with(
        client: Client,
        name: &str,
        dir: PathBuf,
        pki: &Pki,
        mode: NodeMode,
        dedicated: bool,
    ) -> Result<Self, NodeError> {
        let cert = pki.serving_cert(name, &["localhost", name], &[IpAddr::V4(Ipv4Addr::LOCALHOST)])?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let store = logs::LogStore::default();
        let addr = logs::serve(store.clone(), &cert.cert_pem, &cert.key_pem, shutdown_rx.clone())
            .await
            .map_err(NodeError::Serve)?;
        register(&client, name, addr.port(), dedicated)
            .await
            .map_err(|e| NodeError::Register(name.to_owned(), e))?;

        let (reachable_tx, reachable) = watch::channel(true);
        let shared = Arc::new(NodeShared {
            client: client.clone(),
            dir,
            rules: mode == NodeMode::Rules,
            logs: store,
            reachable,
        });
        tokio::spawn(heartbeat(
            client.clone(),
            name.to_owned(),
            addr.port(),
            shared.reachable.clone(),
            shutdown_rx.clone(),
        ));
        tokio::spawn(watch_self(
            client.clone(),
            name.to_owned(),
            reachable_tx,
            shutdown_rx.clone(),
        ));
        tokio::spawn(run_pods(shared, name.to_owned(), shutdown_rx));
        Ok(Self {
            name: name.to_owned(),
            kubelet_port: addr.port(),
            shutdown,
        })
    }

    /// The Node's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Port of the kubelet-style log endpoint.
    #[must_use]
    pub fn kubelet_port(&self) -> u16 {
        self.kubelet_port
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Partitions (`lost = true`) or reconnects a node, through its annotation.
///
/// # Errors
/// The API error of the patch.
pub async fn set_lost(client: &Client, node: &str, lost: bool) -> Result<(), kube::Error> {
    let value = if lost {
        json!("true")
    } else {
        serde_json::Value::Null
    };
    let patch = json!({"metadata": {"annotations": {LOST_ANNOTATION: value}}});
    Api::<Node>::all(client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Evicts a pod as node-pressure eviction would (phase Failed, reason Evicted).
///
/// # Errors
/// The API error of the patch.
pub async fn evict(client: &Client, namespace: &str, pod: &str, message: &str) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {pod::EVICT_ANNOTATION: message}}});
    Api::<Pod>::namespaced(client.clone(), namespace)
        .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The kubelet reports its own version; the simulated one claims the control plane's, which is
/// what a conformant node of this cluster would run. Read once: every heartbeat reports it.
static KUBELET_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "v{}",
        crate::controlplane::install::kubernetes_version()
            .unwrap_or_else(|_| crate::controlplane::install::KUBERNETES_VERSION.to_owned())
    )
});

fn node_status(port: u16) -> serde_json::Value {
    let now = status::now();
    let version = KUBELET_VERSION.as_str();
    let cond = |t: &str, s: &str, reason: &str| json!({"type": t, "status": s, "reason": reason, "lastHeartbeatTime": now, "lastTransitionTime": now});
    let capacity = json!({"cpu": "64", "memory": "256Gi", "pods": "10000", "ephemeral-storage": "1Ti"});
    json!({"status": {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            cond("Ready", "True", "KubeletReady"),
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "localhost"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": "testbed", "systemUUID": "testbed", "bootID": "testbed",
            "kernelVersion": "simulated", "osImage": "omjob-testbed simulated node",
            "containerRuntimeVersion": "sim://1", "kubeletVersion": version, "kubeProxyVersion": version,
            "operatingSystem": "linux", "architecture": "amd64"
        }
    }})
}

async fn register(client: &Client, name: &str, port: u16, dedicated: bool) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let taints = if dedicated {
        json!([{"key": DEDICATED_TAINT, "value": name, "effect": "NoSchedule"}])
    } else {
        json!([])
    };
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            NODE_LABEL: "true"
        }},
        "spec": {"taints": taints},
    }))
    .map_err(kube::Error::SerdeError)?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(node_status(port)))
        .await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_now()}
    }))
    .map_err(kube::Error::SerdeError)?;
    match leases.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn micro_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// Renews the Lease every second and the Ready condition every 5 s, while reachable.
async fn heartbeat(
    client: Client,
    name: String,
    port: u16,
    mut reachable: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut beats: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !*reachable.borrow_and_update() {
            continue;
        }
        let renew = json!({"spec": {"renewTime": micro_now(), "holderIdentity": name}});
        if let Err(e) = leases
            .patch(&name, &PatchParams::default(), &Patch::Merge(&renew))
            .await
        {
            tracing::debug!(node = %name, error = %e, "lease renewal failed");
        }
        if beats.is_multiple_of(5)
            && let Err(e) = nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(node_status(port)))
                .await
        {
            tracing::debug!(node = %name, error = %e, "node status update failed");
        }
        beats += 1;
    }
}

/// Follows the node's own object for the lost annotation.
async fn watch_self(
    client: Client,
    name: String,
    reachable: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let nodes: Api<Node> = Api::all(client);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(nodes, cfg).default_backoff().applied_objects();
    tokio::pin!(stream);
    loop {
        let next = tokio::select! {
            n = stream.try_next() => n,
            _ = shutdown.changed() => return,
        };
        match next {
            Ok(Some(node)) => {
                let lost = node
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(LOST_ANNOTATION))
                    .is_some_and(|v| v == "true");
                reachable.send_if_modified(|r| {
                    let changed = *r == lost;
                    *r = !lost;
                    changed
                });
            }
            Ok(None) => return,
            Err(e) => tracing::debug!(node = %name, error = %e, "node watch error"),
        }
    }
}

/// Watches the pods bound to this node and gives each its own runner task.
async fn run_pods(shared: Arc<NodeShared>, name: String, mut shutdown: watch::Receiver<bool>) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={name}"));
    let stream = watcher(pods, cfg).default_backoff();
    tokio::pin!(stream);
    // One entry per pod UID until the pod is deleted from the API. A runner that finished (it ran
    // the pod and issued the kubelet's final delete) keeps its entry: on 1.34 a Job's pod stays
    // after that delete until the Job controller drops its tracking finalizer, and the updates it
    // gets meanwhile must not start the pod again.
    let mut runners: HashMap<String, watch::Sender<PodUpdate>> = HashMap::new();
    // UIDs listed by the current (re)list; a runner whose pod is not among them was deleted while
    // the watch was down.
    let mut relisted: Option<std::collections::HashSet<String>> = None;
    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            _ = shutdown.changed() => return,
        };
        let Some(event) = event else { return };
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(node = %name, error = %e, "pod watch error");
                continue;
            }
        };
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let Some(uid) = pod.metadata.uid.clone() else {
                    continue;
                };
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(uid.clone());
                }
                if let Some(tx) = runners.get(&uid) {
                    let _ = tx.send(PodUpdate::Present(Arc::new(pod)));
                    continue;
                }
                let (tx, rx) = watch::channel(PodUpdate::Present(Arc::new(pod.clone())));
                if let Some(runner) = PodRunner::new(shared.clone(), &pod, rx) {
                    runners.insert(uid, tx);
                    tokio::spawn(runner.run());
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(tx) = pod.metadata.uid.as_ref().and_then(|u| runners.remove(u)) {
                    let _ = tx.send(PodUpdate::Gone);
                }
            }
            watcher::Event::Init => relisted = Some(std::collections::HashSet::new()),
            watcher::Event::InitDone => {
                if let Some(seen) = relisted.take() {
                    runners.retain(|uid, tx| {
                        let present = seen.contains(uid);
                        if !present {
                            let _ = tx.send(PodUpdate::Gone);
                        }
                        present
                    });
                }
            }
        }
    }
}
