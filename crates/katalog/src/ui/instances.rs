//! `/ui/crd/{entry}/cr` and one CR's page, from `GET /katalog/{crd}/cr` and
//! `GET /katalog/{crd}/cr/{ns}/{name}`: the CRs with their Ready condition, and one CR's spec,
//! status, conditions, children (kind, name, phase, present) and recent events.
//!
//! Children come as identities only (the views carry no child content), so a Secret child shows
//! its name and nothing else.

use omjob_panel::{
    InstanceList, InstancePage, Tone,
    instance::{ChildRow, ConditionRow, EventRow, InstanceRow, Status},
};
use serde_json::Value;

use super::{Operator, kind_of};
use crate::runtime::views::{CrDetail, CrList, CrSummary};

/// An annotation kubectl writes with the whole object in it: noise, and a copy of the spec.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The badge for a Ready condition's status.
fn ready_status(ready: &str, deleting: bool) -> Status {
    let (label, tone) = if deleting {
        ("Deleting", Tone::Active)
    } else {
        match ready {
            "True" => ("Ready", Tone::Good),
            "False" => ("Not ready", Tone::Bad),
            _ => ("Unknown", Tone::Waiting),
        }
    };
    Status {
        label: label.to_owned(),
        tone,
    }
}

fn row(c: &CrSummary) -> InstanceRow {
    let summary = match (c.reason.is_empty(), c.message.is_empty()) {
        (true, _) => c.message.clone(),
        (false, true) => c.reason.clone(),
        (false, false) => format!("{}: {}", c.reason, c.message),
    };
    InstanceRow {
        namespace: (!c.namespace.is_empty()).then(|| c.namespace.clone()),
        name: c.name.clone(),
        status: ready_status(&c.ready, c.deleting),
        summary,
        created: c.created_at.clone(),
    }
}

/// The instance list; `watched` is the entry's watched namespaces (empty: all).
#[must_use]
pub fn list(op: &Operator, crd: &str, list: &CrList, watched: &[String]) -> InstanceList {
    InstanceList {
        operator: op.name.clone(),
        crd: crd.to_owned(),
        kind: kind_of(&list.gvk).to_owned(),
        scope: if watched.is_empty() {
            "all namespaces".to_owned()
        } else {
            watched.join(", ")
        },
        instances: list.items.iter().map(row).collect(),
    }
}

/// A value as one line of text: strings as they are, anything else as compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn conditions(status: &Value) -> Vec<ConditionRow> {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| ConditionRow {
            type_: text(&c["type"]),
            status: text(&c["status"]),
            reason: text(&c["reason"]),
            message: text(&c["message"]),
            last_transition: text(&c["lastTransitionTime"]),
        })
        .collect()
}

/// Status fields other than the conditions, which get their own table.
fn status_fields(status: &Value) -> Vec<(String, String)> {
    status
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "conditions")
        .map(|(k, v)| (k.clone(), text(v)))
        .collect()
}

/// One CR's page.
#[must_use]
pub fn page(op: &Operator, crd: &str, cr: &CrDetail) -> InstancePage {
    let conditions = conditions(&cr.status);
    let status = conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| ready_status(&c.status, false));
    let mut metadata: Vec<(String, String)> = cr
        .labels
        .iter()
        .map(|(k, v)| (format!("label {k}"), v.clone()))
        .collect();
    metadata.extend(
        cr.annotations
            .iter()
            .filter(|(k, _)| k.as_str() != LAST_APPLIED)
            .map(|(k, v)| (format!("annotation {k}"), v.clone())),
    );
    if !cr.finalizers.is_empty() {
        metadata.push(("finalizers".to_owned(), cr.finalizers.join(", ")));
    }
    let mut notes = Vec::new();
    if !cr.children_error.is_empty() {
        notes.push(format!(
            "The children could not be worked out: {}",
            cr.children_error
        ));
    }
    let spec = match &cr.spec {
        Value::Null => None,
        spec => Some(serde_yaml_ng::to_string(spec).unwrap_or_else(|_| spec.to_string())),
    };
    InstancePage {
        operator: op.name.clone(),
        crd: crd.to_owned(),
        kind: kind_of(&cr.gvk).to_owned(),
        namespace: (!cr.namespace.is_empty()).then(|| cr.namespace.clone()),
        name: cr.name.clone(),
        status,
        metadata,
        spec,
        status_fields: status_fields(&cr.status),
        conditions,
        timeline: None,
        stages: vec![],
        next_slots: None,
        children: cr
            .children
            .iter()
            .map(|c| ChildRow {
                kind: c.kind.clone(),
                name: c.name.clone(),
                phase: if c.updated && c.phase != "onReconcile" {
                    format!("{} (kept in sync)", c.phase)
                } else {
                    c.phase.clone()
                },
                present: c.present,
            })
            .collect(),
        events: cr
            .events
            .iter()
            .map(|e| EventRow {
                time: e.last_timestamp.clone(),
                type_: e.kind.clone(),
                reason: e.reason.clone(),
                message: if e.count > 1 {
                    format!("{} (×{})", e.message, e.count)
                } else {
                    e.message.clone()
                },
            })
            .collect(),
        notes,
    }
}
