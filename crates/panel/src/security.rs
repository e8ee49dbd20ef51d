//! The panel's security headers. The Content-Security-Policy allows scripts and styles from the
//! panel's own origin only: no `'unsafe-inline'`, so even if a value ever slipped past escaping,
//! an injected `<script>` or `onerror=` handler would not run. Pages render no inline script or
//! style for the same reason, and are never framed, sniffed or sent with a referrer.

use axum::{Router, middleware, response::Response};
use http::{HeaderMap, HeaderName, HeaderValue, header};

/// The policy: everything from `'self'` at most, plugins and `<base>` off, no framing, no forms.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     form-action 'none'";

/// The headers every panel response carries, as name/value pairs.
#[must_use]
pub fn headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

/// Sets the security headers on `map`, replacing any earlier value.
pub fn apply(map: &mut HeaderMap) {
    for (name, value) in headers() {
        map.insert(name, value);
    }
}

async fn add_headers(mut response: Response) -> Response {
    apply(response.headers_mut());
    response
}

/// `router` with the security headers added to every response it sends (404s included).
pub fn layer<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(middleware::map_response(add_headers))
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, routing::get};
    use tower::ServiceExt as _;

    use super::*;

    #[test]
    fn the_policy_allows_nothing_inline() {
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
        for directive in [
            "script-src 'self'",
            "style-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
        }
    }

    #[tokio::test]
    async fn every_response_of_a_layered_router_carries_the_headers() {
        let app = layer(Router::new().route("/x", get(|| async { "x" })));
        for path in ["/x", "/missing"] {
            let response = app
                .clone()
                .oneshot(http::Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let h = response.headers();
            assert_eq!(
                h[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY,
                "{path}"
            );
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        }
    }
}
