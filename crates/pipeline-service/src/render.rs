//! The workflow config as OpenMetadata's ingestion scripts read it (reference §7, §7.1).
//!
//! `main.py` and `exit_handler.py` load the `config` env var with PyYAML and use it as it is: they
//! take `ingestionPipelineFQN` and `pipelineRunId` from it and never expand environment variables
//! inside it. So the service renders the config the way OpenMetadata's server writes it:
//!
//! * **Credentials.** In every string value (not in keys), each `${NAME}` whose `NAME` is one of
//!   the pipeline's credentials becomes that credential's value; `$${` stands for a literal `${`.
//!   Validation refuses a `${NAME}` that names no credential, since nothing in the pod would ever
//!   expand it (OpenMetadata's server would get a literal `Bearer ${OM_JWT}` and answer 401).
//!   Other text, `$NAME` included, is left alone.
//! * **`ingestionPipelineFQN`** is set to the pipeline's fully qualified name.
//! * **`pipelineRunId`** is set for on-demand runs, whose id the service chooses. A scheduled run
//!   has no id until the CronJob or CronOMJob creates it, so its config has none: both scripts
//!   overwrite the YAML's `pipelineRunId` with the `pipelineRunId` env var when it is set, and
//!   every scheduled pod gets that variable (downward API, or the operator's `{{ omjob.uid }}`).
//!
//! Substitution works on the parsed document, so a value holding quotes, colons or newlines
//! cannot change its structure. [`to_yaml`] then quotes every string value: PyYAML follows YAML
//! 1.1, where a plain `on`, `yes`, `1_000` or `12:30` is a boolean or an integer, and a password
//! written plain (as serde_yaml writes it) would reach the workflow as something else.
//!
//! The rendered text holds credentials, so the service stores it only in Secrets, and no error
//! here quotes it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::pipeline::is_env_name;

/// Top-level key of the pipeline's fully qualified name (read by both scripts).
pub const FQN_KEY: &str = "ingestionPipelineFQN";
/// Top-level key of the run id (overwritten from the env var when that is set).
pub const RUN_ID_KEY: &str = "pipelineRunId";

/// Why a workflow config cannot be rendered. The messages never quote the config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The text does not parse as YAML (the parser's message is left out: it may quote the text).
    #[error("the workflow config is not valid YAML")]
    NotYaml,
    /// The document is not a mapping, so the service's keys cannot be added to it.
    #[error("the workflow config is not a mapping at its top level")]
    NotAMapping,
    /// A `${NAME}` names no credential (validation refuses these first).
    #[error("the workflow config refers to ${{{0}}}, which is not a credential of the pipeline")]
    UnknownReference(String),
}

/// A `${NAME}` in a string value of the workflow config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Where it is, e.g. `source.serviceConnection.config.password` or `steps[0].token`.
    pub field: String,
    /// The name inside the braces.
    pub name: String,
}

