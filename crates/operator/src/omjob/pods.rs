//! Building the main and exit-handler pods from an OMJob's templates, with the Java operator's
//! labels, names, security context and env contract (reference §2.1, §3.4).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::Resource as _;
use omjob_api::{OMJob, PodTemplate, env, labels, pod_template::EnvVar};
use serde_json::{Value, json};

/// Env var (additive) with the main container's exit code, or `unknown`.
pub const ENV_MAIN_EXIT_CODE: &str = env::MAIN_POD_EXIT_CODE;
/// Env var (additive) with the main stage's termination reason (`Completed`, `OOMKilled`...).
pub const ENV_TERMINATION_REASON: &str = env::MAIN_POD_TERMINATION_REASON;

/// Which stage a pod runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodKind {
    /// The ingestion itself.
    Main,
    /// The exit handler.
    ExitHandler,
}

impl PodKind {
    /// Value of the `pod-type` label, also the `type` label of `omjob_pods_created_total`.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Main => labels::POD_TYPE_MAIN,
            Self::ExitHandler => labels::POD_TYPE_EXIT_HANDLER,
        }
    }
}

/// What the exit handler is told about the main stage.
#[derive(Debug, Clone)]
pub struct MainOutcome {
    /// Exit code of the main container.
    pub exit_code: Option<i32>,
    /// Termination reason (`status.reason`).
    pub reason: String,
}

/// Labels: the operator's base set, the OMJob's pipeline and run-id, the pod type, then the
/// template's labels, which win on conflict (as in the Java operator).
#[must_use]
pub fn pod_labels(omjob: &OMJob, template: &PodTemplate, kind: PodKind) -> BTreeMap<String, String> {
    let name = omjob.metadata.name.as_deref().unwrap_or_default();
    let mut l = BTreeMap::from([
        (labels::LABEL_APP_NAME.to_owned(), labels::APP_NAME.to_owned()),
        (
            labels::LABEL_APP_COMPONENT.to_owned(),
            labels::COMPONENT_INGESTION.to_owned(),
        ),
        (
            labels::LABEL_APP_MANAGED_BY.to_owned(),
            labels::MANAGED_BY_OMJOB_OPERATOR.to_owned(),
        ),
        (
            labels::LABEL_OMJOB_NAME.to_owned(),
            labels::sanitize_label_value(name),
        ),
    ]);
    let own = omjob.metadata.labels.clone().unwrap_or_default();
    if let Some(p) = own.get(labels::LABEL_APP_PIPELINE) {
        l.insert(
            labels::LABEL_APP_PIPELINE.to_owned(),
            labels::sanitize_label_value(p),
        );
    }
    if let Some(r) = own.get(labels::LABEL_APP_RUN_ID) {
        l.insert(labels::LABEL_APP_RUN_ID.to_owned(), r.clone());
    }
    l.insert(labels::LABEL_POD_TYPE.to_owned(), kind.label().to_owned());
    l.extend(template.labels.clone().unwrap_or_default());
    l
}

/// The run id used for `{{ omjob.uid }}`: the OMJob's run-id label, else its Kubernetes uid.
fn run_id(omjob: &OMJob) -> String {
    omjob
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::LABEL_APP_RUN_ID))
        .cloned()
        .or_else(|| omjob.metadata.uid.clone())
        .unwrap_or_default()
}

/// The `pipelineStatus` the exit handler is given: `success` only for a main stage that
/// completed with exit code 0 ([`omjob_api::termination::pipeline_status`]).
#[must_use]
pub fn pipeline_status(o: &MainOutcome) -> &'static str {
    omjob_api::termination::pipeline_status(&o.reason, o.exit_code)
}

/// The container env: template entries with empty `valueFrom` sources kept as plain variables
/// and placeholders replaced; for the exit handler, `pipelineStatus` and the main outcome
/// appended.
#[must_use]
pub fn container_env(omjob: &OMJob, template: &PodTemplate, outcome: Option<&MainOutcome>) -> Vec<EnvVar> {
    let omjob_name = omjob.metadata.name.clone().unwrap_or_default();
    let mut out: Vec<EnvVar> = Vec::new();
    for var in template.env.iter().flatten() {
        let mut var = var.clone();
        if var
            .value_from
            .as_ref()
            .is_some_and(omjob_api::pod_template::EnvVarSource::is_empty)
        {
            // `valueFrom: {}` (what OpenMetadata's server writes for a source with no reference
            // set) is refused by the API server, so the source goes. The variable stays, with its
            // value or an empty one: a pod spec without `valueFrom` means exactly that in
            // Kubernetes, and the Java operator keeps it the same way. Dropping it would unset a
            // variable the ingestion may test for.
            var.value_from = None;
            var.value.get_or_insert_with(String::new);
        }
        if let Some(v) = &var.value {
            let v = v
                .replace(env::OMJOB_UID_PLACEHOLDER, &run_id(omjob))
                .replace(env::OMJOB_NAME_PLACEHOLDER, &omjob_name);
            var.value = Some(v);
        }
        if outcome.is_some()
            && [env::PIPELINE_STATUS, ENV_MAIN_EXIT_CODE, ENV_TERMINATION_REASON].contains(&var.name.as_str())
        {
            continue;
        }
        out.push(var);
    }
    if let Some(o) = outcome {
        let status = pipeline_status(o);
        let code = o
            .exit_code
            .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
        for (name, value) in [
            (env::PIPELINE_STATUS, status.to_owned()),
            (ENV_MAIN_EXIT_CODE, code),
            (ENV_TERMINATION_REASON, o.reason.clone()),
        ] {
            out.push(EnvVar {
                name: name.to_owned(),
                value: Some(value),
                value_from: None,
            });
        }
    }
    out
}

