//! The runtime's configuration: Orkestra's environment variables (§9) read once into a
//! [`Config`], which `run` takes whole so tests can build one in-process.
//!
//! Reading is pure over a lookup function ([`Config::from_lookup`]), so the defaults and the
//! error for every bad value are tested without touching the process environment.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use super::clock::{Clock, SystemClock};
use crate::{
    load::{Entry, Setting},
    model::{
        DEFAULT_FAILURE_THRESHOLD, DEFAULT_MAX_QUEUE_DEPTH, DEFAULT_RESYNC_SECS, DEFAULT_WORKERS,
        scalar::GoDuration,
    },
};

/// Default HTTP port (`ORK_PORT`).
pub const DEFAULT_PORT: u16 = 8080;
/// Default runtime namespace (`ORKESTRA_NAMESPACE`).
pub const DEFAULT_NAMESPACE: &str = "default";
/// Orkestra's code defaults for leader election, in seconds.
pub const DEFAULT_LEASE_DURATION: u64 = 60;
pub const DEFAULT_RENEW_DEADLINE: u64 = 40;
pub const DEFAULT_RETRY_PERIOD: u64 = 10;
/// How often an entry whose CRD is not installed looks again.
pub const DEFAULT_DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// A bad environment value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?}: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("no Katalog file: pass --katalog or set KATALOG_PATH")]
    NoKatalog,
}

/// A runtime default for an entry setting, and whether the environment set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Default<T> {
    pub value: T,
    pub from_env: bool,
}

/// The entry defaults the environment may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub workers: Default<u32>,
    pub resync: Default<Duration>,
    pub max_queue_depth: Default<u32>,
    pub failure_threshold: Default<u32>,
}

impl std::default::Default for Defaults {
    fn default() -> Self {
        Self {
            workers: Default {
                value: DEFAULT_WORKERS,
                from_env: false,
            },
            resync: Default {
                value: Duration::from_secs(DEFAULT_RESYNC_SECS),
                from_env: false,
            },
            max_queue_depth: Default {
                value: DEFAULT_MAX_QUEUE_DEPTH,
                from_env: false,
            },
            failure_threshold: Default {
                value: DEFAULT_FAILURE_THRESHOLD,
                from_env: false,
            },
        }
    }
}

/// Where an entry's setting came from, as `/katalog/{crd}` reports it (`workersSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The Katalog set it.
    Katalog,
    /// The environment (`DEFAULT_WORKERS`, ...).
    Env,
    /// The built-in default.
    Default,
}

impl Source {
    fn of<T>(setting: &Setting<T>, default: &Default<T>) -> Self {
        match (setting.configured, default.from_env) {
            (true, _) => Self::Katalog,
            (false, true) => Self::Env,
            (false, false) => Self::Default,
        }
    }
}

/// Where each tunable of one entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sources {
    pub workers: Source,
    pub resync: Source,
    pub max_queue_depth: Source,
    pub failure_threshold: Source,
}

impl Defaults {
    /// `entry` with the settings its Katalog left out taken from these defaults, and where each
    /// value came from. `load` fills unset values with the built-in defaults; this replaces them.
    pub fn apply(&self, mut entry: Entry) -> (Entry, Sources) {
        let sources = Sources {
            workers: Source::of(&entry.workers, &self.workers),
            resync: Source::of(&entry.resync, &self.resync),
            max_queue_depth: Source::of(&entry.max_queue_depth, &self.max_queue_depth),
            failure_threshold: Source::of(&entry.failure_threshold, &self.failure_threshold),
        };
        if !entry.workers.configured {
            entry.workers.value = self.workers.value;
        }
        if !entry.resync.configured {
            entry.resync.value = self.resync.value;
        }
        if !entry.max_queue_depth.configured {
            entry.max_queue_depth.value = self.max_queue_depth.value;
        }
        if !entry.failure_threshold.configured {
            entry.failure_threshold.value = self.failure_threshold.value;
        }
        (entry, sources)
    }
}

/// Leader-election timings (`LEASE_DURATION`, `RENEW_DEADLINE`, `RETRY_PERIOD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a lease holds without renewal.
    pub duration: Duration,
    /// How long the holder keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often a standby replica looks at the lease (kube-lease-manager paces its own
    /// polling; kept for the record and the docs).
    pub retry_period: Duration,
}

impl std::default::Default for LeaseTimings {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(DEFAULT_LEASE_DURATION),
            renew_deadline: Duration::from_secs(DEFAULT_RENEW_DEADLINE),
            retry_period: Duration::from_secs(DEFAULT_RETRY_PERIOD),
        }
    }
}

