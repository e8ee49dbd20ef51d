//! A pipeline definition as callers send it (JSON or YAML), and its validation.
//!
//! Validation runs before any API call and reports every problem with the field it is in, so bad
//! input gets a 400 and leaves nothing half-created. Credentials are kept apart from the workflow
//! config the caller sends, which refers to them as `${NAME}`; the service substitutes them when
//! it renders the config pods read ([`crate::render`]), and that rendered config lives only in
//! Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use omjob_api::grammar::{is_dns_label, is_quantity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    config::Resources,
    error::{Error, FieldError, Result},
    render,
};

/// OpenMetadata's pipeline types (`PipelineType`), spelled as OpenMetadata spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum PipelineType {
    /// Metadata ingestion.
    #[serde(rename = "metadata")]
    Metadata,
    /// Usage.
    #[serde(rename = "usage")]
    Usage,
    /// Lineage.
    #[serde(rename = "lineage")]
    Lineage,
    /// Profiler.
    #[serde(rename = "profiler")]
    Profiler,
    /// Auto-classification.
    #[serde(rename = "autoClassification")]
    AutoClassification,
    /// Test suites.
    #[serde(rename = "TestSuite")]
    TestSuite,
    /// Data insights.
    #[serde(rename = "dataInsight")]
    DataInsight,
    /// Search re-index.
    #[serde(rename = "elasticSearchReindex")]
    ElasticSearchReindex,
    /// dbt.
    #[serde(rename = "dbt")]
    Dbt,
    /// Applications.
    #[serde(rename = "application")]
    Application,
}

impl PipelineType {
    /// The value of the `pipelineType` env var (OpenMetadata's `toString()`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Usage => "usage",
            Self::Lineage => "lineage",
            Self::Profiler => "profiler",
            Self::AutoClassification => "autoClassification",
            Self::TestSuite => "TestSuite",
            Self::DataInsight => "dataInsight",
            Self::ElasticSearchReindex => "elasticSearchReindex",
            Self::Dbt => "dbt",
            Self::Application => "application",
        }
    }

    /// The key logs are returned under (reference §6.5), `ingestion_task` when there is none.
    #[must_use]
    pub fn task_key(self) -> &'static str {
        match self {
            Self::Profiler => "profiler_task",
            Self::AutoClassification => "auto_classification_task",
            Self::Lineage => "lineage_task",
            Self::Dbt => "dbt_task",
            Self::Usage => "usage_task",
            Self::TestSuite => "test_suite_task",
            Self::DataInsight => "data_insight_task",
            Self::Application => "application_task",
            Self::Metadata | Self::ElasticSearchReindex => "ingestion_task",
        }
    }
}

/// Per-pipeline overrides of the service configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Overrides {
    /// Container image instead of `ingestionImage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Command of the ingestion container instead of `ingestionCommand`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1)]
    pub command: Option<Vec<String>>,
    /// Resources of the ingestion container instead of the configured ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub resources: Option<Resources>,
    /// Node selector entries added to (and overriding) the configured ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations added to the configured ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tolerations: Option<Vec<Toleration>>,
}

/// A pipeline as deployed: everything but the credentials' values.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineDefinition {
    /// Pipeline name: a DNS label (lower case letters, digits, `-`; at most 63 characters).
    #[serde(default)]
    pub name: String,
    /// OpenMetadata's fully qualified name of the ingestion pipeline (the name when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fully_qualified_name: Option<String>,
    /// The pipeline type.
    pub pipeline_type: PipelineType,
    /// 5-field cron expression or `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`,
    /// `@yearly`, `@annually`. Left out: on demand only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule (UTC when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Whether the schedule is active (true when left out).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The workflow config: a mapping, as YAML text or an object. Required. A `${NAME}` in one
    /// of its string values stands for credential `NAME` (`$${` for a literal `${`).
    /// Write-only: the stored definition keeps it only in the pipeline's Secret, so `GET`
    /// leaves it out.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    #[schema(schema_with = workflow_config_schema, required = true)]
    pub workflow_config: Value,
    /// Credentials: name → value. Substituted for their `${NAME}` references in the config pods
    /// read, and passed to pods as env vars; both only through the pipeline's Secrets. Never
    /// returned.
    #[serde(default, skip_serializing)]
    #[schema(write_only)]
    pub credentials: BTreeMap<String, String>,
    /// Names of the credentials (filled in by the service; what is stored and returned).
    #[serde(default)]
    pub credential_names: Vec<String>,
    /// Overrides of the service configuration.
    #[serde(default)]
    pub overrides: Overrides,
}

