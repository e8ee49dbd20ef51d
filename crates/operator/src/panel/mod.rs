//! The control panel's pages for the operator's own CRDs, under `/ui/` on `HEALTH_CHECK_PORT`.
//!
//! Read-only: every handler is a GET that lists, gets or reads logs through the operator's own
//! client and renders an [`omjob_panel`] page model; nothing here writes to the API. The pages:
//!
//! - `/ui/`: the dashboard (OMJob and CronOMJob, their state, workers and instance counts);
//! - `/ui/crd/omjob`, `/ui/crd/cronomjob`: the per-CRD page ([`crds`]), with this process's live
//!   configuration and the ClusterRole it is deployed with ([`rbac`]);
//! - `/ui/crd/{entry}/cr`: the instances in every watched namespace;
//! - `/ui/crd/omjob/cr/{ns}/{name}`: one run on a timeline, with exit codes and log tails
//!   ([`omjob_page`]);
//! - `/ui/crd/cronomjob/cr/{ns}/{name}`: recent runs on a timeline and the next five slots
//!   ([`cron_page`]).
//!
//! Nothing secret is shown: env values are hidden ([`redact`]), Secrets are never read, and no
//! token or credential is part of any model.

pub mod crds;
pub mod cron_page;
pub mod omjob_page;
pub mod rbac;
pub mod read;
pub mod redact;

use std::{
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    extract::{Path, State as AxumState},
    http::StatusCode,
    response::{Redirect, Response},
    routing::get,
};
use k8s_openapi::jiff::Timestamp;
use omjob_api::{CronOMJob, OMJob};
use omjob_panel::{
    State, assets,
    dashboard::{CrdSummary, Dashboard},
    layout::{error_page, respond},
    security,
};

use crate::{clock::SharedClock, config::OperatorConfig, decode::Lenient, http::OPERATOR_NAME};

/// The OMJob entry's name in URLs.
pub const ENTRY_OMJOB: &str = "omjob";
/// The CronOMJob entry's name in URLs.
pub const ENTRY_CRONOMJOB: &str = "cronomjob";

/// What the pages read: the operator's client and its live configuration and flags.
#[derive(Clone)]
pub struct PanelState {
    /// The operator's client (its own service account: the panel can read what it can).
    pub client: kube::Client,
    /// The configuration this process runs with.
    pub config: Arc<OperatorConfig>,
    /// Set while the controllers run.
    pub ready: Arc<AtomicBool>,
    /// Whether this replica leads.
    pub leader: Arc<AtomicBool>,
    /// `enabled`, `disabled` or `forbidden`, as `/info` reports it.
    pub leader_election: Arc<Mutex<&'static str>>,
    /// The time source (uptime, "now" on timelines, next slots).
    pub clock: SharedClock,
    /// When the process started.
    pub started_at: Timestamp,
}

