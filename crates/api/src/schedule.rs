//! A CronOMJob's schedule: its cron expression read in its time zone, and the slots it fires at.
//!
//! Parsing and next-fire maths are done by `croner` on `jiff` zoned times (jiff is what
//! k8s-openapi's `Time` wraps, so slots go into status without conversion); zones come from
//! jiff's time-zone database (the system's `/usr/share/zoneinfo`, or the copy bundled into the
//! binary when the image has none). This module only fixes the dialect to what Kubernetes'
//! CronJob accepts and reports errors that name the field.
//!
//! # Dialect
//! Five fields (`minute hour day-of-month month day-of-week`) with lists, ranges, steps
//! (`5/15` meaning `5-59/15`, as Kubernetes' parser reads it), month and weekday names, `?` (same
//! as `*`) and the descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight` and `@hourly`. Day-of-month and day-of-week combine as in Vixie cron and
//! Kubernetes: when either field starts with `*` (or `?`) a day must match both, otherwise it
//! may match either. croner's extensions (`L`, `W`, `#`) are accepted too.
//!
//! # Daylight-saving changes (croner's rules, which differ from Kubernetes')
//! * A slot whose minute and hour are single values (`30 2 * * *`) and that falls into a skipped
//!   local hour fires once, at the first instant after the gap (03:00 when 02:00 jumps to 03:00).
//!   Kubernetes' parser skips it for that day.
//! * Such a slot in a repeated local hour fires once, at its first occurrence. Kubernetes fires
//!   it twice.
//! * Schedules with a list, range, step or `*` in the minute or hour field follow real time:
//!   local times that do not exist are skipped, and a repeated hour's times fire in both passes.

use croner::{Cron, parser::CronParser, parser::Seconds, parser::Year};
use jiff::{Timestamp, Zoned, tz::TimeZone};

/// Descriptors croner does not know, mapped to an equivalent it does.
const DESCRIPTOR_ALIASES: [(&str, &str); 1] = [("@midnight", "@daily")];
/// Descriptors accepted as they are (croner expands them).
const DESCRIPTORS: [&str; 6] = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"];

/// Why a schedule could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// `spec.schedule` is not a valid cron expression.
    #[error("invalid spec.schedule {schedule:?}: {reason}")]
    InvalidSchedule {
        /// The expression as written.
        schedule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `spec.timeZone` is not a known IANA zone.
    #[error("invalid spec.timeZone {zone:?}: not a known IANA time zone")]
    UnknownTimeZone {
        /// The zone as written.
        zone: String,
    },
}

impl ScheduleError {
    /// The Kubernetes CronJob controller's event reason for this error.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::InvalidSchedule { .. } => "InvalidSchedule",
            Self::UnknownTimeZone { .. } => "UnknownTimeZone",
        }
    }
}

/// A parsed schedule in its zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: TimeZone,
}

/// The slots a CronOMJob missed in an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The latest slot in the interval.
    pub most_recent: Option<Timestamp>,
    /// How many slots the interval holds, counted up to the cap it was asked for plus one.
    pub count: usize,
}

impl Schedule {
    /// Parses `schedule` and looks `zone` up.
    ///
    /// # Errors
    /// [`ScheduleError::InvalidSchedule`] for an expression that is not five fields or a known
    /// descriptor, or has a value out of range; [`ScheduleError::UnknownTimeZone`] for a zone
    /// the time-zone database does not hold (an empty name included).
    pub fn parse(schedule: &str, zone: &str) -> Result<Self, ScheduleError> {
        let cron = parse_cron(schedule)?;
        let unknown = || ScheduleError::UnknownTimeZone {
            zone: zone.to_owned(),
        };
        if zone.trim().is_empty() {
            return Err(unknown());
        }
        let zone = jiff::tz::db().get(zone).map_err(|_| unknown())?;
        let parsed = Self { cron, zone };
        // A pattern like `0 0 30 2 *` parses but never matches. Day and weekday patterns repeat
        // within 400 years, so no slot after 2000 means none ever: refuse it now rather than
        // search for one on every pass.
        if parsed.next_after(Timestamp::constant(946_684_800, 0)).is_none() {
            return Err(invalid(schedule, "it never fires (no such date)"));
        }
        Ok(parsed)
    }

