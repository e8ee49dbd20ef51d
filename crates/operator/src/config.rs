//! The operator's configuration, read from the same environment variables as the Java operator.
//!
//! Every variable of OpenMetadata's `OperatorConfig` is accepted with the same name and default, so
//! an existing Helm release configures this operator unchanged. Two behaviours differ on purpose:
//!
//! - **Invalid values are errors.** The Java operator prints a line and silently uses the default;
//!   a typo in `WATCH_NAMESPACES` or a port then goes unnoticed until something misbehaves. We
//!   collect *every* problem and return them together in one [`ConfigError`], so one restart shows
//!   all of them. An empty (or blank) variable counts as unset, as it does for Java's
//!   `Integer.parseInt("")` fallback and Helm's habit of rendering empty strings.
//! - **Settings the Java operator ignores are honoured.** `WATCH_NAMESPACES` takes a real comma list
//!   (Java keeps only the first entry) and `RECONCILIATION_THREADS` is the controller concurrency
//!   (Java hard-codes 5). `METRICS_PORT` is still accepted and validated but unused: metrics are
//!   served on the health port, exactly as the Java operator does.
//!
//! Error messages echo the offending value. That is deliberate and safe because these variables
//! are the operator's own tuning knobs, never credentials; the values are quoted and truncated.

use std::{collections::BTreeSet, fmt, time::Duration};

/// Default `HEALTH_CHECK_PORT`: `/health`, `/ready`, `/metrics` and `/info` are served here.
pub const DEFAULT_HEALTH_CHECK_PORT: u16 = 8080;
/// Default `METRICS_PORT` (accepted for compatibility, unused).
pub const DEFAULT_METRICS_PORT: u16 = 8081;
/// Default `LEADER_ELECTION_LEASE_NAME`.
pub const DEFAULT_LEASE_NAME: &str = "omjob-operator-leader";
/// Default `OPERATOR_NAMESPACE`, as in the Java operator.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "default";

/// The longest value echoed back in an error message; longer values are cut so a pasted blob
/// cannot flood the log.
const MAX_ECHOED_VALUE: usize = 64;

/// Which namespaces the controllers watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchNamespaces {
    /// Cluster-wide (`WATCH_NAMESPACES` unset, empty or `ALL`).
    All,
    /// Only these namespaces: sorted, deduplicated, each a valid DNS-1123 label, never empty.
    Only(Vec<String>),
}

impl fmt::Display for WatchNamespaces {
    /// The same spelling the environment variable uses: `ALL` or a comma list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("ALL"),
            Self::Only(namespaces) => f.write_str(&namespaces.join(",")),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line (the default: what log pipelines in a cluster expect).
    #[default]
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// The operator's validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    /// `WATCH_NAMESPACES` (default `ALL`).
    pub watch_namespaces: WatchNamespaces,
    /// `POLLING_INTERVAL_SECONDS` (default 10). The Java operator polls at this interval; this
    /// one watches pods and looks again at a non-terminal OMJob only as a safety net, after 30
    /// times this interval (at least 5 minutes), which bounds how long a missed event can go
    /// unnoticed.
    pub polling_interval: Duration,
    /// `REQUEUE_DELAY_SECONDS` (default 30): the longest wait before a failed reconcile is
    /// retried. Retries start after 0.5 s and double per consecutive failure of the same object
    /// up to this cap (`controller::backoff`).
    pub requeue_delay: Duration,
    /// `HEALTH_CHECK_PORT` (default 8080).
    pub health_check_port: u16,
    /// `METRICS_PORT` (default 8081): accepted and validated, unused (metrics are on the health
    /// port, like the Java operator).
    pub metrics_port: u16,
    /// `RECONCILIATION_THREADS` (default 5): reconciles that may act at once on routine work
    /// (finalizers, main pods, status updates), and ten times as many for terminations
    /// (`controller::lanes`); CronOMJobs are reconciled this many at once.
    pub reconciliation_threads: u16,
    /// `LOG_LEVEL` (default `INFO`), normalised to a `tracing` filter directive such as `info`.
    pub log_filter: String,
    /// `LOG_FORMAT` (default `json`; `text` allowed).
    pub log_format: LogFormat,
    /// `OPERATOR_NAMESPACE` (default `default`): where the leader-election Lease lives.
    pub operator_namespace: String,
    /// `MAIN_POD_PENDING_TIMEOUT_SECONDS` (default 600): how long a main pod may stay unstarted
    /// (image pull failure, unschedulable) before the run ends with `StartTimeout`.
    pub main_pod_pending_timeout: Duration,
    /// `NODE_LOST_GRACE_SECONDS` (default 60): how long a pod may sit on a NotReady node or in
    /// phase `Unknown` before the run ends with `NodeLost`.
    pub node_lost_grace: Duration,
    /// `EXIT_HANDLER_MAX_ATTEMPTS` (default 3): exit-handler pods created at most, counting
    /// replacements of pods that were lost before they finished.
    pub exit_handler_max_attempts: u32,
    /// `LEADER_ELECTION` (default true).
    pub leader_election: bool,
    /// `LEADER_ELECTION_LEASE_NAME` (default `omjob-operator-leader`).
    pub lease_name: String,
    /// The leader identity: `POD_NAME`, else `HOSTNAME`, else a random `omjob-operator-<uuid>`.
    pub identity: String,
}