impl fmt::Debug for PanelState {
    // `kube::Client` has no `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanelState")
            .field("config", &self.config)
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

impl PanelState {
    /// The leader-election mode word.
    #[must_use]
    pub fn leader_election(&self) -> &'static str {
        *self
            .leader_election
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this replica leads.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// How long the process has run, as a Go duration.
    #[must_use]
    pub fn uptime(&self) -> String {
        let secs = self
            .clock
            .now()
            .as_second()
            .saturating_sub(self.started_at.as_second());
        omjob_panel::duration::go_duration(std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
    }

    /// The state of both CRDs: pending until the controllers run, degraded when their
    /// instances cannot be listed.
    fn crd_state(&self, listed: &Result<usize, kube::Error>) -> (State, Option<String>) {
        match listed {
            Err(e) => (
                State::Degraded,
                Some(format!("cannot list: {}", read::describe(e))),
            ),
            Ok(_) if !self.ready.load(Ordering::Acquire) => (
                State::Pending,
                Some("controllers not running (waiting for leadership?)".to_owned()),
            ),
            Ok(_) => (State::Healthy, None),
        }
    }
}

/// The panel's routes (and its static files), all behind the security headers.
pub fn router(state: PanelState) -> Router {
    let pages = Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(dashboard))
        .route("/ui/crd/{entry}", get(crd))
        .route("/ui/crd/{entry}/cr", get(instances))
        .route("/ui/crd/{entry}/cr/{ns}/{name}", get(instance))
        .with_state(state)
        .merge(assets::router());
    security::layer(pages)
}

fn not_found(what: &str) -> Response {
    error_page(OPERATOR_NAME, StatusCode::NOT_FOUND, what)
}

fn api_failure(e: &kube::Error) -> Response {
    error_page(
        OPERATOR_NAME,
        StatusCode::BAD_GATEWAY,
        &format!("The API server refused a read: {}", read::describe(e)),
    )
}

async fn dashboard(AxumState(state): AxumState<PanelState>) -> Response {
    let omjobs = read::list::<Lenient<OMJob>>(&state.client, &state.config.watch_namespaces)
        .await
        .map(|l| l.len());
    let crons = read::list::<Lenient<CronOMJob>>(&state.client, &state.config.watch_namespaces)
        .await
        .map(|l| l.len());
    let workers = state.config.reconciliation_threads.to_string();
    let row = |name: &str, kind: &str, listed: &Result<usize, kube::Error>| {
        let (s, reason) = state.crd_state(listed);
        CrdSummary {
            name: name.to_owned(),
            kind: kind.to_owned(),
            state: s,
            reason,
            workers: Some(workers.clone()),
            // kube-runtime's controller keeps no queue depth that could be read.
            queue: None,
            resources: listed.as_ref().ok().and_then(|n| u64::try_from(*n).ok()),
        }
    };
    let page = Dashboard {
        operator: OPERATOR_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime: Some(state.uptime()),
        crds: vec![
            row(ENTRY_OMJOB, "OMJob", &omjobs),
            row(ENTRY_CRONOMJOB, "CronOMJob", &crons),
        ],
    };
    let status = if page.degraded() > 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    respond(status, &page.render())
}

async fn crd(AxumState(state): AxumState<PanelState>, Path(entry): Path<String>) -> Response {
    let page = match entry.as_str() {
        ENTRY_OMJOB => {
            let listed = read::list::<Lenient<OMJob>>(&state.client, &state.config.watch_namespaces)
                .await
                .map(|l| l.len());
            crds::omjob(&state, state.crd_state(&listed))
        }
        ENTRY_CRONOMJOB => {
            let listed = read::list::<Lenient<CronOMJob>>(&state.client, &state.config.watch_namespaces)
                .await
                .map(|l| l.len());
            crds::cronomjob(&state, state.crd_state(&listed))
        }
        _ => return not_found("This operator serves the omjob and cronomjob CRDs only."),
    };
    respond(StatusCode::OK, &page.render())
}

async fn instances(AxumState(state): AxumState<PanelState>, Path(entry): Path<String>) -> Response {
    let page = match entry.as_str() {
        ENTRY_OMJOB => omjob_page::list(&state).await,
        ENTRY_CRONOMJOB => cron_page::list(&state).await,
        _ => return not_found("This operator serves the omjob and cronomjob CRDs only."),
    };
    match page {
        Ok(page) => respond(StatusCode::OK, &page.render()),
        Err(e) => api_failure(&e),
    }
}

async fn instance(
    AxumState(state): AxumState<PanelState>,
    Path((entry, ns, name)): Path<(String, String, String)>,
) -> Response {
    if !read::watched(&state.config.watch_namespaces, &ns) {
        return not_found("That namespace is not watched by this operator.");
    }
    let page = match entry.as_str() {
        ENTRY_OMJOB => omjob_page::page(&state, &ns, &name).await,
        ENTRY_CRONOMJOB => cron_page::page(&state, &ns, &name).await,
        _ => return not_found("This operator serves the omjob and cronomjob CRDs only."),
    };
    match page {
        Ok(Some(page)) => respond(StatusCode::OK, &page.render()),
        Ok(None) => not_found(&format!("No {entry} named {name} in namespace {ns}.")),
        Err(e) => api_failure(&e),
    }
}
