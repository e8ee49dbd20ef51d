//! CronOMJobs on the testbed: runs are created for due slots and go through the whole OMJob
//! lifecycle (the OMJob controller runs in-process too); concurrency policies, history limits,
//! suspend, restarts and bad input behave as Kubernetes' CronJob does. The CronOMJob controller
//! reads an injected [`ManualClock`] (except in the wall-clock test), so slots are due when a
//! test says, not when the minute turns. Both controllers run under a token bound to
//! deploy/rbac/clusterrole.yaml.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::cron::{CronHarness, cronomjob, manual_clock};
use k8s_openapi::{api::core::v1::ConfigMap, jiff::Timestamp};
use kube::{
    ResourceExt as _,
    api::{DeleteParams, PostParams},
};
use omjob_api::{CronOMJob, OMJob, Phase, labels, names, schedule::Schedule};
use omjob_operator::{
    clock::SystemClock,
    cronomjob::{decide::ON_TIME_GRACE, spawn::SCHEDULED_AT_ANNOTATION},
};
use serde_json::json;

fn created_at(c: &CronOMJob) -> Timestamp {
    c.metadata.creation_timestamp.clone().unwrap().0
}

/// The first whole minute after `t`.
fn next_minute(t: Timestamp) -> Timestamp {
    Timestamp::from_second((t.as_second() / 60 + 1) * 60).unwrap()
}

fn plus(t: Timestamp, secs: i64) -> Timestamp {
    Timestamp::from_second(t.as_second() + secs).unwrap()
}

fn phase(o: &OMJob) -> Option<Phase> {
    o.status.as_ref().and_then(|s| s.phase)
}

fn name_of(o: &OMJob) -> &str {
    o.metadata.name.as_deref().unwrap()
}

fn message(c: &CronOMJob) -> &str {
    c.status.as_ref().and_then(|s| s.message.as_deref()).unwrap_or("")
}

#[tokio::test]
async fn every_minute_on_the_wall_clock_runs_within_its_minute_through_the_whole_lifecycle() {
    let ch = CronHarness::start("cron-wall", Arc::new(SystemClock)).await;
    let cron = ch
        .create(cronomjob(&ch, "wall", "* * * * *", "echo ingesting", |_| {}))
        .await;
    let runs = ch.wait_runs(&cron, "run", |r| !r.is_empty()).await;
    let run = &runs[0];

    // Created within the minute of its slot, and for the first slot after the CronOMJob existed.
    let slot: Timestamp = run.annotations()[SCHEDULED_AT_ANNOTATION].parse().unwrap();
    assert_eq!(slot, next_minute(created_at(&cron)));
    let lag = run
        .metadata
        .creation_timestamp
        .clone()
        .unwrap()
        .0
        .duration_since(slot);
    assert!(lag.as_secs() < 60, "created {lag:?} after its slot");

    // The whole OMJob lifecycle: main pod, then the exit handler once, told success, with the
    // placeholders filled.
    let done = ch
        .wait_runs(&cron, "finished run", |r| {
            r.first().is_some_and(|o| phase(o) == Some(Phase::Succeeded))
        })
        .await;
    let run = &done[0];
    let run_id = run.labels()[labels::LABEL_APP_RUN_ID].clone();
    assert_eq!(
        ch.h.exit_runs("wall"),
        [format!("success {} {run_id}", name_of(run))]
    );
    let status = ch
        .wait_cron("wall", "lastSuccessfulTime", |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.last_successful_time.is_some())
        })
        .await
        .status
        .unwrap();
    assert_eq!(status.last_schedule_time.unwrap().0, slot);
    assert_eq!(status.last_omjob_name.as_deref(), Some(name_of(run)));
    assert_eq!(ch.events("wall", "SuccessfulCreate").await.len(), 1);
}

