//! Resource builders, one per object and mode: what a deploy or run writes to the API server.
//!
//! Pure functions of the configuration, the pipeline definition and (for runs) the run id; no IO.
//! Objects are written as JSON in their wire shape and then read into their API types. Serde
//! alone would not catch a misspelt field: k8s-openapi's types ignore fields they do not know, so
//! the object sent would silently lack it. [`typed`] therefore writes the typed object back and
//! fails when a field of the JSON did not survive, so a field the type does not know fails here,
//! in a unit test, rather than going missing on the cluster. The standard-mode CronJob is returned
//! as JSON; a unit test puts it through the same check.
//!
//! What reaches every pod, on-demand and scheduled, main and exit handler alike: image pull
//! secrets, node selector, tolerations (upstream drops them on scheduled pods, #27852) and the
//! security context.
//!
//! Where the workflow config and the credentials go. The config pods read is rendered with the
//! credentials in it ([`crate::render`]: the ingestion scripts expand no env vars), so it is a
//! secret as a whole and lives only in Secrets, which pods read through `secretKeyRef`:
//!
//! | Object | Holds |
//! |---|---|
//! | Secret `om-secret-<n>` | one key per credential, and `config`: the rendered config with `ingestionPipelineFQN` and no `pipelineRunId` (what scheduled pods read; the base of every run's) |
//! | Secret named as an on-demand run (`om-job-<n>-<id>`), owned by the run | `config`: the same with the run's `pipelineRunId` |
//! | ConfigMap `om-config-<n>` | the stored definition only (no workflow config, no credential) |
//! | Jobs, CronJobs, OMJobs, CronOMJobs | references: `config` and each credential by `secretKeyRef`, never a value |

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        batch::v1::Job,
        core::v1::{ConfigMap, Secret},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use omjob_api::{CronOMJob, OMJob, env};
use serde_json::{Value, json};

use crate::{
    config::{Config, Resources},
    error::{Error, Result},
    names::PipelineNames,
    pipeline::PipelineDefinition,
    render,
};

/// Key of the rendered workflow config in the pipeline's and each run's Secret (the name of the
/// env var it reaches pods as, and of the reference's ConfigMap key).
pub const CONFIG_KEY: &str = "config";
/// Key of the stored definition (credentials and workflow config left out) in the ConfigMap.
pub const DEFINITION_KEY: &str = "pipeline.json";
/// Seconds a standard-mode pod has for its preStop exit handler (upstream's value).
const TERMINATION_GRACE_SECONDS: i64 = 60;

/// Whether a run is on demand (with its id) or made by a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind<'a> {
    /// `run`: a run id chosen now.
    OnDemand(&'a str),
    /// A CronJob's or CronOMJob's template.
    Scheduled,
}

/// Builds one pipeline's objects.
#[derive(Debug)]
pub struct Builder<'a> {
    config: &'a Config,
    def: &'a PipelineDefinition,
    names: PipelineNames,
}

/// `value` read into `T`, refusing what `T` would drop.
///
/// # Errors
/// [`Error::Build`] when `value` does not fit `T`, or has a field `T` does not know (found by
/// writing the typed object back: a non-null, non-empty field of `value` missing from it).
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(what: &str, value: Value) -> Result<T> {
    let err = |source| Error::Build {
        what: what.to_owned(),
        source,
    };
    let typed: T = serde_json::from_value(value.clone()).map_err(err)?;
    let back = serde_json::to_value(&typed).map_err(err)?;
    let mut dropped = Vec::new();
    dropped_fields(&value, &back, "", &mut dropped);
    if dropped.is_empty() {
        Ok(typed)
    } else {
        Err(err(serde::de::Error::custom(format_args!(
            "unknown field(s) {}",
            dropped.join(", ")
        ))))
    }
}

