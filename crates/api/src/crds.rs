//! The CustomResourceDefinitions of both resources, as objects and as one YAML document stream.
//!
//! This is the source of `deploy/crds/omjob-crds.yaml`; a test in the operator crate fails when
//! the committed file drifts from what is rendered here.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{cronomjob::CronOMJob, omjob::OMJob};

/// Why the CRDs could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum CrdRenderError {
    /// A CRD could not be serialised to YAML.
    #[error("failed to serialise CRD {name} to YAML")]
    Serialize {
        /// Name of the CRD.
        name: String,
        /// The serialiser's error.
        #[source]
        source: serde_yaml_ng::Error,
    },
}

/// Both CRDs: `omjobs.pipelines.openmetadata.org`, then `cronomjobs.pipelines.openmetadata.org`.
#[must_use]
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![OMJob::crd(), CronOMJob::crd()]
}

/// The comment that opens the rendered YAML.
pub const YAML_HEADER: &str = "# Generated from the omjob-api types by `omjob-operator crds`. Do not edit by hand:\n\
                               # run `cargo run -p omjob-operator -- crds > deploy/crds/omjob-crds.yaml`.\n";

/// Both CRDs as one multi-document YAML string, ready for `kubectl apply -f -`: the
/// [`YAML_HEADER`] comment, then each CRD preceded by `---`.
///
/// # Guarantees
///
/// The output is deterministic: the same types always render the same bytes.
///
/// # Errors
///
/// [`CrdRenderError::Serialize`] if a CRD cannot be serialised.
pub fn render_yaml() -> Result<String, CrdRenderError> {
    let mut out = String::from(YAML_HEADER);
    for crd in all() {
        let yaml = serde_yaml_ng::to_string(&crd).map_err(|source| CrdRenderError::Serialize {
            name: crd.metadata.name.clone().unwrap_or_default(),
            source,
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}
