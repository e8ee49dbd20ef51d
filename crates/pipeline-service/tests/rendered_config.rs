//! The `config` every pod receives is what OpenMetadata's ingestion scripts need (reference §7,
//! §7.1), and no credential is anywhere else.
//!
//! Each pod runs a small Python program that reads `config` the way `main.py` and
//! `exit_handler.py` do (PyYAML `safe_load`, no env expansion, then the `pipelineRunId` env var
//! over the YAML's) and appends what it found to a file of the test's. On-demand runs and
//! scheduled runs (a Job made from the CronJob's template as `kubectl create job --from` does,
//! an OMJob spawned from the CronOMJob's template as the CronOMJob controller does) must all find
//! the FQN, the run id and the credentials. The service itself runs as the `pipelines` binary
//! under its Role with `PIPELINES_LOG=debug`, and every ConfigMap, Job, CronJob, OMJob, CronOMJob
//! and Pod of the namespace, and everything the binary printed, is searched for the credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use common::{World, eventually, leftovers, world};
use k8s_openapi::{
    ByteString,
    api::{batch::v1::Job, core::v1::Secret},
};
use kube::{
    Api, ResourceExt as _,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use omjob_api::{CronOMJob, OMJob};
use serde_json::{Value, json};

const FQN: &str = "mysql_prod.cfg_ingestion";
/// Shaped like the ingestion bot's JWT.
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.cmVuZGVyZWQtY29uZmlnLXRlc3Q.c2lnbmF0dXJlLTdmM2E";
/// Plain, YAML 1.1 would read parts of this as a boolean or a number; unquoted, `: ` and ` #`
/// would change the document's structure.
const PASSWORD: &str = "yes: 'no' # 12:30 & *x";
const MINUTE: Duration = Duration::from_secs(60);

/// The pods' command: `config` read as the ingestion scripts read it.
const READ_CONFIG: &str = r#"
import json, os, sys, yaml
role, out = sys.argv[1], sys.argv[2]
# As main.py and exit_handler.py: PyYAML on the env var, nothing expanded ...
config = yaml.safe_load(os.environ["config"])
from_yaml = config.get("pipelineRunId")
# ... then the pipelineRunId env var, when set, replaces the YAML's.
if os.environ.get("pipelineRunId"):
    config["pipelineRunId"] = os.environ["pipelineRunId"]
record = {"role": role, "yamlRunId": from_yaml, "envRunId": os.environ.get("pipelineRunId"),
          "pipelineStatus": os.environ.get("pipelineStatus"), "config": config}
with open(out, "a") as f:
    f.write(json.dumps(record) + "\n")
print("read config:", role, ",".join(sorted(config)))
"#;

/// The workflow config as a caller writes it: credentials by reference.
const WORKFLOW: &str = r#"
source:
  type: mysql
  serviceName: mysql_prod
  serviceConnection:
    config:
      type: Mysql
      username: ingest
      authType: {password: "${DB_PASSWORD}"}
      hostPort: mysql.data.svc.cluster.local:3306
      connectionArguments: {literal: "$${NOT_A_REFERENCE}"}
  sourceConfig: {config: {type: DatabaseMetadata}}
sink: {type: metadata-rest, config: {}}
workflowConfig:
  openMetadataServerConfig:
    hostPort: http://openmetadata:8585/api
    authProvider: openmetadata
    securityConfig:
      jwtToken: ${OM_JWT}
"#;

fn command(role: &str, out: &Path) -> Value {
    json!(["python3", "-c", READ_CONFIG, role, out.to_str().unwrap()])
}

/// The `pipelines` binary under the service's Role; keeps everything it printed.
struct Cli {
    config: PathBuf,
    printed: String,
}

impl Cli {
    async fn new(w: &World, dir: &Path, out: &Path, extra: Value) -> Self {
        let kubeconfig =
            common::service_account_kubeconfig(&w.admin, w.ns.name(), common::SERVICE_SA, dir).await;
        let mut config = json!({
            "namespace": w.ns.name(), "inCluster": false, "kubeconfigPath": kubeconfig,
            "ingestionImage": "ingestion", "backoffLimit": 0, "exitHandlerCommand": command("exit", out),
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            config[k] = v;
        }
        let path = dir.join(format!("config-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        Self {
            config: path,
            printed: String::new(),
        }
    }

    async fn run(&mut self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipelines"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("PIPELINES_LOG", "debug")
            .output()
            .await
            .unwrap();
        self.printed.push_str(&String::from_utf8_lossy(&out.stdout));
        self.printed.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    /// `run <pipeline> --wait`: the run id and resource.
    async fn run_and_wait(&mut self, pipeline: &str) -> (String, String) {
        let out = self.run(&["run", pipeline, "--wait", "--timeout", "120"]).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{out:?}");
        // "started run <id> (<kind> <resource>)"
        let first: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
        (first[2].to_owned(), first[4].trim_end_matches(')').to_owned())
    }
}

fn definition(out: &Path) -> Value {
    json!({
        "name": "cfg", "fullyQualifiedName": FQN, "pipelineType": "metadata",
        // Never due while the test runs: scheduled runs are made from the template below.
        "schedule": "0 0 1 1 *",
        "workflowConfig": WORKFLOW,
        "credentials": {"OM_JWT": JWT, "DB_PASSWORD": PASSWORD},
        "overrides": {"command": command("main", out)},
    })
}

/// The records the pods wrote.
fn records(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits for the record of `role` whose `pipelineRunId` env var is `run_id`.
async fn record(out: &Path, role: &str, run_id: &str) -> Value {
    eventually(
        MINUTE,
        &format!("the {role} pod of run {run_id} to read its config"),
        || async {
            records(out)
                .into_iter()
                .find(|r| r["role"] == role && r["envRunId"] == run_id)
        },
    )
    .await
}

/// What every pod must find in `config`: the FQN, the run id and the credentials, as values.
fn assert_config(r: &Value, run_id: &str, yaml_run_id: Option<&str>) {
    let c = &r["config"];
    let what = format!("{} pod of run {run_id}", r["role"]);
    assert_eq!(c["ingestionPipelineFQN"], FQN, "{what}");
    assert_eq!(c["pipelineRunId"], run_id, "{what}");
    assert_eq!(
        r["yamlRunId"],
        json!(yaml_run_id),
        "{what}: the run id in the YAML itself"
    );
    assert!(
        c["workflowConfig"]["openMetadataServerConfig"]["securityConfig"]["jwtToken"] == JWT,
        "{what}: the token is not in the config"
    );
    assert!(
        c["source"]["serviceConnection"]["config"]["authType"]["password"] == PASSWORD,
        "{what}: the password is not in the config as a string"
    );
    assert_eq!(
        c["source"]["serviceConnection"]["config"]["connectionArguments"]["literal"], "${NOT_A_REFERENCE}",
        "{what}"
    );
}

/// The forms a credential takes in a JSON document or a log: itself, JSON-escaped and base64
/// (as in a Secret's data).
fn forms(value: &str) -> [String; 3] {
    let escaped = serde_json::to_string(value).unwrap();
    let base64 = serde_json::to_value(ByteString(value.as_bytes().to_vec())).unwrap();
    [
        value.to_owned(),
        escaped.trim_matches('"').to_owned(),
        base64.as_str().unwrap().to_owned(),
    ]
}

fn holds_a_credential(text: &str) -> bool {
    [JWT, PASSWORD]
        .into_iter()
        .flat_map(forms)
        .any(|f| text.contains(&f))
}

/// Every ConfigMap, Job, CronJob, OMJob, CronOMJob and Pod of the namespace, as JSON, is free of
/// credentials; returns how many objects were searched.
async fn assert_no_credential_outside_secrets(w: &World) -> usize {
    let kinds = [
        ("", "v1", "ConfigMap", "configmaps"),
        ("batch", "v1", "Job", "jobs"),
        ("batch", "v1", "CronJob", "cronjobs"),
        (omjob_api::GROUP, "v1", "OMJob", "omjobs"),
        (omjob_api::GROUP, "v1", "CronOMJob", "cronomjobs"),
        ("", "v1", "Pod", "pods"),
    ];
    let mut searched = 0;
    for (group, version, kind, plural) in kinds {
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(w.admin.clone(), w.ns.name(), &ar);
        for o in api.list(&Default::default()).await.unwrap().items {
            // The object is not printed: it would print what it holds.
            assert!(
                !holds_a_credential(&serde_json::to_string(&o).unwrap()),
                "{kind}/{} holds a credential",
                o.name_any()
            );
            searched += 1;
        }
    }
    searched
}

/// The on-demand run's Secret: named as the run, owned by it, with the config holding the run id
/// and the token (which also shows that the searches look for the right strings).
async fn assert_run_secret(w: &World, kind: &str, resource: &str, run_id: &str) {
    let secret: Secret = w.ns.api::<Secret>().get(resource).await.unwrap();
    let owners = secret.owner_references();
    assert_eq!(
        owners
            .iter()
            .map(|o| (o.kind.as_str(), o.name.as_str()))
            .collect::<Vec<_>>(),
        [(kind, resource)]
    );
    assert_eq!(secret.labels()["app.kubernetes.io/run-id"], run_id);
    let config = String::from_utf8(secret.data.unwrap()["config"].0.clone()).unwrap();
    assert!(holds_a_credential(&config), "the run's config holds the token");
    assert!(config.contains(&format!("pipelineRunId: \"{run_id}\"")));
}

/// Error paths, so that their messages are searched too: a reference to no credential, a deploy
/// the API server rejects (rolled back), a run of an unknown pipeline.
async fn error_paths(w: &World, cli: &mut Cli, dir: &Path, out: &Path, operator: bool) {
    let mut bad = definition(out);
    bad["workflowConfig"] = json!(format!("{WORKFLOW}extra: ${{MISSING}}\n"));
    let file = dir.join("bad.json");
    std::fs::write(&file, serde_json::to_vec(&bad).unwrap()).unwrap();
    let o = cli.run(&["deploy", "-f", file.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("${MISSING}"), "{o:?}");

    let mut rejecting = Cli::new(
        w,
        dir,
        out,
        json!({"useOMJobOperator": operator, "podAnnotations": {"not a valid key!": "x"}}),
    )
    .await;
    let mut def = definition(out);
    def["name"] = json!("cfg-rb");
    let file = dir.join("rejected.json");
    std::fs::write(&file, serde_json::to_vec(&def).unwrap()).unwrap();
    let o = rejecting.run(&["deploy", "-f", file.to_str().unwrap()]).await;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        err.contains("rolled back: Secret/om-secret-cfg-rb, ConfigMap/om-config-cfg-rb"),
        "{err}"
    );
    cli.printed.push_str(&rejecting.printed);
    assert!(leftovers(w, "cfg-rb").await.is_empty());

    let o = cli.run(&["run", "missing"]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

/// The reads that follow a run, then delete; afterwards nothing of the pipeline is left (the run
/// Secrets went with their runs).
async fn read_back_and_delete(w: &World, cli: &mut Cli, run_id: &str) {
    for args in [
        vec!["runs", "cfg"],
        vec!["-o", "json", "runs", "cfg"],
        vec!["runs", "cfg", run_id],
        vec!["get", "cfg"],
        vec!["-o", "json", "get", "cfg"],
        vec!["logs", "cfg", "--all"],
        vec!["status"],
    ] {
        let o = cli.run(&args).await;
        assert!(o.status.success(), "{args:?}: {o:?}");
    }
    let o = cli.run(&["delete", "cfg"]).await;
    assert!(o.status.success(), "{o:?}");
    eventually(MINUTE, "nothing of the pipeline left", || async {
        let left = leftovers(w, "cfg").await;
        left.is_empty().then_some(()).or_else(|| {
            eprintln!("still there: {left:#?}");
            None
        })
    })
    .await;
}

fn assert_logs_are_clean(cli: &Cli) {
    // The capture is real: it has the service's own log lines.
    assert!(cli.printed.contains("run started"), "{}", cli.printed);
    assert!(cli.printed.contains("DEBUG"), "debug logging was on");
    assert!(
        !holds_a_credential(&cli.printed),
        "the service printed or logged a credential"
    );
}

#[tokio::test]
async fn standard_mode_pods_read_fqn_run_id_and_credentials_from_config_and_nothing_else_holds_them() {
    let w = world("ps-cfg-std", json!({})).await;
    // The OMJob CRDs, so that the search lists OMJobs and CronOMJobs too (there are none).
    common::cluster_setup(&w.admin, omjob_api::crds::all()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("records.jsonl");
    let mut cli = Cli::new(&w, dir.path(), &out, json!({})).await;
    let def = dir.path().join("def.json");
    std::fs::write(&def, serde_json::to_vec(&definition(&out)).unwrap()).unwrap();

    let o = cli.run(&["deploy", "-f", def.to_str().unwrap()]).await;
    assert!(o.status.success(), "{o:?}");
    let (run_id, resource) = cli.run_and_wait("cfg").await;
    assert_config(&record(&out, "main", &run_id).await, &run_id, Some(&run_id));
    assert_run_secret(&w, "Job", &resource, &run_id).await;

    // A scheduled run: a Job made from the CronJob's template as `kubectl create job --from`
    // makes it. Its config has no run id; the pod's env var (the Job's uid) supplies it.
    let cron_jobs: Api<DynamicObject> = Api::namespaced_with(
        w.admin.clone(),
        w.ns.name(),
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "CronJob"), "cronjobs"),
    );
    let cron = cron_jobs.get("om-cronjob-cfg").await.unwrap();
    let template = &cron.data["spec"]["jobTemplate"];
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "om-cronjob-cfg-manual", "labels": template["metadata"]["labels"],
                     "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "om-cronjob-cfg",
                                          "uid": cron.uid().unwrap(), "controller": true}]},
        "spec": template["spec"],
    }))
    .unwrap();
    let job =
        w.ns.api::<Job>()
            .create(&PostParams::default(), &job)
            .await
            .unwrap();
    let uid = job.uid().unwrap();
    assert_config(&record(&out, "main", &uid).await, &uid, None);

    error_paths(&w, &mut cli, dir.path(), &out, false).await;
    let searched = assert_no_credential_outside_secrets(&w).await;
    assert!(
        searched >= 6,
        "ConfigMap, CronJob, two Jobs and their pods: {searched}"
    );
    read_back_and_delete(&w, &mut cli, &run_id).await;
    assert_logs_are_clean(&cli);
}

