//! Kubernetes Events as core/v1 `Event` objects, as the Java operator writes them (reference
//! §5.1): `source.component: omjob-operator`, the object's labels copied, first and last
//! timestamp the time of the event. OpenMetadata's chart grants `create` on core `events`
//! only, not on `events.k8s.io` (which kube-runtime's recorder uses), so this is the one
//! path every RBAC this operator runs under allows. Best effort: a failure is logged, never
//! returned, because nothing decides from events.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};

/// `source.component` and `reportingComponent` of every event.
pub const COMPONENT: &str = "omjob-operator";

/// One event to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// CamelCase reason (the Java operator's, where one exists).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// What the operator was doing (`Reconcile`, `Schedule`, `Decode`).
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
        reason: Some(note.reason.clone()),
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

/// Writes `note` about `object`; logs a failure.
pub async fn publish(
    client: &Client,
    object: &ObjectReference,
    labels: Option<&BTreeMap<String, String>>,
    note: &Note,
    now: Timestamp,
) {
    let event = build(object, labels, note, now);
    let ns = object.namespace.as_deref().unwrap_or("default");
    if let Err(e) = Api::<Event>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &event)
        .await
    {
        tracing::warn!(
            kind = object.kind.as_deref().unwrap_or_default(),
            name = object.name.as_deref().unwrap_or_default(),
            reason = %note.reason,
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
            reason: "OMJobFailed".into(),
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