    /// The first slot strictly after `t`, or `None` if there is none (before the year 5000).
    #[must_use]
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let zoned = t.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }

    /// The latest slot at or before `t`.
    #[must_use]
    pub fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let zoned = t.to_zoned(self.zone.clone());
        self.cron
            .find_previous_occurrence(&zoned, true)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }

    /// The slots in `(after, until]`: the latest, and how many there are. Counting stops past
    /// `cap`, so a CronOMJob that missed years of minutes costs `cap` steps, not millions.
    #[must_use]
    pub fn missed(&self, after: Timestamp, until: Timestamp, cap: usize) -> Missed {
        if after >= until {
            return Missed {
                most_recent: None,
                count: 0,
            };
        }
        let most_recent = self.latest_at_or_before(until).filter(|t| *t > after);
        let mut count = 0;
        if most_recent.is_some() {
            let mut cursor = after;
            while count <= cap {
                match self.next_after(cursor) {
                    Some(t) if t <= until => {
                        count += 1;
                        cursor = t;
                    }
                    _ => break,
                }
            }
        }
        Missed { most_recent, count }
    }
}

fn invalid(schedule: &str, reason: impl Into<String>) -> ScheduleError {
    ScheduleError::InvalidSchedule {
        schedule: schedule.to_owned(),
        reason: reason.into(),
    }
}

fn parse_cron(schedule: &str) -> Result<Cron, ScheduleError> {
    let trimmed = schedule.trim();
    let expr = if trimmed.starts_with('@') {
        let lower = trimmed.to_ascii_lowercase();
        if let Some((_, to)) = DESCRIPTOR_ALIASES.iter().find(|(from, _)| *from == lower) {
            (*to).to_owned()
        } else if DESCRIPTORS.contains(&lower.as_str()) {
            lower
        } else {
            return Err(invalid(
                schedule,
                "unknown descriptor; use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly",
            ));
        }
    } else {
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(invalid(
                schedule,
                format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                    fields.len()
                ),
            ));
        }
        trimmed.to_owned()
    };
    // Vixie cron and Kubernetes: a day must match both day fields when either starts with `*`,
    // either of them otherwise. croner only applies AND to a bare `*`, so say it explicitly.
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let starred = |i: usize| fields.get(i).is_some_and(|f| f.starts_with(['*', '?']));
    let dom_and_dow = starred(2) || starred(4);
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(dom_and_dow)
        // `5/15` is `5-59/15` in Kubernetes' parser.
        .sloppy_ranges(true)
        .build();
    let cron = parser
        .parse(&expr)
        .map_err(|e| invalid(schedule, e.to_string()))?;
    Ok(cron)
}

/// How late a slot may start when `startingDeadlineSeconds` is ≤ 0 ("no catch-up") and still
/// count as on time.
///
/// The value only has to cover the controller's own lateness, never an outage: a burst of
/// slots (the cron bench saw 1,000 CronOMJobs due in one minute all started within about 20 s
/// on 2 busy cores), plus a leader failover (a 15 s Lease expiring, a 2 s retry, the new
/// leader's initial list), plus a short API-server blip. That is about 40 s at worst; 120 s
/// leaves three times that. It is still short against the intervals pipelines are scheduled
/// at (hourly, daily), so a slot missed while no operator ran is not caught up later.
pub const ON_TIME_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

