//! The demo: a testbed comes up; a batch Job runs on the simulated node (status and logs through
//! the API server); then the operator binary starts, three OMJobs that succeed, fail and get
//! OOM-killed run, and each one's timeline is printed: phases, reason, and what its exit handler
//! was told. Then the Katalog runtime starts with the example data-platform Katalog, one DataJob
//! gets its ConfigMap and ReplicaSet, and the runtime's health and the panel URLs are printed.
//! Everything goes down at the end; with `--keep`, only after Ctrl-C.

use std::{
    collections::BTreeMap,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::{apps::v1::ReplicaSet, batch::v1::Job, core::v1::ConfigMap};
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt as _, wait::await_condition, watcher},
};
use omjob_api::OMJob;
use omjob_testbed::{Testbed, TestbedOptions};
use serde_json::json;

use crate::{
    bench::{
        katalog_process::{KatalogOptions, KatalogProcess},
        operator_process::{OperatorOptions, OperatorProcess, Started},
    },
    step, workspace_root,
};

/// The OMJobs in `examples/demo-omjobs.yaml`.
const DEMO_OMJOBS: [&str; 3] = ["demo-succeeds", "demo-fails", "demo-oom"];

/// The namespace and name of `examples/katalog/datajob-sample.yaml`.
const SAMPLE_NAMESPACE: &str = "demo-05";
const SAMPLE_DATAJOB: &str = "backfill-job";

/// Runs the demo; with `keep`, leaves everything running until Ctrl-C.
pub fn run(keep: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(demo(keep))
}

/// Runs the testbed's kubectl; returns stdout and stderr together, or fails with them.
fn kubectl(testbed: &Testbed, args: &[&str]) -> anyhow::Result<String> {
    let cp = testbed.control_plane();
    let out = Command::new(&cp.binaries().kubectl)
        .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
        .args(args)
        .current_dir(workspace_root()?)
        .output()
        .context("running kubectl")?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    anyhow::ensure!(out.status.success(), "kubectl {args:?} failed:\n{text}");
    Ok(text)
}

async fn demo(keep: bool) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("omjob-demo-").tempdir()?;
    step(
        "Starting a testbed: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and one simulated node",
    );
    let started = Instant::now();
    let testbed = Testbed::start(dir.path(), &TestbedOptions::default()).await?;
    eprintln!(
        "    API server {} ready in {:.1}s; data in {}",
        testbed.control_plane().api_url(),
        started.elapsed().as_secs_f64(),
        dir.path().display()
    );
    eprint!("{}", kubectl(&testbed, &["get", "nodes", "-o", "wide"])?);

    batch_job(&testbed).await?;
    let operator = omjobs(&testbed, dir.path()).await?;
    let runtime = datajobs(&testbed, dir.path()).await?;

    step("Open in a browser");
    let runtime_url = format!("http://127.0.0.1:{}", runtime.port());
    eprintln!("    Katalog runtime API:       {runtime_url}/katalog");
    eprintln!("    data-job health:           {runtime_url}/katalog/data-job/health");
    eprintln!("    Katalog control panel:     {runtime_url}/ui/");
    eprintln!(
        "    OMJob control panel:       http://127.0.0.1:{}/ui/",
        operator.port()
    );
    eprintln!(
        "    kubectl:                   {} --kubeconfig={} get datajobs,omjobs -A",
        testbed.control_plane().binaries().kubectl.display(),
        testbed.control_plane().kubeconfig().display()
    );
    if keep {
        step("--keep: the testbed, the operator and the runtime keep running; press Ctrl-C to tear down");
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        eprintln!();
    }

    step("Tearing down");
    drop(runtime);
    drop(operator);
    drop(testbed);
    eprintln!("    done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn batch_job(testbed: &Testbed) -> anyhow::Result<()> {
    step(
        "Creating Job `hello`: its pod prints a line; the real Job controller runs it on the simulated node",
    );
    let client = testbed.control_plane().client().await?;
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "hello"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "busybox",
            "command": ["sh", "-c", "echo \"hello from pod $POD_NAME on node $NODE_NAME\""],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
            ]
        }]}}}
    }))?;
    jobs.create(&PostParams::default(), &job).await?;
    let complete = |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.completion_time.is_some() || s.failed.unwrap_or(0) > 0)
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(jobs.clone(), "hello", complete),
    )
    .await
    .context("the Job did not finish within 60s")??;
    step("Status (kubectl get job,pods)");
    eprint!("{}", kubectl(testbed, &["get", "job,pods", "-o", "wide"])?);
    step("Logs (kubectl logs job/hello, served by the simulated node through the API server)");
    eprint!("{}", kubectl(testbed, &["logs", "job/hello"])?);
    Ok(())
}

