//! The CR's status as §4.4 layers it: the Ready condition and `observedGeneration` on every
//! pass, the declared `status.fields` only after a successful one. Pure, so the layering and
//! the `lastTransitionTime` rule are tested without a cluster.

use serde_json::{Map, Value, json};

/// The one condition type the runtime writes.
pub const READY: &str = "Ready";
/// Ready's reason after a successful pass.
pub const SUCCEEDED: &str = "ReconcileSucceeded";
/// Ready's reason after a failed pass.
pub const FAILED: &str = "ReconcileError";

/// Longest Ready message kept; Orkestra cuts longer ones and appends `...`.
const MAX_MESSAGE: usize = 253;

/// The status to merge into the CR's. `outcome` is the declared fields on success or the error
/// message on failure. `lastTransitionTime` is kept from `current` while Ready's status stays
/// the same (§13.4: Orkestra restamps it on every pass, which turns every pass into a write).
pub fn desired(
    current: Option<&Value>,
    generation: Option<i64>,
    outcome: Result<&Map<String, Value>, &str>,
    now: &str,
) -> Value {
    let (ready, reason, message) = match outcome {
        Ok(_) => ("True", SUCCEEDED, String::new()),
        Err(e) => ("False", FAILED, cut(e)),
    };
    let previous = current
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == READY));
    let since = previous
        .filter(|c| c["status"] == ready)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    let mut condition = json!({
        "type": READY,
        "status": ready,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    });
    let mut status = Map::new();
    if let Some(g) = generation {
        condition["observedGeneration"] = json!(g);
        status.insert("observedGeneration".into(), json!(g));
    }
    if let Ok(fields) = outcome {
        for (k, v) in fields {
            status.insert(k.clone(), v.clone());
        }
    }
    status.insert("conditions".into(), json!([condition]));
    Value::Object(status)
}

fn cut(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut s: String = message.chars().take(MAX_MESSAGE).collect();
    s.push_str("...");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_writes_ready_true_the_generation_and_the_declared_fields() {
        let fields = Map::from_iter([("phase".to_owned(), json!("Running"))]);
        let s = desired(None, Some(1), Ok(&fields), "2026-01-01T00:00:00Z");
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["observedGeneration"], 1);
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][0]["reason"], SUCCEEDED);
    }

    #[test]
    fn failure_keeps_the_fields_out_and_cuts_a_long_message() {
        let long = "x".repeat(300);
        let s = desired(None, Some(2), Err(&long), "t");
        assert!(s.get("phase").is_none());
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["message"].as_str().unwrap().len(), 256);
    }

    #[test]
    fn the_transition_time_stays_until_ready_flips() {
        let fields = Map::new();
        let first = desired(None, Some(1), Ok(&fields), "t1");
        let again = desired(Some(&first), Some(1), Ok(&fields), "t2");
        assert_eq!(again["conditions"][0]["lastTransitionTime"], "t1");
        let failed = desired(Some(&again), Some(1), Err("boom"), "t3");
        assert_eq!(failed["conditions"][0]["lastTransitionTime"], "t3");
    }
}
