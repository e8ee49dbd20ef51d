//! A loopback HTTP proxy between an operator process and the testbed's API server, so that a
//! test sees each request the operator makes and can stop it at an exact one.
//!
//! The operator is given a kubeconfig that points at the proxy (plain HTTP on loopback, no
//! credentials); the proxy forwards every request with the operator service account's client,
//! so the operator runs under exactly the RBAC it would have without the proxy.
//!
//! A [`Trip`] names one request (say, "the create of pod `job-exit`"). When the operator sends
//! it, the proxy *freezes*: that request is either held before it is forwarded
//! ([`When::Before`]: the API server never sees it) or forwarded and its answer held
//! ([`When::After`]: the API server stored it, the operator never learns so), and no later
//! request of that process is forwarded at all. The test is told, and SIGKILLs the operator.
//! So the cluster is left exactly at the boundary the trip names: the operator cannot have
//! moved past it, and since an OMJob's reconcile waits for each answer before its next request,
//! nothing before the boundary can still be missing.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{Method, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use kube::Client;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Which side of the tripping request the operator is stopped on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The request is held before it is forwarded: the API server never sees it.
    Before,
    /// The request is forwarded and stored; its answer is held, so the operator never sees it.
    After,
}

/// One request the operator made, as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Call {
    /// Whether this creates pod `ns/name`.
    pub fn creates_pod(&self, ns: &str, name: &str) -> bool {
        self.method == Method::POST
            && self.path == format!("/api/v1/namespaces/{ns}/pods")
            && self.body["metadata"]["name"] == name
    }

    /// Whether this writes OMJob `ns/name` (its metadata, `sub` `None`, or a subresource).
    pub fn writes_omjob(&self, ns: &str, name: &str, sub: Option<&str>) -> bool {
        let base = format!("/apis/{}/namespaces/{ns}/omjobs/{name}", omjob_api::API_VERSION);
        let path = sub.map_or(base.clone(), |s| format!("{base}/{s}"));
        matches!(self.method, Method::PATCH | Method::PUT) && self.path == path
    }

    /// Whether this writes the status of OMJob `ns/name` with phase `phase`.
    pub fn writes_phase(&self, ns: &str, name: &str, phase: omjob_api::Phase) -> bool {
        self.writes_omjob(ns, name, Some("status")) && self.body["status"]["phase"] == phase.as_str()
    }

    /// Whether this is a write (anything but a read or a watch).
    pub fn is_write(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }
}

/// A request that was forwarded, and what the API server answered.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub at: Instant,
    pub call: Call,
    /// The HTTP status of the answer (`None`: the API server could not be reached).
    pub status: Option<u16>,
}

type Matcher = Box<dyn Fn(&Call) -> bool + Send + Sync>;

struct Trip {
    when: When,
    matches: Matcher,
    fired: oneshot::Sender<Call>,
}

struct Shared {
    upstream: Client,
    trip: Mutex<Option<Trip>>,
    frozen: AtomicBool,
    forwarded: Mutex<Vec<Forwarded>>,
}

/// A running proxy; stops serving when dropped.
pub struct ApiProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiProxy {
    /// Listens on a free loopback port and forwards through `upstream`.
    pub async fn start(upstream: Client) -> Self {
        let shared = Arc::new(Shared {
            upstream,
            trip: Mutex::new(None),
            frozen: AtomicBool::new(false),
            forwarded: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, shared, task }
    }

    /// Arms the trip: the first request for which `matches` holds freezes the proxy on its
    /// `when` side. The receiver gets that request once the freeze is in place.
    pub fn trip(
        &self,
        when: When,
        matches: impl Fn(&Call) -> bool + Send + Sync + 'static,
    ) -> oneshot::Receiver<Call> {
        let (fired, rx) = oneshot::channel();
        *self.shared.trip.lock().unwrap() = Some(Trip {
            when,
            matches: Box::new(matches),
            fired,
        });
        rx
    }

    /// Writes a kubeconfig that points at the proxy, with namespace `ns`, and returns its path.
    pub fn write_kubeconfig(&self, path: &Path, ns: &str) -> PathBuf {
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": format!("http://{}", self.addr)}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy", "namespace": ns}}],
            "current-context": "proxy"
        });
        std::fs::write(path, config.to_string()).unwrap();
        path.to_owned()
    }

    /// Every request forwarded so far, in order.
    pub fn forwarded(&self) -> Vec<Forwarded> {
        self.shared.forwarded.lock().unwrap().clone()
    }

    /// Waits until no write has been forwarded for `quiet`, failing after `limit`: the process
    /// behind the proxy has stopped changing the cluster.
    pub async fn wait_quiet(&self, what: &str, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let last = self
                .forwarded()
                .iter()
                .rev()
                .find(|f| f.call.is_write())
                .map(|f| f.at);
            if last.is_none_or(|at| at.elapsed() >= quiet) {
                return;
            }
            assert!(Instant::now() < deadline, "{what} kept writing for {limit:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Hop-by-hop headers, and those each side's HTTP stack sets itself.
const NOT_FORWARDED: [header::HeaderName; 6] = [
    header::HOST,
    header::AUTHORIZATION,
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if shared.frozen.load(Ordering::SeqCst) {
        return std::future::pending().await;
    }
    let call = Call {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    let tripped = {
        let mut trip = shared.trip.lock().unwrap();
        if trip.as_ref().is_some_and(|t| (t.matches)(&call)) {
            // Frozen under the lock, so no request that arrives after this one is forwarded.
            shared.frozen.store(true, Ordering::SeqCst);
            trip.take()
        } else {
            None
        }
    };
    let tripped = match tripped {
        Some(trip) if trip.when == When::Before => {
            let _ = trip.fired.send(call);
            return std::future::pending().await;
        }
        other => other,
    };

    let mut upstream = http::Request::builder()
        .method(parts.method)
        .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(name) {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream.body(kube::client::Body::from(bytes.to_vec())).unwrap();
    let answer = shared.upstream.send(upstream).await;
    shared.forwarded.lock().unwrap().push(Forwarded {
        at: Instant::now(),
        call: call.clone(),
        status: answer.as_ref().ok().map(|r| r.status().as_u16()),
    });
    if let Some(trip) = tripped {
        // When::After: the API server has answered, so the write is stored; hold the answer.
        let _ = trip.fired.send(call);
        return std::future::pending().await;
    }
    match answer {
        Ok(answer) => {
            let (mut parts, body) = answer.into_parts();
            for name in &NOT_FORWARDED {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
