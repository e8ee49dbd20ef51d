//! `/ui/`: every entry of every loaded Katalog, from `GET /katalog`'s summary, with its state,
//! workers, queue depth and resource count. The panel crate makes a degraded entry stand out.

use omjob_panel::{Dashboard, dashboard::CrdSummary as Row};

use super::{kind_of, panel_state};
use crate::runtime::views::KatalogSummary;

/// The dashboard for `summary`; `uptime` is the process's (the probes' `uptime`).
#[must_use]
pub fn page(summary: &KatalogSummary, uptime: &str) -> Dashboard {
    let operator = if summary.katalogs.is_empty() {
        summary.name.clone()
    } else {
        summary.katalogs.join(", ")
    };
    Dashboard {
        operator,
        version: summary.version.clone(),
        uptime: Some(uptime.to_owned()),
        crds: summary
            .crds
            .iter()
            .map(|c| {
                let (state, reason) = panel_state(c.state, &c.last_error);
                Row {
                    name: c.name.clone(),
                    kind: kind_of(&c.gvk).to_owned(),
                    state,
                    reason,
                    workers: Some(if c.started {
                        c.workers.to_string()
                    } else {
                        format!("0/{} (stopped)", c.workers)
                    }),
                    queue: Some(format!("{}/{}", c.queue_depth, c.max_queue_depth)),
                    resources: u64::try_from(c.resource_count).ok(),
                }
            })
            .collect(),
    }
}
