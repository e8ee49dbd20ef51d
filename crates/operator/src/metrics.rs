//! The operator's Prometheus metrics, in one prometheus-client registry.
//!
//! The names are the ones OpenMetadata's operator README documents (most of which the Java
//! operator never implemented) plus the two it does export, `omjob_operator_ready` and
//! `omjob_operator_info`, so existing dashboards keep working. Everything is registered under the
//! `omjob` prefix of the registry.
//!
//! Label values are static strings or bounded sets (controller names, error categories, phase
//! names, pod types). Object names never become labels: they would grow the series count without
//! limit; they belong in logs.
//!
//! prometheus-client appends `_total` to counters itself (OpenMetrics rules), so counters are
//! registered without the suffix.

use std::fmt;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// The content type of [`Metrics::encode`]'s output: prometheus-client writes OpenMetrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `result` label value of a successful reconcile.
pub const RESULT_SUCCESS: &str = "success";
/// `result` label value of a failed reconcile.
pub const RESULT_ERROR: &str = "error";
/// `type` label value of a main pod.
pub const POD_MAIN: &str = "main";
/// `type` label value of an exit-handler pod.
pub const POD_EXIT_HANDLER: &str = "exit-handler";
/// `from_phase` label value of an object that had no phase yet.
pub const NO_PHASE: &str = "None";

/// Bucket bounds for the time an OMJob spends in one phase: from a status flip that takes
/// milliseconds up to a two-hour ingestion run.
const PHASE_DURATION_BUCKETS: [f64; 16] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];

