//! The runtime's Prometheus metrics (§7) in one prometheus-client registry: Orkestra's
//! `controller_*` names and labels, `crd` carrying the GVK string, plus our own
//! `katalog_api_requests_total{verb,resource}` (every request sent to the API server, classified
//! by [`omjob_api::api_request::classify`]) and the child-apply counters.
//!
//! prometheus-client appends `_total` to counters itself, so counters are registered without it.

use std::fmt;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus' default histogram buckets, as Orkestra's client_golang histograms use.
const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CrdLabels {
    crd: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    crd: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApiRequestLabels {
    verb: &'static str,
    resource: String,
}

/// The metrics failed to encode.
#[derive(Debug, thiserror::Error)]
#[error("failed to encode the metrics")]
pub struct EncodeError(#[source] fmt::Error);

/// `result` of a pass or an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

/// The runtime's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_total: Family<ResultLabels, Counter>,
    reconcile_duration: Family<CrdLabels, Histogram>,
    queue_depth: Family<CrdLabels, Gauge>,
    resource_count: Family<CrdLabels, Gauge>,
    workers_total: Family<CrdLabels, Gauge>,
    workers_idle: Family<CrdLabels, Gauge>,
    workers_processing: Family<CrdLabels, Gauge>,
    activation_total: Family<ResultLabels, Counter>,
    activation_latency: Family<CrdLabels, Histogram>,
    api_requests: Family<ApiRequestLabels, Counter>,
    applies: Family<CrdLabels, Counter>,
    applies_skipped: Family<CrdLabels, Counter>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn crd(gvk: &str) -> CrdLabels {
    CrdLabels { crd: gvk.to_owned() }
}

impl Metrics {
    /// Every metric, registered in a fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let histogram = || Histogram::new(DEFAULT_BUCKETS);
        let m = Self {
            reconcile_total: Family::default(),
            reconcile_duration: Family::new_with_constructor(histogram),
            queue_depth: Family::default(),
            resource_count: Family::default(),
            workers_total: Family::default(),
            workers_idle: Family::default(),
            workers_processing: Family::default(),
            activation_total: Family::default(),
            // Activation is discovery plus the first list: milliseconds to a minute.
            activation_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 14))
            }),
            api_requests: Family::default(),
            applies: Family::default(),
            applies_skipped: Family::default(),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "controller_reconcile",
            "Reconcile passes by CRD and result",
            m.reconcile_total.clone(),
        );
        registry.register(
            "controller_reconcile_duration_seconds",
            "Time spent in one reconcile pass",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "controller_queue_depth",
            "CR keys waiting for a worker",
            m.queue_depth.clone(),
        );
        registry.register(
            "controller_resource_count",
            "CRs in the informer cache",
            m.resource_count.clone(),
        );
        registry.register(
            "controller_workers_total",
            "Workers of the entry",
            m.workers_total.clone(),
        );
        registry.register(
            "controller_workers_idle",
            "Workers waiting for a key",
            m.workers_idle.clone(),
        );
        registry.register(
            "controller_workers_processing",
            "Workers in a reconcile pass",
            m.workers_processing.clone(),
        );
        registry.register(
            "controller_crd_activation",
            "Entry activations by result",
            m.activation_total.clone(),
        );
        registry.register(
            "controller_crd_activation_latency_seconds",
            "From an entry's start to its controller running",
            m.activation_latency.clone(),
        );
        registry.register(
            "katalog_api_requests",
            "Requests sent to the API server by verb and resource",
            m.api_requests.clone(),
        );
        registry.register(
            "katalog_child_applies",
            "Server-side applies of children sent",
            m.applies.clone(),
        );
        registry.register(
            "katalog_child_applies_skipped",
            "Child applies not sent because the cached child already matched",
            m.applies_skipped.clone(),
        );
        registry.register(
            "katalog_leader",
            "1 while this replica holds the lease or runs without leader election",
            m.leader.clone(),
        );
        Self { registry, ..m }
    }

    /// One finished pass of `gvk`.
    pub fn reconciled(&self, gvk: &str, outcome: Outcome, seconds: f64) {
        self.reconcile_total
            .get_or_create(&ResultLabels {
                crd: gvk.to_owned(),
                result: outcome.label(),
            })
            .inc();
        self.reconcile_duration.get_or_create(&crd(gvk)).observe(seconds);
    }

    /// Passes of `gvk` with `outcome` so far.
    pub fn reconciles(&self, gvk: &str, outcome: Outcome) -> u64 {
        self.reconcile_total
            .get_or_create(&ResultLabels {
                crd: gvk.to_owned(),
                result: outcome.label(),
            })
            .get()
    }

    /// One activation attempt of `gvk`; `seconds` from the entry's start when it succeeded.
    pub fn activated(&self, gvk: &str, outcome: Outcome, seconds: Option<f64>) {
        self.activation_total
            .get_or_create(&ResultLabels {
                crd: gvk.to_owned(),
                result: outcome.label(),
            })
            .inc();
        if let Some(s) = seconds {
            self.activation_latency.get_or_create(&crd(gvk)).observe(s);
        }
    }

    /// The gauges of `gvk`: keys pending, CRs cached, workers in total and busy.
    pub fn gauges(&self, gvk: &str, queue: usize, resources: usize, workers: u32, processing: u32) {
        let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let l = crd(gvk);
        self.queue_depth.get_or_create(&l).set(to_i64(queue));
        self.resource_count.get_or_create(&l).set(to_i64(resources));
        self.workers_total.get_or_create(&l).set(i64::from(workers));
        self.workers_processing
            .get_or_create(&l)
            .set(i64::from(processing));
        self.workers_idle
            .get_or_create(&l)
            .set(i64::from(workers.saturating_sub(processing)));
    }

    /// One request sent to the API server.
    pub fn api_request(&self, verb: &'static str, resource: String) {
        self.api_requests
            .get_or_create(&ApiRequestLabels { verb, resource })
            .inc();
    }

    /// Requests sent with `verb`, over every resource.
    pub fn api_requests_with(&self, verb: &str) -> u64 {
        let mut total = 0;
        // Family has no iterator; the resources the runtime touches are few and known only at
        // run time, so the count walks the encoded text instead.
        let Ok(text) = self.encode() else {
            return 0;
        };
        let needle = format!("katalog_api_requests_total{{verb=\"{verb}\"");
        for line in text.lines().filter(|l| l.starts_with(&needle)) {
            if let Some(n) = line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()) {
                total += n;
            }
        }
        total
    }

    /// One child apply of `gvk` sent, or skipped.
    pub fn child_apply(&self, gvk: &str, skipped: bool) {
        let family = if skipped {
            &self.applies_skipped
        } else {
            &self.applies
        };
        family.get_or_create(&crd(gvk)).inc();
    }

    /// Whether this replica is the writer.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text of every metric.
    ///
    /// # Errors
    /// Encoding failed (only on a formatter error).
    pub fn encode(&self) -> Result<String, EncodeError> {
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(EncodeError)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orkestras_names_and_labels_are_exported() {
        let m = Metrics::new();
        let gvk = "data.demo.orkestra.io/v1alpha1, Kind=DataJob";
        m.reconciled(gvk, Outcome::Success, 0.02);
        m.reconciled(gvk, Outcome::Error, 0.02);
        m.gauges(gvk, 2, 5, 3, 1);
        m.activated(gvk, Outcome::Success, Some(0.5));
        m.api_request("patch", "datajobs/status".into());
        m.api_request("patch", "replicasets".into());
        m.api_request("list", "replicasets".into());
        m.child_apply(gvk, true);
        let text = m.encode().unwrap();
        for line in [
            "controller_reconcile_total{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\",result=\"success\"} 1",
            "controller_reconcile_total{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\",result=\"error\"} 1",
            "controller_queue_depth{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\"} 2",
            "controller_resource_count{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\"} 5",
            "controller_workers_idle{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\"} 2",
            "controller_crd_activation_total{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\",result=\"success\"} 1",
            "katalog_api_requests_total{verb=\"patch\",resource=\"replicasets\"} 1",
            "katalog_child_applies_skipped_total{crd=\"data.demo.orkestra.io/v1alpha1, Kind=DataJob\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.contains("controller_reconcile_duration_seconds_bucket"));
        assert!(text.contains("controller_crd_activation_latency_seconds_count"));
        assert_eq!(m.api_requests_with("patch"), 2);
        assert_eq!(m.reconciles(gvk, Outcome::Success), 1);
    }
}
