//! Orkestra-compatible Katalogs: the Katalog model, Go templates with Orkestra's notes, the
//! checks behind `katalog check`, the child rendering behind `katalog render`, and the
//! [`runtime`] behind `katalog run`, which reconciles CRs on a cluster (see `docs/katalog.md`).
//!
//! Only [`runtime`] talks to a cluster. The offline data flow: [`load`] reads a file into [`model`] types
//! (reporting [`problem`]s found by [`decode`] and the checks, expanding [`motif`]s), and
//! [`render`] evaluates an entry's blocks against a CR with the [`template`] engine, whose
//! [`notes`] read the cluster only through a [`cluster::ClusterView`]. [`ui`] is the runtime's
//! control panel: HTML pages over the runtime's read-only state (see `docs/panel.md`).

pub mod cluster;
pub mod decode;
pub mod load;
pub mod model;
pub mod motif;
pub mod notes;
pub mod problem;
pub mod render;
pub mod runtime;
pub mod template;
pub mod ui;
