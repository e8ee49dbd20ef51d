//! Whether the service can work: the API server's version and each permission it needs.

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use kube::{Api, api::PostParams};
use serde::Serialize;
use serde_json::json;

use super::{PipelineClient, workloads::Workloads};
use crate::config::Mode;

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

/// `(group, resource, verb)` the service needs with `workloads`;
/// `deploy/pipeline-service/role.yaml` grants exactly these for both modes (a test checks that
/// status finds none missing under it).
fn permissions(workloads: &dyn Workloads) -> Vec<(String, String, &'static str)> {
    let core = |resource: &str, verb| (String::new(), resource.to_owned(), verb);
    let mut p = Vec::new();
    for resource in ["configmaps", "secrets"] {
        for verb in ["get", "create", "patch", "delete"] {
            p.push(core(resource, verb));
        }
    }
    p.extend([
        core("pods", "get"),
        core("pods", "list"),
        core("pods/log", "get"),
        core("events", "list"),
    ]);
    let (runs, crons) = (&workloads.runs().resource, &workloads.schedules().resource);
    for verb in ["get", "list", "create", "delete"] {
        p.push((runs.group.clone(), runs.plural.clone(), verb));
    }
    for verb in ["get", "create", "patch", "delete"] {
        p.push((crons.group.clone(), crons.plural.clone(), verb));
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
        let client = self.cluster.client();
        let version = match client.apiserver_version().await {
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
        let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        let mut missing = Vec::new();
        for (group, resource, verb) in permissions(self.workloads.as_ref()) {
            let (resource, sub) = resource
                .split_once('/')
                .map_or((resource.as_str(), None), |(r, s)| (r, Some(s)));
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
            match reviews.create(&pp, &review).await {
                Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
                _ => missing.push(shown),
            }
        }
        let problems = self.workloads.problems().await;
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
