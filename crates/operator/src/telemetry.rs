//! Structured logging: the process-wide `tracing` subscriber.
//!
//! Logs are JSON lines by default (`LOG_FORMAT=json`), one object per event with the span fields
//! (`omjob`, `namespace`, …) flattened in, because cluster log pipelines index fields rather than
//! parse prose. `LOG_FORMAT=text` gives human-readable lines for a terminal. The level comes from
//! `LOG_LEVEL`, already normalised by [`crate::config`] to a `tracing` filter directive.
//!
//! # Rule: never log configuration values or secrets
//!
//! The Java operator logged the inline `config` env var of CronOMJobs, JWT included (spec §5.5).
//! Here, no code logs the *value* of an environment variable, of a pod's env, of a ConfigMap or of
//! a Secret: log names, keys and lengths instead. The only exception is the startup
//! [`ConfigError`](crate::config::ConfigError), which echoes the operator's own rejected tuning
//! knobs (ports, counts, namespace names), never credentials.

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// The global subscriber could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The level is not a valid `tracing` filter.
    #[error("failed to parse the log filter {filter:?}")]
    ParseFilter {
        /// The rejected filter.
        filter: String,
        /// Why it was rejected.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed (by a test harness or an earlier call).
    #[error("failed to install the global log subscriber")]
    Install(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber, filtering with `level` (a `tracing` filter directive such as
/// `info` or `info,kube=debug`) and writing JSON lines when `json` is set, else plain text.
///
/// Output goes to stdout, as container runtimes expect.
///
/// # Errors
///
/// [`TelemetryError::ParseFilter`] for an invalid filter, [`TelemetryError::Install`] when a global
/// subscriber is already set.
pub fn init(level: &str, json: bool) -> Result<(), TelemetryError> {
    let filter = build_filter(level)?;
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    // Span fields at the top level make `omjob`/`namespace` directly queryable.
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(true),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_target(true)).try_init()
    };
    installed.map_err(TelemetryError::Install)
}

fn build_filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::builder()
        .parse(level)
        .map_err(|source| TelemetryError::ParseFilter {
            filter: level.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_levels_and_directives_parse() {
        for level in ["info", "debug", "off", "info,kube=debug,omjob_operator=trace"] {
            assert!(build_filter(level).is_ok(), "{level}");
        }
    }

    #[test]
    fn an_invalid_directive_is_a_typed_error() {
        let err = build_filter("kube=loud").unwrap_err();
        assert!(matches!(err, TelemetryError::ParseFilter { .. }), "{err:?}");
    }
}
