//! An SVG timeline: one row per stage or run, a bar from its start to its end (or to now while it
//! runs), coloured by outcome, with a time axis relative to the first start.
//!
//! Colours come from the stylesheet through the `outcome-*` classes, and every bar carries
//! `data-outcome` and `data-label`, so tests can read both what is drawn and what it means.

use maud::{Markup, html};

use crate::duration::go_duration;

/// How a stage or run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished successfully (exit code 0).
    Succeeded,
    /// Finished unsuccessfully.
    Failed,
    /// Still running.
    Running,
    /// Not started (yet, or ever).
    NotStarted,
}

impl Outcome {
    /// The word used in `data-outcome` and the legend.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Running => "running",
            Self::NotStarted => "not started",
        }
    }

    /// The CSS class that colours it.
    #[must_use]
    pub const fn class(self) -> &'static str {
        match self {
            Self::Succeeded => "outcome-succeeded",
            Self::Failed => "outcome-failed",
            Self::Running => "outcome-running",
            Self::NotStarted => "outcome-not-started",
        }
    }

    /// The badge tone matching the bar colour.
    #[must_use]
    pub const fn tone(self) -> crate::Tone {
        match self {
            Self::Succeeded => crate::Tone::Good,
            Self::Failed => crate::Tone::Bad,
            Self::Running => crate::Tone::Active,
            Self::NotStarted => crate::Tone::Waiting,
        }
    }
}

/// A tick's offset from the start: tenths of a second on short timelines, where whole seconds
/// would repeat (`+0s +0s +1s`), Go durations otherwise.
fn tick_label(offset_ms: i64, span_ms: i64) -> String {
    if span_ms < 10_000 {
        format!("+{}.{}s", offset_ms / 1000, (offset_ms % 1000) / 100)
    } else {
        format!(
            "+{}",
            go_duration(std::time::Duration::from_millis(
                u64::try_from(offset_ms).unwrap_or(0)
            ))
        )
    }
}

/// One bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// The row label (`main`, `exit handler`, a run's name).
    pub label: String,
    /// Shown on hover (`exit code 3 · Error`).
    pub detail: String,
    /// Start, epoch milliseconds; `None` when it never started or the time is unknown.
    pub start_ms: Option<i64>,
    /// End, epoch milliseconds; `None` while running (the bar reaches the timeline's end).
    pub end_ms: Option<i64>,
    /// How it ended.
    pub outcome: Outcome,
}

/// The timeline's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The left edge, epoch milliseconds.
    pub start_ms: i64,
    /// The right edge, epoch milliseconds.
    pub end_ms: i64,
    /// The left edge as a readable time (`2026-12-01 14:02:11 UTC`).
    pub start_label: String,
    /// The bars, top to bottom.
    pub bars: Vec<Bar>,
}

const WIDTH: i64 = 920;
const LABEL_COLUMN: i64 = 170;
const RIGHT_PAD: i64 = 24;
const AXIS_HEIGHT: i64 = 26;
const ROW: i64 = 34;
const BAR_HEIGHT: i64 = 18;
const MIN_BAR: i64 = 4;
const PLACEHOLDER: i64 = 70;

impl Timeline {
    /// A timeline spanning `bars`: from the earliest start to the latest end, or `now_ms` when a
    /// bar still runs (or nothing has started). `start_label` formats the left edge.
    #[must_use]
    pub fn fit(bars: Vec<Bar>, now_ms: i64, start_label: impl FnOnce(i64) -> String) -> Self {
        let start = bars.iter().filter_map(|b| b.start_ms).min().unwrap_or(now_ms);
        let running = bars.iter().any(|b| b.start_ms.is_some() && b.end_ms.is_none());
        let last_end = bars.iter().filter_map(|b| b.end_ms).max();
        let end = match (running, last_end) {
            (false, Some(e)) => e,
            _ => now_ms.max(last_end.unwrap_or(now_ms)),
        }
        .max(start);
        Self {
            start_ms: start,
            end_ms: end,
            start_label: start_label(start),
            bars,
        }
    }

    fn span(&self) -> i64 {
        // At least a second, so an instant run still draws and the axis has ticks.
        (self.end_ms - self.start_ms).max(1000)
    }

    fn x(&self, t: i64) -> i64 {
        let usable = WIDTH - LABEL_COLUMN - RIGHT_PAD;
        let offset = (t - self.start_ms).clamp(0, self.span());
        LABEL_COLUMN + offset * usable / self.span()
    }

