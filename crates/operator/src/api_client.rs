//! The operator's Kubernetes client: kube's default stack plus a layer that counts every request
//! by verb and resource (`omjob_api_requests_total`), so the API cost of a lifecycle is visible
//! in production and measurable in the benchmark.

use std::sync::Arc;

use http::Request;
use kube::client::{Body, ClientBuilder};
/// Shared with the Katalog runtime, which counts its requests the same way.
pub use omjob_api::api_request::classify;

use crate::metrics::Metrics;

/// A client for `config` whose requests are counted in `metrics`.
///
/// # Errors
/// The configuration cannot produce an HTTP client (bad TLS material, unsupported auth).
pub fn counted(config: kube::Config, metrics: Arc<Metrics>) -> kube::Result<kube::Client> {
    let count = tower::util::MapRequestLayer::new(move |req: Request<Body>| {
        let (verb, resource) = classify(req.method().as_str(), req.uri().path(), req.uri().query());
        metrics.api_request(verb, resource);
        req
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}