/// Collects into `out` the paths of fields of `written` that `read` lacks. A null or empty field
/// counts as absent (serialisers leave those out), and only presence is compared: a value may come
/// back in another spelling (`1Gi` stays, but a time or number need not).
fn dropped_fields(written: &Value, read: &Value, path: &str, out: &mut Vec<String>) {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match (written, read) {
        (Value::Object(w), Value::Object(r)) => {
            for (key, value) in w {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match r.get(key) {
                    Some(back) => dropped_fields(value, back, &here, out),
                    None if empty(value) => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Array(w), Value::Array(r)) => {
            for (i, value) in w.iter().enumerate() {
                let here = format!("{path}[{i}]");
                match r.get(i) {
                    Some(back) => dropped_fields(value, back, &here, out),
                    None if empty(value) => {}
                    None => out.push(here),
                }
            }
        }
        _ => {}
    }
}

fn map(m: &BTreeMap<String, String>) -> Value {
    json!(m)
}

impl<'a> Builder<'a> {
    /// A builder for `def` under `config`.
    #[must_use]
    pub fn new(config: &'a Config, def: &'a PipelineDefinition) -> Self {
        Self {
            config,
            def,
            names: PipelineNames::new(&def.name),
        }
    }

    /// The pipeline's names.
    #[must_use]
    pub fn names(&self) -> &PipelineNames {
        &self.names
    }

    fn labels(&self, run: RunKind<'_>) -> BTreeMap<String, String> {
        let id = match run {
            RunKind::OnDemand(id) => Some(id),
            RunKind::Scheduled => None,
        };
        self.names.labels(self.def.pipeline_type.as_str(), id)
    }

    fn metadata(&self, name: &str, run: RunKind<'_>) -> Value {
        json!({
            "name": name,
            "namespace": self.config.namespace,
            "labels": self.labels(run),
            "annotations": self.config.pod_annotations,
        })
    }

    /// ConfigMap `om-config-<n>`: the stored definition, which `get`, `run` and toggling read
    /// back. It holds neither the workflow config nor any credential.
    ///
    /// # Errors
    /// When the definition cannot be serialised (not expected).
    pub fn config_map(&self) -> Result<ConfigMap> {
        let mut stored = self.def.clone();
        stored.workflow_config = Value::Null;
        stored.credentials.clear();
        let stored = serde_json::to_string(&stored).map_err(|source| Error::Build {
            what: "the stored pipeline definition".into(),
            source,
        })?;
        typed(
            "ConfigMap",
            json!({
                "metadata": {"name": self.names.config_map(), "namespace": self.config.namespace,
                             "labels": self.labels(RunKind::Scheduled)},
                "data": {DEFINITION_KEY: stored},
            }),
        )
    }

    fn opaque_secret(&self, name: String, run: RunKind<'_>, data: BTreeMap<String, String>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(self.labels(run)),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k, ByteString(v.into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// The rendered config of the pipeline: credentials substituted, `ingestionPipelineFQN` set,
    /// no `pipelineRunId` (scheduled pods get theirs from the env var; see [`crate::render`]).
    ///
    /// # Errors
    /// [`Error::Render`] when the workflow config is not a mapping or names an unknown
    /// credential (validation reports both first).
    pub fn rendered_config(&self) -> Result<String> {
        render::render(&self.def.workflow_config, self.def.fqn(), &self.def.credentials).map_err(|source| {
            Error::Render {
                what: format!("the workflow config of pipeline '{}'", self.def.name),
                source,
            }
        })
    }

    /// Secret `om-secret-<n>`: one key per credential (the pods' credential env vars) and
    /// [`CONFIG_KEY`], the rendered config. Built from the caller's definition, the only one
    /// that holds the credentials' values.
    ///
    /// # Errors
    /// As [`Self::rendered_config`].
    pub fn secret(&self) -> Result<Secret> {
        let mut data = self.def.credentials.clone();
        data.insert(CONFIG_KEY.to_owned(), self.rendered_config()?);
        Ok(self.opaque_secret(self.names.secret(), RunKind::Scheduled, data))
    }

    /// The Secret of on-demand run `run_id`, named as the run: [`CONFIG_KEY`] holds `deployed`
    /// (the config in the pipeline's Secret) with the run's `pipelineRunId`, so a run reads the
    /// config deployed when it started, as OpenMetadata's server writes it for a run. The caller
    /// makes the run its owner, so it goes when the run goes.
    ///
    /// # Errors
    /// [`Error::Render`] when `deployed` is not a rendered config.
    pub fn run_secret(&self, run_id: &str, deployed: &str) -> Result<Secret> {
        let config = render::with_run_id(deployed, run_id).map_err(|source| Error::Render {
            what: format!("the config of run '{run_id}' of pipeline '{}'", self.def.name),
            source,
        })?;
        let data = BTreeMap::from([(CONFIG_KEY.to_owned(), config)]);
        Ok(self.opaque_secret(self.names.run(run_id), RunKind::OnDemand(run_id), data))
    }

    fn image(&self) -> &str {
        self.def
            .overrides
            .image
            .as_deref()
            .unwrap_or(&self.config.ingestion_image)
    }

    fn command(&self) -> Vec<String> {
        self.def
            .overrides
            .command
            .clone()
            .unwrap_or_else(|| self.config.ingestion_command.clone())
    }

    fn resources(&self) -> Resources {
        self.def
            .overrides
            .resources
            .clone()
            .unwrap_or_else(|| self.config.resources.clone())
    }

    fn node_selector(&self) -> BTreeMap<String, String> {
        let mut out = self.config.node_selector.clone();
        out.extend(self.def.overrides.node_selector.clone().unwrap_or_default());
        out
    }

    fn tolerations(&self) -> Value {
        let mut out = self.config.tolerations.clone();
        out.extend(self.def.overrides.tolerations.clone().unwrap_or_default());
        json!(out)
    }

    fn pull_secrets(&self) -> Value {
        json!(
            self.config
                .image_pull_secrets
                .iter()
                .map(|n| json!({"name": n}))
                .collect::<Vec<_>>()
        )
    }

    fn seccomp(&self) -> Option<Value> {
        self.config.seccomp_profile_type.as_ref().map(|t| {
            let mut v = json!({"type": t});
            if let Some(p) = &self.config.seccomp_localhost_profile {
                v["localhostProfile"] = json!(p);
            }
            v
        })
    }

    fn pod_security_context(&self) -> Value {
        let c = self.config;
        let mut sc = json!({"runAsUser": c.run_as_user, "runAsGroup": c.run_as_group, "fsGroup": c.fs_group});
        if c.run_as_non_root {
            sc["runAsNonRoot"] = json!(true);
        }
        if let Some(s) = self.seccomp() {
            sc["seccompProfile"] = s;
        }
        sc
    }

    fn container_security_context(&self) -> Value {
        let c = self.config;
        let mut sc = json!({"runAsUser": c.run_as_user, "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": false, "capabilities": {"drop": ["ALL"]}});
        if c.run_as_non_root {
            sc["runAsNonRoot"] = json!(true);
        }
        if let Some(s) = self.seccomp() {
            sc["seccompProfile"] = s;
        }
        sc
    }

    fn value(name: &str, value: &str) -> Value {
        json!({"name": name, "value": value})
    }

    fn field(name: &str, path: &str) -> Value {
        json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
    }

    /// The Secret whose [`CONFIG_KEY`] a run's pods read: the run's own for an on-demand run, the
    /// pipeline's for a scheduled one.
    fn config_secret(&self, run: RunKind<'_>) -> String {
        match run {
            RunKind::OnDemand(id) => self.names.run(id),
            RunKind::Scheduled => self.names.secret(),
        }
    }

    /// Env shared by every container: config, type, FQN, credentials (config and credentials
    /// from Secrets), extras. Run-specific variables are added by the callers.
    fn base_env(&self, run: RunKind<'_>) -> Vec<Value> {
        let mut env = vec![
            json!({"name": env::CONFIG, "valueFrom": {"secretKeyRef": {"name": self.config_secret(run), "key": CONFIG_KEY}}}),
            Self::value(env::PIPELINE_TYPE, self.def.pipeline_type.as_str()),
            Self::value(env::INGESTION_PIPELINE_FQN, self.def.fqn()),
        ];
        for key in &self.def.credential_names {
            env.push(json!({"name": key, "valueFrom": {"secretKeyRef": {"name": self.names.secret(), "key": key}}}));
        }
        env
    }

    fn extra_env(&self) -> impl Iterator<Item = Value> + '_ {
        self.config.extra_env_vars.iter().map(|(k, v)| Self::value(k, v))
    }

    // ----- standard mode -----

    /// Env of the standard-mode container; it also serves the preStop exit handler, which only
    /// runs when Kubernetes terminates the pod, so `pipelineStatus` is `failed`.
    fn job_env(&self, run: RunKind<'_>, job_name: &str) -> Vec<Value> {
        let mut env = self.base_env(run);
        match run {
            RunKind::OnDemand(id) => {
                env.push(Self::value(env::PIPELINE_RUN_ID, id));
                env.push(Self::value(env::JOB_NAME, job_name));
            }
            RunKind::Scheduled => {
                // The Job's uid and name are only known when the CronJob creates it; the Job
                // controller labels its pods with both. The config in the pipeline's Secret has
                // no `pipelineRunId`: `main.py` and `exit_handler.py` put this variable's value
                // into the YAML they load, so the run id they report is the Job's uid.
                env.push(Self::field(
                    env::PIPELINE_RUN_ID,
                    "metadata.labels['controller-uid']",
                ));
                env.push(Self::field(env::JOB_NAME, "metadata.labels['job-name']"));
            }
        }
        env.push(Self::value(env::NAMESPACE, &self.config.namespace));
        env.push(Self::value(env::PIPELINE_STATUS, env::PIPELINE_STATUS_FAILED));
        env.extend(self.extra_env());
        env
    }

    fn job_spec(&self, run: RunKind<'_>, job_name: &str) -> Value {
        let c = self.config;
        let r = self.resources();
        json!({
            "backoffLimit": c.backoff_limit,
            "activeDeadlineSeconds": c.active_deadline_seconds,
            "ttlSecondsAfterFinished": c.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": self.labels(run), "annotations": c.pod_annotations},
                "spec": {
                    "serviceAccountName": c.service_account_name,
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "imagePullSecrets": self.pull_secrets(),
                    "nodeSelector": self.node_selector(),
                    "tolerations": self.tolerations(),
                    "securityContext": self.pod_security_context(),
                    "containers": [{
                        "name": "main",
                        "image": self.image(),
                        "imagePullPolicy": c.image_pull_policy,
                        "command": self.command(),
                        "env": self.job_env(run, job_name),
                        "resources": {"requests": map(&r.requests), "limits": map(&r.limits)},
                        "securityContext": self.container_security_context(),
                        "lifecycle": {"preStop": {"exec": {"command": c.exit_handler_command}}},
                    }],
                },
            },
        })
    }

    /// The Job of an on-demand run (standard mode).
    ///
    /// # Errors
    /// When the object does not fit the Job type (a bug).
    pub fn job(&self, run_id: &str) -> Result<Job> {
        let name = self.names.run(run_id);
        let run = RunKind::OnDemand(run_id);
        typed(
            "Job",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": self.metadata(&name, run),
                   "spec": self.job_spec(run, &name)}),
        )
    }

    /// The `batch/v1` CronJob of a scheduled pipeline (standard mode), as JSON. A zone other than
    /// UTC goes into `timeZone` (Kubernetes 1.27+), so the CronJob controller runs the schedule in
    /// it.
    #[must_use]
    pub fn cron_job(&self, cron: &str) -> Value {
        let c = self.config;
        let name = self.names.cron_job();
        let mut spec = json!({
            "schedule": cron,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": batch_starting_deadline(c.starting_deadline_seconds),
            "successfulJobsHistoryLimit": c.successful_jobs_history_limit,
            "failedJobsHistoryLimit": c.failed_jobs_history_limit,
            "suspend": !self.def.enabled,
            "jobTemplate": {
                "metadata": {"labels": self.labels(RunKind::Scheduled)},
                "spec": self.job_spec(RunKind::Scheduled, ""),
            },
        });
        if !matches!(self.def.time_zone(), "UTC" | "Etc/UTC") {
            spec["timeZone"] = json!(self.def.time_zone());
        }
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
               "metadata": self.metadata(&name, RunKind::Scheduled), "spec": spec})
    }

    // ----- operator mode -----

    fn pod_template(&self, run: RunKind<'_>, exit: bool, omjob_name: Option<&str>) -> Value {
        let c = self.config;
        let mut env = self.base_env(run);
        let (run_id, job_name) = match run {
            RunKind::OnDemand(id) => (id.to_owned(), omjob_name.unwrap_or_default().to_owned()),
            // The operator replaces the placeholders with the spawned OMJob's run id and name.
            // As in standard mode, the scripts take the run id from this variable into the YAML,
            // which the pipeline's Secret holds without one.
            RunKind::Scheduled => (
                env::OMJOB_UID_PLACEHOLDER.to_owned(),
                env::OMJOB_NAME_PLACEHOLDER.to_owned(),
            ),
        };
        env.push(Self::value(env::PIPELINE_RUN_ID, &run_id));
        if exit {
            env.push(Self::value(env::JOB_NAME, &job_name));
            env.push(Self::value(env::NAMESPACE, &c.namespace));
        }
        env.extend(self.extra_env());
        let (command, r) = if exit {
            (c.exit_handler_command.clone(), Resources::exit_handler())
        } else {
            (self.command(), self.resources())
        };
        json!({
            "image": self.image(),
            "imagePullPolicy": c.image_pull_policy,
            // Upstream leaves these out of the exit handler; a private registry then fails it.
            "imagePullSecrets": self.pull_secrets(),
            "serviceAccountName": c.service_account_name,
            "command": command,
            "env": env,
            "resources": {"requests": map(&r.requests), "limits": map(&r.limits)},
            "nodeSelector": self.node_selector(),
            "tolerations": self.tolerations(),
            "securityContext": self.pod_security_context(),
            "labels": self.labels(run),
            "annotations": c.pod_annotations,
        })
    }

    fn omjob_spec(&self, run: RunKind<'_>, name: Option<&str>) -> Value {
        json!({
            "mainPodSpec": self.pod_template(run, false, name),
            "exitHandlerSpec": self.pod_template(run, true, name),
            "ttlSecondsAfterFinished": self.config.ttl_seconds_after_finished,
            "activeDeadlineSeconds": self.config.active_deadline_seconds,
        })
    }

    /// The OMJob of an on-demand run (operator mode).
    ///
    /// # Errors
    /// When the object does not fit the OMJob type (a bug).
    pub fn omjob(&self, run_id: &str) -> Result<OMJob> {
        let name = self.names.run(run_id);
        let run = RunKind::OnDemand(run_id);
        typed(
            "OMJob",
            json!({"apiVersion": omjob_api::API_VERSION, "kind": "OMJob", "metadata": self.metadata(&name, run),
                   "spec": self.omjob_spec(run, Some(&name))}),
        )
    }

    /// The CronOMJob of a scheduled pipeline (operator mode).
    ///
    /// # Errors
    /// When the object does not fit the CronOMJob type (a bug).
    pub fn cron_omjob(&self, cron: &str) -> Result<CronOMJob> {
        let c = self.config;
        let name = self.names.cron_omjob();
        typed(
            "CronOMJob",
            json!({"apiVersion": omjob_api::API_VERSION, "kind": "CronOMJob",
            "metadata": self.metadata(&name, RunKind::Scheduled),
            "spec": {
                "schedule": cron,
                "timeZone": self.def.time_zone(),
                "suspend": !self.def.enabled,
                "startingDeadlineSeconds": c.starting_deadline_seconds,
                "successfulJobsHistoryLimit": c.successful_jobs_history_limit,
                "failedJobsHistoryLimit": c.failed_jobs_history_limit,
                "omJobSpec": self.omjob_spec(RunKind::Scheduled, None),
            }}),
        )
    }
}

