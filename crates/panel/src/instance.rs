//! The instance pages: `/ui/crd/{entry}/cr` lists the CRs with their status, and
//! `/ui/crd/{entry}/cr/{ns}/{name}` shows one: spec, status and conditions, its stages on a
//! timeline, its children, its next slots, and its recent events.
//!
//! A child is a kind, a name, a lifecycle phase and whether it exists, nothing more: there is no
//! field that could carry a Secret's (or any child's) data.

use maud::{Markup, html};

use crate::{
    NextSlots, Timeline, Tone,
    badge::badge,
    crd_href, instance_href,
    layout::{Crumb, Shell, kv_table, section},
    timeline::Outcome,
};

/// A status shown as a badge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The word (`Running`, `Failed`).
    pub label: String,
    /// Its tone.
    pub tone: Tone,
}

/// `/ui/crd/{entry}/cr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceList {
    /// The operator or Katalog serving the panel.
    pub operator: String,
    /// The entry name.
    pub crd: String,
    /// The kind.
    pub kind: String,
    /// Which namespaces were read (`all namespaces`, `team-a, team-b`).
    pub scope: String,
    /// The rows, sorted by the filler.
    pub instances: Vec<InstanceRow>,
}

/// One CR in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    /// Its namespace (`None` when cluster-scoped).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its phase or state.
    pub status: Status,
    /// One line about it (the status message).
    pub summary: String,
    /// When it was created, readable.
    pub created: String,
}

impl InstanceList {
    /// The whole document.
    #[must_use]
    pub fn render(&self) -> Markup {
        let shell = Shell::new(
            &self.operator,
            format!("{} instances", self.crd),
            vec![
                Crumb::link("Dashboard", "/ui/"),
                Crumb::link(&self.crd, crd_href(&self.crd)),
                Crumb::here("instances"),
            ],
        );
        shell.render(&self.content())
    }

    /// The page's content (inside `<main>`).
    #[must_use]
    pub fn content(&self) -> Markup {
        let body = html! {
            p class="note" { (self.instances.len()) " " (self.kind) " in " (self.scope) "." }
            @if self.instances.is_empty() {
                p class="empty" { "No " (self.kind) " exists." }
            } @else {
                table class="instances" {
                    thead { tr { th { "Namespace" } th { "Name" } th { "Status" } th { "Message" } th { "Created" } } }
                    tbody {
                        @for r in &self.instances {
                            tr data-name=(r.name) {
                                td { (r.namespace.as_deref().unwrap_or("—")) }
                                td { a href=(instance_href(&self.crd, r.namespace.as_deref(), &r.name)) { (r.name) } }
                                td { (badge(&r.status.label, r.status.tone)) }
                                td { (r.summary) }
                                td class="mono" { (r.created) }
                            }
                        }
                    }
                }
            }
        };
        html! {
            div class="title-block" {
                h1 { (self.kind) " instances" }
                p class="description" { "Custom resources of " a href=(crd_href(&self.crd)) { (self.crd) } "." }
            }
            (section("instances", "Instances", &body))
        }
    }
}

/// `/ui/crd/{entry}/cr/{ns}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancePage {
    /// The operator or Katalog serving the panel.
    pub operator: String,
    /// The entry name.
    pub crd: String,
    /// The kind.
    pub kind: String,
    /// The namespace (`None` when cluster-scoped).
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// Its phase or state.
    pub status: Option<Status>,
    /// Labels and annotations, shown as text.
    pub metadata: Vec<(String, String)>,
    /// The spec as YAML, already stripped of anything secret by the filler.
    pub spec: Option<String>,
    /// Status fields (`mainPodExitCode` → `3`).
    pub status_fields: Vec<(String, String)>,
    /// Status conditions.
    pub conditions: Vec<ConditionRow>,
    /// Stages or runs on a timeline.
    pub timeline: Option<Timeline>,
    /// Per-stage detail: outcome, reason, exit code, log tail.
    pub stages: Vec<Stage>,
    /// A schedule's next slots.
    pub next_slots: Option<NextSlots>,
    /// The children.
    pub children: Vec<ChildRow>,
    /// Recent events, newest first.
    pub events: Vec<EventRow>,
    /// Things that could not be read, said plainly (`events: forbidden`).
    pub notes: Vec<String>,
}

/// One status condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionRow {
    /// `type`.
    pub type_: String,
    /// `status`.
    pub status: String,
    /// `reason`.
    pub reason: String,
    /// `message`.
    pub message: String,
    /// `lastTransitionTime`, readable.
    pub last_transition: String,
}

/// One stage of a run (the main pod, the exit handler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `main stage`.
    pub title: String,
    /// The pod's name.
    pub pod: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Termination reason.
    pub reason: Option<String>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Started at, readable.
    pub started: Option<String>,
    /// Finished at, readable.
    pub finished: Option<String>,
    /// The end of its log.
    pub log: LogTail,
}

/// The end of a pod's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTail {
    /// The last lines.
    Lines(Vec<String>),
    /// Why the log could not be read.
    Unavailable(String),
}

