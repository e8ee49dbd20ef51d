//! The start-up check that the OMJob and CronOMJob CRDs are served and listable in every
//! watched scope. Without it a missing CRD or a missing permission only shows as watch errors
//! retried forever; with it the operator says once, at ERROR, what is missing and how to fix
//! it, stays not-ready, and starts its controllers as soon as the cluster is right.

use std::time::Duration;

use kube::{Api, Client, Resource, api::ListParams, core::NamespaceResourceScope};
use omjob_api::{CronOMJob, OMJob};
use serde::de::DeserializeOwned;

use super::Scope;

/// Why a kind cannot be watched yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The API server does not serve the resource: its CRD is not installed.
    NotInstalled {
        /// `omjobs.pipelines.openmetadata.org`.
        crd: String,
    },
    /// The operator's service account may not list the resource in a scope.
    Forbidden {
        /// `omjobs.pipelines.openmetadata.org`.
        crd: String,
        /// Where.
        scope: String,
    },
    /// The API server could not be asked (unreachable, timeout, 5xx).
    Unknown {
        /// `omjobs.pipelines.openmetadata.org`.
        crd: String,
        /// The client's error.
        error: String,
    },
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInstalled { crd } => write!(
                f,
                "the CRD {crd} is not installed; install it with `omjob-operator crds | kubectl apply -f -` \
                 (or `kubectl apply -k deploy/crds`, or OpenMetadata's Helm chart)"
            ),
            Self::Forbidden { crd, scope } => write!(
                f,
                "listing {crd} in {scope} is forbidden; grant get, list and watch on it to the operator's service account \
                 (deploy/rbac/clusterrole.yaml has the full role)"
            ),
            Self::Unknown { crd, error } => write!(f, "could not check that {crd} is served: {error}"),
        }
    }
}

/// `plural.group` of `K`.
fn crd_name<K: Resource<DynamicType = ()>>() -> String {
    format!("{}.{}", K::plural(&()), K::group(&()))
}

/// Lists at most one `K` in `scope` (metadata only), which needs exactly what the watch needs.
async fn check<K>(client: &Client, scope: &Scope) -> Result<(), Missing>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = scope.api(client);
    let crd = crd_name::<K>();
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(Missing::NotInstalled { crd }),
        Err(kube::Error::Api(s)) if s.code == 403 => Err(Missing::Forbidden {
            crd,
            scope: scope.to_string(),
        }),
        Err(e) => Err(Missing::Unknown {
            crd,
            error: e.to_string(),
        }),
    }
}

/// What is missing for the controllers to watch `scopes`, or nothing.
pub async fn missing(client: &Client, scopes: &[Scope]) -> Vec<Missing> {
    let mut found = Vec::new();
    for scope in scopes {
        for result in [
            check::<OMJob>(client, scope).await,
            check::<CronOMJob>(client, scope).await,
        ] {
            if let Err(m) = result
                && !found.contains(&m)
            {
                found.push(m);
            }
        }
    }
    found
}

/// Waits until both CRDs are served and listable in every scope. Logs what is missing at
/// ERROR the first time, then at WARN once a minute; returns at once when all is well.
pub async fn wait_until_served(client: &Client, scopes: &[Scope], interval: Duration) {
    let mut checks: u64 = 0;
    let per_minute = (60 / interval.as_secs().max(1)).max(1);
    loop {
        let missing = missing(client, scopes).await;
        if missing.is_empty() {
            if checks > 0 {
                tracing::info!("the OMJob and CronOMJob CRDs are served now; starting the controllers");
            }
            return;
        }
        for m in &missing {
            if checks == 0 {
                tracing::error!(problem = %m, "cannot start the controllers yet; checking again every {} s", interval.as_secs());
            } else if checks.is_multiple_of(per_minute) {
                tracing::warn!(problem = %m, "still waiting to start the controllers");
            }
        }
        checks += 1;
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_crd_and_say_how_to_fix_it() {
        let m = Missing::NotInstalled {
            crd: crd_name::<OMJob>(),
        };
        let text = m.to_string();
        assert!(text.contains("omjobs.pipelines.openmetadata.org"), "{text}");
        assert!(
            text.contains("omjob-operator crds | kubectl apply -f -"),
            "{text}"
        );
        let f = Missing::Forbidden {
            crd: crd_name::<CronOMJob>(),
            scope: Scope::Namespace("ingest".into()).to_string(),
        };
        let text = f.to_string();
        assert!(text.contains("cronomjobs.pipelines.openmetadata.org"), "{text}");
        assert!(text.contains("namespace ingest"), "{text}");
        assert!(text.contains("list"), "{text}");
    }
}
