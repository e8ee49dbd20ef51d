//! The shell both controllers run in: their context, the scopes they watch, one error policy
//! (exponential backoff, [`backoff`]), one way of reporting what the controller streams yield
//! (watch failures at WARN), the start-up check that the CRDs are served ([`crds`]), and the
//! lanes that let terminations overtake routine work ([`lanes`]).

pub mod backoff;
pub mod crds;
pub mod lanes;
pub mod manager;

use std::{fmt, sync::Arc, time::Duration};

use kube::{
    Api, Client, Resource,
    runtime::controller::{self, Action as Requeue},
};

use crate::{clock::Clock, metrics::Metrics};

/// Everything a reconcile needs: the client, metrics, time and the controller's settings `S`.
pub struct Context<S> {
    /// API client.
    pub client: Client,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Time source: every decision reads the time from it.
    pub clock: Arc<dyn Clock>,
    /// The controller's settings.
    pub settings: S,
}

impl<S: fmt::Debug> fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What a watch covers: one namespace, or the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    Cluster,
    /// One namespace.
    Namespace(String),
}

impl Scope {
    /// The scopes for `namespaces` (`None`: the whole cluster).
    #[must_use]
    pub fn all(namespaces: Option<&[String]>) -> Vec<Self> {
        namespaces.map_or_else(
            || vec![Self::Cluster],
            |list| list.iter().cloned().map(Self::Namespace).collect(),
        )
    }

    /// The API of `K` in this scope.
    #[must_use]
    pub fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            Self::Cluster => Api::all(client.clone()),
            Self::Namespace(ns) => Api::namespaced(client.clone(), ns),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cluster => f.write_str("all namespaces"),
            Self::Namespace(ns) => write!(f, "namespace {ns}"),
        }
    }
}

/// A reconcile error with a bounded label for metrics.
pub trait ReconcileError: std::error::Error {
    /// A bounded label for metrics.
    fn category(&self) -> &'static str;
}

/// The error policy of both controllers: counts and logs the failure, and retries `obj` after
/// its [`backoff::Backoff`] delay (keyed by [`key_of`], as the reset after a success is).
pub fn retry_after_failure<K: Resource, E: ReconcileError>(
    controller: &'static str,
    obj: &K,
    error: &E,
    metrics: &Metrics,
    backoff: &backoff::Backoff,
) -> Requeue {
    metrics.reconcile_error(controller, error.category());
    let key = key_of(obj);
    let key = key.as_str();
    let wait = backoff.failed(key);
    tracing::warn!(
        controller,
        object = key,
        error = %error,
        source = ?std::error::Error::source(error).map(ToString::to_string),
        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "reconcile failed"
    );
    Requeue::requeue(wait)
}

/// Reports an object that does not decode (once per resourceVersion, [`crate::decode::report`])
/// and waits for it to change: what both controllers do with one.
pub fn undecodable<K, S>(
    obj: &crate::decode::Lenient<K>,
    bad: &crate::decode::Undecodable,
    reported: &crate::decode::Reported,
    events: &crate::events::Publisher,
    ctx: &Context<S>,
    controller: &'static str,
) -> Requeue
where
    K: Resource<DynamicType = ()>,
{
    crate::decode::report(
        obj,
        bad,
        reported,
        events,
        ctx.clock.now(),
        &ctx.metrics,
        controller,
    );
    Requeue::await_change()
}

/// `namespace/name` of an object, the key of its backoff.
#[must_use]
pub fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// Logs one item of a controller's output stream. Reconcile failures were logged by the error
/// policy already; what is left are the watches' failures (a missing CRD, an RBAC denial, a
/// dropped connection), which an operator must see at the default level.
pub fn report_controller_result<K, E>(
    controller: &'static str,
    result: Result<
        (kube::runtime::reflector::ObjectRef<K>, Requeue),
        controller::Error<E, kube::runtime::watcher::Error>,
    >,
) where
    K: Resource,
    K::DynamicType: fmt::Debug + Eq + std::hash::Hash + Clone,
    E: std::error::Error + 'static,
{
    match result {
        Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
        Err(controller::Error::QueueError(e)) => {
            tracing::warn!(controller, error = %e, "watch failed; retrying with backoff");
        }
        Err(e @ controller::Error::ObjectNotFound(_)) => {
            tracing::debug!(controller, error = %e, "object gone before its reconcile");
        }
        Err(e) => tracing::warn!(controller, error = %e, "controller error"),
    }
}

/// Logs a watch failure of a cache that no controller reports for (the shared caches).
pub fn report_watch_error(what: &'static str, error: &kube::runtime::watcher::Error) {
    tracing::warn!(cache = what, error = %error, "watch failed; retrying with backoff");
}

/// The longest a controller waits between checks that the CRDs are served, at start.
pub const CRD_CHECK_INTERVAL: Duration = Duration::from_secs(2);
