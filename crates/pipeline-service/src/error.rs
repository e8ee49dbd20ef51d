//! The service's error type: what failed, on which resource, and what to check.
//!
//! Kubernetes errors keep the reference's message shape (§6.1): `failed to <op> '<resource>' in
//! namespace '<ns>': HTTP <code> - <message>.<hint>`, with the hint chosen by status code, so a
//! caller sees both the API server's words and where to look next. Nothing here ever formats a
//! credential: errors name fields and resources, never their values.

use std::fmt;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kubernetes operation the service performs, named in [`Error::Kube`]'s message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `GET` of one object.
    Read,
    /// `GET` of a collection by label selector.
    List,
    /// `POST`: a run, its Secret, kept diagnostics.
    Create,
    /// Server-side apply of a deployed object.
    Apply,
    /// Merge patch of some fields (suspend, a run Secret's owner, the stored definition).
    Patch,
    /// `DELETE`.
    Delete,
    /// Reading a container's log.
    ReadLog,
}

impl Op {
    /// The verb, as the message says it.
    #[must_use]
    pub fn verb(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::List => "list",
            Self::Create => "create",
            Self::Apply => "apply",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::ReadLog => "read the log of",
        }
    }

    /// `<verb> <kind>`, the kind in the plural for a list: `create Job`, `list Pods`.
    #[must_use]
    pub fn on(self, kind: &str) -> String {
        match self {
            Self::List => format!("list {kind}s"),
            _ => format!("{} {kind}", self.verb()),
        }
    }
}

/// One problem with caller input, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Path of the offending field, e.g. `schedule` or `overrides.tolerations[0].effect`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Everything an operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input is invalid; every problem found is listed.
    #[error("invalid input: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// The pipeline (or run) does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `pipeline 'mysql'`.
        what: String,
    },
    /// A call to the Kubernetes API failed (after retries, for transient failures).
    #[error("failed to {} '{resource}' in namespace '{namespace}': {}", .op.on(.kind), describe(.source))]
    Kube {
        /// What was being done.
        op: Op,
        /// The kind of object, e.g. `Job`.
        kind: &'static str,
        /// The object, or the label selector of a list.
        resource: String,
        /// The namespace.
        namespace: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// An object the service built could not be turned into its API type (a bug, not bad input).
    #[error("failed to build {what}: {source}")]
    Build {
        /// What was being built.
        what: String,
        /// The serialisation error.
        #[source]
        source: serde_json::Error,
    },
    /// The workflow config could not be rendered into the config pods read (see
    /// [`crate::render`]); the message never quotes the config, which holds credentials.
    #[error("failed to render {what}: {source}")]
    Render {
        /// What was being rendered, e.g. `the workflow config of pipeline 'mysql'`.
        what: String,
        /// Why.
        #[source]
        source: crate::render::RenderError,
    },
    /// A deploy failed and what it had created was rolled back.
    #[error("{source} (rolled back: {})", if .rolled_back.is_empty() { "nothing to roll back".to_owned() } else { .rolled_back.join(", ") })]
    RolledBack {
        /// The error that stopped the deploy.
        #[source]
        source: Box<Error>,
        /// Objects deleted again, as `Kind/name`.
        rolled_back: Vec<String>,
    },
    /// No Kubernetes client could be built from the configuration.
    #[error("failed to connect to Kubernetes: {0}")]
    Connect(String),
    /// The local log spool could not be created or used.
    #[error("failed to use the local log spool: {0}")]
    Spool(#[source] std::io::Error),
    /// Some parts of a delete failed; the rest was done.
    #[error("pipeline deleted with errors: {}", .0.join("; "))]
    Partial(Vec<String>),
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `HTTP <code> - <message>.<hint>` for API errors; the error itself otherwise.
fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            format!("HTTP {} - {}.{}", status.code, status.message, hint(status.code))
        }
        other => format!("{other}. Check that the API server is reachable from the service"),
    }
}