/// One rejected environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable's name.
    pub variable: &'static str,
    /// The rejected value, truncated to a few dozen characters.
    pub value: String,
    /// Why it was rejected, phrased to follow the value ("is not a port number").
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?} {}", self.variable, self.value, self.reason)
    }
}

/// Every problem found in the environment, reported at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", join_problems(.problems))]
pub struct ConfigError {
    /// The problems, in the order the variables are read.
    pub problems: Vec<ConfigProblem>,
}

fn join_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl OperatorConfig {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing every variable with an invalid value.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A variable that is not valid Unicode is treated as unset: none of ours can need it.
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, which returns a variable's value if it is set.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] listing every variable with an invalid value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut reader = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };

        let watch_namespaces = reader.parse("WATCH_NAMESPACES", WatchNamespaces::All, parse_namespaces);
        let polling_interval = reader.seconds("POLLING_INTERVAL_SECONDS", 10, 1);
        let requeue_delay = reader.seconds("REQUEUE_DELAY_SECONDS", 30, 1);
        let health_check_port = reader.parse("HEALTH_CHECK_PORT", DEFAULT_HEALTH_CHECK_PORT, parse_port);
        let metrics_port = reader.parse("METRICS_PORT", DEFAULT_METRICS_PORT, parse_port);
        let reconciliation_threads =
            reader.parse("RECONCILIATION_THREADS", 5, |v| parse_at_least::<u16>(v, 1));
        let log_filter = reader.parse("LOG_LEVEL", "info".to_owned(), parse_log_level);
        let log_format = reader.parse("LOG_FORMAT", LogFormat::Json, parse_log_format);
        let operator_namespace =
            reader.parse("OPERATOR_NAMESPACE", DEFAULT_OPERATOR_NAMESPACE.to_owned(), |v| {
                validate_dns1123_label(v).map(|()| v.to_owned())
            });
        let main_pod_pending_timeout = reader.seconds("MAIN_POD_PENDING_TIMEOUT_SECONDS", 600, 1);
        // Zero is allowed: it means "no grace", i.e. act as soon as the node is seen lost.
        let node_lost_grace = reader.seconds("NODE_LOST_GRACE_SECONDS", 60, 0);
        let exit_handler_max_attempts =
            reader.parse("EXIT_HANDLER_MAX_ATTEMPTS", 3, |v| parse_at_least::<u32>(v, 1));
        let leader_election = reader.parse("LEADER_ELECTION", true, parse_bool);
        let lease_name = reader.parse("LEADER_ELECTION_LEASE_NAME", DEFAULT_LEASE_NAME.to_owned(), |v| {
            validate_dns1123_subdomain(v).map(|()| v.to_owned())
        });
        let identity = reader
            .value("POD_NAME")
            .or_else(|| reader.value("HOSTNAME"))
            // Without either (a local run), a random identity still keeps two processes apart.
            .unwrap_or_else(|| format!("omjob-operator-{}", uuid::Uuid::new_v4()));

        if !reader.problems.is_empty() {
            return Err(ConfigError {
                problems: reader.problems,
            });
        }
        Ok(Self {
            watch_namespaces,
            polling_interval,
            requeue_delay,
            health_check_port,
            metrics_port,
            reconciliation_threads,
            log_filter,
            log_format,
            operator_namespace,
            main_pod_pending_timeout,
            node_lost_grace,
            exit_handler_max_attempts,
            leader_election,
            lease_name,
            identity,
        })
    }
}

