//! Resolving a container's environment the way the kubelet does: plain values with `$(VAR)`
//! expansion, `envFrom`, ConfigMap and Secret key references, and downward-API field and resource
//! references.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

use super::quantity;

/// Why an environment could not be built; reported as `CreateContainerConfigError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A referenced ConfigMap or Secret, or one of its keys, does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// `configmap`, `secret`, `key ... in configmap`...
        kind: String,
        /// Object name.
        name: String,
    },
    /// The API server could not be asked.
    #[error("failed to read {kind} {name:?}: {message}")]
    Api {
        /// Object kind.
        kind: &'static str,
        /// Object name.
        name: String,
        /// The API error text.
        message: String,
    },
    /// A field path the simulated node does not support.
    #[error("unsupported fieldRef {0:?}")]
    FieldPath(String),
    /// A resource reference it cannot compute.
    #[error("invalid resourceFieldRef: {0}")]
    Resource(String),
}

/// Source of ConfigMaps and Secrets, so that the resolution logic can be unit-tested with maps.
pub trait Objects {
    /// `data` of a ConfigMap, `None` when it does not exist.
    fn config_map(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>, EnvError>> + Send;
    /// Decoded `data` of a Secret, `None` when it does not exist.
    fn secret(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>, EnvError>> + Send;
}

/// [`Objects`] read from the API server in one namespace.
#[derive(Clone)]
pub struct ApiObjects {
    config_maps: Api<ConfigMap>,
    secrets: Api<Secret>,
}

impl std::fmt::Debug for ApiObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiObjects")
    }
}

impl ApiObjects {
    /// Reads from `namespace`.
    #[must_use]
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            config_maps: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client, namespace),
        }
    }
}

impl Objects for ApiObjects {
    async fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        let cm = self.config_maps.get_opt(name).await.map_err(|e| EnvError::Api {
            kind: "configmap",
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        Ok(cm.map(|cm| cm.data.unwrap_or_default()))
    }

    async fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        let s = self.secrets.get_opt(name).await.map_err(|e| EnvError::Api {
            kind: "secret",
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        Ok(s.map(|s| {
            let mut out: BTreeMap<String, String> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            out.extend(s.string_data.unwrap_or_default());
            out
        }))
    }
}

/// Expands `$(NAME)` references to earlier variables; `$$` escapes a `$`; unknown references
/// are left as written (the kubelet's rules).
#[must_use]
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field_value(pod: &Pod, path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let map_key = |prefix: &str| -> Option<&str> { path.strip_prefix(prefix)?.strip_suffix("']") };
    if let Some(key) = map_key("metadata.labels['") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(key) = map_key("metadata.annotations['") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
            .unwrap_or_default());
    }
    let v = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        // The simulated node runs everything on loopback.
        "status.hostIP" | "status.podIP" | "status.podIPs" => Some("127.0.0.1".to_owned()),
        _ => return Err(EnvError::FieldPath(path.to_owned())),
    };
    let _ = status;
    Ok(v.unwrap_or_default())
}

fn resource_value(
    container: &Container,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) -> Result<String, EnvError> {
    let resources = container.resources.as_ref();
    let (kind, name) = r
        .resource
        .split_once('.')
        .ok_or_else(|| EnvError::Resource(r.resource.clone()))?;
    let map = match kind {
        "limits" => resources.and_then(|x| x.limits.as_ref()),
        "requests" => resources.and_then(|x| x.requests.as_ref()),
        _ => return Err(EnvError::Resource(r.resource.clone())),
    };
    // Unset limits default to the node's allocatable in the kubelet; the simulated node reports
    // "0" instead, which no test relies on.
    let raw = map.and_then(|m| m.get(name)).map_or("0", |q| q.0.as_str());
    let value = quantity::parse(raw).map_err(|e| EnvError::Resource(e.to_string()))?;
    let divisor = match &r.divisor {
        Some(d) => quantity::parse(&d.0).map_err(|e| EnvError::Resource(e.to_string()))?,
        None => 1.0,
    };
    if divisor <= 0.0 {
        return Err(EnvError::Resource(format!(
            "divisor of {} must be positive",
            r.resource
        )));
    }
    Ok(format!("{}", (value / divisor).ceil()))
}