    /// The SVG with its legend.
    #[must_use]
    pub fn render(&self) -> Markup {
        let height = AXIS_HEIGHT + ROW * i64::try_from(self.bars.len()).unwrap_or(0) + 8;
        let span = self.span();
        let ticks: Vec<(i64, String)> = (0..=4)
            .map(|i| {
                let t = self.start_ms + span * i / 4;
                let label = if i == 0 {
                    self.start_label.clone()
                } else {
                    tick_label(span * i / 4, span)
                };
                (self.x(t), label)
            })
            .collect();
        let right = WIDTH - RIGHT_PAD;
        html! {
            svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) }
                role="img" aria-label="timeline" {
                @for (i, (x, label)) in ticks.iter().enumerate() {
                    line class="grid" x1=(x) y1=(AXIS_HEIGHT - 6) x2=(x) y2=(height - 4) {}
                    text class="tick" x=(x) y="14"
                        text-anchor=(if i == 0 { "start" } else if i == 4 { "end" } else { "middle" }) { (label) }
                }
                line class="axis" x1=(LABEL_COLUMN) y1=(AXIS_HEIGHT - 6) x2=(right) y2=(AXIS_HEIGHT - 6) {}
                @for (i, bar) in self.bars.iter().enumerate() {
                    @let top = AXIS_HEIGHT + ROW * i64::try_from(i).unwrap_or(0);
                    @let y = top + (ROW - BAR_HEIGHT) / 2;
                    @let (x1, width, caption) = self.geometry(bar);
                    @let caption_right = x1 + width + 6 + 150 < WIDTH;
                    text class="row-label" x="8" y=(y + 13) { (bar.label) }
                    rect class={ "bar " (bar.outcome.class()) } data-outcome=(bar.outcome.label())
                        data-label=(bar.label) x=(x1) y=(y) width=(width) height=(BAR_HEIGHT) {
                        title { (bar.label) ": " (bar.outcome.label()) @if !bar.detail.is_empty() { " · " (bar.detail) } }
                    }
                    @if caption_right {
                        text class="bar-label" x=(x1 + width + 6) y=(y + 13) { (caption) }
                    } @else if x1 - LABEL_COLUMN < 160 {
                        // No room on either side: the caption goes inside the (wide) bar.
                        text class="bar-label inside" x=(x1 + 6) y=(y + 13) { (caption) }
                    } @else {
                        text class="bar-label" x=(x1 - 6) y=(y + 13) text-anchor="end" { (caption) }
                    }
                }
            }
            div class="legend" {
                @for o in [Outcome::Succeeded, Outcome::Failed, Outcome::Running, Outcome::NotStarted] {
                    span { span class={ "swatch " (o.class()) } {} (o.label()) }
                }
            }
        }
    }

    /// Where a bar goes and what its caption says.
    fn geometry(&self, bar: &Bar) -> (i64, i64, String) {
        match bar.start_ms {
            Some(start) => {
                let end = bar.end_ms.unwrap_or(self.end_ms).max(start);
                let x1 = self.x(start);
                let width = (self.x(end) - x1).max(MIN_BAR);
                let took = go_duration(std::time::Duration::from_millis(
                    u64::try_from(end - start).unwrap_or(0),
                ));
                let caption = match bar.outcome {
                    Outcome::Running => format!("running for {took}"),
                    o => format!("{} after {took}", o.label()),
                };
                (x1, width, caption)
            }
            None => {
                let caption = if bar.outcome == Outcome::NotStarted {
                    "not started".to_owned()
                } else {
                    format!("{} (times unknown)", bar.outcome.label())
                };
                (LABEL_COLUMN, PLACEHOLDER, caption)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, start: Option<i64>, end: Option<i64>, outcome: Outcome) -> Bar {
        Bar {
            label: label.into(),
            detail: "exit code 3".into(),
            start_ms: start,
            end_ms: end,
            outcome,
        }
    }

    #[test]
    fn bars_span_their_times_and_carry_their_outcome() {
        let t = Timeline::fit(
            vec![
                bar("main", Some(0), Some(30_000), Outcome::Failed),
                bar("exit handler", Some(31_000), Some(40_000), Outcome::Succeeded),
            ],
            50_000,
            |_| "start".into(),
        );
        assert_eq!((t.start_ms, t.end_ms), (0, 40_000));
        let svg = t.render().into_string();
        assert_eq!(svg.matches("<rect class=\"bar ").count(), 2, "{svg}");
        assert!(
            svg.contains(r#"class="bar outcome-failed" data-outcome="failed" data-label="main" x="170""#),
            "{svg}"
        );
        assert!(svg.contains(r#"data-outcome="succeeded" data-label="exit handler""#));
        assert!(svg.contains("failed after 30s"));
        assert!(svg.contains("+40s"));
        assert_eq!(tick_label(250, 1000), "+0.2s");
    }

    #[test]
    fn a_running_bar_reaches_now_and_an_unstarted_one_is_a_placeholder() {
        let t = Timeline::fit(
            vec![
                bar("main", Some(1_000), None, Outcome::Running),
                bar("exit handler", None, None, Outcome::NotStarted),
            ],
            11_000,
            |_| "start".into(),
        );
        assert_eq!(t.end_ms, 11_000);
        let svg = t.render().into_string();
        assert!(svg.contains("running for 10s"));
        assert!(svg.contains(r#"data-outcome="not started""#));
        assert!(svg.contains(">not started</text>"));
    }

    #[test]
    fn labels_are_escaped_inside_the_svg() {
        let t = Timeline::fit(
            vec![bar(
                "<script>alert(1)</script>",
                Some(0),
                Some(1),
                Outcome::Succeeded,
            )],
            1,
            |_| "\"><img src=x onerror=alert(1)>".into(),
        );
        let svg = t.render().into_string();
        assert!(!svg.contains("<script>"));
        assert!(!svg.contains("<img"));
        assert!(svg.contains("&lt;script&gt;"));
    }
}