#[tokio::test]
async fn an_operator_restarted_across_a_slot_runs_that_slot_exactly_once() {
    let clock = manual_clock();
    let mut ch = CronHarness::start("cron-restart", Arc::new(clock.clone())).await;
    let cron = ch
        .create(cronomjob(&ch, "restart", "* * * * *", "echo ingesting", |_| {}))
        .await;
    ch.wait_cron("restart", "first status", |c| message(c).starts_with("Waiting"))
        .await;

    // Down across the slot.
    ch.stop_cron().await;
    let slot = next_minute(created_at(&cron));
    clock.set(plus(slot, 1));
    ch.start_cron();
    let runs = ch.wait_runs(&cron, "run for the slot", |r| !r.is_empty()).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        name_of(&runs[0]),
        names::spawned_omjob_name("restart", slot.as_second()).unwrap()
    );
    ch.wait_cron("restart", "recorded slot", |c| {
        c.status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .is_some_and(|t| t.0 == slot)
    })
    .await;

    // Restarted again at the same instant: nothing new.
    ch.stop_cron().await;
    ch.start_cron();
    ch.settle("restart").await;
    assert_eq!(ch.runs(&cron).await.len(), 1);

    // Down across three slots: only the most recent runs.
    ch.stop_cron().await;
    clock.set(plus(slot, 3 * 60 + 1));
    ch.start_cron();
    let runs = ch
        .wait_runs(&cron, "run for the latest slot", |r| r.len() >= 2)
        .await;
    ch.settle("restart").await;
    let runs_now = ch.runs(&cron).await;
    assert_eq!(
        runs_now.len(),
        2,
        "{:?}",
        runs_now.iter().map(name_of).collect::<Vec<_>>()
    );
    assert_eq!(
        name_of(&runs[1]),
        names::spawned_omjob_name("restart", slot.as_second() + 180).unwrap()
    );
}

#[tokio::test]
async fn a_deadline_of_zero_runs_slots_on_time_and_does_not_catch_up_after_an_outage() {
    // OpenMetadata's server writes `startingDeadlineSeconds: 0`, meaning "no catch-up". Every
    // ten minutes, so the latest slot can be older than the on-time grace.
    let clock = manual_clock();
    let mut ch = CronHarness::start("cron-zero", Arc::new(clock.clone())).await;
    let cron = ch
        .create(cronomjob(&ch, "zero", "*/10 * * * *", "true", |c| {
            c["spec"]["startingDeadlineSeconds"] = json!(0);
        }))
        .await;
    ch.wait_cron("zero", "first status", |c| message(c).starts_with("Waiting"))
        .await;
    let first = Schedule::parse("*/10 * * * *", "UTC")
        .unwrap()
        .next_after(created_at(&cron))
        .unwrap();
    let run_of = |slot: Timestamp| names::spawned_omjob_name("zero", slot.as_second()).unwrap();
    let recorded = |slot: Timestamp| {
        move |c: &CronOMJob| {
            c.status
                .as_ref()
                .and_then(|s| s.last_schedule_time.as_ref())
                .is_some_and(|t| t.0 == slot)
        }
    };

    // On time: the slot runs.
    clock.set(plus(first, 1));
    let runs = ch
        .wait_runs(&cron, "run of the on-time slot", |r| !r.is_empty())
        .await;
    assert_eq!(name_of(&runs[0]), run_of(first));

    // Down across the next slot, back within the grace (a restart, a leader failover): it runs.
    ch.stop_cron().await;
    let second = plus(first, 600);
    clock.set(plus(second, 30));
    ch.start_cron();
    let runs = ch
        .wait_runs(&cron, "run of the slot seen late", |r| r.len() >= 2)
        .await;
    assert_eq!(name_of(&runs[1]), run_of(second));

    // Down across the next slot until past the grace: it is recorded as missed, not run.
    ch.stop_cron().await;
    let third = plus(second, 600);
    let grace = i64::try_from(ON_TIME_GRACE.as_secs()).unwrap();
    clock.set(plus(third, grace + 1));
    ch.start_cron();
    let c = ch
        .wait_cron("zero", "the missed slot recorded", recorded(third))
        .await;
    assert!(
        message(&c).starts_with("Missed schedule") && message(&c).contains("no catch-up"),
        "{:?}",
        c.status
    );
    let note = ch.wait_event("zero", "MissSchedule").await;
    assert!(note.contains(&third.to_string()), "{note}");
    ch.settle("zero").await;
    let names = ch.run_names(&cron).await;
    assert_eq!(
        names,
        [run_of(first), run_of(second)],
        "the missed slot did not run"
    );

    // The next slot after the outage runs on time again.
    let fourth = plus(third, 600);
    clock.set(plus(fourth, 1));
    let runs = ch
        .wait_runs(&cron, "run after the outage", |r| r.len() >= 3)
        .await;
    assert_eq!(name_of(&runs[2]), run_of(fourth));
}

