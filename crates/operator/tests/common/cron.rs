//! Harness for CronOMJob integration tests: a namespace with the OMJob controller running
//! in-process (so runs go through their whole lifecycle) and the CronOMJob controller running
//! on an injected clock, which tests can stop and start again to simulate an operator restart.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::Event,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
    runtime::wait::await_condition,
};
use omjob_api::{CronOMJob, OMJob};
use omjob_operator::{
    clock::{Clock, ManualClock, SystemClock},
    cronomjob,
    decode::Lenient,
    metrics::Metrics,
    omjob::{self, decide::Settings},
};
use serde_json::{Value, json};

use super::Harness;
pub use super::poll;

/// A namespace with both controllers.
pub struct CronHarness {
    pub h: Harness,
    pub clock: Arc<dyn Clock>,
    /// Metrics of the CronOMJob controller that runs now (a new one per start).
    pub metrics: Arc<Metrics>,
    omjob_task: tokio::task::JoinHandle<()>,
    cron_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for CronHarness {
    fn drop(&mut self) {
        self.omjob_task.abort();
        for t in &self.cron_tasks {
            t.abort();
        }
    }
}

/// A manual clock an hour behind the wall clock: nothing created now is due until it moves.
pub fn manual_clock() -> ManualClock {
    ManualClock::new(
        Timestamp::now()
            .checked_sub(SignedDuration::from_secs(3600))
            .unwrap(),
    )
}

impl CronHarness {
    /// Both controllers running; the CronOMJob controller reads `clock`.
    pub async fn start(prefix: &str, clock: Arc<dyn Clock>) -> Self {
        Self::start_in(Harness::prepare(prefix).await, clock)
    }

    /// Both controllers running on a namespace from [`Harness::prepare`].
    pub fn start_in(h: Harness, clock: Arc<dyn Clock>) -> Self {
        let ctx = Arc::new(omjob::Context {
            client: h.operator.clone(),
            metrics: Arc::new(Metrics::new()),
            clock: Arc::new(SystemClock),
            settings: Settings::default(),
        });
        let omjob_task = tokio::spawn(omjob::run(
            ctx,
            Some(vec![h.ns().to_owned()]),
            4,
            std::future::pending::<()>(),
        ));
        let mut this = Self {
            h,
            clock,
            metrics: Arc::new(Metrics::new()),
            omjob_task,
            cron_tasks: Vec::new(),
        };
        this.start_cron();
        this
    }

    /// Starts a CronOMJob controller (a fresh one: new cache, new metrics). Starting one while
    /// another runs gives two replicas without leader election.
    pub fn start_cron(&mut self) {
        self.metrics = Arc::new(Metrics::new());
        let ctx = cronomjob::Context {
            client: self.h.operator.clone(),
            metrics: self.metrics.clone(),
            clock: self.clock.clone(),
            // Look at least twice a second, so moving the manual clock is noticed at once.
            settings: cronomjob::decide::Settings {
                max_requeue: Duration::from_millis(500),
                ..Default::default()
            },
        };
        self.cron_tasks.push(tokio::spawn(cronomjob::run(
            ctx,
            Some(vec![self.h.ns().to_owned()]),
            4,
            std::future::pending::<()>(),
        )));
    }

    /// Stops the CronOMJob controllers abruptly, as a crash would.
    pub async fn stop_cron(&mut self) {
        for t in self.cron_tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }

    pub fn ns(&self) -> &str {
        self.h.ns()
    }

    pub fn crons(&self) -> Api<CronOMJob> {
        Api::namespaced(self.h.admin.clone(), self.ns())
    }