/// Literal text or a reference, in the order they appear in a string.
enum Piece<'a> {
    Text(&'a str),
    Ref(&'a str),
}

/// Splits `s` into text and `${NAME}` references (`NAME` an environment variable name).
fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        let (before, at) = rest.split_at(pos);
        if !before.is_empty() {
            out.push(Piece::Text(before));
        }
        if let Some(after) = at.strip_prefix("$${") {
            out.push(Piece::Text("${"));
            rest = after;
        } else if let Some(name) = at
            .strip_prefix("${")
            .and_then(|r| r.split_once('}'))
            .map(|(name, _)| name)
            .filter(|name| is_env_name(name))
        {
            out.push(Piece::Ref(name));
            rest = &at[name.len() + 3..];
        } else {
            out.push(Piece::Text("$"));
            rest = &at[1..];
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// The workflow config as a mapping: YAML text is parsed, an object is taken as it is.
///
/// # Errors
/// [`RenderError::NotYaml`] or [`RenderError::NotAMapping`].
pub fn parse(template: &Value) -> Result<Map<String, Value>, RenderError> {
    let value = match template {
        Value::String(text) => serde_yaml_ng::from_str(text).map_err(|_| RenderError::NotYaml)?,
        other => other.clone(),
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(RenderError::NotAMapping),
    }
}

fn visit_strings(value: &Value, path: &str, found: &mut impl FnMut(&str, &str)) {
    match value {
        Value::String(s) => found(path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                visit_strings(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let field = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                visit_strings(v, &field, found);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Every `${NAME}` in the document's string values, in document order.
#[must_use]
pub fn references(doc: &Map<String, Value>) -> Vec<Reference> {
    let mut out = Vec::new();
    visit_strings(&Value::Object(doc.clone()), "", &mut |field, s| {
        for piece in pieces(s) {
            if let Piece::Ref(name) = piece {
                out.push(Reference {
                    field: field.to_owned(),
                    name: name.to_owned(),
                });
            }
        }
    });
    out
}

fn substitute(value: &mut Value, credentials: &BTreeMap<String, String>) -> Result<(), RenderError> {
    match value {
        Value::String(s) if s.contains('$') => {
            let mut out = String::with_capacity(s.len());
            for piece in pieces(s) {
                match piece {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Ref(name) => out.push_str(
                        credentials
                            .get(name)
                            .ok_or_else(|| RenderError::UnknownReference(name.to_owned()))?,
                    ),
                }
            }
            *s = out;
        }
        Value::Array(items) => {
            for item in items {
                substitute(item, credentials)?;
            }
        }
        Value::Object(map) => {
            for v in map.values_mut() {
                substitute(v, credentials)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The config every pod of the pipeline reads unless a run has its own: `template` with the
/// credentials substituted and `ingestionPipelineFQN` set; no `pipelineRunId` (the module
/// comment says why).
///
/// # Errors
/// When `template` is not a YAML mapping or names an unknown credential.
pub fn render(
    template: &Value,
    fqn: &str,
    credentials: &BTreeMap<String, String>,
) -> Result<String, RenderError> {
    let mut doc = Value::Object(parse(template)?);
    substitute(&mut doc, credentials)?;
    let Value::Object(mut doc) = doc else {
        return Err(RenderError::NotAMapping);
    };
    doc.insert(FQN_KEY.to_owned(), Value::String(fqn.to_owned()));
    doc.remove(RUN_ID_KEY);
    Ok(to_yaml(&doc))
}

/// An on-demand run's config: the rendered config with its `pipelineRunId`.
///
/// # Errors
/// [`RenderError::NotYaml`] or [`RenderError::NotAMapping`] when `rendered` is not what
/// [`render`] writes.
pub fn with_run_id(rendered: &str, run_id: &str) -> Result<String, RenderError> {
    let mut doc = parse(&Value::String(rendered.to_owned()))?;
    doc.insert(RUN_ID_KEY.to_owned(), Value::String(run_id.to_owned()));
    Ok(to_yaml(&doc))
}

/// Writes `doc` as block-style YAML that YAML 1.1 (PyYAML) and 1.2 parsers read alike: string
/// values double-quoted with every non-ASCII or control character escaped, keys plain only when
/// no YAML version could read them as anything but a string.
#[must_use]
pub fn to_yaml(doc: &Map<String, Value>) -> String {
    if doc.is_empty() {
        return "{}\n".to_owned();
    }
    let mut out = String::new();
    for (k, v) in doc {
        key(&mut out, k);
        out.push(':');
        node(&mut out, v, 2);
        out.push('\n');
    }
    out
}

/// Writes `value` after a `key:` or `-`; nested entries go on their own lines at `indent`.
fn node(out: &mut String, value: &Value, indent: usize) {
    let line = |out: &mut String| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', indent));
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                line(out);
                key(out, k);
                out.push(':');
                node(out, v, indent + 2);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                line(out);
                out.push('-');
                node(out, item, indent + 2);
            }
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar);
        }
    }
}

fn write_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            // Rust writes floats without an exponent; YAML 1.1 needs the dot to see a float.
            Some(f) => {
                let text = f.to_string();
                out.push_str(&text);
                if !text.contains('.') {
                    out.push_str(".0");
                }
            }
            None => out.push_str(&n.to_string()),
        },
        Value::String(s) => quoted(out, s),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

/// Whether YAML 1.1 and 1.2 both read `k` written plain as this very string.
fn plain_key(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        )
}

fn key(out: &mut String, k: &str) {
    if plain_key(k) {
        out.push_str(k);
    } else {
        quoted(out, k);
    }
}

/// A double-quoted scalar; escapes are the ones YAML 1.1 and 1.2 share.
fn quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn creds() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("OM_JWT".to_owned(), "eyJ.jwt-value".to_owned()),
            ("PW".to_owned(), "on: 'x' # \"y\"\nz".to_owned()),
        ])
    }

    fn read(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn credentials_are_substituted_in_values_only_and_the_fqn_is_added() {
        let template = json!({
            "source": {"password": "${PW}", "uri": "mysql://u:${PW}@h:3306/db", "${PW}": "key stays"},
            "workflowConfig": {"openMetadataServerConfig": {"securityConfig": {"jwtToken": "${OM_JWT}"}}},
            "literal": "$${OM_JWT} and $HOME and ${not a name} and $",
            "pipelineRunId": "stale",
        });
        let doc = read(&render(&template, "svc.db.pipe", &creds()).unwrap());
        assert_eq!(doc["source"]["password"], "on: 'x' # \"y\"\nz");
        assert_eq!(doc["source"]["uri"], "mysql://u:on: 'x' # \"y\"\nz@h:3306/db");
        assert_eq!(doc["source"]["${PW}"], "key stays");
        assert_eq!(
            doc["workflowConfig"]["openMetadataServerConfig"]["securityConfig"]["jwtToken"],
            "eyJ.jwt-value"
        );
        assert_eq!(doc["literal"], "${OM_JWT} and $HOME and ${not a name} and $");
        assert_eq!(doc[FQN_KEY], "svc.db.pipe");
        assert!(
            doc.get(RUN_ID_KEY).is_none(),
            "a scheduled run's id comes from the env var"
        );
    }

    #[test]
    fn yaml_text_templates_are_parsed_and_unknown_references_refused() {
        let template = json!("a: ${OM_JWT}\nb: [1, \"${NOPE}\"]\n");
        assert_eq!(
            render(&template, "f", &creds()),
            Err(RenderError::UnknownReference("NOPE".into()))
        );
        let refs = references(&parse(&template).unwrap());
        assert_eq!(
            refs,
            [
                Reference {
                    field: "a".into(),
                    name: "OM_JWT".into()
                },
                Reference {
                    field: "b[1]".into(),
                    name: "NOPE".into()
                }
            ]
        );
        assert_eq!(parse(&json!("- a")), Err(RenderError::NotAMapping));
        assert_eq!(parse(&json!("a: [")), Err(RenderError::NotYaml));
    }

    #[test]
    fn a_run_id_is_added_to_the_rendered_config() {
        let rendered = render(&json!({"a": {"b": "${OM_JWT}"}}), "f", &creds()).unwrap();
        let doc = read(&with_run_id(&rendered, "0f1e-run").unwrap());
        assert_eq!(
            doc,
            json!({"a": {"b": "eyJ.jwt-value"}, FQN_KEY: "f", RUN_ID_KEY: "0f1e-run"})
        );
    }

    #[test]
    fn the_output_reads_back_as_written_whatever_the_values() {
        // Values YAML 1.1 would read as booleans, integers or nulls if written plain, and
        // characters that need escaping.
        let doc = json!({
            "on": "on", "yes": ["yes", "NO", "~", "null", "12:30", "1_000", "017", "0x1F", ".inf", ""],
            "unicode": "é😀\u{85}\u{1b}\t", "quote\"key": "\\\"", "nested": [[], {}, [{"a": null}], {"b": [1, -2, 0.5, 1e300, 3.0]}],
            "true": true, "n": 18_446_744_073_709_551_615_u64,
        });
        let Value::Object(map) = &doc else { unreachable!() };
        let text = to_yaml(map);
        assert_eq!(read(&text), doc, "{text}");
        assert!(text.contains("\"on\": \"on\""), "{text}");
        assert!(
            text.contains("unicode: \"\\u00E9\\U0001F600\\u0085\\u001B\\t\""),
            "{text}"
        );
        assert!(text.contains("- 3.0"), "{text}");
        assert!(text.is_ascii());
        assert_eq!(to_yaml(&Map::new()), "{}\n");
    }
}
