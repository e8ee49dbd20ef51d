//! A schedule's next slots, each in the schedule's own time zone with its UTC time beside it.

use maud::{Markup, html};

/// The model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextSlots {
    /// The cron expression.
    pub schedule: String,
    /// The IANA time zone it is read in.
    pub time_zone: String,
    /// Whether the schedule is suspended (slots are shown, marked as not firing).
    pub suspended: bool,
    /// The slots, earliest first.
    pub slots: Vec<Slot>,
    /// Why no slots could be computed (an invalid schedule or zone).
    pub error: Option<String>,
}

/// One slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// In the schedule's zone (`2026-12-02 03:00 CET`).
    pub local: String,
    /// In UTC.
    pub utc: String,
}

impl NextSlots {
    /// The list.
    #[must_use]
    pub fn render(&self) -> Markup {
        html! {
            p {
                "Schedule " code { (self.schedule) } " in " strong { (self.time_zone) }
                @if self.suspended { " — " span class="badge tone-waiting" { "suspended" } " these slots will not fire" }
            }
            @if let Some(e) = &self.error {
                p class="alert bad" { (e) }
            } @else if self.slots.is_empty() {
                p class="empty" { "No upcoming slot." }
            } @else {
                ol class="slots" {
                    @for s in &self.slots { li { (s.local) span class="utc" { (s.utc) } } }
                }
            }
        }
    }
}
