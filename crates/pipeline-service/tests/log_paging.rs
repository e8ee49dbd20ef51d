//! Log paging of a 50 MB log through the `pipelines serve` binary, running as its own process
//! under the service's Role: every page, that the pages concatenate to the original bytes, and
//! that the service's peak memory stays far below the log's size. Times per page are printed
//! (not asserted; the bench command is where figures live).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{process::Stdio, time::Duration};

use common::{eventually, world};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TOKEN: &str = "paging-token-0123456789";
const LINES: usize = 500_000;

/// Line `i` of the log the pod prints (the same formula as its Python command).
fn line(i: usize) -> String {
    format!("{i:08} {} ü€\n", "abcdefghij".repeat(9))
}

/// One HTTP/1.1 request on a fresh connection; returns status and body.
async fn http(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = std::str::from_utf8(&response[9..12]).unwrap().parse().unwrap();
    (status, response[split + 4..].to_vec())
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_50_mb_log_pages_back_to_the_original_bytes_in_bounded_memory() {
    let w = world("ps-logs", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig =
        common::service_account_kubeconfig(&w.admin, w.ns.name(), common::SERVICE_SA, dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipelines"))
        .arg("serve")
        .env("PIPELINES_NAMESPACE", w.ns.name())
        .env("PIPELINES_IN_CLUSTER", "false")
        .env("PIPELINES_KUBECONFIG_PATH", &kubeconfig)
        .env("PIPELINES_LISTEN", format!("127.0.0.1:{port}"))
        .env("PIPELINES_API_TOKENS", TOKEN)
        .env("PIPELINES_BACKOFF_LIMIT", "0")
        .env("PIPELINES_INGESTION_IMAGE", "ingestion")
        .env("PIPELINES_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    eventually(Duration::from_secs(30), "the service to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()
    })
    .await;

    let script = format!(
        "import sys\nw = sys.stdout.write\nfor i in range({LINES}):\n    w('%08d ' % i + 'abcdefghij' * 9 + ' \\u00fc\\u20ac\\n')\nsys.stdout.flush()"
    );
    let def = json!({"pipelineType": "metadata", "workflowConfig": "a: 1",
                     "overrides": {"command": ["python3", "-c", script]}});
    let (code, body) = http(port, "PUT", "/api/v1/pipelines/big", Some(def)).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let (code, body) = http(port, "POST", "/api/v1/pipelines/big/runs", None).await;
    assert_eq!(code, 201);
    let run_id = serde_json::from_slice::<Value>(&body).unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(Duration::from_secs(120), "the run to succeed", || async {
        let (_, body) = http(port, "GET", &format!("/api/v1/pipelines/big/runs/{run_id}"), None).await;
        (serde_json::from_slice::<Value>(&body).unwrap()["state"] == "success").then_some(())
    })
    .await;
    let rss_before = peak_rss_kib(pid);

    let expected_len: usize = (0..LINES).map(|i| line(i).len()).sum();
    assert!(expected_len > 50_000_000, "{expected_len}");
    // Walk the pages twice: the first walk spools the finished log, the second reads the spool.
    for pass in ["first", "second"] {
        let (mut next_line, mut pending) = (0usize, Vec::<u8>::new());
        let mut after: Option<String> = None;
        let (mut pages, mut bytes) = (0usize, 0usize);
        let mut total: usize;
        let started = std::time::Instant::now();
        loop {
            let path = match &after {
                Some(a) => format!("/api/v1/pipelines/big/logs?after={a}"),
                None => "/api/v1/pipelines/big/logs".to_owned(),
            };
            let (code, body) = http(port, "GET", &path, None).await;
            assert_eq!(code, 200);
            let page: Value = serde_json::from_slice(&body).unwrap();
            let chunk = page["ingestion_task"].as_str().unwrap().as_bytes();
            assert!(chunk.len() <= pipeline_service::logs::CHUNK_BYTES);
            total = page["total"].as_str().unwrap().parse().unwrap();
            // Compare with the original, generated line by line (never all 50 MB at once).
            pending.extend_from_slice(chunk);
            let mut consumed = 0;
            while next_line < LINES {
                let l = line(next_line);
                if pending.len() - consumed < l.len() {
                    break;
                }
                assert_eq!(
                    &pending[consumed..consumed + l.len()],
                    l.as_bytes(),
                    "page {pages}, line {next_line}"
                );
                consumed += l.len();
                next_line += 1;
            }
            pending.drain(..consumed);
            bytes += chunk.len();
            pages += 1;
            match page.get("after") {
                Some(a) => after = Some(a.as_str().unwrap().to_owned()),
                None => break,
            }
        }
        assert_eq!((next_line, pending.len(), bytes), (LINES, 0, expected_len));
        assert_eq!(pages, total);
        assert_eq!(pages, expected_len.div_ceil(pipeline_service::logs::CHUNK_BYTES));
        let per_page = started.elapsed() / u32::try_from(pages).unwrap();
        println!("{pass} walk: {pages} pages of a {bytes}-byte log, {per_page:?} per page");
    }
    let (code, body) = http(
        port,
        "GET",
        &format!("/api/v1/pipelines/big/logs?after={}", 1000),
        None,
    )
    .await;
    assert_eq!(
        (code, serde_json::from_slice::<Value>(&body).unwrap()),
        (400, json!({"ingestion_task": "Invalid pagination index"}))
    );
    let rss = peak_rss_kib(pid);
    println!("service peak RSS: {rss_before} KiB before paging, {rss} KiB after");
    // Bounded memory: paging a 51,758 KiB log grows the service's peak by a few pages at most
    // (each page is held as bytes, as a string and as JSON while it is answered).
    assert!(
        rss - rss_before < 20 * 1024,
        "peak RSS grew from {rss_before} KiB to {rss} KiB"
    );
    child.kill().await.unwrap();
}
