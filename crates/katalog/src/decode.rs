//! Typed decoding that reports every bad key, not only the first.
//!
//! serde stops at the first error. To list them all, the offending node is taken out of the
//! document (an unknown key is removed, a value of the wrong type is cleared) and decoding is
//! repeated until it succeeds; each round contributes one problem with its path.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::{
    problem::{Problem, join},
    template::{Engine, is_template},
};

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The most problems reported for one document; beyond it decoding gives up.
const MAX_ROUNDS: usize = 200;

/// Decodes `raw` as `T`, recording every problem under `prefix`. Returns the value decoded
/// after the bad nodes were taken out (so later checks still run), or `None` when that fails.
pub fn decode<T: DeserializeOwned>(
    mut raw: Value,
    file: &Path,
    prefix: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut last: Option<Vec<Step>> = None;
    for _ in 0..MAX_ROUNDS {
        let err = match serde_path_to_error::deserialize::<_, T>(raw.clone()) {
            Ok(value) => return Some(value),
            Err(err) => err,
        };
        let mut steps: Vec<Step> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                Segment::Seq { index } => Some(Step::Index(*index)),
                Segment::Map { key } | Segment::Enum { variant: key } => Some(Step::Key(key.clone())),
                Segment::Unknown => None,
            })
            .collect();
        let message = err.inner().to_string();
        let unknown = unknown_field(&message);
        if let Some(name) = &unknown
            && steps.last() != Some(&Step::Key(name.clone()))
        {
            steps.push(Step::Key(name.clone()));
        }
        let repeated = last.as_ref() == Some(&steps);
        if !repeated {
            let short = message
                .split(", expected one of")
                .next()
                .unwrap_or(&message)
                .to_owned();
            problems.push(Problem::error(file, join(prefix, &display(&steps)), short));
        }
        // Take the node out: unknown keys always, wrongly typed values first by clearing them
        // (an optional field becomes absent), then by removing them if that did not help.
        let removed = if unknown.is_some() || repeated {
            remove(&mut raw, &steps)
        } else {
            clear(&mut raw, &steps)
        };
        if !removed || steps.is_empty() {
            return None;
        }
        last = Some(steps);
    }
    None
}

/// `unknown field `dataa`, expected ...` → `dataa`.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn display(steps: &[Step]) -> String {
    steps.iter().fold(String::new(), |acc, s| match s {
        Step::Key(k) => join(&acc, k),
        Step::Index(i) => format!("{acc}[{i}]"),
    })
}

fn node_mut<'a>(root: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    steps.iter().try_fold(root, |v, s| match s {
        Step::Key(k) => v.as_object_mut()?.get_mut(k),
        Step::Index(i) => v.as_array_mut()?.get_mut(*i),
    })
}

fn clear(root: &mut Value, steps: &[Step]) -> bool {
    match node_mut(root, steps) {
        Some(v) if !v.is_null() => {
            *v = Value::Null;
            true
        }
        _ => remove(root, steps),
    }
}

fn remove(root: &mut Value, steps: &[Step]) -> bool {
    let Some((last, parent)) = steps.split_last() else {
        return false;
    };
    match (node_mut(root, parent), last) {
        (Some(Value::Object(map)), Step::Key(k)) => map.remove(k).is_some(),
        (Some(Value::Array(items)), Step::Index(i)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

/// Parses every string of `raw` that is a template and records the ones that do not parse,
/// with their path and the position inside the template.
pub fn check_templates(
    raw: &Value,
    engine: &Engine,
    file: &Path,
    prefix: &str,
    via: Option<&str>,
    problems: &mut Vec<Problem>,
) {
    match raw {
        Value::String(s) if is_template(s) => {
            if let Err(err) = engine.check(s) {
                let mut p = Problem::error(file, prefix, err.to_string());
                p.position = err.position();
                p.via = via.map(str::to_owned);
                problems.push(p);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_templates(item, engine, file, &format!("{prefix}[{i}]"), via, problems);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                check_templates(v, engine, file, &join(prefix, k), via, problems);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: Option<String>,
        count: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        #[serde(default)]
        items: Vec<Item>,
    }

    #[test]
    fn every_bad_key_is_reported_with_its_path() {
        let raw = json!({"items": [{"name": "a", "nmae": "b"}, {"count": "x"}, {"extra": 1}], "top": 1});
        let mut problems = Vec::new();
        let doc: Option<Doc> = decode(raw, Path::new("k.yaml"), "", &mut problems);
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["items[0].nmae", "items[1].count", "items[2].extra", "top"],
            "{problems:?}"
        );
        assert_eq!(
            problems[0].message, "unknown field `nmae`, expected `name` or `count`",
            "short lists stay"
        );
        assert_eq!(
            doc.map(|d| d.items.len()),
            Some(3),
            "decoding goes on without the bad nodes"
        );
    }
}
