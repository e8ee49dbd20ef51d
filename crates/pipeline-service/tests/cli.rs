//! The `pipelines` command line against the testbed, under the service's Role: deploy from a
//! file, `run --wait` following the run to its end, tables and `-o json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Output;

use common::world;
use serde_json::{Value, json};

struct Cli {
    kubeconfig: std::path::PathBuf,
    ns: String,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pipelines"))
            .args(args)
            .env("PIPELINES_NAMESPACE", &self.ns)
            .env("PIPELINES_IN_CLUSTER", "false")
            .env("PIPELINES_KUBECONFIG_PATH", &self.kubeconfig)
            .env("PIPELINES_INGESTION_IMAGE", "ingestion")
            .env("PIPELINES_BACKOFF_LIMIT", "0")
            .env("PIPELINES_LOG", "warn")
            .output()
            .await
            .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn deploy_run_wait_runs_logs_and_delete_from_the_command_line() {
    let w = world("ps-cli", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig =
        common::service_account_kubeconfig(&w.admin, w.ns.name(), common::SERVICE_SA, dir.path()).await;
    let cli = Cli {
        kubeconfig,
        ns: w.ns.name().to_owned(),
    };
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "name: cli-p\npipelineType: metadata\nworkflowConfig: 'a: 1'\noverrides:\n  command: [sh, -c, 'sleep 2; echo from-cli']\n",
    )
    .unwrap();
    let out = cli.run(&["deploy", "-f", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("deployed cli-p (on demand): ConfigMap/om-config-cli-p"),
        "{}",
        stdout(&out)
    );

    let out = cli.run(&["run", "cli-p", "--wait"]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    let states: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(states.last(), Some(&"success"), "{text}");
    assert!(states.contains(&"running"), "state changes are printed: {text}");
    let mut dedup = states.clone();
    dedup.dedup();
    assert_eq!(dedup, states, "each change printed once: {text}");

    let out = cli.run(&["runs", "cli-p"]).await;
    let table = stdout(&out);
    assert!(table.starts_with("RUN ID"), "{table}");
    assert!(table.lines().nth(1).unwrap().contains("success"), "{table}");
    let out = cli.run(&["-o", "json", "runs", "cli-p"]).await;
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["state"], "success");
    let out = cli.run(&["logs", "cli-p", "--all"]).await;
    assert_eq!(stdout(&out), "from-cli\n");
    let out = cli.run(&["status"]).await;
    assert!(out.status.success(), "{out:?}");
    let version = format!(
        "v{}",
        omjob_testbed::controlplane::install::kubernetes_version().unwrap()
    );
    assert!(stdout(&out).contains(&version), "{out:?}");

    let out = cli.run(&["run", "missing"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pipeline 'missing'"),
        "{out:?}"
    );
    let out = cli.run(&["delete", "cli-p"]).await;
    assert!(
        out.status.success() && stdout(&out).contains("Pipeline deleted successfully"),
        "{out:?}"
    );
}
