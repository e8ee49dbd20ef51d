//! Orkestra-compatible Katalogs, offline: the Katalog model, Go templates with Orkestra's notes,
//! the checks behind `katalog check` and the child rendering behind `katalog render`.
//!
//! Nothing here talks to a cluster; the generic reconciler that will run Katalogs is not built
//! yet (see `docs/katalog.md`). The data flow: [`load`] reads a file into [`model`] types
//! (reporting [`problem`]s found by [`decode`] and the checks, expanding [`motif`]s), and
//! [`render`] evaluates an entry's blocks against a CR with the [`template`] engine, whose
//! [`notes`] read the cluster only through a [`cluster::ClusterView`].

pub mod cluster;
pub mod decode;
pub mod load;
pub mod model;
pub mod motif;
pub mod notes;
pub mod problem;
pub mod render;
pub mod template;
