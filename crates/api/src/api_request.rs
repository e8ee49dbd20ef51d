//! Which Kubernetes verb and resource an HTTP request to the API server is, read from its method
//! and path as the API server's request-info resolver reads them. Both the operator and the
//! Katalog runtime count their API requests with it (`*_api_requests_total{verb,resource}`).

/// The Kubernetes verb and resource (`pods`, `omjobs/status`) of a request, from its HTTP method
/// (`GET`, upper case as on the wire), path and query. Paths outside the resource API
/// (`/version`, `/healthz`) are counted under `nonresource`.
#[must_use]
pub fn classify(method: &str, path: &str, query: Option<&str>) -> (&'static str, String) {
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
    let verb = match method {
        "GET" if watch => "watch",
        "GET" if has_name => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if has_name => "delete",
        "DELETE" => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

fn non_resource_verb(method: &str) -> &'static str {
    if method == "GET" { "get" } else { "other" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_as_the_api_server_does() {
        let cases = [
            ("GET", "/api/v1/namespaces/ns/pods", None, "list", "pods"),
            (
                "GET",
                "/api/v1/namespaces/ns/pods",
                Some("labelSelector=a%3Db&watch=true&resourceVersion=5"),
                "watch",
                "pods",
            ),
            ("GET", "/api/v1/pods", Some("watch=true"), "watch", "pods"),
            ("GET", "/api/v1/namespaces/ns/pods/p-main", None, "get", "pods"),
            (
                "GET",
                "/api/v1/namespaces/ns/pods/p-main/log",
                Some("tailLines=5"),
                "get",
                "pods/log",
            ),
            ("POST", "/api/v1/namespaces/ns/pods", None, "create", "pods"),
            ("DELETE", "/api/v1/namespaces/ns/pods/p", None, "delete", "pods"),
            (
                "DELETE",
                "/api/v1/namespaces/ns/pods",
                None,
                "deletecollection",
                "pods",
            ),
            (
                "PATCH",
                "/apis/pipelines.openmetadata.org/v1/namespaces/ns/omjobs/j/status",
                Some("fieldManager=omjob-operator&force=true"),
                "patch",
                "omjobs/status",
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
                None,
                "update",
                "leases",
            ),
            ("GET", "/api/v1/nodes/n1", None, "get", "nodes"),
            ("GET", "/api/v1/namespaces/ns", None, "get", "namespaces"),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/ns/events",
                None,
                "create",
                "events",
            ),
            ("GET", "/version", None, "get", "nonresource"),
            ("GET", "/apis", None, "get", "nonresource"),
        ];
        for (method, path, query, verb, resource) in cases {
            assert_eq!(
                classify(method, path, query),
                (verb, resource.to_owned()),
                "{method} {path}?{query:?}"
            );
        }
    }
}
