//! Deploy, run, watch and debug OpenMetadata ingestion pipelines on Kubernetes: what
//! OpenMetadata's `K8sPipelineClient` does (reference §6), as a library, an HTTP service and a
//! CLI (`pipelines`).
//!
//! | Module | Concept |
//! |---|---|
//! | [`config`] | the reference's parameters, from file and env, validated at once |
//! | [`pipeline`] | a pipeline definition and its validation |
//! | [`names`] | the one naming function: resource names with hashed truncation, labels |
//! | [`render`] | the workflow config as the ingestion scripts read it: credentials, FQN, run id |
//! | [`build`] | the objects of each mode (Job/CronJob or OMJob/CronOMJob, ConfigMap, Secrets) |
//! | [`client`] | the operations, one `Workloads` implementation per mode chosen once, writes by server-side apply |
//! | [`runs`] | run state from Jobs/OMJobs and pods |
//! | [`diagnostics`] | a failed run's pod description, log tail and events |
//! | [`logs`] | log paging with bounded memory |
//! | [`retry`] | the client layer that retries transient API failures, for every request |
//! | [`error`] | errors naming the operation ([`error::Op`]) and the object, with the reference's hints |
//! | [`http`] | the HTTP API (axum), with auth, metrics and an OpenAPI document |
//! | [`metrics`] | Prometheus metrics |
//! | [`cli`] | the command line |

pub mod build;
pub mod cli;
pub mod client;
pub mod config;
pub mod diagnostics;
pub mod error;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod names;
pub mod pipeline;
pub mod render;
pub mod retry;
pub mod runs;

pub use client::PipelineClient;
pub use config::{Config, Mode};
pub use error::{Error, Result};
pub use pipeline::PipelineDefinition;