    /// Successful CronOMJob reconciles of the running controller.
    pub fn reconciles(&self) -> u64 {
        let text = self.metrics.encode().unwrap();
        text.lines()
            .find(|l| {
                l.starts_with(r#"omjob_reconciliations_total{controller="cronomjob",result="success"}"#)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Returns once the running controller has looked at `name` (and so at the clock) after
    /// this call: twice, it touches the CronOMJob (a watch event, hence a reconcile) and waits
    /// for one more finished pass. A pass still in flight at the first touch may have read the
    /// clock before the call; one that ends after the second touch started after that one ended.
    pub async fn settle(&self, name: &str) {
        for round in 0..2 {
            let before = self.reconciles();
            let touch = json!({"metadata": {"annotations": {"test.omjob.dev/touch": format!("{round}-{}", Timestamp::now())}}});
            self.crons()
                .patch(name, &PatchParams::default(), &Patch::Merge(touch))
                .await
                .unwrap();
            poll(
                "the CronOMJob controller to reconcile",
                Duration::from_secs(30),
                || async { self.reconciles() > before },
            )
            .await;
        }
    }

    pub async fn create(&self, mut obj: Value) -> CronOMJob {
        obj["metadata"]["namespace"] = json!(self.ns());
        let c: CronOMJob = serde_json::from_value(obj).unwrap();
        self.crons().create(&PostParams::default(), &c).await.unwrap()
    }

    pub async fn patch_spec(&self, name: &str, spec: Value) {
        self.crons()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .unwrap();
    }

    /// The OMJobs `cron` controls, oldest slot first. Listed leniently, so that an undecodable
    /// OMJob in the namespace (tests/loose_crds.rs) does not fail the list.
    /// The names of [`CronHarness::runs`], in the same order.
    pub async fn run_names(&self, cron: &CronOMJob) -> Vec<String> {
        self.runs(cron)
            .await
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect()
    }

    pub async fn runs(&self, cron: &CronOMJob) -> Vec<OMJob> {
        let uid = cron.metadata.uid.clone().unwrap();
        let mut list: Vec<OMJob> = Api::<Lenient<OMJob>>::namespaced(self.h.admin.clone(), self.ns())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|o| o.0.ok())
            .filter(|o| o.metadata.owner_references.iter().flatten().any(|r| r.uid == uid))
            .collect();
        list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        list
    }

    /// Waits until `cron` controls runs for which `ok` holds.
    pub async fn wait_runs(&self, cron: &CronOMJob, what: &str, ok: impl Fn(&[OMJob]) -> bool) -> Vec<OMJob> {
        let limit = Duration::from_secs(90);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let runs = self.runs(cron).await;
            if ok(&runs) {
                return runs;
            }
            if tokio::time::Instant::now() > deadline {
                let names: Vec<_> = runs
                    .iter()
                    .map(|o| (o.metadata.name.clone(), o.status.as_ref().and_then(|s| s.phase)))
                    .collect();
                let status = self
                    .crons()
                    .get(cron.metadata.name.as_deref().unwrap())
                    .await
                    .unwrap()
                    .status;
                panic!("no {what} within {limit:?}: runs {names:?}, status {status:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the CronOMJob satisfies `ok`.
    pub async fn wait_cron(&self, name: &str, what: &str, ok: impl Fn(&CronOMJob) -> bool) -> CronOMJob {
        match tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(self.crons(), name, |c: Option<&CronOMJob>| c.is_some_and(&ok)),
        )
        .await
        {
            Ok(c) => c.unwrap().unwrap(),
            Err(_) => {
                let c = self.crons().get(name).await.unwrap();
                panic!("CronOMJob {name}: no {what} within 60s; status {:?}", c.status)
            }
        }
    }

    /// Events about the CronOMJob `name` with `reason`.
    pub async fn events(&self, name: &str, reason: &str) -> Vec<Event> {
        Api::<Event>::namespaced(self.h.admin.clone(), self.ns())
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }

    /// Waits for an event about `name` with `reason`, and returns its message.
    pub async fn wait_event(&self, name: &str, reason: &str) -> String {
        poll(&format!("a {reason} event"), Duration::from_secs(30), || async {
            !self.events(name, reason).await.is_empty()
        })
        .await;
        self.events(name, reason).await[0]
            .message
            .clone()
            .unwrap_or_default()
    }

    /// Moves a manual clock to one second past the first slot of `step` seconds after `after`.
    pub fn move_past_next_slot(clock: &ManualClock, after: Timestamp, step: i64) {
        let next = (after.as_second() / step + 1) * step + 1;
        clock.set(Timestamp::from_second(next).unwrap());
    }
}

/// A CronOMJob whose runs execute `main_script` and whose exit handler appends
/// "$pipelineStatus $jobName $pipelineRunId" to `<trace_dir>/<cron>.runs`.
pub fn cronomjob(
    h: &CronHarness,
    name: &str,
    schedule: &str,
    main_script: &str,
    edit: impl FnOnce(&mut Value),
) -> Value {
    let trace = h.h.trace_file(name).display().to_string();
    let mut c = json!({
        "apiVersion": omjob_api::API_VERSION, "kind": "CronOMJob",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/pipeline": name}},
        "spec": {
            "schedule": schedule,
            "omJobSpec": {
                "mainPodSpec": {"image": "ingestion", "serviceAccountName": "openmetadata-ingestion", "command": ["sh", "-c", main_script],
                    "env": [{"name": "pipelineRunId", "value": "{{ omjob.uid }}"}]},
                "exitHandlerSpec": {"image": "ingestion", "serviceAccountName": "openmetadata-ingestion",
                    "command": ["sh", "-c", "echo \"$pipelineStatus $jobName $pipelineRunId\" >> $TRACE"],
                    "env": [{"name": "TRACE", "value": trace},
                            {"name": "jobName", "value": "{{ omjob.name }}"},
                            {"name": "pipelineRunId", "value": "{{ omjob.uid }}"}]}
            }
        }
    });
    edit(&mut c);
    c
}
