//! The OMJob pages: the instance list, and one run drawn as a timeline of its two stages (the
//! main pod and the exit-handler pod), each coloured by outcome from the pods' container start
//! and finish times, with the reason, the exit codes and the end of each pod's log.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{ContainerState, Pod},
    jiff::Timestamp,
};
use kube::{Api, Resource as _};
use omjob_api::{OMJob, Phase, names};
use omjob_panel::{
    InstanceList, InstancePage, Timeline, Tone,
    instance::{ChildRow, ConditionRow, LogTail, Stage, Status},
    timeline::{Bar, Outcome},
};

use super::{ENTRY_OMJOB, PanelState, read, redact};
use crate::{decode::Lenient, http::OPERATOR_NAME};

/// A phase's badge.
#[must_use]
pub fn phase_status(phase: Option<Phase>) -> Status {
    let (label, tone) = match phase {
        None => ("New", Tone::Neutral),
        Some(Phase::Pending) => ("Pending", Tone::Waiting),
        Some(p @ (Phase::Running | Phase::ExitHandlerRunning)) => (p.as_str(), Tone::Active),
        Some(Phase::Succeeded) => ("Succeeded", Tone::Good),
        Some(Phase::Failed) => ("Failed", Tone::Bad),
    };
    Status {
        label: label.to_owned(),
        tone,
    }
}

/// The OMJobs in every watched namespace, newest first.
///
/// # Errors
/// The API server refused a list.
pub async fn list(state: &PanelState) -> Result<InstanceList, kube::Error> {
    let mut items = read::list::<Lenient<OMJob>>(&state.client, &state.config.watch_namespaces).await?;
    items.sort_by_key(|o| std::cmp::Reverse(o.meta().creation_timestamp.as_ref().map(|t| t.0)));
    let instances = items
        .iter()
        .map(|o| {
            let meta = o.meta();
            let (status, summary) = match &o.0 {
                Ok(job) => {
                    let st = job.status.as_ref();
                    (
                        phase_status(st.and_then(|s| s.phase)),
                        st.and_then(|s| s.message.clone()).unwrap_or_default(),
                    )
                }
                Err(bad) => (read::invalid_spec(), bad.error.to_string()),
            };
            read::instance_row(meta, status, summary)
        })
        .collect();
    Ok(InstanceList {
        operator: OPERATOR_NAME.to_owned(),
        crd: ENTRY_OMJOB.to_owned(),
        kind: "OMJob".to_owned(),
        scope: read::scope(&state.config.watch_namespaces),
        instances,
    })
}

/// What a pod's main container says about its stage.
struct Observed {
    outcome: Outcome,
    started: Option<Timestamp>,
    finished: Option<Timestamp>,
    exit_code: Option<i32>,
    reason: Option<String>,
}

fn observe(pod: &Pod) -> Observed {
    let first = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.as_str());
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let status = statuses
        .iter()
        .find(|s| Some(s.name.as_str()) == first)
        .or_else(|| statuses.first());
    let state: Option<&ContainerState> = status.and_then(|s| s.state.as_ref());
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        return Observed {
            outcome: if t.exit_code == 0 {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            },
            started: t.started_at.as_ref().map(|t| t.0),
            finished: t.finished_at.as_ref().map(|t| t.0),
            exit_code: Some(t.exit_code),
            reason: t.reason.clone(),
        };
    }
    if let Some(r) = state.and_then(|s| s.running.as_ref()) {
        return Observed {
            outcome: Outcome::Running,
            started: r.started_at.as_ref().map(|t| t.0),
            finished: None,
            exit_code: None,
            reason: None,
        };
    }
    Observed {
        outcome: Outcome::NotStarted,
        started: None,
        finished: None,
        exit_code: None,
        reason: state
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
            .or_else(|| pod.status.as_ref().and_then(|s| s.phase.clone())),
    }
}

/// A stage whose pod is gone (deleted, or collected after the TTL): the OMJob's status still
/// holds its exit code.
fn from_status(exit_code: Option<i32>, reason: Option<String>) -> Observed {
    Observed {
        outcome: match exit_code {
            Some(0) => Outcome::Succeeded,
            Some(_) => Outcome::Failed,
            None => Outcome::NotStarted,
        },
        started: None,
        finished: None,
        exit_code,
        reason,
    }
}

fn detail(o: &Observed) -> String {
    let mut parts = Vec::new();
    if let Some(c) = o.exit_code {
        parts.push(format!("exit code {c}"));
    }
    if let Some(r) = &o.reason {
        parts.push(r.clone());
    }
    parts.join(" · ")
}

