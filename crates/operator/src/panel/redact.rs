//! What the pages leave out of a spec and of metadata, so that nothing secret is shown.
//!
//! OpenMetadata passes the ingestion workflow's configuration, server token included, as a plain
//! env `value` (`config`), so every literal env value is replaced by its length; `valueFrom`
//! references stay, since they name a Secret key without holding its data. The
//! `last-applied-configuration` annotation repeats the whole spec, values included, and is hidden
//! too.

use serde_json::Value;

/// The annotation `kubectl apply` stores the applied object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Hides every literal env value anywhere in `value` (any `env` array of objects).
pub fn hide_env_values(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "env"
                    && let Value::Array(vars) = v
                {
                    for var in vars.iter_mut() {
                        if let Some(literal) = var.get_mut("value") {
                            let len = literal.as_str().map_or(0, |s| s.chars().count());
                            *literal = Value::String(format!("(hidden: {len} characters)"));
                        }
                    }
                }
                hide_env_values(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hide_env_values),
        _ => {}
    }
}

/// An annotation's value as the page shows it.
#[must_use]
pub fn annotation(key: &str, value: &str) -> String {
    if key == LAST_APPLIED {
        format!(
            "(hidden: the applied object, {} characters)",
            value.chars().count()
        )
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn literal_env_values_are_hidden_and_references_kept() {
        let mut spec = json!({
            "mainPodSpec": {"env": [
                {"name": "config", "value": "jwtToken: abc"},
                {"name": "password", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}
            ]},
            "exitHandlerSpec": {"env": [{"name": "x", "value": "secret"}]}
        });
        hide_env_values(&mut spec);
        let text = spec.to_string();
        assert!(
            !text.contains("jwtToken") && !text.contains("\"secret\""),
            "{text}"
        );
        assert_eq!(spec["mainPodSpec"]["env"][0]["value"], "(hidden: 13 characters)");
        assert_eq!(
            spec["mainPodSpec"]["env"][1]["valueFrom"]["secretKeyRef"]["key"],
            "pw"
        );
    }

    #[test]
    fn the_last_applied_annotation_is_hidden() {
        assert!(!annotation(LAST_APPLIED, "{\"spec\":1}").contains("spec"));
        assert_eq!(annotation("team", "data"), "data");
    }
}