/// Bucket bounds for main-pod termination → exit pod created. The watch-driven path should land
/// in the millisecond buckets; the tail shows requeue- or back-off-driven creations.
const EXIT_HANDLER_LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReconcileLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    category: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PodLabels {
    r#type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransitionLabels {
    from_phase: String,
    to_phase: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApiRequestLabels {
    verb: &'static str,
    resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LaneLabels {
    lane: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct InfoLabels {
    version: &'static str,
}

/// The metrics failed to encode.
#[derive(Debug, thiserror::Error)]
#[error("failed to encode the metrics")]
pub struct EncodeError(#[source] fmt::Error);

/// The operator's metrics and the registry that exports them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciliations: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    phase_duration: Family<PhaseLabels, Histogram>,
    pods_created: Family<PodLabels, Counter>,
    transitions: Family<TransitionLabels, Counter>,
    ready: Gauge,
    leader_election: Gauge,
    exit_handler_latency: Histogram,
    api_requests: Family<ApiRequestLabels, Counter>,
    events_dropped: Counter,
    parked: Family<LaneLabels, Counter>,
    /// Live, active and resident heap bytes, registered only when the allocator can tell
    /// ([`crate::heap`]) and refreshed at each scrape.
    heap: Option<HeapGauges>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The gauges of [`crate::heap::HeapStats`].
#[derive(Debug)]
struct HeapGauges {
    allocated: Gauge,
    active: Gauge,
    resident: Gauge,
}

impl Metrics {
    /// The operator metrics in a fresh registry.
    #[must_use]
    pub fn new() -> Self {
        Self::with_registry(Registry::default())
    }

    /// Registers the operator metrics in `registry`, which may already hold other components'
    /// metrics, and keeps it for [`Metrics::encode`].
    #[must_use]
    pub fn with_registry(mut registry: Registry) -> Self {
        let reconciliations = Family::<ReconcileLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let phase_duration =
            Family::<PhaseLabels, Histogram>::new_with_constructor(|| Histogram::new(PHASE_DURATION_BUCKETS));
        let pods_created = Family::<PodLabels, Counter>::default();
        let transitions = Family::<TransitionLabels, Counter>::default();
        let ready = Gauge::default();
        let leader_election = Gauge::default();
        let info = Family::<InfoLabels, Gauge>::default();
        let exit_handler_latency = Histogram::new(EXIT_HANDLER_LATENCY_BUCKETS);
        let api_requests = Family::<ApiRequestLabels, Counter>::default();
        let events_dropped = Counter::default();
        let parked = Family::<LaneLabels, Counter>::default();

        info.get_or_create(&InfoLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);

        let sub = registry.sub_registry_with_prefix("omjob");
        sub.register(
            "reconciliations",
            "Reconcile passes by controller and result",
            reconciliations.clone(),
        );
        sub.register(
            "reconcile_errors",
            "Failed reconcile passes by controller and error category",
            reconcile_errors.clone(),
        );
        sub.register_with_unit(
            "duration",
            "Time an OMJob spent in a phase, observed when it leaves the phase",
            Unit::Seconds,
            phase_duration.clone(),
        );
        sub.register("pods_created", "Pods created by type", pods_created.clone());
        sub.register(
            "status_transitions",
            "OMJob phase transitions",
            transitions.clone(),
        );
        sub.register(
            "operator_ready",
            "1 when the operator is ready, else 0",
            ready.clone(),
        );
        sub.register(
            "leader_election_enabled",
            "1 when this replica takes part in leader election, 0 when it runs without (disabled, or the Lease is forbidden)",
            leader_election.clone(),
        );
        sub.register("operator_info", "Operator build information; always 1", info);
        sub.register_with_unit(
            "exit_handler_latency",
            "Time from seeing the main pod terminate to creating the exit-handler pod",
            Unit::Seconds,
            exit_handler_latency.clone(),
        );
        sub.register(
            "api_requests",
            "Requests this process sent to the Kubernetes API server, by verb and resource",
            api_requests.clone(),
        );
        sub.register(
            "events_dropped",
            "Events not written because the event queue was full",
            events_dropped.clone(),
        );
        sub.register(
            "reconciles_parked",
            "Reconciles that found their lane's permits taken and were queued for the next one, by lane",
            parked.clone(),
        );

        let heap = crate::heap::known().then(|| {
            let (allocated, active, resident) = (Gauge::default(), Gauge::default(), Gauge::default());
            sub.register_with_unit(
                "heap_allocated",
                "Heap bytes held by live allocations, as jemalloc counts them",
                Unit::Bytes,
                allocated.clone(),
            );
            sub.register_with_unit(
                "heap_active",
                "Bytes in heap pages that hold at least one live allocation; above heap_allocated is freed space those pages keep",
                Unit::Bytes,
                active.clone(),
            );
            sub.register_with_unit(
                "heap_resident",
                "Bytes in pages jemalloc keeps resident: live allocations, freed memory kept for reuse, and its own metadata",
                Unit::Bytes,
                resident.clone(),
            );
            HeapGauges {
                allocated,
                active,
                resident,
            }
        });

        Self {
            registry,
            heap,
            reconciliations,
            reconcile_errors,
            phase_duration,
            pods_created,
            transitions,
            ready,
            leader_election,
            exit_handler_latency,
            api_requests,
            events_dropped,
            parked,
        }
    }

    /// Counts an event the queue had no room for.
    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    /// Counts a reconcile parked in `lane` (`omjob_reconciles_parked_total`).
    pub fn parked(&self, lane: &'static str) {
        self.parked.get_or_create(&LaneLabels { lane }).inc();
    }

    /// Records whether leader election is in use (`omjob_leader_election_enabled`).
    pub fn set_leader_election(&self, enabled: bool) {
        self.leader_election.set(i64::from(enabled));
    }

    /// Counts one reconcile pass of `controller` ("omjob", "cronomjob").
    pub fn reconciled(&self, controller: &'static str, ok: bool) {
        let result = if ok { RESULT_SUCCESS } else { RESULT_ERROR };
        self.reconciliations
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
    }

    /// Counts one failed pass by its error's static `category()`.
    pub fn reconcile_error(&self, controller: &'static str, category: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { controller, category })
            .inc();
    }

    /// Records that an OMJob spent `secs` in `phase` (one of the bounded phase names).
    pub fn phase_duration(&self, phase: &str, secs: f64) {
        self.phase_duration
            .get_or_create(&PhaseLabels {
                phase: phase.to_owned(),
            })
            .observe(secs);
    }

    /// Counts a created pod of `kind` ([`POD_MAIN`] or [`POD_EXIT_HANDLER`]).
    pub fn pod_created(&self, kind: &'static str) {
        self.pods_created.get_or_create(&PodLabels { r#type: kind }).inc();
    }

    /// Counts a phase transition; `from` is `None` for an object that had no phase yet.
    pub fn transition(&self, from: Option<&str>, to: &str) {
        self.transitions
            .get_or_create(&TransitionLabels {
                from_phase: from.unwrap_or(NO_PHASE).to_owned(),
                to_phase: to.to_owned(),
            })
            .inc();
    }

    /// Sets `omjob_operator_ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Records the delay between seeing the main pod terminate and creating the exit pod.
    pub fn exit_handler_latency(&self, secs: f64) {
        self.exit_handler_latency.observe(secs);
    }

    /// Counts one request to the API server. `resource` is a bounded set: the resource types this
    /// process touches, with their subresource (`omjobs/status`), never an object name.
    pub fn api_request(&self, verb: &'static str, resource: String) {
        self.api_requests
            .get_or_create(&ApiRequestLabels { verb, resource })
            .inc();
    }

    /// The registry in OpenMetrics text format (see [`CONTENT_TYPE`]).
    ///
    /// # Errors
    ///
    /// Only if a metric fails to encode; writing into a `String` itself cannot fail.
    pub fn encode(&self) -> Result<String, EncodeError> {
        if let (Some(gauges), Some(now)) = (&self.heap, crate::heap::read()) {
            let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            gauges.allocated.set(bytes(now.allocated));
            gauges.active.set(bytes(now.active));
            gauges.resident.set(bytes(now.resident));
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(EncodeError)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_under_its_documented_name() {
        let metrics = Metrics::new();
        metrics.reconciled("omjob", true);
        metrics.reconciled("omjob", false);
        metrics.reconcile_error("omjob", "kube");
        metrics.phase_duration("Running", 12.5);
        metrics.pod_created(POD_MAIN);
        metrics.pod_created(POD_EXIT_HANDLER);
        metrics.transition(None, "Pending");
        metrics.transition(Some("Pending"), "Running");
        metrics.set_ready(true);
        metrics.exit_handler_latency(0.003);
        metrics.api_request("patch", "omjobs/status".to_owned());

        let text = metrics.encode().unwrap();
        for expected in [
            r#"omjob_reconciliations_total{controller="omjob",result="success"} 1"#,
            r#"omjob_reconciliations_total{controller="omjob",result="error"} 1"#,
            r#"omjob_reconcile_errors_total{controller="omjob",category="kube"} 1"#,
            r#"omjob_duration_seconds_count{phase="Running"} 1"#,
            r#"omjob_duration_seconds_bucket{le="30.0",phase="Running"} 1"#,
            r#"omjob_duration_seconds_bucket{le="7200.0",phase="Running"} 1"#,
            r#"omjob_pods_created_total{type="main"} 1"#,
            r#"omjob_pods_created_total{type="exit-handler"} 1"#,
            r#"omjob_status_transitions_total{from_phase="None",to_phase="Pending"} 1"#,
            r#"omjob_status_transitions_total{from_phase="Pending",to_phase="Running"} 1"#,
            "omjob_operator_ready 1",
            &format!(
                r#"omjob_operator_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
            r#"omjob_exit_handler_latency_seconds_bucket{le="0.005"} 1"#,
            "omjob_exit_handler_latency_seconds_count 1",
            r#"omjob_api_requests_total{verb="patch",resource="omjobs/status"} 1"#,
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert!(!text.contains("_total_total"), "{text}");
        assert!(text.ends_with("# EOF\n"), "OpenMetrics text must end with # EOF");
    }

    #[test]
    fn ready_gauge_follows_the_flag() {
        let metrics = Metrics::new();
        assert!(metrics.encode().unwrap().contains("omjob_operator_ready 0"));
        metrics.set_ready(true);
        metrics.set_ready(false);
        assert!(metrics.encode().unwrap().contains("omjob_operator_ready 0"));
    }

    #[test]
    fn other_components_can_share_the_registry() {
        let mut registry = Registry::default();
        registry.register("other", "another component's counter", Counter::<u64>::default());
        let text = Metrics::with_registry(registry).encode().unwrap();
        assert!(text.contains("other_total 0"), "{text}");
        assert!(text.contains("omjob_operator_info"), "{text}");
    }
}
