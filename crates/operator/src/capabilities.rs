//! What the cluster lets this operator do and keep: permissions probed once at start (node
//! reads, `*/finalizers` for `blockOwnerDeletion`) and what the installed CRDs keep of a status
//! write (learned from the first write's answer). OpenMetadata's Helm chart grants less than
//! this project's own RBAC and installs CRDs without the additive status fields; each gap has a
//! designed behaviour instead of an error on every reconcile.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU8, Ordering},
};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::{Api, Client, api::PostParams};

/// Whether the installed CRD keeps the additive status fields, as far as is known.
const UNKNOWN: u8 = 0;
const KEPT: u8 = 1;
const PRUNED: u8 = 2;

#[derive(Debug)]
struct Inner {
    nodes_readable: AtomicBool,
    nodes_watchable: AtomicBool,
    block_omjob_owner: AtomicBool,
    block_cron_owner: AtomicBool,
    omjob_additive_status: AtomicU8,
    cron_additive_status: AtomicU8,
}

/// Shared, cheap to clone. The default assumes node reads work (a 403 turns them off, see
/// [`Capabilities::node_read_forbidden`]) and sets no `blockOwnerDeletion` (it needs a
/// permission that only [`probe`] can confirm).
#[derive(Debug, Clone)]
pub struct Capabilities(Arc<Inner>);

impl Default for Capabilities {
    fn default() -> Self {
        Self(Arc::new(Inner {
            nodes_readable: AtomicBool::new(true),
            nodes_watchable: AtomicBool::new(true),
            block_omjob_owner: AtomicBool::new(false),
            block_cron_owner: AtomicBool::new(false),
            omjob_additive_status: AtomicU8::new(UNKNOWN),
            cron_additive_status: AtomicU8::new(UNKNOWN),
        }))
    }
}

/// Which status schema a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// OMJob status (`reason`, `exitHandlerAttempts`, `conditions`...).
    OMJob,
    /// CronOMJob status (`active`, `lastSuccessfulTime`).
    CronOMJob,
}

impl Capabilities {
    /// Whether Node objects may be listed and watched, so that they can be cached instead of
    /// read one by one.
    #[must_use]
    pub fn nodes_watchable(&self) -> bool {
        self.nodes_readable() && self.0.nodes_watchable.load(Ordering::Relaxed)
    }

    /// Whether Node objects may be read (lost-node detection from the node's Ready condition).
    #[must_use]
    pub fn nodes_readable(&self) -> bool {
        self.0.nodes_readable.load(Ordering::Relaxed)
    }

    /// Records that a node read was refused with 403. Returns true only the first time, so the
    /// caller logs the change once.
    pub fn node_read_forbidden(&self) -> bool {
        self.0.nodes_readable.swap(false, Ordering::Relaxed)
    }

    /// Whether owner references to OMJobs (on pods) may set `blockOwnerDeletion`.
    #[must_use]
    pub fn block_omjob_owner(&self) -> bool {
        self.0.block_omjob_owner.load(Ordering::Relaxed)
    }

    /// Whether owner references to CronOMJobs (on spawned OMJobs) may set `blockOwnerDeletion`.
    #[must_use]
    pub fn block_cron_owner(&self) -> bool {
        self.0.block_cron_owner.load(Ordering::Relaxed)
    }

    /// Sets both `blockOwnerDeletion` permissions (what [`probe`] found).
    pub fn set_block_owner(&self, omjobs: bool, cronomjobs: bool) {
        self.0.block_omjob_owner.store(omjobs, Ordering::Relaxed);
        self.0.block_cron_owner.store(cronomjobs, Ordering::Relaxed);
    }

    fn additive(&self, kind: StatusKind) -> &AtomicU8 {
        match kind {
            StatusKind::OMJob => &self.0.omjob_additive_status,
            StatusKind::CronOMJob => &self.0.cron_additive_status,
        }
    }

    /// Whether the CRD keeps the additive status fields. Until a write has shown otherwise they
    /// are assumed kept: the first write sends them and its answer settles the question.
    #[must_use]
    pub fn additive_status_kept(&self, kind: StatusKind) -> bool {
        self.additive(kind).load(Ordering::Relaxed) != PRUNED
    }

    /// Whether a status write's answer has shown that the CRD keeps the additive status fields
    /// (not merely that nothing has shown otherwise yet).
    #[must_use]
    pub fn additive_status_shown_kept(&self, kind: StatusKind) -> bool {
        self.additive(kind).load(Ordering::Relaxed) == KEPT
    }