/// Reads variables and collects problems instead of stopping at the first.
struct Reader<'a, F> {
    lookup: &'a F,
    problems: Vec<ConfigProblem>,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    /// The trimmed value, or `None` when the variable is unset or blank.
    fn value(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Parses a variable; on failure records the problem and returns the default so that
    /// reading can go on and report the other variables too.
    fn parse<T>(
        &mut self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        let Some(raw) = self.value(name) else {
            return default;
        };
        match parse(&raw) {
            Ok(value) => value,
            Err(reason) => {
                self.problems.push(ConfigProblem {
                    variable: name,
                    value: truncate(&raw),
                    reason,
                });
                default
            }
        }
    }

    fn seconds(&mut self, name: &'static str, default: u64, min: u64) -> Duration {
        Duration::from_secs(self.parse(name, default, |v| parse_at_least::<u64>(v, min)))
    }
}

fn truncate(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHOED_VALUE) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

fn parse_at_least<T>(value: &str, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + fmt::Display,
{
    let parsed: T = value
        .parse()
        .map_err(|_| "is not a whole number in range".to_owned())?;
    if parsed < min {
        return Err(format!("must be at least {min}"));
    }
    Ok(parsed)
}

fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        // Port 0 would bind a random port that no probe or scraper could find.
        Ok(0) | Err(_) => Err("is not a port number (1-65535)".to_owned()),
        Ok(port) => Ok(port),
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("is not a boolean (true or false)".to_owned()),
    }
}

fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value.to_ascii_lowercase().as_str() {
        "json" => Ok(LogFormat::Json),
        "text" => Ok(LogFormat::Text),
        _ => Err("is not a log format (json or text)".to_owned()),
    }
}

/// Maps Java/logback level names to `tracing` levels, and passes `tracing` filter syntax through.
fn parse_log_level(value: &str) -> Result<String, String> {
    let level = match value.to_ascii_uppercase().as_str() {
        "TRACE" | "ALL" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" | "WARNING" => Some("warn"),
        "ERROR" | "FATAL" => Some("error"),
        "OFF" => Some("off"),
        _ => None,
    };
    if let Some(level) = level {
        return Ok(level.to_owned());
    }
    // A bare word is valid filter syntax (it enables a *target* of that name), so a typo such as
    // `INFOO` would silently turn logging off. Only accept things that look like directives.
    if !value.contains(['=', ',', '[', ':']) {
        return Err(
            "is not a log level (TRACE, DEBUG, INFO, WARN, ERROR, OFF) or a tracing filter".to_owned(),
        );
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(value)
        .map(|_| value.to_owned())
        .map_err(|e| format!("is not a valid tracing filter: {e}"))
}

fn parse_namespaces(value: &str) -> Result<WatchNamespaces, String> {
    if value.eq_ignore_ascii_case("ALL") {
        return Ok(WatchNamespaces::All);
    }
    let mut namespaces = BTreeSet::new();
    let mut bad = Vec::new();
    // Empty items (a trailing comma, "a,,b") are tolerated: they name nothing.
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.eq_ignore_ascii_case("ALL") {
            return Err("mixes ALL with namespace names".to_owned());
        }
        match validate_dns1123_label(item) {
            Ok(()) => {
                namespaces.insert(item.to_owned());
            }
            Err(reason) => bad.push(format!("{item:?} {reason}")),
        }
    }
    if !bad.is_empty() {
        return Err(format!("has invalid namespace names: {}", bad.join(", ")));
    }
    if namespaces.is_empty() {
        return Err("names no namespace".to_owned());
    }
    Ok(WatchNamespaces::Only(namespaces.into_iter().collect()))
}

/// RFC 1123 label, as Kubernetes requires for namespace names.
fn validate_dns1123_label(value: &str) -> Result<(), String> {
    const RULE: &str = "is not a DNS-1123 label (at most 63 lowercase letters, digits or '-', \
                        starting and ending with a letter or digit)";
    let ok = omjob_api::grammar::is_dns_label(value);
    if ok { Ok(()) } else { Err(RULE.to_owned()) }
}

