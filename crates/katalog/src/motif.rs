//! Motifs: reusable fragments imported into a CRD entry with `imports: [{motif, with}]`.
//!
//! Expansion happens once, at load time: the `with:` bindings are checked against the motif's
//! inputs, defaults fill the rest, and every template action that reads an input is replaced by
//! the bound value as text. A binding that is itself a template (`"{{ .spec.image }}"`) thus
//! leaves a runtime template in place.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Admission, StatusBlock, condition::go_text, hooks::HookTemplates};

/// A motif document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Motif {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: MotifMetadata,
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// Flat kinds go to the CR's `onReconcile`, a nested `onCreate:` to its `onCreate`.
    pub resources: Option<HookTemplates>,
    pub status: Option<StatusBlock>,
    pub admission: Option<Admission>,
}

/// `metadata` of a motif.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotifMetadata {
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One declared input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub name: String,
    #[serde(default)]
    pub required: bool,
    pub default: Option<Value>,
    #[serde(rename = "type")]
    pub input_type: Option<String>,
    pub description: Option<String>,
}

/// The text each input stands for, from the bindings and the defaults.
///
/// # Errors
/// One message per unknown binding and per required input left unbound.
pub fn bind(
    inputs: &[Input],
    with: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut errors: Vec<String> = with
        .keys()
        .filter(|k| !inputs.iter().any(|i| &i.name == *k))
        .map(|k| format!("with.{k}: the motif has no input {k:?}"))
        .collect();
    let mut values = BTreeMap::new();
    for input in inputs {
        match (with.get(&input.name), &input.default) {
            (Some(v), _) | (None, Some(v)) => {
                values.insert(input.name.clone(), go_text(v));
            }
            (None, None) if input.required => {
                errors.push(format!("with.{}: required input is not bound", input.name));
            }
            (None, None) => {
                values.insert(input.name.clone(), String::new());
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// Replaces every action that reads an input (`{{ .inputs.x }}`, `{{ inputs.x }}`,
/// `{{ index .inputs "x" }}`) by the input's text; other actions are left for runtime.
///
/// # Errors
/// An action that mentions `inputs` in another form, or names an unknown input.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let action = &rest[start..start + len + 2];
        out.push_str(&rest[..start]);
        let body = action[2..action.len() - 2]
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        if body.contains("inputs") {
            let name = input_name(body)
                .ok_or_else(|| format!("{action:?} reads inputs in a form expansion does not understand"))?;
            let value = values
                .get(name)
                .ok_or_else(|| format!("{action:?} reads an unknown input {name:?}"))?;
            out.push_str(value);
        } else {
            out.push_str(action);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn input_name(body: &str) -> Option<&str> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if let Some(name) = body
        .strip_prefix(".inputs.")
        .or_else(|| body.strip_prefix("inputs."))
    {
        return plain(name).then_some(name);
    }
    let args = body.strip_prefix("index")?.trim().strip_prefix(".inputs")?.trim();
    let name = args.strip_prefix('"')?.strip_suffix('"')?;
    plain(name).then_some(name)
}

/// Applies [`substitute`] to every string of a document, collecting `(path, message)` failures.
pub fn substitute_all(
    raw: &mut Value,
    values: &BTreeMap<String, String>,
    path: &str,
    errors: &mut Vec<(String, String)>,
) {
    match raw {
        Value::String(s) => match substitute(s, values) {
            Ok(new) => *s = new,
            Err(e) => errors.push((path.to_owned(), e)),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_all(item, values, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                substitute_all(v, values, &crate::problem::join(path, k), errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn values() -> BTreeMap<String, String> {
        [
            ("image".to_owned(), "{{ .spec.image }}".to_owned()),
            ("workers".to_owned(), "3".to_owned()),
        ]
        .into()
    }

    #[test]
    fn every_input_spelling_is_replaced_as_text() {
        let v = values();
        assert_eq!(
            substitute("{{ .inputs.image }}", &v).unwrap(),
            "{{ .spec.image }}"
        );
        assert_eq!(substitute("n={{- inputs.workers -}}!", &v).unwrap(), "n=3!");
        assert_eq!(substitute(r#"{{ index .inputs "workers" }}"#, &v).unwrap(), "3");
        assert_eq!(
            substitute("{{ .metadata.name }}-worker", &v).unwrap(),
            "{{ .metadata.name }}-worker"
        );
        assert!(
            substitute("{{ .inputs.nope }}", &v)
                .unwrap_err()
                .contains("unknown input")
        );
        assert!(substitute("{{ .inputs.image | upper }}", &v).is_err());
    }

    #[test]
    fn bindings_are_checked_against_inputs() {
        let inputs: Vec<Input> = serde_yaml_ng::from_str(
            "[{name: image, required: true}, {name: workers, default: 1}, {name: port}]",
        )
        .unwrap();
        let bound = bind(&inputs, &[("image".to_owned(), json!("busybox"))].into()).unwrap();
        assert_eq!(bound["workers"], "1");
        assert_eq!(bound["port"], "");
        let errors = bind(&inputs, &[("imagee".to_owned(), json!("x"))].into()).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("no input \"imagee\""));
        assert!(errors[1].contains("with.image: required input is not bound"));
    }
}
