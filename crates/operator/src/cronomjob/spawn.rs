//! The OMJob a CronOMJob runs for one slot, built from its template (reference §4 step 9).
//!
//! Pure: the same CronOMJob and slot always give the same OMJob, run id included, so a slot
//! retried after a crash creates (or finds) exactly the object the first attempt would have.

use std::collections::BTreeMap;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::ObjectMeta, jiff::Timestamp};
use kube::Resource as _;
use omjob_api::{
    CronOMJob, OMJob, OMJobSpec, PodTemplate, env, labels,
    names::{self, NameError},
};
use sha2::{Digest, Sha256};

/// Annotation on a spawned OMJob: the slot it runs, in RFC 3339 (additive; Kubernetes' CronJob
/// sets `batch.kubernetes.io/cronjob-scheduled-timestamp` the same way).
pub const SCHEDULED_AT_ANNOTATION: &str = "omjob.pipelines.openmetadata.org/scheduled-at";

/// Annotations not copied to runs: `kubectl apply`'s copy of the CronOMJob would make each run
/// look like it had been applied itself.
const NOT_COPIED_ANNOTATIONS: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];

/// Why no OMJob could be built.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The name could not be fitted (only with a slot whose epoch fills 63 characters).
    #[error("failed to name the OMJob for slot {slot}")]
    Name {
        /// The slot.
        slot: Timestamp,
        #[source]
        source: NameError,
    },
    /// The CronOMJob has no name or UID (never true for objects read from the API).
    #[error("the CronOMJob has no name or uid")]
    MissingMetadata,
}

