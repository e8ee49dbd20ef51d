//! The operator process: configuration, logging, the HTTP endpoints, leader election and the
//! controllers, started and stopped in the Java operator's order.
//!
//! Startup: health server first (so probes answer while the rest starts), then the client, the
//! leader election, the controllers, and only then `ready`. Shutdown (SIGTERM, Ctrl-C, or lost
//! leadership): `ready` drops, the controllers finish in-flight reconciles, the Lease is released
//! so a standby takes over at once, and the HTTP server stops last.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use futures::FutureExt as _;
use tokio::sync::watch;

use crate::{
    api_client,
    clock::SystemClock,
    config::{LogFormat, OperatorConfig, WatchNamespaces},
    http::{self, HttpState},
    leader::{LeaderElector, LeaseTimings},
    metrics::Metrics,
    omjob::{Context, decide::Settings},
    telemetry,
};

/// Why the controllers stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Signal,
    LeadershipLost,
}

async fn termination_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Runs the operator until it is told to stop.
///
/// # Errors
/// Invalid configuration, no reachable API server, or a port that cannot be bound.
pub async fn run() -> anyhow::Result<()> {
    let config = OperatorConfig::from_env()?;
    telemetry::init(&config.log_filter, config.log_format == LogFormat::Json)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        watch_namespaces = %config.watch_namespaces,
        threads = config.reconciliation_threads,
        "starting omjob-operator"
    );

    let metrics = Arc::new(Metrics::new());
    let kube_config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration (in-cluster service account or KUBECONFIG)")?;
    let client =
        api_client::counted(kube_config, metrics.clone()).context("failed to build a Kubernetes client")?;
    let ready = Arc::new(AtomicBool::new(false));
    let leader = Arc::new(AtomicBool::new(!config.leader_election));
    let (stop_http, http_stop) = watch::channel(false);
    let http_state = HttpState::new(
        client.clone(),
        &config,
        metrics.clone(),
        ready.clone(),
        leader.clone(),
    );
    let leader_election = http_state.leader_election.clone();
    metrics.set_leader_election(config.leader_election);
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.health_check_port));
    let mut http_stop_rx = http_stop.clone();
    let http_task = tokio::spawn(http::serve(addr, http_state, async move {
        let _ = http_stop_rx.wait_for(|s| *s).await;
    }));

    let guard = if config.leader_election {
        let elector = LeaderElector::new(
            client.clone(),
            &config.operator_namespace,
            &config.lease_name,
            &config.identity,
            LeaseTimings::default(),
        );
        tracing::info!(lease = %config.lease_name, identity = %config.identity, "waiting for leadership");
        let g = tokio::select! {
            g = elector.acquire() => g,
            () = termination_signal() => {
                let _ = stop_http.send(true);
                return Ok(());
            }
        };
        match g {
            Ok(g) => {
                leader.store(true, Ordering::SeqCst);
                tracing::info!("leading");
                Some(g)
            }
            // OpenMetadata's chart grants no Lease permission and cannot set LEADER_ELECTION,
            // and runs one replica: exiting would crash-loop, so run unelected instead. The
            // deterministic pod names keep the exit handler exactly-once even if a second
            // replica were started; leadership only saves the duplicate work.
            Err(e) if e.is_forbidden() => {
                tracing::warn!(
                    lease = %config.lease_name,
                    namespace = %config.operator_namespace,
                    error = %e,
                    "the leader Lease is forbidden: running WITHOUT leader election; run one replica only, \
                     or grant get/create/update on coordination.k8s.io leases in OPERATOR_NAMESPACE"
                );
                *leader_election
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = http::LEADER_ELECTION_FORBIDDEN;
                metrics.set_leader_election(false);
                leader.store(true, Ordering::SeqCst);
                None
            }
            Err(e) => return Err(e).context("leader election failed"),
        }
    } else {
        None
    };

    // Probed once, so each missing permission is logged once with its designed behaviour.
    let capabilities = crate::capabilities::probe(&client).await;
    let settings = Settings {
        capabilities: capabilities.clone(),
        pending_timeout: config.main_pod_pending_timeout,
        node_lost_grace: config.node_lost_grace,
        max_exit_attempts: i32::try_from(config.exit_handler_max_attempts).unwrap_or(i32::MAX),
        safety_requeue: config.polling_interval.max(Duration::from_secs(10)) * 30,
        requeue_cap: config.requeue_delay,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics: metrics.clone(),
        clock: Arc::new(SystemClock),
        settings,
    });
    let namespaces = match &config.watch_namespaces {
        WatchNamespaces::All => None,
        WatchNamespaces::Only(list) => Some(list.clone()),
    };

    let (stop_tx, stop_rx) = watch::channel(None::<Stop>);
    let lost = guard.as_ref().map(|g| g.lost().boxed());
    let stopper = stop_tx.clone();
    tokio::spawn(async move {
        let why = match lost {
            Some(lost) => tokio::select! {
                () = termination_signal() => Stop::Signal,
                () = lost => Stop::LeadershipLost,
            },
            None => {
                termination_signal().await;
                Stop::Signal
            }
        };
        let _ = stopper.send(Some(why));
    });
    let mut shutdown_rx = stop_rx.clone();
    let shutdown = async move {
        let _ = shutdown_rx.wait_for(Option::is_some).await;
    }
    .shared();

    // Not ready, and no controller started, until both CRDs are served and listable: a
    // missing CRD or permission is then said once, plainly, instead of as endless watch errors.
    let scopes = crate::controller::Scope::all(namespaces.as_deref());
    tokio::select! {
        () = crate::controller::crds::wait_until_served(&client, &scopes, crate::controller::CRD_CHECK_INTERVAL) => {}
        () = shutdown.clone() => {}
    }
    ready.store(true, Ordering::SeqCst);
    metrics.set_ready(true);
    tracing::info!("ready");
    let cron_ctx = crate::cronomjob::Context {
        client: ctx.client.clone(),
        metrics: metrics.clone(),
        clock: ctx.clock.clone(),
        settings: crate::cronomjob::decide::Settings {
            capabilities,
            requeue_cap: config.requeue_delay,
            ..crate::cronomjob::decide::Settings::default()
        },
    };
    if shutdown.clone().now_or_never().is_none() {
        crate::controller::manager::run(
            Some(ctx),
            Some(cron_ctx),
            namespaces,
            config.reconciliation_threads,
            shutdown,
        )
        .await;
    }

    ready.store(false, Ordering::SeqCst);
    metrics.set_ready(false);
    let why = *stop_rx.borrow();
    if let Some(g) = guard
        && let Err(e) = g.release().await
    {
        tracing::warn!(error = %e, "failed to release the leader lease");
    }
    let _ = stop_http.send(true);
    if let Ok(Err(e)) = http_task.await {
        tracing::warn!(error = %e, "HTTP server error");
    }
    tracing::info!(reason = ?why, "stopped");
    if why == Some(Stop::LeadershipLost) {
        // Another replica leads now; exit non-zero so that the pod restarts as a standby.
        anyhow::bail!("leadership lost");
    }
    Ok(())
}
