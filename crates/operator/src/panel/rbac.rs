//! The Access Control section: the ClusterRole in `deploy/rbac/`, compiled in and parsed, so the
//! table shows exactly what is deployed rather than a copy that could drift.

use k8s_openapi::api::rbac::v1::ClusterRole;
use omjob_panel::crd_page::{AccessControl, RbacRule};

/// `deploy/rbac/clusterrole.yaml`: the ClusterRole, then the leader-election Role.
pub const CLUSTER_ROLE_YAML: &str = include_str!("../../../../deploy/rbac/clusterrole.yaml");

/// The operator's ClusterRole as an Access Control table, or `None` if the embedded file does
/// not hold one (a build from a broken tree; the section is then left out).
#[must_use]
pub fn access_control() -> Option<AccessControl> {
    let first = CLUSTER_ROLE_YAML.split("\n---\n").next()?;
    let role: ClusterRole = serde_yaml_ng::from_str(first).ok()?;
    let name = role.metadata.name.clone().unwrap_or_default();
    let rules = role
        .rules
        .unwrap_or_default()
        .into_iter()
        .map(|r| RbacRule {
            api_groups: r.api_groups.unwrap_or_default(),
            resources: r.resources.unwrap_or_default(),
            verbs: r.verbs,
        })
        .collect();
    Some(AccessControl {
        source: Some(format!("ClusterRole {name}, from deploy/rbac/clusterrole.yaml")),
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_cluster_role_is_the_table() {
        let access = access_control().unwrap();
        assert_eq!(
            access.source.as_deref(),
            Some("ClusterRole omjob-operator, from deploy/rbac/clusterrole.yaml")
        );
        let first = &access.rules[0];
        assert_eq!(first.api_groups, ["pipelines.openmetadata.org"]);
        assert_eq!(first.resources, ["omjobs", "cronomjobs"]);
        assert!(
            access
                .rules
                .iter()
                .any(|r| r.api_groups == [""] && r.resources == ["pods"])
        );
        assert!(access.summary().contains("1 pods"));
    }
}
