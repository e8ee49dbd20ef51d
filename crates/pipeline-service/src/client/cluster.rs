//! The service's namespace on the API server: typed handles, server-side apply under the
//! service's field manager, creates that tolerate a replay, background deletes, and errors that
//! name what failed on which object. Every request goes through the client's retry layer
//! ([`crate::retry`]), so nothing here retries by itself.

use http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, Resource, ResourceExt as _,
    api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams},
    client::Body,
    core::Status,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::error::{Error, Op, is_not_found};

/// The field manager of every write: server-side applies own the fields of the objects a deploy
/// writes, and merge patches (suspend, a run Secret's owner) are recorded under the same name.
pub const FIELD_MANAGER: &str = "pipeline-service";

/// A Kubernetes result before it is given a context.
pub(crate) type KubeResult<T> = std::result::Result<T, kube::Error>;

/// The service's namespace, through the retrying client.
#[derive(Clone)]
pub(crate) struct Cluster {
    client: Client,
    namespace: String,
}

impl Cluster {
    pub(crate) fn new(client: Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn ns(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub(crate) fn dynamic(&self, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, resource)
    }

    /// Turns a client error on `resource` (of kind `kind`) into the service's error.
    pub(crate) fn err<'a>(
        &'a self,
        op: Op,
        kind: &'static str,
        resource: &'a str,
    ) -> impl FnOnce(kube::Error) -> Error + 'a {
        move |e| Error::kube(op, kind, resource, &self.namespace, e)
    }

    /// Server-side applies `obj` with [`FIELD_MANAGER`], forcing ownership of its fields (the
    /// service is their only writer); returns whether the apply created it (HTTP 201), which a
    /// deploy needs to roll back only what it created.
    ///
    /// # Caveats
    /// Fields another manager owns and `obj` leaves out stay: an object written before this
    /// service applied (by get-then-replace) keeps, under that writer's name, fields a later
    /// definition drops (see the crate's docs page).
    pub(crate) async fn apply<K>(&self, dt: &K::DynamicType, obj: &K) -> KubeResult<bool>
    where
        K: Resource + Serialize,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        // `Api::patch` hides the status code, and with it whether the object was created.
        let request = kube::core::Request::new(K::url_path(dt, Some(&self.namespace)))
            .patch(&name, &pp, &Patch::Apply(obj))
            .map_err(kube::Error::BuildRequest)?
            .map(yaml_safe);
        let response = self.client.send(request.map(Body::from)).await?;
        let status = response.status();
        let body = response.into_body().collect_bytes().await?;
        if status.is_client_error() || status.is_server_error() {
            return Err(api_error(status, &body));
        }
        Ok(status == StatusCode::CREATED)
    }

    /// Merge-patches `patch` into `name` through `api`, recorded under [`FIELD_MANAGER`].
    pub(crate) async fn merge<K>(&self, api: &Api<K>, name: &str, patch: &Value) -> KubeResult<()>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        api.patch(name, &pp, &Patch::Merge(patch)).await.map(|_| ())
    }

    /// The pods matching `selector`.
    pub(crate) async fn pods(&self, selector: &str) -> crate::error::Result<Vec<Pod>> {
        let lp = ListParams::default().labels(selector);
        Ok(self
            .api::<Pod>()
            .list(&lp)
            .await
            .map_err(self.err(Op::List, "Pod", selector))?
            .items)
    }

    /// Deletes `name` through `api` with background propagation (owned objects, a run's pods
    /// included, go with it). Not-found is left to the caller.
    pub(crate) async fn delete<K>(&self, api: &Api<K>, name: &str) -> KubeResult<()>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        api.delete(name, &DeleteParams::background()).await.map(|_| ())
    }

    /// Deletes `name` as [`Self::delete`]; absent is fine.
    pub(crate) async fn delete_if_present<K>(&self, api: &Api<K>, name: &str) -> KubeResult<()>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        match self.delete(api, name).await {
            Err(e) if is_not_found(&e) => Ok(()),
            other => other,
        }
    }
}

