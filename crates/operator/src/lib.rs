//! omjob-operator: the controller manager for OMJob and CronOMJob, a drop-in replacement for
//! OpenMetadata's Java OMJob operator.
//!
//! This library holds the process-level plumbing the controllers run inside: configuration from
//! the Java operator's environment variables, metrics, the health/readiness HTTP endpoints,
//! structured logging, Lease-based leader election, an injectable clock, the per-object
//! decoding the controllers watch through, and the read-only control panel under `/ui/`. The
//! binary (`main.rs`) wires them together.

pub mod api_client;
pub mod capabilities;
pub mod clock;
pub mod config;
pub mod controller;
pub mod cronomjob;
pub mod decode;
pub mod events;
pub mod heap;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod omjob;
pub mod panel;
pub mod run;
pub mod telemetry;
