//! The runtime's answer to [`ClusterView`]: the reflector caches of the child kinds an entry
//! watches. Templates (`resourceExists`, `lookup`) and `.children` in status fields read them,
//! so a reconcile does not issue a GET per lookup.
//!
//! # Caveats
//! Only the watched kinds are known, and only objects carrying the managed label (the watches
//! are filtered by it). Anything else reads as absent.

use std::collections::HashMap;

use kube::{
    api::{ApiResource, DynamicObject},
    runtime::reflector::{ObjectRef as CacheKey, Store},
};
use serde_json::Value;

use crate::cluster::{ClusterView, ObjectRef};

/// Reflector stores by `(apiVersion, kind)`.
#[derive(Clone, Default)]
pub struct CacheView {
    stores: HashMap<(String, String), (ApiResource, Store<DynamicObject>)>,
}

impl std::fmt::Debug for CacheView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheView")
            .field("kinds", &self.stores.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CacheView {
    /// Adds the store for `resource`.
    pub fn insert(&mut self, resource: ApiResource, store: Store<DynamicObject>) {
        self.stores.insert(
            (resource.api_version.clone(), resource.kind.clone()),
            (resource, store),
        );
    }

    /// Whether `(api_version, kind)` is cached at all.
    pub fn knows(&self, api_version: &str, kind: &str) -> bool {
        self.stores
            .contains_key(&(api_version.to_owned(), kind.to_owned()))
    }
}

impl ClusterView for CacheView {
    fn get(&self, object: &ObjectRef) -> Option<Value> {
        let (resource, store) = self
            .stores
            .get(&(object.api_version.clone(), object.kind.clone()))?;
        let mut key = CacheKey::new_with(&object.name, resource.clone());
        if let Some(ns) = &object.namespace {
            key = key.within(ns);
        }
        let found = store.get(&key)?;
        let mut value = serde_json::to_value(found.as_ref()).ok()?;
        // Cached objects may lack their type meta; templates and status fields expect it.
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(object.api_version.clone()));
            map.insert("kind".into(), Value::String(object.kind.clone()));
        }
        Some(value)
    }
}
