//! The panel's reads: lists across the watched namespaces, an object's events, a pod's log tail,
//! and how times and API errors are written on the pages.

use std::fmt::Debug;

use k8s_openapi::{
    NamespaceResourceScope, api::core::v1::Event, apimachinery::pkg::apis::meta::v1::ObjectMeta,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource,
    api::{ListParams, LogParams},
};
use omjob_panel::{
    Tone,
    instance::{EventRow, InstanceRow, LogTail, Status},
};
use serde::de::DeserializeOwned;

use crate::config::WatchNamespaces;

/// How many log lines a stage shows.
pub const LOG_LINES: i64 = 20;
/// How many events an instance page shows.
pub const EVENTS: usize = 15;

/// The status shown for an object that does not decode (it is listed, not dropped).
#[must_use]
pub fn invalid_spec() -> Status {
    Status {
        label: "InvalidSpec".to_owned(),
        tone: Tone::Bad,
    }
}

/// An instance-list row for the object with `meta`.
#[must_use]
pub fn instance_row(meta: &ObjectMeta, status: Status, summary: String) -> InstanceRow {
    InstanceRow {
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
        status,
        summary,
        created: meta
            .creation_timestamp
            .as_ref()
            .map(|t| time(t.0))
            .unwrap_or_default(),
    }
}

/// Every `K` in the watched namespaces.
///
/// # Errors
/// The first list the API server refuses.
pub async fn list<K>(client: &Client, namespaces: &WatchNamespaces) -> Result<Vec<K>, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let lp = ListParams::default();
    match namespaces {
        WatchNamespaces::All => Ok(Api::<K>::all(client.clone()).list(&lp).await?.items),
        WatchNamespaces::Only(list) => {
            let mut all = Vec::new();
            for ns in list {
                all.extend(Api::<K>::namespaced(client.clone(), ns).list(&lp).await?.items);
            }
            Ok(all)
        }
    }
}

/// Whether `ns` is one the operator watches (the panel reads nothing else).
#[must_use]
pub fn watched(namespaces: &WatchNamespaces, ns: &str) -> bool {
    match namespaces {
        WatchNamespaces::All => true,
        WatchNamespaces::Only(list) => list.iter().any(|n| n == ns),
    }
}

/// `namespaces` as the pages say it.
#[must_use]
pub fn scope(namespaces: &WatchNamespaces) -> String {
    match namespaces {
        WatchNamespaces::All => "all namespaces".to_owned(),
        WatchNamespaces::Only(list) if list.len() == 1 => format!("namespace {}", list.join("")),
        WatchNamespaces::Only(list) => format!("namespaces {}", list.join(", ")),
    }
}

/// An API error in a few words: the API server's reason and message, or the client's error.
#[must_use]
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.reason),
        other => other.to_string(),
    }
}

/// `t` in UTC, to the second.
#[must_use]
pub fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The events about the `kind` named `name` in `ns`, newest first.
///
/// # Errors
/// The API server refused the list (the operator's role may not allow it).
pub async fn events(client: &Client, ns: &str, kind: &str, name: &str) -> Result<Vec<EventRow>, kube::Error> {
    let lp = ListParams::default().fields(&format!("involvedObject.kind={kind},involvedObject.name={name}"));
    let mut items = Api::<Event>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    items.sort_by_key(|e| std::cmp::Reverse(when(e)));
    Ok(items
        .iter()
        .take(EVENTS)
        .map(|e| EventRow {
            time: when(e).map(time).unwrap_or_default(),
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
        })
        .collect())
}

/// The last [`LOG_LINES`] lines of `pod`'s log, or why they cannot be read.
pub async fn log_tail(client: &Client, ns: &str, pod: &str) -> LogTail {
    let lp = LogParams {
        tail_lines: Some(LOG_LINES),
        ..LogParams::default()
    };
    match Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), ns)
        .logs(pod, &lp)
        .await
    {
        Ok(text) => LogTail::Lines(text.lines().map(str::to_owned).collect()),
        Err(e) => LogTail::Unavailable(describe(&e)),
    }
}