/// Builds the environment of `container` in `pod`, in the kubelet's order: `envFrom` first, then
/// `env` (later entries win), expanding `$(VAR)` in plain values.
///
/// # Errors
/// A missing non-optional reference, an API failure, or an unsupported field path.
pub async fn resolve(
    pod: &Pod,
    container: &Container,
    objects: &impl Objects,
) -> Result<BTreeMap<String, String>, EnvError> {
    let mut vars = BTreeMap::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, kind, name, optional) = if let Some(cm) = &from.config_map_ref {
            (
                objects.config_map(&cm.name).await?,
                "configmap",
                cm.name.clone(),
                cm.optional.unwrap_or(false),
            )
        } else if let Some(s) = &from.secret_ref {
            (
                objects.secret(&s.name).await?,
                "secret",
                s.name.clone(),
                s.optional.unwrap_or(false),
            )
        } else {
            continue;
        };
        match data {
            Some(data) => vars.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v))),
            None if optional => {}
            None => {
                return Err(EnvError::NotFound {
                    kind: kind.to_owned(),
                    name,
                });
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => Some(expand(var.value.as_deref().unwrap_or(""), &vars)),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    key_ref(
                        objects.config_map(&r.name).await?,
                        "configmap",
                        &r.name,
                        &r.key,
                        r.optional,
                    )?
                } else if let Some(r) = &from.secret_key_ref {
                    key_ref(
                        objects.secret(&r.name).await?,
                        "secret",
                        &r.name,
                        &r.key,
                        r.optional,
                    )?
                } else if let Some(r) = &from.field_ref {
                    Some(field_value(pod, &r.field_path)?)
                } else if let Some(r) = &from.resource_field_ref {
                    Some(resource_value(container, r)?)
                } else {
                    // An empty valueFrom (OpenMetadata writes `valueFrom: {}`) contributes nothing.
                    None
                }
            }
        };
        if let Some(value) = value {
            vars.insert(var.name.clone(), value);
        }
    }
    Ok(vars)
}

fn key_ref(
    data: Option<BTreeMap<String, String>>,
    kind: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, EnvError> {
    let optional = optional.unwrap_or(false);
    match data {
        None if optional => Ok(None),
        None => Err(EnvError::NotFound {
            kind: kind.to_owned(),
            name: name.to_owned(),
        }),
        Some(mut d) => match d.remove(key) {
            Some(v) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(EnvError::NotFound {
                kind: format!("key {key:?} in {kind}"),
                name: name.to_owned(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector,
    };

    use super::*;

    struct Fake;
    impl Objects for Fake {
        async fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, EnvError> {
            Ok((name == "om-config").then(|| BTreeMap::from([("config".to_owned(), "yaml: 1".to_owned())])))
        }
        async fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, EnvError> {
            Ok((name == "om-secret").then(|| BTreeMap::from([("token".to_owned(), "s3cr3t".to_owned())])))
        }
    }

    fn var(name: &str, value: Option<&str>, from: Option<EnvVarSource>) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.map(Into::into),
            value_from: from,
        }
    }

    fn pod() -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("p1".into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.uid = Some("uid-123".into());
        p.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "x".to_owned())]));
        p
    }

    #[tokio::test]
    async fn values_refs_and_field_paths_resolve_in_order() {
        let c = Container {
            name: "main".into(),
            env: Some(vec![
                var("A", Some("one"), None),
                var("B", Some("$(A)-two-$$(A)-$(MISSING)"), None),
                var(
                    "CONFIG",
                    None,
                    Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "om-config".into(),
                            key: "config".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                ),
                var(
                    "TOKEN",
                    None,
                    Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "om-secret".into(),
                            key: "token".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                ),
                var(
                    "UID",
                    None,
                    Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.uid".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    }),
                ),
                var(
                    "APP",
                    None,
                    Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.labels['app']".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    }),
                ),
                var("EMPTY_FROM", None, Some(EnvVarSource::default())),
            ]),
            ..Default::default()
        };
        let env = resolve(&pod(), &c, &Fake).await.unwrap();
        assert_eq!(env["A"], "one");
        assert_eq!(env["B"], "one-two-$(A)-$(MISSING)");
        assert_eq!(env["CONFIG"], "yaml: 1");
        assert_eq!(env["TOKEN"], "s3cr3t");
        assert_eq!(env["UID"], "uid-123");
        assert_eq!(env["APP"], "x");
        assert!(!env.contains_key("EMPTY_FROM"));
    }

    #[tokio::test]
    async fn a_missing_reference_fails_unless_optional() {
        let missing = |optional| Container {
            name: "main".into(),
            env: Some(vec![var(
                "X",
                None,
                Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "nope".into(),
                        key: "k".into(),
                        optional,
                    }),
                    ..Default::default()
                }),
            )]),
            ..Default::default()
        };
        let err = resolve(&pod(), &missing(None), &Fake).await.unwrap_err();
        assert_eq!(err.to_string(), "configmap \"nope\" not found");
        let env = resolve(&pod(), &missing(Some(true)), &Fake).await.unwrap();
        assert!(env.is_empty());
    }
}