/// One child: kind, name, lifecycle phase, whether it exists. Names only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRow {
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its lifecycle phase (`onCreate`, `main stage`) or state (`Running`).
    pub phase: String,
    /// Whether it exists now.
    pub present: bool,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// When, readable.
    pub time: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

impl InstancePage {
    /// The whole document.
    #[must_use]
    pub fn render(&self) -> Markup {
        let shell = Shell::new(
            &self.operator,
            &self.name,
            vec![
                Crumb::link("Dashboard", "/ui/"),
                Crumb::link(&self.crd, crd_href(&self.crd)),
                Crumb::link("instances", crate::instances_href(&self.crd)),
                Crumb::here(&self.name),
            ],
        );
        shell.render(&self.content())
    }

    /// The page's content (inside `<main>`).
    #[must_use]
    pub fn content(&self) -> Markup {
        html! {
            div class="title-block" id="title" {
                h1 { (self.name) }
                div class="meta" {
                    span { (self.kind) }
                    @if let Some(ns) = &self.namespace { span class="sep" { "·" } span { "namespace " (ns) } }
                    @if let Some(s) = &self.status { span class="sep" { "·" } span id="phase" { (badge(&s.label, s.tone)) } }
                }
            }
            @for note in &self.notes { p class="alert bad note" { (note) } }
            @if let Some(t) = &self.timeline { (section("timeline", "Timeline", &t.render())) }
            @if !self.stages.is_empty() { (self.stages()) }
            @if let Some(slots) = &self.next_slots { (section("next-slots", "Next slots", &slots.render())) }
            @if !self.status_fields.is_empty() || !self.conditions.is_empty() { (self.status()) }
            @if !self.children.is_empty() { (self.children()) }
            @if !self.events.is_empty() { (self.events()) }
            @if !self.metadata.is_empty() { (section("metadata", "Labels and annotations", &kv_table(&self.metadata))) }
            @if let Some(spec) = &self.spec { (section("spec", "Spec", &html! { pre class="spec" { (spec) } })) }
        }
    }

    fn stages(&self) -> Markup {
        let body = html! {
            div class="stages" {
                @for s in &self.stages {
                    div class="stage" data-stage=(s.title) {
                        h3 { (s.title) " " (badge(s.outcome.label(), s.outcome.tone())) }
                        table class="kv" {
                            tbody {
                                tr { td class="key" { "Pod" } td class="mono" { (s.pod) } }
                                @if let Some(r) = &s.reason { tr { td class="key" { "Reason" } td class="reason" { (r) } } }
                                @if let Some(c) = s.exit_code { tr { td class="key" { "Exit code" } td class="exit-code" { (c) } } }
                                @if let Some(t) = &s.started { tr { td class="key" { "Started" } td class="mono" { (t) } } }
                                @if let Some(t) = &s.finished { tr { td class="key" { "Finished" } td class="mono" { (t) } } }
                            }
                        }
                        @match &s.log {
                            LogTail::Lines(lines) if lines.is_empty() => p class="empty" { "The log is empty." },
                            LogTail::Lines(lines) => pre class="log" { @for l in lines { (l) "\n" } },
                            LogTail::Unavailable(why) => p class="note" { "Log not available: " (why) },
                        }
                    }
                }
            }
        };
        section("stages", "Stages", &body)
    }

    fn status(&self) -> Markup {
        let body = html! {
            @if !self.status_fields.is_empty() { (kv_table(&self.status_fields)) }
            @if !self.conditions.is_empty() {
                h3 { "Conditions" }
                table class="conditions" {
                    thead { tr { th { "Type" } th { "Status" } th { "Reason" } th { "Message" } th { "Last transition" } } }
                    tbody {
                        @for c in &self.conditions {
                            tr { td { (c.type_) } td { (c.status) } td { (c.reason) } td { (c.message) } td class="mono" { (c.last_transition) } }
                        }
                    }
                }
            }
        };
        section("status", "Status", &body)
    }

    fn children(&self) -> Markup {
        let body = html! {
            table class="children" {
                thead { tr { th { "Kind" } th { "Name" } th { "Lifecycle phase" } th { "Present" } } }
                tbody {
                    @for c in &self.children {
                        tr data-child=(c.name) {
                            td { (c.kind) } td class="mono" { (c.name) } td { (c.phase) }
                            td { @if c.present { span class="present" { "present" } } @else { span class="missing" { "missing" } } }
                        }
                    }
                }
            }
        };
        section("children", "Children", &body)
    }

