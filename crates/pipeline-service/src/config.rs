//! Service configuration: the reference's `K8sPipelineClient` parameters (§6.1) and the HTTP
//! server's, read from a YAML file and `PIPELINES_*` environment variables, validated at start
//! with every error reported at once.
//!
//! Unlike upstream, a value that does not parse is an error, not a silent default, and an unknown
//! key (a typo) is an error too. Environment variables override the file: the key `ingestionImage`
//! is `PIPELINES_INGESTION_IMAGE`, `useOMJobOperator` is `PIPELINES_USE_OMJOB_OPERATOR`; their
//! values are read as YAML, so lists and maps can be given as JSON.

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::Path};

use k8s_openapi::api::core::v1::Toleration;
use omjob_api::grammar::{is_dns_label, is_quantity};
use serde_json::{Map, Value};

/// Which resources runs are made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// batch Jobs and CronJobs; the exit handler is a preStop hook.
    Standard,
    /// OMJobs and CronOMJobs, run by the OMJob operator.
    Operator,
}

/// A bearer token accepted by the HTTP API. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// A token.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Whether `candidate` is this token, in time independent of where they differ.
    #[must_use]
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

/// Requests and limits as quantity strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// `requests` (cpu, memory, ...).
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    /// `limits`.
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

impl Resources {
    /// The reference default: requests 500m / 1Gi, limits 2 / 4Gi.
    #[must_use]
    pub fn ingestion_default() -> Self {
        Self {
            requests: BTreeMap::from([("cpu".into(), "500m".into()), ("memory".into(), "1Gi".into())]),
            limits: BTreeMap::from([("cpu".into(), "2".into()), ("memory".into(), "4Gi".into())]),
        }
    }

    /// The fixed exit-handler resources of operator mode: 100m / 256Mi, limits 500m / 512Mi.
    #[must_use]
    pub fn exit_handler() -> Self {
        Self {
            requests: BTreeMap::from([("cpu".into(), "100m".into()), ("memory".into(), "256Mi".into())]),
            limits: BTreeMap::from([("cpu".into(), "500m".into()), ("memory".into(), "512Mi".into())]),
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `useOMJobOperator` (false): standard or operator mode.
    pub mode: Mode,
    /// `inCluster` (true): use the pod's service account.
    pub in_cluster: bool,
    /// `kubeConfigContent` (""): a kubeconfig as text, used when not in cluster.
    pub kube_config_content: String,
    /// `kubeconfigPath` (""): next fallback, then the usual kubeconfig lookup.
    pub kubeconfig_path: String,
    /// `namespace` (`openmetadata-pipelines`).
    pub namespace: String,
    /// `ingestionImage`.
    pub ingestion_image: String,
    /// `imagePullPolicy` (IfNotPresent).
    pub image_pull_policy: String,
    /// `imagePullSecrets` (comma-separated names or a list).
    pub image_pull_secrets: Vec<String>,
    /// `serviceAccountName` (`openmetadata-ingestion`) of the pipeline pods.
    pub service_account_name: String,
    /// `resources` of the ingestion container.
    pub resources: Resources,
    /// `ttlSecondsAfterFinished` (604800).
    pub ttl_seconds_after_finished: i32,
    /// `activeDeadlineSeconds` (7200).
    pub active_deadline_seconds: i64,
    /// `backoffLimit` (3), Jobs only.
    pub backoff_limit: i32,
    /// `successfulJobsHistoryLimit` (3).
    pub successful_jobs_history_limit: i32,
    /// `failedJobsHistoryLimit` (3).
    pub failed_jobs_history_limit: i32,
    /// `startingDeadlineSeconds` (60, as upstream's code; its comment says 0).
    pub starting_deadline_seconds: i64,
    /// `nodeSelector` (`k=v,k2=v2` or a map).
    pub node_selector: BTreeMap<String, String>,
    /// `tolerations` (a list).
    pub tolerations: Vec<Toleration>,
    /// `runAsUser` (1000).
    pub run_as_user: i64,
    /// `runAsGroup` (1000).
    pub run_as_group: i64,
    /// `fsGroup` (1000).
    pub fs_group: i64,
    /// `runAsNonRoot` (true).
    pub run_as_non_root: bool,
    /// `seccompProfileType`: RuntimeDefault, Localhost or Unconfined.
    pub seccomp_profile_type: Option<String>,
    /// `seccompLocalhostProfile`, required with Localhost.
    pub seccomp_localhost_profile: Option<String>,
    /// `extraEnvVars` (`KEY:VALUE` entries, a list or comma-separated).
    pub extra_env_vars: Vec<(String, String)>,
    /// `podAnnotations` (`k=v,...` or a map).
    pub pod_annotations: BTreeMap<String, String>,
    /// *Ours.* `ingestionCommand` (`python main.py`).
    pub ingestion_command: Vec<String>,
    /// *Ours.* `exitHandlerCommand` (`python exit_handler.py`).
    pub exit_handler_command: Vec<String>,
    /// *Ours.* `listen` (`0.0.0.0:8080`): the HTTP server's address.
    pub listen: SocketAddr,
    /// *Ours.* `apiTokens`: bearer tokens the HTTP API accepts (a list or comma-separated).
    pub api_tokens: Vec<ApiToken>,
    /// *Ours.* `maxBodyBytes` (1 MiB): largest request body.
    pub max_body_bytes: usize,
    /// *Ours.* `diagnosticsIntervalSeconds` (30): how often `serve` preserves the diagnostics
    /// of failed runs before TTL removes their pods; 0 turns it off.
    pub diagnostics_interval_seconds: u64,
    /// *Ours.* `retryAttempts` (4): tries of each Kubernetes request, the first included, on the
    /// transient failures [`crate::retry`] lists.
    pub retry_attempts: u32,
    /// *Ours.* `retryInitialBackoffMillis` (200): first wait between tries, doubled each time up to
    /// 5 s, each wait jittered to between half and all of that.
    pub retry_initial_backoff_millis: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Standard,
            in_cluster: true,
            kube_config_content: String::new(),
            kubeconfig_path: String::new(),
            namespace: "openmetadata-pipelines".into(),
            ingestion_image: "docker.getcollate.io/openmetadata/ingestion:latest".into(),
            image_pull_policy: "IfNotPresent".into(),
            image_pull_secrets: Vec::new(),
            service_account_name: "openmetadata-ingestion".into(),
            resources: Resources::ingestion_default(),
            ttl_seconds_after_finished: 604_800,
            active_deadline_seconds: 7200,
            backoff_limit: 3,
            successful_jobs_history_limit: 3,
            failed_jobs_history_limit: 3,
            starting_deadline_seconds: 60,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            run_as_user: 1000,
            run_as_group: 1000,
            fs_group: 1000,
            run_as_non_root: true,
            seccomp_profile_type: None,
            seccomp_localhost_profile: None,
            extra_env_vars: Vec::new(),
            pod_annotations: BTreeMap::new(),
            ingestion_command: vec!["python".into(), "main.py".into()],
            exit_handler_command: vec!["python".into(), "exit_handler.py".into()],
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            api_tokens: Vec::new(),
            max_body_bytes: 1024 * 1024,
            diagnostics_interval_seconds: 30,
            retry_attempts: crate::retry::ATTEMPTS,
            retry_initial_backoff_millis: 200,
        }
    }
}

