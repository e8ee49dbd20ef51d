//! Conditions (`when`, `or`), `forEach`, and the reconcile-time validation and mutation rules.
//!
//! The operators and their precedence follow Orkestra's condition engine: the field is read as a
//! string (Go `%v` of the leaf), an absent field reads as `""`, and numeric comparisons count an
//! empty field as 0.

use serde::Deserialize;
use serde_json::Value;

use super::scalar::Text;

/// One condition: `{field, operator, value}` or a shorthand key (`equals: x`, `gt: 3`, ...).
/// Validation rules are conditions with a `message` and an `action`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// A dot path into the template context, or a template rendered first.
    pub field: Option<String>,
    /// `equals`, `notEquals`, `contains`, `prefix`, `suffix`, `greaterThan`, `lessThan`,
    /// `exists`, `notExists`, `in`, `typeOf`/`typeMap`/..., `unique`.
    pub operator: Option<String>,
    /// The expected value for `operator`.
    pub value: Option<Text>,
    pub equals: Option<Text>,
    pub not_equals: Option<Text>,
    pub contains: Option<Text>,
    pub prefix: Option<Text>,
    pub suffix: Option<Text>,
    #[serde(alias = "gt")]
    pub greater_than: Option<Text>,
    #[serde(alias = "lt")]
    pub less_than: Option<Text>,
    /// Validation rules only: the message of the warning or denial.
    pub message: Option<String>,
    /// Validation rules only: `deny` (default) or `warn`.
    pub action: Option<String>,
}

/// The operators `operator:` may name.
pub const OPERATORS: &[&str] = &[
    "equals",
    "notEquals",
    "contains",
    "prefix",
    "suffix",
    "greaterThan",
    "gt",
    "lessThan",
    "lt",
    "exists",
    "notExists",
    "in",
    "typeOf",
    "typeMap",
    "typeList",
    "typeString",
    "typeNumber",
    "typeBool",
    "typeNull",
    "unique",
];

impl Condition {
    /// Whether the condition holds on `ctx`. `render` renders a field that is a template.
    ///
    /// # Errors
    /// The message of a failed field template or an unknown operator.
    pub fn holds(
        &self,
        ctx: &Value,
        render: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<bool, String> {
        let field = self.field.as_deref().unwrap_or("");
        let (raw, text) = if field.contains("{{") {
            let text = render(field)?;
            (Value::String(text.clone()), text)
        } else {
            let raw = lookup(ctx, field).cloned().unwrap_or(Value::Null);
            let text = go_text(&raw);
            (raw, text)
        };
        let shorthand = [
            ("equals", &self.equals),
            ("notEquals", &self.not_equals),
            ("prefix", &self.prefix),
            ("suffix", &self.suffix),
            ("contains", &self.contains),
            ("greaterThan", &self.greater_than),
            ("lessThan", &self.less_than),
        ]
        .into_iter()
        .find_map(|(op, v)| v.as_ref().map(|v| (op, v.as_str())));
        let (op, expected) = match (shorthand, self.operator.as_deref()) {
            (Some((op, e)), _) => (op, e),
            (None, Some(op)) => (op, self.value.as_ref().map_or("", Text::as_str)),
            (None, None) if self.value.is_some() => ("equals", self.value.as_ref().map_or("", Text::as_str)),
            (None, None) => ("exists", ""),
        };
        Ok(match op {
            "equals" => text == expected,
            "notEquals" => text != expected,
            "contains" => text.contains(expected),
            "prefix" => text.starts_with(expected),
            "suffix" => text.ends_with(expected),
            "greaterThan" | "gt" => compare(&text, expected).is_some_and(|(f, e)| f > e),
            "lessThan" | "lt" => compare(&text, expected).is_some_and(|(f, e)| f < e),
            "exists" => !text.is_empty(),
            "notExists" => text.is_empty(),
            "in" => expected.split(',').any(|item| item.trim() == text),
            "typeOf" => type_name(&raw) == expected,
            "typeMap" => raw.is_object(),
            "typeList" => raw.is_array(),
            "typeString" => raw.is_string(),
            "typeNumber" => raw.is_number(),
            "typeBool" => raw.is_boolean(),
            "typeNull" => raw.is_null(),
            "unique" => true,
            other => return Err(format!("unknown operator {other:?}")),
        })
    }
}

/// Numeric comparison operands: an empty field counts as 0; an unparsable one or an unparsable
/// expected value makes the comparison false.
fn compare(field: &str, expected: &str) -> Option<(f64, f64)> {
    let f = if field.is_empty() {
        0.0
    } else {
        field.trim().parse().ok()?
    };
    Some((f, expected.trim().parse().ok()?))
}

/// Orkestra's type names for `typeOf`.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// Walks a dot path through nested maps (no list indices, as Orkestra's lookup).
pub fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('.');
    if path.is_empty() {
        return None;
    }
    path.split('.').try_fold(ctx, |v, seg| v.as_object()?.get(seg))
}

