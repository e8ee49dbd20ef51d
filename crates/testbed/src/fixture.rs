//! Test fixtures: one testbed per test binary, started on first use, and a fresh namespace per
//! test that is deleted when the test ends (pass or fail).
//!
//! Each `#[tokio::test]` has its own runtime, which ends with the test, while the testbed's nodes
//! must keep running for the whole binary. The shared testbed therefore lives on a background
//! thread with its own runtime, and tests build their own clients ([`SharedTestbed::client`]).
//!
//! Fixtures fail the test that uses them when the testbed is broken, so panicking (with the
//! reason) is their contract, as for any test helper.
#![allow(clippy::panic, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
    time::Duration,
};

use k8s_openapi::{
    api::{
        authentication::v1::TokenRequest,
        core::v1::{Namespace, ServiceAccount},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::wait::{await_condition, conditions},
};

use crate::{Testbed, TestbedOptions, controlplane::client_from_kubeconfig};

/// Label on every namespace the fixtures create, so leftovers are easy to find.
pub const TEST_NAMESPACE_LABEL: &str = "testbed.omjob.dev/test";

/// The testbed shared by all tests of one binary.
#[derive(Debug)]
pub struct SharedTestbed {
    testbed: Testbed,
    handle: tokio::runtime::Handle,
}

static SHARED: OnceLock<Result<SharedTestbed, String>> = OnceLock::new();

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes data directories of earlier test processes that have exited.
fn remove_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("omjob-testbed-"))
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        if !pid_alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The shared testbed, started on first call (one control plane and one process-mode node).
/// Blocks the calling thread until it is up (about 10 s; longer the first time on a fresh machine,
/// when the control plane is built).
///
/// # Panics
/// When the testbed cannot start: every test that needs it fails with the reason.
#[must_use]
pub fn shared() -> &'static SharedTestbed {
    let result = SHARED.get_or_init(|| {
        let root = std::env::temp_dir();
        remove_stale_dirs(&root);
        let dir = root.join(format!("omjob-testbed-{}", std::process::id()));
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("testbed".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot build the testbed runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let started = Testbed::start(&dir, &TestbedOptions::default()).await;
                let handle = tokio::runtime::Handle::current();
                let _ = tx.send(
                    started
                        .map(|testbed| SharedTestbed { testbed, handle })
                        .map_err(|e| format!("{e:#}")),
                );
                // The runtime must outlive every test of this binary.
                std::future::pending::<()>().await;
            });
        });
        if let Err(e) = spawned {
            return Err(format!("cannot start the testbed thread: {e}"));
        }
        rx.recv()
            .unwrap_or_else(|_| Err("the testbed thread died while starting".into()))
    });
    match result {
        Ok(tb) => tb,
        Err(e) => panic!("the testbed did not start: {e}"),
    }
}

impl SharedTestbed {
    /// The testbed.
    #[must_use]
    pub fn testbed(&self) -> &Testbed {
        &self.testbed
    }

    /// The admin kubeconfig path.
    #[must_use]
    pub fn kubeconfig(&self) -> PathBuf {
        self.testbed.control_plane().kubeconfig().to_owned()
    }

    /// Runs the testbed's kubectl (built from the same sources as the server) as admin in `dir` and
    /// returns its standard output.
    ///
    /// # Panics
    /// When kubectl cannot start or exits non-zero; the message carries its output.
    #[must_use]
    pub fn kubectl(&self, args: &[&str], dir: &Path) -> String {
        let out = std::process::Command::new(&self.testbed.control_plane().binaries().kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig().display()))
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Renders the kustomization in `dir` (relative to `root`) with the testbed's kubectl (its
    /// embedded kustomize) and returns its documents.
    ///
    /// # Panics
    /// When kubectl fails or prints something that is not YAML.
    #[must_use]
    pub fn kustomize(&self, root: &Path, dir: &str) -> Vec<serde_json::Value> {
        let text = self.kubectl(&["kustomize", dir], root);
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| serde::Deserialize::deserialize(doc).expect("kustomize output is YAML"))
            .collect()
    }

    /// A new admin client for the calling runtime.
    ///
    /// # Panics
    /// When the kubeconfig cannot be loaded (a broken testbed).
    pub async fn client(&self) -> Client {
        client_from_kubeconfig(self.testbed.control_plane().kubeconfig())
            .await
            .expect("testbed kubeconfig")
    }

    /// Creates a fresh namespace named `<prefix>-<random>`, waits until pods can be created in it
    /// (its default service account has a token), and deletes it when the guard drops.
    ///
    /// # Panics
    /// When the namespace cannot be created.
    pub async fn namespace(&'static self, prefix: &str) -> TestNamespace {
        let client = self.client().await;
        let name = format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {TEST_NAMESPACE_LABEL: "true"}}
        }))
        .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        wait_for_service_account(&client, &name, "default", Duration::from_secs(60))
            .await
            .expect("default service account");
        TestNamespace {
            name,
            client,
            shared: self,
        }
    }
}