/// The reference's hint for a status code (§6.1), with a leading space.
#[must_use]
pub fn hint(code: u16) -> &'static str {
    match code {
        401 => " Check the service account token and its RBAC binding.",
        403 => {
            " The service account lacks permissions for this resource; check the Role/RoleBinding \
             (deploy/pipeline-service/role.yaml)."
        }
        404 => " Check that the namespace and the resource exist.",
        409 => " Conflict: the resource was changed or created concurrently; retry.",
        422 => " The API server rejected the spec as invalid; check the pipeline's overrides.",
        429 => " The API server is rate limiting; retry later.",
        500..=599 => " The API server failed; check its health.",
        _ => "",
    }
}

impl Error {
    /// A Kubernetes error on `resource`, of kind `kind`, while doing `op`.
    pub fn kube(
        op: Op,
        kind: &'static str,
        resource: impl Into<String>,
        namespace: &str,
        source: kube::Error,
    ) -> Self {
        Self::Kube {
            op,
            kind,
            resource: resource.into(),
            namespace: namespace.to_owned(),
            source: Box::new(source),
        }
    }

    /// Input errors with one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    /// The HTTP status code of the API server's answer, if the error is one.
    #[must_use]
    pub fn api_code(&self) -> Option<u16> {
        match self {
            Self::Kube { source, .. } => match source.as_ref() {
                kube::Error::Api(s) => Some(s.code),
                _ => None,
            },
            Self::RolledBack { source, .. } => source.api_code(),
            _ => None,
        }
    }

    /// A short, fixed category: the `category` label of `pipelines_http_errors` (see
    /// [`crate::metrics`]), so failures can be counted without naming pipelines.
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::NotFound { .. } => "not_found",
            Self::Kube { .. } => "kubernetes",
            Self::Build { .. } => "build",
            Self::Render { .. } => "render",
            Self::RolledBack { .. } => "rolled_back",
            Self::Partial(_) => "partial",
            Self::Spool(_) => "spool",
            Self::Connect(_) => "connect",
        }
    }

    /// The hint for this error's status code, without the leading space, if there is one.
    #[must_use]
    pub fn hint(&self) -> Option<&'static str> {
        self.api_code().map(|c| hint(c).trim()).filter(|h| !h.is_empty())
    }
}

/// Whether `code` names a 404 from the API server.
#[must_use]
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure(message, "Reason").with_code(code),
        ))
    }

    #[test]
    fn kube_errors_say_what_where_and_what_to_check() {
        let e = Error::kube(
            Op::Create,
            "Job",
            "om-job-a-1234",
            "pipelines",
            api(403, "jobs is forbidden"),
        );
        assert_eq!(
            e.to_string(),
            "failed to create Job 'om-job-a-1234' in namespace 'pipelines': HTTP 403 - jobs is forbidden. \
             The service account lacks permissions for this resource; check the Role/RoleBinding \
             (deploy/pipeline-service/role.yaml)."
        );
        assert_eq!(e.api_code(), Some(403));
        assert!(e.hint().unwrap().contains("Role/RoleBinding"));
    }

    #[test]
    fn a_failed_list_names_the_kind_in_the_plural_and_the_selector() {
        let e = Error::kube(
            Op::List,
            "OMJob",
            "app.kubernetes.io/pipeline=a",
            "pipelines",
            api(500, "etcd timeout"),
        );
        assert!(
            e.to_string().starts_with(
                "failed to list OMJobs 'app.kubernetes.io/pipeline=a' in namespace 'pipelines': HTTP 500 - etcd timeout."
            ),
            "{e}"
        );
        assert_eq!(e.category(), "kubernetes");
        let e = Error::kube(Op::ReadLog, "Pod", "p", "ns", api(404, "gone"));
        assert!(
            e.to_string().starts_with("failed to read the log of Pod 'p'"),
            "{e}"
        );
    }

    #[test]
    fn every_reference_status_code_has_a_hint() {
        for code in [401, 403, 404, 409, 422, 429, 500, 503] {
            assert!(!hint(code).is_empty(), "{code}");
        }
        assert_eq!(hint(400), "");
    }

    #[test]
    fn invalid_input_lists_every_field() {
        let e = Error::Invalid(vec![
            FieldError::new("name", "bad"),
            FieldError::new("schedule", "worse"),
        ]);
        assert_eq!(e.to_string(), "invalid input: name: bad; schedule: worse");
    }
}