/// One observed phase change of an OMJob.
struct Change {
    at: Duration,
    phase: String,
    reason: Option<String>,
    message: Option<String>,
}

/// Runs the OMJob part; returns the operator, still running, for the panel URLs.
async fn omjobs(testbed: &Testbed, dir: &Path) -> anyhow::Result<OperatorProcess> {
    step("Installing the CRDs (kubectl apply -f deploy/crds/omjob-crds.yaml)");
    eprint!(
        "{}",
        kubectl(testbed, &["apply", "-f", "deploy/crds/omjob-crds.yaml"])?
    );
    kubectl(
        testbed,
        &[
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd/omjobs.pipelines.openmetadata.org",
            "crd/cronomjobs.pipelines.openmetadata.org",
        ],
    )?;

    step("Building and starting the operator (omjob-operator run, watching namespace default)");
    let log = dir.join("operator.log");
    let mut opts = OperatorOptions::new(log.clone());
    opts.log_level = "info".to_owned();
    opts.watch_namespaces = Some("default".to_owned());
    opts.release = false;
    let operator = OperatorProcess::start(testbed, opts, Started::Ready).await?;
    eprintln!(
        "    ready; /health, /ready and /metrics on port {}; its log: {}",
        operator.port(),
        log.display()
    );

    let client = testbed.control_plane().client().await?;
    let api: Api<OMJob> = Api::namespaced(client, "default");
    // Watch before applying, so that every phase change is seen.
    let mut changes = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    step("Applying examples/demo-omjobs.yaml: one succeeds, one exits 3, one is OOM-killed");
    eprint!(
        "{}",
        kubectl(testbed, &["apply", "-f", "examples/demo-omjobs.yaml"])?
    );
    let start = Instant::now();
    let mut timelines: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    let mut done = 0;
    let limit = tokio::time::Instant::now() + Duration::from_secs(120);
    while done < DEMO_OMJOBS.len() {
        let next = tokio::time::timeout_at(limit, changes.try_next())
            .await
            .context("the demo OMJobs did not all finish within 2 minutes")?
            .context("OMJob watch")?;
        let Some(o) = next else {
            anyhow::bail!("the OMJob watch ended early")
        };
        let name = o.metadata.name.clone().unwrap_or_default();
        let Some(status) = o.status else { continue };
        let Some(phase) = status.phase else { continue };
        let line = timelines.entry(name.clone()).or_default();
        if line.last().is_some_and(|c| c.phase == phase.as_str()) {
            continue;
        }
        eprintln!(
            "    +{:>5.1}s  {name:<14} {}",
            start.elapsed().as_secs_f64(),
            phase.as_str()
        );
        line.push(Change {
            at: start.elapsed(),
            phase: phase.as_str().to_owned(),
            reason: status.reason.clone(),
            message: status.message.clone(),
        });
        if phase.is_terminal() {
            done += 1;
        }
    }

    step("Timelines");
    for name in DEMO_OMJOBS {
        eprintln!("  {name}");
        for c in timelines.get(name).map(Vec::as_slice).unwrap_or_default() {
            eprintln!("    +{:>5.1}s  {}", c.at.as_secs_f64(), c.phase);
        }
        if let Some(last) = timelines.get(name).and_then(|l| l.last()) {
            eprintln!("    reason:  {}", last.reason.as_deref().unwrap_or("-"));
            eprintln!("    message: {}", last.message.as_deref().unwrap_or("-"));
        }
        let told = kubectl(testbed, &["logs", &format!("{name}-exit")])?;
        eprintln!("    {}", told.trim());
    }
    step("kubectl get omjobs");
    eprint!("{}", kubectl(testbed, &["get", "omjobs", "-o", "wide"])?);
    step("Events of demo-oom (kubectl get events --field-selector involvedObject.name=demo-oom)");
    eprint!(
        "{}",
        kubectl(
            testbed,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=demo-oom",
                "--sort-by=.metadata.creationTimestamp",
            ],
        )?
    );
    Ok(operator)
}

