//! The body of `onCreate` / `onReconcile` / `onDelete`: resource lists keyed as in Orkestra's
//! HookTemplates type, and the per-kind resource entries.

use std::collections::BTreeMap;

use serde::{Deserialize, de::IgnoredAny};
use serde_json::Value;

use super::{
    condition::{Condition, ForEach},
    scalar::{GoDuration, Labels, Text},
};

/// Fields every resource entry has, whatever its kind.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    pub name: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub labels: &'a Labels,
    pub annotations: &'a Labels,
    pub reconcile: bool,
    pub once: bool,
    pub when: &'a [Condition],
    pub or: &'a [Condition],
    pub for_each: Option<&'a ForEach>,
}

/// Access to the common fields of a resource entry.
pub trait ResourceEntry {
    /// The common fields.
    fn common(&self) -> Common<'_>;
}

// serde's `flatten` does not work with `deny_unknown_fields`, so the common fields are repeated
// in every entry type by this macro instead.
macro_rules! resource_entry {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// Template; defaults to `<cr-name>-<suffix>`.
            pub name: Option<String>,
            /// Template; defaults to the CR's namespace.
            pub namespace: Option<String>,
            #[serde(default)]
            pub labels: Labels,
            #[serde(default)]
            pub annotations: Labels,
            /// On an `onCreate` entry: also update it on every reconcile.
            #[serde(default)]
            pub reconcile: bool,
            /// Never re-render an existing object (Secrets).
            #[serde(default)]
            pub once: bool,
            #[serde(default)]
            pub when: Vec<Condition>,
            #[serde(default, alias = "anyOf")]
            pub or: Vec<Condition>,
            pub for_each: Option<ForEach>,
            pub force_conflict: Option<bool>,
            pub sleep: Option<GoDuration>,
            $($(#[$fm])* pub $f: $t,)*
        }

        impl ResourceEntry for $name {
            fn common(&self) -> Common<'_> {
                Common {
                    name: self.name.as_deref(),
                    namespace: self.namespace.as_deref(),
                    labels: &self.labels,
                    annotations: &self.annotations,
                    reconcile: self.reconcile,
                    once: self.once,
                    when: &self.when,
                    or: &self.or,
                    for_each: self.for_each.as_ref(),
                }
            }
        }
    };
}

resource_entry!(
    /// `configMaps[]`.
    ConfigMapEntry {
        #[serde(default)]
        data: BTreeMap<String, Text>,
        from_config_map: Option<String>,
        from_namespace: Option<String>,
        #[serde(default)]
        to_namespaces: Vec<String>,
    }
);

resource_entry!(
    /// `secrets[]`.
    SecretEntry {
        #[serde(rename = "type")]
        secret_type: Option<String>,
        #[serde(default)]
        data: BTreeMap<String, Text>,
        from_secret: Option<String>,
        from_namespace: Option<String>,
        #[serde(default)]
        to_namespaces: Vec<String>,
        rotate_after: Option<GoDuration>,
    }
);

resource_entry!(
    /// `replicaSets[]` and `deployments[]`: one container named after the object.
    WorkloadEntry {
        image: Option<String>,
        replicas: Option<Text>,
        port: Option<Text>,
        protocol: Option<String>,
        env: Option<Value>,
        env_from: Option<Value>,
        resources: Option<Value>,
        service_account_name: Option<String>,
        image_pull_secrets: Option<Value>,
        node_selector: Option<Value>,
        volumes: Option<Value>,
        volume_mounts: Option<Value>,
        probes: Option<Value>,
        security_context: Option<Value>,
        pod_security: Option<Value>,
        rolling_update: Option<Value>,
        working_directory: Option<String>,
        /// Out of scope; accepted so such Katalogs load, reported by `check`.
        autoscale: Option<IgnoredAny>,
    }
);

resource_entry!(
    /// `services[]`.
    ServiceEntry {
        #[serde(rename = "type")]
        service_type: Option<String>,
        port: Option<Text>,
        target_port: Option<Text>,
        protocol: Option<String>,
        #[serde(default)]
        selector: BTreeMap<String, String>,
        headless: Option<bool>,
    }
);

resource_entry!(
    /// `serviceAccounts[]` and `namespaces[]`: nothing beyond the common fields.
    PlainEntry {}
);

resource_entry!(
    /// `jobs[]`.
    JobEntry {
        image: Option<String>,
        #[serde(default)]
        command: Vec<String>,
        #[serde(default)]
        args: Vec<String>,
        backoff_limit: Option<Text>,
    }
);

resource_entry!(
    /// `cronJobs[]`.
    CronJobEntry {
        schedule: Option<String>,
        image: Option<String>,
        #[serde(default)]
        command: Vec<String>,
        #[serde(default)]
        args: Vec<String>,
    }
);

resource_entry!(
    /// `custom[]`: any GVK.
    CustomEntry {
        api_version: Option<String>,
        kind: Option<String>,
        metadata: Option<Value>,
        spec: Option<Value>,
        data: Option<Value>,
    }
);

/// One group of an ordered `onDelete`: the objects deleted together, all gone before the next
/// group starts (§4.5 step 2). The spec names no shape for a group; this is ours.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteGroup {
    /// For messages; defaults to `group <n>` (1-based).
    pub name: Option<String>,
    /// The objects to delete.
    #[serde(default)]
    pub resources: Vec<DeleteRef>,
}

