//! Kubernetes Events as core/v1 `Event` objects, as the Java operator writes them (reference
//! §5.1): `source.component: omjob-operator`, the object's labels copied, first and last
//! timestamp the time of the event. OpenMetadata's chart grants `create` on core `events`
//! only, not on `events.k8s.io` (which kube-runtime's recorder uses), so this is the one
//! path every RBAC this operator runs under allows.
//!
//! Every reason is a constant in [`reason`], and every event goes through one [`Publisher`]: a
//! queue drained by a task of its own, so that no reconcile waits for an event's round trip
//! (least of all the one between a main pod's end and its exit pod's creation). Events are
//! best effort: nothing decides from them, so a failed write is logged and a full queue drops
//! the newest event with a warning rather than slowing the reconciles down.

use std::{collections::BTreeMap, sync::Arc};

use futures::StreamExt as _;
use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// `source.component` and `reportingComponent` of every event.
pub const COMPONENT: &str = "omjob-operator";

/// The reasons of every event the operator writes (the Java operator's names where it has the
/// event, Kubernetes' CronJob controller's for the schedule's).
pub mod reason {
    /// The main pod was created.
    pub const MAIN_POD_CREATED: &str = "MainPodCreated";
    /// The main pod ended (Warning when it failed).
    pub const MAIN_POD_COMPLETED: &str = "MainPodCompleted";
    /// The exit-handler pod was created.
    pub const EXIT_HANDLER_CREATED: &str = "ExitHandlerCreated";
    /// An exit-handler pod was lost before it finished and another attempt starts.
    pub const EXIT_HANDLER_LOST: &str = "ExitHandlerLost";
    /// The run succeeded.
    pub const OMJOB_COMPLETED: &str = "OMJobCompleted";
    /// The run failed.
    pub const OMJOB_FAILED: &str = "OMJobFailed";
    /// A pod could not be created for good.
    pub const RECONCILIATION_ERROR: &str = "ReconciliationError";
    /// A finished run's pods were deleted after its TTL.
    pub const RESOURCES_CLEANED_UP: &str = "ResourcesCleanedUp";
    /// An object does not decode into its type.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A CronOMJob created the run of a slot.
    pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
    /// A CronOMJob could not create the run of a slot.
    pub const FAILED_CREATE: &str = "FailedCreate";
    /// A CronOMJob deleted a run (history limit, or Replace).
    pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
    /// A CronOMJob saw one of its runs finish.
    pub const SAW_COMPLETED_JOB: &str = "SawCompletedJob";
    /// A CronOMJob missed more slots than it can tell apart.
    pub const TOO_MANY_MISSED_TIMES: &str = "TooManyMissedTimes";
}

/// What the operator was doing when it wrote an event (`action` of the Event).
pub mod action {
    /// Reconciling an OMJob.
    pub const RECONCILE: &str = "Reconcile";
    /// Running a CronOMJob's schedule.
    pub const SCHEDULE: &str = "Schedule";
    /// Decoding an object.
    pub const DECODE: &str = "Decode";
}

/// One event to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// CamelCase reason, one of [`reason`].
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// What the operator was doing, one of [`action`].
    pub action: &'static str,
}

/// The Event object for `note` about `object` at `now`.
///
/// The name is the object's name and 16 random hex digits, so two events never collide: not
/// in the same second (as the Java operator's per-second names did), and not under an
/// injected clock that stands still (the timestamps come from it, the name does not).
#[must_use]
pub fn build(
    object: &ObjectReference,
    labels: Option<&BTreeMap<String, String>>,
    note: &Note,
    now: Timestamp,
) -> Event {
    let name = object.name.clone().unwrap_or_default();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{}", &unique[..16])),
            namespace: object.namespace.clone(),
            labels: labels.filter(|l| !l.is_empty()).cloned(),
            ..ObjectMeta::default()
        },
        involved_object: object.clone(),
        reason: Some(note.reason.to_owned()),
        message: Some(note.message.clone()),
        type_: Some(if note.warning { "Warning" } else { "Normal" }.to_owned()),
        source: Some(EventSource {
            component: Some(COMPONENT.to_owned()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.to_owned()),
        action: Some(note.action.to_owned()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        ..Event::default()
    }
}

/// Events queued at most; beyond it the newest are dropped (and logged).
pub const QUEUE_CAPACITY: usize = 10_000;
/// Event writes in flight at once.
const WRITERS: usize = 4;

/// The one way events leave the operator: [`Publisher::publish`] queues, a task writes.
#[derive(Debug, Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// A publisher writing through `client`, and the task that drains its queue. The task ends
    /// once every clone of the publisher is dropped and the queue is written out.
    #[must_use]
    pub fn start(client: Client, metrics: Arc<Metrics>) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel::<Event>(QUEUE_CAPACITY);
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        let task = tokio::spawn(stream.for_each_concurrent(WRITERS, move |event| {
            let client = client.clone();
            async move { write(&client, &event).await }
        }));
        (Self { queue, metrics }, task)
    }

    /// Queues `note` about `object`, stamped `now`; never waits.
    pub fn publish(
        &self,
        object: &ObjectReference,
        labels: Option<&BTreeMap<String, String>>,
        note: &Note,
        now: Timestamp,
    ) {
        let event = build(object, labels, note, now);
        if let Err(e) = self.queue.try_send(event) {
            self.metrics.event_dropped();
            tracing::warn!(
                kind = object.kind.as_deref().unwrap_or_default(),
                name = object.name.as_deref().unwrap_or_default(),
                reason = note.reason,
                full = matches!(e, mpsc::error::TrySendError::Full(_)),
                "event dropped: the event queue is full or closed"
            );
        }
    }
}

/// Writes one event; logs a failure.
async fn write(client: &Client, event: &Event) {
    let object = &event.involved_object;
    let ns = object.namespace.as_deref().unwrap_or("default");
    if let Err(e) = Api::<Event>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), event)
        .await
    {
        tracing::warn!(
            kind = object.kind.as_deref().unwrap_or_default(),
            name = object.name.as_deref().unwrap_or_default(),
            reason = event.reason.as_deref().unwrap_or_default(),
            error = %e,
            "failed to write event"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_source_copies_labels_and_does_not_collide_within_a_second() {
        let object = ObjectReference {
            api_version: Some("pipelines.openmetadata.org/v1".into()),
            kind: Some("OMJob".into()),
            name: Some("run".into()),
            namespace: Some("ns".into()),
            uid: Some("u".into()),
            ..ObjectReference::default()
        };
        let labels = BTreeMap::from([("app.kubernetes.io/pipeline".to_owned(), "p".to_owned())]);
        let note = Note {
            warning: true,
            reason: reason::OMJOB_FAILED,
            message: "m".into(),
            action: "Reconcile",
        };
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        let e = build(&object, Some(&labels), &note, t);
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(e.metadata.labels.as_ref(), Some(&labels));
        assert_eq!(e.involved_object.kind.as_deref(), Some("OMJob"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.source.unwrap().component.as_deref(), Some(COMPONENT));
        assert_eq!(e.count, Some(1));
        assert_eq!(e.first_timestamp, e.last_timestamp);
        let again = build(&object, None, &note, t);
        assert_ne!(e.metadata.name, again.metadata.name, "same instant, another name");
        assert!(e.metadata.name.unwrap().starts_with("run."));
        assert_eq!(again.metadata.labels, None);
    }
}
