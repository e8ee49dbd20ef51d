//! The child kinds the runtime builds, as API resources: what it watches, caches and writes.
//!
//! A fixed table rather than discovery, because render only builds these kinds; a Katalog's
//! `custom` objects would need discovery and are not handled yet.

use kube::{api::ApiResource, core::GroupVersionKind};

use crate::load::Entry;

/// Kind name (as in [`crate::model::hooks::HookTemplates::counts`]), group, version, plural,
/// namespaced.
const BUILT_IN: &[(&str, &str, &str, &str, bool)] = &[
    ("Namespace", "", "v1", "namespaces", false),
    ("ServiceAccount", "", "v1", "serviceaccounts", true),
    ("Secret", "", "v1", "secrets", true),
    ("ConfigMap", "", "v1", "configmaps", true),
    ("Deployment", "apps", "v1", "deployments", true),
    ("ReplicaSet", "apps", "v1", "replicasets", true),
    ("Service", "", "v1", "services", true),
    ("Job", "batch", "v1", "jobs", true),
    ("CronJob", "batch", "v1", "cronjobs", true),
];

/// One child kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildKind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// The built-in kind named `kind` (`ConfigMap`).
pub fn by_kind(kind: &str) -> Option<ChildKind> {
    BUILT_IN
        .iter()
        .find(|(k, ..)| *k == kind)
        .map(|&(kind, group, version, plural, namespaced)| ChildKind {
            resource: ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural),
            namespaced,
        })
}

/// The built-in kinds `entry` renders in its onCreate and onReconcile blocks, each once, in
/// table order: the kinds whose changes should wake the entry's controller.
pub fn used_by(entry: &Entry) -> Vec<ChildKind> {
    let used: Vec<&str> = [&entry.on_create, &entry.on_reconcile]
        .iter()
        .flat_map(|b| b.counts())
        .map(|(k, _)| k)
        .collect();
    BUILT_IN
        .iter()
        .filter(|(k, ..)| used.contains(k))
        .filter_map(|(k, ..)| by_kind(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_set_is_an_apps_v1_namespaced_resource() {
        let rs = by_kind("ReplicaSet").unwrap();
        assert_eq!(rs.resource.api_version, "apps/v1");
        assert_eq!(rs.resource.plural, "replicasets");
        assert!(rs.namespaced);
        assert!(!by_kind("Namespace").unwrap().namespaced);
        assert!(by_kind("Custom").is_none());
    }
}
