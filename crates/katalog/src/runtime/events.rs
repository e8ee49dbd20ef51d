//! Events on the CR as core/v1 `Event` objects (§6): Orkestra's reasons and messages, source
//! component `orkestra`. Written with the plain core API rather than kube-runtime's recorder
//! (which writes `events.k8s.io`), so the runtime needs only `create` on core `events`.
//! Best effort: a failed write is logged, never returned, since no decision depends on events.

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};

/// `source.component` and `reportingComponent` (§6: ours is `orkestra`).
pub const COMPONENT: &str = "orkestra";

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// One event about one CR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub severity: Severity,
    pub reason: String,
    pub message: String,
}

impl Note {
    /// A Normal event.
    pub fn normal(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Normal,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A Warning event.
    pub fn warning(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The Event for `note` about `object` at `now`. The name gets random hex so that two events
/// in the same second never collide.
pub fn build(object: &ObjectReference, note: &Note, now: Timestamp) -> Event {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{}",
                object.name.as_deref().unwrap_or("object"),
                &unique[..16]
            )),
            namespace: Some(object.namespace.clone().unwrap_or_else(|| "default".to_owned())),
            ..ObjectMeta::default()
        },
        involved_object: object.clone(),
        reason: Some(note.reason.clone()),
        message: Some(note.message.clone()),
        type_: Some(
            match note.severity {
                Severity::Normal => "Normal",
                Severity::Warning => "Warning",
            }
            .to_owned(),
        ),
        source: Some(EventSource {
            component: Some(COMPONENT.to_owned()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.to_owned()),
        action: Some("Reconcile".to_owned()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        ..Event::default()
    }
}

/// Writes `note` about `object`; logs a failure.
pub async fn publish(client: &Client, object: &ObjectReference, note: &Note) {
    let event = build(object, note, Timestamp::now());
    let ns = event.metadata.namespace.clone().unwrap_or_default();
    if let Err(e) = Api::<Event>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &event)
        .await
    {
        tracing::warn!(reason = %note.reason, error = %e, "failed to write event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_about_the_cr_and_carries_the_orkestra_component() {
        let cr = ObjectReference {
            api_version: Some("data.demo.orkestra.io/v1alpha1".into()),
            kind: Some("DataJob".into()),
            name: Some("backfill-job".into()),
            namespace: Some("demo-05".into()),
            ..ObjectReference::default()
        };
        let note = Note::warning("DataJobReconcileError", "boom");
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        let (a, b) = (build(&cr, &note, t), build(&cr, &note, t));
        assert_ne!(a.metadata.name, b.metadata.name);
        assert_eq!(a.metadata.namespace.as_deref(), Some("demo-05"));
        assert_eq!(a.type_.as_deref(), Some("Warning"));
        assert_eq!(a.source.and_then(|s| s.component).as_deref(), Some(COMPONENT));
        assert_eq!(a.involved_object.kind.as_deref(), Some("DataJob"));
    }
}