/// Everything `run` needs besides the client.
#[derive(Clone)]
pub struct Config {
    /// The Katalog files (`--katalog`, several allowed, or `KATALOG_PATH`).
    pub katalogs: Vec<PathBuf>,
    /// Where the HTTP API listens; `ORK_PORT` on all interfaces. Port 0 picks a free port
    /// (tests), which [`super::State::http_addr`] then reports.
    pub listen: SocketAddr,
    pub defaults: Defaults,
    /// `ORKESTRA_NAMESPACE`: where the leader-election lease lives.
    pub namespace: String,
    /// `None` when `LEADER_ELECTION=false`: this replica reconciles at once.
    pub leader_election: Option<LeaseTimings>,
    /// This replica's name in the lease (`POD_NAME`, else the host name, plus a random suffix).
    pub identity: String,
    /// How often an entry whose CRD is missing looks again.
    pub discovery_retry: Duration,
    /// `WATCH_ALLOWED_NAMESPACES_ONLY=true`: an entry whose `allowedNamespaces` are plain names
    /// watches only those namespaces, so the runtime needs no cluster-wide read of its CRs (a
    /// Role per namespace suffices); a CR elsewhere is then never seen, and gets no warning.
    /// Off by default: the watch is cluster-wide and such a CR gets `NamespaceNotAllowed`.
    pub watch_allowed_only: bool,
    /// The clock of health timestamps and uptimes.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("katalogs", &self.katalogs)
            .field("listen", &self.listen)
            .field("defaults", &self.defaults)
            .field("namespace", &self.namespace)
            .field("leader_election", &self.leader_election)
            .field("identity", &self.identity)
            .field("discovery_retry", &self.discovery_retry)
            .field("watch_allowed_only", &self.watch_allowed_only)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults for `katalogs`: port 8080, no leader election, the system clock. Tests start
    /// here and change fields.
    pub fn new(katalogs: Vec<PathBuf>) -> Self {
        Self {
            katalogs,
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            defaults: Defaults::default(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            leader_election: None,
            identity: format!("katalog-{}", short_id()),
            discovery_retry: DEFAULT_DISCOVERY_RETRY,
            watch_allowed_only: false,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the process environment; `katalogs` from the command line win over `KATALOG_PATH`.
    ///
    /// # Errors
    /// The first bad variable, named with its value.
    pub fn from_env(katalogs: Vec<PathBuf>) -> Result<Self, ConfigError> {
        Self::from_lookup(katalogs, |var| std::env::var(var).ok())
    }

    /// [`Config::from_env`] over any lookup.
    ///
    /// # Errors
    /// The first bad variable, named with its value.
    pub fn from_lookup(
        mut katalogs: Vec<PathBuf>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |var: &str| lookup(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if katalogs.is_empty()
            && let Some(paths) = get("KATALOG_PATH")
        {
            katalogs = paths
                .split([',', ':'])
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect();
        }
        if katalogs.is_empty() {
            return Err(ConfigError::NoKatalog);
        }
        let mut config = Self::new(katalogs);
        if let Some(v) = get("ORK_PORT") {
            let port = number::<u16>("ORK_PORT", &v)?;
            config.listen.set_port(port);
        }
        let d = &mut config.defaults;
        if let Some(v) = get("DEFAULT_WORKERS") {
            d.workers = env_default(positive("DEFAULT_WORKERS", &v)?);
        }
        if let Some(v) = get("DEFAULT_RESYNC") {
            d.resync = env_default(duration("DEFAULT_RESYNC", &v)?);
        }
        if let Some(v) = get("MAX_QUEUE_DEPTH") {
            d.max_queue_depth = env_default(number::<u32>("MAX_QUEUE_DEPTH", &v)?);
        }
        // FAILURE_THRESHOLD is the later name; it wins when both are set.
        for var in ["DEGRADE_THRESHOLD", "FAILURE_THRESHOLD"] {
            if let Some(v) = get(var) {
                d.failure_threshold = env_default(positive(var, &v)?);
            }
        }
        if let Some(v) = get("ORKESTRA_NAMESPACE") {
            config.namespace = v;
        }
        config.watch_allowed_only = match get("WATCH_ALLOWED_NAMESPACES_ONLY").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "WATCH_ALLOWED_NAMESPACES_ONLY",
                    value: other.to_owned(),
                    reason: "expected true or false".to_owned(),
                });
            }
        };
        let enabled = match get("LEADER_ELECTION").as_deref() {
            None | Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "LEADER_ELECTION",
                    value: other.to_owned(),
                    reason: "expected true or false".to_owned(),
                });
            }
        };
        let mut lease = LeaseTimings::default();
        if let Some(v) = get("LEASE_DURATION") {
            lease.duration = duration("LEASE_DURATION", &v)?;
        }
        if let Some(v) = get("RENEW_DEADLINE") {
            lease.renew_deadline = duration("RENEW_DEADLINE", &v)?;
        }
        if let Some(v) = get("RETRY_PERIOD") {
            lease.retry_period = duration("RETRY_PERIOD", &v)?;
        }
        if lease.renew_deadline.as_secs() == 0 || lease.renew_deadline >= lease.duration {
            return Err(ConfigError::Invalid {
                var: "RENEW_DEADLINE",
                value: GoDuration(lease.renew_deadline).go_string(),
                reason: format!(
                    "must be at least 1s and shorter than LEASE_DURATION ({})",
                    GoDuration(lease.duration).go_string()
                ),
            });
        }
        config.leader_election = enabled.then_some(lease);
        if let Some(name) = get("POD_NAME").or_else(|| get("HOSTNAME")) {
            config.identity = format!("{name}-{}", short_id());
        }
        Ok(config)
    }

    /// `entry` with the environment's defaults applied.
    pub fn apply_defaults(&self, entry: Entry) -> (Entry, Sources) {
        self.defaults.apply(entry)
    }
}