/// Installs the DataJob CRD, starts `katalog run` with the data-platform Katalog, creates the
/// sample DataJob and shows what it got; returns the runtime, still running.
async fn datajobs(testbed: &Testbed, dir: &Path) -> anyhow::Result<KatalogProcess> {
    step("Installing the DataJob CRD (kubectl apply -f examples/katalog/datajob-crd.yaml)");
    eprint!(
        "{}",
        kubectl(testbed, &["apply", "-f", "examples/katalog/datajob-crd.yaml"])?
    );
    kubectl(
        testbed,
        &[
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd/datajobs.data.demo.orkestra.io",
        ],
    )?;

    step(
        "Building and starting the Katalog runtime (katalog run --katalog examples/katalog/data-platform.yaml)",
    );
    let log = dir.join("katalog.log");
    let opts = KatalogOptions {
        katalog: workspace_root()?.join("examples/katalog/data-platform.yaml"),
        env: Vec::new(),
        log_level: "info".to_owned(),
        log_file: log.clone(),
        release: false,
    };
    let runtime = KatalogProcess::start(testbed, &opts).await?;
    eprintln!(
        "    ready; /ready, /metrics and /katalog on port {}; its log: {}",
        runtime.port(),
        log.display()
    );

    step(&format!(
        "Creating namespace {SAMPLE_NAMESPACE} and applying examples/katalog/datajob-sample.yaml"
    ));
    eprint!(
        "{}",
        kubectl(testbed, &["create", "namespace", SAMPLE_NAMESPACE])?
    );
    eprint!(
        "{}",
        kubectl(testbed, &["apply", "-f", "examples/katalog/datajob-sample.yaml"])?
    );
    let client = testbed.control_plane().client().await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), SAMPLE_NAMESPACE);
    let replicasets: Api<ReplicaSet> = Api::namespaced(client, SAMPLE_NAMESPACE);
    let configmap = format!("{SAMPLE_DATAJOB}-job");
    let replicaset = format!("{SAMPLE_DATAJOB}-worker");
    let start = Instant::now();
    loop {
        let cm = configmaps
            .get_opt(&configmap)
            .await
            .with_context(|| format!("reading ConfigMap {configmap}"))?;
        let rs = replicasets
            .get_opt(&replicaset)
            .await
            .with_context(|| format!("reading ReplicaSet {replicaset}"))?;
        if cm.is_some() && rs.is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            anyhow::bail!(
                "the DataJob's ConfigMap {configmap} and ReplicaSet {replicaset} did not both appear within 60 s; see {}",
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "    ConfigMap {configmap} and ReplicaSet {replicaset} exist after {:.1}s",
        start.elapsed().as_secs_f64()
    );
    // Let the pass that created them write the DataJob's status before it is printed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    step(&format!(
        "What the DataJob got (kubectl -n {SAMPLE_NAMESPACE} get datajobs,configmaps,replicasets -l orkestra.orkspace.io/managed=true)"
    ));
    eprint!(
        "{}",
        kubectl(
            testbed,
            &[
                "-n",
                SAMPLE_NAMESPACE,
                "get",
                "datajobs,configmaps,replicasets",
                "-l",
                "orkestra.orkspace.io/managed=true",
                "-o",
                "wide",
            ],
        )?
    );
    step(&format!(
        "kubectl -n {SAMPLE_NAMESPACE} get configmap {configmap} -o yaml"
    ));
    eprint!(
        "{}",
        kubectl(
            testbed,
            &[
                "-n",
                SAMPLE_NAMESPACE,
                "get",
                "configmap",
                &configmap,
                "-o",
                "yaml"
            ],
        )?
    );

    step("The runtime's health of data-job (GET /katalog/data-job/health)");
    match runtime.get("/katalog/data-job/health").await {
        Ok((code, body)) => {
            let pretty = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(body);
            eprintln!("    HTTP {code}");
            for line in pretty.lines() {
                eprintln!("    {line}");
            }
        }
        Err(e) => eprintln!("    not answered: {e:#}"),
    }
    Ok(runtime)
}