#[tokio::test]
async fn two_controllers_at_once_run_each_slot_once() {
    let clock = manual_clock();
    let mut ch = CronHarness::start("cron-twice", Arc::new(clock.clone())).await;
    ch.start_cron();
    let cron = ch
        .create(cronomjob(&ch, "twice", "* * * * *", "echo ingesting", |_| {}))
        .await;
    let slot = next_minute(created_at(&cron));
    for i in 0..3 {
        clock.set(plus(slot, 60 * i + 1));
        let n = usize::try_from(i + 1).unwrap();
        ch.wait_runs(&cron, "run of the slot", |r| r.len() >= n).await;
    }
    ch.settle("twice").await;
    let names = ch.run_names(&cron).await;
    let expected: Vec<String> = (0..3)
        .map(|i| names::spawned_omjob_name("twice", slot.as_second() + 60 * i).unwrap())
        .collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn forbid_skips_a_slot_while_a_run_is_active() {
    let clock = manual_clock();
    let ch = CronHarness::start("cron-forbid", Arc::new(clock.clone())).await;
    let cron = ch
        .create(cronomjob(&ch, "forbid", "* * * * *", "sleep 600", |c| {
            c["spec"]["concurrencyPolicy"] = json!("Forbid");
        }))
        .await;
    let slot = next_minute(created_at(&cron));
    clock.set(plus(slot, 1));
    ch.wait_runs(&cron, "running run", |r| {
        r.first().is_some_and(|o| phase(o) == Some(Phase::Running))
    })
    .await;
    ch.wait_cron("forbid", "active run in status", |c| {
        c.status
            .as_ref()
            .and_then(|s| s.active.as_ref())
            .is_some_and(|a| a.len() == 1)
    })
    .await;

    clock.set(plus(slot, 61));
    let note = ch.wait_event("forbid", "JobAlreadyActive").await;
    assert!(note.contains("Forbid"), "{note}");
    ch.settle("forbid").await;
    assert_eq!(ch.runs(&cron).await.len(), 1, "the second slot was skipped");
    let c = ch.crons().get("forbid").await.unwrap();
    assert!(message(&c).starts_with("Skipped the slot"), "{:?}", c.status);
    assert_eq!(
        c.status.unwrap().last_schedule_time.unwrap().0,
        slot,
        "a skipped slot is not recorded"
    );
}

#[tokio::test]
async fn replace_stops_the_active_run_through_its_exit_handler_and_starts_the_next() {
    let clock = manual_clock();
    let ch = CronHarness::start("cron-replace", Arc::new(clock.clone())).await;
    let cron = ch
        .create(cronomjob(&ch, "replace", "* * * * *", "sleep 600", |c| {
            c["spec"]["concurrencyPolicy"] = json!("Replace");
        }))
        .await;
    let slot = next_minute(created_at(&cron));
    clock.set(plus(slot, 1));
    let first = ch
        .wait_runs(&cron, "running run", |r| {
            r.first().is_some_and(|o| phase(o) == Some(Phase::Running))
        })
        .await[0]
        .clone();

    clock.set(plus(slot, 61));
    let second = names::spawned_omjob_name("replace", slot.as_second() + 60).unwrap();
    ch.wait_runs(&cron, "replacement without the first run", |r| {
        r.iter().any(|o| name_of(o) == second) && !r.iter().any(|o| name_of(o) == name_of(&first))
    })
    .await;
    assert!(
        ch.wait_event("replace", "SuccessfulDelete")
            .await
            .contains(name_of(&first))
    );
    // The replaced run was stopped the OMJob way: its exit handler ran once, told it failed.
    let runs = ch.h.exit_runs("replace");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        runs[0].starts_with(&format!("failed {}", name_of(&first))),
        "{runs:?}"
    );
}

#[tokio::test]
async fn history_limits_keep_only_the_newest_finished_runs() {
    let clock = manual_clock();
    let ch = CronHarness::start("cron-history", Arc::new(clock.clone())).await;
    // Runs of even minutes succeed, odd minutes fail.
    let script = r#"epoch=${jobName##*-}; [ $(( epoch / 60 % 2 )) -eq 0 ]"#;
    let cron = ch
        .create(cronomjob(&ch, "history", "* * * * *", script, |c| {
            c["spec"]["successfulJobsHistoryLimit"] = json!(1);
            c["spec"]["failedJobsHistoryLimit"] = json!(1);
            c["spec"]["omJobSpec"]["mainPodSpec"]["env"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "jobName", "value": "{{ omjob.name }}"}));
        }))
        .await;
    let first = next_minute(created_at(&cron));
    for i in 0..4 {
        let slot = plus(first, 60 * i);
        clock.set(plus(slot, 1));
        let name = names::spawned_omjob_name("history", slot.as_second()).unwrap();
        ch.wait_runs(&cron, "finished run", |r| {
            r.iter()
                .any(|o| name_of(o) == name && phase(o).is_some_and(Phase::is_terminal))
        })
        .await;
    }
    let kept = ch
        .wait_runs(&cron, "two kept runs", |r| {
            r.len() == 2 && r.iter().all(|o| phase(o).is_some_and(Phase::is_terminal))
        })
        .await;
    let newest: Vec<String> = (2..4)
        .map(|i| names::spawned_omjob_name("history", first.as_second() + 60 * i).unwrap())
        .collect();
    assert_eq!(kept.iter().map(name_of).collect::<Vec<_>>(), newest);
    let phases: Vec<_> = kept.iter().filter_map(phase).collect();
    assert!(
        phases.contains(&Phase::Succeeded) && phases.contains(&Phase::Failed),
        "{phases:?}"
    );
    // Both deletions were announced (the recorder folds same-reason events into one series).
    let deletes = ch.events("history", "SuccessfulDelete").await;
    assert!(!deletes.is_empty());
    assert!(
        deletes[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("HistoryLimit 1"),
        "{deletes:?}"
    );
}