/// An object named by a deletion group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteRef {
    /// Defaults to the apiVersion the runtime knows for `kind`.
    pub api_version: Option<String>,
    /// `ConfigMap`, `ReplicaSet`, … (a kind the runtime builds).
    pub kind: String,
    /// Template.
    pub name: String,
    /// Template; defaults to the CR's namespace.
    pub namespace: Option<String>,
}

/// One lifecycle block. Kinds this slice cannot build yet are read (so the Katalog loads and
/// `check` can name them) and reported as unsupported.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookTemplates {
    #[serde(default)]
    pub namespaces: Vec<PlainEntry>,
    #[serde(default, alias = "serviceaccounts")]
    pub service_accounts: Vec<PlainEntry>,
    #[serde(default)]
    pub secrets: Vec<SecretEntry>,
    #[serde(default, alias = "configmaps")]
    pub config_maps: Vec<ConfigMapEntry>,
    #[serde(default)]
    pub deployments: Vec<WorkloadEntry>,
    #[serde(default, alias = "replicasets")]
    pub replica_sets: Vec<WorkloadEntry>,
    #[serde(default)]
    pub services: Vec<ServiceEntry>,
    #[serde(default)]
    pub jobs: Vec<JobEntry>,
    #[serde(default, alias = "cronjobs")]
    pub cron_jobs: Vec<CronJobEntry>,
    #[serde(default)]
    pub custom: Vec<CustomEntry>,

    #[serde(alias = "statefulsets")]
    pub stateful_sets: Option<IgnoredAny>,
    pub pods: Option<IgnoredAny>,
    pub ingresses: Option<IgnoredAny>,
    #[serde(alias = "persistentvolumes")]
    pub persistent_volumes: Option<IgnoredAny>,
    #[serde(alias = "persistentvolumeclaims")]
    pub persistent_volume_claims: Option<IgnoredAny>,
    pub hpa: Option<IgnoredAny>,
    pub pdb: Option<IgnoredAny>,
    pub roles: Option<IgnoredAny>,
    #[serde(alias = "rolebindings")]
    pub role_bindings: Option<IgnoredAny>,
    #[serde(alias = "clusterroles")]
    pub cluster_roles: Option<IgnoredAny>,
    #[serde(alias = "clusterrolebindings")]
    pub cluster_role_bindings: Option<IgnoredAny>,
    #[serde(alias = "limitranges")]
    pub limit_ranges: Option<IgnoredAny>,
    #[serde(alias = "resourcequotas")]
    pub resource_quotas: Option<IgnoredAny>,
    #[serde(alias = "networkpolicies")]
    pub network_policies: Option<IgnoredAny>,
    pub external: Option<IgnoredAny>,

    /// Gate for the whole block (AND).
    #[serde(default)]
    pub when: Vec<Condition>,
    /// Gate for the whole block (OR).
    #[serde(default, alias = "anyOf")]
    pub or: Vec<Condition>,
    /// Ordered deletion (`onDelete`): run `groups` one after another.
    pub ordered: Option<bool>,
    /// The deletion groups of an ordered `onDelete`, in order.
    #[serde(default)]
    pub groups: Vec<DeleteGroup>,
    /// Bound of the whole onDelete block (groups and Jobs), from the CR's deletion; default 5m.
    pub timeout: Option<GoDuration>,
    pub name: Option<String>,
    /// Motifs only: `resources.onCreate` goes to the CR's onCreate block.
    pub on_create: Option<Box<HookTemplates>>,
}

impl HookTemplates {
    /// YAML keys of kinds that are read but not built by this slice.
    pub fn unsupported_kinds(&self) -> Vec<&'static str> {
        [
            ("statefulSets", self.stateful_sets.is_some()),
            ("pods", self.pods.is_some()),
            ("ingresses", self.ingresses.is_some()),
            ("persistentVolumes", self.persistent_volumes.is_some()),
            ("persistentVolumeClaims", self.persistent_volume_claims.is_some()),
            ("hpa", self.hpa.is_some()),
            ("pdb", self.pdb.is_some()),
            ("roles", self.roles.is_some()),
            ("roleBindings", self.role_bindings.is_some()),
            ("clusterRoles", self.cluster_roles.is_some()),
            ("clusterRoleBindings", self.cluster_role_bindings.is_some()),
            ("limitRanges", self.limit_ranges.is_some()),
            ("resourceQuotas", self.resource_quotas.is_some()),
            ("networkPolicies", self.network_policies.is_some()),
            ("external", self.external.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, present)| present.then_some(k))
        .collect()
    }

    /// Appends another block's resources (motif expansion never replaces entries).
    pub fn append(&mut self, other: HookTemplates) {
        self.namespaces.extend(other.namespaces);
        self.service_accounts.extend(other.service_accounts);
        self.secrets.extend(other.secrets);
        self.config_maps.extend(other.config_maps);
        self.deployments.extend(other.deployments);
        self.replica_sets.extend(other.replica_sets);
        self.services.extend(other.services);
        self.jobs.extend(other.jobs);
        self.cron_jobs.extend(other.cron_jobs);
        self.custom.extend(other.custom);
    }

    /// Number of resource entries per kind name (`ConfigMap`), for reports.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        [
            ("Namespace", self.namespaces.len()),
            ("ServiceAccount", self.service_accounts.len()),
            ("Secret", self.secrets.len()),
            ("ConfigMap", self.config_maps.len()),
            ("Deployment", self.deployments.len()),
            ("ReplicaSet", self.replica_sets.len()),
            ("Service", self.services.len()),
            ("Job", self.jobs.len()),
            ("CronJob", self.cron_jobs.len()),
            ("Custom", self.custom.len()),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}
