//! What the testbed's API server counted: its writes from every client (controllers, scheduler,
//! simulated nodes, the operator, the bench), from its own `apiserver_request_total`. The
//! throughput bursts compare the OMJob operator with the Job controller on one API server, and
//! what a lifecycle costs that server, whoever sends it, is what bounds both.

use std::collections::BTreeMap;

use anyhow::Context as _;

use super::operator_process::samples;

/// The verbs that change stored state, as `apiserver_request_total` names them.
const WRITES: [&str; 5] = ["POST", "PUT", "PATCH", "DELETE", "APPLY"];

/// Writes the API server has answered so far, by resource (`pods`, `pods/binding` as
/// `pods/binding`, `events`, ...).
///
/// # Errors
/// When the scrape fails.
pub(crate) async fn writes(client: &kube::Client) -> anyhow::Result<BTreeMap<String, f64>> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .context("building GET /metrics")?;
    let text = client
        .request_text(request)
        .await
        .context("reading the API server's /metrics")?;
    Ok(writes_in(&text))
}

/// The write counts in a `/metrics` text, by resource (with its subresource, if any).
fn writes_in(text: &str) -> BTreeMap<String, f64> {
    let mut by_resource = BTreeMap::new();
    for s in samples(text, "apiserver_request_total") {
        if !s.labels.get("verb").is_some_and(|v| WRITES.contains(&v.as_str())) {
            continue;
        }
        let resource = s.labels.get("resource").cloned().unwrap_or_default();
        let key = match s.labels.get("subresource").filter(|s| !s.is_empty()) {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource,
        };
        *by_resource.entry(key).or_insert(0.0) += s.value;
    }
    by_resource
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn writes_are_summed_by_resource_and_reads_left_out() {
        let text = "# TYPE apiserver_request_total counter\n\
            apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 10\n\
            apiserver_request_total{code=\"409\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 2\n\
            apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"binding\",verb=\"POST\",version=\"v1\"} 10\n\
            apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1\"} 30\n\
            apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 99\n\
            apiserver_request_total{code=\"0\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"pods\",scope=\"namespace\",subresource=\"\",verb=\"WATCH\",version=\"v1\"} 99\n";
        let w = writes_in(text);
        assert_eq!(w.get("pods"), Some(&12.0));
        assert_eq!(w.get("pods/binding"), Some(&10.0));
        assert_eq!(w.get("pods/status"), Some(&30.0));
        assert_eq!(w.len(), 3, "{w:?}");
    }
}
