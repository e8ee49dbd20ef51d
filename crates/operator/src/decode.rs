//! Watched objects decoded one at a time, so that one our types cannot read stops only itself.
//!
//! OpenMetadata's Helm chart installs CRDs without a root `required` and without integer bounds,
//! so the API server stores OMJobs and CronOMJobs that [`omjob_api`]'s types refuse (no `spec`;
//! `ttlSecondsAfterFinished` or a history limit above `i32::MAX`). kube's watcher decodes a list
//! response as a whole and retries a list that fails, so a single such object would stop the
//! reconciling of every object of its kind in the watch's scope. The controllers therefore watch
//! [`Lenient<K>`]: each object is decoded on its own; one that fails keeps its metadata (so it is
//! cached, triggered and named like any other) and the field serde stopped at. Its reconcile
//! only [`report`]s it, once per `resourceVersion`, and waits for it to change.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer, de::DeserializeOwned};

use crate::metrics::Metrics;

/// Reason of the `Warning` event on an object that does not decode.
pub const REASON_INVALID_SPEC: &str = crate::events::reason::INVALID_SPEC;

/// The longest event note the API server accepts (`events.k8s.io/v1`: 1 kB).
const MAX_NOTE_BYTES: usize = 1024;

/// Why an object does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DecodeError {
    /// The field serde stopped at, as a path such as `spec.ttlSecondsAfterFinished` or
    /// `spec.mainPodSpec.env[2].name` (`.` for the object itself).
    pub field: String,
    /// serde's message, such as ``invalid value: integer `99999999999`, expected i32``.
    pub message: String,
}

/// Decodes `value` as a `K`, naming the field that fails.
///
/// # Errors
/// The value is not a valid `K`.
pub fn decode<K: DeserializeOwned>(value: &serde_json::Value) -> Result<K, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        DecodeError {
            field: field_name(&path, &message),
            message,
        }
    })
}

/// The field an error is about. serde reports a missing field at the object that lacks it, so
/// the field's own name (from the message) is appended to that path.
fn field_name(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    match (parent, missing) {
        ("", Some(field)) => field.to_owned(),
        (parent, Some(field)) => format!("{parent}.{field}"),
        ("", None) => ".".to_owned(),
        (parent, None) => parent.to_owned(),
    }
}

/// An object that does not decode as its type: its metadata, and why.
#[derive(Debug, Clone)]
pub struct Undecodable {
    /// The object's metadata (always decodable on objects from the API server).
    pub metadata: ObjectMeta,
    /// Why the rest does not decode.
    pub error: DecodeError,
}

/// A watched `K`, or the metadata of one that does not decode.
#[derive(Debug, Clone)]
pub struct Lenient<K>(pub Result<K, Undecodable>);

impl<K> Lenient<K> {
    /// The decoded object, if it decoded.
    #[must_use]
    pub fn valid(&self) -> Option<&K> {
        self.0.as_ref().ok()
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Buffered, because a typed decode that fails half-way cannot be resumed; the buffer is
        // dropped as soon as the object is decoded, so the cache holds typed objects only.
        let mut value = serde_json::Value::deserialize(deserializer)?;
        // Nothing the watches feed reads `managedFields` (every cache drops them), and they are
        // often most of an object: not decoding them a second time keeps a list page of
        // objects, all decoded before the first is cached, from holding them all.
        if let Some(meta) = value
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
        {
            meta.remove("managedFields");
        }
        match decode::<K>(&value) {
            Ok(k) => Ok(Self(Ok(k))),
            Err(error) => {
                // Without readable metadata the object could not even be named; that only
                // happens to input that is not from an API server, and fails as before.
                let metadata = value
                    .get("metadata")
                    .map(ObjectMeta::deserialize)
                    .transpose()
                    .map_err(serde::de::Error::custom)?
                    .ok_or_else(|| serde::de::Error::missing_field("metadata"))?;
                Ok(Self(Err(Undecodable { metadata, error })))
            }
        }
    }
}

impl<K: Resource> Resource for Lenient<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.0.as_ref().map_or_else(|bad| &bad.metadata, K::meta)
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.as_mut().map_or_else(|bad| &mut bad.metadata, K::meta_mut)
    }
}