#[cfg(test)]
mod tests {
    //! Next-fire tables at fixed instants. Expected values were worked out by hand from a
    //! calendar (weekdays, month lengths, leap years) and the zones' published DST rules:
    //! America/New_York switches at 02:00 local on the second Sunday of March (to UTC-4) and the
    //! first Sunday of November (to UTC-5); Australia/Sydney at 02:00 local on the first Sunday
    //! of October (to UTC+11) and 03:00 local on the first Sunday of April (to UTC+10).
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
    }

    /// The next `n` slots after `from`, as RFC 3339 UTC strings.
    fn next_n(schedule: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(schedule, zone).unwrap_or_else(|e| panic!("{schedule}: {e}"));
        let mut t = ts(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t.to_string());
        }
        out
    }

    #[track_caller]
    fn check(schedule: &str, zone: &str, from: &str, expected: &[&str]) {
        assert_eq!(
            next_n(schedule, zone, from, expected.len()),
            expected,
            "{schedule} in {zone} from {from}"
        );
    }

    #[test]
    fn every_minute_fires_at_the_next_whole_minute() {
        check(
            "* * * * *",
            "UTC",
            "2026-01-01T10:00:00Z",
            &["2026-01-01T10:01:00Z", "2026-01-01T10:02:00Z"],
        );
        // Mid-minute, with sub-second precision.
        check(
            "* * * * *",
            "UTC",
            "2026-01-01T10:00:59.999Z",
            &["2026-01-01T10:01:00Z"],
        );
    }

    #[test]
    fn lists_ranges_and_steps() {
        check(
            "0,30 9-10 * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T09:00:00Z",
                "2026-01-01T09:30:00Z",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:30:00Z",
                "2026-01-02T09:00:00Z",
            ],
        );
        check(
            "*/20 */6 * * *",
            "UTC",
            "2026-01-01T05:50:00Z",
            &[
                "2026-01-01T06:00:00Z",
                "2026-01-01T06:20:00Z",
                "2026-01-01T06:40:00Z",
                "2026-01-01T12:00:00Z",
            ],
        );
        check(
            "10-50/20 1 * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T01:10:00Z",
                "2026-01-01T01:30:00Z",
                "2026-01-01T01:50:00Z",
                "2026-01-02T01:10:00Z",
            ],
        );
        // `5/15` starts at 5 and runs to the end of the range, as in Kubernetes.
        check(
            "5/15 0 * * *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T00:05:00Z",
                "2026-01-01T00:20:00Z",
                "2026-01-01T00:35:00Z",
                "2026-01-01T00:50:00Z",
            ],
        );
    }

    #[test]
    fn month_and_weekday_names_in_any_case() {
        // 2026-01-01 is a Thursday.
        check(
            "0 8 * * mon-Fri",
            "UTC",
            "2026-01-01T09:00:00Z",
            &[
                "2026-01-02T08:00:00Z",
                "2026-01-05T08:00:00Z",
                "2026-01-06T08:00:00Z",
            ],
        );
        check(
            "0 0 1 JAN,jul *",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"],
        );
        // 7 is Sunday, like 0. 2026-01-04 is a Sunday.
        check(
            "0 0 * * 7",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-04T00:00:00Z"],
        );
    }

    #[test]
    fn question_mark_is_a_wildcard() {
        check(
            "0 12 ? * WED",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-07T12:00:00Z", "2026-01-14T12:00:00Z"],
        );
        check(
            "0 12 15 * ?",
            "UTC",
            "2026-01-01T00:00:00Z",
            &["2026-01-15T12:00:00Z", "2026-02-15T12:00:00Z"],
        );
    }

    #[test]
    fn descriptors() {
        let from = "2026-03-15T10:30:00Z"; // a Sunday
        for (d, next) in [
            ("@yearly", "2027-01-01T00:00:00Z"),
            ("@annually", "2027-01-01T00:00:00Z"),
            ("@monthly", "2026-04-01T00:00:00Z"),
            ("@weekly", "2026-03-22T00:00:00Z"),
            ("@daily", "2026-03-16T00:00:00Z"),
            ("@midnight", "2026-03-16T00:00:00Z"),
            ("@hourly", "2026-03-15T11:00:00Z"),
            ("@HOURLY", "2026-03-15T11:00:00Z"),
        ] {
            check(d, "UTC", from, &[next]);
        }
        // Descriptors are read in the zone too: midnight in Paris is 23:00 UTC in winter.
        check(
            "@daily",
            "Europe/Paris",
            "2026-01-10T12:00:00Z",
            &["2026-01-10T23:00:00Z"],
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // The 13th or any Friday (Vixie cron): 2026-02-06 Fri, 02-13 Fri (and 13th), 02-20 Fri,
        // 02-27 Fri, 03-06 Fri, 03-13 Fri.
        check(
            "0 0 13 * 5",
            "UTC",
            "2026-02-01T00:00:00Z",
            &[
                "2026-02-06T00:00:00Z",
                "2026-02-13T00:00:00Z",
                "2026-02-20T00:00:00Z",
                "2026-02-27T00:00:00Z",
                "2026-03-06T00:00:00Z",
            ],
        );
        // 1st or 15th, or any Monday: 2026-06-01 is a Monday.
        check(
            "0 0 1,15 * MON",
            "UTC",
            "2026-06-01T00:00:00Z",
            &[
                "2026-06-08T00:00:00Z",
                "2026-06-15T00:00:00Z",
                "2026-06-22T00:00:00Z",
                "2026-06-29T00:00:00Z",
                "2026-07-01T00:00:00Z",
            ],
        );
    }

    #[test]
    fn a_starred_day_field_means_both_must_match() {
        // Day-of-month `*/2` starts with `*`: odd days that are also Mondays (Kubernetes and
        // Vixie cron read it this way). 2026-06: Mondays 1, 8, 15, 22, 29 -> odd: 1, 15, 29.
        check(
            "0 0 */2 * 1",
            "UTC",
            "2026-05-31T00:00:00Z",
            &[
                "2026-06-01T00:00:00Z",
                "2026-06-15T00:00:00Z",
                "2026-06-29T00:00:00Z",
            ],
        );
        // `*` in day-of-month: every Monday.
        check(
            "0 0 * * 1",
            "UTC",
            "2026-05-31T00:00:00Z",
            &["2026-06-01T00:00:00Z", "2026-06-08T00:00:00Z"],
        );
    }

    #[test]
    fn month_ends() {
        // The 31st only exists in seven months.
        check(
            "0 0 31 * *",
            "UTC",
            "2026-01-31T00:00:00Z",
            &[
                "2026-03-31T00:00:00Z",
                "2026-05-31T00:00:00Z",
                "2026-07-31T00:00:00Z",
                "2026-08-31T00:00:00Z",
            ],
        );
        // The 30th skips February.
        check(
            "0 0 30 * *",
            "UTC",
            "2026-01-30T00:00:00Z",
            &["2026-03-30T00:00:00Z"],
        );
        // Last minute of the year rolls into the next.
        check(
            "59 23 31 12 *",
            "UTC",
            "2026-12-31T23:59:00Z",
            &["2027-12-31T23:59:00Z"],
        );
    }

    #[test]
    fn leap_days() {
        // 29 February: 2028 is the next leap year after 2026; 2100 is not a leap year.
        check(
            "0 0 29 2 *",
            "UTC",
            "2026-03-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        );
        check(
            "0 0 29 2 *",
            "UTC",
            "2096-03-01T00:00:00Z",
            &["2104-02-29T00:00:00Z"],
        );
        // The day after 28 February in a leap year is the 29th.
        check(
            "0 0 * 2 *",
            "UTC",
            "2028-02-28T00:00:00Z",
            &["2028-02-29T00:00:00Z"],
        );
    }

    #[test]
    fn new_york_spring_forward_fixed_time_fires_once_after_the_gap() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT. 02:30 does not exist that day; it fires at
        // 03:00 EDT (07:00Z), then 02:30 EDT (06:30Z) on the 9th.
        check(
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        );
        // The day before: 02:30 EST = 07:30Z.
        check(
            "30 2 * * *",
            "America/New_York",
            "2026-03-06T12:00:00Z",
            &["2026-03-07T07:30:00Z"],
        );
    }

    #[test]
    fn new_york_spring_forward_hourly_skips_the_missing_hour() {
        // `0 * * * *`: 01:00 EST (06:00Z), then 03:00 EDT (07:00Z): one real hour apart, no 02:00.
        check(
            "0 * * * *",
            "America/New_York",
            "2026-03-08T05:30:00Z",
            &[
                "2026-03-08T06:00:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T08:00:00Z",
            ],
        );
    }

    #[test]
    fn new_york_fall_back_fixed_time_fires_once() {
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens at 05:30Z and 06:30Z.
        // A fixed-time slot fires at the first only; the next is 01:30 EST on the 2nd (06:30Z).
        check(
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        );
    }

    #[test]
    fn new_york_fall_back_interval_fires_in_both_passes() {
        // `*/30 * * * *` over the repeated hour: 01:00 EDT, 01:30 EDT, 01:00 EST, 01:30 EST, 02:00 EST.
        check(
            "*/30 * * * *",
            "America/New_York",
            "2026-11-01T04:45:00Z",
            &[
                "2026-11-01T05:00:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-01T07:00:00Z",
            ],
        );
    }

    #[test]
    fn sydney_spring_forward_in_october() {
        // 2026-10-04: 02:00 AEST (UTC+10) jumps to 03:00 AEDT (UTC+11). 02:30 fires at 03:00
        // AEDT = 2026-10-03T16:00Z; the next day 02:30 AEDT = 2026-10-04T15:30Z.
        check(
            "30 2 * * *",
            "Australia/Sydney",
            "2026-10-03T00:00:00Z",
            &["2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"],
        );
        // The day before, 02:30 AEST = 2026-10-02T16:30Z.
        check(
            "30 2 * * *",
            "Australia/Sydney",
            "2026-10-02T00:00:00Z",
            &["2026-10-02T16:30:00Z"],
        );
    }

    #[test]
    fn sydney_fall_back_in_april() {
        // 2026-04-05: 03:00 AEDT falls back to 02:00 AEST; 02:30 happens at 15:30Z (AEDT) and
        // 16:30Z (AEST) on the 4th. A fixed-time slot fires once, at the first.
        check(
            "30 2 * * *",
            "Australia/Sydney",
            "2026-04-04T00:00:00Z",
            &["2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"],
        );
        // Hourly at :00 fires at 02:00 AEDT (15:00Z) and 02:00 AEST (16:00Z), then 03:00 AEST.
        check(
            "0 * * * *",
            "Australia/Sydney",
            "2026-04-04T14:30:00Z",
            &[
                "2026-04-04T15:00:00Z",
                "2026-04-04T16:00:00Z",
                "2026-04-04T17:00:00Z",
            ],
        );
    }

    #[test]
    fn midnight_in_a_zone_is_its_own_midnight() {
        // Sydney in January is UTC+11: midnight on the 10th is 13:00Z on the 9th.
        check(
            "0 0 * * *",
            "Australia/Sydney",
            "2026-01-09T12:00:00Z",
            &["2026-01-09T13:00:00Z"],
        );
        check(
            "0 0 * * *",
            "America/New_York",
            "2026-01-09T12:00:00Z",
            &["2026-01-10T05:00:00Z"],
        );
    }

    #[test]
    fn latest_slot_at_or_before_includes_the_instant() {
        let s = Schedule::parse("*/15 * * * *", "UTC").unwrap();
        assert_eq!(
            s.latest_at_or_before(ts("2026-01-01T10:15:00Z")),
            Some(ts("2026-01-01T10:15:00Z"))
        );
        assert_eq!(
            s.latest_at_or_before(ts("2026-01-01T10:29:59.5Z")),
            Some(ts("2026-01-01T10:15:00Z"))
        );
    }

    #[test]
    fn missed_counts_slots_in_the_half_open_interval_and_stops_at_the_cap() {
        let s = Schedule::parse("* * * * *", "UTC").unwrap();
        // (10:00, 10:05]: 10:01..10:05.
        assert_eq!(
            s.missed(ts("2026-01-01T10:00:00Z"), ts("2026-01-01T10:05:30Z"), 100),
            Missed {
                most_recent: Some(ts("2026-01-01T10:05:00Z")),
                count: 5
            }
        );
        // A day of minutes stops counting at cap + 1.
        let m = s.missed(ts("2026-01-01T00:00:00Z"), ts("2026-01-02T00:00:00Z"), 100);
        assert_eq!(m.count, 101);
        assert_eq!(m.most_recent, Some(ts("2026-01-02T00:00:00Z")));
        // Nothing after the start.
        assert_eq!(
            s.missed(ts("2026-01-01T10:00:00Z"), ts("2026-01-01T10:00:30Z"), 100),
            Missed {
                most_recent: None,
                count: 0
            }
        );
        // A start after the end (clock behind creation).
        assert_eq!(
            s.missed(ts("2026-01-01T10:00:00Z"), ts("2026-01-01T09:00:00Z"), 100)
                .count,
            0
        );
    }

    #[test]
    fn invalid_schedules_name_the_field_and_the_problem() {
        for (bad, needle) in [
            ("", "expected 5 fields"),
            ("* * * *", "expected 5 fields"),
            ("0 * * * * *", "expected 5 fields"),
            ("61 * * * *", "spec.schedule"),
            ("* 24 * * *", "spec.schedule"),
            ("* * 32 * *", "spec.schedule"),
            ("* * * 13 *", "spec.schedule"),
            ("* * * * 8", "spec.schedule"),
            ("five * * * *", "spec.schedule"),
            ("@every 5m", "unknown descriptor"),
            ("@reboot", "unknown descriptor"),
            ("CRON_TZ=UTC * * * * *", "expected 5 fields"),
            ("0 0 30 2 *", "never fires"),
            ("0 0 31 4,6 *", "never fires"),
        ] {
            let err = Schedule::parse(bad, "UTC").expect_err(bad);
            assert_eq!(err.reason(), "InvalidSchedule", "{bad}");
            let text = err.to_string();
            assert!(text.contains("spec.schedule"), "{bad}: {text}");
            assert!(text.contains(needle), "{bad}: {text}");
            assert!(
                text.contains(&format!("{bad:?}")),
                "{bad}: {text} names the value"
            );
        }
    }

    #[test]
    fn unknown_zones_name_the_field() {
        for zone in ["Mars/Olympus_Mons", "", "America/NewYork"] {
            let err = Schedule::parse("* * * * *", zone).expect_err(zone);
            assert_eq!(
                err,
                ScheduleError::UnknownTimeZone {
                    zone: zone.to_owned()
                }
            );
            assert_eq!(err.reason(), "UnknownTimeZone");
            assert!(err.to_string().contains("spec.timeZone"), "{err}");
        }
        assert!(Schedule::parse("* * * * *", "Europe/Paris").is_ok());
    }
}
