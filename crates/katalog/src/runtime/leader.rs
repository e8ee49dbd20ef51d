//! Leader election between replicas, so only one writes: a `coordination.k8s.io` Lease named
//! `orkestra-runtime-<Katalog name>` in `ORKESTRA_NAMESPACE`, held through kube-lease-manager.
//! The leader runs the controllers; a standby serves the HTTP API (`/katalog` shows
//! `leader.role: standby`, every entry `not started`) and starts them when it gains the lease;
//! a leader that loses it stops them at once (the tasks are aborted, not drained, since another
//! replica may already be writing).
//!
//! Timings: the lease lasts `LEASE_DURATION`; the holder renews it `LEASE_DURATION −
//! RENEW_DEADLINE` before it expires (kube-lease-manager's grace period). `RETRY_PERIOD` is read
//! but kube-lease-manager paces a standby's polling itself.
//!
//! Also here: the request-counting client every runtime request goes through.

use std::{pin::Pin, sync::Arc, time::Duration};

use http::Request;
use kube::{Client, client::Body};
use kube_lease_manager::LeaseManagerBuilder;

use super::{
    Shutdown,
    config::LeaseTimings,
    controller::Shared,
    metrics::Metrics,
    run_entries,
    state::{Role, State},
};

/// Lease names are DNS subdomains; 63 keeps them valid labels too.
const MAX_NAME: usize = 63;

/// The Lease a replica competes for.
#[derive(Debug, Clone)]
pub struct Lease {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub timings: LeaseTimings,
}

/// `orkestra-runtime-<katalog>`, cut to a valid name.
pub fn lease_name(katalog: &str) -> String {
    let mut name = format!("orkestra-runtime-{katalog}");
    name.truncate(MAX_NAME);
    name.trim_end_matches('-').to_owned()
}

/// `client` with every request counted in `katalog_api_requests_total{verb,resource}`.
pub fn counted(client: Client, metrics: Arc<Metrics>) -> Client {
    let namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |req: Request<Body>| {
        let (verb, resource) =
            omjob_api::api_request::classify(req.method().as_str(), req.uri().path(), req.uri().query());
        metrics.api_request(verb, resource);
        let client = client.clone();
        async move { client.send(req).await }
    });
    Client::new(service, namespace)
}

fn seconds(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// Competes for `lease` until `shutdown`, running the controllers while this replica holds it.
pub async fn lead(state: &State, shared: &Shared, lease: Lease, shutdown: Shutdown) {
    state.set_role(Role::Standby);
    state.set_ready();
    let duration = seconds(lease.timings.duration);
    // Config guarantees renew_deadline < duration, so the grace is at least 1 s and below it.
    let grace = duration
        .saturating_sub(seconds(lease.timings.renew_deadline))
        .clamp(1, duration.saturating_sub(1).max(1));
    loop {
        let manager = LeaseManagerBuilder::new(shared.client.clone(), &lease.name)
            .with_namespace(&lease.namespace)
            .with_identity(&lease.identity)
            // Grace first: each setter checks itself against the other's current value.
            .with_grace(grace)
            .with_duration(duration)
            .build()
            .await;
        let manager = match manager {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(lease = %lease.name, namespace = %lease.namespace, error = %e,
                    "cannot use the leader-election lease; retrying");
                tokio::select! {
                    () = tokio::time::sleep(lease.timings.retry_period) => continue,
                    () = shutdown.clone() => return,
                }
            }
        };
        let (mut leading, watch) = manager.watch().await;
        let mut running: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
        let mut stopping = false;
        loop {
            let leader = *leading.borrow_and_update();
            match (leader, running.is_some()) {
                (true, false) => {
                    tracing::info!(identity = %lease.identity, lease = %lease.name, "became the leader; starting the controllers");
                    state.set_role(Role::Leader);
                    running = Some(Box::pin(run_entries(state, shared, shutdown.clone())));
                }
                (false, true) => {
                    tracing::warn!(identity = %lease.identity, lease = %lease.name, "lost the lease; stopping the controllers");
                    stop(state, &mut running);
                }
                _ => {}
            }
            let entries = async {
                match running.as_mut() {
                    Some(r) => r.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = leading.changed() => {
                    if changed.is_err() {
                        tracing::warn!(lease = %lease.name, "the lease watch ended; standing by and retrying");
                        stop(state, &mut running);
                        break;
                    }
                }
                () = entries => return,
                () = shutdown.clone() => {
                    stopping = true;
                    break;
                }
            }
        }
        if stopping {
            // Dropping the receiver makes the watch task release the Lease, so a standby takes
            // over at once; wait for that (bounded) before the process exits.
            drop(leading);
            drop(running);
            let _ = tokio::time::timeout(lease.timings.renew_deadline, watch).await;
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(lease.timings.retry_period) => {}
            () = shutdown.clone() => return,
        }
    }
}

/// Aborts the controllers (dropping the future drops their JoinSet) and marks every entry
/// not started.
fn stop(state: &State, running: &mut Option<Pin<Box<dyn Future<Output = ()> + Send>>>) {
    *running = None;
    state.set_role(Role::Standby);
    for l in state.entries() {
        l.set_caches(None);
        l.health.stop(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_named_for_the_katalog_and_stays_a_valid_name() {
        assert_eq!(lease_name("data-platform"), "orkestra-runtime-data-platform");
        let long = lease_name(&"x".repeat(80));
        assert_eq!(long.len(), 63);
    }
}
