//! The control panel in a real browser: the `omjob-operator` binary runs against the testbed
//! (under its deployed ClusterRole), and headless Chromium opens its pages. Each test checks what
//! a person would see: the timeline's bars and colours, the live configuration, the next slots,
//! and that hostile strings from a resource stay text. Screenshots go to
//! `target/screenshots/panel_browser/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    Harness, omjob,
    process::{OperatorProcess, Options, free_port},
    wait_phase,
};
use kube::{Api, api::PostParams};
use omjob_api::{CronOMJob, Phase};
use omjob_testbed::browser::{Browser, ConsoleEntry};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const LIMIT: Duration = Duration::from_secs(90);
const SCREENSHOTS: &str = "panel_browser";
/// `--bad` and `--good` in the stylesheet, as the browser computes them.
const FAILED_FILL: &str = "rgb(197, 34, 31)";
const SUCCEEDED_FILL: &str = "rgb(30, 142, 62)";
const SCRIPT_PAYLOAD: &str = "<script>document.title='pwned';window.__xss=1</script>";
const IMG_PAYLOAD: &str = "\"><img src=x onerror=\"window.__xss=2;document.title='pwned'\">";

/// An operator process serving the panel for one test namespace.
struct Panel {
    h: Harness,
    op: OperatorProcess,
}

impl Panel {
    /// Starts `omjob-operator run` with `RECONCILIATION_THREADS=threads` and waits for `/ready`.
    async fn start(prefix: &str, threads: u16) -> Self {
        let h = Harness::prepare(prefix).await;
        let port = free_port();
        let env = [
            ("WATCH_NAMESPACES", h.ns().to_owned()),
            ("OPERATOR_NAMESPACE", h.ns().to_owned()),
            ("POD_NAME", format!("{prefix}-operator")),
            ("HEALTH_CHECK_PORT", port.to_string()),
            ("LEADER_ELECTION", "false".to_owned()),
            ("RECONCILIATION_THREADS", threads.to_string()),
            ("LOG_FORMAT", "text".to_owned()),
        ];
        let kubeconfig = h
            .operator_credentials
            .write_kubeconfig(&h.trace_dir.path().join("operator.kubeconfig"));
        let mut op = OperatorProcess::start_with(&h, &Options::single(prefix), &kubeconfig, &env, port);
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if http_get(port, "/ready", "GET")
                .await
                .is_some_and(|(code, _, _)| code == 200)
            {
                break;
            }
            assert!(op.is_running(), "the operator exited:\n{}", op.output());
            assert!(
                tokio::time::Instant::now() < deadline,
                "never ready:\n{}",
                op.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self { h, op }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.op.health_port)
    }
}

