//! The `CronOMJob` custom resource: OMJobs created on a cron schedule.
//!
//! The spec is what OpenMetadata's server writes (reference §1.3, §6.3): a 5-field schedule, a
//! time zone, and an [`OMJobSpec`] template whose env may hold the `{{ omjob.uid }}` and
//! `{{ omjob.name }}` placeholders. Fields the Java operator does not know are marked *additive*.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::omjob::OMJobSpec;

/// The `timeZone` the API server fills in when the field is left out.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// The history limits the API server fills in when they are left out.
pub const DEFAULT_HISTORY_LIMIT: i32 = 3;

/// The desired state of a CronOMJob: when to run, and the OMJob to run.
// Several printer columns share `type_ = "..."`, which clippy mistakes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "pipelines.openmetadata.org",
    version = "v1",
    kind = "CronOMJob",
    plural = "cronomjobs",
    singular = "cronomjob",
    shortname = "comj",
    namespaced,
    status = "CronOMJobStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "An OpenMetadata ingestion pipeline on a schedule: creates one OMJob per cron slot.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(
        name = "Last Schedule",
        type_ = "date",
        json_path = ".status.lastScheduleTime"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CronOMJobSpec {
    /// Five-field UNIX cron expression, such as `0 0 * * *`.
    pub schedule: String,

    /// IANA time zone the schedule is read in. The API server fills in `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::time_zone")]
    pub time_zone: Option<String>,

    /// Whether scheduling is paused. Slots missed while suspended are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::bool_default_false")]
    pub suspend: Option<bool>,

    /// A slot that cannot start within this many seconds of its time is skipped (recorded as
    /// missed) instead of run. 0 or less (OpenMetadata's default is 0) means no catch-up: a slot
    /// runs when the operator starts it on time (within a grace of 120 s for its own lateness),
    /// and one missed while no operator ran is recorded as missed. Left out: no deadline, so
    /// after an outage the most recent missed slot runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,

    /// How many finished successful OMJobs to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::history_limit")]
    pub successful_jobs_history_limit: Option<i32>,

    /// How many finished failed OMJobs to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::history_limit")]
    pub failed_jobs_history_limit: Option<i32>,

    /// *Additive.* What to do when a slot comes while an earlier OMJob still runs. Left out:
    /// `Allow`, as in the Java operator. Also accepted as the annotation
    /// `omjob.pipelines.openmetadata.org/concurrency-policy`; this field wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::non_nullable::<ConcurrencyPolicy>")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,

    /// The OMJob spec each run gets, after placeholder substitution.
    pub om_job_spec: OMJobSpec,
}

impl CronOMJobSpec {
    /// The time zone to read the schedule in: `timeZone`, or `UTC` when it is missing.
    #[must_use]
    pub fn time_zone_or_default(&self) -> &str {
        self.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE)
    }

    /// Whether scheduling is paused (`suspend`, `false` when missing).
    #[must_use]
    pub fn is_suspended(&self) -> bool {
        self.suspend.unwrap_or(false)
    }

    /// The concurrency policy, `Allow` when missing.
    #[must_use]
    pub fn concurrency_policy_or_default(&self) -> ConcurrencyPolicy {
        self.concurrency_policy.unwrap_or_default()
    }
}

/// *Additive.* How a CronOMJob treats a slot while an OMJob it created still runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Start the new run anyway (the Java operator's only behaviour).
    #[default]
    Allow,
    /// Skip the slot.
    Forbid,
    /// Stop the running OMJob, then start the new one.
    Replace,
}

/// The observed state of a CronOMJob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronOMJobStatus {
    /// The latest slot that was handled (run, or skipped as missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,

    /// Name of the last OMJob created.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "lastOMJobName")]
    pub last_omjob_name: Option<String>,

    /// Human-readable message about the current status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// *Additive.* OMJobs created by this CronOMJob that have not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Vec<ActiveOMJobRef>>,

    /// *Additive.* When an OMJob created by this CronOMJob last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
}

/// *Additive.* An OMJob that a CronOMJob created and that has not finished.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActiveOMJobRef {
    /// Name of the OMJob (same namespace as the CronOMJob).
    pub name: String,
    /// UID of the OMJob, to tell it from a later one with the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}
