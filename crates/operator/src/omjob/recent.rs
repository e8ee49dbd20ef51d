//! Read-your-writes over the caches: the pods this process created and the OMJobs it wrote,
//! kept until the watches deliver them. A reconcile that starts right after a write (the
//! write's own watch event, a pod event racing it) would otherwise decide from a copy older
//! than its own last write and redo it: a second status patch, a create answered 409, a
//! finalizer patch with a stale resourceVersion.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::Resource;
use omjob_api::OMJob;

/// The newer of two copies of one object, by resourceVersion. The API server's are integers
/// that grow with every write (etcd revisions); one that does not parse is taken as older, so
/// an unusual server only costs the duplicate write this module saves.
fn newer(candidate: Option<&str>, than: Option<&str>) -> bool {
    let parse = |rv: Option<&str>| rv.and_then(|v| v.parse::<u64>().ok());
    match (parse(candidate), parse(than)) {
        (Some(c), Some(t)) => c > t,
        (Some(_), None) => true,
        _ => false,
    }
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Recent writes, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Recent {
    pods: Mutex<HashMap<String, Pod>>,
    omjobs: Mutex<HashMap<String, OMJob>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Recent {
    /// Remembers a pod this process created (the API server's answer).
    pub fn created_pod(&self, pod: &Pod) {
        let meta = pod.meta();
        if let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) {
            lock(&self.pods).insert(key(ns, name), pod.clone());
        }
    }

    /// The freshest copy of pod `name`: the cached one, unless a pod created here is newer.
    /// Once the cache holds the created pod (or a later version of it), the remembered copy
    /// is dropped.
    pub fn pod(&self, namespace: &str, name: &str, cached: Option<Pod>) -> Option<Pod> {
        let k = key(namespace, name);
        let mut pods = lock(&self.pods);
        let Some(created) = pods.get(&k) else {
            return cached;
        };
        let created_uid = created.metadata.uid.as_deref();
        match &cached {
            Some(c) if c.metadata.uid.as_deref() == created_uid => {
                pods.remove(&k);
                cached
            }
            _ => Some(created.clone()),
        }
    }

    /// The pod watch has delivered `pod` (created, changed or deleted): from now on the cache
    /// speaks for it, including when it was deleted before any reconcile looked.
    pub fn seen_pod(&self, meta: &ObjectMeta) {
        if let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) {
            let k = key(ns, name);
            let mut pods = lock(&self.pods);
            if pods.get(&k).is_some_and(|c| c.metadata.uid == meta.uid) {
                pods.remove(&k);
            }
        }
    }

    /// Forgets a pod (deleted here, or its OMJob is done with it).
    pub fn forget_pod(&self, namespace: &str, name: &str) {
        lock(&self.pods).remove(&key(namespace, name));
    }

    /// Remembers an OMJob as a write here returned it.
    pub fn wrote(&self, omjob: &OMJob) {
        let meta = omjob.meta();
        if let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) {
            lock(&self.omjobs).insert(key(ns, name), omjob.clone());
        }
    }

    /// The freshest copy of `cached`: the last write here, while the cache has not caught up
    /// with it (same UID, older resourceVersion).
    pub fn omjob(&self, cached: &OMJob) -> OMJob {
        let meta = cached.meta();
        let k = key(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        );
        let mut omjobs = lock(&self.omjobs);
        match omjobs.get(&k) {
            Some(w)
                if w.metadata.uid == cached.metadata.uid
                    && newer(
                        w.metadata.resource_version.as_deref(),
                        cached.metadata.resource_version.as_deref(),
                    ) =>
            {
                w.clone()
            }
            Some(_) => {
                omjobs.remove(&k);
                cached.clone()
            }
            None => cached.clone(),
        }
    }

    /// Forgets everything about OMJob `name` (it is finished with, or gone).
    pub fn forget_omjob(&self, namespace: &str, name: &str, pod_names: &[String]) {
        lock(&self.omjobs).remove(&key(namespace, name));
        let mut pods = lock(&self.pods);
        for p in pod_names {
            pods.remove(&key(namespace, p));
        }
    }

    /// Entries held: (pods, OMJobs).
    #[must_use]
    pub fn len(&self) -> (usize, usize) {
        (lock(&self.pods).len(), lock(&self.omjobs).len())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn omjob(uid: &str, rv: &str, phase: &str) -> OMJob {
        serde_json::from_value(json!({
            "apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
            "metadata": {"name": "j", "namespace": "ns", "uid": uid, "resourceVersion": rv},
            "spec": {"mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"]}},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn pod(uid: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "j-main", "namespace": "ns", "uid": uid}}))
            .unwrap()
    }

    fn phase(o: &OMJob) -> Option<omjob_api::Phase> {
        o.status.as_ref().and_then(|s| s.phase)
    }

    #[test]
    fn a_write_wins_over_an_older_cached_copy_until_the_cache_catches_up() {
        let r = Recent::default();
        r.wrote(&omjob("u", "20", "ExitHandlerRunning"));
        let stale = omjob("u", "19", "Running");
        assert_eq!(
            phase(&r.omjob(&stale)),
            Some(omjob_api::Phase::ExitHandlerRunning)
        );
        let caught_up = omjob("u", "20", "ExitHandlerRunning");
        assert_eq!(
            r.omjob(&caught_up).metadata.resource_version.as_deref(),
            Some("20")
        );
        assert_eq!(r.len().1, 0, "dropped once the cache has it");
        assert_eq!(
            phase(&r.omjob(&stale)),
            Some(omjob_api::Phase::Running),
            "nothing left to prefer"
        );
    }

    #[test]
    fn a_later_change_by_someone_else_and_another_object_of_the_same_name_win_over_the_write() {
        let r = Recent::default();
        r.wrote(&omjob("u", "20", "ExitHandlerRunning"));
        assert_eq!(
            r.omjob(&omjob("u", "25", "Failed"))
                .metadata
                .resource_version
                .as_deref(),
            Some("25")
        );
        r.wrote(&omjob("u", "20", "ExitHandlerRunning"));
        let recreated = omjob("v", "5", "Pending");
        assert_eq!(r.omjob(&recreated).metadata.uid.as_deref(), Some("v"));
        r.wrote(&omjob("u", "x", "Running"));
        assert_eq!(
            r.omjob(&omjob("u", "3", "Pending"))
                .metadata
                .resource_version
                .as_deref(),
            Some("3"),
            "unparsable counts as older"
        );
    }

    #[test]
    fn a_created_pod_is_seen_until_the_cache_has_it() {
        let r = Recent::default();
        assert!(r.pod("ns", "j-main", None).is_none());
        r.created_pod(&pod("p1"));
        assert_eq!(
            r.pod("ns", "j-main", None).and_then(|p| p.metadata.uid),
            Some("p1".into())
        );
        let old = pod("p0");
        assert_eq!(
            r.pod("ns", "j-main", Some(old)).and_then(|p| p.metadata.uid),
            Some("p1".into()),
            "a cached pod of an earlier OMJob of the same name does not hide ours"
        );
        assert_eq!(
            r.pod("ns", "j-main", Some(pod("p1")))
                .and_then(|p| p.metadata.uid),
            Some("p1".into())
        );
        assert_eq!(r.len().0, 0);
        r.created_pod(&pod("p2"));
        r.seen_pod(&pod("p0").metadata);
        assert_eq!(r.len().0, 1, "another pod's event does not speak for ours");
        r.seen_pod(&pod("p2").metadata);
        assert!(
            r.pod("ns", "j-main", None).is_none(),
            "watched, then deleted before any lookup"
        );
        r.created_pod(&pod("p3"));
        r.forget_omjob("ns", "j", &["j-main".into()]);
        assert_eq!(r.len(), (0, 0));
    }
}