/// `workflowConfig` in the OpenAPI document: a non-empty mapping, sent but never returned.
fn workflow_config_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .min_properties(Some(1))
        .write_only(Some(true))
        .description(Some(
            "The workflow config: a non-empty mapping (an object, or YAML text with the YAML \
             content type). Stored only in the pipeline's Secret, so never returned.",
        ))
        .build()
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for PipelineDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials by name only, so that a definition in a log line or a panic shows none.
        f.debug_struct("PipelineDefinition")
            .field("name", &self.name)
            .field("fully_qualified_name", &self.fully_qualified_name)
            .field("pipeline_type", &self.pipeline_type)
            .field("schedule", &self.schedule)
            .field("time_zone", &self.time_zone)
            .field("enabled", &self.enabled)
            .field("workflow_config", &self.workflow_config)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .field("credential_names", &self.credential_names)
            .field("overrides", &self.overrides)
            .finish()
    }
}

/// Env names the service sets itself; credentials may not shadow them.
const RESERVED_ENV: &[&str] = &[
    omjob_api::env::CONFIG,
    omjob_api::env::PIPELINE_TYPE,
    omjob_api::env::PIPELINE_RUN_ID,
    omjob_api::env::INGESTION_PIPELINE_FQN,
    omjob_api::env::JOB_NAME,
    omjob_api::env::NAMESPACE,
    omjob_api::env::PIPELINE_STATUS,
];

/// Whether `s` is a C identifier usable as an environment variable name.
#[must_use]
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a JSON/YAML body (chosen by `content_type`, YAML when it says so) into a definition,
/// naming the field of a structural error.
///
/// # Errors
/// [`Error::Invalid`] naming the field.
pub fn parse_definition(body: &[u8], content_type: Option<&str>) -> Result<PipelineDefinition> {
    let yaml = content_type.is_some_and(|c| c.contains("yaml"));
    let value: Value = if yaml {
        serde_yaml_ng::from_slice(body).map_err(|e| Error::invalid("body", format!("not valid YAML: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| Error::invalid("body", format!("not valid JSON: {e}")))?
    };
    from_value(value)
}

/// Turns a JSON value into a definition, naming the field of a structural error.
///
/// # Errors
/// [`Error::Invalid`] naming the field.
pub fn from_value(value: Value) -> Result<PipelineDefinition> {
    // serde's derived structs also accept a JSON array of their fields in order, so
    // `"overrides": [null, null]` would pass as empty overrides; the API says these are mappings.
    // (`resources` is optional, so null stands for "left out" there.)
    for (field, v, null_ok) in [
        ("body", Some(&value), false),
        ("overrides", value.get("overrides"), false),
        (
            "overrides.resources",
            value.get("overrides").and_then(|o| o.get("resources")),
            true,
        ),
    ] {
        if let Some(v) = v.filter(|v| !(v.is_object() || (null_ok && v.is_null()))) {
            let found = match v {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                Value::Null => "null",
                Value::Object(_) => "a mapping",
            };
            return Err(Error::invalid(field, format!("must be a mapping, not {found}")));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // "missing field `x`" at the top level has path "."; name the field itself.
        let field = match (path.as_str(), inner.strip_prefix("missing field `")) {
            (".", Some(rest)) => rest.trim_end_matches('`').to_owned(),
            (".", None) => "body".to_owned(),
            (p, Some(rest)) => format!("{p}.{}", rest.trim_end_matches('`')),
            (p, None) => p.to_owned(),
        };
        Error::invalid(field, inner)
    })
}

/// Turns a tolerations list into Kubernetes tolerations, checking operators and effects.
///
/// # Errors
/// One [`FieldError`] per problem, fields relative to the list (`[0].effect`).
pub fn parse_tolerations(value: &Value) -> std::result::Result<Vec<Toleration>, Vec<FieldError>> {
    let list: Vec<Toleration> = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        vec![FieldError::new(
            format!("{}", e.path()).trim_start_matches('.'),
            e.into_inner().to_string(),
        )]
    })?;
    let errors = check_tolerations(&list, "");
    if errors.is_empty() { Ok(list) } else { Err(errors) }
}

fn check_tolerations(list: &[Toleration], prefix: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, t) in list.iter().enumerate() {
        if let Some(op) = t.operator.as_deref()
            && !matches!(op, "Exists" | "Equal")
        {
            errors.push(FieldError::new(
                format!("{prefix}[{i}].operator"),
                format!("'{op}' is not Exists or Equal"),
            ));
        }
        if let Some(effect) = t.effect.as_deref()
            && !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errors.push(FieldError::new(
                format!("{prefix}[{i}].effect"),
                format!("'{effect}' is not NoSchedule, PreferNoSchedule or NoExecute"),
            ));
        }
        if t.operator.as_deref() == Some("Exists") && t.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errors.push(FieldError::new(
                format!("{prefix}[{i}].value"),
                "must be empty when operator is Exists",
            ));
        }
    }
    errors
}

