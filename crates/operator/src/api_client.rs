//! The operator's Kubernetes client: kube's default stack plus a layer that counts every request
//! by verb and resource (`omjob_api_requests_total`), so the API cost of a lifecycle is visible
//! in production and measurable in the benchmark.

use std::sync::Arc;

use http::{Method, Request};
use kube::client::{Body, ClientBuilder};

use crate::metrics::Metrics;

/// A client for `config` whose requests are counted in `metrics`.
///
/// # Errors
/// The configuration cannot produce an HTTP client (bad TLS material, unsupported auth).
pub fn counted(config: kube::Config, metrics: Arc<Metrics>) -> kube::Result<kube::Client> {
    let count = tower::util::MapRequestLayer::new(move |req: Request<Body>| {
        let (verb, resource) = classify(req.method(), req.uri().path(), req.uri().query());
        metrics.api_request(verb, resource);
        req
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}

/// The Kubernetes verb and resource (`pods`, `omjobs/status`) of a request, from its method and
/// path as the API server's request-info resolver reads them. Paths outside the resource API
/// (`/version`, `/healthz`) are counted under `nonresource`.
#[must_use]
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/{group}/{version}/...
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] | ["apis", _, _version, rest @ ..] => rest,
        _ => return (non_resource_verb(method), "nonresource".to_owned()),
    };
    // namespaces/{ns}/{resource}/... is namespaced; `namespaces` and `namespaces/{ns}` alone are
    // the namespace resource itself.
    let rest = match rest {
        ["namespaces", _ns, resource, tail @ ..] => (*resource, tail),
        [resource, tail @ ..] => (*resource, tail),
        [] => return (non_resource_verb(method), "nonresource".to_owned()),
    };
    let (resource, tail) = rest;
    let has_name = !tail.is_empty();
    let resource = match tail.get(1) {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if has_name => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if has_name => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

fn non_resource_verb(method: &Method) -> &'static str {
    if *method == Method::GET { "get" } else { "other" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_as_the_api_server_does() {
        let cases = [
            (Method::GET, "/api/v1/namespaces/ns/pods", None, "list", "pods"),
            (
                Method::GET,
                "/api/v1/namespaces/ns/pods",
                Some("labelSelector=a%3Db&watch=true&resourceVersion=5"),
                "watch",
                "pods",
            ),
            (Method::GET, "/api/v1/pods", Some("watch=true"), "watch", "pods"),
            (
                Method::GET,
                "/api/v1/namespaces/ns/pods/p-main",
                None,
                "get",
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/ns/pods/p-main/log",
                Some("tailLines=5"),
                "get",
                "pods/log",
            ),
            (Method::POST, "/api/v1/namespaces/ns/pods", None, "create", "pods"),
            (
                Method::DELETE,
                "/api/v1/namespaces/ns/pods/p",
                None,
                "delete",
                "pods",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/ns/pods",
                None,
                "deletecollection",
                "pods",
            ),
            (
                Method::PATCH,
                "/apis/pipelines.openmetadata.org/v1/namespaces/ns/omjobs/j/status",
                Some("fieldManager=omjob-operator&force=true"),
                "patch",
                "omjobs/status",
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
                None,
                "update",
                "leases",
            ),
            (Method::GET, "/api/v1/nodes/n1", None, "get", "nodes"),
            (Method::GET, "/api/v1/namespaces/ns", None, "get", "namespaces"),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/ns/events",
                None,
                "create",
                "events",
            ),
            (Method::GET, "/version", None, "get", "nonresource"),
            (Method::GET, "/apis", None, "get", "nonresource"),
        ];
        for (method, path, query, verb, resource) in cases {
            assert_eq!(
                classify(&method, path, query),
                (verb, resource.to_owned()),
                "{method} {path}?{query:?}"
            );
        }
    }
}