/// Go's `%v` text of a JSON value: strings raw, `null` as empty (an absent field), maps as
/// `map[k:v]` with sorted keys, lists as `[a b]`.
pub fn go_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(go_nested).collect::<Vec<_>>().join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_nested(&map[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn go_nested(v: &Value) -> String {
    if v.is_null() {
        "<nil>".to_owned()
    } else {
        go_text(v)
    }
}

/// `forEach: {field: spec.regions, as: region}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForEach {
    /// Dot path to a list or a map.
    pub field: String,
    /// Extra name for the item next to `.item`.
    #[serde(rename = "as")]
    pub alias: Option<String>,
}

/// `validation:` at reconcile time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    #[serde(default)]
    pub rules: Vec<Condition>,
}

/// `mutation:` at reconcile time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mutation {
    /// Mutate before validating instead of after.
    #[serde(default)]
    pub mutate_first: bool,
    #[serde(default)]
    pub rules: Vec<MutationRule>,
}

/// One mutation: `default` sets the field when absent or empty, `override` always sets it. The
/// values keep their YAML types (an integer default stays an integer).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutationRule {
    pub field: String,
    pub default: Option<Value>,
    #[serde(rename = "override")]
    pub override_value: Option<Value>,
}

impl MutationRule {
    /// Applies the rule to `cr` in place; returns whether it changed anything.
    pub fn apply(&self, cr: &mut Value) -> bool {
        let current = lookup(cr, &self.field);
        let absent = current.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
        let new = match (&self.override_value, &self.default) {
            (Some(v), _) => v.clone(),
            (None, Some(v)) if absent => v.clone(),
            _ => return false,
        };
        if current == Some(&new) {
            return false;
        }
        set(cr, &self.field, new)
    }
}

/// Sets a dot path, creating maps on the way; false when a segment is not a map.
pub fn set(root: &mut Value, path: &str, value: Value) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = root;
    for seg in parents {
        let Some(map) = node.as_object_mut() else {
            return false;
        };
        node = map
            .entry((*seg).to_owned())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    match node.as_object_mut() {
        Some(map) => {
            map.insert((*last).to_owned(), value);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holds(yaml: &str, ctx: &Value) -> bool {
        let c: Condition = serde_yaml_ng::from_str(yaml).unwrap();
        c.holds(ctx, &mut |_| Ok("rendered".to_owned())).unwrap()
    }

    #[test]
    fn shorthands_and_operators_follow_orkestra() {
        let cr = json!({"spec": {"tier": "premium", "n": 3, "flag": false, "tags": ["a"]}});
        assert!(holds("{field: spec.tier, equals: premium}", &cr));
        assert!(holds("{field: spec.tier, notEquals: basic}", &cr));
        assert!(holds("{field: spec.tier, prefix: pre}", &cr));
        assert!(holds("{field: spec.n, gt: 2}", &cr));
        assert!(!holds("{field: spec.n, lessThan: 2}", &cr));
        assert!(holds("{field: spec.missing, lt: 1}", &cr), "absent counts as 0");
        assert!(
            !holds("{field: spec.n, gt: x}", &cr),
            "unparsable expected value is false"
        );
        assert!(holds("{field: spec.flag, value: \"false\"}", &cr));
        assert!(holds("{field: spec.tier}", &cr), "nothing means exists");
        assert!(holds("{field: spec.missing, operator: notExists}", &cr));
        assert!(holds("{field: spec.missing, operator: in, value: \"a,b,\"}", &cr));
        assert!(holds("{field: spec.tags, operator: typeList}", &cr));
        assert!(holds("{field: spec.tags, operator: typeOf, value: list}", &cr));
        assert!(holds("{field: \"{{ .x }}\", equals: rendered}", &cr));
    }

    #[test]
    fn equals_wins_over_operator() {
        let cr = json!({"spec": {"tier": "gold"}});
        assert!(holds(
            "{field: spec.tier, equals: gold, operator: notExists}",
            &cr
        ));
    }

    #[test]
    fn go_text_prints_like_percent_v() {
        let v = json!([{"name": "build", "command": "echo hi"}]);
        assert_eq!(go_text(&v), "[map[command:echo hi name:build]]");
        assert_eq!(go_text(&json!(0.5)), "0.5");
        assert_eq!(go_text(&json!(2)), "2");
    }

    #[test]
    fn mutation_defaults_only_fill_gaps_and_overrides_always_win() {
        let mut cr = json!({"spec": {"a": ""}});
        let d: MutationRule = serde_yaml_ng::from_str("{field: spec.a, default: 2}").unwrap();
        let keep: MutationRule = serde_yaml_ng::from_str("{field: spec.a, default: 5}").unwrap();
        let o: MutationRule = serde_yaml_ng::from_str("{field: spec.b.c, override: x}").unwrap();
        assert!(d.apply(&mut cr));
        assert!(!keep.apply(&mut cr));
        assert!(o.apply(&mut cr));
        assert_eq!(cr, json!({"spec": {"a": 2, "b": {"c": "x"}}}));
    }
}
