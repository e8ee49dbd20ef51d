//! Retries of transient Kubernetes API failures, as one tower layer under the service's client.
//!
//! [`with_retries`] puts [`RetryLayer`] between the service and the client it was given, so every
//! request the service sends (reads, applies, patches, deletes, creates, log streams) passes
//! through the same [`Policy`]; no call site can forget it. Upstream
//! retries three times at a fixed 500 ms, and only for some calls.
//!
//! # What is retried, and why
//!
//! A failed attempt is one of three things ([`Failure`]):
//!
//! - **not sent**: no connection could be made (refused, connect timeout, TLS handshake). The
//!   API server never saw the request, so any request may be sent again, a `POST` included.
//! - **refused before any handler ran**: 429 (priority and fairness or the max-in-flight filter
//!   reject a request before it is served), and a 401 or 403 right after the API server could not
//!   be reached: an API server that has just started serves requests before its authentication
//!   and RBAC caches are filled, and refuses them meanwhile (seen on Kubernetes 1.34 when its
//!   process restarts). Nothing was done, so any request may be sent again.
//! - **may have been processed**: 500, 502, 503, 504, or a connection that failed after the
//!   request was sent (reset, read timeout). Only idempotent requests are sent again: `GET`,
//!   `HEAD`, `OPTIONS`, `PUT`, `DELETE` and `PATCH` other than JSON Patch (server-side apply and
//!   merge patches set fields to values, so a second one changes nothing; a JSON Patch `add` to a
//!   list would add twice). A `POST` (a create) is not: a replay whose first attempt landed would
//!   answer 409, or, for a `generateName` create, make a second object.
//!
//! Other answers (400, 403, 404, 409, 422, ...) are permanent and return at once. Waits double
//! from `retryInitialBackoffMillis` up to 5 s, each a random point between half and all of that
//! (jitter, so many clients that failed together do not retry together), and at least the
//! server's `Retry-After` (capped at 5 s). `retryAttempts` counts every try, the first included.
//!
//! # Caveats
//! A client built elsewhere keeps its own layers: kube's `Config::default_retry` (on by default)
//! retries 429, 503 and 504 for every method, `POST` included, below this layer;
//! [`crate::PipelineClient::connect`] turns it off so this policy is the only one. A response
//! stream (a log) that breaks after it started is not retried: the layer only sees its start.

use std::{
    error::Error as StdError,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use http::{Method, Request, Response, header};
use kube::{Client, client::Body};
use tower::{
    Layer, Service, ServiceBuilder,
    retry::{Policy, Retry},
    util::rng::{HasherRng, Rng as _},
};

/// How many times a request is tried in all, by default.
pub const ATTEMPTS: u32 = 4;
/// Wait before the first retry by default; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest single wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often and how patiently to retry (configuration `retryAttempts`,
/// `retryInitialBackoffMillis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one, up to 5 s.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: ATTEMPTS,
            first_backoff: FIRST_BACKOFF,
        }
    }
}

/// What a failed attempt says about sending the request again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made: the request was never sent.
    NotSent,
    /// The API server refused it before any handler ran (429; 401/403 right after an outage).
    Refused,
    /// It may have been processed (500, 502, 503, 504, a connection lost after sending).
    MaybeProcessed,
    /// A success or a permanent error: not retried.
    Final,
}

impl Failure {
    /// Whether a request that failed so is sent again; `idempotent` as [`is_idempotent`].
    #[must_use]
    pub fn retried(self, idempotent: bool) -> bool {
        match self {
            Self::NotSent | Self::Refused => true,
            Self::MaybeProcessed => idempotent,
            Self::Final => false,
        }
    }
}

/// What an answer with status `code` is; `after_outage` when an earlier attempt of the same
/// request could not be sent (see the module docs for 401/403).
#[must_use]
pub fn classify_status(code: u16, after_outage: bool) -> Failure {
    match code {
        429 => Failure::Refused,
        401 | 403 if after_outage => Failure::Refused,
        500 | 502 | 503 | 504 => Failure::MaybeProcessed,
        _ => Failure::Final,
    }
}

/// What a transport error is: [`Failure::NotSent`] when the connection could not be made,
/// [`Failure::MaybeProcessed`] otherwise.
#[must_use]
pub fn classify_error(err: &(dyn StdError + 'static)) -> Failure {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && h.is_connect()
        {
            return Failure::NotSent;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Failure::NotSent;
        }
        cause = e.source();
    }
    Failure::MaybeProcessed
}