#[tokio::test]
async fn suspend_runs_nothing_and_resume_runs_only_the_latest_slot() {
    let clock = manual_clock();
    let ch = CronHarness::start("cron-suspend", Arc::new(clock.clone())).await;
    let cron = ch
        .create(cronomjob(&ch, "suspend", "* * * * *", "echo ingesting", |c| {
            c["spec"]["suspend"] = json!(true);
        }))
        .await;
    ch.wait_cron("suspend", "Suspended", |c| message(c) == "Suspended")
        .await;
    let slot = next_minute(created_at(&cron));
    clock.set(plus(slot, 2 * 60 + 1));
    ch.settle("suspend").await;
    assert!(ch.runs(&cron).await.is_empty());

    ch.patch_spec("suspend", json!({"suspend": false})).await;
    let runs = ch.wait_runs(&cron, "run after resume", |r| !r.is_empty()).await;
    ch.settle("suspend").await;
    assert_eq!(ch.runs(&cron).await.len(), 1);
    assert_eq!(
        name_of(&runs[0]),
        names::spawned_omjob_name("suspend", slot.as_second() + 120).unwrap()
    );
}

#[tokio::test]
async fn a_cronomjob_exactly_as_openmetadata_writes_it_runs_and_its_runs_go_with_it() {
    let clock = manual_clock();
    let ch = CronHarness::start("cron-om", Arc::new(clock.clone())).await;
    let trace = ch.h.trace_file("om").display().to_string();
    let text = include_str!("../../api/tests/fixtures/cronomjob-openmetadata.yaml");
    let mut c: serde_json::Value = serde_yaml_ng::from_str(text).unwrap();
    c["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    // The simulated node runs commands on this machine: only the commands change (the image's
    // `python main.py` cannot run here); everything else is what OpenMetadata's server sends.
    c["spec"]["omJobSpec"]["mainPodSpec"]["command"] =
        json!(["sh", "-c", r#"test -n "$config" && test -n "$pipelineRunId""#]);
    let exit = &mut c["spec"]["omJobSpec"]["exitHandlerSpec"];
    exit["command"] = json!([
        "sh",
        "-c",
        r#"echo "$pipelineStatus $jobName $pipelineRunId $namespace $config" >> $TRACE"#
    ]);
    exit["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "TRACE", "value": trace}));

    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "om-config-mysql-prod-metadata"},
        "data": {"config": "workflow-config"}
    }))
    .unwrap();
    kube::Api::<ConfigMap>::namespaced(ch.h.admin.clone(), ch.ns())
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let cron = ch.create(c).await;
    let name = cron.metadata.name.clone().unwrap();

    // `0 */6 * * *` in Europe/Paris: move to just past the first slot after creation.
    let slot = Schedule::parse("0 */6 * * *", "Europe/Paris")
        .unwrap()
        .next_after(created_at(&cron))
        .unwrap();
    clock.set(plus(slot, 1));
    let done = ch
        .wait_runs(&cron, "finished run", |r| {
            r.first()
                .is_some_and(|o| phase(o).is_some_and(Phase::is_terminal))
        })
        .await;
    let run = &done[0];
    assert_eq!(phase(run), Some(Phase::Succeeded), "{:?}", run.status);
    assert_eq!(
        name_of(run),
        names::spawned_omjob_name(&name, slot.as_second()).unwrap()
    );
    let run_id = run.labels()[labels::LABEL_APP_RUN_ID].clone();
    for (k, v) in cron.labels() {
        assert_eq!(run.labels().get(k), Some(v), "label {k} copied");
    }
    assert_eq!(
        run.annotations()["cluster-autoscaler.kubernetes.io/safe-to-evict"],
        "false"
    );
    assert_eq!(
        ch.h.exit_runs("om"),
        [format!(
            "success {} {run_id} openmetadata-pipelines workflow-config",
            name_of(run)
        )]
    );

    // Deleting the CronOMJob deletes its runs (owner references, garbage collector).
    ch.crons()
        .delete(&name, &DeleteParams::background())
        .await
        .unwrap();
    ch.wait_runs(&cron, "no runs left", <[OMJob]>::is_empty).await;
}

