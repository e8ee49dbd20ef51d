//! The CronOMJob pages: the instance list, and one CronOMJob with its recent runs (the OMJobs it
//! owns) on a timeline and its next five slots in its own time zone, computed by
//! [`omjob_api::schedule`], the same code the controller fires by.

use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use kube::{Api, Resource as _, ResourceExt as _, api::ListParams};
use omjob_api::{CronOMJob, OMJob, Phase, schedule::Schedule};
use omjob_panel::{
    InstanceList, InstancePage, NextSlots, Timeline, Tone,
    instance::{ChildRow, Status},
    slots::Slot,
    timeline::{Bar, Outcome},
};

use super::{ENTRY_CRONOMJOB, PanelState, omjob_page, read, redact};
use crate::{decode::Lenient, http::OPERATOR_NAME};

/// How many upcoming slots are listed.
pub const NEXT_SLOTS: usize = 5;
/// How many runs the timeline shows (the newest).
pub const RECENT_RUNS: usize = 10;

fn cron_status(cron: &CronOMJob) -> Status {
    let active = cron
        .status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .map_or(0, Vec::len);
    if cron.spec.is_suspended() {
        Status {
            label: "Suspended".to_owned(),
            tone: Tone::Waiting,
        }
    } else if active > 0 {
        Status {
            label: format!("{active} active"),
            tone: Tone::Active,
        }
    } else {
        Status {
            label: "Scheduled".to_owned(),
            tone: Tone::Good,
        }
    }
}

/// The CronOMJobs in every watched namespace, by namespace and name.
///
/// # Errors
/// The API server refused a list.
pub async fn list(state: &PanelState) -> Result<InstanceList, kube::Error> {
    let mut items = read::list::<Lenient<CronOMJob>>(&state.client, &state.config.watch_namespaces).await?;
    items.sort_by(|a, b| {
        (a.meta().namespace.as_deref(), a.meta().name.as_deref())
            .cmp(&(b.meta().namespace.as_deref(), b.meta().name.as_deref()))
    });
    let instances = items
        .iter()
        .map(|c| {
            let meta = c.meta();
            let (status, summary) = match &c.0 {
                Ok(cron) => (
                    cron_status(cron),
                    format!("{} ({})", cron.spec.schedule, cron.spec.time_zone_or_default()),
                ),
                Err(bad) => (read::invalid_spec(), bad.error.to_string()),
            };
            read::instance_row(meta, status, summary)
        })
        .collect();
    Ok(InstanceList {
        operator: OPERATOR_NAME.to_owned(),
        crd: ENTRY_CRONOMJOB.to_owned(),
        kind: "CronOMJob".to_owned(),
        scope: read::scope(&state.config.watch_namespaces),
        instances,
    })
}

/// The next [`NEXT_SLOTS`] slots after `now`, in the schedule's zone.
#[must_use]
pub fn next_slots(cron: &CronOMJob, now: Timestamp) -> NextSlots {
    let zone_name = cron.spec.time_zone_or_default().to_owned();
    let mut out = NextSlots {
        schedule: cron.spec.schedule.clone(),
        time_zone: zone_name.clone(),
        suspended: cron.spec.is_suspended(),
        slots: vec![],
        error: None,
    };
    let parsed = Schedule::parse(&cron.spec.schedule, &zone_name);
    let zone = TimeZone::get(&zone_name);
    match (parsed, zone) {
        (Ok(schedule), Ok(zone)) => {
            let mut cursor = now;
            while out.slots.len() < NEXT_SLOTS {
                let Some(next) = schedule.next_after(cursor) else {
                    break;
                };
                out.slots.push(Slot {
                    local: next
                        .to_zoned(zone.clone())
                        .strftime("%Y-%m-%d %H:%M %Z (%a)")
                        .to_string(),
                    utc: read::time(next),
                });
                cursor = next;
            }
        }
        (Err(e), _) => out.error = Some(e.to_string()),
        (_, Err(_)) => out.error = Some(format!("unknown time zone {zone_name:?}")),
    }
    out
}

fn run_outcome(phase: Option<Phase>) -> Outcome {
    match phase {
        Some(Phase::Succeeded) => Outcome::Succeeded,
        Some(Phase::Failed) => Outcome::Failed,
        Some(Phase::Running | Phase::ExitHandlerRunning) => Outcome::Running,
        Some(Phase::Pending) | None => Outcome::NotStarted,
    }
}

