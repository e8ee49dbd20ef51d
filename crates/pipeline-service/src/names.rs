//! Resource names and labels of a pipeline: one naming function used by every operation.
//!
//! Upstream builds names with plain truncation in `deploy`/`run` and without it in `delete` and
//! `toggle`, so long names collide or are missed (reference §2.3). Here every name comes from
//! [`PipelineNames`], which fits the pipeline name into the room left by prefix and suffix with
//! [`omjob_api::names::fit_name_with_hash`]: names that fit are unchanged, longer ones keep a
//! prefix and a SHA-256 suffix, so two long pipeline names never share a resource name.

use std::collections::BTreeMap;

use omjob_api::labels::{
    APP_NAME, COMPONENT_INGESTION, LABEL_APP_COMPONENT, LABEL_APP_MANAGED_BY, LABEL_APP_NAME,
    LABEL_APP_PIPELINE, LABEL_APP_PIPELINE_TYPE, LABEL_APP_RUN_ID, MANAGED_BY_OPENMETADATA,
};

/// Longest Kubernetes object name this service creates (a DNS-1123 label, so that names are also
/// usable as label values).
pub const MAX_NAME_LENGTH: usize = omjob_api::grammar::DNS_LABEL_MAX;
/// Used when nothing of the pipeline name is left after shortening.
const FALLBACK: &str = "p";
/// Characters of the run id kept in a run's name, as upstream.
const RUN_ID_PREFIX_LENGTH: usize = 8;

/// `prefix + fit(pipeline) + suffix`, at most 63 characters.
///
/// # Guarantees
/// Deterministic; unchanged pipeline name when it fits; distinct pipeline names give distinct
/// results (up to SHA-256 prefix collisions) because a shortened name carries a hash of the
/// whole pipeline name.
#[must_use]
pub fn resource_name(prefix: &str, pipeline: &str, suffix: &str) -> String {
    let room = MAX_NAME_LENGTH.saturating_sub(prefix.len() + suffix.len()).max(1);
    // Only fails for room 0 or an empty fallback, both excluded above.
    let base = omjob_api::names::fit_name_with_hash(pipeline, room, FALLBACK)
        .unwrap_or_else(|_| FALLBACK.to_owned());
    format!("{prefix}{base}{suffix}")
}

/// The names and labels of one pipeline's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineNames {
    pipeline: String,
}

impl PipelineNames {
    /// Names for the pipeline called `pipeline` (already validated as a DNS label).
    #[must_use]
    pub fn new(pipeline: &str) -> Self {
        Self {
            pipeline: pipeline.to_owned(),
        }
    }

    /// The pipeline name.
    #[must_use]
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// ConfigMap holding the workflow config: `om-config-<n>`.
    #[must_use]
    pub fn config_map(&self) -> String {
        resource_name("om-config-", &self.pipeline, "")
    }

    /// Secret holding the credentials: `om-secret-<n>`.
    #[must_use]
    pub fn secret(&self) -> String {
        resource_name("om-secret-", &self.pipeline, "")
    }

    /// CronJob of a scheduled pipeline (standard mode): `om-cronjob-<n>`.
    #[must_use]
    pub fn cron_job(&self) -> String {
        resource_name("om-cronjob-", &self.pipeline, "")
    }

    /// CronOMJob of a scheduled pipeline (operator mode): `om-cronomjob-<n>`.
    #[must_use]
    pub fn cron_omjob(&self) -> String {
        resource_name("om-cronomjob-", &self.pipeline, "")
    }

    /// Job or OMJob of an on-demand run: `om-job-<n>-<first 8 of runId>`.
    #[must_use]
    pub fn run(&self, run_id: &str) -> String {
        let short: String = run_id.chars().take(RUN_ID_PREFIX_LENGTH).collect();
        resource_name("om-job-", &self.pipeline, &format!("-{short}"))
    }

    /// Value of `app.kubernetes.io/pipeline` on everything the pipeline owns.
    #[must_use]
    pub fn label_value(&self) -> String {
        resource_name("", &self.pipeline, "")
    }

    /// Label selector matching everything the pipeline owns.
    #[must_use]
    pub fn selector(&self) -> String {
        format!("{LABEL_APP_PIPELINE}={}", self.label_value())
    }

    /// Labels of the pipeline's objects (reference §2.1); `run_id` only on on-demand runs.
    #[must_use]
    pub fn labels(&self, pipeline_type: &str, run_id: Option<&str>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (LABEL_APP_NAME.to_owned(), APP_NAME.to_owned()),
            (LABEL_APP_COMPONENT.to_owned(), COMPONENT_INGESTION.to_owned()),
            (
                LABEL_APP_MANAGED_BY.to_owned(),
                MANAGED_BY_OPENMETADATA.to_owned(),
            ),
            (LABEL_APP_PIPELINE.to_owned(), self.label_value()),
            (LABEL_APP_PIPELINE_TYPE.to_owned(), pipeline_type.to_lowercase()),
        ]);
        if let Some(id) = run_id {
            labels.insert(LABEL_APP_RUN_ID.to_owned(), id.to_owned());
        }
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_follow_the_reference_prefixes() {
        let n = PipelineNames::new("mysql");
        assert_eq!(n.config_map(), "om-config-mysql");
        assert_eq!(n.secret(), "om-secret-mysql");
        assert_eq!(n.cron_job(), "om-cronjob-mysql");
        assert_eq!(n.cron_omjob(), "om-cronomjob-mysql");
        assert_eq!(n.run("a1b2c3d4-e5f6-7890"), "om-job-mysql-a1b2c3d4");
        assert_eq!(n.selector(), "app.kubernetes.io/pipeline=mysql");
    }

    #[test]
    fn long_names_that_share_a_prefix_do_not_collide() {
        let a = PipelineNames::new(&format!("{}-a", "x".repeat(61)));
        let b = PipelineNames::new(&format!("{}-b", "x".repeat(61)));
        for (x, y) in [
            (a.config_map(), b.config_map()),
            (a.cron_job(), b.cron_job()),
            (a.cron_omjob(), b.cron_omjob()),
            (a.run("12345678"), b.run("12345678")),
            (a.label_value(), b.label_value()),
        ] {
            assert_ne!(x, y);
            assert!(
                x.len() <= MAX_NAME_LENGTH && y.len() <= MAX_NAME_LENGTH,
                "{x} {y}"
            );
        }
        // A 63-character name is its own label value; the prefixed names are shortened with a hash.
        assert_eq!(a.label_value().len(), 63);
        assert!(a.cron_omjob().starts_with("om-cronomjob-xxx"));
        assert_eq!(a.cron_omjob().len(), 63);
    }

    #[test]
    fn labels_carry_run_id_only_for_on_demand_runs() {
        let n = PipelineNames::new("p1");
        let l = n.labels("Metadata", Some("r1"));
        assert_eq!(l["app.kubernetes.io/pipeline-type"], "metadata");
        assert_eq!(l["app.kubernetes.io/run-id"], "r1");
        assert!(
            !n.labels("metadata", None)
                .contains_key("app.kubernetes.io/run-id")
        );
    }
}