/// Whether sending `req` twice has the effect of sending it once.
#[must_use]
pub fn is_idempotent<B>(req: &Request<B>) -> bool {
    match *req.method() {
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE => true,
        Method::PATCH => {
            req.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                != Some("application/json-patch+json")
        }
        _ => false,
    }
}

/// The wait before retry number `retry` (0 for the first): `first_backoff · 2^retry`, at most
/// [`MAX_BACKOFF`], scaled to between half and all of that by `unit` (in `[0, 1]`).
#[must_use]
pub fn backoff(policy: &RetryPolicy, retry: u32, unit: f64) -> Duration {
    let base = policy
        .first_backoff
        .checked_mul(2_u32.saturating_pow(retry))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A `Retry-After` of whole seconds, as the API server sends it.
fn retry_after<B>(res: &Response<B>) -> Option<Duration> {
    let secs = res
        .headers()
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_BACKOFF))
}

/// The retry state of one request (tower clones the policy for each request).
#[derive(Clone, Debug)]
pub struct Retries {
    policy: RetryPolicy,
    /// Retries done so far.
    retries: u32,
    /// Whether an earlier attempt could not be sent.
    after_outage: bool,
    rng: HasherRng,
}

impl Retries {
    /// The state of a request that has not been tried yet.
    #[must_use]
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            retries: 0,
            after_outage: false,
            rng: HasherRng::default(),
        }
    }
}

impl<B, E> Policy<Request<Body>, Response<B>, E> for Retries
where
    E: StdError + 'static,
{
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<B>, E>,
    ) -> Option<Self::Future> {
        let (failure, server_wait) = match result {
            Ok(res) => (
                classify_status(res.status().as_u16(), self.after_outage),
                retry_after(res),
            ),
            Err(e) => (classify_error(e), None),
        };
        self.after_outage |= failure == Failure::NotSent;
        if self.retries + 1 >= self.policy.attempts || !failure.retried(is_idempotent(req)) {
            return None;
        }
        let wait =
            backoff(&self.policy, self.retries, self.rng.next_f64()).max(server_wait.unwrap_or_default());
        self.retries += 1;
        tracing::debug!(
            method = %req.method(), path = req.uri().path(), ?failure, retry = self.retries,
            wait_ms = wait.as_millis(), "transient Kubernetes API failure; retrying"
        );
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // kube's request bodies are whole byte buffers, which clone; a streamed body does not,
        // and such a request is sent once.
        let body = req.body().try_clone()?;
        let mut out = Request::new(body);
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = req.uri().clone();
        *out.version_mut() = req.version();
        *out.headers_mut() = req.headers().clone();
        *out.extensions_mut() = req.extensions().clone();
        Some(out)
    }
}

/// The layer: wraps a service in [`Retries`] with `policy`.
#[derive(Clone, Copy, Debug)]
pub struct RetryLayer(RetryPolicy);

impl RetryLayer {
    /// Retries as `policy` says.
    #[must_use]
    pub fn new(policy: RetryPolicy) -> Self {
        Self(policy)
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<Retries, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(Retries::new(self.0), inner)
    }
}

/// A built client as a tower service, so a layer can go on top of whatever stack it has.
#[derive(Clone)]
struct ClientService(Client);

impl Service<Request<Body>> for ClientService {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The client's own buffer applies backpressure inside `send`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move { client.send(req).await })
    }
}

