//! Failure diagnostics of a run: its pod's description, the last 500 lines of its main
//! container's log and the pod's recent events, in the shape of `exit_handler.py` (reference §7).

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::{
    Api, Client, ResourceExt as _,
    api::{ListParams, LogParams},
};
use serde::{Deserialize, Serialize};

/// Log lines kept.
pub const TAIL_LINES: i64 = 500;
/// Events kept.
const EVENTS: usize = 10;

/// What is known about a failed run's pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostics {
    /// The pod.
    pub pod: String,
    /// `Pod: …`, `Status: …`, container states, as the exit handler writes them.
    pub description: String,
    /// The last 500 log lines of the main container.
    pub log_tail: String,
    /// Recent events, oldest first, as `<time> - <type>: <reason>\n    <message>`.
    pub events: Vec<String>,
}

/// The exit handler's pod description.
#[must_use]
pub fn describe(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let mut out = format!(
        "Pod: {}\nNamespace: {}\nStatus: {}\n",
        pod.name_any(),
        pod.namespace().unwrap_or_default(),
        status.phase.as_deref().unwrap_or("Unknown")
    );
    if let Some(r) = &status.reason {
        out.push_str(&format!("Reason: {r}\n"));
    }
    if let Some(m) = &status.message {
        out.push_str(&format!("Message: {m}\n"));
    }
    out.push_str("Container Statuses:\n");
    for c in status.container_statuses.unwrap_or_default() {
        out.push_str(&format!(
            "  {}: Ready={}, RestartCount={}\n",
            c.name, c.ready, c.restart_count
        ));
        let state = c.state.unwrap_or_default();
        if let Some(w) = state.waiting {
            out.push_str(&format!(
                "    State: Waiting - {}\n",
                w.reason.unwrap_or_default()
            ));
        } else if let Some(r) = state.running {
            let started = r.started_at.map(|t| t.0.to_string()).unwrap_or_default();
            out.push_str(&format!("    State: Running - Started: {started}\n"));
        } else if let Some(t) = state.terminated {
            out.push_str(&format!(
                "    State: Terminated - Reason: {}, ExitCode: {}\n",
                t.reason.unwrap_or_default(),
                t.exit_code
            ));
        }
    }
    out
}

/// The main container of a pod: `main` if present, else the first.
#[must_use]
pub fn main_container(pod: &Pod) -> Option<String> {
    let containers = &pod.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == "main")
        .or_else(|| containers.first())
        .map(|c| c.name.clone())
}

/// When an event happened: its last or first timestamp, or (for events.k8s.io events) its
/// event time.
fn event_time(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .or(e.first_timestamp.as_ref())
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
}

/// Collects diagnostics of `pod` through `client` (the service's, which retries transient
/// failures). Each part is fault-tolerant: a part that cannot be read says why instead of
/// failing the whole.
pub async fn collect(client: &Client, namespace: &str, pod: &Pod) -> Diagnostics {
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = LogParams {
        container: main_container(pod),
        tail_lines: Some(TAIL_LINES),
        ..LogParams::default()
    };
    let log_tail = match pods.logs(&name, &lp).await {
        Ok(l) => l,
        Err(e) => format!("Unable to fetch logs: {e}"),
    };
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!("involvedObject.name={name}");
    let lp = ListParams::default().fields(&selector);
    let events = match events.list(&lp).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(event_time);
            let skip = items.len().saturating_sub(EVENTS);
            items
                .into_iter()
                .skip(skip)
                .map(|e| {
                    let when = event_time(&e).map(|t| t.to_string()).unwrap_or_default();
                    format!(
                        "{when} - {}: {}\n    {}",
                        e.type_.unwrap_or_default(),
                        e.reason.unwrap_or_default(),
                        e.message.unwrap_or_default()
                    )
                })
                .collect()
        }
        Err(e) => vec![format!(
            "Unable to fetch events ({e}). Make sure the service account has 'events' list permission."
        )],
    };
    Diagnostics {
        pod: name,
        description: describe(pod),
        log_tail,
        events,
    }
}
