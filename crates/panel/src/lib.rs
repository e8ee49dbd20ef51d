//! The control panel: read-only HTML pages about the CRDs a process serves and their instances.
//!
//! This crate knows nothing about Kubernetes clients. Each page is a plain model struct that the
//! serving process fills from what it knows (the OMJob operator from its config and its API reads,
//! the Katalog runtime from its entries, health and RBAC info), and a renderer that turns the
//! model into HTML with `maud`, which escapes every interpolated value. So a value read from a
//! resource can only ever appear as text, and the renderers can be unit-tested without a cluster.
//!
//! | Module | Concept |
//! |---|---|
//! | [`layout`] | the page shell: head, top bar, breadcrumbs, `<main>` |
//! | [`dashboard`] | `/ui/`: every CRD with state, workers, queue and resource counts |
//! | [`crd_page`] | `/ui/crd/{entry}`: the per-CRD page in seed 004's sections and order |
//! | [`instance`] | `/ui/crd/{entry}/cr` and `/ui/crd/{entry}/cr/{ns}/{name}` |
//! | [`timeline`] | an SVG timeline of stages or runs, coloured by outcome |
//! | [`slots`] | a schedule's next slots |
//! | [`badge`] | states and tones shared by the pages |
//! | [`assets`] | the stylesheet, the live-refresh script and the icon under `/ui/static/` |
//! | [`security`] | the Content-Security-Policy and the other security headers |
//! | [`duration`] | Go-style duration strings (`52h44m37s`) |

pub mod assets;
pub mod badge;
pub mod crd_page;
pub mod dashboard;
pub mod duration;
pub mod instance;
pub mod layout;
pub mod security;
pub mod slots;
pub mod timeline;

pub use badge::{State, Tone};
pub use crd_page::CrdPage;
pub use dashboard::Dashboard;
pub use instance::{InstanceList, InstancePage};
pub use layout::Shell;
pub use slots::NextSlots;
pub use timeline::{Bar, Outcome, Timeline};

/// Where the panel is mounted.
pub const BASE: &str = "/ui";

/// A path segment made safe for a URL: everything but unreserved characters is percent-encoded,
/// so a name can never end a path, start a query or smuggle a scheme.
#[must_use]
pub fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/ui/crd/{entry}`.
#[must_use]
pub fn crd_href(entry: &str) -> String {
    format!("{BASE}/crd/{}", path_segment(entry))
}

/// `/ui/crd/{entry}/cr`.
#[must_use]
pub fn instances_href(entry: &str) -> String {
    format!("{}/cr", crd_href(entry))
}

/// `/ui/crd/{entry}/cr/{ns}/{name}`, or `/ui/crd/{entry}/cr/{name}` for a cluster-scoped CR.
#[must_use]
pub fn instance_href(entry: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!(
            "{}/{}/{}",
            instances_href(entry),
            path_segment(ns),
            path_segment(name)
        ),
        None => format!("{}/{}", instances_href(entry), path_segment(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_break_out_of_the_path() {
        assert_eq!(path_segment("data-job"), "data-job");
        assert_eq!(path_segment("a/b?c#d\"<"), "a%2Fb%3Fc%23d%22%3C");
        assert_eq!(
            instance_href("omjob", Some("ns"), "x/y"),
            "/ui/crd/omjob/cr/ns/x%2Fy"
        );
        assert_eq!(instance_href("node-pool", None, "p"), "/ui/crd/node-pool/cr/p");
    }
}