#[tokio::test]
async fn negative_limits_and_deadlines_are_rejected_naming_the_field() {
    let clock = manual_clock();
    let ch = CronHarness::start("cron-negative", Arc::new(clock)).await;
    for field in [
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
        "startingDeadlineSeconds",
    ] {
        let mut c = cronomjob(&ch, "negative", "* * * * *", "true", |_| {});
        c["spec"][field] = json!(-1);
        c["metadata"]["namespace"] = json!(ch.ns());
        let obj: CronOMJob = serde_json::from_value(c).unwrap();
        let err = ch.crons().create(&PostParams::default(), &obj).await.unwrap_err();
        let kube::Error::Api(status) = err else {
            panic!("{field}: {err}")
        };
        assert_eq!(status.code, 422, "{field}: {status:?}");
        assert!(
            status.message.contains(&format!("spec.{field}")),
            "{field}: {}",
            status.message
        );
        assert!(
            ch.crons().get_opt("negative").await.unwrap().is_none(),
            "nothing half-created"
        );
    }
}

/// A CronOMJob made invalid by `edit` reports `needle` in its status message and one `reason`
/// warning, runs nothing while slots pass, and runs the latest slot once `fix` is applied.
async fn bad_input_is_reported_and_recovers(
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
    needles: [&str; 2],
    reason: &str,
    fix: serde_json::Value,
) {
    let clock = manual_clock();
    let ch = CronHarness::start(&format!("cron-{name}"), Arc::new(clock.clone())).await;
    let cron = ch.create(cronomjob(&ch, name, "* * * * *", "true", edit)).await;
    let c = ch
        .wait_cron(name, "error message", |c| message(c).contains(needles[0]))
        .await;
    assert!(message(&c).contains(needles[1]), "{:?}", c.status);
    let note = ch.wait_event(name, reason).await;
    assert!(note.contains(needles[0]) && note.contains(needles[1]), "{note}");

    // Slots pass: nothing runs, and the warning is not repeated.
    let slot = next_minute(created_at(&cron));
    clock.set(plus(slot, 1));
    ch.settle(name).await;
    assert!(ch.runs(&cron).await.is_empty());
    let warned = ch.events(name, reason).await;
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0].type_.as_deref(), Some("Warning"));
    assert!(
        warned[0].series.is_none() && warned[0].count.unwrap_or(1) == 1,
        "warned once: {warned:?}"
    );

    // Fixed: the latest slot runs.
    ch.patch_spec(name, fix).await;
    let runs = ch.wait_runs(&cron, "run after the fix", |r| !r.is_empty()).await;
    assert_eq!(
        name_of(&runs[0]),
        names::spawned_omjob_name(name, slot.as_second()).unwrap()
    );
}

#[tokio::test]
async fn an_invalid_schedule_is_reported_runs_nothing_and_recovers_when_fixed() {
    bad_input_is_reported_and_recovers(
        "bad-schedule",
        |c| c["spec"]["schedule"] = json!("61 * * * *"),
        ["spec.schedule", "\"61 * * * *\""],
        "InvalidSchedule",
        json!({"schedule": "* * * * *"}),
    )
    .await;
}

#[tokio::test]
async fn an_unknown_time_zone_is_reported_runs_nothing_and_recovers_when_fixed() {
    bad_input_is_reported_and_recovers(
        "bad-zone",
        |c| c["spec"]["timeZone"] = json!("Mars/Olympus_Mons"),
        ["spec.timeZone", "Mars/Olympus_Mons"],
        "UnknownTimeZone",
        json!({"timeZone": "Australia/Sydney"}),
    )
    .await;
}

#[tokio::test]
async fn the_cronomjob_examples_are_valid_for_the_api_server_and_the_scheduler() {
    let ch = CronHarness::start("cron-examples", Arc::new(manual_clock())).await;
    let dir = format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(file.starts_with("cronomjob-") && file.ends_with(".yaml")) {
            continue;
        }
        let mut c: CronOMJob = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        Schedule::parse(&c.spec.schedule, c.spec.time_zone_or_default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        c.metadata.namespace = Some(ch.ns().to_owned());
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        ch.crons()
            .create(&dry, &c)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        seen += 1;
    }
    assert!(seen >= 3, "found {seen} CronOMJob examples");
}
