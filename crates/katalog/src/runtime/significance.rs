//! Which watch events are worth a reconcile. Without this filter every write wakes its CR again:
//! the runtime's own status patch, each status report of a ReplicaSet the CR owns, each
//! heartbeat of its pods' controller. `bench katalog` counted about ten passes per DataJob while
//! 1,000 were created, each a pass that changed nothing.
//!
//! A CR event counts when its generation (its spec), labels, annotations, finalizers or deletion
//! changed; its own status does not (the runtime writes it, and resync re-reads it anyway). A
//! child event counts when the child appeared, was deleted, or its spec, labels or annotations
//! changed (the generation; for kinds without one, such as ConfigMaps, any change), unless the
//! entry's templates read children's state (`.children`, `allReplicasReady`, `lookup`, …): then
//! every child event counts, since a status change can change what the CR renders.
//!
//! The caches are updated before this filter, so a skipped event is still in the cache the next
//! pass reads.

use std::{
    collections::{HashMap, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
};

use kube::{ResourceExt as _, api::DynamicObject, runtime::watcher::Event};

use crate::load::Entry;

/// What the template language can use to read a child's or another object's live state.
const STATE_READERS: [&str; 5] = ["children", "allReplicasReady", "resourceExists", "lookup", "get "];

/// Whether any of `entry`'s templates or conditions may read the live state of its children,
/// so that a child's status change must wake its CR. Read from the entry's full description
/// (motifs expanded): a false "yes" only costs passes, a false "no" would miss a change.
#[must_use]
pub fn reads_child_state(entry: &Entry) -> bool {
    let text = format!(
        "{:?}{:?}{:?}{:?}{:?}",
        entry.on_create, entry.on_reconcile, entry.on_delete, entry.status_fields, entry.validation
    );
    STATE_READERS.iter().any(|r| text.contains(r))
}

fn hash_of(parts: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// The part of a CR whose change is worth a pass.
fn cr_fingerprint(obj: &DynamicObject) -> u64 {
    hash_of((
        obj.metadata.generation,
        obj.labels(),
        obj.annotations(),
        obj.finalizers(),
        obj.metadata.deletion_timestamp.is_some(),
    ))
}

/// The part of a child whose change is worth waking its owner.
fn child_fingerprint(obj: &DynamicObject) -> u64 {
    let version = obj
        .metadata
        .generation
        .map_or_else(|| obj.resource_version(), |g| Some(g.to_string()));
    hash_of((
        version,
        obj.labels(),
        obj.annotations(),
        obj.metadata.deletion_timestamp.is_some(),
    ))
}

/// The last fingerprint per object (by uid) of one stream.
#[derive(Debug)]
pub struct Filter {
    fingerprint: fn(&DynamicObject) -> u64,
    /// Every event counts: nothing is remembered.
    all: bool,
    last: HashMap<String, u64>,
}

impl Filter {
    /// For an entry's CRs.
    #[must_use]
    pub fn crs() -> Self {
        Self {
            fingerprint: cr_fingerprint,
            all: false,
            last: HashMap::new(),
        }
    }

    /// For one child kind of `entry`.
    #[must_use]
    pub fn children(entry: &Entry) -> Self {
        Self {
            fingerprint: child_fingerprint,
            all: reads_child_state(entry),
            last: HashMap::new(),
        }
    }

    /// Whether `obj`, just applied to the cache, is worth a pass; remembers it.
    pub fn applied(&mut self, obj: &DynamicObject) -> bool {
        if self.all {
            return true;
        }
        let key = obj.uid().unwrap_or_else(|| obj.name_any());
        let now = (self.fingerprint)(obj);
        self.last.insert(key, now) != Some(now)
    }

    /// Forgets a deleted object; its deletion is always worth a pass.
    pub fn deleted(&mut self, obj: &DynamicObject) {
        self.last.remove(&obj.uid().unwrap_or_else(|| obj.name_any()));
    }

    /// Whether a watch event is worth a pass (init markers pass; the controller ignores them).
    pub fn keep(&mut self, event: &Event<DynamicObject>) -> bool {
        match event {
            Event::Apply(obj) | Event::InitApply(obj) => self.applied(obj),
            Event::Delete(obj) => {
                self.deleted(obj);
                true
            }
            Event::Init | Event::InitDone => true,
        }
    }
}

/// Drops the field-manager bookkeeping the runtime never reads; on a ReplicaSet it is a large
/// part of the object, and every cached child carries it.
pub fn strip(obj: &mut DynamicObject) {
    obj.managed_fields_mut().clear();
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: serde_json::Value) -> DynamicObject {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn cr(generation: i64, status: &str, finalizers: &[&str]) -> DynamicObject {
        obj(
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a", "uid": "u1",
            "generation": generation, "finalizers": finalizers}, "status": {"phase": status}}),
        )
    }

    #[test]
    fn a_cr_status_change_is_not_worth_a_pass_but_spec_and_finalizers_are() {
        let mut f = Filter::crs();
        assert!(f.applied(&cr(1, "", &[])), "first sight");
        assert!(!f.applied(&cr(1, "Running", &[])), "our own status write");
        assert!(f.applied(&cr(1, "Running", &["orkestra.orkspace.io/cleanup"])));
        assert!(
            f.applied(&cr(2, "Running", &["orkestra.orkspace.io/cleanup"])),
            "spec edit"
        );
        assert!(!f.applied(&cr(2, "Running", &["orkestra.orkspace.io/cleanup"])));
    }

    fn rs(generation: i64, ready: i64) -> DynamicObject {
        obj(
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "w", "uid": "u2",
            "generation": generation, "resourceVersion": format!("{ready}{generation}")},
            "status": {"readyReplicas": ready}}),
        )
    }

    #[test]
    fn a_child_status_report_wakes_the_cr_only_when_templates_read_child_state() {
        let mut quiet = Filter {
            fingerprint: child_fingerprint,
            all: false,
            last: HashMap::new(),
        };
        assert!(quiet.applied(&rs(1, 0)));
        assert!(!quiet.applied(&rs(1, 3)), "status report");
        assert!(quiet.applied(&rs(2, 3)), "someone edited the spec");
        quiet.deleted(&rs(2, 3));
        assert!(quiet.applied(&rs(2, 3)), "recreated after deletion");

        let cm = |rv: &str| {
            obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "uid": "u3", "resourceVersion": rv}}))
        };
        assert!(quiet.applied(&cm("1")));
        assert!(quiet.applied(&cm("2")), "no generation: any change counts");

        let mut reading = Filter {
            fingerprint: child_fingerprint,
            all: true,
            last: HashMap::new(),
        };
        assert!(reading.applied(&rs(1, 0)));
        assert!(reading.applied(&rs(1, 3)));
    }

    #[test]
    fn the_example_katalog_reads_no_child_state_and_a_children_template_does() {
        let engine = crate::template::Engine::default();
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/katalog/data-platform.yaml"
        );
        let loaded = crate::load::load(std::path::Path::new(dir), &engine);
        let entry = &loaded.entries[0];
        assert!(!reads_child_state(entry));
        let mut reading = entry.clone();
        reading.status_fields = serde_json::from_value(json!([
            {"path": "ready", "value": "{{ allReplicasReady .children.replicaSet }}"}
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(reads_child_state(&reading));
    }
}
