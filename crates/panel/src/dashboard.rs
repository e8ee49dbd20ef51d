//! `/ui/`: every CRD the process serves, with its state, workers, queue and resource counts. A
//! degraded CRD stands out: a banner counts them and its row is tinted.

use maud::{Markup, html};

use crate::{
    State,
    badge::state_badge,
    crd_href, instances_href,
    layout::{Crumb, Shell, section},
};

/// The dashboard's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// The operator or Katalog serving the panel.
    pub operator: String,
    /// Its version.
    pub version: String,
    /// How long it has run (Go duration), when known.
    pub uptime: Option<String>,
    /// One row per CRD.
    pub crds: Vec<CrdSummary>,
}

/// One CRD on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdSummary {
    /// The entry name used in URLs (`data-job`, `omjob`).
    pub name: String,
    /// The kind (`DataJob`).
    pub kind: String,
    /// Its state.
    pub state: State,
    /// Why it is not healthy, when it is not.
    pub reason: Option<String>,
    /// Workers, as the source reports them (`3`, or `2/3 busy`).
    pub workers: Option<String>,
    /// Queue depth (`0 / 100`), when the source tracks one.
    pub queue: Option<String>,
    /// How many instances exist, when they could be counted.
    pub resources: Option<u64>,
}

impl Dashboard {
    /// How many CRDs are degraded.
    #[must_use]
    pub fn degraded(&self) -> usize {
        self.crds.iter().filter(|c| c.state == State::Degraded).count()
    }

    /// The page's shell.
    #[must_use]
    pub fn shell(&self) -> Shell {
        Shell::new(&self.operator, "Dashboard", vec![Crumb::here("Dashboard")])
    }

    /// The page's content (inside `<main>`).
    #[must_use]
    pub fn content(&self) -> Markup {
        let degraded = self.degraded();
        let healthy = self.crds.iter().filter(|c| c.state == State::Healthy).count();
        let total_resources: u64 = self.crds.iter().filter_map(|c| c.resources).sum();
        let table = html! {
            @if self.crds.is_empty() {
                p class="empty" { "This process serves no CRD." }
            } @else {
                table class="crds" {
                    thead { tr {
                        th { "CRD" } th { "Kind" } th { "State" } th class="num" { "Workers" }
                        th class="num" { "Queue" } th class="num" { "Resources" } th { "" }
                    } }
                    tbody {
                        @for c in &self.crds {
                            tr class=[(c.state == State::Degraded).then_some("degraded")] data-crd=(c.name) {
                                td { a href=(crd_href(&c.name)) { (c.name) } }
                                td { (c.kind) }
                                td {
                                    (state_badge(c.state))
                                    @if let Some(reason) = &c.reason { " " span class="note" { (reason) } }
                                }
                                td class="num" { (c.workers.as_deref().unwrap_or("—")) }
                                td class="num" { (c.queue.as_deref().unwrap_or("—")) }
                                td class="num" { @match c.resources { Some(n) => (n), None => "—" } }
                                td { a href=(instances_href(&c.name)) { "instances" } }
                            }
                        }
                    }
                }
            }
        };
        html! {
            div class="title-block" {
                h1 { (self.operator) }
                div class="meta" {
                    span { "version " (self.version) }
                    @if let Some(uptime) = &self.uptime { span class="sep" { "·" } span { "uptime " (uptime) } }
                }
            }
            @if degraded > 0 {
                div class="alert bad" id="degraded-alert" role="alert" {
                    strong { (degraded) " of " (self.crds.len()) " CRDs degraded" }
                }
            }
            div class="tiles" {
                div class="tile" { div class="label" { "CRDs" } div class="value" { (self.crds.len()) } }
                div class="tile" { div class="label" { "Healthy" } div class="value" { (healthy) } }
                div class="tile" { div class="label" { "Degraded" } div class="value" { (degraded) } }
                div class="tile" { div class="label" { "Resources" } div class="value" { (total_resources) } }
            }
            (section("crds", "Custom resources", &table))
        }
    }

    /// The whole document.
    #[must_use]
    pub fn render(&self) -> Markup {
        self.shell().render(&self.content())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, state: State) -> CrdSummary {
        CrdSummary {
            name: name.into(),
            kind: "Kind".into(),
            state,
            reason: (state == State::Degraded).then(|| "list failed".into()),
            workers: Some("5".into()),
            queue: None,
            resources: Some(2),
        }
    }

    #[test]
    fn a_degraded_crd_stands_out() {
        let d = Dashboard {
            operator: "omjob-operator".into(),
            version: "0.1.0".into(),
            uptime: Some("1m5s".into()),
            crds: vec![crd("omjob", State::Healthy), crd("cronomjob", State::Degraded)],
        };
        let html = d.render().into_string();
        assert!(html.contains("1 of 2 CRDs degraded"), "{html}");
        assert!(
            html.contains(r#"<tr class="degraded" data-crd="cronomjob">"#),
            "{html}"
        );
        assert!(html.contains(r#"data-state="healthy""#));
        assert!(html.contains("list failed"));
        assert!(html.contains("uptime 1m5s"));
        assert!(html.contains(r#"href="/ui/crd/omjob""#));
    }

    #[test]
    fn all_healthy_shows_no_alert() {
        let d = Dashboard {
            operator: "o".into(),
            version: "1".into(),
            uptime: None,
            crds: vec![crd("omjob", State::Healthy)],
        };
        assert!(!d.render().into_string().contains("degraded-alert"));
    }
}