/// `method path` on the operator's port: (status, headers, body).
async fn http_get(port: u16, path: &str, method: &str) -> Option<(u16, String, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(
        format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    Some((code, head.to_ascii_lowercase(), body.to_owned()))
}

async fn text(b: &Browser, css: &str) -> String {
    b.text(css)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no element {css}"))
}

async fn count(b: &Browser, css: &str) -> usize {
    b.count(css).await.unwrap()
}

async fn attr(b: &Browser, css: &str, name: &str) -> Option<String> {
    b.attr(css, name).await.unwrap()
}

async fn eval_str(b: &Browser, script: &str) -> String {
    b.eval_string(script).await.unwrap()
}

fn errors(log: &[ConsoleEntry]) -> Vec<&ConsoleEntry> {
    ConsoleEntry::errors(log)
}

#[tokio::test]
async fn a_failed_main_stage_draws_two_bars_coloured_by_outcome_with_the_exit_code() {
    let p = Panel::start("panel-fail", 5).await;
    p.h.create(omjob(
        &p.h,
        "ingest",
        "echo reading source; echo connection refused >&2; exit 3",
        |_| {},
    ))
    .await;
    let done = wait_phase(&p.h, "ingest", LIMIT).await;
    assert_eq!(done.status.unwrap().phase, Some(Phase::Failed));

    let b = Browser::start(SCREENSHOTS).await.unwrap();
    b.goto(&p.url(&format!("/ui/crd/omjob/cr/{}/ingest", p.h.ns())))
        .await
        .unwrap();
    assert_eq!(count(&b, "svg.timeline rect.bar").await, 2, "exactly two bars");
    let main = r#"rect.bar[data-label="main"]"#;
    let exit = r#"rect.bar[data-label="exit handler"]"#;
    assert_eq!(attr(&b, main, "data-outcome").await.as_deref(), Some("failed"));
    assert_eq!(attr(&b, exit, "data-outcome").await.as_deref(), Some("succeeded"));
    let fill = |sel: &str| format!("return getComputedStyle(document.querySelector('{sel}')).fill;");
    assert_eq!(eval_str(&b, &fill(main)).await, FAILED_FILL);
    assert_eq!(eval_str(&b, &fill(exit)).await, SUCCEEDED_FILL);
    // Both bars have real widths from the container times (not the not-started placeholder).
    for sel in [main, exit] {
        let width: f64 = attr(&b, sel, "width").await.unwrap().parse().unwrap();
        assert!(width >= 4.0, "{sel} width {width}");
    }
    assert_eq!(
        text(&b, r#".stage[data-stage="main stage"] .exit-code"#).await,
        "3"
    );
    assert_eq!(
        text(&b, r#".stage[data-stage="main stage"] .reason"#).await,
        "Error"
    );
    assert_eq!(
        text(&b, r#".stage[data-stage="exit handler"] .exit-code"#).await,
        "0"
    );
    let main_log = text(&b, r#".stage[data-stage="main stage"] pre.log"#).await;
    assert!(main_log.contains("connection refused"), "{main_log}");
    assert_eq!(text(&b, "#phase").await, "Failed");
    assert_eq!(count(&b, "#children .present").await, 2);
    b.screenshot("omjob-instance").await.unwrap();

    b.goto(&p.url("/ui/crd/omjob/cr")).await.unwrap();
    assert_eq!(text(&b, r#"tr[data-name="ingest"] .badge"#).await, "Failed");
    b.screenshot("omjob-instances").await.unwrap();
    assert_eq!(
        errors(&b.console_log().await.unwrap()),
        Vec::<&ConsoleEntry>::new()
    );
    b.close().await;
}

#[tokio::test]
async fn the_omjob_crd_page_shows_every_section_with_the_running_operators_values() {
    let p = Panel::start("panel-crd", 7).await;
    let b = Browser::start(SCREENSHOTS).await.unwrap();

    b.goto(&p.url("/ui/")).await.unwrap();
    assert_eq!(count(&b, "tr[data-crd]").await, 2);
    assert_eq!(
        attr(&b, r#"tr[data-crd="omjob"] .state"#, "data-state")
            .await
            .as_deref(),
        Some("healthy")
    );
    assert_eq!(
        text(&b, r#"tr[data-crd="cronomjob"] td.num"#).await,
        "7",
        "workers column"
    );
    b.screenshot("dashboard").await.unwrap();

    b.goto(&p.url("/ui/crd/omjob")).await.unwrap();
    let ids: Vec<String> = b
        .eval(
            "return [...document.querySelectorAll('main > section, main > div.title-block')].map(e => e.id);",
        )
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "title",
            "overview",
            "reconcile-mode",
            "configuration",
            "child-resources",
            "kubectl-reference",
            "access-control"
        ],
        "seed 004's sections in order; no Dependencies section without dependencies"
    );
    assert_eq!(
        attr(&b, "#title .state", "data-state").await.as_deref(),
        Some("healthy")
    );
    assert!(text(&b, "#title .operator").await.starts_with("omjob-operator "));
    assert!(text(&b, "#title .uptime").await.starts_with("uptime "));
    let overview = text(&b, "#overview").await;
    assert!(
        overview.contains("pipelines.openmetadata.org/v1, Resource=omjobs"),
        "{overview}"
    );
    assert!(
        overview.contains(p.h.ns()),
        "operator namespace from OPERATOR_NAMESPACE: {overview}"
    );
    assert_eq!(
        attr(&b, "#reconcile-mode", "data-mode").await.as_deref(),
        Some("typed controller")
    );
    // From the process's environment, not a default (the default is 5).
    assert_eq!(text(&b, "#configuration strong.workers").await, "7");
    assert_eq!(
        text(&b, r#"tr[data-setting="RECONCILIATION_THREADS"] td.value"#).await,
        "7"
    );
    assert_eq!(
        text(&b, r#"tr[data-setting="WATCH_NAMESPACES"] td.value"#).await,
        p.h.ns()
    );
    assert!(
        text(&b, r#"tr[data-setting="LEADER_ELECTION"] td.value"#)
            .await
            .starts_with("disabled")
    );
    assert_eq!(
        text(
            &b,
            r#"tr[data-setting="MAIN_POD_PENDING_TIMEOUT_SECONDS"] td.value"#
        )
        .await,
        "10m0s"
    );
    let children = text(&b, "#child-resources table").await;
    assert!(
        children.contains("Pod (main)") && children.contains("Pod (exit handler)"),
        "{children}"
    );
    assert!(
        text(&b, "#kubectl-reference")
            .await
            .contains("kubectl get omjobs -n <namespace>")
    );
    let rbac = text(&b, "#access-control").await;
    assert!(rbac.contains("ClusterRole omjob-operator"), "{rbac}");
    assert!(rbac.contains("omjobs/status") && rbac.contains("core"), "{rbac}");
    b.screenshot("omjob-crd").await.unwrap();

    b.goto(&p.url("/ui/crd/cronomjob")).await.unwrap();
    assert_eq!(text(&b, "#configuration strong.workers").await, "7");
    b.screenshot("cronomjob-crd").await.unwrap();
    assert_eq!(
        errors(&b.console_log().await.unwrap()),
        Vec::<&ConsoleEntry>::new()
    );
    b.close().await;

    // Headers and read-only-ness, checked on the wire.
    let port = p.op.health_port;
    let (code, head, _) = http_get(port, "/ui/crd/omjob", "GET").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'; style-src 'self';"),
        "{head}"
    );
    assert!(
        head.contains("x-content-type-options: nosniff") && head.contains("referrer-policy: no-referrer")
    );
    let (code, _, _) = http_get(port, "/ui/crd/omjob", "POST").await.unwrap();
    assert_eq!(code, 405, "the panel is read-only");
    let (code, _, _) = http_get(port, "/ui/crd/nope", "GET").await.unwrap();
    assert_eq!(code, 404);
}

#[tokio::test]
async fn hostile_strings_in_an_omjob_render_as_text_and_run_no_script() {
    let p = Panel::start("panel-xss", 5).await;
    let script = format!(
        "echo '{SCRIPT_PAYLOAD}'; echo '{}'",
        IMG_PAYLOAD.replace('\'', "")
    );
    p.h.create(omjob(&p.h, "xss", &script, |o| {
        o["metadata"]["annotations"] = json!({"note": SCRIPT_PAYLOAD, "owner": IMG_PAYLOAD});
        o["spec"]["mainPodSpec"]["args"] = json!([SCRIPT_PAYLOAD, IMG_PAYLOAD]);
    }))
    .await;
    wait_phase(&p.h, "xss", LIMIT).await;

    let b = Browser::start(SCREENSHOTS).await.unwrap();
    b.goto(&p.url(&format!("/ui/crd/omjob/cr/{}/xss", p.h.ns())))
        .await
        .unwrap();
    let title = b.client().title().await.unwrap();
    assert_eq!(title, "xss · omjob-operator");
    assert_eq!(eval_str(&b, "return typeof window.__xss;").await, "undefined");
    assert_eq!(count(&b, "img").await, 0, "no element from the payload");
    assert_eq!(count(&b, "script").await, 1, "only the panel's own script");
    assert_eq!(
        attr(&b, "script", "src").await.as_deref(),
        Some("/ui/static/panel.js")
    );
    let metadata = text(&b, "#metadata").await;
    assert!(
        metadata.contains(SCRIPT_PAYLOAD) && metadata.contains(IMG_PAYLOAD),
        "{metadata}"
    );
    let spec = text(&b, "#spec").await;
    assert!(spec.contains("document.title='pwned'"), "{spec}");
    let log = text(&b, r#".stage[data-stage="main stage"] pre.log"#).await;
    // The shell ate the payload's inner quotes; the tags themselves are in the log, as text.
    assert!(
        log.contains("<script>document.title=") && log.contains("<img src=x onerror="),
        "{log}"
    );
    // The panel's own script does run under the policy: the live refresh swaps <main> and says so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text(&b, "#refresh-status").await.starts_with("live ·") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refresh script never ran"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        b.client().title().await.unwrap(),
        title,
        "a refreshed <main> runs nothing either"
    );
    assert_eq!(eval_str(&b, "return typeof window.__xss;").await, "undefined");
    assert_eq!(count(&b, "img").await, 0);
    b.screenshot("omjob-xss").await.unwrap();
    // No CSP report either: nothing from the payload was ever parsed as markup.
    let log = b.console_log().await.unwrap();
    assert_eq!(errors(&log), Vec::<&ConsoleEntry>::new(), "{log:?}");
    b.close().await;
}

#[tokio::test]
async fn a_cronomjob_page_lists_its_next_five_slots_and_its_runs() {
    let p = Panel::start("panel-cron", 5).await;
    let cron: CronOMJob = serde_json::from_value(json!({
        "apiVersion": omjob_api::API_VERSION, "kind": "CronOMJob",
        "metadata": {"name": "nightly", "namespace": p.h.ns()},
        "spec": {
            "schedule": "30 2 * * *", "timeZone": "Europe/Berlin",
            "omJobSpec": {"mainPodSpec": {"image": "ingestion", "serviceAccountName": "openmetadata-ingestion",
                                          "command": ["sh", "-c", "true"]}}
        }
    }))
    .unwrap();
    let crons: Api<CronOMJob> = Api::namespaced(p.h.admin.clone(), p.h.ns());
    let cron = crons.create(&PostParams::default(), &cron).await.unwrap();
    let uid = cron.metadata.uid.clone().unwrap();
    // Two earlier runs, owned as the controller's own would be, so the timeline has history.
    for (name, script) in [("nightly-ok", "echo done"), ("nightly-failed", "exit 2")] {
        p.h.create(omjob(&p.h, name, script, |o| {
            o["metadata"]["ownerReferences"] = json!([{
                "apiVersion": omjob_api::API_VERSION, "kind": "CronOMJob", "name": "nightly", "uid": uid,
                "controller": true
            }]);
        }))
        .await;
        wait_phase(&p.h, name, LIMIT).await;
    }
    let b = Browser::start(SCREENSHOTS).await.unwrap();
    b.goto(&p.url(&format!("/ui/crd/cronomjob/cr/{}/nightly", p.h.ns())))
        .await
        .unwrap();
    let slots: Vec<String> = b
        .eval("return [...document.querySelectorAll('#next-slots ol.slots li')].map(e => e.textContent);")
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slots.len(), 5, "{slots:?}");
    for slot in &slots {
        assert!(
            slot.contains(" 02:30 CE") || slot.contains(" 03:00 CE"),
            "Berlin time: {slot}"
        );
        assert!(slot.contains("UTC"), "{slot}");
    }
    assert!(text(&b, "#next-slots").await.contains("Europe/Berlin"));
    assert_eq!(count(&b, "svg.timeline rect.bar").await, 2);
    assert_eq!(
        attr(&b, r#"rect.bar[data-label="nightly-failed"]"#, "data-outcome")
            .await
            .as_deref(),
        Some("failed")
    );
    assert_eq!(
        attr(&b, r#"rect.bar[data-label="nightly-ok"]"#, "data-outcome")
            .await
            .as_deref(),
        Some("succeeded")
    );
    b.screenshot("cronomjob-instance").await.unwrap();
    assert_eq!(
        errors(&b.console_log().await.unwrap()),
        Vec::<&ConsoleEntry>::new()
    );
    b.close().await;
}