/// Turns an Airflow-style descriptor into cron (reference §6.3); other input is returned as is.
#[must_use]
pub fn to_cron(schedule: &str) -> String {
    match schedule.trim() {
        "@hourly" => "0 * * * *".into(),
        "@daily" | "@midnight" => "0 0 * * *".into(),
        "@weekly" => "0 0 * * 0".into(),
        "@monthly" => "0 0 1 * *".into(),
        "@yearly" | "@annually" => "0 0 1 1 *".into(),
        other => other.to_owned(),
    }
}

/// Checks a schedule (after [`to_cron`]) with the parser the operator's CronOMJob controller
/// uses, so that a schedule accepted here is one the operator runs (and the dialect is the same in
/// both modes).
///
/// # Errors
/// Why it is not a schedule.
pub fn check_schedule(schedule: &str) -> std::result::Result<String, String> {
    let cron = to_cron(schedule);
    match omjob_api::schedule::Schedule::parse(&cron, "UTC") {
        Ok(_) => Ok(cron),
        Err(omjob_api::schedule::ScheduleError::InvalidSchedule { reason, .. }) => {
            Err(format!("'{schedule}' is not a valid schedule: {reason}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

impl PipelineDefinition {
    /// What the rendering rule ([`crate::render`]) needs of a parsed workflow config: every
    /// `${NAME}` names a credential, and an `ingestionPipelineFQN` of its own (the service writes
    /// that key) agrees with the pipeline's.
    fn check_template(&self, doc: &serde_json::Map<String, Value>) -> Vec<FieldError> {
        let mut errors: Vec<FieldError> = Vec::new();
        for r in render::references(doc) {
            let field = format!("workflowConfig.{}", r.field);
            if !self.credentials.contains_key(&r.name) && !errors.iter().any(|e| e.field == field) {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "refers to ${{{n}}}, which is not one of the pipeline's credentials; the ingestion \
                         scripts do not expand environment variables, so add '{n}' to credentials (or write \
                         $${{{n}}} for a literal ${{{n}}})",
                        n = r.name
                    ),
                ));
            }
        }
        if let Some(v) = doc.get(render::FQN_KEY) {
            let given = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            if given != self.fqn() {
                errors.push(FieldError::new(
                    format!("workflowConfig.{}", render::FQN_KEY),
                    format!(
                        "is '{given}' but the pipeline's fullyQualifiedName is '{}'; the service writes \
                         fullyQualifiedName here, so set that instead",
                        self.fqn()
                    ),
                ));
            }
        }
        errors
    }

    /// The fully qualified name (the name when none was given).
    #[must_use]
    pub fn fqn(&self) -> &str {
        self.fully_qualified_name.as_deref().unwrap_or(&self.name)
    }

    /// The cron expression, if the pipeline is scheduled.
    #[must_use]
    pub fn cron(&self) -> Option<String> {
        self.schedule
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(to_cron)
    }

    /// The time zone (UTC when left out).
    #[must_use]
    pub fn time_zone(&self) -> &str {
        self.time_zone
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("UTC")
    }

    /// The workflow config as YAML text.
    ///
    /// # Errors
    /// When an object cannot be written as YAML (not expected).
    pub fn workflow_yaml(&self) -> Result<String> {
        match &self.workflow_config {
            Value::String(s) => Ok(s.clone()),
            other => {
                serde_yaml_ng::to_string(other).map_err(|e| Error::invalid("workflowConfig", e.to_string()))
            }
        }
    }

    /// Checks everything, with `path_name` the name in the request path (if any); fills in the
    /// name and the credential names. `utc_only` rejects other time zones (standard mode on a
    /// cluster whose CronJob has no `timeZone`).
    ///
    /// # Errors
    /// [`Error::Invalid`] listing every problem.
    pub fn validate(&mut self, path_name: Option<&str>, utc_only: bool) -> Result<()> {
        let mut errors = Vec::new();
        if let Some(p) = path_name {
            if self.name.is_empty() {
                self.name = p.to_owned();
            } else if self.name != p {
                errors.push(FieldError::new(
                    "name",
                    format!("'{}' differs from the name in the path '{p}'", self.name),
                ));
            }
        }
        if !is_dns_label(&self.name) {
            errors.push(FieldError::new(
                "name",
                format!(
                    "'{}' is not a DNS label (lower-case letters, digits and '-', starting and ending with a \
                     letter or digit, at most 63 characters)",
                    self.name
                ),
            ));
        }
        if self
            .fully_qualified_name
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            errors.push(FieldError::new("fullyQualifiedName", "must not be blank"));
        }
        if let Some(s) = self.schedule.as_deref().filter(|s| !s.trim().is_empty())
            && let Err(e) = check_schedule(s)
        {
            errors.push(FieldError::new("schedule", e));
        }
        let tz = self.time_zone();
        if jiff::tz::TimeZone::get(tz).is_err() {
            errors.push(FieldError::new(
                "timeZone",
                format!("'{tz}' is not an IANA time zone"),
            ));
        } else if utc_only && !matches!(tz, "UTC" | "Etc/UTC") {
            errors.push(FieldError::new(
                "timeZone",
                format!(
                    "'{tz}' is not supported in standard mode on this cluster: CronJob timeZone needs Kubernetes \
                     1.27 or later, and without it the schedule runs in the controller manager's zone; use UTC, \
                     convert the schedule, or use operator mode"
                ),
            ));
        }
        let before = errors.len();
        match &self.workflow_config {
            Value::Null => errors.push(FieldError::new("workflowConfig", "is required")),
            Value::String(s) if s.trim().is_empty() => {
                errors.push(FieldError::new("workflowConfig", "must not be empty"))
            }
            Value::String(s) => {
                if let Err(e) = serde_yaml_ng::from_str::<Value>(s) {
                    errors.push(FieldError::new(
                        "workflowConfig",
                        format!("is not valid YAML: {e}"),
                    ));
                }
            }
            Value::Object(m) if m.is_empty() => {
                errors.push(FieldError::new("workflowConfig", "must not be empty"))
            }
            Value::Object(_) => {}
            _ => errors.push(FieldError::new(
                "workflowConfig",
                "must be YAML text or an object",
            )),
        }
        if errors.len() == before {
            match render::parse(&self.workflow_config) {
                Ok(doc) => errors.extend(self.check_template(&doc)),
                Err(e) => errors.push(FieldError::new("workflowConfig", e.to_string())),
            }
        }
        let workflow_text = self.workflow_yaml().unwrap_or_default();
        for (k, v) in &self.credentials {
            let field = format!("credentials.{k}");
            if !is_env_name(k) {
                errors.push(FieldError::new(
                    &field,
                    "the name must be a valid environment variable name",
                ));
            } else if RESERVED_ENV.contains(&k.as_str()) {
                errors.push(FieldError::new(
                    &field,
                    "the name is reserved for the service's own variables",
                ));
            }
            if v.is_empty() {
                errors.push(FieldError::new(&field, "must not be empty"));
            } else if v.len() >= 4 && workflow_text.contains(v.as_str()) {
                // Never say the value: only that the config holds it.
                errors.push(FieldError::new(
                    "workflowConfig",
                    format!(
                        "contains the value of credential '{k}'; refer to it by its environment variable"
                    ),
                ));
            }
        }
        let o = &self.overrides;
        if o.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
            errors.push(FieldError::new("overrides.image", "must not be blank"));
        }
        if o.command.as_ref().is_some_and(Vec::is_empty) {
            errors.push(FieldError::new("overrides.command", "must not be empty"));
        }
        if let Some(r) = &o.resources {
            for (section, map) in [("requests", &r.requests), ("limits", &r.limits)] {
                for (k, v) in map {
                    if !is_quantity(v) {
                        errors.push(FieldError::new(
                            format!("overrides.resources.{section}.{k}"),
                            format!("'{v}' is not a Kubernetes quantity"),
                        ));
                    }
                }
            }
        }
        if let Some(t) = &o.tolerations {
            errors.extend(check_tolerations(t, "overrides.tolerations"));
        }
        self.credential_names = self.credentials.keys().cloned().collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use serde_json::json;

    use super::*;

    fn def(v: Value) -> PipelineDefinition {
        from_value(v).unwrap()
    }

    fn fields(e: Error) -> Vec<String> {
        match e {
            Error::Invalid(list) => list.into_iter().map(|f| f.field).collect(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn descriptors_become_cron() {
        assert_eq!(to_cron("@hourly"), "0 * * * *");
        assert_eq!(to_cron("@midnight"), "0 0 * * *");
        assert_eq!(to_cron("@annually"), "0 0 1 1 *");
        assert_eq!(check_schedule("*/5 * * * *").unwrap(), "*/5 * * * *");
        assert!(check_schedule("0 0 * *").is_err());
        assert!(check_schedule("61 * * * *").is_err());
        assert!(check_schedule("0 0 0 * * *").is_err());
        // The operator's parser: a schedule it would never run is refused at deploy time.
        let never = check_schedule("0 0 30 2 *").unwrap_err();
        assert!(never.contains("never fires"), "{never}");
        assert_eq!(check_schedule("@midnight").unwrap(), "0 0 * * *");
    }

    #[test]
    fn unknown_pipeline_type_names_the_field() {
        let e = from_value(json!({"pipelineType": "nope", "workflowConfig": "a: 1"})).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("pipelineType") && text.contains("unknown variant `nope`"),
            "{text}"
        );
    }

    #[test]
    fn missing_workflow_config_names_the_field() {
        let mut d = def(json!({"name": "a", "pipelineType": "metadata"}));
        assert_eq!(fields(d.validate(None, true).unwrap_err()), ["workflowConfig"]);
        let e = from_value(json!({"name": "a"})).unwrap_err();
        assert_eq!(fields(e), ["pipelineType"]);
    }

    #[test]
    fn a_definition_and_its_overrides_must_be_mappings_not_arrays() {
        let e = from_value(json!([null, "metadata"])).unwrap_err();
        assert_eq!(fields(e), ["body"]);
        let e = from_value(json!({"name": "a", "pipelineType": "metadata", "overrides": [null, null]}))
            .unwrap_err();
        assert_eq!(fields(e), ["overrides"]);
        let e = from_value(json!({"name": "a", "pipelineType": "metadata", "overrides": {"resources": []}}))
            .unwrap_err();
        assert_eq!(fields(e), ["overrides.resources"]);
        let e = from_value(json!({"name": "a", "pipelineType": "metadata", "overrides": null})).unwrap_err();
        assert_eq!(fields(e), ["overrides"]);
        from_value(json!({"name": "a", "pipelineType": "metadata", "overrides": {"resources": null}}))
            .unwrap();
    }

    #[test]
    fn every_problem_is_listed() {
        let mut d = def(json!({
            "name": "Bad_Name", "pipelineType": "metadata", "schedule": "every day", "timeZone": "Mars/Base",
            "workflowConfig": "token: hunter22", "credentials": {"JWT": "hunter22", "config": "x", "1bad": "y"},
            "overrides": {"tolerations": [{"operator": "Maybe"}], "resources": {"limits": {"memory": "lots"}}}
        }));
        let e = d.validate(None, false).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("hunter22"), "a credential leaked: {text}");
        assert_eq!(
            fields(e),
            [
                "name",
                "schedule",
                "timeZone",
                "credentials.1bad",
                "workflowConfig",
                "credentials.config",
                "overrides.resources.limits.memory",
                "overrides.tolerations[0].operator"
            ]
        );
    }

    #[test]
    fn standard_mode_rejects_non_utc_zones_clearly() {
        let mut d = def(
            json!({"name": "a", "pipelineType": "metadata", "schedule": "@daily",
            "timeZone": "Europe/Paris", "workflowConfig": {"a": 1}}),
        );
        assert!(d.clone().validate(Some("a"), false).is_ok());
        let e = d.validate(Some("a"), true).unwrap_err().to_string();
        assert!(e.contains("timeZone") && e.contains("operator mode"), "{e}");
    }

    #[test]
    fn path_name_fills_in_or_must_match() {
        let mut d = def(json!({"pipelineType": "profiler", "workflowConfig": "a: 1"}));
        d.validate(Some("p1"), true).unwrap();
        assert_eq!(d.name, "p1");
        assert_eq!(d.fqn(), "p1");
        let mut d = def(json!({"name": "p2", "pipelineType": "profiler", "workflowConfig": "a: 1"}));
        assert_eq!(fields(d.validate(Some("p1"), true).unwrap_err()), ["name"]);
    }

    #[test]
    fn yaml_bodies_are_accepted() {
        let d = parse_definition(
            b"name: y\npipelineType: dbt\nworkflowConfig:\n  source: {type: dbt}\n",
            Some("application/yaml"),
        )
        .unwrap();
        assert_eq!(d.pipeline_type.task_key(), "dbt_task");
        assert!(d.workflow_yaml().unwrap().contains("source"));
    }

    #[test]
    fn the_workflow_config_must_be_a_mapping_whose_references_are_credentials() {
        let mut d = def(json!({"name": "a", "pipelineType": "metadata",
            "workflowConfig": {"a": "${OM_JWT}", "b": ["x ${MISSING} y", "$${LITERAL}", "$HOME"],
                               "ingestionPipelineFQN": "other.fqn"},
            "credentials": {"OM_JWT": "secret-value"}}));
        let e = d.validate(None, true).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("${MISSING}") && !text.contains("secret-value"),
            "{text}"
        );
        assert_eq!(
            fields(e),
            ["workflowConfig.b[0]", "workflowConfig.ingestionPipelineFQN"]
        );
        // The FQN the service writes anyway is accepted; a pipeline run id is replaced per run.
        let mut d = def(
            json!({"name": "a", "fullyQualifiedName": "svc.a", "pipelineType": "metadata",
            "workflowConfig": "ingestionPipelineFQN: svc.a\npipelineRunId: old\nx: 1\n"}),
        );
        d.validate(None, true).unwrap();
        let mut d = def(json!({"name": "a", "pipelineType": "metadata", "workflowConfig": "- a\n- b\n"}));
        assert_eq!(fields(d.validate(None, true).unwrap_err()), ["workflowConfig"]);
    }

    #[test]
    fn credentials_are_never_serialised() {
        let mut d = def(
            json!({"name": "a", "pipelineType": "metadata", "workflowConfig": "x: 1",
            "credentials": {"OM_JWT": "secret-value"}}),
        );
        d.validate(None, true).unwrap();
        let out = serde_json::to_string(&d).unwrap();
        assert!(!out.contains("secret-value") && out.contains("OM_JWT"), "{out}");
        let debug = format!("{d:?}");
        assert!(
            !debug.contains("secret-value") && debug.contains("OM_JWT"),
            "{debug}"
        );
    }
}
