//! The OMJob and CronOMJob CRD pages: what the operator is, how it reconciles, the settings this
//! process runs with (read from its live configuration, not from defaults), the pods or OMJobs it
//! creates, the kubectl commands of OpenMetadata's README, and its ClusterRole.

use omjob_api::{API_VERSION, GROUP};
use omjob_panel::{
    CrdPage, State,
    crd_page::{ChildKind, Configuration, KubectlCommand, Overview, ReconcileMode, Setting},
    duration::go_duration,
};

use super::{ENTRY_CRONOMJOB, ENTRY_OMJOB, PanelState, rbac};
use crate::http::{LEADER_ELECTION_DISABLED, LEADER_ELECTION_ENABLED, OPERATOR_NAME};

fn setting(name: &str, value: impl Into<String>, meaning: &str) -> Setting {
    Setting {
        name: name.to_owned(),
        value: value.into(),
        meaning: meaning.to_owned(),
    }
}

fn leader_setting(state: &PanelState) -> Setting {
    let c = &state.config;
    let role = if state.is_leader() { "leading" } else { "standby" };
    let value = match state.leader_election() {
        LEADER_ELECTION_ENABLED => format!(
            "enabled, {role} (Lease {} in {}, identity {})",
            c.lease_name, c.operator_namespace, c.identity
        ),
        LEADER_ELECTION_DISABLED => {
            "disabled (LEADER_ELECTION=false): this replica always reconciles".to_owned()
        }
        _ => "forbidden: the Lease may not be read, so this replica runs without election".to_owned(),
    };
    setting(
        "LEADER_ELECTION",
        value,
        "whether replicas elect one leader through a Lease",
    )
}

fn kubectl(singular: &str, plural: &str, extra: Vec<KubectlCommand>) -> Vec<KubectlCommand> {
    let cmd = |title: &str, command: String| KubectlCommand {
        title: title.to_owned(),
        command,
    };
    let mut v = vec![
        cmd("List resources", format!("kubectl get {plural} -n <namespace>")),
        cmd("List in every namespace", format!("kubectl get {plural} -A")),
        cmd(
            "Describe a resource",
            format!("kubectl describe {singular} <name> -n <namespace>"),
        ),
        cmd(
            "Get YAML",
            format!("kubectl get {singular} <name> -n <namespace> -o yaml"),
        ),
        cmd(
            "Watch for changes",
            format!("kubectl get {plural} -n <namespace> -w"),
        ),
        cmd(
            "Delete a resource",
            format!("kubectl delete {singular} <name> -n <namespace>"),
        ),
    ];
    v.extend(extra);
    v.push(cmd(
        "Events about a resource",
        format!(
            "kubectl get events --field-selector involvedObject.kind={}",
            kind_of(singular)
        ),
    ));
    v.push(cmd(
        "Operator logs",
        "kubectl logs -l app.kubernetes.io/name=omjob-operator -f".to_owned(),
    ));
    v.push(cmd(
        "Check the CRD is installed",
        format!("kubectl get crd {plural}.{GROUP}"),
    ));
    v
}

fn kind_of(singular: &str) -> &'static str {
    if singular == "cronomjob" {
        "CronOMJob"
    } else {
        "OMJob"
    }
}

fn base(
    state: &PanelState,
    (s, reason): (State, Option<String>),
    kind: &str,
    plural: &str,
    entry: &str,
) -> CrdPage {
    CrdPage {
        name: entry.to_owned(),
        description: format!("{kind} CRD, GVK: {API_VERSION}, Kind={kind}"),
        state: s,
        state_reason: reason,
        operator: OPERATOR_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime: Some(state.uptime()),
        platform: None,
        overview: Overview {
            api_version: API_VERSION.to_owned(),
            kind: kind.to_owned(),
            gvr: format!("{API_VERSION}, Resource={plural}"),
            namespaced: true,
            operator_namespace: Some(state.config.operator_namespace.clone()),
        },
        mode: ReconcileMode::TypedController { paragraphs: vec![] },
        configuration: Configuration::default(),
        dependencies: vec![],
        children: vec![],
        kubectl: vec![],
        access: rbac::access_control(),
        endpoints: vec![],
    }
}

