//! Env-var names and placeholders of the OpenMetadata pod contract (reference §4, §6.4, §3.4).
//!
//! OpenMetadata's server puts these variables in the pod templates; the operator replaces the
//! placeholders in a CronOMJob's template for each run and adds `pipelineStatus` to exit pods.

/// The pipeline type, such as `metadata`.
pub const PIPELINE_TYPE: &str = "pipelineType";
/// The run's UUID; in a CronOMJob template, [`OMJOB_UID_PLACEHOLDER`].
pub const PIPELINE_RUN_ID: &str = "pipelineRunId";
/// The ingestion pipeline's fully qualified name.
pub const INGESTION_PIPELINE_FQN: &str = "ingestionPipelineFQN";
/// The workflow configuration (inline YAML, or a ConfigMap reference).
pub const CONFIG: &str = "config";
/// The resource name; in a CronOMJob's exit template, [`OMJOB_NAME_PLACEHOLDER`].
pub const JOB_NAME: &str = "jobName";
/// The namespace of the run.
pub const NAMESPACE: &str = "namespace";
/// Added by the operator to exit pods: [`PIPELINE_STATUS_SUCCESS`] or [`PIPELINE_STATUS_FAILED`].
pub const PIPELINE_STATUS: &str = "pipelineStatus";

/// Added by the operator to exit pods (*additive*): the main container's exit code, or `unknown`.
pub const MAIN_POD_EXIT_CODE: &str = "mainPodExitCode";
/// Added by the operator to exit pods (*additive*): why the main stage ended, a
/// [`crate::termination::Termination`] string (`Completed`, `OOMKilled`...).
pub const MAIN_POD_TERMINATION_REASON: &str = "mainPodTerminationReason";

/// `pipelineStatus` when the main container exited 0.
pub const PIPELINE_STATUS_SUCCESS: &str = "success";
/// `pipelineStatus` otherwise (non-zero or unknown exit code).
pub const PIPELINE_STATUS_FAILED: &str = "failed";

/// Placeholder in `pipelineRunId`, replaced by the run's UUID (the `run-id` label's value, not
/// the Kubernetes UID).
pub const OMJOB_UID_PLACEHOLDER: &str = "{{ omjob.uid }}";
/// Placeholder in `jobName`, replaced by the spawned OMJob's name.
pub const OMJOB_NAME_PLACEHOLDER: &str = "{{ omjob.name }}";
