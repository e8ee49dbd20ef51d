//! The operator's HTTP endpoints: health, readiness, metrics and info, all on `HEALTH_CHECK_PORT`.
//!
//! `/health`, `/ready` and `/metrics` keep the Java operator's paths, status codes and JSON bodies
//! (spec §5.2), because Helm probes, the Dockerfile `HEALTHCHECK` and scrapers point at them.
//! `/info`, which the Java README documented but never served, is added.
//!
//! - `GET /health`: liveness; always 200 while the process serves HTTP.
//! - `GET /ready`: 200 only when the ready flag is set *and* the API server answers `GET /version`
//!   within a short timeout; otherwise 503. The probe runs even when the flag is unset so `k8sApi`
//!   always reports what was observed.
//! - `GET /metrics`: the [`Metrics`] registry as OpenMetrics text. The Java operator sent the
//!   0.0.4 text format; Prometheus negotiates either by content type, so we send what
//!   prometheus-client encodes and label it truthfully.
//! - `GET /info`: name, version, watched namespaces, leadership (and whether leader election is
//!   in use: `enabled`, `disabled`, or `forbidden` when the Lease may not be read), concurrency.
//! - `GET /ui/…`: the read-only control panel ([`crate::panel`]), when the state carries one.

use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use crate::{
    clock::{SharedClock, SystemClock},
    config::{OperatorConfig, WatchNamespaces},
    metrics::{self, Metrics},
    panel::PanelState,
};

/// `/info` `leaderElection` when this replica competes for the Lease.
pub const LEADER_ELECTION_ENABLED: &str = "enabled";
/// `/info` `leaderElection` when `LEADER_ELECTION=false`.
pub const LEADER_ELECTION_DISABLED: &str = "disabled";
/// `/info` `leaderElection` when the Lease is forbidden and the replica runs without election.
pub const LEADER_ELECTION_FORBIDDEN: &str = "forbidden";

/// The name reported by `/info`.
pub const OPERATOR_NAME: &str = "omjob-operator";

/// How long `/ready` waits for the API server. Below the kubelet's default probe timeout would be
/// ideal, but a slow `/version` means "not ready" either way.
pub const DEFAULT_API_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The configuration facts `/info` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorInfo {
    /// `WATCH_NAMESPACES`, validated.
    pub watch_namespaces: WatchNamespaces,
    /// `RECONCILIATION_THREADS`.
    pub reconciliation_threads: u16,
}

impl From<&OperatorConfig> for OperatorInfo {
    fn from(config: &OperatorConfig) -> Self {
        Self {
            watch_namespaces: config.watch_namespaces.clone(),
            reconciliation_threads: config.reconciliation_threads,
        }
    }
}

/// What the handlers read. Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct HttpState {
    /// Set once the controllers run; cleared at the start of shutdown.
    pub ready: Arc<AtomicBool>,
    /// Whether this replica holds the leader Lease.
    pub leader: Arc<AtomicBool>,
    /// How leadership is decided: `enabled`, `disabled` (`LEADER_ELECTION=false`) or
    /// `forbidden` (no permission on the Lease; this replica runs without election).
    pub leader_election: Arc<std::sync::Mutex<&'static str>>,
    /// The registry `/metrics` serves.
    pub metrics: Arc<Metrics>,
    /// Used by `/ready` to call `GET /version`.
    pub client: kube::Client,
    /// Source of the `timestamp` fields.
    pub clock: SharedClock,
    /// What `/info` reports.
    pub info: OperatorInfo,
    /// How long `/ready` waits for the API server.
    pub api_probe_timeout: Duration,
    /// The control panel's state; `None` serves no `/ui/`.
    pub panel: Option<PanelState>,
}

