//! Whether a cached object already holds everything a rendered child asks for, so the
//! server-side apply can be skipped on a pass that would change nothing.

use serde_json::Value;

/// True when every field of `desired` is in `actual` with the same value. Maps may have more
/// keys in `actual` (server defaults, other managers' fields); lists must have the same length
/// and each item must cover its counterpart, because a list is replaced as a whole by an apply
/// of an atomic list and matched by position here for the keyed ones (containers by order).
pub fn covers(actual: &Value, desired: &Value) -> bool {
    match (actual, desired) {
        (Value::Object(a), Value::Object(d)) => d.iter().all(|(k, dv)| match a.get(k) {
            Some(av) => covers(av, dv),
            // An apply of `null` clears a field, so an absent field already agrees with it.
            None => dv.is_null(),
        }),
        (Value::Array(a), Value::Array(d)) => {
            a.len() == d.len() && a.iter().zip(d).all(|(a, d)| covers(a, d))
        }
        (a, d) => a == d,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_defaults_and_foreign_fields_do_not_count_as_drift() {
        let desired = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "w", "image": "python:3.12-slim"}]}}}});
        let actual = json!({"metadata": {"uid": "u"}, "spec": {"replicas": 3, "template": {"spec": {
            "containers": [{"name": "w", "image": "python:3.12-slim", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always"}}}, "status": {"replicas": 3}});
        assert!(covers(&actual, &desired));
    }

    #[test]
    fn a_changed_value_a_missing_key_or_another_list_length_is_drift() {
        let desired = json!({"spec": {"replicas": 3, "items": [1, 2]}, "data": {"A": "x"}});
        assert!(!covers(
            &json!({"spec": {"replicas": 2, "items": [1, 2]}, "data": {"A": "x"}}),
            &desired
        ));
        assert!(!covers(
            &json!({"spec": {"replicas": 3, "items": [1, 2]}}),
            &desired
        ));
        assert!(!covers(
            &json!({"spec": {"replicas": 3, "items": [1]}, "data": {"A": "x"}}),
            &desired
        ));
        assert!(covers(
            &json!({"spec": {"replicas": 3, "items": [1, 2]}, "data": {"A": "x", "B": "y"}}),
            &desired
        ));
    }
}
