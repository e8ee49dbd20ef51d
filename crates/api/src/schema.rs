//! Hand-written schema fragments for fields whose derived schema would not match the Helm CRD.
//!
//! Two kinds of field need this:
//!
//! * Fields with a schema `default`. The Helm CRD declares them without `nullable`, so the API
//!   server (1.20+) prunes an explicit `null` and then applies the default. A derived `Option<T>`
//!   would carry `nullable: true`, which keeps the `null` and skips the default: a `null`
//!   `ttlSecondsAfterFinished` from OpenMetadata's server would then mean "never clean up"
//!   instead of 86400 seconds. These fragments therefore leave `nullable` out.
//! * Optional enums. Kubernetes 1.20 checks an explicit `null` against the `enum` list even when
//!   the field is `nullable`, and rejects it. Without `nullable` the API server prunes the `null`
//!   instead, as it does for the Helm CRD. [`non_nullable`] gives the inner type's schema.
//! * Free-form objects (`securityContext`), which must be `type: object` with
//!   `x-kubernetes-preserve-unknown-fields: true` to stay structural.
//!
//! Descriptions still come from the fields' doc comments.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// The schema of `T` itself, for an `Option<T>` field that must not be `nullable`.
pub(crate) fn non_nullable<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// The three pull policies of a container, defaulting to `IfNotPresent`.
pub(crate) fn image_pull_policy(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "enum": ["Always", "Never", "IfNotPresent"],
        "default": "IfNotPresent",
    })
}

/// Seconds to keep pods after completion: at least 0, default one day.
pub(crate) fn ttl_seconds_after_finished(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int32",
        "minimum": 0,
        "default": crate::omjob::DEFAULT_TTL_SECONDS_AFTER_FINISHED,
    })
}

/// An IANA time-zone name, default `UTC`.
pub(crate) fn time_zone(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "default": crate::cronomjob::DEFAULT_TIME_ZONE,
    })
}

/// A boolean defaulting to `false`.
pub(crate) fn bool_default_false(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "boolean",
        "default": false,
    })
}

/// A history limit: at least 0, default 3.
pub(crate) fn history_limit(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int32",
        "minimum": 0,
        "default": crate::cronomjob::DEFAULT_HISTORY_LIMIT,
    })
}

/// A free-form, nullable object whose unknown fields the API server keeps.
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