impl fmt::Debug for HttpState {
    // `kube::Client` has no `Debug`; the flags are what matters when debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpState")
            .field("ready", &self.ready)
            .field("leader", &self.leader)
            .field("info", &self.info)
            .field("api_probe_timeout", &self.api_probe_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpState {
    /// State with the system clock and the default API probe timeout.
    #[must_use]
    pub fn new(
        client: kube::Client,
        config: &OperatorConfig,
        metrics: Arc<Metrics>,
        ready: Arc<AtomicBool>,
        leader: Arc<AtomicBool>,
    ) -> Self {
        let leader_election = Arc::new(std::sync::Mutex::new(if config.leader_election {
            LEADER_ELECTION_ENABLED
        } else {
            LEADER_ELECTION_DISABLED
        }));
        let clock: SharedClock = Arc::new(SystemClock);
        let panel = PanelState {
            client: client.clone(),
            config: Arc::new(config.clone()),
            ready: ready.clone(),
            leader: leader.clone(),
            leader_election: leader_election.clone(),
            started_at: clock.now(),
            clock: clock.clone(),
        };
        Self {
            ready,
            leader,
            leader_election,
            metrics,
            client,
            clock,
            info: OperatorInfo::from(config),
            api_probe_timeout: DEFAULT_API_PROBE_TIMEOUT,
            panel: Some(panel),
        }
    }

    fn now_ms(&self) -> String {
        // The Java operator sends the epoch milliseconds as a JSON *string*; keep it.
        self.clock.now().as_millisecond().to_string()
    }
}

/// The HTTP server failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listening socket could not be opened (port in use, no permission).
    #[error("failed to bind the HTTP server to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("failed to serve HTTP")]
    Serve(#[source] std::io::Error),
}

/// The routes, for [`serve`] and for tests.
pub fn router(state: HttpState) -> Router {
    let panel = state.panel.clone();
    let probes = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/info", get(info))
        .with_state(state);
    match panel {
        Some(panel) => probes.merge(crate::panel::router(panel)),
        None => probes,
    }
}

/// Serves the endpoints on `addr` until `shutdown` completes, then finishes in-flight requests.
///
/// # Errors
///
/// [`HttpError::Bind`] if `addr` cannot be bound, [`HttpError::Serve`] if serving fails.
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    tracing::info!(%addr, "serving /health, /ready, /metrics, /info and the control panel under /ui/");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HttpError::Serve)
}

async fn health(State(state): State<HttpState>) -> Json<serde_json::Value> {
    Json(json!({ "status": "UP", "timestamp": state.now_ms() }))
}

async fn ready(State(state): State<HttpState>) -> (StatusCode, Json<serde_json::Value>) {
    let flag = state.ready.load(Ordering::Acquire);
    let api = match tokio::time::timeout(state.api_probe_timeout, state.client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", state.api_probe_timeout)),
    };
    let (code, status, message) = match (&api, flag) {
        (Ok(()), true) => (StatusCode::OK, "READY", "Operator is ready".to_owned()),
        (_, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            "Operator not ready".to_owned(),
        ),
        (Err(e), true) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_READY",
            format!("K8s API unreachable: {e}"),
        ),
    };
    let body = json!({
        "status": status,
        "k8sApi": if api.is_ok() { "UP" } else { "DOWN" },
        "message": message,
        "timestamp": state.now_ms(),
    });
    (code, Json(body))
}

async fn metrics_text(State(state): State<HttpState>) -> Response {
    // The gauge mirrors the flag here, at scrape time, so nobody has to remember to set both.
    state.metrics.set_ready(state.ready.load(Ordering::Acquire));
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "failed to encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "failed to encode metrics").into_response()
        }
    }
}