#[tokio::test]
async fn operator_mode_main_and_exit_pods_read_fqn_run_id_and_credentials_from_config_and_nothing_else_holds_them()
 {
    let w = world("ps-cfg-op", json!({"useOMJobOperator": true})).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("records.jsonl");
    let mut cli = Cli::new(&w, dir.path(), &out, json!({"useOMJobOperator": true})).await;
    let def = dir.path().join("def.json");
    std::fs::write(&def, serde_json::to_vec(&definition(&out)).unwrap()).unwrap();

    let o = cli.run(&["deploy", "-f", def.to_str().unwrap()]).await;
    assert!(o.status.success(), "{o:?}");
    let (run_id, resource) = cli.run_and_wait("cfg").await;
    for role in ["main", "exit"] {
        let r = record(&out, role, &run_id).await;
        assert_config(&r, &run_id, Some(&run_id));
    }
    assert_eq!(record(&out, "exit", &run_id).await["pipelineStatus"], "success");
    assert_run_secret(&w, "OMJob", &resource, &run_id).await;

    // A scheduled run: the OMJob the CronOMJob controller spawns for a slot, from the
    // CronOMJob's template. The config has no run id; the operator's `{{ omjob.uid }}` in the
    // env var supplies it, in the main and the exit pod.
    let cron: CronOMJob = w.ns.api::<CronOMJob>().get("om-cronomjob-cfg").await.unwrap();
    let slot = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let spawned = omjob_operator::cronomjob::spawn::build(&cron, slot).unwrap();
    let spawned =
        w.ns.api::<OMJob>()
            .create(&PostParams::default(), &spawned)
            .await
            .unwrap();
    let scheduled_id = spawned.labels()["app.kubernetes.io/run-id"].clone();
    for role in ["main", "exit"] {
        let r = record(&out, role, &scheduled_id).await;
        assert_config(&r, &scheduled_id, None);
    }

    error_paths(&w, &mut cli, dir.path(), &out, true).await;
    let searched = assert_no_credential_outside_secrets(&w).await;
    assert!(
        searched >= 6,
        "ConfigMap, CronOMJob, two OMJobs and their pods: {searched}"
    );
    read_back_and_delete(&w, &mut cli, &run_id).await;
    assert_logs_are_clean(&cli);
}
