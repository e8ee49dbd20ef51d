//! The control panel of `katalog run`, under `/ui/` on the runtime's HTTP port (`ORK_PORT`).
//!
//! Read-only: every route is a GET that calls a [`State`] method (the same ones the `/katalog`
//! JSON API serves) and maps the view into an [`omjob_panel`] page model; nothing here talks to
//! the API server except through those methods, and nothing writes. The pages:
//!
//! - `/ui/`: the dashboard ([`dashboard`]);
//! - `/ui/crd/{entry}`: seed 004's per-CRD page ([`crd`]);
//! - `/ui/crd/{entry}/cr`, `/ui/crd/{entry}/cr/{ns}/{name}` and `/ui/crd/{entry}/cr/{name}` for a
//!   cluster-scoped CR ([`instances`]);
//! - `/ui/static/…`: the panel crate's stylesheet and script.
//!
//! The views carry no token and no Secret data (children are identities only), so no page can
//! show one.

pub mod crd;
pub mod dashboard;
pub mod instances;
#[cfg(test)]
mod tests;

use axum::{
    Router,
    extract::{Path, State as Extract},
    http::StatusCode,
    response::{Redirect, Response},
    routing::get,
};
use omjob_panel::{
    assets,
    layout::{error_page, respond},
    security,
};
use serde_json::Value;

use crate::{
    load::DEFAULT_CLUSTER_NAME,
    runtime::{State, health::State as HealthState, state::QueryError},
};

/// The Katalog an entry comes from, as the title block names it (`data-platform 0.1.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The Katalog's `metadata.name`.
    pub name: String,
    /// Its `metadata.version`.
    pub version: String,
}

/// `DataJob` from `data.demo.orkestra.io/v1alpha1, Kind=DataJob`.
#[must_use]
pub fn kind_of(gvk: &str) -> &str {
    gvk.rsplit_once("Kind=").map_or(gvk, |(_, k)| k.trim())
}

/// The panel's state word for a runtime health state, and why when it is not healthy. The
/// panel has no `not started`: it is shown as `pending` with the reason saying so.
#[must_use]
pub fn panel_state(state: HealthState, last_error: &str) -> (omjob_panel::State, Option<String>) {
    let error = (!last_error.is_empty()).then(|| short(last_error));
    match state {
        HealthState::Healthy => (omjob_panel::State::Healthy, None),
        HealthState::Degraded => (omjob_panel::State::Degraded, error),
        HealthState::Pending => (
            omjob_panel::State::Pending,
            Some(error.unwrap_or_else(|| "no reconcile has succeeded yet".to_owned())),
        ),
        HealthState::NotStarted => (
            omjob_panel::State::Pending,
            Some(error.map_or_else(|| "not started".to_owned(), |e| format!("not started: {e}"))),
        ),
    }
}

/// How much of an error a badge's note shows; the CRD page's `lastError` row has all of it.
const REASON_CHARS: usize = 160;

/// `text`'s first line, cut to [`REASON_CHARS`] characters (API errors can run to a screenful).
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

/// The panel's routes and static files, all behind the panel's security headers.
pub fn router(state: State) -> Router {
    let pages = Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(dashboard_page))
        .route("/ui/crd/{entry}", get(crd_page))
        .route("/ui/crd/{entry}/cr", get(list_page))
        .route("/ui/crd/{entry}/cr/{name}", get(cluster_cr_page))
        .route("/ui/crd/{entry}/cr/{ns}/{name}", get(namespaced_cr_page))
        .route("/ui/{*rest}", get(unknown_page))
        .with_state(state)
        .merge(assets::router());
    security::layer(pages)
}

/// The Katalog metadata of `entry`'s file, read from the loaded (redacted) Katalog JSON.
fn operator_of(state: &State, entry: &str) -> Operator {
    let index = state
        .entries()
        .iter()
        .find(|l| l.entry.name == entry)
        .map_or(0, |l| l.katalog);
    let raw = state.raw();
    let doc = match &raw {
        Value::Array(docs) => docs.get(index),
        one => Some(one),
    };
    let field = |name: &str| {
        doc.and_then(|d| d.pointer(&format!("/metadata/{name}")))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    };
    Operator {
        name: field("name").unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_owned()),
        version: field("version").unwrap_or_default(),
    }
}

fn brand(state: &State) -> String {
    let s = state.summary();
    if s.katalogs.is_empty() {
        s.name
    } else {
        s.katalogs.join(", ")
    }
}

fn not_found(state: &State, message: &str) -> Response {
    error_page(&brand(state), StatusCode::NOT_FOUND, message)
}

fn query_failure(state: &State, e: &QueryError) -> Response {
    let code = match e {
        QueryError::UnknownCrd(_) | QueryError::NoSuchCr { .. } => StatusCode::NOT_FOUND,
        QueryError::NotServed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        QueryError::Api { .. } => StatusCode::BAD_GATEWAY,
    };
    error_page(&brand(state), code, &e.to_string())
}

fn unknown_entry(state: &State, entry: &str) -> Response {
    not_found(state, &QueryError::UnknownCrd(entry.to_owned()).to_string())
}

async fn unknown_page(Extract(state): Extract<State>) -> Response {
    not_found(&state, "No panel page at this address.")
}

async fn dashboard_page(Extract(state): Extract<State>) -> Response {
    let page = dashboard::page(&state.summary(), &state.probe("ok").uptime);
    let code = if page.degraded() > 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    respond(code, &page.render())
}

async fn crd_page(Extract(state): Extract<State>, Path(entry): Path<String>) -> Response {
    let (Some(info), Some(health)) = (state.crd_info(&entry), state.crd_health(&entry)) else {
        return unknown_entry(&state, &entry);
    };
    let cr_list = match state.crs(&entry).await {
        Ok(_) => StatusCode::OK,
        Err(QueryError::UnknownCrd(_) | QueryError::NoSuchCr { .. }) => StatusCode::NOT_FOUND,
        Err(QueryError::NotServed { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        Err(QueryError::Api { .. }) => StatusCode::BAD_GATEWAY,
    };
    let page = crd::page(&operator_of(&state, &entry), &info, &health, cr_list);
    respond(StatusCode::OK, &page.render())
}

async fn list_page(Extract(state): Extract<State>, Path(entry): Path<String>) -> Response {
    let Some(info) = state.crd_info(&entry) else {
        return unknown_entry(&state, &entry);
    };
    match state.crs(&entry).await {
        Ok(list) => {
            let page = instances::list(
                &operator_of(&state, &entry),
                &entry,
                &list,
                &info.watched_namespaces,
            );
            respond(StatusCode::OK, &page.render())
        }
        Err(e) => query_failure(&state, &e),
    }
}

async fn cr_page(state: &State, entry: &str, namespace: Option<&str>, name: &str) -> Response {
    match state.cr(entry, namespace, name).await {
        Ok(cr) => {
            let page = instances::page(&operator_of(state, entry), entry, &cr);
            respond(StatusCode::OK, &page.render())
        }
        Err(e) => query_failure(state, &e),
    }
}

async fn cluster_cr_page(
    Extract(state): Extract<State>,
    Path((entry, name)): Path<(String, String)>,
) -> Response {
    cr_page(&state, &entry, None, &name).await
}

async fn namespaced_cr_page(
    Extract(state): Extract<State>,
    Path((entry, ns, name)): Path<(String, String, String)>,
) -> Response {
    cr_page(&state, &entry, Some(&ns), &name).await
}