/// One CronOMJob's page, or `None` if it does not exist.
///
/// # Errors
/// The API server refused to get the CronOMJob or list its OMJobs.
pub async fn page(state: &PanelState, ns: &str, name: &str) -> Result<Option<InstancePage>, kube::Error> {
    let client = &state.client;
    let Some(found) = Api::<Lenient<CronOMJob>>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
    else {
        return Ok(None);
    };
    let meta = found.meta().clone();
    let uid = meta.uid.clone().unwrap_or_default();
    let mut notes = Vec::new();
    let cron = match found.0 {
        Ok(cron) => Some(cron),
        Err(bad) => {
            notes.push(format!(
                "This CronOMJob does not decode, so it schedules nothing: {}",
                bad.error
            ));
            None
        }
    };
    let mut runs: Vec<OMJob> = Api::<Lenient<OMJob>>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|o| o.0.ok())
        .filter(|o| {
            o.owner_references()
                .iter()
                .any(|r| r.uid == uid && r.kind == "CronOMJob")
        })
        .collect();
    runs.sort_by_key(|o| o.meta().creation_timestamp.as_ref().map(|t| t.0));
    let recent: Vec<&OMJob> = runs.iter().rev().take(RECENT_RUNS).rev().collect();

    let now = state.clock.now();
    let bars: Vec<Bar> = recent
        .iter()
        .map(|o| {
            let st = o.status.as_ref();
            let phase = st.and_then(|s| s.phase);
            let start = st
                .and_then(|s| s.start_time.as_ref())
                .or(o.meta().creation_timestamp.as_ref())
                .map(|t| t.0.as_millisecond());
            let end = st
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0.as_millisecond());
            let outcome = run_outcome(phase);
            Bar {
                label: o.meta().name.clone().unwrap_or_default(),
                detail: st.and_then(|s| s.message.clone()).unwrap_or_default(),
                // A pending run has a creation time but has not started: draw it as not started.
                start_ms: if outcome == Outcome::NotStarted {
                    None
                } else {
                    start
                },
                end_ms: if outcome == Outcome::Running { None } else { end },
                outcome,
            }
        })
        .collect();
    let timeline = (!bars.is_empty()).then(|| {
        Timeline::fit(bars, now.as_millisecond(), |ms| {
            Timestamp::from_millisecond(ms)
                .map(read::time)
                .unwrap_or_default()
        })
    });

    let mut children: Vec<ChildRow> = runs
        .iter()
        .rev()
        .map(|o| ChildRow {
            kind: "OMJob".to_owned(),
            name: o.meta().name.clone().unwrap_or_default(),
            phase: omjob_page::phase_status(o.status.as_ref().and_then(|s| s.phase)).label,
            present: true,
        })
        .collect();
    let status = cron.as_ref().and_then(|c| c.status.clone()).unwrap_or_default();
    for active in status.active.iter().flatten() {
        if !children.iter().any(|c| c.name == active.name) {
            children.push(ChildRow {
                kind: "OMJob".to_owned(),
                name: active.name.clone(),
                phase: "active (listed in status)".to_owned(),
                present: false,
            });
        }
    }

    let events = match read::events(client, ns, "CronOMJob", name).await {
        Ok(events) => events,
        Err(e) => {
            notes.push(format!("Events could not be read: {}", read::describe(&e)));
            vec![]
        }
    };

    let mut fields = Vec::new();
    if let Some(t) = &status.last_schedule_time {
        fields.push(("lastScheduleTime".to_owned(), read::time(t.0)));
    }
    if let Some(t) = &status.last_successful_time {
        fields.push(("lastSuccessfulTime".to_owned(), read::time(t.0)));
    }
    if let Some(n) = &status.last_omjob_name {
        fields.push(("lastOMJobName".to_owned(), n.clone()));
    }
    if let Some(m) = &status.message {
        fields.push(("message".to_owned(), m.clone()));
    }
    fields.push((
        "active".to_owned(),
        status.active.as_ref().map_or(0, Vec::len).to_string(),
    ));

    let spec = cron.as_ref().and_then(|c| {
        let mut v = serde_json::to_value(&c.spec).ok()?;
        redact::hide_env_values(&mut v);
        serde_yaml_ng::to_string(&v).ok()
    });

    Ok(Some(InstancePage {
        operator: OPERATOR_NAME.to_owned(),
        crd: ENTRY_CRONOMJOB.to_owned(),
        kind: "CronOMJob".to_owned(),
        namespace: Some(ns.to_owned()),
        name: name.to_owned(),
        status: cron.as_ref().map(cron_status),
        metadata: omjob_page::metadata_rows(&meta),
        spec,
        status_fields: fields,
        conditions: vec![],
        timeline,
        stages: vec![],
        next_slots: cron.as_ref().map(|c| next_slots(c, now)),
        children,
        events,
        notes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(schedule: &str, zone: Option<&str>) -> CronOMJob {
        serde_json::from_value(serde_json::json!({
            "apiVersion": omjob_api::API_VERSION, "kind": "CronOMJob",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"schedule": schedule, "timeZone": zone,
                     "omJobSpec": {"mainPodSpec": {"image": "i", "command": ["true"]}}}
        }))
        .unwrap()
    }

    #[test]
    fn five_next_slots_in_the_schedules_zone() {
        let now: Timestamp = "2026-03-28T12:00:00Z".parse().unwrap();
        let slots = next_slots(&cron("30 2 * * *", Some("Europe/Berlin")), now);
        assert_eq!(slots.error, None);
        let local: Vec<&str> = slots.slots.iter().map(|s| s.local.as_str()).collect();
        // 2026-03-29 is the spring-forward day in Berlin: 02:30 does not exist and fires at 03:00.
        assert_eq!(
            local,
            [
                "2026-03-29 03:00 CEST (Sun)",
                "2026-03-30 02:30 CEST (Mon)",
                "2026-03-31 02:30 CEST (Tue)",
                "2026-04-01 02:30 CEST (Wed)",
                "2026-04-02 02:30 CEST (Thu)",
            ]
        );
        assert_eq!(slots.slots[1].utc, "2026-03-30 00:30:00 UTC");
    }

    #[test]
    fn an_invalid_schedule_says_why() {
        let slots = next_slots(&cron("not cron", None), Timestamp::UNIX_EPOCH);
        assert!(slots.slots.is_empty());
        assert!(slots.error.unwrap().contains("spec.schedule"));
    }
}
