//! The runtime's HTTP API (§10) with axum: probes, `/metrics` and the `/katalog` endpoints,
//! each a thin wrapper over a [`State`] method. Unknown entries answer 404 with a JSON error
//! naming them.

use axum::{
    Json, Router,
    extract::{Path, State as Extract},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;

use super::{
    metrics::CONTENT_TYPE,
    state::{QueryError, State},
    views::ErrorBody,
};

/// The HTTP server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to bind the HTTP API to {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP API stopped: {0}")]
    Serve(#[source] std::io::Error),
}

/// The routes.
pub fn router(state: State) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/startup", get(ready))
        .route("/metrics", get(metrics))
        .route("/katalog", get(summary))
        .route("/katalog/raw", get(raw))
        .route("/katalog/{crd}", get(info))
        .route("/katalog/{crd}/health", get(crd_health))
        .route("/katalog/{crd}/raw", get(entry_raw))
        .route("/katalog/{crd}/cr", get(crs))
        .route("/katalog/{crd}/cr/{name}", get(cluster_cr))
        .route("/katalog/{crd}/cr/{ns}/{name}", get(namespaced_cr))
        .with_state(state.clone())
        // The control panel's pages, behind their own security headers (`ui::router`).
        .merge(crate::ui::router(state))
}

/// Binds `addr` and returns the bound address and the server future.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(
    addr: std::net::SocketAddr,
    state: State,
) -> Result<
    (
        std::net::SocketAddr,
        impl Future<Output = Result<(), Error>> + Send + 'static,
    ),
    Error,
> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let serve = async move { axum::serve(listener, router(state)).await.map_err(Error::Serve) };
    Ok((bound, serve))
}

fn json<T: Serialize>(code: StatusCode, body: T) -> Response {
    (code, Json(body)).into_response()
}

fn error(code: StatusCode, message: String) -> Response {
    json(code, ErrorBody { error: message })
}

fn unknown(crd: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        QueryError::UnknownCrd(crd.to_owned()).to_string(),
    )
}

fn query_error(e: &QueryError) -> Response {
    let code = match e {
        QueryError::UnknownCrd(_) | QueryError::NoSuchCr { .. } => StatusCode::NOT_FOUND,
        QueryError::NotServed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        QueryError::Api { .. } => StatusCode::BAD_GATEWAY,
    };
    error(code, e.to_string())
}

async fn health(Extract(state): Extract<State>) -> Response {
    json(StatusCode::OK, state.probe("ok"))
}

async fn ready(Extract(state): Extract<State>) -> Response {
    if state.is_ready() {
        json(StatusCode::OK, state.probe("ready"))
    } else {
        json(StatusCode::SERVICE_UNAVAILABLE, state.probe("starting"))
    }
}

async fn metrics(Extract(state): Extract<State>) -> Response {
    for l in state.entries() {
        l.publish_gauges(state.metrics());
    }
    match state.metrics().encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn summary(Extract(state): Extract<State>) -> Response {
    let s = state.summary();
    let code = if s.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(code, s)
}

async fn raw(Extract(state): Extract<State>) -> Response {
    json(StatusCode::OK, state.raw())
}

async fn info(Extract(state): Extract<State>, Path(crd): Path<String>) -> Response {
    match state.crd_info(&crd) {
        Some(i) => json(StatusCode::OK, i),
        None => unknown(&crd),
    }
}

async fn crd_health(Extract(state): Extract<State>, Path(crd): Path<String>) -> Response {
    match state.crd_health(&crd) {
        Some(h) if h.state.is_ok() => json(StatusCode::OK, h),
        Some(h) => json(StatusCode::SERVICE_UNAVAILABLE, h),
        None => unknown(&crd),
    }
}

async fn entry_raw(Extract(state): Extract<State>, Path(crd): Path<String>) -> Response {
    match state.entry_raw(&crd) {
        Some(v) => json(StatusCode::OK, v),
        None => unknown(&crd),
    }
}

async fn crs(Extract(state): Extract<State>, Path(crd): Path<String>) -> Response {
    match state.crs(&crd).await {
        Ok(l) => json(StatusCode::OK, l),
        Err(e) => query_error(&e),
    }
}

async fn cluster_cr(Extract(state): Extract<State>, Path((crd, name)): Path<(String, String)>) -> Response {
    match state.cr(&crd, None, &name).await {
        Ok(c) => json(StatusCode::OK, c),
        Err(e) => query_error(&e),
    }
}

async fn namespaced_cr(
    Extract(state): Extract<State>,
    Path((crd, ns, name)): Path<(String, String, String)>,
) -> Response {
    match state.cr(&crd, Some(&ns), &name).await {
        Ok(c) => json(StatusCode::OK, c),
        Err(e) => query_error(&e),
    }
}