/// `startingDeadlineSeconds` for a batch CronJob. OpenMetadata documents 0 as "no catch-up", but
/// Kubernetes' CronJob controller reads 0 as a window of zero seconds and never starts a run. So a
/// value ≤ 0 becomes the operator's on-time grace: a slot still starts when the controller is a
/// little late, and one missed during a longer outage is not caught up, which is what the
/// CronOMJob controller does with the same setting.
fn batch_starting_deadline(configured: i64) -> i64 {
    if configured > 0 {
        configured
    } else {
        i64::try_from(omjob_api::schedule::ON_TIME_GRACE.as_secs()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pipeline::from_value;

    fn fixture() -> (Config, PipelineDefinition) {
        let config = Config::from_sources(
            Some(
                "namespace: ns\nimagePullSecrets: regcred\nnodeSelector: pool=ingest\n\
                 tolerations: [{key: dedicated, operator: Equal, value: ingest, effect: NoSchedule}]\n\
                 extraEnvVars: [\"LOG_LEVEL:DEBUG\"]\n",
            ),
            Vec::new(),
        )
        .unwrap();
        let mut def = from_value(json!({
            "name": "mysql", "fullyQualifiedName": "svc.mysql", "pipelineType": "metadata",
            "schedule": "@daily",
            "workflowConfig": "source:\n  type: mysql\n  serviceConnection: {config: {authType: {password: \"${DB_PASSWORD}\"}}}\n\
                               workflowConfig:\n  openMetadataServerConfig:\n    securityConfig: {jwtToken: \"${OM_JWT}\"}\n",
            "credentials": {"OM_JWT": "jwt-value-123", "DB_PASSWORD": "on"},
            "overrides": {"tolerations": [{"key": "spot", "operator": "Exists"}]}
        }))
        .unwrap();
        def.validate(Some("mysql"), true).unwrap();
        (config, def)
    }

    fn env_of(v: &Value) -> BTreeMap<String, Value> {
        v["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
            .collect()
    }

    /// The `config` of a Secret, parsed as the ingestion scripts do: plain YAML, nothing expanded.
    fn config_of(secret: &Secret) -> Value {
        let bytes = &secret.data.as_ref().unwrap()[CONFIG_KEY].0;
        serde_yaml_ng::from_slice(bytes).unwrap()
    }

    /// The six pod templates: Job, CronJob, OMJob main and exit, CronOMJob main and exit.
    fn pods(b: &Builder<'_>, run_id: &str) -> [(&'static str, Value); 6] {
        let job = serde_json::to_value(b.job(run_id).unwrap()).unwrap();
        let cron = b.cron_job("0 0 * * *");
        let omjob = serde_json::to_value(b.omjob(run_id).unwrap()).unwrap();
        let cron_omjob = serde_json::to_value(b.cron_omjob("0 0 * * *").unwrap()).unwrap();
        [
            ("Job", job["spec"]["template"]["spec"]["containers"][0].clone()),
            (
                "CronJob",
                cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].clone(),
            ),
            ("OMJob main", omjob["spec"]["mainPodSpec"].clone()),
            ("OMJob exit", omjob["spec"]["exitHandlerSpec"].clone()),
            (
                "CronOMJob main",
                cron_omjob["spec"]["omJobSpec"]["mainPodSpec"].clone(),
            ),
            (
                "CronOMJob exit",
                cron_omjob["spec"]["omJobSpec"]["exitHandlerSpec"].clone(),
            ),
        ]
    }

    #[test]
    fn the_pipeline_secret_holds_the_config_with_fqn_and_substituted_credentials() {
        let (c, d) = fixture();
        let secret = Builder::new(&c, &d).secret().unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("om-secret-mysql"));
        let data = secret.data.as_ref().unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["DB_PASSWORD", "OM_JWT", "config"]
        );
        assert_eq!(data["OM_JWT"].0, b"jwt-value-123");
        let config = config_of(&secret);
        assert_eq!(config["ingestionPipelineFQN"], "svc.mysql");
        assert!(
            config.get("pipelineRunId").is_none(),
            "scheduled runs take the run id from the env var: {config}"
        );
        assert_eq!(
            config["workflowConfig"]["openMetadataServerConfig"]["securityConfig"]["jwtToken"],
            "jwt-value-123"
        );
        // Still the string "on" (YAML 1.1 would read a plain `on` as true).
        assert_eq!(
            config["source"]["serviceConnection"]["config"]["authType"]["password"],
            "on"
        );
        let text = String::from_utf8(data["config"].0.clone()).unwrap();
        assert!(!text.contains("${"), "{text}");
        assert!(text.contains("password: \"on\""), "{text}");
    }

    #[test]
    fn an_on_demand_run_has_its_own_secret_with_its_run_id() {
        let (c, d) = fixture();
        let b = Builder::new(&c, &d);
        let deployed = b.rendered_config().unwrap();
        let secret = b.run_secret("a1b2c3d4-e5f6", &deployed).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("om-job-mysql-a1b2c3d4"));
        assert_eq!(
            secret.metadata.labels.as_ref().unwrap()["app.kubernetes.io/run-id"],
            "a1b2c3d4-e5f6"
        );
        assert_eq!(secret.data.as_ref().unwrap().len(), 1, "only the config");
        let config = config_of(&secret);
        assert_eq!(config["pipelineRunId"], "a1b2c3d4-e5f6");
        assert_eq!(config["ingestionPipelineFQN"], "svc.mysql");
        assert_eq!(
            config["workflowConfig"]["openMetadataServerConfig"]["securityConfig"]["jwtToken"],
            "jwt-value-123"
        );
    }

    #[test]
    fn every_pod_reads_config_and_credentials_from_secrets_and_no_other_object_holds_them() {
        let (c, d) = fixture();
        let b = Builder::new(&c, &d);
        let everything = serde_json::to_string(&(
            b.config_map().unwrap(),
            b.job("r1").unwrap(),
            b.cron_job("0 0 * * *"),
            b.omjob("r1").unwrap(),
            b.cron_omjob("0 0 * * *").unwrap(),
        ))
        .unwrap();
        // The token anywhere, and the password ("on") as a whole string value.
        assert!(!everything.contains("jwt-value-123"), "{everything}");
        assert!(!everything.contains("\"on\""), "{everything}");
        assert!(!everything.contains("configMapKeyRef"), "{everything}");
        let cm = b.config_map().unwrap();
        assert_eq!(
            cm.data.unwrap().keys().collect::<Vec<_>>(),
            [DEFINITION_KEY],
            "the ConfigMap holds the definition only"
        );
        for (what, pod) in pods(&b, "r1") {
            let env = env_of(&pod);
            let config_secret = if what.starts_with("Cron") {
                "om-secret-mysql"
            } else {
                "om-job-mysql-r1"
            };
            assert_eq!(
                env["config"]["valueFrom"],
                json!({"secretKeyRef": {"name": config_secret, "key": "config"}}),
                "{what}"
            );
            assert_eq!(
                env["OM_JWT"]["valueFrom"]["secretKeyRef"],
                json!({"name": "om-secret-mysql", "key": "OM_JWT"}),
                "{what}"
            );
            assert_eq!(env["ingestionPipelineFQN"]["value"], "svc.mysql", "{what}");
        }
    }

    #[test]
    fn scheduling_constraints_reach_every_pod() {
        let (c, d) = fixture();
        let b = Builder::new(&c, &d);
        let job = serde_json::to_value(b.job("r1").unwrap()).unwrap();
        let cron = b.cron_job("0 0 * * *");
        let omjob = serde_json::to_value(b.omjob("r1").unwrap()).unwrap();
        let cron_omjob = serde_json::to_value(b.cron_omjob("0 0 * * *").unwrap()).unwrap();
        let pods = [
            job["spec"]["template"]["spec"].clone(),
            cron["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone(),
            omjob["spec"]["mainPodSpec"].clone(),
            omjob["spec"]["exitHandlerSpec"].clone(),
            cron_omjob["spec"]["omJobSpec"]["mainPodSpec"].clone(),
            cron_omjob["spec"]["omJobSpec"]["exitHandlerSpec"].clone(),
        ];
        for p in pods {
            assert_eq!(p["tolerations"].as_array().unwrap().len(), 2, "{p}");
            assert_eq!(p["nodeSelector"], json!({"pool": "ingest"}));
            assert_eq!(p["imagePullSecrets"], json!([{"name": "regcred"}]));
            assert_eq!(p["securityContext"]["runAsNonRoot"], true);
        }
    }

    #[test]
    fn standard_job_has_the_exit_handler_as_pre_stop_and_run_env() {
        let (c, d) = fixture();
        let job = serde_json::to_value(Builder::new(&c, &d).job("a1b2c3d4-e5").unwrap()).unwrap();
        assert_eq!(job["metadata"]["name"], "om-job-mysql-a1b2c3d4");
        assert_eq!(
            job["metadata"]["labels"]["app.kubernetes.io/run-id"],
            "a1b2c3d4-e5"
        );
        assert_eq!(job["spec"]["backoffLimit"], 3);
        let main = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            main["lifecycle"]["preStop"]["exec"]["command"],
            json!(["python", "exit_handler.py"])
        );
        let env = env_of(main);
        assert_eq!(env["pipelineRunId"]["value"], "a1b2c3d4-e5");
        assert_eq!(env["jobName"]["value"], "om-job-mysql-a1b2c3d4");
        assert_eq!(env["ingestionPipelineFQN"]["value"], "svc.mysql");
        assert_eq!(env["LOG_LEVEL"]["value"], "DEBUG");
    }

    #[test]
    fn a_starting_deadline_of_zero_becomes_the_on_time_grace_in_a_cron_job_only() {
        assert_eq!(batch_starting_deadline(0), 120);
        assert_eq!(batch_starting_deadline(-5), 120);
        assert_eq!(batch_starting_deadline(60), 60);
        let (mut c, d) = fixture();
        c.starting_deadline_seconds = 0;
        let b = Builder::new(&c, &d);
        assert_eq!(b.cron_job("0 0 * * *")["spec"]["startingDeadlineSeconds"], 120);
        // The operator applies its own rule to 0, so the CronOMJob carries what was configured.
        let cron_omjob = serde_json::to_value(b.cron_omjob("0 0 * * *").unwrap()).unwrap();
        assert_eq!(cron_omjob["spec"]["startingDeadlineSeconds"], 0);
    }

    #[test]
    fn scheduled_standard_runs_take_ids_from_the_downward_api() {
        let (c, d) = fixture();
        let cron = Builder::new(&c, &d).cron_job("0 0 * * *");
        assert_eq!(cron["spec"]["schedule"], "0 0 * * *");
        assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
        assert!(cron["spec"].get("timeZone").is_none());
        assert!(
            cron["metadata"]["labels"]
                .get("app.kubernetes.io/run-id")
                .is_none()
        );
        let env = env_of(&cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]);
        assert_eq!(
            env["pipelineRunId"]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['controller-uid']"
        );
    }

    #[test]
    fn operator_mode_matches_reference_shape() {
        let (c, d) = fixture();
        let b = Builder::new(&c, &d);
        let o = serde_json::to_value(b.omjob("r-123456789").unwrap()).unwrap();
        assert_eq!(o["metadata"]["name"], "om-job-mysql-r-123456");
        let exit = &o["spec"]["exitHandlerSpec"];
        assert_eq!(
            exit["resources"]["limits"],
            json!({"cpu": "500m", "memory": "512Mi"})
        );
        let env = env_of(exit);
        assert_eq!(env["jobName"]["value"], "om-job-mysql-r-123456");
        assert_eq!(env["namespace"]["value"], "ns");
        assert!(!env_of(&o["spec"]["mainPodSpec"]).contains_key("jobName"));
        let cron = serde_json::to_value(b.cron_omjob("0 0 * * *").unwrap()).unwrap();
        assert_eq!(cron["metadata"]["name"], "om-cronomjob-mysql");
        assert_eq!(cron["spec"]["timeZone"], "UTC");
        let env = env_of(&cron["spec"]["omJobSpec"]["exitHandlerSpec"]);
        assert_eq!(env["pipelineRunId"]["value"], "{{ omjob.uid }}");
        assert_eq!(env["jobName"]["value"], "{{ omjob.name }}");
    }

    #[test]
    fn k8s_openapi_ignores_a_field_it_does_not_know_so_typed_refuses_it() {
        // The claim of the module docs, checked: serde alone drops a misspelt field silently...
        let misspelt = json!({"metadata": {"name": "j"}, "spec": {"backofLimit": 3, "template": {}}});
        let job: Job = serde_json::from_value(misspelt.clone()).unwrap();
        assert_eq!(job.spec.unwrap().backoff_limit, None);
        // ...so `typed` compares what comes back, and names the field.
        let err = typed::<Job>("Job", misspelt).unwrap_err().to_string();
        assert!(err.contains("unknown field(s) spec.backofLimit"), "{err}");
        let nested = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [
            {"name": "main", "imagePullPolicy": "Always", "comand": ["x"]}]}}}});
        let err = typed::<Job>("Job", nested).unwrap_err().to_string();
        assert!(err.contains("spec.template.spec.containers[0].comand"), "{err}");
        // A wrong type fails in serde itself; nulls and empty collections are not refused.
        assert!(typed::<Job>("Job", json!({"spec": {"backoffLimit": "three", "template": {}}})).is_err());
        typed::<Job>(
            "Job",
            json!({"metadata": {"name": "j", "labels": {}}, "spec": {"activeDeadlineSeconds": null, "template": {}}}),
        )
        .unwrap();
    }

    #[test]
    fn every_built_object_has_only_fields_its_type_knows() {
        let (c, d) = fixture();
        let b = Builder::new(&c, &d);
        b.config_map().unwrap();
        b.job("run-1").unwrap();
        b.omjob("run-1").unwrap();
        b.cron_omjob("0 0 * * *").unwrap();
        typed::<k8s_openapi::api::batch::v1::CronJob>("CronJob", b.cron_job("0 0 * * *")).unwrap();
        let mut zoned = d.clone();
        zoned.time_zone = Some("Europe/Paris".into());
        typed::<k8s_openapi::api::batch::v1::CronJob>(
            "CronJob",
            Builder::new(&c, &zoned).cron_job("0 0 * * *"),
        )
        .unwrap();
    }
}