/// The run id of a slot: a version-4-shaped UUID derived from the CronOMJob's UID and the slot,
/// so a retried create carries the same id. The Java operator draws a random one per attempt.
#[must_use]
pub fn run_id(cron_uid: &str, slot: Timestamp) -> String {
    let digest = Sha256::digest(format!("{cron_uid}/{}", slot.as_second()).as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// The OMJob that runs `cron`'s slot `slot`.
///
/// # Guarantees
/// * Name: `spawned_omjob_name(cron, slot epoch seconds)` (at most 63 characters).
/// * Controlled by the CronOMJob (owner reference with `controller`), so deleting the
///   CronOMJob deletes its runs.
/// * Labels and annotations: the CronOMJob's, plus `app.kubernetes.io/run-id` = [`run_id`] and
///   the [`SCHEDULED_AT_ANNOTATION`].
/// * Spec: the template with `{{ omjob.uid }}` replaced by the run id and `{{ omjob.name }}` by
///   the OMJob's name in every env value of both pod templates (`valueFrom` refs untouched).
///
/// # Errors
/// [`SpawnError::MissingMetadata`] for a CronOMJob without name or UID.
pub fn build(cron: &CronOMJob, slot: Timestamp) -> Result<OMJob, SpawnError> {
    let cron_name = cron.metadata.name.as_deref().ok_or(SpawnError::MissingMetadata)?;
    let uid = cron.metadata.uid.as_deref().ok_or(SpawnError::MissingMetadata)?;
    // No `blockOwnerDeletion` here: it needs `cronomjobs/finalizers`, which OpenMetadata's chart
    // does not grant; the controller adds it where that is permitted.
    let owner = cron
        .controller_owner_ref(&())
        .ok_or(SpawnError::MissingMetadata)?;
    let name = names::spawned_omjob_name(cron_name, slot.as_second())
        .map_err(|source| SpawnError::Name { slot, source })?;
    let run_id = run_id(uid, slot);

    let mut labels = cron.metadata.labels.clone().unwrap_or_default();
    labels.insert(labels::LABEL_APP_RUN_ID.to_owned(), run_id.clone());
    let mut annotations: BTreeMap<String, String> = cron
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !NOT_COPIED_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(SCHEDULED_AT_ANNOTATION.to_owned(), slot.to_string());

    let mut spec: OMJobSpec = cron.spec.om_job_spec.clone();
    substitute(&mut spec.main_pod_spec, &run_id, &name);
    if let Some(exit) = spec.exit_handler_spec.as_mut() {
        substitute(exit, &run_id, &name);
    }

    let mut omjob = OMJob::new(&name, spec);
    omjob.metadata = ObjectMeta {
        name: Some(name),
        namespace: cron.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: Some(annotations),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    Ok(omjob)
}

/// Replaces the run placeholders in every literal env value of `template`.
fn substitute(template: &mut PodTemplate, run_id: &str, name: &str) {
    for var in template.env.iter_mut().flatten() {
        if let Some(value) = var.value.as_mut()
            && value.contains("{{")
        {
            *value = value
                .replace(env::OMJOB_UID_PLACEHOLDER, run_id)
                .replace(env::OMJOB_NAME_PLACEHOLDER, name);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn fixture() -> CronOMJob {
        let text = include_str!("../../../api/tests/fixtures/cronomjob-openmetadata.yaml");
        let mut cron: CronOMJob = serde_yaml_ng::from_str(text).unwrap();
        cron.metadata.uid = Some("0b6c1f3e-1111-2222-3333-444455556666".into());
        cron.metadata.annotations.get_or_insert_default().insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            "{...}".into(),
        );
        cron
    }

    fn env_value(t: &PodTemplate, name: &str) -> Option<String> {
        t.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    }

    #[test]
    fn a_run_is_named_owned_labelled_and_its_placeholders_filled() {
        let cron = fixture();
        let slot: Timestamp = "2026-03-01T06:00:00Z".parse().unwrap();
        let o = build(&cron, slot).unwrap();
        let name = "om-cronomjob-mysql-prod-metadata-1772344800";
        assert_eq!(o.metadata.name.as_deref(), Some(name));
        assert_eq!(o.metadata.namespace.as_deref(), Some("openmetadata-pipelines"));

        let owner = &o.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "CronOMJob");
        assert_eq!(owner.uid, "0b6c1f3e-1111-2222-3333-444455556666");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(
            owner.block_owner_deletion, None,
            "set by the controller where permitted"
        );

        let labels = o.metadata.labels.as_ref().unwrap();
        let run_id = labels[labels::LABEL_APP_RUN_ID].clone();
        assert_eq!(labels[labels::LABEL_APP_PIPELINE], "mysql-prod-metadata");
        assert_eq!(labels.len(), 6, "the five copied labels plus run-id: {labels:?}");
        assert!(uuid::Uuid::parse_str(&run_id).is_ok());

        let ann = o.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann["cluster-autoscaler.kubernetes.io/safe-to-evict"], "false");
        assert_eq!(ann[SCHEDULED_AT_ANNOTATION], "2026-03-01T06:00:00Z");
        assert!(!ann.contains_key("kubectl.kubernetes.io/last-applied-configuration"));

        let main = &o.spec.main_pod_spec;
        let exit = o.spec.exit_handler_spec.as_ref().unwrap();
        assert_eq!(env_value(main, env::PIPELINE_RUN_ID), Some(run_id.clone()));
        assert_eq!(env_value(exit, env::PIPELINE_RUN_ID), Some(run_id));
        assert_eq!(env_value(exit, env::JOB_NAME).as_deref(), Some(name));
        // valueFrom refs are kept as they are, the empty one too.
        let config = main.env.iter().flatten().find(|e| e.name == env::CONFIG).unwrap();
        assert_eq!(
            config
                .value_from
                .as_ref()
                .unwrap()
                .config_map_key_ref
                .as_ref()
                .unwrap()
                .name,
            "om-config-mysql-prod-metadata"
        );
        assert!(
            main.env
                .iter()
                .flatten()
                .any(|e| e.name == "EMPTY_VALUE_FROM" && e.value_from.is_some())
        );
        // Everything else in the template is unchanged.
        assert_eq!(o.spec.ttl_seconds_after_finished, Some(86_400));
        assert_eq!(main.image, cron.spec.om_job_spec.main_pod_spec.image);
    }

    #[test]
    fn the_same_slot_gives_the_same_run_and_another_slot_another() {
        let cron = fixture();
        let a: Timestamp = "2026-03-01T06:00:00Z".parse().unwrap();
        let b: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        assert_eq!(build(&cron, a).unwrap(), build(&cron, a).unwrap());
        assert_ne!(run_id("u", a), run_id("u", b));
        assert_ne!(run_id("u", a), run_id("v", a));
    }

    #[test]
    fn a_cron_without_uid_is_refused() {
        let mut cron = fixture();
        cron.metadata.uid = None;
        assert!(matches!(
            build(&cron, Timestamp::UNIX_EPOCH),
            Err(SpawnError::MissingMetadata)
        ));
    }
}
