//! Annotation keys of this project, and the additive spec fields they can stand in for.
//!
//! OpenMetadata's Helm chart installs CRDs without the additive fields, and the API server
//! prunes fields its schema lacks, so `spec.activeDeadlineSeconds`, `spec.pendingTimeoutSeconds`
//! and `spec.concurrencyPolicy` are lost under it. Annotations are kept whatever the schema, so
//! each such field can also be given as an annotation; the spec field wins when both are set.
//! A value that does not parse (not a whole number ≥ 1, not a known policy) counts as unset.
//!
//! The operator also keeps its own bookkeeping in annotations ([`MAIN_OUTCOME`],
//! [`MAIN_EXIT_CODE`], [`EXIT_HANDLER_ATTEMPTS`] on the OMJob; [`EXIT_HANDLER_ATTEMPT`] and
//! [`PIPELINE_STATUS`] on exit pods), for the same reason.

use std::collections::BTreeMap;

use crate::{ConcurrencyPolicy, CronOMJobSpec, OMJobSpec};

/// The prefix every annotation key of this project starts with.
pub const PREFIX: &str = "omjob.pipelines.openmetadata.org/";

/// Stands in for `spec.activeDeadlineSeconds` (OMJob; on a CronOMJob it is copied to its runs).
pub const ACTIVE_DEADLINE_SECONDS: &str = "omjob.pipelines.openmetadata.org/active-deadline-seconds";
/// Stands in for `spec.pendingTimeoutSeconds` (OMJob; on a CronOMJob it is copied to its runs).
pub const PENDING_TIMEOUT_SECONDS: &str = "omjob.pipelines.openmetadata.org/pending-timeout-seconds";
/// Stands in for a CronOMJob's `spec.concurrencyPolicy`: `Allow`, `Forbid` or `Replace`.
pub const CONCURRENCY_POLICY: &str = "omjob.pipelines.openmetadata.org/concurrency-policy";

/// Written by the operator on an OMJob: why the main stage ended (`status.reason`).
pub const MAIN_OUTCOME: &str = "omjob.pipelines.openmetadata.org/main-outcome";
/// Written by the operator on an OMJob: the main container's exit code, when one was reported.
pub const MAIN_EXIT_CODE: &str = "omjob.pipelines.openmetadata.org/main-exit-code";
/// Written by the operator on an OMJob, before each exit pod is created: its attempt number.
pub const EXIT_HANDLER_ATTEMPTS: &str = "omjob.pipelines.openmetadata.org/exit-handler-attempts";
/// Written by the operator on an exit pod: its attempt number.
pub const EXIT_HANDLER_ATTEMPT: &str = "omjob.pipelines.openmetadata.org/exit-handler-attempt";
/// Written by the operator on an exit pod: the `pipelineStatus` it was given.
pub const PIPELINE_STATUS: &str = "omjob.pipelines.openmetadata.org/pipeline-status";

fn seconds(annotations: Option<&BTreeMap<String, String>>, key: &str) -> Option<i64> {
    annotations?
        .get(key)?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s >= 1)
}

impl OMJobSpec {
    /// Fills the additive fields left out of the spec from `annotations` (the spec wins).
    pub fn fill_from_annotations(&mut self, annotations: Option<&BTreeMap<String, String>>) {
        if self.active_deadline_seconds.is_none() {
            self.active_deadline_seconds = seconds(annotations, ACTIVE_DEADLINE_SECONDS);
        }
        if self.pending_timeout_seconds.is_none() {
            self.pending_timeout_seconds = seconds(annotations, PENDING_TIMEOUT_SECONDS);
        }
    }
}

impl CronOMJobSpec {
    /// Fills `concurrencyPolicy` and the run template's additive fields from `annotations`
    /// when the spec leaves them out (the spec wins).
    pub fn fill_from_annotations(&mut self, annotations: Option<&BTreeMap<String, String>>) {
        if self.concurrency_policy.is_none() {
            self.concurrency_policy =
                annotations
                    .and_then(|a| a.get(CONCURRENCY_POLICY))
                    .and_then(|v| match v.trim() {
                        "Allow" => Some(ConcurrencyPolicy::Allow),
                        "Forbid" => Some(ConcurrencyPolicy::Forbid),
                        "Replace" => Some(ConcurrencyPolicy::Replace),
                        _ => None,
                    });
        }
        self.om_job_spec.fill_from_annotations(annotations);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn annotations_fill_what_the_spec_leaves_out_and_the_spec_wins() {
        let a = ann(&[(ACTIVE_DEADLINE_SECONDS, "60"), (PENDING_TIMEOUT_SECONDS, " 30 ")]);
        let mut spec = OMJobSpec::default();
        spec.fill_from_annotations(Some(&a));
        assert_eq!(spec.active_deadline_seconds, Some(60));
        assert_eq!(spec.pending_timeout_seconds, Some(30));
        let mut spec = OMJobSpec {
            active_deadline_seconds: Some(5),
            ..OMJobSpec::default()
        };
        spec.fill_from_annotations(Some(&a));
        assert_eq!(spec.active_deadline_seconds, Some(5));
    }

    #[test]
    fn values_that_do_not_parse_count_as_unset() {
        for bad in ["0", "-3", "1h", ""] {
            let mut spec = OMJobSpec::default();
            spec.fill_from_annotations(Some(&ann(&[(ACTIVE_DEADLINE_SECONDS, bad)])));
            assert_eq!(spec.active_deadline_seconds, None, "{bad:?}");
        }
        let mut cron = CronOMJobSpec::default();
        cron.fill_from_annotations(Some(&ann(&[(CONCURRENCY_POLICY, "forbid")])));
        assert_eq!(cron.concurrency_policy, None);
        cron.fill_from_annotations(Some(&ann(&[
            (CONCURRENCY_POLICY, "Forbid"),
            (ACTIVE_DEADLINE_SECONDS, "9"),
        ])));
        assert_eq!(cron.concurrency_policy, Some(ConcurrencyPolicy::Forbid));
        assert_eq!(cron.om_job_spec.active_deadline_seconds, Some(9));
    }
}

#[cfg(test)]
mod prefix_tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix() {
        for key in [
            ACTIVE_DEADLINE_SECONDS,
            PENDING_TIMEOUT_SECONDS,
            CONCURRENCY_POLICY,
            MAIN_OUTCOME,
            MAIN_EXIT_CODE,
            EXIT_HANDLER_ATTEMPTS,
            EXIT_HANDLER_ATTEMPT,
            PIPELINE_STATUS,
        ] {
            assert!(key.starts_with(PREFIX), "{key}");
        }
    }
}