/// One OMJob's page, or `None` if it does not exist.
///
/// # Errors
/// The API server refused to get the OMJob or its pods.
pub async fn page(state: &PanelState, ns: &str, name: &str) -> Result<Option<InstancePage>, kube::Error> {
    let client = &state.client;
    let Some(found) = Api::<Lenient<OMJob>>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
    else {
        return Ok(None);
    };
    let meta = found.meta().clone();
    let mut notes = Vec::new();
    let job = match found.0 {
        Ok(job) => Some(job),
        Err(bad) => {
            notes.push(format!(
                "This OMJob does not decode, so it is not run: {}",
                bad.error
            ));
            None
        }
    };
    let status = job.as_ref().and_then(|j| j.status.clone()).unwrap_or_default();
    let main_name = status
        .main_pod_name
        .clone()
        .unwrap_or_else(|| names::main_pod_name(name));
    let exit_name = status
        .exit_handler_pod_name
        .clone()
        .unwrap_or_else(|| names::exit_pod_name(name));
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let main_pod = pods.get_opt(&main_name).await?;
    let exit_pod = pods.get_opt(&exit_name).await?;

    let main = main_pod.as_ref().map_or_else(
        || from_status(status.main_pod_exit_code, status.reason.clone()),
        observe,
    );
    let exit = exit_pod
        .as_ref()
        .map_or_else(|| from_status(status.exit_handler_exit_code, None), observe);

    let now = state.clock.now();
    let bars = [("main", &main), ("exit handler", &exit)]
        .into_iter()
        .map(|(label, o)| Bar {
            label: label.to_owned(),
            detail: detail(o),
            start_ms: o.started.map(|t| t.as_millisecond()),
            end_ms: o.finished.map(|t| t.as_millisecond()),
            outcome: o.outcome,
        })
        .collect();
    let timeline = Timeline::fit(bars, now.as_millisecond(), |ms| {
        Timestamp::from_millisecond(ms)
            .map(read::time)
            .unwrap_or_default()
    });

    let mut stages = Vec::new();
    let mut children = Vec::new();
    for (title, pod_name, pod, o) in [
        ("main stage", &main_name, &main_pod, &main),
        ("exit handler", &exit_name, &exit_pod, &exit),
    ] {
        let log = match pod {
            Some(_) if o.started.is_some() => read::log_tail(client, ns, pod_name).await,
            Some(_) => LogTail::Unavailable("the container has not started".to_owned()),
            None => LogTail::Unavailable("the pod no longer exists".to_owned()),
        };
        stages.push(Stage {
            title: title.to_owned(),
            pod: pod_name.clone(),
            outcome: o.outcome,
            reason: o.reason.clone(),
            exit_code: o.exit_code,
            started: o.started.map(read::time),
            finished: o.finished.map(read::time),
            log,
        });
        let phase = pod
            .as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.clone())
            .map_or_else(|| title.to_owned(), |p| format!("{title} ({p})"));
        children.push(ChildRow {
            kind: "Pod".to_owned(),
            name: pod_name.clone(),
            phase,
            present: pod.is_some(),
        });
    }

    let events = match read::events(client, ns, "OMJob", name).await {
        Ok(events) => events,
        Err(e) => {
            notes.push(format!("Events could not be read: {}", read::describe(&e)));
            vec![]
        }
    };

    let mut fields = Vec::new();
    let mut field = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            fields.push((k.to_owned(), v));
        }
    };
    field("phase", status.phase.map(|p| p.to_string()));
    field("message", status.message.clone());
    field("reason", status.reason.clone());
    field("mainPodName", status.main_pod_name.clone());
    field(
        "mainPodExitCode",
        status.main_pod_exit_code.map(|c| c.to_string()),
    );
    field("exitHandlerPodName", status.exit_handler_pod_name.clone());
    field(
        "exitHandlerExitCode",
        status.exit_handler_exit_code.map(|c| c.to_string()),
    );
    field(
        "exitHandlerAttempts",
        status.exit_handler_attempts.map(|c| c.to_string()),
    );
    field("startTime", status.start_time.as_ref().map(|t| read::time(t.0)));
    field(
        "completionTime",
        status.completion_time.as_ref().map(|t| read::time(t.0)),
    );
    field(
        "observedGeneration",
        status.observed_generation.map(|g| g.to_string()),
    );

    let conditions = status
        .conditions
        .iter()
        .flatten()
        .map(|c| ConditionRow {
            type_: c.type_.clone(),
            status: format!("{:?}", c.status),
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
            last_transition: c
                .last_transition_time
                .as_ref()
                .map(|t| read::time(t.0))
                .unwrap_or_default(),
        })
        .collect();

    let spec = job.as_ref().and_then(|j| {
        let mut v = serde_json::to_value(&j.spec).ok()?;
        redact::hide_env_values(&mut v);
        serde_yaml_ng::to_string(&v).ok()
    });

    Ok(Some(InstancePage {
        operator: OPERATOR_NAME.to_owned(),
        crd: ENTRY_OMJOB.to_owned(),
        kind: "OMJob".to_owned(),
        namespace: Some(ns.to_owned()),
        name: name.to_owned(),
        status: Some(phase_status(status.phase)),
        metadata: metadata_rows(&meta),
        spec,
        status_fields: fields,
        conditions,
        timeline: Some(timeline),
        stages,
        next_slots: None,
        children,
        events,
        notes,
    }))
}

/// Labels and annotations as rows (`label team`, `annotation note`), secrets hidden.
#[must_use]
pub fn metadata_rows(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Vec<(String, String)> {
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    labels
        .iter()
        .map(|(k, v)| (format!("label {k}"), v.clone()))
        .chain(
            annotations
                .iter()
                .map(|(k, v)| (format!("annotation {k}"), redact::annotation(k, v))),
        )
        .collect()
}