    fn events(&self) -> Markup {
        let body = html! {
            table class="events" {
                thead { tr { th { "Time" } th { "Type" } th { "Reason" } th { "Message" } } }
                tbody {
                    @for e in &self.events {
                        tr {
                            td class="mono" { (e.time) }
                            td { (badge(&e.type_, if e.type_ == "Warning" { Tone::Bad } else { Tone::Neutral })) }
                            td { (e.reason) } td { (e.message) }
                        }
                    }
                }
            }
        };
        section("events", "Recent events", &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Bar;

    const SCRIPT: &str = "<script>alert(1)</script>";
    const IMG: &str = "\"><img src=x onerror=alert(1)>";

    fn hostile() -> InstancePage {
        let x = format!("{SCRIPT}{IMG}");
        InstancePage {
            operator: x.clone(),
            crd: x.clone(),
            kind: x.clone(),
            namespace: Some(x.clone()),
            name: x.clone(),
            status: Some(Status {
                label: x.clone(),
                tone: Tone::Bad,
            }),
            metadata: vec![(x.clone(), x.clone())],
            spec: Some(x.clone()),
            status_fields: vec![(x.clone(), x.clone())],
            conditions: vec![ConditionRow {
                type_: x.clone(),
                status: x.clone(),
                reason: x.clone(),
                message: x.clone(),
                last_transition: x.clone(),
            }],
            timeline: Some(Timeline {
                start_ms: 0,
                end_ms: 10,
                start_label: x.clone(),
                bars: vec![Bar {
                    label: x.clone(),
                    detail: x.clone(),
                    start_ms: Some(0),
                    end_ms: Some(5),
                    outcome: Outcome::Failed,
                }],
            }),
            stages: vec![Stage {
                title: x.clone(),
                pod: x.clone(),
                outcome: Outcome::Failed,
                reason: Some(x.clone()),
                exit_code: Some(3),
                started: Some(x.clone()),
                finished: Some(x.clone()),
                log: LogTail::Lines(vec![x.clone()]),
            }],
            next_slots: Some(NextSlots {
                schedule: x.clone(),
                time_zone: x.clone(),
                suspended: true,
                slots: vec![crate::slots::Slot {
                    local: x.clone(),
                    utc: x.clone(),
                }],
                error: None,
            }),
            children: vec![ChildRow {
                kind: x.clone(),
                name: x.clone(),
                phase: x.clone(),
                present: false,
            }],
            events: vec![EventRow {
                time: x.clone(),
                type_: x.clone(),
                reason: x.clone(),
                message: x.clone(),
            }],
            notes: vec![x],
        }
    }

    #[test]
    fn hostile_strings_render_escaped_everywhere() {
        let page = hostile();
        for html in [
            page.render().into_string(),
            InstanceList {
                operator: SCRIPT.into(),
                crd: IMG.into(),
                kind: SCRIPT.into(),
                scope: IMG.into(),
                instances: vec![InstanceRow {
                    namespace: Some(IMG.into()),
                    name: IMG.into(),
                    status: Status {
                        label: SCRIPT.into(),
                        tone: Tone::Good,
                    },
                    summary: SCRIPT.into(),
                    created: IMG.into(),
                }],
            }
            .render()
            .into_string(),
        ] {
            assert!(!html.contains(SCRIPT), "raw script tag in {html}");
            assert!(!html.contains("<img"), "raw img tag in {html}");
            // The only <script> is the page's own, from /ui/static.
            assert_eq!(html.matches("<script").count(), 1, "{html}");
            assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
            assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
            // Names in links are percent-encoded, so they cannot end the attribute or the path.
            assert!(html.contains("%22%3E%3Cimg%20src%3Dx"), "{html}");
        }
    }

    #[test]
    fn a_secret_child_is_a_name_and_nothing_else() {
        let mut page = hostile();
        page.children = vec![ChildRow {
            kind: "Secret".into(),
            name: "db-credentials".into(),
            phase: "onCreate".into(),
            present: true,
        }];
        let html = page.content().into_string();
        let row_start = html.find(r#"<tr data-child="db-credentials">"#).unwrap();
        let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
        assert_eq!(
            row,
            r#"<tr data-child="db-credentials"><td>Secret</td><td class="mono">db-credentials</td><td>onCreate</td><td><span class="present">present</span></td>"#
        );
    }

    #[test]
    fn stages_show_reason_exit_code_and_log() {
        let mut page = hostile();
        page.stages = vec![Stage {
            title: "main stage".into(),
            pod: "run-main".into(),
            outcome: Outcome::Failed,
            reason: Some("Error".into()),
            exit_code: Some(3),
            started: None,
            finished: None,
            log: LogTail::Lines(vec!["line one".into(), "line two".into()]),
        }];
        let html = page.content().into_string();
        assert!(html.contains(r#"<td class="exit-code">3</td>"#));
        assert!(html.contains(r#"<td class="reason">Error</td>"#));
        assert!(html.contains("<pre class=\"log\">line one\nline two\n</pre>"));
    }

    #[test]
    fn empty_parts_are_omitted() {
        let page = InstancePage {
            operator: "o".into(),
            crd: "omjob".into(),
            kind: "OMJob".into(),
            namespace: Some("ns".into()),
            name: "n".into(),
            status: None,
            metadata: vec![],
            spec: None,
            status_fields: vec![],
            conditions: vec![],
            timeline: None,
            stages: vec![],
            next_slots: None,
            children: vec![],
            events: vec![],
            notes: vec![],
        };
        let html = page.content().into_string();
        for id in [
            "timeline",
            "stages",
            "next-slots",
            "status",
            "children",
            "events",
            "metadata",
            "spec",
        ] {
            assert!(!html.contains(&format!(r#"id="{id}""#)), "{id}");
        }
    }
}