/// `client` with [`RetryLayer`] on top: every request sent through the result is retried as
/// `policy` says.
#[must_use]
pub fn with_retries(client: Client, policy: RetryPolicy) -> Client {
    let namespace = client.default_namespace().to_owned();
    let valid_until = *client.valid_until();
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .service(ClientService(client));
    Client::new(service, namespace).with_valid_until(valid_until)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use tower::{ServiceExt as _, service_fn};

    use super::*;

    fn unreachable() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
    }

    #[test]
    fn answers_are_classified_by_whether_the_request_may_have_been_processed() {
        assert_eq!(classify_status(429, false), Failure::Refused);
        for code in [500, 502, 503, 504] {
            assert_eq!(classify_status(code, false), Failure::MaybeProcessed, "{code}");
        }
        for code in [200, 201, 400, 401, 403, 404, 409, 422, 501] {
            assert_eq!(classify_status(code, false), Failure::Final, "{code}");
        }
        // Right after an outage, authentication and RBAC may not be ready yet.
        assert_eq!(classify_status(401, true), Failure::Refused);
        assert_eq!(classify_status(403, true), Failure::Refused);
        assert_eq!(classify_status(404, true), Failure::Final);
        assert_eq!(classify_error(&unreachable()), Failure::NotSent);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify_error(&reset), Failure::MaybeProcessed);
        let wrapped = kube::Error::Service(Box::new(unreachable()));
        assert_eq!(classify_error(&wrapped), Failure::NotSent);
    }

    #[test]
    fn creates_are_sent_again_only_when_they_cannot_have_landed() {
        let req = |method: Method, content_type: &str| {
            Request::builder()
                .method(method)
                .header(header::CONTENT_TYPE, content_type)
                .body(())
                .unwrap()
        };
        assert!(is_idempotent(&req(Method::GET, "")));
        assert!(is_idempotent(&req(Method::DELETE, "")));
        assert!(is_idempotent(&req(Method::PATCH, "application/apply-patch+yaml")));
        assert!(is_idempotent(&req(Method::PATCH, "application/merge-patch+json")));
        assert!(!is_idempotent(&req(Method::PATCH, "application/json-patch+json")));
        assert!(!is_idempotent(&req(Method::POST, "application/json")));
        assert!(Failure::NotSent.retried(false));
        assert!(Failure::Refused.retried(false));
        assert!(!Failure::MaybeProcessed.retried(false));
        assert!(Failure::MaybeProcessed.retried(true));
        assert!(!Failure::Final.retried(true));
    }

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let p = RetryPolicy::default();
        assert_eq!(backoff(&p, 0, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(&p, 0, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(&p, 2, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(&p, 10, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(&p, 40, 0.0), MAX_BACKOFF / 2);
        for unit in [0.0, 0.3, 0.99, 1.0] {
            let d = backoff(&p, 1, unit);
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
    }

    /// A service answering with `codes` in turn (then 200), counting calls; `fail_first` makes
    /// the first call a connection failure instead.
    fn scripted(
        codes: &'static [u16],
        fail_first: bool,
        calls: Arc<AtomicU32>,
    ) -> impl Service<Request<Body>, Response = Response<()>, Error = std::io::Error, Future: Send> + Clone
    {
        service_fn(move |_req: Request<Body>| {
            let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
            async move {
                if fail_first && n == 0 {
                    return Err(unreachable());
                }
                let i = n - usize::from(fail_first);
                let code = codes.get(i).copied().unwrap_or(200);
                Ok(Response::builder().status(code).body(()).unwrap())
            }
        })
    }

    async fn send(
        method: Method,
        codes: &'static [u16],
        fail_first: bool,
        policy: RetryPolicy,
    ) -> (Result<u16, std::io::Error>, u32) {
        let calls = Arc::new(AtomicU32::new(0));
        let svc = RetryLayer::new(policy).layer(scripted(codes, fail_first, calls.clone()));
        let req = Request::builder()
            .method(method)
            .uri("/api/v1/namespaces/ns/secrets")
            .body(Body::from(b"{}".to_vec()))
            .unwrap();
        let out = svc.oneshot(req).await.map(|r| r.status().as_u16());
        (out, calls.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn an_idempotent_request_is_retried_until_it_succeeds() {
        let (out, calls) = send(Method::GET, &[503, 429, 500], false, RetryPolicy::default()).await;
        assert_eq!((out.unwrap(), calls), (200, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_is_not_replayed_after_an_answer_that_may_mean_it_landed() {
        let (out, calls) = send(Method::POST, &[504], false, RetryPolicy::default()).await;
        assert_eq!((out.unwrap(), calls), (504, 1));
        // Rate limited: refused before anything was done, so sent again.
        let (out, calls) = send(Method::POST, &[429], false, RetryPolicy::default()).await;
        assert_eq!((out.unwrap(), calls), (200, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_that_could_not_be_sent_is_sent_again_and_a_403_after_an_outage_too() {
        let (out, calls) = send(Method::POST, &[403], true, RetryPolicy::default()).await;
        assert_eq!((out.unwrap(), calls), (200, 3));
        // Without the outage, a 403 is believed at once.
        let (out, calls) = send(Method::POST, &[403], false, RetryPolicy::default()).await;
        assert_eq!((out.unwrap(), calls), (403, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_answers_return_at_once_and_transient_ones_give_up_after_the_attempts() {
        let (out, calls) = send(Method::GET, &[404], false, RetryPolicy::default()).await;
        assert_eq!((out.unwrap(), calls), (404, 1));
        let policy = RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(10),
        };
        let started = tokio::time::Instant::now();
        let (out, calls) = send(Method::DELETE, &[503, 503, 503, 503], false, policy).await;
        assert_eq!((out.unwrap(), calls), (503, 3));
        // Two waits: at most 10 ms and 20 ms.
        assert!(
            started.elapsed() <= Duration::from_millis(30),
            "{:?}",
            started.elapsed()
        );
    }
}
