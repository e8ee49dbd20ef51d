//! The testbed: a real Kubernetes control plane on one machine, plus simulated nodes that run each
//! pod's containers as local processes. Integration tests, benchmarks and the demo all run on it.
//!
//! - [`browser`]: a headless Chromium driven over WebDriver, for the control panel tests.
//! - [`controlplane`]: installs (once) and launches etcd, kube-apiserver, kube-controller-manager
//!   and kube-scheduler on loopback.
//! - [`node`]: the simulated kubelet.
//! - [`Testbed`]: both together, as the CLI and the fixtures use them.
//! - [`fixture`]: one shared testbed per test binary and a fresh namespace per test.
//! - [`tools`]: test tools from package registries (Schemathesis), installed once into the cache.

pub mod browser;
pub mod controlplane;
pub mod fixture;
pub mod node;
pub mod process;
mod testbed;
pub mod tools;

pub use testbed::{Testbed, TestbedError, TestbedOptions};