/// Waits until service account `name` exists: the ServiceAccount admission plugin rejects pods
/// that name a missing one. (Since Kubernetes 1.24 no token Secret is created for it; pods get a
/// projected token, and [`ServiceAccountCredentials::read`] asks for one.)
///
/// # Errors
/// A description of what was missing when `limit` passed.
pub async fn wait_for_service_account(
    client: &Client,
    ns: &str,
    name: &str,
    limit: Duration,
) -> Result<(), String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let exists = |sa: Option<&ServiceAccount>| sa.is_some();
    tokio::time::timeout(limit, await_condition(api, name, exists))
        .await
        .map_err(|_| format!("service account {ns}/{name} does not exist after {limit:?}"))?
        .map(|_| ())
        .map_err(|e| format!("watching service account {ns}/{name}: {e}"))
}

/// A service account's credentials, to run code under its RBAC instead of as cluster admin.
#[derive(Clone)]
pub struct ServiceAccountCredentials {
    token: String,
}

impl std::fmt::Debug for ServiceAccountCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAccountCredentials(<token>)")
    }
}

impl ServiceAccountCredentials {
    /// Waits for service account `ns/sa` to exist and asks the TokenRequest API for a token of
    /// it, valid for a day (longer than any test or bench run), bound to no object.
    ///
    /// # Panics
    /// When the account does not appear within a minute or the token request fails.
    pub async fn read(admin: &Client, ns: &str, sa: &str) -> Self {
        wait_for_service_account(admin, ns, sa, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let request: TokenRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86_400, "audiences": []}
        }))
        .expect("token request");
        let issued = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
            .create_token_request(sa, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("request a token for {ns}/{sa}: {e}"));
        let token = issued.status.expect("issued token status").token;
        Self { token }
    }

    /// A client of the shared testbed that authenticates with this token.
    ///
    /// # Panics
    /// When the testbed's kubeconfig cannot be loaded.
    pub async fn client(&self) -> Client {
        let kc = kube::config::Kubeconfig::read_from(shared().kubeconfig()).expect("kubeconfig");
        let mut config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("kubeconfig");
        config.auth_info = kube::config::AuthInfo {
            token: Some(self.token.clone().into()),
            ..Default::default()
        };
        Client::try_from(config).expect("client")
    }

    /// Writes a kubeconfig for the shared testbed that authenticates with this token, for a
    /// binary run as a child process, and returns its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path) -> PathBuf {
        let admin = kube::config::Kubeconfig::read_from(shared().kubeconfig()).expect("kubeconfig");
        let mut value = serde_json::to_value(&admin).expect("kubeconfig to JSON");
        if let Some(users) = value["users"].as_array_mut() {
            for user in users {
                user["user"] = serde_json::json!({"token": self.token});
            }
        }
        let text = serde_json::to_string(&value).expect("kubeconfig JSON");
        // JSON is YAML: kubeconfig readers take either.
        std::fs::write(path, text).expect("write kubeconfig");
        path.to_owned()
    }
}

/// `Kind/name` of each rendered manifest document, sorted: what a rendering test compares with the
/// list it expects.
///
/// # Panics
/// When a document has no `kind` or `metadata.name`.
#[must_use]
pub fn object_names(docs: &[serde_json::Value]) -> Vec<String> {
    let mut names: Vec<String> = docs
        .iter()
        .map(|d| {
            let kind = d["kind"].as_str().expect("a manifest document has a kind");
            let name = d["metadata"]["name"]
                .as_str()
                .expect("a manifest document has a name");
            format!("{kind}/{name}")
        })
        .collect();
    names.sort();
    names
}

/// Checks the layout of a rendered operator-style install: its Deployment, ServiceAccount, Role
/// and RoleBinding are in `namespace`, and its ClusterRoleBinding and RoleBinding bind exactly
/// `namespace/service_account`, the Deployment's account.
///
/// # Panics
/// When a document of those kinds is missing or laid out otherwise.
pub fn assert_bound_in_namespace(docs: &[serde_json::Value], namespace: &str, service_account: &str) {
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in the rendered documents"))
    };
    for kind in ["Deployment", "ServiceAccount", "Role", "RoleBinding"] {
        assert_eq!(find(kind)["metadata"]["namespace"], namespace, "{kind}");
    }
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        assert_eq!(
            find(kind)["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]),
            "{kind} must bind the Deployment's service account"
        );
    }
}

/// Installs (server-side apply) `crds` and waits until each is Established.
///
/// # Panics
/// When a CRD is rejected or not established within 30 s.
pub async fn install_crds(admin: &Client, crds: Vec<CustomResourceDefinition>, manager: &str) {
    let api: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let ssa = PatchParams::apply(manager).force();
    for crd in crds {
        let name = crd.metadata.name.clone().expect("CRD name");
        api.patch(&name, &ssa, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not established within 30s"))
        .unwrap_or_else(|e| panic!("watch CRD {name}: {e}"));
    }
}

/// A namespace that exists for one test.
pub struct TestNamespace {
    name: String,
    client: Client,
    shared: &'static SharedTestbed,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestNamespace {
    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An admin client for the test's runtime.
    #[must_use]
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A typed API in this namespace.
    #[must_use]
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// The shared testbed.
    #[must_use]
    pub fn testbed(&self) -> &'static SharedTestbed {
        self.shared
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // The test's runtime may be shutting down; delete from the testbed's own runtime.
        let name = self.name.clone();
        let kubeconfig = self.shared.kubeconfig();
        self.shared.handle.spawn(async move {
            if let Ok(client) = client_from_kubeconfig(&kubeconfig).await {
                let _ = Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await;
            }
        });
    }
}
