//! The notes: Orkestra's template functions, registered on top of Go's builtins.
//!
//! Implemented: the conditional, string, math, type, data/random, collection and Kubernetes
//! notes listed in `docs/katalog.md`. Time, cron and semver notes are not implemented yet; a
//! template using one fails `katalog check` with "undefined function".
//!
//! Argument order follows Sprig where Orkestra's order was not verified: the value a pipeline
//! passes comes last (`{{ .spec.tag | default "latest" }}`, `{{ .spec.name | trimPrefix "x-" }}`).

use std::sync::Arc;

use base64::Engine as _;
use gotmpl::{FuncMap, Result, TemplateError, Value};
use rand::RngExt as _;
use serde_json::Value as Json;
use sha2::Digest as _;

use crate::{
    cluster::{ClusterView, ObjectRef},
    template::{to_json, to_value},
};

fn nil() -> &'static Value {
    &Value::Nil
}

fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(nil())
}

fn last(args: &[Value]) -> &Value {
    args.last().unwrap_or(nil())
}

fn need(name: &str, args: &[Value], n: usize) -> Result<()> {
    if args.len() < n {
        return Err(TemplateError::ArgCount {
            name: name.to_owned(),
            expected: n,
            got: args.len(),
        });
    }
    Ok(())
}

/// The text of a value: nil as empty, strings raw, the rest as Go prints them.
pub fn text(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into().into())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Uint(u) => Some(*u as f64),
        Value::Float(f) => Some(*f),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Whole results are returned as int64, as Orkestra's math notes do.
fn whole_or_float(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Int(f as i64)
    } else {
        Value::Float(f)
    }
}

/// Orkestra's notion of empty: nil, `""`, `"<no value>"`, false, 0, empty list or map.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::String(s) => s.is_empty() || &**s == "<no value>",
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Float(f) => *f == 0.0,
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Function(_) => false,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "null",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::Uint(_) | Value::Float(_) => "number",
        Value::String(_) => "string",
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Function(_) => "func",
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    match v {
        Value::Map(m) => m.get(key).unwrap_or(nil()),
        _ => nil(),
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut rng = rand::rng();
    (0..n).map(|_| rng.random::<u8>()).collect()
}

fn count(name: &str, v: &Value) -> Result<usize> {
    number(v)
        .filter(|n| *n >= 0.0 && *n <= 4096.0)
        .map(|n| n as usize)
        .ok_or_else(|| TemplateError::Exec(format!("{name}: expected a length between 0 and 4096")))
}

/// The object a Kubernetes note is about: a map argument (a child read back, or the CR), or a
/// reference `apiVersion kind [namespace] name` looked up in the cluster view. Orkestra's
/// children placeholder (`_placeholder: true`) counts as absent.
fn object(cluster: &dyn ClusterView, args: &[Value]) -> Option<Json> {
    match args {
        [Value::Map(m)] if m.contains_key("_placeholder") => None,
        [v @ Value::Map(_)] => Some(to_json(v)),
        [api_version, kind, namespace, name] => cluster.get(&ObjectRef {
            api_version: text(api_version),
            kind: text(kind),
            namespace: Some(text(namespace)).filter(|ns| !ns.is_empty()),
            name: text(name),
        }),
        [api_version, kind, name] => cluster.get(&ObjectRef {
            api_version: text(api_version),
            kind: text(kind),
            namespace: None,
            name: text(name),
        }),
        _ => None,
    }
}

fn int_at(obj: &Json, path: &[&str]) -> i64 {
    path.iter()
        .try_fold(obj, |v, k| v.get(*k))
        .and_then(Json::as_i64)
        .unwrap_or(0)
}

