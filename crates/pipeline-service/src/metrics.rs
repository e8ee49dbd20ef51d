//! The service's Prometheus metrics (prometheus-client, one registry, prefix `pipelines`):
//!
//! | Metric | Labels |
//! |---|---|
//! | `pipelines_http_requests_total` | `route`, `method`, `status` (the code, e.g. `404`) |
//! | `pipelines_http_request_duration_seconds` | `route` |
//! | `pipelines_http_errors_total` | `route`, `category` ([`crate::error::Error::category`]: `invalid`, `not_found`, `kubernetes`, ...) |
//!
//! Every label is bounded: `route` is the matched route template (`/api/v1/pipelines/{name}`,
//! never the pipeline name; `unmatched` otherwise), `method` the HTTP method, `status` one of the
//! codes the API answers with, and `category` one of nine fixed words. Errors answered before an
//! operation runs (401, a bad name or body) count in the requests only.

use std::{fmt, sync::Mutex};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    route: String,
    category: &'static str,
}

/// The metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    errors: Family<ErrorLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pipelines");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "http_errors",
            "Failed operations by route and error category",
            errors.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            errors,
        }
    }

    /// Records one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Records one failed operation of `route`, by its error category.
    pub fn observe_error(&self, route: &str, category: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                route: route.to_owned(),
                category,
            })
            .inc();
    }

    /// The OpenMetrics text.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = encode(&mut out, &registry);
        }
        out
    }
}