/// Every problem found in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid pipeline service configuration: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

/// Every key the configuration knows.
const KEYS: &[&str] = &[
    "skipInit",
    "inCluster",
    "kubeConfigContent",
    "kubeconfigPath",
    "useOMJobOperator",
    "namespace",
    "ingestionImage",
    "imagePullPolicy",
    "imagePullSecrets",
    "serviceAccountName",
    "resources",
    "ttlSecondsAfterFinished",
    "activeDeadlineSeconds",
    "backoffLimit",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "startingDeadlineSeconds",
    "nodeSelector",
    "tolerations",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "runAsNonRoot",
    "seccompProfileType",
    "seccompLocalhostProfile",
    "extraEnvVars",
    "podAnnotations",
    "ingestionCommand",
    "exitHandlerCommand",
    "listen",
    "apiTokens",
    "maxBodyBytes",
    "diagnosticsIntervalSeconds",
    "retryAttempts",
    "retryInitialBackoffMillis",
];

/// The environment variable of a key: `PIPELINES_` + SCREAMING_SNAKE_CASE.
#[must_use]
pub fn env_name(key: &str) -> String {
    let mut out = String::from("PIPELINES_");
    let mut prev_lower = false;
    for c in key.replace("OMJob", "Omjob").chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl Config {
    /// The retry policy of Kubernetes calls.
    #[must_use]
    pub fn retry_policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            attempts: self.retry_attempts,
            first_backoff: std::time::Duration::from_millis(self.retry_initial_backoff_millis),
        }
    }

    /// Reads the file (if any) and the process environment.
    ///
    /// # Errors
    /// Every unreadable, unknown or invalid value, in one [`ConfigError`].
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", path.display())]))?,
            ),
            None => None,
        };
        Self::from_sources(text.as_deref(), std::env::vars())
    }

    /// Builds the configuration from YAML text (a map of parameters, or OpenMetadata's
    /// `pipelineServiceClientConfiguration.parameters` shape) and `(name, value)` env pairs.
    ///
    /// # Errors
    /// Every unknown or invalid value, in one [`ConfigError`].
    pub fn from_sources(
        yaml: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let mut raw = Map::new();
        if let Some(text) = yaml.filter(|t| !t.trim().is_empty()) {
            match serde_yaml_ng::from_str::<Value>(text) {
                Ok(Value::Object(mut map)) => {
                    // Accept OpenMetadata's own layout too.
                    if let Some(Value::Object(mut inner)) = map.remove("pipelineServiceClientConfiguration")
                        && let Some(Value::Object(params)) = inner.remove("parameters")
                    {
                        map = params;
                    }
                    raw = map;
                }
                Ok(_) => errors.push("the configuration file must be a map of parameters".to_owned()),
                Err(e) => errors.push(format!("the configuration file is not valid YAML: {e}")),
            }
        }
        for key in raw.keys() {
            if !KEYS.contains(&key.as_str()) {
                errors.push(format!("unknown parameter '{key}'"));
            }
        }
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("PIPELINES_"))
            .collect();
        for key in KEYS {
            if let Some(value) = env.get(&env_name(key)) {
                let parsed =
                    serde_yaml_ng::from_str::<Value>(value).unwrap_or_else(|_| Value::String(value.clone()));
                // Tokens and kubeconfig text are secrets or free text: never reinterpret them.
                let parsed = if matches!(
                    *key,
                    "apiTokens" | "kubeConfigContent" | "namespace" | "ingestionImage"
                ) {
                    Value::String(value.clone())
                } else {
                    parsed
                };
                raw.insert((*key).to_owned(), parsed);
            }
        }
        let mut p = Parser { raw: &raw, errors };
        let d = Self::default();
        let mut c = Self {
            mode: if p.bool("useOMJobOperator", false) {
                Mode::Operator
            } else {
                Mode::Standard
            },
            in_cluster: p.bool("inCluster", d.in_cluster),
            kube_config_content: p.string("kubeConfigContent", &d.kube_config_content),
            kubeconfig_path: p.string("kubeconfigPath", &d.kubeconfig_path),
            namespace: p.string("namespace", &d.namespace),
            ingestion_image: p.string("ingestionImage", &d.ingestion_image),
            image_pull_policy: p.string("imagePullPolicy", &d.image_pull_policy),
            image_pull_secrets: p.list("imagePullSecrets"),
            service_account_name: p.string("serviceAccountName", &d.service_account_name),
            resources: p.resources("resources", d.resources.clone()),
            ttl_seconds_after_finished: p.int("ttlSecondsAfterFinished", d.ttl_seconds_after_finished, 0),
            active_deadline_seconds: p.int("activeDeadlineSeconds", d.active_deadline_seconds, 1),
            backoff_limit: p.int("backoffLimit", d.backoff_limit, 0),
            successful_jobs_history_limit: p.int(
                "successfulJobsHistoryLimit",
                d.successful_jobs_history_limit,
                0,
            ),
            failed_jobs_history_limit: p.int("failedJobsHistoryLimit", d.failed_jobs_history_limit, 0),
            starting_deadline_seconds: p.int("startingDeadlineSeconds", d.starting_deadline_seconds, 0),
            node_selector: p.pairs("nodeSelector", '='),
            tolerations: p.tolerations("tolerations"),
            run_as_user: p.int("runAsUser", d.run_as_user, 0),
            run_as_group: p.int("runAsGroup", d.run_as_group, 0),
            fs_group: p.int("fsGroup", d.fs_group, 0),
            run_as_non_root: p.bool("runAsNonRoot", d.run_as_non_root),
            seccomp_profile_type: Some(p.string("seccompProfileType", "")).filter(|s| !s.trim().is_empty()),
            seccomp_localhost_profile: Some(p.string("seccompLocalhostProfile", ""))
                .filter(|s| !s.trim().is_empty()),
            extra_env_vars: p.pairs("extraEnvVars", ':').into_iter().collect(),
            pod_annotations: p.pairs("podAnnotations", '='),
            ingestion_command: p.command("ingestionCommand", &d.ingestion_command),
            exit_handler_command: p.command("exitHandlerCommand", &d.exit_handler_command),
            listen: d.listen,
            api_tokens: p.list("apiTokens").into_iter().map(ApiToken).collect(),
            max_body_bytes: p.int("maxBodyBytes", d.max_body_bytes, 1),
            diagnostics_interval_seconds: p.int(
                "diagnosticsIntervalSeconds",
                d.diagnostics_interval_seconds,
                0,
            ),
            retry_attempts: p.int("retryAttempts", d.retry_attempts, 1),
            retry_initial_backoff_millis: p.int(
                "retryInitialBackoffMillis",
                d.retry_initial_backoff_millis,
                0,
            ),
        };
        let listen = p.string("listen", &d.listen.to_string());
        match listen.parse() {
            Ok(a) => c.listen = a,
            Err(_) => p.err(
                "listen",
                format!("'{listen}' is not an address such as 0.0.0.0:8080"),
            ),
        }
        c.validate(&mut p.errors);
        if p.errors.is_empty() {
            Ok(c)
        } else {
            Err(ConfigError(p.errors))
        }
    }

    fn validate(&self, errors: &mut Vec<String>) {
        if !is_dns_label(&self.namespace) {
            errors.push(format!(
                "namespace: '{}' must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                self.namespace
            ));
        }
        if self.ingestion_image.trim().is_empty() {
            errors.push("ingestionImage: must not be blank".into());
        }
        if !matches!(
            self.image_pull_policy.as_str(),
            "Always" | "Never" | "IfNotPresent"
        ) {
            errors.push(format!(
                "imagePullPolicy: '{}' is not one of Always, Never, IfNotPresent",
                self.image_pull_policy
            ));
        }
        if self.service_account_name.trim().is_empty() {
            errors.push("serviceAccountName: must not be blank".into());
        }
        for (section, map) in [
            ("requests", &self.resources.requests),
            ("limits", &self.resources.limits),
        ] {
            for (k, v) in map {
                if !is_quantity(v) {
                    errors.push(format!(
                        "resources.{section}.{k}: '{v}' is not a Kubernetes quantity"
                    ));
                }
            }
        }
        match (
            self.seccomp_profile_type.as_deref(),
            self.seccomp_localhost_profile.is_some(),
        ) {
            (None | Some("RuntimeDefault" | "Unconfined"), true) => {
                errors.push(
                    "seccompLocalhostProfile: only allowed when seccompProfileType is Localhost".into(),
                );
            }
            (Some("Localhost"), false) => {
                errors.push("seccompLocalhostProfile: required when seccompProfileType is Localhost".into());
            }
            (None | Some("RuntimeDefault" | "Unconfined" | "Localhost"), _) => {}
            (Some(other), _) => errors.push(format!(
                "seccompProfileType: '{other}' is not one of RuntimeDefault, Localhost, Unconfined"
            )),
        }
        for (k, _) in &self.extra_env_vars {
            if !crate::pipeline::is_env_name(k) {
                errors.push(format!(
                    "extraEnvVars: '{k}' is not a valid environment variable name"
                ));
            }
        }
        if self.ingestion_command.is_empty() {
            errors.push("ingestionCommand: must not be empty".into());
        }
        if self.exit_handler_command.is_empty() {
            errors.push("exitHandlerCommand: must not be empty".into());
        }
    }
}

