//! States and tones: how a CRD's health or an instance's phase is shown as a coloured badge.

use maud::{Markup, html};

/// The tone of a badge; the stylesheet gives each one colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Healthy, succeeded.
    Good,
    /// Degraded, failed.
    Bad,
    /// Running, in progress.
    Active,
    /// Pending, not started, suspended.
    Waiting,
    /// No judgement.
    Neutral,
}

impl Tone {
    /// The CSS class suffix (`tone-good`, ...).
    #[must_use]
    pub const fn class(self) -> &'static str {
        match self {
            Self::Good => "tone-good",
            Self::Bad => "tone-bad",
            Self::Active => "tone-active",
            Self::Waiting => "tone-waiting",
            Self::Neutral => "tone-neutral",
        }
    }
}

/// A CRD's state, as the Katalog runtime's health reports it (spec §8) and the operator derives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Reconciling normally.
    Healthy,
    /// Failing: errors, an unreachable API, an unhealthy dependency.
    Degraded,
    /// Started, not yet known healthy.
    Started,
    /// Waiting to start (dependencies, leadership).
    Pending,
}

impl State {
    /// The word shown in the badge.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Started => "started",
            Self::Pending => "pending",
        }
    }

    /// The badge's tone.
    #[must_use]
    pub const fn tone(self) -> Tone {
        match self {
            Self::Healthy => Tone::Good,
            Self::Degraded => Tone::Bad,
            Self::Started => Tone::Active,
            Self::Pending => Tone::Waiting,
        }
    }
}

/// A badge with `label` in `tone`.
#[must_use]
pub fn badge(label: &str, tone: Tone) -> Markup {
    html! { span class={ "badge " (tone.class()) } { (label) } }
}

/// A CRD state badge.
#[must_use]
pub fn state_badge(state: State) -> Markup {
    html! { span class={ "badge state " (state.tone().class()) } data-state=(state.label()) { (state.label()) } }
}
