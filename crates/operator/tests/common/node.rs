//! A simulated node of one test's own, so that a test can label, taint or partition a node
//! without the other tests of its binary (which share `sim-node-0`) ever seeing the change.

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use omjob_testbed::{
    controlplane::client_from_kubeconfig,
    fixture,
    node::{NodeMode, SimNode},
};
use serde_json::{Value, json};

/// A process-mode node that only this test's pods can land on (it starts with the
/// `NoSchedule` taint [`omjob_testbed::node::DEDICATED_TAINT`]). Dropping it, the test passed or
/// not, stops the node and deletes its Node object.
pub struct OwnNode {
    name: String,
    sim: Option<SimNode>,
    _dir: tempfile::TempDir,
}

impl OwnNode {
    /// Registers node `name` and runs the pods bound to it.
    pub async fn start(admin: &Client, name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = fixture::shared().testbed().control_plane().pki().clone();
        let sim = SimNode::start_with(
            admin.clone(),
            name,
            dir.path().to_owned(),
            &pki,
            NodeMode::Process,
            true,
        )
        .await
        .unwrap_or_else(|e| panic!("node {name} did not start: {e}"));
        Self {
            name: name.to_owned(),
            sim: Some(sim),
            _dir: dir,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds `labels` to the node and replaces its taints with `taints` (a list of Taint objects).
    pub async fn set_labels_and_taints(&self, admin: &Client, labels: Value, taints: Value) {
        let patch = json!({"metadata": {"labels": labels}, "spec": {"taints": taints}});
        Api::<Node>::all(admin.clone())
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("relabel node {}: {e}", self.name));
    }
}

impl Drop for OwnNode {
    fn drop(&mut self) {
        drop(self.sim.take());
        // The test's runtime may be unwinding or shutting down: delete from a thread of its own.
        let name = self.name.clone();
        let kubeconfig = fixture::shared().kubeconfig();
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let client = client_from_kubeconfig(&kubeconfig).await.ok()?;
                Api::<Node>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(_))) {
            eprintln!("could not delete node {}", self.name);
        }
    }
}
