//! The demo: a testbed comes up, a Job's pod prints a line on a simulated node, we show its status
//! and logs (through the API server, with the testbed's own kubectl), and everything goes down.

use std::{process::Command, time::Duration};

use anyhow::Context as _;
use k8s_openapi::api::batch::v1::Job;
use kube::{Api, api::PostParams, runtime::wait::await_condition};
use omjob_testbed::{Testbed, TestbedOptions};
use serde_json::json;

use crate::step;

pub fn run() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(demo())
}

async fn demo() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("omjob-demo-").tempdir()?;
    step(
        "Starting a testbed: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and one simulated node",
    );
    let started = std::time::Instant::now();
    let testbed = Testbed::start(dir.path(), &TestbedOptions::default()).await?;
    let cp = testbed.control_plane();
    eprintln!(
        "    API server {} ready in {:.1}s; data in {}",
        cp.api_url(),
        started.elapsed().as_secs_f64(),
        dir.path().display()
    );
    let kubectl = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(&cp.binaries().kubectl)
            .arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
            .args(args)
            .output()
            .context("running kubectl")?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(text)
    };
    eprint!("{}", kubectl(&["get", "nodes", "-o", "wide"])?);

    step(
        "Creating Job `hello`: its pod prints a line; the real Job controller runs it on the simulated node",
    );
    let client = cp.client().await?;
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
    eprint!("{}", kubectl(&["get", "job,pods", "-o", "wide"])?);
    step("Logs (kubectl logs job/hello, served by the simulated node through the API server)");
    eprint!("{}", kubectl(&["logs", "job/hello"])?);

    step("Tearing down");
    drop(testbed);
    eprintln!("    done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
