//! What templates may read from the cluster. Offline commands answer from a fixture or "absent";
//! the runtime will answer from its informer caches through the same trait.

use std::fmt;

use serde_json::Value;

/// A reference to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Read-only lookup of cluster objects for the notes that need them (`resourceExists`, `lookup`,
/// `allReplicasReady` with a reference).
pub trait ClusterView: Send + Sync + fmt::Debug {
    /// The object, or `None` when it does not exist (or is not known).
    fn get(&self, object: &ObjectRef) -> Option<Value>;
}

/// A cluster in which nothing exists: what `katalog render` assumes without `--cluster`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Absent;

impl ClusterView for Absent {
    fn get(&self, _: &ObjectRef) -> Option<Value> {
        None
    }
}

/// A fixed set of objects, e.g. read from a YAML file of documents.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    objects: Vec<Value>,
}

impl Fixture {
    /// A fixture holding these objects.
    pub fn new(objects: Vec<Value>) -> Self {
        Self { objects }
    }
}

impl ClusterView for Fixture {
    fn get(&self, r: &ObjectRef) -> Option<Value> {
        self.objects
            .iter()
            .find(|o| {
                let meta = &o["metadata"];
                o["apiVersion"].as_str() == Some(r.api_version.as_str())
                    && o["kind"].as_str() == Some(r.kind.as_str())
                    && meta["name"].as_str() == Some(r.name.as_str())
                    && meta["namespace"].as_str() == r.namespace.as_deref()
            })
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fixture_matches_on_api_version_kind_namespace_and_name() {
        let f = Fixture::new(vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns"}})]);
        let mut r = ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: "a".into(),
        };
        assert!(f.get(&r).is_some());
        r.namespace = Some("other".into());
        assert!(f.get(&r).is_none());
        assert!(Absent.get(&r).is_none());
    }
}