fn env_default<T>(value: T) -> Default<T> {
    Default {
        value,
        from_env: true,
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

fn number<T: std::str::FromStr>(var: &'static str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason: format!("expected a whole number up to {}", std::any::type_name::<T>()),
    })
}

fn positive(var: &'static str, value: &str) -> Result<u32, ConfigError> {
    match number::<u32>(var, value)? {
        0 => Err(ConfigError::Invalid {
            var,
            value: value.to_owned(),
            reason: "must be at least 1".to_owned(),
        }),
        n => Ok(n),
    }
}

/// Seconds (`15`, as Orkestra reads them) or a Go duration (`15s`, `1m30s`).
fn duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let parsed = GoDuration::parse(value).map_err(|reason| ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason,
    })?;
    if parsed.0.is_zero() {
        return Err(ConfigError::Invalid {
            var,
            value: value.to_owned(),
            reason: "must be longer than zero".to_owned(),
        });
    }
    Ok(parsed.0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Config::from_lookup(Vec::new(), |k| map.get(k).cloned())
    }

    #[test]
    fn the_defaults_are_orkestras() {
        let c = read(&[("KATALOG_PATH", "a.yaml")]).unwrap();
        assert_eq!(c.katalogs, vec![PathBuf::from("a.yaml")]);
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.defaults, Defaults::default());
        assert_eq!(c.defaults.workers.value, 3);
        assert_eq!(c.defaults.resync.value, Duration::from_secs(15));
        assert_eq!(c.defaults.max_queue_depth.value, 100);
        assert_eq!(c.defaults.failure_threshold.value, 5);
        assert_eq!(c.namespace, "default");
        assert_eq!(c.leader_election, Some(LeaseTimings::default()));
    }

    #[test]
    fn the_environment_overrides_and_several_katalogs_are_listed() {
        let c = read(&[
            ("KATALOG_PATH", "a.yaml,b.yaml"),
            ("ORK_PORT", "9090"),
            ("DEFAULT_WORKERS", "7"),
            ("DEFAULT_RESYNC", "30"),
            ("MAX_QUEUE_DEPTH", "0"),
            ("FAILURE_THRESHOLD", "2"),
            ("ORKESTRA_NAMESPACE", "ork"),
            ("LEASE_DURATION", "4s"),
            ("RENEW_DEADLINE", "2"),
            ("RETRY_PERIOD", "1"),
        ])
        .unwrap();
        assert_eq!(c.katalogs.len(), 2);
        assert_eq!(c.listen.port(), 9090);
        assert_eq!(c.defaults.workers, env_default(7));
        assert_eq!(c.defaults.resync.value, Duration::from_secs(30));
        assert_eq!(c.defaults.max_queue_depth.value, 0);
        assert_eq!(c.defaults.failure_threshold.value, 2);
        assert_eq!(c.namespace, "ork");
        let lease = c.leader_election.unwrap();
        assert_eq!(lease.duration, Duration::from_secs(4));
        assert_eq!(lease.renew_deadline, Duration::from_secs(2));
        assert!(
            read(&[("KATALOG_PATH", "a"), ("LEADER_ELECTION", "false")])
                .unwrap()
                .leader_election
                .is_none()
        );
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_value() {
        for (var, value) in [
            ("ORK_PORT", "http"),
            ("DEFAULT_WORKERS", "0"),
            ("DEFAULT_RESYNC", "soon"),
            ("MAX_QUEUE_DEPTH", "-1"),
            ("DEGRADE_THRESHOLD", "x"),
            ("LEADER_ELECTION", "maybe"),
            ("RENEW_DEADLINE", "90"),
        ] {
            let e = read(&[("KATALOG_PATH", "a.yaml"), (var, value)])
                .unwrap_err()
                .to_string();
            assert!(e.contains(var), "{e}");
        }
        let e = read(&[("KATALOG_PATH", "a"), ("ORK_PORT", "http")]).unwrap_err();
        assert!(e.to_string().starts_with("ORK_PORT=\"http\""), "{e}");
        assert!(matches!(read(&[]), Err(ConfigError::NoKatalog)));
    }
}
