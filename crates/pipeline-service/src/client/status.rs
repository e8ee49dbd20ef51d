//! Whether the service can work: the API server's version and each permission it needs.

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use omjob_api::OMJob;
use serde::Serialize;
use serde_json::json;

use super::PipelineClient;
use crate::{config::Mode, error::is_not_found};

/// Whether the service can do its work.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Whether the API server answered.
    pub reachable: bool,
    /// Its version (`gitVersion`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The namespace the service works in.
    pub namespace: String,
    /// `standard` or `operator`.
    #[schema(value_type = String)]
    pub mode: Mode,
    /// Permissions the service needs and lacks, as `verb group/resource`.
    pub missing_permissions: Vec<String>,
    /// Other problems, such as the OMJob CRDs missing in operator mode.
    pub problems: Vec<String>,
    /// A summary.
    pub message: String,
}

/// `(group, resource, verb)` the service needs in each mode; `deploy/pipeline-service/role.yaml`
/// grants exactly these (a test checks that status finds none missing under it).
fn permissions(mode: Mode) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut p = vec![
        ("", "configmaps", "get"),
        ("", "configmaps", "create"),
        ("", "configmaps", "update"),
        ("", "configmaps", "patch"),
        ("", "configmaps", "delete"),
        ("", "secrets", "get"),
        ("", "secrets", "create"),
        ("", "secrets", "update"),
        ("", "secrets", "patch"),
        ("", "secrets", "delete"),
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods/log", "get"),
        ("", "events", "list"),
    ];
    let (group, runs, crons) = match mode {
        Mode::Standard => ("batch", "jobs", "cronjobs"),
        Mode::Operator => (omjob_api::GROUP, "omjobs", "cronomjobs"),
    };
    for verb in ["get", "list", "create", "delete"] {
        p.push((group, runs, verb));
    }
    for verb in ["get", "create", "update", "patch", "delete"] {
        p.push((group, crons, verb));
    }
    p
}

impl PipelineClient {
    /// Whether the service can reach Kubernetes, its version, which needed permissions are
    /// missing (asked with SelfSubjectAccessReviews, which every authenticated user may create)
    /// and, in operator mode, whether the OMJob CRDs are installed.
    pub async fn status(&self) -> ServiceStatus {
        let ns = self.ns().to_owned();
        let sa = self.config.service_account_name.clone();
        let mode = self.config.mode;
        let version = match self.retry(|| self.client.apiserver_version()).await {
            Ok(v) => v.git_version,
            Err(e) => {
                return ServiceStatus {
                    reachable: false,
                    version: None,
                    namespace: ns.clone(),
                    mode,
                    missing_permissions: Vec::new(),
                    problems: Vec::new(),
                    message: format!("Failed to connect to Kubernetes API (namespace: {ns}): {e}"),
                };
            }
        };
        let reviews: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let mut missing = Vec::new();
        for (group, resource, verb) in permissions(mode) {
            let (resource, sub) = resource
                .split_once('/')
                .map_or((resource, None), |(r, s)| (r, Some(s)));
            let review: SelfSubjectAccessReview = match serde_json::from_value(json!({
                "spec": {"resourceAttributes": {"namespace": ns, "group": group, "resource": resource,
                                                "subresource": sub, "verb": verb}}
            })) {
                Ok(r) => r,
                Err(_) => continue,
            };
            let shown = format!(
                "{verb} {}{resource}{}",
                if group.is_empty() {
                    String::new()
                } else {
                    format!("{group}/")
                },
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            );
            let pp = PostParams::default();
            match self.retry(|| reviews.create(&pp, &review)).await {
                Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
                _ => missing.push(shown),
            }
        }
        let mut problems = Vec::new();
        // Both CRDs ship together; the service may list OMJobs (not CronOMJobs), so ask that one.
        if mode == Mode::Operator {
            let lp = ListParams::default().limit(1);
            let omjobs = self.api::<OMJob>();
            if let Err(e) = self.retry(|| omjobs.list(&lp)).await
                && is_not_found(&e)
            {
                problems.push(format!(
                    "the OMJob CRDs (omjobs.{0}, cronomjobs.{0}) are not installed: apply deploy/crds/omjob-crds.yaml",
                    omjob_api::GROUP
                ));
            }
        }
        let message = if !problems.is_empty() {
            format!(
                "Kubernetes is available but operator mode cannot work: {}",
                problems.join("; ")
            )
        } else if missing.is_empty() {
            format!(
                "Kubernetes pipeline client is available in namespace '{ns}' (pods run as service account '{sa}')"
            )
        } else {
            format!(
                "Kubernetes is available but the service lacks permissions in namespace '{ns}': {}. Check the \
                 Role/RoleBinding (deploy/pipeline-service/role.yaml)",
                missing.join(", ")
            )
        };
        ServiceStatus {
            reachable: true,
            version: Some(version),
            namespace: ns,
            mode,
            missing_permissions: missing,
            problems,
            message,
        }
    }
}