/// The OMJob CRD page.
#[must_use]
pub fn omjob(state: &PanelState, health: (State, Option<String>)) -> CrdPage {
    let c = &state.config;
    let mut page = base(state, health, "OMJob", "omjobs", ENTRY_OMJOB);
    page.mode = ReconcileMode::TypedController {
        paragraphs: vec![
            "Each OMJob runs its main pod; when the main stage ends, however it ends, the controller runs the \
             exit-handler pod exactly once and tells it the outcome (pipelineStatus, mainPodExitCode, \
             mainPodTerminationReason)."
                .to_owned(),
            "Pods are watched, so a pod that finishes, is deleted or loses its node is seen at once; the polling \
             interval only bounds how long a missed event could go unnoticed."
                .to_owned(),
            "A stage that ended (an exit pod to create, a run to finish) takes a permit from a lane of its own, so \
             it never waits behind new OMJobs' main pods or routine status updates."
                .to_owned(),
        ],
    };
    page.configuration = configuration(
        state,
        "OMJobs",
        vec![
            setting(
                "POLLING_INTERVAL_SECONDS",
                go_duration(c.polling_interval),
                "a running OMJob is looked at again after 30 times this (at least 5 min), as a safety net",
            ),
            setting(
                "REQUEUE_DELAY_SECONDS",
                go_duration(c.requeue_delay),
                "longest wait before a failed reconcile is retried (retries start at 0.5 s and double)",
            ),
            setting(
                "MAIN_POD_PENDING_TIMEOUT_SECONDS",
                go_duration(c.main_pod_pending_timeout),
                "how long a main pod may stay unstarted before the run ends with StartTimeout",
            ),
            setting(
                "NODE_LOST_GRACE_SECONDS",
                go_duration(c.node_lost_grace),
                "how long a pod may sit on a lost node before the run ends with NodeLost",
            ),
            setting(
                "EXIT_HANDLER_MAX_ATTEMPTS",
                c.exit_handler_max_attempts.to_string(),
                "exit-handler pods created at most, replacements of lost ones included",
            ),
        ],
    );
    page.children = vec![
        ChildKind {
            kind: "Pod (main)".to_owned(),
            count: "1".to_owned(),
            phases: vec!["main stage".to_owned()],
        },
        ChildKind {
            kind: "Pod (exit handler)".to_owned(),
            count: "1".to_owned(),
            phases: vec!["after the main stage ends".to_owned()],
        },
    ];
    page.kubectl = kubectl(
        "omjob",
        "omjobs",
        vec![
            KubectlCommand {
                title: "Pods of an OMJob".to_owned(),
                command: "kubectl get pods -l omjob.pipelines.openmetadata.org/name=<name> -n <namespace>"
                    .to_owned(),
            },
            KubectlCommand {
                title: "Exit-handler logs".to_owned(),
                command:
                    "kubectl logs -l omjob.pipelines.openmetadata.org/pod-type=exit-handler -n <namespace>"
                        .to_owned(),
            },
        ],
    );
    page
}

/// The Configuration section of a typed controller: its threads and namespaces, `extra`
/// settings, then the leader state.
fn configuration(state: &PanelState, kinds: &str, extra: Vec<Setting>) -> Configuration {
    let c = &state.config;
    let mut settings = vec![
        setting(
            "RECONCILIATION_THREADS",
            c.reconciliation_threads.to_string(),
            &format!("{kinds} reconciled at once"),
        ),
        setting(
            "WATCH_NAMESPACES",
            c.watch_namespaces.to_string(),
            &format!("the namespaces whose {kinds} are reconciled"),
        ),
    ];
    settings.extend(extra);
    settings.push(leader_setting(state));
    Configuration {
        workers: Some(u32::from(c.reconciliation_threads)),
        workers_source: Some("RECONCILIATION_THREADS".to_owned()),
        max_queue_depth: None,
        resync: None,
        settings,
    }
}

/// The CronOMJob CRD page.
#[must_use]
pub fn cronomjob(state: &PanelState, health: (State, Option<String>)) -> CrdPage {
    let mut page = base(state, health, "CronOMJob", "cronomjobs", ENTRY_CRONOMJOB);
    page.mode = ReconcileMode::TypedController {
        paragraphs: vec![
            "Each CronOMJob creates one OMJob per due slot of its schedule, read in its time zone, with Kubernetes \
             CronJob semantics: missed slots, the starting deadline, the concurrency policy, suspend, and history \
             limits."
                .to_owned(),
        ],
    };
    page.configuration = configuration(state, "CronOMJobs", Vec::new());
    page.children = vec![ChildKind {
        kind: "OMJob".to_owned(),
        count: "one per slot".to_owned(),
        phases: vec!["at each due slot".to_owned()],
    }];
    page.kubectl = kubectl(
        "cronomjob",
        "cronomjobs",
        vec![KubectlCommand {
            title: "Runs of a CronOMJob".to_owned(),
            command: "kubectl get omjobs -l app.kubernetes.io/pipeline=<pipeline> -n <namespace>".to_owned(),
        }],
    );
    page
}