/// The container's security context: the pod's user settings plus the hardening the Java operator
/// always applies.
fn container_security_context(template: &PodTemplate) -> Value {
    let mut sc = json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": false,
        "capabilities": {"drop": ["ALL"]},
    });
    if let Some(pod_sc) = &template.security_context {
        for key in ["runAsNonRoot", "runAsUser", "runAsGroup"] {
            if let Some(v) = pod_sc.get(key) {
                sc[key] = v.clone();
            }
        }
    }
    sc
}

/// Builds the pod `name` for `kind` from `template`, owned by (controlled by) the OMJob.
///
/// # Errors
/// When the rendered pod does not deserialise (a template value of the wrong shape).
pub fn build(
    omjob: &OMJob,
    template: &PodTemplate,
    kind: PodKind,
    name: &str,
    outcome: Option<&MainOutcome>,
) -> Result<Pod, serde_json::Error> {
    let owner = omjob.controller_owner_ref(&());
    let mut container = json!({
        "name": "main",
        "image": template.image,
        "imagePullPolicy": template.image_pull_policy.map_or("IfNotPresent", |p| p.as_str()),
        "command": template.command,
        "env": container_env(omjob, template, outcome),
        "securityContext": container_security_context(template),
    });
    if let Some(r) = &template.resources {
        container["resources"] = serde_json::to_value(r)?;
    }
    let mut spec = json!({
        "restartPolicy": "Never",
        "containers": [container],
    });
    if let Some(sa) = &template.service_account_name {
        spec["serviceAccountName"] = json!(sa);
    }
    if let Some(s) = &template.image_pull_secrets {
        spec["imagePullSecrets"] = serde_json::to_value(s)?;
    }
    if let Some(s) = &template.node_selector {
        spec["nodeSelector"] = json!(s);
    }
    if let Some(t) = &template.tolerations {
        spec["tolerations"] = serde_json::to_value(t)?;
    }
    if let Some(sc) = &template.security_context {
        spec["securityContext"] = Value::Object(sc.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": omjob.metadata.namespace,
            "labels": pod_labels(omjob, template, kind),
            "annotations": template.annotations.clone().unwrap_or_default(),
            "ownerReferences": [owner],
        },
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use omjob_api::Termination;

    use super::*;

    fn omjob() -> OMJob {
        serde_json::from_value(json!({
            "apiVersion": "pipelines.openmetadata.org/v1", "kind": "OMJob",
            "metadata": {"name": "om-job-x-1", "namespace": "ns", "uid": "k8s-uid",
                "labels": {"app.kubernetes.io/pipeline": "My Pipeline!", "app.kubernetes.io/run-id": "run-123"}},
            "spec": {
                "mainPodSpec": {"image": "img", "serviceAccountName": "sa", "command": ["python", "main.py"],
                    "labels": {"app.kubernetes.io/managed-by": "openmetadata"},
                    "securityContext": {"runAsUser": 1000, "runAsNonRoot": true, "fsGroup": 1000},
                    "env": [
                        {"name": "pipelineRunId", "value": "{{ omjob.uid }}"},
                        {"name": "jobName", "value": "{{ omjob.name }}"},
                        {"name": "empty", "valueFrom": {}},
                        {"name": "config", "valueFrom": {"configMapKeyRef": {"name": "om-config-x", "key": "config"}}}
                    ]},
                "exitHandlerSpec": {"image": "img", "command": ["python", "exit_handler.py"],
                    "env": [{"name": "pipelineStatus", "value": "stale"}]}
            }
        }))
        .unwrap()
    }

    #[test]
    fn template_labels_override_the_operators_and_values_are_sanitised() {
        let o = omjob();
        let l = pod_labels(&o, &o.spec.main_pod_spec, PodKind::Main);
        assert_eq!(l[labels::LABEL_APP_MANAGED_BY], "openmetadata");
        assert_eq!(l[labels::LABEL_APP_PIPELINE], "My-Pipeline");
        assert_eq!(l[labels::LABEL_APP_RUN_ID], "run-123");
        assert_eq!(l[labels::LABEL_POD_TYPE], "main");
        assert_eq!(l[labels::LABEL_OMJOB_NAME], "om-job-x-1");
    }

    #[test]
    fn placeholders_are_replaced_and_empty_sources_become_empty_values() {
        let o = omjob();
        let env = container_env(&o, &o.spec.main_pod_spec, None);
        let names: Vec<_> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["pipelineRunId", "jobName", "empty", "config"]);
        assert_eq!(env[0].value.as_deref(), Some("run-123"));
        assert_eq!(env[1].value.as_deref(), Some("om-job-x-1"));
        assert_eq!(
            env[2],
            EnvVar {
                name: "empty".into(),
                value: Some(String::new()),
                value_from: None,
            }
        );
        assert!(env[3].value_from.is_some());
    }

    #[test]
    fn an_empty_source_keeps_its_variable_in_main_and_exit_pods() {
        let mut o = omjob();
        let exit = o.spec.exit_handler_spec.as_mut().unwrap();
        exit.env.get_or_insert_with(Vec::new).extend([
            serde_json::from_value(json!({"name": "EMPTY_VALUE_FROM", "valueFrom": {}})).unwrap(),
            serde_json::from_value(json!({"name": "KEPT", "value": "v", "valueFrom": {}})).unwrap(),
        ]);
        let outcome = MainOutcome {
            exit_code: Some(0),
            reason: Termination::Completed.as_str().into(),
        };
        let main = build(&o, &o.spec.main_pod_spec, PodKind::Main, "m", None).unwrap();
        let t = o.spec.exit_handler_spec.clone().unwrap();
        let exit = build(&o, &t, PodKind::ExitHandler, "e", Some(&outcome)).unwrap();
        let env_of = |p: &Pod| p.spec.clone().unwrap().containers[0].env.clone().unwrap();
        let find = |env: &[k8s_openapi::api::core::v1::EnvVar], n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .cloned()
                .unwrap_or_else(|| panic!("{n} dropped"))
        };
        let main_env = env_of(&main);
        let empty = find(&main_env, "empty");
        assert_eq!((empty.value.as_deref(), empty.value_from), (Some(""), None));
        let exit_env = env_of(&exit);
        let empty = find(&exit_env, "EMPTY_VALUE_FROM");
        assert_eq!((empty.value.as_deref(), empty.value_from), (Some(""), None));
        let kept = find(&exit_env, "KEPT");
        assert_eq!((kept.value.as_deref(), kept.value_from), (Some("v"), None));
    }

    #[test]
    fn the_exit_handler_learns_status_exit_code_and_reason() {
        let o = omjob();
        let t = o.spec.exit_handler_spec.clone().unwrap();
        let failed = MainOutcome {
            exit_code: Some(137),
            reason: Termination::OomKilled.as_str().into(),
        };
        let env = container_env(&o, &t, Some(&failed));
        let get = |n: &str| {
            env.iter()
                .filter(|e| e.name == n)
                .map(|e| e.value.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            get("pipelineStatus"),
            ["failed"],
            "the stale template value is replaced, not duplicated"
        );
        assert_eq!(get(ENV_MAIN_EXIT_CODE), ["137"]);
        assert_eq!(get(ENV_TERMINATION_REASON), ["OOMKilled"]);
        let ok = MainOutcome {
            exit_code: Some(0),
            reason: Termination::Completed.as_str().into(),
        };
        assert_eq!(
            container_env(&o, &t, Some(&ok))
                .iter()
                .find(|e| e.name == "pipelineStatus")
                .unwrap()
                .value
                .as_deref(),
            Some("success")
        );
        let unknown = MainOutcome {
            exit_code: None,
            reason: Termination::PodDeleted.as_str().into(),
        };
        let env = container_env(&o, &t, Some(&unknown));
        assert_eq!(
            env.iter()
                .find(|e| e.name == ENV_MAIN_EXIT_CODE)
                .unwrap()
                .value
                .as_deref(),
            Some("unknown")
        );
    }

    #[test]
    fn pods_are_owned_hardened_and_single_container() {
        let o = omjob();
        let p = build(&o, &o.spec.main_pod_spec, PodKind::Main, "om-job-x-1-main", None).unwrap();
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("OMJob", "k8s-uid", Some(true))
        );
        let spec = p.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.containers.len(), 1);
        let sc = spec.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.run_as_user, Some(1000));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.unwrap().drop.unwrap(), vec!["ALL".to_owned()]);
        assert_eq!(spec.security_context.unwrap().fs_group, Some(1000));
    }
}
