//! OMJob and CronOMJob custom resource types and the naming rules shared by every component.
//!
//! This crate is the wire contract of the project: the custom resources that OpenMetadata's
//! server writes (`pipelines.openmetadata.org/v1`), the phases an OMJob moves through, the label
//! keys and the name rules that make pods and spawned OMJobs deterministic. It does no IO.
//!
//! | Module | Concept |
//! |---|---|
//! | [`omjob`] | the `OMJob` resource: a main pod, then an exit-handler pod |
//! | [`cronomjob`] | the `CronOMJob` resource: OMJobs on a schedule |
//! | [`pod_template`] | the pod template both resources embed |
//! | [`schedule`] | a CronOMJob's cron expression in its time zone, and its fire times |
//! | [`phase`] | the OMJob state machine's phases and allowed moves |
//! | [`labels`] | label keys and values, and label-value sanitising |
//! | [`names`] | deterministic names of pods and spawned OMJobs |
//! | [`termination`] | why a main stage ended (`status.reason`), and how a pod ended as its status shows it |
//! | [`env`] | env-var names and placeholders of the OpenMetadata contract |
//! | [`crds`] | the CustomResourceDefinitions rendered as YAML |
//! | [`annotations`] | annotation keys, and the additive spec fields they stand in for |
//! | [`grammar`] | DNS-label and quantity grammars, checked alike by every crate |
//! | [`api_request`] | the verb and resource of a request to the API server, for request counters |
//!
//! Fields that OpenMetadata's Java operator does not know are marked *additive* in their docs.
//! They are all optional, and leaving them out gives the Java operator's behaviour.

// The API crate is the wire contract: every public item says what it means.
#![warn(missing_docs)]

pub mod annotations;
pub mod api_request;
pub mod crds;
pub mod cronomjob;
pub mod env;
pub mod grammar;
pub mod labels;
pub mod names;
pub mod omjob;
pub mod phase;
pub mod pod_template;
pub mod schedule;
mod schema;
pub mod termination;

pub use crds::{CrdRenderError, render_yaml};
pub use cronomjob::{ActiveOMJobRef, ConcurrencyPolicy, CronOMJob, CronOMJobSpec, CronOMJobStatus};
pub use names::NameError;
pub use omjob::{Condition, ConditionStatus, OMJob, OMJobSpec, OMJobStatus};
pub use phase::{ParsePhaseError, Phase};
pub use pod_template::PodTemplate;
pub use termination::Termination;

/// The API group of both custom resources.
pub const GROUP: &str = "pipelines.openmetadata.org";
/// The API version of both custom resources.
pub const VERSION: &str = "v1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "pipelines.openmetadata.org/v1";