/// JSON text `json` with every character YAML does not allow in a stream written as a `\uXXXX`
/// escape. An apply body is read as YAML (`application/apply-patch+yaml`), and YAML refuses raw
/// control characters (C1 `U+0080`–`U+009F` but `U+0085`, `U+007F`, `U+FFFE`, `U+FFFF`) that
/// JSON allows and serde_json writes as they are: a definition holding one would be refused with
/// HTTP 400 "control characters are not allowed". Outside strings JSON is ASCII, and inside one
/// the escape means the same character, so the document read is the one serialised.
pub(crate) fn yaml_safe(json: Vec<u8>) -> Vec<u8> {
    let text = match String::from_utf8(json) {
        Ok(text) => text,
        // serde_json writes UTF-8; anything else is sent as it is, for the API server to judge.
        Err(e) => return e.into_bytes(),
    };
    // Control characters (C0, DEL, C1) but tab, newline, carriage return and NEL; two non-characters.
    let forbidden = |c: char| {
        (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{85}'))
            || matches!(c, '\u{fffe}' | '\u{ffff}')
    };
    if !text.chars().any(forbidden) {
        return text.into_bytes();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if forbidden(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out.into_bytes()
}

/// Creates an object of run `run_id` (the run or its Secret) and returns it as the API server
/// stored it. The retry layer never replays a create that may have landed, but a client passed in
/// with kube's own retry layer does (on 503/504); such a replay answers 409, which is success when
/// the existing object carries the same run id.
pub(crate) async fn create_once<K>(api: &Api<K>, obj: &K, run_id: &str) -> KubeResult<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api.get(&obj.name_any()).await?;
            if existing
                .labels()
                .get(omjob_api::labels::LABEL_APP_RUN_ID)
                .map(String::as_str)
                == Some(run_id)
            {
                Ok(existing)
            } else {
                Err(kube::Error::Api(s))
            }
        }
        Err(e) => Err(e),
    }
}

/// The API server's error answer as kube's client reads one: its `Status`, or one built from
/// the text when the body is not a `Status` (a proxy's page, say).
fn api_error(code: StatusCode, body: &[u8]) -> kube::Error {
    let status = serde_json::from_slice::<Status>(body).unwrap_or_else(|_| {
        Status::failure(String::from_utf8_lossy(body).trim(), "Failed to parse error data")
            .with_code(code.as_u16())
    });
    kube::Error::Api(status.boxed())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_apply_body_escapes_what_yaml_refuses_and_means_the_same_json() {
        let value =
            serde_json::json!({"fqn": "a\u{8b}b\u{7f}c\u{85}d\u{ffff}é😀", "n": 1, "c": "\u{1}\u{1b}"});
        let raw = serde_json::to_vec(&value).unwrap();
        let safe = yaml_safe(raw.clone());
        let text = String::from_utf8(safe.clone()).unwrap();
        assert!(text.contains("a\\u008bb\\u007fc\u{85}d\\uffffé😀"), "{text}");
        assert_eq!(serde_json::from_slice::<Value>(&safe).unwrap(), value);
        // Nothing to escape: the bytes as they were.
        let plain = serde_json::to_vec(&serde_json::json!({"a": "b"})).unwrap();
        assert_eq!(yaml_safe(plain.clone()), plain);
    }

    #[test]
    fn an_error_answer_keeps_the_api_servers_words_or_the_raw_text() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"spec.schedule: Invalid value","reason":"Invalid","code":422}"#;
        let e = api_error(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert!(
            matches!(&e, kube::Error::Api(s) if s.code == 422 && s.message == "spec.schedule: Invalid value")
        );
        let e = api_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>\n");
        assert!(
            matches!(&e, kube::Error::Api(s) if s.code == 502 && s.message == "<html>bad gateway</html>")
        );
    }
}