/// The undecodable objects already reported, with the `resourceVersion` reported.
///
/// A relist (a watch that expired, an API server that restarted) triggers every object again;
/// this keeps such a resync from repeating the warning. It holds an entry per undecodable
/// object only: an object that decodes again is forgotten.
#[derive(Debug, Default)]
pub struct Reported {
    seen: Mutex<HashMap<String, String>>,
}

fn key(meta: &ObjectMeta) -> String {
    // The UID tells a re-created object of the same name apart.
    meta.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    })
}

impl Reported {
    /// Whether this version of the object has not been reported yet; records it as reported.
    pub fn first_sighting(&self, meta: &ObjectMeta) -> bool {
        let version = meta.resource_version.clone().unwrap_or_default();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = seen.insert(key(meta), version.clone());
        previous.as_deref() != Some(version.as_str())
    }

    /// Forgets an object (it decodes now), so that a later undecodable version is reported.
    pub fn forget(&self, meta: &ObjectMeta) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if !seen.is_empty() {
            seen.remove(&key(meta));
        }
    }
}

/// The event note for an undecodable `kind`, cut to what the API server accepts.
#[must_use]
pub fn note(kind: &str, error: &DecodeError) -> String {
    let mut text =
        format!("The operator cannot read this {kind}: {error}. It is not reconciled until it is changed.");
    if text.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Logs an undecodable object and publishes an `InvalidSpec` warning on it, once per
/// `resourceVersion`; counted in the controller's reconcile errors as category `decode`.
pub fn report<K>(
    obj: &Lenient<K>,
    bad: &Undecodable,
    reported: &Reported,
    events: &crate::events::Publisher,
    now: k8s_openapi::jiff::Timestamp,
    metrics: &Metrics,
    controller: &'static str,
) where
    K: Resource<DynamicType = ()>,
{
    if !reported.first_sighting(&bad.metadata) {
        return;
    }
    let kind = K::kind(&());
    let name = bad.metadata.name.as_deref().unwrap_or_default();
    let namespace = bad.metadata.namespace.as_deref().unwrap_or_default();
    metrics.reconcile_error(controller, "decode");
    tracing::warn!(
        kind = %kind,
        name,
        namespace,
        resource_version = bad.metadata.resource_version.as_deref().unwrap_or_default(),
        field = %bad.error.field,
        error = %bad.error.message,
        "object does not decode; it is not reconciled until it changes"
    );
    let event = crate::events::Note {
        warning: true,
        reason: REASON_INVALID_SPEC,
        message: note(&kind, &bad.error),
        action: crate::events::action::DECODE,
    };
    events.publish(&obj.object_ref(&()), bad.metadata.labels.as_ref(), &event, now);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use omjob_api::{CronOMJob, OMJob};
    use serde_json::{Value, json};

    use super::*;

    fn omjob(edit: impl FnOnce(&mut Value)) -> Value {
        let mut o = json!({
            "apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
            "metadata": {"name": "j", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"},
            "spec": {
                "mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"],
                    "env": [{"name": "a", "value": "1"}, {"name": "b"}]},
                "ttlSecondsAfterFinished": 60
            }
        });
        edit(&mut o);
        o
    }

    #[test]
    fn managed_fields_are_not_decoded() {
        let o = omjob(|o| {
            o["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Update",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]);
        });
        let decoded: Lenient<OMJob> = serde_json::from_value(o).unwrap();
        let meta = decoded.meta();
        assert_eq!(meta.managed_fields, None);
        assert_eq!(meta.uid.as_deref(), Some("u-1"));
    }

    #[test]
    fn the_failing_field_is_named() {
        type Case = (&'static str, fn(&mut Value), &'static str, &'static str);
        let table: [Case; 6] = [
            (
                "no spec",
                |o| drop(o.as_object_mut().unwrap().remove("spec")),
                "spec",
                "missing field `spec`",
            ),
            (
                "TTL above i32",
                |o| o["spec"]["ttlSecondsAfterFinished"] = json!(99_999_999_999_i64),
                "spec.ttlSecondsAfterFinished",
                "invalid value: integer `99999999999`, expected i32",
            ),
            (
                "no main pod image",
                |o| drop(o["spec"]["mainPodSpec"].as_object_mut().unwrap().remove("image")),
                "spec.mainPodSpec.image",
                "missing field `image`",
            ),
            (
                "an env entry without a name",
                |o| {
                    drop(
                        o["spec"]["mainPodSpec"]["env"][1]
                            .as_object_mut()
                            .unwrap()
                            .remove("name"),
                    )
                },
                "spec.mainPodSpec.env[1].name",
                "missing field `name`",
            ),
            (
                "an unknown phase",
                |o| o["status"] = json!({"phase": "Sleeping"}),
                "status.phase",
                "unknown variant `Sleeping`",
            ),
            (
                "not an object",
                |o| *o = json!("just a string"),
                ".",
                "invalid type: string",
            ),
        ];
        for (case, edit, field, message) in table {
            let err = decode::<OMJob>(&omjob(edit)).unwrap_err();
            assert_eq!(err.field, field, "{case}: {err}");
            assert!(err.message.starts_with(message), "{case}: {err}");
        }
        assert!(decode::<OMJob>(&omjob(|_| {})).is_ok());
    }

    #[test]
    fn a_cronomjob_history_limit_above_i32_is_named() {
        let c = json!({
            "apiVersion": "pipelines.openmetadata.org/v1", "kind": "CronOMJob",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 3_000_000_000_u64,
                "omJobSpec": {"mainPodSpec": {"image": "i", "serviceAccountName": "sa", "command": ["x"]}}}
        });
        let err = decode::<CronOMJob>(&c).unwrap_err();
        assert_eq!(err.field, "spec.successfulJobsHistoryLimit");
    }

    #[test]
    fn a_list_with_an_undecodable_object_still_decodes_the_others() {
        let list = json!([
            omjob(|_| {}),
            omjob(|o| {
                o["metadata"]["name"] = json!("bad");
                o.as_object_mut().unwrap().remove("spec");
            }),
            omjob(|o| o["metadata"]["name"] = json!("also-good")),
        ]);
        // Decoded from text, as the watcher decodes the API server's responses.
        let items: Vec<Lenient<OMJob>> = serde_json::from_str(&list.to_string()).unwrap();
        let names: Vec<_> = items.iter().map(|o| o.meta().name.clone().unwrap()).collect();
        assert_eq!(names, ["j", "bad", "also-good"]);
        assert!(items[0].valid().is_some() && items[2].valid().is_some());
        let bad = items[1].0.as_ref().unwrap_err();
        assert_eq!(bad.error.field, "spec");
        assert_eq!(bad.metadata.uid.as_deref(), Some("u-1"));
        let r = items[1].object_ref(&());
        assert_eq!(
            (r.kind.as_deref(), r.api_version.as_deref()),
            (Some("OMJob"), Some("pipelines.openmetadata.org/v1"))
        );
    }

    #[test]
    fn an_object_without_metadata_still_fails() {
        let err = serde_json::from_value::<Lenient<OMJob>>(json!({"spec": 1})).unwrap_err();
        assert!(err.to_string().contains("metadata"), "{err}");
    }

    #[test]
    fn each_version_is_reported_once() {
        let reported = Reported::default();
        let mut meta = ObjectMeta {
            name: Some("j".into()),
            namespace: Some("ns".into()),
            uid: Some("u-1".into()),
            resource_version: Some("7".into()),
            ..ObjectMeta::default()
        };
        assert!(reported.first_sighting(&meta));
        assert!(!reported.first_sighting(&meta), "a resync of the same version");
        meta.resource_version = Some("8".into());
        assert!(
            reported.first_sighting(&meta),
            "a changed object that still fails"
        );
        reported.forget(&meta);
        assert!(reported.first_sighting(&meta), "fixed, then broken again");
        let other = ObjectMeta {
            uid: Some("u-2".into()),
            ..meta.clone()
        };
        assert!(reported.first_sighting(&other), "another object of the same name");
    }

    #[test]
    fn notes_fit_the_event_limit() {
        let long = DecodeError {
            field: "spec.mainPodSpec.image".into(),
            message: format!("invalid type: map, expected {}", "é".repeat(2000)),
        };
        let n = note("OMJob", &long);
        assert!(n.len() <= MAX_NOTE_BYTES, "{}", n.len());
        assert!(n.starts_with("The operator cannot read this OMJob: spec.mainPodSpec.image: "));
        let short = DecodeError {
            field: "spec".into(),
            message: "missing field `spec`".into(),
        };
        assert_eq!(
            note("OMJob", &short),
            "The operator cannot read this OMJob: spec: missing field `spec`. It is not reconciled until it is changed."
        );
    }
}
