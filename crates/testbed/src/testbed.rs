//! A control plane plus its simulated nodes: what `testbed up` runs and what fixtures share.

use std::path::Path;

use crate::{
    controlplane::{ControlPlane, ControlPlaneError, ControlPlaneOptions},
    node::{NodeError, NodeMode, SimNode},
};

/// Errors while starting a testbed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// The control plane failed.
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    /// A node failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// What to start.
#[derive(Debug, Clone)]
pub struct TestbedOptions {
    /// Number of simulated nodes (`sim-node-0`, `sim-node-1`, ...).
    pub nodes: usize,
    /// Whether nodes run processes or finish pods by rule.
    pub mode: NodeMode,
    /// Control-plane tunables.
    pub control_plane: ControlPlaneOptions,
}

impl Default for TestbedOptions {
    fn default() -> Self {
        Self {
            nodes: 1,
            mode: NodeMode::Process,
            control_plane: ControlPlaneOptions::default(),
        }
    }
}

/// A running testbed. Its nodes' tasks run on the tokio runtime that started it, so that runtime
/// must outlive it.
#[derive(Debug)]
pub struct Testbed {
    control_plane: ControlPlane,
    nodes: Vec<SimNode>,
}

impl Testbed {
    /// Starts the control plane in `dir`, then the nodes; returns once all nodes are registered.
    ///
    /// # Errors
    /// When any component fails to start.
    pub async fn start(dir: &Path, opts: &TestbedOptions) -> Result<Self, TestbedError> {
        let control_plane = ControlPlane::start(dir, &opts.control_plane).await?;
        let client = control_plane.client().await?;
        let mut nodes = Vec::with_capacity(opts.nodes);
        for i in 0..opts.nodes {
            let name = format!("sim-node-{i}");
            let node_dir = control_plane.dir().join("nodes").join(&name);
            nodes
                .push(SimNode::start(client.clone(), &name, node_dir, control_plane.pki(), opts.mode).await?);
        }
        Ok(Self { control_plane, nodes })
    }

    /// The control plane.
    #[must_use]
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// The simulated nodes.
    #[must_use]
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }
}