/// RFC 1123 subdomain, as Kubernetes requires for most object names (a Lease's included).
fn validate_dns1123_subdomain(value: &str) -> Result<(), String> {
    let ok = value.len() <= 253 && value.split('.').all(|part| validate_dns1123_label(part).is_ok());
    if ok {
        Ok(())
    } else {
        Err("is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<OperatorConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OperatorConfig::from_lookup(|name| vars.get(name).cloned())
    }

    fn problems(vars: &[(&str, &str)]) -> Vec<&'static str> {
        config(vars)
            .expect_err("configuration should be rejected")
            .problems
            .iter()
            .map(|p| p.variable)
            .collect()
    }

    #[test]
    fn an_empty_environment_gives_the_java_defaults() {
        let c = config(&[("POD_NAME", "op-0")]).unwrap();
        assert_eq!(
            c,
            OperatorConfig {
                watch_namespaces: WatchNamespaces::All,
                polling_interval: Duration::from_secs(10),
                requeue_delay: Duration::from_secs(30),
                health_check_port: 8080,
                metrics_port: 8081,
                reconciliation_threads: 5,
                log_filter: "info".into(),
                log_format: LogFormat::Json,
                operator_namespace: "default".into(),
                main_pod_pending_timeout: Duration::from_secs(600),
                node_lost_grace: Duration::from_secs(60),
                exit_handler_max_attempts: 3,
                leader_election: true,
                lease_name: "omjob-operator-leader".into(),
                identity: "op-0".into(),
            }
        );
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("WATCH_NAMESPACES", "b, a"),
            ("POLLING_INTERVAL_SECONDS", "5"),
            ("REQUEUE_DELAY_SECONDS", "7"),
            ("HEALTH_CHECK_PORT", "9090"),
            ("METRICS_PORT", "9091"),
            ("RECONCILIATION_THREADS", "12"),
            ("LOG_LEVEL", "debug"),
            ("LOG_FORMAT", "TEXT"),
            ("OPERATOR_NAMESPACE", "ops"),
            ("MAIN_POD_PENDING_TIMEOUT_SECONDS", "120"),
            ("NODE_LOST_GRACE_SECONDS", "0"),
            ("EXIT_HANDLER_MAX_ATTEMPTS", "1"),
            ("LEADER_ELECTION", "false"),
            ("LEADER_ELECTION_LEASE_NAME", "my.lease"),
            ("HOSTNAME", "host-1"),
        ])
        .unwrap();
        assert_eq!(
            c.watch_namespaces,
            WatchNamespaces::Only(vec!["a".into(), "b".into()])
        );
        assert_eq!(c.polling_interval, Duration::from_secs(5));
        assert_eq!(c.requeue_delay, Duration::from_secs(7));
        assert_eq!((c.health_check_port, c.metrics_port), (9090, 9091));
        assert_eq!(c.reconciliation_threads, 12);
        assert_eq!(c.log_filter, "debug");
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.operator_namespace, "ops");
        assert_eq!(c.main_pod_pending_timeout, Duration::from_secs(120));
        assert_eq!(c.node_lost_grace, Duration::ZERO);
        assert_eq!(c.exit_handler_max_attempts, 1);
        assert!(!c.leader_election);
        assert_eq!(c.lease_name, "my.lease");
        assert_eq!(c.identity, "host-1", "HOSTNAME is the fallback identity");
    }

    #[test]
    fn watch_namespaces_table() {
        let only = |ns: &[&str]| {
            Ok(WatchNamespaces::Only(
                ns.iter().map(|s| (*s).to_owned()).collect(),
            ))
        };
        let cases: &[(&str, Result<WatchNamespaces, ()>)] = &[
            ("", Ok(WatchNamespaces::All)),
            ("   ", Ok(WatchNamespaces::All)),
            ("ALL", Ok(WatchNamespaces::All)),
            ("all", Ok(WatchNamespaces::All)),
            ("team-a", only(&["team-a"])),
            (" team-b , team-a ,team-b,", only(&["team-a", "team-b"])),
            ("a,,b", only(&["a", "b"])),
            (",", Err(())),
            ("Team-A", Err(())),
            ("a,-b", Err(())),
            ("ns_1", Err(())),
            ("ALL,a", Err(())),
            (&"x".repeat(64), Err(())),
        ];
        for (raw, expected) in cases {
            let got = config(&[("WATCH_NAMESPACES", raw)])
                .map(|c| c.watch_namespaces)
                .map_err(|_| ());
            assert_eq!(&got, expected, "WATCH_NAMESPACES={raw:?}");
        }
    }

    #[test]
    fn log_level_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("INFO", Some("info")),
            ("Debug", Some("debug")),
            ("TRACE", Some("trace")),
            ("WARN", Some("warn")),
            ("warning", Some("warn")),
            ("ERROR", Some("error")),
            ("OFF", Some("off")),
            ("info,kube=debug", Some("info,kube=debug")),
            ("omjob_operator=trace", Some("omjob_operator=trace")),
            ("INFOO", None),
            ("info,kube=loud", None),
        ];
        for (raw, expected) in cases {
            let got = config(&[("LOG_LEVEL", raw)]).ok().map(|c| c.log_filter);
            assert_eq!(got.as_deref(), *expected, "LOG_LEVEL={raw:?}");
        }
    }

    #[test]
    fn numeric_and_boolean_rejections_table() {
        let cases: &[(&str, &str)] = &[
            ("HEALTH_CHECK_PORT", "abc"),
            ("HEALTH_CHECK_PORT", "0"),
            ("HEALTH_CHECK_PORT", "65536"),
            ("METRICS_PORT", "-1"),
            ("POLLING_INTERVAL_SECONDS", "0"),
            ("POLLING_INTERVAL_SECONDS", "1.5"),
            ("REQUEUE_DELAY_SECONDS", "soon"),
            ("RECONCILIATION_THREADS", "0"),
            ("RECONCILIATION_THREADS", "70000"),
            ("MAIN_POD_PENDING_TIMEOUT_SECONDS", "0"),
            ("NODE_LOST_GRACE_SECONDS", "-5"),
            ("EXIT_HANDLER_MAX_ATTEMPTS", "0"),
            ("LEADER_ELECTION", "maybe"),
            ("LOG_FORMAT", "xml"),
            ("OPERATOR_NAMESPACE", "Default"),
            ("LEADER_ELECTION_LEASE_NAME", "Bad_Name"),
        ];
        for (name, raw) in cases {
            assert_eq!(problems(&[(name, raw)]), vec![*name], "{name}={raw:?}");
        }
    }

    #[test]
    fn blank_values_count_as_unset() {
        let c = config(&[
            ("HEALTH_CHECK_PORT", " "),
            ("LEADER_ELECTION", ""),
            ("POD_NAME", ""),
        ])
        .unwrap();
        assert_eq!(c.health_check_port, 8080);
        assert!(c.leader_election);
        assert!(c.identity.starts_with("omjob-operator-"), "{}", c.identity);
    }

    #[test]
    fn pod_name_wins_over_hostname() {
        let c = config(&[("POD_NAME", "pod"), ("HOSTNAME", "host")]).unwrap();
        assert_eq!(c.identity, "pod");
    }

    #[test]
    fn all_problems_are_reported_in_one_message() {
        let err = config(&[
            ("HEALTH_CHECK_PORT", "abc"),
            ("RECONCILIATION_THREADS", "0"),
            ("WATCH_NAMESPACES", "ok,Not_OK"),
        ])
        .unwrap_err();
        assert_eq!(err.problems.len(), 3);
        let message = err.to_string();
        assert!(
            message.starts_with(
                "invalid configuration: WATCH_NAMESPACES=\"ok,Not_OK\" has invalid namespace names: \"Not_OK\""
            ),
            "{message}"
        );
        assert!(
            message.contains(
                "; HEALTH_CHECK_PORT=\"abc\" is not a port number (1-65535); \
                 RECONCILIATION_THREADS=\"0\" must be at least 1"
            ),
            "{message}"
        );
    }

    #[test]
    fn long_values_are_truncated_in_errors() {
        let long = "9".repeat(200);
        let err = config(&[("HEALTH_CHECK_PORT", &long)]).unwrap_err();
        assert_eq!(err.problems[0].value.chars().count(), MAX_ECHOED_VALUE + 1);
    }

    #[test]
    fn watch_namespaces_display_round_trips_the_env_spelling() {
        assert_eq!(WatchNamespaces::All.to_string(), "ALL");
        assert_eq!(
            WatchNamespaces::Only(vec!["a".into(), "b".into()]).to_string(),
            "a,b"
        );
    }
}