async fn info(State(state): State<HttpState>) -> Json<serde_json::Value> {
    Json(json!({
        "name": OPERATOR_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "watchNamespaces": state.info.watch_namespaces.to_string(),
        "leader": state.leader.load(Ordering::Acquire),
        "leaderElection": *state.leader_election.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        "reconciliationThreads": state.info.reconciliation_threads,
    }))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::{Body, to_bytes};
    use k8s_openapi::jiff::Timestamp;
    use tower::ServiceExt;

    use super::*;
    use crate::clock::ManualClock;

    /// A client whose API server answers `/version` (or fails every request when `up` is false),
    /// so `/ready` can be tested without a cluster.
    fn fake_client(up: bool) -> kube::Client {
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| async move {
            assert_eq!(req.uri().path(), "/version");
            let (status, body) = if up {
                (
                    200,
                    r#"{"major":"1","minor":"20","gitVersion":"v1.20.2","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":""}"#,
                )
            } else {
                (
                    503,
                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcd down","reason":"ServiceUnavailable","code":503}"#,
                )
            };
            Ok::<_, Infallible>(
                http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body.as_bytes().to_vec()))
                    .unwrap(),
            )
        });
        kube::Client::new(service, "default")
    }

    fn state(ready: bool, api_up: bool) -> HttpState {
        HttpState {
            ready: Arc::new(AtomicBool::new(ready)),
            leader: Arc::new(AtomicBool::new(true)),
            leader_election: Arc::new(std::sync::Mutex::new(LEADER_ELECTION_FORBIDDEN)),
            metrics: Arc::new(Metrics::new()),
            client: fake_client(api_up),
            clock: Arc::new(ManualClock::new(
                Timestamp::from_millisecond(1_700_000_000_123).unwrap(),
            )),
            info: OperatorInfo {
                watch_namespaces: WatchNamespaces::Only(vec!["a".into(), "b".into()]),
                reconciliation_threads: 5,
            },
            api_probe_timeout: Duration::from_secs(1),
            panel: None,
        }
    }

    async fn get(state: HttpState, path: &str) -> (StatusCode, String, String) {
        let response = router(state)
            .oneshot(http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    fn json(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn health_is_always_up_with_a_string_timestamp() {
        let (status, content_type, body) = get(state(false, false), "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/json");
        assert_eq!(json(&body), json!({"status": "UP", "timestamp": "1700000000123"}));
    }

    #[tokio::test]
    async fn ready_is_200_when_flagged_and_the_api_answers() {
        let (status, _, body) = get(state(true, true), "/ready").await;
        assert_eq!(status, StatusCode::OK);
        let body = json(&body);
        assert_eq!(body["status"], "READY");
        assert_eq!(body["k8sApi"], "UP");
        assert_eq!(body["timestamp"], "1700000000123");
    }

    #[tokio::test]
    async fn ready_is_503_before_the_flag_is_set() {
        let (status, content_type, body) = get(state(false, true), "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(content_type, "application/json");
        let body = json(&body);
        assert_eq!(body["status"], "NOT_READY");
        assert_eq!(body["message"], "Operator not ready");
        assert_eq!(body["k8sApi"], "UP");
    }

    #[tokio::test]
    async fn ready_is_503_when_the_api_server_fails() {
        let (status, _, body) = get(state(true, false), "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body = json(&body);
        assert_eq!(body["status"], "NOT_READY");
        assert_eq!(body["k8sApi"], "DOWN");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with("K8s API unreachable: "), "{message}");
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text_and_mirror_the_ready_flag() {
        let (status, content_type, body) = get(state(true, true), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, metrics::CONTENT_TYPE);
        assert!(body.contains("omjob_operator_ready 1"), "{body}");
        assert!(body.contains("omjob_operator_info{"), "{body}");
    }

    #[tokio::test]
    async fn info_reports_configuration_and_leadership() {
        let (status, _, body) = get(state(true, true), "/info").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            json(&body),
            json!({
                "name": "omjob-operator",
                "version": env!("CARGO_PKG_VERSION"),
                "watchNamespaces": "a,b",
                "leader": true,
                "leaderElection": "forbidden",
                "reconciliationThreads": 5,
            })
        );
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let (status, _, _) = get(state(true, true), "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn serve_stops_on_shutdown() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            "127.0.0.1:0".parse().unwrap(),
            state(true, true),
            async move {
                let _ = rx.await;
            },
        ));
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