/// Every note, with cluster reads going to `cluster`.
#[allow(clippy::too_many_lines)] // one flat registration list reads better than split groups
pub fn notes(cluster: Arc<dyn ClusterView>) -> FuncMap {
    let mut m = FuncMap::new();
    let mut add = |name: &str, f: fn(&[Value]) -> Result<Value>| {
        m.insert(name.to_owned(), Arc::new(f));
    };

    // Conditional.
    add("default", |a| {
        need("default", a, 1)?;
        Ok(if a.len() < 2 || is_empty(&a[1]) {
            a[0].clone()
        } else {
            a[1].clone()
        })
    });
    add("coalesce", |a| {
        Ok(a.iter().find(|v| !is_empty(v)).cloned().unwrap_or(Value::Nil))
    });
    add("empty", |a| Ok(Value::Bool(is_empty(arg(a, 0)))));
    add("notEmpty", |a| Ok(Value::Bool(!is_empty(arg(a, 0)))));
    add("ternary", |a| {
        need("ternary", a, 3)?;
        Ok(if is_empty(&a[2]) {
            a[1].clone()
        } else {
            a[0].clone()
        })
    });
    add("boolTernary", |a| {
        need("boolTernary", a, 3)?;
        match &a[2] {
            Value::Bool(true) => Ok(a[0].clone()),
            Value::Bool(false) => Ok(a[1].clone()),
            other => Err(TemplateError::Exec(format!(
                "boolTernary: expected a bool, got {}",
                type_name(other)
            ))),
        }
    });
    add("boolDefault", |a| {
        need("boolDefault", a, 1)?;
        Ok(match last(a) {
            Value::Bool(b) if a.len() > 1 => Value::Bool(*b),
            Value::String(s) if a.len() > 1 && matches!(&**s, "true" | "false") => {
                Value::Bool(&**s == "true")
            }
            _ => a[0].clone(),
        })
    });
    add("eqTernary", |a| {
        need("eqTernary", a, 4)?;
        Ok(if text(&a[2]) == text(&a[3]) {
            a[0].clone()
        } else {
            a[1].clone()
        })
    });

    // String.
    add("toLower", |a| Ok(string(text(last(a)).to_lowercase())));
    add("toUpper", |a| Ok(string(text(last(a)).to_uppercase())));
    add("trimSpace", |a| Ok(string(text(last(a)).trim())));
    add("trim", |a| Ok(string(text(last(a)).trim())));
    add("trimPrefix", |a| {
        need("trimPrefix", a, 2)?;
        let s = text(&a[1]);
        Ok(string(s.strip_prefix(text(&a[0]).as_str()).unwrap_or(&s)))
    });
    add("trimSuffix", |a| {
        need("trimSuffix", a, 2)?;
        let s = text(&a[1]);
        Ok(string(s.strip_suffix(text(&a[0]).as_str()).unwrap_or(&s)))
    });
    add("hasPrefix", |a| {
        need("hasPrefix", a, 2)?;
        Ok(Value::Bool(text(&a[1]).starts_with(&text(&a[0]))))
    });
    add("hasSuffix", |a| {
        need("hasSuffix", a, 2)?;
        Ok(Value::Bool(text(&a[1]).ends_with(&text(&a[0]))))
    });
    add("contains", |a| {
        need("contains", a, 2)?;
        Ok(Value::Bool(text(&a[1]).contains(&text(&a[0]))))
    });
    add("replace", |a| {
        need("replace", a, 3)?;
        Ok(string(text(&a[2]).replace(&text(&a[0]), &text(&a[1]))))
    });
    add("split", |a| {
        need("split", a, 2)?;
        let sep = text(&a[0]);
        Ok(Value::List(text(&a[1]).split(sep.as_str()).map(string).collect()))
    });
    add("join", |a| {
        need("join", a, 2)?;
        let items = match &a[1] {
            Value::List(l) => l.iter().map(text).collect::<Vec<_>>(),
            other => vec![text(other)],
        };
        Ok(string(items.join(&text(&a[0]))))
    });
    add("repeat", |a| {
        need("repeat", a, 2)?;
        Ok(string(text(&a[1]).repeat(count("repeat", &a[0])?)))
    });
    add("truncate", |a| {
        need("truncate", a, 2)?;
        Ok(string(
            text(&a[1])
                .chars()
                .take(count("truncate", &a[0])?)
                .collect::<String>(),
        ))
    });
    add("camelToKebab", |a| {
        let mut out = String::new();
        for (i, c) in text(last(a)).chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        }
        Ok(string(out))
    });
    add("slugify", |a| {
        let lowered = text(last(a)).to_lowercase();
        let slug: String = lowered
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let parts: Vec<&str> = slug.split('-').filter(|p| !p.is_empty()).collect();
        Ok(string(parts.join("-")))
    });
    add("truncateName", |a| {
        // Kubernetes names are at most 63 characters; a cut name must not end in '-'.
        let s: String = text(last(a)).chars().take(63).collect();
        Ok(string(s.trim_end_matches('-')))
    });

    // Math.
    fn math(name: &'static str, a: &[Value], op: fn(f64, f64) -> Option<f64>) -> Result<Value> {
        need(name, a, 2)?;
        let mut acc = number(&a[0]).ok_or_else(|| TemplateError::Exec(format!("{name}: not a number")))?;
        for v in &a[1..] {
            let n = number(v).ok_or_else(|| TemplateError::Exec(format!("{name}: not a number")))?;
            acc = op(acc, n).ok_or_else(|| TemplateError::Exec(format!("{name}: division by zero")))?;
        }
        Ok(whole_or_float(acc))
    }
    add("add", |a| math("add", a, |x, y| Some(x + y)));
    add("sub", |a| math("sub", a, |x, y| Some(x - y)));
    add("mul", |a| math("mul", a, |x, y| Some(x * y)));
    add("div", |a| math("div", a, |x, y| (y != 0.0).then(|| x / y)));
    add("mod", |a| math("mod", a, |x, y| (y != 0.0).then(|| x % y)));
    add("min", |a| math("min", a, |x, y| Some(x.min(y))));
    add("max", |a| math("max", a, |x, y| Some(x.max(y))));
    add("abs", |a| {
        Ok(whole_or_float(number(last(a)).unwrap_or(0.0).abs()))
    });
    add("clamp", |a| {
        need("clamp", a, 3)?;
        let (lo, hi, v) = (number(&a[0]), number(&a[1]), number(&a[2]));
        match (lo, hi, v) {
            (Some(lo), Some(hi), Some(v)) if lo <= hi => Ok(whole_or_float(v.clamp(lo, hi))),
            _ => Err(TemplateError::Exec(
                "clamp: expected numbers min <= max".to_owned(),
            )),
        }
    });

    // Type.
    add("toInt", |a| {
        Ok(Value::Int(number(last(a)).map_or(0, |f| f.trunc() as i64)))
    });
    add("toFloat", |a| Ok(Value::Float(number(last(a)).unwrap_or(0.0))));
    add("toBool", |a| {
        Ok(Value::Bool(match last(a) {
            Value::Bool(b) => *b,
            Value::String(s) => matches!(
                s.trim().to_lowercase().as_str(),
                "true" | "1" | "yes" | "y" | "on"
            ),
            other => number(other).is_some_and(|n| n != 0.0),
        }))
    });
    add("toString", |a| Ok(string(text(last(a)))));
    add("asString", |a| Ok(string(text(last(a)))));
    add("typeOf", |a| Ok(string(type_name(last(a)))));
    add("typeMap", |a| Ok(Value::Bool(matches!(last(a), Value::Map(_)))));
    add("typeList", |a| Ok(Value::Bool(matches!(last(a), Value::List(_)))));
    add("typeString", |a| {
        Ok(Value::Bool(matches!(last(a), Value::String(_))))
    });
    add("typeNumber", |a| {
        Ok(Value::Bool(matches!(
            last(a),
            Value::Int(_) | Value::Uint(_) | Value::Float(_)
        )))
    });
    add("typeBool", |a| Ok(Value::Bool(matches!(last(a), Value::Bool(_)))));
    add("typeNull", |a| Ok(Value::Bool(matches!(last(a), Value::Nil))));
    add("isScalar", |a| {
        Ok(Value::Bool(!matches!(
            last(a),
            Value::List(_) | Value::Map(_) | Value::Nil
        )))
    });
    add("isComposite", |a| {
        Ok(Value::Bool(matches!(last(a), Value::List(_) | Value::Map(_))))
    });
    // Orkestra's len shadows the builtin: nil is 0 instead of an error.
    add("len", |a| {
        let v = last(a);
        let n = match v {
            Value::String(s) => s.chars().count(),
            Value::Nil => 0,
            other => other.len().unwrap_or(0),
        };
        Ok(Value::Int(n as i64))
    });
    add("asList", |a| {
        Ok(match last(a) {
            Value::List(l) => Value::List(Arc::clone(l)),
            Value::Nil => Value::List(Arc::from(Vec::new())),
            other => Value::List(Arc::from(vec![other.clone()])),
        })
    });
    add("asMap", |a| {
        Ok(match last(a) {
            Value::Map(m) => Value::Map(Arc::clone(m)),
            _ => Value::Map(Arc::default()),
        })
    });

    // Data and random.
    add("toBase64", |a| {
        Ok(string(
            base64::engine::general_purpose::STANDARD.encode(text(last(a))),
        ))
    });
    add("fromBase64", |a| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text(last(a)).trim())
            .map_err(|e| TemplateError::Exec(format!("fromBase64: {e}")))?;
        Ok(string(String::from_utf8_lossy(&bytes)))
    });
    add("toJSON", |a| {
        serde_json::to_string(&to_json(last(a)))
            .map(string)
            .map_err(|e| TemplateError::Exec(format!("toJSON: {e}")))
    });
    add("sha256sum", |a| {
        Ok(string(hex::encode(sha2::Sha256::digest(
            text(last(a)).as_bytes(),
        ))))
    });
    add("randomAlphanumeric", |a| {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let n = count("randomAlphanumeric", last(a))?;
        let mut rng = rand::rng();
        let s: String = (0..n)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Ok(string(s))
    });
    add("randomHex", |a| {
        Ok(string(hex::encode(random_bytes(count("randomHex", last(a))?))))
    });
    add("randomBase64", |a| {
        let bytes = random_bytes(count("randomBase64", last(a))?);
        Ok(string(base64::engine::general_purpose::URL_SAFE.encode(bytes)))
    });
    add("uuidv4", |_| Ok(string(uuid::Uuid::new_v4().to_string())));

    // Collections and safe access.
    // `get obj "a" "b"`: nil-safe nested lookup, nil when any step is missing.
    add("get", |a| {
        need("get", a, 1)?;
        Ok(a[1..]
            .iter()
            .fold(a[0].clone(), |v, k| field(&v, &text(k)).clone()))
    });
    add("mapGet", |a| {
        need("mapGet", a, 2)?;
        Ok(field(&a[0], &text(&a[1])).clone())
    });
    add("getOr", |a| {
        need("getOr", a, 3)?;
        let v = field(&a[0], &text(&a[1]));
        Ok(if is_empty(v) { a[2].clone() } else { v.clone() })
    });
    add("mapKeys", |a| {
        Ok(match last(a) {
            Value::Map(m) => Value::List(m.keys().map(|k| Value::String(Arc::clone(k))).collect()),
            _ => Value::List(Arc::from(Vec::new())),
        })
    });
    add("mapValues", |a| {
        Ok(match last(a) {
            Value::Map(m) => Value::List(m.values().cloned().collect()),
            _ => Value::List(Arc::from(Vec::new())),
        })
    });
    add("listHas", |a| {
        need("listHas", a, 2)?;
        let wanted = text(&a[1]);
        Ok(Value::Bool(
            matches!(&a[0], Value::List(l) if l.iter().any(|v| text(v) == wanted)),
        ))
    });
    add("listLen", |a| Ok(Value::Int(last(a).len().unwrap_or(0) as i64)));
    add("listGet", |a| {
        need("listGet", a, 2)?;
        let i = number(&a[1]).unwrap_or(-1.0);
        Ok(match &a[0] {
            Value::List(l) if i >= 0.0 => l.get(i as usize).cloned().unwrap_or(Value::Nil),
            _ => Value::Nil,
        })
    });

    // Kubernetes objects (pure).
    add("name", |a| Ok(field(field(last(a), "metadata"), "name").clone()));
    add("namespace", |a| {
        Ok(field(field(last(a), "metadata"), "namespace").clone())
    });
    add("labels", |a| {
        Ok(field(field(last(a), "metadata"), "labels").clone())
    });
    add("annotations", |a| {
        Ok(field(field(last(a), "metadata"), "annotations").clone())
    });
    add("spec", |a| Ok(field(last(a), "spec").clone()));
    add("status", |a| Ok(field(last(a), "status").clone()));
    add("phase", |a| Ok(field(field(last(a), "status"), "phase").clone()));
    add("generation", |a| {
        Ok(field(field(last(a), "metadata"), "generation").clone())
    });
    add("observedGeneration", |a| {
        Ok(field(field(last(a), "status"), "observedGeneration").clone())
    });
    add("isTerminating", |a| {
        Ok(Value::Bool(!is_empty(field(
            field(last(a), "metadata"),
            "deletionTimestamp",
        ))))
    });
    add("hasCondition", |a| {
        // hasCondition obj "Ready" ["True"]
        need("hasCondition", a, 2)?;
        let wanted_status = a.get(2).map(text);
        let conditions = field(field(&a[0], "status"), "conditions");
        let found = match conditions {
            Value::List(l) => l.iter().any(|c| {
                text(field(c, "type")) == text(&a[1])
                    && wanted_status
                        .as_ref()
                        .is_none_or(|s| *s == text(field(c, "status")))
            }),
            _ => false,
        };
        Ok(Value::Bool(found))
    });

    // Kubernetes notes that can read the cluster: each takes an object or a reference.
    let c = Arc::clone(&cluster);
    m.insert(
        "resourceExists".to_owned(),
        Arc::new(move |a| Ok(Value::Bool(object(c.as_ref(), a).is_some()))),
    );
    let c = Arc::clone(&cluster);
    m.insert(
        "lookup".to_owned(),
        Arc::new(move |a| Ok(object(c.as_ref(), a).map_or(Value::Nil, |o| to_value(&o)))),
    );
    let replicas = |name: &'static str, check: fn(&Json) -> Value| {
        let c = Arc::clone(&cluster);
        (
            name.to_owned(),
            Arc::new(move |a: &[Value]| Ok(object(c.as_ref(), a).map_or(Value::Bool(false), |o| check(&o))))
                as gotmpl::ValueFunc,
        )
    };
    for (name, f) in [
        replicas("allReplicasReady", |o| {
            let desired = o.pointer("/spec/replicas").and_then(Json::as_i64).unwrap_or(1);
            Value::Bool(int_at(o, &["status", "readyReplicas"]) >= desired)
        }),
        replicas("replicasReady", |o| {
            Value::Bool(int_at(o, &["status", "readyReplicas"]) > 0)
        }),
        replicas("jobSucceeded", |o| {
            Value::Bool(int_at(o, &["status", "succeeded"]) > 0)
        }),
        replicas("jobFailed", |o| Value::Bool(int_at(o, &["status", "failed"]) > 0)),
        replicas("jobActive", |o| Value::Bool(int_at(o, &["status", "active"]) > 0)),
        replicas("desiredReplicas", |o| {
            Value::Int(o.pointer("/spec/replicas").and_then(Json::as_i64).unwrap_or(1))
        }),
        replicas("readyReplicas", |o| {
            Value::Int(int_at(o, &["status", "readyReplicas"]))
        }),
        replicas("availableReplicas", |o| {
            Value::Int(int_at(o, &["status", "availableReplicas"]))
        }),
        replicas("updatedReplicas", |o| {
            Value::Int(int_at(o, &["status", "updatedReplicas"]))
        }),
    ] {
        m.insert(name, f);
    }
    m
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        cluster::{Absent, Fixture},
        template::Engine,
    };

    fn cr() -> Json {
        json!({
            "metadata": {"name": "web", "namespace": "ns", "labels": {"tier": "gold"}},
            "spec": {"replicas": 2, "tag": "", "name": "x-web", "list": ["a", "b"]},
            "children": {
                "deployment": {"spec": {"replicas": 2}, "status": {"readyReplicas": 2}},
                "job": {"_placeholder": true, "status": {}}
            }
        })
    }

    fn r(src: &str) -> String {
        Engine::default().render(src, &cr()).unwrap()
    }

    #[test]
    fn default_takes_the_fallback_first() {
        assert_eq!(r(r#"{{ .spec.tag | default "latest" }}"#), "latest");
        assert_eq!(r(r#"{{ .spec.missing | default "latest" }}"#), "latest");
        assert_eq!(r(r#"{{ .spec.name | default "latest" }}"#), "x-web");
        // Orkestra's documented `default VALUE FALLBACK` returns the (non-empty) second argument.
        assert_eq!(r("{{ default .spec.replicas 5 }}"), "5");
    }

    #[test]
    fn conditional_notes() {
        assert_eq!(r(r#"{{ ternary "y" "n" .spec.replicas }}"#), "y");
        assert_eq!(r(r#"{{ ternary "y" "n" .spec.tag }}"#), "n");
        assert_eq!(r(r#"{{ boolTernary "y" "n" true }}"#), "y");
        assert!(
            Engine::default()
                .render(r#"{{ boolTernary "y" "n" "true" }}"#, &cr())
                .is_err()
        );
        assert_eq!(r(r#"{{ coalesce .spec.tag .spec.missing "c" }}"#), "c");
        assert_eq!(r("{{ empty .spec.tag }} {{ notEmpty .spec.list }}"), "true true");
        assert_eq!(r(r#"{{ eqTernary "same" "diff" .spec.replicas 2 }}"#), "same");
    }

    #[test]
    fn builtins_index_and_eq_work() {
        assert_eq!(r(r#"{{ index .metadata.labels "tier" }}"#), "gold");
        assert_eq!(r(r#"{{ if eq .metadata.name "web" }}yes{{ end }}"#), "yes");
    }

    #[test]
    fn string_and_math_notes_take_the_piped_value_last() {
        assert_eq!(r(r#"{{ .spec.name | trimPrefix "x-" | toUpper }}"#), "WEB");
        assert_eq!(r(r#"{{ .spec.list | join "," }}"#), "a,b");
        assert_eq!(r(r#"{{ replace "-" "_" .spec.name }}"#), "x_web");
        assert_eq!(r(r#"{{ contains "we" .spec.name }}"#), "true");
        assert_eq!(
            r("{{ add .spec.replicas 3 }} {{ div 7 2 }} {{ mul 2 3 }}"),
            "5 3.5 6"
        );
        assert_eq!(r(r#"{{ "myServiceName" | camelToKebab }}"#), "my-service-name");
        assert_eq!(r("{{ len .spec.missing }} {{ len .spec.list }}"), "0 2");
        assert!(Engine::default().render("{{ div 1 0 }}", &cr()).is_err());
    }

    #[test]
    fn random_notes_have_the_promised_shape() {
        let s = r("{{ randomAlphanumeric 24 }}");
        assert_eq!(s.len(), 24);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(s, r("{{ randomAlphanumeric 24 }}"));
        assert_eq!(r("{{ randomHex 8 }}").len(), 16);
        assert_eq!(r("{{ uuidv4 }}").len(), 36);
        assert_eq!(r(r#"{{ "hi" | toBase64 }} {{ "aGk=" | fromBase64 }}"#), "aGk= hi");
        assert_eq!(r(r#"{{ "" | sha256sum | truncate 8 }}"#), "e3b0c442");
    }

    #[test]
    fn get_is_a_nil_safe_nested_lookup() {
        assert_eq!(r(r#"{{ get .metadata "labels" "tier" }}"#), "gold");
        assert_eq!(r(r#"{{ get .metadata "nope" "deeper" }}"#), "");
        assert_eq!(r(r#"{{ getOr .spec "tag" "fallback" }}"#), "fallback");
    }

    #[test]
    fn resource_notes_on_children_and_placeholders() {
        assert_eq!(r("{{ allReplicasReady .children.deployment }}"), "true");
        assert_eq!(r("{{ resourceExists .children.deployment }}"), "true");
        // Deliberate: the placeholder for a missing child is not a resource.
        assert_eq!(r("{{ resourceExists .children.job }}"), "false");
        assert_eq!(r("{{ jobSucceeded .children.job }}"), "false");
    }

    #[test]
    fn cluster_reading_notes_ask_the_cluster_view() {
        let fixture = Fixture::new(vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"replicas": 3}, "status": {"readyReplicas": 1}})]);
        let e = Engine::new(Arc::new(fixture));
        let src = r#"{{ resourceExists "apps/v1" "Deployment" "ns" "web" }} {{ allReplicasReady "apps/v1" "Deployment" "ns" "web" }} {{ (lookup "apps/v1" "Deployment" "ns" "web").spec.replicas }}"#;
        assert_eq!(e.render(src, &cr()).unwrap(), "true false 3");
        let absent = Engine::new(Arc::new(Absent));
        // Trimming comes before `<no value>` is removed (Orkestra's order), so a trailing space stays.
        assert_eq!(absent.render(src, &cr()).unwrap(), "false false ");
    }
}