/// Reads typed values out of the merged raw map, collecting errors.
struct Parser<'a> {
    raw: &'a Map<String, Value>,
    errors: Vec<String>,
}

impl Parser<'_> {
    fn err(&mut self, key: &str, message: impl fmt::Display) {
        self.errors.push(format!("{key}: {message}"));
    }

    fn string(&mut self, key: &str, default: &str) -> String {
        match self.raw.get(key) {
            None | Some(Value::Null) => default.to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            Some(_) => {
                self.err(key, "must be a string");
                default.to_owned()
            }
        }
    }

    fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.raw.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.err(key, format!("{v} is not true or false"));
                default
            }
        }
    }

    fn int<T: TryFrom<i64> + Copy + fmt::Display>(&mut self, key: &str, default: T, min: i64) -> T {
        let value = match self.raw.get(key) {
            None | Some(Value::Null) => return default,
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match value.filter(|v| *v >= min).and_then(|v| T::try_from(v).ok()) {
            Some(v) => v,
            None => {
                let shown = self.raw.get(key).map(ToString::to_string).unwrap_or_default();
                self.err(key, format!("{shown} is not a whole number ≥ {min}"));
                default
            }
        }
    }

    /// A list of strings, or one comma-separated string.
    fn list(&mut self, key: &str) -> Vec<String> {
        match self.raw.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        _ => self.err(&format!("{key}[{i}]"), "must be a string"),
                    }
                }
                out
            }
            Some(_) => {
                self.err(key, "must be a list or a comma-separated string");
                Vec::new()
            }
        }
    }

    fn command(&mut self, key: &str, default: &[String]) -> Vec<String> {
        match self.raw.get(key) {
            None | Some(Value::Null) => default.to_vec(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(_) => self.list(key),
        }
    }

    /// `k<sep>v` pairs: a map, a list of `k<sep>v` strings, or one comma-separated string.
    fn pairs(&mut self, key: &str, sep: char) -> BTreeMap<String, String> {
        let entries: Vec<String> = match self.raw.get(key) {
            Some(Value::Object(map)) => {
                return map
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                    .collect();
            }
            _ => self.list(key),
        };
        let mut out = BTreeMap::new();
        for entry in entries {
            match entry.split_once(sep) {
                Some((k, v)) if !k.trim().is_empty() => {
                    out.insert(k.trim().to_owned(), v.trim().to_owned());
                }
                _ => self.err(key, format!("entry '{entry}' is not of the form KEY{sep}VALUE")),
            }
        }
        out
    }

    fn resources(&mut self, key: &str, default: Resources) -> Resources {
        match self.raw.get(key) {
            None | Some(Value::Null) => default,
            Some(v) => match serde_json::from_value::<Resources>(v.clone()) {
                Ok(r) => r,
                Err(e) => {
                    self.err(
                        key,
                        format!("must be {{requests: {{cpu, memory}}, limits: {{...}}}}: {e}"),
                    );
                    default
                }
            },
        }
    }

    fn tolerations(&mut self, key: &str) -> Vec<Toleration> {
        match self.raw.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => match crate::pipeline::parse_tolerations(v) {
                Ok(t) => t,
                Err(e) => {
                    for fe in e {
                        self.err(&format!("{key}{}", fe.field), fe.message);
                    }
                    Vec::new()
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_the_references() {
        let c = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(c.mode, Mode::Standard);
        assert_eq!(c.namespace, "openmetadata-pipelines");
        assert_eq!(c.ttl_seconds_after_finished, 604_800);
        assert_eq!(c.active_deadline_seconds, 7200);
        assert_eq!(c.backoff_limit, 3);
        assert_eq!(c.starting_deadline_seconds, 60);
        assert_eq!(c.resources, Resources::ingestion_default());
        assert_eq!(
            (c.run_as_user, c.run_as_group, c.fs_group, c.run_as_non_root),
            (1000, 1000, 1000, true)
        );
    }

    #[test]
    fn env_names_are_screaming_snake_case() {
        assert_eq!(env_name("ingestionImage"), "PIPELINES_INGESTION_IMAGE");
        assert_eq!(env_name("useOMJobOperator"), "PIPELINES_USE_OMJOB_OPERATOR");
        assert_eq!(env_name("fsGroup"), "PIPELINES_FS_GROUP");
    }

    #[test]
    fn env_overrides_the_file_and_openmetadata_layout_is_accepted() {
        let yaml = "pipelineServiceClientConfiguration:\n  parameters:\n    namespace: from-file\n    backoffLimit: 5\n    nodeSelector: \"a=b,c=d\"\n    extraEnvVars: [\"X:1:2\"]\n";
        let c = Config::from_sources(
            Some(yaml),
            env(&[
                ("PIPELINES_NAMESPACE", "from-env"),
                ("PIPELINES_USE_OMJOB_OPERATOR", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(c.namespace, "from-env");
        assert_eq!(c.mode, Mode::Operator);
        assert_eq!(c.backoff_limit, 5);
        assert_eq!(c.node_selector.len(), 2);
        assert_eq!(c.extra_env_vars, vec![("X".to_owned(), "1:2".to_owned())]);
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let yaml = "namespce: x\nnamespace: Bad_NS\nbackoffLimit: -1\nimagePullPolicy: Sometimes\nresources: {limits: {memory: lots}}\nseccompProfileType: Localhost\n";
        let e = Config::from_sources(Some(yaml), env(&[("PIPELINES_RUN_AS_USER", "root")])).unwrap_err();
        let text = e.to_string();
        for needle in [
            "unknown parameter 'namespce'",
            "namespace: 'Bad_NS'",
            "backoffLimit",
            "imagePullPolicy",
            "resources.limits.memory",
            "seccompLocalhostProfile: required",
            "runAsUser",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        assert_eq!(e.0.len(), 7, "{text}");
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let c = Config::from_sources(None, env(&[("PIPELINES_API_TOKENS", "s3cret,other")])).unwrap();
        assert_eq!(c.api_tokens.len(), 2);
        assert!(c.api_tokens[0].matches("s3cret"));
        assert!(!c.api_tokens[0].matches("s3cre"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