    /// Records what a status write's answer showed. Returns true when this changed what was
    /// known to "pruned", so the caller logs it once.
    pub fn learn_additive_status(&self, kind: StatusKind, kept: bool) -> bool {
        let new = if kept { KEPT } else { PRUNED };
        let old = self.additive(kind).swap(new, Ordering::Relaxed);
        old != new && !kept
    }
}

/// Asks the API server whether this identity may `verb` `resource` (cluster-wide).
async fn allowed(
    client: &Client,
    group: &str,
    resource: &str,
    subresource: Option<&str>,
    verb: &str,
) -> Option<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource: subresource.map(str::to_owned),
                verb: Some(verb.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    match Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
    {
        Ok(r) => r.status.map(|s| s.allowed),
        Err(e) => {
            tracing::warn!(resource, verb, error = %e, "could not ask the API server what this operator may do");
            None
        }
    }
}

/// Probes, once at start, the permissions this operator can do without, and logs each missing
/// one once with what it costs and what to grant. Every review is a `SelfSubjectAccessReview`,
/// which every authenticated identity may create. A review that fails is treated as "not
/// permitted" for `blockOwnerDeletion` (leaving it out is always accepted) and as "permitted"
/// for node reads (a real 403 later still switches them off).
pub async fn probe(client: &Client) -> Capabilities {
    let caps = Capabilities::default();
    let group = omjob_api::GROUP;
    if allowed(client, "", "nodes", None, "get").await == Some(false) {
        caps.node_read_forbidden();
        tracing::warn!(
            "nodes get is not permitted: a lost node is judged from the pod's own conditions \
             (Ready=False set by the node lifecycle controller, DisruptionTarget from the taint \
             manager) instead of the node's Ready condition; grant `get` on `nodes` (a \
             ClusterRole) to use the node's heartbeat"
        );
    }
    let list = allowed(client, "", "nodes", None, "list").await;
    let watch = allowed(client, "", "nodes", None, "watch").await;
    if list == Some(false) || watch == Some(false) {
        caps.0.nodes_watchable.store(false, Ordering::Relaxed);
        tracing::info!(
            "nodes list/watch is not permitted: nodes are read one at a time, when a running pod is reconciled \
             (grant `list` and `watch` on `nodes` to cache them)"
        );
    }
    let omjobs = allowed(client, group, "omjobs", Some("finalizers"), "update").await == Some(true);
    let crons = allowed(client, group, "cronomjobs", Some("finalizers"), "update").await == Some(true);
    caps.set_block_owner(omjobs, crons);
    if !omjobs || !crons {
        tracing::warn!(
            omjobs_finalizers = omjobs,
            cronomjobs_finalizers = crons,
            "owner references are written without blockOwnerDeletion where */finalizers update \
             is not permitted (foreground deletion of the owner then does not wait for them); \
             grant `update` on `omjobs/finalizers` and `cronomjobs/finalizers` to keep it"
        );
    }
    if allowed(client, "", "events", None, "create").await == Some(false) {
        tracing::warn!(
            "core events create is not permitted: no Events will be written; grant `create` and `patch` on `events` (core group)"
        );
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_403_is_reported_once_and_sticks() {
        let c = Capabilities::default();
        assert!(c.nodes_readable());
        assert!(c.node_read_forbidden());
        assert!(!c.node_read_forbidden());
        assert!(!c.nodes_readable());
    }

    #[test]
    fn additive_status_is_assumed_kept_until_a_write_shows_it_pruned() {
        let c = Capabilities::default();
        assert!(c.additive_status_kept(StatusKind::OMJob));
        assert!(
            !c.additive_status_shown_kept(StatusKind::OMJob),
            "assumed, not shown"
        );
        assert!(c.learn_additive_status(StatusKind::OMJob, false));
        assert!(!c.learn_additive_status(StatusKind::OMJob, false), "logged once");
        assert!(!c.additive_status_kept(StatusKind::OMJob));
        assert!(
            c.additive_status_kept(StatusKind::CronOMJob),
            "the kinds are separate"
        );
        assert!(!c.learn_additive_status(StatusKind::OMJob, true));
        assert!(c.additive_status_kept(StatusKind::OMJob));
        assert!(c.additive_status_shown_kept(StatusKind::OMJob));
    }
}
